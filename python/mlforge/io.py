"""Reading and writing SageMaker's data formats through the C++ reader and writers (the ones
`mlforge data convert` uses): recordIO-protobuf (dense or sparse), CSV and libsvm."""

import os

import numpy as np
import scipy.sparse as sp

from . import _core


def write_recordio(X, y, path):
    """Writes X (dense (n, d) array or scipy sparse matrix: sparse tensors) and labels y (or None)
    to `path` as recordIO-protobuf, as SageMaker's write_numpy_to_dense_tensor /
    write_spmatrix_to_sparse_tensor do."""
    _write(X, y, path, "recordio")


def write_rows(X, y, path, format=""):
    """Like write_recordio in any format the CLI writes ("recordio", "csv", "libsvm"; "": from
    the extension)."""
    _write(X, y, path, format)


def _write(X, y, path, format):
    path = os.fspath(path)
    y32 = None if y is None else np.ascontiguousarray(np.asarray(y).ravel(), dtype=np.float32)
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        if y32 is not None and y32.shape[0] != X.shape[0]:
            raise ValueError(f"y has {y32.shape[0]} entries but X has {X.shape[0]} rows")
        _core.write_rows(
            path,
            format,
            np.ascontiguousarray(X.data, dtype=np.float32),
            y32,
            np.ascontiguousarray(X.indices, dtype=np.int32),
            np.ascontiguousarray(X.indptr, dtype=np.int64),
            X.shape[1],
        )
        return
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features); got shape {X.shape}")
    if y32 is not None and y32.shape[0] != X.shape[0]:
        raise ValueError(f"y has {y32.shape[0]} entries but X has {X.shape[0]} rows")
    _core.write_rows(path, format, X, y32, None, None, X.shape[1])


def read_recordio(path, content_type=""):
    """Reads a recordIO-protobuf file (or CSV / libsvm, by extension or `content_type`) into
    (X, y): X a float32 array, or a scipy CSR matrix when any record is sparse; y float32 or None."""
    paths = [os.fspath(p) for p in path] if isinstance(path, (list, tuple)) else [os.fspath(path)]
    d = _core.read_rows(paths, content_type)
    if d["layout"] == "csr":
        X = sp.csr_matrix((d["values"], d["indices"], d["indptr"]), shape=(d["rows"], d["cols"]))
    else:
        X = d["values"]
    return X, d["labels"]


read_rows = read_recordio
