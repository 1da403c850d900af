#include "algos/kmeans/model.h"

#include <nlohmann/json.hpp>

#include <filesystem>

#include "algos/common/model_metadata.h"
#include "core/error.h"
#include "core/file_util.h"
#include "io/archive.h"
#include "io/ndarray.h"

namespace mlforge::algos::kmeans {

void SaveModel(const Model& m, const std::string& dir) {
  MLF_ASSERT(m.k > 0 && m.dim > 0 && static_cast<int64_t>(m.centers.size()) == m.k * m.dim);
  io::NDArrayList list;
  list.named = false;
  list.arrays.push_back(io::NDArray::Dense("", {m.k, m.dim}, m.centers));
  io::WriteNDArrayList(dir + "/" + kModelFile, list);
  nlohmann::json meta = {
      {"algorithm", "kmeans"},
      {"format_version", 1},
      {"k", m.k},
      {"feature_dim", m.dim},
      {"hyperparameters", nlohmann::json::parse(m.hyperparameters_json)},
      {"train_msd", m.train_msd},
      {"metrics", m.metrics},
  };
  WriteFileAtomic(dir + "/" + kMetadataFile, meta.dump(2) + "\n");
}

Model ParseModel(std::string_view bytes, const std::string& source) {
  MLF_EXPECTS(io::DetectKind(bytes) == io::FileKind::kNDArrayList,
              "{}: not a k-means model: expected an MXNet NDArray list (k-means model_algo-1), found {}",
              source, io::FileKindName(io::DetectKind(bytes)));
  io::NDArrayList list = io::ParseNDArrayList(bytes, source);
  MLF_EXPECTS(!list.arrays.empty(), "{}: the NDArray list is empty; a k-means model holds one (k, d) array",
              source);
  const io::NDArray& a = list.arrays.front();
  MLF_EXPECTS(a.storage == io::NDStorage::kDense && a.shape.size() == 2 &&
                  (a.dtype == io::NDDtype::kFloat32 || a.dtype == io::NDDtype::kFloat64),
              "{}: the first array must be a dense 2-D float32 (k, d) array of centroids; found a {} {} array "
              "with {} dimension(s)",
              source, io::StorageName(a.storage), io::DtypeName(a.dtype), a.shape.size());
  MLF_EXPECTS(a.shape[0] >= 1 && a.shape[1] >= 1, "{}: the centroid array has shape ({}, {}); both must be >= 1",
              source, a.shape[0], a.shape[1]);
  Model m;
  m.k = a.shape[0];
  m.dim = a.shape[1];
  m.centers = a.ToFloat32();
  return m;
}

Model LoadModel(const std::string& path) { return LoadModel(io::ModelSource::Open(path)); }

Model LoadModel(const io::ModelSource& src) {
  Model m = ParseModel(src.model_bytes(), src.model_source());
  if (std::optional<nlohmann::json> found = ReadModelMetadata(src, kMetadataFile)) {
    nlohmann::json& meta = *found;
    if (meta.contains("hyperparameters")) m.hyperparameters_json = meta["hyperparameters"].dump();
    if (meta.contains("train_msd") && meta["train_msd"].is_number()) m.train_msd = meta["train_msd"].get<double>();
    if (meta.contains("metrics") && meta["metrics"].is_object()) {
      for (const auto& [name, value] : meta["metrics"].items()) {
        if (value.is_number()) m.metrics[name] = value.get<double>();
      }
    }
  }
  return m;
}

}  // namespace mlforge::algos::kmeans
