#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "algos/factorization_machines/config.h"
#include "algos/factorization_machines/factorization_machines.h"
#include "comm/communicator.h"
#include "core/error.h"
#include "core/log.h"
#include "core/resources.h"
#include "io/batch_stream.h"
#include "io/format.h"
#include "io/input_file.h"
#include "kernels/fm_step.h"
#include "kernels/pca_accumulate.h"  // SplitMix64

namespace mlforge::algos::factorization_machines {
namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

// SageMaker's FM trains on recordIO-protobuf only; mlforge also takes libsvm text (sparse by
// nature). CSV is refused the way SageMaker refuses it, before anything is read.
void CheckChannelFormat(const TrainChannel& ch) {
  auto refuse = [&](const std::string& what) {
    MLF_FAIL("channel '{}': {} is CSV, which factorization machines do not train on (as in SageMaker: their data is "
             "sparse). Convert it with `mlforge data convert FILE.csv OUT.pbr` (recordIO-protobuf) or supply "
             "libsvm text (ContentType text/libsvm)",
             ch.name, what);
  };
  if (ch.source.format == io::DataFormat::kCsv) refuse("its content type");
  if (ch.source.format == io::DataFormat::kAuto && ch.source.pipe_prefix.empty()) {
    for (const auto& path : io::ExpandChannelPaths(ch.source.paths)) {
      if (io::FormatFromPath(path) == io::DataFormat::kCsv) refuse("'" + path + "'");
    }
  }
}

io::StreamOptions MakeStreamOptions(const Config& cfg, const TrainContext& ctx, const TrainChannel& ch) {
  io::StreamOptions so;
  so.batch_size = cfg.mini_batch_size;
  so.threads = std::max(1, ctx.resources.threads() / 2);
  so.expected_cols = cfg.feature_dim;
  so.require_labels = true;
  so.force_dense = false;
  so.stop = ctx.stop();
  // FullyReplicated with several ranks: each rank keeps every world_size-th chunk of batch_size
  // records, so a group step covers the rows of one single-process mini-batch of world x size.
  if (ctx.world_size() > 1 && ch.config.distribution == S3Distribution::kFullyReplicated &&
      !ch.config.replicate_reads) {
    so.shard_index = ctx.rank();
    so.num_shards = ctx.world_size();
  }
  return so;
}

// One step of the whole group: false once no rank has a batch left, so ranks with uneven row
// counts keep joining the step's collectives with an empty batch instead of blocking the others.
bool GroupHasData(comm::Communicator& comm, bool mine) {
  if (comm.world_size() == 1) return mine;
  double flag = mine ? 1.0 : 0.0;
  comm.AllReduceMax(&flag, 1);
  return flag > 0;
}

// Fills out[0, n) with a parameter group's initial values. Each pair of values is a function of
// (seed, group, pair index) alone, so initialisation does not depend on the thread count; normal
// values come from Box-Muller in float32, both outputs used (10M x 64 factors in a few seconds).
void InitFill(const InitSpec& init, uint64_t seed, uint64_t group, float* out, int64_t n) {
  if (init.method == InitMethod::kConstant) {
    std::fill(out, out + n, static_cast<float>(init.value));
    return;
  }
  const int64_t pairs = (n + 1) / 2;
  const uint64_t base = kernels::SplitMix64(seed ^ (group * 0x9E3779B97F4A7C15ULL));
#pragma omp parallel for schedule(static)
  for (int64_t q = 0; q < pairs; ++q) {
    const uint64_t h = kernels::SplitMix64(base + static_cast<uint64_t>(q));
    const float u1 = (static_cast<float>(h >> 40) + 1.0f) * 0x1.0p-24f;  // (0, 1]
    const float u2 = static_cast<float>((h >> 16) & 0xFFFFFF) * 0x1.0p-24f;  // [0, 1)
    float a, b;
    if (init.method == InitMethod::kUniform) {
      a = static_cast<float>(init.scale) * (2.0f * u1 - 1.0f);
      b = static_cast<float>(init.scale) * (2.0f * u2 - 1.0f);
    } else {
      const float r = static_cast<float>(init.sigma) * std::sqrt(-2.0f * std::log(u1));
      const float t = 6.28318530717958647692f * u2;
      a = r * std::cos(t);
      b = r * std::sin(t);
    }
    out[2 * q] = a;
    if (2 * q + 1 < n) out[2 * q + 1] = b;
  }
}

kernels::FmParams InitialParams(const Config& cfg) {
  kernels::FmParams p;
  p.d = cfg.feature_dim;
  p.k = cfg.num_factors;
  p.w.resize(static_cast<size_t>(p.d));
  p.v.resize(static_cast<size_t>(p.d * p.k));
  if (cfg.step.use_bias) InitFill(cfg.bias_init, cfg.seed, 1, &p.w0, 1);
  if (cfg.step.use_linear) InitFill(cfg.linear_init, cfg.seed, 2, p.w.data(), p.d);
  InitFill(cfg.factors_init, cfg.seed, 3, p.v.data(), p.d * p.k);
  return p;
}

// Binary labels must be 0 or 1 (SageMaker's FM: "label must be 0 or 1").
void CheckLabels(const Config& cfg, const HostBatch& b, const std::string& channel) {
  if (cfg.predictor_type != PredictorType::kBinaryClassifier) return;
  for (int64_t i = 0; i < b.rows; ++i) {
    const float y = b.labels[i];
    MLF_EXPECTS(y == 0.0f || y == 1.0f,
                "channel '{}', record {}: label {} is not 0 or 1; predictor_type=binary_classifier needs 0/1 labels "
                "(use predictor_type=regressor for a numeric target)",
                channel, b.ordinal(i), y);
  }
}

// Metrics of a set of predictions (float64 sums), as SageMaker names them.
struct EvalSums {
  double n = 0, sq = 0, abs = 0, xent = 0, tp = 0, fp = 0, fn = 0, correct = 0;
  void Add(PredictorType type, double score, double label) {
    n += 1;
    const double e = score - label;
    sq += e * e;
    abs += std::fabs(e);
    if (type == PredictorType::kBinaryClassifier) {
      const double p = std::min(std::max(score, 1e-12), 1.0 - 1e-12);
      xent += -(label * std::log(p) + (1 - label) * std::log(1 - p));
      const bool pred = score >= 0.5, pos = label > 0.5;
      correct += pred == pos;
      tp += pred && pos;
      fp += pred && !pos;
      fn += !pred && pos;
    }
  }
  std::vector<std::pair<std::string, double>> Metrics(PredictorType type) const {
    if (type == PredictorType::kRegressor) {
      return {{"rmse", std::sqrt(sq / n)}, {"mse", sq / n}, {"absolute_loss", abs / n}};
    }
    const double precision = tp + fp > 0 ? tp / (tp + fp) : 0.0, recall = tp + fn > 0 ? tp / (tp + fn) : 0.0;
    const double f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
    return {{"binary_classification_accuracy", correct / n},
            {"binary_classification_cross_entropy", xent / n},
            {"binary_f_1.000", f1},
            {"precision", precision},
            {"recall", recall}};
  }
};

void LogBatchMetrics(const TrainContext& ctx, const Config& cfg, const kernels::FmBatchLoss& l, int epoch,
                     int64_t batch) {
  const double n = static_cast<double>(std::max<int64_t>(1, l.rows));
  if (cfg.predictor_type == PredictorType::kRegressor) {
    log::QualityMetric(ctx.host, "train", "rmse", "loss", std::sqrt(l.squared_error / n), epoch, batch);
    log::QualityMetric(ctx.host, "train", "mse", "loss", l.squared_error / n, epoch, batch);
    log::QualityMetric(ctx.host, "train", "absolute_loss", "loss", l.absolute_error / n, epoch, batch);
  } else {
    log::QualityMetric(ctx.host, "train", "binary_classification_cross_entropy", "loss", l.loss / n, epoch, batch);
  }
}

}  // namespace

void Train(TrainContext& ctx) {
  Resources& res = ctx.resources;
  const Config cfg = ResolveConfig(ctx.hyperparameters, res.seed());
  const TrainChannel& train = *ctx.channel("train");
  CheckChannelFormat(train);
  if (const TrainChannel* test = ctx.channel("test")) CheckChannelFormat(*test);
  const auto t_start = Clock::now();

  auto stepper_holder = std::make_unique<kernels::FmStepper>(res, InitialParams(cfg), cfg.step);
  kernels::FmStepper& stepper = *stepper_holder;
  const char* opt_name = cfg.step.optimizer == kernels::FmOptimizer::kAdam  ? "adam"
                         : cfg.step.optimizer == kernels::FmOptimizer::kSgd ? "sgd"
                                                                             : "adagrad";
  spdlog::info("factorization machines ({}): feature_dim={}, num_factors={}, epochs={}, mini_batch_size={}, "
               "optimizer {} (lr bias/linear/factors {}/{}/{}, wd {}/{}/{}), device {}, initialised in {:.3f} s",
               PredictorTypeName(cfg.predictor_type), cfg.feature_dim, cfg.num_factors, cfg.epochs,
               cfg.mini_batch_size, opt_name, cfg.step.bias.lr, cfg.step.linear.lr, cfg.step.factors.lr,
               cfg.step.bias.wd, cfg.step.linear.wd, cfg.step.factors.wd, DeviceName(stepper.device()),
               Seconds(t_start));

  comm::Communicator& comm = res.comm();
  io::BatchStream stream(train.source, MakeStreamOptions(cfg, ctx, train));
  HostBatch batch;
  int64_t total_rows = 0;
  for (int epoch = 0; epoch < cfg.epochs; ++epoch) {
    comm.SetPhase(fmt::format("factorization-machines epoch {}", epoch));
    const auto t_epoch = Clock::now();
    stream.StartEpoch(epoch);
    kernels::FmBatchLoss sum;
    int64_t batches = 0;
    for (;;) {
      const bool mine = stream.Next(&batch);
      if (!mine) batch.Clear();
      if (!GroupHasData(comm, mine)) break;
      ctx.stop().ThrowIfStopped();
      CheckLabels(cfg, batch, "train");
      const kernels::FmBatchLoss l = stepper.Step(batch, batch.labels.data());
      if (batches % cfg.batch_metrics_publish_interval == 0) LogBatchMetrics(ctx, cfg, l, epoch, batches);
      sum.loss += l.loss;
      sum.squared_error += l.squared_error;
      sum.absolute_error += l.absolute_error;
      sum.rows += l.rows;
      ++batches;
    }
    ctx.stop().ThrowIfStopped();
    if (comm.world_size() > 1) {
      double v[4] = {sum.loss, sum.squared_error, sum.absolute_error, static_cast<double>(sum.rows)};
      comm.AllReduceSum(v, 4);
      sum.loss = v[0];
      sum.squared_error = v[1];
      sum.absolute_error = v[2];
      sum.rows = static_cast<int64_t>(v[3]);
    }
    MLF_EXPECTS(sum.rows > 0, "the train channel yielded no rows; factorization machines need labelled data");
    total_rows += sum.rows;
    const double secs = Seconds(t_epoch), n = static_cast<double>(sum.rows);
    if (cfg.predictor_type == PredictorType::kRegressor) {
      log::QualityMetric(ctx.host, "train", "rmse", "loss", std::sqrt(sum.squared_error / n), epoch);
      log::QualityMetric(ctx.host, "train", "mse", "loss", sum.squared_error / n, epoch);
      log::QualityMetric(ctx.host, "train", "absolute_loss", "loss", sum.absolute_error / n, epoch);
    } else {
      log::QualityMetric(ctx.host, "train", "binary_classification_cross_entropy", "loss", sum.loss / n, epoch);
    }
    spdlog::info("epoch {}: {} batch(es), {} row(s), {:.3f} s", epoch, batches, sum.rows, secs);
    log::ProgressMetric(ctx.host, 100.0 * (epoch + 1) / static_cast<double>(cfg.epochs));
    log::ThroughputMetric(ctx.host, "train", n / std::max(secs, 1e-9));
  }

  Model model;
  model.predictor_type = cfg.predictor_type;
  model.bias_init = cfg.bias_init;
  model.linear_init = cfg.linear_init;
  model.factors_init = cfg.factors_init;
  const HpValues& hp = ctx.hyperparameters;
  model.bias_lr_mult = hp.GetDouble("bias_lr");
  model.linear_lr_mult = hp.GetDouble("linear_lr");
  model.factors_lr_mult = hp.GetDouble("factors_lr");
  model.bias_wd_mult = hp.GetDouble("bias_wd");
  model.linear_wd_mult = hp.GetDouble("linear_wd");
  model.factors_wd_mult = hp.GetDouble("factors_wd");
  model.hyperparameters_json = hp.ToJson();
  model.training_parameters = nlohmann::ordered_json::parse(model.hyperparameters_json);

  // --- Test channel: the final model's metrics, as SageMaker's #test_score lines. ---
  if (const TrainChannel* test = ctx.channel("test")) {
    io::BatchStream ts(test->source, MakeStreamOptions(cfg, ctx, *test));
    ts.StartEpoch(0);
    HostBatch b;
    EvalSums sums;
    std::vector<float> yhat;
    while (ts.Next(&b)) {
      ctx.stop().ThrowIfStopped();
      CheckLabels(cfg, b, "test");
      yhat.resize(static_cast<size_t>(b.rows));
      stepper.Predict(b, yhat.data());
      for (int64_t i = 0; i < b.rows; ++i) {
        double score = yhat[i];
        if (cfg.predictor_type == PredictorType::kBinaryClassifier) score = 1.0 / (1.0 + std::exp(-score));
        sums.Add(cfg.predictor_type, score, b.labels[i]);
      }
    }
    if (comm.world_size() > 1) {
      double v[8] = {sums.n, sums.sq, sums.abs, sums.xent, sums.tp, sums.fp, sums.fn, sums.correct};
      comm.AllReduceSum(v, 8);
      sums = EvalSums{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
    }
    MLF_EXPECTS(sums.n > 0, "the test channel yielded no rows");
    for (const auto& [name, value] : sums.Metrics(cfg.predictor_type)) {
      spdlog::info("#test_score ({}) : ('{}', {})", ctx.host, name, log::FormatValue(value));
      log::QualityMetric(ctx.host, "test", name, name == "rmse" || name == "mse" || name == "absolute_loss" ||
                                                         name == "binary_classification_cross_entropy"
                                                     ? "loss"
                                                     : "score",
                         value);
      model.metrics["test:" + name] = value;
    }
  }
  // The parameters leave the stepper, which frees its optimizer state before the model is written.
  model.params = stepper_holder->TakeParams();
  stepper_holder.reset();
  if (ctx.rank() == 0) SaveModel(model, ctx.model_dir);
  spdlog::info("factorization machines training finished in {:.3f} s ({} rows over {} epoch(s))", Seconds(t_start),
               total_rows, cfg.epochs);
}

Algorithm Entry() {
  Algorithm a;
  a.name = "factorization-machines";
  a.description = "factorization machines (SageMaker-compatible; sparse regression and binary classification)";
  a.required_channels = {"train"};
  a.optional_channels = {"test"};
  a.hyperparameters = [] { return Hyperparameters(); };
  a.train = Train;
  a.load_predictor = LoadPredictor;
  return a;
}

}  // namespace mlforge::algos::factorization_machines
