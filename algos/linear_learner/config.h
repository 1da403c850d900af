// Linear learner hyperparameters (SPEC.md 4.1: SageMaker's names, defaults and ranges) and the
// resolved configuration the training loop reads.
//
// `auto` resolution (ResolveConfig). Where SPEC.md documents what `auto` means it is followed;
// where SageMaker samples per-model values (learning_rate, wd, l1, lr schedule, SPEC.md 7 item 4)
// the Config records that the user left the value to `auto` (the `*_auto` flags) so that the
// training loop can spread the parallel models around the resolved base value:
//   loss               logistic (binary_classifier), squared_loss (regressor), softmax_loss (multiclass)
//   optimizer          adam
//   learning_rate      adam 0.001, rmsprop 0.001, sgd 0.01 (mlforge's choice; SageMaker's is unknown)
//   wd, l1             0 (the 2017 documented default)
//   momentum           0;  beta_1 0.9;  beta_2 0.999
//   bias_lr_mult       10 (the real artifacts' fc0_bias carries __lr_mult__ "10.0");  bias_wd_mult 0
//   lr_scheduler_step 100;  lr_scheduler_factor 0.99;  lr_scheduler_minimum_lr 1e-5
//   num_models         1 under automatic model tuning (_tuning_objective_metric set), else 32
//                      (what a 1-instance SageMaker job ran)
//   num_calibration_samples 10000000 (the container's default)
//   normalize_data     true;  normalize_label: true for regressor, false otherwise
//   unbias_data        = use_bias;  unbias_label: regressor and use_bias
//   feature_dim        stays 0 ("take it from the data"); the loop resolves it from the first batch
//   positive_example_weight_mult: a number, or the kAuto / kBalanced modes (the loop computes them)
#pragma once

#include <cstdint>
#include <string>

#include "core/hyperparams.h"

namespace mlforge::algos::linear_learner {

// The declarative table, in SageMaker's order and spelling.
const HpTable& Hyperparameters();

enum class PredictorType { kBinaryClassifier, kMulticlassClassifier, kRegressor };
enum class Loss {
  kLogistic,
  kSquared,
  kAbsolute,
  kHinge,
  kEpsInsensitiveSquared,
  kEpsInsensitiveAbsolute,
  kQuantile,
  kHuber,
  kSoftmax,
};
enum class Optimizer { kSgd, kAdam, kRmsprop };
enum class InitMethod { kUniform, kNormal };
enum class SelectionCriterion {
  kAccuracy,
  kFBeta,  // also the legacy spelling `f1`
  kPrecisionAtTargetRecall,
  kRecallAtTargetPrecision,
  kLossFunction,  // also the legacy spelling `cross_entropy_loss`
};
enum class PositiveWeightMode { kValue, kAuto, kBalanced };

// SageMaker's spellings: "binary_classifier", "logistic", "squared_loss", "adam", "accuracy", ...
const char* PredictorTypeName(PredictorType p);
const char* LossName(Loss l);
const char* OptimizerName(Optimizer o);
const char* SelectionCriterionName(SelectionCriterion c);
// Inverse of LossName (UserError for an unknown name).
Loss ParseLoss(const std::string& name);
PredictorType ParsePredictorType(const std::string& name);

struct Config {
  PredictorType predictor_type = PredictorType::kBinaryClassifier;
  int64_t feature_dim = 0;  // 0: `auto`, taken from the data
  int64_t num_classes = 1;  // >= 3 for multiclass; 1 otherwise
  int64_t mini_batch_size = 1000;
  int64_t epochs = 15;
  bool use_bias = true;
  SelectionCriterion selection_criterion = SelectionCriterion::kAccuracy;
  double target_recall = 0.8;
  double target_precision = 0.8;
  PositiveWeightMode positive_weight_mode = PositiveWeightMode::kValue;
  double positive_example_weight_mult = 1.0;  // kValue only
  int64_t num_models = 32;
  int64_t num_calibration_samples = 10000000;
  InitMethod init_method = InitMethod::kUniform;
  double init_scale = 0.07;
  double init_sigma = 0.01;
  double init_bias = 0.0;
  Optimizer optimizer = Optimizer::kAdam;
  Loss loss = Loss::kLogistic;
  double wd = 0;
  double l1 = 0;
  double momentum = 0;
  double learning_rate = 0.001;
  double beta_1 = 0.9;
  double beta_2 = 0.999;
  double bias_lr_mult = 10;
  double bias_wd_mult = 0;
  bool use_lr_scheduler = true;
  int64_t lr_scheduler_step = 100;
  double lr_scheduler_factor = 0.99;
  double lr_scheduler_minimum_lr = 1e-5;
  bool normalize_data = true;
  bool normalize_label = false;
  bool unbias_data = true;
  bool unbias_label = false;
  int64_t num_point_for_scaler = 10000;
  double margin = 1.0;
  double quantile = 0.5;
  double loss_insensitivity = 0.01;
  double huber_delta = 1.0;
  int64_t early_stopping_patience = 3;
  double early_stopping_tolerance = 0.001;
  int64_t accuracy_top_k = 3;
  double f_beta = 1.0;
  bool balance_multiclass_weights = false;
  std::string tuning_objective_metric;  // SageMaker's _tuning_objective_metric ("" when not tuning)
  uint64_t seed = 0;                    // mlforge extension

  // True where the user left the value to `auto`: the training loop may vary these across the
  // parallel models (SageMaker's "nearby settings").
  bool learning_rate_auto = true;
  bool wd_auto = true;
  bool l1_auto = true;
  bool momentum_auto = true;
  bool lr_schedule_auto = true;  // any of lr_scheduler_step / _factor / _minimum_lr was auto
  bool unbias_data_auto = true;   // unbias_data left to auto: no shift when normalize_data is false
  bool unbias_label_auto = true;  // unbias_label left to auto: no shift when normalize_label is false

  // Outputs per example: 1 (binary, regressor) or num_classes (multiclass): the columns of
  // fc0_weight.
  int64_t num_outputs() const {
    return predictor_type == PredictorType::kMulticlassClassifier ? num_classes : 1;
  }
};

// Reads validated values, resolves every `auto` (each resolution is logged and recorded by
// HpValues::Resolve, except feature_dim which the loop resolves from the data) and checks the
// cross-field rules, throwing a UserError that names the field and the fix:
//  - multiclass_classifier needs num_classes >= 3 given explicitly;
//  - loss must suit the predictor: binary {logistic, hinge_loss}; multiclass {softmax_loss};
//    regressor {squared_loss, absolute_loss, eps_insensitive_*, quantile_loss, huber_loss};
//  - positive_example_weight_mult is `auto`, `balanced` or a number > 0;
//  - unbias_data / unbias_label = true need use_bias = true (the shift is folded into the bias);
//  - lr_scheduler_minimum_lr <= learning_rate when both are given.
// Settings that do not apply to the predictor type (e.g. target_recall for a regressor) are
// accepted and ignored, as SageMaker does.
Config ResolveConfig(HpValues& values);

}  // namespace mlforge::algos::linear_learner
