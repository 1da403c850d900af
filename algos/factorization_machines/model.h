// The factorization machines model and its SageMaker-compatible artifact (SPEC.md 4.4;
// ../shared/data/artifacts/README.md). `model_algo-1` is a ZIP holding, in this order:
//   meta.json    {"version": 1, "epoch_number": 1, "training_parameters": {every hyperparameter as a
//                string}, "label_names": ["out_label"]} in Python's json.dumps layout
//   symbol.json  the MXNet graph of SageMaker's image (data is CSR; w1_weight and v row_sparse with
//                their __init__, __lr_mult__, __shape__, __wd_mult__), ending in
//                LinearRegressionOutput (regressor) or LogisticRegressionOutput (binary_classifier)
//   params       NDArray list {arg:w1_weight row_sparse (d, 1), arg:w0_weight dense (1,),
//                arg:v row_sparse (d, k)}, float32, every row stored (as SageMaker writes it)
// mlforge adds `mlforge-model.json` next to model_algo-1 (hyperparameters, metrics), which
// SageMaker's hosting images ignore.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "algos/factorization_machines/config.h"
#include "core/batch.h"
#include "kernels/fm_step.h"

namespace mlforge::io {
class ModelSource;
}

namespace mlforge::algos::factorization_machines {

struct Model {
  PredictorType predictor_type = PredictorType::kRegressor;
  kernels::FmParams params;  // w0, w (d), v (d x k)
  // meta.json's training_parameters (strings, in SageMaker's order), kept for a faithful round trip.
  nlohmann::ordered_json training_parameters = nlohmann::ordered_json::object();
  int epoch_number = 1;
  // The symbol's per-group attributes (what SageMaker records; informative only).
  InitSpec bias_init, linear_init, factors_init;
  double bias_lr_mult = 0.1, linear_lr_mult = 0.001, factors_lr_mult = 0.0001;
  double bias_wd_mult = 0.01, linear_wd_mult = 0.001, factors_wd_mult = 0.00001;
  int mxnet_version = 10301;
  // mlforge-model.json (absent for foreign models).
  std::string hyperparameters_json = "{}";
  std::map<std::string, double> metrics;  // "test:rmse", ...

  int64_t dim() const { return params.d; }
  int64_t factors() const { return params.k; }
};

constexpr const char* kModelFile = "model_algo-1";
constexpr const char* kMetadataFile = "mlforge-model.json";

// The members of model_algo-1, exactly as written.
std::string MetaJson(const Model& m);
std::string SymbolJson(const Model& m);
std::string ParamsBytes(const Model& m);
std::string SerializeModel(const Model& m);
// Writes model_algo-1 and mlforge-model.json into `dir` (each atomically).
void SaveModel(const Model& m, const std::string& dir);

// Parses the bytes of a model_algo-1 (ours or SageMaker's). UserError naming `source` and the
// member when it is not a zip, a member is missing or malformed, or the arrays' shapes disagree.
Model ParseModel(std::string_view model_algo_1, const std::string& source);
Model LoadModel(const std::string& path);
Model LoadModel(const io::ModelSource& source);

// Embeddings export: one line per feature "index,w,v_0,...,v_{k-1}" (CSV with a header) or a
// float32 .npy array of shape (d, k + 1) with w in column 0; the format from the extension
// (.csv or .npy; UserError otherwise). Written atomically.
void ExportEmbeddings(const Model& m, const std::string& path);

}  // namespace mlforge::algos::factorization_machines
