#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "algos/pca/config.h"
#include "algos/pca/pca.h"
#include "algos/pca/solve.h"
#include "core/error.h"
#include "core/log.h"
#include "core/resources.h"
#include "io/batch_stream.h"
#include "kernels/column_stats.h"
#include "kernels/pca_accumulate.h"
#include "kernels/sym_eigen.h"

namespace mlforge::algos::pca {
namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

// Rows per batch the stream delivers: mini_batch_size, or more when that is small, up to ~16 MB of
// dense rows (at most 65,536). PCA's sums do not depend on how rows are batched, and each batch
// costs a parallel region, per-thread partials and a merge, so SageMaker's usual 500-row batches
// would spend more on that than on the arithmetic at d ~ 100 (measured 2x on 1M x 100).
int64_t ReadBatchRows(const Config& cfg) {
  const int64_t by_bytes = std::clamp<int64_t>((int64_t{16} << 20) / (4 * cfg.feature_dim), 1, 65536);
  return std::max(cfg.mini_batch_size, by_bytes);
}

io::StreamOptions MakeStreamOptions(const Config& cfg, const TrainContext& ctx, const TrainChannel& ch) {
  io::StreamOptions so;
  so.batch_size = ReadBatchRows(cfg);
  so.threads = std::max(1, ctx.resources.threads() - 1);
  so.expected_cols = cfg.feature_dim;
  so.force_dense = false;  // sparse rows are accumulated sparse (force_dense is accepted and ignored)
  so.stop = ctx.stop();
  if (ctx.world_size() > 1 && ch.config.distribution == S3Distribution::kFullyReplicated &&
      !ch.config.replicate_reads) {
    so.shard_index = ctx.rank();
    so.num_shards = ctx.world_size();
  }
  return so;
}

// Sums every member across ranks (one all-reduce of a packed buffer).
void AllReduce(comm::Communicator& comm, kernels::PcaSums& s) {
  if (comm.world_size() == 1) return;
  std::vector<double> buf;
  buf.reserve(2 + s.sum.size() + s.matrix.size() + s.sign_sums.size());
  buf.push_back(s.n);
  buf.push_back(s.sum_sq);
  buf.insert(buf.end(), s.sum.begin(), s.sum.end());
  buf.insert(buf.end(), s.sign_sums.begin(), s.sign_sums.end());
  buf.insert(buf.end(), s.matrix.begin(), s.matrix.end());
  comm.AllReduceSum(buf.data(), buf.size());
  size_t p = 0;
  s.n = buf[p++];
  s.sum_sq = buf[p++];
  for (double& x : s.sum) x = buf[p++];
  for (double& x : s.sign_sums) x = buf[p++];
  for (double& x : s.matrix) x = buf[p++];
}

const char* PassName(kernels::PcaAccumulation m) {
  switch (m) {
    case kernels::PcaAccumulation::kScatter:
      return "covariance";
    case kernels::PcaAccumulation::kSketch:
      return "sketch";
    case kernels::PcaAccumulation::kProject:
      return "power iteration";
  }
  return "?";
}

// One pass over the train channel into `acc`; `first` (when not null) is the epoch's first batch,
// already read. Returns the totals over all ranks.
kernels::PcaSums RunPass(TrainContext& ctx, io::BatchStream& stream, kernels::PcaAccumulator& acc,
                         kernels::PcaPass pass, int epoch, HostBatch* first, int passes) {
  const auto t0 = Clock::now();
  const auto mode = pass.mode;
  ctx.resources.comm().SetPhase(fmt::format("PCA pass {} ({})", epoch, PassName(mode)));
  acc.Begin(std::move(pass));
  if (first == nullptr) stream.StartEpoch(epoch);
  int64_t batches = 0;
  if (first != nullptr && first->rows > 0) {
    acc.Add(*first);
    ++batches;
  }
  HostBatch batch;
  while (stream.Next(&batch)) {
    ctx.stop().ThrowIfStopped();
    acc.Add(batch);
    ++batches;
  }
  ctx.stop().ThrowIfStopped();
  kernels::PcaSums sums = acc.Result();
  const double local_rows = sums.n;
  AllReduce(ctx.resources.comm(), sums);
  const double secs = Seconds(t0);
  spdlog::info("pass {} ({}): {} batch(es), {} row(s) here, {} in all, {:.3f} s", epoch, PassName(mode), batches,
               static_cast<int64_t>(local_rows), static_cast<int64_t>(sums.n), secs);
  log::ThroughputMetric(ctx.host, "train", local_rows / std::max(secs, 1e-9));
  log::ProgressMetric(ctx.host, 100.0 * (epoch + 1) / passes);
  return sums;
}

}  // namespace

void Train(TrainContext& ctx) {
  Resources& res = ctx.resources;
  comm::Communicator& comm = res.comm();
  const Config cfg = ResolveConfig(ctx.hyperparameters, res.threads());
  const int64_t d = cfg.feature_dim, k = cfg.num_components;
  const bool randomized = cfg.mode == Mode::kRandomized;
  const auto t_start = Clock::now();
  const auto wall_start = std::chrono::system_clock::now();
  const TrainChannel& train = *ctx.channel("train");
  io::BatchStream stream(train.source, MakeStreamOptions(cfg, ctx, train));
  kernels::PcaAccumulator acc(res);
  const int passes = 1 + static_cast<int>(cfg.power_iterations);
  if (randomized) {
    spdlog::info("PCA (randomized): num_components={}, feature_dim={}, sketch width {} (extra_components {}), "
                 "{} pass(es), subtract_mean={}, mini_batch_size {}, device {}",
                 k, d, cfg.sketch_width, cfg.extra_components, passes, cfg.subtract_mean, cfg.mini_batch_size,
                 DeviceName(acc.device()));
  } else {
    spdlog::info("PCA (regular): num_components={}, feature_dim={}, subtract_mean={}, mini_batch_size {}, device {}", k,
                 d, cfg.subtract_mean, cfg.mini_batch_size, DeviceName(acc.device()));
  }
  if (ReadBatchRows(cfg) != cfg.mini_batch_size) {
    spdlog::info("reading {} rows per batch (mini_batch_size {}): PCA's sums do not depend on the batching, and "
                 "larger batches cost less per row",
                 ReadBatchRows(cfg), cfg.mini_batch_size);
  }

  // The shift: the mean of the first host's first batch when it is dense (see
  // kernels/pca_accumulate.h: it keeps the centring from cancelling digits).
  stream.StartEpoch(0);
  HostBatch first;
  const bool have_first = stream.Next(&first);
  std::vector<float> shift;
  if (cfg.subtract_mean) {
    int64_t shift_size = 0;
    if (comm.rank() == 0 && have_first && first.layout == Layout::kDense && first.rows > 0) {
      kernels::ColumnStats cs = kernels::ColumnStatsCpu(kernels::DenseView(first), res.threads());
      shift.resize(static_cast<size_t>(d));
      for (int64_t j = 0; j < d; ++j) shift[j] = static_cast<float>(cs.Mean(j));
      shift_size = d;
    }
    comm.Broadcast(&shift_size, sizeof(shift_size), 0);
    shift.resize(static_cast<size_t>(shift_size));
    if (shift_size > 0) comm.Broadcast(shift.data(), shift.size() * sizeof(float), 0);
  }

  kernels::PcaPass pass;
  pass.d = d;
  pass.shift = shift;
  pass.mode = randomized ? kernels::PcaAccumulation::kSketch : kernels::PcaAccumulation::kScatter;
  pass.l = cfg.sketch_width;
  // Ranks read different rows that may share ordinals: each rank's signs come from its own seed.
  pass.sketch_seed = kernels::SplitMix64(cfg.seed * 2 + 1) ^ (comm.world_size() > 1 ? kernels::SplitMix64(comm.rank()) : 0);
  kernels::PcaSums sums = RunPass(ctx, stream, acc, pass, 0, &first, passes);
  first = HostBatch();
  MLF_EXPECTS(sums.n > 0, "the train channel yielded no rows; PCA needs data");
  const int64_t n = static_cast<int64_t>(sums.n);
  if (n <= k) {
    spdlog::warn("only {} training row(s) for {} components: components beyond the data's rank are arbitrary "
                 "directions with (near) zero variance", n, k);
  }
  const std::vector<double> delta = ShiftedMean(sums);
  const double total = TotalScatter(sums, cfg.subtract_mean);

  Solution sol;
  if (!randomized) {
    const auto t_eig = Clock::now();
    sol = SolveRegular(res, sums, cfg.subtract_mean, k);
    spdlog::info("eigendecomposition of the {} x {} covariance: {:.3f} s on {}", d, d, Seconds(t_eig),
                 DeviceName(kernels::SymmetricEigenDevice(res, d)));
  } else {
    sol = SolveSketch(sums, cfg.subtract_mean);
    for (int64_t it = 1; it <= cfg.power_iterations; ++it) {
      kernels::PcaPass p;
      p.mode = kernels::PcaAccumulation::kProject;
      p.d = d;
      p.l = sol.k;
      p.shift = shift;
      p.q = Basis(sol);
      const std::vector<float> q = p.q;
      kernels::PcaSums z = RunPass(ctx, stream, acc, std::move(p), static_cast<int>(it), nullptr, passes);
      sol = SolveProjected(z, q, cfg.subtract_mean);
    }
    // Keep the top k, descending (SageMaker's randomized order).
    Solution top;
    top.d = d;
    top.k = k;
    top.eigenvalues.assign(sol.eigenvalues.begin(), sol.eigenvalues.begin() + k);
    top.components.resize(static_cast<size_t>(d * k));
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < k; ++j) top.components[i * k + j] = sol.components[i * sol.k + j];
    sol = std::move(top);
  }
  NormalizeSigns(&sol);

  Model model;
  model.dim = d;
  model.components = k;
  model.mode = randomized ? "randomized" : "regular";
  model.rows = n;
  model.s.resize(static_cast<size_t>(k));
  model.v.resize(static_cast<size_t>(d * k));
  // SageMaker's single pass only estimates the eigenvalues (sigma(sketch)^2 / l, noisy and biased
  // upwards at the top), so their sum can exceed the exact total; the ratios are then taken of the
  // larger of the two, so that they never sum past 1, and the metadata says they are estimates.
  const bool estimated = randomized && cfg.power_iterations == 0;
  double top_sum = 0;
  for (int64_t j = 0; j < k; ++j) top_sum += std::max(0.0, sol.eigenvalues[j]);
  const double ratio_base = estimated ? std::max(total, top_sum) : total;
  model.explained_variance_estimated = estimated;
  for (int64_t j = 0; j < k; ++j) {
    // sqrt of a negative eigenvalue is NaN, as in SageMaker's regular-mode artifacts.
    model.s[j] = static_cast<float>(std::sqrt(sol.eigenvalues[j]));
    model.explained_variance.push_back(sol.eigenvalues[j] / static_cast<double>(std::max<int64_t>(1, n - 1)));
    model.explained_variance_ratio.push_back(ratio_base > 0 ? sol.eigenvalues[j] / ratio_base : 0.0);
  }
  for (size_t p = 0; p < model.v.size(); ++p) model.v[p] = static_cast<float>(sol.components[p]);
  if (cfg.subtract_mean) {
    model.mean.resize(static_cast<size_t>(d));
    for (int64_t j = 0; j < d; ++j) model.mean[j] = static_cast<float>((shift.empty() ? 0.0 : shift[j]) + delta[j]);
  }
  double explained = 0;
  for (double r : model.explained_variance_ratio) explained += std::isfinite(r) ? r : 0.0;
  spdlog::info("{} component(s) explain {:.6f} of the training data's {}variance{}", k, explained,
               cfg.subtract_mean ? "" : "uncentred ",
               estimated ? " (estimated from the single-pass sketch; power_iterations >= 1 computes it)" : "");

  // --- Test channel: reconstruction error of the final model. ---
  if (const TrainChannel* test = ctx.channel("test")) {
    io::BatchStream ts(test->source, MakeStreamOptions(cfg, ctx, *test));
    ts.StartEpoch(0);
    HostBatch b;
    double err[3] = {0, 0, 0};  // sum of squared errors, sum of ||x - mean||^2, rows
    std::vector<double> row_err;
    while (ts.Next(&b)) {
      ctx.stop().ThrowIfStopped();
      std::vector<float> proj = Project(model, b, res.threads(), &row_err);
      for (int64_t i = 0; i < b.rows; ++i) {
        double pp = 0;
        for (int64_t j = 0; j < k; ++j) pp += static_cast<double>(proj[i * k + j]) * proj[i * k + j];
        err[0] += row_err[i];
        err[1] += row_err[i] + pp;
      }
      err[2] += static_cast<double>(b.rows);
    }
    if (comm.world_size() > 1) comm.AllReduceSum(err, 3);
    MLF_EXPECTS(err[2] > 0, "the test channel yielded no rows");
    const double mse = err[0] / err[2];
    const double ratio = err[1] > 0 ? 1.0 - err[0] / err[1] : 0.0;
    log::QualityMetric(ctx.host, "test", "reconstruction_error", "loss", mse);
    log::QualityMetric(ctx.host, "test", "explained_variance_ratio", "score", ratio);
    model.metrics["test:reconstruction_error"] = mse;
    model.metrics["test:explained_variance_ratio"] = ratio;
  }
  model.metrics["train:explained_variance_ratio"] = explained;
  model.hyperparameters_json = ctx.hyperparameters.ToJson();
  {
    // The #metrics line SageMaker's PCA image prints (SPEC.md 2.9), with what this run measured.
    auto stat = [](double v) { return nlohmann::ordered_json{{"sum", v}, {"count", 1}, {"min", v}, {"max", v}}; };
    const auto unix_seconds = [](std::chrono::system_clock::time_point t) {
      return std::chrono::duration<double>(t.time_since_epoch()).count();
    };
    nlohmann::ordered_json metrics;
    metrics["total_records"] = stat(static_cast<double>(n));
    metrics["total_passes"] = stat(static_cast<double>(passes));
    metrics["train_explained_variance_ratio"] = stat(explained);
    for (const auto& [name, value] : model.metrics) {
      if (name.rfind("test:", 0) == 0) metrics["test_" + name.substr(5)] = stat(value);
    }
    const nlohmann::ordered_json line = {
        {"StartTime", unix_seconds(wall_start)},
        {"EndTime", unix_seconds(std::chrono::system_clock::now())},
        {"Dimensions", {{"Algorithm", "PCA"}, {"Host", ctx.host}, {"Operation", "training"}}},
        {"Metrics", metrics}};
    spdlog::info("#metrics {}", line.dump());
  }
  if (comm.rank() == 0) SaveModel(model, ctx.model_dir);
  spdlog::info("PCA training finished in {:.3f} s", Seconds(t_start));
}

Algorithm Entry() {
  Algorithm a;
  a.name = "pca";
  a.description = "principal component analysis (SageMaker-compatible regular and randomized modes)";
  a.required_channels = {"train"};
  a.optional_channels = {"test"};
  a.hyperparameters = [] { return Hyperparameters(); };
  a.train = Train;
  a.load_predictor = LoadPredictor;
  return a;
}

}  // namespace mlforge::algos::pca
