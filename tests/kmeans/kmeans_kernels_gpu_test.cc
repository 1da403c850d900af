// The k-means assign-and-accumulate step on the GPU against the CPU twin (itself checked against
// a float64 reference in kmeans_kernels_test.cc): both the fused small-d kernel and the
// SGEMM + epilogue path, dense and CSR, weighted and not, accumulating across batches.
// Tolerances: labels equal except float32 near-ties (where the float64 distances of the two
// choices must agree to 1e-5 of ||x||^2 + ||c||^2); distances 1e-5 relative; sums 1e-4 of
// sum |w x| (the fused path's float32 block partials, header kmeans_assign.h); cost 1e-5.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "comm/communicator.h"
#include "core/resources.h"
#include "kernels/kmeans_assign.h"
#include "tests/testutil.h"

namespace mlforge::kernels {
namespace {

struct Problem {
  int64_t n = 0, d = 0, k = 0;
  std::vector<float> c;
  HostBatch batch;
};

Problem MakeProblem(int64_t n, int64_t d, int64_t k, uint64_t seed, bool weighted, double density = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<float> ud(0.5f, 2.0f);
  std::uniform_real_distribution<double> keep(0.0, 1.0);
  Problem p{n, d, k, {}, {}};
  p.c.resize(static_cast<size_t>(k * d));
  for (auto& v : p.c) v = 3.0f * nd(rng);
  std::vector<float> x(static_cast<size_t>(n * d));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = static_cast<int64_t>(rng() % static_cast<uint64_t>(k));
    for (int64_t q = 0; q < d; ++q) x[static_cast<size_t>(i * d + q)] = p.c[static_cast<size_t>(j * d + q)] + nd(rng);
  }
  for (auto& v : p.c) v += 0.3f * nd(rng);
  HostBatch& b = p.batch;
  b.rows = n;
  b.cols = d;
  if (density >= 1.0) {
    b.layout = Layout::kDense;
    b.values = std::move(x);
  } else {
    b.layout = Layout::kCsr;
    b.indptr.push_back(0);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t q = 0; q < d; ++q) {
        if (keep(rng) < density) {
          b.indices.push_back(static_cast<uint32_t>(q));
          b.values.push_back(x[static_cast<size_t>(i * d + q)]);
        }
      }
      b.indptr.push_back(static_cast<int64_t>(b.values.size()));
    }
  }
  if (weighted) {
    b.weights.resize(static_cast<size_t>(n));
    for (auto& v : b.weights) v = ud(rng);
  }
  return p;
}

// Row i as dense float64.
std::vector<double> Row(const HostBatch& b, int64_t i) {
  std::vector<double> r(static_cast<size_t>(b.cols), 0.0);
  if (b.layout == Layout::kDense) {
    for (int64_t q = 0; q < b.cols; ++q) r[static_cast<size_t>(q)] = b.values[static_cast<size_t>(i * b.cols + q)];
  } else {
    for (int64_t p = b.indptr[i]; p < b.indptr[i + 1]; ++p) r[b.indices[p]] += b.values[static_cast<size_t>(p)];
  }
  return r;
}

struct Run {
  KMeansStats stats;
  std::vector<int32_t> labels;
  std::vector<float> dist;
};

// Assigns the batch in `splits` consecutive pieces through one assigner (accumulating stats).
Run Assign(Resources& res, const Problem& p, const KMeansGpuOptions& opt, int splits = 1) {
  KMeansAssigner a(res, opt);
  a.SetCenters(p.c.data(), p.k, p.d);
  Run r{KMeansStats(p.k, p.d), {}, {}};
  if (splits == 1) {
    a.Assign(p.batch, &r.stats, &r.labels, &r.dist);
    return r;
  }
  const HostBatch& b = p.batch;
  for (int s = 0; s < splits; ++s) {
    const int64_t r0 = b.rows * s / splits, r1 = b.rows * (s + 1) / splits;
    HostBatch part;
    part.layout = b.layout;
    part.rows = r1 - r0;
    part.cols = b.cols;
    if (b.layout == Layout::kDense) {
      part.values.assign(b.values.begin() + r0 * b.cols, b.values.begin() + r1 * b.cols);
    } else {
      for (int64_t i = r0; i <= r1; ++i) part.indptr.push_back(b.indptr[i] - b.indptr[r0]);
      part.indices.assign(b.indices.begin() + b.indptr[r0], b.indices.begin() + b.indptr[r1]);
      part.values.assign(b.values.begin() + b.indptr[r0], b.values.begin() + b.indptr[r1]);
    }
    if (!b.weights.empty()) part.weights.assign(b.weights.begin() + r0, b.weights.begin() + r1);
    std::vector<int32_t> l;
    std::vector<float> dd;
    a.Assign(part, &r.stats, &l, &dd);
    r.labels.insert(r.labels.end(), l.begin(), l.end());
    r.dist.insert(r.dist.end(), dd.begin(), dd.end());
  }
  return r;
}

// GPU vs CPU as described at the top of the file. The GPU's statistics are checked against
// float64 sums recomputed from the GPU's own labels, so an allowed near-tie flip does not show
// up as a sums error.
void ExpectGpuMatchesCpu(const Problem& p, const Run& gpu, const Run& cpu) {
  const HostBatch& b = p.batch;
  const int64_t n = p.n, d = p.d, k = p.k;
  ASSERT_EQ(gpu.labels.size(), static_cast<size_t>(n));
  ASSERT_EQ(gpu.dist.size(), static_cast<size_t>(n));
  std::vector<double> sums(static_cast<size_t>(k * d), 0.0), abs_sums(sums.size(), 0.0);
  std::vector<double> weights(static_cast<size_t>(k), 0.0);
  double cost = 0.0;
  int mismatches = 0;
  auto dist_to = [&](const std::vector<double>& x, int64_t j) {
    double s = 0.0;
    for (int64_t q = 0; q < d; ++q) {
      const double diff = x[static_cast<size_t>(q)] - p.c[static_cast<size_t>(j * d + q)];
      s += diff * diff;
    }
    return s;
  };
  for (int64_t i = 0; i < n; ++i) {
    const int32_t g = gpu.labels[static_cast<size_t>(i)];
    const int32_t c = cpu.labels[static_cast<size_t>(i)];
    ASSERT_GE(g, 0);
    ASSERT_LT(g, k);
    const std::vector<double> x = Row(b, i);
    const double dg = dist_to(x, g);
    if (g != c) {
      ++mismatches;
      double scale = 0.0;
      for (int64_t q = 0; q < d; ++q) {
        scale += x[static_cast<size_t>(q)] * x[static_cast<size_t>(q)] +
                 static_cast<double>(p.c[static_cast<size_t>(c * d + q)]) * p.c[static_cast<size_t>(c * d + q)];
      }
      EXPECT_LE(std::abs(dg - dist_to(x, c)), 1e-5 * scale) << "row " << i << ": gpu " << g << ", cpu " << c;
    }
    EXPECT_NEAR(gpu.dist[static_cast<size_t>(i)], dg, 1e-5 * dg + 1e-5) << "row " << i;
    const double w = b.weights.empty() ? 1.0 : b.weights[static_cast<size_t>(i)];
    cost += w * dg;
    weights[static_cast<size_t>(g)] += w;
    for (int64_t q = 0; q < d; ++q) {
      sums[static_cast<size_t>(g * d + q)] += w * x[static_cast<size_t>(q)];
      abs_sums[static_cast<size_t>(g * d + q)] += std::abs(w * x[static_cast<size_t>(q)]);
    }
  }
  EXPECT_LE(mismatches, n / 100 + 1) << "too many label differences for near-ties alone";
  EXPECT_NEAR(gpu.stats.cost, cost, 1e-5 * cost);
  EXPECT_NEAR(gpu.stats.cost, cpu.stats.cost, 1e-4 * cpu.stats.cost);
  for (int64_t j = 0; j < k; ++j) {
    EXPECT_NEAR(gpu.stats.weights[static_cast<size_t>(j)], weights[static_cast<size_t>(j)],
                1e-5 * weights[static_cast<size_t>(j)] + 1e-9)
        << "center " << j;
  }
  for (size_t e = 0; e < sums.size(); ++e) {
    ASSERT_NEAR(gpu.stats.sums[e], sums[e], 1e-4 * abs_sums[e] + 1e-9) << "sums entry " << e;
  }
}

struct Case {
  int64_t n, d, k;
  KMeansGpuPath path;
};

std::string Name(const ::testing::TestParamInfo<Case>& info) {
  const Case& c = info.param;
  return "n" + std::to_string(c.n) + "_d" + std::to_string(c.d) + "_k" + std::to_string(c.k) +
         (c.path == KMeansGpuPath::kFused ? "_fused" : c.path == KMeansGpuPath::kGemm ? "_gemm" : "_auto");
}

class GpuAssign : public ::testing::TestWithParam<Case> {};

TEST_P(GpuAssign, DenseMatchesCpu) {
  MLF_REQUIRE_GPU();
  const Case c = GetParam();
  Resources gpu_res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  Resources cpu_res(DeviceRequest::kCpu, 0, 0, comm::MakeSingleProcess());
  KMeansGpuOptions opt;
  opt.path = c.path;
  for (bool weighted : {false, true}) {
    SCOPED_TRACE(::testing::Message() << "weighted=" << weighted);
    const Problem p = MakeProblem(c.n, c.d, c.k, 100 + c.n + c.d + c.k, weighted);
    ExpectGpuMatchesCpu(p, Assign(gpu_res, p, opt), Assign(cpu_res, p, opt));
  }
}

TEST_P(GpuAssign, SmallTilesAndSplitBatchesAccumulate) {
  MLF_REQUIRE_GPU();
  const Case c = GetParam();
  Resources gpu_res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  Resources cpu_res(DeviceRequest::kCpu, 0, 0, comm::MakeSingleProcess());
  KMeansGpuOptions opt;
  opt.path = c.path;
  opt.tile_rows = 100;  // many GEMM tiles, a ragged last one
  const Problem p = MakeProblem(c.n, c.d, c.k, 7 + c.n, true);
  ExpectGpuMatchesCpu(p, Assign(gpu_res, p, opt, 3), Assign(cpu_res, p, opt));
}

TEST_P(GpuAssign, CsrMatchesCpu) {
  MLF_REQUIRE_GPU();
  const Case c = GetParam();
  Resources gpu_res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  Resources cpu_res(DeviceRequest::kCpu, 0, 0, comm::MakeSingleProcess());
  KMeansGpuOptions opt;
  opt.path = c.path;
  const Problem p = MakeProblem(c.n, c.d, c.k, 31 + c.k, true, 0.3);
  ExpectGpuMatchesCpu(p, Assign(gpu_res, p, opt, 2), Assign(cpu_res, p, opt));
}

// The brief's three shapes on the GEMM path, the fused path where its shared memory allows, and
// shapes that exercise the fused kernel's variants: d % 4 != 0 (scalar loads), d = 16 and 32
// (float4 loads), many blocks (n = 200k: the float32 block partials' error bound), and kAuto.
INSTANTIATE_TEST_SUITE_P(Shapes, GpuAssign,
                         ::testing::Values(Case{1000, 2, 10, KMeansGpuPath::kGemm},
                                           Case{777, 100, 50, KMeansGpuPath::kGemm},
                                           Case{300, 17, 1000, KMeansGpuPath::kGemm},
                                           Case{1000, 2, 10, KMeansGpuPath::kFused},
                                           Case{300, 17, 100, KMeansGpuPath::kFused},
                                           Case{5000, 16, 20, KMeansGpuPath::kFused},
                                           Case{3001, 32, 100, KMeansGpuPath::kFused},
                                           Case{200000, 16, 20, KMeansGpuPath::kFused},
                                           Case{20000, 16, 20, KMeansGpuPath::kGemm},
                                           Case{4000, 7, 60, KMeansGpuPath::kAuto},
                                           Case{2000, 64, 300, KMeansGpuPath::kAuto}),
                         Name);

TEST(GpuKMeans, ExactTiesGoToLowestIndexOnBothPaths) {
  MLF_REQUIRE_GPU();
  Resources res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  // Exact in float32 on any summation order: equidistant rows and duplicated centers.
  std::vector<float> c{5, 5, 1, 0, -1, 0, 0, 1, 0, -1, 1, 0};
  HostBatch b;
  b.rows = 4;
  b.cols = 2;
  b.values = {0, 0, 1, 0, 3, 3, -1, 0};
  for (KMeansGpuPath path : {KMeansGpuPath::kFused, KMeansGpuPath::kGemm}) {
    KMeansGpuOptions opt;
    opt.path = path;
    KMeansAssigner a(res, opt);
    a.SetCenters(c.data(), 6, 2);
    std::vector<int32_t> labels;
    a.Assign(b, nullptr, &labels);
    EXPECT_EQ(labels, (std::vector<int32_t>{1, 1, 0, 2}));
  }
  // 1000 identical centers (more than a warp's stride and one fused block's worth): center 0.
  const int64_t k = 1000;
  std::vector<float> same(static_cast<size_t>(k * 2));
  for (int64_t j = 0; j < k; ++j) {
    same[static_cast<size_t>(2 * j)] = 0.5f;
    same[static_cast<size_t>(2 * j + 1)] = -2.0f;
  }
  const Problem p = MakeProblem(3000, 2, 3, 5, false);
  for (KMeansGpuPath path : {KMeansGpuPath::kFused, KMeansGpuPath::kGemm}) {
    KMeansGpuOptions opt;
    opt.path = path;
    KMeansAssigner a(res, opt);
    a.SetCenters(same.data(), k, 2);
    std::vector<int32_t> labels;
    a.Assign(p.batch, nullptr, &labels);
    for (size_t i = 0; i < labels.size(); ++i) ASSERT_EQ(labels[i], 0) << "row " << i;
  }
}

TEST(GpuKMeans, EvaluationModeSkipsSums) {
  MLF_REQUIRE_GPU();
  Resources gpu_res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  Resources cpu_res(DeviceRequest::kCpu, 0, 0, comm::MakeSingleProcess());
  const Problem p = MakeProblem(5000, 12, 40, 3, true);
  KMeansStats g(p.k, p.d, false), c(p.k, p.d, false);
  KMeansAssigner ga(gpu_res), ca(cpu_res);
  ga.SetCenters(p.c.data(), p.k, p.d);
  ca.SetCenters(p.c.data(), p.k, p.d);
  ga.Assign(p.batch, &g);
  ca.Assign(p.batch, &c);
  EXPECT_TRUE(g.sums.empty());
  EXPECT_NEAR(g.cost, c.cost, 1e-5 * c.cost);
}

}  // namespace
}  // namespace mlforge::kernels
