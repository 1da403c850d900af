// The PCA model and its SageMaker-compatible artifact (SPEC.md 4.3): `model_algo-1` is an MXNet
// NDArray list with NAMED float32 arrays `s` (num_components), `v` (feature_dim x num_components,
// components as columns) and, only when subtract_mean, `mean` (1 x feature_dim). The order of `s`
// follows SageMaker: ascending in regular mode, descending in randomized mode, and `v`'s columns
// and the served projection follow the same order. mlforge adds `mlforge-model.json` (algorithm,
// resolved hyperparameters, explained variance per component, metrics), which SageMaker's own
// hosting images ignore.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace mlforge::io {
class ModelSource;
}

namespace mlforge::algos::pca {

struct Model {
  int64_t dim = 0;         // feature_dim
  int64_t components = 0;  // num_components
  std::vector<float> s;    // components; may hold NaN (SageMaker's regular mode, negative eigenvalues)
  std::vector<float> v;    // dim x components, row-major
  std::vector<float> mean;  // dim values, or empty (subtract_mean = false)
  std::string hyperparameters_json = "{}";  // resolved configuration ("{}" for foreign models)
  std::string mode;                         // "regular" / "randomized" ("" when unknown)
  // Per component, in the order of `s`: variance along it (eigenvalue / (n - 1), scikit-learn's
  // explained_variance_) and its share of the total variance. Empty for foreign models.
  std::vector<double> explained_variance;
  std::vector<double> explained_variance_ratio;
  // True for SageMaker's single-pass randomized mode: the variances are sketch estimates (the
  // ratios are then of max(total, their sum), so they never add up past 1).
  bool explained_variance_estimated = false;
  int64_t rows = 0;  // training rows (0 when unknown)
  std::map<std::string, double> metrics;  // "test:reconstruction_error", ...
};

constexpr const char* kModelFile = "model_algo-1";
constexpr const char* kMetadataFile = "mlforge-model.json";

// Writes model_algo-1 and mlforge-model.json into `dir` (each atomically).
void SaveModel(const Model& model, const std::string& dir);
// Parses the bytes of a model_algo-1 (ours or SageMaker's); `source` names it in errors. UserError
// unless it is a named NDArray list with a dense float `v` of 2 dimensions, an `s` with one value per
// column of v and, when present, a `mean` with feature_dim values (1 x d or d); other names are ignored.
Model ParseModel(std::string_view model_algo_1, const std::string& source);
// Loads a model directory, a model.tar.gz or a bare model_algo-1; reads mlforge-model.json too.
Model LoadModel(const std::string& path);
Model LoadModel(const io::ModelSource& source);

}  // namespace mlforge::algos::pca
