"""SageMaker model artifacts <-> fitted estimators."""

import io as _io
import json
import os
import tarfile
import tempfile

from . import _core, estimators


def _artifact_files(path):
    """{member name: bytes} of a model directory, a model.tar.gz or a bare model_algo-1."""
    path = os.fspath(path)
    if os.path.isdir(path):
        names = sorted(os.listdir(path))
        if "model_algo-1" not in names:
            tars = [n for n in names if n.endswith(".tar.gz")]
            if len(tars) == 1:
                return _artifact_files(os.path.join(path, tars[0]))
        files = {}
        for n in names:
            full = os.path.join(path, n)
            if os.path.isfile(full) and not n.startswith("."):
                with open(full, "rb") as f:
                    files[n] = f.read()
        return files
    if tarfile.is_tarfile(path):
        files = {}
        with tarfile.open(path, "r:*") as t:
            for m in t.getmembers():
                if m.isfile():
                    files[os.path.basename(m.name)] = t.extractfile(m).read()
        return files
    with open(path, "rb") as f:
        return {"model_algo-1": f.read()}


def load(path):
    """A fitted estimator from a model artifact (directory, model.tar.gz or bare model_algo-1),
    ours or SageMaker's. Hyperparameters recorded in mlforge's metadata are set on the estimator;
    SageMaker's artifacts carry none, so those estimators keep the defaults. Classifiers loaded
    this way have classes_ = 0..n_classes-1 (SageMaker's labels)."""
    path = os.fspath(path)
    model = _core.load_model(path)
    algo = model["algorithm"]
    kind = model.get("predictor_type", "")
    if algo == "kmeans":
        cls = estimators.KMeans
    elif algo == "pca":
        cls = estimators.PCA
    elif algo == "linear-learner":
        cls = estimators.LinearLearnerRegressor if kind == "regressor" else estimators.LinearLearnerClassifier
    elif algo == "factorization-machines":
        cls = (
            estimators.FactorizationMachinesRegressor
            if kind == "regressor"
            else estimators.FactorizationMachinesClassifier
        )
    else:
        raise ValueError(f"{path}: no estimator for algorithm '{algo}'")
    est = cls()
    params = est.get_params()
    try:
        recorded = json.loads(model.get("hyperparameters") or "{}")
    except ValueError:
        recorded = {}
    for name, (hp, spec) in cls._hp_map.items():
        if hp in recorded and name in params and str(recorded[hp]).lower() != "auto":
            try:
                from ._params import default_value

                est.set_params(**{name: default_value(dict(spec, default=str(recorded[hp])))})
            except (ValueError, TypeError):
                pass
    files = _artifact_files(path)
    est._set_model(files, model)
    if hasattr(est, "_after_fit_files"):
        est._after_fit_files()
    return est


def save(est, path):
    """Writes the fitted estimator's artifact as model.tar.gz (SageMaker's layout, members at the
    top level): `path` ending in .tar.gz is the file, otherwise a directory that receives
    model.tar.gz. Returns the file's path. `mlforge serve --model FILE` and mlforge.load read it."""
    files = getattr(est, "model_files_", None)
    if files is None:
        raise ValueError(f"{type(est).__name__} is not fitted; call fit before save")
    path = os.fspath(path)
    if not path.endswith(".tar.gz"):
        os.makedirs(path, exist_ok=True)
        path = os.path.join(path, "model.tar.gz")
    fd, tmp = tempfile.mkstemp(prefix=".model-", suffix=".tar.gz", dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        with tarfile.open(tmp, "w:gz") as t:
            for name in sorted(files):
                info = tarfile.TarInfo(name)
                info.size = len(files[name])
                info.mode = 0o644
                t.addfile(info, _io.BytesIO(files[name]))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path
