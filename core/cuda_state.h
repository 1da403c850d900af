// The CUDA half of Resources (DESIGN.md "One Resources object"): the stream and the library
// handles bound to it, plus the checks every CUDA runtime / cuBLAS call goes through.
//
// Only for builds with CUDA (MLFORGE_HAVE_CUDA): included by core/resources.cc under that flag and
// by the .cu files in kernels/. Plain C++ (no device code, no fmt) so that both g++ and nvcc
// compile it; public headers elsewhere only forward-declare detail::CudaState.
#pragma once

#include "core/build_config.h"

#if !MLFORGE_HAVE_CUDA
#error "core/cuda_state.h is only for builds with CUDA (configure with -DMLFORGE_USE_CUDA=ON)"
#endif

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace mlforge {

// A CUDA runtime or library call failed. Not a UserError: the input was fine, the device or the
// driver was not (out of memory, a launch failure, a lost device).
class CudaError : public std::runtime_error {
 public:
  explicit CudaError(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {

[[noreturn]] inline void ThrowCudaError(cudaError_t err, const char* expr, const char* file, int line) {
  // Clear the error so that a caller that catches and continues does not trip over it again in
  // an unrelated check (sticky errors such as a kernel fault stay set regardless).
  (void)cudaGetLastError();
  throw CudaError(std::string("CUDA error: ") + expr + " failed at " + file + ":" + std::to_string(line) +
                  ": " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

[[noreturn]] inline void ThrowCublasError(cublasStatus_t st, const char* expr, const char* file, int line) {
  throw CudaError(std::string("cuBLAS error: ") + expr + " failed at " + file + ":" + std::to_string(line) +
                  ": " + cublasGetStatusName(st) + ": " + cublasGetStatusString(st));
}

}  // namespace detail
}  // namespace mlforge

// MLF_CUDA_TRY(cudaFoo(...)): every CUDA runtime call goes through this; throws CudaError.
#define MLF_CUDA_TRY(call)                                                                               \
  do {                                                                                                   \
    cudaError_t _mlf_err = (call);                                                                       \
    if (_mlf_err != cudaSuccess) ::mlforge::detail::ThrowCudaError(_mlf_err, #call, __FILE__, __LINE__); \
  } while (0)

// MLF_CUBLAS_TRY(cublasFoo(...)): every cuBLAS call goes through this; throws CudaError.
#define MLF_CUBLAS_TRY(call)                                                   \
  do {                                                                         \
    cublasStatus_t _mlf_st = (call);                                           \
    if (_mlf_st != CUBLAS_STATUS_SUCCESS)                                      \
      ::mlforge::detail::ThrowCublasError(_mlf_st, #call, __FILE__, __LINE__); \
  } while (0)

namespace mlforge::detail {

// One per Resources, created on first use of Resources::cuda(). Everything a step launches goes
// on `stream`, and `cublas` is bound to that stream, so a step's work is ordered without device-
// wide syncs and the step syncs with the host once (cudaStreamSynchronize(stream)).
// Not thread-safe: one Resources (and so one CudaState) belongs to one training thread.
struct CudaState {
  explicit CudaState(int device_index) : device(device_index) {
    MLF_CUDA_TRY(cudaSetDevice(device));
    cudaDeviceProp prop{};
    MLF_CUDA_TRY(cudaGetDeviceProperties(&prop, device));
    sm_count = prop.multiProcessorCount;
    // Non-blocking: our work must not serialise against the legacy default stream that other
    // libraries may use.
    MLF_CUDA_TRY(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    cublasStatus_t st = cublasCreate(&cublas);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasSetStream(cublas, stream);
    if (st != CUBLAS_STATUS_SUCCESS) {
      // The destructor does not run for a half-built object: release what exists.
      if (cublas != nullptr) cublasDestroy(cublas);
      cudaStreamDestroy(stream);
      ThrowCublasError(st, "cublasCreate/cublasSetStream", __FILE__, __LINE__);
    }
  }
  ~CudaState() {
    // Errors are ignored here: a destructor must not throw, and at process exit the driver may
    // already be shutting down.
    if (cublas != nullptr) cublasDestroy(cublas);
    if (stream != nullptr) {
      cudaStreamSynchronize(stream);
      cudaStreamDestroy(stream);
    }
  }
  CudaState(const CudaState&) = delete;
  CudaState& operator=(const CudaState&) = delete;

  // Waits for everything queued on `stream`; surfaces asynchronous kernel faults as CudaError.
  void Synchronize() const { MLF_CUDA_TRY(cudaStreamSynchronize(stream)); }

  int device = 0;
  int sm_count = 1;  // streaming multiprocessors, for sizing grids
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
};

}  // namespace mlforge::detail
