// The CPU twin of the symmetric eigendecomposition (kernels/sym_eigen.h) against decompositions
// known by construction: A = Q diag(w) Q^T with a random orthogonal Q (Householder QR of a Gaussian
// matrix). Tolerances: eigenvalues 1e-12 of max |w| (a backward-stable solver is within a small
// multiple of d eps ||A||); eigenvectors of eigenvalues separated by >= 1e-3 ||A|| within
// |cos| >= 1 - 1e-12 of Q's columns; repeated eigenvalues: the residual ||A V - V diag(values)||
// and ||V^T V - I|| within 1e-12 of ||A|| and the projector onto each eigenspace within 1e-10.
// The dispatch on a CPU Resources, the contract's upper triangle and the error cases too.
#include "kernels/sym_eigen.h"

#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "comm/communicator.h"
#include "core/error.h"
#include "core/resources.h"

namespace mlforge::kernels {
namespace {

using RowMajorD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Eigen::MatrixXd RandomOrthogonal(int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd;
  Eigen::MatrixXd g(d, d);
  for (int64_t j = 0; j < d; ++j)
    for (int64_t i = 0; i < d; ++i) g(i, j) = nd(rng);
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
  return qr.householderQ() * Eigen::MatrixXd::Identity(d, d);
}

// Q diag(w) Q^T, row-major, exactly symmetric (the upper triangle mirrored).
std::vector<double> Compose(const Eigen::MatrixXd& q, const std::vector<double>& w) {
  const int64_t d = q.rows();
  const Eigen::Map<const Eigen::VectorXd> wv(w.data(), d);
  RowMajorD a = q * wv.asDiagonal() * q.transpose();
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < i; ++j) a(i, j) = a(j, i);
  return std::vector<double>(a.data(), a.data() + d * d);
}

double MaxAbs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

// ||A V - V diag(values)||_max and ||V^T V - I||_max.
void ExpectDecomposes(const std::vector<double>& a, const SymEigenResult& r, int64_t d, double tol) {
  ASSERT_EQ(r.values.size(), static_cast<size_t>(d));
  ASSERT_EQ(r.vectors.size(), static_cast<size_t>(d * d));
  EXPECT_TRUE(std::is_sorted(r.values.begin(), r.values.end()));
  const Eigen::Map<const RowMajorD> am(a.data(), d, d), v(r.vectors.data(), d, d);
  const Eigen::Map<const Eigen::VectorXd> w(r.values.data(), d);
  const double scale = std::max(1.0, MaxAbs(a)) * static_cast<double>(d);
  EXPECT_LE((am * v - v * w.asDiagonal()).cwiseAbs().maxCoeff(), tol * scale);
  EXPECT_LE((v.transpose() * v - Eigen::MatrixXd::Identity(d, d)).cwiseAbs().maxCoeff(), tol * d);
}

struct Known {
  int64_t d;
  uint64_t seed;
};

class SymEigenKnown : public ::testing::TestWithParam<Known> {};

TEST_P(SymEigenKnown, RecoversValuesAndVectors) {
  const auto [d, seed] = GetParam();
  // Distinct eigenvalues of both signs spread over four orders of magnitude, in a shuffled order.
  std::vector<double> w(static_cast<size_t>(d));
  for (int64_t j = 0; j < d; ++j)
    w[j] = (j % 3 == 0 ? -1.0 : 1.0) * std::pow(10.0, 4.0 * j / std::max<int64_t>(1, d));
  std::shuffle(w.begin(), w.end(), std::mt19937_64(seed));
  const Eigen::MatrixXd q = RandomOrthogonal(d, seed);
  const std::vector<double> a = Compose(q, w);
  const SymEigenResult r = SymmetricEigenCpu(a.data(), d);
  ExpectDecomposes(a, r, d, 1e-13);

  std::vector<int64_t> order(static_cast<size_t>(d));
  for (int64_t j = 0; j < d; ++j) order[j] = j;
  std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return w[x] < w[y]; });
  const double wmax = MaxAbs(w);
  const Eigen::Map<const RowMajorD> v(r.vectors.data(), d, d);
  for (int64_t j = 0; j < d; ++j) {
    EXPECT_NEAR(r.values[j], w[order[j]], 1e-12 * wmax) << "eigenvalue " << j;
    double gap = std::numeric_limits<double>::infinity();
    if (j > 0) gap = std::min(gap, w[order[j]] - w[order[j - 1]]);
    if (j + 1 < d) gap = std::min(gap, w[order[j + 1]] - w[order[j]]);
    if (gap < 1e-3 * wmax) continue;  // eigenvector too sensitive to compare directly
    const double c = std::abs(v.col(j).dot(q.col(order[j])));
    EXPECT_GE(c, 1.0 - 1e-12) << "eigenvector " << j << " (eigenvalue " << r.values[j] << ")";
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, SymEigenKnown,
                         ::testing::Values(Known{1, 1}, Known{2, 2}, Known{7, 3}, Known{64, 4},
                                           Known{200, 5}));

TEST(SymEigen, RepeatedEigenvaluesSpanTheirEigenspaces) {
  const int64_t d = 40;
  // Blocks: 10 x 3.0, 1 x 1.5, 20 x -2.0, 9 x 0 (rank deficient, as PCA's scatter often is).
  std::vector<double> w;
  w.insert(w.end(), 10, 3.0);
  w.insert(w.end(), 1, 1.5);
  w.insert(w.end(), 20, -2.0);
  w.insert(w.end(), 9, 0.0);
  const Eigen::MatrixXd q = RandomOrthogonal(d, 42);
  const std::vector<double> a = Compose(q, w);
  const SymEigenResult r = SymmetricEigenCpu(a.data(), d);
  ExpectDecomposes(a, r, d, 1e-13);
  const Eigen::Map<const RowMajorD> v(r.vectors.data(), d, d);
  // Ascending: -2 x 20, 0 x 9, 1.5, 3 x 10. The projector onto each eigenspace is Q_S Q_S^T.
  struct Block {
    double value;
    int64_t first, count;  // in the ascending result
  };
  for (const Block& b : {Block{-2.0, 0, 20}, Block{0.0, 20, 9}, Block{1.5, 29, 1}, Block{3.0, 30, 10}}) {
    for (int64_t j = b.first; j < b.first + b.count; ++j) EXPECT_NEAR(r.values[j], b.value, 1e-13 * 3.0 * d);
    Eigen::MatrixXd p_got = v.middleCols(b.first, b.count) * v.middleCols(b.first, b.count).transpose();
    Eigen::MatrixXd qs(d, b.count);
    int64_t c = 0;
    for (int64_t j = 0; j < d; ++j)
      if (w[j] == b.value) qs.col(c++) = q.col(j);
    ASSERT_EQ(c, b.count);
    EXPECT_LE((p_got - qs * qs.transpose()).cwiseAbs().maxCoeff(), 1e-10) << "eigenvalue " << b.value;
  }
}

TEST(SymEigen, DiagonalAndZeroMatrices) {
  const int64_t d = 5;
  std::vector<double> a(static_cast<size_t>(d * d), 0.0);
  SymEigenResult r = SymmetricEigenCpu(a.data(), d);
  for (double x : r.values) EXPECT_EQ(x, 0.0);
  ExpectDecomposes(a, r, d, 1e-15);
  const std::vector<double> diag{4, -1, 2.5, 0, 7};
  for (int64_t i = 0; i < d; ++i) a[i * d + i] = diag[i];
  r = SymmetricEigenCpu(a.data(), d);
  const std::vector<double> want{-1, 0, 2.5, 4, 7};  // up to Eigen's scaling by max |a_ij|
  for (int64_t j = 0; j < d; ++j) EXPECT_NEAR(r.values[j], want[j], 1e-15 * 7) << j;
  ExpectDecomposes(a, r, d, 1e-15);
}

TEST(SymEigen, ReadsOnlyTheUpperTriangle) {
  const int64_t d = 30;
  std::vector<double> w(static_cast<size_t>(d));
  for (int64_t j = 0; j < d; ++j) w[j] = 1.0 + j;
  const std::vector<double> a = Compose(RandomOrthogonal(d, 7), w);
  std::vector<double> upper = a;
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < i; ++j) upper[i * d + j] = (i + j) % 2 ? std::nan("") : 1e300;
  const SymEigenResult full = SymmetricEigenCpu(a.data(), d), tri = SymmetricEigenCpu(upper.data(), d);
  EXPECT_EQ(full.values, tri.values);
  EXPECT_EQ(full.vectors, tri.vectors);
}

TEST(SymEigen, NonFiniteInputIsAUserErrorNamingTheSize) {
  const int64_t d = 6;
  for (double bad :
       {std::nan(""), std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()}) {
    std::vector<double> a(static_cast<size_t>(d * d), 1.0);
    a[2 * d + 4] = bad;
    try {
      SymmetricEigenCpu(a.data(), d);
      ADD_FAILURE() << "no error for " << bad;
    } catch (const UserError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("6 x 6"), std::string::npos) << msg;
      EXPECT_NE(msg.find("(2, 4)"), std::string::npos) << msg;
      EXPECT_NE(msg.find("non-finite"), std::string::npos) << msg;
    }
  }
  // All NaN, through the dispatch.
  Resources res(DeviceRequest::kCpu, 1, 0, comm::MakeSingleProcess());
  std::vector<double> nan_matrix(static_cast<size_t>(d * d), std::nan(""));
  EXPECT_THROW(SymmetricEigen(res, nan_matrix.data(), d), UserError);
}

TEST(SymEigen, InvalidSizeIsAnInternalError) {
  double x = 1.0;
  EXPECT_THROW(SymmetricEigenCpu(&x, 0), InternalError);
  EXPECT_THROW(SymmetricEigenCpu(nullptr, 3), InternalError);
}

TEST(SymEigen, DispatchOnCpuResourcesIsTheCpuTwin) {
  Resources res(DeviceRequest::kCpu, 2, 0, comm::MakeSingleProcess());
  for (int64_t d : {int64_t{1}, int64_t{50}, kSymEigenGpuMinDim, kSymEigenGpuMaxDim + 1})
    EXPECT_EQ(SymmetricEigenDevice(res, d), Device::kCpu) << d;
  const int64_t d = 50;
  std::vector<double> w(static_cast<size_t>(d));
  for (int64_t j = 0; j < d; ++j) w[j] = std::sin(1.0 + j);
  const std::vector<double> a = Compose(RandomOrthogonal(d, 9), w);
  const SymEigenResult via = SymmetricEigen(res, a.data(), d), direct = SymmetricEigenCpu(a.data(), d);
  EXPECT_EQ(via.values, direct.values);
  EXPECT_EQ(via.vectors, direct.vectors);
}

}  // namespace
}  // namespace mlforge::kernels

namespace mlforge::kernels {
namespace {

TEST(SymEigen, TopKIsTheLastKOfTheFullDecomposition) {
  // PCA asks for num_components pairs only (dsyevr's index range with OpenBLAS; a slice of the
  // full decomposition otherwise): same values, same vectors up to sign.
  const int64_t d = 60, k = 7;
  std::vector<double> w(static_cast<size_t>(d));
  for (int64_t j = 0; j < d; ++j) w[j] = 1.0 + 0.5 * j * j;  // distinct, gaps >= 0.5
  const std::vector<double> a = Compose(RandomOrthogonal(d, 9), w);
  const SymEigenResult all = SymmetricEigenCpu(a.data(), d);
  const SymEigenResult top = SymmetricEigenCpu(a.data(), d, k, 2);
  ASSERT_EQ(top.values.size(), static_cast<size_t>(k));
  ASSERT_EQ(top.vectors.size(), static_cast<size_t>(d * k));
  for (int64_t j = 0; j < k; ++j) {
    EXPECT_NEAR(top.values[j], all.values[d - k + j], 1e-12 * all.values.back()) << j;
    EXPECT_NEAR(top.values[j], w[d - k + j], 1e-10 * w.back()) << j;
    double dot = 0;
    for (int64_t i = 0; i < d; ++i) dot += top.vectors[i * k + j] * all.vectors[i * d + (d - k + j)];
    EXPECT_NEAR(std::abs(dot), 1.0, 1e-10) << j;
  }
  const SymEigenResult kept = KeepTop(all, d, k);
  EXPECT_EQ(kept.values, std::vector<double>(all.values.end() - k, all.values.end()));
}

}  // namespace
}  // namespace mlforge::kernels
