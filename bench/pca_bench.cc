// Throughput of PCA's accumulation step (kernels/pca_accumulate.h) on in-memory batches, CPU:
// PcaAccumulateCpu per mini-batch, the way the training loop calls it, on 1 and 2 threads.
//  Scatter: counters GEMM_GFLOP/s = 2 n d^2 / time (the flops of a plain X^T X GEMM, what numpy's
//           SGEMM rate is compared with) and SYRK_GFLOP/s = n d^2 / time (the work a symmetric
//           rank update actually does: half).
//  Sketch / Project: 2 n d l (sketch) and 4 n d l (project) flops.
// GPU: BM_ScatterGpu runs the same mini-batches through PcaAccumulator on the GPU, from host
// memory as training feeds it (upload, FP64 DSYRK into device totals, one download at the end);
// its PyTorch peer is bench/gpu_torch_peers.py's pca line. Skips with an error line without a GPU.
//
// Regular mode's d x d eigendecomposition (kernels/sym_eigen.h), for placing kSymEigenGpuMinDim:
//  BM_SymEigenCpu: SymmetricEigenCpu (Eigen SelfAdjointEigenSolver, values and vectors).
//  BM_SymEigenGpu: SymmetricEigenGpu from and to host memory, as the dispatch runs it (upload,
//                  cusolverDnDsyevd, download, transpose; the handle is created by a warm-up call
//                  outside the timing). Skips with an error line when no GPU is usable.
// Both on a Gaussian symmetric matrix (no spectral structure to deflate); wall time. The switch
// belongs at the smallest d from which the GPU is faster.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/batch.h"
#include "core/build_config.h"
#include "core/resources.h"
#include "kernels/pca_accumulate.h"
#include "kernels/sym_eigen.h"

namespace {

using namespace mlforge;
using namespace mlforge::kernels;

void Run(benchmark::State& state, PcaAccumulation mode) {
  const int64_t n = state.range(0), d = state.range(1), l = state.range(2), batch = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  const auto x = mlforge::bench::RandomNormal(static_cast<size_t>(n * d), 1);
  PcaPass pass;
  pass.mode = mode;
  pass.d = d;
  pass.l = l;
  pass.shift.assign(static_cast<size_t>(d), 0.1f);
  if (mode == PcaAccumulation::kProject) pass.q = mlforge::bench::RandomNormal(static_cast<size_t>(d * l), 2);
  for (auto _ : state) {
    PcaSums sums(mode, d, l);
    for (int64_t i0 = 0; i0 < n; i0 += batch) {
      const int64_t rows = std::min(batch, n - i0);
      PcaAccumulateCpu(pass, HostDenseView{x.data() + i0 * d, rows, d}, i0, &sums, threads);
    }
    benchmark::DoNotOptimize(sums.matrix.data());
  }
  const double it = static_cast<double>(state.iterations());
  if (mode == PcaAccumulation::kScatter) {
    state.counters["GEMM_GFLOP/s"] = benchmark::Counter(it * 2.0 * n * d * d / 1e9, benchmark::Counter::kIsRate);
    state.counters["SYRK_GFLOP/s"] = benchmark::Counter(it * 1.0 * n * d * d / 1e9, benchmark::Counter::kIsRate);
  } else {
    const double f = mode == PcaAccumulation::kSketch ? 2.0 : 4.0;
    state.counters["GFLOP/s"] = benchmark::Counter(it * f * n * d * l / 1e9, benchmark::Counter::kIsRate);
  }
  state.counters["rows/s"] = benchmark::Counter(it * n, benchmark::Counter::kIsRate);
  state.SetLabel("n=" + std::to_string(n) + " d=" + std::to_string(d) + (l ? " l=" + std::to_string(l) : "") +
                 " batch=" + std::to_string(batch) + " threads=" + std::to_string(threads));
}

void BM_ScatterCpu(benchmark::State& s) { Run(s, PcaAccumulation::kScatter); }
void BM_SketchCpu(benchmark::State& s) { Run(s, PcaAccumulation::kSketch); }
void BM_ProjectCpu(benchmark::State& s) { Run(s, PcaAccumulation::kProject); }

// {n, d, l, batch, threads}
BENCHMARK(BM_ScatterCpu)
    ->Args({200000, 100, 0, 500, 1})->Args({200000, 100, 0, 500, 2})
    ->Args({200000, 100, 0, 5000, 1})->Args({200000, 100, 0, 5000, 2})
    ->Args({20000, 1024, 0, 5000, 1})->Args({20000, 1024, 0, 5000, 2})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SketchCpu)->Args({200000, 100, 20, 5000, 2})->Args({20000, 1024, 512, 5000, 2})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ProjectCpu)->Args({200000, 100, 20, 5000, 2})->Args({20000, 1024, 512, 5000, 2})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

#if MLFORGE_HAVE_CUDA
// {n, d, batch}: the scatter pass (X^T X and column sums in float64) of n rows in mini-batches.
void BM_ScatterGpu(benchmark::State& state) {
  std::string why;
  Resources* res = mlforge::bench::GpuResources(&why);
  if (res == nullptr) {
    state.SkipWithError(why.c_str());
    return;
  }
  const int64_t n = state.range(0), d = state.range(1), batch = state.range(2);
  const auto x = mlforge::bench::RandomNormal(static_cast<size_t>(n * d), 1);
  std::vector<HostBatch> batches;
  for (int64_t i0 = 0; i0 < n; i0 += batch) {
    HostBatch b;
    b.layout = Layout::kDense;
    b.rows = std::min(batch, n - i0);
    b.cols = d;
    b.first_row = i0;
    b.values.assign(x.begin() + i0 * d, x.begin() + (i0 + b.rows) * d);
    batches.push_back(std::move(b));
  }
  PcaPass pass;
  pass.mode = PcaAccumulation::kScatter;
  pass.d = d;
  pass.shift.assign(static_cast<size_t>(d), 0.1f);
  PcaAccumulator acc(*res);
  for (auto _ : state) {
    acc.Begin(pass);
    for (const HostBatch& b : batches) acc.Add(b);
    PcaSums sums = acc.Result();
    benchmark::DoNotOptimize(sums.matrix.data());
  }
  const double it = static_cast<double>(state.iterations());
  state.counters["GEMM_GFLOP/s"] = benchmark::Counter(it * 2.0 * n * d * d / 1e9, benchmark::Counter::kIsRate);
  state.counters["X_GB/s"] = benchmark::Counter(it * 4.0 * n * d / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel("n=" + std::to_string(n) + " d=" + std::to_string(d) + " batch=" + std::to_string(batch) + " gpu");
}
#else
void BM_ScatterGpu(benchmark::State& state) { state.SkipWithError("built without CUDA"); }
#endif
BENCHMARK(BM_ScatterGpu)->Args({1000000, 128, 10000})->Args({1000000, 128, 100000})->Args({200000, 1024, 10000})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

// A d x d symmetric matrix with N(0, 1) entries (row-major, float64).
std::vector<double> RandomSymmetric(int64_t d) {
  const auto g = mlforge::bench::RandomNormal(static_cast<size_t>(d * d), 3);
  std::vector<double> a(static_cast<size_t>(d * d));
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = i; j < d; ++j) a[i * d + j] = a[j * d + i] = g[i * d + j];
  return a;
}

void BM_SymEigenCpu(benchmark::State& state) {
  const int64_t d = state.range(0);
  const std::vector<double> a = RandomSymmetric(d);
  for (auto _ : state) {
    SymEigenResult r = SymmetricEigenCpu(a.data(), d);
    benchmark::DoNotOptimize(r.vectors.data());
  }
  state.SetLabel("d=" + std::to_string(d));
}

#if MLFORGE_HAVE_CUDA
void BM_SymEigenGpu(benchmark::State& state) {
  std::string why;
  Resources* res = mlforge::bench::GpuResources(&why);
  if (res == nullptr) {
    state.SkipWithError(why.c_str());
    return;
  }
  const int64_t d = state.range(0);
  const std::vector<double> a = RandomSymmetric(d);
  SymmetricEigenGpu(res->cuda(), a.data(), 1);  // opens cuSOLVER and creates the handle
  for (auto _ : state) {
    SymEigenResult r = SymmetricEigenGpu(res->cuda(), a.data(), d);
    benchmark::DoNotOptimize(r.vectors.data());
  }
  state.SetLabel("d=" + std::to_string(d));
}
#else
void BM_SymEigenGpu(benchmark::State& state) { state.SkipWithError("built without CUDA"); }
#endif

BENCHMARK(BM_SymEigenCpu)->ArgName("d")->Arg(256)->Arg(512)->Arg(1024)->Arg(2048)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SymEigenGpu)->ArgName("d")->Arg(256)->Arg(512)->Arg(1024)->Arg(2048)->Arg(4096)
    ->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
