// Throughput of the linear learner's coarse step (scores, loss and gradient of m models on one
// mini-batch; kernels/linear_loss.h) and of the per-step host work around it (scaler fold and the
// optimiser update, algos/linear_learner/).
//  CPU: LinearLossGradCpu on all hardware threads at the training loop's shapes (n = mini-batch
//       rows, d features, m models, k = 1 or classes), dense and CSR; the evaluation pass (scores
//       and loss only, one GEMM).
//  GPU: LinearLossGradGpu on device-resident rows (n = 1M in one call: the step is linear in n),
//       timed with CUDA events, m = 1 and m = 32; the floor is one cuBLAS SGEMM reading X once
//       (n x d times d x 1). GPU benchmarks skip with an error line when no GPU is usable.
// Counters: rows/s, X_GB/s (bytes of X read per call / time), GEMM_GFLOP/s (4 n d m k: the two
// GEMMs' arithmetic).
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "algos/linear_learner/config.h"
#include "algos/linear_learner/metrics.h"
#include "algos/linear_learner/optimizer.h"
#include "algos/linear_learner/scaler.h"
#include "bench/bench_util.h"
#include "comm/communicator.h"
#include "core/build_config.h"
#include "core/resources.h"
#include "kernels/linear_loss.h"

namespace {

using namespace mlforge;
using namespace mlforge::kernels;
using mlforge::bench::RandomNormal;
#if MLFORGE_HAVE_CUDA
using mlforge::bench::DeviceArray;
using mlforge::bench::Events;
using mlforge::bench::GpuResources;
#endif

std::vector<float> Labels(int64_t n, int64_t k) {
  std::vector<float> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(k > 1 ? i % k : i % 2);
  return y;
}

void SetCounters(benchmark::State& state, int64_t n, int64_t d, int64_t m, int64_t k,
                 const std::string& what) {
  const double calls = static_cast<double>(state.iterations());
  state.counters["rows/s"] = benchmark::Counter(calls * n, benchmark::Counter::kIsRate);
  state.counters["X_GB/s"] = benchmark::Counter(calls * n * d * 4.0 / 1e9, benchmark::Counter::kIsRate);
  state.counters["GEMM_GFLOP/s"] =
      benchmark::Counter(calls * 4.0 * n * d * m * k / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(what + " n=" + std::to_string(n) + " d=" + std::to_string(d) + " m=" + std::to_string(m) +
                 " k=" + std::to_string(k));
}

// args: n, d, m, k (k > 1: softmax, else logistic), grad (0: evaluation pass, scores + loss only).
void BM_LossGradCpu(benchmark::State& state) {
  const int64_t n = state.range(0), d = state.range(1), m = state.range(2), k = state.range(3);
  const bool grad = state.range(4) != 0;
  const auto x = RandomNormal(static_cast<size_t>(n * d), 1);
  const auto w = RandomNormal(static_cast<size_t>(d * m * k), 2, 0.1f);
  const auto b = RandomNormal(static_cast<size_t>(m * k), 3);
  const auto y = Labels(n, k);
  std::vector<float> gw(static_cast<size_t>(d * m * k)), gb(static_cast<size_t>(m * k)),
      s(static_cast<size_t>(n * m * k));
  std::vector<double> loss(static_cast<size_t>(m)), ws(static_cast<size_t>(m));
  LinearLossSpec spec;
  spec.kind = k > 1 ? LinearLossKind::kSoftmax : LinearLossKind::kLogistic;
  const HostLinearModels models{w.data(), b.data(), d, m, k, nullptr};
  HostLinearLossOutput out{grad ? nullptr : s.data(), loss.data(), ws.data(), grad ? gw.data() : nullptr,
                           grad ? gb.data() : nullptr};
  for (auto _ : state) {
    LinearLossGradCpu(HostDenseView{x.data(), n, d}, y.data(), nullptr, models, spec, out, /*threads=*/0);
    benchmark::DoNotOptimize(loss.data());
  }
  SetCounters(state, n, d, m, k, grad ? "step" : "eval");
}
BENCHMARK(BM_LossGradCpu)
    ->ArgNames({"n", "d", "m", "k", "grad"})
    ->Args({1000, 128, 1, 1, 1})
    ->Args({1000, 128, 32, 1, 1})
    ->Args({1000, 128, 32, 1, 0})
    ->Args({1000, 784, 32, 1, 1})
    ->Args({1000, 64, 32, 10, 1})
    ->Args({10000, 128, 32, 1, 1})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// CSR rows: `nnz` stored values per row out of d columns.
void BM_LossGradCpuCsr(benchmark::State& state) {
  const int64_t n = state.range(0), d = state.range(1), m = state.range(2), nnz = state.range(3);
  std::mt19937_64 rng(4);
  std::vector<int64_t> indptr(1, 0);
  std::vector<uint32_t> indices;
  std::vector<float> values;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t p = 0; p < nnz; ++p) {
      indices.push_back(static_cast<uint32_t>(rng() % static_cast<uint64_t>(d)));
      values.push_back(1.0f);
    }
    indptr.push_back(static_cast<int64_t>(indices.size()));
  }
  const auto w = RandomNormal(static_cast<size_t>(d * m), 2, 0.1f);
  const auto b = RandomNormal(static_cast<size_t>(m), 3);
  const auto y = Labels(n, 1);
  std::vector<float> gw(static_cast<size_t>(d * m)), gb(static_cast<size_t>(m));
  std::vector<double> loss(static_cast<size_t>(m)), ws(static_cast<size_t>(m));
  LinearLossSpec spec;
  spec.kind = LinearLossKind::kLogistic;
  const HostLinearModels models{w.data(), b.data(), d, m, 1, nullptr};
  const HostLinearLossOutput out{nullptr, loss.data(), ws.data(), gw.data(), gb.data()};
  for (auto _ : state) {
    LinearLossGradCpu(HostCsrView{indptr.data(), indices.data(), values.data(), n, d}, y.data(), nullptr,
                      models, spec, out, 0);
    benchmark::DoNotOptimize(loss.data());
  }
  SetCounters(state, n, d, m, 1, "csr nnz/row=" + std::to_string(nnz));
}
BENCHMARK(BM_LossGradCpuCsr)
    ->ArgNames({"n", "d", "m", "nnz"})
    ->Args({1000, 10000, 32, 20})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// The host work of one training step besides the kernel: the scaler fold (W -> W_eff), the
// gradient back to normalised space and the adam update of every model.
// One model's threshold calibration on an n-row score sample (each epoch's model selection runs
// it for every model): the sorted sweep (radix sort, then every cut) against the bucketed sweep
// (only the buckets that can hold the best cut are sorted), given the labels' summary that an
// epoch's selection computes once for all its models. Scores: two overlapping Gaussians.
void BM_Calibrate(benchmark::State& state) {
  using namespace mlforge::algos::linear_learner;
  const size_t n = static_cast<size_t>(state.range(0));
  const bool bucketed = state.range(1) != 0;
  std::mt19937_64 rng(7);
  std::normal_distribution<float> nd;
  std::vector<float> scores(n), labels(n), weights(n, 1.0f);
  for (size_t i = 0; i < n; ++i) {
    labels[i] = rng() % 2 ? 1.0f : 0.0f;
    scores[i] = 3.0f * nd(rng) + (labels[i] > 0 ? 4.0f : 0.0f);
  }
  Config cfg;
  cfg.predictor_type = PredictorType::kBinaryClassifier;
  cfg.selection_criterion = SelectionCriterion::kAccuracy;
  std::vector<ScoredRow> rows(n);
  const CalibrationLabels summary = SummariseCalibrationLabels(labels.data(), weights.data(), n);
  for (auto _ : state) {
    Calibration c;
    if (bucketed) {
      c = CalibrateThresholdBucketed(scores.data(), labels.data(), weights.data(), n, cfg, 0.0, &summary);
    } else {
      for (size_t i = 0; i < n; ++i) rows[i] = {scores[i], labels[i], weights[i]};
      c = CalibrateThreshold(rows, cfg, 0.0);
    }
    benchmark::DoNotOptimize(c);
  }
  state.counters["rows/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(bucketed ? "bucketed" : "sorted");
}
BENCHMARK(BM_Calibrate)->ArgsProduct({{100000, 2000000}, {0, 1}})->ArgNames({"n", "bucketed"})->Unit(benchmark::kMicrosecond);

void BM_StepHostWork(benchmark::State& state) {
  const int64_t d = state.range(0), m = state.range(1);
  algos::linear_learner::Config cfg;
  cfg.num_models = m;
  algos::linear_learner::Scaler scaler = algos::linear_learner::Scaler::Identity(d);
  scaler.shift_data = scaler.scale_data = true;
  for (int64_t j = 0; j < d; ++j) {
    scaler.mean[j] = 0.5;
    scaler.stdev[j] = 2.0;
  }
  auto w = RandomNormal(static_cast<size_t>(d * m), 2, 0.1f);
  auto b = RandomNormal(static_cast<size_t>(m), 3);
  auto gw = RandomNormal(static_cast<size_t>(d * m), 5);
  const auto gb = RandomNormal(static_cast<size_t>(m), 6);
  std::vector<float> we(w.size()), be(b.size());
  std::vector<double> weights(static_cast<size_t>(m), 1000.0);
  algos::linear_learner::ParallelOptimizer opt(cfg, algos::linear_learner::ParallelModelSettings(cfg, 1.0), d,
                                               1, 0);
  for (auto _ : state) {
    scaler.Fold(w.data(), b.data(), m, false, we.data(), be.data());
    scaler.GradientToNormalised(gw.data(), gb.data(), m);
    opt.Step(w.data(), b.data(), gw.data(), gb.data(), weights.data());
    benchmark::DoNotOptimize(w.data());
  }
  state.SetLabel("d=" + std::to_string(d) + " m=" + std::to_string(m));
}
BENCHMARK(BM_StepHostWork)
    ->ArgNames({"d", "m"})
    ->Args({128, 32})
    ->Args({784, 32})
    ->Unit(benchmark::kMicrosecond);

#if MLFORGE_HAVE_CUDA

template <typename T>
void Upload(T* dst, const std::vector<T>& src) {
  MLF_CUDA_TRY(cudaMemcpy(dst, src.data(), src.size() * sizeof(T), cudaMemcpyHostToDevice));
}

// Device-resident rows (generated in chunks to keep host memory small).
void FillDevice(float* dst, int64_t n, int64_t d) {
  mlforge::bench::FillNormalDevice(dst, static_cast<size_t>(n * d), 1);
}

void BM_LossGradGpu(benchmark::State& state) {
  std::string why;
  Resources* res = GpuResources(&why);
  if (res == nullptr) {
    state.SkipWithError(why.c_str());
    return;
  }
  const int64_t n = state.range(0), d = state.range(1), m = state.range(2);
  detail::CudaState& cuda = res->cuda();
  DeviceArray<float> x(static_cast<size_t>(n * d)), y(static_cast<size_t>(n)), w(static_cast<size_t>(d * m)),
      b(static_cast<size_t>(m)), gw(static_cast<size_t>(d * m)), gb(static_cast<size_t>(m));
  DeviceArray<double> sums(static_cast<size_t>(2 * m));
  FillDevice(x.p, n, d);
  Upload(y.p, Labels(n, 1));
  Upload(w.p, RandomNormal(static_cast<size_t>(d * m), 2, 0.1f));
  Upload(b.p, RandomNormal(static_cast<size_t>(m), 3));
  const size_t ws_bytes = LinearLossGpuWorkspaceBytes(n, m, 1);
  DeviceArray<unsigned char> ws(ws_bytes);
  LinearLossSpec spec;
  spec.kind = LinearLossKind::kLogistic;
  const DeviceLinearModels models{w.p, b.p, d, m, 1, nullptr};
  const DeviceLinearLossOutput out{nullptr, sums.p, sums.p + m, gw.p, gb.p};
  Events ev;
  for (auto _ : state) {
    MLF_CUDA_TRY(cudaEventRecord(ev.start, cuda.stream));
    LinearLossGradGpu(cuda, DeviceDenseView{x.p, n, d}, y.p, nullptr, models, spec, out, false, ws.p,
                      ws_bytes);
    MLF_CUDA_TRY(cudaEventRecord(ev.stop, cuda.stream));
    state.SetIterationTime(ev.Seconds());
  }
  SetCounters(state, n, d, m, 1, "gpu step");
}

// The floor: one SGEMM reading X once (n x d times d x 1).
void BM_ReadXFloorGpu(benchmark::State& state) {
  std::string why;
  Resources* res = GpuResources(&why);
  if (res == nullptr) {
    state.SkipWithError(why.c_str());
    return;
  }
  const int64_t n = state.range(0), d = state.range(1);
  detail::CudaState& cuda = res->cuda();
  DeviceArray<float> x(static_cast<size_t>(n * d)), w(static_cast<size_t>(d)), s(static_cast<size_t>(n));
  FillDevice(x.p, n, d);
  Upload(w.p, RandomNormal(static_cast<size_t>(d), 2));
  const float one = 1.0f, zero = 0.0f;
  Events ev;
  for (auto _ : state) {
    MLF_CUDA_TRY(cudaEventRecord(ev.start, cuda.stream));
    MLF_CUBLAS_TRY(cublasGemmEx(cuda.cublas, CUBLAS_OP_N, CUBLAS_OP_N, 1, static_cast<int>(n),
                                static_cast<int>(d), &one, w.p, CUDA_R_32F, 1, x.p, CUDA_R_32F,
                                static_cast<int>(d), &zero, s.p, CUDA_R_32F, 1, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
    MLF_CUDA_TRY(cudaEventRecord(ev.stop, cuda.stream));
    state.SetIterationTime(ev.Seconds());
  }
  SetCounters(state, n, d, 1, 1, "gpu read-X floor");
}

#else

void BM_LossGradGpu(benchmark::State& state) { state.SkipWithError("built without CUDA"); }
void BM_ReadXFloorGpu(benchmark::State& state) { state.SkipWithError("built without CUDA"); }

#endif

BENCHMARK(BM_LossGradGpu)
    ->ArgNames({"n", "d", "m"})
    ->Args({1000000, 128, 1})
    ->Args({1000000, 128, 32})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadXFloorGpu)
    ->ArgNames({"n", "d"})
    ->Args({1000000, 128})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
