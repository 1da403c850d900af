// The cuSOLVER eigendecomposition (SymmetricEigenGpu) against the CPU twin (itself checked against
// known decompositions in sym_eigen_test.cc), and the dispatch on a GPU Resources. Skips visibly
// without a usable GPU. Tolerances: eigenvalues within 1e-10 of the largest |eigenvalue| (both are
// backward stable: ~d eps ||A|| apart); eigenvectors |cos| >= 1 - 1e-9 where the eigenvalue is
// separated from its neighbours by >= 1e-6 of the largest (the angle is ~d eps ||A|| / gap);
// every result also decomposes A (residual, orthonormality), which covers repeated eigenvalues.
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
#include "kernels/sym_eigen.h"
#include "tests/testutil.h"

namespace mlforge::kernels {
namespace {

using RowMajorD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Q diag(w) Q^T with a random orthogonal Q, row-major, exactly symmetric.
std::vector<double> KnownSpectrum(const std::vector<double>& w, uint64_t seed) {
  const int64_t d = static_cast<int64_t>(w.size());
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd;
  Eigen::MatrixXd g(d, d);
  for (int64_t j = 0; j < d; ++j)
    for (int64_t i = 0; i < d; ++i) g(i, j) = nd(rng);
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
  const Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(d, d);
  const Eigen::Map<const Eigen::VectorXd> wv(w.data(), d);
  RowMajorD a = q * wv.asDiagonal() * q.transpose();
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < i; ++j) a(i, j) = a(j, i);
  return std::vector<double>(a.data(), a.data() + d * d);
}

// A Gaussian (Wigner) symmetric matrix: a continuous spectrum with no structure to help either side.
std::vector<double> Wigner(int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd;
  std::vector<double> a(static_cast<size_t>(d * d));
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = i; j < d; ++j) a[i * d + j] = a[j * d + i] = nd(rng);
  return a;
}

void ExpectDecomposes(const std::vector<double>& a, const SymEigenResult& r, int64_t d, const char* what) {
  SCOPED_TRACE(what);
  ASSERT_EQ(r.values.size(), static_cast<size_t>(d));
  ASSERT_EQ(r.vectors.size(), static_cast<size_t>(d * d));
  EXPECT_TRUE(std::is_sorted(r.values.begin(), r.values.end()));
  const Eigen::Map<const RowMajorD> am(a.data(), d, d), v(r.vectors.data(), d, d);
  const Eigen::Map<const Eigen::VectorXd> w(r.values.data(), d);
  const double norm = std::max(std::abs(r.values.front()), std::abs(r.values.back()));
  EXPECT_LE((am * v - v * w.asDiagonal()).cwiseAbs().maxCoeff(), 1e-12 * d * std::max(norm, 1e-300));
  EXPECT_LE((v.transpose() * v - Eigen::MatrixXd::Identity(d, d)).cwiseAbs().maxCoeff(), 1e-12 * d);
}

void ExpectGpuMatchesCpu(const std::vector<double>& a, int64_t d, const SymEigenResult& g,
                         const SymEigenResult& c) {
  ExpectDecomposes(a, g, d, "gpu");
  ExpectDecomposes(a, c, d, "cpu");
  const double norm = std::max(std::abs(c.values.front()), std::abs(c.values.back()));
  int compared = 0;
  for (int64_t j = 0; j < d; ++j) {
    ASSERT_NEAR(g.values[j], c.values[j], 1e-10 * norm) << "eigenvalue " << j;
    double gap = std::numeric_limits<double>::infinity();
    if (j > 0) gap = std::min(gap, c.values[j] - c.values[j - 1]);
    if (j + 1 < d) gap = std::min(gap, c.values[j + 1] - c.values[j]);
    if (gap < 1e-6 * norm) continue;
    double dot = 0;
    for (int64_t i = 0; i < d; ++i) dot += g.vectors[i * d + j] * c.vectors[i * d + j];
    EXPECT_GE(std::abs(dot), 1.0 - 1e-9)
        << "eigenvector " << j << " (eigenvalue " << c.values[j] << ", gap " << gap << ")";
    ++compared;
  }
  EXPECT_GT(compared, 0);
}

class SymEigenGpu : public ::testing::TestWithParam<int64_t> {};

TEST_P(SymEigenGpu, MatchesCpuOnKnownAndRandomSpectra) {
  MLF_REQUIRE_GPU();
  const int64_t d = GetParam();
  Resources res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  std::vector<double> w(static_cast<size_t>(d));
  for (int64_t j = 0; j < d; ++j) w[j] = (j % 2 ? -0.5 : 1.0) * (1.0 + j) + 1e3;  // distinct, gaps >= 1
  for (const auto& [name, a] :
       {std::make_pair("known", KnownSpectrum(w, 10 + d)), std::make_pair("wigner", Wigner(d, d))}) {
    SCOPED_TRACE(name);
    ExpectGpuMatchesCpu(a, d, SymmetricEigenGpu(res.cuda(), a.data(), d), SymmetricEigenCpu(a.data(), d));
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, SymEigenGpu, ::testing::Values(1, 5, 300, 1500));

TEST(SymEigenGpuMisc, RepeatedEigenvaluesAndRankDeficiency) {
  MLF_REQUIRE_GPU();
  Resources res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  std::vector<double> w;
  w.insert(w.end(), 100, 4.0);
  w.insert(w.end(), 50, 0.0);
  w.insert(w.end(), 7, -1.0);
  const int64_t d = static_cast<int64_t>(w.size());
  const std::vector<double> a = KnownSpectrum(w, 3);
  const SymEigenResult g = SymmetricEigenGpu(res.cuda(), a.data(), d);
  ExpectDecomposes(a, g, d, "gpu");
  std::sort(w.begin(), w.end());
  for (int64_t j = 0; j < d; ++j) EXPECT_NEAR(g.values[j], w[j], 1e-12 * 4.0 * d) << j;
}

TEST(SymEigenGpuMisc, ReadsOnlyTheUpperTriangleAndRejectsNonFinite) {
  MLF_REQUIRE_GPU();
  Resources res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  const int64_t d = 64;
  const std::vector<double> a = Wigner(d, 77);
  std::vector<double> upper = a;
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < i; ++j) upper[i * d + j] = std::nan("");
  const SymEigenResult full = SymmetricEigenGpu(res.cuda(), a.data(), d);
  const SymEigenResult tri = SymmetricEigenGpu(res.cuda(), upper.data(), d);
  for (int64_t j = 0; j < d; ++j) EXPECT_NEAR(full.values[j], tri.values[j], 1e-12 * d) << j;
  std::vector<double> bad = a;
  bad[3 * d + 10] = std::numeric_limits<double>::infinity();
  EXPECT_THROW(SymmetricEigenGpu(res.cuda(), bad.data(), d), UserError);
  // The handle and the stream are still usable after the error.
  ExpectDecomposes(a, SymmetricEigenGpu(res.cuda(), a.data(), d), d, "after error");
}

TEST(SymEigenGpuMisc, DispatchUsesTheGpuFromTheThreshold) {
  MLF_REQUIRE_GPU();
  Resources res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  EXPECT_EQ(SymmetricEigenDevice(res, kSymEigenGpuMinDim - 1), Device::kCpu);
  EXPECT_EQ(SymmetricEigenDevice(res, kSymEigenGpuMinDim), Device::kGpu);
  EXPECT_EQ(SymmetricEigenDevice(res, kSymEigenGpuMaxDim), Device::kGpu);
  EXPECT_EQ(SymmetricEigenDevice(res, kSymEigenGpuMaxDim + 1), Device::kCpu);
  const int64_t d = kSymEigenGpuMinDim;
  const std::vector<double> a = Wigner(d, 5);
  const SymEigenResult via = SymmetricEigen(res, a.data(), d);
  ExpectDecomposes(a, via, d, "dispatch");
}

}  // namespace
}  // namespace mlforge::kernels
