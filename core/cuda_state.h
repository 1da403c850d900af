// The CUDA half of Resources (DESIGN.md "One Resources object"): the stream and the library
// handles bound to it, plus the checks every CUDA runtime / cuBLAS / cuSOLVER call goes through.
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
#include <cusolverDn.h>

#include <stdexcept>
#include <string>

#include "core/cusolver_lazy.h"

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

// cuSOLVER has no status-name function.
inline const char* CusolverStatusName(cusolverStatus_t st) {
  switch (st) {
    case CUSOLVER_STATUS_SUCCESS:
      return "CUSOLVER_STATUS_SUCCESS";
    case CUSOLVER_STATUS_NOT_INITIALIZED:
      return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED:
      return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE:
      return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH:
      return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_EXECUTION_FAILED:
      return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR:
      return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_NOT_SUPPORTED:
      return "CUSOLVER_STATUS_NOT_SUPPORTED";
    case CUSOLVER_STATUS_INVALID_WORKSPACE:
      return "CUSOLVER_STATUS_INVALID_WORKSPACE";
    default:
      return "CUSOLVER_STATUS_(other)";
  }
}

[[noreturn]] inline void ThrowCusolverError(cusolverStatus_t st, const char* expr, const char* file,
                                            int line) {
  std::string why = std::string("cuSOLVER error: ") + expr + " failed at " + file + ":" +
                    std::to_string(line) + ": " + CusolverStatusName(st) + " (" +
                    std::to_string(static_cast<int>(st)) + ")";
  const std::string load = CusolverLoadError();  // why the library is missing, if it is
  if (!load.empty()) why += ": " + load;
  throw CudaError(why);
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

// MLF_CUSOLVER_TRY(cusolverDnFoo(...)): every cuSOLVER call goes through this; throws CudaError.
#define MLF_CUSOLVER_TRY(call)                                                   \
  do {                                                                           \
    cusolverStatus_t _mlf_st = (call);                                           \
    if (_mlf_st != CUSOLVER_STATUS_SUCCESS)                                      \
      ::mlforge::detail::ThrowCusolverError(_mlf_st, #call, __FILE__, __LINE__); \
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
    if (cusolver_ != nullptr) cusolverDnDestroy(cusolver_);
    if (cublas != nullptr) cublasDestroy(cublas);
    if (aux_ != nullptr) {
      cudaStreamSynchronize(aux_);
      cudaStreamDestroy(aux_);
    }
    if (stream != nullptr) {
      cudaStreamSynchronize(stream);
      cudaStreamDestroy(stream);
    }
  }
  CudaState(const CudaState&) = delete;
  CudaState& operator=(const CudaState&) = delete;

  // Waits for everything queued on `stream`; surfaces asynchronous kernel faults as CudaError.
  void Synchronize() const { MLF_CUDA_TRY(cudaStreamSynchronize(stream)); }

  // The cuSOLVER dense handle bound to `stream`, created on first use (only eigendecompositions
  // need it, and creating it opens libcusolver: core/cusolver_lazy.cc).
  cusolverDnHandle_t Cusolver() {
    if (cusolver_ == nullptr) {
      cusolverDnHandle_t h = nullptr;
      MLF_CUSOLVER_TRY(cusolverDnCreate(&h));
      const cusolverStatus_t st = cusolverDnSetStream(h, stream);
      if (st != CUSOLVER_STATUS_SUCCESS) {
        cusolverDnDestroy(h);
        ThrowCusolverError(st, "cusolverDnSetStream", __FILE__, __LINE__);
      }
      cusolver_ = h;
    }
    return cusolver_;
  }

  // A second stream, created on first use, for work that overlaps with `stream` inside one step
  // (the k-means GEMM path's epilogue of tile t runs beside the SGEMM of tile t + 1). Whoever
  // uses it orders it against `stream` with events and makes `stream` wait for it before
  // returning, so callers still see one stream.
  cudaStream_t AuxStream() {
    if (aux_ == nullptr) MLF_CUDA_TRY(cudaStreamCreateWithFlags(&aux_, cudaStreamNonBlocking));
    return aux_;
  }
  int device = 0;
  int sm_count = 1;  // streaming multiprocessors, for sizing grids
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;

 private:
  cusolverDnHandle_t cusolver_ = nullptr;  // see Cusolver()
  cudaStream_t aux_ = nullptr;             // see AuxStream()
};

}  // namespace mlforge::detail
