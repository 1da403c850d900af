// Golden vectors: every real SageMaker model.tar.gz in ../shared/data/artifacts is opened through
// ModelSource and every array in it is compared with the independent decoding next to it
// (<name>.decoded.json for the structure, <name>.decoded.npz for the values, bit for bit).
// Re-serialising each parsed list must give back MXNet's exact bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/archive.h"
#include "io/ndarray.h"
#include "tests/testutil.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace mlforge::io {
namespace {

// One array of a .npy file: numpy dtype string ("<f4"), shape and the raw little-endian data.
struct Npy {
  std::string descr;
  std::vector<int64_t> shape;
  std::string data;
};

// Value of `key` in the header dict "{'descr': '<f4', 'fortran_order': False, 'shape': (10, 2), }".
std::string DictValue(const std::string& header, const std::string& key) {
  const size_t k = header.find("'" + key + "':");
  if (k == std::string::npos) return "";
  size_t v = header.find_first_not_of(' ', k + key.size() + 3);
  const char open = header[v];
  const char close = open == '\'' ? '\'' : open == '(' ? ')' : ',';
  const size_t end = header.find(close, v + 1);
  return header.substr(v, end - v + (close == ',' ? 0 : 1));
}

Npy ParseNpy(const std::string& bytes, const std::string& name) {
  Npy npy;
  EXPECT_EQ(bytes.compare(0, 6, "\x93NUMPY"), 0) << name;
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, header_at = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_at = 10;
  } else {
    uint32_t len;
    std::memcpy(&len, bytes.data() + 8, 4);
    header_len = len;
    header_at = 12;
  }
  const std::string header = bytes.substr(header_at, header_len);
  const std::string descr = DictValue(header, "descr");
  npy.descr = descr.substr(1, descr.size() - 2);
  EXPECT_EQ(DictValue(header, "fortran_order"), "False") << name;
  std::string shape = DictValue(header, "shape");
  for (size_t i = 1; i < shape.size();) {
    const size_t j = shape.find_first_of(",)", i);
    const std::string tok = shape.substr(i, j - i);
    if (tok.find_first_of("0123456789") != std::string::npos) npy.shape.push_back(std::stoll(tok));
    i = j + 1;
  }
  npy.data = bytes.substr(header_at + header_len);
  return npy;
}

std::string NumpyDescr(NDDtype d) {
  switch (d) {
    case NDDtype::kFloat32:
      return "<f4";
    case NDDtype::kFloat64:
      return "<f8";
    case NDDtype::kInt64:
      return "<i8";
    case NDDtype::kInt32:
      return "<i4";
    default:
      return "?";
  }
}

std::string Hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::vector<int64_t> Dims(const json& j) { return j.get<std::vector<int64_t>>(); }

std::string Raw(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

double SumIgnoringNan(const std::vector<double>& v, double* abs_sum) {
  double s = 0;
  *abs_sum = 0;
  for (double x : v)
    if (!std::isnan(x)) s += x, *abs_sum += std::fabs(x);
  return s;
}

// decoded.json inlines MXNet symbol files in a normalised form: every node has "attrs" (maybe {}),
// and the derived "arg_nodes" / "node_row_ptr" tables are dropped. Applies the same to `j`.
json NormalizeSymbol(json j) {
  if (!j.is_object() || !j.contains("nodes")) return j;
  j.erase("arg_nodes");
  j.erase("node_row_ptr");
  for (json& node : j["nodes"])
    if (!node.contains("attrs")) node["attrs"] = json::object();
  return j;
}

class ArtifactChecker {
 public:
  ArtifactChecker(std::map<std::string, std::string> npz) : npz_(std::move(npz)) {}

  const Npy TakeNpy(const std::string& key) {
    std::string file = key;
    for (char& c : file)
      if (c == '#') c = '_';  // the npz file names '#0' as '_0'
    file += ".npy";
    auto it = npz_.find(file);
    EXPECT_NE(it, npz_.end()) << "npz has no " << file;
    if (it == npz_.end()) return {};
    Npy npy = ParseNpy(it->second, file);
    npz_.erase(it);
    return npy;
  }

  // `bytes` is an NDArray list whose arrays `want` (decoded.json "arrays") describes; npz keys are
  // "<prefix>/<array key>".
  void CheckList(const std::string& bytes, const json& want, const std::string& prefix) {
    SCOPED_TRACE(prefix);
    ASSERT_EQ(DetectKind(bytes), FileKind::kNDArrayList);
    const NDArrayList list = ParseNDArrayList(bytes, prefix);
    ASSERT_EQ(list.arrays.size(), want.size());
    // The writer reproduces MXNet's bytes exactly, dense and row_sparse alike.
    EXPECT_TRUE(SerializeNDArrayList(list) == bytes) << "re-serialised bytes differ";
    for (size_t i = 0; i < want.size(); ++i) {
      const json& w = want[i];
      const NDArray& a = list.arrays[i];
      const std::string key = w["key"];
      SCOPED_TRACE(key);
      EXPECT_EQ(list.named, w["key_stored"].get<bool>());
      EXPECT_EQ(a.name, list.named ? key : "");
      if (!list.named) {
        EXPECT_EQ(key, "#" + std::to_string(i));
      }
      EXPECT_EQ(list.named ? FindByName(list, key) : &list.arrays[i], &a);
      EXPECT_EQ(a.offset, w["offset"].get<uint64_t>());
      EXPECT_EQ(Hex(a.magic), w["ndarray_magic"].get<std::string>());
      EXPECT_EQ(StorageName(a.storage), w["storage"].get<std::string>());
      EXPECT_EQ(a.shape, Dims(w["shape"]));
      EXPECT_EQ(DtypeName(a.dtype), w["dtype"].get<std::string>());
      EXPECT_EQ(a.dev_type, w["context"]["dev_type"].get<int>());
      EXPECT_EQ(a.dev_id, w["context"]["dev_id"].get<int>());
      const std::vector<double> values = a.ToFloat64();
      double abs_sum = 0;
      const double sum = SumIgnoringNan(values, &abs_sum);
      const FloatMatrix m = ToFloatMatrix(a);
      EXPECT_EQ(m.rows, a.shape[0]);
      EXPECT_EQ(m.rows * m.cols, a.NumElements());

      if (a.storage == NDStorage::kDense) {
        const Npy npy = TakeNpy(prefix + "/" + key);
        EXPECT_EQ(npy.descr, NumpyDescr(a.dtype));
        EXPECT_EQ(npy.shape, a.shape);
        EXPECT_TRUE(npy.data == Raw(a.data)) << "values differ from the npz";
        if (a.dtype == NDDtype::kFloat32) {
          EXPECT_EQ(std::memcmp(m.values.data(), a.data.data(), a.data.size()), 0);
        }
        int64_t nans = 0;
        for (double v : values) nans += std::isnan(v);
        EXPECT_EQ(nans, w["nan_count"].get<int64_t>());
        EXPECT_NEAR(sum, w["sum_ignoring_nan"].get<double>(), 1e-9 * (abs_sum + 1));
        const json& first = w["first_values"];
        for (size_t k = 0; k < first.size(); ++k) {
          if (first[k].is_null()) {
            EXPECT_TRUE(std::isnan(values[k])) << k;
          } else {
            EXPECT_EQ(values[k], first[k].get<double>()) << k;
          }
        }
      } else {
        ASSERT_EQ(a.storage, NDStorage::kRowSparse);
        EXPECT_EQ(a.storage_shape, Dims(w["storage_shape"]));
        ASSERT_EQ(a.aux.size(), w["aux"].size());
        EXPECT_EQ(DtypeName(a.aux[0].dtype), w["aux"][0]["dtype"].get<std::string>());
        EXPECT_EQ(a.aux[0].shape, Dims(w["aux"][0]["shape"]));
        const Npy vals = TakeNpy(prefix + "/" + key + ".values");
        const Npy rows = TakeNpy(prefix + "/" + key + ".row_indices");
        EXPECT_EQ(vals.shape, a.storage_shape);
        EXPECT_TRUE(vals.data == Raw(a.data)) << "values differ from the npz";
        EXPECT_EQ(rows.descr, "<i8");
        EXPECT_TRUE(rows.data == Raw(a.aux[0].data)) << "row indices differ from the npz";
        EXPECT_NEAR(sum, w["values_sum"].get<double>(), 1e-9 * (abs_sum + 1));
        const std::vector<int64_t> idx = a.AuxInt64(0);
        const json& first = w["row_indices_first10"];
        for (size_t k = 0; k < first.size(); ++k) EXPECT_EQ(idx[k], first[k].get<int64_t>());
        // Densified: stored rows land where their indices say, the rest stay zero.
        const int64_t cols = m.cols;
        for (size_t r = 0; r < idx.size(); ++r) {
          EXPECT_EQ(std::memcmp(m.values.data() + idx[r] * cols, a.data.data() + r * cols * 4, cols * 4), 0);
        }
      }
    }
  }

  size_t npz_left() const { return npz_.size(); }

 private:
  std::map<std::string, std::string> npz_;
};

std::vector<std::string> ArtifactTarballs() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(test::SharedData("artifacts"))) {
    const std::string name = e.path().filename().string();
    if (name.size() > 13 && name.compare(name.size() - 13, 13, ".model.tar.gz") == 0) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Artifacts, EveryRealModelMatchesItsDecoding) {
  MLF_REQUIRE_SHARED_DATA();
  const std::vector<std::string> tarballs = ArtifactTarballs();
  ASSERT_GE(tarballs.size(), 10u);
  for (const std::string& tarball : tarballs) {
    SCOPED_TRACE(tarball);
    const std::string stem = tarball.substr(0, tarball.size() - 13);
    std::ifstream jf(stem + ".decoded.json");
    const json decoded = json::parse(jf);
    std::map<std::string, std::string> npz;
    for (ArchiveEntry& e : ReadArchive(stem + ".decoded.npz")) npz[e.name] = std::move(e.data);
    ArtifactChecker checker(std::move(npz));

    const ModelSource src = ModelSource::Open(tarball);
    EXPECT_EQ(src.model_source(), tarball + ":model_algo-1");
    std::vector<std::string> want_others;
    for (const json& m : decoded["tar_members"])
      if (m["name"] != "model_algo-1") want_others.push_back(m["name"]);
    std::sort(want_others.begin(), want_others.end());
    std::vector<std::string> others;
    for (const ArchiveMember& m : src.others()) others.push_back(m.name);
    EXPECT_EQ(others, want_others);

    for (const json& member : decoded["tar_members"]) {
      const std::string name = member["name"];
      const std::string bytes = src.ReadMember(name);
      EXPECT_EQ(bytes.size(), member["size"].get<uint64_t>()) << name;
      if (member["container"] == "mxnet_ndarray_list") {
        checker.CheckList(bytes, member["arrays"], name);
        continue;
      }
      ASSERT_EQ(member["container"], "zip") << name;
      EXPECT_EQ(DetectKind(bytes), FileKind::kZip);
      const std::string zip_source = src.model_source();
      const std::vector<ArchiveMember> zm = ListArchiveBuffer(bytes, zip_source);
      ASSERT_EQ(zm.size(), member["zip_members"].size());
      for (size_t i = 0; i < zm.size(); ++i) {
        const json& w = member["zip_members"][i];
        EXPECT_EQ(zm[i].name, w["name"].get<std::string>());
        EXPECT_EQ(zm[i].size, w["size"].get<uint64_t>());
        const std::string data = ReadArchiveMemberBuffer(bytes, zip_source, zm[i].name);
        if (w.contains("json")) {
          EXPECT_EQ(NormalizeSymbol(json::parse(data)), w["json"]) << zm[i].name;
        }
        if (w.value("container", "") == "mxnet_ndarray_list") {
          checker.CheckList(data, w["arrays"], name + "/" + zm[i].name);
        }
      }
    }
    EXPECT_EQ(checker.npz_left(), 0u) << "npz arrays not compared";
  }
}

TEST(Artifacts, ModelsHaveTheLayoutTheirAlgorithmsNeed) {
  MLF_REQUIRE_SHARED_DATA();
  const std::string dir = test::SharedData("artifacts");
  // k-means: one unnamed (k, d) float32 array; the state member holds named '1' and '0'.
  const ModelSource km = ModelSource::Open(dir + "/kmeans_census_k8_d7_with_state.model.tar.gz");
  const NDArrayList centroids = ParseNDArrayList(km.model_bytes(), km.model_source());
  ASSERT_EQ(centroids.arrays.size(), 1u);
  EXPECT_FALSE(centroids.named);
  const FloatMatrix c = ToFloatMatrix(centroids.arrays[0]);
  EXPECT_EQ(c.rows, 8);
  EXPECT_EQ(c.cols, 7);
  ASSERT_EQ(km.others().size(), 1u);
  EXPECT_EQ(km.others()[0].name.rfind("state_", 0), 0u);
  const NDArrayList state = ParseNDArrayList(km.ReadMember(km.others()[0].name), "state");
  EXPECT_EQ(GetByName(state, "0", "state").shape, (std::vector<int64_t>{80, 7}));
  EXPECT_EQ(GetByName(state, "1", "state").shape, (std::vector<int64_t>{80, 1}));

  // PCA regular: NaN singular values at the start of s are loaded as NaN.
  const ModelSource pca = ModelSource::Open(dir + "/pca_regular_d106_k105_nan.model.tar.gz");
  const NDArrayList p = ParseNDArrayList(pca.model_bytes(), pca.model_source());
  const FloatMatrix s = ToFloatMatrix(GetByName(p, "s", pca.model_source()));
  EXPECT_EQ(s.rows, 105);
  EXPECT_TRUE(std::isnan(s.values[0]) && std::isnan(s.values[1]) && std::isnan(s.values[2]));
  EXPECT_FALSE(std::isnan(s.values[3]));
  EXPECT_EQ(GetByName(p, "v", "pca").shape, (std::vector<int64_t>{106, 105}));
  EXPECT_EQ(GetByName(p, "mean", "pca").shape, (std::vector<int64_t>{1, 106}));

  // FM: row_sparse w1 and v densify to (2625, 1) and (2625, 64).
  const ModelSource fm = ModelSource::Open(dir + "/fm_movielens100k_regressor_d2625_k64.model.tar.gz");
  ASSERT_EQ(fm.model_kind(), FileKind::kZip);
  const NDArrayList params =
      ParseNDArrayList(ReadArchiveMemberBuffer(fm.model_bytes(), fm.model_source(), "params"), "params");
  const FloatMatrix v = ToFloatMatrix(GetByName(params, "arg:v", "params"));
  EXPECT_EQ(v.rows, 2625);
  EXPECT_EQ(v.cols, 64);
  EXPECT_EQ(GetByName(params, "arg:w0_weight", "params").shape, std::vector<int64_t>{1});
}

}  // namespace
}  // namespace mlforge::io
