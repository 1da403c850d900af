"""scikit-learn's estimator checks on every mlforge estimator. Checks that cannot pass are listed
in EXPECTED_FAILURES with the reason and must fail (xfail strict)."""

import pytest
import sklearn
from sklearn.utils.estimator_checks import parametrize_with_checks

import mlforge

ESTIMATORS = [
    mlforge.KMeans(),
    mlforge.PCA(),
    mlforge.LinearLearnerClassifier(),
    mlforge.LinearLearnerRegressor(),
    mlforge.FactorizationMachinesRegressor(),
    mlforge.FactorizationMachinesClassifier(),
]

# (estimator class name, check name) -> why it cannot pass.
_LL_THRESHOLD = (
    "predict uses the binary model's calibrated threshold (SageMaker's predicted_label, chosen by "
    "binary_classifier_model_selection_criteria=accuracy), not 0.5, so argmax(predict_proba) differs "
    "from predict on rows near the boundary (2 of 200 here)"
)
_FM_DEFAULTS = (
    "with SageMaker's defaults (epochs=1, adam, bias/linear/factors lr 0.1/0.001/0.0001, normal init) "
    "factorization machines barely move from their initial model on 100-300 rows; the check asks "
    "accuracy > 0.83 or R^2 > 0.5 with default parameters"
)
_ZERO_WEIGHT_ROWS = (
    "rows of weight 0 are dropped before training, but this check also shuffles the rows, and "
    "mini-batch training depends on their order (SGD steps; k-means' streaming updates and so its "
    "cluster numbering): the fit sees the same rows in another order. test_sample_weight.py checks "
    "that zero weights give exactly the model trained without those rows"
)
EXPECTED_FAILURES = {
    ("KMeans", "check_sample_weights_invariance(kind=zeros)"): _ZERO_WEIGHT_ROWS,
    ("LinearLearnerRegressor", "check_sample_weights_invariance(kind=zeros)"): _ZERO_WEIGHT_ROWS,
    ("LinearLearnerClassifier", "check_classifiers_train"): _LL_THRESHOLD,
    ("FactorizationMachinesRegressor", "check_regressors_train"): _FM_DEFAULTS,
    ("FactorizationMachinesClassifier", "check_classifiers_train"): _FM_DEFAULTS,
}
# scikit-learn < 1.6 has no multi_class tag, so this check also trains on its multiclass target
# (which the binary-only FM refuses); from 1.6 it keeps to binary targets and passes.
if tuple(int(p) for p in sklearn.__version__.split(".")[:2]) < (1, 6):
    EXPECTED_FAILURES[("FactorizationMachinesClassifier", "check_classifiers_classes")] = (
        _FM_DEFAULTS + " (it predicts a single class, which the check refuses)"
    )


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check, request):
    name = check.func.__name__ if hasattr(check, "func") else check.__name__
    kind = getattr(check, "keywords", {}).get("kind")
    if kind is not None:
        name += f"(kind={kind})"
    reason = EXPECTED_FAILURES.get((type(estimator).__name__, name))
    if reason:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))
    check(estimator)
