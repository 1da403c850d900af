"""The shared estimator machinery: fit through ``_core.train`` on in-memory arrays or files,
the model kept as its artifact files (picklable; ``mlforge.save`` writes them as model.tar.gz),
prediction through the C++ Predictor of that artifact."""

import numbers
import os
import shutil
import tempfile

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from . import _core, _params

try:  # scikit-learn >= 1.6: data validation is a function (the _validate_data method is gone in 1.7)
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # scikit-learn < 1.6
    _sk_validate_data = None

_DEVICES = ("auto", "cpu", "gpu")


def _validate(est, *args, **kwargs):
    """scikit-learn's validation of X (and y) for `est`, whichever scikit-learn is installed."""
    if _sk_validate_data is not None:
        return _sk_validate_data(est, *args, **kwargs)
    return est._validate_data(*args, **kwargs)


def _without_zero_weights(X, y, w, labels=None):
    """The rows of positive weight when some weights are 0: such rows add nothing to any sum, but in
    mini-batch training they would still take places in the batches (and in the linear learner's
    scaler sample), so a fit with them would differ from one without. Weights that are then all 1
    become None (the unweighted path). `labels` (classifiers: encoded classes) must keep every
    class; if dropping would lose one, nothing is dropped. Returns (X, y, w), copies only when rows
    are dropped."""
    if w is None:
        return X, y, w
    keep = w > 0
    if not keep.all():
        if labels is not None and np.unique(labels[keep]).size < np.unique(labels).size:
            return X, y, w
        rows = np.flatnonzero(keep)
        X = X[rows]
        y = None if y is None else y[rows]
        w = w[rows]
    if np.all(w == 1):
        w = None
    return X, y, w


def _sample_weight(owner, sample_weight, n):
    """sample_weight as float32 (n,) for the C++ reader, or None: a scalar applies to every row;
    each weight must be finite and >= 0 and their sum positive (ValueError naming the parameter)."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.dtype == object or not (np.issubdtype(w.dtype, np.number) or w.dtype == np.bool_):
        raise TypeError(f"{owner}: sample_weight must hold numbers, got dtype {w.dtype}")
    if w.ndim == 0:
        w = np.full(n, w, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(f"{owner}: sample_weight must have shape ({n},) like the rows of X, got {w.shape}")
    w = np.ascontiguousarray(w, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        raise ValueError(
            f"{owner}: sample_weight must be finite and >= 0; row {bad[0]} has {float(w[bad[0]])!r}"
        )
    if not w.sum(dtype=np.float64) > 0:
        raise ValueError(f"{owner}: sample_weight sums to 0; at least one row needs a positive weight")
    return w


def _channel(X, y, sample_weight=None):
    """A ``_core.Channel`` viewing X (float32 C-contiguous or CSR with int32 indices), y and the
    row weights (float32, already checked by ``_sample_weight``)."""
    y32 = None if y is None else np.ascontiguousarray(y, dtype=np.float32)
    if sp.issparse(X):
        X = X.tocsr()
        indices = X.indices if X.indices.dtype == np.int32 else X.indices.astype(np.int32)
        indptr = X.indptr if X.indptr.dtype in (np.int32, np.int64) else X.indptr.astype(np.int64)
        data = np.ascontiguousarray(X.data, dtype=np.float32)
        return _core.Channel.csr(data, np.ascontiguousarray(indices), np.ascontiguousarray(indptr), X.shape[1], y32,
                                 sample_weight)
    return _core.Channel.dense(np.ascontiguousarray(X, dtype=np.float32), y32, sample_weight)


def _read_model_dir(path):
    files = {}
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            with open(full, "rb") as f:
                files[name] = f.read()
    return files


def _write_model_dir(files, path):
    for name, data in files.items():
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)


class MlforgeEstimator(BaseEstimator):
    """Base of the mlforge estimators. Subclasses set ``_algorithm`` and call ``_declare``."""

    _algorithm = None
    _hp_map = {}  # python name -> (hyperparameter name, table spec)
    _fixed = ()  # hyperparameters set from the data or the class, never from the constructor

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _declare(cls, exclude=(), defaults=None):
        """Generates ``__init__`` and the class docstring from the C++ table."""
        defaults = defaults or {}
        params, hp_map, doc = [], {}, []
        for spec in _params.table(cls._algorithm):
            name = spec["name"]
            if name in exclude or name == "seed":
                continue
            py = _params.python_name(name)
            value = defaults.get(py, _params.default_value(spec))
            params.append((py, value))
            hp_map[py] = (name, spec)
            doc.append(f"    {py} : {spec['type']}, default={value!r}\n        {spec['doc']} ({spec['range']})")
        extra = [("device", "auto"), ("n_jobs", None), ("random_state", None)]
        doc.append('    device : {"auto", "cpu", "gpu"}, default="auto"\n        where training runs')
        doc.append("    n_jobs : int or None, default=None\n        threads (None or -1: all cores)")
        doc.append("    random_state : int, RandomState or None, default=None\n        the seed (None: 0)")
        cls.__init__ = _params.make_init(cls.__name__, params, extra)
        cls._hp_map = hp_map
        cls.__doc__ = (cls.__doc__ or "") + "\n\n    Parameters\n    ----------\n" + "\n".join(doc) + "\n"

    def _owner(self):
        return type(self).__name__

    def _hp_strings(self, fixed=()):
        """The constructor's hyperparameters as SageMaker strings; only values that differ from the
        table default are passed (as the CLI passes only what the user typed). Names in `fixed`
        come from the data instead."""
        out = {}
        for py, (name, spec) in self._hp_map.items():
            if name in fixed:
                continue
            value = getattr(self, py)
            if value is None:
                if spec["required"]:
                    raise ValueError(f"{self._owner()}: parameter '{py}' is required ({spec['valid']})")
                continue
            text = _params.to_hp_string(self._owner(), py, spec, value)
            if spec["default"] is None or text != spec["default"]:
                out[name] = text
        return out

    def _run_options(self):
        if not isinstance(self.device, str) or self.device.lower() not in _DEVICES:
            raise ValueError(f"{self._owner()}: parameter 'device' must be one of auto, cpu, gpu; got {self.device!r}")
        n_jobs = self.n_jobs
        if n_jobs is None or n_jobs == -1:
            threads = 0
        elif isinstance(n_jobs, numbers.Integral) and not isinstance(n_jobs, bool) and n_jobs >= 1:
            threads = int(n_jobs)
        else:
            raise ValueError(f"{self._owner()}: parameter 'n_jobs' must be None, -1 or a positive int; got {n_jobs!r}")
        rs = self.random_state
        if rs is None:
            seed = 0
        elif isinstance(rs, numbers.Integral) and not isinstance(rs, bool):
            if rs < 0:
                raise ValueError(f"{self._owner()}: parameter 'random_state' must be >= 0; got {rs}")
            seed = int(rs)
        elif isinstance(rs, np.random.RandomState):
            seed = int(rs.randint(np.iinfo(np.int32).max))
        else:
            raise TypeError(f"{self._owner()}: parameter 'random_state' must be an int, a RandomState or None; got {rs!r}")
        return self.device.lower(), threads, seed

    # ------------------------------------------------------------------ training
    def _train(self, channels, fixed_hps):
        """Trains on ``channels`` ({name: _core.Channel}); keeps the artifact and sets the
        fitted attributes."""
        hps = self._hp_strings(fixed_hps)
        hps.update(fixed_hps)
        device, threads, seed = self._run_options()
        if any(spec["name"] == "seed" for spec in _params.table(self._algorithm)):
            hps["seed"] = str(seed)  # also the Resources seed below (FM's table has no seed)
        tmp = tempfile.mkdtemp(prefix="mlforge-fit-")
        try:
            _core.train(self._algorithm, hps, channels, tmp, device, threads, seed)
            files = _read_model_dir(tmp)
            model = _core.load_model(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._set_model(files, model)
        return self

    def _set_model(self, files, model):
        self.model_files_ = files
        self.hyperparameters_ = model.get("hyperparameters", "{}")
        self.metrics_ = dict(model.get("metrics", {}))
        self._set_fitted(model)
        self._predictor = self._make_predictor()

    def _set_fitted(self, model):  # subclasses: scikit-learn's fitted attributes from the arrays
        raise NotImplementedError

    def fit_files(self, paths, content_type="", validation=None, test=None, feature_dim=None, num_classes=None):
        """Trains from files or directories (recordIO-protobuf, CSV or libsvm) streamed by the C++
        reader in bounded memory, as ``mlforge train`` does. ``content_type`` is SageMaker's
        ContentType ("text/csv;label_size=1", "application/x-recordio-protobuf", "text/libsvm");
        empty: from each file's extension. ``feature_dim`` (None: the width of the first rows) and
        ``num_classes`` (linear learner: > 2 trains a multiclass classifier on labels
        0..num_classes-1) are the hyperparameters the in-memory fit takes from X and y. Labels in
        the files are SageMaker's: 0/1 for binary classifiers."""
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        channels = {"train": _core.Channel.files([os.fspath(p) for p in paths], content_type)}
        for name, extra in (("validation", validation), ("test", test)):
            if extra is not None:
                extra = [extra] if isinstance(extra, (str, os.PathLike)) else extra
                channels[name] = _core.Channel.files([os.fspath(p) for p in extra], content_type)
        fixed = self._fixed_for_files()
        if feature_dim is None:
            feature_dim = _core.peek_width(channels["train"])
        fixed["feature_dim"] = str(int(feature_dim))
        if num_classes is not None and int(num_classes) > 2:
            fixed["predictor_type"] = "multiclass_classifier"
            fixed["num_classes"] = str(int(num_classes))
        self._train(channels, fixed)
        self._after_fit_files()
        return self

    def _fixed_for_files(self):
        return {}

    def _after_fit_files(self):
        pass

    # ------------------------------------------------------------------ prediction
    # Made once when the model is set (and after unpickling): predict/transform must leave
    # __dict__ unchanged (scikit-learn's check_dict_unchanged).
    def _make_predictor(self):
        tmp = tempfile.mkdtemp(prefix="mlforge-model-")
        try:
            _write_model_dir(self.model_files_, tmp)
            return _core.Predictor(tmp, self._algorithm)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _get_predictor(self):
        check_is_fitted(self, "model_files_")
        return self._predictor

    def _predict_columns(self, X, attributes=""):
        """The C++ predictor's output columns for validated X: {name: (n, width) float32}."""
        pred = self._get_predictor()
        device, threads, _ = self._run_options()
        # Prediction runs on the host for every algorithm but k-means; "auto" never needs a GPU.
        device = "cpu" if device == "auto" else device
        if sp.issparse(X):
            X = X.tocsr()
            return pred.predict_csr(
                np.ascontiguousarray(X.data, dtype=np.float32),
                np.ascontiguousarray(X.indices, dtype=np.int32),
                np.ascontiguousarray(X.indptr, dtype=np.int64),
                X.shape[1],
                device,
                threads,
                attributes,
            )
        return pred.predict_dense(np.ascontiguousarray(X, dtype=np.float32), device, threads, attributes)

    def _check_X(self, X, reset):
        return _validate(self, X, accept_sparse="csr", dtype=np.float32, order="C", reset=reset)

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_predictor", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "model_files_" in state:
            self._predictor = self._make_predictor()

    def _more_tags(self):  # scikit-learn < 1.6
        return {"preserves_dtype": [np.float32]}

    def __sklearn_tags__(self):  # scikit-learn >= 1.6 (transformers add preserves_dtype in their class)
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # CSR input is streamed as is
        return tags
