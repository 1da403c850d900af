// The linear learner loss-and-gradient step on the GPU (kernels/linear_loss.cu through
// LinearLossStepper) against the CPU twin (itself checked against float64 references in
// linear_loss_test.cc), for every loss, m > 1 models, with and without bias, row weights and
// positive weights, dense and CSR (tiled) batches; then training end to end with --device gpu
// against --device cpu on the same seed: the same selected model and metrics within 1e-3.
// Tolerances: scores 1e-5 relative (float32 GEMMs with different summation orders); loss and
// weight sums 1e-5 relative (float64 per element on both); gradients 1e-4 of sum |g x|.
// Skips with the reason when no GPU is usable.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>
#include <random>
#include <vector>

#include "comm/communicator.h"
#include "core/build_config.h"
#include "core/resources.h"
#include "kernels/linear_loss.h"
#include "tests/linear_learner/train_util.h"

namespace mlforge {
namespace {

using kernels::LinearLossKind;

struct Problem {
  HostBatch batch;
  std::vector<float> w, bias, pos;
  int64_t d = 0, m = 0, k = 1;
};

Problem Make(int64_t n, int64_t d, int64_t m, int64_t k, LinearLossKind kind, double density, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<double> u(0, 1);
  Problem p;
  p.d = d;
  p.m = m;
  p.k = k;
  p.w.resize(d * m * k);
  for (auto& v : p.w) v = 0.3f * nd(rng);
  p.bias.resize(m * k);
  for (auto& v : p.bias) v = nd(rng);
  p.pos.resize(m);
  for (auto& v : p.pos) v = static_cast<float>(0.5 + 2 * u(rng));
  HostBatch& b = p.batch;
  b.rows = n;
  b.cols = d;
  b.layout = density < 1 ? Layout::kCsr : Layout::kDense;
  if (density < 1) b.indptr.push_back(0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) {
      const float v = nd(rng);
      if (density >= 1) {
        b.values.push_back(v);
      } else if (u(rng) < density) {
        b.indices.push_back(static_cast<uint32_t>(j));
        b.values.push_back(v);
      }
    }
    if (density < 1) b.indptr.push_back(static_cast<int64_t>(b.values.size()));
    const bool binary = kind == LinearLossKind::kLogistic || kind == LinearLossKind::kHinge;
    b.labels.push_back(kind == LinearLossKind::kSoftmax ? static_cast<float>(rng() % k)
                       : binary                         ? static_cast<float>(rng() % 2)
                                                        : nd(rng));
    b.weights.push_back(static_cast<float>(0.5 + u(rng)));
  }
  return p;
}

struct Out {
  std::vector<float> scores, gw, gb;
  std::vector<double> loss, wsum;
};

Out RunStep(Resources& res, const Problem& p, const kernels::LinearLossSpec& spec, bool bias, bool weights) {
  kernels::LinearLossStepper stepper(res);
  const int64_t n = p.batch.rows, mk = p.m * p.k;
  Out o;
  o.scores.resize(n * mk);
  o.gw.resize(p.d * mk);
  o.gb.resize(mk);
  o.loss.resize(p.m);
  o.wsum.resize(p.m);
  kernels::HostLinearModels models{p.w.data(), bias ? p.bias.data() : nullptr, p.d, p.m, p.k, p.pos.data()};
  kernels::HostLinearLossOutput out{o.scores.data(), o.loss.data(), o.wsum.data(), o.gw.data(), o.gb.data()};
  stepper.Run(p.batch, p.batch.labels.data(), weights ? p.batch.weights.data() : nullptr, models, spec, out);
  return o;
}

TEST(LinearLossGpu, MatchesCpuForEveryLossDenseAndCsr) {
  MLF_REQUIRE_GPU();
  Resources gpu(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  Resources cpu(DeviceRequest::kCpu, 0, 0, comm::MakeSingleProcess());
  const LinearLossKind kinds[] = {LinearLossKind::kLogistic,
                                  LinearLossKind::kSquared,
                                  LinearLossKind::kAbsolute,
                                  LinearLossKind::kHinge,
                                  LinearLossKind::kEpsInsensitiveSquared,
                                  LinearLossKind::kEpsInsensitiveAbsolute,
                                  LinearLossKind::kQuantile,
                                  LinearLossKind::kHuber,
                                  LinearLossKind::kSoftmax};
  for (LinearLossKind kind : kinds) {
    for (double density : {1.0, 0.2}) {
      for (bool extras : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "loss " << static_cast<int>(kind) << " density " << density
                                          << " bias/weights " << extras);
        const int64_t k = kind == LinearLossKind::kSoftmax ? 5 : 1;
        const Problem p = Make(1037, 45, 7, k, kind, density, 11 + static_cast<int>(kind));
        kernels::LinearLossSpec spec;
        spec.kind = kind;
        spec.margin = 0.8;
        spec.quantile = 0.3;
        spec.epsilon = 0.2;
        spec.huber_delta = 0.7;
        const Out a = RunStep(cpu, p, spec, extras, extras), b = RunStep(gpu, p, spec, extras, extras);
        for (size_t i = 0; i < a.scores.size(); ++i) {
          ASSERT_NEAR(b.scores[i], a.scores[i], 1e-5 * (1 + std::fabs(a.scores[i]))) << "score " << i;
        }
        for (int64_t j = 0; j < p.m; ++j) {
          EXPECT_NEAR(b.loss[j], a.loss[j], 1e-5 * (1 + std::fabs(a.loss[j])));
          EXPECT_NEAR(b.wsum[j], a.wsum[j], 1e-9 * a.wsum[j]);
        }
        double scale = 0;
        for (float v : a.gw) scale = std::max(scale, static_cast<double>(std::fabs(v)));
        for (size_t i = 0; i < a.gw.size(); ++i)
          EXPECT_NEAR(b.gw[i], a.gw[i], 1e-4 * (1 + scale)) << "grad " << i;
        for (size_t i = 0; i < a.gb.size(); ++i)
          EXPECT_NEAR(b.gb[i], a.gb[i], 1e-4 * (1 + std::fabs(a.gb[i])));
      }
    }
  }
}

ll_test::Model TrainOn(const std::string& data, const std::string& model_dir, DeviceRequest device,
                       const std::vector<std::string>& hps) {
  container::LocalTrainArgs args;
  args.algorithm = "linear-learner";
  args.channels["train"] = {data};
  args.channels["validation"] = {data};
  args.hyperparameters = hps;
  args.model_dir = model_dir;
  const container::TrainOptions options = test::TrainOptionsForTests(device, 2, "warn");
  EXPECT_EQ(container::TrainLocal(args, algos::BuiltinAlgorithms(), options), 0);
  return algos::linear_learner::LoadModel(model_dir);
}

TEST(LinearLearnerTrainGpu, SameSelectedModelAndMetricsAsCpu) {
  MLF_REQUIRE_GPU();
  test::TempDir dir;
  struct Case {
    std::string task;
    std::vector<std::string> hps;
  };
  for (const Case& c : {Case{"binary", {"predictor_type=binary_classifier"}},
                        Case{"regression", {"predictor_type=regressor"}},
                        Case{"multiclass", {"predictor_type=multiclass_classifier", "num_classes=4"}}}) {
    SCOPED_TRACE(c.task);
    const HostBatch b = ll_test::Generate(ll_test::Linear(c.task, 8000, 12, 61, 0.3, 4));
    ll_test::Write(b, dir / (c.task + ".pbr"));
    std::vector<std::string> hps = c.hps;
    hps.insert(hps.end(), {"epochs=5", "num_models=8"});
    const auto cpu = TrainOn(dir / (c.task + ".pbr"), dir / (c.task + "_cpu"), DeviceRequest::kCpu, hps);
    const auto gpu = TrainOn(dir / (c.task + ".pbr"), dir / (c.task + "_gpu"), DeviceRequest::kGpu, hps);
    for (const auto& [name, value] : cpu.metrics) {
      ASSERT_EQ(gpu.metrics.count(name), 1u) << name;
      EXPECT_NEAR(gpu.metrics.at(name), value, 1e-3 * std::max(1.0, std::fabs(value))) << name;
    }
    for (size_t i = 0; i < cpu.weights.size(); ++i) {
      EXPECT_NEAR(gpu.weights[i], cpu.weights[i], 1e-3 * std::max(1.0f, std::fabs(cpu.weights[i]))) << i;
    }
  }
}

void ExpectSameModel(const ll_test::Model& a, const ll_test::Model& b, double tol) {
  ASSERT_FALSE(a.weights.empty());
  ASSERT_FALSE(a.metrics.empty());
  for (const auto& [name, value] : a.metrics) {
    ASSERT_EQ(b.metrics.count(name), 1u) << name;
    EXPECT_NEAR(b.metrics.at(name), value, tol * std::max(1.0, std::fabs(value))) << name;
  }
  ASSERT_EQ(a.weights.size(), b.weights.size());
  for (size_t i = 0; i < a.weights.size(); ++i) {
    EXPECT_NEAR(b.weights[i], a.weights[i], tol * std::max(1.0f, std::fabs(a.weights[i]))) << i;
  }
}

// Two ranks of binary linear learner training on shards of `rows` rows (rank 0 gets `split`),
// once with both on the CPU and once with `devices`; the two rank-0 models must agree.
void ExpectTwoRanksMatchTwoCpuRanks(int64_t rows, int64_t split, uint64_t seed, const std::vector<std::string>& hps,
                                    const std::vector<DeviceRequest>& devices) {
  test::TempDir dir;
  const HostBatch b = ll_test::Generate(ll_test::Linear("binary", rows, 12, seed, 0.3, 4));
  ll_test::Write(ll_test::Rows(b, 0, split), dir / "part0.pbr");
  ll_test::Write(ll_test::Rows(b, split, rows), dir / "part1.pbr");
  container::LocalTrainArgs args;
  args.algorithm = "linear-learner";
  args.hyperparameters = hps;
  args.sharded_by_key.insert("train");
  const std::vector<std::string> parts = {dir / "part0.pbr", dir / "part1.pbr"};
  const std::vector<int> cpu_rc = test::TrainRanksForTests(2, args, parts, dir / "cpu", DeviceRequest::kCpu);
  const std::vector<int> dev_rc = test::TrainRanksForTests(2, args, parts, dir / "dev", devices);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(cpu_rc[r], 0) << "cpu rank " << r;
    EXPECT_EQ(dev_rc[r], 0) << "device rank " << r;
  }
  ExpectSameModel(algos::linear_learner::LoadModel(dir / "cpu/rank0"),
                  algos::linear_learner::LoadModel(dir / "dev/rank0"), 1e-3);
}

TEST(LinearLearnerTrainGpu, TwoRanksSumTheirStepsOnTheDevicesAsTwoCpuRanksOnTheHost) {
  // Two in-process ranks on the one GPU: they share it, so their step sums go through the
  // host-staged device communicator (NCCL refuses two ranks on one device); the same
  // RunReduced path as NCCL's otherwise. Rank 1 has fewer rows (uneven shards) and joins the sums
  // with zeros once it ran out. Against two CPU ranks summing on the host.
  MLF_REQUIRE_GPU();
  ExpectTwoRanksMatchTwoCpuRanks(6000, 3600, 62,
                                 {"predictor_type=binary_classifier", "epochs=4", "num_models=8", "mini_batch_size=200"},
                                 {DeviceRequest::kGpu, DeviceRequest::kGpu});
}

TEST(LinearLearnerTrainGpu, ARankOnTheCpuBesideARankOnTheGpuSumsThroughTheHost) {
  // Device auto on a host without a usable GPU trains that rank on its CPU. The ranks agree (one
  // all-reduce of a flag) that not every rank is on a GPU, and all sum through the host: the
  // model of two CPU ranks, where taking different paths would wait at the deadline.
  MLF_REQUIRE_GPU();
  ExpectTwoRanksMatchTwoCpuRanks(4000, 2000, 64,
                                 {"predictor_type=binary_classifier", "epochs=3", "num_models=4", "mini_batch_size=200"},
                                 {DeviceRequest::kGpu, DeviceRequest::kCpu});
}

TEST(LinearLearnerTrainGpu, OneRankThroughTheDeviceSumsEqualsThePlainStep) {
  // MLFORGE_DEVICE_REDUCE makes a single rank take the summed-step path (RunReduced): through NCCL
  // (world size 1) when the build has it, and staged through the host. Each must give the plain
  // GPU step's model (an identity sum; the scaler's map comes after it instead of before).
  MLF_REQUIRE_GPU();
  test::TempDir dir;
  const HostBatch b = ll_test::Generate(ll_test::Linear("multiclass", 4000, 10, 63, 0.3, 3));
  ll_test::Write(b, dir / "train.pbr");
  const std::vector<std::string> hps = {"predictor_type=multiclass_classifier", "num_classes=3", "epochs=3",
                                        "num_models=4"};
  const ll_test::Model plain = TrainOn(dir / "train.pbr", dir / "plain", DeviceRequest::kGpu, hps);
  std::vector<std::string> ways = {"host"};
#if MLFORGE_HAVE_NCCL
  ways.push_back("nccl");
#endif
  for (const std::string& way : ways) {
    SCOPED_TRACE(way);
    test::ScopedEnv env("MLFORGE_DEVICE_REDUCE", way.c_str());
    ExpectSameModel(plain, TrainOn(dir / "train.pbr", dir / ("via_" + way), DeviceRequest::kGpu, hps), 1e-5);
  }
}

}  // namespace
}  // namespace mlforge
