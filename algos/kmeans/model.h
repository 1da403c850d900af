// The k-means model and its SageMaker-compatible artifact (SPEC.md 4.2): `model_algo-1` is an
// MXNet NDArray list holding one unnamed float32 (k, d) array of centroids. mlforge adds
// `mlforge-model.json` beside it (algorithm, resolved hyperparameters, training metrics), which
// SageMaker's own hosting images ignore.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace mlforge::io {
class ModelSource;
}

namespace mlforge::algos::kmeans {

struct Model {
  int64_t k = 0;
  int64_t dim = 0;
  std::vector<float> centers;  // k x dim, row-major, host
  std::string hyperparameters_json = "{}";  // resolved configuration ("{}" for foreign models)
  double train_msd = -1;  // the train msd the job reported (-1 when unknown)
  // Every metric the job reported, by SageMaker's metric name ("train:msd", "test:msd", "test:ssd").
  std::map<std::string, double> metrics;

  const float* center(int64_t j) const { return centers.data() + j * dim; }
};

constexpr const char* kModelFile = "model_algo-1";
constexpr const char* kMetadataFile = "mlforge-model.json";

// Writes model_algo-1 and mlforge-model.json into `dir` (each atomically).
void SaveModel(const Model& model, const std::string& dir);
// Parses the bytes of a model_algo-1 (ours or SageMaker's). `source` names it in errors.
// UserError unless it is an NDArray list whose first array is a dense 2-D float array with
// k >= 1 rows and d >= 1 columns (float64 is accepted and rounded).
Model ParseModel(std::string_view model_algo_1, const std::string& source);
// Loads a model directory, a model.tar.gz or a bare model_algo-1 (io::ModelSource); reads
// mlforge-model.json too when present.
Model LoadModel(const std::string& path);
Model LoadModel(const io::ModelSource& source);

}  // namespace mlforge::algos::kmeans
