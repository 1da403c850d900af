// The factorization-machines step on the GPU (kernels/fm_step.cu through FmStepper) against the
// CPU twin (kernels/fm_step.cc), from the same initial parameters, over a few steps: a random CSR
// data set, a dense one (with zeros, which both twins drop), and a skewed CSR one where feature 0
// is in every row (the hot segment of the sorted aggregation); every optimizer, both losses,
// k = 5 (groups of 4 lanes), 8 and 40 (two factor passes per lane), with and without the bias and
// linear terms, clipping and an explicit rescale.
// Tolerances: the step's loss sums 1e-5 relative (float64 per row on both; s in float32 summed in
// different orders); parameters and predictions 1e-5 relative to max(1, |value|) (the GPU sums a
// feature's gradient in float64, the CPU its factors in float32); the atomic aggregation
// (MLFORGE_FM_GPU_AGGREGATION=atomic: float32 atomics) 1e-4. The sorted aggregation is also checked
// to be deterministic (two runs, identical bits).
// Skips with the reason when no GPU is usable.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "comm/local_group.h"
#include "core/error.h"
#include "core/resources.h"
#include "kernels/fm_step.h"
#include "tests/testutil.h"

namespace mlforge {
namespace {

using kernels::FmBatchLoss;
using kernels::FmLoss;
using kernels::FmOptimizer;
using kernels::FmParams;
using kernels::FmStepper;
using kernels::FmStepSpec;

enum class Shape { kCsr, kDense, kSkewed };

const char* ShapeName(Shape s) { return s == Shape::kCsr ? "csr" : s == Shape::kDense ? "dense" : "skewed"; }

// A data set of n rows and d columns as one batch; labels 0/1 for logistic, real otherwise.
HostBatch MakeData(Shape shape, int64_t n, int64_t d, FmLoss loss, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<double> u(0, 1);
  HostBatch b;
  b.rows = n;
  b.cols = d;
  b.layout = shape == Shape::kDense ? Layout::kDense : Layout::kCsr;
  if (b.layout == Layout::kCsr) b.indptr.push_back(0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) {
      const float v = nd(rng);
      if (shape == Shape::kDense) {
        b.values.push_back(u(rng) < 0.3 ? 0.0f : v);  // zeros: dropped by both twins
      } else if ((shape == Shape::kSkewed && j == 0) || u(rng) < 0.12) {
        b.indices.push_back(static_cast<uint32_t>(j));
        b.values.push_back(v);
      }
    }
    if (b.layout == Layout::kCsr) b.indptr.push_back(static_cast<int64_t>(b.values.size()));
    b.labels.push_back(loss == FmLoss::kLogistic ? static_cast<float>(rng() % 2) : 0.5f + nd(rng));
  }
  return b;
}

// Rows [r0, r1) of b as a batch of its own.
HostBatch Slice(const HostBatch& b, int64_t r0, int64_t r1) {
  HostBatch s;
  s.layout = b.layout;
  s.rows = r1 - r0;
  s.cols = b.cols;
  if (b.layout == Layout::kDense) {
    s.values.assign(b.values.begin() + r0 * b.cols, b.values.begin() + r1 * b.cols);
  } else {
    const int64_t base = b.indptr[r0], end = b.indptr[r1];
    for (int64_t r = r0; r <= r1; ++r) s.indptr.push_back(b.indptr[r] - base);
    s.indices.assign(b.indices.begin() + base, b.indices.begin() + end);
    s.values.assign(b.values.begin() + base, b.values.begin() + end);
  }
  s.labels.assign(b.labels.begin() + r0, b.labels.begin() + r1);
  return s;
}

FmParams MakeParams(int64_t d, int64_t k, bool bias, bool linear, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.1f);
  FmParams p;
  p.d = d;
  p.k = k;
  p.w0 = bias ? 0.2f : 0.0f;
  p.w.resize(static_cast<size_t>(d));
  for (auto& x : p.w) x = linear ? nd(rng) : 0.0f;
  p.v.resize(static_cast<size_t>(d * k));
  for (auto& x : p.v) x = nd(rng);
  return p;
}

struct TrainRun {
  std::vector<FmBatchLoss> losses;
  FmParams params;
  std::vector<float> pred;
};

// Steps over the data in batches of the given sizes, then predicts the whole set.
TrainRun Train(Resources& res, const HostBatch& data, const FmParams& init, const FmStepSpec& spec,
               const std::vector<int64_t>& batch_rows) {
  FmStepper stepper(res, init, spec);
  TrainRun out;
  int64_t r0 = 0;
  for (int64_t rows : batch_rows) {
    const int64_t r1 = std::min(data.rows, r0 + rows);
    const HostBatch b = Slice(data, r0, r1);
    out.losses.push_back(stepper.Step(b, b.labels.data()));
    r0 = r1 == data.rows ? 0 : r1;
  }
  EXPECT_EQ(stepper.steps(), static_cast<int64_t>(batch_rows.size()));
  out.params = stepper.Params();
  out.pred.resize(static_cast<size_t>(data.rows));
  stepper.Predict(data, out.pred.data());
  return out;
}

void ExpectClose(const TrainRun& cpu, const TrainRun& gpu, double tol) {
  ASSERT_EQ(cpu.losses.size(), gpu.losses.size());
  for (size_t i = 0; i < cpu.losses.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "step " << i + 1);
    const FmBatchLoss &a = cpu.losses[i], &b = gpu.losses[i];
    EXPECT_EQ(b.rows, a.rows);
    EXPECT_NEAR(b.loss, a.loss, tol * std::fabs(a.loss) + 1e-9);
    EXPECT_NEAR(b.squared_error, a.squared_error, tol * std::fabs(a.squared_error) + 1e-9);
    EXPECT_NEAR(b.absolute_error, a.absolute_error, tol * std::fabs(a.absolute_error) + 1e-9);
  }
  const FmParams &p = cpu.params, &q = gpu.params;
  ASSERT_EQ(q.d, p.d);
  ASSERT_EQ(q.k, p.k);
  ASSERT_EQ(q.w.size(), p.w.size());
  ASSERT_EQ(q.v.size(), p.v.size());
  EXPECT_NEAR(q.w0, p.w0, tol * std::max(1.0f, std::fabs(p.w0)));
  int bad = 0;
  for (size_t i = 0; i < p.w.size() && bad < 10; ++i) {
    if (std::fabs(q.w[i] - p.w[i]) > tol * std::max(1.0f, std::fabs(p.w[i]))) {
      ADD_FAILURE() << "w[" << i << "]: gpu " << q.w[i] << " cpu " << p.w[i];
      ++bad;
    }
  }
  for (size_t i = 0; i < p.v.size() && bad < 10; ++i) {
    if (std::fabs(q.v[i] - p.v[i]) > tol * std::max(1.0f, std::fabs(p.v[i]))) {
      ADD_FAILURE() << "v[" << i / p.k << "][" << i % p.k << "]: gpu " << q.v[i] << " cpu " << p.v[i];
      ++bad;
    }
  }
  for (size_t i = 0; i < cpu.pred.size() && bad < 10; ++i) {
    if (std::fabs(gpu.pred[i] - cpu.pred[i]) > tol * std::max(1.0f, std::fabs(cpu.pred[i]))) {
      ADD_FAILURE() << "prediction " << i << ": gpu " << gpu.pred[i] << " cpu " << cpu.pred[i];
      ++bad;
    }
  }
}

struct Case {
  Shape shape;
  int64_t n, d, k;
  bool bias, linear;
  float clip, rescale;
};

const Case kCases[] = {
    {Shape::kCsr, 300, 60, 8, true, true, 0, 0},
    {Shape::kDense, 200, 12, 5, true, true, 0, 0},
    {Shape::kSkewed, 400, 40, 40, true, true, 0, 0},
    {Shape::kCsr, 250, 33, 16, false, false, 0.05f, 0.01f},  // no bias / linear; clipping; rescale
};

FmStepSpec MakeSpec(FmLoss loss, FmOptimizer opt, const Case& c) {
  FmStepSpec spec;
  spec.loss = loss;
  spec.optimizer = opt;
  // Learning rates large enough that a few steps move every touched parameter visibly.
  spec.bias = {0.05f, 0.01f};
  spec.linear = {0.02f, 0.001f};
  spec.factors = {0.01f, 0.0005f};
  spec.eps = opt == FmOptimizer::kAdagrad ? 1e-7f : 1e-8f;
  spec.use_bias = c.bias;
  spec.use_linear = c.linear;
  spec.clip_gradient = c.clip;
  spec.rescale_grad = c.rescale;
  return spec;
}

void CompareAll(double tol) {
  Resources gpu(DeviceRequest::kGpu, 2, 0, comm::MakeSingleProcess());
  Resources cpu(DeviceRequest::kCpu, 2, 0, comm::MakeSingleProcess());
  int seed = 0;
  for (const Case& c : kCases) {
    for (FmLoss loss : {FmLoss::kSquared, FmLoss::kLogistic}) {
      for (FmOptimizer opt : {FmOptimizer::kSgd, FmOptimizer::kAdam, FmOptimizer::kAdagrad}) {
        ++seed;
        SCOPED_TRACE(::testing::Message()
                     << ShapeName(c.shape) << " k=" << c.k << " loss " << static_cast<int>(loss)
                     << " optimizer " << static_cast<int>(opt) << " bias/linear " << c.bias);
        const HostBatch data = MakeData(c.shape, c.n, c.d, loss, 100 + seed);
        const FmParams init = MakeParams(c.d, c.k, c.bias, c.linear, 200 + seed);
        const FmStepSpec spec = MakeSpec(loss, opt, c);
        // Uneven batches; the last wraps around to the first rows again.
        const std::vector<int64_t> batches = {c.n / 3, c.n / 2, c.n - c.n / 3 - c.n / 2, 37};
        const TrainRun a = Train(cpu, data, init, spec, batches);
        const TrainRun b = Train(gpu, data, init, spec, batches);
        ExpectClose(a, b, tol);
      }
    }
  }
}

TEST(FmStepGpu, SortedAggregationMatchesCpu) {
  MLF_REQUIRE_GPU();
  test::ScopedEnv env("MLFORGE_FM_GPU_AGGREGATION", "sort");
  CompareAll(1e-5);
}

TEST(FmStepGpu, AtomicAggregationMatchesCpu) {
  MLF_REQUIRE_GPU();
  test::ScopedEnv env("MLFORGE_FM_GPU_AGGREGATION", "atomic");
  CompareAll(1e-4);
}

TEST(FmStepGpu, SortedAggregationIsDeterministic) {
  MLF_REQUIRE_GPU();
  test::ScopedEnv env("MLFORGE_FM_GPU_AGGREGATION", "sort");
  Resources gpu(DeviceRequest::kGpu, 2, 0, comm::MakeSingleProcess());
  const Case c{Shape::kSkewed, 2000, 50, 24, true, true, 0, 0};
  const HostBatch data = MakeData(c.shape, c.n, c.d, FmLoss::kLogistic, 7);
  const FmParams init = MakeParams(c.d, c.k, true, true, 8);
  const FmStepSpec spec = MakeSpec(FmLoss::kLogistic, FmOptimizer::kAdam, c);
  const TrainRun a = Train(gpu, data, init, spec, {700, 700, 600});
  const TrainRun b = Train(gpu, data, init, spec, {700, 700, 600});
  for (size_t i = 0; i < a.losses.size(); ++i) EXPECT_EQ(a.losses[i].loss, b.losses[i].loss);
  EXPECT_EQ(a.params.w0, b.params.w0);
  EXPECT_EQ(a.params.w, b.params.w);
  EXPECT_EQ(a.params.v, b.params.v);
}

// Two ranks as threads of this process on one in-process group, each with its own Resources and
// stepper (on the GPU both on the same device), rank r stepping on its own rows: per step, rank 0
// and rank 1 take the row counts below from their halves of the data (0: the rank ran out of data
// and offers an empty batch, as the training loop does). Returns each rank's run.
std::vector<TrainRun> TrainTwoRanks(DeviceRequest device, const HostBatch& data, const FmParams& init,
                                    const FmStepSpec& spec) {
  const std::vector<int64_t> rows[2] = {{40, 30, 0, 25, 20}, {35, 0, 40, 30, 0}};  // within each half (n >= 250)
  auto group = comm::MakeLocalGroup(2, std::chrono::seconds(60));
  std::vector<TrainRun> out(2);
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      try {
        Resources res(device, 1, 0, std::move(group[static_cast<size_t>(r)]));
        FmStepper stepper(res, init, spec);
        int64_t r0 = r * data.rows / 2;
        for (int64_t n : rows[r]) {
          const HostBatch b = Slice(data, r0, r0 + n);
          out[r].losses.push_back(stepper.Step(b, b.labels.data()));
          r0 += n;
        }
        out[r].params = stepper.Params();
        out[r].pred.resize(static_cast<size_t>(data.rows));
        stepper.Predict(data, out[r].pred.data());
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < 2; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
  return out;
}

TEST(FmStepGpu, TwoRanksOnTheGpuMatchTwoRanksOnTheCpu) {
  // The group step on the GPU (gradient rows down, the group's sums up: FmGpuGroupGradient /
  // FmGpuApplyRows) against the CPU group step, which the distributed tests hold to one process.
  MLF_REQUIRE_GPU();
  int seed = 50;
  for (const Case& c : {kCases[0], kCases[2], kCases[3]}) {
    for (FmOptimizer opt : {FmOptimizer::kSgd, FmOptimizer::kAdam, FmOptimizer::kAdagrad}) {
      ++seed;
      SCOPED_TRACE(::testing::Message() << ShapeName(c.shape) << " k=" << c.k << " optimizer "
                                        << static_cast<int>(opt) << " bias/linear " << c.bias);
      const HostBatch data = MakeData(c.shape, c.n, c.d, FmLoss::kLogistic, 300 + seed);
      const FmParams init = MakeParams(c.d, c.k, c.bias, c.linear, 400 + seed);
      const FmStepSpec spec = MakeSpec(FmLoss::kLogistic, opt, c);
      const std::vector<TrainRun> cpu = TrainTwoRanks(DeviceRequest::kCpu, data, init, spec);
      const std::vector<TrainRun> gpu = TrainTwoRanks(DeviceRequest::kGpu, data, init, spec);
      ExpectClose(cpu[0], gpu[0], 2e-5);
      ExpectClose(cpu[1], gpu[1], 2e-5);
      // The replicas on the GPU stay identical.
      EXPECT_EQ(gpu[0].params.v, gpu[1].params.v);
      EXPECT_EQ(gpu[0].params.w, gpu[1].params.w);
      EXPECT_EQ(gpu[0].params.w0, gpu[1].params.w0);
    }
  }
}

TEST(FmStepGpu, BadAggregationSettingIsAUserError) {
  MLF_REQUIRE_GPU();
  test::ScopedEnv env("MLFORGE_FM_GPU_AGGREGATION", "atomics");
  Resources gpu(DeviceRequest::kGpu, 2, 0, comm::MakeSingleProcess());
  try {
    FmStepper stepper(gpu, MakeParams(10, 4, true, true, 1), FmStepSpec{});
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("MLFORGE_FM_GPU_AGGREGATION"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mlforge
