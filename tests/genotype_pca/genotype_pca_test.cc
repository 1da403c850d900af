// Genotype PCA (algos/genotype_pca): against a float64 reference computed here from the same
// genotypes (plink2's definition: z = (g - 2p) / sqrt(2p(1-p)), missing -> 0, monomorphic -> 0,
// K = Z Z^T / M with M counting monomorphic variants), exact and --approx, one file or several,
// VCF or BCF, in RAM or spilled; projection of the training samples, of a subset and of a file with
// REF and ALT swapped; and the named errors. The comparison with plink2 itself is the ctest
// genotype_pca_vs_plink2 (tests/genotype_pca/plink2_compare.py).
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "algos/genotype_pca/genotype_pca.h"
#include "comm/communicator.h"
#include "core/error.h"
#include "core/resources.h"
#include "tests/testutil.h"

namespace mlforge::algos::genotype_pca {
namespace {

using test::TempDir;
using test::WriteFile;

// A cohort: `pops` populations with Balding-Nichols frequencies, some monomorphic variants, some
// missing calls, and records every rule skips (multi-allelic, indel, symbolic). g: samples x kept
// variants (255 = missing), in file order of the kept records.
struct Cohort {
  int64_t n = 0, m = 0;
  std::vector<std::string> ids;
  std::vector<std::string> records;  // VCF lines
  std::vector<uint8_t> g;            // n x m
};

Cohort MakeCohort(int64_t n, int64_t m, int pops, double missing_rate, uint64_t seed, bool phased = false) {
  Cohort c;
  c.n = n;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  for (int64_t i = 0; i < n; ++i) c.ids.push_back(fmt::format("S{:04d}", i));
  std::vector<std::vector<uint8_t>> cols;
  int64_t pos = 100;
  for (int64_t j = 0; j < m; ++j) {
    pos += 10;
    if (j % 37 == 5) {  // records the rules skip
      std::string r = fmt::format("1\t{}\t.\tA\tG,T\t.\tPASS\t.\tGT", pos);
      for (int64_t i = 0; i < n; ++i) r += "\t0/1";
      c.records.push_back(r);
      pos += 10;
      r = fmt::format("1\t{}\t.\tAT\tA\t.\tPASS\t.\tGT", pos);
      for (int64_t i = 0; i < n; ++i) r += "\t0/1";
      c.records.push_back(r);
      pos += 10;
    }
    const bool mono = j % 23 == 7;
    const double p0 = 0.05 + 0.9 * u(rng);
    std::vector<double> pp(static_cast<size_t>(pops));
    for (auto& x : pp) x = std::clamp(p0 + 0.25 * (u(rng) - 0.5), 0.01, 0.99);
    std::vector<uint8_t> col(static_cast<size_t>(n));
    std::string r = fmt::format("{}\t{}\tv{}\tC\tT\t.\tPASS\t.\tGT", j < m / 2 ? "1" : "2", pos, j);
    for (int64_t i = 0; i < n; ++i) {
      const double p = pp[static_cast<size_t>(i % pops)];
      int a = mono ? 0 : (u(rng) < p), b = mono ? 0 : (u(rng) < p);
      uint8_t d = static_cast<uint8_t>(a + b);
      std::string call = fmt::format("{}{}{}", a, phased ? '|' : '/', b);
      if (!mono && u(rng) < missing_rate) {
        d = 255;
        call = "./.";
      }
      col[static_cast<size_t>(i)] = d;
      r += "\t" + call;
    }
    c.records.push_back(r);
    cols.push_back(col);
  }
  c.m = m;
  c.g.resize(static_cast<size_t>(n * m));
  for (int64_t j = 0; j < m; ++j)
    for (int64_t i = 0; i < n; ++i) c.g[static_cast<size_t>(i * m + j)] = cols[static_cast<size_t>(j)][static_cast<size_t>(i)];
  return c;
}

std::string VcfText(const Cohort& c, size_t first, size_t last) {
  std::string s = "##fileformat=VCFv4.2\n##contig=<ID=1>\n##contig=<ID=2>\n"
                  "##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">\n"
                  "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT";
  for (const auto& id : c.ids) s += "\t" + id;
  s += "\n";
  for (size_t r = first; r < last && r < c.records.size(); ++r) s += c.records[r] + "\n";
  return s;
}

// The float64 reference: top-k eigenpairs of Z Z^T / M, descending.
struct Reference {
  Eigen::VectorXd values;
  Eigen::MatrixXd vectors;  // n x k
};
Reference ReferencePca(const Cohort& c, int k) {
  Eigen::MatrixXd z = Eigen::MatrixXd::Zero(c.n, c.m);
  for (int64_t j = 0; j < c.m; ++j) {
    double sum = 0;
    int64_t called = 0;
    for (int64_t i = 0; i < c.n; ++i) {
      const uint8_t d = c.g[static_cast<size_t>(i * c.m + j)];
      if (d != 255) sum += d, ++called;
    }
    const double p = sum / (2.0 * called);
    if (p <= 0 || p >= 1) continue;
    const double s = 1 / std::sqrt(2 * p * (1 - p));
    for (int64_t i = 0; i < c.n; ++i) {
      const uint8_t d = c.g[static_cast<size_t>(i * c.m + j)];
      if (d != 255) z(i, j) = (d - 2 * p) * s;
    }
  }
  Eigen::MatrixXd kmat = z * z.transpose() / static_cast<double>(c.m);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(kmat);
  Reference r;
  r.values.resize(k);
  r.vectors.resize(c.n, k);
  for (int c2 = 0; c2 < k; ++c2) {
    r.values(c2) = es.eigenvalues()(c.n - 1 - c2);
    r.vectors.col(c2) = es.eigenvectors().col(c.n - 1 - c2);
  }
  return r;
}

double AbsCorr(const Eigen::VectorXd& a, const Eigen::VectorXd& b) {
  const Eigen::VectorXd x = a.array() - a.mean(), y = b.array() - b.mean();
  return std::abs(x.dot(y)) / (x.norm() * y.norm());
}

Eigen::VectorXd Column(const std::vector<double>& rowmajor, int64_t n, int64_t k, int64_t c) {
  Eigen::VectorXd v(n);
  for (int64_t i = 0; i < n; ++i) v(i) = rowmajor[static_cast<size_t>(i * k + c)];
  return v;
}

Resources Cpu(int threads = 2) { return Resources(DeviceRequest::kCpu, threads, 0, comm::MakeSingleProcess()); }

template <typename Fn>
void ExpectUserError(Fn fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no UserError";
  } catch (const UserError& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " | " << p;
  }
}

void ExpectMatchesReference(const Result& r, const Reference& ref, double value_rel, double min_corr, int check_k) {
  const int64_t k = static_cast<int64_t>(r.eigenvalues.size());
  for (int c = 0; c < check_k; ++c) {
    EXPECT_NEAR(r.eigenvalues[static_cast<size_t>(c)], ref.values(c), value_rel * ref.values(c)) << "PC" << c + 1;
    EXPECT_GE(AbsCorr(Column(r.eigenvectors, r.samples, k, c), ref.vectors.col(c)), min_corr) << "PC" << c + 1;
  }
}

TEST(GenotypePca, ExactMatchesFloat64ReferenceWithMissingAndMonomorphic) {
  TempDir tmp;
  Cohort c = MakeCohort(90, 700, 3, 0.03, 1);
  WriteFile(tmp / "a.vcf", VcfText(c, 0, c.records.size()));
  Resources res = Cpu();
  Options o;
  o.pcs = 5;
  Result r = genotype_pca::Run({tmp / "a.vcf"}, o, res);
  EXPECT_EQ(r.samples, 90);
  EXPECT_EQ(r.variants, 700);
  EXPECT_EQ(r.monomorphic, 31);  // j % 23 == 7 for j < 700
  EXPECT_GT(r.stats.imputed_cells, 0);
  EXPECT_EQ(r.stats.skipped_multiallelic, r.stats.skipped_indel);
  EXPECT_GT(r.stats.skipped_multiallelic, 0);
  Reference ref = ReferencePca(c, 5);
  // 3 populations: 2 clear PCs; the rest are noise with small gaps, compared by value only.
  ExpectMatchesReference(r, ref, 1e-5, 0.99999, 2);
  for (int k = 2; k < 5; ++k) EXPECT_NEAR(r.eigenvalues[static_cast<size_t>(k)], ref.values(k), 1e-5 * ref.values(k));
  // Unit-norm eigenvectors, descending eigenvalues.
  for (int k = 0; k < 5; ++k) EXPECT_NEAR(Column(r.eigenvectors, 90, 5, k).norm(), 1.0, 1e-9);
  for (int k = 1; k < 5; ++k) EXPECT_GE(r.eigenvalues[static_cast<size_t>(k - 1)], r.eigenvalues[static_cast<size_t>(k)]);
}

TEST(GenotypePca, ApproxMatchesExactOnTopComponents) {
  TempDir tmp;
  Cohort c = MakeCohort(200, 1500, 5, 0.01, 2);
  WriteFile(tmp / "a.vcf", VcfText(c, 0, c.records.size()));
  Resources res = Cpu();
  Options o;
  o.pcs = 4;
  o.approx = true;
  Result r = genotype_pca::Run({tmp / "a.vcf"}, o, res);
  EXPECT_TRUE(r.approx);
  Reference ref = ReferencePca(c, 4);
  ExpectMatchesReference(r, ref, 1e-3, 0.999, 4);
}

TEST(GenotypePca, SplitFilesBcfAndSpilledStoreGiveTheSameAnswer) {
  TempDir tmp;
  Cohort c = MakeCohort(61, 400, 2, 0.02, 3, /*phased=*/true);
  WriteFile(tmp / "all.vcf", VcfText(c, 0, c.records.size()));
  const size_t half = c.records.size() / 2;
  WriteFile(tmp / "p1.vcf", VcfText(c, 0, half));
  WriteFile(tmp / "p2.vcf", VcfText(c, half, c.records.size()));
  test::WriteBcfFromVcf(tmp / "all.vcf", tmp / "all.bcf");
  Resources res = Cpu();
  Options o;
  o.pcs = 3;
  Result one = genotype_pca::Run({tmp / "all.vcf"}, o, res);
  Result two = genotype_pca::Run({tmp / "p1.vcf", tmp / "p2.vcf"}, o, res);
  Result bcf = genotype_pca::Run({tmp / "all.bcf"}, o, res);
  o.memory_budget_bytes = 0;
  Result spilled = genotype_pca::Run({tmp / "p1.vcf", tmp / "p2.vcf"}, o, res);
  EXPECT_TRUE(spilled.spilled);
  EXPECT_FALSE(one.spilled);
  for (const Result* x : {&two, &bcf, &spilled}) {
    EXPECT_EQ(x->variants, one.variants);
    // Other block boundaries (files) round the float32 products differently: 1e-6, not bits.
    for (size_t i = 0; i < one.eigenvalues.size(); ++i)
      EXPECT_NEAR(x->eigenvalues[i], one.eigenvalues[i], 1e-6 * one.eigenvalues[i]);
    for (size_t i = 0; i < one.eigenvectors.size(); ++i) EXPECT_NEAR(x->eigenvectors[i], one.eigenvectors[i], 1e-5);
    ASSERT_EQ(x->loadings.size(), one.loadings.size());
    for (size_t i = 0; i < one.loadings.size(); ++i) EXPECT_NEAR(x->loadings[i], one.loadings[i], 1e-4);
  }
}

TEST(GenotypePca, WrittenFilesAndProjectionReproduceTheEigenvectors) {
  TempDir tmp;
  Cohort c = MakeCohort(80, 600, 3, 0.02, 4);
  WriteFile(tmp / "a.vcf", VcfText(c, 0, c.records.size()));
  Resources res = Cpu();
  Options o;
  o.pcs = 4;
  Result r = genotype_pca::Run({tmp / "a.vcf"}, o, res);
  const std::string prefix = tmp / "out";
  Write(r, prefix);
  // plink2's layout.
  const std::string vec = test::ReadFile(prefix + ".eigenvec");
  EXPECT_EQ(vec.substr(0, vec.find('\n')), "#IID\tPC1\tPC2\tPC3\tPC4");
  EXPECT_EQ(vec.substr(vec.find('\n') + 1, 6), "S0000\t");
  const std::string val = test::ReadFile(prefix + ".eigenval");
  EXPECT_EQ(std::count(val.begin(), val.end(), '\n'), 4);
  EXPECT_NEAR(std::stod(val.substr(0, val.find('\n'))), r.eigenvalues[0], 1e-7 * r.eigenvalues[0]);
  const std::string ld = test::ReadFile(prefix + ".loadings.tsv");
  EXPECT_NE(ld.find("M=600"), std::string::npos);
  EXPECT_NE(ld.find("#CHROM\tPOS\tID\tREF\tALT\tALT_FREQ\tPC1"), std::string::npos);

  // The training samples project onto their own eigenvectors.
  ProjectResult p = Project(prefix, {tmp / "a.vcf"}, ProjectOptions{});
  EXPECT_EQ(p.matched, 600);
  EXPECT_EQ(p.flipped, 0);
  ASSERT_EQ(p.scores.size(), r.eigenvectors.size());
  for (size_t i = 0; i < p.scores.size(); ++i) EXPECT_NEAR(p.scores[i], r.eigenvectors[i], 2e-6) << i;

  // A subset of the samples, with REF and ALT swapped (calls mirrored): the same scores.
  Cohort sub;
  sub.ids = {c.ids[3], c.ids[10], c.ids[42]};
  for (const std::string& line : c.records) {
    std::vector<std::string> f;
    size_t s0 = 0;
    for (;;) {
      size_t t = line.find('\t', s0);
      f.push_back(line.substr(s0, t == std::string::npos ? std::string::npos : t - s0));
      if (t == std::string::npos) break;
      s0 = t + 1;
    }
    std::string rline = fmt::format("{}\t{}\t{}\t{}\t{}\t.\tPASS\t.\tGT", f[0], f[1], f[2], f[4], f[3]);
    for (int idx : {3, 10, 42}) {
      std::string call = f[9 + static_cast<size_t>(idx)];
      for (char& ch : call) {
        if (ch == '0') ch = '1';
        else if (ch == '1') ch = '0';
      }
      rline += "\t" + call;
    }
    sub.records.push_back(rline);
  }
  WriteFile(tmp / "sub.vcf", VcfText(sub, 0, sub.records.size()));
  ProjectResult q = Project(prefix, {tmp / "sub.vcf"}, ProjectOptions{});
  EXPECT_EQ(q.samples, 3);
  EXPECT_EQ(q.flipped, 600);
  int row = 0;
  for (int idx : {3, 10, 42}) {
    for (int k = 0; k < 4; ++k)
      EXPECT_NEAR(q.scores[static_cast<size_t>(row * 4 + k)], r.eigenvectors[static_cast<size_t>(idx * 4 + k)], 2e-6);
    ++row;
  }
  WriteProjection(q, tmp / "proj");
  EXPECT_EQ(test::ReadFile(tmp / "proj.eigenvec").substr(0, 5), "#IID\t");

  ExpectUserError([&] { Project(tmp / "absent", {tmp / "a.vcf"}, ProjectOptions{}); }, {"absent.eigenval", "--model"});
}

TEST(GenotypePca, BadInputsNameTheProblem) {
  TempDir tmp;
  Resources res = Cpu();
  Cohort c = MakeCohort(20, 50, 2, 0.0, 5);
  WriteFile(tmp / "a.vcf", VcfText(c, 0, c.records.size()));
  // Sample mismatch across files.
  Cohort d = c;
  std::swap(d.ids[1], d.ids[2]);
  WriteFile(tmp / "swapped.vcf", VcfText(d, 0, d.records.size()));
  ExpectUserError([&] { genotype_pca::Run({tmp / "a.vcf", tmp / "swapped.vcf"}, Options{}, res); },
                  {"swapped.vcf", "sample 1", "same order"});
  // An empty VCF (header, no records).
  WriteFile(tmp / "empty.vcf", VcfText(c, 0, 0));
  ExpectUserError([&] { genotype_pca::Run({tmp / "empty.vcf"}, Options{}, res); }, {"no variant", "passed the filters"});
  // Haploid calls: the variant is skipped and counted; only haploid variants: nothing left.
  std::string hap = fmt::format("1\t5\t.\tC\tT\t.\tPASS\t.\tGT");
  for (int i = 0; i < 20; ++i) hap += i % 2 ? "\t1" : "\t0";
  Cohort h = c;
  h.records = {hap};
  WriteFile(tmp / "haploid.vcf", VcfText(h, 0, 1));
  ExpectUserError([&] { genotype_pca::Run({tmp / "haploid.vcf"}, Options{}, res); }, {"non-diploid 1"});
  h.records = c.records;
  h.records.insert(h.records.begin(), hap);
  WriteFile(tmp / "some_haploid.vcf", VcfText(h, 0, h.records.size()));
  Options o;
  o.pcs = 2;
  Result r = genotype_pca::Run({tmp / "some_haploid.vcf"}, o, res);
  EXPECT_EQ(r.stats.skipped_non_diploid, 1);
  EXPECT_EQ(r.variants, 50);
  // Options.
  o.pcs = 20;
  ExpectUserError([&] { genotype_pca::Run({tmp / "a.vcf"}, o, res); }, {"--pcs = 20", "20 samples"});
  o = Options{};
  o.approx_iterations = 0;
  ExpectUserError([&] { genotype_pca::Run({tmp / "a.vcf"}, o, res); }, {"--approx-iterations"});
  o = Options{};
  o.vcf.min_maf = 0.7;
  ExpectUserError([&] { genotype_pca::Run({tmp / "a.vcf"}, o, res); }, {"min_maf"});
  ExpectUserError([&] { genotype_pca::Run({}, Options{}, res); }, {"no VCF/BCF input"});
  ExpectUserError([&] { genotype_pca::Run({tmp / "absent.vcf"}, Options{}, res); }, {"absent.vcf", "cannot open"});
  // A malformed genotype names the file, the site and the sample.
  Cohort bad = c;
  bad.records[3].replace(bad.records[3].rfind('\t') + 1, std::string::npos, "0|x");
  WriteFile(tmp / "bad.vcf", VcfText(bad, 0, bad.records.size()));
  ExpectUserError([&] { genotype_pca::Run({tmp / "bad.vcf"}, Options{}, res); }, {"bad.vcf", "S0019", "malformed GT"});
  // Too few sample columns.
  Cohort shortc = c;
  shortc.records[2] = shortc.records[2].substr(0, shortc.records[2].rfind('\t'));
  WriteFile(tmp / "short.vcf", VcfText(shortc, 0, shortc.records.size()));
  ExpectUserError([&] { genotype_pca::Run({tmp / "short.vcf"}, Options{}, res); }, {"short.vcf", "19 sample columns", "lists 20"});
  // One sample.
  Cohort one = MakeCohort(1, 10, 1, 0.0, 6);
  WriteFile(tmp / "one.vcf", VcfText(one, 0, one.records.size()));
  ExpectUserError([&] { genotype_pca::Run({tmp / "one.vcf"}, Options{}, res); }, {"at least 2 samples"});
}

}  // namespace
}  // namespace mlforge::algos::genotype_pca
