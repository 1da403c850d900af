// cuBLAS, loaded on first use. libcublas pulls in libcublasLt, whose load-time relocations alone
// cost ~200 MB of resident memory in every process that links it, GPU or not. mlforge therefore
// does not link cuBLAS: it defines the few cuBLAS entry points it calls (below, with cuBLAS's own
// C signatures from cublas_api.h) and forwards them to the library opened with dlopen() the first
// time one is called, i.e. when a GPU path creates its handle. CPU-only runs never load it.
// A missing or unusable library makes cublasCreate fail with CUBLAS_STATUS_NOT_INITIALIZED and the
// reason is available from CublasLoadError().
#include "core/build_config.h"

#if MLFORGE_HAVE_CUDA
#include <cublas_v2.h>
#include <dlfcn.h>

#include <mutex>
#include <string>

#include "core/cublas_lazy.h"
#include "core/lazy_library.h"

namespace mlforge {
namespace {

struct CublasLib : detail::LazyLibrary {
  decltype(&::cublasCreate_v2) create = nullptr;
  decltype(&::cublasDestroy_v2) destroy = nullptr;
  decltype(&::cublasSetStream_v2) set_stream = nullptr;
  decltype(&::cublasGetStatusName) status_name = nullptr;
  decltype(&::cublasGetStatusString) status_string = nullptr;
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
  decltype(&::cublasDsyrk_v2) dsyrk = nullptr;
  decltype(&::cublasSsyrk_v2) ssyrk = nullptr;
};

CublasLib& Lib() {
  static CublasLib lib;
  static std::once_flag once;
  std::call_once(once, [] {
    if (!lib.Open({"libcublas.so." + std::to_string(CUBLAS_VER_MAJOR), "libcublas.so"},
                  "install the CUDA toolkit's cuBLAS or add its lib folder to LD_LIBRARY_PATH")) {
      return;
    }
    const bool ok = lib.Bind(lib.create, "cublasCreate_v2") && lib.Bind(lib.destroy, "cublasDestroy_v2") &&
                    lib.Bind(lib.set_stream, "cublasSetStream_v2") &&
                    lib.Bind(lib.status_name, "cublasGetStatusName") &&
                    lib.Bind(lib.status_string, "cublasGetStatusString") && lib.Bind(lib.gemm_ex, "cublasGemmEx") &&
                    lib.Bind(lib.dsyrk, "cublasDsyrk_v2") && lib.Bind(lib.ssyrk, "cublasSsyrk_v2");
    if (!ok) lib.Close();
  });
  return lib;
}

}  // namespace

std::string CublasLoadError() { return Lib().error; }

}  // namespace mlforge

using mlforge::Lib;

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  auto& lib = Lib();
  return lib.create ? lib.create(handle) : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  auto& lib = Lib();
  return lib.destroy ? lib.destroy(handle) : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  auto& lib = Lib();
  return lib.set_stream ? lib.set_stream(handle, stream) : CUBLAS_STATUS_NOT_INITIALIZED;
}

const char* cublasGetStatusName(cublasStatus_t status) {
  auto& lib = Lib();
  return lib.status_name ? lib.status_name(status) : "CUBLAS_STATUS_(library not loaded)";
}

const char* cublasGetStatusString(cublasStatus_t status) {
  auto& lib = Lib();
  return lib.status_string ? lib.status_string(status) : lib.error.c_str();
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  auto& lib = Lib();
  return lib.gemm_ex ? lib.gemm_ex(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C,
                                   Ctype, ldc, computeType, algo)
                     : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasDsyrk_v2(cublasHandle_t handle, cublasFillMode_t uplo, cublasOperation_t trans, int n, int k,
                              const double* alpha, const double* A, int lda, const double* beta, double* C, int ldc) {
  auto& lib = Lib();
  return lib.dsyrk ? lib.dsyrk(handle, uplo, trans, n, k, alpha, A, lda, beta, C, ldc) : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasSsyrk_v2(cublasHandle_t handle, cublasFillMode_t uplo, cublasOperation_t trans, int n, int k,
                              const float* alpha, const float* A, int lda, const float* beta, float* C, int ldc) {
  auto& lib = Lib();
  return lib.ssyrk ? lib.ssyrk(handle, uplo, trans, n, k, alpha, A, lda, beta, C, ldc) : CUBLAS_STATUS_NOT_INITIALIZED;
}

}  // extern "C"
#endif  // MLFORGE_HAVE_CUDA
