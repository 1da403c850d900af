// Full eigendecomposition of a dense symmetric float64 matrix (DESIGN.md "CPU and GPU"): PCA's
// regular-mode solve of the d x d centred scatter matrix. sym_eigen.cc holds the CPU twin (LAPACK
// dsyevr from OpenBLAS when the build has it: blocked multi-threaded tridiagonalisation, then MRRR
// for only the eigenpairs asked for; else Eigen's SelfAdjointEigenSolver) and the dispatch;
// sym_eigen.cu the CUDA code (cuSOLVER cusolverDnDsyevd: tridiagonalisation + divide and conquer,
// on the CudaState's stream, one host sync). Plain C++: no CUDA types here.
//
// Contract, both twins:
//  - a: d x d, row-major, host memory. Only its UPPER triangle (a[i * d + j], j >= i) is read; the
//    twins never look at the strict lower triangle (callers that build the matrix in floating point
//    symmetrise it first, e.g. 0.5 (A + A^T), if both halves carry information).
//  - values: the d eigenvalues in ASCENDING order.
//  - vectors: d x d row-major; column j (vectors[i * d + j], i = 0..d-1) is the unit eigenvector of
//    values[j]. Eigenvectors are defined up to sign (and, for repeated eigenvalues, up to a rotation
//    within the eigenspace): the twins may differ there; callers normalise signs themselves.
//  - a non-finite entry in the upper triangle, or a solver that does not converge, is a UserError
//    naming d (it comes from non-finite or absurdly scaled data, not from a bug).
// Cost: O(d^3) flops on either side; GPU memory: d^2 + d doubles (A, overwritten by the
// eigenvectors, and W) plus cuSOLVER's workspace (about 2 d^2 doubles).
#pragma once

#include <cstdint>
#include <vector>

namespace mlforge {
class Resources;
enum class Device;
namespace detail {
struct CudaState;
}
}  // namespace mlforge

namespace mlforge::kernels {

// With top_k = m in [1, d): only the m largest eigenpairs, still ascending (values m, vectors d x m:
// column j = vectors[i * m + j]). top_k = 0: all d.
struct SymEigenResult {
  std::vector<double> values;   // ascending, d (or top_k)
  std::vector<double> vectors;  // d x d (or d x top_k), column j = eigenvector j, stored row-major
};

// CPU twin. LAPACK dsyevr on `threads` OpenBLAS threads (<= 0: all), computing only the top_k
// pairs (PCA's num_components: 30x faster than all of them at d = 2625, k = 20); without OpenBLAS,
// Eigen on the calling thread, all pairs, then the top_k kept.
SymEigenResult SymmetricEigenCpu(const double* a, int64_t d, int64_t top_k = 0, int threads = 0);

// CUDA version: uploads a (host), runs cusolverDnDsyevd on cuda.stream (cuSOLVER is opened with
// dlopen() on first use: core/cusolver_lazy.cc), downloads values and vectors, syncs once. Checks
// free device memory first (cudaMemGetInfo) and throws a UserError naming the sizes when the
// matrix, the eigenvalues and the workspace do not fit. 1 <= d <= kSymEigenGpuMaxDim.
// Without CUDA it throws "built without CUDA".
SymEigenResult SymmetricEigenGpu(detail::CudaState& cuda, const double* a_host, int64_t d);

// cusolverDnDsyevd takes its workspace size as an int (LAPACK's minimum with eigenvectors is
// 1 + 6 d + 2 d^2 doubles, past INT_MAX near d = 32760): larger problems stay on the CPU.
constexpr int64_t kSymEigenGpuMaxDim = 30000;

// Where the GPU takes over. UNMEASURED: 1024 is a guess (below it the O(d^2) transfers, the
// handle's first use and the launch latency of syevd's many small steps are expected to cost about
// what Eigen's single-threaded QR does; above it the GPU's FP64 throughput should win by a
// growing factor). bench/pca_bench.cc (BM_SymEigenCpu / BM_SymEigenGpu) measures both sides; set
// this from the crossover on the first machine with a GPU and record the numbers in bench/results.
// The CPU side alone, on a shared 2-core development VM (Gaussian matrix, values and vectors):
// 10 ms at d = 256, 63 ms at 512, 0.55 s at 1024, 11 s at 2048; so the switch belongs below 1024
// if syevd (with the transfers) takes less than that on the GPU, which is what BM_SymEigenGpu tells.
constexpr int64_t kSymEigenGpuMinDim = 1024;

// The device SymmetricEigen(res, ., d) runs on: the GPU when res.device() == Device::kGpu and
// kSymEigenGpuMinDim <= d <= kSymEigenGpuMaxDim, else the CPU. For logging.
Device SymmetricEigenDevice(const Resources& res, int64_t d);

// Dispatch: SymmetricEigenGpu(res.cuda(), a, d) (all pairs, then the top_k kept) or
// SymmetricEigenCpu(a, d, top_k, res.threads()), by SymmetricEigenDevice.
SymEigenResult SymmetricEigen(Resources& res, const double* a, int64_t d, int64_t top_k = 0);

// The top_k largest pairs of a full (ascending) result, ascending.
SymEigenResult KeepTop(const SymEigenResult& all, int64_t d, int64_t top_k);

namespace internal {
// UserError when an entry of a's upper triangle is not finite (both twins call it first).
void CheckSymEigenInput(const double* a, int64_t d);
}  // namespace internal

}  // namespace mlforge::kernels
