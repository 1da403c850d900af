// CPU twin of the symmetric eigendecomposition and the device dispatch. The CUDA code is
// sym_eigen.cu; the contract is the comment in sym_eigen.h.
#include "kernels/sym_eigen.h"

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <cmath>

#include "core/build_config.h"
#include "core/error.h"
#include "core/resources.h"
#include "kernels/omp_threads.h"

#include "kernels/openblas.h"

namespace mlforge::kernels {

namespace internal {
void CheckSymEigenInput(const double* a, int64_t d) {
  MLF_ASSERT(d >= 1 && a != nullptr);
  for (int64_t i = 0; i < d; ++i) {
    const double* row = a + i * d;
    for (int64_t j = i; j < d; ++j) {
      MLF_EXPECTS(
          std::isfinite(row[j]),
          "eigendecomposition of the {} x {} symmetric matrix: entry ({}, {}) is {} (non-finite values in "
          "the data?)",
          d, d, i, j, row[j]);
    }
  }
}
}  // namespace internal

SymEigenResult KeepTop(const SymEigenResult& all, int64_t d, int64_t top_k) {
  if (top_k <= 0 || top_k >= d) return all;
  MLF_ASSERT(static_cast<int64_t>(all.values.size()) == d && static_cast<int64_t>(all.vectors.size()) == d * d);
  SymEigenResult r;
  r.values.assign(all.values.end() - top_k, all.values.end());
  r.vectors.resize(static_cast<size_t>(d * top_k));
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < top_k; ++j) r.vectors[i * top_k + j] = all.vectors[i * d + (d - top_k + j)];
  return r;
}

SymEigenResult SymmetricEigenCpu(const double* a, int64_t d, int64_t top_k, int threads) {
  internal::CheckSymEigenInput(a, d);
  MLF_ASSERT(top_k >= 0 && top_k <= d);
  const int64_t m_want = top_k == 0 ? d : top_k;
#if MLFORGE_HAVE_LAPACK
  // LAPACK indexes the matrix with 32-bit ints: d^2 < 2^31.
  MLF_EXPECTS(d <= 46000, "eigendecomposition of a {} x {} matrix: beyond LAPACK's 32-bit indexing (d <= 46000)", d, d);
  // The row-major input read column-major is A^T = A: its lower triangle is the input's upper one.
  std::vector<double> acopy(a, a + d * d);
  const int n = static_cast<int>(d), il = static_cast<int>(d - m_want + 1), iu = static_cast<int>(d);
  const double vl = 0, vu = 0, abstol = 0;  // abstol 0: LAPACK's default tolerance
  const char jobz = 'V', range = m_want == d ? 'A' : 'I', uplo = 'L';
  int found = 0, info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  std::vector<double> w(static_cast<size_t>(d)), z(static_cast<size_t>(d * m_want));
  std::vector<int> isuppz(static_cast<size_t>(2 * m_want));
  openblas_set_num_threads(static_cast<int>(ResolveThreads(threads)));
  dsyevr_(&jobz, &range, &uplo, &n, acopy.data(), &n, &vl, &vu, &il, &iu, &abstol, &found, w.data(), z.data(), &n,
          isuppz.data(), &work_query, &lwork, &iwork_query, &liwork, &info, 1, 1, 1);
  MLF_ASSERT_MSG(info == 0, "dsyevr workspace query failed (info {})", info);
  lwork = static_cast<int>(work_query);
  liwork = iwork_query;
  std::vector<double> work(static_cast<size_t>(std::max(1, lwork)));
  std::vector<int> iwork(static_cast<size_t>(std::max(1, liwork)));
  dsyevr_(&jobz, &range, &uplo, &n, acopy.data(), &n, &vl, &vu, &il, &iu, &abstol, &found, w.data(), z.data(), &n,
          isuppz.data(), work.data(), &lwork, iwork.data(), &liwork, &info, 1, 1, 1);
  MLF_ASSERT_MSG(info >= 0, "dsyevr: argument {} is invalid", -info);
  MLF_EXPECTS(info == 0 && found == m_want,
              "the eigensolver did not converge on the {} x {} symmetric matrix (non-finite or extremely large "
              "values in the data?)",
              d, d);
  SymEigenResult r;
  r.values.assign(w.begin(), w.begin() + m_want);  // ascending
  r.vectors.resize(static_cast<size_t>(d * m_want));
  for (int64_t j = 0; j < m_want; ++j)
    for (int64_t i = 0; i < d; ++i) r.vectors[i * m_want + j] = z[j * d + i];  // column-major -> row-major
  return r;
#else
  (void)threads;
  // The row-major input read as column-major is A^T = A; Eigen reads only the lower triangle of
  // that, i.e. the upper triangle of the row-major input (the contract).
  const Eigen::Map<const Eigen::MatrixXd> m(a, d, d);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(m);
  MLF_EXPECTS(
      es.info() == Eigen::Success,
      "the eigensolver did not converge on the {} x {} symmetric matrix (non-finite or extremely large "
      "values in the data?)",
      d, d);
  SymEigenResult r;
  r.values.assign(es.eigenvalues().data(), es.eigenvalues().data() + d);  // Eigen: ascending
  r.vectors.resize(static_cast<size_t>(d * d));
  Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(r.vectors.data(), d, d) =
      es.eigenvectors();
  return KeepTop(r, d, top_k);
#endif
}

Device SymmetricEigenDevice(const Resources& res, int64_t d) {
  return res.device() == Device::kGpu && d >= kSymEigenGpuMinDim && d <= kSymEigenGpuMaxDim ? Device::kGpu
                                                                                            : Device::kCpu;
}

SymEigenResult SymmetricEigen(Resources& res, const double* a, int64_t d, int64_t top_k) {
  if (SymmetricEigenDevice(res, d) == Device::kGpu) return KeepTop(SymmetricEigenGpu(res.cuda(), a, d), d, top_k);
  return SymmetricEigenCpu(a, d, top_k, res.threads());
}

#if !MLFORGE_HAVE_CUDA
// Without CUDA sym_eigen.cu is not compiled; Resources never resolves to the GPU then, so this only
// runs when called directly.
SymEigenResult SymmetricEigenGpu(detail::CudaState&, const double*, int64_t) {
  MLF_FAIL(
      "symmetric eigendecomposition on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
#endif

}  // namespace mlforge::kernels
