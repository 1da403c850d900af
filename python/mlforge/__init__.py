"""mlforge: SageMaker's k-means, linear learner, PCA and factorization machines (C++/CUDA) as
scikit-learn estimators, reading and writing SageMaker's model artifacts.

    import mlforge
    km = mlforge.KMeans(k=5).fit(X)
    mlforge.save(km, "model.tar.gz")      # `mlforge serve --model model.tar.gz` serves it
    km2 = mlforge.load("model.tar.gz")     # ours or SageMaker's artifact

The C++ log goes to stderr at level $MLFORGE_LOG_LEVEL (default "warn"; "info" shows the training
log the CLI prints); mlforge.set_log_level changes it.
"""

import os as _os

from . import _core
from . import io
from ._artifact import load, save
from .estimators import (
    PCA,
    FactorizationMachinesClassifier,
    FactorizationMachinesRegressor,
    KMeans,
    LinearLearnerClassifier,
    LinearLearnerRegressor,
)

__version__ = "0.1.0"
__all__ = [
    "KMeans",
    "PCA",
    "LinearLearnerClassifier",
    "LinearLearnerRegressor",
    "FactorizationMachinesRegressor",
    "FactorizationMachinesClassifier",
    "load",
    "save",
    "io",
    "set_log_level",
    "build_info",
]


def set_log_level(level):
    """The C++ log level: "trace", "debug", "info", "warn", "error" or "off"."""
    _core.set_log_level(level)


def build_info():
    """Build options (CUDA, archs, compiler) and whether a GPU is usable here."""
    return _core.build_info()


set_log_level(_os.environ.get("MLFORGE_LOG_LEVEL", "warn"))
