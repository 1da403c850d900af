// The k-means numerical core on the CPU: assign-and-accumulate (dense and CSR) against a float64
// brute-force reference, seeding, and weighted Lloyd.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/error.h"
#include "core/resources.h"
#include "kernels/kmeans_assign.h"
#include "kernels/kmeans_lloyd.h"

namespace mlforge::kernels {
namespace {

struct Data {
  int64_t n = 0, d = 0, k = 0;
  std::vector<float> x, c, w;
};

// Points drawn around k random centers (so clusters have meaningful structure), plus the centers
// perturbed, plus weights in [0.5, 2).
Data MakeData(int64_t n, int64_t d, int64_t k, uint64_t seed, bool weighted = true) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<float> ud(0.5f, 2.0f);
  Data s{n, d, k, {}, {}, {}};
  s.c.resize(static_cast<size_t>(k * d));
  for (auto& v : s.c) v = 3.0f * nd(rng);
  s.x.resize(static_cast<size_t>(n * d));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = static_cast<int64_t>(rng() % static_cast<uint64_t>(k));
    for (int64_t q = 0; q < d; ++q) s.x[i * d + q] = s.c[j * d + q] + nd(rng);
  }
  for (auto& v : s.c) v += 0.3f * nd(rng);
  if (weighted) {
    s.w.resize(static_cast<size_t>(n));
    for (auto& v : s.w) v = ud(rng);
  }
  return s;
}

// Float64 squared distance from row i to center j.
double RefDist(const Data& s, int64_t i, int64_t j) {
  double r = 0.0;
  for (int64_t q = 0; q < s.d; ++q) {
    const double diff = static_cast<double>(s.x[i * s.d + q]) - s.c[j * s.d + q];
    r += diff * diff;
  }
  return r;
}

struct Result {
  std::vector<int32_t> labels;
  std::vector<float> min_dist;
  std::vector<double> sums, weights;
  double cost = 0.0;
};

Result RunDense(const Data& s, int threads) {
  Result r;
  r.labels.assign(static_cast<size_t>(s.n), -1);
  r.min_dist.assign(static_cast<size_t>(s.n), -1.0f);
  r.sums.assign(static_cast<size_t>(s.k * s.d), 0.0);
  r.weights.assign(static_cast<size_t>(s.k), 0.0);
  HostKMeansOutput out{r.labels.data(), r.min_dist.data(), r.sums.data(), r.weights.data(), &r.cost};
  KMeansAssignCpu(HostDenseView{s.x.data(), s.n, s.d}, s.w.empty() ? nullptr : s.w.data(),
                  HostKMeansCenters{s.c.data(), nullptr, s.k, s.d}, out, threads);
  return r;
}

// Checks r against the float64 brute force: every label is the reference argmin, or (a float32
// near-tie) within 1e-5 of the scale ||x||^2 + ||c||^2 of it; distances, cost and the statistics
// (recomputed in float64 from r's own labels) match tightly.
void ExpectMatchesReference(const Data& s, const Result& r, double sum_tol) {
  int mismatches = 0;
  double ref_cost = 0.0;
  std::vector<double> sums(static_cast<size_t>(s.k * s.d), 0.0), abs_sums(sums.size(), 0.0);
  std::vector<double> weights(static_cast<size_t>(s.k), 0.0);
  for (int64_t i = 0; i < s.n; ++i) {
    int64_t best = 0;
    double best_d = RefDist(s, i, 0);
    for (int64_t j = 1; j < s.k; ++j) {
      const double dj = RefDist(s, i, j);
      if (dj < best_d) {
        best_d = dj;
        best = j;
      }
    }
    const int32_t got = r.labels[static_cast<size_t>(i)];
    ASSERT_GE(got, 0);
    ASSERT_LT(got, s.k);
    const double got_d = RefDist(s, i, got);
    if (got != best) {
      ++mismatches;
      double xn = 0.0, cn = 0.0;
      for (int64_t q = 0; q < s.d; ++q) {
        xn += static_cast<double>(s.x[i * s.d + q]) * s.x[i * s.d + q];
        cn += static_cast<double>(s.c[best * s.d + q]) * s.c[best * s.d + q];
      }
      EXPECT_LE(got_d - best_d, 1e-5 * (xn + cn)) << "row " << i << ": got " << got << ", reference " << best;
    }
    EXPECT_NEAR(r.min_dist[static_cast<size_t>(i)], got_d, 1e-5 * got_d + 1e-6) << "row " << i;
    const double w = s.w.empty() ? 1.0 : s.w[static_cast<size_t>(i)];
    ref_cost += w * got_d;
    weights[static_cast<size_t>(got)] += w;
    for (int64_t q = 0; q < s.d; ++q) {
      sums[static_cast<size_t>(got * s.d + q)] += w * s.x[i * s.d + q];
      abs_sums[static_cast<size_t>(got * s.d + q)] += std::abs(w * s.x[i * s.d + q]);
    }
  }
  EXPECT_LE(mismatches, s.n / 100 + 1) << "too many near-ties";
  EXPECT_NEAR(r.cost, ref_cost, 1e-6 * ref_cost);
  for (size_t j = 0; j < weights.size(); ++j) EXPECT_NEAR(r.weights[j], weights[j], 1e-9 * weights[j] + 1e-9);
  for (size_t e = 0; e < sums.size(); ++e) {
    ASSERT_NEAR(r.sums[e], sums[e], sum_tol * abs_sums[e] + 1e-9) << "sums entry " << e;
  }
}

class AssignShapes : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t>> {};

TEST_P(AssignShapes, DenseMatchesFloat64Reference) {
  const auto [n, d, k] = GetParam();
  for (bool weighted : {false, true}) {
    const Data s = MakeData(n, d, k, 17 + n + d + k, weighted);
    for (int threads : {1, 3}) {
      SCOPED_TRACE(::testing::Message() << "weighted=" << weighted << " threads=" << threads);
      ExpectMatchesReference(s, RunDense(s, threads), 1e-6);
    }
  }
}

TEST_P(AssignShapes, CsrEqualsDense) {
  const auto [n, d, k] = GetParam();
  Data s = MakeData(n, d, k, 5 + n, true);
  // Sparsify: keep ~30% of the entries; row 0 keeps none (an empty row).
  std::mt19937_64 rng(99);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t q = 0; q < d; ++q) {
      if (i == 0 || rng() % 10 >= 3) s.x[i * d + q] = 0.0f;
    }
  }
  std::vector<int64_t> indptr{0};
  std::vector<uint32_t> indices;
  std::vector<float> values;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t q = 0; q < d; ++q) {
      const float v = s.x[i * d + q];
      if (v == 0.0f) continue;
      if (i % 7 == 3) {
        // Split the value over a duplicate index: duplicates add up.
        indices.push_back(static_cast<uint32_t>(q));
        values.push_back(v * 0.25f);
        indices.push_back(static_cast<uint32_t>(q));
        values.push_back(v - v * 0.25f);
      } else {
        indices.push_back(static_cast<uint32_t>(q));
        values.push_back(v);
      }
    }
    indptr.push_back(static_cast<int64_t>(indices.size()));
  }
  const Result dense = RunDense(s, 2);
  Result sp;
  sp.labels.assign(static_cast<size_t>(n), -1);
  sp.min_dist.assign(static_cast<size_t>(n), -1.0f);
  sp.sums.assign(static_cast<size_t>(k * d), 0.0);
  sp.weights.assign(static_cast<size_t>(k), 0.0);
  HostKMeansOutput out{sp.labels.data(), sp.min_dist.data(), sp.sums.data(), sp.weights.data(), &sp.cost};
  KMeansAssignCpu(HostCsrView{indptr.data(), indices.data(), values.data(), n, d}, s.w.data(),
                  HostKMeansCenters{s.c.data(), nullptr, k, d}, out, 2);
  // Both must be right; they may only differ at float32 near-ties (the dot products are summed
  // in a different order).
  ExpectMatchesReference(s, dense, 1e-6);
  // The duplicate split is exact in float only up to rounding of v * 0.25 + (v - v * 0.25): allow it.
  ExpectMatchesReference(s, sp, 1e-6);
  int diff = 0;
  for (int64_t i = 0; i < n; ++i) diff += dense.labels[static_cast<size_t>(i)] != sp.labels[static_cast<size_t>(i)];
  EXPECT_LE(diff, n / 100 + 1);
}

INSTANTIATE_TEST_SUITE_P(Shapes, AssignShapes,
                         ::testing::Values(std::make_tuple(int64_t{1000}, int64_t{2}, int64_t{10}),
                                           std::make_tuple(int64_t{777}, int64_t{100}, int64_t{50}),
                                           std::make_tuple(int64_t{300}, int64_t{17}, int64_t{1000}),
                                           // k < 16 and d >= 64 (the register-blocked small-k
                                           // dot products): d with and without a tail past the
                                           // 8-lane blocks, center groups of 5, 6 + 6 and
                                           // 5 + 5 + 5, rows not a multiple of 4, and wide rows
                                           // (4-row tiles).
                                           std::make_tuple(int64_t{501}, int64_t{77}, int64_t{5}),
                                           std::make_tuple(int64_t{203}, int64_t{72}, int64_t{12}),
                                           std::make_tuple(int64_t{203}, int64_t{64}, int64_t{15}),
                                           std::make_tuple(int64_t{66}, int64_t{20001}, int64_t{3})));

TEST(KMeansAssign, IntegerWeightsEqualRepeatedRows) {
  const Data s = MakeData(400, 7, 9, 3, false);
  Data weighted = s, repeated = s;
  repeated.x.clear();
  weighted.w.resize(static_cast<size_t>(s.n));
  for (int64_t i = 0; i < s.n; ++i) {
    const int times = static_cast<int>(i % 4);  // 0, 1, 2, 3: weight 0 rows must vanish
    weighted.w[static_cast<size_t>(i)] = static_cast<float>(times);
    for (int t = 0; t < times; ++t) repeated.x.insert(repeated.x.end(), s.x.begin() + i * s.d, s.x.begin() + (i + 1) * s.d);
  }
  repeated.n = static_cast<int64_t>(repeated.x.size()) / s.d;
  const Result a = RunDense(weighted, 2);
  const Result b = RunDense(repeated, 2);
  EXPECT_NEAR(a.cost, b.cost, 1e-9 * b.cost);
  for (int64_t j = 0; j < s.k; ++j) EXPECT_DOUBLE_EQ(a.weights[static_cast<size_t>(j)], b.weights[static_cast<size_t>(j)]);
  for (size_t e = 0; e < a.sums.size(); ++e) EXPECT_NEAR(a.sums[e], b.sums[e], 1e-9 * (std::abs(b.sums[e]) + 1.0));
}

TEST(KMeansAssign, ExactTiesGoToLowestIndex) {
  // Every product and sum here is exact in float32, so the ties are exact on any summation order.
  Data s;
  s.d = 2;
  s.c = {5, 5, 1, 0, -1, 0, 0, 1, 0, -1, 1, 0};  // center 5 duplicates center 1
  s.k = 6;
  s.x = {0, 0, 1, 0, 3, 3, -1, 0};
  s.n = 4;
  const Result r = RunDense(s, 1);
  EXPECT_EQ(r.labels[0], 1);  // equidistant from centers 1..5: lowest
  EXPECT_EQ(r.labels[1], 1);  // on centers 1 and 5
  EXPECT_EQ(r.labels[2], 0);
  EXPECT_EQ(r.labels[3], 2);
  EXPECT_EQ(r.min_dist[1], 0.0f);

  // k >= 16 uses 8 vector lanes: a tie between index 11 (lane 3) and index 17 (lane 1) and 3
  // (lane 3, first block) must still go to the lowest index, whatever lane holds it.
  Data u;
  u.d = 2;
  u.k = 20;
  for (int64_t j = 0; j < u.k; ++j) {
    u.c.push_back(100.0f + static_cast<float>(j));
    u.c.push_back(0.0f);
  }
  for (int64_t j : {3, 11, 17}) {
    u.c[static_cast<size_t>(2 * j)] = 1.0f;
    u.c[static_cast<size_t>(2 * j + 1)] = 1.0f;
  }
  u.x = {1, 1, 1, 2, 118, 0};
  u.n = 3;
  const Result ru = RunDense(u, 1);
  EXPECT_EQ(ru.labels[0], 3);
  EXPECT_EQ(ru.labels[1], 3);
  EXPECT_EQ(ru.labels[2], 18);
  // Only the later copies remain equal: 11 and 17 (lanes 3 and 1) -> 11.
  u.c[6] = 50.0f;
  EXPECT_EQ(RunDense(u, 1).labels[0], 11);

  // Many identical centers across a whole GEMM tile: center 0 wins every row.
  Data t = MakeData(600, 4, 1000, 1, false);
  for (int64_t j = 1; j < t.k; ++j) std::copy_n(t.c.begin(), t.d, t.c.begin() + j * t.d);
  const Result rt = RunDense(t, 2);
  for (int64_t i = 0; i < t.n; ++i) ASSERT_EQ(rt.labels[static_cast<size_t>(i)], 0) << "row " << i;
}

TEST(KMeansAssign, StatsAccumulateAcrossCallsAndOptionalOutputs) {
  const Data s = MakeData(500, 5, 7, 11);
  const Result whole = RunDense(s, 2);
  // Two halves into the same accumulators, with no per-row outputs.
  std::vector<double> sums(static_cast<size_t>(s.k * s.d), 0.0), weights(static_cast<size_t>(s.k), 0.0);
  double cost = 0.0;
  HostKMeansOutput out;
  out.sums = sums.data();
  out.weights = weights.data();
  out.cost = &cost;
  const HostKMeansCenters c{s.c.data(), nullptr, s.k, s.d};
  KMeansAssignCpu(HostDenseView{s.x.data(), 200, s.d}, s.w.data(), c, out, 1);
  KMeansAssignCpu(HostDenseView{s.x.data() + 200 * s.d, 300, s.d}, s.w.data() + 200, c, out, 1);
  EXPECT_NEAR(cost, whole.cost, 1e-12 * whole.cost);
  for (size_t e = 0; e < sums.size(); ++e) EXPECT_NEAR(sums[e], whole.sums[e], 1e-9 * (std::abs(whole.sums[e]) + 1));
  for (size_t j = 0; j < weights.size(); ++j) EXPECT_NEAR(weights[j], whole.weights[j], 1e-9);
}

TEST(KMeansAssign, AssignerDispatchMatchesKernelAndRejectsWrongWidth) {
  Resources res(DeviceRequest::kCpu, 2, 0, comm::MakeSingleProcess());
  const Data s = MakeData(300, 6, 4, 21);
  KMeansAssigner a(res);
  a.SetCenters(s.c.data(), s.k, s.d);
  HostBatch b;
  b.rows = s.n;
  b.cols = s.d;
  b.values = s.x;
  b.weights = s.w;
  KMeansStats stats(s.k, s.d);
  std::vector<int32_t> labels;
  std::vector<float> dist;
  a.Assign(b, &stats, &labels, &dist);
  const Result ref = RunDense(s, 2);
  EXPECT_EQ(labels, ref.labels);
  EXPECT_EQ(dist, ref.min_dist);
  EXPECT_NEAR(stats.cost, ref.cost, 1e-12 * ref.cost);
  // Evaluation mode: no sums.
  KMeansStats eval(s.k, s.d, /*with_sums=*/false);
  a.Assign(b, &eval);
  EXPECT_TRUE(eval.sums.empty());
  EXPECT_NEAR(eval.cost, ref.cost, 1e-12 * ref.cost);

  HostBatch bad = b;
  bad.cols = s.d + 1;
  bad.values.resize(static_cast<size_t>(bad.rows * bad.cols));
  EXPECT_THROW(a.Assign(bad, &stats), UserError);
}

TEST(KMeansAssign, CsrRejectsOutOfRangeIndex) {
  const Data s = MakeData(10, 3, 2, 1, false);
  std::vector<int64_t> indptr{0, 1};
  std::vector<uint32_t> indices{3};
  std::vector<float> values{1.0f};
  HostKMeansOutput out;
  EXPECT_THROW(KMeansAssignCpu(HostCsrView{indptr.data(), indices.data(), values.data(), 1, 3}, nullptr,
                               HostKMeansCenters{s.c.data(), nullptr, s.k, s.d}, out, 1),
               UserError);
}

// ---- Seeding ---------------------------------------------------------------------------------

TEST(KMeansSeeding, KMeansPlusPlusIsDeterministicAndDistinct) {
  const Data s = MakeData(500, 8, 12, 4);
  const HostDenseView p{s.x.data(), s.n, s.d};
  for (int trials : {1, 3}) {
    const auto a = SeedKMeansPlusPlus(p, s.w.data(), 40, 123, trials, 1);
    const auto b = SeedKMeansPlusPlus(p, s.w.data(), 40, 123, trials, 4);  // thread count must not matter
    const auto c = SeedKMeansPlusPlus(p, s.w.data(), 40, 124, trials, 1);
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), a.size());
  }
}

TEST(KMeansSeeding, KMeansPlusPlusPicksEveryBlobAndSkipsZeroWeights) {
  // 6 tight, far-apart blobs: D^2 sampling puts one seed in each with overwhelming probability.
  std::vector<float> x;
  std::vector<float> w;
  for (int b = 0; b < 6; ++b) {
    for (int i = 0; i < 50; ++i) {
      x.push_back(100.0f * b + 0.01f * i);
      x.push_back(-50.0f * b);
      w.push_back(i % 5 == 0 ? 0.0f : 1.0f);
    }
  }
  const HostDenseView p{x.data(), 300, 2};
  const auto rows = SeedKMeansPlusPlus(p, w.data(), 6, 7);
  std::set<int64_t> blobs;
  for (int64_t r : rows) {
    blobs.insert(r / 50);
    EXPECT_NE(w[static_cast<size_t>(r)], 0.0f) << "a weight-0 row was chosen";
  }
  EXPECT_EQ(blobs.size(), 6u);
}

TEST(KMeansSeeding, FewerDistinctPointsThanK) {
  std::vector<float> x(20 * 3, 1.0f);  // 20 identical rows
  x[0] = 2.0f;
  const HostDenseView p{x.data(), 20, 3};
  const auto rows = SeedKMeansPlusPlus(p, nullptr, 5, 1);
  EXPECT_EQ(std::set<int64_t>(rows.begin(), rows.end()).size(), 5u);
}

TEST(KMeansSeeding, RandomIsDeterministicDistinctAndWeighted) {
  const Data s = MakeData(200, 3, 2, 9, false);
  std::vector<float> w(200, 1.0f);
  for (int i = 0; i < 200; i += 2) w[static_cast<size_t>(i)] = 0.0f;
  const HostDenseView p{s.x.data(), s.n, s.d};
  const auto a = SeedRandom(p, w.data(), 50, 5);
  EXPECT_EQ(a, SeedRandom(p, w.data(), 50, 5));
  EXPECT_NE(a, SeedRandom(p, w.data(), 50, 6));
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 50u);
  for (int64_t r : a) EXPECT_EQ(r % 2, 1) << "weight-0 row chosen while positive rows remained";
  // 150 > 100 positive rows: the rest come from weight-0 rows, still distinct.
  const auto all = SeedRandom(p, w.data(), 150, 5);
  EXPECT_EQ(std::set<int64_t>(all.begin(), all.end()).size(), 150u);
}

TEST(KMeansSeeding, RejectsTooFewPointsAndBadWeights) {
  std::vector<float> x(4 * 2, 0.0f);
  const HostDenseView p{x.data(), 4, 2};
  EXPECT_THROW(SeedRandom(p, nullptr, 5, 0), UserError);
  EXPECT_THROW(SeedKMeansPlusPlus(p, nullptr, 5, 0), UserError);
  std::vector<float> zero(4, 0.0f), neg{1, -1, 1, 1};
  EXPECT_THROW(SeedRandom(p, zero.data(), 2, 0), UserError);
  EXPECT_THROW(SeedKMeansPlusPlus(p, neg.data(), 2, 0), UserError);
}

// ---- Lloyd -----------------------------------------------------------------------------------

TEST(KMeansLloyd, RecoversSeparatedBlobCentersUpToPermutation) {
  const int64_t k = 5, d = 3, per = 300;
  std::mt19937_64 rng(42);
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<float> ud(0.1f, 3.0f);
  std::vector<float> x, w;
  std::vector<double> mean(static_cast<size_t>(k * d), 0.0), wsum(static_cast<size_t>(k), 0.0);
  for (int64_t b = 0; b < k; ++b) {
    for (int64_t i = 0; i < per; ++i) {
      const float wi = ud(rng);
      w.push_back(wi);
      wsum[static_cast<size_t>(b)] += wi;
      for (int64_t q = 0; q < d; ++q) {
        const float v = 20.0f * static_cast<float>((b + q) % k) - 7.0f * static_cast<float>(q == b) + 0.5f * nd(rng);
        x.push_back(v);
        mean[static_cast<size_t>(b * d + q)] += static_cast<double>(wi) * v;
      }
    }
  }
  for (int64_t b = 0; b < k; ++b) {
    for (int64_t q = 0; q < d; ++q) mean[static_cast<size_t>(b * d + q)] /= wsum[static_cast<size_t>(b)];
  }
  for (KMeansSeeding init : {KMeansSeeding::kKMeansPlusPlus, KMeansSeeding::kRandom}) {
    LloydOptions opt;
    opt.k = k;
    opt.num_trials = 8;  // random seeding may put two seeds in one blob; the best trial recovers
    opt.init = init;
    opt.seed = 3;
    opt.threads = 2;
    const LloydResult r = WeightedLloyd(HostDenseView{x.data(), k * per, d}, w.data(), opt);
    ASSERT_EQ(r.centers.size(), static_cast<size_t>(k * d));
    std::set<int64_t> matched;
    for (int64_t j = 0; j < k; ++j) {
      int64_t best = -1;
      double best_err = 1e300;
      for (int64_t b = 0; b < k; ++b) {
        double err = 0.0;
        for (int64_t q = 0; q < d; ++q) {
          err = std::max(err, std::abs(r.centers[static_cast<size_t>(j * d + q)] - mean[static_cast<size_t>(b * d + q)]));
        }
        if (err < best_err) {
          best_err = err;
          best = b;
        }
      }
      EXPECT_LT(best_err, 1e-4) << "center " << j;  // the weighted blob mean, to float32 precision
      matched.insert(best);
    }
    EXPECT_EQ(matched.size(), static_cast<size_t>(k)) << "centers are not a permutation of the blobs";
    EXPECT_TRUE(r.trials[static_cast<size_t>(r.best_trial)].converged);
    double total = std::accumulate(w.begin(), w.end(), 0.0);
    EXPECT_NEAR(r.total_weight, total, 1e-9 * total);
  }
}

TEST(KMeansLloyd, CostIsMonotoneAndBestTrialIsKept) {
  const Data s = MakeData(800, 4, 30, 8);  // overlapping clusters: many iterations
  LloydOptions opt;
  opt.k = 12;
  opt.max_iter = 200;
  opt.tol = 0.0;
  opt.num_trials = 4;
  opt.seed = 11;
  opt.threads = 3;
  const LloydResult r = WeightedLloyd(HostDenseView{s.x.data(), s.n, s.d}, s.w.data(), opt);
  ASSERT_EQ(r.trials.size(), 4u);
  for (const auto& t : r.trials) {
    ASSERT_EQ(t.cost_history.size(), static_cast<size_t>(t.iterations + 1));
    EXPECT_GT(t.iterations, 1);
    for (size_t i = 1; i < t.cost_history.size(); ++i) {
      EXPECT_LE(t.cost_history[i], t.cost_history[i - 1] * (1 + 1e-6)) << "iteration " << i;
    }
    EXPECT_EQ(t.cost, t.cost_history.back());
    EXPECT_GE(t.cost, r.cost);
  }
  EXPECT_EQ(r.cost, r.trials[static_cast<size_t>(r.best_trial)].cost);
  // The returned centers are the ones the returned cost was measured with.
  double cost = 0.0;
  HostKMeansOutput out;
  out.cost = &cost;
  KMeansAssignCpu(HostDenseView{s.x.data(), s.n, s.d}, s.w.data(), HostKMeansCenters{r.centers.data(), nullptr, 12, 4},
                  out, 1);
  EXPECT_NEAR(cost, r.cost, 1e-9 * r.cost);
  // Deterministic for a seed, whatever the thread count.
  opt.threads = 1;
  const LloydResult again = WeightedLloyd(HostDenseView{s.x.data(), s.n, s.d}, s.w.data(), opt);
  EXPECT_EQ(again.centers, r.centers);
  EXPECT_EQ(again.cost, r.cost);
}

TEST(KMeansLloyd, EmptyClustersAreReseededAndDuplicatesHandled) {
  // 3 distinct locations, many copies each, k = 4: seeding must still give distinct rows, the
  // extra center collapses onto a location (an empty cluster) and everything stays finite.
  std::vector<float> x;
  for (int i = 0; i < 90; ++i) {
    const float v = static_cast<float>(i % 3) * 10.0f;
    x.push_back(v);
    x.push_back(-v);
  }
  for (KMeansSeeding init : {KMeansSeeding::kKMeansPlusPlus, KMeansSeeding::kRandom}) {
    LloydOptions opt;
    opt.k = 4;
    opt.num_trials = 3;
    opt.init = init;
    const LloydResult r = WeightedLloyd(HostDenseView{x.data(), 90, 2}, nullptr, opt);
    for (float v : r.centers) EXPECT_TRUE(std::isfinite(v));
    EXPECT_EQ(r.cost, 0.0);
  }
  // Random seeding is by weight: the heavy rows (all at 0) take every seed, so the first
  // assignment leaves two clusters empty; the update must move them onto the far points (20,
  // then 10) and reach the optimum in one trial.
  std::vector<float> y{0, 0, 0, 0, 0, 10, 20};
  std::vector<float> wy{1000, 1000, 1000, 1000, 1000, 1e-3f, 1e-3f};
  LloydOptions opt;
  opt.k = 3;
  opt.init = KMeansSeeding::kRandom;
  opt.seed = 1;
  const LloydResult r = WeightedLloyd(HostDenseView{y.data(), 7, 1}, wy.data(), opt);
  std::vector<float> c = r.centers;
  std::sort(c.begin(), c.end());
  EXPECT_NEAR(c[0], 0.0f, 1e-5);
  EXPECT_EQ(c[1], 10.0f);
  EXPECT_EQ(c[2], 20.0f);
  EXPECT_NEAR(r.cost, 0.0, 1e-9);
}

TEST(KMeansLloyd, RejectsBadOptions) {
  const Data s = MakeData(20, 2, 2, 1, false);
  const HostDenseView p{s.x.data(), s.n, s.d};
  LloydOptions opt;
  opt.k = 21;
  EXPECT_THROW(WeightedLloyd(p, nullptr, opt), UserError);
  opt.k = 2;
  opt.num_trials = 0;
  EXPECT_THROW(WeightedLloyd(p, nullptr, opt), UserError);
  opt.num_trials = 1;
  opt.tol = -1;
  EXPECT_THROW(WeightedLloyd(p, nullptr, opt), UserError);
}


// ---------------------------------------------------------------------------------------------
// KMeansBoundedLloyd (Hamerly's bounds across full passes).

// s's rows cut into dense batches at the given row offsets (weights carried along).
std::vector<HostBatch> Batches(const Data& s, const std::vector<int64_t>& cuts) {
  std::vector<HostBatch> out;
  for (size_t b = 0; b + 1 < cuts.size(); ++b) {
    HostBatch h;
    h.rows = cuts[b + 1] - cuts[b];
    h.cols = s.d;
    h.values.assign(s.x.begin() + cuts[b] * s.d, s.x.begin() + cuts[b + 1] * s.d);
    if (!s.w.empty()) h.weights.assign(s.w.begin() + cuts[b], s.w.begin() + cuts[b + 1]);
    out.push_back(std::move(h));
  }
  return out;
}

// One exhaustive pass (KMeansAssignCpu over every batch).
KMeansStats ExhaustivePass(const std::vector<HostBatch>& batches, const std::vector<float>& c, int64_t k, int64_t d,
                           int threads) {
  KMeansStats st(k, d);
  for (const HostBatch& b : batches) {
    HostKMeansOutput out{nullptr, nullptr, st.sums.data(), st.weights.data(), &st.cost};
    KMeansAssignCpu(HostDenseView{b.values.data(), b.rows, b.cols}, b.weights.empty() ? nullptr : b.weights.data(),
                    HostKMeansCenters{c.data(), nullptr, k, d}, out, threads);
  }
  return st;
}

KMeansStats BoundedPass(KMeansBoundedLloyd& bl, const std::vector<HostBatch>& batches, const std::vector<float>& c,
                        int64_t k, int64_t d) {
  KMeansStats st(k, d);
  bl.BeginPass(c.data(), k, d);
  for (size_t i = 0; i < batches.size(); ++i) bl.Assign(i, batches[i], &st);
  return st;
}

void ExpectSameStats(const KMeansStats& a, const KMeansStats& b, const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_EQ(a.weights.size(), b.weights.size());
  // Same labels give the same weights (sums of the same row weights in the same order up to the
  // tile's split: 1e-12) and the same cost and sums up to summation order.
  for (size_t j = 0; j < a.weights.size(); ++j) ASSERT_NEAR(a.weights[j], b.weights[j], 1e-9) << "center " << j;
  EXPECT_NEAR(a.cost, b.cost, 1e-10 * a.cost);
  for (size_t e = 0; e < a.sums.size(); ++e) ASSERT_NEAR(a.sums[e], b.sums[e], 1e-9 * (1.0 + std::abs(a.sums[e])));
}

std::vector<float> Update(const KMeansStats& st, std::vector<float> c) {
  for (int64_t j = 0; j < st.k; ++j) {
    if (st.weights[static_cast<size_t>(j)] <= 0) continue;
    for (int64_t q = 0; q < st.d; ++q) {
      c[static_cast<size_t>(j * st.d + q)] =
          static_cast<float>(st.sums[static_cast<size_t>(j * st.d + q)] / st.weights[static_cast<size_t>(j)]);
    }
  }
  return c;
}

TEST(KMeansBounded, EveryPassEqualsTheExhaustivePassAndMostRowsSkipTheDots) {
  // 24 blobs in 20 dimensions, weighted rows in three batches; the centers start as rows of the
  // data and follow Lloyd's updates, then jump to other rows (every bound must notice).
  for (int threads : {1, 2}) {
    SCOPED_TRACE(::testing::Message() << "threads=" << threads);
    const Data s = MakeData(3000, 20, 24, 41, true);
    const int64_t k = 24, d = s.d;
    const std::vector<HostBatch> batches = Batches(s, {0, 1000, 2200, 3000});
    std::vector<float> c(s.x.begin(), s.x.begin() + k * d);
    KMeansBoundedLloyd bl(threads);
    int64_t last_full = -1;
    for (int pass = 0; pass < 14; ++pass) {
      if (pass == 9) {  // a restart from other rows: large moves of every center
        c.assign(s.x.begin() + 500 * d, s.x.begin() + (500 + k) * d);
      }
      const KMeansStats want = ExhaustivePass(batches, c, k, d, threads);
      const KMeansStats got = BoundedPass(bl, batches, c, k, d);
      ExpectSameStats(want, got, "pass " + std::to_string(pass));
      EXPECT_EQ(bl.rows(), s.n);
      if (pass == 0) EXPECT_EQ(bl.full_rows(), s.n) << "the first pass has no bounds";
      if (pass == 8) last_full = bl.full_rows();
      c = Update(want, c);
    }
    // Near convergence (pass 8, before the restart) almost every row keeps its label from the
    // bounds alone.
    EXPECT_LT(last_full, s.n / 10) << "the bounds settled too few rows";
  }
}

TEST(KMeansBounded, MatchesTheFloat64ReferenceAfterManyPasses) {
  // 40 centers in 100 dimensions (the GEMM path), unweighted: after 8 Lloyd passes the bounded
  // statistics are those of the float64 brute-force assignment of the last centers.
  Data s = MakeData(2000, 100, 40, 5, false);
  const int64_t k = s.k, d = s.d;
  const std::vector<HostBatch> batches = Batches(s, {0, 2000});
  std::vector<float> c = s.c;
  KMeansBoundedLloyd bl(2);
  KMeansStats got;
  for (int pass = 0; pass < 8; ++pass) {
    got = BoundedPass(bl, batches, c, k, d);
    if (pass < 7) c = Update(got, c);
  }
  s.c = c;
  const Result ref = RunDense(s, 1);
  ExpectMatchesReference(s, ref, 1e-6);
  std::vector<double> ref_weights(static_cast<size_t>(k), 0.0);
  for (int32_t l : ref.labels) ref_weights[static_cast<size_t>(l)] += 1.0;
  for (int64_t j = 0; j < k; ++j) EXPECT_EQ(got.weights[static_cast<size_t>(j)], ref_weights[static_cast<size_t>(j)]);
  EXPECT_NEAR(got.cost, ref.cost, 1e-9 * ref.cost);
}

TEST(KMeansBounded, DuplicateCentersAndTiesAreAssignedInFullToTheLowestIndex) {
  // Small integers throughout, so every dot product and distance is exact in float32 on any
  // summation order and the ties are exact ties. Centers 3 and 17 coincide: half their separation
  // is 0, so no row of theirs is kept by the bounds, and every pass gives them to center 3. Rows
  // equidistant from two other centers must go to the lower index too. Center 5 moves by one
  // unit per pass (exact as well), so the bounds are in use.
  std::mt19937_64 rng(9);
  Data s;
  s.n = 1500;
  s.d = 8;
  s.k = 20;
  for (int64_t i = 0; i < s.n * s.d; ++i) s.x.push_back(static_cast<float>(static_cast<int>(rng() % 17) - 8));
  for (int64_t i = 0; i < s.k * s.d; ++i) s.c.push_back(static_cast<float>(static_cast<int>(rng() % 13) - 6));
  std::copy_n(s.c.begin() + 3 * s.d, s.d, s.c.begin() + 17 * s.d);
  const std::vector<HostBatch> batches = Batches(s, {0, 700, 1500});
  KMeansBoundedLloyd bl(2);
  int64_t kept = 0;
  for (int pass = 0; pass < 6; ++pass) {
    SCOPED_TRACE(::testing::Message() << "pass " << pass);
    const Result ref = RunDense(s, 1);  // exact ties: lowest index (KMeansAssign.ExactTiesGoToLowestIndex)
    ExpectMatchesReference(s, ref, 1e-12);
    const KMeansStats got = BoundedPass(bl, batches, s.c, s.k, s.d);
    std::vector<double> weights(static_cast<size_t>(s.k), 0.0);
    for (int32_t l : ref.labels) weights[static_cast<size_t>(l)] += 1.0;
    for (int64_t j = 0; j < s.k; ++j) EXPECT_EQ(got.weights[static_cast<size_t>(j)], weights[static_cast<size_t>(j)]) << "center " << j;
    EXPECT_GT(got.weights[3], 0.0);
    EXPECT_EQ(got.weights[17], 0.0);
    EXPECT_EQ(got.cost, ref.cost);
    if (pass > 0) kept += bl.rows() - bl.full_rows();
    s.c[5 * s.d + static_cast<size_t>(pass % s.d)] += 1.0f;
  }
  EXPECT_GT(kept, 0) << "the bounds were never used";
}

TEST(KMeansBounded, ManyCentersTakeTheSeparationsInBlocks) {
  // k = 2500: the centers' separations come from several blocks of the Gram matrix (1M dot
  // products each, on two threads); the passes still equal the exhaustive ones.
  const Data s = MakeData(5000, 6, 2500, 12, false);
  const int64_t k = s.k, d = s.d;
  const std::vector<HostBatch> batches = Batches(s, {0, 5000});
  std::vector<float> c = s.c;
  KMeansBoundedLloyd bl(2);
  for (int pass = 0; pass < 4; ++pass) {
    const KMeansStats want = ExhaustivePass(batches, c, k, d, 2);
    ExpectSameStats(want, BoundedPass(bl, batches, c, k, d), "pass " + std::to_string(pass));
    c = Update(want, c);
  }
  EXPECT_LT(bl.full_rows(), s.n);
}

TEST(KMeansBounded, NewShapesRowCountsAndCsrBatchesAreAssignedInFull) {
  const Data s = MakeData(900, 12, 30, 3, true);
  const int64_t d = s.d;
  std::vector<HostBatch> batches = Batches(s, {0, 400, 900});
  std::vector<float> c(s.x.begin(), s.x.begin() + 30 * d);
  KMeansBoundedLloyd bl(2);
  BoundedPass(bl, batches, c, 30, d);
  BoundedPass(bl, batches, c, 30, d);
  EXPECT_LT(bl.full_rows(), s.n) << "unchanged centers: the bounds settle rows";
  // Another k: every row again.
  std::vector<float> c2(s.x.begin(), s.x.begin() + 20 * d);
  ExpectSameStats(ExhaustivePass(batches, c2, 20, d, 2), BoundedPass(bl, batches, c2, 20, d), "k 30 -> 20");
  EXPECT_EQ(bl.full_rows(), s.n);
  // Batch 1 now holds other rows (another count): that batch alone in full.
  BoundedPass(bl, batches, c2, 20, d);
  std::vector<HostBatch> other = Batches(s, {0, 400, 850});
  const KMeansStats got = BoundedPass(bl, other, c2, 20, d);
  ExpectSameStats(ExhaustivePass(other, c2, 20, d, 2), got, "batch 1 shorter");
  EXPECT_GE(bl.full_rows(), 450);
  // A CSR batch goes to the CSR twin every time.
  HostBatch csr;
  csr.layout = Layout::kCsr;
  csr.rows = 2;
  csr.cols = d;
  csr.indptr = {0, 1, 3};
  csr.indices = {0, 2, 5};
  csr.values = {1.0f, -2.0f, 0.5f};
  KMeansStats st(20, d);
  bl.BeginPass(c2.data(), 20, d);
  bl.Assign(0, csr, &st);
  EXPECT_EQ(bl.full_rows(), 2);
  EXPECT_DOUBLE_EQ(st.weights[0] + std::accumulate(st.weights.begin() + 1, st.weights.end(), 0.0), 2.0);
  // A batch of the wrong width is the caller's error.
  HostBatch wide = batches[0];
  wide.cols = d + 1;
  EXPECT_THROW(bl.Assign(1, wide, &st), UserError);
}

}  // namespace
}  // namespace mlforge::kernels
