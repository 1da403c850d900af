"""sample_weight in KMeans and the linear learner estimators (issue 15): bad weights are clear
errors; a constant weight changes nothing; zero weights remove rows' influence; weighted results
agree with scikit-learn's weighted estimators."""

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs, make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression

import mlforge


@pytest.mark.parametrize("make", [lambda: mlforge.KMeans(k=3), lambda: mlforge.LinearLearnerRegressor()])
@pytest.mark.parametrize(
    "weights, exc, words",
    [
        (lambda n: -np.ones(n), ValueError, "sample_weight must be finite and >= 0; row 0 has -1.0"),
        (lambda n: np.r_[np.ones(n - 1), np.nan], ValueError, "sample_weight must be finite and >= 0"),
        (lambda n: np.ones(n - 1), ValueError, "sample_weight must have shape"),
        (lambda n: np.zeros(n), ValueError, "sample_weight sums to 0"),
        (lambda n: np.array(["a"] * n), TypeError, "sample_weight must hold numbers"),
    ],
)
def test_bad_sample_weight_names_the_parameter(make, weights, exc, words):
    X, y = make_regression(n_samples=60, n_features=3, random_state=0)
    with pytest.raises(exc, match=words.replace("(", r"\(").replace(")", r"\)")):
        est = make()
        if isinstance(est, mlforge.KMeans):
            est.fit(X, sample_weight=weights(60))
        else:
            est.fit(X, y, sample_weight=weights(60))


def test_constant_weights_change_nothing():
    # A power-of-two weight scales every sum exactly, and every update divides it out again.
    X, y = make_classification(n_samples=2000, n_features=8, random_state=1)
    a = mlforge.LinearLearnerClassifier(epochs=3, random_state=0).fit(X, y)
    b = mlforge.LinearLearnerClassifier(epochs=3, random_state=0).fit(X, y, sample_weight=2.0)
    np.testing.assert_allclose(b.coef_, a.coef_, rtol=1e-5, atol=1e-7)
    Xr, yr = make_regression(n_samples=2000, n_features=8, noise=1.0, random_state=2)
    a = mlforge.LinearLearnerRegressor(epochs=3, random_state=0).fit(Xr, yr)
    b = mlforge.LinearLearnerRegressor(epochs=3, random_state=0).fit(Xr, yr, sample_weight=np.full(2000, 4.0))
    np.testing.assert_allclose(b.coef_, a.coef_, rtol=1e-5, atol=1e-6)
    Xb, _ = make_blobs(n_samples=3000, centers=4, n_features=5, random_state=3)
    a = mlforge.KMeans(k=4, random_state=0).fit(Xb)
    b = mlforge.KMeans(k=4, random_state=0).fit(Xb, sample_weight=np.full(3000, 0.5))
    np.testing.assert_allclose(b.cluster_centers_, a.cluster_centers_, rtol=1e-5, atol=1e-5)
    assert b.inertia_ == pytest.approx(0.5 * a.inertia_, rel=1e-6)


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_zero_weights_silence_corrupted_rows_like_sklearn():
    X, y = make_classification(n_samples=6000, n_features=10, n_informative=6, class_sep=1.5, random_state=4)
    Xt, yt = X[4000:], y[4000:]
    X, y = X[:4000], y[:4000].copy()
    bad = np.random.default_rng(5).random(4000) < 0.35
    y[bad] = (X[bad, 9] > 0).astype(y.dtype)  # a third of the rows labelled by another concept
    w = np.where(bad, 0.0, 1.0)
    noisy = mlforge.LinearLearnerClassifier(epochs=5, random_state=0).fit(X, y)
    weighted = mlforge.LinearLearnerClassifier(epochs=5, random_state=0).fit(X, y, sample_weight=w)
    clean = mlforge.LinearLearnerClassifier(epochs=5, random_state=0).fit(X[~bad], y[~bad])
    acc = {name: (m.predict(Xt) == yt).mean() for name, m in
           [("noisy", noisy), ("weighted", weighted), ("clean", clean)]}
    assert acc["weighted"] >= acc["noisy"] + 0.03, acc  # measured 0.912 vs 0.851
    assert abs(acc["weighted"] - acc["clean"]) <= 0.02, acc
    # Zero weights give the model trained without those rows: those rows are dropped before
    # training (in mini-batches they would still take places), so the model is the same.
    np.testing.assert_array_equal(weighted.coef_, clean.coef_)
    assert weighted.threshold_ == clean.threshold_
    assert _cos(noisy.coef_[0], clean.coef_[0]) < 0.9  # the corrupted rows do matter (0.76)
    # And as close to scikit-learn's weighted logistic regression as the unweighted fits are to
    # each other (mlforge's defaults regularise and normalise differently: 0.93 both ways).
    sk_weighted = LogisticRegression(max_iter=1000).fit(X, y, sample_weight=w)
    sk_clean = LogisticRegression(max_iter=1000).fit(X[~bad], y[~bad])
    assert _cos(weighted.coef_[0], sk_weighted.coef_[0]) >= _cos(clean.coef_[0], sk_clean.coef_[0]) - 0.02


def test_weighted_regressor_matches_weighted_least_squares():
    X, y = make_regression(n_samples=5000, n_features=6, noise=5.0, random_state=6)
    w = np.random.default_rng(7).uniform(0.2, 3.0, 5000)
    y = y + 40.0 * (w > 2.0)  # rows of large weight shifted: unweighted and weighted fits differ
    ref = LinearRegression().fit(X, y, sample_weight=w)
    plain = LinearRegression().fit(X, y)
    est = mlforge.LinearLearnerRegressor(epochs=15, random_state=0).fit(X, y, sample_weight=w)
    assert abs(ref.intercept_ - plain.intercept_) > 5.0  # the weights matter here
    assert est.intercept_ == pytest.approx(ref.intercept_, abs=1.0)
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=0.05, atol=0.5)


def test_kmeans_ignores_zero_weight_rows_and_matches_weighted_sklearn():
    X, _ = make_blobs(n_samples=3000, centers=[[0, 0], [6, 0], [0, 6]], cluster_std=0.6, random_state=8)
    far, _ = make_blobs(n_samples=300, centers=[[40, 40]], cluster_std=0.5, random_state=9)
    Xa = np.vstack([X, far])
    w = np.r_[np.ones(3000), np.zeros(300)]
    est = mlforge.KMeans(k=3, random_state=0).fit(Xa, sample_weight=w)
    # The zero-weight rows are dropped before training: the model of X alone, exactly.
    np.testing.assert_array_equal(est.cluster_centers_, mlforge.KMeans(k=3, random_state=0).fit(X).cluster_centers_)
    assert est.labels_.shape == (3300,)  # labels_ and inertia_ still cover every row given
    ref = SkKMeans(3, n_init=10, random_state=0).fit(X)
    for c in ref.cluster_centers_:
        assert np.min(np.linalg.norm(est.cluster_centers_ - c, axis=1)) < 0.1, est.cluster_centers_
    # Fractional weights: the same weighted objective as scikit-learn's weighted KMeans.
    wf = np.random.default_rng(10).uniform(0.1, 5.0, 3000)
    est = mlforge.KMeans(k=3, random_state=0, full_batch_lloyd_iterations=50).fit(X, sample_weight=wf)
    ref = SkKMeans(3, n_init=10, random_state=0).fit(X, sample_weight=wf)
    assert est.inertia_ == pytest.approx(ref.inertia_, rel=0.01)
