#!/usr/bin/env python3
"""Issue 18's linear learner target: with default hyperparameters, the time mlforge takes to reach
scikit-learn's LogisticRegression validation accuracy, against that fit's time.

Two binary data sets, each split into train / validation rows, the same rows for both tools:
  synth    `mlforge data synth linear --task binary` (500,000 x 100 by default, noise 0.1), the last
           --val-rows rows held out;
  mnist    "is it a zero?" on MNIST's t10k images (../shared/data/mnist): 8,000 train, 2,000
           validation rows, pixels / 255; with --mnist also the 10 digits (multiclass: the whole
           mlforge process against the multinomial fit, as its log has no per-epoch accuracy).
mlforge: `train linear-learner` with SageMaker's defaults (num_models auto = 32, mini_batch_size
1000, 15 epochs, early stopping) plus the validation channel, reading recordIO files; the time to
accuracy is when the first epoch's `#early_stopping_criteria_metric` line (validation accuracy at
the calibrated threshold) reaching the peer's accuracy arrives on stderr, counted from the process
start, so it includes start-up, reading the files, the scaler sample and that epoch's evaluation.
scikit-learn: LogisticRegression(lbfgs, max_iter 1000) fitted on the in-memory float32 array (its
fit time only: the data is already in RAM), with and without a StandardScaler; its validation
accuracy is predict()'s at probability 0.5. Same thread count for both (mlforge --threads,
threadpoolctl). One run each unless --repeats.
"""
import argparse
import gzip
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from threadpoolctl import threadpool_limits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


EPOCH_LINE = re.compile(r"#early_stopping_criteria_metric: host=\S+, epoch=(\d+), criteria=accuracy, value=([0-9.eE+-]+)")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mlforge", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rows", type=int, default=500000, help="synth: training rows")
    ap.add_argument("--val-rows", type=int, default=50000, help="synth: validation rows")
    ap.add_argument("--cols", type=int, default=100)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--mnist", default="", help="the mnist folder of the shared data (adds MNIST 'is it a zero?')")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--workdir", default="")
    ap.add_argument("--out", default="")
    return ap.parse_args()


ARGS = None
LINES = []


def say(msg=""):
    print(msg, flush=True)
    LINES.append(msg)


def write_recordio(path, x, y):
    # The package's writer (byte-identical to the SageMaker SDK's dense writer).
    import mlforge.io as mio
    mio.write_recordio(np.ascontiguousarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32), path)


def run_mlforge(train, val, model_dir, d):
    cmd = [ARGS.mlforge, "--threads", str(ARGS.threads), "train", "linear-learner", "--train", train,
           "--validation", val, "--model-dir", model_dir, "--device", "cpu", "--hp", f"feature_dim={d}",
           "--hp", "predictor_type=binary_classifier"]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    epochs, lines = [], []
    for line in p.stdout:
        lines.append(line)
        m = EPOCH_LINE.search(line)
        if m:
            epochs.append((int(m.group(1)), float(m.group(2)), time.perf_counter() - t0))
    rc = p.wait()
    wall = time.perf_counter() - t0
    if rc != 0:
        print("".join(lines))
        raise SystemExit(f"mlforge failed ({rc}): {' '.join(cmd)}")
    m = re.search(r"validation binary_classification_accuracy <score>=([0-9.eE+-]+)", "".join(lines))
    final = float(m.group(1)) if m else float("nan")
    return wall, epochs, final


def bench(name, xt, yt, xv, yv, work):
    n, d = xt.shape
    say(f"\n=== {name}: {n} training rows, {len(yv)} validation rows, d={d}, {ARGS.threads} thread(s) ===")
    train, val = os.path.join(work, f"{name}_train.pbr"), os.path.join(work, f"{name}_val.pbr")
    write_recordio(train, xt, yt)
    write_recordio(val, xv, yv)
    xt32 = np.ascontiguousarray(xt, dtype=np.float32)
    peers = {}
    for label, make in [("LogisticRegression(lbfgs)", lambda: LogisticRegression(max_iter=1000)),
                        ("StandardScaler + LogisticRegression(lbfgs)",
                         lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)))]:
        times, acc = [], None
        for _ in range(ARGS.repeats):
            with threadpool_limits(ARGS.threads):
                t0 = time.perf_counter()
                model = make().fit(xt32, yt)
                times.append(time.perf_counter() - t0)
            acc = float(np.mean(model.predict(np.asarray(xv, dtype=np.float32)) == yv))
        peers[label] = (statistics.median(times), acc)
        say(f"scikit-learn {label}: fit {statistics.median(times):.3f} s (runs {[round(t, 3) for t in times]}), "
            f"validation accuracy {acc:.5f}")
    target = max(a for _, a in peers.values())
    peer_time = min(t for t, a in peers.values() if a >= target)
    runs = [run_mlforge(train, val, os.path.join(work, f"{name}_model"), d) for _ in range(ARGS.repeats)]
    reach = []
    for wall, epochs, final in runs:
        hit = next(((e, a, t) for e, a, t in epochs if a >= target), None)
        reach.append(hit[2] if hit else float("nan"))
        say(f"mlforge defaults (32 models): process {wall:.3f} s, final validation accuracy {final:.5f}; per epoch "
            f"(epoch, accuracy, s since start): {[(e, round(a, 5), round(t, 3)) for e, a, t in epochs]}; "
            f"reached {target:.5f} at " + (f"epoch {hit[0]}, {hit[2]:.3f} s" if hit else "no epoch"))
    wall = statistics.median(r[0] for r in runs)
    t_reach = statistics.median(reach)
    say(f"| {name} | {target:.5f} | {peer_time:.3f} | {t_reach:.3f} | {wall:.3f} | "
        f"{peer_time / t_reach:.2f}x |")
    return name, target, peer_time, t_reach, wall


def load_mnist(folder, digits=False):
    with gzip.open(os.path.join(folder, "t10k-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / 255.0
    with gzip.open(os.path.join(folder, "t10k-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return x, (y.astype(np.float32) if digits else (y == 0).astype(np.float32))


def bench_digits(xt, yt, xv, yv, work):
    """MNIST's 10 digits: multinomial LogisticRegression against mlforge's multiclass defaults (32
    models, 15 epochs, early stopping on the validation cross-entropy). The multiclass log has no
    per-epoch validation accuracy, so this compares the whole process with the peer's fit."""
    n, d = xt.shape
    say(f"\n=== mnist_digits (10 classes): {n} training rows, {len(yv)} validation rows, d={d}, "
        f"{ARGS.threads} thread(s) ===")
    train, val = os.path.join(work, "digits_train.pbr"), os.path.join(work, "digits_val.pbr")
    write_recordio(train, xt, yt)
    write_recordio(val, xv, yv)
    times, acc = [], None
    for _ in range(ARGS.repeats):
        with threadpool_limits(ARGS.threads):
            t0 = time.perf_counter()
            model = LogisticRegression(max_iter=1000).fit(xt, yt)
            times.append(time.perf_counter() - t0)
        acc = float(np.mean(model.predict(xv) == yv))
    peer = statistics.median(times)
    say(f"scikit-learn LogisticRegression(lbfgs, multinomial): fit {peer:.3f} s (runs {[round(t, 3) for t in times]}), "
        f"validation accuracy {acc:.5f}")
    walls, finals = [], []
    for _ in range(ARGS.repeats):
        cmd = [ARGS.mlforge, "--threads", str(ARGS.threads), "train", "linear-learner", "--train", train,
               "--validation", val, "--model-dir", os.path.join(work, "digits_model"), "--device", "cpu",
               "--hp", f"feature_dim={d}", "--hp", "predictor_type=multiclass_classifier", "--hp", "num_classes=10"]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        walls.append(time.perf_counter() - t0)
        if p.returncode != 0:
            print(p.stdout)
            raise SystemExit(f"mlforge failed ({p.returncode}): {' '.join(cmd)}")
        m = re.search(r"validation multiclass_accuracy <score>=([0-9.eE+-]+)", p.stdout)
        finals.append(float(m.group(1)) if m else float("nan"))
        epochs = len(re.findall(r"epoch \d+: \d+ batch", p.stdout))
        say(f"mlforge defaults (32 models): process {walls[-1]:.3f} s, {epochs} epoch(s), final validation accuracy "
            f"{finals[-1]:.5f}")
    wall = statistics.median(walls)
    return f"| mnist_digits | {acc:.5f} | {peer:.3f} | {statistics.median(finals):.5f} | {wall:.3f} | {peer / wall:.2f}x |"


def main():
    global ARGS
    ARGS = parse_args()
    work = ARGS.workdir or tempfile.mkdtemp(prefix="ll_tta_")
    os.makedirs(work, exist_ok=True)
    say(f"linear learner time to scikit-learn's validation accuracy, {time.strftime('%Y-%m-%dT%H:%M:%S')}, "
        f"load average {os.getloadavg()}")
    results = []
    synth = os.path.join(work, "synth.pbr")
    total = ARGS.rows + ARGS.val_rows
    subprocess.run([ARGS.mlforge, "--log-level", "warn", "data", "synth", "linear", synth, "--rows", str(total),
                    "--cols", str(ARGS.cols), "--task", "binary", "--noise", str(ARGS.noise), "--seed", "5",
                    "--no-truth"], check=True)
    import mlforge.io as mio
    x, y = mio.read_recordio(synth)
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32)
    results.append(bench("synth", x[:ARGS.rows], y[:ARGS.rows], x[ARGS.rows:], y[ARGS.rows:], work))
    if ARGS.mnist:
        x, y = load_mnist(ARGS.mnist)
        results.append(bench("mnist_zero", x[:8000], y[:8000], x[8000:], y[8000:], work))
    say("\n| data set | peer's validation accuracy | scikit-learn fit s | mlforge s to reach it | mlforge process s "
        "| speed-up to accuracy |")
    say("|---|---|---|---|---|---|")
    for name, target, pt, tr, wall in results:
        say(f"| {name} | {target:.5f} | {pt:.3f} | {tr:.3f} | {wall:.3f} | {pt / tr:.2f}x |")
    if ARGS.mnist:
        x, y = load_mnist(ARGS.mnist, digits=True)
        row = bench_digits(x[:8000], y[:8000], x[8000:], y[8000:], work)
        say("\n| data set | peer's validation accuracy | scikit-learn fit s | mlforge final accuracy | mlforge process s "
            "| speed-up (process) |")
        say("|---|---|---|---|---|---|")
        say(row)
    if ARGS.out:
        with open(ARGS.out, "w") as f:
            f.write("\n".join(LINES) + "\n")


if __name__ == "__main__":
    main()
