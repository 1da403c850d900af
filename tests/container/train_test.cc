// The training half of the container contract, end to end on a temporary /opt/ml tree, with a
// trivial algorithm ("column-mean") defined here so these tests do not depend on a real one.
#include "container/train.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "core/error.h"
#include "io/batch_stream.h"
#include "tests/testutil.h"

namespace fs = std::filesystem;

namespace mlforge::container {
namespace {

// Batches the column-mean algorithm has consumed so far (across runs; tests reset it).
std::atomic<int> g_batches_seen{0};

HpTable ColumnMeanTable() {
  HpTable t("column-mean");
  t.Int("mini_batch_size").Default("2").GreaterThan(0).Doc("rows per batch");
  t.Int("fail_after_batches")
      .Default("0")
      .AtLeast(0)
      .Doc("throw a UserError after this many batches (0: never)");
  t.Int("sleep_ms_per_batch").Default("0").AtLeast(0).Doc("slow down, to test stopping");
  t.String("throw").Default("none").Choices({"none", "internal", "std"}).Doc("throw a non-user error");
  t.Int("scale").Default("auto").AllowAuto().AtLeast(1).Doc("multiplies the means (auto: 1)");
  return t;
}

// Streams the train channel and writes the column means to means.json (plus a second file,
// so committing several files is exercised). A partial file is written first: failures must
// not let it reach the model directory.
void ColumnMeanTrain(algos::TrainContext& ctx) {
  HpValues& hp = ctx.hyperparameters;
  if (hp.IsAuto("scale")) hp.Resolve("scale", 1);
  test::WriteFile(ctx.model_dir + "/partial.json", "{}");
  const std::string throw_kind = hp.GetString("throw");
  MLF_ASSERT_MSG(throw_kind != "internal", "column-mean was asked to break");
  if (throw_kind == "std") throw std::runtime_error("column-mean threw a std::runtime_error");

  const algos::TrainChannel* train = ctx.channel("train");
  MLF_ASSERT(train != nullptr);
  io::StreamOptions opts;
  opts.batch_size = hp.GetInt("mini_batch_size");
  opts.threads = 1;
  opts.stop = ctx.stop();
  io::BatchStream stream(train->source, opts);
  stream.StartEpoch(0);
  HostBatch batch;
  std::vector<double> sums;
  int64_t rows = 0;
  int batches = 0;
  while (stream.Next(&batch)) {
    ctx.stop().ThrowIfStopped();
    Densify(batch);
    sums.resize(batch.cols, 0.0);
    for (int64_t r = 0; r < batch.rows; ++r) {
      for (int64_t c = 0; c < batch.cols; ++c) sums[c] += batch.values[r * batch.cols + c];
    }
    rows += batch.rows;
    ++batches;
    ++g_batches_seen;
    const int64_t fail_after = hp.GetInt("fail_after_batches");
    MLF_EXPECTS(fail_after == 0 || batches < fail_after, "column-mean: failing after {} batches as asked",
                batches);
    std::this_thread::sleep_for(std::chrono::milliseconds(hp.GetInt("sleep_ms_per_batch")));
  }
  nlohmann::json out;
  out["rows"] = rows;
  out["host"] = ctx.host;
  out["world_size"] = ctx.world_size();
  std::vector<double> means;
  for (double s : sums)
    means.push_back(s / static_cast<double>(rows) * static_cast<double>(hp.GetInt("scale")));
  out["means"] = means;
  out["config"] = nlohmann::json::parse(hp.ToJson());
  fs::remove(ctx.model_dir + "/partial.json");
  test::WriteFile(ctx.model_dir + "/means.json", out.dump());
  test::WriteFile(ctx.model_dir + "/meta.txt", "column-mean\n");
}

algos::Algorithm ColumnMean() {
  algos::Algorithm a;
  a.name = "column-mean";
  a.description = "test algorithm: column means of the train channel";
  a.required_channels = {"train"};
  a.optional_channels = {"test"};
  a.hyperparameters = ColumnMeanTable;
  a.train = ColumnMeanTrain;
  return a;
}

algos::Algorithm Other() {
  algos::Algorithm a = ColumnMean();
  a.name = "other-algo";
  return a;
}

const std::vector<algos::Algorithm>& Table() {
  static const std::vector<algos::Algorithm> table = {ColumnMean()};
  return table;
}

// Rows: label, x0, x1. Means of the features: 4 and 5 (labels are not features).
const char* kCsv = "1,2,3\n0,4,5\n1,6,7\n";

// A /opt/ml tree in a temp dir. The stop flag is ours, so tests never touch the process-wide one.
class ContainerTrain : public ::testing::Test {
 protected:
  void SetUp() override {
    paths_ = ResolveOptMl(dir_.path());
    ::unsetenv(kAlgorithmEnv);
    g_batches_seen = 0;
    options_.stop = StopToken(&stop_);
    options_.threads = 1;
    options_.device = DeviceRequest::kCpu;
  }
  void WriteStandardJob(const std::string& hp = "{}") {
    test::WriteFile(paths_.hyperparameters, hp);
    test::WriteFile(paths_.inputdataconfig,
                    R"({"train": {"ContentType": "text/csv", "TrainingInputMode": "File",
                                  "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}})");
    test::WriteFile(paths_.resourceconfig, R"({"current_host": "algo-1", "hosts": ["algo-1"]})");
    test::WriteFile(paths_.data_dir + "/train/part-0.csv", kCsv);
  }
  int Run(const std::string& algorithm = "") {
    return RunContainerTrain(dir_.path(), algorithm, Table(), options_);
  }
  std::string Failure() const {
    std::error_code ec;
    return fs::exists(paths_.failure_file, ec) ? test::ReadFile(paths_.failure_file) : "<no failure file>";
  }
  std::set<std::string> ModelFiles() const {
    std::set<std::string> names;
    std::error_code ec;
    if (!fs::is_directory(paths_.model_dir, ec)) return names;
    for (const auto& e : fs::directory_iterator(paths_.model_dir)) names.insert(e.path().filename().string());
    return names;
  }
  void ExpectFailed(int rc, int expected_rc, const std::string& failure) {
    EXPECT_EQ(rc, expected_rc);
    EXPECT_EQ(Failure(), failure + "\n");
    EXPECT_TRUE(ModelFiles().empty()) << "model dir holds " << ModelFiles().size() << " entries";
  }

  test::TempDir dir_;
  OptMlPaths paths_;
  std::atomic<bool> stop_{false};
  TrainOptions options_;
};

TEST_F(ContainerTrain, SuccessWritesTheModelAndNoFailureFile) {
  WriteStandardJob(R"({"mini_batch_size": "1", "_tuning_objective_metric": "test:msd"})");
  test::WriteFile(paths_.failure_file, "stale failure from an earlier run\n");
  ASSERT_EQ(Run(), kExitSuccess) << Failure();
  EXPECT_EQ(Failure(), "<no failure file>");
  EXPECT_EQ(ModelFiles(), (std::set<std::string>{"means.json", "meta.txt"}));  // no staging dir left
  auto model = nlohmann::json::parse(test::ReadFile(paths_.model_dir + "/means.json"));
  EXPECT_EQ(model["rows"], 3);
  EXPECT_EQ(model["host"], "algo-1");
  EXPECT_EQ(model["world_size"], 1);
  EXPECT_EQ(model["means"], nlohmann::json::parse("[4.0, 5.0]"));
  EXPECT_EQ(model["config"]["scale"], "1");  // the resolved auto
  EXPECT_EQ(model["config"]["mini_batch_size"], "1");
  EXPECT_EQ(g_batches_seen.load(), 3);
}

TEST_F(ContainerTrain, ExistingModelFilesAreReplaced) {
  WriteStandardJob();
  test::WriteFile(paths_.model_dir + "/means.json", "old");
  ASSERT_EQ(Run("column-mean"), kExitSuccess) << Failure();
  EXPECT_NE(test::ReadFile(paths_.model_dir + "/means.json"), "old");
}

TEST_F(ContainerTrain, BadHyperparameterWritesFailureAndNoModel) {
  WriteStandardJob(R"({"mini_batch_size": "0"})");
  ExpectFailed(
      Run(), kExitUserError,
      "ClientError: hyperparameter 'mini_batch_size' = '0' is out of range: must be an integer > 0 (got 0)");
}

TEST_F(ContainerTrain, UnknownHyperparameterSuggests) {
  WriteStandardJob(R"({"mini_batch_siz": "10"})");
  ExpectFailed(Run(), kExitUserError,
               "ClientError: unknown hyperparameter 'mini_batch_siz'; did you mean 'mini_batch_size'?");
}

TEST_F(ContainerTrain, MissingTrainChannelInConfig) {
  WriteStandardJob();
  test::WriteFile(paths_.inputdataconfig, R"({"test": {"ContentType": "text/csv"}})");
  test::WriteFile(paths_.data_dir + "/test/x.csv", kCsv);
  ExpectFailed(Run(), kExitUserError,
               "ClientError: algorithm 'column-mean' requires the 'train' channel, but " +
                   paths_.inputdataconfig + " does not define it");
}

TEST_F(ContainerTrain, ConfiguredChannelWithoutData) {
  WriteStandardJob();
  fs::remove_all(paths_.data_dir + "/train");
  ExpectFailed(Run(), kExitUserError,
               "ClientError: channel 'train' of algorithm 'column-mean': " + paths_.data_dir +
                   "/train does not exist");
}

TEST_F(ContainerTrain, NoInputDataConfigAndNoDirectories) {
  ExpectFailed(Run(), kExitUserError,
               "ClientError: algorithm 'column-mean' requires the 'train' channel, but " +
                   paths_.inputdataconfig + " (absent, so channels are the directories in " +
                   paths_.data_dir + ") does not define it");
}

TEST_F(ContainerTrain, NoConfigFilesAtAllInfersEverything) {
  test::WriteFile(paths_.data_dir + "/train/part-0.csv", kCsv);  // format from the extension
  test::WriteFile(paths_.data_dir + "/unused/x.csv", kCsv);      // ignored with a warning
  ASSERT_EQ(Run(), kExitSuccess) << Failure();
  EXPECT_EQ(ModelFiles(), (std::set<std::string>{"means.json", "meta.txt"}));
}

TEST_F(ContainerTrain, MalformedJsonInEachConfigFile) {
  for (const std::string* file : {&paths_.hyperparameters, &paths_.inputdataconfig, &paths_.resourceconfig}) {
    WriteStandardJob();
    test::WriteFile(*file, "{\"a\": ");
    int rc = Run();
    EXPECT_EQ(rc, kExitUserError) << *file;
    std::string failure = Failure();
    EXPECT_EQ(
        failure.rfind("ClientError: " + *file + " is not valid JSON: parse error at line 1, column 7: ", 0),
        0u)
        << failure;
    EXPECT_TRUE(ModelFiles().empty());
  }
}

TEST_F(ContainerTrain, FailureMidTrainingLeavesNoModel) {
  WriteStandardJob(R"({"mini_batch_size": "1", "fail_after_batches": "2"})");
  ExpectFailed(Run(), kExitUserError, "ClientError: column-mean: failing after 2 batches as asked");
}

TEST_F(ContainerTrain, InternalErrorsAreAlgorithmErrors) {
  WriteStandardJob(R"({"throw": "std"})");
  ExpectFailed(Run(), kExitAlgorithmError, "AlgorithmError: column-mean threw a std::runtime_error");
  WriteStandardJob(R"({"throw": "internal"})");
  int rc = Run();
  EXPECT_EQ(rc, kExitAlgorithmError);
  EXPECT_EQ(Failure().rfind("AlgorithmError: internal error: throw_kind != \"internal\" failed at ", 0), 0u)
      << Failure();
  EXPECT_NE(Failure().find(": column-mean was asked to break"), std::string::npos);
  EXPECT_TRUE(ModelFiles().empty());
}

TEST_F(ContainerTrain, AlgorithmSelection) {
  WriteStandardJob();
  const std::vector<algos::Algorithm> two = {ColumnMean(), Other()};
  EXPECT_EQ(RunContainerTrain(dir_.path(), "", two, options_), kExitUserError);
  EXPECT_EQ(Failure(),
            "ClientError: no algorithm given: pass it as an argument or set MLFORGE_ALGORITHM; available: "
            "column-mean, other-algo\n");
  EXPECT_EQ(RunContainerTrain(dir_.path(), "column-meen", two, options_), kExitUserError);
  EXPECT_EQ(
      Failure(),
      "ClientError: unknown algorithm 'column-meen'; did you mean 'column-mean'? Available: column-mean, "
      "other-algo\n");
  EXPECT_EQ(RunContainerTrain(dir_.path(), "xgboost", two, options_), kExitUserError);
  EXPECT_EQ(Failure(), "ClientError: unknown algorithm 'xgboost'. Available: column-mean, other-algo\n");
  EXPECT_EQ(RunContainerTrain(dir_.path(), "kmeans", {}, options_), kExitUserError);
  EXPECT_EQ(Failure(), "ClientError: unknown algorithm 'kmeans': this build has no algorithms\n");
  ::setenv(kAlgorithmEnv, "OTHER_ALGO", 1);  // case and '_' vs '-' do not matter
  EXPECT_EQ(RunContainerTrain(dir_.path(), "", two, options_), kExitSuccess) << Failure();
  ::unsetenv(kAlgorithmEnv);
}

TEST_F(ContainerTrain, MultiHostJoinsTheGroupOfItsResourceConfig) {
  WriteStandardJob();
  // Several hosts: this host joins the group whose master is hosts[0]. A master name that never
  // resolves (.invalid, RFC 6761) fails within the rendezvous deadline, naming the host.
  test::WriteFile(paths_.resourceconfig,
                  R"({"current_host": "algo-2.invalid", "hosts": ["algo-1.invalid", "algo-2.invalid"]})");
  ::setenv("MLFORGE_RENDEZVOUS_TIMEOUT_S", "1", 1);
  const int rc = Run();
  ::unsetenv("MLFORGE_RENDEZVOUS_TIMEOUT_S");
  EXPECT_EQ(rc, kExitUserError);
  EXPECT_EQ(Failure().rfind("ClientError: cannot resolve host 'algo-1.invalid' within 1 s", 0), 0u) << Failure();
  EXPECT_FALSE(fs::exists(paths_.model_dir + "/means.json"));
  // An injected communicator factory is used instead (here: single process, host name kept).
  options_.make_comm = [](const ResourceConfig&) { return comm::MakeSingleProcess(); };
  ASSERT_EQ(Run(), kExitSuccess) << Failure();
  EXPECT_EQ(nlohmann::json::parse(test::ReadFile(paths_.model_dir + "/means.json"))["host"], "algo-2.invalid");
}

// Opens `path` for writing once a reader has opened it (polling, so a run that fails before
// reading cannot hang the writer), writes `data` and closes it.
void FeedFifo(const std::string& path, const std::string& data, std::atomic<bool>* fed) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int fd = -1;
  while (std::chrono::steady_clock::now() < deadline) {
    fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0 || errno != ENXIO) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (fd < 0) return;
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  ::close(fd);
  *fed = off == data.size();
}

TEST_F(ContainerTrain, PipeModeReadsTheFifo) {
  WriteStandardJob();
  test::WriteFile(paths_.inputdataconfig,
                  R"({"train": {"ContentType": "text/csv", "TrainingInputMode": "Pipe"}})");
  fs::remove_all(paths_.data_dir + "/train");  // Pipe mode has no directory, only train_<epoch>
  const std::string fifo = paths_.data_dir + "/train_0";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  std::atomic<bool> fed{false};
  std::thread writer(FeedFifo, fifo, std::string(kCsv), &fed);
  int rc = Run();
  writer.join();
  ASSERT_EQ(rc, kExitSuccess) << Failure();
  EXPECT_TRUE(fed.load());
  auto model = nlohmann::json::parse(test::ReadFile(paths_.model_dir + "/means.json"));
  EXPECT_EQ(model["rows"], 3);
  EXPECT_EQ(model["means"], nlohmann::json::parse("[4.0, 5.0]"));
}

// Many slow rows so a stop always lands mid-training.
std::string SlowData() {
  std::string csv;
  for (int i = 0; i < 200; ++i) csv += "1,1,1\n";
  return csv;
}

TEST_F(ContainerTrain, StopRequestEndsTrainingWithoutModel) {
  WriteStandardJob(R"({"mini_batch_size": "1", "sleep_ms_per_batch": "20"})");
  test::WriteFile(paths_.data_dir + "/train/part-0.csv", SlowData());
  std::thread stopper([this] {
    while (g_batches_seen.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    stop_ = true;
  });
  const auto start = std::chrono::steady_clock::now();
  int rc = Run();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stopper.join();
  ExpectFailed(rc, kExitStopped, "Training stopped: SIGTERM received");
  EXPECT_LT(g_batches_seen.load(), 200);
  EXPECT_LT(seconds, 30.0);  // a hang guard, not a timing assertion: the full run would take 4 s
}

// The real signal path: InstallSignalHandlers + the process-wide token. The process-wide flag
// cannot be reset, so the run happens in a forked child (gtest death test, "fast" style so the
// child shares this test's temp dir).
TEST_F(ContainerTrain, SigtermEndsTrainingWithoutModel) {
  GTEST_FLAG_SET(death_test_style, "fast");
  WriteStandardJob(R"({"mini_batch_size": "1", "sleep_ms_per_batch": "20"})");
  test::WriteFile(paths_.data_dir + "/train/part-0.csv", SlowData());
  TrainOptions real;  // no stop override: handlers installed, SIGTERM feeds the token
  real.threads = 1;
  real.device = DeviceRequest::kCpu;
  EXPECT_EXIT(
      {
        std::thread killer([] {
          while (g_batches_seen.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          ::kill(::getpid(), SIGTERM);
        });
        int rc = RunContainerTrain(dir_.path(), "", Table(), real);
        killer.join();
        std::_Exit(rc);
      },
      ::testing::ExitedWithCode(kExitStopped), "");
  EXPECT_EQ(Failure(), "Training stopped: SIGTERM received\n");
  EXPECT_TRUE(ModelFiles().empty());
}

TEST(TrainLocal, TrainsFromPathsAndKeyValues) {
  test::TempDir dir;
  test::WriteFile(dir / "data/train.csv", kCsv);
  LocalTrainArgs args;
  args.algorithm = "column-mean";
  args.channels["train"] = {dir / "data/train.csv"};
  args.hyperparameters = {"mini_batch_size=2", "scale=2"};
  args.model_dir = dir / "model";
  TrainOptions options;
  std::atomic<bool> never{false};
  options.stop = StopToken(&never);
  ASSERT_EQ(TrainLocal(args, Table(), options), kExitSuccess);
  auto model = nlohmann::json::parse(test::ReadFile(dir / "model/means.json"));
  EXPECT_EQ(model["means"], nlohmann::json::parse("[8.0, 10.0]"));
  EXPECT_EQ(model["config"]["scale"], "2");

  // A ContentType per channel: label_size=0 makes the first column a feature.
  args.content_types["train"] = "text/csv;label_size=0";
  ASSERT_EQ(TrainLocal(args, Table(), options), kExitSuccess);
  model = nlohmann::json::parse(test::ReadFile(dir / "model/means.json"));
  ASSERT_EQ(model["means"].size(), 3u);
  EXPECT_DOUBLE_EQ(model["means"][0].get<double>(), 4.0 / 3);
  EXPECT_DOUBLE_EQ(model["means"][1].get<double>(), 8.0);
  EXPECT_DOUBLE_EQ(model["means"][2].get<double>(), 10.0);
}

TEST(TrainLocal, Errors) {
  test::TempDir dir;
  test::WriteFile(dir / "train.csv", kCsv);
  TrainOptions options;
  std::atomic<bool> never{false};
  options.stop = StopToken(&never);
  LocalTrainArgs args;
  args.algorithm = "column-mean";
  args.channels["train"] = {dir / "train.csv"};
  args.model_dir = dir / "model";
  args.failure_file = dir / "failure";

  args.hyperparameters = {"mini_batch_size"};
  EXPECT_EQ(TrainLocal(args, Table(), options), kExitUserError);
  EXPECT_EQ(test::ReadFile(dir / "failure"),
            "ClientError: --hp 'mini_batch_size': expected NAME=VALUE, e.g. --hp k=10\n");

  args.hyperparameters = {"scale=2", "scale=3"};
  EXPECT_EQ(TrainLocal(args, Table(), options), kExitUserError);
  EXPECT_EQ(test::ReadFile(dir / "failure"), "ClientError: --hp: 'scale' is given twice ('2' and '3')\n");

  args.hyperparameters = {};
  args.channels = {{"test", {dir / "train.csv"}}};
  EXPECT_EQ(TrainLocal(args, Table(), options), kExitUserError);
  EXPECT_EQ(
      test::ReadFile(dir / "failure"),
      "ClientError: algorithm 'column-mean' requires the 'train' channel, but the command line (pass it as "
      "--<channel> PATH) does not define it\n");

  args.channels = {{"train", {dir / "missing.csv"}}};
  EXPECT_EQ(TrainLocal(args, Table(), options), kExitUserError);
  EXPECT_EQ(test::ReadFile(dir / "failure"), "ClientError: channel 'train' of algorithm 'column-mean': " +
                                                 (dir / "missing.csv") + " does not exist\n");

  args.channels = {{"train", {dir / "train.csv"}}};
  args.model_dir = "";
  EXPECT_EQ(TrainLocal(args, Table(), options), kExitUserError);
  EXPECT_EQ(test::ReadFile(dir / "failure"), "ClientError: no model directory given; pass --model-dir DIR\n");
  EXPECT_FALSE(fs::exists(dir / "model"));
}

TEST(ParseKeyValues, SplitsAtTheFirstEquals) {
  auto kv = ParseKeyValues({"a=1", "b=x=y", "c="});
  EXPECT_EQ(kv.at("a"), "1");
  EXPECT_EQ(kv.at("b"), "x=y");
  EXPECT_EQ(kv.at("c"), "");
  try {
    ParseKeyValues({"=3"});
    FAIL() << "expected UserError";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "--hp '=3': expected NAME=VALUE, e.g. --hp k=10");
  }
}

}  // namespace
}  // namespace mlforge::container
