// The CPU loss-and-gradient step (kernels/linear_loss.h): every loss's value and derivative
// against closed forms and float64 finite differences, the batched step for m > 1 models against
// a float64 reference (row weights, positive-example weights, bias / no bias), and CSR == dense.
#include "kernels/linear_loss.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"

namespace mlforge::kernels {
namespace {

using K = LinearLossKind;

const K kScalarKinds[] = {
    K::kLogistic, K::kSquared, K::kAbsolute, K::kHinge, K::kEpsInsensitiveSquared, K::kEpsInsensitiveAbsolute,
    K::kQuantile, K::kHuber};

LinearLossSpec SpecFor(K kind) {
  LinearLossSpec s;
  s.kind = kind;
  s.margin = 0.75;
  s.quantile = 0.3;
  s.epsilon = 0.2;
  s.huber_delta = 0.6;
  return s;
}

bool IsBinary(K k) { return k == K::kLogistic || k == K::kHinge; }

TEST(LinearLoss, ClosedForms) {
  double d = 0;
  LinearLossSpec s = SpecFor(K::kLogistic);
  EXPECT_NEAR(LinearLossValue(s, 0.0, 1.0, &d), std::log(2.0), 1e-15);
  EXPECT_NEAR(d, -0.5, 1e-15);
  EXPECT_NEAR(LinearLossValue(s, 2.0, 0.0, &d), std::log1p(std::exp(2.0)), 1e-14);
  EXPECT_NEAR(d, 1.0 / (1.0 + std::exp(-2.0)), 1e-15);
  EXPECT_NEAR(LinearLossValue(s, -800.0, 0.0, &d), 0.0, 1e-300);  // no overflow
  EXPECT_NEAR(LinearLossValue(s, -800.0, 1.0, &d), 800.0, 1e-9);
  EXPECT_NEAR(d, -1.0, 1e-15);

  s = SpecFor(K::kSquared);
  EXPECT_DOUBLE_EQ(LinearLossValue(s, 3.0, 1.0, &d), 2.0);
  EXPECT_DOUBLE_EQ(d, 2.0);
  s = SpecFor(K::kAbsolute);
  EXPECT_DOUBLE_EQ(LinearLossValue(s, -1.0, 1.5, &d), 2.5);
  EXPECT_DOUBLE_EQ(d, -1.0);
  s = SpecFor(K::kHinge);  // margin 0.75, label 0 -> y = -1
  EXPECT_DOUBLE_EQ(LinearLossValue(s, 0.25, 0.0, &d), 1.0);
  EXPECT_DOUBLE_EQ(d, 1.0);
  EXPECT_DOUBLE_EQ(LinearLossValue(s, 1.0, 1.0, &d), 0.0);
  EXPECT_DOUBLE_EQ(d, 0.0);
  s = SpecFor(K::kEpsInsensitiveSquared);  // eps 0.2
  EXPECT_NEAR(LinearLossValue(s, 1.7, 1.0, &d), 0.5 * 0.5 * 0.5, 1e-15);
  EXPECT_NEAR(d, 0.5, 1e-15);
  EXPECT_DOUBLE_EQ(LinearLossValue(s, 1.1, 1.0, &d), 0.0);
  s = SpecFor(K::kEpsInsensitiveAbsolute);
  EXPECT_NEAR(LinearLossValue(s, 0.0, 1.0, &d), 0.8, 1e-15);
  EXPECT_DOUBLE_EQ(d, -1.0);
  s = SpecFor(K::kQuantile);  // q 0.3: under-prediction costs 0.3 per unit, over-prediction 0.7
  EXPECT_NEAR(LinearLossValue(s, 0.0, 2.0, &d), 0.6, 1e-15);
  EXPECT_NEAR(d, -0.3, 1e-15);
  EXPECT_NEAR(LinearLossValue(s, 2.0, 0.0, &d), 1.4, 1e-15);
  EXPECT_NEAR(d, 0.7, 1e-15);
  s = SpecFor(K::kHuber);  // delta 0.6
  EXPECT_NEAR(LinearLossValue(s, 0.5, 0.0, &d), 0.125, 1e-15);
  EXPECT_NEAR(d, 0.5, 1e-15);
  EXPECT_NEAR(LinearLossValue(s, -2.0, 0.0, &d), 0.6 * (2.0 - 0.3), 1e-15);
  EXPECT_NEAR(d, -0.6, 1e-15);

  const float sc[3] = {1.0f, 2.0f, 3.0f};
  double probs[3];
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_NEAR(SoftmaxLossValue(sc, 3, 0, probs), lse - 1.0, 1e-12);
  EXPECT_NEAR(probs[2], std::exp(3.0 - lse), 1e-12);
}

TEST(LinearLoss, DerivativesMatchFiniteDifferences) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-3, 3);
  for (K kind : kScalarKinds) {
    const LinearLossSpec spec = SpecFor(kind);
    int checked = 0;
    for (int t = 0; t < 200; ++t) {
      const double s = u(rng);
      const double y = IsBinary(kind) ? (t % 2) : u(rng);
      // Skip points within h of a kink (|r| = 0, eps, delta; hinge margin).
      const double r = s - y, ypm = y > 0.5 ? 1 : -1;
      const double kinks[] = {r, std::fabs(r) - spec.epsilon, std::fabs(r) - spec.huber_delta,
                              spec.margin - ypm * s};
      bool near_kink = false;
      for (double k : kinks) near_kink |= std::fabs(k) < 1e-3;
      if (near_kink) continue;
      const double h = 1e-6;
      double d = 0;
      LinearLossValue(spec, s, y, &d);
      const double fd =
          (LinearLossValue(spec, s + h, y, nullptr) - LinearLossValue(spec, s - h, y, nullptr)) / (2 * h);
      EXPECT_NEAR(d, fd, 1e-6 * (1 + std::fabs(fd))) << static_cast<int>(kind) << " s=" << s << " y=" << y;
      ++checked;
    }
    EXPECT_GT(checked, 150);
  }
  // softmax: d/ds_c = p_c - [c == y]
  const float sc[4] = {0.3f, -1.2f, 2.0f, 0.1f};
  double probs[4];
  for (int y = 0; y < 4; ++y) {
    SoftmaxLossValue(sc, 4, y, probs);
    for (int c = 0; c < 4; ++c) {
      float plus[4], minus[4];
      std::copy(sc, sc + 4, plus);
      std::copy(sc, sc + 4, minus);
      const float h = 1e-2f;
      plus[c] += h;
      minus[c] -= h;
      const double fd = (SoftmaxLossValue(plus, 4, y, nullptr) - SoftmaxLossValue(minus, 4, y, nullptr)) /
                        (static_cast<double>(plus[c]) - minus[c]);
      EXPECT_NEAR(probs[c] - (c == y ? 1.0 : 0.0), fd, 1e-4);
    }
  }
}

struct Problem {
  int64_t n = 0, d = 0, m = 0, k = 1;
  std::vector<float> x, labels, row_weights, w, bias, pos_weight;
};

Problem MakeProblem(K kind, int64_t n, int64_t d, int64_t m, uint32_t seed, double zero_fraction = 0.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0, 1);
  std::uniform_real_distribution<float> u(0, 1);
  Problem p;
  p.n = n;
  p.d = d;
  p.m = m;
  p.k = kind == K::kSoftmax ? 4 : 1;
  p.x.resize(n * d);
  for (auto& v : p.x) v = u(rng) < zero_fraction ? 0.0f : g(rng);
  p.labels.resize(n);
  for (auto& y : p.labels) {
    if (kind == K::kSoftmax)
      y = static_cast<float>(static_cast<int>(u(rng) * 4) % 4);
    else if (IsBinary(kind))
      y = u(rng) < 0.4f ? 1.0f : 0.0f;
    else
      y = 2.0f * g(rng);
  }
  p.row_weights.resize(n);
  for (auto& w : p.row_weights) w = 0.5f + 1.5f * u(rng);
  p.w.resize(d * m * p.k);
  for (auto& w : p.w) w = 0.4f * g(rng);
  p.bias.resize(m * p.k);
  for (auto& b : p.bias) b = 0.3f * g(rng);
  p.pos_weight.resize(m);
  for (int64_t j = 0; j < m; ++j) p.pos_weight[j] = 0.5f + static_cast<float>(j);
  return p;
}

// float64 reference of the whole step: scores, weighted loss sums, weight sums and gradients.
struct Reference {
  std::vector<double> scores, loss, weight_sum, grad_w, grad_b;
};

Reference ComputeReference(const Problem& p, const LinearLossSpec& spec, bool use_bias, bool use_pos) {
  const int64_t mk = p.m * p.k;
  Reference r;
  r.scores.assign(p.n * mk, 0.0);
  r.loss.assign(p.m, 0.0);
  r.weight_sum.assign(p.m, 0.0);
  r.grad_w.assign(p.d * mk, 0.0);
  r.grad_b.assign(mk, 0.0);
  std::vector<double> g(mk);
  for (int64_t i = 0; i < p.n; ++i) {
    for (int64_t c = 0; c < mk; ++c) {
      double s = use_bias ? p.bias[c] : 0.0;
      for (int64_t f = 0; f < p.d; ++f) s += static_cast<double>(p.x[i * p.d + f]) * p.w[f * mk + c];
      r.scores[i * mk + c] = s;
    }
    for (int64_t j = 0; j < p.m; ++j) {
      double w = p.row_weights[i];
      if (use_pos && IsBinary(spec.kind) && p.labels[i] > 0.5f) w *= p.pos_weight[j];
      r.weight_sum[j] += w;
      if (spec.kind == K::kSoftmax) {
        std::vector<float> sc(p.k);
        for (int64_t c = 0; c < p.k; ++c) sc[c] = static_cast<float>(r.scores[i * mk + j * p.k + c]);
        std::vector<double> probs(p.k);
        r.loss[j] += w * SoftmaxLossValue(sc.data(), p.k, static_cast<int64_t>(p.labels[i]), probs.data());
        for (int64_t c = 0; c < p.k; ++c)
          g[j * p.k + c] = w * (probs[c] - (c == static_cast<int64_t>(p.labels[i]) ? 1.0 : 0.0));
      } else {
        double d = 0;
        r.loss[j] += w * LinearLossValue(spec, r.scores[i * mk + j], p.labels[i], &d);
        g[j] = w * d;
      }
    }
    for (int64_t c = 0; c < mk; ++c) {
      r.grad_b[c] += g[c];
      for (int64_t f = 0; f < p.d; ++f) r.grad_w[f * mk + c] += static_cast<double>(p.x[i * p.d + f]) * g[c];
    }
  }
  return r;
}

struct Output {
  std::vector<float> scores, grad_w, grad_b;
  std::vector<double> loss, weight_sum;
  HostLinearLossOutput view() {
    return {scores.data(), loss.data(), weight_sum.data(), grad_w.data(), grad_b.data()};
  }
};

Output MakeOutput(const Problem& p) {
  Output o;
  o.scores.assign(p.n * p.m * p.k, -1);
  o.grad_w.assign(p.d * p.m * p.k, -1);
  o.grad_b.assign(p.m * p.k, -1);
  o.loss.assign(p.m, -1);
  o.weight_sum.assign(p.m, -1);
  return o;
}

HostLinearModels Models(const Problem& p, bool use_bias, bool use_pos) {
  return HostLinearModels{p.w.data(), use_bias ? p.bias.data() : nullptr,     p.d, p.m,
                          p.k,        use_pos ? p.pos_weight.data() : nullptr};
}

void ExpectMatches(const Output& o, const Reference& r, const std::string& what) {
  for (size_t i = 0; i < r.scores.size(); ++i)
    ASSERT_NEAR(o.scores[i], r.scores[i], 1e-5 * (1 + std::fabs(r.scores[i]))) << what << " score " << i;
  for (size_t j = 0; j < r.loss.size(); ++j) {
    EXPECT_NEAR(o.loss[j], r.loss[j], 1e-5 * (1 + std::fabs(r.loss[j]))) << what << " loss " << j;
    EXPECT_NEAR(o.weight_sum[j], r.weight_sum[j], 1e-9 * (1 + r.weight_sum[j])) << what << " weight " << j;
  }
  double scale = 1;
  for (double v : r.grad_w) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < r.grad_w.size(); ++i)
    ASSERT_NEAR(o.grad_w[i], r.grad_w[i], 2e-5 * scale) << what << " grad_w " << i;
  for (size_t i = 0; i < r.grad_b.size(); ++i)
    ASSERT_NEAR(o.grad_b[i], r.grad_b[i], 2e-5 * (1 + std::fabs(r.grad_b[i]))) << what << " grad_b " << i;
}

const K kAllKinds[] = {
    K::kLogistic, K::kSquared, K::kAbsolute, K::kHinge, K::kEpsInsensitiveSquared, K::kEpsInsensitiveAbsolute,
    K::kQuantile, K::kHuber,   K::kSoftmax};

TEST(LinearLoss, DenseStepMatchesFloat64ReferenceForEveryLoss) {
  for (K kind : kAllKinds) {
    for (int variant = 0; variant < 3; ++variant) {
      const bool use_bias = variant != 1, use_pos = variant == 2;
      Problem p = MakeProblem(kind, 57, 13, 3, 100 + static_cast<int>(kind) * 7 + variant);
      const LinearLossSpec spec = SpecFor(kind);
      Output o = MakeOutput(p);
      LinearLossGradCpu(HostDenseView{p.x.data(), p.n, p.d}, p.labels.data(), p.row_weights.data(),
                        Models(p, use_bias, use_pos), spec, o.view());
      ExpectMatches(o, ComputeReference(p, spec, use_bias, use_pos),
                    "kind " + std::to_string(static_cast<int>(kind)) + " variant " + std::to_string(variant));
    }
  }
}

TEST(LinearLoss, RegisterTiledStepMatchesFloat64ReferenceForEveryLoss) {
  // m k a multiple of the SIMD width (16 and 48 columns: one packet tile and two-plus-one on
  // AVX-512 and AVX2) takes the register-tiled products; 203 rows and d = 13 leave partial row
  // tiles, k tiles and 64-row chunks. One and two threads.
  for (K kind : kAllKinds) {
    const int64_t k = kind == K::kSoftmax ? 4 : 1;
    for (int64_t mk : {int64_t{16}, int64_t{48}}) {
      for (int variant = 0; variant < 3; ++variant) {
        const bool use_bias = variant != 1, use_pos = variant == 2;
        Problem p = MakeProblem(kind, 203, 13, mk / k, 900 + static_cast<int>(kind) * 11 + variant);
        const LinearLossSpec spec = SpecFor(kind);
        for (int threads : {1, 2}) {
          Output o = MakeOutput(p);
          LinearLossGradCpu(HostDenseView{p.x.data(), p.n, p.d}, p.labels.data(), p.row_weights.data(),
                            Models(p, use_bias, use_pos), spec, o.view(), threads);
          ExpectMatches(o, ComputeReference(p, spec, use_bias, use_pos),
                        "tiled: kind " + std::to_string(static_cast<int>(kind)) + " mk " + std::to_string(mk) +
                            " variant " + std::to_string(variant) + " threads " + std::to_string(threads));
        }
      }
    }
  }
}

TEST(LinearLoss, GradientMatchesFiniteDifferencesOfTheStep) {
  // Smooth losses: perturb a weight and a bias of model 1 and difference the loss sums.
  for (K kind : {K::kLogistic, K::kSquared, K::kSoftmax, K::kHuber}) {
    Problem p = MakeProblem(kind, 40, 6, 2, 55 + static_cast<int>(kind));
    const LinearLossSpec spec = SpecFor(kind);
    Output o = MakeOutput(p);
    const HostDenseView x{p.x.data(), p.n, p.d};
    LinearLossGradCpu(x, p.labels.data(), p.row_weights.data(), Models(p, true, false), spec, o.view());
    auto loss_of_model1 = [&](Problem& q) {
      std::vector<double> loss(q.m);
      HostLinearLossOutput out;
      out.loss = loss.data();
      LinearLossGradCpu(x, q.labels.data(), q.row_weights.data(), Models(q, true, false), spec, out);
      return loss[1];
    };
    const int64_t mk = p.m * p.k;
    for (int64_t idx : {int64_t{2} * mk + p.k, int64_t{5} * mk + mk - 1}) {
      Problem q = p;
      const float h = 1e-2f;
      q.w[idx] = p.w[idx] + h;
      const double up = loss_of_model1(q);
      const float w_up = q.w[idx];
      q.w[idx] = p.w[idx] - h;
      const double down = loss_of_model1(q);
      const double fd = (up - down) / (static_cast<double>(w_up) - q.w[idx]);
      EXPECT_NEAR(o.grad_w[idx], fd, 2e-3 * (1 + std::fabs(fd))) << static_cast<int>(kind) << " w " << idx;
    }
    Problem q = p;
    const int64_t b = mk - 1;
    q.bias[b] = p.bias[b] + 1e-2f;
    const double up = loss_of_model1(q);
    const float b_up = q.bias[b];
    q.bias[b] = p.bias[b] - 1e-2f;
    const double fd = (up - loss_of_model1(q)) / (static_cast<double>(b_up) - q.bias[b]);
    EXPECT_NEAR(o.grad_b[b], fd, 2e-3 * (1 + std::fabs(fd))) << static_cast<int>(kind);
  }
}

TEST(LinearLoss, CsrEqualsDense) {
  for (K kind : kAllKinds) {
    Problem p = MakeProblem(kind, 64, 17, 4, 900 + static_cast<int>(kind), 0.6);
    std::vector<int64_t> indptr = {0};
    std::vector<uint32_t> indices;
    std::vector<float> values;
    for (int64_t i = 0; i < p.n; ++i) {
      for (int64_t f = 0; f < p.d; ++f) {
        if (p.x[i * p.d + f] != 0.0f) {
          indices.push_back(static_cast<uint32_t>(f));
          values.push_back(p.x[i * p.d + f]);
        }
      }
      indptr.push_back(static_cast<int64_t>(indices.size()));
    }
    const LinearLossSpec spec = SpecFor(kind);
    Output dense = MakeOutput(p), csr = MakeOutput(p);
    LinearLossGradCpu(HostDenseView{p.x.data(), p.n, p.d}, p.labels.data(), p.row_weights.data(),
                      Models(p, true, true), spec, dense.view());
    LinearLossGradCpu(HostCsrView{indptr.data(), indices.data(), values.data(), p.n, p.d}, p.labels.data(),
                      p.row_weights.data(), Models(p, true, true), spec, csr.view());
    for (size_t i = 0; i < dense.scores.size(); ++i) ASSERT_NEAR(csr.scores[i], dense.scores[i], 1e-5);
    for (size_t j = 0; j < dense.loss.size(); ++j) {
      EXPECT_NEAR(csr.loss[j], dense.loss[j], 1e-5 * (1 + std::fabs(dense.loss[j])));
      EXPECT_DOUBLE_EQ(csr.weight_sum[j], dense.weight_sum[j]);
    }
    for (size_t i = 0; i < dense.grad_w.size(); ++i) ASSERT_NEAR(csr.grad_w[i], dense.grad_w[i], 1e-4);
    for (size_t i = 0; i < dense.grad_b.size(); ++i) ASSERT_NEAR(csr.grad_b[i], dense.grad_b[i], 1e-4);
    // And both match the float64 reference.
    ExpectMatches(csr, ComputeReference(p, spec, true, true),
                  "csr kind " + std::to_string(static_cast<int>(kind)));
  }
}

TEST(LinearLoss, NullOutputsAndNullWeights) {
  Problem p = MakeProblem(K::kSquared, 10, 3, 2, 3);
  std::vector<double> loss(2), ws(2);
  HostLinearLossOutput out;
  out.loss = loss.data();
  out.weight_sum = ws.data();
  LinearLossGradCpu(HostDenseView{p.x.data(), p.n, p.d}, p.labels.data(), nullptr, Models(p, true, false),
                    SpecFor(K::kSquared), out);
  EXPECT_DOUBLE_EQ(ws[0], 10.0);
  std::fill(p.row_weights.begin(), p.row_weights.end(), 1.0f);
  const Reference r = ComputeReference(p, SpecFor(K::kSquared), true, false);
  EXPECT_NEAR(loss[1], r.loss[1], 1e-5 * (1 + r.loss[1]));
}

TEST(LinearLoss, ManyLogisticModelsWithLargeScoresMatchReference) {
  // m >= 8 logistic models take the vectorised block path (64 rows x m at a time, log1p through a
  // corrected log); weights x 25 push scores to |s| ~ 30-60, where e^-|s| is far below 2^-53 of 1.
  for (int64_t m : {int64_t{8}, int64_t{32}}) {
    Problem p = MakeProblem(K::kLogistic, 333, 11, m, 77 + static_cast<uint32_t>(m));
    for (float& w : p.w) w *= 25.0f;
    const LinearLossSpec spec = SpecFor(K::kLogistic);
    Output o = MakeOutput(p);
    LinearLossGradCpu(HostDenseView{p.x.data(), p.n, p.d}, p.labels.data(), p.row_weights.data(),
                      Models(p, true, true), spec, o.view(), 2);
    ExpectMatches(o, ComputeReference(p, spec, true, true), "many logistic models, m = " + std::to_string(m));
    // No row weights and no positive weights: the unweighted loop (float32 derivatives directly).
    Output u = MakeOutput(p);
    LinearLossGradCpu(HostDenseView{p.x.data(), p.n, p.d}, p.labels.data(), nullptr, Models(p, true, false), spec,
                      u.view(), 2);
    std::fill(p.row_weights.begin(), p.row_weights.end(), 1.0f);
    ExpectMatches(u, ComputeReference(p, spec, true, false),
                  "many unweighted logistic models, m = " + std::to_string(m));
  }
}

TEST(LinearLoss, ManySoftmaxModelsWithAndWithoutRowWeightsMatchReference) {
  // m >= 8 softmax models take the vectorised block path; without row weights its derivatives
  // stay float32 (with them, they are weighted in float64).
  Problem p = MakeProblem(K::kSoftmax, 150, 7, 12, 515);
  const LinearLossSpec spec = SpecFor(K::kSoftmax);
  Output o = MakeOutput(p);
  LinearLossGradCpu(HostDenseView{p.x.data(), p.n, p.d}, p.labels.data(), p.row_weights.data(), Models(p, true, false),
                    spec, o.view(), 2);
  ExpectMatches(o, ComputeReference(p, spec, true, false), "many softmax models, row weights");
  Output u = MakeOutput(p);
  LinearLossGradCpu(HostDenseView{p.x.data(), p.n, p.d}, p.labels.data(), nullptr, Models(p, true, false), spec,
                    u.view(), 2);
  std::fill(p.row_weights.begin(), p.row_weights.end(), 1.0f);
  ExpectMatches(u, ComputeReference(p, spec, true, false), "many softmax models, no row weights");
}

TEST(LinearLoss, ParallelPathMatchesReference) {
  // Large enough (n * m * k > 20000) for the OpenMP element-wise path and per-thread partial sums.
  for (K kind : {K::kLogistic, K::kSoftmax, K::kQuantile}) {
    Problem p = MakeProblem(kind, 1500, 9, 8, 4242 + static_cast<int>(kind));
    const LinearLossSpec spec = SpecFor(kind);
    Output o = MakeOutput(p);
    LinearLossGradCpu(HostDenseView{p.x.data(), p.n, p.d}, p.labels.data(), p.row_weights.data(),
                      Models(p, true, true), spec, o.view(), 4);
    ExpectMatches(o, ComputeReference(p, spec, true, true),
                  "parallel " + std::to_string(static_cast<int>(kind)));
  }
}

TEST(LinearLoss, BadInputIsAUserError) {
  Problem p = MakeProblem(K::kSoftmax, 5, 3, 1, 4);
  p.labels[2] = 4.0f;  // k = 4 classes: 0..3
  Output o = MakeOutput(p);
  EXPECT_THROW(LinearLossGradCpu(HostDenseView{p.x.data(), p.n, p.d}, p.labels.data(), nullptr,
                                 Models(p, true, false), SpecFor(K::kSoftmax), o.view()),
               UserError);
  p.labels[2] = 1.5f;
  EXPECT_THROW(LinearLossGradCpu(HostDenseView{p.x.data(), p.n, p.d}, p.labels.data(), nullptr,
                                 Models(p, true, false), SpecFor(K::kSoftmax), o.view()),
               UserError);
  Problem q = MakeProblem(K::kSquared, 5, 3, 1, 4);
  Output oq = MakeOutput(q);
  EXPECT_THROW(LinearLossGradCpu(HostDenseView{q.x.data(), q.n, 2}, q.labels.data(), nullptr,
                                 Models(q, true, false), SpecFor(K::kSquared), oq.view()),
               UserError);
  const int64_t indptr[] = {0, 1, 1, 1, 1, 1};
  const uint32_t indices[] = {3};  // d = 3: column 3 is out of range
  const float values[] = {1.0f};
  EXPECT_THROW(LinearLossGradCpu(HostCsrView{indptr, indices, values, 5, 3}, q.labels.data(), nullptr,
                                 Models(q, true, false), SpecFor(K::kSquared), oq.view()),
               UserError);
}

}  // namespace
}  // namespace mlforge::kernels
