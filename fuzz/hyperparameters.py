#!/usr/bin/env python3
"""Random hyperparameters against `mlforge train`: every run must exit 0 with a model or 2 with a
one-line reason, never crash (a signal, exit 1), hang (120 s) or leave a model behind a failure.

Each run trains one algorithm on a small synthetic set (3,000 rows) with its required
hyperparameters plus 1-3 others drawn from the C++ tables (`mlforge._core.hyperparameters`, so
new ones are covered as they land), each set to an edge value: the range's ends and just past
them, 0, -1, nan, inf, 1e400, 2^31 and 2^63, a float in an integer, the wrong case of a choice,
'', JSON lists, non-ASCII text. Linear learner runs draw the predictor type too.

usage: .venv-py/bin/python fuzz/hyperparameters.py build/cli/mlforge RUNS SEED WORKDIR
Prints each failing run (its command's hyperparameters and the last lines of its output).
"""
import json
import os
import random
import subprocess
import sys
import time

import mlforge._core as core

MF = sys.argv[1]
N = int(sys.argv[2])
seed = int(sys.argv[3])
W = sys.argv[4]
rng = random.Random(seed)
os.makedirs(W, exist_ok=True)


def synth(kind, path, *extra, cols="10"):
    if not os.path.exists(path):
        subprocess.run([MF, "--log-level", "warn", "data", "synth", kind, path, "--rows", "3000", "--cols", cols,
                        "--no-truth", *extra], check=True)


synth("blobs", f"{W}/blobs.pbr", "--no-labels")
synth("linear", f"{W}/bin.pbr", "--task", "binary")
synth("linear", f"{W}/mc.pbr", "--task", "multiclass")
synth("linear", f"{W}/reg.pbr", "--task", "regression")
synth("fm", f"{W}/fm.pbr", cols="200")
BASE = {
    "kmeans": (f"{W}/blobs.pbr", {"feature_dim": "10", "k": "4"}),
    "pca": (f"{W}/blobs.pbr", {"feature_dim": "10", "num_components": "3"}),
    "linear-learner": (f"{W}/bin.pbr", {"feature_dim": "10", "predictor_type": "binary_classifier"}),
    "factorization-machines": (f"{W}/fm.pbr", {"feature_dim": "200", "num_factors": "4",
                                               "predictor_type": "regressor"}),
}
LL_DATA = {"binary_classifier": f"{W}/bin.pbr", "multiclass_classifier": f"{W}/mc.pbr", "regressor": f"{W}/reg.pbr"}


def edge(spec):
    """An edge value for one hyperparameter of the C++ table."""
    t, lo, hi = spec["type"], spec["min"], spec["max"]
    cands = ["", "nan", "inf", "-inf", "-1", "0", "1e400", "99999999999999999999", "abc", "auto", " 1", "1 ", "0x10",
             "1e3", "\u00e9", "true", "[]", "[1,2]", "-0"]
    if lo is not None:
        cands += [repr(lo), repr(lo - 1), repr(lo - 1e-9), str(int(lo)) if lo == int(lo) else repr(lo)]
    if hi is not None:
        cands += [repr(hi), repr(hi + 1), str(int(hi)) if hi == int(hi) else repr(hi)]
    if spec["choices"]:
        cands += list(spec["choices"]) + [spec["choices"][0].upper()]
    if t == "int":
        cands += [str(rng.randint(-5, 100)), "2147483648", "9223372036854775808", "1.5", "3000", "3001", "100000"]
    if t == "float":
        cands += [repr(rng.uniform(-1, 2)), "1e-45", "1e38", "3.4e39", "5e-324"]
    if t == "bool":
        cands += ["True", "FALSE", "1", "0", "yes"]
    return rng.choice(cands)


bad = 0
for it in range(N):
    algo = rng.choice(list(BASE))
    data, hps = BASE[algo]
    hps = dict(hps)
    table = core.hyperparameters(algo)
    if algo == "linear-learner":
        hps["predictor_type"] = rng.choice(list(LL_DATA))
        data = LL_DATA[hps["predictor_type"]]
        if hps["predictor_type"] == "multiclass_classifier":
            hps["num_classes"] = "3"
    for spec in rng.sample(table, rng.randint(1, 3)):
        hps[spec["name"]] = edge(spec)
    md = f"{W}/m{it}"
    cmd = [MF, "--threads", "2", "train", algo, "--train", data, "--validation", data, "--model-dir", md,
           "--failure-file", f"{W}/fail"]
    for k, v in hps.items():
        cmd += ["--hp", f"{k}={v}"]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        rc, out = p.returncode, p.stderr + p.stdout
    except subprocess.TimeoutExpired:
        rc, out = "TIMEOUT", ""
    dt = time.time() - t0
    has_model = os.path.exists(f"{md}/model_algo-1")
    ok = (rc == 0 and has_model) or (rc == 2 and not has_model and "Traceback" not in out)
    if not ok:
        bad += 1
        tail = "\n".join(out.strip().splitlines()[-4:])
        print(f"### run {it}: exit {rc} after {dt:.1f} s, {algo}, model {has_model}, {json.dumps(hps)}\n{tail}",
              flush=True)
    elif dt > 30:
        print(f"### slow run {it}: {dt:.1f} s, {algo}, {json.dumps(hps)}", flush=True)
    subprocess.run(["rm", "-rf", md])
print(f"{N} runs (seed {seed}): {bad} failing")
