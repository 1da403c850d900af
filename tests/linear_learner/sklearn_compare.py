#!/usr/bin/env python3
"""mlforge's linear learner against scikit-learn on the same splits (ctest: linear_learner_vs_sklearn,
label python). Every data set is split once (fixed seeds), written as SageMaker CSV (label first),
trained with `mlforge train linear-learner` (test channel = the held-out rows, so the metrics come
from mlforge's own `test:*` lines) and re-scored here from `mlforge predict` output; the peers are
fitted on the same rows with standardised features:

1. breast_cancer (shared scikit-learn CSV; binary): LogisticRegression. Test accuracy within 0.01.
2. digits (shared scikit-learn CSV; 10 classes): LogisticRegression (multinomial). Test accuracy
   within 0.01.
3. Synthetic regression with a known weight vector (`mlforge data synth linear`): Ridge and
   SGDRegressor. Test MSE within 1% of Ridge's; the weights within 0.01 of the generating ones.
4. MNIST "is it a zero" (the shared 10,000 genuine MNIST test images, split 6,000 train / 2,000
   validation / 2,000 test, since the training images are not available): LogisticRegression on
   train. mlforge's test accuracy >= 0.98 and within 0.01 of scikit-learn's; precision and recall
   reported.

Prints one result line per check and a summary table (the record in bench/results/). Exit status:
0 pass, 1 fail, 77 skip (no shared data).
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge, SGDRegressor
from sklearn.metrics import accuracy_score, mean_squared_error, precision_score, recall_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

THREADS = 2
failures = []
rows = []


def run(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        print(p.stdout)
        raise SystemExit(f"FAIL: exit status {p.returncode}: {' '.join(cmd)}")
    return p.stdout, time.perf_counter() - t0


def write_csv(path, x, y, fmt="%.17g"):
    np.savetxt(path, np.column_stack([y, x]), delimiter=",", fmt=fmt)


def check(name, ok, detail):
    print(f"{'ok' if ok else 'FAIL'}: {name}: {detail}", flush=True)
    if not ok:
        failures.append(name)


class Mlforge:
    def __init__(self, binary, work):
        self.binary, self.work = binary, work

    def train(self, name, hps, train, test, validation=None):
        model = os.path.join(self.work, name + "_model")
        cmd = [self.binary, "--threads", str(THREADS), "--log-level", "warn", "train", "linear-learner",
               "--train", train, "--test", test, "--model-dir", model]
        if validation:
            cmd += ["--validation", validation]
        for k, v in hps.items():
            cmd += ["--hp", f"{k}={v}"]
        _, secs = run(cmd)
        with open(os.path.join(model, "mlforge-model.json")) as f:
            metrics = json.load(f)["metrics"]
        return model, metrics, secs

    def predict(self, model, csv_with_labels):
        out = os.path.join(self.work, "predictions.jsonl")
        run([self.binary, "--threads", str(THREADS), "--log-level", "warn", "predict", "--model", model, "--input",
             csv_with_labels, "--content-type", "text/csv;label_size=1", "--accept", "application/jsonlines",
             "--output", out])
        with open(out) as f:
            return [json.loads(line) for line in f if line.strip()]


def logistic(x_train, y_train):
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(x_train, y_train)


def binary_case(ml, name, x, y, hps, split, min_accuracy=None):
    """split: (train_idx, test_idx[, validation_idx]) index arrays into x / y."""
    tr, te = split[0], split[1]
    va = split[2] if len(split) > 2 else None
    paths = {}
    for part, idx in (("train", tr), ("test", te), ("validation", va)):
        if idx is not None:
            paths[part] = os.path.join(ml.work, f"{name}_{part}.csv")
            write_csv(paths[part], x[idx], y[idx], "%.9g")
    model, metrics, secs = ml.train(name, hps, paths["train"], paths["test"], paths.get("validation"))
    pred = ml.predict(model, paths["test"])
    labels = np.array([p["predicted_label"] for p in pred])
    acc = accuracy_score(y[te], labels)
    prec, rec = precision_score(y[te], labels), recall_score(y[te], labels)
    check(f"{name}: mlforge predict agrees with its test metric", abs(acc - metrics["test:binary_classification_accuracy"]) < 1e-9,
          f"{acc:.6f} vs {metrics['test:binary_classification_accuracy']:.6f}")
    t0 = time.perf_counter()
    with threadpool_limits(THREADS):
        peer = logistic(x[tr], y[tr])
    peer_secs = time.perf_counter() - t0
    peer_labels = peer.predict(x[te])
    peer_acc = accuracy_score(y[te], peer_labels)
    check(f"{name}: test accuracy within 0.01 of scikit-learn", acc >= peer_acc - 0.01,
          f"mlforge {acc:.4f} (precision {prec:.4f}, recall {rec:.4f}) vs LogisticRegression {peer_acc:.4f} "
          f"(precision {precision_score(y[te], peer_labels):.4f}, recall {recall_score(y[te], peer_labels):.4f})")
    if min_accuracy is not None:
        check(f"{name}: test accuracy >= {min_accuracy}", acc >= min_accuracy, f"{acc:.4f}")
    rows.append((name, len(tr), len(te), "accuracy", acc, "LogisticRegression", peer_acc, secs, peer_secs,
                 f"precision {prec:.4f} recall {rec:.4f}"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlforge", required=True)
    ap.add_argument("--shared-data", required=True)
    args = ap.parse_args()
    sk = os.path.join(args.shared_data, "sklearn")
    mnist = os.path.join(args.shared_data, "mnist")
    if not os.path.isdir(sk):
        print(f"linear_learner_vs_sklearn: SKIPPED (no shared data at {args.shared_data})")
        return 77
    with tempfile.TemporaryDirectory(prefix="ll_vs_sklearn_") as work:
        ml = Mlforge(args.mlforge, work)

        # 1. breast_cancer: small, so mini-batches of 32 rows (the SDK's default of 1000 would make
        # one step per epoch).
        d = np.loadtxt(os.path.join(sk, "breast_cancer.csv"), delimiter=",")
        y, x = d[:, 0], d[:, 1:]
        idx = np.arange(len(y))
        tr, te = train_test_split(idx, test_size=0.25, random_state=0, stratify=y)
        binary_case(ml, "breast_cancer", x, y, {"predictor_type": "binary_classifier", "mini_batch_size": 32},
                    (tr, te))

        # 2. digits, 10 classes.
        d = np.loadtxt(os.path.join(sk, "digits.csv"), delimiter=",")
        y, x = d[:, 0], d[:, 1:]
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
        p_tr, p_te = os.path.join(work, "digits_train.csv"), os.path.join(work, "digits_test.csv")
        write_csv(p_tr, x_tr, y_tr)
        write_csv(p_te, x_te, y_te)
        model, metrics, secs = ml.train("digits", {"predictor_type": "multiclass_classifier", "num_classes": 10,
                                                   "mini_batch_size": 32}, p_tr, p_te)
        pred = np.array([p["predicted_label"] for p in ml.predict(model, p_te)])
        acc = accuracy_score(y_te, pred)
        check("digits: mlforge predict agrees with its test metric", abs(acc - metrics["test:multiclass_accuracy"]) < 1e-9,
              f"{acc:.6f} vs {metrics['test:multiclass_accuracy']:.6f}")
        t0 = time.perf_counter()
        with threadpool_limits(THREADS):
            peer = logistic(x_tr, y_tr)
        peer_secs = time.perf_counter() - t0
        peer_acc = peer.score(x_te, y_te)
        check("digits: test accuracy within 0.01 of scikit-learn", acc >= peer_acc - 0.01,
              f"mlforge {acc:.4f} (macro F1 {metrics['test:macro_f_beta']:.4f}) vs LogisticRegression {peer_acc:.4f}")
        rows.append(("digits", len(y_tr), len(y_te), "accuracy", acc, "LogisticRegression", peer_acc, secs, peer_secs,
                     f"macro F1 {metrics['test:macro_f_beta']:.4f}"))

        # 3. Synthetic regression with known weights.
        synth = os.path.join(work, "reg.csv")
        run([args.mlforge, "--log-level", "warn", "data", "synth", "linear", synth, "--rows", "50000", "--cols", "20",
             "--noise", "0.1", "--seed", "7"])
        with open(synth + ".truth.json") as f:
            truth = json.load(f)
        d = np.loadtxt(synth, delimiter=",")
        y, x = d[:, 0], d[:, 1:]
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0)
        p_tr, p_te = os.path.join(work, "reg_train.csv"), os.path.join(work, "reg_test.csv")
        write_csv(p_tr, x_tr, y_tr)
        write_csv(p_te, x_te, y_te)
        model, metrics, secs = ml.train("regression", {"predictor_type": "regressor"}, p_tr, p_te)
        pred = np.array([p["score"] for p in ml.predict(model, p_te)])
        mse = mean_squared_error(y_te, pred)
        check("regression: mlforge predict agrees with its test metric", abs(mse - metrics["test:mse"]) < 1e-6 * mse,
              f"{mse:.8f} vs {metrics['test:mse']:.8f}")
        with threadpool_limits(THREADS):
            t0 = time.perf_counter()
            ridge = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(x_tr, y_tr)
            ridge_secs = time.perf_counter() - t0
            t0 = time.perf_counter()
            sgd = make_pipeline(StandardScaler(), SGDRegressor(random_state=0)).fit(x_tr, y_tr)
            sgd_secs = time.perf_counter() - t0
        ridge_mse = mean_squared_error(y_te, ridge.predict(x_te))
        sgd_mse = mean_squared_error(y_te, sgd.predict(x_te))
        check("regression: test MSE within 1% of Ridge", mse <= 1.01 * ridge_mse,
              f"mlforge {mse:.6f} vs Ridge {ridge_mse:.6f}, SGDRegressor {sgd_mse:.6f} (noise variance 0.01)")
        # The saved weights (raw feature space) against the generating ones: score the unit vectors.
        eye = os.path.join(work, "eye.csv")
        write_csv(eye, np.vstack([np.zeros((1, 20)), np.eye(20)]), np.zeros(21))
        s = np.array([p["score"] for p in ml.predict(model, eye)])
        w, b = s[1:] - s[0], s[0]
        err = max(np.max(np.abs(w - np.array(truth["weights"]))), abs(b - truth["bias"]))
        check("regression: weights within 0.01 of the generating ones", err < 0.01, f"max error {err:.5f}")
        rows.append(("regression (synthetic)", len(y_tr), len(y_te), "MSE", mse, "Ridge", ridge_mse, secs, ridge_secs,
                     f"SGDRegressor MSE {sgd_mse:.6f} ({sgd_secs:.2f} s); max weight error {err:.5f}"))

        # 4. MNIST zero vs rest.
        images = os.path.join(mnist, "t10k-images-idx3-ubyte.gz")
        if os.path.exists(images):
            with gzip.open(images) as f:
                raw = f.read()
            x = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 784).astype(np.float64)
            with gzip.open(os.path.join(mnist, "t10k-labels-idx1-ubyte.gz")) as f:
                digit = np.frombuffer(f.read(), np.uint8, offset=8)
            y = (digit == 0).astype(np.float64)
            idx = np.arange(len(y))
            binary_case(ml, "mnist_zero", x / 255.0, y, {"predictor_type": "binary_classifier", "mini_batch_size": 200},
                        (idx[:6000], idx[8000:], idx[6000:8000]), min_accuracy=0.98)
        else:
            print("mnist: SKIPPED (no MNIST images in the shared data)")

    print("\n| data set | train rows | test rows | metric | mlforge | peer | peer value | mlforge s | peer s | notes |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.4f} | {r[5]} | {r[6]:.4f} | {r[7]:.2f} | {r[8]:.2f} | {r[9]} |")
    if failures:
        print(f"\nFAILED: {', '.join(failures)}")
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
