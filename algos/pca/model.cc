#include "algos/pca/model.h"

#include <nlohmann/json.hpp>

#include <cmath>

#include "algos/common/model_metadata.h"
#include "core/error.h"
#include "core/file_util.h"
#include "io/archive.h"
#include "io/ndarray.h"

namespace mlforge::algos::pca {

namespace {
// JSON has no NaN: non-finite values are written as null.
nlohmann::json Numbers(const std::vector<double>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (double x : v) a.push_back(std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr));
  return a;
}
std::vector<double> ReadNumbers(const nlohmann::json& a) {
  std::vector<double> out;
  if (!a.is_array()) return out;
  for (const auto& x : a) out.push_back(x.is_number() ? x.get<double>() : std::nan(""));
  return out;
}
}  // namespace

void SaveModel(const Model& m, const std::string& dir) {
  MLF_ASSERT(m.dim > 0 && m.components > 0);
  MLF_ASSERT(static_cast<int64_t>(m.s.size()) == m.components);
  MLF_ASSERT(static_cast<int64_t>(m.v.size()) == m.dim * m.components);
  MLF_ASSERT(m.mean.empty() || static_cast<int64_t>(m.mean.size()) == m.dim);
  io::NDArrayList list;
  list.named = true;
  list.arrays.push_back(io::NDArray::Dense("s", {m.components}, m.s));
  list.arrays.push_back(io::NDArray::Dense("v", {m.dim, m.components}, m.v));
  if (!m.mean.empty()) list.arrays.push_back(io::NDArray::Dense("mean", {1, m.dim}, m.mean));
  io::WriteNDArrayList(dir + "/" + kModelFile, list);
  nlohmann::json meta = {
      {"algorithm", "pca"},
      {"format_version", 1},
      {"algorithm_mode", m.mode},
      {"feature_dim", m.dim},
      {"num_components", m.components},
      {"rows", m.rows},
      {"singular_value_order", m.mode == "regular" ? "ascending" : "descending"},
      {"explained_variance", Numbers(m.explained_variance)},
      {"explained_variance_ratio", Numbers(m.explained_variance_ratio)},
      {"explained_variance_estimated", m.explained_variance_estimated},
      {"hyperparameters", nlohmann::json::parse(m.hyperparameters_json)},
      {"metrics", m.metrics},
  };
  WriteFileAtomic(dir + "/" + kMetadataFile, meta.dump(2) + "\n");
}

Model ParseModel(std::string_view bytes, const std::string& source) {
  MLF_EXPECTS(io::DetectKind(bytes) == io::FileKind::kNDArrayList,
              "{}: not a PCA model: expected an MXNet NDArray list (PCA model_algo-1), found {}", source,
              io::FileKindName(io::DetectKind(bytes)));
  io::NDArrayList list = io::ParseNDArrayList(bytes, source);
  const io::NDArray *s = nullptr, *v = nullptr, *mean = nullptr;
  for (const io::NDArray& a : list.arrays) {
    if (a.name == "s") s = &a;
    if (a.name == "v") v = &a;
    if (a.name == "mean") mean = &a;
  }
  MLF_EXPECTS(list.named && s != nullptr && v != nullptr,
              "{}: not a PCA model: a PCA model_algo-1 is a named NDArray list with arrays 's' and 'v' (and 'mean'); "
              "this one has {} {} array(s)",
              source, list.arrays.size(), list.named ? "named" : "unnamed");
  auto is_float = [](const io::NDArray& a) {
    return a.storage == io::NDStorage::kDense && (a.dtype == io::NDDtype::kFloat32 || a.dtype == io::NDDtype::kFloat64);
  };
  MLF_EXPECTS(is_float(*v) && v->shape.size() == 2 && v->shape[0] >= 1 && v->shape[1] >= 1,
              "{}: array 'v' must be a dense float (feature_dim, num_components) matrix with both sizes >= 1; found a "
              "{} {} array with {} dimension(s)",
              source, io::StorageName(v->storage), io::DtypeName(v->dtype), v->shape.size());
  Model m;
  m.dim = v->shape[0];
  m.components = v->shape[1];
  MLF_EXPECTS(is_float(*s) && s->NumElements() == m.components,
              "{}: array 's' must hold one float singular value per column of 'v' ({}); it has {} element(s)", source,
              m.components, s->NumElements());
  m.s = s->ToFloat32();
  m.v = v->ToFloat32();
  if (mean != nullptr) {
    MLF_EXPECTS(is_float(*mean) && mean->NumElements() == m.dim,
                "{}: array 'mean' must hold feature_dim = {} float values (shape (1, {})); it has {} element(s)", source,
                m.dim, m.dim, mean->NumElements());
    m.mean = mean->ToFloat32();
  }
  for (float x : m.v) {
    MLF_EXPECTS(std::isfinite(x), "{}: array 'v' holds a non-finite value; the model cannot project", source);
  }
  for (float x : m.mean) {
    MLF_EXPECTS(std::isfinite(x), "{}: array 'mean' holds a non-finite value; the model cannot project", source);
  }
  return m;
}

Model LoadModel(const std::string& path) { return LoadModel(io::ModelSource::Open(path)); }

Model LoadModel(const io::ModelSource& src) {
  Model m = ParseModel(src.model_bytes(), src.model_source());
  if (std::optional<nlohmann::json> found = ReadModelMetadata(src, kMetadataFile)) {
    nlohmann::json& meta = *found;
    if (meta.contains("hyperparameters")) m.hyperparameters_json = meta["hyperparameters"].dump();
    if (meta.contains("algorithm_mode") && meta["algorithm_mode"].is_string()) m.mode = meta["algorithm_mode"];
    if (meta.contains("rows") && meta["rows"].is_number_integer()) m.rows = meta["rows"].get<int64_t>();
    if (meta.contains("explained_variance")) m.explained_variance = ReadNumbers(meta["explained_variance"]);
    if (meta.contains("explained_variance_estimated") && meta["explained_variance_estimated"].is_boolean())
      m.explained_variance_estimated = meta["explained_variance_estimated"].get<bool>();
    if (meta.contains("explained_variance_ratio"))
      m.explained_variance_ratio = ReadNumbers(meta["explained_variance_ratio"]);
    if (meta.contains("metrics") && meta["metrics"].is_object()) {
      for (const auto& [name, value] : meta["metrics"].items()) {
        if (value.is_number()) m.metrics[name] = value.get<double>();
      }
    }
  }
  return m;
}

}  // namespace mlforge::algos::pca
