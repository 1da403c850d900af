// MXNet NDArray list files (SPEC.md 5): what `mx.nd.save` writes and what SageMaker's k-means and
// PCA `model_algo-1`, and the `.params` / `params` members of the linear learner and FM zips, hold.
//
// Reading accepts every array version MXNet's loader accepts: V3 (0xF993FACA, numpy shapes), V2
// (0xF993FAC9, storage type + sparse arrays), V1 (0xF993FAC8, dense, int64 dims) and the pre-V1
// legacy layout (first word = ndim, uint32 dims). Writing produces V2, byte for byte what MXNet
// writes for a CPU array (dev_type 1, dev_id 0), so SageMaker's own hosting images can load it.
//
// Every count and length is checked against the bytes that remain before anything is allocated,
// so a corrupt or hostile file fails with a UserError "<source>: at byte <offset>: <what>" and
// never with a crash or a huge allocation.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mlforge::io {

constexpr uint64_t kNDArrayListMagic = 0x112;
constexpr uint32_t kNDArrayV1Magic = 0xF993FAC8u;
constexpr uint32_t kNDArrayV2Magic = 0xF993FAC9u;
constexpr uint32_t kNDArrayV3Magic = 0xF993FACAu;
// Pseudo magic recorded for pre-V1 arrays, whose first word is their ndim (no magic at all).
constexpr uint32_t kNDArrayLegacyMagic = 0;

// MXNet storage types (include/mxnet/ndarray.h NDArrayStorageType).
enum class NDStorage : int32_t { kDense = 0, kRowSparse = 1, kCsr = 2 };

// mshadow type flags (mshadow/base.h); the numeric values are what the file stores.
enum class NDDtype : int32_t {
  kFloat32 = 0,
  kFloat64 = 1,
  kFloat16 = 2,
  kUint8 = 3,
  kInt32 = 4,
  kInt8 = 5,
  kInt64 = 6,
  kBool = 7,
  kInt16 = 8,
  kUint16 = 9,
  kUint32 = 10,
  kUint64 = 11,
  kBfloat16 = 12,
};

// Bytes per element; 0 for a flag that is not a known dtype.
size_t DtypeSize(NDDtype dtype);
// "float32", "int64", ... (numpy's names); "dtype(<n>)" for an unknown flag.
std::string DtypeName(NDDtype dtype);
// "default", "row_sparse", "csr" (MXNet's names).
std::string StorageName(NDStorage storage);

// One array as stored. Raw buffers are little-endian, row-major, exactly as in the file.
struct NDArray {
  // A secondary index array of a sparse array: row_sparse has one (row indices); csr has two
  // (indptr, then column indices). MXNet writes int64 for all of them.
  struct Aux {
    NDDtype dtype = NDDtype::kInt64;
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;  // prod(shape) * DtypeSize(dtype) bytes
  };

  std::string name;  // the list's key for this array; "" in an unnamed list
  NDStorage storage = NDStorage::kDense;
  NDDtype dtype = NDDtype::kFloat32;
  std::vector<int64_t> shape;          // the logical shape
  std::vector<int64_t> storage_shape;  // sparse only: shape of `data` (row_sparse: (rows kept, ...))
  std::vector<uint8_t> data;           // dense: prod(shape); sparse: prod(storage_shape) elements
  std::vector<Aux> aux;                // sparse only, in MXNet's aux order
  // MXNet's "none" array (V1/V2: ndim 0; V3: unknown shape): nothing but the shape is stored.
  // Distinct from a V3 scalar (ndim 0, one element).
  bool is_none = false;

  // As read (for diagnostics); the writer always writes V2 and CPU 0.
  uint32_t magic = kNDArrayV2Magic;  // kNDArrayLegacyMagic for pre-V1 arrays
  int32_t dev_type = 1;
  int32_t dev_id = 0;
  uint64_t offset = 0;  // byte offset of the array in its source

  // prod(shape): elements of the logical array (1 for a V3 scalar, 0 for a none array).
  int64_t NumElements() const;
  // Elements actually stored in `data`.
  int64_t NumStored() const;

  // `data` converted element by element to the requested type (any numeric dtype; float16 and
  // bfloat16 are widened exactly). UserError for a conversion that cannot be exact in kind:
  // ToInt64 of a float array.
  std::vector<float> ToFloat32() const;
  std::vector<double> ToFloat64() const;
  std::vector<int64_t> ToInt64() const;
  // Aux array `i` as int64 (row indices / indptr / indices). UserError when absent.
  std::vector<int64_t> AuxInt64(size_t i) const;

  // Builders for the writer. `values` is row-major with prod(shape) elements (dense) or
  // row_indices.size() * prod(shape[1:]) elements (row_sparse, rows in `row_indices` order;
  // indices strictly increasing and < shape[0]). UserError on a size mismatch.
  static NDArray Dense(std::string name, std::vector<int64_t> shape, const std::vector<float>& values);
  static NDArray Dense(std::string name, std::vector<int64_t> shape, const std::vector<double>& values);
  static NDArray RowSparse(std::string name, std::vector<int64_t> shape, const std::vector<int64_t>& row_indices,
                           const std::vector<float>& values);
  static NDArray RowSparse(std::string name, std::vector<int64_t> shape, const std::vector<int64_t>& row_indices,
                           const std::vector<double>& values);
};

// The contents of one list file. `named` says whether the file stores keys (mx.nd.save of a dict:
// PCA's s/v/mean, checkpoints' arg:/aux:) or not (a list: k-means' centroids).
struct NDArrayList {
  std::vector<NDArray> arrays;
  bool named = false;
};

// Parses a whole list file held in memory. `source` names it in errors (a path, or
// "model.tar.gz:model_algo-1"). Trailing bytes after the names are an error: MXNet never writes
// them, so they mean a wrong or damaged file.
NDArrayList ParseNDArrayList(std::string_view bytes, const std::string& source);
NDArrayList ReadNDArrayList(const std::string& path);

// V2 bytes for `list`: dense, row_sparse and csr arrays of any dtype, context CPU 0. When
// `list.named` is false the names must all be empty. UserError for arrays a V2 file cannot hold
// (a V3 scalar) or whose buffers disagree with their shapes.
std::string SerializeNDArrayList(const NDArrayList& list);
// Writes SerializeNDArrayList(list) to `path` atomically (a temp file renamed over it).
void WriteNDArrayList(const std::string& path, const NDArrayList& list);

// The array called `name`, or nullptr.
const NDArray* FindByName(const NDArrayList& list, std::string_view name);
// As FindByName, but a missing name is a UserError naming `source` and the names present.
const NDArray& GetByName(const NDArrayList& list, std::string_view name, const std::string& source);

// A float32 matrix, row-major: element (r, c) is values[r * cols + c].
struct FloatMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> values;
};

// Any dense or row_sparse numeric array as a row-major float32 matrix: rows = shape[0],
// cols = prod(shape[1:]) (so a 1-D array of n becomes n x 1, a V3 scalar 1 x 1, a none array
// 0 x 0). Rows absent from a row_sparse array are zero. csr arrays are refused (densifying them is
// the caller's explicit choice). float64 is rounded to nearest.
FloatMatrix ToFloatMatrix(const NDArray& array);

}  // namespace mlforge::io
