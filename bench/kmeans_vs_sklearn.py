#!/usr/bin/env python3
"""CPU benchmark: mlforge k-means against scikit-learn's KMeans(algorithm="lloyd") and MiniBatchKMeans.

Same data (one matrix: mlforge reads a recordIO-protobuf copy, numpy the CSV it came from), same
thread count (mlforge --threads N; OMP_NUM_THREADS / OPENBLAS_NUM_THREADS and threadpoolctl for
scikit-learn), same k and the same number of Lloyd iterations. Per data set:

  full batch, Lloyd, fixed iterations (tol 0 on both sides, so both run all of them unless the
  partition stops changing; the iterations actually run are reported):
    mlforge      train kmeans, init_method=kmeans++, full_batch_lloyd_iterations=I, full_batch_lloyd_tol=0
                 (this also runs SageMaker's streaming pass and its local Lloyd reduction first)
    mlforge      the same with extra_center_factor=1: k-means++ seeds k centers, no reduction, then
                 Lloyd (scikit-learn's algorithm; SageMaker's default streams k * 10 centers first)
    scikit-learn KMeans(k, algorithm="lloyd", init="k-means++", n_init=1, max_iter=I, tol=0)
  time per Lloyd iteration:
    mlforge      --log-level debug logs one line per full pass; this script reads stderr as it comes
                 and takes (arrival of the last pass line - arrival of the first) / (passes - 1)
    scikit-learn KMeans(init=<fixed centers>, n_init=1, max_iter=I, tol=0): fit time / n_iter_
  streaming / mini-batch, one epoch:
    mlforge      SageMaker's defaults (mini_batch_size 5000, epochs 1, extra_center_factor auto,
                 local Lloyd reduction), init_method=kmeans++
    scikit-learn MiniBatchKMeans(k, batch_size=5000, max_iter=1 (one epoch), n_init=1)

Wall time is the median of --repeats runs (mlforge: the whole process, as a user sees it, and the
"k-means training finished in" time from its log); inertia is recomputed here in float64 from each
result's centers on the same matrix.
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
    ap.add_argument("--sizes", default="200000x100x100",
                    help="comma-separated NxDxK synthetic blob sets (default 200000x100x100)")
    ap.add_argument("--cluster-std", type=float, default=6.0,
                    help="blobs: standard deviation (overlapping clusters, so Lloyd does not converge early)")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--genomes", default="", help="the 1000genomes folder (adds the 1126 x 22220 matrix, k=5)")
    ap.add_argument("--workdir", default="", help="where data files go (default: a temporary folder)")
    ap.add_argument("--out", default="", help="also write the report here")
    ap.add_argument("--skip-streaming", action="store_true",
                    help="leave out the streaming / MiniBatchKMeans rows (Lloyd iterations only)")
    return ap.parse_args()


ARGS = parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402  (after the thread variables)
import sklearn  # noqa: E402
from sklearn.cluster import KMeans, MiniBatchKMeans  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "kmeans"))
from sklearn_compare import nearest, read_ndarray_list  # noqa: E402

LINES = []


def say(msg=""):
    print(msg, flush=True)
    LINES.append(msg)


def machine_info():
    info = {}
    try:
        out = subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout
        for line in out.splitlines():
            key, _, val = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "Socket(s)",
                               "L2 cache", "L3 cache", "Hypervisor vendor"):
                info[key.strip()] = val.strip()
        flags = next((l for l in out.splitlines() if l.startswith("Flags")), "")
        info["AVX-512"] = "yes" if "avx512f" in flags else "no"
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            info["MemTotal"] = f.readline().split(":")[1].strip()
    except OSError:
        pass
    info["load average at start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return info


# The one line per full pass that ends it (other debug lines may name the pass too).
PASS_LINE = re.compile(r"full-batch Lloyd pass \d+: msd")


def run_mlforge(train, model_dir, k, d, hps, env=None):
    """One `mlforge train kmeans` run at debug log level. stderr is read line by line as it arrives,
    so the arrival times of the "full-batch Lloyd pass i" lines time each Lloyd iteration (the log
    lines themselves carry whole seconds only)."""
    cmd = [ARGS.mlforge, "--log-level", "debug", "--threads", str(ARGS.threads), "train", "kmeans",
           "--train", train, "--model-dir", model_dir, "--device", "cpu", "--hp", f"k={k}",
           "--hp", f"feature_dim={d}", "--hp", "init_method=kmeans++", "--hp", "seed=0"]
    cmd += [a for kv in hps for a in ("--hp", kv)]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                         env=None if env is None else {**os.environ, **env})
    lines, pass_times = [], []
    for line in p.stdout:
        if PASS_LINE.search(line) and not pass_times_done(lines):
            pass_times.append(time.perf_counter())
        lines.append(line)
    rc = p.wait()
    wall = time.perf_counter() - t0
    out = "".join(lines)
    if rc != 0:
        print(out)
        raise SystemExit(f"mlforge failed ({rc}): {' '.join(cmd)}")
    m = re.search(r"k-means training finished in ([0-9.]+) s", out)
    inner = float(m.group(1)) if m else float("nan")
    m = re.search(r"full-batch Lloyd trial 0 .*?: (\d+) update", out)
    updates = int(m.group(1)) if m else 0
    m = re.search(r"streaming phase: \d+ rows in ([0-9.]+) s", out)
    stream_s = float(m.group(1)) if m else float("nan")
    # pass i ends i assignment passes and i center updates after pass 0.
    per_iter = ((pass_times[-1] - pass_times[0]) / (len(pass_times) - 1)) if len(pass_times) > 1 else float("nan")
    centers = read_ndarray_list(os.path.join(model_dir, "model_algo-1"))[0][1]
    m = re.search(r"Hamerly bounds settled ([0-9.]+)% of the row visits", out)
    settled = float(m.group(1)) if m else float("nan")
    return wall, inner, updates, stream_s, centers, per_iter, settled


def pass_times_done(lines):
    """True once trial 0 of the full-batch phase has ended (only its passes are timed)."""
    return any("full-batch Lloyd trial 0" in l for l in lines)


def median_runs(fn, repeats):
    results = [fn() for _ in range(repeats)]
    return results, statistics.median(r[0] for r in results)


def inertia(x, centers):
    return float(nearest(x, centers)[1].sum())


def bench_dataset(name, x, pbr, k, work):
    n, d = x.shape
    iters, reps = ARGS.iterations, ARGS.repeats
    say(f"\n=== {name}: n={n} d={d} k={k}, {ARGS.threads} thread(s), {iters} Lloyd iterations, "
        f"median of {reps} runs ===")
    rows = []
    mdir = os.path.join(work, "model")
    full_hps = [f"full_batch_lloyd_iterations={iters}", "full_batch_lloyd_tol=0"]

    # --- mlforge full batch (whole process) and the 1-iteration twin for the per-iteration time.
    runs, wall = median_runs(lambda: run_mlforge(pbr, mdir, k, d, full_hps), reps)
    inner = statistics.median(r[1] for r in runs)
    updates, stream_s = runs[0][2], statistics.median(r[3] for r in runs)
    ml_inertia = inertia(x, runs[0][4])
    ml_per_iter = statistics.median(r[5] for r in runs)
    say(f"mlforge full batch: wall {wall:.3f} s (process), {inner:.3f} s (logged training time), "
        f"{updates} Lloyd update(s) after the streaming pass ({stream_s:.3f} s) and the local Lloyd reduction; "
        f"{ml_per_iter * 1e3:.1f} ms per Lloyd iteration (arrival times of the pass log lines); "
        f"inertia {ml_inertia:.7g}; Hamerly bounds settled {runs[0][6]:.1f}% of the row visits; "
        f"all runs (s): {[round(r[0], 3) for r in runs]}")
    rows.append(("mlforge full-batch Lloyd", wall, ml_per_iter, updates, ml_inertia))

    # --- the same without the bounds (MLFORGE_KMEANS_BOUNDS=off): every pass computes every row's
    # distance to every center, as scikit-learn's lloyd does.
    runs0, wall0 = median_runs(lambda: run_mlforge(pbr, mdir, k, d, full_hps, {"MLFORGE_KMEANS_BOUNDS": "off"}),
                               reps)
    ml0_inertia = inertia(x, runs0[0][4])
    ml0_per_iter = statistics.median(r[5] for r in runs0)
    say(f"mlforge full batch without bounds (MLFORGE_KMEANS_BOUNDS=off): wall {wall0:.3f} s (process), "
        f"{runs0[0][2]} Lloyd update(s); {ml0_per_iter * 1e3:.1f} ms per Lloyd iteration; inertia "
        f"{ml0_inertia:.7g}; all runs (s): {[round(r[0], 3) for r in runs0]}")
    rows.append(("mlforge full-batch Lloyd, no bounds", wall0, ml0_per_iter, runs0[0][2], ml0_inertia))

    # --- the same with extra_center_factor=1: k-means++ seeds k centers (from the first mini-batch),
    # one streaming pass, no local Lloyd reduction, then the full Lloyd iterations: scikit-learn's
    # algorithm (k-means++ then Lloyd) without SageMaker's k * 10 streaming centers.
    runs1, wall1 = median_runs(lambda: run_mlforge(pbr, mdir, k, d, full_hps + ["extra_center_factor=1"]), reps)
    ml1_inertia = inertia(x, runs1[0][4])
    ml1_per_iter = statistics.median(r[5] for r in runs1)
    say(f"mlforge full batch, extra_center_factor=1: wall {wall1:.3f} s (process), {runs1[0][2]} Lloyd update(s); "
        f"inertia {ml1_inertia:.7g}; all runs (s): {[round(r[0], 3) for r in runs1]}")
    rows.append(("mlforge full-batch Lloyd, extra_center_factor=1", wall1, ml1_per_iter, runs1[0][2], ml1_inertia))

    # --- scikit-learn KMeans (lloyd), k-means++ init, fixed iterations.
    def sk_full():
        with threadpool_limits(ARGS.threads):
            t0 = time.perf_counter()
            km = KMeans(n_clusters=k, algorithm="lloyd", init="k-means++", n_init=1, max_iter=iters, tol=0.0,
                        random_state=0).fit(x)
            return time.perf_counter() - t0, km
    runs, sk_wall = median_runs(sk_full, reps)
    sk_km = runs[0][1]
    sk_inertia = inertia(x, sk_km.cluster_centers_)
    # per-iteration: Lloyd only, from fixed centers (the first k rows) so no seeding is timed; with
    # algorithm="elkan" as well (Elkan's bounds), the fair peer of mlforge's Hamerly bounds.
    init = np.ascontiguousarray(x[:k])

    def sk_from_fixed_centers(algorithm):
        def fit():
            with threadpool_limits(ARGS.threads):
                t0 = time.perf_counter()
                km = KMeans(n_clusters=k, algorithm=algorithm, init=init, n_init=1, max_iter=iters, tol=0.0).fit(x)
                return time.perf_counter() - t0, km.n_iter_
        fixed_runs, seconds = median_runs(fit, reps)
        return fixed_runs[0][1], seconds, seconds / max(fixed_runs[0][1], 1)

    l_iters, lt, sk_per_iter = sk_from_fixed_centers("lloyd")
    say(f"scikit-learn KMeans(lloyd, k-means++, n_init=1, max_iter={iters}, tol=0): wall {sk_wall:.3f} s, "
        f"{sk_km.n_iter_} iteration(s), inertia {sk_inertia:.7g}; Lloyd only from fixed centers: {lt:.3f} s for "
        f"{l_iters} iteration(s) -> {sk_per_iter * 1e3:.1f} ms per iteration; all runs (s): "
        f"{[round(r[0], 3) for r in runs]}")
    rows.append(("scikit-learn KMeans(lloyd)", sk_wall, sk_per_iter, sk_km.n_iter_, sk_inertia))
    e_iters, et, sk_elkan_per_iter = sk_from_fixed_centers("elkan")
    say(f"scikit-learn KMeans(elkan) from the same fixed centers: {et:.3f} s for {e_iters} iteration(s) -> "
        f"{sk_elkan_per_iter * 1e3:.1f} ms per iteration")
    rows.append(("scikit-learn KMeans(elkan), Lloyd only", float("nan"), sk_elkan_per_iter, e_iters, float("nan")))

    # --- streaming: mlforge SageMaker defaults vs MiniBatchKMeans, one epoch.
    if not ARGS.skip_streaming:
        runs, ml_mb_wall = median_runs(lambda: run_mlforge(pbr, mdir, k, d, []), reps)
        ml_mb_inner = statistics.median(r[1] for r in runs)
        ml_mb_inertia = inertia(x, runs[0][4])
        say(f"mlforge streaming (SageMaker defaults, 1 epoch, mini_batch_size 5000): wall {ml_mb_wall:.3f} s "
            f"(process), {ml_mb_inner:.3f} s (logged), inertia {ml_mb_inertia:.7g}")
        rows.append(("mlforge streaming (SageMaker)", ml_mb_wall, float("nan"), 1, ml_mb_inertia))
        bs = min(5000, n)

        def sk_mb():
            with threadpool_limits(ARGS.threads):
                t0 = time.perf_counter()
                km = MiniBatchKMeans(n_clusters=k, batch_size=bs, max_iter=1, n_init=1, random_state=0,
                                     tol=0.0, max_no_improvement=None).fit(x)
                return time.perf_counter() - t0, km
        runs, sk_mb_wall = median_runs(sk_mb, reps)
        sk_mb_inertia = inertia(x, runs[0][1].cluster_centers_)
        say(f"scikit-learn MiniBatchKMeans(batch_size={bs}, max_iter=1 epoch, n_init=1): wall {sk_mb_wall:.3f} s, "
            f"inertia {sk_mb_inertia:.7g}")
        rows.append(("scikit-learn MiniBatchKMeans", sk_mb_wall, float("nan"), 1, sk_mb_inertia))

    # --- numpy's SGEMM of the same distance product (x @ centers.T, n x k out, all threads): the
    # rate the assignment is held to (issue 18: a Lloyd iteration's GEMM at >= 70% of it).
    cen = np.ascontiguousarray(sk_km.cluster_centers_, dtype=np.float32)
    xf = np.ascontiguousarray(x, dtype=np.float32)
    # Two timings: `x @ centers.T` as written (a fresh n x k result each call: its page faults
    # count) and np.matmul into a preallocated result (the arithmetic alone: the stricter rate).
    out_buf = np.empty((n, k), dtype=np.float32)
    with threadpool_limits(ARGS.threads):
        xf @ cen.T  # warm-up
        np.matmul(xf, cen.T, out=out_buf)
        ts, ts_out = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            xf @ cen.T
            ts.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            np.matmul(xf, cen.T, out=out_buf)
            ts_out.append(time.perf_counter() - t0)
    sgemm_s, sgemm_out_s = statistics.median(ts), statistics.median(ts_out)
    flop = 2.0 * n * d * k
    say(f"numpy SGEMM x @ centers.T ({n}x{d} by {d}x{k}), median of 5: {sgemm_s * 1e3:.1f} ms "
        f"({flop / sgemm_s / 1e9:.1f} GFLOP/s); into a preallocated result {sgemm_out_s * 1e3:.1f} ms "
        f"({flop / sgemm_out_s / 1e9:.1f} GFLOP/s). A whole Lloyd iteration (GEMM, argmin, exact distances, "
        f"sums, update) at 2nkd / its time: mlforge without bounds {flop / ml0_per_iter / 1e9:.1f} GFLOP/s "
        f"({sgemm_out_s / ml0_per_iter * 100:.0f}% of numpy's preallocated SGEMM rate; with bounds the same "
        f"iteration takes {ml_per_iter / ml0_per_iter * 100:.0f}% of that time), scikit-learn "
        f"{flop / sk_per_iter / 1e9:.1f} GFLOP/s ({sgemm_out_s / sk_per_iter * 100:.0f}%)")

    say(f"\n| {name} n={n} d={d} k={k} | wall s (median) | ms / Lloyd iteration | iterations | inertia |")
    say("|---|---|---|---|---|")
    for label, w, per, it, ine in rows:
        per_s = "-" if per != per else f"{per * 1e3:.1f}"
        w_s = "-" if w != w else f"{w:.3f}"
        ine_s = "-" if ine != ine else f"{ine:.7g}"
        say(f"| {label} | {w_s} | {per_s} | {it} | {ine_s} |")
    say(f"speed-up mlforge vs scikit-learn KMeans: wall {sk_wall / wall:.2f}x, per iteration "
        f"{sk_per_iter / ml_per_iter:.2f}x; inertia ratio mlforge/sklearn {ml_inertia / sk_inertia:.5f}")
    say(f"per iteration: mlforge without bounds vs scikit-learn lloyd {sk_per_iter / ml0_per_iter:.2f}x; mlforge "
        f"(bounds) vs scikit-learn elkan {sk_elkan_per_iter / ml_per_iter:.2f}x; bounds vs no bounds "
        f"{ml0_per_iter / ml_per_iter:.2f}x; inertia with/without bounds {ml_inertia:.7g} / {ml0_inertia:.7g}")
    say(f"speed-up mlforge (extra_center_factor=1) vs scikit-learn KMeans: wall {sk_wall / wall1:.2f}x, per "
        f"iteration {sk_per_iter / ml1_per_iter:.2f}x; inertia ratio {ml1_inertia / sk_inertia:.5f}")


def load_csv(path, d):
    with open(path) as f:
        flat = np.array(f.read().replace("\n", ",").rstrip(",").split(","), dtype=np.float32)
    return flat.reshape(-1, d)


def main():
    work_tmp = tempfile.TemporaryDirectory(prefix="mlforge-bench-")
    work = ARGS.workdir or work_tmp.name
    os.makedirs(work, exist_ok=True)
    say(f"mlforge k-means vs scikit-learn, CPU, {datetime.datetime.now().isoformat(timespec='seconds')}")
    for key, val in machine_info().items():
        say(f"  {key}: {val}")
    say(f"  python {platform.python_version()}, numpy {np.__version__}, scikit-learn {sklearn.__version__}")
    info = subprocess.run([ARGS.mlforge, "info"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    say("  mlforge info: " + " | ".join(l.strip() for l in info.splitlines()[:6]))
    say(f"  threads {ARGS.threads} (mlforge --threads; OMP_NUM_THREADS + threadpoolctl for scikit-learn); "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset: libgomp default, spins before sleeping)')}")

    for spec in [s for s in ARGS.sizes.split(",") if s]:
        n, d, k = (int(v) for v in spec.lower().split("x"))
        csv = os.path.join(work, f"blobs_{n}x{d}_k{k}.csv")
        pbr = csv[:-4] + ".pbr"
        if not os.path.exists(pbr):
            subprocess.run([ARGS.mlforge, "data", "synth", "blobs", csv, "--rows", str(n), "--cols", str(d),
                            "--k", str(k), "--cluster-std", str(ARGS.cluster_std), "--seed", "1", "--no-labels",
                            "--no-truth"], check=True, stderr=subprocess.DEVNULL)
            subprocess.run([ARGS.mlforge, "data", "convert", csv, pbr, "--label-size", "0"], check=True,
                           stderr=subprocess.DEVNULL)
        x = load_csv(csv, d)
        bench_dataset(f"blobs (cluster_std {ARGS.cluster_std}, centers in [-10,10]^d)", x, pbr, k, work)

    if ARGS.genomes:
        vcfs = [os.path.join(ARGS.genomes, f"1KG_phase3_subset_chr{c}.vcf.gz") for c in range(1, 23)]
        csv = os.path.join(work, "genomes.csv")
        pbr = os.path.join(work, "genomes.pbr")
        subprocess.run([ARGS.mlforge, "data", "convert", *vcfs, csv, "--from", "vcf"], check=True,
                       stderr=subprocess.DEVNULL)
        subprocess.run([ARGS.mlforge, "data", "convert", csv, pbr, "--label-size", "0"], check=True,
                       stderr=subprocess.DEVNULL)
        with open(csv) as f:
            d = f.readline().count(",") + 1
        bench_dataset("1000 Genomes chr1-22 dosage", load_csv(csv, d), pbr, 5, work)

    if ARGS.out:
        with open(ARGS.out, "w") as f:
            f.write("\n".join(LINES) + "\n")
        print(f"report written to {ARGS.out}")


if __name__ == "__main__":
    main()
