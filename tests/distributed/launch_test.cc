// Training on several processes through the Gloo backend, as users run it: `mlforge launch -n N
// -- train ...` and `mlforge train` processes started with RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT.
//  - every algorithm on N ranks against one process (the in-process tests in tests/<algo> check
//    the same arithmetic on threads; these check the processes, sockets and files);
//  - ShardedByS3Key splits a directory's files between ranks; MLFORGE_REPLICATED_READS=all makes
//    every rank read everything (SageMaker's behaviour) and still gives the one-process answer;
//  - faults: SIGKILL, SIGSTOP and SIGTERM of one rank mid-epoch, and bad data on one rank: every
//    other rank fails within the deadline plus seconds, naming the rank, and no model is written.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "algos/factorization_machines/model.h"
#include "algos/kmeans/model.h"
#include "algos/linear_learner/model.h"
#include "algos/pca/model.h"
#include "core/build_config.h"
#include "tests/testutil.h"

namespace mlforge {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

int FreePort() { return test::FreeTcpPort(); }

void Cli(const test::TempDir& dir, const std::vector<std::string>& args) {
  test::CliResult r = test::RunCli(dir, args);
  ASSERT_EQ(r.code, 0) << r.err;
}

// launch -n N -- train ALGO ... ; returns the result (rank-prefixed output in err).
test::CliResult Launch(const test::TempDir& dir, int n, std::vector<std::string> train_args,
                       const std::vector<std::string>& launch_opts = {}) {
  std::vector<std::string> args = {"--threads", "1", "launch", "-n", std::to_string(n)};
  args.insert(args.end(), launch_opts.begin(), launch_opts.end());
  args.push_back("--");
  args.insert(args.end(), train_args.begin(), train_args.end());
  return test::RunCli(dir, args);
}

std::vector<std::string> Train(const std::string& algo, const std::string& train, const std::string& model_dir,
                               const std::vector<std::string>& hps, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> a = {"train", algo, "--train", train, "--model-dir", model_dir};
  for (const auto& h : hps) {
    a.push_back("--hp");
    a.push_back(h);
  }
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

void ExpectClose(const std::vector<float>& a, const std::vector<float>& b, double tol, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i], b[i], tol * std::max(1.0f, std::fabs(a[i]))) << what << " " << i;
  }
}

#if MLFORGE_HAVE_GLOO

const std::vector<std::string> kKMeansHps = {"k=5", "feature_dim=8", "mini_batch_size=500", "init_method=kmeans++",
                                             "full_batch_lloyd_iterations=100", "full_batch_lloyd_tol=0"};

TEST(Launch, KMeansOnThreeProcessesIsTheOneProcessModel) {
  test::TempDir dir;
  Cli(dir, {"data", "synth", "blobs", dir / "blobs.pbr", "--rows", "9000", "--cols", "8", "--k", "5", "--no-labels",
            "--no-truth"});
  Cli(dir, Train("kmeans", dir / "blobs.pbr", dir / "one", kKMeansHps));
  const auto one = algos::kmeans::LoadModel(dir / "one");
  test::CliResult r = Launch(dir, 3, Train("kmeans", dir / "blobs.pbr", dir / "three", kKMeansHps));
  ASSERT_EQ(r.code, 0) << r.err;
  // Every rank logged under its prefix; rank 0 alone wrote the model.
  for (int rank = 0; rank < 3; ++rank) {
    EXPECT_NE(r.err.find("[rank " + std::to_string(rank) + "] "), std::string::npos);
  }
  EXPECT_NE(r.err.find("Training finished in"), std::string::npos);
  EXPECT_NE(r.err.find("on rank 2 of 3; rank 0 writes the model"), std::string::npos) << r.err;
  const auto three = algos::kmeans::LoadModel(dir / "three");
  ExpectClose(one.centers, three.centers, 1e-4, "centers");
  EXPECT_NEAR(three.train_msd, one.train_msd, 1e-5 * one.train_msd);

  // SageMaker's FullyReplicated reading (every rank trains on every record): the same fixed point.
  ::setenv("MLFORGE_REPLICATED_READS", "all", 1);
  r = Launch(dir, 2, Train("kmeans", dir / "blobs.pbr", dir / "replicated", kKMeansHps));
  ::unsetenv("MLFORGE_REPLICATED_READS");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("FullyReplicated (every rank reads every record)"), std::string::npos);
  ExpectClose(one.centers, algos::kmeans::LoadModel(dir / "replicated").centers, 1e-4, "replicated centers");
}

TEST(Launch, ShardedByS3KeyGivesEachRankItsFiles) {
  test::TempDir dir;
  fs::create_directories(dir / "parts");
  // Five files of uneven sizes over three ranks: 2, 2 and 1 file(s), very different row counts.
  const int rows[5] = {4000, 300, 2500, 900, 1700};
  for (int i = 0; i < 5; ++i) {
    Cli(dir, {"data", "synth", "blobs", dir / ("parts/part" + std::to_string(i) + ".pbr"), "--rows",
              std::to_string(rows[i]), "--cols", "8", "--k", "5", "--seed", "7", "--no-labels", "--no-truth"});
  }
  // The same seed: every part draws from the same five centers.
  Cli(dir, Train("kmeans", dir / "parts", dir / "one", kKMeansHps));
  test::CliResult r =
      Launch(dir, 3, Train("kmeans", dir / "parts", dir / "three", kKMeansHps, {"--distribution", "train=ShardedByS3Key"}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("part0.pbr, " + (dir / "parts/part3.pbr")), std::string::npos) << r.err;  // rank 0: 0 and 3
  ExpectClose(algos::kmeans::LoadModel(dir / "one").centers, algos::kmeans::LoadModel(dir / "three").centers, 1e-4,
              "centers");
  // More ranks than files: the rank without one is told why, and the group fails cleanly.
  r = Launch(dir, 6, Train("kmeans", dir / "parts", dir / "six", kKMeansHps, {"--distribution", "train=ShardedByS3Key"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("ShardedByS3Key over 5 file(s), fewer than the 6 ranks, so rank 5 gets none"), std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dir / "six/model_algo-1"));
}

TEST(Launch, PcaLinearLearnerAndFactorizationMachinesOnTwoProcesses) {
  test::TempDir dir;
  // PCA: sums over ranks, so the components are the one-process ones.
  Cli(dir, {"data", "synth", "lowrank", dir / "low.pbr", "--rows", "6000", "--cols", "12", "--no-truth"});
  const std::vector<std::string> pca = {"feature_dim=12", "num_components=3", "mini_batch_size=500"};
  Cli(dir, Train("pca", dir / "low.pbr", dir / "pca1", pca));
  test::CliResult r = Launch(dir, 2, Train("pca", dir / "low.pbr", dir / "pca2", pca));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto p1 = algos::pca::LoadModel(dir / "pca1"), p2 = algos::pca::LoadModel(dir / "pca2");
  ExpectClose(p1.s, p2.s, 1e-4, "singular values");
  ASSERT_EQ(p1.v.size(), p2.v.size());
  for (int64_t c = 0; c < p1.components; ++c) {  // a component's sign is arbitrary
    double dot = 0;
    for (int64_t i = 0; i < p1.dim; ++i) dot += p1.v[i * p1.components + c] * p2.v[i * p1.components + c];
    EXPECT_NEAR(std::fabs(dot), 1.0, 1e-4) << "component " << c;
  }

  // Linear learner: 2 ranks x 250 rows per step = one process with 500-row mini-batches.
  Cli(dir, {"data", "synth", "linear", dir / "bin.pbr", "--rows", "4000", "--cols", "6", "--task", "binary",
            "--noise", "0.3", "--seed", "52", "--no-truth"});
  auto ll = [](int batch) {
    return std::vector<std::string>{"predictor_type=binary_classifier", "mini_batch_size=" + std::to_string(batch),
                                    "num_models=4", "epochs=3", "early_stopping_patience=10"};
  };
  Cli(dir, Train("linear-learner", dir / "bin.pbr", dir / "ll1", ll(500), {"--validation", dir / "bin.pbr"}));
  r = Launch(dir, 2, Train("linear-learner", dir / "bin.pbr", dir / "ll2", ll(250), {"--validation", dir / "bin.pbr"}));
  ASSERT_EQ(r.code, 0) << r.err;
  auto l1 = algos::linear_learner::LoadModel(dir / "ll1"), l2 = algos::linear_learner::LoadModel(dir / "ll2");
  ExpectClose(l1.weights, l2.weights, 1e-4, "weights");
  EXPECT_NEAR(l1.threshold, l2.threshold, 1e-5);
  EXPECT_NEAR(l2.metrics["validation:binary_classification_accuracy"],
              l1.metrics["validation:binary_classification_accuracy"], 1e-12);

  // Factorization machines: the ranks' row-sparse gradients are summed over the union of ids.
  Cli(dir, {"data", "synth", "fm", dir / "fm.pbr", "--rows", "3000", "--cols", "150", "--users", "60", "--items", "90", "--factors", "3",
            "--no-truth"});
  auto fmh = [](int batch) {
    return std::vector<std::string>{"feature_dim=150", "num_factors=4", "predictor_type=regressor", "epochs=2",
                                    "mini_batch_size=" + std::to_string(batch), "factors_init_sigma=0.1"};
  };
  Cli(dir, Train("factorization-machines", dir / "fm.pbr", dir / "fm1", fmh(200)));
  r = Launch(dir, 2, Train("factorization-machines", dir / "fm.pbr", dir / "fm2", fmh(100)));
  ASSERT_EQ(r.code, 0) << r.err;
  auto f1 = algos::factorization_machines::LoadModel(dir / "fm1");
  auto f2 = algos::factorization_machines::LoadModel(dir / "fm2");
  ExpectClose(f1.params.w, f2.params.w, 2e-5, "fm w");
  ExpectClose(f1.params.v, f2.params.v, 2e-5, "fm v");
}

// One `mlforge train` process as rank `rank` of `world` (stdout and stderr to `log`).
pid_t StartRank(int rank, int world, int port, const std::vector<std::string>& args, const std::string& log,
                const std::vector<std::pair<std::string, std::string>>& env = {}) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("RANK", std::to_string(rank).c_str(), 1);
    ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
    ::setenv("MASTER_ADDR", "127.0.0.1", 1);
    ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::string shell = "exec " + test::ShellQuote(test::kMlforgeBinary) + " --threads 1";
    for (const auto& a : args) shell += " " + test::ShellQuote(a);
    shell += " >" + test::ShellQuote(log) + " 2>&1 </dev/null";
    ::execl("/bin/sh", "sh", "-c", shell.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// Waits for `pid`; its exit code, 128 + signal, or -1 when it is still running at `deadline`.
int WaitUntil(pid_t pid, std::chrono::steady_clock::time_point deadline) {
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(20ms);
  }
  return -1;
}

bool WaitForText(const std::string& file, const std::string& text, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (fs::exists(file) && test::ReadFile(file).find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

class Faults : public ::testing::Test {
 protected:
  void SetUp() override {
    test::CliResult r = test::RunCli(dir_, {"data", "synth", "blobs", dir_ / "big.pbr", "--rows", "60000", "--cols",
                                            "10", "--no-labels", "--no-truth"});
    ASSERT_EQ(r.code, 0) << r.err;
  }

  // Three ranks of a long k-means job; rank `victim` gets `signal` once it logged epoch 2.
  // Returns each rank's exit code (-1: did not exit within the limit).
  std::vector<int> Run(int victim, int signal, int collective_timeout_s, double* seconds_after_signal) {
    const int port = FreePort();
    std::vector<pid_t> pids;
    for (int r = 0; r < 3; ++r) {
      pids.push_back(StartRank(r, 3, port,
                               Train("kmeans", dir_ / "big.pbr", dir_ / "model",
                                     {"k=8", "feature_dim=10", "epochs=400", "mini_batch_size=200"},
                                     {"--failure-file", Failure(r), "--collective-timeout",
                                      std::to_string(collective_timeout_s)}),
                               Log(r)));
    }
    EXPECT_TRUE(WaitForText(Log(victim), "epoch 2:", 60s)) << test::ReadFile(Log(victim));
    ::kill(pids[victim], signal);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<int> codes(3, -1);
    for (int r = 0; r < 3; ++r) {
      if (r == victim && signal == SIGSTOP) continue;
      codes[r] = WaitUntil(pids[r], t0 + std::chrono::seconds(collective_timeout_s + 45));
    }
    *seconds_after_signal = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (int r = 0; r < 3; ++r) {
      if (codes[r] == -1) {
        ::kill(pids[r], SIGKILL);
        ::waitpid(pids[r], nullptr, 0);
      }
    }
    return codes;
  }

  std::string Failure(int r) const { return dir_ / ("failure" + std::to_string(r)); }
  std::string Log(int r) const { return dir_ / ("rank" + std::to_string(r) + ".log"); }
  bool NoModel() const { return !fs::exists(dir_ / "model/model_algo-1"); }
  test::TempDir dir_;
};

TEST_F(Faults, SigkillOfOneRankFailsTheOthersNamingIt) {
  double s = 0;
  const std::vector<int> codes = Run(1, SIGKILL, 600, &s);
  EXPECT_EQ(codes[1], 128 + SIGKILL);
  for (int r : {0, 2}) {
    EXPECT_EQ(codes[r], 1) << test::ReadFile(Log(r));
    const std::string f = test::ReadFile(Failure(r));
    EXPECT_EQ(f.rfind("AlgorithmError: rank 1 (algo-2, ", 0), 0u) << f;
    EXPECT_NE(f.find("exited without a reason (killed, e.g. SIGKILL"), std::string::npos) << f;
    EXPECT_NE(f.find("in phase 'k-means epoch"), std::string::npos) << f;
  }
  EXPECT_LT(s, 15.0);  // noticed from the closed connections, not at the 600 s deadline
  EXPECT_TRUE(NoModel());
}

TEST_F(Faults, SigstopOfOneRankFailsTheOthersAtTheDeadline) {
  double s = 0;
  const std::vector<int> codes = Run(2, SIGSTOP, 3, &s);
  for (int r : {0, 1}) {
    EXPECT_EQ(codes[r], 1) << test::ReadFile(Log(r));
    const std::string f = test::ReadFile(Failure(r));
    EXPECT_EQ(f.rfind("AlgorithmError: rank 2 (algo-3, ", 0), 0u) << f;
    EXPECT_NE(f.find("within the 3 s deadline: stopped (e.g. SIGSTOP)"), std::string::npos) << f;
  }
  EXPECT_LT(s, 3 + 30.0);  // deadline + diagnosis (~4 s) + rank 0 keeping the store up (<= 5 s), with slack for load
  EXPECT_TRUE(NoModel());
}

TEST_F(Faults, SigtermOfOneRankStopsThemAll) {
  double s = 0;
  const std::vector<int> codes = Run(1, SIGTERM, 600, &s);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(codes[r], 143) << r << ": " << test::ReadFile(Log(r));
  EXPECT_EQ(test::ReadFile(Failure(1)), "Training stopped: SIGTERM received\n");
  for (int r : {0, 2}) {
    const std::string f = test::ReadFile(Failure(r));
    EXPECT_EQ(f.rfind("Training stopped: rank 1 (algo-2, ", 0), 0u) << f;
    EXPECT_NE(f.find("was stopped in phase 'k-means epoch"), std::string::npos) << f;
  }
  EXPECT_LT(s, 15.0);
  EXPECT_TRUE(NoModel());
}

TEST_F(Faults, BadDataOnOneRankIsAClientErrorOnEveryRank) {
  // Rank 2's share (ShardedByS3Key) is a truncated recordIO file.
  fs::create_directories(dir_ / "parts");
  const std::string good = test::ReadFile(dir_ / "big.pbr");
  test::WriteFile(dir_ / "parts/a.pbr", good);
  test::WriteFile(dir_ / "parts/b.pbr", good);
  test::WriteFile(dir_ / "parts/c.pbr", good.substr(0, good.size() / 2 + 3));
  const int port = FreePort();
  std::vector<pid_t> pids;
  for (int r = 0; r < 3; ++r) {
    pids.push_back(StartRank(r, 3, port,
                             Train("kmeans", dir_ / "parts", dir_ / "model", {"k=8", "feature_dim=10", "epochs=2"},
                                   {"--failure-file", Failure(r), "--distribution", "train=ShardedByS3Key"}),
                             Log(r)));
  }
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  for (int r = 0; r < 3; ++r) EXPECT_EQ(WaitUntil(pids[r], deadline), 2) << test::ReadFile(Log(r));
  const std::string own = test::ReadFile(Failure(2));
  EXPECT_EQ(own.rfind("ClientError: ", 0), 0u) << own;
  EXPECT_NE(own.find("c.pbr"), std::string::npos) << own;
  for (int r : {0, 1}) {
    const std::string f = test::ReadFile(Failure(r));
    EXPECT_EQ(f.rfind("ClientError: rank 2 (algo-3, ", 0), 0u) << f;
    EXPECT_NE(f.find("c.pbr"), std::string::npos) << f;  // the rank's own reason, quoted
  }
  EXPECT_TRUE(NoModel());
}

TEST(Launch, ExitStatusAndBadArguments) {
  test::TempDir dir;
  Cli(dir, {"data", "synth", "blobs", dir / "b.pbr", "--rows", "500", "--cols", "4", "--no-labels", "--no-truth"});
  // A bad hyperparameter: every rank refuses it (exit 2) and launch passes the status on.
  test::CliResult r = Launch(dir, 2, Train("kmeans", dir / "b.pbr", dir / "m", {"k=0", "feature_dim=4"}));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("launch: failed; first rank"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "m/model_algo-1"));
  r = test::RunCli(dir, {"launch", "-n", "0", "--", "info"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("launch -n 0: expected 1..1024 ranks"), std::string::npos) << r.err;
}

#else
TEST(Launch, Skipped) { GTEST_SKIP() << "this build has no Gloo (libgloo-dev): multi-process training is absent"; }
#endif

}  // namespace
}  // namespace mlforge
