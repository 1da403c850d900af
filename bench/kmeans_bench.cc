// Throughput of the k-means assign-and-accumulate step (labels, distances, sums, weights, cost).
//  CPU: KMeansAssignCpu on all hardware threads, n = 100k.
//  GPU: KMeansAssignGpu on device-resident data (n = 1M rows; the step is linear in n, so this
//       predicts n = 10M at 10x), timed with CUDA events, for the fused and the GEMM path; and
//       the floor: one cuBLAS SGEMM of the same n x d x k (n x k output, as a naive cdist would
//       write it) with nothing else.
//  CPU floor: BM_SgemmCpu, one OpenBLAS SGEMM of the same n x d x k (n x k output, what numpy's
//       x @ c.T does) on all threads, nothing else; the assignment's GEMM_TFLOP/s over this one's
//       is the fraction of the SGEMM rate it reaches (issue 18: >= 70% of numpy's).
// Counters: X_GB/s (bytes of X read once per pass / time), GEMM_TFLOP/s (2 n d k / time: the
// arithmetic a GEMM-based assignment needs, whichever path runs). GPU benchmarks skip with an
// error line when no GPU is usable.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "comm/communicator.h"
#include "core/build_config.h"
#include "core/resources.h"
#include "kernels/kmeans_assign.h"
#include "kernels/kmeans_lloyd.h"
#include "kernels/omp_threads.h"
#include "kernels/openblas.h"

namespace {

using namespace mlforge;
using namespace mlforge::kernels;
using mlforge::bench::RandomNormal;
#if MLFORGE_HAVE_CUDA
using mlforge::bench::DeviceArray;
using mlforge::bench::Events;
using mlforge::bench::GpuResources;
#endif

void SetCounters(benchmark::State& state, int64_t n, int64_t d, int64_t k,
                 const std::string& suffix = "") {
  const double passes = static_cast<double>(state.iterations());
  state.counters["X_GB/s"] =
      benchmark::Counter(passes * n * d * 4.0 / 1e9, benchmark::Counter::kIsRate);
  state.counters["GEMM_TFLOP/s"] =
      benchmark::Counter(passes * 2.0 * n * d * k / 1e12, benchmark::Counter::kIsRate);
  state.SetLabel("n=" + std::to_string(n) + " d=" + std::to_string(d) + " k=" + std::to_string(k) + suffix);
}

void BM_AssignCpu(benchmark::State& state) {
  const int64_t n = state.range(0), d = state.range(1), k = state.range(2);
  const auto x = RandomNormal(static_cast<size_t>(n * d), 1);
  const auto c = RandomNormal(static_cast<size_t>(k * d), 2);
  std::vector<int32_t> labels(static_cast<size_t>(n));
  std::vector<float> dist(static_cast<size_t>(n));
  std::vector<double> sums(static_cast<size_t>(k * d)), weights(static_cast<size_t>(k));
  double cost = 0.0;
  const HostKMeansOutput out{labels.data(), dist.data(), sums.data(), weights.data(), &cost};
  for (auto _ : state) {
    KMeansAssignCpu(HostDenseView{x.data(), n, d}, nullptr, HostKMeansCenters{c.data(), nullptr, k, d}, out,
                    /*threads=*/0);
    benchmark::DoNotOptimize(cost);
  }
  SetCounters(state, n, d, k);
}
// The two shapes of issue 18 (blobs 200,000 x 100, k = 100; the 1000 Genomes dosage matrix,
// 1,126 x 22,220, k = 5), and the older ones.
BENCHMARK(BM_AssignCpu)
    ->ArgNames({"n", "d", "k"})
    ->Args({200000, 100, 100})
    ->Args({1126, 22220, 5})
    ->Args({100000, 100, 100})
    ->Args({100000, 16, 20})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

#if MLFORGE_HAVE_LAPACK

// The floor: X (n x d) times C^T (d x k) into an n x k matrix, one multi-threaded OpenBLAS call.
void BM_SgemmCpu(benchmark::State& state) {
  const int64_t n = state.range(0), d = state.range(1), k = state.range(2);
  const auto x = RandomNormal(static_cast<size_t>(n * d), 1);
  const auto c = RandomNormal(static_cast<size_t>(k * d), 2);
  std::vector<float> g(static_cast<size_t>(n * k));
  openblas_set_num_threads(ResolveThreads(0));  // the thread count BM_AssignCpu uses
  for (auto _ : state) {
    cblas_sgemm(cblas::kRowMajor, cblas::kNoTrans, cblas::kTrans, static_cast<int>(n), static_cast<int>(k),
                static_cast<int>(d), 1.0f, x.data(), static_cast<int>(d), c.data(), static_cast<int>(d), 0.0f,
                g.data(), static_cast<int>(k));
    benchmark::DoNotOptimize(g.data());
  }
  SetCounters(state, n, d, k);
}
BENCHMARK(BM_SgemmCpu)
    ->ArgNames({"n", "d", "k"})
    ->Args({200000, 100, 100})
    ->Args({1126, 22220, 5})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
#endif

// k-means++ seeding of K centers from n rows (the streaming phase seeds k * extra_center_factor
// centers from the first mini-batch): K passes over the sample, each reading it once. The shape of
// the 1000 Genomes matrix (1,126 x 22,220, K = 50: SageMaker's default for k = 5) and a narrow one.
void BM_SeedKMeansPlusPlus(benchmark::State& state) {
  const int64_t n = state.range(0), d = state.range(1), k = state.range(2);
  const auto x = RandomNormal(static_cast<size_t>(n * d), 3);
  for (auto _ : state) {
    auto rows = SeedKMeansPlusPlus(HostDenseView{x.data(), n, d}, nullptr, k, 7, 1, /*threads=*/0);
    benchmark::DoNotOptimize(rows.data());
  }
  state.counters["X_GB/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * n * d * 4.0 * k / 1e9,
                                                benchmark::Counter::kIsRate);
  state.SetLabel("n=" + std::to_string(n) + " d=" + std::to_string(d) + " K=" + std::to_string(k));
}
BENCHMARK(BM_SeedKMeansPlusPlus)
    ->ArgNames({"n", "d", "K"})
    ->Args({1126, 22220, 50})
    ->Args({5000, 100, 1000})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

#if MLFORGE_HAVE_CUDA

// Device-resident X and centers, filled once per benchmark.
struct GpuProblem {
  GpuProblem(int64_t n, int64_t d, int64_t k)
      : x(static_cast<size_t>(n * d)), c(static_cast<size_t>(k * d)) {
    mlforge::bench::FillNormalDevice(x.p, static_cast<size_t>(n * d), 1);
    mlforge::bench::FillNormalDevice(c.p, static_cast<size_t>(k * d), 2);
  }
  DeviceArray<float> x, c;
};

void BM_AssignGpu(benchmark::State& state) {
  std::string why;
  Resources* res = GpuResources(&why);
  if (res == nullptr) {
    state.SkipWithError(why.c_str());
    return;
  }
  const int64_t n = state.range(0), d = state.range(1), k = state.range(2);
  KMeansGpuOptions opt;
  opt.path = static_cast<KMeansGpuPath>(state.range(3));
  opt.tile_rows = state.range(5);  // GEMM path rows per tile; 0: the default (16 MiB of dot products)
  detail::CudaState& cuda = res->cuda();
  GpuProblem p(n, d, k);
  DeviceArray<int32_t> labels(static_cast<size_t>(n));
  DeviceArray<float> dist(static_cast<size_t>(n));
  const size_t acc_n = static_cast<size_t>(k * d + k + 1);
  DeviceArray<double> acc(acc_n);
  const size_t ws_bytes = KMeansAssignGpuWorkspaceBytes(n, d, k, opt);
  DeviceArray<unsigned char> ws(ws_bytes);
  // range(4) == 1: labels, distances and cost only (no sums or weights), to show what the
  // accumulation costs.
  const bool no_sums = state.range(4) == 1;
  const DeviceKMeansOutput out{labels.p, dist.p, no_sums ? nullptr : acc.p, no_sums ? nullptr : acc.p + k * d,
                               acc.p + k * d + k};
  const DeviceKMeansCenters c{p.c.p, nullptr, k, d};
  Events ev;
  for (auto _ : state) {
    MLF_CUDA_TRY(cudaEventRecord(ev.start, cuda.stream));
    MLF_CUDA_TRY(cudaMemsetAsync(acc.p, 0, acc_n * sizeof(double), cuda.stream));
    KMeansAssignGpu(cuda, DeviceDenseView{p.x.p, n, d}, nullptr, c, out, ws.p, ws_bytes, opt);
    MLF_CUDA_TRY(cudaEventRecord(ev.stop, cuda.stream));
    state.SetIterationTime(ev.Seconds());
  }
  SetCounters(state, n, d, k,
              std::string(ResolveKMeansGpuPath(d, k, opt) == KMeansGpuPath::kFused ? " fused" : " gemm") +
                  (no_sums ? " no-sums" : "") + (opt.tile_rows > 0 ? " tile=" + std::to_string(opt.tile_rows) : ""));
}

void BM_SgemmFloor(benchmark::State& state) {
  std::string why;
  Resources* res = GpuResources(&why);
  if (res == nullptr) {
    state.SkipWithError(why.c_str());
    return;
  }
  const int64_t n = state.range(0), d = state.range(1), k = state.range(2);
  detail::CudaState& cuda = res->cuda();
  GpuProblem p(n, d, k);
  DeviceArray<float> g(static_cast<size_t>(n * k));
  const float alpha = 1.0f, beta = 0.0f;
  Events ev;
  for (auto _ : state) {
    MLF_CUDA_TRY(cudaEventRecord(ev.start, cuda.stream));
    MLF_CUBLAS_TRY(cublasGemmEx(cuda.cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(k), static_cast<int>(n),
                                static_cast<int>(d), &alpha, p.c.p, CUDA_R_32F, static_cast<int>(d), p.x.p, CUDA_R_32F,
                                static_cast<int>(d), &beta, g.p, CUDA_R_32F, static_cast<int>(k), CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
    MLF_CUDA_TRY(cudaEventRecord(ev.stop, cuda.stream));
    state.SetIterationTime(ev.Seconds());
  }
  SetCounters(state, n, d, k);
}

#else

void BM_AssignGpu(benchmark::State& state) { state.SkipWithError("built without CUDA"); }
void BM_SgemmFloor(benchmark::State& state) { state.SkipWithError("built without CUDA"); }

#endif

constexpr int64_t kGpuRows = 1000000;
constexpr int64_t kFused = static_cast<int64_t>(KMeansGpuPath::kFused);
constexpr int64_t kGemm = static_cast<int64_t>(KMeansGpuPath::kGemm);

BENCHMARK(BM_AssignGpu)
    ->ArgNames({"n", "d", "k", "path", "nosums", "tile"})
    ->Args({10 * kGpuRows, 100, 1000, kGemm, 0, 0})  // issue 16's shape: <= 1.3x the SGEMM floor below
    ->Args({10 * kGpuRows, 100, 1000, kGemm, 1, 0})
    ->Args({10 * kGpuRows, 100, 1000, kGemm, 0, 8192})
    ->Args({10 * kGpuRows, 100, 1000, kGemm, 0, 16384})
    ->Args({kGpuRows, 100, 1000, kGemm, 0, 0})
    ->Args({kGpuRows, 16, 20, kFused, 0, 0})
    ->Args({kGpuRows, 16, 20, kFused, 1, 0})
    ->Args({10 * kGpuRows, 16, 20, kFused, 0, 0})  // 640 MB of X: the HBM-bandwidth case (>= 70%)
    ->Args({kGpuRows, 16, 20, kGemm, 0, 0})
    ->Args({kGpuRows, 16, 1000, kGemm, 0, 0})
    ->Args({kGpuRows, 32, 200, kFused, 0, 0})
    ->Args({kGpuRows, 32, 200, kGemm, 0, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();
BENCHMARK(BM_SgemmFloor)
    ->ArgNames({"n", "d", "k"})
    ->Args({10 * kGpuRows, 100, 1000})
    ->Args({kGpuRows, 100, 1000})
    ->Args({kGpuRows, 16, 20})
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();

}  // namespace
