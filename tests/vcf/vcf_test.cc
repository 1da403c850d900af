// VCF/BCF -> dosage matrix (io/vcf.h): golden values of the 1000 Genomes subset in
// ../shared/data/1000genomes (README.md and summary.json there), and small hand-written VCFs for
// every rule (allele classes, ploidy, missing calls, filters, phasing, BGZF, BCF, errors).
#include "io/vcf.h"

#include <gtest/gtest.h>
#include <htslib/bgzf.h>
#include <htslib/hts.h>
#include <htslib/vcf.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/testutil.h"

namespace mlforge::io {
namespace {

using test::SharedData;
using test::TempDir;
using test::WriteFile;

// ---------------------------------------------------------------------------------------------
// Helpers.

// SHA-256 (FIPS 180-4), for the golden dosage checksum in summary.json.
std::string Sha256Hex(const uint8_t* data, size_t len) {
  static const uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
      0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
      0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
      0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
      0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
      0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
      0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  // Message + 0x80 + zero padding + 64-bit big-endian bit length, in 64-byte blocks.
  const uint64_t bits = static_cast<uint64_t>(len) * 8;
  const size_t total = ((len + 8) / 64 + 1) * 64;
  std::array<uint8_t, 64> block;
  for (size_t off = 0; off < total; off += 64) {
    for (size_t i = 0; i < 64; ++i) {
      const size_t p = off + i;
      uint8_t b = 0;
      if (p < len) {
        b = data[p];
      } else if (p == len) {
        b = 0x80;
      } else if (p >= total - 8) {
        b = static_cast<uint8_t>(bits >> (8 * (total - 1 - p)));
      }
      block[i] = b;
    }
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = uint32_t{block[4 * i]} << 24 | uint32_t{block[4 * i + 1]} << 16 | uint32_t{block[4 * i + 2]} << 8 |
             uint32_t{block[4 * i + 3]};
    for (int i = 16; i < 64; ++i) {
      uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  }
  std::string hex;
  for (uint32_t x : h) hex += fmt::format("{:08x}", x);
  return hex;
}

std::vector<std::string> Split(const std::string& line, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream ss(line);
  while (std::getline(ss, cur, sep)) out.push_back(cur);
  return out;
}

// Lines of a gzip text file (zlib; the golden tsv is plain gzip).
std::vector<std::string> GzLines(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) throw std::runtime_error("cannot open " + path);
  std::vector<std::string> lines;
  std::string cur;
  char buf[1 << 16];
  while (gzgets(f, buf, sizeof(buf)) != nullptr) {
    cur += buf;
    if (!cur.empty() && cur.back() == '\n') {
      cur.pop_back();
      lines.push_back(cur);
      cur.clear();
    }
  }
  if (!cur.empty()) lines.push_back(cur);
  gzclose(f);
  return lines;
}

std::vector<std::string> AutosomeFiles() {
  std::vector<std::string> files;
  for (int c = 1; c <= 22; ++c)
    files.push_back(SharedData(fmt::format("1000genomes/1KG_phase3_subset_chr{}.vcf.gz", c)));
  return files;
}

// A RowWriter that keeps what it receives, so ConvertVcf is tested without a file format.
class CaptureWriter : public RowWriter {
 public:
  void Write(const HostBatch& b) override {
    EXPECT_EQ(b.layout, Layout::kDense);
    EXPECT_FALSE(b.has_labels());
    EXPECT_EQ(b.first_row, rows_);
    cols = b.cols;
    values.insert(values.end(), b.values.begin(), b.values.end());
    rows_ += b.rows;
    ++batches;
  }
  void Close() override { closed = true; }
  int64_t rows_written() const override { return rows_; }
  std::vector<float> values;
  int64_t cols = 0;
  int batches = 0;
  bool closed = false;

 private:
  int64_t rows_ = 0;
};

// A small VCF: GT (and DP, to have a record without GT) declared; contigs 1 and X.
std::string SmallVcf(const std::vector<std::string>& samples, const std::vector<std::string>& records) {
  std::string s =
      "##fileformat=VCFv4.2\n##contig=<ID=1,length=1000000>\n##contig=<ID=X,length=1000000>\n"
      "##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">\n"
      "##FORMAT=<ID=DP,Number=1,Type=Integer,Description=\"Depth\">\n"
      "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO";
  if (!samples.empty()) s += "\tFORMAT";  // a sites-only VCF has neither FORMAT nor samples
  for (const auto& x : samples) s += "\t" + x;
  s += "\n";
  for (const auto& r : records) s += r + "\n";
  return s;
}

std::string Rec(const std::string& chrom, int pos, const std::string& ref, const std::string& alt,
                const std::vector<std::string>& calls, const std::string& format = "GT") {
  std::string s = fmt::format("{}\t{}\trs{}\t{}\t{}\t50\tPASS\t.\t{}", chrom, pos, pos, ref, alt, format);
  for (const auto& c : calls) s += "\t" + c;
  return s;
}

const std::vector<std::string> kFour = {"S1", "S2", "S3", "S4"};

// Expects `fn` to throw a UserError whose message contains every string in `parts`.
template <typename Fn>
void ExpectUserError(Fn fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected a UserError mentioning '" << parts.at(0) << "'";
  } catch (const UserError& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Real data: 1000 Genomes phase 3 subset, chr1..chr22 (golden values from the data README).

struct Golden {
  nlohmann::json summary;
  std::vector<std::vector<std::string>> variants;  // variants_autosomes.tsv.gz rows, header dropped
  std::vector<std::string> sample_ids;             // samples.tsv, in VCF column order
};

const Golden& GetGolden() {
  static const Golden g = [] {
    Golden x;
    std::ifstream js(SharedData("1000genomes/summary.json"));
    x.summary = nlohmann::json::parse(js);
    auto lines = GzLines(SharedData("1000genomes/variants_autosomes.tsv.gz"));
    for (size_t i = 1; i < lines.size(); ++i) x.variants.push_back(Split(lines[i], '\t'));
    std::ifstream st(SharedData("1000genomes/samples.tsv"));
    std::string line;
    std::getline(st, line);
    while (std::getline(st, line))
      if (!line.empty()) x.sample_ids.push_back(Split(line, '\t').at(1));
    return x;
  }();
  return g;
}

// The default matrix (biallelic SNVs) of all 22 autosomes, read once for the suite.
const VcfMatrix& Autosomes() {
  static const VcfMatrix m = ReadVcfMatrix(AutosomeFiles(), VcfOptions{});
  return m;
}

bool IsSymbolic(const std::vector<std::string>& v) { return !v[4].empty() && v[4][0] == '<'; }

TEST(VcfRealData, AutosomesMatchGoldenChecksumAndCounts) {
  MLF_REQUIRE_SHARED_DATA();
  const Golden& g = GetGolden();
  const VcfMatrix& m = Autosomes();
  const VcfStats& st = m.stats;

  EXPECT_EQ(m.samples, 1126);
  EXPECT_EQ(m.samples, g.summary["n_samples"].get<int64_t>());
  EXPECT_EQ(m.sample_ids, g.sample_ids);
  EXPECT_EQ(st.files, 22);
  EXPECT_EQ(st.variants_seen, 24640);
  EXPECT_EQ(st.variants_seen, g.summary["n_variants"].get<int64_t>());
  EXPECT_EQ(m.variants, 22220);  // 22 files x 1,010 biallelic SNVs: the concatenated column count
  EXPECT_EQ(m.variants, g.summary["n_biallelic_snv"].get<int64_t>());

  // Skip reasons, from per_chromosome and the per-variant table.
  int64_t multi = 0;
  for (auto& [chrom, c] : g.summary["per_chromosome"].items()) multi += c["n_multiallelic"].get<int64_t>();
  int64_t symbolic = 0, indel = 0;
  for (const auto& v : g.variants) {
    if (v[5] != "1" || v[6] == "1") continue;
    (IsSymbolic(v) ? symbolic : indel)++;
  }
  EXPECT_EQ(multi, 496);
  EXPECT_EQ(st.skipped_multiallelic, multi);
  EXPECT_EQ(st.skipped_indel, indel);
  EXPECT_EQ(st.skipped_other_allele, symbolic);
  EXPECT_EQ(st.skipped_non_diploid, 0);
  EXPECT_EQ(st.skipped_no_genotypes + st.skipped_no_calls + st.skipped_missingness + st.skipped_maf, 0);
  EXPECT_EQ(st.imputed_cells, 0);  // autosomes: every call is phased diploid
  EXPECT_EQ(st.variants_kept + st.skipped(), st.variants_seen);

  // The golden int8 matrix is exactly our uint8 matrix (0/1/2, no missing cells).
  EXPECT_EQ(Sha256Hex(m.dosage.data(), m.dosage.size()), g.summary["dosage_int8_sha256"].get<std::string>());
  int64_t sum = 0;
  for (uint8_t d : m.dosage) sum += d;
  EXPECT_EQ(sum, g.summary["dosage_sum"].get<int64_t>());
  for (int i = 0; i < 10; ++i) {
    int64_t row = 0, col = 0;
    for (int64_t j = 0; j < m.variants; ++j) row += m.dosage[i * m.variants + j];
    for (int64_t s = 0; s < m.samples; ++s) col += m.dosage[s * m.variants + i];
    EXPECT_EQ(row, g.summary["dosage_row_sums_first10"][i].get<int64_t>()) << "row " << i;
    EXPECT_EQ(col, g.summary["dosage_col_sums_first10"][i].get<int64_t>()) << "col " << i;
  }
  // Columns are the golden SNVs in file order.
  size_t j = 0;
  for (const auto& v : g.variants) {
    if (v[6] != "1") continue;
    ASSERT_LT(j, m.variants_info.size());
    const VcfVariant& got = m.variants_info[j++];
    EXPECT_EQ(got.chrom + ":" + std::to_string(got.pos) + got.ref + got.alt, v[0] + ":" + v[1] + v[3] + v[4]);
  }
}

TEST(VcfRealData, PerVariantStatisticsWithIndels) {
  MLF_REQUIRE_SHARED_DATA();
  const Golden& g = GetGolden();
  VcfOptions opt;
  opt.keep_indels = true;
  VcfMatrix m = ReadVcfMatrix(AutosomeFiles(), opt);
  // Every biallelic sequence variant (SNV or indel) of the golden table, in order.
  std::vector<const std::vector<std::string>*> expected;
  for (const auto& v : g.variants)
    if (v[5] == "1" && !IsSymbolic(v)) expected.push_back(&v);
  ASSERT_EQ(static_cast<size_t>(m.variants), expected.size());
  EXPECT_EQ(m.variants, 22220 + 1907);  // SNVs + biallelic indels (17 symbolic alleles still skipped)
  EXPECT_EQ(m.stats.skipped_indel, 0);
  for (int64_t c = 0; c < m.variants; ++c) {
    const auto& v = *expected[static_cast<size_t>(c)];
    int64_t nonref = 0, het = 0, hom = 0;
    for (int64_t s = 0; s < m.samples; ++s) {
      uint8_t d = m.dosage[s * m.variants + c];
      nonref += d;
      het += d == 1;
      hom += d == 2;
    }
    const VcfVariant& info = m.variants_info[static_cast<size_t>(c)];
    ASSERT_EQ(info.chrom + ":" + std::to_string(info.pos) + " " + info.ref + ">" + info.alt,
              v[0] + ":" + v[1] + " " + v[3] + ">" + v[4]);
    EXPECT_EQ(info.id, v[2]);
    EXPECT_EQ(nonref, std::stoll(v[7])) << v[0] << ":" << v[1];
    EXPECT_EQ(het, std::stoll(v[8])) << v[0] << ":" << v[1];
    EXPECT_EQ(hom, std::stoll(v[9])) << v[0] << ":" << v[1];
    EXPECT_NEAR(info.af, std::stod(v[7]) / (2.0 * 1126), 1e-12);
    EXPECT_FLOAT_EQ(m.means[static_cast<size_t>(c)], static_cast<float>(std::stod(v[7]) / 1126));
  }
}

TEST(VcfRealData, MinorAlleleFrequencyFilterCounts) {
  MLF_REQUIRE_SHARED_DATA();
  const Golden& g = GetGolden();
  for (double maf : {0.05, 0.2}) {
    int64_t expected = 0;
    for (const auto& v : g.variants) {
      if (v[6] != "1") continue;
      const double af = std::stod(v[7]) / (2.0 * 1126);  // no missing calls on the autosomes
      expected += std::min(af, 1.0 - af) >= maf;
    }
    VcfOptions opt;
    opt.min_maf = maf;
    VcfMatrix m = ReadVcfMatrix(AutosomeFiles(), opt);
    EXPECT_EQ(m.variants, expected) << "min_maf " << maf;
    EXPECT_EQ(m.stats.skipped_maf, 22220 - expected) << "min_maf " << maf;
    EXPECT_GT(m.stats.skipped_maf, 0);
    if (maf == 0.05) std::printf("1000 Genomes autosomes, MAF >= 0.05: %lld SNVs kept\n", (long long)expected);
  }
}

TEST(VcfRealData, ChrXMaleHalfMissingCalls) {
  MLF_REQUIRE_SHARED_DATA();
  const Golden& g = GetGolden();
  const std::vector<std::string> x = {SharedData("1000genomes/1KG_phase3_subset_chrX.vcf.gz")};
  const auto& xs = g.summary["chrX"];
  const int64_t snvs = xs["n_biallelic_snv"].get<int64_t>();

  // Default: 0/. is haploid, so every variant with a male call outside the PARs is skipped.
  VcfMatrix hap = ReadVcfMatrix(x, VcfOptions{});
  EXPECT_EQ(hap.stats.variants_seen, xs["n_variants"].get<int64_t>());
  EXPECT_EQ(hap.stats.skipped_multiallelic, xs["n_multiallelic"].get<int64_t>());
  EXPECT_GT(hap.stats.skipped_non_diploid, 0);
  EXPECT_EQ(hap.variants + hap.stats.skipped_non_diploid, snvs);
  EXPECT_EQ(hap.stats.imputed_cells, 0);
  // GRCh37 PARs: X:60001-2699520 and X:154931044-155260560; males are diploid only there.
  for (const auto& v : hap.variants_info)
    EXPECT_TRUE(v.pos <= 2699520 || v.pos >= 154931044) << "kept non-PAR chrX variant at " << v.pos;

  // As missing: every SNV kept, male calls imputed with the mean over the called (female) samples.
  VcfOptions miss_opt;
  miss_opt.half_missing_as_missing = true;
  VcfMatrix miss = ReadVcfMatrix(x, miss_opt);
  EXPECT_EQ(miss.variants, snvs);
  EXPECT_EQ(miss.stats.skipped_non_diploid, 0);
  EXPECT_GT(miss.stats.imputed_cells, 0);
  EXPECT_LE(miss.stats.imputed_cells, 571387);  // half-missing calls in the whole file
  int64_t missing_cells = 0;
  for (int64_t c = 0; c < miss.variants; ++c) {
    int64_t called = 0, sum = 0;
    for (int64_t s = 0; s < miss.samples; ++s) {
      uint8_t d = miss.dosage[s * miss.variants + c];
      if (d == kMissingDosage) {
        ++missing_cells;
      } else {
        ++called;
        sum += d;
      }
    }
    ASSERT_GT(called, 0);
    EXPECT_FLOAT_EQ(miss.means[c], static_cast<float>(static_cast<double>(sum) / called));
  }
  EXPECT_EQ(missing_cells, miss.stats.imputed_cells);

  // Missingness filter: males are ~47 % of the samples, so max_missing 0.1 drops exactly the
  // variants the default skips as non-diploid.
  miss_opt.max_missing = 0.1;
  VcfMatrix filt = ReadVcfMatrix(x, miss_opt);
  EXPECT_EQ(filt.variants, hap.variants);
  EXPECT_EQ(filt.stats.skipped_missingness, hap.stats.skipped_non_diploid);
  EXPECT_EQ(filt.dosage, hap.dosage);
  std::printf("chrX: %lld SNVs, %lld kept by default (PARs), %lld non-diploid, %lld imputed as missing\n",
              (long long)snvs, (long long)hap.variants, (long long)hap.stats.skipped_non_diploid,
              (long long)miss.stats.imputed_cells);
}

TEST(VcfRealData, SpilledTransposeAndConvertEqualInMemory) {
  MLF_REQUIRE_SHARED_DATA();
  const VcfMatrix& ref = Autosomes();
  // A zero budget sends every tile to the temp file; odd tile width leaves a partial last tile.
  VcfOptions opt;
  opt.memory_budget_bytes = 0;
  opt.tile_variants = 997;
  opt.batch_bytes = 4 * 22220 * 100;  // 100 rows per batch: 12 batches
  CaptureWriter w;
  TempDir tmp;
  opt.write_variants = true;
  VcfStats st = ConvertVcf(AutosomeFiles(), opt, w, tmp / "geno");
  EXPECT_TRUE(st.spilled);
  EXPECT_EQ(st.rows_written, 1126);
  EXPECT_EQ(w.batches, 12);
  EXPECT_FALSE(w.closed);  // the caller owns Close()
  ASSERT_EQ(w.cols, ref.variants);
  ASSERT_EQ(w.values.size(), ref.dosage.size());
  for (size_t i = 0; i < w.values.size(); ++i)
    if (w.values[i] != static_cast<float>(ref.dosage[i])) FAIL() << "cell " << i << " differs";
  // Sidecars: sample IDs in row order, one variant line per column.
  std::string ids;
  for (const auto& s : ref.sample_ids) ids += s + "\n";
  EXPECT_EQ(test::ReadFile(tmp / "geno.samples.txt"), ids);
  auto vlines = Split(test::ReadFile(tmp / "geno.variants.tsv"), '\n');
  ASSERT_EQ(vlines.size(), static_cast<size_t>(ref.variants) + 1);
  EXPECT_EQ(vlines[0], "CHROM\tPOS\tID\tREF\tALT\tAF");
  EXPECT_EQ(vlines[2], "1\t985900\trs17160776\tC\tT\t0.0492895");  // 111 / 2252
  std::printf("%s\n", st.Report().c_str());

  VcfMatrix spilled = ReadVcfMatrix(AutosomeFiles(), opt);
  EXPECT_TRUE(spilled.stats.spilled);
  EXPECT_EQ(spilled.dosage, ref.dosage);
}

// ---------------------------------------------------------------------------------------------
// Small hand-written VCFs.

TEST(VcfSmall, AlleleClassesSkippedAndCounted) {
  TempDir tmp;
  const std::vector<std::string> calls = {"0/1", "1/1", "0/0", "0|1"};
  WriteFile(tmp / "a.vcf", SmallVcf(kFour, {
                                               Rec("1", 100, "A", "G", calls),         // SNV
                                               Rec("1", 200, "A", "G,T", {"0/1", "1/2", "2/2", "0/0"}),
                                               Rec("1", 300, "AT", "A", calls),        // deletion
                                               Rec("1", 400, "C", "CTT", calls),       // insertion
                                               Rec("1", 500, "G", "<CN0>", calls),     // symbolic
                                               Rec("1", 600, "AC", "GT", calls),       // MNP
                                               Rec("1", 700, "T", ".", {"0/0", "0/0", "0/0", "0/0"}),
                                               Rec("1", 800, "T", "*", calls),         // spanning del
                                               Rec("1", 900, "g", "c", calls),         // lower case SNV
                                           }));
  VcfMatrix m = ReadVcfMatrix({tmp / "a.vcf"}, VcfOptions{});
  EXPECT_EQ(m.stats.variants_seen, 9);
  EXPECT_EQ(m.variants, 2);
  EXPECT_EQ(m.stats.skipped_multiallelic, 1);
  EXPECT_EQ(m.stats.skipped_indel, 2);
  EXPECT_EQ(m.stats.skipped_other_allele, 4);
  EXPECT_EQ(m.variants_info[0].pos, 100);
  EXPECT_EQ(m.variants_info[1].pos, 900);
  EXPECT_EQ(m.dosage, (std::vector<uint8_t>{1, 1, 2, 2, 0, 0, 1, 1}));  // 4 samples x 2 variants

  VcfOptions keep;
  keep.keep_indels = true;
  VcfMatrix k = ReadVcfMatrix({tmp / "a.vcf"}, keep);
  EXPECT_EQ(k.variants, 4);
  EXPECT_EQ(k.stats.skipped_indel, 0);
  EXPECT_EQ(k.variants_info[1].ref, "AT");
  EXPECT_EQ(k.variants_info[1].alt, "A");
  EXPECT_EQ(k.variants_info[2].alt, "CTT");
  EXPECT_EQ(k.Value(0, 1), 1.0f);
  EXPECT_EQ(k.Value(1, 2), 2.0f);
}

TEST(VcfSmall, PhasedAndUnphasedGiveTheSameDosage) {
  TempDir tmp;
  WriteFile(tmp / "p.vcf", SmallVcf(kFour, {Rec("1", 10, "A", "C", {"0|0", "0|1", "1|0", "1|1"}),
                                            Rec("1", 20, "A", "C", {"0/0", "0/1", "1/0", "1/1"}),
                                            Rec("1", 30, "A", "C", {"0|0", "0/1", "1|0", "1/1"})}));
  VcfMatrix m = ReadVcfMatrix({tmp / "p.vcf"}, VcfOptions{});
  ASSERT_EQ(m.variants, 3);
  for (int64_t s = 0; s < 4; ++s)
    for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(m.dosage[s * 3 + c], std::vector<int>({0, 1, 1, 2})[s]);
}

TEST(VcfSmall, MissingCallsImputedWithVariantMean) {
  TempDir tmp;
  WriteFile(tmp / "m.vcf", SmallVcf(kFour, {
                                               Rec("1", 10, "A", "C", {"0/1", "1/1", "./.", "1|1"}),
                                               Rec("1", 20, "A", "C", {".", "0/0", "0/1", ".|."}),
                                               Rec("1", 30, "A", "C", {"./.", "./.", "./.", "./."}),
                                           }));
  VcfMatrix m = ReadVcfMatrix({tmp / "m.vcf"}, VcfOptions{});
  EXPECT_EQ(m.variants, 2);
  EXPECT_EQ(m.stats.skipped_no_calls, 1);
  EXPECT_EQ(m.stats.skipped_non_diploid, 0);  // '.' alone is a missing call, not a haploid one
  EXPECT_EQ(m.stats.imputed_cells, 3);
  EXPECT_FLOAT_EQ(m.means[0], 5.0f / 3);  // (1 + 2 + 2) / 3 called samples
  EXPECT_FLOAT_EQ(m.means[1], 0.5f);
  EXPECT_EQ(m.dosage[2 * 2 + 0], kMissingDosage);
  EXPECT_FLOAT_EQ(m.Value(2, 0), 5.0f / 3);
  EXPECT_FLOAT_EQ(m.Value(0, 1), 0.5f);
  EXPECT_FLOAT_EQ(m.Value(3, 1), 0.5f);
  EXPECT_NEAR(m.variants_info[0].af, 5.0 / 6, 1e-12);

  // The rows a RowWriter receives carry the mean in the imputed cells.
  CaptureWriter w;
  VcfStats st = ConvertVcf({tmp / "m.vcf"}, VcfOptions{}, w, "");
  EXPECT_EQ(st.imputed_cells, 3);
  ASSERT_EQ(w.values.size(), 8u);
  const std::vector<float> expect = {1, 0.5f, 2, 0, 5.0f / 3, 1, 2, 0.5f};
  for (size_t i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(w.values[i], expect[i]) << i;
}

TEST(VcfSmall, NonDiploidCallsSkipTheVariant) {
  TempDir tmp;
  WriteFile(tmp / "h.vcf", SmallVcf(kFour, {
                                               Rec("X", 10, "A", "C", {"0", "1", "0/1", "1|1"}),       // haploid
                                               Rec("X", 20, "A", "C", {"0/.", "1/.", "0|1", "1|1"}),   // half missing
                                               Rec("X", 30, "A", "C", {"0/0/1", "0/1", "0/0", "1/1"}), // triploid
                                               Rec("X", 40, "A", "C", {"0|0", "1|1", "0|1", "1|1"}),   // PAR-like
                                           }));
  VcfMatrix m = ReadVcfMatrix({tmp / "h.vcf"}, VcfOptions{});
  EXPECT_EQ(m.variants, 1);
  EXPECT_EQ(m.variants_info[0].pos, 40);
  EXPECT_EQ(m.stats.skipped_non_diploid, 3);

  VcfOptions opt;
  opt.half_missing_as_missing = true;
  VcfMatrix h = ReadVcfMatrix({tmp / "h.vcf"}, opt);
  EXPECT_EQ(h.variants, 2);
  EXPECT_EQ(h.stats.skipped_non_diploid, 2);  // haploid and triploid still skip
  EXPECT_EQ(h.stats.imputed_cells, 2);
  EXPECT_EQ(h.variants_info[0].pos, 20);
  EXPECT_FLOAT_EQ(h.means[0], 1.5f);  // (1 + 2) / 2 called samples
  EXPECT_FLOAT_EQ(h.Value(0, 0), 1.5f);
  EXPECT_FLOAT_EQ(h.Value(2, 0), 1.0f);
}

TEST(VcfSmall, MafAndMissingnessFiltersAtTheirBoundaries) {
  TempDir tmp;
  // af over called: v10 = 2/8 = 0.25; v20 = 6/8 -> maf 0.25; v30 = 1/8; v40: 1 of 4 missing, af 1/6.
  WriteFile(tmp / "f.vcf", SmallVcf(kFour, {
                                               Rec("1", 10, "A", "C", {"0/1", "0/0", "0/1", "0/0"}),
                                               Rec("1", 20, "A", "C", {"1/1", "1/1", "0/1", "0/1"}),
                                               Rec("1", 30, "A", "C", {"0/1", "0/0", "0/0", "0/0"}),
                                               Rec("1", 40, "A", "C", {"0/1", "0/0", "./.", "0/0"}),
                                           }));
  const std::string f = tmp / "f.vcf";
  VcfOptions opt;
  opt.min_maf = 0.25;  // kept when MAF >= min_maf
  VcfMatrix a = ReadVcfMatrix({f}, opt);
  EXPECT_EQ(a.variants, 2);
  EXPECT_EQ(a.stats.skipped_maf, 2);
  opt.min_maf = 0.16;
  EXPECT_EQ(ReadVcfMatrix({f}, opt).variants, 3);  // v40: 1/6 >= 0.16, v30: 0.125 < 0.16

  opt = VcfOptions{};
  opt.max_missing = 0.25;  // kept when missing fraction <= max_missing
  EXPECT_EQ(ReadVcfMatrix({f}, opt).variants, 4);
  opt.max_missing = 0.2;
  VcfMatrix b = ReadVcfMatrix({f}, opt);
  EXPECT_EQ(b.variants, 3);
  EXPECT_EQ(b.stats.skipped_missingness, 1);
  EXPECT_EQ(b.stats.imputed_cells, 0);

  // Missingness is tested before MAF: a variant failing both counts under missingness only.
  opt.min_maf = 0.3;
  VcfMatrix c = ReadVcfMatrix({f}, opt);
  EXPECT_EQ(c.stats.skipped_missingness, 1);
  EXPECT_EQ(c.stats.skipped_maf, 3);
  EXPECT_EQ(c.variants, 0);
  // Nothing left: ConvertVcf refuses to write an empty matrix and says why.
  CaptureWriter w;
  ExpectUserError([&] { ConvertVcf({f}, opt, w, ""); }, {"no variant", "MAF 3", "missingness 1"});
}

TEST(VcfSmall, RecordWithoutGenotypeFieldIsCounted) {
  TempDir tmp;
  WriteFile(tmp / "d.vcf", SmallVcf(kFour, {Rec("1", 10, "A", "C", {"5", "6", "7", "8"}, "DP"),
                                            Rec("1", 20, "A", "C", {"0/1", "0/0", "0/1", "0/0"})}));
  VcfMatrix m = ReadVcfMatrix({tmp / "d.vcf"}, VcfOptions{});
  EXPECT_EQ(m.variants, 1);
  EXPECT_EQ(m.stats.skipped_no_genotypes, 1);
}

TEST(VcfSmall, BgzipAndBcfReadLikePlainText) {
  TempDir tmp;
  const std::string text = SmallVcf(kFour, {Rec("1", 10, "A", "C", {"0|1", "1|1", "./.", "0/0"}),
                                            Rec("1", 20, "AT", "A", {"0|1", "1|1", "0/1", "0/0"}),
                                            Rec("1", 30, "G", "T,C", {"0|1", "1|2", "0/1", "0/0"}),
                                            Rec("X", 40, "G", "T", {"0/.", "1|1", "0/1", "0/0"}),
                                            Rec("X", 50, "G", "T", {"1/1", "1|1", "0/1", "0/0"})});
  WriteFile(tmp / "t.vcf", text);
  // BGZF via htslib's own writer.
  BGZF* bz = bgzf_open((tmp / "t.vcf.gz").c_str(), "w");
  ASSERT_NE(bz, nullptr);
  ASSERT_EQ(bgzf_write(bz, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ASSERT_EQ(bgzf_close(bz), 0);
  // BCF: re-encode the records with htslib.
  test::WriteBcfFromVcf(tmp / "t.vcf", tmp / "t.bcf");
  for (bool half_missing : {false, true}) {
    VcfOptions opt;
    opt.keep_indels = true;
    opt.half_missing_as_missing = half_missing;
    VcfMatrix plain = ReadVcfMatrix({tmp / "t.vcf"}, opt);
    EXPECT_EQ(plain.variants, half_missing ? 4 : 3);
    for (const char* name : {"t.vcf.gz", "t.bcf"}) {
      VcfMatrix other = ReadVcfMatrix({tmp / name}, opt);
      EXPECT_EQ(other.dosage, plain.dosage) << name;
      EXPECT_EQ(other.means, plain.means) << name;
      EXPECT_EQ(other.sample_ids, plain.sample_ids) << name;
      EXPECT_EQ(other.stats.skipped_multiallelic, 1) << name;
      EXPECT_EQ(other.stats.skipped_non_diploid, half_missing ? 0 : 1) << name;
      EXPECT_EQ(other.stats.imputed_cells, plain.stats.imputed_cells) << name;
    }
  }
}

// Plain gzip (not BGZF) is inflated whole with libdeflate (io/vcf_scanner.cc): one member, several
// members (what `cat a.gz b.gz` makes), CRLF line ends; a truncated or corrupt file gets htslib's
// named error through the streaming path, never a crash or a partial matrix.
TEST(VcfSmall, PlainGzipInflatedWholeReadsLikePlainText) {
  TempDir tmp;
  std::vector<std::string> recs;
  for (int i = 0; i < 300; ++i) {
    const std::vector<std::string> calls = {i % 3 ? "0|1" : "1|1", "0/0", i % 7 ? "0|0" : "./.", "1/0"};
    recs.push_back(Rec("1", 10 + i, "A", "C", calls));
  }
  recs.push_back(Rec("1", 5000, "A", "C,G", {"0/1", "0/2", "0/0", "0/0"}));
  const std::string text = SmallVcf(kFour, recs);
  WriteFile(tmp / "t.vcf", text);
  auto gzip_to = [](const std::string& path, const std::vector<std::string>& parts) {
    std::string all;
    for (const auto& part : parts) {
      // Each part its own gzip member, written by zlib.
      z_stream zs{};
      ASSERT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
      std::string out(compressBound(part.size()) + 64, '\0');
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(part.data()));
      zs.avail_in = static_cast<uInt>(part.size());
      zs.next_out = reinterpret_cast<Bytef*>(out.data());
      zs.avail_out = static_cast<uInt>(out.size());
      ASSERT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
      out.resize(zs.total_out);
      deflateEnd(&zs);
      all += out;
    }
    WriteFile(path, all);
  };
  gzip_to(tmp / "one.vcf.gz", {text});
  const size_t cut = text.find("\n1\t200\t") + 1;
  gzip_to(tmp / "two.vcf.gz", {text.substr(0, cut), text.substr(cut)});
  std::string crlf;
  for (char c : text) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  gzip_to(tmp / "crlf.vcf.gz", {crlf});
  VcfMatrix plain = ReadVcfMatrix({tmp / "t.vcf"}, VcfOptions{});
  EXPECT_EQ(plain.variants, 300);
  EXPECT_EQ(plain.stats.skipped_multiallelic, 1);
  for (const char* name : {"one.vcf.gz", "two.vcf.gz", "crlf.vcf.gz"}) {
    VcfMatrix m = ReadVcfMatrix({tmp / name}, VcfOptions{});
    EXPECT_EQ(m.dosage, plain.dosage) << name;
    EXPECT_EQ(m.means, plain.means) << name;
    EXPECT_EQ(m.sample_ids, plain.sample_ids) << name;
    EXPECT_EQ(m.stats.imputed_cells, plain.stats.imputed_cells) << name;
    EXPECT_EQ(m.stats.skipped_multiallelic, 1) << name;
  }
  // Truncated: the gzip trailer and part of the data are gone.
  const std::string whole = test::ReadFile(tmp / "one.vcf.gz");
  WriteFile(tmp / "cut.vcf.gz", whole.substr(0, whole.size() * 2 / 3));
  try {
    ReadVcfMatrix({tmp / "cut.vcf.gz"}, VcfOptions{});
    ADD_FAILURE() << "a truncated gzip VCF was read without an error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("cut.vcf.gz"), std::string::npos) << e.what();
  }
}

TEST(VcfSmall, FilesConcatenateAsColumnsAndMustShareSampleOrder) {
  TempDir tmp;
  WriteFile(tmp / "c1.vcf", SmallVcf(kFour, {Rec("1", 10, "A", "C", {"0/1", "1/1", "0/0", "0/0"})}));
  WriteFile(tmp / "c2.vcf", SmallVcf(kFour, {Rec("X", 10, "A", "C", {"1/1", "0/0", "0/1", "0/0"}),
                                             Rec("X", 20, "A", "C", {"0/0", "0/0", "0/1", "1/1"})}));
  VcfMatrix m = ReadVcfMatrix({tmp / "c1.vcf", tmp / "c2.vcf"}, VcfOptions{});
  EXPECT_EQ(m.stats.files, 2);
  EXPECT_EQ(m.variants, 3);
  EXPECT_EQ(m.dosage, (std::vector<uint8_t>{1, 2, 0, 2, 0, 0, 0, 1, 1, 0, 0, 2}));

  WriteFile(tmp / "swapped.vcf", SmallVcf({"S1", "S3", "S2", "S4"},
                                          {Rec("1", 10, "A", "C", {"0/1", "1/1", "0/0", "0/0"})}));
  ExpectUserError([&] { ReadVcfMatrix({tmp / "c1.vcf", tmp / "swapped.vcf"}, VcfOptions{}); },
                  {tmp / "swapped.vcf", "sample 1", "'S3'", "'S2'", "same order"});
  WriteFile(tmp / "three.vcf", SmallVcf({"S1", "S2", "S3"}, {Rec("1", 10, "A", "C", {"0/1", "1/1", "0/0"})}));
  ExpectUserError([&] { ReadVcfMatrix({tmp / "c1.vcf", tmp / "three.vcf"}, VcfOptions{}); },
                  {tmp / "three.vcf", "3 samples", "has 4"});
}

TEST(VcfSmall, ConvertWritesCsvAndSidecars) {
  TempDir tmp;
  WriteFile(tmp / "s.vcf", SmallVcf(kFour, {Rec("1", 10, "A", "C", {"0/1", "1/1", "./.", "0/0"}),
                                            Rec("1", 20, "G", "T", {"0/0", "0/1", "0/1", "1/1"})}));
  VcfOptions opt;
  opt.write_variants = true;
  WriterOptions wo;
  wo.format = DataFormat::kCsv;
  VcfStats st = ConvertVcf({tmp / "s.vcf"}, tmp / "out.csv", opt, wo);
  EXPECT_EQ(st.rows_written, 4);
  EXPECT_EQ(st.variants_kept, 2);
  EXPECT_EQ(st.imputed_cells, 1);
  // Parse the CSV back (number formatting is the writer's business).
  auto lines = Split(test::ReadFile(tmp / "out.csv"), '\n');
  ASSERT_EQ(lines.size(), 4u);
  const std::vector<std::vector<float>> expect = {{1, 0}, {2, 1}, {1, 1}, {0, 2}};
  for (size_t r = 0; r < 4; ++r) {
    auto f = Split(lines[r], ',');
    ASSERT_EQ(f.size(), 2u) << lines[r];
    for (size_t c = 0; c < 2; ++c) EXPECT_FLOAT_EQ(std::stof(f[c]), expect[r][c]) << lines[r];
  }
  EXPECT_EQ(test::ReadFile(tmp / "out.csv.samples.txt"), "S1\nS2\nS3\nS4\n");
  EXPECT_EQ(test::ReadFile(tmp / "out.csv.variants.tsv"),
            "CHROM\tPOS\tID\tREF\tALT\tAF\n1\t10\trs10\tA\tC\t0.5\n1\t20\trs20\tG\tT\t0.5\n");
  nlohmann::json j = st.ToJson();
  EXPECT_EQ(j["skipped"]["maf"], 0);
  EXPECT_EQ(j["imputed_cells"], 1);
}

TEST(VcfSmall, BadInputsNameTheProblem) {
  TempDir tmp;
  ExpectUserError([&] { ReadVcfMatrix({tmp / "absent.vcf"}, VcfOptions{}); }, {"absent.vcf", "cannot open"});
  ExpectUserError([&] { ReadVcfMatrix({}, VcfOptions{}); }, {"no VCF/BCF input"});
  WriteFile(tmp / "sites.vcf", SmallVcf({}, {"1\t10\t.\tA\tC\t.\tPASS\t."}));
  ExpectUserError([&] { ReadVcfMatrix({tmp / "sites.vcf"}, VcfOptions{}); }, {"sites.vcf", "no sample"});
  WriteFile(tmp / "bad_allele.vcf", SmallVcf(kFour, {Rec("1", 10, "A", "C", {"0/1", "0/2", "0/0", "0/0"})}));
  ExpectUserError([&] { ReadVcfMatrix({tmp / "bad_allele.vcf"}, VcfOptions{}); },
                  {"bad_allele.vcf", "1:10", "'S2'", "allele index 2"});
  WriteFile(tmp / "garbage.vcf", "this is not a VCF\n1,2,3\n");
  ExpectUserError([&] { ReadVcfMatrix({tmp / "garbage.vcf"}, VcfOptions{}); }, {"garbage.vcf"});
  WriteFile(tmp / "badpos.vcf", SmallVcf(kFour, {Rec("1", 10, "A", "C", {"0/1", "0/1", "0/0", "0/0"}),
                                                 "1\tnotanumber\t.\tA\tC\t.\tPASS\t.\tGT\t0/1\t0/1\t0/0\t0/0"}));
  ExpectUserError([&] { ReadVcfMatrix({tmp / "badpos.vcf"}, VcfOptions{}); }, {"badpos.vcf", "record 2", "1:10"});

  VcfOptions o;
  o.min_maf = 0.6;
  ExpectUserError([&] { ValidateVcfOptions(o); }, {"min_maf", "[0, 0.5]"});
  o = VcfOptions{};
  o.max_missing = -0.1;
  ExpectUserError([&] { ValidateVcfOptions(o); }, {"max_missing"});
  o = VcfOptions{};
  o.tile_variants = 0;
  ExpectUserError([&] { ReadVcfMatrix({tmp / "absent.vcf"}, o); }, {"tile_variants"});
}

}  // namespace
}  // namespace mlforge::io
