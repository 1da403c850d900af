#!/usr/bin/env python3
"""mlforge PCA against float64 numpy and scikit-learn (ctest: pca_vs_sklearn, label python).

The data are generated here with numpy (seeded) as float32 and written as CSV (`%.9g`, which
round-trips float32 exactly) or as recordIO-protobuf (dense or sparse Float32Tensor records, laid out
as the SageMaker SDK writes them); the references are computed from the same float32 values promoted
to float64. The model is read back from model_algo-1 (an MXNet NDArray list with named arrays).

a. regular mode, low rank + noise with a large mean (100), n=6000 d=50 k=10: `s` ascending; s within
   1e-5 (relative) of sqrt(eigenvalues) of the centred scatter (np.linalg.eigh, float64); |cos| >=
   0.99999 between matching components; mean within 1e-6 (relative); explained_variance in
   mlforge-model.json within 1e-5 of eigenvalue / (n - 1); scikit-learn's PCA(svd_solver=
   "covariance_eigh", or "full" before scikit-learn 1.5) on the float64 data: singular_values_ and
   explained_variance_ reversed within 1e-5, components |cos| >= 0.99999; mini_batch_size=37 on one
   thread gives the same model.
b. randomized mode. b1: the single pass (power_iterations=0) is SageMaker's sign sketch exactly: s and
   v equal sigma(H (X - mean)) / sqrt(l) and the right singular vectors of the sketch recomputed in
   float64 numpy from the documented sign function (kernels/pca_accumulate.h). b2: against
   sklearn.utils.extmath.randomized_svd of the centred data on a fast-decaying spectrum; a sign sketch
   estimates each singular value with a relative spread of ~1/sqrt(2 l) whatever the spectrum, so this
   runs at l = 200 over 16 seeds (each within 25%, the seed-mean within 5%, subspace |cos| >= 0.98
   each and >= 0.99 median) and prints the default l = 20's errors; `s` descending; the explained
   variance ratios add up to at most 1. b3: power_iterations=2 on a slowly decaying spectrum (0.9^j):
   equal to its algorithm run in float64 numpy (1e-5), within 1e-3 of exact, subspace |cos| >= 0.999,
   and at least 10x better than the single pass (both errors printed, with randomized_svd's).
c. subtract_mean=false: no `mean` array; s and v from the uncentred X^T X (eigh, 1e-5 / 0.99999) and
   scikit-learn's TruncatedSVD(arpack); randomized mode with power_iterations=3 too.
d. sparse recordIO (keys + shape, a few all-zero rows) gives the same model as the same rows written
   dense: regular within 1e-6 (s, mean) and 1e-5 (v entries), randomized and randomized +
   power_iterations within 1e-5 / 1e-4; the sparse regular model matches the float64 reference.
e. `mlforge predict` on every real SageMaker PCA artifact in <shared-data>/artifacts/pca_*.model.tar.gz
   (including the one with NaN singular values), on the model of part a (CSV in, JSON out; recordIO
   in, JSON lines out) and on a bare model_algo-1 without `mean` (part c, as SageMaker's tarball holds
   it): the response {"projections": [{"projection": [...]}, ...]} equals (x - mean) . v computed with
   numpy from the arrays (the artifact's .decoded.npz, or our model_algo-1).

Exit status: 0 pass, 1 fail, 77 skip.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

try:
    import sklearn
    from sklearn.decomposition import PCA
    from sklearn.utils.extmath import randomized_svd
    from threadpoolctl import threadpool_limits
except ImportError as e:  # the venv is made by scripts/pyenv.sh; without it there is nothing to compare
    print(f"SKIP: scikit-learn / threadpoolctl not importable ({e})")
    sys.exit(77)

# NDArray list reader and recordIO-protobuf writers: tests/mlforge_files.py.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from mlforge_files import read_named_arrays, read_ndarray_list, write_recordio_dense, write_recordio_sparse  # noqa: E402


def write_csv(path, x):
    np.savetxt(path, x, delimiter=",", fmt="%.9g")  # 9 significant digits round-trip float32


# ---------------------------------------------------------------------------------------------
def run(cmd, **kw):
    print("+ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if p.returncode != 0:
        print(p.stdout + p.stderr)
        raise SystemExit(f"FAIL: exit status {p.returncode}: {' '.join(cmd)}")
    return p.stdout, p.stderr, time.perf_counter() - t0


class Trained:
    def __init__(self, model_dir, arrays, meta, log):
        self.dir, self.arrays, self.meta, self.log = model_dir, arrays, meta, log
        self.s = arrays["s"]
        self.v = arrays["v"]
        self.mean = arrays.get("mean")


def train(args, data, model_dir, d, k, hps=(), content_type=None):
    cmd = [args.mlforge, "--threads", str(args.threads), "train", "pca", "--train", data, "--model-dir", model_dir,
           "--device", "cpu", "--hp", f"feature_dim={d}", "--hp", f"num_components={k}"]
    if content_type:
        cmd += ["--content-type", f"train={content_type}"]
    for kv in hps:
        cmd += ["--hp", kv]
    out, err, secs = run(cmd)
    log = out + err
    for line in log.splitlines():
        if "pass 0" in line or "pass 1" in line or "pass 2" in line or "explain" in line:
            print("  " + line.split("] ", 1)[-1])
    arrays = read_named_arrays(os.path.join(model_dir, "model_algo-1"))
    with open(os.path.join(model_dir, "mlforge-model.json")) as f:
        meta = json.load(f)
    for name, a in arrays.items():
        if a.dtype != np.float32:
            raise SystemExit(f"FAIL: {model_dir}/model_algo-1: array {name} is {a.dtype}, not float32")
    if "s" not in arrays or "v" not in arrays:
        raise SystemExit(f"FAIL: {model_dir}/model_algo-1 lacks s or v: {sorted(arrays)}")
    if arrays["s"].shape != (k,) or arrays["v"].shape != (d, k):
        raise SystemExit(f"FAIL: {model_dir}/model_algo-1: s {arrays['s'].shape}, v {arrays['v'].shape}; "
                         f"expected ({k},) and ({d}, {k})")
    return Trained(model_dir, arrays, meta, log)


def check(ok, what, failures):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)


def rel_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300)))


def col_cos(a, b):
    """|cos| between matching columns of a and b (d x k each)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs((a * b).sum(axis=0)) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))


def subspace_cos(a, b):
    """The smallest cosine of the principal angles between span(a) and span(b) (orthonormalised)."""
    qa, _ = np.linalg.qr(np.asarray(a, np.float64))
    qb, _ = np.linalg.qr(np.asarray(b, np.float64))
    return float(np.linalg.svd(qa.T @ qb, compute_uv=False).min())


def exact_pca(x32, k, centre=True):
    """Top k (ascending) of eigh of the (centred) scatter of x32 promoted to float64:
    (singular values, d x k vectors, float64 mean, all d eigenvalues ascending)."""
    x = x32.astype(np.float64)
    mu = x.mean(axis=0)
    xc = x - mu if centre else x
    w, u = np.linalg.eigh(xc.T @ xc)
    return np.sqrt(np.maximum(w[-k:], 0.0)), u[:, -k:], mu, w


def lowrank(rng, n, d, spectrum, noise, mean):
    """n x d float32: mean + Z diag(spectrum) W^T + noise, W with orthonormal columns."""
    r = len(spectrum)
    w, _ = np.linalg.qr(rng.standard_normal((d, r)))
    z = rng.standard_normal((n, r)) * np.asarray(spectrum)[None, :]
    x = mean + z @ w.T + noise * rng.standard_normal((n, d))
    return x.astype(np.float32)


def orthonormal_ok(v, tol=1e-5):
    v = v.astype(np.float64)
    return float(np.max(np.abs(v.T @ v - np.eye(v.shape[1])))) <= tol


# ---------------------------------------------------------------------------------------------
# The single-pass sketch of randomized mode, replicated in numpy from its documented definition
# (kernels/pca_accumulate.h, algos/pca/train.cc, solve.cc): H[j][r] = +1 when bit (j % 64) of
# SplitMix64(sketch_seed ^ SplitMix64(r * 0x9E3779B97F4A7C15 + j / 64)) is set, else -1, for row
# ordinal r (0-based) and sketch column j < l; sketch_seed = SplitMix64(2 * seed + 1) on one host;
# C = H (X - mean) (the shift cancels exactly), lambda = sigma(C)^2 / l, s = sqrt(lambda), v = C's right
# singular vectors, top num_components, descending.
# ---------------------------------------------------------------------------------------------
def _splitmix64(z):
    z = np.asarray(z, np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def sketch_signs(seed, n, l):
    """H (l x n) of mlforge's randomized mode with hyperparameter seed `seed`, one host."""
    sketch_seed = _splitmix64(np.uint64(2 * seed + 1))
    rows = np.arange(n, dtype=np.uint64)
    h = np.empty((l, n), np.float64)
    for word in range((l + 63) // 64):
        with np.errstate(over="ignore"):
            w = _splitmix64(sketch_seed ^ _splitmix64(rows * np.uint64(0x9E3779B97F4A7C15) + np.uint64(word)))
        for j in range(word * 64, min(l, word * 64 + 64)):
            h[j] = np.where((w >> np.uint64(j % 64)) & np.uint64(1), 1.0, -1.0)
    return h


def sketch_pca(x32, k, l, seed=0):
    x = x32.astype(np.float64)
    c = sketch_signs(seed, len(x), l) @ (x - x.mean(axis=0))
    _, sig, vt = np.linalg.svd(c, full_matrices=False)
    return sig[:k] / np.sqrt(l), vt[:k].T


def power_pca(x32, k, l, passes, seed=0):
    """mlforge's power_iterations (algos/pca/train.cc, solve.cc) in float64: Q0 = the sketch's l right
    singular vectors; each extra pass forms Z = A Q (A = the centred scatter) and orthonormalises it
    for the next; the last (Q, Z) gives the Nystrom approximation A ~ Z (Q^T Z)^-1 Z^T, whose top k
    eigenpairs (descending) are returned as (sqrt(eigenvalues), vectors)."""
    x = x32.astype(np.float64)
    y = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(sketch_signs(seed, len(x), l) @ y, full_matrices=False)
    q = vt.T
    for it in range(passes):
        z = y.T @ (y @ q)
        if it + 1 < passes:
            q, _ = np.linalg.qr(z)
    chol = np.linalg.cholesky(0.5 * (q.T @ z + z.T @ q))
    f = np.linalg.solve(chol, z.T).T  # Z L^-T
    u, sig, _ = np.linalg.svd(f, full_matrices=False)
    return sig[:k], u[:, :k]


# ---------------------------------------------------------------------------------------------
def part_regular(args, work, failures):
    """a. regular mode against float64 eigh and scikit-learn's PCA; returns (model dir, x) for part e."""
    rng = np.random.default_rng(11)
    n, d, k = 6000, 50, 10
    x = lowrank(rng, n, d, 10.0 * 0.8 ** np.arange(15), 0.3, 100.0 + rng.uniform(-5, 5, d))
    csv = os.path.join(work, "regular.csv")
    write_csv(csv, x)
    t = train(args, csv, os.path.join(work, "regular_model"), d, k, content_type="text/csv;label_size=0")
    se, ue, mu, w = exact_pca(x, k)
    print(f"a. regular: n={n} d={d} k={k}, mean ~100, singular values (exact, ascending) "
          f"{np.array2string(se, precision=4)}")
    check(sorted(t.arrays) == ["mean", "s", "v"], f"a. model_algo-1 holds s, v, mean ({sorted(t.arrays)})", failures)
    check(t.mean is not None and t.mean.shape == (1, d), f"a. mean has shape (1, {d})", failures)
    check(bool(np.all(np.diff(t.s) > 0)), "a. s is strictly ascending (largest last)", failures)
    e = rel_err(t.s, se)
    check(e <= 1e-5, f"a. s within 1e-5 of sqrt(eig) of the centred float64 scatter (max relative error {e:.2e})",
          failures)
    c = col_cos(t.v, ue)
    check(c.min() >= 0.99999, f"a. |cos| between matching components >= 0.99999 (min {c.min():.8f})", failures)
    if t.mean is not None:
        e = float(np.max(np.abs(t.mean[0] - mu) / np.abs(mu)))
        check(e <= 1e-6, f"a. mean within 1e-6 of the float64 mean (max relative error {e:.2e})", failures)
    check(orthonormal_ok(t.v), "a. v has orthonormal columns (1e-5)", failures)
    ev = np.array(t.meta.get("explained_variance", []), np.float64)
    e = rel_err(ev, w[-k:] / (n - 1)) if ev.shape == (k,) else float("inf")
    check(e <= 1e-5, f"a. mlforge-model.json explained_variance = eigenvalue / (n - 1) within 1e-5 ({e:.2e})",
          failures)
    check(t.meta.get("singular_value_order") == "ascending" and t.meta.get("rows") == n,
          f"a. mlforge-model.json: singular_value_order ascending, rows {n} "
          f"({t.meta.get('singular_value_order')}, {t.meta.get('rows')})", failures)

    solver = "covariance_eigh" if tuple(int(p) for p in sklearn.__version__.split(".")[:2]) >= (1, 5) else "full"
    with threadpool_limits(args.threads):
        sk = PCA(n_components=k, svd_solver=solver).fit(x.astype(np.float64))
    e = rel_err(t.s, sk.singular_values_[::-1])
    check(e <= 1e-5, f"a. s = scikit-learn PCA(svd_solver={solver!r}).singular_values_ reversed within 1e-5 "
                     f"({e:.2e})", failures)
    c = col_cos(t.v, sk.components_[::-1].T)
    check(c.min() >= 0.99999, f"a. components |cos| vs scikit-learn >= 0.99999 (min {c.min():.8f})", failures)
    e = rel_err(ev[::-1], sk.explained_variance_) if ev.shape == (k,) else float("inf")
    check(e <= 1e-5, f"a. explained_variance = scikit-learn's explained_variance_ reversed within 1e-5 ({e:.2e})",
          failures)

    # The model does not depend on how rows are cut into mini-batches or on the thread count
    # (the shift is the first mini-batch's mean, the accumulation blocks differ).
    a2 = argparse.Namespace(**vars(args))
    a2.threads = 1
    t2 = train(a2, csv, os.path.join(work, "regular_model_b37"), d, k, ["mini_batch_size=37"],
               content_type="text/csv;label_size=0")
    e_s = rel_err(t2.s, t.s)
    e_v = float(np.max(np.abs(t2.v - t.v)))
    check(e_s <= 2e-6 and e_v <= 2e-5,
          f"a. mini_batch_size=37 on 1 thread gives the same model (s {e_s:.2e} relative, v {e_v:.2e} absolute)",
          failures)
    return t, x


def part_randomized(args, work, failures):
    # b1. The single pass is SageMaker's sign sketch, exactly.
    rng = np.random.default_rng(12)
    n, d, k = 5000, 100, 10
    x = lowrank(rng, n, d, 100.0 * 0.6 ** np.arange(30), 0.05, 100.0 + rng.uniform(-5, 5, d))
    pbr = os.path.join(work, "fast.pbr")
    write_recordio_dense(pbr, x)
    t = train(args, pbr, os.path.join(work, "fast_default"), d, k, ["algorithm_mode=randomized"])
    l = k + max(10, k)
    rs, rv = sketch_pca(x, k, l, seed=0)
    check(bool(np.all(np.diff(t.s) < 0)), "b. randomized: s is strictly descending (largest first)", failures)
    e = rel_err(t.s, rs)
    c = col_cos(t.v, rv)
    # Components whose sketch singular value is within 1% of a neighbour's are not individually
    # determined by float32 data; the subspace of all k is.
    gaps = np.minimum(np.r_[np.inf, -np.diff(rs)], np.r_[-np.diff(rs), np.inf]) / rs
    sep = gaps > 0.01
    print(f"b1. single pass (l={l}) vs the sign sketch replicated in float64 numpy: s {e:.2e} relative, |cos| min "
          f"{c[sep].min():.7f} over {sep.sum()} separated components, subspace {subspace_cos(t.v, rv):.7f}")
    check(e <= 1e-4, f"b1. single-pass s = sigma(H (X - mean)) / sqrt(l) of the replicated sketch within 1e-4 "
                     f"({e:.2e})", failures)
    check(c[sep].min() >= 0.9999 and subspace_cos(t.v, rv) >= 0.9999,
          f"b1. single-pass v = the replicated sketch's right singular vectors (|cos| >= 0.9999)", failures)

    # b2. Single pass against scikit-learn's randomized_svd on a fast-decaying spectrum. The sign
    # sketch estimates each singular value from an l-row sketch: sigma_j(H Y) / sqrt(l) has a relative
    # spread of about 1 / sqrt(2 l) whatever the spectrum (5% at l = 200), so this runs with
    # extra_components = 190 (l = 200) and 16 seeds: each seed within 5 spreads (25%); the mean over
    # seeds (spread 1.25%) within 5%. The sketch also turns neighbouring components into each other by
    # about sigma_j sigma_i / (sigma_j^2 - sigma_i^2) / sqrt(l) (0.07 here): every seed's subspace |cos|
    # >= 0.98 (sin 0.2), their median >= 0.99.
    d2 = 200
    x2 = lowrank(rng, n, d2, 100.0 * 0.6 ** np.arange(30), 0.05, 100.0 + rng.uniform(-5, 5, d2))
    pbr2 = os.path.join(work, "fast200.pbr")
    write_recordio_dense(pbr2, x2)
    x2c = x2.astype(np.float64)
    x2c -= x2c.mean(axis=0)
    with threadpool_limits(args.threads):
        _, sk_s, sk_vt = randomized_svd(x2c, k, random_state=0)
    seeds_s, worst_e, cosines, order_ok = [], 0.0, [], True
    for seed in range(args.sketch_seeds):
        ts = train(args, pbr2, os.path.join(work, f"fast200_l200_seed{seed}"), d2, k,
                   ["algorithm_mode=randomized", "extra_components=190", f"seed={seed}"])
        order_ok &= bool(np.all(np.diff(ts.s) < 0))
        seeds_s.append(ts.s.astype(np.float64))
        worst_e = max(worst_e, rel_err(ts.s, sk_s))
        cosines.append(subspace_cos(ts.v, sk_vt.T))
    worst_c, median_c = min(cosines), float(np.median(cosines))
    mean_e = rel_err(np.mean(seeds_s, axis=0), sk_s)
    td = train(args, pbr2, os.path.join(work, "fast200_default"), d2, k, ["algorithm_mode=randomized"])
    print(f"b2. single pass vs randomized_svd on the centred data (d={d2}, spectrum 100 * 0.6^j): l=200 over "
          f"{args.sketch_seeds} seeds: worst s error {worst_e:.3f}, subspace |cos| worst {worst_c:.5f} median {median_c:.5f}, "
          f"seed-mean s error {mean_e:.4f}; default l=20 (seed 0): s error {rel_err(td.s, sk_s):.3f}, "
          f"subspace |cos| {subspace_cos(td.v, sk_vt.T):.5f}")
    check(order_ok, "b2. s descending in every seed", failures)
    ratio = float(sum(td.meta.get("explained_variance_ratio", [float("nan")])))
    ratio_train = td.meta.get("metrics", {}).get("train:explained_variance_ratio", float("nan"))
    check(ratio <= 1 + 1e-6 and ratio_train <= 1 + 1e-6,
          f"b2. default l: the explained variance ratios in mlforge-model.json add up to at most 1 (sum "
          f"{ratio:.6f}, train:explained_variance_ratio {ratio_train:.6f})", failures)
    check(worst_e <= 0.25, f"b2. l=200: every seed's s within 25% of randomized_svd's ({worst_e:.3f})", failures)
    check(worst_c >= 0.98 and median_c >= 0.99,
          f"b2. l=200: subspace |cos| vs randomized_svd >= 0.98 in every seed ({worst_c:.5f}), median >= 0.99 "
          f"({median_c:.5f})", failures)
    check(mean_e <= 0.05, f"b2. l=200: s averaged over seeds within 5% of randomized_svd's ({mean_e:.4f})", failures)

    # b3. power_iterations on a slowly decaying spectrum (sigma_j ~ 0.9^j, default l = 20).
    x3 = lowrank(rng, n, d, 20.0 * 0.9 ** np.arange(d), 0.1, 100.0 + rng.uniform(-5, 5, d))
    pbr3 = os.path.join(work, "slow.pbr")
    write_recordio_dense(pbr3, x3)
    se, ue, _, _ = exact_pca(x3, k)
    se, ue = se[::-1], ue[:, ::-1]
    t0 = train(args, pbr3, os.path.join(work, "slow_p0"), d, k, ["algorithm_mode=randomized"])
    t2 = train(args, pbr3, os.path.join(work, "slow_p2"), d, k, ["algorithm_mode=randomized", "power_iterations=2"])
    x3c = x3.astype(np.float64)
    x3c -= x3c.mean(axis=0)
    with threadpool_limits(args.threads):
        rsvd = {it: randomized_svd(x3c, k, n_iter=it, n_oversamples=10, random_state=0) for it in (1, 2)}
    e0, e2 = rel_err(t0.s, se), rel_err(t2.s, se)
    c0, c2 = subspace_cos(t0.v, ue), subspace_cos(t2.v, ue)
    print(f"b3. slow spectrum 20 * 0.9^j, d={d}, k={k}, l={l}: s error vs exact: single pass {e0:.3e}, "
          f"power_iterations=2 {e2:.3e}; subspace |cos| vs exact: single pass {c0:.5f}, power_iterations=2 {c2:.7f}")
    for it, (_, rs_, rvt_) in rsvd.items():
        print(f"    for reference, randomized_svd(n_iter={it}, n_oversamples=10) ({2 * it + 2} products with X; "
              f"mlforge's power_iterations=2 makes 5 in 3 passes): s error {rel_err(rs_, se):.3e}, "
              f"subspace |cos| {subspace_cos(rvt_.T, ue):.7f}")
    ps, pv = power_pca(x3, k, l, 2)
    e = rel_err(t2.s, ps)
    c = subspace_cos(t2.v, pv)
    check(e <= 1e-5 and c >= 0.99999,
          f"b3. power_iterations=2 = its algorithm (sketch, 2 passes of Y^T Y Q, Nystrom) run in float64 numpy: "
          f"s {e:.2e} (<= 1e-5), subspace |cos| {c:.8f} (>= 0.99999)", failures)
    check(bool(np.all(np.diff(t2.s) < 0)), "b3. power_iterations=2: s descending", failures)
    check(e2 <= 1e-3, f"b3. power_iterations=2: s within 1e-3 of exact ({e2:.3e})", failures)
    check(c2 >= 0.999, f"b3. power_iterations=2: subspace |cos| vs exact >= 0.999 ({c2:.7f})", failures)
    check(col_cos(t2.v, ue).min() >= 0.99,
          f"b3. power_iterations=2: every component |cos| >= 0.99 ({col_cos(t2.v, ue).min():.5f})", failures)
    check(e0 >= 10 * e2 and c0 < c2,
          f"b3. power_iterations=2 is measurably better than the single pass (s error {e0:.3e} -> {e2:.3e}, "
          f"subspace {c0:.4f} -> {c2:.6f})", failures)


def part_no_mean(args, work, failures):
    rng = np.random.default_rng(13)
    n, d, k = 4000, 30, 8
    x = lowrank(rng, n, d, 5.0 * 0.75 ** np.arange(12), 0.2, 3.0 + rng.uniform(-1, 1, d))
    csv = os.path.join(work, "nomean.csv")
    write_csv(csv, x)
    t = train(args, csv, os.path.join(work, "nomean_model"), d, k, ["subtract_mean=false"],
              content_type="text/csv;label_size=0")
    su, uu, _, _ = exact_pca(x, k, centre=False)
    sc, _, _, _ = exact_pca(x, k, centre=True)
    print(f"c. subtract_mean=false: top singular value uncentred {su[-1]:.6g} (centred {sc[-1]:.6g})")
    check(sorted(t.arrays) == ["s", "v"], f"c. model_algo-1 holds s and v and no mean ({sorted(t.arrays)})", failures)
    check(bool(np.all(np.diff(t.s) > 0)), "c. s ascending", failures)
    e = rel_err(t.s, su)
    check(e <= 1e-5, f"c. s within 1e-5 of sqrt(eig(X^T X)), uncentred float64 ({e:.2e})", failures)
    c = col_cos(t.v, uu)
    check(c.min() >= 0.99999, f"c. |cos| vs the uncentred eigenvectors >= 0.99999 (min {c.min():.8f})", failures)
    from sklearn.decomposition import TruncatedSVD
    with threadpool_limits(args.threads):
        tsvd = TruncatedSVD(n_components=k, algorithm="arpack", random_state=0).fit(x.astype(np.float64))
    e = rel_err(t.s, tsvd.singular_values_[::-1])
    check(e <= 1e-5, f"c. s = scikit-learn TruncatedSVD(arpack).singular_values_ reversed within 1e-5 ({e:.2e})",
          failures)
    # Randomized mode without centring (sketch without the h s^T / n correction, then 3 power passes).
    tr = train(args, csv, os.path.join(work, "nomean_randomized"), d, k,
               ["subtract_mean=false", "algorithm_mode=randomized", "power_iterations=3"],
               content_type="text/csv;label_size=0")
    e = rel_err(tr.s, su[::-1])
    c = subspace_cos(tr.v, uu)
    check("mean" not in tr.arrays and e <= 1e-4 and c >= 0.9999,
          f"c. randomized, power_iterations=3, no mean: s within 1e-4 ({e:.2e}), subspace |cos| >= 0.9999 ({c:.7f})",
          failures)
    return t


def part_sparse(args, work, failures):
    rng = np.random.default_rng(14)
    n, d, k = 3000, 60, 8
    # Low rank + noise, scaled per column (so the spectrum has distinct eigenvalues), then 85% of the
    # entries zeroed; a few all-zero rows (records with only a shape) must still count as rows.
    dense = lowrank(rng, n, d, 4.0 * 0.8 ** np.arange(10), 0.5, 2.0).astype(np.float64) * (0.95 ** np.arange(d))
    x = (dense * (rng.random((n, d)) < 0.15)).astype(np.float32)
    x[[5, 700, 2999]] = 0
    sp, de = os.path.join(work, "sparse.pbr"), os.path.join(work, "sparse_as_dense.pbr")
    write_recordio_sparse(sp, x)
    write_recordio_dense(de, x)
    out, _, _ = run([args.mlforge, "data", "inspect", sp])
    check("sparse" in out, "d. `data inspect` sees the sparse file as sparse", failures)
    se, ue, mu, _ = exact_pca(x, k)
    for mode, hps, tol_s, tol_v in (("regular", [], 1e-6, 1e-5),
                                    ("randomized", ["algorithm_mode=randomized"], 1e-5, 1e-4),
                                    ("randomized+power", ["algorithm_mode=randomized", "power_iterations=2"], 1e-5,
                                     1e-4)):
        ts = train(args, sp, os.path.join(work, f"sparse_{mode}"), d, k, hps)
        td = train(args, de, os.path.join(work, f"dense_{mode}"), d, k, hps)
        e_s = rel_err(ts.s, td.s)
        e_v = float(np.max(np.abs(ts.v - td.v)))
        e_m = float(np.max(np.abs(ts.mean - td.mean) / np.abs(td.mean))) if ts.mean is not None and td.mean is not None \
            else float("inf")
        print(f"d. {mode}: sparse vs dense: s {e_s:.2e} relative, v {e_v:.2e} absolute, mean {e_m:.2e} relative")
        check(e_s <= tol_s and e_v <= tol_v and e_m <= 1e-6,
              f"d. {mode}: sparse recordIO gives the dense model (s <= {tol_s:g}, v <= {tol_v:g}, mean <= 1e-6)",
              failures)
        if mode == "regular":
            e = rel_err(ts.s, se)
            c = col_cos(ts.v, ue).min()
            e_mu = float(np.max(np.abs(ts.mean[0] - mu) / np.abs(mu)))
            check(e <= 1e-5 and c >= 0.99999 and e_mu <= 1e-6 and ts.meta.get("rows") == n,
                  f"d. regular, sparse: s ({e:.2e}), |cos| ({c:.8f}), mean ({e_mu:.2e}), rows ({ts.meta.get('rows')}) "
                  f"match the float64 reference", failures)


def predict(args, model, rows, work, name, failures, accept=None, fmt="csv"):
    """`mlforge predict` of `rows`; its stdout, or None after a failed check (exit status != 0)."""
    inp = os.path.join(work, f"{name}.{'csv' if fmt == 'csv' else 'pbr'}")
    (write_csv if fmt == "csv" else write_recordio_dense)(inp, rows)
    cmd = [args.mlforge, "--threads", str(args.threads), "predict", "--model", model, "--input", inp]
    if accept:
        cmd += ["--accept", accept]
    print("+ " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        check(False, f"e. {name}: mlforge predict exited with {p.returncode}: {p.stderr.strip()[-300:]}", failures)
        return None
    return p.stdout


def parse_projections(out, n, k, what, failures):
    """The JSON response's projections as an n x k array, or None after a failed check."""
    if out is None:
        return None
    try:
        doc = json.loads(out)
    except ValueError as e:
        check(False, f"e. {what}: the response is JSON ({e}): {out[:200]!r}", failures)
        return None
    ok = (isinstance(doc, dict) and list(doc) == ["projections"] and isinstance(doc["projections"], list)
          and len(doc["projections"]) == n
          and all(isinstance(p, dict) and list(p) == ["projection"] and isinstance(p["projection"], list)
                  and len(p["projection"]) == k for p in doc["projections"]))
    check(ok, f"e. {what}: response is {{\"projections\": [{{\"projection\": [{k} values]}} x {n}]}}", failures)
    if not ok:
        print(out[:500])
        return None
    return np.array([p["projection"] for p in doc["projections"]], np.float64)


def compare_projections(got, rows, v, mean, what, failures):
    y = rows.astype(np.float64) - (mean.astype(np.float64).reshape(-1) if mean is not None else 0.0)
    want = y @ v.astype(np.float64)
    scale = np.abs(y) @ np.abs(v.astype(np.float64))  # bound on float32 rounding: ~1e-7 * scale
    err = float(np.max(np.abs(got - want) / (scale + 1e-30)))
    check(np.all(np.isfinite(got)) and err <= 1e-5,
          f"e. {what}: projections = (x - mean) . v (float64 numpy) within 1e-5 of sum |y||v| ({err:.2e})", failures)


def part_predict(args, work, failures, trained, x_train, no_mean):
    arts = sorted(glob.glob(os.path.join(args.shared_data, "artifacts", "pca_*.model.tar.gz"))) \
        if args.shared_data else []
    if not arts:
        print(f"SKIP part e (artifacts): no pca_*.model.tar.gz under "
              f"{os.path.join(args.shared_data, 'artifacts') if args.shared_data else '(no --shared-data)'}")
    rng = np.random.default_rng(15)
    saw_nan = False
    for art in arts:
        name = os.path.basename(art)[:-len(".model.tar.gz")]
        npz = np.load(art[:-len(".model.tar.gz")] + ".decoded.npz")
        s, v = npz["model_algo-1/s"], npz["model_algo-1/v"]
        mean = npz["model_algo-1/mean"] if "model_algo-1/mean" in npz.files else None
        saw_nan |= bool(np.isnan(s).any())
        d, k = v.shape
        base = mean.reshape(-1) if mean is not None else np.zeros(d, np.float32)
        # Rows near the mean (so that forgetting to subtract it shows against the rows' own scale).
        rows = (base + rng.standard_normal((6, d)) * (0.2 * np.abs(base) + 0.01)).astype(np.float32)
        print(f"e. {name}: d={d} k={k}, NaN in s: {int(np.isnan(s).sum())}")
        got = parse_projections(predict(args, art, rows, work, f"rows_{name}", failures), len(rows), k, name,
                                failures)
        if got is not None:
            compare_projections(got, rows, v, mean, name, failures)
    if arts:
        check(saw_nan, "e. one of the artifacts has NaN singular values (and was served above)", failures)

    # A model trained here (part a), CSV and recordIO input, JSON and JSON lines output.
    rows = x_train[rng.choice(len(x_train), 7, replace=False)]
    k = trained.v.shape[1]
    got = parse_projections(predict(args, trained.dir, rows, work, "rows_ours", failures), len(rows), k,
                            "mlforge model, CSV", failures)
    if got is not None:
        compare_projections(got, rows, trained.v, trained.mean, "mlforge model, CSV", failures)
    out = predict(args, trained.dir, rows, work, "rows_ours_rec", failures, accept="application/jsonlines",
                  fmt="recordio")
    if out is not None:
        try:
            lines = [json.loads(l) for l in out.splitlines() if l.strip()]
            ok = len(lines) == len(rows) and all(list(l) == ["projection"] and len(l["projection"]) == k
                                                 for l in lines)
        except ValueError:
            ok = False
        check(ok, "e. mlforge model, recordIO in, JSON lines out: one {\"projection\": [...]} per row", failures)
        if ok:
            compare_projections(np.array([l["projection"] for l in lines]), rows, trained.v, trained.mean,
                                "mlforge model, recordIO / JSON lines", failures)
    # A bare model_algo-1 without `mean` (subtract_mean=false), as SageMaker's tarball holds it: a
    # named list of s and v only, projections x . v.
    if no_mean is not None:
        nd = no_mean.v.shape[0]
        rows = (3.0 + rng.standard_normal((5, nd))).astype(np.float32)
        bare = os.path.join(no_mean.dir, "model_algo-1")
        got = parse_projections(predict(args, bare, rows, work, "rows_bare_no_mean", failures), len(rows),
                                no_mean.v.shape[1], "bare model_algo-1 without mean", failures)
        if got is not None:
            compare_projections(got, rows, no_mean.v, None, "bare model_algo-1 without mean", failures)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mlforge", required=True, help="the mlforge binary")
    ap.add_argument("--shared-data", default=os.environ.get("MLFORGE_SHARED_DATA", ""),
                    help="the shared data folder (its artifacts/pca_*.model.tar.gz are served in part e)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("MLFORGE_TEST_THREADS", "2")))
    ap.add_argument("--sketch-seeds", type=int, default=16, help="part b2: randomized runs averaged")
    ap.add_argument("--parts", default="abcde", help="run only these parts (letters)")
    ap.add_argument("--workdir", help="keep the files here (default: a temporary folder)")
    args = ap.parse_args()
    if not os.access(args.mlforge, os.X_OK):
        raise SystemExit(f"FAIL: {args.mlforge} is not an executable")
    p = subprocess.run([args.mlforge, "train", "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if "pca" not in p.stdout:
        print("SKIP: this mlforge has no pca algorithm")
        return 77

    print(f"numpy {np.__version__}, scikit-learn {sklearn.__version__}, threads {args.threads}")
    failures = []
    with tempfile.TemporaryDirectory(prefix="mlforge-pca-skl-") as tmp:
        work = args.workdir or tmp
        os.makedirs(work, exist_ok=True)
        trained = x_train = no_mean = None
        if "a" in args.parts or "e" in args.parts:
            trained, x_train = part_regular(args, work, failures)
        if "b" in args.parts:
            part_randomized(args, work, failures)
        if "c" in args.parts or "e" in args.parts:
            no_mean = part_no_mean(args, work, failures)
        if "d" in args.parts:
            part_sparse(args, work, failures)
        if "e" in args.parts:
            part_predict(args, work, failures, trained, x_train, no_mean)
    if failures:
        print(f"{len(failures)} check(s) failed:")
        for f in failures:
            print("  " + f)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
