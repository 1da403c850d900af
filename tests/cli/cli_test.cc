// End-to-end tests of the `mlforge` binary: exit codes, --help, synth -> convert -> inspect
// round trips, and the error message for a corrupt file.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testutil.h"

namespace mlforge {
namespace {

using Result = test::CliResult;
using test::RunCli;

#define EXPECT_OK(r) EXPECT_EQ((r).code, 0) << "stderr: " << (r).err

TEST(Cli, HelpWorksForEveryCommand) {
  test::TempDir dir;
  const std::vector<std::vector<std::string>> commands = {
      {},        {"info"},    {"data"},  {"data", "inspect"}, {"data", "convert"},    {"data", "synth"},
      {"train"}, {"predict"}, {"serve"}, {"container"},       {"container", "train"}, {"container", "serve"},
      {"genotype"}, {"genotype", "pca"}, {"genotype", "project"}, {"demo"}};
  for (auto args : commands) {
    std::string name = "mlforge";
    for (const auto& a : args) name += " " + a;
    SCOPED_TRACE(name);
    args.push_back("--help");
    const Result r = RunCli(dir, args);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << r.out;
    // The help is the subcommand's own: it names the subcommand.
    if (!args.empty() && args.size() > 1) {
      EXPECT_NE(r.out.find(args[args.size() - 2]), std::string::npos);
    }
  }
  EXPECT_NE(RunCli(dir, {"data", "inspect", "--help"}).out.find("--json"), std::string::npos);
  EXPECT_NE(RunCli(dir, {"data", "synth", "--help"}).out.find("--cluster-std"), std::string::npos);
  EXPECT_NE(RunCli(dir, {"train", "--help"}).out.find("--model-dir"), std::string::npos);
}

TEST(Cli, UsageErrorsExitTwoWithOneLineReason) {
  test::TempDir dir;
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{},
                                             {"bogus"},
                                             {"data"},
                                             {"data", "bogus"},
                                             {"data", "inspect"},
                                             {"data", "inspect", "x.csv", "--nope"},
                                             {"data", "synth", "spirals", "x.csv"},
                                             {"data", "convert", "only-one.csv"},
                                             {"train", "kmeans"},
                                             {"--log-level", "loud", "info"},
                                             {"container", "train", "--unknown"}}) {
    std::string name;
    for (const auto& a : args) name += a + " ";
    SCOPED_TRACE(name);
    const Result r = RunCli(dir, args);
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.err.rfind("mlforge: error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

TEST(Cli, InputErrorsExitTwo) {
  test::TempDir dir;
  Result r = RunCli(dir, {"data", "inspect", "does-not-exist.csv"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("does-not-exist.csv"), std::string::npos) << r.err;

  r = RunCli(dir, {"data", "synth", "blobs", "a.csv", "--rows", "10", "--cols", "2"});
  EXPECT_OK(r);
  r = RunCli(dir, {"data", "convert", "a.csv", "out.unknown"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--to"), std::string::npos) << r.err;
  r = RunCli(dir, {"data", "synth", "lowrank", "b.csv", "--rank", "5", "--cols", "3"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--rank"), std::string::npos) << r.err;
}

TEST(Cli, ServeNeedsALoadableModel) {
  test::TempDir dir;
  // The model is loaded after binding; a missing one stops the server with the reason (exit 2).
  const Result r = RunCli(dir, {"serve", "--model", "no-such-model", "--port", "0", "--host", "127.0.0.1"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("cannot load the model no-such-model"), std::string::npos) << r.err;
  setenv("SAGEMAKER_BIND_TO_PORT", "0", 1);  // any free port: tests run in parallel
  const Result c = RunCli(dir, {"container", "serve", "--opt-ml", dir / "opt_ml"});
  unsetenv("SAGEMAKER_BIND_TO_PORT");
  EXPECT_EQ(c.code, 2) << c.err;
  EXPECT_NE(c.err.find("opt_ml/model"), std::string::npos) << c.err;
  // predict: a missing model is a plain input error.
  const Result p = RunCli(dir, {"predict", "--model", "m", "--input", "x.csv"});
  EXPECT_EQ(p.code, 2);
  EXPECT_NE(p.err.find("m"), std::string::npos) << p.err;
}

TEST(Cli, InfoPrintsBuildGpusAndAlgorithms) {
  test::TempDir dir;
  const Result r = RunCli(dir, {"info"});
  EXPECT_OK(r);
  for (const char* key : {"mlforge ", "build:", "cuda:", "gpus:", "threads:", "algorithms:"}) {
    EXPECT_NE(r.out.find(key), std::string::npos) << key << " missing in\n" << r.out;
  }
}

// What libgomp reports of its wait settings (OMP_DISPLAY_ENV=verbose) when `env` (an `env`
// command's arguments) runs `mlforge info`: one GOMP_SPINCOUNT line per time libgomp started;
// *idle receives info's "idle:" line (the settings the process ran with).
std::vector<std::string> SpinCounts(const test::TempDir& dir, const std::string& env, std::string* idle = nullptr) {
  const std::string out = dir / "omp.txt";
  const std::string cmd = "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u OPENBLAS_THREAD_TIMEOUT OMP_DISPLAY_ENV=verbose " +
                          env + " " + test::ShellQuote(test::kMlforgeBinary) + " info >" + out + " 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::vector<std::string> counts;
  std::istringstream in(test::ReadFile(out));
  for (std::string line; std::getline(in, line);) {
    const size_t at = line.find("GOMP_SPINCOUNT = ");
    if (at != std::string::npos) counts.push_back(line.substr(at + 17));
    if (idle != nullptr && line.rfind("idle:", 0) == 0) *idle = line;
  }
  return counts;
}

TEST(Cli, OpenMpThreadsWaitPassivelyUnlessTheUserChose) {
  test::TempDir dir;
  // Unset: libgomp starts with its default (spinning), mlforge sets passive and executes itself
  // again, and the second start has no spinning left.
  const std::vector<std::string> unset = SpinCounts(dir, "");
  if (unset.empty()) GTEST_SKIP() << "this build's OpenMP is not GNU libgomp (no OMP_DISPLAY_ENV report)";
  ASSERT_EQ(unset.size(), 2u);
  EXPECT_EQ(unset[1], "'0'");
  // The user's choice stands (mlforge still executes itself again for OpenBLAS's setting).
  const std::vector<std::string> active = SpinCounts(dir, "OMP_WAIT_POLICY=active");
  ASSERT_EQ(active.size(), 2u);
  EXPECT_NE(active[1], "'0'");
  const std::vector<std::string> spin = SpinCounts(dir, "GOMP_SPINCOUNT=1000");
  ASSERT_EQ(spin.size(), 2u);
  EXPECT_EQ(spin[1], "'1000'");
  // Both chosen: nothing is executed again.
  const std::vector<std::string> both = SpinCounts(dir, "GOMP_SPINCOUNT=1000 OPENBLAS_THREAD_TIMEOUT=28");
  ASSERT_EQ(both.size(), 1u);
  EXPECT_EQ(both[0], "'1000'");
}

// OpenBLAS's idle threads sleep at once (OPENBLAS_THREAD_TIMEOUT=4) unless the user set the
// variable: they would otherwise spin on sched_yield for about 0.1 s after the library loads and
// after every BLAS call, beside jobs that never call BLAS.
TEST(Cli, OpenBlasThreadsSleepWhenIdleUnlessTheUserChose) {
  test::TempDir dir;
  std::string idle;
  SpinCounts(dir, "", &idle);
  EXPECT_NE(idle.find("OMP_WAIT_POLICY=passive"), std::string::npos) << idle;
  EXPECT_NE(idle.find("OPENBLAS_THREAD_TIMEOUT=4"), std::string::npos) << idle;
  SpinCounts(dir, "OPENBLAS_THREAD_TIMEOUT=30 OMP_WAIT_POLICY=active", &idle);
  EXPECT_NE(idle.find("OMP_WAIT_POLICY=active"), std::string::npos) << idle;
  EXPECT_NE(idle.find("OPENBLAS_THREAD_TIMEOUT=30"), std::string::npos) << idle;
}

nlohmann::json InspectJson(const test::TempDir& dir, const std::string& file) {
  const Result r = RunCli(dir, {"data", "inspect", file, "--json"});
  EXPECT_OK(r);
  return nlohmann::json::parse(r.out);
}

TEST(Cli, SynthConvertRoundTripIsByteIdenticalAndInspectCountsRight) {
  test::TempDir dir;
  EXPECT_OK(RunCli(dir, {"data", "synth", "blobs", "blobs.csv", "--rows", "5000", "--cols", "6", "--k", "3",
                         "--seed", "11"}));
  EXPECT_OK(RunCli(dir, {"data", "convert", "blobs.csv", "blobs.pbr"}));
  EXPECT_OK(RunCli(dir, {"data", "convert", "blobs.pbr", "back.csv"}));
  EXPECT_EQ(test::ReadFile(dir / "blobs.csv"), test::ReadFile(dir / "back.csv"));

  for (const char* file : {"blobs.csv", "blobs.pbr"}) {
    SCOPED_TRACE(file);
    const nlohmann::json j = InspectJson(dir, file);
    EXPECT_EQ(j["format"], std::string(file).find(".csv") != std::string::npos ? "csv" : "recordio");
    EXPECT_EQ(j["rows"], 5000);
    EXPECT_EQ(j["records"], 5000);
    EXPECT_EQ(j["cols"], 6);
    EXPECT_EQ(j["layout"], "dense");
    EXPECT_EQ(j["nnz"], 30000);
    EXPECT_DOUBLE_EQ(j["density"].get<double>(), 1.0);
    EXPECT_EQ(j["labels"]["present"], true);
    EXPECT_EQ(j["labels"]["count"], 5000);
    EXPECT_EQ(j["labels"]["min"], 0.0);
    EXPECT_EQ(j["labels"]["max"], 2.0);
    EXPECT_EQ(j["labels"]["distinct"], nlohmann::json::array({0.0, 1.0, 2.0}));
    EXPECT_EQ(j["files"].size(), 1u);
    EXPECT_EQ(j["bytes"], test::ReadFile(dir / file).size());
  }
  // Truth sidecar next to the data.
  const nlohmann::json truth = nlohmann::json::parse(test::ReadFile(dir / "blobs.csv.truth.json"));
  EXPECT_EQ(truth["centers"].size(), 3u);

  // --label-size 0 drops the label column: one comma fewer per line.
  EXPECT_OK(RunCli(dir, {"data", "convert", "blobs.pbr", "nolabel.csv", "--label-size", "0"}));
  const std::string nolabel = test::ReadFile(dir / "nolabel.csv");
  EXPECT_EQ(std::count(nolabel.begin(), nolabel.begin() + nolabel.find('\n'), ','), 5);
  const Result r = RunCli(dir, {"data", "inspect", "nolabel.csv", "--label-size", "0", "--json"});
  EXPECT_OK(r);
  EXPECT_EQ(nlohmann::json::parse(r.out)["labels"]["present"], false);

  // Several inputs are concatenated.
  EXPECT_OK(RunCli(dir, {"data", "convert", "blobs.csv", "blobs.pbr", "twice.pbr"}));
  EXPECT_EQ(InspectJson(dir, "twice.pbr")["rows"], 10000);
}

TEST(Cli, SynthIsDeterministicAcrossThreadCounts) {
  test::TempDir dir;
  EXPECT_OK(RunCli(
      dir, {"data", "synth", "genotypes", "a.pbr", "--rows", "3000", "--cols", "200", "--threads", "1"}));
  EXPECT_OK(RunCli(
      dir, {"--threads", "4", "data", "synth", "genotypes", "b.pbr", "--rows", "3000", "--cols", "200"}));
  EXPECT_OK(
      RunCli(dir, {"data", "synth", "genotypes", "c.pbr", "--rows", "3000", "--cols", "200", "--seed", "1"}));
  EXPECT_EQ(test::ReadFile(dir / "a.pbr"), test::ReadFile(dir / "b.pbr"));
  EXPECT_NE(test::ReadFile(dir / "a.pbr"), test::ReadFile(dir / "c.pbr"));
}

TEST(Cli, SparseFmRecordIOStaysSparse) {
  test::TempDir dir;
  EXPECT_OK(
      RunCli(dir, {"data", "synth", "fm", "fm.pbr", "--rows", "1000", "--users", "40", "--items", "60"}));
  nlohmann::json j = InspectJson(dir, "fm.pbr");
  EXPECT_EQ(j["layout"], "sparse");
  EXPECT_EQ(j["rows"], 1000);
  EXPECT_EQ(j["cols"], 100);
  EXPECT_EQ(j["nnz"], 2000);
  EXPECT_DOUBLE_EQ(j["density"].get<double>(), 0.02);
  EXPECT_EQ(j["labels"]["present"], true);

  // recordIO -> recordIO keeps it sparse; -> CSV writes dense rows (label + 100 columns).
  EXPECT_OK(RunCli(dir, {"data", "convert", "fm.pbr", "copy.recordio"}));
  EXPECT_EQ(InspectJson(dir, "copy.recordio")["layout"], "sparse");
  EXPECT_OK(RunCli(dir, {"data", "convert", "fm.pbr", "fm.csv"}));
  const std::string csv = test::ReadFile(dir / "fm.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.begin() + csv.find('\n'), ','), 100);
  j = InspectJson(dir, "fm.csv");
  EXPECT_EQ(j["layout"], "dense");
  EXPECT_EQ(j["nnz"], 2000);  // the ones of the one-hot columns

  // fm's width is users + items; a contradicting --cols is an error.
  EXPECT_EQ(RunCli(dir, {"data", "synth", "fm", "x.pbr", "--cols", "7"}).code, 2);
}

TEST(Cli, CorruptFileNamesTheByteOffset) {
  MLF_REQUIRE_SHARED_DATA();
  test::TempDir dir;
  const std::string corrupt = test::SharedData("recordio/corrupt_truncated_payload.pbr");
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"data", "inspect", corrupt}, {"data", "convert", corrupt, "out.csv"}}) {
    const Result r = RunCli(dir, args);
    EXPECT_NE(r.code, 0);
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("at byte 192"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("truncated payload"), std::string::npos) << r.err;
  }
  // A failed conversion leaves no output behind.
  EXPECT_FALSE(std::ifstream(dir / "out.csv").good());
}

// `genotype pca` and `genotype project` from the command line: plink2's files, the report, the
// projection of the same samples reproducing their PCs, and named errors with exit status 2. The
// numbers themselves are checked against plink2 in tests/genotype_pca/plink2_compare.py.
TEST(Cli, GenotypePcaAndProject) {
  test::TempDir dir;
  Result r = RunCli(dir, {"data", "synth", "genotypes", "--rows", "120", "--cols", "900", "--populations", "3",
                          "--seed", "5", "--missing-rate", "0.01", "cohort.vcf.gz"});
  ASSERT_EQ(r.code, 0) << r.err;
  r = RunCli(dir, {"genotype", "pca", "--vcf", "cohort.vcf.gz", "--pcs", "4", "--out", "pc", "--threads", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("120 samples x 900 variants"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("eigenvalues:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("peak memory"), std::string::npos) << r.out;
  const std::string vec = test::ReadFile(dir / "pc.eigenvec");
  EXPECT_EQ(vec.substr(0, vec.find('\n')), "#IID\tPC1\tPC2\tPC3\tPC4");
  EXPECT_EQ(std::count(vec.begin(), vec.end(), '\n'), 121);
  const std::string val = test::ReadFile(dir / "pc.eigenval");
  EXPECT_EQ(std::count(val.begin(), val.end(), '\n'), 4);
  const nlohmann::json j = nlohmann::json::parse(test::ReadFile(dir / "pc.genotype_pca.json"));
  EXPECT_EQ(j["variants"], 900);
  EXPECT_GT(j["vcf"]["imputed_cells"].get<int64_t>(), 0);
  EXPECT_GT(j["peak_rss_bytes"].get<int64_t>(), 0);
  r = RunCli(dir, {"genotype", "project", "--vcf", "cohort.vcf.gz", "--model", "pc", "--out", "again"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("900 of 900 model variants matched"), std::string::npos) << r.out;
  // Same samples, same PCs (6 of the 9 printed digits; the files round differently).
  auto numbers = [](const std::string& text) {
    std::vector<double> v;
    std::istringstream in(text.substr(text.find('\n') + 1));
    for (std::string tok; in >> tok;)
      if (tok[0] != 'S') v.push_back(std::stod(tok));
    return v;
  };
  const std::vector<double> a = numbers(vec), b = numbers(test::ReadFile(dir / "again.eigenvec"));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6) << i;
  // Errors name the problem and exit 2.
  r = RunCli(dir, {"genotype", "pca", "--vcf", "cohort.vcf.gz", "--pcs", "200", "--out", "x"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--pcs = 200"), std::string::npos) << r.err;
  r = RunCli(dir, {"genotype", "pca", "--vcf", "cohort.vcf.gz", "--missing", "zero", "--out", "x"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--missing 'zero'"), std::string::npos) << r.err;
  r = RunCli(dir, {"genotype", "pca", "--vcf", "cohort.vcf.gz", "--approx", "--missing", "pairwise", "--out", "x"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("exact method"), std::string::npos) << r.err;
  r = RunCli(dir, {"genotype", "project", "--vcf", "cohort.vcf.gz", "--model", "nothing", "--out", "x"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("nothing.eigenval"), std::string::npos) << r.err;
  EXPECT_FALSE(std::ifstream(dir / "x.eigenvec").good());
}

// `mlforge demo` on its synthetic default (written as VCF): both routes run and cluster the five
// populations (well separated at F_ST 0.05 with 1500 variants), the PCA route leaves plink2-style
// files, and without a plotting python it says how to get the plot.
TEST(Cli, DemoRunsBothRoutes) {
  test::TempDir dir;
  const Result r = RunCli(dir, {"demo", "--samples", "250", "--variants", "1500", "--work-dir", dir / "work",
                                "--hp", "full_batch_lloyd_trials=3", "--threads", "2"});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  const size_t at = r.out.find("ARI against pop: k-means on dosages ");
  ASSERT_NE(at, std::string::npos) << r.out;
  double ari_dosage = 0, ari_pcs = 0;
  ASSERT_EQ(std::sscanf(r.out.c_str() + at, "ARI against pop: k-means on dosages %lf, k-means on the top 10 PCs %lf",
                        &ari_dosage, &ari_pcs),
            2)
      << r.out.substr(at);
  EXPECT_GE(ari_dosage, 0.95);
  EXPECT_GE(ari_pcs, 0.95);
  EXPECT_TRUE(std::ifstream(dir / "work/pca.eigenvec").good());
  EXPECT_TRUE(std::ifstream(dir / "work/pca.eigenval").good());
  EXPECT_NE(r.out.find("plot: not drawn"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace mlforge
