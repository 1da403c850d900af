// The linear learner scaler (algos/linear_learner/scaler.h): which parts apply for each
// configuration, the statistics against float64 sums, and the folding algebra in float64: raw
// rows times the folded weights equal normalised rows times the normalised-space weights, and the
// folded gradient equals the normalised-space gradient.
#include "algos/linear_learner/scaler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace mlforge::algos::linear_learner {
namespace {

HostBatch DenseBatch(int64_t n, int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g(0, 1);
  HostBatch b;
  b.rows = n;
  b.cols = d;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) b.values.push_back(static_cast<float>(3 * j + (j + 1) * g(rng)));
    b.labels.push_back(static_cast<float>(10 + 4 * g(rng)));
  }
  return b;
}

Config Regressor() {
  Config c;
  c.predictor_type = PredictorType::kRegressor;
  c.loss = Loss::kSquared;
  c.normalize_data = true;
  c.unbias_data = true;
  c.normalize_label = true;
  c.unbias_label = true;
  return c;
}

TEST(LinearLearnerScaler, StatisticsAreTheSampleMeanAndStdev) {
  const HostBatch b = DenseBatch(500, 4, 1);
  ScalerStats st(4);
  st.Add(b, 300);  // only the first 300 rows count
  const Scaler s = Scaler::FromStats(Regressor(), st);
  EXPECT_EQ(s.sample_rows, 300);
  for (int64_t j = 0; j < 4; ++j) {
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < 300; ++i) sum += b.values[i * 4 + j];
    const double mean = sum / 300;
    for (int64_t i = 0; i < 300; ++i) sq += std::pow(b.values[i * 4 + j] - mean, 2);
    EXPECT_NEAR(s.mean[j], mean, 1e-9 * std::max(1.0, std::fabs(mean)));
    EXPECT_NEAR(s.stdev[j], std::sqrt(sq / 300), 1e-9);
  }
  double ys = 0;
  for (int64_t i = 0; i < 300; ++i) ys += b.labels[i];
  EXPECT_NEAR(s.mean_label, ys / 300, 1e-9);
  EXPECT_TRUE(s.scale_data && s.shift_data && s.scale_label && s.shift_label);
}

TEST(LinearLearnerScaler, WhichPartsApply) {
  HostBatch b = DenseBatch(50, 3, 2);
  for (int64_t i = 0; i < 50; ++i) b.values[i * 3 + 1] = 7.0f;  // a constant column
  ScalerStats st(3);
  st.Add(b, 50);
  Config c = Regressor();
  Scaler s = Scaler::FromStats(c, st);
  EXPECT_EQ(s.stdev[1], 1.0);          // no spread: not scaled
  EXPECT_NEAR(s.mean[1], 7.0, 1e-12);  // but shifted
  // normalize_data=false with unbias_data left to auto: features untouched.
  c.normalize_data = false;
  s = Scaler::FromStats(c, st);
  EXPECT_FALSE(s.scale_data);
  EXPECT_FALSE(s.shift_data);
  // ... unless unbias_data was asked for explicitly.
  c.unbias_data_auto = false;
  s = Scaler::FromStats(c, st);
  EXPECT_TRUE(s.shift_data);
  // No bias: nothing can absorb a shift.
  c = Regressor();
  c.use_bias = false;
  s = Scaler::FromStats(c, st);
  EXPECT_FALSE(s.shift_data);
  EXPECT_FALSE(s.shift_label);
  EXPECT_TRUE(s.scale_label);
  // Sparse data: scaled, never shifted.
  HostBatch csr;
  csr.layout = Layout::kCsr;
  csr.rows = 2;
  csr.cols = 3;
  csr.indptr = {0, 2, 3};
  csr.indices = {0, 2, 1};
  csr.values = {1, 2, 3};
  csr.labels = {1, 2};
  ScalerStats sp(3);
  sp.Add(csr, 2);
  s = Scaler::FromStats(Regressor(), sp);
  EXPECT_FALSE(s.shift_data);
  EXPECT_TRUE(s.scale_data);
  EXPECT_NEAR(s.stdev[0], 0.5, 1e-12);  // column 0 holds 1 and an implicit 0
  const std::string text = s.Describe();
  EXPECT_NE(text.find("Scaling model computed with parameters: {'stdev_weight': [0.5, "), std::string::npos)
      << text;
  EXPECT_NE(text.find("'mean_weight': None}"), std::string::npos) << text;
  EXPECT_EQ(Scaler::Identity(2).Describe(),
            "Scaling model computed with parameters: {'stdev_weight': None, 'stdev_label': None, "
            "'mean_label': None, "
            "'mean_weight': None}");
}

TEST(LinearLearnerScaler, FoldedWeightsOnRawRowsEqualNormalisedRowsAndGradientsMatch) {
  const int64_t n = 40, d = 5, mk = 3;
  const HostBatch b = DenseBatch(n, d, 3);
  ScalerStats st(d);
  st.Add(b, n);
  const Scaler s = Scaler::FromStats(Regressor(), st);
  std::mt19937_64 rng(4);
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<float> w(d * mk), bias(mk);
  for (auto& x : w) x = static_cast<float>(u(rng));
  for (auto& x : bias) x = static_cast<float>(u(rng));
  std::vector<float> w_eff(d * mk), b_eff(mk), w_raw(d * mk), b_raw(mk);
  s.Fold(w.data(), bias.data(), mk, false, w_eff.data(), b_eff.data());
  s.Fold(w.data(), bias.data(), mk, true, w_raw.data(), b_raw.data());
  // G: arbitrary per-row, per-column derivatives.
  std::vector<double> g(n * mk);
  for (auto& x : g) x = u(rng);
  std::vector<double> gw_norm(d * mk, 0.0), gb(mk, 0.0);
  std::vector<float> gw_raw(d * mk, 0.0f), gb_f(mk);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t c = 0; c < mk; ++c) {
      double z_score = bias[c], raw_score = b_eff[c], label_score = b_raw[c];
      for (int64_t j = 0; j < d; ++j) {
        const double x = b.values[i * d + j];
        const double z = (x - s.mean[j]) / s.stdev[j];
        z_score += z * w[j * mk + c];
        raw_score += x * w_eff[j * mk + c];
        label_score += x * w_raw[j * mk + c];
        gw_norm[j * mk + c] += z * g[i * mk + c];
        gw_raw[j * mk + c] += static_cast<float>(x * g[i * mk + c]);
      }
      gb[c] += g[i * mk + c];
      EXPECT_NEAR(raw_score, z_score, 2e-5 * (1 + std::fabs(z_score)));
      // The raw-label model predicts stdev_y * (normalised score) + mean_y.
      EXPECT_NEAR(label_score, s.stdev_label * z_score + s.mean_label, 2e-5 * (1 + std::fabs(label_score)));
    }
  }
  for (int64_t c = 0; c < mk; ++c) gb_f[c] = static_cast<float>(gb[c]);
  s.GradientToNormalised(gw_raw.data(), gb_f.data(), mk);
  for (int64_t p = 0; p < d * mk; ++p) EXPECT_NEAR(gw_raw[p], gw_norm[p], 1e-4 * (1 + std::fabs(gw_norm[p])));
}

}  // namespace
}  // namespace mlforge::algos::linear_learner
