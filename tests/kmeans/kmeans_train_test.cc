// k-means training end to end through the training runner (container::TrainLocal), checked
// against ground truth and float64 references computed here in memory:
//  - recovery of known blob centers (SageMaker's streaming semantics and the full-batch option);
//  - the full-batch result is a Lloyd fixed point of the in-memory data and its reported msd is
//    the float64 msd (streaming accumulation equals the in-memory computation);
//  - the model does not depend on how the data is split into files, on the thread count, or on
//    the format (CSV vs recordIO);
//  - the test channel's msd/ssd; epochs > 1; several full-batch trials never raise the inertia;
//  - every bad hyperparameter fails with its message, exit 2, a failure file and no model.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "algos/algorithms.h"
#include "algos/kmeans/config.h"
#include "algos/kmeans/model.h"
#include "container/train.h"
#include "core/batch.h"
#include "io/synth.h"
#include "tests/testutil.h"

namespace mlforge {
namespace {

namespace fs = std::filesystem;
using algos::kmeans::Model;

struct Data {
  int64_t n = 0, d = 0;
  std::vector<double> x;        // n x d, float64 copy of the float32 rows
  std::vector<int> labels;      // true cluster
  std::vector<double> centers;  // true centers (k x d)
};

io::SynthOptions Blobs(int64_t rows, int64_t cols, int k, double std_dev, uint64_t seed) {
  io::SynthOptions o;
  o.kind = io::SynthKind::kBlobs;
  o.rows = rows;
  o.cols = cols;
  o.k = k;
  o.cluster_std = std_dev;
  o.seed = seed;
  return o;
}

Data InMemory(const io::SynthOptions& o) {
  io::SynthGenerator gen(o);
  HostBatch b;
  gen.Fill(0, o.rows, &b);
  Data data;
  data.n = o.rows;
  data.d = o.cols;
  data.x.assign(b.values.begin(), b.values.end());
  for (float l : b.labels) data.labels.push_back(static_cast<int>(l));
  for (const auto& row : gen.Truth()["centers"]) {
    for (const auto& v : row) data.centers.push_back(v.get<double>());
  }
  return data;
}

struct RunResult {
  int rc = -1;
  std::string failure;
  Model model;
};

RunResult Train(const std::vector<std::string>& train_paths, const std::string& model_dir,
                std::vector<std::string> hps, const std::vector<std::string>& test_paths = {}, int threads = 2,
                const std::string& content_type = "") {
  container::LocalTrainArgs args;
  args.algorithm = "kmeans";
  args.channels["train"] = train_paths;
  if (!test_paths.empty()) args.channels["test"] = test_paths;
  if (!content_type.empty()) args.content_types["train"] = content_type;
  args.hyperparameters = std::move(hps);
  args.model_dir = model_dir;
  const test::LocalTrainRun run = test::TrainLocalForTests(std::move(args), threads);
  RunResult r{run.rc, run.failure, {}};
  if (r.rc == 0) r.model = algos::kmeans::LoadModel(model_dir);
  return r;
}

double Dist2(const double* a, const float* c, int64_t d) {
  double s = 0;
  for (int64_t t = 0; t < d; ++t) s += (a[t] - c[t]) * (a[t] - c[t]);
  return s;
}

// Nearest center (ties: lowest index) and the float64 sum of squared distances.
std::vector<int> Assign(const Data& data, const Model& m, double* cost) {
  std::vector<int> a(static_cast<size_t>(data.n));
  *cost = 0;
  for (int64_t i = 0; i < data.n; ++i) {
    double best = std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < m.k; ++j) {
      const double dd = Dist2(&data.x[i * data.d], m.center(j), data.d);
      if (dd < best) {
        best = dd;
        a[i] = static_cast<int>(j);
      }
    }
    *cost += best;
  }
  return a;
}

// Largest distance from a true center to its nearest learned center (each learned center used once).
double WorstCenterError(const Data& data, const Model& m) {
  const int64_t k = static_cast<int64_t>(data.centers.size()) / data.d;
  std::vector<int> perm(static_cast<size_t>(m.k));
  std::iota(perm.begin(), perm.end(), 0);
  double best = std::numeric_limits<double>::infinity();
  do {
    double worst = 0;
    for (int64_t j = 0; j < k; ++j) worst = std::max(worst, std::sqrt(Dist2(&data.centers[j * data.d], m.center(perm[j]), data.d)));
    best = std::min(best, worst);
  } while (std::next_permutation(perm.begin(), perm.end()));
  return best;
}

std::string Hp(const std::string& k, int64_t v) { return k + "=" + std::to_string(v); }

class KMeansTrain : public ::testing::Test {
 protected:
  void SetUp() override {
    opts_ = Blobs(6000, 5, 4, 0.5, 7);
    data_ = InMemory(opts_);
    io::WriteSynth(opts_, dir_ / "blobs.pbr", io::WriterOptions{}, false);
  }
  std::vector<std::string> Base(int k = 4) const { return {Hp("k", k), Hp("feature_dim", opts_.cols)}; }

  test::TempDir dir_;
  io::SynthOptions opts_;
  Data data_;
};

TEST_F(KMeansTrain, StreamingRecoversBlobCenters) {
  // SageMaker's defaults: random init, mini-batches of 5000 (here 1000), local Lloyd reduction.
  auto hps = Base();
  hps.push_back("mini_batch_size=1000");
  RunResult r = Train({dir_ / "blobs.pbr"}, dir_ / "m1", hps);
  ASSERT_EQ(r.rc, 0) << r.failure;
  ASSERT_EQ(r.model.k, 4);
  ASSERT_EQ(r.model.dim, 5);
  // Each center is estimated from ~1500 points with std 0.5 per coordinate: error ~0.03.
  EXPECT_LT(WorstCenterError(data_, r.model), 0.1);
}

TEST_F(KMeansTrain, FullBatchIsALloydFixedPointWithTheInMemoryMsd) {
  auto hps = Base();
  hps.insert(hps.end(), {"mini_batch_size=500", "init_method=kmeans++", "full_batch_lloyd_iterations=100",
                         "full_batch_lloyd_tol=0"});
  RunResult r = Train({dir_ / "blobs.pbr"}, dir_ / "m", hps);
  ASSERT_EQ(r.rc, 0) << r.failure;
  EXPECT_LT(WorstCenterError(data_, r.model), 0.05);
  double cost = 0;
  std::vector<int> a = Assign(data_, r.model, &cost);
  // The reported msd is the float64 msd of the in-memory data under the saved centers.
  EXPECT_NEAR(r.model.train_msd, cost / data_.n, 1e-6 * cost / data_.n);
  // One more Lloyd update in float64 moves no center (relative 1e-5).
  for (int64_t j = 0; j < r.model.k; ++j) {
    std::vector<double> sum(static_cast<size_t>(data_.d), 0.0);
    int64_t count = 0;
    for (int64_t i = 0; i < data_.n; ++i) {
      if (a[i] != j) continue;
      ++count;
      for (int64_t t = 0; t < data_.d; ++t) sum[t] += data_.x[i * data_.d + t];
    }
    ASSERT_GT(count, 0);
    for (int64_t t = 0; t < data_.d; ++t) {
      const double mean = sum[t] / count;
      EXPECT_NEAR(r.model.center(j)[t], mean, 1e-5 * std::max(1.0, std::abs(mean))) << "center " << j << " dim " << t;
    }
  }
  // The labels agree with the generating clusters (up to renaming).
  std::vector<std::vector<int>> table(4, std::vector<int>(4, 0));
  for (int64_t i = 0; i < data_.n; ++i) table[data_.labels[i]][a[i]]++;
  for (const auto& row : table) EXPECT_EQ(*std::max_element(row.begin(), row.end()), std::accumulate(row.begin(), row.end(), 0));
}

TEST_F(KMeansTrain, ModelDoesNotDependOnFilesThreadsOrFormat) {
  // The same rows as three files of a directory, as CSV, and with 1 vs 2 threads.
  io::SynthGenerator gen(opts_);
  fs::create_directories(dir_ / "split");
  const int64_t cuts[] = {0, 1700, 4100, opts_.rows};
  for (int f = 0; f < 3; ++f) {
    HostBatch b;
    gen.Fill(cuts[f], cuts[f + 1] - cuts[f], &b);
    auto w = io::MakeRowWriter(dir_ / ("split/part-" + std::to_string(f) + ".pbr"), io::WriterOptions{});
    w->Write(b);
    w->Close();
  }
  io::WriterOptions csv;
  csv.write_labels = false;
  io::WriteSynth(opts_, dir_ / "blobs.csv", csv, false);

  auto hps = Base();
  hps.insert(hps.end(), {"mini_batch_size=700", "init_method=kmeans++", "full_batch_lloyd_iterations=5"});
  RunResult one = Train({dir_ / "blobs.pbr"}, dir_ / "one", hps, {}, 2);
  RunResult split = Train({dir_ / "split"}, dir_ / "split_model", hps, {}, 2);
  RunResult single_thread = Train({dir_ / "blobs.pbr"}, dir_ / "t1", hps, {}, 1);
  RunResult from_csv = Train({dir_ / "blobs.csv"}, dir_ / "csv", hps, {}, 2, "text/csv;label_size=0");
  for (const RunResult* r : {&one, &split, &single_thread, &from_csv}) ASSERT_EQ(r->rc, 0) << r->failure;
  EXPECT_EQ(test::ReadFile(dir_ / "one/model_algo-1"), test::ReadFile(dir_ / "split_model/model_algo-1"));
  EXPECT_EQ(test::ReadFile(dir_ / "one/model_algo-1"), test::ReadFile(dir_ / "csv/model_algo-1"));
  // Thread count changes float summation order only.
  for (size_t i = 0; i < one.model.centers.size(); ++i) {
    EXPECT_NEAR(one.model.centers[i], single_thread.model.centers[i], 1e-4 * std::max(1.0f, std::abs(one.model.centers[i])));
  }
}

TEST_F(KMeansTrain, MoreFullBatchTrialsNeverRaiseTheInertia) {
  // Overlapping clusters and k = 6 > 4 true clusters: several local optima.
  io::SynthOptions o = Blobs(3000, 3, 4, 2.5, 11);
  io::WriteSynth(o, dir_ / "hard.pbr", io::WriterOptions{}, false);
  const Data data = InMemory(o);
  std::vector<std::string> hps = {"k=6", "feature_dim=3", "mini_batch_size=3000", "full_batch_lloyd_iterations=50"};
  RunResult single = Train({dir_ / "hard.pbr"}, dir_ / "single", hps);
  hps.push_back("full_batch_lloyd_trials=8");
  RunResult multi = Train({dir_ / "hard.pbr"}, dir_ / "multi", hps);
  ASSERT_EQ(single.rc, 0) << single.failure;
  ASSERT_EQ(multi.rc, 0) << multi.failure;
  double c1 = 0, c8 = 0;
  Assign(data, single.model, &c1);
  Assign(data, multi.model, &c8);
  EXPECT_LE(c8, c1 * (1 + 1e-6));
  EXPECT_NEAR(multi.model.train_msd, c8 / data.n, 1e-6 * c8 / data.n);
}

TEST_F(KMeansTrain, EpochsAndTestChannel) {
  auto hps = Base();
  hps.insert(hps.end(), {"mini_batch_size=1000", "epochs=3", "eval_metrics=[\"msd\",\"ssd\"]"});
  RunResult r = Train({dir_ / "blobs.pbr"}, dir_ / "m", hps, {dir_ / "blobs.pbr"});
  ASSERT_EQ(r.rc, 0) << r.failure;
  EXPECT_LT(WorstCenterError(data_, r.model), 0.1);
  // The test channel (here the training data) is scored exactly with the final centers.
  double cost = 0;
  Assign(data_, r.model, &cost);
  ASSERT_EQ(r.model.metrics.count("test:msd"), 1u);
  ASSERT_EQ(r.model.metrics.count("test:ssd"), 1u);
  EXPECT_NEAR(r.model.metrics["test:msd"], cost / data_.n, 1e-6 * cost / data_.n);
  EXPECT_NEAR(r.model.metrics["test:ssd"], cost, 1e-6 * cost);
  // train msd is SageMaker's: the weighted cost of the local Lloyd reduction over the streaming
  // centers (SPEC.md 4.2), which leaves out the spread within each streaming center.
  EXPECT_GT(r.model.train_msd, 0);
  EXPECT_LT(r.model.train_msd, cost / data_.n);
}

struct BadHp {
  std::vector<std::string> hps;  // replaces / adds to the base k=4, feature_dim=5
  std::string message;           // must appear in the failure reason
};

// A NaN feature in the training data stops the job with the file, line and column (exit 2 and the
// failure file, as any input error), never a model trained on it; the same rule as predict and
// the endpoint (tests/container/server_test.cc).
TEST_F(KMeansTrain, NonFiniteFeatureFailsNamingLineAndColumn) {
  std::string csv;
  for (int i = 0; i < 40; ++i) {
    csv += std::to_string(i % 3) + "," + std::to_string(i) + ",1,2,3," + (i == 27 ? "nan" : "4") + "\n";
  }
  test::WriteFile(dir_ / "nan.csv", csv);
  RunResult r = Train({dir_ / "nan.csv"}, dir_ / "nan_model", {"k=2", "feature_dim=5"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.failure.find("nan.csv: line 28"), std::string::npos) << r.failure;
  EXPECT_NE(r.failure.find("feature 4 (0-based column) is NaN"), std::string::npos) << r.failure;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "nan_model/model_algo-1"));
}

TEST_F(KMeansTrain, EveryBadHyperparameterFailsWithItsReason) {
  const std::vector<BadHp> cases = {
      {{"k=1"}, "'k'"},
      {{"k=abc"}, "'k'"},
      {{"k=-3"}, "'k'"},
      {{"feature_dim=0"}, "feature_dim"},
      {{"feature_dim=7"}, "7"},  // the data has 5 columns
      {{"mini_batch_size=0"}, "mini_batch_size"},
      {{"mini_batch_size=2"}, "mini_batch_size"},  // fewer rows per batch than k
      {{"epochs=0"}, "epochs"},
      {{"init_method=k-means++"}, "init_method"},
      {{"extra_center_factor=0"}, "extra_center_factor"},
      {{"extra_center_factor=x"}, "extra_center_factor"},
      {{"local_lloyd_init_method=best"}, "local_lloyd_init_method"},
      {{"local_lloyd_max_iter=0"}, "local_lloyd_max_iter"},
      {{"local_lloyd_num_trials=0"}, "local_lloyd_num_trials"},
      {{"local_lloyd_tol=1.5"}, "local_lloyd_tol"},
      {{"half_life_time_size=-1"}, "half_life_time_size"},
      {{"eval_metrics=[\"rmse\"]"}, "eval_metrics"},
      {{"eval_metrics=[]"}, "eval_metrics"},
      {{"force_dense=maybe"}, "force_dense"},
      {{"full_batch_lloyd_iterations=-1"}, "full_batch_lloyd_iterations"},
      {{"full_batch_lloyd_trials=3"}, "full_batch_lloyd_iterations"},
      {{"full_batch_lloyd_trials=0", "full_batch_lloyd_iterations=5"}, "full_batch_lloyd_trials"},
      {{"mini_batch_siz=100"}, "did you mean 'mini_batch_size'"},
  };
  for (const BadHp& c : cases) {
    std::vector<std::string> hps;
    bool has_k = false, has_dim = false;
    for (const auto& h : c.hps) {
      has_k |= h.rfind("k=", 0) == 0;
      has_dim |= h.rfind("feature_dim=", 0) == 0;
    }
    if (!has_k) hps.push_back("k=4");
    if (!has_dim) hps.push_back("feature_dim=5");
    hps.insert(hps.end(), c.hps.begin(), c.hps.end());
    SCOPED_TRACE(c.hps.front());
    RunResult r = Train({dir_ / "blobs.pbr"}, dir_ / "bad", hps);
    EXPECT_EQ(r.rc, container::kExitUserError);
    EXPECT_NE(r.failure.find(c.message), std::string::npos) << r.failure;
    EXPECT_FALSE(fs::exists(dir_ / "bad/model_algo-1"));
  }
  // Missing required hyperparameters.
  RunResult r = Train({dir_ / "blobs.pbr"}, dir_ / "bad", {"k=4"});
  EXPECT_EQ(r.rc, container::kExitUserError);
  EXPECT_NE(r.failure.find("feature_dim"), std::string::npos) << r.failure;
  r = Train({dir_ / "blobs.pbr"}, dir_ / "bad", {"feature_dim=5"});
  EXPECT_EQ(r.rc, container::kExitUserError);
  EXPECT_NE(r.failure.find("'k'"), std::string::npos) << r.failure;
  // More clusters than rows.
  io::WriteSynth(Blobs(3, 5, 2, 1.0, 1), dir_ / "tiny.pbr", io::WriterOptions{}, false);
  r = Train({dir_ / "tiny.pbr"}, dir_ / "bad", {"k=4", "feature_dim=5"});
  EXPECT_EQ(r.rc, container::kExitUserError);
  EXPECT_NE(r.failure.find("fewer than k"), std::string::npos) << r.failure;
}

TEST_F(KMeansTrain, FullBatchFromMemoryEqualsStreamingFromFiles) {
  auto hps = Base();
  hps.insert(hps.end(), {"mini_batch_size=400", "init_method=kmeans++", "full_batch_lloyd_iterations=20",
                         "full_batch_lloyd_trials=3"});
  RunResult cached = Train({dir_ / "blobs.pbr"}, dir_ / "cached", hps);
  hps.push_back("full_batch_cache_mb=0");  // 6000 x 5 floats = 0.12 MB > 0: every pass streams
  RunResult streamed = Train({dir_ / "blobs.pbr"}, dir_ / "streamed", hps);
  ASSERT_EQ(cached.rc, 0) << cached.failure;
  ASSERT_EQ(streamed.rc, 0) << streamed.failure;
  EXPECT_EQ(test::ReadFile(dir_ / "cached/model_algo-1"), test::ReadFile(dir_ / "streamed/model_algo-1"));
  EXPECT_EQ(cached.model.train_msd, streamed.model.train_msd);
}

TEST_F(KMeansTrain, HamerlyBoundsGiveTheModelOfExhaustivePasses) {
  // k >= 16 and the rows in memory: the full-batch passes keep Hamerly's bounds; with
  // MLFORGE_KMEANS_BOUNDS=off every pass computes every distance. Same model, byte for byte
  // (blobs: no row is within float32 rounding of a tie), for one and several trials.
  const io::SynthOptions o = Blobs(8000, 20, 24, 1.5, 11);
  io::WriteSynth(o, dir_ / "blobs24.pbr", io::WriterOptions{}, false);
  const std::vector<std::string> hps = {"k=24", "feature_dim=20", "mini_batch_size=1000", "init_method=kmeans++",
                                        "full_batch_lloyd_iterations=30", "full_batch_lloyd_tol=0",
                                        "full_batch_lloyd_trials=2"};
  RunResult bounded = Train({dir_ / "blobs24.pbr"}, dir_ / "bounded", hps);
  ::setenv("MLFORGE_KMEANS_BOUNDS", "off", 1);
  RunResult plain = Train({dir_ / "blobs24.pbr"}, dir_ / "plain", hps);
  ::setenv("MLFORGE_KMEANS_BOUNDS", "sometimes", 1);
  RunResult bad = Train({dir_ / "blobs24.pbr"}, dir_ / "bad", hps);
  ::unsetenv("MLFORGE_KMEANS_BOUNDS");
  ASSERT_EQ(bounded.rc, 0) << bounded.failure;
  ASSERT_EQ(plain.rc, 0) << plain.failure;
  EXPECT_EQ(test::ReadFile(dir_ / "bounded/model_algo-1"), test::ReadFile(dir_ / "plain/model_algo-1"));
  EXPECT_EQ(bounded.model.train_msd, plain.model.train_msd);
  EXPECT_EQ(bad.rc, container::kExitUserError);
  EXPECT_NE(bad.failure.find("MLFORGE_KMEANS_BOUNDS"), std::string::npos) << bad.failure;
  EXPECT_FALSE(fs::exists(dir_ / "bad/model.tar.gz"));
}

// Runs the mlforge binary and returns its exit code and peak resident memory in MB.
int RunBinary(const std::vector<std::string>& args, double* max_rss_mb) {
  std::vector<char*> argv;
  const std::string bin = MLFORGE_BINARY_DIR "/cli/mlforge";
  argv.push_back(const_cast<char*>(bin.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  *max_rss_mb = ru.ru_maxrss / 1024.0;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(KMeansTrain, DataLargerThanTheMemoryBudgetTrainsInBoundedMemory) {
  // 64 MB of float32 rows; mini-batches of 2000 rows (0.4 MB) and a 1 MB cache budget: training,
  // three full-batch passes and the test channel must stay far below the data size.
  io::SynthOptions o = Blobs(320000, 50, 4, 0.5, 3);
  o.batch_rows = 20000;
  io::WriteSynth(o, dir_ / "big.pbr", io::WriterOptions{}, false);
  const double data_mb = 320000.0 * 50 * 4 / (1 << 20);
  double rss = 0;
  const int rc = RunBinary({"--log-level", "warn", "--threads", "2", "train", "kmeans", "--train", dir_ / "big.pbr",
                            "--test", dir_ / "big.pbr", "--model-dir", dir_ / "big_model", "--hp", "k=4", "--hp",
                            "feature_dim=50", "--hp", "mini_batch_size=2000", "--hp", "full_batch_lloyd_iterations=3",
                            "--hp", "full_batch_cache_mb=1", "--device", "cpu"},
                           &rss);
  ASSERT_EQ(rc, 0);
  EXPECT_LT(rss, 48.0) << "peak RSS " << rss << " MB for " << data_mb << " MB of data";
  Model m = algos::kmeans::LoadModel(dir_ / "big_model");
  const Data truth = InMemory(Blobs(8, 50, 4, 0.5, 3));  // same seed: same centers
  EXPECT_LT(WorstCenterError(truth, m), 0.05);
}

TEST_F(KMeansTrain, ContainerContractWritesTheSameModelAsTheCommandLine) {
  // What the SageMaker SDK sends: every value a string, booleans capitalised, eval_metrics a
  // JSON list in a string, plus the platform's internal keys.
  const container::OptMlPaths p = container::ResolveOptMl(dir_ / "opt_ml");
  test::WriteFile(p.hyperparameters,
                  R"({"k": "4", "feature_dim": "5", "mini_batch_size": "1000", "init_method": "kmeans++",
                      "force_dense": "True", "eval_metrics": "[\"msd\", \"ssd\"]", "epochs": "2",
                      "_tuning_objective_metric": "test:msd"})");
  test::WriteFile(p.inputdataconfig,
                  R"({"train": {"ContentType": "application/x-recordio-protobuf", "TrainingInputMode": "File",
                                "S3DistributionType": "ShardedByS3Key", "RecordWrapperType": "RecordIO"},
                      "test": {"ContentType": "application/x-recordio-protobuf", "TrainingInputMode": "File",
                               "S3DistributionType": "FullyReplicated", "RecordWrapperType": "RecordIO"}})");
  test::WriteFile(p.resourceconfig, R"({"current_host": "algo-1", "hosts": ["algo-1"]})");
  fs::create_directories(p.data_dir + "/train");
  fs::create_directories(p.data_dir + "/test");
  fs::copy_file(dir_ / "blobs.pbr", p.data_dir + "/train/blobs.pbr");
  fs::copy_file(dir_ / "blobs.pbr", p.data_dir + "/test/blobs.pbr");
  const container::TrainOptions options = test::TrainOptionsForTests(DeviceRequest::kCpu, 2, "warn");
  ASSERT_EQ(container::RunContainerTrain(p.root, "kmeans", algos::BuiltinAlgorithms(), options), 0);
  EXPECT_FALSE(fs::exists(p.failure_file));

  RunResult local = Train({dir_ / "blobs.pbr"}, dir_ / "local",
                          {"k=4", "feature_dim=5", "mini_batch_size=1000", "init_method=kmeans++", "epochs=2"},
                          {dir_ / "blobs.pbr"});
  ASSERT_EQ(local.rc, 0) << local.failure;
  EXPECT_EQ(test::ReadFile(p.model_dir + "/model_algo-1"), test::ReadFile(dir_ / "local/model_algo-1"));
  const Model m = algos::kmeans::LoadModel(p.model_dir);
  EXPECT_EQ(m.metrics.count("test:ssd"), 1u);
  EXPECT_LT(WorstCenterError(data_, m), 0.1);

  // A bad value in the container: failure file, exit 2, no model.
  fs::remove_all(p.model_dir);
  test::WriteFile(p.hyperparameters, R"({"k": "4", "feature_dim": "5", "init_method": "furthest"})");
  EXPECT_EQ(container::RunContainerTrain(p.root, "kmeans", algos::BuiltinAlgorithms(), options),
            container::kExitUserError);
  EXPECT_NE(test::ReadFile(p.failure_file).find("init_method"), std::string::npos);
  EXPECT_FALSE(fs::exists(p.model_dir + "/model_algo-1"));
}

TEST(KMeansDocs, ReadmeHoldsTheHyperparameterTable) {
  // README.md's k-means table is the code's table (`mlforge info --hyperparameters kmeans`).
  const std::string readme = test::ReadFile(MLFORGE_SOURCE_DIR "/README.md");
  EXPECT_NE(readme.find(algos::kmeans::Hyperparameters().MarkdownTable()), std::string::npos)
      << "regenerate README's k-means table with: mlforge info --hyperparameters kmeans";
}

}  // namespace
}  // namespace mlforge
