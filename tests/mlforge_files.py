"""Readers and writers of mlforge's and SageMaker's file formats for the Python tests and benchmarks
(tests/*/sklearn_compare.py, bench/*_vs_sklearn.py), written from SPEC.md's layouts so that the
scripts check mlforge against an independent implementation rather than against itself.

Import from a script in tests/<folder>/ or bench/:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))  # bench
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))           # tests
    import mlforge_files
"""
import struct

import numpy as np

# ---------------------------------------------------------------------------------------------
# A small reader for MXNet NDArray list files (mx.nd.save), dense arrays only, names kept.
# Layout (little-endian): u64 0x112, u64 reserved, u64 count, count x NDArray, u64 n_names,
# n_names x (u64 length, bytes). NDArray V2/V3: u32 magic, i32 storage type, [i32 ndim,
# ndim x i64 dims], i32 dev_type, i32 dev_id, i32 dtype, raw data. V1: the same without the
# storage type. Legacy (no magic): u32 ndim (the first word), ndim x u32 dims, then as V1.
# ---------------------------------------------------------------------------------------------
_LIST_MAGIC = 0x112
_V1, _V2, _V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
_DTYPES = {0: np.float32, 1: np.float64, 2: np.float16, 3: np.uint8, 4: np.int32, 5: np.int8, 6: np.int64}


class _Cursor:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError(f"NDArray file truncated at byte {self.pos}")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def raw(self, size):
        if self.pos + size > len(self.data):
            raise ValueError(f"NDArray file truncated at byte {self.pos}")
        out = self.data[self.pos:self.pos + size]
        self.pos += size
        return out


def _read_ndarray(cur):
    magic = cur.take("<I")
    if magic in (_V2, _V3):
        stype = cur.take("<i")
        if stype != 0:
            raise ValueError(f"sparse NDArray (storage type {stype}) not supported by this reader")
        ndim = cur.take("<i")
        shape = tuple(cur.take(f"<{ndim}q")) if ndim > 1 else ((cur.take("<q"),) if ndim == 1 else ())
    elif magic == _V1:
        ndim = cur.take("<i")
        shape = tuple(cur.take(f"<{ndim}q")) if ndim > 1 else ((cur.take("<q"),) if ndim == 1 else ())
    else:  # legacy: the word just read is ndim, dims are u32
        ndim = magic
        shape = tuple(cur.take(f"<{ndim}I")) if ndim > 1 else ((cur.take("<I"),) if ndim == 1 else ())
    if ndim == 0:
        return np.zeros((0,), np.float32)
    cur.take("<ii")  # dev_type, dev_id
    dtype = np.dtype(_DTYPES[cur.take("<i")])
    count = int(np.prod(shape))
    return np.frombuffer(cur.raw(count * dtype.itemsize), dtype=dtype.newbyteorder("<")).reshape(shape).copy()


def read_ndarray_list(path):
    """Returns [(name or None, array)] of an MXNet NDArray list file."""
    with open(path, "rb") as f:
        cur = _Cursor(f.read())
    magic, _reserved = cur.take("<QQ")
    if magic != _LIST_MAGIC:
        raise ValueError(f"{path}: not an NDArray list file (magic {magic:#x})")
    arrays = [_read_ndarray(cur) for _ in range(cur.take("<Q"))]
    n_names = cur.take("<Q")
    if n_names not in (0, len(arrays)):
        raise ValueError(f"{path}: {n_names} names for {len(arrays)} arrays")
    names = [cur.raw(cur.take("<Q")).decode() for _ in range(n_names)]
    if cur.pos != len(cur.data):
        raise ValueError(f"{path}: {len(cur.data) - cur.pos} trailing bytes")
    return list(zip(names if names else [None] * len(arrays), arrays))


def read_named_arrays(path):
    """{name: array} of a named NDArray list file (duplicate or missing names are an error)."""
    items = read_ndarray_list(path)
    names = [n for n, _ in items]
    if None in names or len(set(names)) != len(names):
        raise ValueError(f"{path}: expected uniquely named arrays, found names {names}")
    return dict(items)


# ---------------------------------------------------------------------------------------------
# recordIO-protobuf writers (SPEC.md 1.1-1.3): Record{features: {"values": Value{float32_tensor}}},
# no label; dense rows carry `values`, sparse rows `values` + `keys` (column indices, uint64) +
# `shape` = [d], as the SDK's write_spmatrix_to_sparse_tensor does. dmlc framing, cflag 0.
# ---------------------------------------------------------------------------------------------
_RECORDIO_MAGIC = 0xCED7230A


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, payload):  # a length-delimited protobuf field
    return varint((num << 3) | 2) + varint(len(payload)) + payload


def _record(values, keys=None, dim=None):
    tensor = field(1, np.ascontiguousarray(values, dtype="<f4").tobytes())
    if keys is not None:
        tensor += field(2, b"".join(varint(int(k)) for k in keys))
        tensor += field(3, varint(int(dim)))
    value = field(2, tensor)  # Value.float32_tensor
    entry = field(1, b"values") + field(2, value)  # map entry: key 1, value 2
    return field(1, entry)  # Record.features


def _frame(payload):
    pad = (4 - len(payload) % 4) % 4
    return struct.pack("<II", _RECORDIO_MAGIC, len(payload)) + payload + b"\0" * pad


def write_recordio_dense(path, x):
    with open(path, "wb") as f:
        for row in x:
            f.write(_frame(_record(row)))


def write_recordio_sparse(path, x):
    """Every row as a sparse record of its nonzeros (an all-zero row has no keys at all)."""
    d = x.shape[1]
    with open(path, "wb") as f:
        for row in x:
            nz = np.flatnonzero(row)
            f.write(_frame(_record(row[nz], keys=nz, dim=d)))


def dense_record_head(d):
    """The bytes before the d floats of a dense feature-only record, and the record's payload length."""
    tensor_head = varint((1 << 3) | 2) + varint(4 * d)  # Float32Tensor.values, packed
    value_head = varint((2 << 3) | 2) + varint(len(tensor_head) + 4 * d)  # Value.float32_tensor
    value_len = len(value_head) + len(tensor_head) + 4 * d
    entry_head = field(1, b"values") + varint((2 << 3) | 2) + varint(value_len)
    entry_len = len(entry_head) + value_len
    head = varint((1 << 3) | 2) + varint(entry_len) + entry_head + value_head + tensor_head  # Record.features
    return head, len(head) + 4 * d


def append_recordio_dense(f, x):
    """Appends the rows of x (n x d) to the open binary file f as dense feature-only records, the
    same bytes as write_recordio_dense, built with numpy for millions of rows."""
    n, d = x.shape
    head, payload = dense_record_head(d)
    pad = (4 - payload % 4) % 4
    prefix = np.frombuffer(np.array([_RECORDIO_MAGIC, payload], dtype="<u4").tobytes() + head, np.uint8)
    rec = len(prefix) + 4 * d + pad
    buf = np.zeros((n, rec), np.uint8)
    buf[:, :len(prefix)] = prefix
    buf[:, len(prefix):len(prefix) + 4 * d] = np.ascontiguousarray(x, dtype="<f4").view(np.uint8).reshape(n, 4 * d)
    f.write(buf.tobytes())
