// Linear learner with several ranks (threads of one process on the in-process communicator group)
// against one process. With FullyReplicated data the ranks split the records chunk by chunk, so
// a group step of W ranks x b rows covers exactly the rows of one single-process mini-batch of
// W x b rows: the gradient sums, the scaler sample, the training sample used for selection and the
// calibration samples are the same sets of rows, and the model must be the single-process model
// up to float summation order. Uneven ShardedByS3Key shares must train without blocking.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/linear_learner/train_util.h"

namespace mlforge::ll_test {
namespace {

// Trains on `world` ranks; rank r reads paths[r] (or paths[0] for every rank: FullyReplicated).
// Returns rank 0's model; every rank must succeed.
Model TrainRanks(int world, const std::vector<std::string>& paths, const std::string& model_root,
                 const std::vector<std::string>& hps, bool sharded_by_key,
                 const std::string& validation = "") {
  container::LocalTrainArgs args;
  args.algorithm = "linear-learner";
  if (!validation.empty()) args.channels["validation"] = {validation};
  if (sharded_by_key) args.sharded_by_key.insert("train");
  args.hyperparameters = hps;
  const std::vector<int> rcs = test::TrainRanksForTests(world, args, paths, model_root);
  for (int r = 0; r < world; ++r) EXPECT_EQ(rcs[static_cast<size_t>(r)], 0) << "rank " << r;
  return algos::linear_learner::LoadModel(model_root + "/rank0");
}

void ExpectSameModel(const Model& a, const Model& b, double tol) {
  ASSERT_EQ(a.weights.size(), b.weights.size());
  for (size_t i = 0; i < a.weights.size(); ++i) {
    EXPECT_NEAR(a.weights[i], b.weights[i], tol * std::max(1.0f, std::fabs(a.weights[i]))) << i;
  }
  for (size_t i = 0; i < a.bias.size(); ++i)
    EXPECT_NEAR(a.bias[i], b.bias[i], tol * std::max(1.0f, std::fabs(a.bias[i])));
}

std::vector<std::string> Hps(const std::string& predictor, int64_t batch) {
  return {"predictor_type=" + predictor, "mini_batch_size=" + std::to_string(batch), "num_models=4",
          "epochs=3", "early_stopping_patience=10"};
}

TEST(LinearLearnerDistributed, FullyReplicatedRanksEqualOneProcess) {
  test::TempDir dir;
  const HostBatch reg = Generate(Linear("regression", 4000, 6, 51, 0.2));
  Write(reg, dir / "reg.pbr");
  const HostBatch bin = Generate(Linear("binary", 4000, 6, 52, 0.3));
  Write(bin, dir / "bin.pbr");
  for (int world : {2, 4}) {
    SCOPED_TRACE(world);
    // Regressor, selection on the training sample (all rows on every rank count).
    RunResult single =
        Train({{"train", {dir / "reg.pbr"}}}, dir / "single_reg", Hps("regressor", 250 * world), 1);
    ASSERT_EQ(single.rc, 0) << single.failure;
    Model m = TrainRanks(world, {dir / "reg.pbr"}, dir / ("reg" + std::to_string(world)),
                         Hps("regressor", 250), false);
    ExpectSameModel(single.model, m, 1e-4);
    EXPECT_NEAR(m.metrics["train:mse"], single.model.metrics["train:mse"], 1e-6);
    // Binary with a validation channel: the threshold is calibrated on every rank's share.
    single = Train({{"train", {dir / "bin.pbr"}}, {"validation", {dir / "bin.pbr"}}}, dir / "single_bin",
                   Hps("binary_classifier", 250 * world), 1);
    ASSERT_EQ(single.rc, 0) << single.failure;
    m = TrainRanks(world, {dir / "bin.pbr"}, dir / ("bin" + std::to_string(world)),
                   Hps("binary_classifier", 250), false, dir / "bin.pbr");
    ExpectSameModel(single.model, m, 1e-4);
    EXPECT_NEAR(m.threshold, single.model.threshold, 1e-5);
    EXPECT_NEAR(m.metrics["validation:binary_classification_accuracy"],
                single.model.metrics["validation:binary_classification_accuracy"], 1e-12);
  }
}

TEST(LinearLearnerDistributed, UnevenShardedByKeyRanksTrain) {
  test::TempDir dir;
  const HostBatch b = Generate(Linear("regression", 5000, 5, 53));
  Write(Rows(b, 0, 700), dir / "part0.pbr");  // rank 0 runs out of data first
  Write(Rows(b, 700, 5000), dir / "part1.pbr");
  const Model m =
      TrainRanks(2, {dir / "part0.pbr", dir / "part1.pbr"}, dir / "sk", {"predictor_type=regressor"}, true);
  // Fits all the data as well as least squares does (noise variance 0.01).
  const Data data = ToData(b);
  const std::vector<double> ols = LeastSquares(data);
  Model ols_model = m;
  for (int64_t j = 0; j < 5; ++j) ols_model.weights[j] = static_cast<float>(ols[j]);
  ols_model.bias[0] = static_cast<float>(ols[5]);
  EXPECT_LT(Mse(m, data), 1.02 * Mse(ols_model, data));
}

}  // namespace
}  // namespace mlforge::ll_test
