#!/usr/bin/env python3
"""Benchmark: mlforge PCA (end to end from a recordIO file, through the CLI) against scikit-learn's PCA
(svd_solver="covariance_eigh" and "randomized", fit on the in-memory array) and scikit-learn-intelex
when it is importable, plus numpy's SGEMM rate on this machine as the ceiling for the covariance pass.

Data, per case (default 1,000,000 x 100 with 10 components and 100,000 x 1,024 with 256): float32
rows x = mean + Z diag(sigma) W^T + 0.1 * noise, W a random rotation, sigma_j = 10 / (1 + j)^0.5 (a slowly
decaying spectrum, the hard case for randomized methods), mean = 50 + U(-10, 10) per column; generated
with numpy (seeded) in chunks, written once as dense recordIO-protobuf for mlforge (records as the
SageMaker SDK writes them, no label; flushed and read once before timing) and kept as one float32 array
for scikit-learn (which then computes in float32, as a user passing float32 gets; a float64 copy too).

Runs (same thread count: mlforge --threads N; OMP_NUM_THREADS / OPENBLAS_NUM_THREADS and threadpoolctl for
numpy and scikit-learn; wall times are medians of --repeats runs):
  mlforge regular      train pca algorithm_mode=regular: process wall time, the covariance pass ("pass 0
                       (covariance): ... T s" in its log: streaming the file and accumulating X^T X) and
                       the eigendecomposition time;
  mlforge randomized   algorithm_mode=randomized, SageMaker's single pass (l = k + max(10, k)), and with
                       power_iterations=2;
  scikit-learn         PCA(n_components=k, svd_solver="covariance_eigh") and PCA(svd_solver="randomized",
                       random_state=0, iterated_power="auto"): fit only, on the float32 array; and
                       covariance_eigh on a float64 copy (float32 input makes scikit-learn compute in
                       float32, and its covariance solver then loses most digits to the large mean);
  scikit-learn-intelex sklearnex.decomposition.PCA(svd_solver="full") when importable ("not installed"
                       otherwise).
Accuracy of every result against the float64 reference (eigh of the centred scatter accumulated in float64):
the largest relative error of the top-k singular values, and the variance captured by the k components
(trace(V^T C V) over the sum of the top k eigenvalues; 1 = the optimum).

Rates: the covariance pass is counted as 2 n d^2 flops (a plain GEMM X^T X; mlforge runs a symmetric rank
update, which does half of that work, so its own arithmetic rate is half the figure), against numpy's float32
A.T @ B with A, B distinct m x d blocks (SGEMM; m chosen for ~2e10 flops) on the same threads. numpy's
A.T @ A (which numpy sends to SYRK) is shown too, counted the same way.

  py=$(bash scripts/pyenv.sh)
  $py bench/pca_vs_sklearn.py --mlforge build/cli/mlforge --threads 2 --out bench/results/pca_vs_sklearn_$(date +%F).txt
  $py bench/pca_vs_sklearn.py --mlforge build/cli/mlforge --rows 20000 --cols 64 --components 8 --repeats 1
"""
import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mlforge", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rows", default="1000000,100000", help="rows per case, comma-separated")
    ap.add_argument("--cols", default="100,1024", help="columns per case, comma-separated")
    ap.add_argument("--components", default="10,256", help="components per case, comma-separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu", "auto"], help="mlforge --device")
    ap.add_argument("--skip-randomized-sklearn", action="store_true",
                    help="leave out scikit-learn's randomized solver (the slowest run at large k)")
    ap.add_argument("--skip-float64", action="store_true",
                    help="leave out scikit-learn's covariance solver on a float64 copy of the data")
    ap.add_argument("--workdir", default="", help="where the recordIO files go (default: a temporary folder)")
    ap.add_argument("--out", default="", help="also write the raw log here")
    args = ap.parse_args()
    lists = [[int(v) for v in s.split(",") if v] for s in (args.rows, args.cols, args.components)]
    if len({len(l) for l in lists}) != 1:
        ap.error("--rows, --cols and --components need the same number of comma-separated values")
    args.cases = list(zip(*lists))
    return args


ARGS = parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402  (after the thread variables)
import sklearn  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from mlforge_files import append_recordio_dense as write_recordio, read_named_arrays  # noqa: E402

LINES = []


def say(msg=""):
    print(msg, flush=True)
    LINES.append(msg)


def machine_info():
    info = {"nproc": str(os.cpu_count())}
    try:
        with open("/proc/cpuinfo") as f:
            info["CPU model (/proc/cpuinfo)"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")),
                                                     "?")
        out = subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout
        for line in out.splitlines():
            key, _, val = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "L2 cache",
                               "L3 cache", "Hypervisor vendor"):
                info["lscpu " + key.strip()] = val.strip()
        flags = next((l for l in out.splitlines() if l.startswith("Flags")), "")
        info["AVX2 / AVX-512"] = f"{'yes' if 'avx2' in flags else 'no'} / {'yes' if 'avx512f' in flags else 'no'}"
    except (OSError, StopIteration):
        pass
    try:
        with open("/proc/meminfo") as f:
            info["MemTotal"] = f.readline().split(":")[1].strip()
    except OSError:
        pass
    info["load average at start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return info


# ---------------------------------------------------------------------------------------------
# Data: dense float32 recordIO, feature-only records (tests/mlforge_files.py's writer).


def make_data(n, d, path, seed=1, chunk=100_000):
    """Returns (x float32 n x d, float64 mean, float64 centred scatter) and writes `path`."""
    rng = np.random.default_rng(seed)
    w, _ = np.linalg.qr(rng.standard_normal((d, d)))
    sigma = 10.0 / np.sqrt(1.0 + np.arange(d))
    mean = 50.0 + rng.uniform(-10, 10, d)
    ws = (w * sigma[None, :]).T.astype(np.float32)  # rows of Z diag(sigma) W^T = z @ ws
    x = np.empty((n, d), np.float32)
    with open(path, "wb") as f:
        for s in range(0, n, chunk):
            m = min(chunk, n - s)
            c = rng.standard_normal((m, d), dtype=np.float32) @ ws
            c += 0.1 * rng.standard_normal((m, d), dtype=np.float32)
            c += mean.astype(np.float32)
            x[s:s + m] = c
            write_recordio(f, c)
    # float64 reference: mean, then the centred scatter accumulated in float64 chunks.
    mu = np.zeros(d)
    for s in range(0, n, chunk):
        mu += x[s:s + chunk].sum(axis=0, dtype=np.float64)
    mu /= n
    scatter = np.zeros((d, d))
    for s in range(0, n, chunk):
        y = x[s:s + chunk].astype(np.float64) - mu
        scatter += y.T @ y
    return x, mu, scatter


def warm_file(path):
    os.sync()
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


# ---------------------------------------------------------------------------------------------
def accuracy(s, v, ref_s, ref_w, scatter):
    """(max relative error of the top-k singular values, captured variance fraction). s, v any order."""
    order = np.argsort(-np.nan_to_num(np.asarray(s, np.float64), nan=-1.0))
    s = np.asarray(s, np.float64)[order]
    v = np.asarray(v, np.float64)[:, order]
    k = len(s)
    s_err = float(np.max(np.abs(s - ref_s[:k]) / ref_s[:k]))
    captured = float(np.trace(v.T @ scatter @ v) / ref_w[:k].sum())
    return s_err, captured


def run_mlforge(pbr, model_dir, d, k, hps):
    cmd = [ARGS.mlforge, "--threads", str(ARGS.threads), "train", "pca", "--train", pbr, "--model-dir", model_dir,
           "--device", ARGS.device, "--hp", f"feature_dim={d}", "--hp", f"num_components={k}"]
    cmd += [a for kv in hps for a in ("--hp", kv)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        print(p.stdout)
        raise SystemExit(f"mlforge failed ({p.returncode}): {' '.join(cmd)}")
    passes = [(m.group(1), float(m.group(2))) for m in
              re.finditer(r"pass \d+ \(([a-z ]+)\): \d+ batch\(es\), \d+ row\(s\) here, \d+ in all, ([0-9.]+) s", p.stdout)]
    m = re.search(r"eigendecomposition of the \d+ x \d+ covariance: ([0-9.]+) s", p.stdout)
    eig = float(m.group(1)) if m else float("nan")
    m = re.search(r"PCA training finished in ([0-9.]+) s", p.stdout)
    inner = float(m.group(1)) if m else float("nan")
    m = re.search(r"device: (\w+)", p.stdout)
    device = m.group(1) if m else "?"
    arrays = read_named_arrays(os.path.join(model_dir, "model_algo-1"))
    return {"wall": wall, "passes": passes, "eig": eig, "inner": inner, "device": device,
            "s": arrays["s"], "v": arrays["v"], "log": [l for l in p.stdout.splitlines() if "pass " in l]}


def timed(fn, repeats):
    results = []
    for _ in range(repeats):
        with threadpool_limits(ARGS.threads):
            t0 = time.perf_counter()
            out = fn()
            results.append((time.perf_counter() - t0, out))
    return statistics.median(r[0] for r in results), [r[0] for r in results], results[-1][1]


def sgemm_rates(x, d):
    """numpy float32 GFLOP/s (2 m d^2 flops) for A.T @ B (SGEMM) and A.T @ A (numpy uses SYRK)."""
    m = int(min(len(x) // 2, max(4096, 2e10 / (2 * d * d))))
    a, b = np.ascontiguousarray(x[:m]), np.ascontiguousarray(x[m:2 * m])
    flops = 2.0 * m * d * d
    with threadpool_limits(ARGS.threads):
        a.T @ b  # warm-up
        t_gemm = statistics.median(_time(lambda: a.T @ b) for _ in range(max(3, ARGS.repeats)))
        t_syrk = statistics.median(_time(lambda: a.T @ a) for _ in range(max(3, ARGS.repeats)))
    return m, flops / t_gemm / 1e9, flops / t_syrk / 1e9


def _time(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_case(n, d, k, work):
    say(f"\n=== {n} x {d}, {k} components, {ARGS.threads} thread(s), median of {ARGS.repeats} run(s) ===")
    pbr = os.path.join(work, f"pca_{n}x{d}.pbr")
    t0 = time.perf_counter()
    x, mu, scatter = make_data(n, d, pbr)
    warm_file(pbr)
    ref_w = np.linalg.eigvalsh(scatter)[::-1]
    ref_s = np.sqrt(np.maximum(ref_w, 0))
    say(f"data: {os.path.getsize(pbr) / 1e9:.2f} GB recordIO, generated with the float64 reference in "
        f"{time.perf_counter() - t0:.1f} s; exact top singular values {np.array2string(ref_s[:3], precision=2)} ... "
        f"s_{k} = {ref_s[k - 1]:.2f}, s_{k + 1} = {ref_s[k]:.2f}")
    rows = []

    m, gemm, syrk = sgemm_rates(x, d)
    say(f"numpy float32 on {ARGS.threads} thread(s), {m} x {d} blocks, 2 m d^2 flops: A.T @ B (SGEMM) "
        f"{gemm:.1f} GFLOP/s; A.T @ A (numpy -> SYRK, same count) {syrk:.1f} GFLOP/s")

    # mlforge
    mdir = os.path.join(work, "model")
    for label, hps in (("mlforge regular", ["algorithm_mode=regular"]),
                       ("mlforge randomized (single pass)", ["algorithm_mode=randomized"]),
                       ("mlforge randomized, power_iterations=2", ["algorithm_mode=randomized", "power_iterations=2"])):
        runs = [run_mlforge(pbr, mdir, d, k, hps) for _ in range(ARGS.repeats)]
        wall = statistics.median(r["wall"] for r in runs)
        inner = statistics.median(r["inner"] for r in runs)
        first_pass = statistics.median(r["passes"][0][1] for r in runs)
        all_passes = statistics.median(sum(p[1] for p in r["passes"]) for r in runs)
        s_err, cap = accuracy(runs[-1]["s"], runs[-1]["v"], ref_s, ref_w, scatter)
        detail = f"pass 0 ({runs[-1]['passes'][0][0]}) {first_pass:.3f} s"
        if len(runs[-1]["passes"]) > 1:
            detail += f", all {len(runs[-1]['passes'])} passes {all_passes:.3f} s"
        if "regular" in label:
            eig = statistics.median(r["eig"] for r in runs)
            rate = 2.0 * n * d * d / first_pass / 1e9
            detail += (f", eigendecomposition {eig:.3f} s; covariance pass {rate:.1f} GFLOP/s counting 2 n d^2 "
                       f"(= {rate / gemm:.0%} of numpy SGEMM, {rate / syrk:.0%} of numpy A.T @ A; the symmetric rank "
                       f"update does n d^2, so its own rate is {rate / 2:.1f} GFLOP/s)")
        say(f"{label}: wall {wall:.3f} s (process; runs {[round(r['wall'], 3) for r in runs]}), training "
            f"{inner:.3f} s (log), {detail}; device {runs[-1]['device']}; s error {s_err:.2e}, captured {cap:.6f}")
        rows.append((label, wall, first_pass, s_err, cap))

    # scikit-learn
    solver = "covariance_eigh" if tuple(int(p) for p in sklearn.__version__.split(".")[:2]) >= (1, 5) else "full"
    fits = [(f"scikit-learn PCA({solver})", lambda: PCA(n_components=k, svd_solver=solver).fit(x))]
    x64 = None
    if not ARGS.skip_float64:
        # On float32 input scikit-learn computes in float32; its covariance solver forms X^T X and then
        # subtracts n mean mean^T, which cancels most digits when the mean is large against the spread.
        t0 = time.perf_counter()
        x64 = x.astype(np.float64)
        say(f"float64 copy for scikit-learn: {time.perf_counter() - t0:.2f} s (not in the fit times)")
        fits.append((f"scikit-learn PCA({solver}), float64 copy",
                     lambda: PCA(n_components=k, svd_solver=solver).fit(x64)))
    if not ARGS.skip_randomized_sklearn:
        fits.append(("scikit-learn PCA(randomized)",
                     lambda: PCA(n_components=k, svd_solver="randomized", random_state=0).fit(x)))
    try:
        from sklearnex.decomposition import PCA as ExPCA
        fits.append(("scikit-learn-intelex PCA(full)", lambda: ExPCA(n_components=k, svd_solver="full").fit(x)))
        intelex = "installed"
    except ImportError as e:
        intelex = f"not installed ({e})"
    for label, fn in fits:
        med, all_t, model = timed(fn, ARGS.repeats)
        s_err, cap = accuracy(model.singular_values_, model.components_.T, ref_s, ref_w, scatter)
        say(f"{label}: fit {med:.3f} s (runs {[round(t, 3) for t in all_t]}); s error {s_err:.2e}, captured {cap:.6f}")
        rows.append((label, med, float("nan"), s_err, cap))
    if intelex != "installed":
        say(f"scikit-learn-intelex: {intelex}")
        rows.append(("scikit-learn-intelex", float("nan"), float("nan"), float("nan"), float("nan")))

    say(f"\n| {n} x {d}, k={k} | wall s (median) | first pass s | s max rel. error | variance captured |")
    say("|---|---|---|---|---|")
    for label, wall, fp, e, c in rows:
        if wall != wall:
            say(f"| {label} | not installed | - | - | - |")
            continue
        say(f"| {label} | {wall:.3f} | {'-' if fp != fp else f'{fp:.3f}'} | {e:.2e} | {c:.6f} |")
    base = {r[0]: r[1] for r in rows}
    ml = base["mlforge regular"]
    for label in [r[0] for r in rows if r[0].startswith("scikit-learn") and r[1] == r[1]]:
        say(f"ratio {label} / mlforge regular (process): {base[label] / ml:.2f}x")
    if "scikit-learn PCA(randomized)" in base:
        for label in ("mlforge randomized (single pass)", "mlforge randomized, power_iterations=2"):
            say(f"ratio scikit-learn PCA(randomized) / {label}: {base['scikit-learn PCA(randomized)'] / base[label]:.2f}x")
    del x, x64, scatter


def main():
    work_tmp = tempfile.TemporaryDirectory(prefix="mlforge-pca-bench-")
    work = ARGS.workdir or work_tmp.name
    os.makedirs(work, exist_ok=True)
    say(f"mlforge PCA vs scikit-learn, {datetime.datetime.now().isoformat(timespec='seconds')}")
    for key, val in machine_info().items():
        say(f"  {key}: {val}")
    say(f"  python {platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}")
    blas = "; ".join(f"{i.get('internal_api')} {i.get('version')} ({i.get('threading_layer', '?')})"
                     for i in threadpool_info())
    say(f"  BLAS / OpenMP (threadpoolctl): {blas}")
    info = subprocess.run([ARGS.mlforge, "info"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    say("  mlforge info: " + " | ".join(l.strip() for l in info.splitlines()[:6]))
    say(f"  threads {ARGS.threads} (mlforge --threads; OMP_NUM_THREADS + threadpoolctl for numpy / scikit-learn); "
        f"mlforge --device {ARGS.device}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    t0 = time.perf_counter()
    for n, d, k in ARGS.cases:
        bench_case(n, d, k, work)
    say(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if ARGS.out:
        with open(ARGS.out, "w") as f:
            f.write("\n".join(LINES) + "\n")
        print(f"report written to {ARGS.out}")


if __name__ == "__main__":
    main()
