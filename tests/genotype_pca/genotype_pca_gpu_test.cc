// Genotype PCA end to end on the GPU (`genotype pca --device gpu`): the relationship matrix from
// kernels/grm_accumulate.cu and, for 1024 <= samples, the cuSOLVER eigensolver, against the same run
// on the CPU. A cohort of 1100 samples in 4 populations (so both GPU paths run), with missing calls
// and monomorphic variants, both missing-call treatments. Tolerances: eigenvalues 1e-6 relative
// (float32 SSYRK on both sides, float64 totals), |correlation| >= 0.99999 for the 3 population PCs
// (clear eigengaps), loadings within 1e-4 of their largest magnitude. Skips visibly without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "algos/genotype_pca/genotype_pca.h"
#include "comm/communicator.h"
#include "core/resources.h"
#include "tests/testutil.h"

namespace mlforge::algos::genotype_pca {
namespace {

std::string Cohort(int64_t n, int64_t m, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::string s = "##fileformat=VCFv4.2\n##contig=<ID=1>\n##FORMAT=<ID=GT,Number=1,Type=String,Description=\"GT\">\n"
                  "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT";
  for (int64_t i = 0; i < n; ++i) s += "\tI" + std::to_string(i);
  s += "\n";
  for (int64_t j = 0; j < m; ++j) {
    const double p0 = 0.05 + 0.9 * u(rng);
    double pp[4];
    for (double& x : pp) x = std::clamp(p0 + 0.3 * (u(rng) - 0.5), 0.01, 0.99);
    s += "1\t" + std::to_string(100 + 10 * j) + "\t.\tC\tT\t.\tPASS\t.\tGT";
    for (int64_t i = 0; i < n; ++i) {
      if (j % 31 == 4) {
        s += "\t0/0";  // monomorphic
      } else if (u(rng) < 0.01) {
        s += "\t./.";
      } else {
        const double p = pp[i % 4];
        s += std::string("\t") + (u(rng) < p ? "1" : "0") + "/" + (u(rng) < p ? "1" : "0");
      }
    }
    s += "\n";
  }
  return s;
}

double AbsCorr(const std::vector<double>& a, const std::vector<double>& b, int64_t n, int64_t k, int64_t c) {
  double ma = 0, mb = 0;
  for (int64_t i = 0; i < n; ++i) ma += a[i * k + c], mb += b[i * k + c];
  ma /= n, mb /= n;
  double sab = 0, saa = 0, sbb = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = a[i * k + c] - ma, y = b[i * k + c] - mb;
    sab += x * y, saa += x * x, sbb += y * y;
  }
  return std::abs(sab) / std::sqrt(saa * sbb);
}

TEST(GenotypePcaGpu, MatchesTheCpuRun) {
  MLF_REQUIRE_GPU();
  test::TempDir tmp;
  test::WriteFile(tmp / "c.vcf", Cohort(1100, 1500, 11));
  for (Missing missing : {Missing::kMean, Missing::kPairwise}) {
    SCOPED_TRACE(missing == Missing::kMean ? "mean" : "pairwise");
    Options o;
    o.pcs = 5;
    o.missing = missing;
    Resources cpu(DeviceRequest::kCpu, 2, 0, comm::MakeSingleProcess());
    Resources gpu_res(DeviceRequest::kGpu, 2, 0, comm::MakeSingleProcess());
    const Result a = genotype_pca::Run({tmp / "c.vcf"}, o, cpu);
    const Result b = genotype_pca::Run({tmp / "c.vcf"}, o, gpu_res);
    EXPECT_EQ(b.device, "gpu");
    ASSERT_EQ(a.eigenvalues.size(), b.eigenvalues.size());
    for (size_t c = 0; c < a.eigenvalues.size(); ++c)
      EXPECT_NEAR(b.eigenvalues[c], a.eigenvalues[c], 1e-6 * a.eigenvalues[c]) << "PC" << c + 1;
    for (int64_t c = 0; c < 3; ++c) EXPECT_GE(AbsCorr(a.eigenvectors, b.eigenvectors, 1100, 5, c), 0.99999) << c;
    double scale = 0;
    for (double x : a.loadings) scale = std::max(scale, std::abs(x));
    ASSERT_EQ(a.loadings.size(), b.loadings.size());
    // Loadings of the 3 clear PCs (signs are normalised the same way on both devices).
    for (size_t j = 0; j < a.loadings.size(); ++j) {
      if (static_cast<int64_t>(j % 5) < 3) {
        EXPECT_NEAR(b.loadings[j], a.loadings[j], 1e-4 * scale) << j;
      }
    }
  }
}

}  // namespace
}  // namespace mlforge::algos::genotype_pca
