"""Estimator parameters generated from the C++ hyperparameter tables (core/hyperparams.h).

Each estimator's ``__init__`` is generated at import time from ``_core.hyperparameters(algo)``:
its arguments are SageMaker's hyperparameter names with the table's defaults (``"auto"`` stays the
string ``"auto"``), so Python, the CLI and the container can never disagree. Values are checked
for their Python type here (TypeError naming the parameter) and turned into SageMaker's strings;
ranges and choices are checked by the C++ table at ``fit`` (ValueError naming the parameter).
"""

import json
import numbers

import numpy as np

from . import _core

_TABLES = {}


def table(algorithm):
    """The C++ table of ``algorithm`` as a list of dicts (cached)."""
    if algorithm not in _TABLES:
        _TABLES[algorithm] = _core.hyperparameters(algorithm)
    return _TABLES[algorithm]


def python_name(hp_name):
    """SageMaker's hidden hyperparameters (``_optimizer``) become ``optimizer`` in Python."""
    return hp_name.lstrip("_")


def default_value(spec):
    """The table default as a Python value (None when the table has none)."""
    text = spec["default"]
    if text is None:
        return None
    if spec["allow_auto"] and text.lower() == "auto":
        return "auto"
    t = spec["type"]
    if t == "int":
        return int(text)
    if t == "float":
        return float(text)
    if t == "bool":
        return text.lower() == "true"
    if t == "list":
        return tuple(json.loads(text))
    return text


def to_hp_string(owner, name, spec, value):
    """SageMaker's string form of ``value`` for ``spec``; TypeError naming ``name`` when the
    Python type cannot be one."""
    t = spec["type"]
    if isinstance(value, str) and spec["allow_auto"] and value.lower() == "auto":
        return "auto"
    what = spec["valid"]

    def bad():
        return TypeError(f"{owner}: parameter '{name}' must be {what}, got {value!r} ({type(value).__name__})")

    if t == "int":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise bad()
        return str(int(value))
    if t == "float":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise bad()
        return repr(float(value))
    if t == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise bad()
        return "true" if value else "false"
    if t == "list":
        if isinstance(value, str):
            return value
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return json.dumps(list(value))
        raise bad()
    if not isinstance(value, str):
        raise bad()
    return value


def make_init(cls_name, params, extra):
    """Builds ``__init__(self, *, p1=d1, ..., device="auto", n_jobs=None, random_state=None)``.

    params: [(python_name, default)], extra: the same for the non-table arguments. The body only
    stores the arguments (scikit-learn's rule: validation happens in fit)."""
    names = [n for n, _ in params] + [n for n, _ in extra]
    defaults = {n: d for n, d in list(params) + list(extra)}
    args = ", ".join(f"{n}=__defaults[{n!r}]" for n in names)
    body = "\n".join(f"    self.{n} = {n}" for n in names) or "    pass"
    src = f"def __init__(self, *, {args}):\n{body}\n"
    ns = {"__defaults": defaults}
    exec(src, ns)  # noqa: S102 (generated from the C++ table, no user input)
    init = ns["__init__"]
    init.__qualname__ = f"{cls_name}.__init__"
    return init
