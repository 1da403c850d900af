"""device="gpu" from Python: the same estimators trained on the GPU agree with the CPU (where a GPU is
usable; otherwise those tests skip and say why), and asking for a GPU where there is none is a
clear ValueError naming the cause, never a silent fall-back to the CPU.

The tolerances are those the C++ GPU tests and bench/gpu_e2e.py hold the CUDA twins to: k-means
labels identical on separated blobs, linear learner probabilities and scores within 1e-5, PCA projections within
1e-4 relative (up to each component's sign), factorization machines scores within 1e-5 of their
RMS."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_blobs

import mlforge

INFO = mlforge.build_info()
needs_gpu = pytest.mark.skipif(not INFO["gpu_available"], reason=f"no usable GPU: {INFO['gpu_reason']}")


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(6000, 24, centers=6, random_state=1)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def sparse_regression():
    rng = np.random.RandomState(2)
    X = sp.random(4000, 60, density=0.08, format="csr", random_state=rng, dtype=np.float32)
    y = (X @ rng.randn(60)).astype(np.float32)
    return X, y


def estimators(device, seed=3):
    return {
        "KMeans": mlforge.KMeans(k=6, random_state=seed, n_jobs=2, device=device),
        "LinearLearnerClassifier": mlforge.LinearLearnerClassifier(epochs=3, random_state=seed, n_jobs=2,
                                                                   device=device),
        "LinearLearnerRegressor": mlforge.LinearLearnerRegressor(epochs=3, random_state=seed, n_jobs=2,
                                                                 device=device),
        "PCA": mlforge.PCA(num_components=4, n_jobs=2, device=device),
        "FactorizationMachinesRegressor": mlforge.FactorizationMachinesRegressor(num_factors=4, epochs=2,
                                                                                 random_state=seed, n_jobs=2,
                                                                                 device=device),
    }


def fit(name, est, blobs, sparse_regression):
    X, y = blobs
    if name == "KMeans" or name == "PCA":
        return est.fit(X)
    if name == "LinearLearnerClassifier":
        return est.fit(X, (y == 2).astype(int))
    if name == "LinearLearnerRegressor":
        return est.fit(X, X[:, 0] * 3.0 - X[:, 5] + 0.5)
    Xs, t = sparse_regression
    return est.fit(Xs, t)


@pytest.mark.skipif(INFO["gpu_available"], reason="a GPU is usable here: the no-GPU error cannot occur")
@pytest.mark.parametrize("name", ["KMeans", "LinearLearnerClassifier", "LinearLearnerRegressor", "PCA",
                                  "FactorizationMachinesRegressor"])
def test_gpu_without_a_usable_gpu_is_a_clear_error(name, blobs, sparse_regression):
    est = estimators("gpu")[name]
    with pytest.raises(ValueError, match="no usable GPU") as info:
        fit(name, est, blobs, sparse_regression)
    # The cause is named (here: how this build or machine lacks CUDA), and nothing was fitted.
    assert INFO["gpu_reason"].split(":")[0] in str(info.value)
    assert not hasattr(est, "model_files_")


def test_auto_runs_where_there_is_no_gpu(blobs):
    X, _ = blobs
    est = mlforge.KMeans(k=6, random_state=3, n_jobs=2, device="auto").fit(X)
    cpu = mlforge.KMeans(k=6, random_state=3, n_jobs=2, device="cpu").fit(X)
    if not INFO["gpu_available"]:
        np.testing.assert_array_equal(est.cluster_centers_, cpu.cluster_centers_)
    else:
        np.testing.assert_array_equal(est.predict(X), cpu.predict(X))


@needs_gpu
def test_kmeans_gpu_matches_cpu(blobs, sparse_regression):
    X, _ = blobs
    gpu = fit("KMeans", estimators("gpu")["KMeans"], blobs, sparse_regression)
    cpu = fit("KMeans", estimators("cpu")["KMeans"], blobs, sparse_regression)
    np.testing.assert_array_equal(gpu.predict(X), cpu.predict(X))
    np.testing.assert_allclose(gpu.cluster_centers_, cpu.cluster_centers_, rtol=1e-4, atol=1e-4)


@needs_gpu
@pytest.mark.parametrize("name", ["LinearLearnerClassifier", "LinearLearnerRegressor"])
def test_linear_learner_gpu_matches_cpu(name, blobs, sparse_regression):
    X, _ = blobs
    gpu = fit(name, estimators("gpu")[name], blobs, sparse_regression)
    cpu = fit(name, estimators("cpu")[name], blobs, sparse_regression)
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-4, atol=1e-5)
    if name == "LinearLearnerClassifier":
        np.testing.assert_allclose(gpu.predict_proba(X), cpu.predict_proba(X), rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_allclose(gpu.predict(X), cpu.predict(X), rtol=1e-5, atol=1e-5)


@needs_gpu
def test_pca_gpu_matches_cpu(blobs, sparse_regression):
    X, _ = blobs
    gpu = fit("PCA", estimators("gpu")["PCA"], blobs, sparse_regression)
    cpu = fit("PCA", estimators("cpu")["PCA"], blobs, sparse_regression)
    np.testing.assert_allclose(gpu.singular_values_, cpu.singular_values_, rtol=1e-4)
    a, b = gpu.transform(X[:200]), cpu.transform(X[:200])
    signs = np.sign(np.sum(a * b, axis=0))
    np.testing.assert_allclose(a * signs, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())


@needs_gpu
def test_factorization_machines_gpu_matches_cpu(blobs, sparse_regression):
    Xs, _ = sparse_regression
    name = "FactorizationMachinesRegressor"
    gpu = fit(name, estimators("gpu")[name], blobs, sparse_regression)
    cpu = fit(name, estimators("cpu")[name], blobs, sparse_regression)
    pg, pc = gpu.predict(Xs), cpu.predict(Xs)
    rms = float(np.sqrt(np.mean(pc.astype(np.float64) ** 2)))
    assert np.max(np.abs(pg - pc)) <= 1e-5 * rms
