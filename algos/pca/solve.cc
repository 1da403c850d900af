#include "algos/pca/solve.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "kernels/sym_eigen.h"

namespace mlforge::algos::pca {

namespace {
using RowMajorD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Eigen::MatrixXd;
using Eigen::VectorXd;

// Picks columns `order` of (values, vectors) into a Solution.
Solution Pick(const VectorXd& values, const MatrixXd& vectors, const std::vector<int64_t>& order) {
  Solution s;
  s.d = vectors.rows();
  s.k = static_cast<int64_t>(order.size());
  s.eigenvalues.resize(order.size());
  s.components.resize(static_cast<size_t>(s.d * s.k));
  for (int64_t j = 0; j < s.k; ++j) {
    s.eigenvalues[j] = values(order[j]);
    for (int64_t i = 0; i < s.d; ++i) s.components[i * s.k + j] = vectors(i, order[j]);
  }
  return s;
}

std::vector<int64_t> Descending(const VectorXd& values) {
  std::vector<int64_t> order(static_cast<size_t>(values.size()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return values(a) > values(b); });
  return order;
}
}  // namespace

std::vector<double> ShiftedMean(const kernels::PcaSums& sums) {
  std::vector<double> delta(sums.sum.size(), 0.0);
  if (sums.n > 0)
    for (size_t j = 0; j < delta.size(); ++j) delta[j] = sums.sum[j] / sums.n;
  return delta;
}

double TotalScatter(const kernels::PcaSums& sums, bool subtract_mean) {
  double t = sums.sum_sq;
  if (subtract_mean && sums.n > 0) {
    double ss = 0;
    for (double x : sums.sum) ss += x * x;
    t -= ss / sums.n;
  }
  return std::max(0.0, t);
}

Solution SolveRegular(Resources& res, const kernels::PcaSums& sums, bool subtract_mean, int64_t k) {
  MLF_ASSERT(sums.mode == kernels::PcaAccumulation::kScatter && k >= 1 && k <= sums.d);
  const int64_t d = sums.d;
  RowMajorD a = Eigen::Map<const RowMajorD>(sums.matrix.data(), d, d);
  if (subtract_mean && sums.n > 0) {
    const Eigen::Map<const VectorXd> s(sums.sum.data(), d);
    a.noalias() -= (s * s.transpose()) / sums.n;
  }
  a = (0.5 * (a + a.transpose())).eval();
  // Ascending eigenvalues on either device (kernels/sym_eigen.h; UserError when it does not converge).
  // Only the top k pairs, ascending.
  const kernels::SymEigenResult es = kernels::SymmetricEigen(res, a.data(), d, k);
  Solution s;
  s.d = d;
  s.k = k;
  s.eigenvalues = es.values;
  s.components = es.vectors;
  return s;
}

Solution SolveSketch(const kernels::PcaSums& sums, bool subtract_mean) {
  MLF_ASSERT(sums.mode == kernels::PcaAccumulation::kSketch && sums.l >= 1);
  const int64_t d = sums.d, l = sums.l;
  MatrixXd c = Eigen::Map<const RowMajorD>(sums.matrix.data(), l, d);
  if (subtract_mean && sums.n > 0) {
    const Eigen::Map<const VectorXd> h(sums.sign_sums.data(), l), s(sums.sum.data(), d);
    c.noalias() -= (h * s.transpose()) / sums.n;
  }
  // Thin SVD of C^T (d x l): its left singular vectors are C's right singular vectors.
  Eigen::BDCSVD<MatrixXd> svd(c.transpose(), Eigen::ComputeThinU);
  VectorXd lambda = svd.singularValues().array().square() / static_cast<double>(l);
  return Pick(lambda, svd.matrixU(), Descending(lambda));
}

std::vector<float> Basis(const Solution& s) {
  Eigen::Map<const RowMajorD> v(s.components.data(), s.d, s.k);
  Eigen::HouseholderQR<MatrixXd> qr(v);
  MatrixXd q = qr.householderQ() * MatrixXd::Identity(s.d, s.k);
  std::vector<float> out(static_cast<size_t>(s.d * s.k));
  for (int64_t i = 0; i < s.d; ++i)
    for (int64_t j = 0; j < s.k; ++j) out[i * s.k + j] = static_cast<float>(q(i, j));
  return out;
}

Solution SolveProjected(const kernels::PcaSums& sums, const std::vector<float>& qf, bool subtract_mean) {
  MLF_ASSERT(sums.mode == kernels::PcaAccumulation::kProject && sums.l >= 1);
  const int64_t d = sums.d, l = sums.l;
  MLF_ASSERT(static_cast<int64_t>(qf.size()) == d * l);
  MatrixXd q(d, l);
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < l; ++j) q(i, j) = qf[i * l + j];
  MatrixXd z = Eigen::Map<const RowMajorD>(sums.matrix.data(), d, l);
  if (subtract_mean && sums.n > 0) {
    // sum (y - delta)(y - delta)^T Q = Y^T Y Q - n delta (delta^T Q)
    const VectorXd delta = Eigen::Map<const VectorXd>(sums.sum.data(), d) / sums.n;
    z.noalias() -= sums.n * delta * (delta.transpose() * q);
  }
  // Stable Nystrom (Tropp, Yurtsever, Udell, Cevher 2017, Alg. 3): shift by nu for a safe Cholesky.
  const double nu = std::sqrt(static_cast<double>(d)) * std::numeric_limits<double>::epsilon() * z.norm();
  MatrixXd y = z + nu * q;
  MatrixXd b = q.transpose() * y;
  b = (0.5 * (b + b.transpose())).eval();
  Eigen::LLT<MatrixXd> llt(b);
  if (llt.info() == Eigen::Success && nu > 0) {
    // F = Y L^{-T}: solve L F^T = Y^T.
    MatrixXd ft = llt.matrixL().solve(y.transpose());
    Eigen::BDCSVD<MatrixXd> svd(ft.transpose(), Eigen::ComputeThinU);
    VectorXd lambda = (svd.singularValues().array().square() - nu).max(0.0);
    return Pick(lambda, svd.matrixU(), Descending(lambda));
  }
  // Rayleigh-Ritz on span(Q).
  MatrixXd g = q.transpose() * z;
  g = (0.5 * (g + g.transpose())).eval();
  Eigen::SelfAdjointEigenSolver<MatrixXd> es(g);
  MatrixXd v = q * es.eigenvectors();
  return Pick(es.eigenvalues(), v, Descending(es.eigenvalues()));
}

void NormalizeSigns(Solution* s) {
  for (int64_t j = 0; j < s->k; ++j) {
    int64_t best = 0;
    for (int64_t i = 1; i < s->d; ++i)
      if (std::abs(s->components[i * s->k + j]) > std::abs(s->components[best * s->k + j])) best = i;
    if (s->components[best * s->k + j] < 0)
      for (int64_t i = 0; i < s->d; ++i) s->components[i * s->k + j] = -s->components[i * s->k + j];
  }
}

}  // namespace mlforge::algos::pca
