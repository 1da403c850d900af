// `mlforge data synth genotypes OUT.vcf|.vcf.gz|.bcf` end to end: the VCF converts back to the
// same CSV the recordIO/CSV synth writes, sidecars appear, bad flags and kinds exit 2 naming them.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/testutil.h"

namespace mlforge {
namespace {

using Result = test::CliResult;
using test::RunCli;

#define EXPECT_OK(r) EXPECT_EQ((r).code, 0) << "stderr: " << (r).err

TEST(CliSynthVcf, VcfAndCsvOfOneSeedAreTheSameCohort) {
  test::TempDir dir;
  const std::vector<std::string> common = {"--rows", "41", "--cols", "29", "--seed", "4", "--populations", "2"};
  auto synth = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args = {"data", "synth", "genotypes", out};
    args.insert(args.end(), common.begin(), common.end());
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCli(dir, args);
  };
  EXPECT_OK(synth("g.csv", {"--no-labels"}));
  for (const std::string out : {"g.vcf", "g.vcf.gz", "g.bcf"}) {
    EXPECT_OK(synth(out, {"--threads", "2"}));
    EXPECT_TRUE(std::filesystem::exists(dir / (out + ".samples.tsv"))) << out;
    EXPECT_TRUE(std::filesystem::exists(dir / (out + ".truth.json"))) << out;
    EXPECT_OK(RunCli(dir, {"data", "convert", out, out + ".csv"}));
    EXPECT_EQ(test::ReadFile(dir / (out + ".csv")), test::ReadFile(dir / "g.csv")) << out;
  }
  // Phased, with missing calls: readable, and every variant is kept.
  EXPECT_OK(synth("m.vcf.gz", {"--missing-rate", "0.05", "--phased"}));
  const Result r = RunCli(dir, {"data", "convert", "m.vcf.gz", "m.csv"});
  EXPECT_OK(r);
  EXPECT_NE(r.err.find("29 variants"), std::string::npos) << r.err;
}

TEST(CliSynthVcf, BadKindsAndFlagsExitTwoNamingThem) {
  test::TempDir dir;
  Result r = RunCli(dir, {"data", "synth", "blobs", "b.vcf", "--rows", "10", "--cols", "2"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("synth blobs cannot be written as VCF/BCF"), std::string::npos) << r.err;
  r = RunCli(dir, {"data", "synth", "genotypes", "g.vcf", "--rows", "10", "--cols", "2", "--missing-rate", "1.5"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--missing-rate must be in [0, 1)"), std::string::npos) << r.err;
  r = RunCli(dir, {"data", "synth", "genotypes", "g.pbr", "--rows", "10", "--cols", "2", "--phased"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--phased and --compression-level apply to genotypes written as VCF/BCF"), std::string::npos) << r.err;
  r = RunCli(dir, {"data", "synth", "genotypes", "nodir/g.vcf.gz", "--rows", "10", "--cols", "2"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("nodir/g.vcf.gz"), std::string::npos) << r.err;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    const std::string name = e.path().filename().string();
    EXPECT_TRUE(name == ".stdout" || name == ".stderr") << "left behind: " << name;
  }
}

}  // namespace
}  // namespace mlforge
