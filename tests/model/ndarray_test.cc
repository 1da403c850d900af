// MXNet NDArray list files: the writer's exact bytes (built here by hand from the SPEC.md 5 layout),
// round trips, the older V1 / legacy / V3 layouts, and corrupt input that must fail with a UserError
// naming the byte offset (never a crash or an internal error).
#include "io/ndarray.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/testutil.h"

namespace mlforge::io {
namespace {

// Little-endian byte builder for hand-made files.
class Bytes {
 public:
  template <typename T>
  Bytes& Put(T v) {
    s_.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  Bytes& U32(uint32_t v) { return Put(v); }
  Bytes& I32(int32_t v) { return Put(v); }
  Bytes& U64(uint64_t v) { return Put(v); }
  Bytes& I64(int64_t v) { return Put(v); }
  Bytes& F32(float v) { return Put(v); }
  Bytes& F64(double v) { return Put(v); }
  Bytes& Str(const std::string& v) {
    s_ += v;
    return *this;
  }
  Bytes& Shape(std::vector<int64_t> dims) {
    I32(static_cast<int32_t>(dims.size()));
    for (int64_t d : dims) I64(d);
    return *this;
  }
  Bytes& ListHeader(uint64_t n) { return U64(0x112).U64(0).U64(n); }
  const std::string& str() const { return s_; }

 private:
  std::string s_;
};

template <typename T>
std::vector<T> Typed(const std::vector<uint8_t>& raw) {
  std::vector<T> v(raw.size() / sizeof(T));
  std::memcpy(v.data(), raw.data(), v.size() * sizeof(T));
  return v;
}

// A list exercising every writer path: named, dense f32 / f64, row_sparse, csr and a none array.
NDArrayList RichList() {
  NDArrayList list;
  list.named = true;
  list.arrays.push_back(NDArray::Dense("w", {2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6}));
  list.arrays.push_back(NDArray::Dense("b", {1}, std::vector<double>{-0.25}));
  list.arrays.push_back(NDArray::RowSparse("v", {5, 2}, {1, 3}, std::vector<float>{1, 2, 3, 4}));
  NDArray csr;
  csr.name = "c";
  csr.storage = NDStorage::kCsr;
  csr.shape = {2, 3};
  csr.storage_shape = {3};
  csr.data = {1, 2, 3};
  csr.dtype = NDDtype::kUint8;
  NDArray::Aux indptr, indices;
  indptr.shape = {3};
  indptr.data.resize(24);
  const int64_t ip[] = {0, 2, 3};
  std::memcpy(indptr.data.data(), ip, 24);
  indices.shape = {3};
  indices.data.resize(24);
  const int64_t ix[] = {0, 2, 1};
  std::memcpy(indices.data.data(), ix, 24);
  csr.aux = {indptr, indices};
  list.arrays.push_back(csr);
  NDArray none;
  none.name = "none";
  none.is_none = true;
  list.arrays.push_back(none);
  return list;
}

TEST(NDArray, WritesExactlyTheBytesMXNetWrites) {
  NDArrayList list;
  list.named = true;
  list.arrays.push_back(NDArray::Dense("w", {2}, std::vector<float>{1.5f, -2.0f}));
  list.arrays.push_back(NDArray::RowSparse("arg:v", {4, 3}, {2}, std::vector<float>{7, 8, 9}));
  Bytes want;
  want.ListHeader(2);
  // dense float32 (2,)
  want.U32(0xF993FAC9).I32(0).Shape({2}).I32(1).I32(0).I32(0).F32(1.5f).F32(-2.0f);
  // row_sparse float32 (4, 3) with row 2 stored: storage shape, shape, ctx, dtype, aux (int64 (1,)),
  // values, row indices
  want.U32(0xF993FAC9).I32(1).Shape({1, 3}).Shape({4, 3}).I32(1).I32(0).I32(0);
  want.I32(6).Shape({1}).F32(7).F32(8).F32(9).I64(2);
  want.U64(2).U64(1).Str("w").U64(5).Str("arg:v");
  EXPECT_EQ(SerializeNDArrayList(list), want.str());

  // Unnamed (k-means centroids) float64: no names at all, name count 0.
  NDArrayList unnamed;
  unnamed.arrays.push_back(NDArray::Dense("", {1, 1}, std::vector<double>{3.0}));
  Bytes want2;
  want2.ListHeader(1).U32(0xF993FAC9).I32(0).Shape({1, 1}).I32(1).I32(0).I32(1).F64(3.0).U64(0);
  EXPECT_EQ(SerializeNDArrayList(unnamed), want2.str());
}

TEST(NDArray, RoundTripsEveryStorageAndDtype) {
  const NDArrayList list = RichList();
  const std::string bytes = SerializeNDArrayList(list);
  const NDArrayList back = ParseNDArrayList(bytes, "mem");
  ASSERT_EQ(back.arrays.size(), list.arrays.size());
  EXPECT_TRUE(back.named);
  for (size_t i = 0; i < list.arrays.size(); ++i) {
    const NDArray& a = list.arrays[i];
    const NDArray& b = back.arrays[i];
    EXPECT_EQ(b.name, a.name);
    EXPECT_EQ(b.storage, a.storage);
    EXPECT_EQ(b.is_none, a.is_none);
    EXPECT_EQ(b.shape, a.shape);
    EXPECT_EQ(b.storage_shape, a.storage_shape);
    EXPECT_EQ(b.data, a.data);
    ASSERT_EQ(b.aux.size(), a.aux.size());
    for (size_t k = 0; k < a.aux.size(); ++k) {
      EXPECT_EQ(b.aux[k].shape, a.aux[k].shape);
      EXPECT_EQ(b.aux[k].data, a.aux[k].data);
    }
    EXPECT_EQ(b.magic, kNDArrayV2Magic);
    EXPECT_EQ(b.dev_type, 1);
    EXPECT_EQ(b.dev_id, 0);
  }
  EXPECT_EQ(back.arrays[1].dtype, NDDtype::kFloat64);
  EXPECT_EQ(back.arrays[3].dtype, NDDtype::kUint8);
  EXPECT_EQ(back.arrays[0].offset, 24u);
  EXPECT_EQ(SerializeNDArrayList(back), bytes);  // reading loses nothing

  // Through a file, unnamed.
  test::TempDir dir;
  NDArrayList unnamed;
  unnamed.arrays.push_back(NDArray::Dense("", {3, 2}, std::vector<float>{1, 2, 3, 4, 5, 6}));
  WriteNDArrayList(dir / "model_algo-1", unnamed);
  const NDArrayList read = ReadNDArrayList(dir / "model_algo-1");
  EXPECT_FALSE(read.named);
  ASSERT_EQ(read.arrays.size(), 1u);
  EXPECT_EQ(read.arrays[0].name, "");
  EXPECT_EQ(read.arrays[0].ToFloat32(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST(NDArray, ZeroSizedDimensionsRoundTrip) {
  NDArrayList list;
  list.arrays.push_back(NDArray::Dense("", {0, 4}, std::vector<float>{}));
  list.arrays.push_back(NDArray::RowSparse("", {3, 2}, {}, std::vector<float>{}));
  const NDArrayList back = ParseNDArrayList(SerializeNDArrayList(list), "mem");
  EXPECT_EQ(back.arrays[0].shape, (std::vector<int64_t>{0, 4}));
  EXPECT_FALSE(back.arrays[0].is_none);
  const FloatMatrix m = ToFloatMatrix(back.arrays[1]);
  EXPECT_EQ(m.rows, 3);
  EXPECT_EQ(m.cols, 2);
  EXPECT_EQ(m.values, std::vector<float>(6, 0.0f));
}

TEST(NDArray, ReadsV1Arrays) {
  Bytes f;
  f.ListHeader(1).U32(0xF993FAC8).Shape({2, 2}).I32(1).I32(0).I32(1);
  for (double v : {1.0, -2.0, 3.5, 1e300}) f.F64(v);
  f.U64(1).U64(4).Str("data");
  const NDArrayList list = ParseNDArrayList(f.str(), "v1");
  ASSERT_EQ(list.arrays.size(), 1u);
  const NDArray& a = list.arrays[0];
  EXPECT_EQ(a.magic, kNDArrayV1Magic);
  EXPECT_EQ(a.name, "data");
  EXPECT_EQ(a.storage, NDStorage::kDense);
  EXPECT_EQ(a.dtype, NDDtype::kFloat64);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(a.ToFloat64(), (std::vector<double>{1.0, -2.0, 3.5, 1e300}));
  // Re-written as V2, the values survive.
  const NDArrayList v2 = ParseNDArrayList(SerializeNDArrayList(list), "v2");
  EXPECT_EQ(v2.arrays[0].magic, kNDArrayV2Magic);
  EXPECT_EQ(v2.arrays[0].data, a.data);
}

TEST(NDArray, ReadsLegacyArraysWithUint32Dims) {
  Bytes f;
  // Pre-V1: first word is ndim (2), dims as uint32 (3, 1), context, dtype int32, data.
  f.ListHeader(2).U32(2).U32(3).U32(1).I32(1).I32(0).I32(4).I32(-7).I32(0).I32(1 << 30);
  f.U32(0);  // legacy ndim 0: a none array, nothing follows
  f.U64(0);
  const NDArrayList list = ParseNDArrayList(f.str(), "legacy");
  ASSERT_EQ(list.arrays.size(), 2u);
  EXPECT_FALSE(list.named);
  const NDArray& a = list.arrays[0];
  EXPECT_EQ(a.magic, kNDArrayLegacyMagic);
  EXPECT_EQ(a.dtype, NDDtype::kInt32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(a.ToInt64(), (std::vector<int64_t>{-7, 0, 1 << 30}));
  EXPECT_EQ(a.ToFloat64(), (std::vector<double>{-7, 0, 1 << 30}));
  const FloatMatrix m = ToFloatMatrix(a);
  EXPECT_EQ(m.rows, 3);
  EXPECT_EQ(m.cols, 1);
  EXPECT_TRUE(list.arrays[1].is_none);
  EXPECT_EQ(list.arrays[1].NumElements(), 0);
}

TEST(NDArray, ReadsV3ScalarsAndUnknownShapes) {
  Bytes f;
  f.ListHeader(2);
  f.U32(0xF993FACA).I32(0).I32(0).I32(1).I32(0).I32(0).F32(4.25f);  // 0-d scalar: one element
  f.U32(0xF993FACA).I32(0).I32(-1);                                 // unknown shape: none
  f.U64(0);
  const NDArrayList list = ParseNDArrayList(f.str(), "v3");
  const NDArray& s = list.arrays[0];
  EXPECT_FALSE(s.is_none);
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(s.NumElements(), 1);
  EXPECT_EQ(s.ToFloat32(), std::vector<float>{4.25f});
  const FloatMatrix m = ToFloatMatrix(s);
  EXPECT_EQ(m.rows * m.cols, 1);
  EXPECT_TRUE(list.arrays[1].is_none);
  // A V2 file cannot hold a scalar: the writer says so instead of writing a "none" array.
  try {
    SerializeNDArrayList(list);
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("scalar"), std::string::npos) << e.what();
  }
}

TEST(NDArray, ConvertsHalfBfloatAndIntegerDtypes) {
  Bytes f;
  f.ListHeader(3);
  f.U32(0xF993FAC9).I32(0).Shape({5}).I32(1).I32(0).I32(2);  // float16
  for (uint16_t h : {0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001}) f.Put<uint16_t>(h);
  f.U32(0xF993FAC9).I32(0).Shape({2}).I32(1).I32(0).I32(12);  // bfloat16
  for (uint16_t b : {0x3F80, 0xC040}) f.Put<uint16_t>(b);
  f.U32(0xF993FAC9).I32(0).Shape({3}).I32(1).I32(0).I32(5);  // int8
  for (int8_t v : {-128, 0, 127}) f.Put<int8_t>(v);
  f.U64(0);
  const NDArrayList list = ParseNDArrayList(f.str(), "dtypes");
  EXPECT_EQ(list.arrays[0].ToFloat64(), (std::vector<double>{1.0, -2.0, 0.5, 65504.0, std::ldexp(1.0, -24)}));
  EXPECT_EQ(list.arrays[1].ToFloat32(), (std::vector<float>{1.0f, -3.0f}));
  EXPECT_EQ(list.arrays[2].ToInt64(), (std::vector<int64_t>{-128, 0, 127}));
  EXPECT_THROW(list.arrays[0].ToInt64(), UserError);  // floats are not silently truncated
  EXPECT_EQ(DtypeName(NDDtype::kBfloat16), "bfloat16");
  EXPECT_EQ(DtypeSize(NDDtype::kInt64), 8u);
}

TEST(NDArray, ToFloatMatrixDensifiesRowSparse) {
  const NDArray v = NDArray::RowSparse("v", {4, 2}, {0, 2}, std::vector<double>{1, 2, 3, 4});
  const FloatMatrix m = ToFloatMatrix(v);
  EXPECT_EQ(m.rows, 4);
  EXPECT_EQ(m.cols, 2);
  EXPECT_EQ(m.values, (std::vector<float>{1, 2, 0, 0, 3, 4, 0, 0}));
  const FloatMatrix d = ToFloatMatrix(NDArray::Dense("s", {3}, std::vector<double>{0.1, 0.2, 0.3}));
  EXPECT_EQ(d.rows, 3);
  EXPECT_EQ(d.cols, 1);
  EXPECT_EQ(d.values, (std::vector<float>{0.1f, 0.2f, 0.3f}));
  const NDArrayList rich = RichList();
  EXPECT_THROW(ToFloatMatrix(rich.arrays[3]), UserError);  // csr is densified explicitly only
  EXPECT_EQ(ToFloatMatrix(rich.arrays[4]).values.size(), 0u);
}

TEST(NDArray, FindsArraysByName) {
  const NDArrayList list = RichList();
  ASSERT_NE(FindByName(list, "v"), nullptr);
  EXPECT_EQ(FindByName(list, "v")->storage, NDStorage::kRowSparse);
  EXPECT_EQ(FindByName(list, "mean"), nullptr);
  try {
    GetByName(list, "mean", "model_algo-1");
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model_algo-1"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'mean'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'w'"), std::string::npos) << msg;  // lists what is there
  }
}

TEST(NDArray, WriterRejectsInconsistentArrays) {
  NDArrayList list;
  list.arrays.push_back(NDArray::Dense("named", {1}, std::vector<float>{1}));
  EXPECT_THROW(SerializeNDArrayList(list), UserError);  // unnamed list, named array
  EXPECT_THROW(NDArray::Dense("x", {2, 2}, std::vector<float>{1, 2, 3}), UserError);
  EXPECT_THROW(NDArray::RowSparse("x", {4, 1}, {2, 1}, std::vector<float>{1, 2}), UserError);  // unsorted
  EXPECT_THROW(NDArray::RowSparse("x", {4, 1}, {4}, std::vector<float>{1}), UserError);        // out of range
  NDArrayList bad;
  bad.arrays.push_back(NDArray::Dense("", {2}, std::vector<float>{1, 2}));
  bad.arrays[0].data.pop_back();
  EXPECT_THROW(SerializeNDArrayList(bad), UserError);
  EXPECT_THROW(ReadNDArrayList("/nonexistent/model_algo-1"), UserError);
}

// Runs the parser on `bytes`, expecting a UserError whose message names the source and a byte
// offset, and contains `what`.
void ExpectParseError(const std::string& bytes, const std::string& what) {
  try {
    ParseNDArrayList(bytes, "bad.params");
    ADD_FAILURE() << "expected a UserError containing '" << what << "'";
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("bad.params: at byte ", 0), 0u) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

TEST(NDArray, EveryTruncationIsAUserError) {
  const std::string full = SerializeNDArrayList(RichList());
  for (size_t n = 0; n < full.size(); ++n) {
    SCOPED_TRACE("prefix length " + std::to_string(n));
    ExpectParseError(full.substr(0, n), "");
  }
  ExpectParseError(full + "x", "unexpected bytes");
}

TEST(NDArray, EveryByteFlipFailsCleanlyOrParses) {
  const std::string full = SerializeNDArrayList(RichList());
  for (size_t i = 0; i < full.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bytes = full;
      bytes[i] = static_cast<char>(bytes[i] ^ (1 << bit));
      try {
        ParseNDArrayList(bytes, "flip");  // a flip inside data is still a valid file
      } catch (const UserError&) {
      }  // anything else (InternalError, bad_alloc, a crash) fails the test
    }
  }
}

TEST(NDArray, AbsurdCountsAndFieldsAreRejected) {
  ExpectParseError(Bytes().U64(0x113).U64(0).U64(0).U64(0).str(), "not an MXNet NDArray list");
  ExpectParseError(Bytes().ListHeader(uint64_t{1} << 62).str(), "array count");
  ExpectParseError(Bytes().ListHeader(0).U64(3).str(), "name count 3");
  ExpectParseError(Bytes().ListHeader(1).U32(0).U64(1).U64(uint64_t{1} << 60).str(), "truncated name");
  ExpectParseError(Bytes().ListHeader(1).U32(0xF993FAC9).I32(0).I32(0x7fffffff).str(), "truncated shape");
  ExpectParseError(Bytes().ListHeader(1).U32(0xF993FAC9).I32(0).I32(-2).str(), "negative ndim");
  ExpectParseError(Bytes().ListHeader(1).U32(0xF993FAC9).I32(0).Shape({2, -3}).str(), "negative dimension");
  ExpectParseError(Bytes().ListHeader(1).U32(0xF993FAC9).I32(0).Shape({1ll << 40, 1ll << 40}).str(), "overflows");
  ExpectParseError(
      Bytes().ListHeader(1).U32(0xF993FAC9).I32(0).Shape({1ll << 30, 1ll << 30}).I32(1).I32(0).I32(0).str(),
      "truncated array data");
  ExpectParseError(Bytes().ListHeader(1).U32(0xF993FAC9).I32(0).Shape({1}).I32(1).I32(0).I32(99).str(),
                   "unknown dtype flag 99");
  ExpectParseError(Bytes().ListHeader(1).U32(0xF993FAC9).I32(7).str(), "unknown storage type 7");
  ExpectParseError(Bytes().ListHeader(1).U32(0xF993FACA).I32(1).str(), "must be dense");
  ExpectParseError(Bytes().ListHeader(1).U32(1000).str(), "unknown array magic");
  ExpectParseError(Bytes().ListHeader(1).U32(30).str(), "truncated legacy shape");
  // row_sparse: row indices out of range, not increasing; aux shape wrong; aux dtype float.
  auto rsp = [](int64_t r0, int64_t r1, int32_t aux_dtype, int64_t aux_len) {
    Bytes b;
    b.ListHeader(1).U32(0xF993FAC9).I32(1).Shape({2, 1}).Shape({3, 1}).I32(1).I32(0).I32(0);
    b.I32(aux_dtype).Shape({aux_len}).F32(1).F32(2);
    for (int64_t i = 0; i < aux_len; ++i) b.I64(i == 0 ? r0 : r1);
    return b.U64(0).str();
  };
  EXPECT_NO_THROW(ParseNDArrayList(rsp(0, 2, 6, 2), "ok"));
  ExpectParseError(rsp(0, 3, 6, 2), "outside [0, 3)");
  ExpectParseError(rsp(1, 1, 6, 2), "strictly increasing");
  ExpectParseError(rsp(0, 1, 6, 1), "row indices must have shape");
  ExpectParseError(rsp(0, 1, 0, 2), "not an integer type");
  // csr with a bad indptr.
  Bytes csr;
  csr.ListHeader(1).U32(0xF993FAC9).I32(2).Shape({2}).Shape({2, 2}).I32(1).I32(0).I32(0);
  csr.I32(6).Shape({3}).I32(6).Shape({2}).F32(1).F32(2).I64(0).I64(2).I64(1).I64(0).I64(1).U64(0);
  ExpectParseError(csr.str(), "csr indptr decreases");
}

}  // namespace
}  // namespace mlforge::io
