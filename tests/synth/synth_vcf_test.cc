// io/synth_vcf: synth genotypes written as VCF / BGZF VCF / BCF read back through io/vcf.h give
// exactly the rows of SynthGenerator::Fill; missing calls, phasing, sidecars, errors, no leftovers.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <set>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/synth.h"
#include "io/synth_vcf.h"
#include "io/vcf.h"
#include "tests/testutil.h"

namespace mlforge::io {
namespace {

namespace fs = std::filesystem;

SynthOptions Cohort(int64_t samples = 37, int64_t variants = 53, uint64_t seed = 11) {
  SynthOptions o;
  o.kind = SynthKind::kGenotypes;
  o.rows = samples;
  o.cols = variants;
  o.seed = seed;
  o.populations = 3;
  o.fst = 0.2;
  return o;
}

HostBatch Rows(const SynthOptions& o) {
  SynthGenerator gen(o);
  HostBatch b;
  gen.Fill(0, o.rows, &b);
  return b;
}

VcfMatrix Read(const std::string& path) { return ReadVcfMatrix({path}, VcfOptions{}); }

// (sample, pop) lines of <path>.samples.tsv after its header.
std::vector<std::pair<std::string, int>> Samples(const std::string& path) {
  std::istringstream in(test::ReadFile(path + ".samples.tsv"));
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "sample\tpop");
  std::vector<std::pair<std::string, int>> out;
  while (std::getline(in, line)) {
    const size_t tab = line.find('\t');
    EXPECT_NE(tab, std::string::npos) << line;
    out.emplace_back(line.substr(0, tab), std::stoi(line.substr(tab + 1)));
  }
  return out;
}

std::vector<std::string> Listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class SynthVcfFormats : public ::testing::TestWithParam<std::string> {};

TEST_P(SynthVcfFormats, ReadBackEqualsTheGeneratorsRowsAndLabels) {
  test::TempDir dir;
  const std::string path = dir / ("cohort." + GetParam());
  const SynthOptions o = Cohort();
  SynthVcfOptions v;
  v.threads = 2;
  v.block_variants = 7;  // several blocks, the last one partial
  const SynthVcfResult r = WriteSynthGenotypesVcf(o, path, v);
  EXPECT_EQ(r.samples, 37);
  EXPECT_EQ(r.variants, 53);
  EXPECT_EQ(r.missing_calls, 0);
  EXPECT_EQ(r.format, GetParam() == "vcf.bgz" ? "vcf.gz" : GetParam());
  EXPECT_EQ(r.samples_path, path + ".samples.tsv");
  EXPECT_EQ(r.truth_path, path + ".truth.json");

  const HostBatch rows = Rows(o);
  const VcfMatrix m = Read(path);
  ASSERT_EQ(m.samples, 37);
  ASSERT_EQ(m.variants, 53);  // nothing skipped: biallelic SNVs, diploid, no missing
  EXPECT_EQ(m.stats.skipped(), 0);
  for (int64_t i = 0; i < 37; ++i) {
    for (int64_t j = 0; j < 53; ++j) {
      ASSERT_EQ(static_cast<float>(m.dosage[i * 53 + j]), rows.values[i * 53 + j]) << "sample " << i << " variant " << j;
    }
  }
  EXPECT_EQ(m.sample_ids.front(), "S01");
  EXPECT_EQ(m.sample_ids.back(), "S37");
  for (int64_t j = 0; j < 53; ++j) {
    EXPECT_EQ(m.variants_info[j].chrom, "1");
    EXPECT_EQ(m.variants_info[j].pos, 1000 * (j + 1));
    EXPECT_EQ(m.variants_info[j].id, "synth_" + std::to_string(j));
    EXPECT_EQ(m.variants_info[j].ref, "A");
    EXPECT_EQ(m.variants_info[j].alt, "G");
  }

  const auto samples = Samples(path);
  ASSERT_EQ(samples.size(), 37u);
  std::set<int> pops;
  for (int64_t i = 0; i < 37; ++i) {
    EXPECT_EQ(samples[i].first, m.sample_ids[i]);
    EXPECT_EQ(static_cast<float>(samples[i].second), rows.labels[i]);
    pops.insert(samples[i].second);
  }
  EXPECT_EQ(pops.size(), 3u);

  const nlohmann::json truth = nlohmann::json::parse(test::ReadFile(r.truth_path));
  EXPECT_EQ(truth["kind"], "genotypes");
  EXPECT_EQ(truth["population_freq"].size(), 3u);
  EXPECT_EQ(truth["vcf"]["format"], r.format);
  EXPECT_EQ(truth["vcf"]["pos_spacing"], 1000);
  // Nothing but the outputs: no temporary file left.
  EXPECT_EQ(Listing(dir.path()),
            (std::vector<std::string>{"cohort." + GetParam(), "cohort." + GetParam() + ".samples.tsv",
                                      "cohort." + GetParam() + ".truth.json"}));
}

INSTANTIATE_TEST_SUITE_P(All, SynthVcfFormats, ::testing::Values("vcf", "vcf.gz", "vcf.bgz", "bcf"),
                         [](const auto& info) {
                           std::string s = info.param;
                           std::replace(s.begin(), s.end(), '.', '_');
                           return s;
                         });

TEST(SynthVcf, BytesDoNotDependOnBlockSizeOrThreads) {
  test::TempDir dir;
  const SynthOptions o = Cohort(23, 41, 5);
  SynthVcfOptions v;
  v.missing_rate = 0.05;
  v.block_variants = 1;
  WriteSynthGenotypesVcf(o, dir / "a.vcf", v);
  v.block_variants = 1000;  // larger than the variants
  WriteSynthGenotypesVcf(o, dir / "b.vcf", v);
  EXPECT_EQ(test::ReadFile(dir / "a.vcf"), test::ReadFile(dir / "b.vcf"));
  v.threads = 1;
  WriteSynthGenotypesVcf(o, dir / "a.vcf.gz", v);
  v.threads = 3;
  v.block_variants = 5;
  WriteSynthGenotypesVcf(o, dir / "b.vcf.gz", v);
  EXPECT_EQ(test::ReadFile(dir / "a.vcf.gz"), test::ReadFile(dir / "b.vcf.gz"));
  for (int level : {0, 1, 9}) {  // any level: the same calls
    v.compression_level = level;
    WriteSynthGenotypesVcf(o, dir / "l.bcf", v);
    WriteSynthGenotypesVcf(o, dir / "l.vcf.gz", v);
    EXPECT_EQ(ReadVcfMatrix({dir / "l.bcf"}, VcfOptions{}).dosage, ReadVcfMatrix({dir / "a.vcf.gz"}, VcfOptions{}).dosage);
    EXPECT_EQ(ReadVcfMatrix({dir / "l.vcf.gz"}, VcfOptions{}).dosage, ReadVcfMatrix({dir / "a.vcf"}, VcfOptions{}).dosage);
  }
  const std::string text = test::ReadFile(dir / "a.vcf");
  EXPECT_EQ(text.rfind("##fileformat=VCFv4.2\n", 0), 0u) << text.substr(0, 100);
  EXPECT_NE(text.find("##contig=<ID=1,length=41000>"), std::string::npos);
  EXPECT_NE(text.find("##FORMAT=<ID=GT,Number=1,Type=String"), std::string::npos);
  EXPECT_NE(text.find("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS01\tS02\t"), std::string::npos);
  EXPECT_NE(text.find("\n1\t1000\tsynth_0\tA\tG\t.\tPASS\t.\tGT\t"), std::string::npos);
  const std::string body = text.substr(text.find("\n1\t1000\t"));
  EXPECT_EQ(body.find('|'), std::string::npos);
  EXPECT_EQ(body.find("1/0"), std::string::npos);  // unphased heterozygotes are 0/1
  EXPECT_NE(body.find("0/1"), std::string::npos);
}

TEST(SynthVcf, MissingCallsAreMissingInTheReaderAndTheRestUnchanged) {
  test::TempDir dir;
  const SynthOptions o = Cohort();
  const HostBatch rows = Rows(o);
  SynthVcfOptions v;
  v.missing_rate = 0.1;
  std::vector<uint8_t> first_mask;
  for (const std::string ext : {"vcf", "vcf.gz", "bcf"}) {
    const std::string path = dir / ("m." + ext);
    const SynthVcfResult r = WriteSynthGenotypesVcf(o, path, v);
    const VcfMatrix m = Read(path);
    ASSERT_EQ(m.samples, 37);
    ASSERT_EQ(m.variants, 53);
    int64_t missing = 0;
    std::vector<uint8_t> mask(37 * 53);
    for (int64_t k = 0; k < 37 * 53; ++k) {
      if (m.dosage[k] == kMissingDosage) {
        ++missing;
        mask[k] = 1;
      } else {
        ASSERT_EQ(static_cast<float>(m.dosage[k]), rows.values[k]) << ext << " cell " << k;
      }
    }
    EXPECT_EQ(missing, r.missing_calls) << ext;
    EXPECT_EQ(m.stats.imputed_cells, missing) << ext;
    // ~10% of 1961 calls: 196 +- 13 (binomial sd); 4.5 sd either side.
    EXPECT_GT(missing, 137) << ext;
    EXPECT_LT(missing, 256) << ext;
    if (first_mask.empty()) {
      first_mask = mask;
    } else {
      EXPECT_EQ(mask, first_mask) << ext << ": the missing cells depend on the seed only";
    }
  }
  // Phased calls: the same dosages and the same missing cells.
  v.phased = true;
  WriteSynthGenotypesVcf(o, dir / "p.vcf", v);
  const VcfMatrix p = Read(dir / "p.vcf");
  ASSERT_EQ(p.variants, 53);
  for (int64_t k = 0; k < 37 * 53; ++k) {
    ASSERT_EQ(p.dosage[k] == kMissingDosage, first_mask[k] == 1) << k;
    if (!first_mask[k]) ASSERT_EQ(static_cast<float>(p.dosage[k]), rows.values[k]) << k;
  }
  // A different seed moves the missing cells.
  const SynthVcfResult other = WriteSynthGenotypesVcf(Cohort(37, 53, 12), dir / "o.vcf", v);
  const VcfMatrix q = Read(dir / "o.vcf");
  int64_t same = 0;
  for (int64_t k = 0; k < 37 * 53; ++k) same += (q.dosage[k] == kMissingDosage) && first_mask[k];
  EXPECT_LT(same, other.missing_calls / 2);
}

TEST(SynthVcf, PhasedCallsKeepTheDrawOrder) {
  test::TempDir dir;
  SynthVcfOptions v;
  v.phased = true;
  const SynthOptions o = Cohort(60, 80, 3);
  WriteSynthGenotypesVcf(o, dir / "p.vcf", v);
  WriteSynthGenotypesVcf(o, dir / "p.bcf", v);
  const std::string text = test::ReadFile(dir / "p.vcf");
  const std::string body = text.substr(text.find("\n1\t1000\t"));
  EXPECT_NE(body.find("\t1|0"), std::string::npos);
  EXPECT_NE(body.find("\t0|1"), std::string::npos);
  EXPECT_EQ(body.find("/"), std::string::npos);
  // Each call's first allele is the generator's first draw: reproduce it through the stream API.
  SynthGenerator gen(o);
  std::istringstream in(text);
  std::string line;
  std::vector<std::vector<uint8_t>> codes(60, std::vector<uint8_t>(80));
  for (int64_t r = 0; r < 60; ++r) {
    auto s = gen.StartGenotypes(r);
    gen.DrawGenotypes(&s, 80, codes[r].data());
  }
  int64_t j = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f;
    std::istringstream ls(line);
    for (std::string t; std::getline(ls, t, '\t');) f.push_back(t);
    ASSERT_EQ(f.size(), 9u + 60u);
    for (int64_t r = 0; r < 60; ++r) {
      const uint8_t c = codes[r][j];
      ASSERT_EQ(f[9 + r], std::string(1, '0' + (c & 1)) + "|" + std::string(1, '0' + (c >> 1))) << r << " " << j;
    }
    ++j;
  }
  EXPECT_EQ(j, 80);
  const VcfMatrix b = Read(dir / "p.bcf");
  const HostBatch rows = Rows(o);
  for (int64_t k = 0; k < 60 * 80; ++k) ASSERT_EQ(static_cast<float>(b.dosage[k]), rows.values[k]);
}

TEST(SynthVcf, StreamApiSplitsGiveFillsRows) {
  const SynthOptions o = Cohort(9, 31, 2);
  SynthGenerator gen(o);
  const HostBatch rows = Rows(o);
  for (int64_t r = 0; r < 9; ++r) {
    auto s = gen.StartGenotypes(r);
    EXPECT_EQ(static_cast<float>(s.population), rows.labels[r]);
    std::vector<uint8_t> c(31);
    gen.DrawGenotypes(&s, 3, c.data());
    gen.DrawGenotypes(&s, 0, c.data() + 3);
    gen.DrawGenotypes(&s, 28, c.data() + 3);
    EXPECT_EQ(s.next_col, 31);
    for (int64_t j = 0; j < 31; ++j) EXPECT_EQ(static_cast<float>((c[j] & 1) + (c[j] >> 1)), rows.values[r * 31 + j]);
  }
}

void ExpectUserError(const std::function<void()>& f, const std::vector<std::string>& words) {
  try {
    f();
    ADD_FAILURE() << "no UserError; expected one naming " << words.front();
  } catch (const UserError& e) {
    for (const auto& w : words) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << e.what();
  }
}

TEST(SynthVcf, BadOptionsAreNamedErrorsAndLeaveNothing) {
  test::TempDir dir;
  const std::string path = dir / "x.vcf.gz";
  for (double rate : {-0.1, 1.0, 2.0, std::nan("")}) {
    SynthVcfOptions v;
    v.missing_rate = rate;
    ExpectUserError([&] { WriteSynthGenotypesVcf(Cohort(), path, v); }, {"--missing-rate", "[0, 1)"});
  }
  for (int level : {-2, 10}) {
    SynthVcfOptions v;
    v.compression_level = level;
    ExpectUserError([&] { WriteSynthGenotypesVcf(Cohort(), path, v); }, {"--compression-level", "[0, 9]"});
  }
  SynthOptions blobs = Cohort();
  blobs.kind = SynthKind::kBlobs;
  ExpectUserError([&] { WriteSynthGenotypesVcf(blobs, path, {}); }, {"blobs", "only genotypes", ".csv"});
  SynthOptions fst = Cohort();
  fst.fst = 1.5;
  ExpectUserError([&] { WriteSynthGenotypesVcf(fst, path, {}); }, {"--fst"});
  ExpectUserError([&] { WriteSynthGenotypesVcf(Cohort(), dir / "x.txt", {}); }, {"x.txt", ".vcf.gz", ".bcf"});
  EXPECT_TRUE(Listing(dir.path()).empty());

  // A directory that does not exist: a clean UserError, no file anywhere.
  ExpectUserError([&] { WriteSynthGenotypesVcf(Cohort(), dir / "no/such/dir/x.bcf", {}); }, {"no/such/dir", "directory"});
  EXPECT_TRUE(Listing(dir.path()).empty());
}

TEST(SynthVcf, StopLeavesNothingBehind) {
  test::TempDir dir;
  std::atomic<bool> flag{true};
  for (const std::string ext : {"vcf", "vcf.gz", "bcf"}) {
    EXPECT_THROW(WriteSynthGenotypesVcf(Cohort(), dir / ("s." + ext), {}, StopToken(&flag)), StopRequested);
  }
  EXPECT_TRUE(Listing(dir.path()).empty());
}

TEST(SynthVcf, TruthCanBeSkippedAndAnOldFileIsReplacedWhole) {
  test::TempDir dir;
  const std::string path = dir / "c.vcf";
  test::WriteFile(path, "old");
  SynthVcfOptions v;
  v.write_truth = false;
  const SynthVcfResult r = WriteSynthGenotypesVcf(Cohort(5, 4), path, v);
  EXPECT_TRUE(r.truth_path.empty());
  EXPECT_EQ(Listing(dir.path()), (std::vector<std::string>{"c.vcf", "c.vcf.samples.tsv"}));
  EXPECT_EQ(Read(path).variants, 4);
  EXPECT_EQ(Samples(path).front().first, "S1");
}

}  // namespace
}  // namespace mlforge::io
