// The parallel models' settings and optimiser (algos/linear_learner/optimizer.h): every update
// rule against a float64 re-derivation of the documented formulas (momentum, Adam's bias
// correction, RMSProp, wd and bias_wd_mult, bias_lr_mult, the l1 proximal step, the lr schedule
// and its floor), and the settings spread (model 0 is the user's configuration; only `auto`
// values vary; deterministic for a seed).
#include "algos/linear_learner/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace mlforge::algos::linear_learner {
namespace {

Config Base(Optimizer opt) {
  Config c;
  c.optimizer = opt;
  c.num_models = 2;
  c.learning_rate = 0.1;
  c.bias_lr_mult = 3;
  c.bias_wd_mult = 0.5;
  c.beta_1 = 0.8;
  c.beta_2 = 0.95;
  c.use_lr_scheduler = true;
  c.lr_scheduler_step = 2;
  c.lr_scheduler_factor = 0.5;
  c.lr_scheduler_minimum_lr = 0.01;
  return c;
}

// Float64 reference of one parameter's trajectory under the header's formulas.
struct Ref {
  Optimizer opt;
  double lr, wd, l1, momentum, beta_1, beta_2;
  double w, s1 = 0, s2 = 0;
  void Step(double g_sum, double weight, int t, double lr_t) {
    double g = g_sum / weight + wd * w;
    switch (opt) {
      case Optimizer::kSgd:
        s1 = momentum * s1 - lr_t * g;
        w += s1;
        break;
      case Optimizer::kAdam: {
        s1 = beta_1 * s1 + (1 - beta_1) * g;
        s2 = beta_2 * s2 + (1 - beta_2) * g * g;
        const double a = lr_t * std::sqrt(1 - std::pow(beta_2, t)) / (1 - std::pow(beta_1, t));
        w -= a * s1 / (std::sqrt(s2) + 1e-8);
        break;
      }
      case Optimizer::kRmsprop:
        s1 = 0.9 * s1 + 0.1 * g * g;
        w -= lr_t * g / std::sqrt(s1 + 1e-8);
        break;
    }
    if (l1 > 0) w = std::copysign(std::max(0.0, std::fabs(w) - lr_t * l1), w);
  }
};

double ScheduledLr(const Config& c, double lr, int t) {
  return std::max(lr * std::pow(c.lr_scheduler_factor, (t - 1) / c.lr_scheduler_step),
                  std::min(c.lr_scheduler_minimum_lr, lr));
}

TEST(LinearLearnerOptimizer, EveryRuleMatchesTheFloat64Formulas) {
  for (Optimizer opt : {Optimizer::kSgd, Optimizer::kAdam, Optimizer::kRmsprop}) {
    SCOPED_TRACE(OptimizerName(opt));
    const Config cfg = Base(opt);
    // Two models, d = 3 rows, k = 1: model 0 plain, model 1 with wd, l1 and momentum.
    std::vector<ModelSettings> s(2);
    for (auto& x : s) {
      x.learning_rate = cfg.learning_rate;
      x.lr_scheduler_step = cfg.lr_scheduler_step;
      x.lr_scheduler_factor = cfg.lr_scheduler_factor;
      x.lr_scheduler_minimum_lr = cfg.lr_scheduler_minimum_lr;
    }
    s[1].learning_rate = 0.05;
    s[1].wd = 0.3;
    s[1].l1 = 0.2;
    s[1].momentum = 0.7;
    ParallelOptimizer opt_state(cfg, s, 3, 1, 1);
    std::vector<float> w = {0.5f, -0.2f, 0.05f, 0.1f, 0.3f, -0.4f}, b = {0.25f, -0.5f};
    std::vector<Ref> ref;
    for (int i = 0; i < 6; ++i) {
      const ModelSettings& ms = s[i % 2];
      ref.push_back({opt, ms.learning_rate, ms.wd, ms.l1, ms.momentum, cfg.beta_1, cfg.beta_2, w[i]});
    }
    std::vector<Ref> ref_b;
    for (int j = 0; j < 2; ++j) {
      const ModelSettings& ms = s[j];
      ref_b.push_back(
          {opt, ms.learning_rate, ms.wd * cfg.bias_wd_mult, 0.0, ms.momentum, cfg.beta_1, cfg.beta_2, b[j]});
    }
    std::mt19937_64 rng(7);
    for (int t = 1; t <= 7; ++t) {
      std::vector<float> gw(6), gb(2);
      for (auto& g : gw) g = static_cast<float>(static_cast<int>(rng() % 200) - 100) / 50.0f;
      for (auto& g : gb) g = static_cast<float>(static_cast<int>(rng() % 200) - 100) / 50.0f;
      const double ws[] = {4.0, 2.5};
      opt_state.Step(w.data(), b.data(), gw.data(), gb.data(), ws);
      for (int i = 0; i < 6; ++i) {
        const int j = i % 2;
        ref[i].Step(gw[i], ws[j], t, ScheduledLr(cfg, s[j].learning_rate, t));
      }
      for (int j = 0; j < 2; ++j)
        ref_b[j].Step(gb[j], ws[j], t, ScheduledLr(cfg, s[j].learning_rate, t) * cfg.bias_lr_mult);
      for (int i = 0; i < 6; ++i)
        EXPECT_NEAR(w[i], ref[i].w, 2e-6 * std::max(1.0, std::fabs(ref[i].w))) << "t " << t << " w " << i;
      for (int j = 0; j < 2; ++j)
        EXPECT_NEAR(b[j], ref_b[j].w, 2e-6 * std::max(1.0, std::fabs(ref_b[j].w))) << "t " << t;
    }
    EXPECT_EQ(opt_state.steps(), 7);
    // Step 7: factor applied floor(6 / 2) = 3 times (0.1 -> 0.0125), floored at
    // min(lr_scheduler_minimum_lr, lr) = 0.01 (0.05 -> 0.00625 -> 0.01).
    EXPECT_NEAR(opt_state.CurrentLearningRate(0), 0.1 * 0.125, 1e-15);
    EXPECT_NEAR(opt_state.CurrentLearningRate(1), 0.01, 1e-15);
  }
}

TEST(LinearLearnerOptimizer, L1DrivesSmallWeightsToExactlyZero) {
  Config cfg = Base(Optimizer::kSgd);
  cfg.num_models = 1;
  cfg.use_lr_scheduler = false;
  std::vector<ModelSettings> s(1);
  s[0].learning_rate = 0.1;
  s[0].l1 = 1.0;
  ParallelOptimizer o(cfg, s, 2, 1, 1);
  std::vector<float> w = {0.05f, 2.0f}, b = {0};
  const std::vector<float> g = {0, 0}, gb = {0};
  const double ws[] = {1};
  o.Step(w.data(), b.data(), g.data(), gb.data(), ws);
  EXPECT_EQ(w[0], 0.0f);  // |0.05| < lr * l1 = 0.1
  EXPECT_NEAR(w[1], 1.9f, 1e-6);
}

TEST(LinearLearnerOptimizer, AModelWithoutRowsIsLeftAlone) {
  Config cfg = Base(Optimizer::kAdam);
  std::vector<ModelSettings> s(2);
  ParallelOptimizer o(cfg, s, 1, 2, 1);  // k = 2 outputs per model
  std::vector<float> w = {1, 2, 3, 4}, b = {5, 6, 7, 8};
  const std::vector<float> g = {1, 1, 1, 1}, gb = {1, 1, 1, 1};
  const double ws[] = {0.0, 2.0};
  o.Step(w.data(), b.data(), g.data(), gb.data(), ws);
  EXPECT_EQ(w[0], 1);
  EXPECT_EQ(w[1], 2);
  EXPECT_EQ(b[0], 5);
  EXPECT_EQ(b[1], 6);
  EXPECT_LT(w[2], 3);
  EXPECT_LT(b[3], 8);
}

TEST(LinearLearnerSettings, ModelZeroIsTheConfigurationAndOnlyAutoValuesVary) {
  Config c;
  c.num_models = 16;
  c.learning_rate = 0.02;
  c.optimizer = Optimizer::kSgd;
  c.positive_weight_mode = PositiveWeightMode::kAuto;
  auto s = ParallelModelSettings(c, 4.0);
  ASSERT_EQ(s.size(), 16u);
  EXPECT_EQ(s[0].learning_rate, 0.02);
  EXPECT_EQ(s[0].wd, 0);
  EXPECT_EQ(s[0].l1, 0);
  EXPECT_EQ(s[0].momentum, 0);
  EXPECT_EQ(s[0].positive_weight, 1.0);
  int varied_lr = 0, with_wd = 0, with_l1 = 0, with_momentum = 0;
  for (size_t j = 1; j < s.size(); ++j) {
    // Stratified over 10^[-1, 2] x the base: model j in the j-th of 15 slices.
    const double lo = -1 + 3.0 * (j - 1) / 15, hi = -1 + 3.0 * j / 15;
    EXPECT_GE(s[j].learning_rate, 0.02 * std::pow(10.0, lo) * (1 - 1e-12)) << j;
    EXPECT_LE(s[j].learning_rate, 0.02 * std::pow(10.0, hi) * (1 + 1e-12)) << j;
    varied_lr += s[j].learning_rate != 0.02;
    with_wd += s[j].wd > 0;
    with_l1 += s[j].l1 > 0;
    with_momentum += s[j].momentum == 0.9;
    EXPECT_LE(s[j].wd, 1e-2);
    EXPECT_LE(s[j].l1, 1e-3);
    const double pw = s[j].positive_weight;
    EXPECT_TRUE(pw == 1.0 || pw == 4.0 || pw == 2.0) << pw;
  }
  EXPECT_EQ(varied_lr, 15);
  EXPECT_EQ(with_wd, 7);        // even j >= 2
  EXPECT_EQ(with_l1, 3);        // j = 4, 8, 12
  EXPECT_EQ(with_momentum, 8);  // odd j
  // Same seed, same settings; another seed, other values.
  auto again = ParallelModelSettings(c, 4.0);
  for (size_t j = 0; j < s.size(); ++j) EXPECT_EQ(again[j].learning_rate, s[j].learning_rate);
  c.seed = 9;
  auto other = ParallelModelSettings(c, 4.0);
  EXPECT_NE(other[1].learning_rate, s[1].learning_rate);

  // Values the user gave stay fixed in every model.
  c.learning_rate_auto = c.wd_auto = c.l1_auto = c.momentum_auto = false;
  c.wd = 0.001;
  c.positive_weight_mode = PositiveWeightMode::kBalanced;
  for (const auto& x : ParallelModelSettings(c, 4.0)) {
    EXPECT_EQ(x.learning_rate, 0.02);
    EXPECT_EQ(x.wd, 0.001);
    EXPECT_EQ(x.l1, 0);
    EXPECT_EQ(x.momentum, 0);
    EXPECT_EQ(x.positive_weight, 4.0);
  }
}

}  // namespace
}  // namespace mlforge::algos::linear_learner
