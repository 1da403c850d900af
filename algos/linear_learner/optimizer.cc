#include "algos/linear_learner/optimizer.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "core/error.h"
#include "kernels/omp_threads.h"

namespace mlforge::algos::linear_learner {

double ModelSettings::LearningRate(const Config& cfg, int64_t t) const {
  if (!cfg.use_lr_scheduler) return learning_rate;
  const int64_t decays = std::max<int64_t>(0, t - 1) / lr_scheduler_step;
  const double lr = learning_rate * std::pow(lr_scheduler_factor, static_cast<double>(decays));
  return std::max(lr, std::min(lr_scheduler_minimum_lr, learning_rate));
}

nlohmann::ordered_json ModelSettings::ToJson(const Config& cfg) const {
  nlohmann::ordered_json j;
  j["optimizer"] = OptimizerName(cfg.optimizer);
  j["learning_rate"] = learning_rate;
  j["wd"] = wd;
  j["l1"] = l1;
  if (cfg.optimizer == Optimizer::kSgd) j["momentum"] = momentum;
  if (cfg.predictor_type == PredictorType::kBinaryClassifier)
    j["positive_example_weight_mult"] = positive_weight;
  j["lr_scheduler_step"] = lr_scheduler_step;
  j["lr_scheduler_factor"] = lr_scheduler_factor;
  j["lr_scheduler_minimum_lr"] = lr_scheduler_minimum_lr;
  return j;
}

std::vector<ModelSettings> ParallelModelSettings(const Config& cfg, double balanced_positive_weight) {
  ModelSettings base;
  base.learning_rate = cfg.learning_rate;
  base.wd = cfg.wd;
  base.l1 = cfg.l1;
  base.momentum = cfg.momentum;
  base.lr_scheduler_step = cfg.lr_scheduler_step;
  base.lr_scheduler_factor = cfg.lr_scheduler_factor;
  base.lr_scheduler_minimum_lr = cfg.lr_scheduler_minimum_lr;
  switch (cfg.positive_weight_mode) {
    case PositiveWeightMode::kValue:
      base.positive_weight = cfg.positive_example_weight_mult;
      break;
    case PositiveWeightMode::kBalanced:
      base.positive_weight = balanced_positive_weight;
      break;
    case PositiveWeightMode::kAuto:
      base.positive_weight = 1.0;
      break;
  }
  std::vector<ModelSettings> out(static_cast<size_t>(cfg.num_models), base);
  // mt19937_64's sequence is fixed by the standard; the mapping to [0, 1) is done here (the
  // standard distributions differ between library implementations).
  std::mt19937_64 rng(cfg.seed * 0x9E3779B97F4A7C15ULL + 0x5bd1e995ULL);
  auto uniform = [&rng](double lo, double hi) { return lo + (hi - lo) * ((rng() >> 11) * 0x1.0p-53); };
  for (int64_t j = 1; j < cfg.num_models; ++j) {
    ModelSettings& s = out[static_cast<size_t>(j)];
    // Stratified: model j draws from its own slice of [-1, 2], so the grid is covered evenly.
    const double u_lr =
        -1.0 + 3.0 * (static_cast<double>(j - 1) + uniform(0, 1)) / static_cast<double>(cfg.num_models - 1);
    const double u_wd = uniform(-6, -2), u_l1 = uniform(-6, -3);
    if (cfg.learning_rate_auto) s.learning_rate = cfg.learning_rate * std::pow(10.0, u_lr);
    if (cfg.wd_auto) s.wd = j % 2 == 1 ? 0.0 : std::pow(10.0, u_wd);
    if (cfg.l1_auto) s.l1 = j % 4 != 0 ? 0.0 : std::pow(10.0, u_l1);
    if (cfg.momentum_auto && cfg.optimizer == Optimizer::kSgd) s.momentum = j % 2 == 1 ? 0.9 : 0.0;
    if (cfg.positive_weight_mode == PositiveWeightMode::kAuto) {
      const double options[] = {1.0, balanced_positive_weight, std::sqrt(balanced_positive_weight)};
      s.positive_weight = options[j % 3];
    }
  }
  return out;
}

ParallelOptimizer::ParallelOptimizer(const Config& cfg, std::vector<ModelSettings> settings, int64_t d,
                                     int64_t k, int threads)
    : cfg_(cfg),
      settings_(std::move(settings)),
      d_(d),
      k_(k),
      m_(static_cast<int64_t>(settings_.size())),
      threads_(kernels::ResolveThreads(threads)) {
  const size_t nw = static_cast<size_t>(d_ * m_ * k_), nb = static_cast<size_t>(m_ * k_);
  if (cfg.optimizer != Optimizer::kSgd ||
      std::any_of(settings_.begin(), settings_.end(),
                  [](const ModelSettings& s) { return s.momentum != 0; })) {
    state1_w_.assign(nw, 0.0f);
    state1_b_.assign(nb, 0.0f);
  }
  if (cfg.optimizer == Optimizer::kAdam) {
    state2_w_.assign(nw, 0.0f);
    state2_b_.assign(nb, 0.0f);
  }
}

double ParallelOptimizer::CurrentLearningRate(int64_t j) const {
  return settings_[static_cast<size_t>(j)].LearningRate(cfg_, std::max<int64_t>(t_, 1));
}

namespace {

// Per-model constants of one step.
struct StepCoef {
  bool skip = false;
  double inv_weight = 0;  // 1 / weight sum
  double lr = 0;          // weights' step size (Adam: with bias correction)
  double lr_bias = 0;
  double wd = 0, wd_bias = 0;
  double momentum = 0;
  double l1_threshold = 0;  // lr_t x l1
};

struct Update {
  Optimizer kind;
  double beta_1, beta_2;

  // Updates one parameter in place; s1/s2 are its state slots (may be null when unused).
  inline float Apply(float w, double g, double lr, double momentum, float* s1, float* s2) const {
    switch (kind) {
      case Optimizer::kSgd: {
        if (s1 == nullptr) return static_cast<float>(w - lr * g);
        const double v = momentum * *s1 - lr * g;
        *s1 = static_cast<float>(v);
        return static_cast<float>(w + v);
      }
      case Optimizer::kAdam: {
        const double m = beta_1 * *s1 + (1 - beta_1) * g;
        const double v = beta_2 * *s2 + (1 - beta_2) * g * g;
        *s1 = static_cast<float>(m);
        *s2 = static_cast<float>(v);
        return static_cast<float>(w - lr * m / (std::sqrt(v) + 1e-8));
      }
      case Optimizer::kRmsprop: {
        const double n = 0.9 * *s1 + 0.1 * g * g;
        *s1 = static_cast<float>(n);
        return static_cast<float>(w - lr * g / std::sqrt(n + 1e-8));
      }
    }
    return w;
  }
};

}  // namespace

void ParallelOptimizer::Step(float* w, float* bias, const float* grad_w, const float* grad_bias,
                             const double* weight_sum) {
  ++t_;
  const int64_t mk = m_ * k_;
  std::vector<StepCoef> coef(static_cast<size_t>(m_));
  for (int64_t j = 0; j < m_; ++j) {
    const ModelSettings& s = settings_[static_cast<size_t>(j)];
    StepCoef& c = coef[static_cast<size_t>(j)];
    c.skip = !(weight_sum[j] > 0);
    if (c.skip) continue;
    c.inv_weight = 1.0 / weight_sum[j];
    const double lr_t = s.LearningRate(cfg_, t_);
    double correction = 1.0;
    if (cfg_.optimizer == Optimizer::kAdam) {
      const double t = static_cast<double>(t_);
      correction = std::sqrt(1.0 - std::pow(cfg_.beta_2, t)) / (1.0 - std::pow(cfg_.beta_1, t));
    }
    c.lr = lr_t * correction;
    c.lr_bias = c.lr * cfg_.bias_lr_mult;
    c.wd = s.wd;
    c.wd_bias = s.wd * cfg_.bias_wd_mult;
    c.momentum = s.momentum;
    c.l1_threshold = lr_t * s.l1;
  }
  const Update up{cfg_.optimizer, cfg_.beta_1, cfg_.beta_2};
  const bool has1 = !state1_w_.empty(), has2 = !state2_w_.empty();
  const int64_t k = k_;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads_) schedule(static) if (d_ * mk > 65536)
#endif
  for (int64_t i = 0; i < d_; ++i) {
    for (int64_t col = 0; col < mk; ++col) {
      const StepCoef& c = coef[static_cast<size_t>(col / k)];
      if (c.skip) continue;
      const int64_t p = i * mk + col;
      const double g = grad_w[p] * c.inv_weight + c.wd * w[p];
      float v =
          up.Apply(w[p], g, c.lr, c.momentum, has1 ? &state1_w_[p] : nullptr, has2 ? &state2_w_[p] : nullptr);
      if (c.l1_threshold > 0) {
        const float a = std::fabs(v) - static_cast<float>(c.l1_threshold);
        v = a > 0 ? std::copysign(a, v) : 0.0f;
      }
      w[p] = v;
    }
  }
  if (bias == nullptr) return;
  for (int64_t col = 0; col < mk; ++col) {
    const StepCoef& c = coef[static_cast<size_t>(col / k)];
    if (c.skip) continue;
    const double g = grad_bias[col] * c.inv_weight + c.wd_bias * bias[col];
    bias[col] = up.Apply(bias[col], g, c.lr_bias, c.momentum, has1 ? &state1_b_[col] : nullptr,
                         has2 ? &state2_b_[col] : nullptr);
  }
}

}  // namespace mlforge::algos::linear_learner
