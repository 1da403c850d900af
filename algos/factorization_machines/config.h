// Factorization machines hyperparameters (SPEC.md 4.4, plus what SageMaker's image records in
// meta.json: use_bias, use_linear, _optimizer, _learning_rate, _wd, ...) and the resolved
// configuration the training loop reads.
#pragma once

#include <cstdint>
#include <string>

#include "core/hyperparams.h"
#include "kernels/fm_step.h"

namespace mlforge::algos::factorization_machines {

// The declarative table: SageMaker's names, defaults and ranges.
const HpTable& Hyperparameters();

enum class PredictorType { kRegressor, kBinaryClassifier };
PredictorType ParsePredictorType(const std::string& s);  // UserError otherwise
const char* PredictorTypeName(PredictorType p);          // "regressor", "binary_classifier"

enum class InitMethod { kNormal, kUniform, kConstant };

// How one parameter group is initialised: normal N(0, sigma), uniform U[-scale, scale], constant.
struct InitSpec {
  InitMethod method = InitMethod::kNormal;
  double sigma = 0.01;
  double scale = 0;
  double value = 0;
  std::string Describe() const;  // the symbol's __init__ attribute: ["normal", {"sigma": 0.01}]
};

struct Config {
  int64_t feature_dim = 0;  // d
  int64_t num_factors = 0;  // k
  PredictorType predictor_type = PredictorType::kRegressor;
  int64_t epochs = 1;
  int64_t mini_batch_size = 1000;
  int64_t batch_metrics_publish_interval = 500;  // batches between per-batch metric lines
  InitSpec bias_init, linear_init, factors_init;
  kernels::FmStepSpec step;  // loss, optimizer, per-group lr / wd (with _learning_rate and _wd applied)
  uint64_t seed = 0;         // initialisation (Resources' seed)
};

// Reads validated values and applies the cross-field rules (an init parameter that does not apply
// to the chosen method, uniform without a scale, constant without a value), each failure a
// UserError naming the field and the fix. Also refuses a model that would not fit in memory.
Config ResolveConfig(HpValues& values, uint64_t seed);

}  // namespace mlforge::algos::factorization_machines
