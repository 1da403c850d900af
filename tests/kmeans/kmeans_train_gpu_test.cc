// k-means training and inference on the GPU against the CPU path, same data and seed:
// the same assignments except exact float32 near-ties, centers within 1e-4 relative, the same
// reported msd to 1e-5 relative. Skips with the reason when no GPU is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <vector>

#include "algos/algorithms.h"
#include "algos/kmeans/kmeans.h"
#include "algos/kmeans/model.h"
#include "comm/communicator.h"
#include "container/train.h"
#include "core/resources.h"
#include "io/synth.h"
#include "tests/testutil.h"

namespace mlforge {
namespace {

using algos::kmeans::Model;

Model TrainOn(const std::string& data, const std::string& model_dir, DeviceRequest device,
              const std::vector<std::string>& hps) {
  container::LocalTrainArgs args;
  args.algorithm = "kmeans";
  args.channels["train"] = {data};
  args.hyperparameters = hps;
  args.model_dir = model_dir;
  const container::TrainOptions options = test::TrainOptionsForTests(device, 2, "warn");
  EXPECT_EQ(container::TrainLocal(args, algos::BuiltinAlgorithms(), options), 0);
  return algos::kmeans::LoadModel(model_dir);
}

void ExpectSameModel(const Model& cpu, const Model& gpu) {
  ASSERT_EQ(cpu.k, gpu.k);
  ASSERT_EQ(cpu.dim, gpu.dim);
  for (size_t i = 0; i < cpu.centers.size(); ++i) {
    EXPECT_NEAR(gpu.centers[i], cpu.centers[i], 1e-4 * std::max(1.0f, std::abs(cpu.centers[i]))) << "value " << i;
  }
  EXPECT_NEAR(gpu.train_msd, cpu.train_msd, 1e-5 * cpu.train_msd);
}

struct Case {
  int64_t rows, cols;
  int k;
  std::vector<std::string> extra;
};

class KMeansTrainGpu : public ::testing::TestWithParam<Case> {};

TEST_P(KMeansTrainGpu, MatchesCpu) {
  MLF_REQUIRE_GPU();
  const Case& c = GetParam();
  test::TempDir dir;
  io::SynthOptions o;
  o.kind = io::SynthKind::kBlobs;
  o.rows = c.rows;
  o.cols = c.cols;
  o.k = c.k;
  o.cluster_std = 1.0;
  o.seed = 5;
  io::WriteSynth(o, dir / "x.pbr", io::WriterOptions{}, false);
  std::vector<std::string> hps = {"k=" + std::to_string(c.k), "feature_dim=" + std::to_string(c.cols)};
  hps.insert(hps.end(), c.extra.begin(), c.extra.end());
  const Model cpu = TrainOn(dir / "x.pbr", dir / "cpu", DeviceRequest::kCpu, hps);
  const Model gpu = TrainOn(dir / "x.pbr", dir / "gpu", DeviceRequest::kGpu, hps);
  ExpectSameModel(cpu, gpu);

  // Inference: the same clusters, distances within 1e-5 relative, on the GPU and the CPU.
  io::SynthGenerator gen(o);
  HostBatch batch;
  gen.Fill(0, std::min<int64_t>(c.rows, 20000), &batch);
  batch.labels.clear();
  Resources cpu_res(DeviceRequest::kCpu, 2, 0, comm::MakeSingleProcess());
  Resources gpu_res(DeviceRequest::kGpu, 2, 0, comm::MakeSingleProcess());
  const auto pc = algos::kmeans::Predict(cpu, batch, cpu_res);
  const auto pg = algos::kmeans::Predict(cpu, batch, gpu_res);
  int64_t differ = 0;
  for (size_t i = 0; i < pc.closest_cluster.size(); ++i) {
    if (pc.closest_cluster[i] != pg.closest_cluster[i]) ++differ;
    EXPECT_NEAR(pg.distance_to_cluster[i], pc.distance_to_cluster[i], 1e-5 * std::max(1.0f, pc.distance_to_cluster[i]));
  }
  // Well-separated blobs have no near-ties.
  EXPECT_EQ(differ, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, KMeansTrainGpu,
    ::testing::Values(Case{20000, 16, 20, {"mini_batch_size=2000"}},
                      Case{20000, 16, 8, {"init_method=kmeans++", "full_batch_lloyd_iterations=20"}},
                      Case{6000, 100, 50, {"mini_batch_size=3000", "full_batch_lloyd_iterations=5"}}));

}  // namespace
}  // namespace mlforge
