// `mlforge data convert|inspect` on libsvm input: libsvm -> recordIO (sparse) -> libsvm, inspect of
// a .libsvm file, --zero-based / --feature-dim, and the exit code and message of a bad line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/testutil.h"

namespace mlforge {
namespace {

using test::RunCli;

#define EXPECT_OK(r) EXPECT_EQ((r).code, 0) << "stderr: " << (r).err

nlohmann::json Inspect(const test::TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), {"data", "inspect"});
  args.push_back("--json");
  const test::CliResult r = RunCli(dir, args);
  EXPECT_OK(r);
  return r.code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json();
}

const char* kData =
    "# two classes, 1-based\n"
    "1 1:0.5 4:2\n"
    "0 qid:3 2:-1 3:4 # comment\n"
    "\n"
    "1\n";

TEST(LibsvmCli, ConvertFromLibsvmToSparseRecordIOAndBack) {
  test::TempDir dir;
  test::WriteFile(dir / "in.txt", kData);  // no telling extension: --from says it
  test::CliResult r = RunCli(dir, {"data", "convert", "--from", "libsvm", "in.txt", "out.pbr"});
  EXPECT_OK(r);
  nlohmann::json j = Inspect(dir, {"out.pbr"});
  EXPECT_EQ(j["format"], "recordio");
  EXPECT_EQ(j["rows"], 3);
  EXPECT_EQ(j["cols"], 4);  // the largest index
  EXPECT_EQ(j["layout"], "sparse");
  EXPECT_EQ(j["nnz"], 4);
  EXPECT_EQ(j["labels"]["distinct"], nlohmann::json::array({0.0, 1.0}));

  r = RunCli(dir, {"data", "convert", "out.pbr", "back.libsvm"});
  EXPECT_OK(r);
  EXPECT_EQ(test::ReadFile(dir / "back.libsvm"), "1 1:0.5 4:2\n0 2:-1 3:4\n1\n");
  r = RunCli(dir, {"data", "convert", "back.libsvm", "dense.csv"});
  EXPECT_OK(r);
  EXPECT_EQ(test::ReadFile(dir / "dense.csv"), "1,0.5,0,0,2\n0,0,-1,4,0\n1,0,0,0,0\n");

  // A .libsvm file inspects directly; --feature-dim widens it, --zero-based shifts it.
  j = Inspect(dir, {"back.libsvm"});
  EXPECT_EQ(j["format"], "libsvm");
  EXPECT_EQ(j["cols"], 4);
  EXPECT_EQ(j["layout"], "sparse");
  EXPECT_EQ(Inspect(dir, {"back.libsvm", "--feature-dim", "10"})["cols"], 10);
  EXPECT_EQ(Inspect(dir, {"back.libsvm", "--zero-based"})["cols"], 5);
  r = RunCli(dir, {"data", "convert", "back.libsvm", "wide.pbr", "--feature-dim", "6"});
  EXPECT_OK(r);
  EXPECT_EQ(Inspect(dir, {"wide.pbr"})["cols"], 6);
}

TEST(LibsvmCli, BadLineExitsTwoNamingLineAndByte) {
  test::TempDir dir;
  test::WriteFile(dir / "z.libsvm", "1 1:1\n0 0:1 3:1\n");
  test::CliResult r = RunCli(dir, {"data", "convert", "z.libsvm", "z.pbr"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("z.libsvm: line 2 at byte 8: index 0 in 1-based data"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--zero-based"), std::string::npos) << r.err;
  // Read as zero-based it converts: columns 0 and 3 of a 4-wide row.
  r = RunCli(dir, {"data", "convert", "z.libsvm", "z.csv", "--zero-based"});
  EXPECT_OK(r);
  EXPECT_EQ(test::ReadFile(dir / "z.csv"), "1,0,1,0,0\n0,1,0,0,1\n");

  test::WriteFile(dir / "m.libsvm", "1,2 1:1\n");
  r = RunCli(dir, {"data", "inspect", "m.libsvm"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("m.libsvm: line 1 at byte 0: multi-label line"), std::string::npos) << r.err;

  // Unlabeled rows cannot be written as libsvm.
  test::WriteFile(dir / "u.csv", "1,2\n");
  r = RunCli(dir, {"data", "convert", "u.csv", "u.libsvm", "--label-size", "0"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("without labels as libsvm"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mlforge
