// Throughput of genotype PCA's relationship-matrix accumulation (kernels/grm_accumulate.h):
// GrmAccumulator::Add over blocks of kGrmBlockVariants 2-bit-packed variants, then Result, on the
// CPU (1 and 2 threads) and the GPU. Counters: SYRK_GFLOP/s = n^2 M / time (the work a symmetric
// rank-M update does; a full GEMM would be twice that) and GEMM_equiv_GFLOP/s = 2 n^2 M / time,
// which is what the target compares with the device's FP32 GEMM rate (>= 50% of it on a
// GPU). The end-to-end comparison with plink2 is bench/genotype_pca_vs_plink2.sh.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "comm/communicator.h"
#include "core/resources.h"
#include "kernels/grm_accumulate.h"

namespace {

using namespace mlforge;
using namespace mlforge::kernels;

struct Genotypes {
  std::vector<uint8_t> packed;
  std::vector<float> center, scale;
};

Genotypes Make(int64_t n, int64_t m) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> byte(0, 255);
  Genotypes g;
  g.packed.resize(static_cast<size_t>(m * PackedBytes(n)));
  for (auto& b : g.packed) b = static_cast<uint8_t>(byte(rng));
  g.center.assign(static_cast<size_t>(m), 0.8f);
  g.scale.assign(static_cast<size_t>(m), 1.3f);
  return g;
}

void Run(benchmark::State& state, Resources& res) {
  const int64_t n = state.range(0), m = state.range(1);
  const Genotypes g = Make(n, m);
  for (auto _ : state) {
    GrmAccumulator acc(res, n);
    for (int64_t v0 = 0; v0 < m; v0 += kGrmBlockVariants) {
      const int64_t nv = std::min(kGrmBlockVariants, m - v0);
      acc.Add(GenotypeBlockView{g.packed.data() + v0 * PackedBytes(n), nv, n, g.center.data() + v0,
                                g.scale.data() + v0});
    }
    std::vector<double> k = acc.Result();
    benchmark::DoNotOptimize(k.data());
  }
  const double it = static_cast<double>(state.iterations());
  state.counters["SYRK_GFLOP/s"] = benchmark::Counter(it * double(n) * n * m / 1e9, benchmark::Counter::kIsRate);
  state.counters["GEMM_equiv_GFLOP/s"] =
      benchmark::Counter(it * 2.0 * n * n * m / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel("n=" + std::to_string(n) + " M=" + std::to_string(m) + " " + DeviceName(res.device()) +
                 " threads=" + std::to_string(res.threads()));
}

void BM_GrmCpu(benchmark::State& state) {
  Resources res(DeviceRequest::kCpu, static_cast<int>(state.range(2)), 0, comm::MakeSingleProcess());
  Run(state, res);
}

void BM_GrmGpu(benchmark::State& state) {
  std::string why;
  Resources* res = mlforge::bench::GpuResources(&why);
  if (res == nullptr) {
    state.SkipWithError(why.c_str());
    return;
  }
  Run(state, *res);
}

// {samples, variants, threads}: the 1000 Genomes panel's shape, then larger cohorts.
BENCHMARK(BM_GrmCpu)->Args({1126, 22220, 1})->Args({1126, 22220, 2})->Args({4096, 16384, 2})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GrmGpu)->Args({1126, 22220, 0})->Args({4096, 16384, 0})->Args({10000, 100000, 0})
    ->Args({30000, 50000, 0})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
