#include "container/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "core/error.h"
#include "tests/testutil.h"

namespace mlforge::container {
namespace {

// Plain predicates (gtest only): the messages end in nlohmann's own wording, which we do not pin.
::testing::AssertionResult StartsWith(const std::string& s, const std::string& prefix) {
  if (s.rfind(prefix, 0) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << s << "' does not start with '" << prefix << "'";
}
::testing::AssertionResult HasSubstr(const std::string& s, const std::string& part) {
  if (s.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << s << "' does not contain '" << part << "'";
}

template <typename F>
std::string ErrorOf(F&& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(OptMlPaths, ArgumentThenEnvironmentThenDefault) {
  ::unsetenv(kOptMlEnv);
  EXPECT_EQ(ResolveOptMl("").root, "/opt/ml");
  ::setenv(kOptMlEnv, "/tmp/env-root", 1);
  EXPECT_EQ(ResolveOptMl("").root, "/tmp/env-root");
  OptMlPaths p = ResolveOptMl("/x/y/");
  ::unsetenv(kOptMlEnv);
  EXPECT_EQ(p.root, "/x/y");
  EXPECT_EQ(p.hyperparameters, "/x/y/input/config/hyperparameters.json");
  EXPECT_EQ(p.inputdataconfig, "/x/y/input/config/inputdataconfig.json");
  EXPECT_EQ(p.resourceconfig, "/x/y/input/config/resourceconfig.json");
  EXPECT_EQ(p.data_dir, "/x/y/input/data");
  EXPECT_EQ(p.model_dir, "/x/y/model");
  EXPECT_EQ(p.failure_file, "/x/y/output/failure");
  EXPECT_EQ(p.output_data_dir, "/x/y/output/data");
  EXPECT_EQ(p.checkpoint_dir, "/x/y/checkpoints");
}

TEST(Hyperparameters, StringsAndSdkStyleValues) {
  auto hp = ParseHyperparameters(
      R"({"k": "8", "feature_dim": 7, "tol": 1e-4, "force_dense": true, "other": false,
          "eval_metrics": ["msd", "ssd"], "dropped": null})",
      "hp.json");
  EXPECT_EQ(hp.at("k"), "8");
  EXPECT_EQ(hp.at("feature_dim"), "7");
  EXPECT_EQ(hp.at("tol"), "0.0001");
  EXPECT_EQ(hp.at("force_dense"), "true");
  EXPECT_EQ(hp.at("other"), "false");
  EXPECT_EQ(hp.at("eval_metrics"), R"(["msd","ssd"])");
  EXPECT_EQ(hp.count("dropped"), 0u);
  EXPECT_TRUE(ParseHyperparameters("{}", "hp.json").empty());
}

TEST(Hyperparameters, Errors) {
  EXPECT_EQ(ErrorOf([] { ParseHyperparameters(R"(["k"])", "hp.json"); }),
            "hp.json must hold a JSON object of name -> value strings, got array");
  EXPECT_EQ(ErrorOf([] { ParseHyperparameters(R"({"k": {"a": 1}})", "hp.json"); }),
            "hp.json: hyperparameter 'k' is a JSON object; values must be strings (e.g. \"k\": \"10\")");
  std::string malformed = ErrorOf([] { ParseHyperparameters("{\"k\": \"8\",\n \"x\" 3}", "hp.json"); });
  EXPECT_TRUE(StartsWith(malformed, "hp.json is not valid JSON: parse error at line 2, column 6: "));
  EXPECT_TRUE(HasSubstr(malformed, "(byte 17)"));
  EXPECT_TRUE(StartsWith(ErrorOf([] { ParseHyperparameters("", "hp.json"); }),
                         "hp.json is not valid JSON: parse error at line 1, column 1: "));
  // Nested a million deep: an error naming the file, not a stack overflow.
  const std::string deep = "{\"k\": " + std::string(1000000, '[') + std::string(1000000, ']') + "}";
  EXPECT_TRUE(StartsWith(ErrorOf([&] { ParseHyperparameters(deep, "hp.json"); }),
                         "hp.json: JSON nested more than 128 levels deep (at byte 133)"));
}

TEST(InputDataConfig, EveryKey) {
  auto ch = ParseInputDataConfig(R"({
    "train": {"ContentType": "text/csv;label_size=0", "TrainingInputMode": "Pipe",
              "S3DistributionType": "ShardedByS3Key", "RecordWrapperType": "None"},
    "test": {"TrainingInputMode": "FastFile", "S3DistributionType": "FullyReplicated",
             "RecordWrapperType": "RecordIO", "ContentType": "application/x-recordio-protobuf"},
    "validation": {"TrainingInputMode": "file", "SomeFutureKey": 1}
  })",
                                 "idc.json");
  ASSERT_EQ(ch.size(), 3u);
  EXPECT_EQ(ch["train"].content_type, "text/csv;label_size=0");
  EXPECT_EQ(ch["train"].input_mode, algos::InputMode::kPipe);
  EXPECT_EQ(ch["train"].distribution, algos::S3Distribution::kShardedByS3Key);
  EXPECT_EQ(ch["train"].record_wrapper, algos::RecordWrapper::kNone);
  EXPECT_EQ(ch["test"].input_mode, algos::InputMode::kFastFile);
  EXPECT_EQ(ch["test"].distribution, algos::S3Distribution::kFullyReplicated);
  EXPECT_EQ(ch["test"].record_wrapper, algos::RecordWrapper::kRecordIO);
  EXPECT_EQ(ch["validation"].input_mode, algos::InputMode::kFile);  // case-insensitive
  EXPECT_EQ(ch["validation"].content_type, "");
  EXPECT_EQ(ch["validation"].distribution, algos::S3Distribution::kFullyReplicated);
}

TEST(InputDataConfig, Errors) {
  EXPECT_EQ(
      ErrorOf([] { ParseInputDataConfig(R"({"train": {"TrainingInputMode": "Stream"}})", "idc.json"); }),
      "idc.json: channel 'train': TrainingInputMode 'Stream' is not supported; use one of: File, FastFile, "
      "Pipe");
  EXPECT_EQ(
      ErrorOf([] { ParseInputDataConfig(R"({"train": {"S3DistributionType": "Sharded"}})", "idc.json"); }),
      "idc.json: channel 'train': S3DistributionType 'Sharded' is not supported; use one of: "
      "FullyReplicated, ShardedByS3Key");
  EXPECT_EQ(
      ErrorOf([] { ParseInputDataConfig(R"({"train": {"RecordWrapperType": "Zip"}})", "idc.json"); }),
      "idc.json: channel 'train': RecordWrapperType 'Zip' is not supported; use one of: None, RecordIO");
  EXPECT_EQ(ErrorOf([] { ParseInputDataConfig(R"({"train": {"ContentType": 5}})", "idc.json"); }),
            "idc.json: channel 'train': 'ContentType' must be a string, got number 5");
  EXPECT_EQ(ErrorOf([] { ParseInputDataConfig(R"({"train": "File"})", "idc.json"); }),
            "idc.json: channel 'train' must be a JSON object, got string");
  EXPECT_EQ(ErrorOf([] { ParseInputDataConfig(R"({"../x": {}})", "idc.json"); }),
            "idc.json: channel name '../x' is not a valid directory name");
  EXPECT_EQ(ErrorOf([] { ParseInputDataConfig("[]", "idc.json"); }),
            "idc.json must hold a JSON object of channel name -> settings, got array");
  EXPECT_TRUE(StartsWith(ErrorOf([] { ParseInputDataConfig("{\"train\": {", "idc.json"); }),
                         "idc.json is not valid JSON: parse error at line 1, column 12: "));
}

TEST(ResourceConfig, EveryKeyIncludingInstanceGroups) {
  ResourceConfig r = ParseResourceConfig(R"({
    "current_host": "algo-2", "hosts": ["algo-1", "algo-2", "algo-3"],
    "network_interface_name": "eth0", "current_group_name": "homogeneousCluster",
    "current_instance_type": "ml.p4d.24xlarge",
    "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": "ml.p4d.24xlarge",
                         "hosts": ["algo-3", "algo-1", "algo-2"]}]})",
                                         "rc.json");
  EXPECT_EQ(r.current_host, "algo-2");
  EXPECT_EQ(r.hosts, (std::vector<std::string>{"algo-1", "algo-2", "algo-3"}));
  EXPECT_EQ(r.rank(), 1);
  EXPECT_EQ(r.network_interface_name, "eth0");
  EXPECT_EQ(r.current_group_name, "homogeneousCluster");
  EXPECT_EQ(r.current_instance_type, "ml.p4d.24xlarge");
  ASSERT_EQ(r.instance_groups.size(), 1u);
  EXPECT_EQ(r.instance_groups[0].name, "homogeneousCluster");
  EXPECT_EQ(r.instance_groups[0].instance_type, "ml.p4d.24xlarge");
  EXPECT_EQ(r.instance_groups[0].hosts, (std::vector<std::string>{"algo-3", "algo-1", "algo-2"}));
  ResourceConfig defaults = ParseResourceConfig("{}", "rc.json");
  EXPECT_EQ(defaults.current_host, "algo-1");
  EXPECT_EQ(defaults.rank(), 0);
}

TEST(ResourceConfig, Errors) {
  EXPECT_EQ(
      ErrorOf([] { ParseResourceConfig(R"({"current_host": "algo-9", "hosts": ["algo-1"]})", "rc.json"); }),
      "rc.json: current_host 'algo-9' is not among hosts [algo-1]");
  EXPECT_EQ(ErrorOf([] { ParseResourceConfig(R"({"hosts": []})", "rc.json"); }),
            "rc.json: 'hosts' is empty; it must list every host, e.g. [\"algo-1\"]");
  EXPECT_EQ(ErrorOf([] { ParseResourceConfig(R"({"hosts": "algo-1"})", "rc.json"); }),
            "rc.json: 'hosts' must be a list of strings, got string \"algo-1\"");
  EXPECT_EQ(ErrorOf([] { ParseResourceConfig(R"({"hosts": ["algo-1", 2]})", "rc.json"); }),
            "rc.json: 'hosts' must be a list of strings, but it holds number 2");
  EXPECT_EQ(ErrorOf([] { ParseResourceConfig(R"({"current_host": 1})", "rc.json"); }),
            "rc.json: 'current_host' must be a string, got number 1");
  EXPECT_EQ(ErrorOf([] { ParseResourceConfig(R"({"instance_groups": {}})", "rc.json"); }),
            "rc.json: 'instance_groups' must be a list of objects, got object");
  EXPECT_EQ(ErrorOf([] { ParseResourceConfig(R"({"instance_groups": [3]})", "rc.json"); }),
            "rc.json: instance_groups[0] must be an object, got number");
  EXPECT_EQ(ErrorOf([] { ParseResourceConfig(R"({"instance_groups": [{"hosts": "a"}]})", "rc.json"); }),
            "rc.json: instance_groups[0]: 'hosts' must be a list of strings, got string \"a\"");
  EXPECT_EQ(ErrorOf([] { ParseResourceConfig("7", "rc.json"); }),
            "rc.json must hold a JSON object, got number");
  EXPECT_TRUE(StartsWith(ErrorOf([] { ParseResourceConfig("{\"hosts\": [\"algo-1\",]}", "rc.json"); }),
                         "rc.json is not valid JSON: parse error at line 1, column 21: "));
}

TEST(ReadConfig, MissingFilesUseDefaults) {
  test::TempDir dir;
  OptMlPaths p = ResolveOptMl(dir.path());
  EXPECT_TRUE(ReadHyperparameters(p).empty());
  EXPECT_TRUE(ReadInputDataConfig(p).empty());  // no input/data either
  ResourceConfig r = ReadResourceConfig(p);
  EXPECT_EQ(r.current_host, "algo-1");
  EXPECT_EQ(r.hosts, std::vector<std::string>{"algo-1"});
}

TEST(ReadConfig, ChannelsInferredFromDataDirectories) {
  test::TempDir dir;
  test::WriteFile(dir / "input/data/train/a.csv", "1,2\n");
  test::WriteFile(dir / "input/data/test/b.csv", "1,2\n");
  test::WriteFile(dir / "input/data/train_0", "not a directory: ignored\n");
  auto ch = ReadInputDataConfig(ResolveOptMl(dir.path()));
  ASSERT_EQ(ch.size(), 2u);
  EXPECT_EQ(ch.count("train"), 1u);
  EXPECT_EQ(ch.count("test"), 1u);
  EXPECT_EQ(ch["train"].input_mode, algos::InputMode::kFile);
}

TEST(ReadConfig, FilesAreReadAndErrorsNameThem) {
  test::TempDir dir;
  OptMlPaths p = ResolveOptMl(dir.path());
  test::WriteFile(p.hyperparameters, R"({"k": "3"})");
  test::WriteFile(p.inputdataconfig, R"({"train": {"ContentType": "text/csv"}})");
  test::WriteFile(p.resourceconfig, R"({"current_host": "algo-1", "hosts": ["algo-1"]})");
  EXPECT_EQ(ReadHyperparameters(p).at("k"), "3");
  EXPECT_EQ(ReadInputDataConfig(p).at("train").content_type, "text/csv");
  EXPECT_EQ(ReadResourceConfig(p).hosts.size(), 1u);
  test::WriteFile(p.hyperparameters, "{");
  EXPECT_TRUE(
      StartsWith(ErrorOf([&] { ReadHyperparameters(p); }), p.hyperparameters + " is not valid JSON: "));
}

TEST(ChannelSource, FileAndPipeModes) {
  OptMlPaths p = ResolveOptMl("/r");
  algos::ChannelConfig file;
  file.content_type = "text/csv;label_size=0";
  io::ChannelSource s = MakeChannelSource(p, "train", file);
  EXPECT_EQ(s.paths, std::vector<std::string>{"/r/input/data/train"});
  EXPECT_EQ(s.pipe_prefix, "");
  EXPECT_EQ(s.format, io::DataFormat::kCsv);
  EXPECT_EQ(s.label_size, 0);

  algos::ChannelConfig auto_format;  // no ContentType: format from the file extensions
  s = MakeChannelSource(p, "test", auto_format);
  EXPECT_EQ(s.format, io::DataFormat::kAuto);
  EXPECT_EQ(s.label_size, -1);

  algos::ChannelConfig pipe;
  pipe.input_mode = algos::InputMode::kPipe;
  s = MakeChannelSource(p, "train", pipe);
  EXPECT_TRUE(s.paths.empty());
  EXPECT_EQ(s.pipe_prefix, "/r/input/data/train");
  EXPECT_EQ(s.format, io::DataFormat::kRecordIO);  // the built-ins' default for Pipe mode
}

TEST(ChannelSource, Errors) {
  OptMlPaths p = ResolveOptMl("/r");
  algos::ChannelConfig csv_wrapped;
  csv_wrapped.content_type = "text/csv";
  csv_wrapped.record_wrapper = algos::RecordWrapper::kRecordIO;
  EXPECT_EQ(ErrorOf([&] { MakeChannelSource(p, "train", csv_wrapped); }),
            "channel 'train': RecordWrapperType RecordIO with ContentType 'text/csv' is not supported; use "
            "RecordWrapperType None for CSV data");
  algos::ChannelConfig image;
  image.content_type = "image/jpeg";
  EXPECT_TRUE(HasSubstr(ErrorOf([&] { MakeChannelSource(p, "train", image); }),
                        "unsupported ContentType 'image/jpeg'"));
}

}  // namespace
}  // namespace mlforge::container
