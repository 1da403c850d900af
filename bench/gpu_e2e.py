"""End to end on a GPU machine: every algorithm trained through the `mlforge` CLI with --device cpu
and --device gpu on the same synthetic data, both models' predictions on the same held-out rows
compared, and the two training wall times. Plain Python (no numpy), so it runs under any python3.

    python3 bench/gpu_e2e.py --mlforge "gpu-bundle/run mlforge" --work /tmp/e2e [--scale 1] [--gpu-device gpu]

--gpu-device cpu runs the script's own check on a machine without a GPU (both sides on the CPU).
Prints one line per case: name, rows, cpu s, gpu s, what was compared, the difference, PASS/FAIL.
Exit status 1 when any case failed.
"""
import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time


def run(cmd, log, check=True):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    log.write("$ " + " ".join(shlex.quote(c) for c in cmd) + f"\n# exit {p.returncode} in {dt:.3f} s\n")
    log.write(p.stderr[-4000:])
    log.flush()
    if check and p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {' '.join(cmd[:4])}...: {p.stderr.strip()[-600:]}")
    return p, dt


def predictions(ml, model, data, out, log):
    run(ml + ["predict", "--model", model, "--input", data, "--accept", "application/jsonlines", "--output", out], log)
    with open(out) as f:
        return [json.loads(line) for line in f if line.strip()]


class Case:
    def __init__(self, ml, work, dev, log):
        self.ml, self.work, self.dev, self.log = ml, work, dev, log
        self.failed = 0

    def path(self, name):
        return os.path.join(self.work, name)

    def train_both(self, algo, train, hps, extra=()):
        models, times = {}, {}
        for side, device in (("cpu", "cpu"), ("gpu", self.dev)):
            d = self.path(f"{algo}_{side}")
            cmd = self.ml + ["train", algo, "--train", train, "--model-dir", d, "--device", device]
            for h in hps:
                cmd += ["--hp", h]
            cmd += list(extra)
            _, times[side] = run(cmd, self.log)
            models[side] = d
        return models, times

    def report(self, name, rows, times, what, diff, ok):
        self.failed += 0 if ok else 1
        print(f"{name:28s} rows={rows:<9d} cpu={times.get('cpu', float('nan')):7.2f}s "
              f"gpu={times.get('gpu', float('nan')):7.2f}s  {what}={diff:.3g}  {'PASS' if ok else 'FAIL'}", flush=True)


def kmeans(c, rows, cols, k):
    data, test = c.path("blobs.pbr"), c.path("blobs_test.pbr")
    run(c.ml + ["data", "synth", "blobs", data, "--rows", str(rows), "--cols", str(cols), "--k", str(k), "--no-truth",
                "--seed", "7"], c.log)
    run(c.ml + ["data", "synth", "blobs", test, "--rows", "20000", "--cols", str(cols), "--k", str(k), "--no-truth",
                "--seed", "7", "--no-labels"], c.log)
    hps = [f"k={k}", f"feature_dim={cols}", "mini_batch_size=5000", "init_method=kmeans++", "epochs=2",
           "full_batch_lloyd_iterations=20"]
    models, times = c.train_both("kmeans", data, hps)
    pc = predictions(c.ml, models["cpu"], test, c.path("km_cpu.jsonl"), c.log)
    pg = predictions(c.ml, models["gpu"], test, c.path("km_gpu.jsonl"), c.log)
    same = sum(a["closest_cluster"] == b["closest_cluster"] for a, b in zip(pc, pg)) / max(1, len(pc))
    rel = max(abs(a["distance_to_cluster"] - b["distance_to_cluster"]) / max(1e-6, abs(a["distance_to_cluster"]))
              for a, b in zip(pc, pg))
    c.report("kmeans labels agree", rows, times, "fraction", same, same >= 0.999 and len(pc) == len(pg) > 0)
    c.report("kmeans distances", rows, times, "max_rel", rel, rel <= 1e-3)


def linear(c, rows, cols, task):
    data, test = c.path(f"lin_{task}.pbr"), c.path(f"lin_{task}_test.pbr")
    extra = ["--classes", "5"] if task == "multiclass" else []
    run(c.ml + ["data", "synth", "linear", data, "--rows", str(rows), "--cols", str(cols), "--task", task, "--noise",
                "0.5", "--seed", "3", "--no-truth"] + extra, c.log)
    run(c.ml + ["data", "synth", "linear", test, "--rows", "20000", "--cols", str(cols), "--task", task, "--noise",
                "0.5", "--seed", "3", "--no-truth"] + extra, c.log)
    ptype = {"binary": "binary_classifier", "multiclass": "multiclass_classifier", "regression": "regressor"}[task]
    hps = [f"predictor_type={ptype}", f"feature_dim={cols}", "mini_batch_size=1000", "epochs=3", "num_models=8",
           "early_stopping_patience=10"] + (["num_classes=5"] if task == "multiclass" else [])
    models, times = c.train_both("linear-learner", data, hps, ["--validation", test])
    pc = predictions(c.ml, models["cpu"], test, c.path(f"ll_{task}_cpu.jsonl"), c.log)
    pg = predictions(c.ml, models["gpu"], test, c.path(f"ll_{task}_gpu.jsonl"), c.log)
    labelled = bool(pc) and "predicted_label" in pc[0]
    same = (sum(a["predicted_label"] == b["predicted_label"] for a, b in zip(pc, pg)) / max(1, len(pc))
            if labelled else 1.0)
    key = "score"
    diff = max(max(abs(x - y) for x, y in zip(a[key], b[key])) if isinstance(a[key], list) else abs(a[key] - b[key])
               for a, b in zip(pc, pg))
    if labelled:
        c.report(f"linear {task} labels", rows, times, "fraction", same, same >= 0.995 and len(pc) == len(pg) > 0)
    c.report(f"linear {task} scores", rows, times, "max_abs", diff, diff <= 2e-2 and len(pc) == len(pg) > 0)


def pca(c, rows, cols, rank):
    data = c.path("low.pbr")
    run(c.ml + ["data", "synth", "lowrank", data, "--rows", str(rows), "--cols", str(cols), "--rank", str(rank),
                "--seed", "5", "--no-truth"], c.log)
    test = c.path("low_test.pbr")
    run(c.ml + ["data", "synth", "lowrank", test, "--rows", "20000", "--cols", str(cols), "--rank", str(rank),
                "--seed", "6", "--no-truth"], c.log)
    worst = 0.0
    for mode in ("regular", "randomized"):
        hps = [f"num_components={rank}", f"feature_dim={cols}", "mini_batch_size=5000", f"algorithm_mode={mode}"]
        models, times = c.train_both("pca", data, hps)
        pc = predictions(c.ml, models["cpu"], test, c.path("pca_cpu.jsonl"), c.log)
        pg = predictions(c.ml, models["gpu"], test, c.path("pca_gpu.jsonl"), c.log)
        # Components are defined up to sign: compare |projection| per component, relative to the
        # component's scale over the test rows.
        worst = 0.0
        for j in range(rank):
            a = [p["projection"][j] for p in pc]
            b = [p["projection"][j] for p in pg]
            sign = 1.0 if sum(x * y for x, y in zip(a, b)) >= 0 else -1.0
            scale = math.sqrt(sum(x * x for x in a) / max(1, len(a)))
            worst = max(worst, max(abs(x - sign * y) for x, y in zip(a, b)) / max(scale, 1e-12))
        c.report(f"pca {mode} projections", rows, times, "max_rel", worst, worst <= 1e-3)


def fm(c, rows):
    data, test = c.path("fm.pbr"), c.path("fm_test.pbr")
    args = ["--cols", "100000", "--fields", "39", "--zipf", "1.1", "--factors", "8", "--no-truth"]
    run(c.ml + ["data", "synth", "fm", data, "--rows", str(rows), "--seed", "1"] + args, c.log)
    run(c.ml + ["data", "synth", "fm", test, "--rows", "20000", "--seed", "2"] + args, c.log)
    for opt in ("sgd", "adam"):
        hps = ["feature_dim=100000", "num_factors=16", "predictor_type=regressor", "epochs=2", "mini_batch_size=1000",
               f"_optimizer={opt}"]
        models, times = c.train_both("factorization-machines", data, hps)
        pc = predictions(c.ml, models["cpu"], test, c.path("fm_cpu.jsonl"), c.log)
        pg = predictions(c.ml, models["gpu"], test, c.path("fm_gpu.jsonl"), c.log)
        ref = math.sqrt(sum(a["score"] ** 2 for a in pc) / max(1, len(pc)))
        diff = max(abs(a["score"] - b["score"]) for a, b in zip(pc, pg)) / max(ref, 1e-12)
        c.report(f"fm {opt} scores", rows, times, "max_abs/rms", diff, diff <= 1e-2 and len(pc) == len(pg) > 0)


def genotype(c, samples, variants):
    vcf = c.path("cohort.vcf.gz")
    run(c.ml + ["data", "synth", "genotypes", vcf, "--rows", str(samples), "--cols", str(variants), "--populations", "3",
                "--threads", "4", "--no-truth"], c.log)
    times, vals, vecs = {}, {}, {}
    for side, device in (("cpu", "cpu"), ("gpu", c.dev)):
        out = c.path(f"gpca_{side}")
        _, times[side] = run(c.ml + ["genotype", "pca", "--vcf", vcf, "--out", out, "--pcs", "5", "--device", device,
                                     "--no-loadings"], c.log)
        with open(out + ".eigenval") as f:
            vals[side] = [float(x) for x in f.read().split()]
        with open(out + ".eigenvec") as f:
            rows = [line.split() for line in f if not line.startswith("#")]
        vecs[side] = [[float(x) for x in r[1:]] for r in rows]
    ev = max(abs(a - b) / abs(a) for a, b in zip(vals["cpu"], vals["gpu"]))
    c.report("genotype pca eigenvalues", samples, times, "max_rel", ev, ev <= 1e-4)
    worst = 0.0
    for j in range(len(vals["cpu"])):
        a = [r[j] for r in vecs["cpu"]]
        b = [r[j] for r in vecs["gpu"]]
        dot = sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
        worst = max(worst, 1 - abs(dot))
    c.report("genotype pca eigenvectors", samples, times, "1-|cos|", worst, worst <= 1e-4)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlforge", required=True, help="command prefix, e.g. 'gpu-bundle/run mlforge'")
    ap.add_argument("--work", required=True)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every case's row count")
    ap.add_argument("--gpu-device", default="gpu", help="device for the second side (cpu: self-check)")
    ap.add_argument("--log", default=None, help="full command log (default WORK/e2e.log)")
    ap.add_argument("--only", default="", help="comma-separated subset: kmeans,linear,pca,fm,genotype")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    ml = shlex.split(a.mlforge)
    with open(a.log or os.path.join(a.work, "e2e.log"), "w") as log:
        c = Case(ml, a.work, a.gpu_device, log)
        s = lambda n: max(1000, int(n * a.scale))
        cases = [("kmeans", lambda: kmeans(c, s(1_000_000), 64, 20)),
                 ("linear", lambda: linear(c, s(500_000), 100, "binary")),
                 ("linear", lambda: linear(c, s(300_000), 50, "multiclass")),
                 ("linear", lambda: linear(c, s(300_000), 50, "regression")),
                 ("pca", lambda: pca(c, s(500_000), 100, 10)),
                 ("fm", lambda: fm(c, s(200_000))),
                 ("genotype", lambda: genotype(c, s(2000), 20000))]
        only = set(filter(None, a.only.split(",")))
        for name, fn in cases:
            if only and name not in only:
                continue
            try:
                fn()
            except Exception as e:  # one broken case must not hide the others
                c.failed += 1
                print(f"{name:28s} ERROR {e}", flush=True)
    print(f"# e2e: {c.failed} failure(s)")
    sys.exit(1 if c.failed else 0)


if __name__ == "__main__":
    main()
