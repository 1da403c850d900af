// CUDA version of the symmetric eigendecomposition (CPU twin and dispatch: sym_eigen.cc; the
// contract is the comment in sym_eigen.h): cuSOLVER's cusolverDnDsyevd (Householder
// tridiagonalisation on the device, divide and conquer, back-transformation), float64, on the
// CudaState's stream with its lazily created cuSOLVER handle.
//
// Layout: cuSOLVER is column-major. The row-major input read as column-major is A^T = A, so it is
// uploaded as is and syevd is told to read the column-major LOWER triangle, which is the row-major
// UPPER triangle: the same entries the CPU twin (Eigen, lower triangle of the same column-major
// view) reads. syevd overwrites A with the eigenvectors as columns (column-major); they are
// downloaded into the result and transposed in place on the host (O(d^2), next to syevd's O(d^3)).
// W (the eigenvalues) comes back ascending, like Eigen's.
//
// Device memory, one stream-ordered allocation: A (d^2 doubles), W (d), info (an int) and the
// workspace syevd asks for (~2 d^2 doubles); checked against cudaMemGetInfo first.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "kernels/cuda_check.cuh"
#include "kernels/sym_eigen.h"

namespace mlforge::kernels {
namespace {

constexpr size_t kAlign = 256;
size_t AlignUp(size_t b) { return (b + kAlign - 1) / kAlign * kAlign; }
// Left free besides what syevd is told about: its internal cuBLAS calls and the handle's scratch.
constexpr size_t kHeadroomBytes = size_t{64} << 20;

double MiB(size_t b) { return static_cast<double>(b) / (1 << 20); }

// A stream-ordered device allocation freed on the same stream (also on the error paths).
class StreamAlloc {
 public:
  StreamAlloc(size_t bytes, cudaStream_t stream) : stream_(stream) {
    MLF_CUDA_TRY(cudaMallocAsync(&ptr_, bytes, stream_));
  }
  ~StreamAlloc() {
    if (ptr_ != nullptr) cudaFreeAsync(ptr_, stream_);  // errors ignored: destructors must not throw
  }
  StreamAlloc(const StreamAlloc&) = delete;
  StreamAlloc& operator=(const StreamAlloc&) = delete;
  char* get() const { return static_cast<char*>(ptr_); }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_;
};

// In-place transpose of a d x d matrix, in 32 x 32 blocks so that both sides stay in cache.
void TransposeInPlace(double* m, int64_t d) {
  constexpr int64_t kB = 32;
  for (int64_t bi = 0; bi < d; bi += kB) {
    for (int64_t bj = bi; bj < d; bj += kB) {
      const int64_t i1 = std::min(d, bi + kB), j1 = std::min(d, bj + kB);
      for (int64_t i = bi; i < i1; ++i)
        for (int64_t j = (bi == bj ? i + 1 : bj); j < j1; ++j) std::swap(m[i * d + j], m[j * d + i]);
    }
  }
}

}  // namespace

SymEigenResult SymmetricEigenGpu(detail::CudaState& cuda, const double* a_host, int64_t d) {
  MLF_ASSERT_MSG(d >= 1 && d <= kSymEigenGpuMaxDim, "SymmetricEigenGpu: d = {} outside [1, {}]", d,
                 kSymEigenGpuMaxDim);
  internal::CheckSymEigenInput(a_host, d);
  const int n = static_cast<int>(d);
  const cublasFillMode_t uplo = CUBLAS_FILL_MODE_LOWER;  // column-major lower = row-major upper
  const cusolverEigMode_t jobz = CUSOLVER_EIG_MODE_VECTOR;
  cusolverDnHandle_t h = cuda.Cusolver();

  // The workspace size depends only on jobz, uplo, n and lda: A and W may be null (JAX's cuSOLVER
  // kernels query it the same way), so one allocation can hold everything.
  int lwork = 0;
  MLF_CUSOLVER_TRY(cusolverDnDsyevd_bufferSize(h, jobz, uplo, n, nullptr, n, nullptr, &lwork));
  MLF_ASSERT_MSG(lwork >= 0, "cusolverDnDsyevd_bufferSize returned lwork = {} for d = {}", lwork, d);

  const size_t a_bytes = AlignUp(static_cast<size_t>(d) * static_cast<size_t>(d) * sizeof(double));
  const size_t w_bytes = AlignUp(static_cast<size_t>(d) * sizeof(double));
  const size_t info_bytes = AlignUp(sizeof(int));
  const size_t work_bytes = AlignUp(static_cast<size_t>(std::max(lwork, 1)) * sizeof(double));
  const size_t total = a_bytes + w_bytes + info_bytes + work_bytes;
  size_t free_bytes = 0, total_bytes = 0;
  MLF_CUDA_TRY(cudaMemGetInfo(&free_bytes, &total_bytes));
  MLF_EXPECTS(
      total + kHeadroomBytes <= free_bytes,
      "eigendecomposition of the {} x {} matrix on the GPU needs {:.0f} MiB of device memory (matrix "
      "{:.0f} MiB, eigenvalues {:.1f} MiB, cuSOLVER workspace {:.0f} MiB, plus {:.0f} MiB headroom) but only "
      "{:.0f} MiB of {:.0f} MiB are free: use a GPU with more memory, free it, or train on the CPU "
      "(--device cpu / a CPU instance)",
      d, d, MiB(total + kHeadroomBytes), MiB(a_bytes), MiB(w_bytes), MiB(work_bytes), MiB(kHeadroomBytes),
      MiB(free_bytes), MiB(total_bytes));

  StreamAlloc mem(total, cuda.stream);
  double* dev_a = reinterpret_cast<double*>(mem.get());
  double* dev_w = reinterpret_cast<double*>(mem.get() + a_bytes);
  int* dev_info = reinterpret_cast<int*>(mem.get() + a_bytes + w_bytes);
  double* dev_work = reinterpret_cast<double*>(mem.get() + a_bytes + w_bytes + info_bytes);

  SymEigenResult r;
  r.values.resize(static_cast<size_t>(d));
  r.vectors.resize(static_cast<size_t>(d) * static_cast<size_t>(d));
  int info = 0;
  const size_t dd = static_cast<size_t>(d) * static_cast<size_t>(d);
  // From pageable host memory: the driver stages the copies (d^2 doubles each way, small next to
  // syevd's O(d^3) work).
  MLF_CUDA_TRY(cudaMemcpyAsync(dev_a, a_host, dd * sizeof(double), cudaMemcpyHostToDevice, cuda.stream));
  MLF_CUSOLVER_TRY(cusolverDnDsyevd(h, jobz, uplo, n, dev_a, n, dev_w, dev_work, lwork, dev_info));
  MLF_CUDA_TRY(cudaMemcpyAsync(r.values.data(), dev_w, static_cast<size_t>(d) * sizeof(double),
                               cudaMemcpyDeviceToHost, cuda.stream));
  MLF_CUDA_TRY(
      cudaMemcpyAsync(r.vectors.data(), dev_a, dd * sizeof(double), cudaMemcpyDeviceToHost, cuda.stream));
  MLF_CUDA_TRY(cudaMemcpyAsync(&info, dev_info, sizeof(int), cudaMemcpyDeviceToHost, cuda.stream));
  cuda.Synchronize();  // the one host sync of this step

  // info < 0: argument -info was invalid (a bug here); info > 0: info off-diagonal elements of the
  // intermediate tridiagonal form did not converge to zero.
  MLF_ASSERT_MSG(info >= 0, "cusolverDnDsyevd: parameter {} invalid (d = {}, lwork = {})", -info, d, lwork);
  MLF_EXPECTS(
      info == 0,
      "the eigensolver (cuSOLVER syevd) did not converge on the {} x {} symmetric matrix ({} off-diagonal "
      "elements did not converge; non-finite or extremely large values in the data?)",
      d, d, info);
  // Column-major eigenvectors (V(i, j) at [j * d + i]) -> row-major (vectors[i * d + j]).
  TransposeInPlace(r.vectors.data(), d);
  return r;
}

}  // namespace mlforge::kernels
