// k-means with several ranks (threads of one process on the in-process communicator group)
// against the single-process run: every cross-rank sum goes through the Communicator, so the
// full-batch result (a Lloyd fixed point of all the data) and its msd must be the single-process
// ones, whichever way the data is split between the ranks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "algos/algorithms.h"
#include "algos/kmeans/model.h"
#include "container/train.h"
#include "io/synth.h"
#include "tests/testutil.h"

namespace mlforge {
namespace {

using algos::kmeans::Model;

const std::vector<std::string> kHps = {"k=5",
                                       "feature_dim=8",
                                       "mini_batch_size=500",
                                       "init_method=kmeans++",
                                       "full_batch_lloyd_iterations=100",
                                       "full_batch_lloyd_tol=0"};

// Trains on `world` ranks; rank r reads channel_paths[r] (or channel_paths[0] for all ranks when
// there is one entry: FullyReplicated). Returns rank 0's model.
Model TrainRanks(int world, const std::vector<std::string>& channel_paths, const std::string& model_root,
                 bool sharded_by_key) {
  container::LocalTrainArgs args;
  args.algorithm = "kmeans";
  if (sharded_by_key) args.sharded_by_key.insert("train");
  args.hyperparameters = kHps;
  const std::vector<int> rcs = test::TrainRanksForTests(world, args, channel_paths, model_root);
  for (int r = 0; r < world; ++r) EXPECT_EQ(rcs[static_cast<size_t>(r)], 0) << "rank " << r;
  return algos::kmeans::LoadModel(model_root + "/rank0");
}

// Centers equal up to permutation, 1e-4 relative.
void ExpectSameCenters(const Model& a, const Model& b) {
  ASSERT_EQ(a.k, b.k);
  ASSERT_EQ(a.dim, b.dim);
  std::vector<bool> used(static_cast<size_t>(b.k), false);
  for (int64_t i = 0; i < a.k; ++i) {
    int64_t best = -1;
    double best_d = 1e300;
    for (int64_t j = 0; j < b.k; ++j) {
      if (used[static_cast<size_t>(j)]) continue;
      double dd = 0;
      for (int64_t t = 0; t < a.dim; ++t) dd += std::pow(a.center(i)[t] - b.center(j)[t], 2);
      if (dd < best_d) best_d = dd, best = j;
    }
    ASSERT_GE(best, 0);
    used[static_cast<size_t>(best)] = true;
    for (int64_t t = 0; t < a.dim; ++t) {
      EXPECT_NEAR(a.center(i)[t], b.center(best)[t], 1e-4 * std::max(1.0f, std::abs(a.center(i)[t])));
    }
  }
}

class KMeansDistributed : public ::testing::Test {
 protected:
  void SetUp() override {
    o_.kind = io::SynthKind::kBlobs;
    o_.rows = 6000;
    o_.cols = 8;
    o_.k = 5;
    o_.cluster_std = 0.7;
    o_.seed = 21;
    io::WriteSynth(o_, dir_ / "all.pbr", io::WriterOptions{}, false);
    container::LocalTrainArgs args;
    args.algorithm = "kmeans";
    args.channels["train"] = {dir_ / "all.pbr"};
    args.hyperparameters = kHps;
    args.model_dir = dir_ / "single";
    ASSERT_EQ(test::TrainLocalForTests(args, 1).rc, 0);
    single_ = algos::kmeans::LoadModel(dir_ / "single");
  }
  test::TempDir dir_;
  io::SynthOptions o_;
  Model single_;
};

TEST_F(KMeansDistributed, FullyReplicatedRanksShardRecordsAndMatchOneProcess) {
  for (int world : {2, 3}) {
    SCOPED_TRACE(world);
    Model m = TrainRanks(world, {dir_ / "all.pbr"}, dir_ / ("fr" + std::to_string(world)), false);
    ExpectSameCenters(single_, m);
    EXPECT_NEAR(m.train_msd, single_.train_msd, 1e-6 * single_.train_msd);
  }
}

TEST_F(KMeansDistributed, ShardedByKeyRanksWithUnevenFilesMatchOneProcess) {
  // Rank 0 gets 1,000 rows and rank 1 gets 5,000: the ranks run out of data at different steps.
  io::SynthGenerator gen(o_);
  HostBatch b;
  gen.Fill(0, 1000, &b);
  auto w0 = io::MakeRowWriter(dir_ / "part0.pbr", io::WriterOptions{});
  w0->Write(b);
  w0->Close();
  gen.Fill(1000, 5000, &b);
  auto w1 = io::MakeRowWriter(dir_ / "part1.pbr", io::WriterOptions{});
  w1->Write(b);
  w1->Close();
  Model m = TrainRanks(2, {dir_ / "part0.pbr", dir_ / "part1.pbr"}, dir_ / "sk", true);
  ExpectSameCenters(single_, m);
  EXPECT_NEAR(m.train_msd, single_.train_msd, 1e-6 * single_.train_msd);
}

}  // namespace
}  // namespace mlforge
