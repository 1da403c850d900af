#!/usr/bin/env python3
"""End-to-end CPU benchmark: mlforge's linear learner against scikit-learn's SGDClassifier and
LogisticRegression on the same synthetic dense binary data (issue 5: an epoch over 5M x 128 rows).

Data: X ~ N(0, 1) float32 (n x d), y = 1[X w + b + noise > 0] with w ~ N(0, 1/d), noise sd 0.5,
generated here with numpy (seeded) in chunks; the first n rows train, a further held-out set
(--test-rows) tests. The same rows are written once as recordIO-protobuf for mlforge (records laid
out exactly as the SageMaker SDK writes dense float32 rows with a label) and kept in memory as
float64 for scikit-learn (whose SGD needs float64). The features are already standardised, so no
scaler runs on the scikit-learn side; mlforge runs its own (normalize_data, its default).

Runs, each timed as wall seconds (median of --repeats), --epochs passes for both SGD tools:
  mlforge with num_models=1 and num_models=32 (SageMaker's auto), adam, mini_batch 1000: the
      process end to end (reading the file, scaler sample, training, selection on the training
      sample after each epoch, test scoring, model writing), and the last epoch's "s training"
      from the log: one epoch streamed from the file (epoch 0 replays the rows read ahead for the
      scaler and the training sample, so it is not a pure streamed epoch);
  SGDClassifier(loss="log_loss", max_iter=epochs, tol=None): fit only (data in memory), and the
      fit divided by the epochs as its epoch time;
  LogisticRegression(lbfgs): to convergence, fit only.
Test accuracy of each on the held-out rows (mlforge: its test:binary_classification_accuracy).
Same threads for everyone (--threads: mlforge --threads, threadpoolctl for the BLAS).
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from sklearn.linear_model import LogisticRegression, SGDClassifier
from threadpoolctl import threadpool_limits


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from mlforge_files import field, varint  # noqa: E402  (protobuf varint and length-delimited field)


def record_layout(d):
    """The constant bytes around the feature and label floats of a dense float32 record:
    Record{features: {"values": Value{float32_tensor{values}}}, label: {"values": ...}}."""
    def map_entry(num, nfloats):
        tensor_head = varint((1 << 3) | 2) + varint(4 * nfloats)  # Float32Tensor.values, packed
        value_head = varint((2 << 3) | 2) + varint(len(tensor_head) + 4 * nfloats)  # Value.float32_tensor
        value_len = len(value_head) + len(tensor_head) + 4 * nfloats
        entry_body_head = field(1, b"values") + varint((2 << 3) | 2) + varint(value_len)
        entry_len = len(entry_body_head) + value_len
        return varint((num << 3) | 2) + varint(entry_len) + entry_body_head + value_head + tensor_head
    feat_head = map_entry(1, d)
    label_head = map_entry(2, 1)
    payload = len(feat_head) + 4 * d + len(label_head) + 4
    pad = (4 - payload % 4) % 4
    return feat_head, label_head, payload, pad


def write_recordio(path, chunks, d):
    """chunks: iterable of (x float32 n x d, y float32 n). dmlc recordIO framing, cflag 0."""
    feat_head, label_head, payload, pad = record_layout(d)
    header = np.frombuffer(np.array([0xCED7230A, payload], dtype="<u4").tobytes(), np.uint8)
    rec = 8 + payload + pad
    with open(path, "wb") as f:
        for x, y in chunks:
            n = len(y)
            buf = np.zeros((n, rec), np.uint8)
            at = 0
            for part in (header, np.frombuffer(feat_head, np.uint8)):
                buf[:, at:at + len(part)] = part
                at += len(part)
            buf[:, at:at + 4 * d] = np.ascontiguousarray(x, dtype="<f4").view(np.uint8).reshape(n, 4 * d)
            at += 4 * d
            lh = np.frombuffer(label_head, np.uint8)
            buf[:, at:at + len(lh)] = lh
            at += len(lh)
            buf[:, at:at + 4] = np.ascontiguousarray(y, dtype="<f4").view(np.uint8).reshape(n, 4)
            f.write(buf.tobytes())


def generate(n, d, seed, w, b, chunk=250000):
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = rng.standard_normal((m, d), dtype=np.float32)
        y = ((x.astype(np.float64) @ w + b + 0.5 * rng.standard_normal(m)) > 0).astype(np.float32)
        yield x, y


def machine():
    lines = [f"python {platform.python_version()}, numpy {np.__version__}",
             f"load average at start: {' '.join(open('/proc/loadavg').read().split()[:3])}"]
    try:
        out = subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout
        lines += [l.strip() for l in out.splitlines() if re.match(r"(Model name|CPU\(s\)|L2|L3|Thread)", l)]
    except OSError:
        pass
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlforge", required=True)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--cols", type=int, default=128)
    ap.add_argument("--test-rows", type=int, default=200_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workdir", default=None, help="where the recordIO files go (default: a temp dir)")
    ap.add_argument("--skip-lbfgs", action="store_true")
    args = ap.parse_args()
    import sklearn
    print(f"mlforge linear learner vs scikit-learn {sklearn.__version__}, CPU, {datetime.datetime.now().isoformat()}")
    for l in machine():
        print("  " + l)
    n, d = args.rows, args.cols
    print(f"  data: {n} train + {args.test_rows} test rows x {d} float32 features, binary, noise sd 0.5; "
          f"threads {args.threads}; repeats {args.repeats}")
    rng = np.random.default_rng(12345)
    w = rng.standard_normal(d) / np.sqrt(d)
    b = 0.1
    work = args.workdir or tempfile.mkdtemp(prefix="ll_bench_")
    os.makedirs(work, exist_ok=True)
    train_path, test_path = os.path.join(work, "train.pbr"), os.path.join(work, "test.pbr")
    t0 = time.perf_counter()
    x = np.empty((n, d), np.float64)
    y = np.empty(n, np.float64)
    def keep(chunks, offset=[0]):
        for cx, cy in chunks:
            x[offset[0]:offset[0] + len(cy)] = cx
            y[offset[0]:offset[0] + len(cy)] = cy
            offset[0] += len(cy)
            yield cx, cy
    write_recordio(train_path, keep(generate(n, d, 1, w, b)), d)
    xt_parts, yt_parts = [], []
    def keep_test(chunks):
        for cx, cy in chunks:
            xt_parts.append(cx.astype(np.float64))
            yt_parts.append(cy.astype(np.float64))
            yield cx, cy
    write_recordio(test_path, keep_test(generate(args.test_rows, d, 2, w, b)), d)
    xt, yt = np.vstack(xt_parts), np.concatenate(yt_parts)
    # Flush the written files and read them once, so that write-back and first reads do not land
    # in the first timed run.
    os.sync()
    for path in (train_path, test_path):
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass
    print(f"  generated and wrote {os.path.getsize(train_path) / 1e9:.2f} GB of recordIO in "
          f"{time.perf_counter() - t0:.1f} s (positives {y.mean():.3f})", flush=True)

    results = []
    for models in (1, 32):
        walls, epochs, accs = [], [], []
        for r in range(args.repeats):
            model_dir = os.path.join(work, f"model_{models}_{r}")
            cmd = [args.mlforge, "--threads", str(args.threads), "train", "linear-learner", "--train", train_path,
                   "--test", test_path, "--model-dir", model_dir, "--device", "cpu",
                   "--hp", "predictor_type=binary_classifier", "--hp", f"epochs={args.epochs}",
                   "--hp", f"num_models={models}", "--hp", "early_stopping_patience=100",
                   "--hp", "mini_batch_size=1000"]
            t0 = time.perf_counter()
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            wall = time.perf_counter() - t0
            if p.returncode != 0:
                print(p.stdout)
                raise SystemExit(f"mlforge failed: {' '.join(cmd)}")
            m = re.findall(r"epoch \d+: \d+ batch\(es\), \d+ row\(s\), ([0-9.]+) s training", p.stdout)
            with open(os.path.join(model_dir, "mlforge-model.json")) as f:
                acc = json.load(f)["metrics"]["test:binary_classification_accuracy"]
            walls.append(wall)
            epochs.append(float(m[-1]))
            accs.append(acc)
            print(f"  mlforge num_models={models} run {r}: wall {wall:.2f} s, epochs {' '.join(m)} s, "
                  f"test accuracy {acc:.4f}", flush=True)
        results.append((f"mlforge epochs={args.epochs} num_models={models}", statistics.median(walls),
                        statistics.median(epochs),
                        statistics.median(accs)))

    with threadpool_limits(args.threads):
        walls, accs = [], []
        for r in range(args.repeats):
            clf = SGDClassifier(loss="log_loss", max_iter=args.epochs, tol=None, random_state=r)
            t0 = time.perf_counter()
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning for a fixed epoch count, by design
                clf.fit(x, y)
            walls.append(time.perf_counter() - t0)
            accs.append(clf.score(xt, yt))
            print(f"  SGDClassifier run {r}: fit {walls[-1]:.2f} s, test accuracy {accs[-1]:.4f}", flush=True)
        results.append((f"SGDClassifier(log_loss, {args.epochs} epochs)", statistics.median(walls),
                        statistics.median(walls) / args.epochs,
                        statistics.median(accs)))
        if not args.skip_lbfgs:
            walls, accs = [], []
            for r in range(args.repeats):
                clf = LogisticRegression(max_iter=200)
                t0 = time.perf_counter()
                clf.fit(x, y)
                walls.append(time.perf_counter() - t0)
                accs.append(clf.score(xt, yt))
                print(f"  LogisticRegression run {r}: fit {walls[-1]:.2f} s ({clf.n_iter_[0]} iterations), "
                      f"test accuracy {accs[-1]:.4f}", flush=True)
            results.append(("LogisticRegression(lbfgs)", statistics.median(walls), float("nan"),
                            statistics.median(accs)))

    print("\n| run | wall s (median) | one epoch s (median) | test accuracy |")
    print("| --- | --- | --- | --- |")
    for name, wall, epoch, acc in results:
        print(f"| {name} | {wall:.2f} | {epoch:.2f} | {acc:.4f} |")
    sgd_epoch = results[2][2]
    for name, wall, epoch, acc in results[:2]:
        print(f"{name}: speedup over SGDClassifier {sgd_epoch / epoch:.2f}x per epoch, {results[2][1] / wall:.2f}x "
              f"whole run (mlforge process vs SGDClassifier fit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
