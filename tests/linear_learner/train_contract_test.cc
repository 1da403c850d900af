// The linear learner's training contract: the /opt/ml container run (SDK-style string
// hyperparameters, CSV and recordIO channels) writes the same model as the command line and a
// bad hyperparameter leaves output/failure and no model; every bad hyperparameter combination and
// bad label names its field / row and the fix; a stop request mid-training writes no model; the
// log carries SageMaker's metric lines (its regexes capture the values) and early stopping ends
// training after `early_stopping_patience` epochs without improvement.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <atomic>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "container/config.h"
#include "core/log.h"
#include "tests/linear_learner/train_util.h"

namespace mlforge::ll_test {
namespace {

class LinearLearnerContract : public ::testing::Test {
 protected:
  void SetUp() override {
    b_ = Generate(Linear("binary", 3000, 6, 41, 0.3));
    Write(b_, dir_ / "bin.pbr");
  }
  test::TempDir dir_;
  HostBatch b_;
};

TEST_F(LinearLearnerContract, ContainerTrainWritesTheSameModelAsTheCommandLine) {
  // What the SDK sends: strings, capitalised booleans, and the platform's internal keys.
  const container::OptMlPaths p = container::ResolveOptMl(dir_ / "opt_ml");
  test::WriteFile(p.hyperparameters,
                  R"({"predictor_type": "binary_classifier", "feature_dim": "6", "mini_batch_size": "500",
                      "epochs": "3", "num_models": "4", "use_bias": "True", "normalize_data": "True",
                      "_kvstore": "auto", "_num_gpus": "auto"})");
  test::WriteFile(p.inputdataconfig,
                  R"({"train": {"ContentType": "text/csv", "TrainingInputMode": "File",
                                "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"},
                      "validation": {"ContentType": "application/x-recordio-protobuf", "TrainingInputMode": "File",
                                     "S3DistributionType": "FullyReplicated", "RecordWrapperType": "RecordIO"}})");
  test::WriteFile(p.resourceconfig, R"({"current_host": "algo-1", "hosts": ["algo-1"]})");
  fs::create_directories(p.data_dir + "/train");
  fs::create_directories(p.data_dir + "/validation");
  Write(b_, p.data_dir + "/train/part-0.csv");
  Write(b_, p.data_dir + "/validation/part-0.pbr");
  const container::TrainOptions options = test::TrainOptionsForTests(DeviceRequest::kCpu, 2, "warn");
  ASSERT_EQ(container::RunContainerTrain(p.root, "linear-learner", algos::BuiltinAlgorithms(), options), 0);
  EXPECT_FALSE(fs::exists(p.failure_file));
  RunResult local = Train({{"train", {dir_ / "bin.pbr"}}, {"validation", {dir_ / "bin.pbr"}}}, dir_ / "local",
                          {"predictor_type=binary_classifier", "feature_dim=6", "mini_batch_size=500",
                           "epochs=3", "num_models=4"});
  ASSERT_EQ(local.rc, 0) << local.failure;
  EXPECT_EQ(test::ReadFile(p.model_dir + "/model_algo-1"), test::ReadFile(dir_ / "local/model_algo-1"));
  const Model m = algos::linear_learner::LoadModel(p.model_dir);
  EXPECT_EQ(m.predictor_type, algos::linear_learner::PredictorType::kBinaryClassifier);
  EXPECT_EQ(m.metrics.count("validation:binary_classification_accuracy"), 1u);

  // A bad value in the container: failure file, exit 2, no model.
  fs::remove_all(p.model_dir);
  test::WriteFile(p.hyperparameters, R"({"predictor_type": "binary_classifier", "loss": "softmax_loss"})");
  EXPECT_EQ(container::RunContainerTrain(p.root, "linear-learner", algos::BuiltinAlgorithms(), options),
            container::kExitUserError);
  EXPECT_NE(test::ReadFile(p.failure_file).find("'loss'"), std::string::npos)
      << test::ReadFile(p.failure_file);
  EXPECT_FALSE(fs::exists(p.model_dir + "/model_algo-1"));
}

TEST_F(LinearLearnerContract, BadHyperparametersAndLabelsNameTheFieldAndTheFix) {
  struct Case {
    std::vector<std::string> hps;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{}, "predictor_type"},  // required
      {{"predictor_type=classifier"}, "predictor_type"},
      {{"predictor_type=multiclass_classifier"}, "num_classes"},
      {{"predictor_type=binary_classifier", "loss=squared_loss"}, "does not suit predictor_type"},
      {{"predictor_type=binary_classifier", "feature_dim=7"}, "7"},  // the data has 6 columns
      {{"predictor_type=binary_classifier", "mini_batch_size=0"}, "mini_batch_size"},
      {{"predictor_type=binary_classifier", "learning_rate=-1"}, "learning_rate"},
      {{"predictor_type=binary_classifier", "optimizer=adagrad"}, "optimizer"},
      {{"predictor_type=binary_classifier", "positive_example_weight_mult=lots"},
       "positive_example_weight_mult"},
      {{"predictor_type=binary_classifier", "use_bias=false", "unbias_data=true"}, "use_bias"},
      {{"predictor_type=binary_classifier", "learning_rate=0.001", "lr_scheduler_minimum_lr=0.01"},
       "lr_scheduler_minimum_lr"},
      {{"predictor_type=binary_classifier", "epoch=3"}, "did you mean 'epochs'"},
      // Labels: the binary data has labels 0 / 1; as a 3-class problem they are fine, but a
      // regressor's 0/1 labels are fine too, so break them through the multiclass range.
      {{"predictor_type=multiclass_classifier", "num_classes=3"}, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.hps.empty() ? "(none)" : c.hps.back());
    RunResult r = Train({{"train", {dir_ / "bin.pbr"}}}, dir_ / "bad", c.hps);
    if (c.message.empty()) {
      EXPECT_EQ(r.rc, 0) << r.failure;
      continue;
    }
    EXPECT_EQ(r.rc, container::kExitUserError);
    EXPECT_NE(r.failure.find(c.message), std::string::npos) << r.failure;
    EXPECT_FALSE(fs::exists(dir_ / "bad/model_algo-1"));
  }
  // Labels that do not fit the predictor type name the channel and the row.
  HostBatch bad = b_;
  bad.labels[1234] = 2.0f;
  Write(bad, dir_ / "bad_label.pbr");
  RunResult r =
      Train({{"train", {dir_ / "bad_label.pbr"}}}, dir_ / "bad", {"predictor_type=binary_classifier"});
  EXPECT_EQ(r.rc, container::kExitUserError);
  EXPECT_NE(r.failure.find("channel 'train' row 1234: label 2 is not 0 or 1"), std::string::npos)
      << r.failure;
  r = Train({{"train", {dir_ / "bin.pbr"}}, {"validation", {dir_ / "bad_label.pbr"}}}, dir_ / "bad",
            {"predictor_type=multiclass_classifier", "num_classes=2"});
  EXPECT_EQ(r.rc, container::kExitUserError);  // num_classes must be >= 3
  r = Train({{"train", {dir_ / "bin.pbr"}}, {"validation", {dir_ / "bad_label.pbr"}}}, dir_ / "bad",
            {"predictor_type=binary_classifier"});
  EXPECT_EQ(r.rc, container::kExitUserError);
  EXPECT_NE(r.failure.find("channel 'validation' row 1234"), std::string::npos) << r.failure;
  bad.labels[1234] = 3.0f;
  Write(bad, dir_ / "bad_class.pbr");
  r = Train({{"train", {dir_ / "bad_class.pbr"}}}, dir_ / "bad",
            {"predictor_type=multiclass_classifier", "num_classes=3"});
  EXPECT_EQ(r.rc, container::kExitUserError);
  EXPECT_NE(r.failure.find("raise num_classes"), std::string::npos) << r.failure;
  // Unlabelled records (CSV always has its label first, so recordIO).
  io::WriterOptions no_labels;
  no_labels.write_labels = false;
  auto w = io::MakeRowWriter(dir_ / "unlabelled.pbr", no_labels);
  w->Write(b_);
  w->Close();
  r = Train({{"train", {dir_ / "unlabelled.pbr"}}}, dir_ / "bad", {"predictor_type=regressor"});
  EXPECT_EQ(r.rc, container::kExitUserError);
  EXPECT_NE(r.failure.find("label"), std::string::npos) << r.failure;
}

// A single-process communicator that requests a stop after `after` AllReduceMax calls (the loop
// makes one per mini-batch step to learn whether any rank still has data).
class StopAfter : public comm::Communicator {
 public:
  StopAfter(std::atomic<bool>* flag, int after)
      : inner_(comm::MakeSingleProcess()), flag_(flag), after_(after) {}
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend() const override { return "stop-after"; }
  void AllReduceSum(float* d, size_t n) override { inner_->AllReduceSum(d, n); }
  void AllReduceSum(double* d, size_t n) override { inner_->AllReduceSum(d, n); }
  void AllReduceMax(float* d, size_t n) override { inner_->AllReduceMax(d, n); }
  void AllReduceMax(double* d, size_t n) override {
    if (++calls_ == after_) flag_->store(true);
    inner_->AllReduceMax(d, n);
  }
  void Broadcast(void* d, size_t b, int root) override { inner_->Broadcast(d, b, root); }
  void Barrier() override { inner_->Barrier(); }
  void AllGather(const void* s, size_t b, void* r) override { inner_->AllGather(s, b, r); }

 private:
  std::unique_ptr<comm::Communicator> inner_;
  std::atomic<bool>* flag_;
  int after_;
  int calls_ = 0;
};

TEST_F(LinearLearnerContract, StopRequestMidTrainingWritesNoModel) {
  // 3,000 rows in mini-batches of 100: 30 steps per epoch, 5 epochs; the stop comes at step 40.
  std::atomic<bool> stop{false};
  container::LocalTrainArgs args;
  args.algorithm = "linear-learner";
  args.channels["train"] = {dir_ / "bin.pbr"};
  args.hyperparameters = {"predictor_type=binary_classifier", "mini_batch_size=100", "epochs=5"};
  args.model_dir = dir_ / "stopped";
  args.failure_file = dir_ / "stopped.failure";
  container::TrainOptions options;
  options.stop = StopToken(&stop);
  options.device = DeviceRequest::kCpu;
  options.threads = 1;
  options.log_level = "warn";
  options.make_comm = [&](const container::ResourceConfig&) {
    return std::make_unique<StopAfter>(&stop, 40);
  };
  EXPECT_EQ(container::TrainLocal(args, algos::BuiltinAlgorithms(), options), container::kExitStopped);
  EXPECT_FALSE(fs::exists(dir_ / "stopped/model_algo-1"));
  EXPECT_NE(test::ReadFile(dir_ / "stopped.failure").find("SIGTERM"), std::string::npos);
}

// Routes the default logger into a string (log::Init formats every registered logger).
class LogCapture {
 public:
  LogCapture() {
    log::Init("info");
    previous_ = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "ll_capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)));
    log::Init("info");
  }
  ~LogCapture() {
    spdlog::set_default_logger(previous_);
    log::Init("warn");
  }
  std::vector<std::string> Lines() const {
    std::vector<std::string> lines;
    std::istringstream in(out_.str());
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

// Every capture of `pattern` over the log lines, in order.
std::vector<std::string> Captures(const std::vector<std::string>& lines, const std::string& pattern) {
  std::vector<std::string> out;
  const std::regex re(pattern);
  for (const std::string& l : lines) {
    std::smatch m;
    if (std::regex_search(l, m, re)) out.push_back(m[1].str());
  }
  return out;
}

RunResult TrainLogged(const std::map<std::string, std::vector<std::string>>& channels,
                      const std::string& model_dir, std::vector<std::string> hps,
                      std::vector<std::string>* lines) {
  LogCapture capture;
  container::LocalTrainArgs args;
  args.algorithm = "linear-learner";
  args.channels = channels;
  args.hyperparameters = std::move(hps);
  args.model_dir = model_dir;
  const container::TrainOptions options = test::TrainOptionsForTests(DeviceRequest::kCpu, 2, "info");
  RunResult r;
  r.rc = container::TrainLocal(args, algos::BuiltinAlgorithms(), options);
  if (r.rc == 0) r.model = algos::linear_learner::LoadModel(model_dir);
  *lines = capture.Lines();
  return r;
}

TEST_F(LinearLearnerContract, MetricLinesMatchSageMakersRegexes) {
  Write(Rows(b_, 0, 2000), dir_ / "train.pbr");
  Write(Rows(b_, 2000, 3000), dir_ / "test.pbr");
  std::vector<std::string> lines;
  RunResult r = TrainLogged(
      {{"train", {dir_ / "train.pbr"}}, {"validation", {dir_ / "test.pbr"}}, {"test", {dir_ / "test.pbr"}}},
      dir_ / "m",
      {"predictor_type=binary_classifier", "epochs=4", "num_models=3", "early_stopping_patience=10"}, &lines);
  ASSERT_EQ(r.rc, 0);
  // The MetricDefinitions of SageMaker's linear learner (SPEC.md 2.9).
  EXPECT_EQ(
      Captures(lines, R"(#quality_metric: host=\S+, epoch=\S+, train \S+_objective <loss>=(\S+))").size(),
      4u);
  EXPECT_EQ(Captures(lines, R"(#quality_metric: host=\S+, epoch=\S+, validation \S+_objective <loss>=(\S+))")
                .size(),
            4u);
  const auto test_acc =
      Captures(lines, R"(#quality_metric: host=\S+, test binary_classification_accuracy <score>=(\S+))");
  ASSERT_EQ(test_acc.size(), 1u);
  EXPECT_EQ(std::stod(test_acc[0]), r.model.metrics["test:binary_classification_accuracy"]);
  for (const std::string metric : {"binary_f_\\S+", "precision", "recall", "roc_auc_score"}) {
    for (const std::string channel : {"train", "validation", "test"}) {
      EXPECT_EQ(
          Captures(lines, "#quality_metric: host=\\S+, " + channel + " " + metric + " <score>=(\\S+)").size(),
          1u)
          << channel << " " << metric;
    }
  }
  EXPECT_EQ(Captures(lines, R"(#quality_metric: host=\S+, test \S+_objective <loss>=(\S+))").size(), 1u);
  EXPECT_EQ(Captures(lines, R"(test binary_f_(1\.000) <score>)").size(), 1u);
  EXPECT_EQ(
      Captures(lines,
               R"(#early_stopping_criteria_metric: host=\S+, epoch=\S+, criteria=(accuracy), value=\S+)")
          .size(),
      4u);
  EXPECT_EQ(Captures(lines, R"(#progress_metric: host=\S+, completed (\S+) %)").back(), "100.0");
  EXPECT_EQ(Captures(lines, R"(#throughput_metric: host=\S+, train throughput=(\S+) records/second)").size(),
            4u);
  EXPECT_EQ(Captures(lines, R"(#test_score \(algo-1\) : \('(binary_classification_accuracy)', \S+\))").size(),
            1u);
  EXPECT_EQ(Captures(lines, R"(#metrics (\{.*"model":2.*\}))").size(), 4u);  // one per model per epoch
  EXPECT_EQ(Captures(lines, R"((Scaling model computed with parameters: \{'stdev_weight': \[))").size(), 1u);
  EXPECT_EQ(Captures(lines, R"(Best model found for hyperparameters: (\{.*\}))").size(), 1u);

  // Regressor and multiclass metric names.
  HostBatch reg = Generate(Linear("regression", 2000, 4, 42));
  Write(reg, dir_ / "reg.pbr");
  r = TrainLogged({{"train", {dir_ / "reg.pbr"}}, {"validation", {dir_ / "reg.pbr"}}}, dir_ / "reg",
                  {"predictor_type=regressor", "epochs=2"}, &lines);
  ASSERT_EQ(r.rc, 0);
  for (const std::string metric : {"mse", "rmse", "absolute_loss", "mse_objective"}) {
    EXPECT_EQ(Captures(lines, "#quality_metric: host=\\S+, validation " + metric + " <loss>=(\\S+)").size(),
              1u)
        << metric;
  }
  EXPECT_EQ(
      Captures(lines, R"(#early_stopping_criteria_metric: host=\S+, epoch=\S+, criteria=(mse_objective))")
          .size(),
      2u);
  HostBatch mc = Generate(Linear("multiclass", 2000, 4, 43, 0.1, 4));
  Write(mc, dir_ / "mc.pbr");
  r = TrainLogged({{"train", {dir_ / "mc.pbr"}}, {"test", {dir_ / "mc.pbr"}}}, dir_ / "mc",
                  {"predictor_type=multiclass_classifier", "num_classes=4", "epochs=2"}, &lines);
  ASSERT_EQ(r.rc, 0);
  for (const std::string metric : {"multiclass_accuracy", "multiclass_top_k_accuracy_3", "dcg", "macro_precision",
                                   "macro_recall", "macro_f_1.000"}) {
    EXPECT_EQ(Captures(lines, "#quality_metric: host=\\S+, test " + metric + " <score>=(\\S+)").size(), 1u)
        << metric;
  }
  EXPECT_EQ(
      Captures(lines, R"(#quality_metric: host=\S+, epoch=\S+, train (multiclass_cross_entropy)_objective)")
          .size(),
      2u);
  // Training without validation selects on the training sample.
  EXPECT_EQ(
      Captures(lines, R"(#early_stopping_criteria_metric: host=\S+, epoch=\S+, criteria=(sampled_\S+),)")
          .size(),
      2u);
}

TEST_F(LinearLearnerContract, EarlyStoppingEndsTrainingAfterPatienceEpochs) {
  // A relative improvement of 50% per epoch is never reached after the first epoch: epochs 1 and
  // 2 do not improve, so with patience 2 training stops after epoch 2 of 20.
  std::vector<std::string> lines;
  RunResult r = TrainLogged({{"train", {dir_ / "bin.pbr"}}}, dir_ / "m",
                            {"predictor_type=binary_classifier", "epochs=20", "early_stopping_patience=2",
                             "early_stopping_tolerance=0.5"},
                            &lines);
  ASSERT_EQ(r.rc, 0);
  const auto epochs = Captures(lines, R"(#early_stopping_criteria_metric: host=\S+, epoch=(\S+), )");
  EXPECT_EQ(epochs, (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(Captures(lines, R"((Early stop condition met))").size(), 1u);
  // Without the tolerance hurdle every epoch runs.
  r = TrainLogged({{"train", {dir_ / "bin.pbr"}}}, dir_ / "m2",
                  {"predictor_type=binary_classifier", "epochs=6", "early_stopping_patience=6"}, &lines);
  ASSERT_EQ(r.rc, 0);
  EXPECT_EQ(Captures(lines, R"(#early_stopping_criteria_metric: host=\S+, epoch=(\S+), )").size(), 6u);
}

}  // namespace
}  // namespace mlforge::ll_test
