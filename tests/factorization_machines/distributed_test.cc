// Factorization machines on several ranks (threads of one process on the in-process communicator
// group) against one process. FullyReplicated: rank r reads every world-th chunk of mini_batch_size
// records, so a group step covers the rows of one single-process mini-batch of world x size, and
// the row-sparse gradients summed over the union of the ranks' features must give the
// single-process model up to float summation order. Uneven ShardedByS3Key shares must train without
// blocking and reach the single-process quality.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "algos/factorization_machines/model.h"
#include "container/train.h"
#include "io/row_writer.h"
#include "io/synth.h"
#include "kernels/fm_step.h"
#include "tests/testutil.h"

namespace mlforge {
namespace {

namespace fm = algos::factorization_machines;

io::SynthOptions Synth(int64_t rows, uint64_t seed) {
  io::SynthOptions o;
  o.kind = io::SynthKind::kFm;
  o.rows = rows;
  o.users = 60;
  o.items = 90;
  o.cols = 150;
  o.factors = 3;
  o.noise = 0.1;
  o.seed = seed;
  return o;
}

void Write(const io::SynthOptions& o, int64_t from, int64_t to, const std::string& path) {
  io::SynthGenerator gen(o);
  HostBatch b;
  gen.Fill(from, to - from, &b);
  auto w = io::MakeRowWriter(path, {});
  w->Write(b);
  w->Close();
}

std::vector<std::string> Hps(int64_t batch, const std::string& optimizer) {
  return {"feature_dim=150", "num_factors=4", "predictor_type=regressor", "epochs=3",
          "mini_batch_size=" + std::to_string(batch), "_optimizer=" + optimizer, "linear_lr=0.02",
          "factors_lr=0.02", "factors_init_sigma=0.1"};
}

fm::Model TrainOne(const test::TempDir& dir, const std::string& data, const std::vector<std::string>& hps,
                   const std::string& name) {
  container::LocalTrainArgs args;
  args.algorithm = "factorization-machines";
  args.channels["train"] = {data};
  args.hyperparameters = hps;
  args.model_dir = dir / name;
  const test::LocalTrainRun r = test::TrainLocalForTests(args, 1);
  EXPECT_EQ(r.rc, 0) << r.failure;
  return fm::LoadModel(dir / name);
}

fm::Model TrainRanks(const test::TempDir& dir, int world, const std::vector<std::string>& paths,
                     const std::vector<std::string>& hps, bool sharded, const std::string& name) {
  container::LocalTrainArgs args;
  args.algorithm = "factorization-machines";
  args.hyperparameters = hps;
  if (sharded) args.sharded_by_key.insert("train");
  const std::vector<int> rcs = test::TrainRanksForTests(world, args, paths, dir / name);
  for (int r = 0; r < world; ++r) EXPECT_EQ(rcs[static_cast<size_t>(r)], 0) << "rank " << r;
  return fm::LoadModel(dir / name + "/rank0");
}

double MaxDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  return m;
}

TEST(FactorizationMachinesDistributed, FullyReplicatedRanksEqualOneProcess) {
  test::TempDir dir;
  Write(Synth(3000, 4), 0, 3000, dir / "train.pbr");
  for (const char* opt : {"adam", "sgd", "adagrad"}) {
    for (int world : {2, 3}) {
      SCOPED_TRACE(testing::Message() << opt << ", " << world << " ranks");
      const fm::Model one = TrainOne(dir, dir / "train.pbr", Hps(100 * world, opt), "one");
      const fm::Model many = TrainRanks(dir, world, {dir / "train.pbr"}, Hps(100, opt), false, "many");
      ASSERT_EQ(one.params.v.size(), many.params.v.size());
      EXPECT_LT(MaxDiff(one.params.v, many.params.v), 2e-5);
      EXPECT_LT(MaxDiff(one.params.w, many.params.w), 2e-5);
      EXPECT_NEAR(one.params.w0, many.params.w0, 2e-5);
    }
  }
}

TEST(FactorizationMachinesDistributed, UnevenShardedByKeyRanksTrainWithoutBlocking) {
  test::TempDir dir;
  const io::SynthOptions o = Synth(8000, 5);
  Write(o, 0, 900, dir / "part0.pbr");  // rank 0 runs out of data long before rank 1
  Write(o, 900, 8000, dir / "part1.pbr");
  Write(o, 0, 8000, dir / "all.pbr");
  const std::vector<std::string> hps = Hps(200, "adam");
  const fm::Model many = TrainRanks(dir, 2, {dir / "part0.pbr", dir / "part1.pbr"}, hps, true, "sk");
  const fm::Model one = TrainOne(dir, dir / "all.pbr", hps, "all");
  // Both fit the data about as well (the group's steps are fewer and larger at first).
  io::SynthGenerator gen(o);
  HostBatch b;
  gen.Fill(0, 8000, &b);
  auto mse = [&](const fm::Model& m) {
    std::vector<float> y(static_cast<size_t>(b.rows));
    kernels::FmForwardCpu(m.params, b, y.data(), nullptr, 1);
    double s = 0;
    for (int64_t i = 0; i < b.rows; ++i) s += (y[i] - b.labels[i]) * static_cast<double>(y[i] - b.labels[i]);
    return s / static_cast<double>(b.rows);
  };
  const double m_many = mse(many), m_one = mse(one);
  EXPECT_LT(m_many, 1.25 * m_one) << "group " << m_many << " vs one process " << m_one;
  double mean = 0, var = 0;
  for (float y : b.labels) mean += y;
  mean /= static_cast<double>(b.rows);
  for (float y : b.labels) var += (y - mean) * (y - mean);
  var /= static_cast<double>(b.rows);
  EXPECT_LT(m_many, 0.5 * var) << "the group learned: mse " << m_many << ", label variance " << var;
}

}  // namespace
}  // namespace mlforge
