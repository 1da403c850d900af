"""scikit-learn estimators over mlforge's C++ algorithms.

Constructor arguments are SageMaker's hyperparameters (names and defaults generated from the C++
tables; ``feature_dim``, ``predictor_type`` and ``num_classes`` come from the data and the class
instead), plus ``device``, ``n_jobs`` and ``random_state``. SageMaker's hidden hyperparameters
(``_optimizer`` of factorization machines) drop the leading underscore.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.base import ClassifierMixin, ClusterMixin, RegressorMixin, TransformerMixin
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, check_is_fitted

from ._base import MlforgeEstimator, _channel, _sample_weight, _validate, _without_zero_weights


def _n_samples_check(owner, n, need, what):
    if n < need:
        raise ValueError(f"{owner}: n_samples={n} should be >= {need} ({what})")


def _encode_classes(owner, classes, y):
    """Indices of y's labels in ``classes`` (float32); ValueError naming a label not among them."""
    idx = np.searchsorted(classes, y)
    idx = np.clip(idx, 0, classes.shape[0] - 1)
    bad = classes[idx] != y
    if np.any(bad):
        raise ValueError(f"{owner}: held_out has label {y[np.argmax(bad)]!r}, which is not a class of y {list(classes)}")
    return idx.astype(np.float32)


def _held_out(owner, what, data, n_features, encode=None):
    """A held-out (X, y) pair as a channel: checked like X and y, with the training data's width;
    ``encode`` maps classifier labels to the training data's class indices."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{owner}: {what} must be an (X, y) pair, got {type(data).__name__}")
    X, y = data
    X = check_array(X, accept_sparse="csr", dtype=np.float32, order="C")
    y = np.asarray(y)
    if X.shape[1] != n_features:
        raise ValueError(f"{owner}: {what} has {X.shape[1]} features, the training data {n_features}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{owner}: {what} has {X.shape[0]} rows but {y.shape[0]} labels")
    y = encode(y) if encode is not None else y.astype(np.float32)
    return _channel(X, y)


class _Float32Transform:
    """Tags of the transformers (scikit-learn >= 1.6): transform returns float32 whatever X's dtype.
    Listed first among the bases so that it amends the tags the scikit-learn mixins set."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


class _RegressorFit:
    """fit / predict shared by the regressors: predictor_type regressor, the score column."""

    _held_out_channel = "validation"  # what fit(..., held_out=) feeds: linear learner's validation

    def fit(self, X, y, held_out=None):
        """``held_out``: an optional (X, y) pair for the algorithm's held-out channel: the linear
        learner's validation channel (model selection and early stopping), factorization machines'
        test channel (test metrics in ``metrics_``)."""
        X, y = _validate(self, X, y, accept_sparse="csr", dtype=np.float32, order="C", y_numeric=True)
        channels = {"train": _channel(X, y)}
        if held_out is not None:
            channels[self._held_out_channel] = _held_out(self._owner(), "held_out", held_out, X.shape[1])
        self._train(channels, {"feature_dim": str(X.shape[1]), "predictor_type": "regressor"})
        return self

    def _fixed_for_files(self):
        return {"predictor_type": "regressor"}

    def predict(self, X):
        check_is_fitted(self, "model_files_")
        X = self._check_X(X, reset=False)
        return self._predict_columns(X)["score"][:, 0]


class _LabelPredictions:
    """predict / predict_proba shared by the classifiers: SageMaker's predicted_label mapped back to
    classes_, and the score (one column: the positive class's probability) as probabilities."""

    def predict(self, X):
        check_is_fitted(self, "model_files_")
        X = self._check_X(X, reset=False)
        labels = self._predict_columns(X)["predicted_label"][:, 0].astype(np.int64)
        return self.classes_[labels]

    def predict_proba(self, X):
        check_is_fitted(self, "model_files_")
        X = self._check_X(X, reset=False)
        score = self._predict_columns(X)["score"].astype(np.float64)
        if score.shape[1] == 1:
            return np.column_stack([1.0 - score[:, 0], score[:, 0]])
        return score


# ---------------------------------------------------------------------------------------- k-means
class KMeans(_Float32Transform, ClusterMixin, TransformerMixin, MlforgeEstimator):
    """SageMaker's k-means (``kmeans`` image): streaming mini-batch k-means with a final local
    Lloyd reduction; ``full_batch_lloyd_iterations`` > 0 adds exact Lloyd passes (mlforge
    extension). ``k`` defaults to 8 here (scikit-learn's n_clusters; SageMaker requires it).

    Fitted attributes: cluster_centers_ (k, n_features), labels_ and inertia_ (when fitted on
    arrays), n_features_in_, model_files_ (the artifact), metrics_."""

    _algorithm = "kmeans"

    def fit(self, X, y=None, sample_weight=None):
        """``sample_weight``: per-row weights (finite, >= 0): the rows' shares in the centers'
        means, in the k-means++ seeding and in ``inertia_``."""
        X = self._check_X(X, reset=True)
        w = _sample_weight(self._owner(), sample_weight, X.shape[0])
        Xt, _, wt = _without_zero_weights(X, None, w)
        k = self.k
        if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            _n_samples_check(self._owner(), Xt.shape[0], int(k), f"k={k}")
        self._train({"train": _channel(Xt, None, wt)}, {"feature_dim": str(X.shape[1])})
        self.labels_ = self.predict(X)
        d = euclidean_distances(X, self.cluster_centers_, squared=True)[np.arange(X.shape[0]), self.labels_]
        self.inertia_ = float(d.sum() if w is None else (w.astype(np.float64) * d).sum())
        return self

    def _set_fitted(self, model):
        self.cluster_centers_ = np.asarray(model["cluster_centers"])
        self.n_features_in_ = self.cluster_centers_.shape[1]

    def predict(self, X):
        check_is_fitted(self, "model_files_")
        X = self._check_X(X, reset=False)
        return self._predict_columns(X)["closest_cluster"][:, 0].astype(np.int32)

    def transform(self, X):
        """Euclidean distances to every center, (n, k)."""
        check_is_fitted(self, "model_files_")
        X = self._check_X(X, reset=False)
        return euclidean_distances(X, self.cluster_centers_)

    def score(self, X, y=None):
        """Opposite of the sum of squared distances to the closest centers (scikit-learn's)."""
        check_is_fitted(self, "model_files_")
        X = self._check_X(X, reset=False)
        d = euclidean_distances(X, self.cluster_centers_, squared=True)
        return -float(d.min(axis=1).sum())


KMeans._declare(exclude=("feature_dim",), defaults={"k": 8})


# --------------------------------------------------------------------------------------------- PCA
class PCA(_Float32Transform, TransformerMixin, MlforgeEstimator):
    """SageMaker's PCA (``pca`` image). ``num_components`` None (default) keeps
    min(n_samples, n_features) components (SageMaker requires it).

    scikit-learn's order: components_ (n_components, n_features), singular_values_,
    explained_variance_ and transform's columns are by decreasing singular value (SageMaker's
    regular-mode artifact stores them ascending); NaN singular values (rank-deficient data) last.
    Fitted attributes also: mean_, n_components_, n_features_in_, model_files_."""

    _algorithm = "pca"

    def fit(self, X, y=None):
        X = self._check_X(X, reset=True)
        _n_samples_check(self._owner(), X.shape[0], 2, "PCA needs at least 2 samples")
        fixed = {"feature_dim": str(X.shape[1])}
        if self.num_components is None:
            fixed["num_components"] = str(min(X.shape))
        self._train({"train": _channel(X, None)}, fixed)
        return self

    def _fixed_for_files(self):
        if self.num_components is None:
            raise ValueError("PCA.fit_files: parameter 'num_components' is required (an integer >= 1)")
        return {}

    def _set_fitted(self, model):
        s = np.asarray(model["s"], dtype=np.float32)
        v = np.asarray(model["v"], dtype=np.float32)
        self._order = np.argsort(np.where(np.isnan(s), np.inf, -s), kind="stable")
        self.singular_values_ = s[self._order]
        self.components_ = np.ascontiguousarray(v[:, self._order].T)
        self.n_components_ = int(s.shape[0])
        self.n_features_in_ = int(v.shape[0])
        mean = model.get("mean")
        self.mean_ = np.zeros(v.shape[0], np.float32) if mean is None else np.asarray(mean)
        ev = np.asarray(model.get("explained_variance", []))
        evr = np.asarray(model.get("explained_variance_ratio", []))
        self.explained_variance_ = ev[self._order] if ev.shape[0] == s.shape[0] else None
        self.explained_variance_ratio_ = evr[self._order] if evr.shape[0] == s.shape[0] else None

    def transform(self, X):
        check_is_fitted(self, "model_files_")
        X = self._check_X(X, reset=False)
        return np.ascontiguousarray(self._predict_columns(X)["projection"][:, self._order])

    def inverse_transform(self, X):
        check_is_fitted(self, "model_files_")
        return np.asarray(X) @ self.components_ + self.mean_


PCA._declare(exclude=("feature_dim",), defaults={"num_components": None})


# ------------------------------------------------------------------------------- linear learner
class _LinearLearner(MlforgeEstimator):
    _algorithm = "linear-learner"

    def _set_weights(self, model):
        self.weights_ = np.asarray(model["weights"])  # (d, k) as stored
        self.bias_ = np.asarray(model["bias"])
        self.threshold_ = float(model["threshold"])
        self.loss_ = model["loss"]
        self.n_features_in_ = self.weights_.shape[0]


class LinearLearnerClassifier(ClassifierMixin, _LabelPredictions, _LinearLearner):
    """SageMaker's linear learner as a classifier: predictor_type binary_classifier for two
    classes, multiclass_classifier (num_classes from y) for more. ``predict`` uses the model's
    calibrated threshold (binary; SageMaker's predicted_label); ``predict_proba`` is its score
    (logistic / softmax). Fitted: classes_, coef_ (1 or n_classes, n_features), intercept_,
    threshold_, n_features_in_, model_files_."""

    def fit(self, X, y, held_out=None, sample_weight=None):
        """``held_out``: an optional (X, y) pair for the validation channel, which then drives the
        model selection, threshold calibration and early stopping (as ``mlforge train --validation``);
        its labels must be classes seen in y. ``sample_weight``: per-row weights (finite, >= 0)
        multiplying each row's loss and gradient (and, with ``positive_example_weight_mult``, the
        class weight)."""
        X, y = _validate(self, X, y, accept_sparse="csr", dtype=np.float32, order="C")
        w = _sample_weight(self._owner(), sample_weight, X.shape[0])
        check_classification_targets(y)
        classes, y_enc = np.unique(y, return_inverse=True)
        if classes.shape[0] < 2:
            raise ValueError(
                f"{self._owner()}: y holds only one class ({classes[0]!r}); a classifier needs at least 2 classes"
            )
        fixed = {"feature_dim": str(X.shape[1])}
        if classes.shape[0] == 2:
            fixed["predictor_type"] = "binary_classifier"
        else:
            fixed["predictor_type"] = "multiclass_classifier"
            fixed["num_classes"] = str(classes.shape[0])
        Xt, yt, wt = _without_zero_weights(X, y_enc.astype(np.float32), w, labels=y_enc)
        channels = {"train": _channel(Xt, yt, wt)}
        if held_out is not None:
            channels["validation"] = _held_out(self._owner(), "held_out", held_out, X.shape[1],
                                               lambda yv: _encode_classes(self._owner(), classes, yv))
        self._train(channels, fixed)
        self.classes_ = classes
        return self

    def _set_fitted(self, model):
        if model["predictor_type"] == "regressor":
            raise ValueError("the model is a linear-learner regressor; use LinearLearnerRegressor")
        self._set_weights(model)
        self.coef_ = np.ascontiguousarray(self.weights_.T)
        self.intercept_ = self.bias_.copy()
        k = self.weights_.shape[1]
        self.classes_ = np.arange(2 if k == 1 else k)

    def _fixed_for_files(self):
        # Labels in files are SageMaker's: 0/1 (binary) or 0..num_classes-1 (fit_files(num_classes=K)).
        return {"predictor_type": "binary_classifier"}

    def _after_fit_files(self):
        self.classes_ = np.arange(2 if self.weights_.shape[1] == 1 else self.weights_.shape[1])


LinearLearnerClassifier._declare(
    exclude=("feature_dim", "predictor_type", "num_classes", "_tuning_objective_metric")
)


class LinearLearnerRegressor(RegressorMixin, _RegressorFit, _LinearLearner):
    """SageMaker's linear learner with predictor_type regressor. Fitted: coef_ (n_features,),
    intercept_ (float), n_features_in_, model_files_."""

    def fit(self, X, y, held_out=None, sample_weight=None):
        """``held_out``: an optional (X, y) pair for the validation channel (model selection and
        early stopping). ``sample_weight``: per-row weights (finite, >= 0) multiplying each row's
        loss and gradient."""
        X, y = _validate(self, X, y, accept_sparse="csr", dtype=np.float32, order="C", y_numeric=True)
        w = _sample_weight(self._owner(), sample_weight, X.shape[0])
        Xt, yt, wt = _without_zero_weights(X, y, w)
        channels = {"train": _channel(Xt, yt, wt)}
        if held_out is not None:
            channels["validation"] = _held_out(self._owner(), "held_out", held_out, X.shape[1])
        self._train(channels, {"feature_dim": str(X.shape[1]), "predictor_type": "regressor"})
        return self

    def _set_fitted(self, model):
        if model["predictor_type"] != "regressor":
            raise ValueError("the model is a linear-learner classifier; use LinearLearnerClassifier")
        self._set_weights(model)
        self.coef_ = self.weights_[:, 0].copy()
        self.intercept_ = float(self.bias_[0])


LinearLearnerRegressor._declare(
    exclude=("feature_dim", "predictor_type", "num_classes", "_tuning_objective_metric")
)


# ----------------------------------------------------------------------- factorization machines
class _FactorizationMachines(MlforgeEstimator):
    _algorithm = "factorization-machines"

    def _set_params_fitted(self, model):
        self.intercept_ = float(model["w0"])
        self.coef_ = np.asarray(model["w"])
        self.factors_ = np.asarray(model["v"])
        self.n_features_in_ = self.coef_.shape[0]

    def recommend(self, X, k, item_range):
        """Exact top-k recommendations (the C++ predictor's, as the endpoint's top_k request option):
        for each row of X (e.g. a user's one-hot features) and every feature i in
        ``item_range = (begin, end)`` (END exclusive) that is zero in the row, the score of the row
        with x_i = 1 added (a probability for the classifier). Returns (items, scores), both
        (n_samples, k), best first; missing candidates are -1 / NaN."""
        check_is_fitted(self, "model_files_")
        X = self._check_X(X, reset=False)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"{self._owner()}: k must be an int, got {type(k).__name__}")
        try:
            begin, end = (int(v) for v in item_range)
        except (TypeError, ValueError):
            raise TypeError(f"{self._owner()}: item_range must be a (begin, end) pair of ints, got {item_range!r}")
        cols = self._predict_columns(X, f"top_k={int(k)}; item_range={begin}:{end}")
        return cols["top_k_items"].astype(np.int64), cols["top_k_scores"]


class FactorizationMachinesRegressor(RegressorMixin, _RegressorFit, _FactorizationMachines):
    """SageMaker's factorization machines, predictor_type regressor. ``num_factors`` defaults to
    64 here (SageMaker requires it). Fitted: intercept_ (w0), coef_ (w, (n_features,)), factors_
    (v, (n_features, num_factors)), n_features_in_, model_files_; with fit(..., held_out=(X, y)),
    the test channel's rmse / mse / absolute_loss in metrics_."""

    _held_out_channel = "test"

    def _set_fitted(self, model):
        if model["predictor_type"] != "regressor":
            raise ValueError("the model is a factorization-machines classifier; use FactorizationMachinesClassifier")
        self._set_params_fitted(model)


FactorizationMachinesRegressor._declare(exclude=("feature_dim", "predictor_type"), defaults={"num_factors": 64})


class FactorizationMachinesClassifier(ClassifierMixin, _LabelPredictions, _FactorizationMachines):
    """SageMaker's factorization machines, predictor_type binary_classifier (two classes only).
    ``num_factors`` defaults to 64 here. Fitted: classes_, intercept_, coef_, factors_,
    n_features_in_, model_files_."""

    def fit(self, X, y):
        X, y = _validate(self, X, y, accept_sparse="csr", dtype=np.float32, order="C")
        check_classification_targets(y)
        classes, y_enc = np.unique(y, return_inverse=True)
        if classes.shape[0] != 2:
            raise ValueError(
                f"Only binary classification is supported. The type of the target is {type_of_target(y)}. "
                f"{self._owner()}: factorization machines classify two classes (binary_classifier); "
                f"y holds {classes.shape[0]} class{'es' if classes.shape[0] != 1 else ''}"
            )
        fixed = {"feature_dim": str(X.shape[1]), "predictor_type": "binary_classifier"}
        self._train({"train": _channel(X, y_enc.astype(np.float32))}, fixed)
        self.classes_ = classes
        return self

    def _fixed_for_files(self):
        return {"predictor_type": "binary_classifier"}

    def _set_fitted(self, model):
        if model["predictor_type"] != "binary_classifier":
            raise ValueError("the model is a factorization-machines regressor; use FactorizationMachinesRegressor")
        self._set_params_fitted(model)
        self.classes_ = np.arange(2)

    def _more_tags(self):  # scikit-learn < 1.6
        return {"binary_only": True, "preserves_dtype": [np.float32]}

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        if tags.classifier_tags is not None:
            tags.classifier_tags.multi_class = False
        return tags


FactorizationMachinesClassifier._declare(exclude=("feature_dim", "predictor_type"), defaults={"num_factors": 64})

ESTIMATORS = (
    KMeans,
    PCA,
    LinearLearnerClassifier,
    LinearLearnerRegressor,
    FactorizationMachinesRegressor,
    FactorizationMachinesClassifier,
)
