#include "io/ndarray.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <type_traits>

#include "core/error.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ndarray.cc copies little-endian file bytes straight into host integers"
#endif

namespace mlforge::io {
namespace {

// Legacy arrays have no magic: their first word is ndim. Anything above this cannot be a real
// legacy array (MXNet never had tensors of that rank), so it is reported as an unknown magic.
constexpr uint32_t kMaxLegacyNdim = 32;
// ToFloatMatrix refuses to densify more than this many elements (8 GiB of float32): a corrupt
// logical shape on a sparse array must not turn into a huge allocation.
constexpr uint64_t kMaxDensifyElements = uint64_t{1} << 31;

bool IsKnownDtype(int32_t flag) { return flag >= 0 && flag <= 12; }

bool IsIntegerDtype(NDDtype d) {
  switch (d) {
    case NDDtype::kUint8:
    case NDDtype::kInt32:
    case NDDtype::kInt8:
    case NDDtype::kInt64:
    case NDDtype::kInt16:
    case NDDtype::kUint16:
    case NDDtype::kUint32:
    case NDDtype::kUint64:
    case NDDtype::kBool:
      return true;
    default:
      return false;
  }
}

int NumAux(NDStorage s) {
  switch (s) {
    case NDStorage::kDense:
      return 0;
    case NDStorage::kRowSparse:
      return 1;
    case NDStorage::kCsr:
      return 2;
  }
  return 0;
}

// prod(dims) with every dim >= 0; false on a negative dim or overflow of int64.
bool CheckedProduct(const std::vector<int64_t>& dims, uint64_t* out) {
  uint64_t p = 1;
  for (int64_t d : dims) {
    if (d < 0) return false;
    if (__builtin_mul_overflow(p, static_cast<uint64_t>(d), &p)) return false;
  }
  if (p > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  *out = p;
  return true;
}

std::string ShapeString(const std::vector<int64_t>& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  if (s.size() == 1) r += ",";
  return r + ")";
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1u, exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -24);  // zero or subnormal
  } else if (exp == 31) {
    v = mant ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    v = std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
  }
  return sign ? -v : v;
}

float Bfloat16ToFloat(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Converts `n` elements of `dtype` at `src` to Out. Integer outputs refuse float inputs and
// values that do not fit, because silently truncating an index would corrupt a model.
template <typename Out>
std::vector<Out> Convert(const std::vector<uint8_t>& raw, NDDtype dtype, const char* what) {
  const size_t size = DtypeSize(dtype);
  MLF_EXPECTS(size != 0, "cannot convert {}: unknown dtype flag {}", what, static_cast<int>(dtype));
  MLF_ASSERT(raw.size() % size == 0);
  const size_t n = raw.size() / size;
  std::vector<Out> out(n);
  const uint8_t* p = raw.data();
  constexpr bool kIntOut = std::is_integral_v<Out>;
  if (kIntOut) {
    MLF_EXPECTS(IsIntegerDtype(dtype), "cannot convert {} of dtype {} to an integer type", what, DtypeName(dtype));
  }
  for (size_t i = 0; i < n; ++i, p += size) {
    switch (dtype) {
      case NDDtype::kFloat32:
        out[i] = static_cast<Out>(Load<float>(p));
        break;
      case NDDtype::kFloat64:
        out[i] = static_cast<Out>(Load<double>(p));
        break;
      case NDDtype::kFloat16:
        out[i] = static_cast<Out>(HalfToFloat(Load<uint16_t>(p)));
        break;
      case NDDtype::kBfloat16:
        out[i] = static_cast<Out>(Bfloat16ToFloat(Load<uint16_t>(p)));
        break;
      case NDDtype::kUint8:
      case NDDtype::kBool:
        out[i] = static_cast<Out>(Load<uint8_t>(p));
        break;
      case NDDtype::kInt8:
        out[i] = static_cast<Out>(Load<int8_t>(p));
        break;
      case NDDtype::kInt16:
        out[i] = static_cast<Out>(Load<int16_t>(p));
        break;
      case NDDtype::kUint16:
        out[i] = static_cast<Out>(Load<uint16_t>(p));
        break;
      case NDDtype::kInt32:
        out[i] = static_cast<Out>(Load<int32_t>(p));
        break;
      case NDDtype::kUint32:
        out[i] = static_cast<Out>(Load<uint32_t>(p));
        break;
      case NDDtype::kInt64:
        out[i] = static_cast<Out>(Load<int64_t>(p));
        break;
      case NDDtype::kUint64: {
        const uint64_t v = Load<uint64_t>(p);
        if (kIntOut) {
          MLF_EXPECTS(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                      "cannot convert {}: element {} = {} does not fit int64", what, i, v);
        }
        out[i] = static_cast<Out>(v);
        break;
      }
    }
  }
  return out;
}

// Structural consistency of a sparse array whose buffers have the sizes their shapes say: returns
// "" when fine, else what is wrong. Shared by the reader (reported with a byte offset) and the
// writer (reported with the array's name).
std::string SparseProblem(const NDArray& a) {
  if (a.storage == NDStorage::kDense || a.is_none) return "";
  const auto& ss = a.storage_shape;
  if (a.storage == NDStorage::kRowSparse) {
    if (a.shape.empty()) return "row_sparse array with ndim 0";
    if (ss.size() != a.shape.size())
      return "row_sparse storage shape " + ShapeString(ss) + " does not match shape " + ShapeString(a.shape);
    for (size_t i = 1; i < ss.size(); ++i)
      if (ss[i] != a.shape[i])
        return "row_sparse storage shape " + ShapeString(ss) + " does not match shape " + ShapeString(a.shape);
    if (ss[0] > a.shape[0])
      return "row_sparse array stores " + std::to_string(ss[0]) + " rows of " + std::to_string(a.shape[0]);
    if (a.aux.size() != 1 || a.aux[0].shape != std::vector<int64_t>{ss[0]})
      return "row_sparse row indices must have shape (" + std::to_string(ss[0]) + ",)";
    const std::vector<int64_t> idx = Convert<int64_t>(a.aux[0].data, a.aux[0].dtype, "row indices");
    for (size_t i = 0; i < idx.size(); ++i) {
      if (idx[i] < 0 || idx[i] >= a.shape[0])
        return "row index " + std::to_string(idx[i]) + " at position " + std::to_string(i) + " is outside [0, " +
               std::to_string(a.shape[0]) + ")";
      if (i > 0 && idx[i] <= idx[i - 1])
        return "row indices are not strictly increasing at position " + std::to_string(i);
    }
    return "";
  }
  // csr
  if (a.shape.size() != 2) return "csr array must be 2-D, got shape " + ShapeString(a.shape);
  if (ss.size() != 1) return "csr storage shape must be 1-D, got " + ShapeString(ss);
  if (a.aux.size() != 2) return "csr array needs 2 aux arrays (indptr, indices)";
  if (a.aux[0].shape.size() != 1 || a.aux[0].shape[0] - 1 != a.shape[0])
    return "csr indptr must have rows + 1 = " + std::to_string(a.shape[0]) + " + 1 entries";
  if (a.aux[1].shape != std::vector<int64_t>{ss[0]})
    return "csr indices must have shape (" + std::to_string(ss[0]) + ",)";
  const std::vector<int64_t> indptr = Convert<int64_t>(a.aux[0].data, a.aux[0].dtype, "csr indptr");
  const std::vector<int64_t> indices = Convert<int64_t>(a.aux[1].data, a.aux[1].dtype, "csr indices");
  if (indptr.front() != 0) return "csr indptr[0] is " + std::to_string(indptr.front()) + ", expected 0";
  for (size_t r = 1; r < indptr.size(); ++r)
    if (indptr[r] < indptr[r - 1]) return "csr indptr decreases at row " + std::to_string(r - 1);
  if (indptr.back() != ss[0])
    return "csr indptr ends at " + std::to_string(indptr.back()) + " but " + std::to_string(ss[0]) +
           " values are stored";
  for (size_t i = 0; i < indices.size(); ++i)
    if (indices[i] < 0 || indices[i] >= a.shape[1])
      return "csr column index " + std::to_string(indices[i]) + " at position " + std::to_string(i) +
             " is outside [0, " + std::to_string(a.shape[1]) + ")";
  return "";
}

// Sequential little-endian reader over a byte buffer; every read is bounds-checked and every
// failure names the source and the byte offset where the bad field starts.
class Cursor {
 public:
  Cursor(std::string_view bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  uint64_t pos() const { return pos_; }
  uint64_t left() const { return bytes_.size() - pos_; }

  [[noreturn]] void Fail(uint64_t at, const std::string& what) const {
    MLF_FAIL("{}: at byte {}: {}", source_, at, what);
  }

  void Need(uint64_t n, const char* what) const {
    if (n > left())
      Fail(pos_, fmt::format("truncated {}: needs {} bytes, {} left in the file", what, n, left()));
  }

  template <typename T>
  T Read(const char* what) {
    Need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }

  void ReadBytes(uint64_t n, const char* what, std::vector<uint8_t>* out) {
    Need(n, what);  // before allocating: a corrupt size cannot reach the allocator
    out->assign(bytes_.data() + pos_, bytes_.data() + pos_ + n);
    pos_ += n;
  }

  std::string ReadString(uint64_t n, const char* what) {
    Need(n, what);
    std::string s(bytes_.substr(pos_, n));
    pos_ += n;
    return s;
  }

  // MXNet TShape: int32 ndim, ndim x int64. `allow_unknown` (V3) lets ndim and dims be -1.
  std::vector<int64_t> ReadShape(const char* what, bool allow_unknown) {
    const uint64_t at = pos_;
    const int32_t ndim = Read<int32_t>(what);
    if (ndim == -1 && allow_unknown) return {-1};  // marker: unknown shape (V3 "none")
    if (ndim < 0) Fail(at, fmt::format("{} has negative ndim {}", what, ndim));
    Need(uint64_t{8} * static_cast<uint64_t>(ndim), what);
    std::vector<int64_t> dims(static_cast<size_t>(ndim));
    for (auto& d : dims) {
      const uint64_t dim_at = pos_;
      d = Read<int64_t>(what);
      if (d < 0 && !(d == -1 && allow_unknown)) Fail(dim_at, fmt::format("{} has negative dimension {}", what, d));
    }
    return dims;
  }

 private:
  std::string_view bytes_;
  const std::string& source_;
  uint64_t pos_ = 0;
};

// Bytes of `dims` elements of `size` bytes; fails at `at` when that overflows or exceeds what is left.
uint64_t PayloadBytes(const Cursor& c, uint64_t at, const std::vector<int64_t>& dims, size_t size,
                      const char* what) {
  uint64_t n = 0, bytes = 0;
  if (!CheckedProduct(dims, &n) || __builtin_mul_overflow(n, static_cast<uint64_t>(size), &bytes))
    c.Fail(at, fmt::format("{} shape {} overflows", what, ShapeString(dims)));
  if (bytes > c.left())
    c.Fail(c.pos(), fmt::format("truncated {}: shape {} needs {} bytes, {} left in the file", what,
                                ShapeString(dims), bytes, c.left()));
  return bytes;
}

NDDtype ReadDtype(Cursor& c, const char* what) {
  const uint64_t at = c.pos();
  const int32_t flag = c.Read<int32_t>(what);
  if (!IsKnownDtype(flag)) c.Fail(at, fmt::format("unknown {} flag {} (known: 0..12)", what, flag));
  return static_cast<NDDtype>(flag);
}

NDArray ReadArray(Cursor& c, size_t index) {
  NDArray a;
  a.offset = c.pos();
  a.magic = c.Read<uint32_t>("array magic");
  bool v3 = false;
  if (a.magic == kNDArrayV2Magic || a.magic == kNDArrayV3Magic) {
    v3 = a.magic == kNDArrayV3Magic;
    const uint64_t stype_at = c.pos();
    const int32_t stype = c.Read<int32_t>("storage type");
    if (stype < 0 || stype > 2)
      c.Fail(stype_at, fmt::format("array #{}: unknown storage type {} (0 dense, 1 row_sparse, 2 csr)", index, stype));
    if (v3 && stype != 0) c.Fail(stype_at, fmt::format("array #{}: V3 (numpy) arrays must be dense", index));
    a.storage = static_cast<NDStorage>(stype);
    if (NumAux(a.storage) > 0) a.storage_shape = c.ReadShape("storage shape", false);
    a.shape = c.ReadShape("shape", v3);
    if (v3) {
      for (int64_t d : a.shape) a.is_none = a.is_none || d == -1;  // numpy "unknown shape"
    } else {
      a.is_none = a.shape.empty();
    }
  } else if (a.magic == kNDArrayV1Magic) {
    a.shape = c.ReadShape("shape", false);
    a.is_none = a.shape.empty();
  } else {
    // Pre-V1: no magic; the word just read is ndim, followed by uint32 dims.
    const uint32_t ndim = a.magic;
    if (ndim > kMaxLegacyNdim)
      c.Fail(a.offset, fmt::format("array #{}: unknown array magic 0x{:08X} (expected 0x{:08X}, 0x{:08X}, "
                                   "0x{:08X} or a legacy ndim <= {})",
                                   index, ndim, kNDArrayV2Magic, kNDArrayV1Magic, kNDArrayV3Magic, kMaxLegacyNdim));
    a.magic = kNDArrayLegacyMagic;
    c.Need(uint64_t{4} * ndim, "legacy shape");
    a.shape.resize(ndim);
    for (auto& d : a.shape) d = c.Read<uint32_t>("legacy shape");
    a.is_none = a.shape.empty();
  }
  uint64_t logical = 0;
  if (!a.is_none && !CheckedProduct(a.shape, &logical))
    c.Fail(a.offset, fmt::format("array #{}: shape {} overflows", index, ShapeString(a.shape)));
  if (a.is_none) {
    a.shape.clear();
    a.storage_shape.clear();
    return a;
  }

  a.dev_type = c.Read<int32_t>("context dev_type");
  a.dev_id = c.Read<int32_t>("context dev_id");
  a.dtype = ReadDtype(c, "dtype");
  const int nad = NumAux(a.storage);
  a.aux.resize(static_cast<size_t>(nad));
  for (auto& aux : a.aux) {
    const uint64_t at = c.pos();
    aux.dtype = ReadDtype(c, "aux dtype");
    if (!IsIntegerDtype(aux.dtype))
      c.Fail(at, fmt::format("array #{}: aux dtype {} is not an integer type", index, DtypeName(aux.dtype)));
    aux.shape = c.ReadShape("aux shape", false);
  }
  const auto& data_dims = nad > 0 ? a.storage_shape : a.shape;
  const uint64_t data_at = c.pos();
  c.ReadBytes(PayloadBytes(c, data_at, data_dims, DtypeSize(a.dtype), "array data"), "array data", &a.data);
  for (auto& aux : a.aux) {
    const uint64_t at = c.pos();
    c.ReadBytes(PayloadBytes(c, at, aux.shape, DtypeSize(aux.dtype), "aux data"), "aux data", &aux.data);
  }
  if (nad > 0) {
    const std::string problem = SparseProblem(a);
    if (!problem.empty()) c.Fail(a.offset, fmt::format("array #{} ({}): {}", index, StorageName(a.storage), problem));
  }
  return a;
}

template <typename T>
NDArray MakeDense(std::string name, std::vector<int64_t> shape, const std::vector<T>& values, NDDtype dtype) {
  uint64_t n = 0;
  MLF_EXPECTS(CheckedProduct(shape, &n) && n == values.size(), "NDArray '{}': shape {} needs {} values, got {}",
              name, ShapeString(shape), n, values.size());
  NDArray a;
  a.name = std::move(name);
  a.dtype = dtype;
  a.shape = std::move(shape);
  a.is_none = a.shape.empty();
  MLF_EXPECTS(!a.is_none, "NDArray '{}': a dense array needs at least one dimension", a.name);
  a.data.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(a.data.data(), values.data(), a.data.size());
  return a;
}

template <typename T>
NDArray MakeRowSparse(std::string name, std::vector<int64_t> shape, const std::vector<int64_t>& rows,
                      const std::vector<T>& values, NDDtype dtype) {
  MLF_EXPECTS(!shape.empty(), "NDArray '{}': a row_sparse array needs at least one dimension", name);
  std::vector<int64_t> ss = shape;
  ss[0] = static_cast<int64_t>(rows.size());
  uint64_t n = 0;
  MLF_EXPECTS(CheckedProduct(ss, &n) && n == values.size(), "NDArray '{}': {} rows of shape {} need {} values, got {}",
              name, rows.size(), ShapeString(shape), n, values.size());
  NDArray a;
  a.name = std::move(name);
  a.storage = NDStorage::kRowSparse;
  a.dtype = dtype;
  a.shape = std::move(shape);
  a.storage_shape = std::move(ss);
  a.data.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(a.data.data(), values.data(), a.data.size());
  NDArray::Aux idx;
  idx.dtype = NDDtype::kInt64;
  idx.shape = {static_cast<int64_t>(rows.size())};
  idx.data.resize(rows.size() * sizeof(int64_t));
  if (!rows.empty()) std::memcpy(idx.data.data(), rows.data(), idx.data.size());
  a.aux.push_back(std::move(idx));
  const std::string problem = SparseProblem(a);
  MLF_EXPECTS(problem.empty(), "NDArray '{}': {}", a.name, problem);
  return a;
}

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}

void PutShape(std::string* out, const std::vector<int64_t>& dims) {
  Put<int32_t>(out, static_cast<int32_t>(dims.size()));
  for (int64_t d : dims) Put<int64_t>(out, d);
}

// Checks that `a` can be written as V2 and that its buffers match its shapes.
void CheckWritable(const NDArray& a, size_t index) {
  const std::string who = fmt::format("cannot write NDArray #{} '{}'", index, a.name);
  if (a.is_none) return;
  MLF_EXPECTS(!a.shape.empty(), "{}: a 0-d (scalar) array has no V2 encoding; reshape it to (1,)", who);
  MLF_EXPECTS(DtypeSize(a.dtype) != 0, "{}: unknown dtype flag {}", who, static_cast<int>(a.dtype));
  MLF_EXPECTS(static_cast<int32_t>(a.storage) >= 0 && static_cast<int32_t>(a.storage) <= 2,
              "{}: unknown storage type {}", who, static_cast<int>(a.storage));
  const int nad = NumAux(a.storage);
  MLF_EXPECTS(a.aux.size() == static_cast<size_t>(nad), "{}: {} storage needs {} aux arrays, has {}", who,
              StorageName(a.storage), nad, a.aux.size());
  uint64_t n = 0;
  const auto& dims = nad > 0 ? a.storage_shape : a.shape;
  MLF_EXPECTS(CheckedProduct(a.shape, &n), "{}: invalid shape {}", who, ShapeString(a.shape));
  MLF_EXPECTS(CheckedProduct(dims, &n) && n * DtypeSize(a.dtype) == a.data.size(),
              "{}: shape {} of {} needs {} bytes, data has {}", who, ShapeString(dims), DtypeName(a.dtype),
              n * DtypeSize(a.dtype), a.data.size());
  for (const auto& aux : a.aux) {
    MLF_EXPECTS(IsIntegerDtype(aux.dtype), "{}: aux dtype {} is not an integer type", who, DtypeName(aux.dtype));
    MLF_EXPECTS(CheckedProduct(aux.shape, &n) && n * DtypeSize(aux.dtype) == aux.data.size(),
                "{}: aux shape {} needs {} bytes, aux data has {}", who, ShapeString(aux.shape),
                n * DtypeSize(aux.dtype), aux.data.size());
  }
  const std::string problem = SparseProblem(a);
  MLF_EXPECTS(problem.empty(), "{}: {}", who, problem);
}

}  // namespace

size_t DtypeSize(NDDtype dtype) {
  switch (dtype) {
    case NDDtype::kFloat64:
    case NDDtype::kInt64:
    case NDDtype::kUint64:
      return 8;
    case NDDtype::kFloat32:
    case NDDtype::kInt32:
    case NDDtype::kUint32:
      return 4;
    case NDDtype::kFloat16:
    case NDDtype::kBfloat16:
    case NDDtype::kInt16:
    case NDDtype::kUint16:
      return 2;
    case NDDtype::kUint8:
    case NDDtype::kInt8:
    case NDDtype::kBool:
      return 1;
  }
  return 0;
}

std::string DtypeName(NDDtype dtype) {
  static const char* const kNames[] = {"float32", "float64", "float16", "uint8",  "int32",  "int8",    "int64",
                                       "bool",    "int16",   "uint16",  "uint32", "uint64", "bfloat16"};
  const int32_t flag = static_cast<int32_t>(dtype);
  if (IsKnownDtype(flag)) return kNames[flag];
  return fmt::format("dtype({})", flag);
}

std::string StorageName(NDStorage storage) {
  switch (storage) {
    case NDStorage::kDense:
      return "default";
    case NDStorage::kRowSparse:
      return "row_sparse";
    case NDStorage::kCsr:
      return "csr";
  }
  return fmt::format("storage({})", static_cast<int>(storage));
}

int64_t NDArray::NumElements() const {
  if (is_none) return 0;
  uint64_t n = 0;
  MLF_ASSERT(CheckedProduct(shape, &n));
  return static_cast<int64_t>(n);
}

int64_t NDArray::NumStored() const {
  if (is_none) return 0;
  uint64_t n = 0;
  MLF_ASSERT(CheckedProduct(storage == NDStorage::kDense ? shape : storage_shape, &n));
  return static_cast<int64_t>(n);
}

std::vector<float> NDArray::ToFloat32() const { return Convert<float>(data, dtype, "NDArray data"); }
std::vector<double> NDArray::ToFloat64() const { return Convert<double>(data, dtype, "NDArray data"); }
std::vector<int64_t> NDArray::ToInt64() const { return Convert<int64_t>(data, dtype, "NDArray data"); }

std::vector<int64_t> NDArray::AuxInt64(size_t i) const {
  MLF_EXPECTS(i < aux.size(), "NDArray '{}' ({}) has {} aux arrays, asked for #{}", name, StorageName(storage),
              aux.size(), i);
  return Convert<int64_t>(aux[i].data, aux[i].dtype, "NDArray aux data");
}

NDArray NDArray::Dense(std::string name, std::vector<int64_t> shape, const std::vector<float>& values) {
  return MakeDense(std::move(name), std::move(shape), values, NDDtype::kFloat32);
}
NDArray NDArray::Dense(std::string name, std::vector<int64_t> shape, const std::vector<double>& values) {
  return MakeDense(std::move(name), std::move(shape), values, NDDtype::kFloat64);
}
NDArray NDArray::RowSparse(std::string name, std::vector<int64_t> shape, const std::vector<int64_t>& row_indices,
                           const std::vector<float>& values) {
  return MakeRowSparse(std::move(name), std::move(shape), row_indices, values, NDDtype::kFloat32);
}
NDArray NDArray::RowSparse(std::string name, std::vector<int64_t> shape, const std::vector<int64_t>& row_indices,
                           const std::vector<double>& values) {
  return MakeRowSparse(std::move(name), std::move(shape), row_indices, values, NDDtype::kFloat64);
}

NDArrayList ParseNDArrayList(std::string_view bytes, const std::string& source) {
  Cursor c(bytes, source);
  const uint64_t header = c.Read<uint64_t>("list header");
  if (header != kNDArrayListMagic)
    c.Fail(0, fmt::format("not an MXNet NDArray list file: header 0x{:X}, expected 0x{:X}", header, kNDArrayListMagic));
  c.Read<uint64_t>("reserved word");  // MXNet writes 0 and never checks it
  const uint64_t count_at = c.pos();
  const uint64_t n = c.Read<uint64_t>("array count");
  // Every array takes at least 4 bytes (a legacy ndim 0), so this bounds the count by the file.
  if (n > c.left() / 4)
    c.Fail(count_at, fmt::format("array count {} is impossible: only {} bytes follow", n, c.left()));
  NDArrayList list;
  list.arrays.reserve(std::min<uint64_t>(n, 1024));  // an NDArray object is larger than its 4 bytes
  for (uint64_t i = 0; i < n; ++i) list.arrays.push_back(ReadArray(c, i));
  const uint64_t names_at = c.pos();
  const uint64_t n_names = c.Read<uint64_t>("name count");
  if (n_names != 0 && n_names != n)
    c.Fail(names_at, fmt::format("name count {} must be 0 or the array count {}", n_names, n));
  list.named = n_names != 0;
  for (uint64_t i = 0; i < n_names; ++i) {
    const uint64_t len = c.Read<uint64_t>("name length");
    list.arrays[i].name = c.ReadString(len, "name");
  }
  if (c.left() != 0) c.Fail(c.pos(), fmt::format("{} unexpected bytes after the last name", c.left()));
  return list;
}

NDArrayList ReadNDArrayList(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MLF_EXPECTS(f, "{}: cannot open for reading: {}", path, std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  MLF_EXPECTS(!f.bad(), "{}: read error", path);
  return ParseNDArrayList(bytes, path);
}

std::string SerializeNDArrayList(const NDArrayList& list) {
  for (size_t i = 0; i < list.arrays.size(); ++i) {
    CheckWritable(list.arrays[i], i);
    MLF_EXPECTS(list.named || list.arrays[i].name.empty(),
                "cannot write NDArray #{} '{}': the list is unnamed (named = false) but the array has a name", i,
                list.arrays[i].name);
  }
  std::string out;
  Put<uint64_t>(&out, kNDArrayListMagic);
  Put<uint64_t>(&out, 0);
  Put<uint64_t>(&out, list.arrays.size());
  for (const NDArray& a : list.arrays) {
    Put<uint32_t>(&out, kNDArrayV2Magic);
    Put<int32_t>(&out, static_cast<int32_t>(a.storage));
    const bool sparse = a.storage != NDStorage::kDense;
    if (a.is_none) {
      // MXNet writes the (empty) storage shape of a none sparse array, then ndim 0 and stops.
      if (sparse) PutShape(&out, {});
      PutShape(&out, {});
      continue;
    }
    if (sparse) PutShape(&out, a.storage_shape);
    PutShape(&out, a.shape);
    Put<int32_t>(&out, 1);  // dev_type: cpu
    Put<int32_t>(&out, 0);  // dev_id
    Put<int32_t>(&out, static_cast<int32_t>(a.dtype));
    for (const auto& aux : a.aux) {
      Put<int32_t>(&out, static_cast<int32_t>(aux.dtype));
      PutShape(&out, aux.shape);
    }
    out.append(reinterpret_cast<const char*>(a.data.data()), a.data.size());
    for (const auto& aux : a.aux) out.append(reinterpret_cast<const char*>(aux.data.data()), aux.data.size());
  }
  Put<uint64_t>(&out, list.named ? list.arrays.size() : 0);
  if (list.named) {
    for (const NDArray& a : list.arrays) {
      Put<uint64_t>(&out, a.name.size());
      out += a.name;
    }
  }
  return out;
}

void WriteNDArrayList(const std::string& path, const NDArrayList& list) {
  const std::string bytes = SerializeNDArrayList(list);
  // Write next to the target and rename, so a reader never sees a half-written model.
  const std::string tmp = fmt::format("{}.tmp-{}", path, static_cast<long>(::getpid()));
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    MLF_EXPECTS(f, "{}: cannot open for writing: {}", tmp, std::strerror(errno));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.close();
    if (!f) {
      std::remove(tmp.c_str());
      MLF_FAIL("{}: write failed (disk full?)", tmp);
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    MLF_FAIL("{}: cannot rename {} over it: {}", path, tmp, ec.message());
  }
}

const NDArray* FindByName(const NDArrayList& list, std::string_view name) {
  for (const NDArray& a : list.arrays)
    if (a.name == name) return &a;
  return nullptr;
}

const NDArray& GetByName(const NDArrayList& list, std::string_view name, const std::string& source) {
  if (const NDArray* a = FindByName(list, name)) return *a;
  std::string present;
  for (const NDArray& a : list.arrays) present += (present.empty() ? "'" : ", '") + a.name + "'";
  MLF_FAIL("{}: no array named '{}' (the file holds {} arrays{}{})", source, name, list.arrays.size(),
           list.named ? ": " : ", unnamed", present.empty() || !list.named ? "" : present);
}

FloatMatrix ToFloatMatrix(const NDArray& a) {
  FloatMatrix m;
  if (a.is_none) return m;
  MLF_EXPECTS(a.storage != NDStorage::kCsr,
              "NDArray '{}' is csr; densify it explicitly (ToFloatMatrix takes dense and row_sparse arrays)", a.name);
  m.rows = a.shape.empty() ? 1 : a.shape[0];
  m.cols = 1;
  for (size_t i = 1; i < a.shape.size(); ++i) m.cols *= a.shape[i];
  if (a.storage == NDStorage::kDense) {
    m.values = a.ToFloat32();
    return m;
  }
  uint64_t total = 0;
  MLF_EXPECTS(!__builtin_mul_overflow(static_cast<uint64_t>(m.rows), static_cast<uint64_t>(m.cols), &total) &&
                  total <= kMaxDensifyElements,
              "NDArray '{}': densifying row_sparse shape {} needs {} x {} elements, over the limit of {}", a.name,
              ShapeString(a.shape), m.rows, m.cols, kMaxDensifyElements);
  const std::vector<float> stored = a.ToFloat32();
  const std::vector<int64_t> rows = a.AuxInt64(0);
  MLF_ASSERT(stored.size() == rows.size() * static_cast<size_t>(m.cols));
  m.values.assign(total, 0.0f);
  for (size_t i = 0; i < rows.size(); ++i) {
    MLF_ASSERT(rows[i] >= 0 && rows[i] < m.rows);  // checked when read or built
    std::copy_n(stored.begin() + static_cast<std::ptrdiff_t>(i * m.cols), m.cols,
                m.values.begin() + static_cast<std::ptrdiff_t>(rows[i] * m.cols));
  }
  return m;
}

}  // namespace mlforge::io
