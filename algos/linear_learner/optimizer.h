// The parallel models' settings and their optimiser (SPEC.md 4.1 "Optimization").
//
// Settings. Model 0 always runs the resolved configuration exactly (so num_models=1 trains what
// the user asked for). Models 1..m-1 vary, around it, only what the user left to `auto`
// (SageMaker's "nearby settings"; its sampling rule is not published, so this is mlforge's):
//   learning_rate  base x 10^u, u stratified over [-1, 2]: model j >= 1 draws u uniformly in the
//                  j-th of m - 1 equal slices (so the models cover 0.1x .. 100x the base evenly;
//                  the upper side is wider because linear models on normalised data train well
//                  far above the optimisers' customary defaults, and a diverging model is simply
//                  never selected)
//   wd             0 for half the models (odd j), else 10^u, u ~ U(-6, -2)
//   l1             0 for three models in four (j % 4 != 0), else 10^u, u ~ U(-6, -3)
//   momentum       sgd only: 0.9 for odd j (0 otherwise)
//   positive_example_weight_mult=auto: 1, balanced, sqrt(balanced) by j % 3 (model 0: 1)
// where balanced = negatives / positives in the scaler sample. The draws come from a generator
// seeded with the `seed` hyperparameter and are made for every model whatever is auto, so a
// model's values do not depend on which other settings were given.
//
// Optimiser, per model j, on the mean gradient g = (gradient sum) / (weight sum of the step), in
// normalised space (scaler.h), step t = 1, 2, ... (one step per group-wide mini-batch):
//   lr_t   = learning_rate_j x lr_scheduler_factor^floor((t - 1) / lr_scheduler_step), floored at
//            min(lr_scheduler_minimum_lr, learning_rate_j); constant when use_lr_scheduler=false
//   weights:  g += wd_j w;                 step size lr_t
//   bias:     g += wd_j bias_wd_mult b;    step size lr_t x bias_lr_mult
//   sgd       v = momentum v - lr g; w += v                       (MXNet's SGD)
//   adam      m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//             w -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + 1e-8)        (MXNet's Adam)
//   rmsprop   n = 0.9 n + 0.1 g^2; w -= lr g / sqrt(n + 1e-8)     (MXNet's RMSProp, gamma1 0.9)
//   l1        proximal step after the update: w = sign(w) max(0, |w| - lr_t l1_j) (weights only)
// A model whose step had no rows (weight sum 0) is left unchanged.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "algos/linear_learner/config.h"

namespace mlforge::algos::linear_learner {

struct ModelSettings {
  double learning_rate = 0.001;
  double wd = 0;
  double l1 = 0;
  double momentum = 0;
  double positive_weight = 1.0;  // binary: weight of positive rows (negatives weigh 1)
  int64_t lr_scheduler_step = 100;
  double lr_scheduler_factor = 0.99;
  double lr_scheduler_minimum_lr = 1e-5;

  // The learning rate of step t (1-based) under `cfg`'s use_lr_scheduler.
  double LearningRate(const Config& cfg, int64_t t) const;
  // For the log line "Best model found for hyperparameters: {...}".
  nlohmann::ordered_json ToJson(const Config& cfg) const;
};

// cfg.num_models settings (header comment). balanced_positive_weight: negatives / positives in
// the scaler sample (binary; ignored otherwise).
std::vector<ModelSettings> ParallelModelSettings(const Config& cfg, double balanced_positive_weight);

// Optimiser state and update for m models sharing the d x (m k) weight matrix (kernels/linear_loss.h
// layout: model j owns columns [j k, (j + 1) k)) and the m k biases. Host memory, float32 state.
class ParallelOptimizer {
 public:
  ParallelOptimizer(const Config& cfg, std::vector<ModelSettings> settings, int64_t d, int64_t k,
                    int threads);

  // One step. w: d x mk, bias: mk entries (null when use_bias=false); grad_w / grad_bias: the
  // SUMS over the step's rows (same shapes; grad_bias ignored without bias); weight_sum: m
  // entries. Everything host memory.
  void Step(float* w, float* bias, const float* grad_w, const float* grad_bias, const double* weight_sum);

  int64_t steps() const { return t_; }
  const std::vector<ModelSettings>& settings() const { return settings_; }
  // The learning rate model j used in the latest step (the next one before any step).
  double CurrentLearningRate(int64_t j) const;

 private:
  const Config& cfg_;
  std::vector<ModelSettings> settings_;
  int64_t d_, k_, m_;
  int threads_;
  int64_t t_ = 0;
  std::vector<float> state1_w_, state2_w_;  // d x mk: sgd momentum / adam m / rmsprop n; adam v
  std::vector<float> state1_b_, state2_b_;  // mk
};

}  // namespace mlforge::algos::linear_learner
