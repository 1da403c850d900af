// cuSOLVER, loaded on first use, for the same reason and in the same way as cuBLAS
// (core/cublas_lazy.cc): libcusolver needs libcublas, libcublasLt and libcusparse, hundreds of MB of
// resident memory in every process that links it, GPU or not. mlforge therefore does not link it:
// it defines the few cuSOLVER dense entry points it calls (below, with the C signatures of
// cusolverDn.h) and forwards them to the library opened with dlopen() the first time one is
// called, i.e. when a GPU eigendecomposition creates its handle (detail::CudaState::Cusolver()).
// A missing or unusable library makes cusolverDnCreate fail with CUSOLVER_STATUS_NOT_INITIALIZED
// and the reason is available from CusolverLoadError() (MLF_CUSOLVER_TRY appends it).
#include "core/build_config.h"

#if MLFORGE_HAVE_CUDA
#include <cusolverDn.h>
#include <dlfcn.h>

#include <mutex>
#include <string>

#include "core/cusolver_lazy.h"
#include "core/lazy_library.h"

namespace mlforge {
namespace {

struct CusolverLib : detail::LazyLibrary {
  decltype(&::cusolverDnCreate) create = nullptr;
  decltype(&::cusolverDnDestroy) destroy = nullptr;
  decltype(&::cusolverDnSetStream) set_stream = nullptr;
  decltype(&::cusolverDnDsyevd_bufferSize) dsyevd_buffer_size = nullptr;
  decltype(&::cusolverDnDsyevd) dsyevd = nullptr;
};

CusolverLib& Lib() {
  static CusolverLib lib;
  static std::once_flag once;
  std::call_once(once, [] {
    // The major version of the cusolverDn.h mlforge was compiled against (12 for CUDA 13.x, 11
    // for CUDA 12.x: cuSOLVER's soname does not follow the toolkit's), then the unversioned name.
    // Not another major: it would pull in a second CUDA runtime and cuBLAS next to ours.
    if (!lib.Open({"libcusolver.so." + std::to_string(CUSOLVER_VER_MAJOR), "libcusolver.so"},
                  "install the CUDA toolkit's cuSOLVER or add its lib folder to LD_LIBRARY_PATH")) {
      return;
    }
    const bool ok = lib.Bind(lib.create, "cusolverDnCreate") && lib.Bind(lib.destroy, "cusolverDnDestroy") &&
                    lib.Bind(lib.set_stream, "cusolverDnSetStream") &&
                    lib.Bind(lib.dsyevd_buffer_size, "cusolverDnDsyevd_bufferSize") &&
                    lib.Bind(lib.dsyevd, "cusolverDnDsyevd");
    if (!ok) lib.Close();
  });
  return lib;
}

}  // namespace

std::string CusolverLoadError() { return Lib().error; }

}  // namespace mlforge

using mlforge::Lib;

extern "C" {

cusolverStatus_t cusolverDnCreate(cusolverDnHandle_t* handle) {
  auto& lib = Lib();
  return lib.create ? lib.create(handle) : CUSOLVER_STATUS_NOT_INITIALIZED;
}

cusolverStatus_t cusolverDnDestroy(cusolverDnHandle_t handle) {
  auto& lib = Lib();
  return lib.destroy ? lib.destroy(handle) : CUSOLVER_STATUS_NOT_INITIALIZED;
}

cusolverStatus_t cusolverDnSetStream(cusolverDnHandle_t handle, cudaStream_t stream) {
  auto& lib = Lib();
  return lib.set_stream ? lib.set_stream(handle, stream) : CUSOLVER_STATUS_NOT_INITIALIZED;
}

cusolverStatus_t cusolverDnDsyevd_bufferSize(cusolverDnHandle_t handle, cusolverEigMode_t jobz,
                                             cublasFillMode_t uplo, int n, const double* A, int lda,
                                             const double* W, int* lwork) {
  auto& lib = Lib();
  return lib.dsyevd_buffer_size ? lib.dsyevd_buffer_size(handle, jobz, uplo, n, A, lda, W, lwork)
                                : CUSOLVER_STATUS_NOT_INITIALIZED;
}

cusolverStatus_t cusolverDnDsyevd(cusolverDnHandle_t handle, cusolverEigMode_t jobz, cublasFillMode_t uplo,
                                  int n, double* A, int lda, double* W, double* work, int lwork, int* info) {
  auto& lib = Lib();
  return lib.dsyevd ? lib.dsyevd(handle, jobz, uplo, n, A, lda, W, work, lwork, info)
                    : CUSOLVER_STATUS_NOT_INITIALIZED;
}

}  // extern "C"
#endif  // MLFORGE_HAVE_CUDA
