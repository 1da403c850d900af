// The linear learner model and its SageMaker-compatible artifact (SPEC.md 4.1, 7;
// ../shared/data/artifacts/README.md). `model_algo-1` is a ZIP holding, in this order:
//   manifest.json           {"additional-params.json": "json", "mx-mod": "mxnet_module", "version": 1}
//   additional-params.json  {"threshold", "loss_type", "metrics_params": {...}, "predictor_type"}
//   mx-mod-symbol.json      MXNet graph: dot(data, fc0_weight) broadcast_add fc0_bias, then
//                           LogisticRegressionOutput (binary_classifier), LinearRegressionOutput
//                           (regressor) or SoftmaxOutput (multiclass_classifier: mlforge's
//                           equivalent; no real multiclass artifact has been seen)
//   mx-mod-0000.params      NDArray list {arg:fc0_bias (1, k), arg:fc0_weight (d, k)}, float32
// with k = 1 for binary and regression and num_classes for multiclass. The JSON members are written
// exactly as SageMaker's image writes them (Python json.dumps separators and key order; the symbol
// in MXNet's layout), so our regressor/binary members match the real ones byte for byte given the
// same values. Normalisation is folded into the weights: the model predicts on raw features.
// mlforge adds `mlforge-model.json` next to model_algo-1 (hyperparameters, metrics), which
// SageMaker's hosting images ignore.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "algos/linear_learner/config.h"
#include "core/batch.h"

namespace mlforge::io {
class ModelSource;
}

namespace mlforge::algos::linear_learner {

struct Model {
  PredictorType predictor_type = PredictorType::kBinaryClassifier;
  std::string loss_type = "logistic";  // SageMaker's loss name, as in additional-params.json
  int64_t dim = 0;                     // d
  int64_t outputs = 1;                 // k: columns of fc0_weight
  std::vector<float> weights;          // d x k, row-major (fc0_weight as stored)
  std::vector<float> bias;             // k entries (fc0_bias)
  double threshold = 0.5;              // binary: predicted_label = score > threshold
  // additional-params.json's "metrics_params", kept in its order for a faithful round trip.
  nlohmann::ordered_json metrics_params = nlohmann::ordered_json::object();
  double bias_lr_mult = 10.0;   // recorded in the symbol's fc0_bias __lr_mult__
  int mxnet_version = 10301;    // the symbol's attrs.mxnet_version
  // mlforge-model.json (absent for foreign models).
  std::string hyperparameters_json = "{}";
  std::map<std::string, double> metrics;  // SageMaker metric names: "validation:objective_loss", ...
};

constexpr const char* kModelFile = "model_algo-1";
constexpr const char* kMetadataFile = "mlforge-model.json";

// additional-params.json's metrics_params as SageMaker fills it for `c` (the loss parameters of
// the chosen loss, null for the others; threshold; f_beta for binary only).
nlohmann::ordered_json MetricsParamsFor(const Config& c, double threshold);

// The members of model_algo-1, exactly as written.
std::string ManifestJson();
std::string AdditionalParamsJson(const Model& m);
std::string SymbolJson(const Model& m);
std::string ParamsBytes(const Model& m);
// The zip bytes of model_algo-1.
std::string SerializeModel(const Model& m);
// Writes model_algo-1 and mlforge-model.json into `dir` (each atomically).
void SaveModel(const Model& m, const std::string& dir);

// Parses the bytes of a model_algo-1 (ours or SageMaker's). UserError naming `source` and the
// member when it is not a zip, a member is missing or malformed, or the arrays' shapes disagree.
Model ParseModel(std::string_view model_algo_1, const std::string& source);
// A model directory, a model.tar.gz or a bare model_algo-1 (io::ModelSource); reads
// mlforge-model.json too when present.
Model LoadModel(const std::string& path);
Model LoadModel(const io::ModelSource& source);

// Batched inference, as SageMaker's linear learner endpoint answers:
//   binary_classifier:     score = sigmoid(x.w + b) (logistic; the raw score for hinge_loss),
//                          predicted_label = score > threshold ? 1 : 0
//   multiclass_classifier: score = softmax(x W + b) (k values), predicted_label = argmax
//                          (ties: lowest class)
//   regressor:             score = x.w + b, no predicted_label
// Dense or CSR rows with cols == model.dim; dot products accumulate in float64.
struct Predictions {
  int64_t rows = 0;
  int64_t score_width = 1;              // k for multiclass, else 1
  std::vector<float> scores;            // rows x score_width
  std::vector<float> predicted_labels;  // rows entries; empty for a regressor
};
Predictions Predict(const Model& model, const HostBatch& batch);

}  // namespace mlforge::algos::linear_learner
