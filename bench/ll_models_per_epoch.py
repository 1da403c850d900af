#!/usr/bin/env python3
"""Issue 18's linear learner target: 32 parallel models (SageMaker's num_models auto) cost at most
2x one model per epoch, in training and in evaluation each.

Data: `mlforge data synth linear --task binary` (1,000,000 training rows x 100 by default, noise
0.5) and the next --val-rows rows of the same draw as the validation channel, in recordIO-protobuf.
mlforge runs `train linear-learner` with num_models 1 and 32, alternately (--pairs pairs of runs),
mini_batch_size 1000, --epochs epochs and early stopping off, everything else SageMaker's defaults.
Each epoch's log line gives its training seconds (the epoch's batches) and evaluation seconds
(validation pass, calibration of every model's threshold, selection and the metric lines); epoch 0
is left out (it replays the rows read ahead for the scaler). Prints every epoch and the medians and
their ratios. Runs on a shared machine vary by 10-30%: alternate, and compare medians.
"""
import argparse
import os
import re
import statistics
import struct
import subprocess
import tempfile
import time

EPOCH = re.compile(r"epoch (\d+): \d+ batch\(es\), \d+ row\(s\), ([0-9.]+) s training \+ ([0-9.]+) s evaluation")
RECORDIO_MAGIC = 0xCED7230A


def split_recordio(path, first_rows, out_a, out_b):
    """Writes the first `first_rows` records of `path` to out_a and the rest to out_b (checks every
    record's header on the way: a dense synth file has no multi-part records)."""
    with open(path, "rb") as f:
        data = f.read()
    at, rows = 0, 0
    while rows < first_rows:
        magic, lrec = struct.unpack_from("<II", data, at)
        if magic != RECORDIO_MAGIC or (lrec >> 29) != 0:
            raise SystemExit(f"{path}: record {rows} at byte {at} is not a whole recordIO record")
        length = lrec & ((1 << 29) - 1)
        at += 8 + ((length + 3) & ~3)
        rows += 1
    with open(out_a, "wb") as f:
        f.write(data[:at])
    with open(out_b, "wb") as f:
        f.write(data[at:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mlforge", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--val-rows", type=int, default=100000)
    ap.add_argument("--cols", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--workdir", default="")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    lines = []

    def say(msg):
        print(msg, flush=True)
        lines.append(msg)

    work = a.workdir or tempfile.mkdtemp(prefix="ll_models_")
    os.makedirs(work, exist_ok=True)
    train, val = os.path.join(work, "train.pbr"), os.path.join(work, "val.pbr")
    if not (os.path.exists(train) and os.path.exists(val)):
        both = os.path.join(work, "all.pbr")
        subprocess.run([a.mlforge, "--log-level", "warn", "data", "synth", "linear", both, "--rows",
                        str(a.rows + a.val_rows), "--cols", str(a.cols), "--task", "binary", "--noise", "0.5",
                        "--seed", "3", "--no-truth"], check=True)
        split_recordio(both, a.rows, train, val)
        os.remove(both)
    say(f"linear learner, 32 models vs 1 per epoch, {time.strftime('%Y-%m-%dT%H:%M:%S')}, load average "
        f"{os.getloadavg()}, {a.threads} thread(s); {a.rows} x {a.cols} training rows, {a.val_rows} validation "
        f"rows, {a.epochs} epochs per run, {a.pairs} alternating pairs")
    seconds = {1: ([], []), 32: ([], [])}
    for pair in range(a.pairs):
        for models in (1, 32):
            cmd = [a.mlforge, "--threads", str(a.threads), "train", "linear-learner", "--train", train,
                   "--validation", val, "--model-dir", os.path.join(work, f"model{models}"), "--device", "cpu",
                   "--hp", f"feature_dim={a.cols}", "--hp", "predictor_type=binary_classifier",
                   "--hp", f"epochs={a.epochs}", "--hp", f"num_models={models}", "--hp", "mini_batch_size=1000",
                   "--hp", f"early_stopping_patience={a.epochs + 1}"]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(f"mlforge failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
            epochs = [(int(m.group(1)), float(m.group(2)), float(m.group(3)))
                      for m in EPOCH.finditer(p.stdout + p.stderr)]
            kept = [(t, e) for n, t, e in epochs if n >= 1]
            for t, e in kept:
                seconds[models][0].append(t)
                seconds[models][1].append(e)
            say(f"pair {pair} models {models}: " + " ".join(f"{t:.4f}+{e:.4f}" for t, e in kept))
    med = {m: (statistics.median(v[0]), statistics.median(v[1])) for m, v in seconds.items()}
    for m in (1, 32):
        q = statistics.quantiles(seconds[m][1], n=4) if len(seconds[m][1]) > 1 else [0, 0, 0]
        say(f"models {m}: median training {med[m][0]:.4f} s, median evaluation {med[m][1]:.4f} s "
            f"(evaluation quartiles {q[0]:.4f}-{q[2]:.4f}, {len(seconds[m][0])} epochs)")
    say(f"32 models / 1 model: training {med[32][0] / med[1][0]:.2f}x, evaluation {med[32][1] / med[1][1]:.2f}x "
        f"(target: at most 2x each)")
    if a.out:
        with open(a.out, "a") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
