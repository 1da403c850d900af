"""Artifacts (SageMaker's and ours), save/load round trips, recordIO I/O and bad arguments."""

import glob
import os
import pickle
import subprocess

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_blobs

import mlforge

KINDS = {
    "kmeans": mlforge.KMeans,
    "pca": mlforge.PCA,
    "linear_learner_binary": mlforge.LinearLearnerClassifier,
    "linear_learner_regressor": mlforge.LinearLearnerRegressor,
    "fm_movielens100k_regressor": mlforge.FactorizationMachinesRegressor,
}


def test_sagemaker_artifacts_load(shared_data):
    arts = sorted(glob.glob(os.path.join(shared_data, "artifacts", "*.model.tar.gz")))
    if not arts:
        pytest.skip("no SageMaker artifacts")
    seen = set()
    for art in arts:
        est = mlforge.load(art)
        base = os.path.basename(art)
        cls = next(c for prefix, c in KINDS.items() if base.startswith(prefix))
        assert type(est) is cls, base
        seen.add(cls)
        decoded = os.path.join(shared_data, "artifacts", base.replace(".model.tar.gz", ".decoded.npz"))
        X = np.random.RandomState(0).rand(7, est.n_features_in_).astype(np.float32)
        if isinstance(est, mlforge.KMeans):
            ref = np.load(decoded)
            centers = ref["model_algo-1/_0"]
            np.testing.assert_array_equal(est.cluster_centers_, centers.reshape(est.cluster_centers_.shape))
            d = ((X[:, None, :] - est.cluster_centers_[None]) ** 2).sum(-1)
            np.testing.assert_array_equal(est.predict(X), d.argmin(1))
        elif isinstance(est, mlforge.PCA):
            out = est.transform(X)
            assert out.shape == (7, est.n_components_)
        else:
            assert est.predict(sp.csr_matrix(X)).shape == (7,)
    assert len(seen) == len(KINDS)


@pytest.mark.parametrize(
    "make",
    [
        lambda: mlforge.KMeans(k=3, random_state=1),
        lambda: mlforge.PCA(num_components=2),
        lambda: mlforge.LinearLearnerClassifier(epochs=2),
        lambda: mlforge.LinearLearnerRegressor(epochs=2),
        lambda: mlforge.FactorizationMachinesRegressor(num_factors=4),
        lambda: mlforge.FactorizationMachinesClassifier(num_factors=4),
    ],
)
def test_save_load_pickle_serve_round_trip(make, tmp_path, cli):
    X, y = make_blobs(400, 5, centers=3, random_state=0)
    y = (y == 0).astype(int)
    est = make()
    est.fit(X, y) if not isinstance(est, (mlforge.KMeans, mlforge.PCA)) else est.fit(X)
    out = est.transform(X) if isinstance(est, mlforge.PCA) else est.predict(X)
    path = mlforge.save(est, tmp_path / "model")
    assert path.endswith("model.tar.gz")
    back = mlforge.load(path)
    assert type(back) is type(est)
    again = back.transform(X) if isinstance(est, mlforge.PCA) else back.predict(X)
    np.testing.assert_array_equal(again, out)
    un = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(un.transform(X) if isinstance(est, mlforge.PCA) else un.predict(X), out)
    # `mlforge predict` (the serving code path) reads the saved tarball.
    csv = tmp_path / "x.csv"
    np.savetxt(csv, X[:3], delimiter=",")
    r = subprocess.run([cli, "predict", "--model", path, "--input", str(csv), "--content-type",
                        "text/csv;label_size=0"], capture_output=True, text=True)
    if isinstance(est, (mlforge.FactorizationMachinesRegressor, mlforge.FactorizationMachinesClassifier)):
        assert r.returncode != 0  # FM endpoints take no CSV (SageMaker's)
    else:
        assert r.returncode == 0, r.stderr


def test_recordio_round_trip(tmp_path):
    rng = np.random.RandomState(0)
    X = rng.rand(100, 6).astype(np.float32)
    y = rng.rand(100).astype(np.float32)
    mlforge.io.write_recordio(X, y, tmp_path / "d.pbr")
    X2, y2 = mlforge.io.read_recordio(tmp_path / "d.pbr")
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    S = sp.random(50, 30, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    mlforge.io.write_recordio(S, None, tmp_path / "s.pbr")
    S2, none = mlforge.io.read_recordio(tmp_path / "s.pbr")
    assert none is None and sp.issparse(S2)
    np.testing.assert_array_equal(S2.toarray(), S.toarray())


@pytest.mark.parametrize(
    "est, exc, words",
    [
        (mlforge.KMeans(k=1), ValueError, ["'k'"]),
        (mlforge.KMeans(k="five"), TypeError, ["'k'"]),
        (mlforge.KMeans(init_method="best"), ValueError, ["'init_method'", "kmeans++"]),
        (mlforge.KMeans(device="tpu"), ValueError, ["'device'"]),
        (mlforge.KMeans(n_jobs=0), ValueError, ["'n_jobs'"]),
        (mlforge.KMeans(random_state="x"), TypeError, ["'random_state'"]),
        (mlforge.PCA(algorithm_mode="fast"), ValueError, ["'algorithm_mode'"]),
        (mlforge.PCA(subtract_mean="yes"), TypeError, ["'subtract_mean'"]),
        (mlforge.LinearLearnerClassifier(learning_rate=-1.0), ValueError, ["'learning_rate'"]),
        (mlforge.LinearLearnerClassifier(optimizer="lbfgs"), ValueError, ["'optimizer'"]),
        (mlforge.LinearLearnerRegressor(epochs=0), ValueError, ["'epochs'"]),
        (mlforge.FactorizationMachinesRegressor(num_factors=0), ValueError, ["'num_factors'"]),
        (mlforge.FactorizationMachinesRegressor(optimizer="lbfgs"), ValueError, ["'_optimizer'"]),
    ],
)
def test_bad_arguments_name_the_parameter(est, exc, words):
    X, y = make_blobs(60, 3, centers=2, random_state=0)
    with pytest.raises(exc) as e:
        est.fit(X) if isinstance(est, (mlforge.KMeans, mlforge.PCA)) else est.fit(X, y)
    for w in words:
        assert w in str(e.value), str(e.value)


def test_constructor_defaults_come_from_the_tables():
    table = {s["name"]: s for s in mlforge._core.hyperparameters("linear-learner")}
    p = mlforge.LinearLearnerClassifier().get_params()
    assert p["epochs"] == int(table["epochs"]["default"]) == 15
    assert p["learning_rate"] == "auto"
    assert p["use_bias"] is True
    assert "predictor_type" not in p and "feature_dim" not in p
    km = mlforge.KMeans().get_params()
    assert km["eval_metrics"] == ("msd",) and km["init_method"] == "random" and km["k"] == 8


def test_fm_classifier_refuses_multiclass():
    X, y = make_blobs(60, 3, centers=3, random_state=0)
    with pytest.raises(ValueError, match="two classes"):
        mlforge.FactorizationMachinesClassifier().fit(X, y)


def test_fm_recommend_is_exact_top_k(shared_data):
    art = os.path.join(shared_data, "artifacts", "fm_movielens100k_regressor_d2625_k64.model.tar.gz")
    if not os.path.exists(art):
        pytest.skip("no SageMaker FM artifact")
    fm = mlforge.load(art)
    users = [5, 99, 400]
    X = sp.csr_matrix((np.ones(3, np.float32), (np.arange(3), users)), shape=(3, 2625))
    items, scores = fm.recommend(X, 4, (943, 2625))
    assert items.shape == (3, 4) and scores.shape == (3, 4)
    w0, w, v = fm.intercept_, fm.coef_.astype(np.float64), fm.factors_.astype(np.float64)
    for r, u in enumerate(users):
        # score(u, i) = w0 + w_u + w_i + <v_u, v_i> for every movie i, from the fitted arrays.
        s = w0 + w[u] + w[943:] + v[943:] @ v[u]
        best = np.argsort(-s, kind="stable")[:4] + 943
        np.testing.assert_array_equal(items[r], best)
        np.testing.assert_allclose(scores[r], s[best - 943], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="item_range"):
        fm.recommend(X, 4, (943, 9999))
    with pytest.raises(TypeError, match="k must be an int"):
        fm.recommend(X, 2.5, (943, 2625))
