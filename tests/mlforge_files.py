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


# ---------------------------------------------------------------------------------------------
# recordIO-protobuf reader (SPEC.md 1.1-1.2) into CSR arrays, for the benchmarks' peers
# (bench/fm_torch.py): one Python step per record to find the tensors, the values, keys and labels
# of all records then decoded at once with numpy. Reads dense and sparse float32 feature tensors
# (one feature key), float32 / float64 / int32 labels, and multi-part (dmlc) frames.
# ---------------------------------------------------------------------------------------------
def _varint_at(buf, pos):
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf, pos, end):
    """(field number, wire type, value or (start, stop)) of each protobuf field in buf[pos:end]."""
    while pos < end:
        tag, pos = _varint_at(buf, pos)
        wire = tag & 7
        if wire == 2:
            n, pos = _varint_at(buf, pos)
            yield tag >> 3, wire, (pos, pos + n)
            pos += n
        elif wire == 0:
            v, pos = _varint_at(buf, pos)
            yield tag >> 3, wire, v
        elif wire == 5:
            yield tag >> 3, wire, (pos, pos + 4)
            pos += 4
        elif wire == 1:
            yield tag >> 3, wire, (pos, pos + 8)
            pos += 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {pos}")


def decode_varints(raw):
    """All the varints packed back to back in the uint8 array raw, as uint64."""
    raw = np.asarray(raw, np.uint8)
    if raw.size == 0:
        return np.zeros(0, np.uint64)
    if raw[-1] >= 0x80:
        raise ValueError("truncated varint")
    ends = np.flatnonzero(raw < 0x80)
    starts = np.concatenate(([0], ends[:-1] + 1))
    shift = (np.arange(raw.size) - np.repeat(starts, ends - starts + 1)).astype(np.uint64) * np.uint64(7)
    return np.add.reduceat((raw & 0x7F).astype(np.uint64) << shift, starts)


def _frames(data):
    """Yields each record's payload (bytes or memoryview) of a recordIO file's contents."""
    pos, n, parts = 0, len(data), []
    while pos < n:
        if pos + 8 > n:
            raise ValueError(f"truncated frame header at byte {pos}")
        magic, lrec = struct.unpack_from("<II", data, pos)
        if magic != _RECORDIO_MAGIC:
            raise ValueError(f"bad recordIO magic at byte {pos}")
        cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise ValueError(f"truncated record at byte {pos}")
        pos += 8 + length + (4 - length % 4) % 4
        if cflag == 0:
            yield body
        elif cflag in (1, 2):
            parts.append(bytes(body))
        elif cflag == 3:
            parts.append(bytes(body))
            yield struct.pack("<I", _RECORDIO_MAGIC).join(parts)
            parts = []
        else:
            raise ValueError(f"reserved recordIO flag {cflag} at byte {pos}")


def read_recordio_csr(path):
    """Reads a recordIO-protobuf file (one row per record) into CSR arrays:
    (indptr int64 [n+1], indices int64 [nnz], values float32 [nnz], labels float32 [n] or None, cols).
    Dense rows become rows with every column present. cols is the sparse shape (or dense width)."""
    with open(path, "rb") as f:
        data = memoryview(f.read())
    value_parts, key_parts, label_parts = [], [], []  # byte strings, concatenated below
    key_counts = []  # per sparse row: number of key bytes (-1 for a dense row: values give width)
    value_bytes, label_kind = [], None
    cols = 0
    rows = 0
    for payload in _frames(data):
        buf = payload if isinstance(payload, memoryview) else memoryview(payload)
        row_label = None
        features = None
        for num, _, span in _fields(buf, 0, len(buf)):
            if num not in (1, 2):
                continue  # uid, metadata, configuration
            # map entry: key (1), Value (2) -> float32_tensor (2) | float64_tensor (3) | int32_tensor (7)
            value = None
            for enum, _, espan in _fields(buf, *span):
                if enum == 2:
                    value = espan
            if value is None:
                raise ValueError(f"{path}: record {rows} has a map entry without a value")
            for vnum, _, tspan in _fields(buf, *value):
                tensor = (vnum, tspan)
            if num == 1:
                if features is not None:
                    raise ValueError(f"{path}: record {rows} has several feature keys")
                features = tensor
            else:
                row_label = tensor
        if features is None or features[0] != 2:
            raise ValueError(f"{path}: record {rows} has no float32 feature tensor")
        vals = keys = b""
        shape = None
        for tnum, _, tspan in _fields(buf, *features[1]):
            if tnum == 1:
                vals = buf[tspan[0]:tspan[1]]
            elif tnum == 2:
                keys = buf[tspan[0]:tspan[1]]
            elif tnum == 3:
                shape = decode_varints(np.frombuffer(buf[tspan[0]:tspan[1]], np.uint8))
        value_parts.append(bytes(vals))
        value_bytes.append(len(vals))
        if len(keys) or shape is not None:
            if shape is None or len(shape) != 1:
                raise ValueError(f"{path}: record {rows}: sparse rows need shape [cols]")
            cols = max(cols, int(shape[0]))
            key_parts.append(bytes(keys))
            key_counts.append(len(keys))
        else:
            cols = max(cols, len(vals) // 4)
            key_counts.append(-1)
        if row_label is not None:
            kind, lspan = row_label
            lfields = {n: s for n, _, s in _fields(buf, *lspan)}
            label_kind = label_kind or kind
            if kind != label_kind or 1 not in lfields:
                raise ValueError(f"{path}: record {rows}: labels of mixed or unsupported types")
            label_parts.append(bytes(buf[lfields[1][0]:lfields[1][1]]))
        rows += 1
    values = np.frombuffer(b"".join(value_parts), "<f4").astype(np.float32)
    nnz = np.asarray(value_bytes, np.int64) // 4
    indptr = np.zeros(rows + 1, np.int64)
    np.cumsum(nnz, out=indptr[1:])
    key_counts = np.asarray(key_counts, np.int64)
    indices = np.empty(int(indptr[-1]), np.int64)
    sparse_rows = key_counts >= 0
    keys = decode_varints(np.frombuffer(b"".join(key_parts), np.uint8)).astype(np.int64)
    if keys.size != nnz[sparse_rows].sum():
        raise ValueError(f"{path}: sparse rows whose key and value counts differ")
    if sparse_rows.all():
        indices[:] = keys
    else:  # a mix: place the keys of the sparse rows, column numbers for the dense ones
        k = 0
        for r in range(rows):
            a, b = indptr[r], indptr[r + 1]
            if sparse_rows[r]:
                indices[a:b] = keys[k:k + (b - a)]
                k += b - a
            else:
                indices[a:b] = np.arange(b - a)
    labels = None
    if label_parts:
        if len(label_parts) != rows:
            raise ValueError(f"{path}: {len(label_parts)} labels for {rows} rows")
        dtype = {2: "<f4", 3: "<f8"}.get(label_kind)
        raw = b"".join(label_parts)
        labels = (np.frombuffer(raw, dtype) if dtype else decode_varints(np.frombuffer(raw, np.uint8))
                  .astype(np.int64).astype(np.int32)).astype(np.float32)
        if labels.size != rows:
            raise ValueError(f"{path}: expected one label per row")
    return indptr, indices, values, labels, cols
