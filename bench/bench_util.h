// Helpers shared by the micro-benchmarks: reproducible random input, and (only when the build
// has CUDA) one Resources shared by every GPU benchmark of an executable, a plain device array, and
// CUDA-event timing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "core/build_config.h"

namespace mlforge::bench {

// `count` draws of N(0, scale^2), the same for a given seed.
inline std::vector<float> RandomNormal(size_t count, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> v(count);
  for (auto& x : v) x = scale * nd(rng);
  return v;
}

}  // namespace mlforge::bench

#if MLFORGE_HAVE_CUDA

#include <algorithm>
#include <memory>
#include <string>

#include <curand.h>

#include <stdexcept>

#include "comm/communicator.h"
#include "core/cuda_state.h"
#include "core/resources.h"

namespace mlforge::bench {

// One Resources for all GPU benchmarks (a CUDA context per benchmark would dominate short runs);
// null with `why` filled when no GPU is usable.
inline Resources* GpuResources(std::string* why) {
  static std::unique_ptr<Resources> res;
  static std::string reason;
  static bool tried = false;
  if (!tried) {
    tried = true;
    GpuReport r = DetectGpus();
    if (r.available) {
      res = std::make_unique<Resources>(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
    } else {
      reason = "no usable GPU: " + r.reason;
    }
  }
  *why = reason;
  return res.get();
}

// n elements of device memory (at least one), freed on destruction.
template <typename T>
struct DeviceArray {
  explicit DeviceArray(size_t n) {
    MLF_CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(n, 1) * sizeof(T)));
  }
  ~DeviceArray() { cudaFree(p); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* p = nullptr;
};

// `count` draws of N(0, scale^2) written on the device by cuRAND (Philox), the same for a seed.
inline void FillNormalDevice(float* dst, size_t count, uint64_t seed, float scale = 1.0f) {
  curandGenerator_t gen = nullptr;
  if (curandCreateGenerator(&gen, CURAND_RNG_PSEUDO_PHILOX4_32_10) != CURAND_STATUS_SUCCESS) {
    throw std::runtime_error("curandCreateGenerator failed");
  }
  curandSetPseudoRandomGeneratorSeed(gen, seed);
  // cuRAND's normal generator takes an even count; the odd last element gets one more draw.
  const size_t even = count & ~size_t{1};
  curandStatus_t st = even ? curandGenerateNormal(gen, dst, even, 0.0f, scale) : CURAND_STATUS_SUCCESS;
  if (st == CURAND_STATUS_SUCCESS && even != count) {
    float* tmp = nullptr;
    MLF_CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&tmp), 2 * sizeof(float)));
    st = curandGenerateNormal(gen, tmp, 2, 0.0f, scale);
    MLF_CUDA_TRY(cudaMemcpy(dst + even, tmp, sizeof(float), cudaMemcpyDeviceToDevice));
    cudaFree(tmp);
  }
  curandDestroyGenerator(gen);
  MLF_CUDA_TRY(cudaDeviceSynchronize());
  if (st != CURAND_STATUS_SUCCESS) throw std::runtime_error("curandGenerateNormal failed");
}

// A start / stop event pair recorded around the timed work.
struct Events {
  Events() {
    MLF_CUDA_TRY(cudaEventCreate(&start));
    MLF_CUDA_TRY(cudaEventCreate(&stop));
  }
  ~Events() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  // Seconds between the two events; waits for the second (one sync per iteration).
  double Seconds() {
    MLF_CUDA_TRY(cudaEventSynchronize(stop));
    float ms = 0.0f;
    MLF_CUDA_TRY(cudaEventElapsedTime(&ms, start, stop));
    return ms / 1e3;
  }
  cudaEvent_t start = nullptr, stop = nullptr;
};

}  // namespace mlforge::bench

#endif  // MLFORGE_HAVE_CUDA
