"""mlforge's factorization machines against a float64 numpy implementation written here from
SPEC.md 4.4 and the optimizer definitions (MXNet's lazy row-sparse sgd / adam / adagrad):

1. forward values: `mlforge predict` on a trained model == numpy's pairwise formula on the exported
   embeddings (`mlforge embeddings`) and bias;
2. one epoch, step by step, of each optimizer and both losses: numpy replays the mini-batches from
   mlforge's initial model (the same run with every learning rate 0 writes it) and must land on the
   parameters mlforge trained.

Run by ctest (fm_vs_numpy) as: numpy_compare.py --mlforge BIN --shared-data DIR
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mlforge_files as mf  # noqa: E402


def write_labelled_sparse(path, rows, labels, d):
    """recordIO-protobuf: features as a sparse Float32Tensor (keys, shape), label["values"] = [y]."""
    with open(path, "wb") as f:
        for (keys, vals), y in zip(rows, labels):
            feat = mf._record(np.asarray(vals, np.float32), keys=keys, dim=d)  # Record.features
            tensor = mf.field(1, np.asarray([y], dtype="<f4").tobytes())
            entry = mf.field(1, b"values") + mf.field(2, mf.field(2, tensor))
            f.write(mf._frame(feat + mf.field(2, entry)))  # Record.label


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{r.stderr[-3000:]}")
    return r.stdout


def load_model(mlforge, model_dir, d, work):
    npy = os.path.join(work, "emb.npy")
    run([mlforge, "embeddings", "--model", model_dir, "--output", npy])
    e = np.load(npy).astype(np.float64)
    # w0 is the score of a row without features (regressor) / its logit.
    req = os.path.join(work, "empty.json")
    with open(req, "w") as f:
        json.dump({"instances": [{"data": {"features": {"keys": [], "shape": [d], "values": []}}}]}, f)
    out = json.loads(run([mlforge, "predict", "--model", model_dir, "--input", req]))
    return e[:, 0].copy(), e[:, 1:].copy(), out["predictions"][0]["score"]


def forward(w0, w, v, keys, vals):
    y = w0 + sum(w[i] * x for i, x in zip(keys, vals))
    for a in range(len(keys)):
        for b in range(a + 1, len(keys)):
            y += v[keys[a]] @ v[keys[b]] * vals[a] * vals[b]
    return y


def gradients(w0, w, v, batch, logistic):
    g0, gw, gv, loss = 0.0, {}, {}, 0.0
    for keys, vals, y in batch:
        yhat = forward(w0, w, v, keys, vals)
        if logistic:
            p = 1 / (1 + np.exp(-yhat))
            dl = p - y
            loss += np.log1p(np.exp(yhat)) - y * yhat
        else:
            dl = yhat - y
            loss += 0.5 * dl * dl
        g0 += dl
        s = sum(v[i] * x for i, x in zip(keys, vals))
        for i, x in zip(keys, vals):
            gw[i] = gw.get(i, 0.0) + dl * x
            gv[i] = gv.get(i, np.zeros(v.shape[1])) + dl * x * (s - v[i] * x)
    return g0, gw, gv, loss


class Optimizer:
    def __init__(self, kind, lr, wd, eps, b1=0.9, b2=0.999):
        self.kind, self.lr, self.wd, self.eps, self.b1, self.b2 = kind, lr, wd, eps, b1, b2
        self.a, self.b = {}, {}

    def apply(self, key, w, grad, rescale, t):
        lr, wd = self.lr, self.wd
        a = self.a.get(key, 0.0)
        b = self.b.get(key, 0.0)
        if self.kind == "sgd":
            w = (1 - lr * wd) * w - lr * rescale * grad
        elif self.kind == "adam":
            g = rescale * grad + wd * w
            a = self.b1 * a + (1 - self.b1) * g
            b = self.b2 * b + (1 - self.b2) * g * g
            w = w - lr * np.sqrt(1 - self.b2 ** t) / (1 - self.b1 ** t) * a / (np.sqrt(b) + self.eps)
        else:  # adagrad
            g = rescale * grad
            a = a + g * g
            w = w - lr * (g / np.sqrt(a + self.eps) + wd * w)
        self.a[key], self.b[key] = a, b
        return w


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlforge", required=True)
    ap.add_argument("--shared-data", default="")
    args = ap.parse_args()
    rng = np.random.default_rng(5)
    d, k, n, batch = 30, 4, 120, 25  # the last mini-batch is short (20 rows)
    rows = []
    for _ in range(n):
        keys = np.sort(rng.choice(d, size=rng.integers(1, 6), replace=False))
        rows.append((keys.tolist(), rng.uniform(-1, 1, size=len(keys)).astype(np.float32).tolist()))
    failures = []
    with tempfile.TemporaryDirectory() as work:
        for task in ["regressor", "binary_classifier"]:
            logistic = task == "binary_classifier"
            labels = rng.integers(0, 2, n).astype(float) if logistic else rng.normal(1.0, 1.0, n)
            data = os.path.join(work, f"{task}.pbr")
            write_labelled_sparse(data, rows, labels, d)
            for opt in ["sgd", "adam", "adagrad"]:
                lrs = {"bias": 0.05, "linear": 0.2, "factors": 0.3}
                wds = {"bias": 0.01, "linear": 0.05, "factors": 0.1}
                eps = 1e-7 if opt == "adagrad" else 1e-8
                base = [args.mlforge, "train", "factorization-machines", "--train", data, "--hp", f"feature_dim={d}",
                        "--hp", f"num_factors={k}", "--hp", f"predictor_type={task}", "--hp", f"mini_batch_size={batch}",
                        "--hp", "epochs=1", "--hp", f"_optimizer={opt}", "--hp", "factors_init_sigma=0.3",
                        "--threads", "2"]
                for g in lrs:
                    base += ["--hp", f"{g}_wd={wds[g]}"]
                init_dir, model_dir = os.path.join(work, "init"), os.path.join(work, "model")
                run(base + ["--model-dir", init_dir] + sum((["--hp", f"{g}_lr=0"] for g in lrs), []))
                run(base + ["--model-dir", model_dir] + sum((["--hp", f"{g}_lr={lrs[g]}"] for g in lrs), []))
                w, v, w0 = load_model(args.mlforge, init_dir, d, work)
                v_init = v.copy()
                if logistic:
                    w0 = float(np.log(w0 / (1 - w0)))  # the empty row's score is sigmoid(w0)
                opts = {g: Optimizer(opt, lrs[g], wds[g], eps) for g in lrs}
                for t, start in enumerate(range(0, n, batch), 1):
                    part = [(rows[i][0], rows[i][1], labels[i]) for i in range(start, min(n, start + batch))]
                    g0, gw, gv, _ = gradients(w0, w, v, part, logistic)
                    rescale = 1.0 / len(part)
                    w0 = opts["bias"].apply("w0", w0, g0, rescale, t)
                    for i in gw:  # lazy: only the rows this mini-batch touches
                        w[i] = opts["linear"].apply(("w", i), w[i], gw[i], rescale, t)
                        for f in range(k):
                            v[i, f] = opts["factors"].apply(("v", i, f), v[i, f], gv[i][f], rescale, t)
                gw_, gv_, g0_ = load_model(args.mlforge, model_dir, d, work)
                if logistic:
                    g0_ = float(np.log(g0_ / (1 - g0_)))
                err = max(abs(g0_ - w0), np.max(np.abs(gw_ - w)), np.max(np.abs(gv_ - v)))
                line = f"{task:17s} {opt:8s} one epoch ({(n + batch - 1) // batch} steps): max |mlforge - numpy| = {err:.2e}"
                print(line)
                if not err < 2e-5:
                    failures.append(line)
                moved = np.max(np.abs(gv_ - v_init))
                if not moved > 1e-2:  # the epoch must have changed the factors for the check to mean anything
                    failures.append(f"{task} {opt}: the factors moved only {moved:.2e} in the epoch")
                # Forward values of the trained model through `mlforge predict`.
                req = os.path.join(work, "rows.json")
                with open(req, "w") as f:
                    json.dump({"instances": [{"data": {"features": {"keys": kk, "shape": [d], "values": vv}}}
                                             for kk, vv in rows[:20]]}, f)
                preds = json.loads(run([args.mlforge, "predict", "--model", model_dir, "--input", req]))["predictions"]
                want = [forward(g0_, gw_, gv_, kk, vv) for kk, vv in rows[:20]]
                if logistic:
                    want = [1 / (1 + np.exp(-y)) for y in want]
                ferr = max(abs(p["score"] - y) for p, y in zip(preds, want))
                if not ferr < 1e-5:
                    failures.append(f"{task} {opt}: forward values differ by {ferr:.2e}")
    if failures:
        sys.exit("FAILED:\n" + "\n".join(failures))
    print("fm_vs_numpy: OK")


if __name__ == "__main__":
    main()
