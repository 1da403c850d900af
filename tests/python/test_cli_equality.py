"""The Python estimators train the same models as `mlforge train` on the same data, seed and
threads: in-memory arrays (fit), the C++ reader (fit_files) and the CLI all go through the same
algorithm code."""

import os
import subprocess

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_blobs

import mlforge


def cli_train(cli, algo, data, model_dir, hps, validation=None, test=None):
    cmd = [cli, "train", algo, "--train", str(data), "--model-dir", str(model_dir), "--threads", "2"]
    if validation is not None:
        cmd += ["--validation", str(validation)]
    if test is not None:
        cmd += ["--test", str(test)]
    for k, v in hps.items():
        cmd += ["--hp", f"{k}={v}"]
    subprocess.run(cmd, check=True, capture_output=True)
    return mlforge.load(str(model_dir))


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(3000, 8, centers=5, random_state=0)
    return X.astype(np.float32), y


def test_kmeans_equals_cli(cli, tmp_path, blobs):
    X, _ = blobs
    path = tmp_path / "x.pbr"
    mlforge.io.write_recordio(X, None, path)
    ref = cli_train(cli, "kmeans", path, tmp_path / "m", {"k": 5, "feature_dim": 8, "seed": 3})
    est = mlforge.KMeans(k=5, random_state=3, n_jobs=2).fit(X)
    np.testing.assert_array_equal(est.cluster_centers_, ref.cluster_centers_)
    files = mlforge.KMeans(k=5, random_state=3, n_jobs=2).fit_files(str(path))
    np.testing.assert_array_equal(files.cluster_centers_, ref.cluster_centers_)
    np.testing.assert_array_equal(est.predict(X), ref.predict(X))


def test_pca_equals_cli(cli, tmp_path, blobs):
    X, _ = blobs
    path = tmp_path / "x.pbr"
    mlforge.io.write_recordio(X, None, path)
    ref = cli_train(cli, "pca", path, tmp_path / "m", {"num_components": 3, "feature_dim": 8})
    est = mlforge.PCA(num_components=3, n_jobs=2).fit(X)
    np.testing.assert_array_equal(est.components_, ref.components_)
    np.testing.assert_array_equal(est.singular_values_, ref.singular_values_)
    np.testing.assert_array_equal(est.transform(X[:50]), ref.transform(X[:50]))


def test_linear_learner_equals_cli(cli, tmp_path, blobs):
    X, y = blobs
    yb = (y == 1).astype(np.float32)
    path = tmp_path / "xy.pbr"
    mlforge.io.write_recordio(X, yb, path)
    hps = {"predictor_type": "binary_classifier", "epochs": 3, "seed": 5}
    ref = cli_train(cli, "linear-learner", path, tmp_path / "m", hps)
    est = mlforge.LinearLearnerClassifier(epochs=3, random_state=5, n_jobs=2).fit(X, yb.astype(int))
    np.testing.assert_array_equal(est.coef_, ref.coef_)
    np.testing.assert_array_equal(est.intercept_, ref.intercept_)
    assert est.threshold_ == ref.threshold_
    np.testing.assert_array_equal(est.predict(X), ref.predict(X))
    files = mlforge.LinearLearnerClassifier(epochs=3, random_state=5, n_jobs=2).fit_files(str(path))
    np.testing.assert_array_equal(files.coef_, ref.coef_)


def test_held_out_data_equals_cli_validation_and_test_channels(cli, tmp_path, blobs):
    X, y = blobs
    yb = (y == 1).astype(np.float32)
    tr, va = tmp_path / "tr.pbr", tmp_path / "va.pbr"
    mlforge.io.write_recordio(X[:2000], yb[:2000], tr)
    mlforge.io.write_recordio(X[2000:], yb[2000:], va)
    hps = {"predictor_type": "binary_classifier", "epochs": 4, "seed": 5}
    ref = cli_train(cli, "linear-learner", tr, tmp_path / "m", hps, validation=va)
    est = mlforge.LinearLearnerClassifier(epochs=4, random_state=5, n_jobs=2)
    est.fit(X[:2000], yb[:2000].astype(int), held_out=(X[2000:], yb[2000:].astype(int)))
    np.testing.assert_array_equal(est.coef_, ref.coef_)
    assert est.threshold_ == ref.threshold_
    assert "validation:binary_classification_accuracy" in est.metrics_
    # Without the validation channel the selection runs on a training sample: another model.
    other = mlforge.LinearLearnerClassifier(epochs=4, random_state=5, n_jobs=2).fit(X[:2000], yb[:2000].astype(int))
    assert not np.array_equal(other.coef_, ref.coef_) or other.threshold_ != ref.threshold_
    with pytest.raises(ValueError, match="not a class of y"):
        est.fit(X[:2000], yb[:2000].astype(int), held_out=(X[2000:], yb[2000:].astype(int) + 5))
    with pytest.raises(ValueError, match="features"):
        est.fit(X[:2000], yb[:2000].astype(int), held_out=(X[2000:, :3], yb[2000:].astype(int)))
    # Factorization machines: the held-out pair is the test channel; its rmse is the CLI's.
    Xs = sp.random(1500, 40, density=0.1, format="csr", random_state=1, dtype=np.float32)
    t = np.asarray(Xs.sum(axis=1)).ravel()
    a, b = tmp_path / "fa.pbr", tmp_path / "fb.pbr"
    mlforge.io.write_recordio(Xs[:1000], t[:1000], a)
    mlforge.io.write_recordio(Xs[1000:], t[1000:], b)
    fhps = {"feature_dim": 40, "num_factors": 4, "predictor_type": "regressor", "epochs": 3}
    fref = cli_train(cli, "factorization-machines", a, tmp_path / "fm", fhps, test=b)
    fm = mlforge.FactorizationMachinesRegressor(num_factors=4, epochs=3, n_jobs=2)
    fm.fit(Xs[:1000], t[:1000], held_out=(Xs[1000:], t[1000:]))
    assert fm.metrics_["test:rmse"] == fref.metrics_["test:rmse"]


def test_linear_learner_regressor_sparse_equals_dense(blobs):
    X, y = blobs
    target = X[:, 0] * 2 - X[:, 3] + 1
    dense = mlforge.LinearLearnerRegressor(epochs=2, num_models=1, normalize_data=False, n_jobs=2)
    sparse = mlforge.LinearLearnerRegressor(epochs=2, num_models=1, normalize_data=False, n_jobs=2)
    dense.fit(X, target)
    sparse.fit(sp.csr_matrix(X), target)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sparse.predict(sp.csr_matrix(X[:20])), dense.predict(X[:20]), rtol=1e-5, atol=1e-5)


def test_fm_equals_cli(cli, tmp_path):
    rng = np.random.RandomState(0)
    X = sp.random(2000, 50, density=0.1, format="csr", random_state=rng, dtype=np.float32)
    y = (X @ rng.randn(50)).astype(np.float32)
    path = tmp_path / "fm.pbr"
    mlforge.io.write_recordio(X, y, path)
    hps = {"predictor_type": "regressor", "num_factors": 4, "feature_dim": 50, "epochs": 2}
    ref = cli_train(cli, "factorization-machines", path, tmp_path / "m", hps)
    est = mlforge.FactorizationMachinesRegressor(num_factors=4, epochs=2, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(est.coef_, ref.coef_)
    np.testing.assert_array_equal(est.factors_, ref.factors_)
    assert est.intercept_ == ref.intercept_
    np.testing.assert_array_equal(est.predict(X[:30]), ref.predict(X[:30]))
