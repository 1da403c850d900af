#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <optional>

#include "algos/kmeans/config.h"
#include "algos/kmeans/kmeans.h"
#include "core/error.h"
#include "core/log.h"
#include "io/batch_stream.h"
#include "kernels/kmeans_assign.h"
#include "kernels/kmeans_lloyd.h"

namespace mlforge::algos::kmeans {
namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

io::StreamOptions MakeStreamOptions(const Config& cfg, const TrainContext& ctx, const TrainChannel& ch,
                                    bool shard) {
  io::StreamOptions so;
  so.batch_size = cfg.mini_batch_size;
  so.threads = std::max(1, ctx.resources.threads() - 1);
  so.expected_cols = cfg.feature_dim;
  so.force_dense = cfg.force_dense;
  so.seed = cfg.seed;
  so.stop = ctx.stop();
  // FullyReplicated data is seen whole by every host, so ranks split it by records;
  // ShardedByS3Key data was already split by the platform.
  if (shard && ctx.world_size() > 1 && ch.config.distribution == S3Distribution::kFullyReplicated &&
      !ch.config.replicate_reads) {
    so.shard_index = ctx.rank();
    so.num_shards = ctx.world_size();
  }
  return so;
}

// Rows [0, n) of the given batches as one dense n x d matrix (CSR rows scattered), for seeding.
std::vector<float> DenseRows(const std::deque<HostBatch>& batches, int64_t d, int64_t* n_out) {
  std::vector<float> out;
  int64_t n = 0;
  for (const HostBatch& b : batches) {
    HostBatch copy;
    const HostBatch* src = &b;
    if (b.layout == Layout::kCsr) {
      copy = b;
      Densify(copy);
      src = &copy;
    }
    out.insert(out.end(), src->values.begin(), src->values.end());
    n += src->rows;
  }
  MLF_ASSERT(static_cast<int64_t>(out.size()) == n * d);
  *n_out = n;
  return out;
}

// One step of the whole group: every rank offers its next batch (or nothing); returns false
// once no rank has data left, so ranks with uneven row counts never block each other.
// The row weights of `batches` in order (1 for a batch without weights); empty when none has any.
std::vector<float> RowWeights(const std::deque<HostBatch>& batches) {
  bool any = false;
  for (const HostBatch& b : batches) any |= !b.weights.empty();
  std::vector<float> out;
  if (!any) return out;
  for (const HostBatch& b : batches) {
    if (b.weights.empty()) {
      out.insert(out.end(), static_cast<size_t>(b.rows), 1.0f);
    } else {
      out.insert(out.end(), b.weights.begin(), b.weights.end());
    }
  }
  return out;
}

bool GroupHasData(comm::Communicator& comm, bool mine) {
  double flag = mine ? 1.0 : 0.0;
  comm.AllReduceMax(&flag, 1);
  return flag > 0;
}

void AllReduce(comm::Communicator& comm, kernels::KMeansStats& s) {
  if (comm.world_size() == 1) return;
  if (!s.sums.empty()) comm.AllReduceSum(s.sums.data(), s.sums.size());
  comm.AllReduceSum(s.weights.data(), s.weights.size());
  comm.AllReduceSum(&s.cost, 1);
}

// The training channel for repeated full passes: the batches are kept in host memory while they
// fit in `budget_bytes`, taken from the last streaming epoch (Offer) or else from the first full
// pass; later passes read memory when the whole channel fitted, else stream from the files again
// (memory stays bounded either way).
class PassSource {
 public:
  PassSource(io::BatchStream& stream, size_t budget_bytes) : stream_(stream), budget_(budget_bytes) {}

  // The last streaming epoch hands over its batches (moved, not copied), so that the first
  // full-batch pass need not read the files again; call OfferDone() after the epoch. The batches
  // are the ones a pass would read: same stream, same order.
  void Offer(HostBatch&& batch) {
    if (!fits_) return;
    bytes_ += batch.bytes();
    if (bytes_ > budget_) {
      fits_ = false;
      cache_.clear();
      cache_.shrink_to_fit();
      return;
    }
    cache_.push_back(std::move(batch));
  }
  void OfferDone() { Decide(); }

  // Every pass reads the same batches from memory, in the same order.
  bool in_memory() const { return complete_; }

  // Calls fn(batch, have) once per group step: `have` is false once this rank has no batch left
  // while other ranks still do. Stops when no rank has data.
  template <typename Fn>
  void ForEach(TrainContext& ctx, int epoch, Fn fn) {
    comm::Communicator& comm = ctx.resources.comm();
    if (complete_) {
      for (size_t i = 0;; ++i) {
        const bool have = i < cache_.size();
        ctx.stop().ThrowIfStopped();
        if (!GroupHasData(comm, have)) break;
        fn(have ? cache_[i] : empty_, have);
      }
      return;
    }
    const bool caching = !tried_;
    stream_.StartEpoch(epoch);
    HostBatch batch;
    while (true) {
      const bool have = stream_.Next(&batch);
      ctx.stop().ThrowIfStopped();
      if (!GroupHasData(comm, have)) break;
      fn(have ? batch : empty_, have);
      if (have && caching) Offer(std::move(batch));
    }
    if (caching) Decide();
  }

 private:
  void Decide() {
    tried_ = true;
    complete_ = fits_;
    if (budget_ == 0) return;  // a single pass (the test channel): nothing to say
    if (complete_) {
      spdlog::info("full-batch passes read the {} training row batch(es) ({:.1f} MB) from memory",
                   cache_.size(), bytes_ / 1e6);
    } else {
      spdlog::info(
          "the training data is larger than full_batch_cache_mb ({:.0f} MB): every full-batch pass "
          "streams it from the files",
          budget_ / 1e6);
    }
  }

  io::BatchStream& stream_;
  size_t budget_;
  size_t bytes_ = 0;
  bool tried_ = false, complete_ = false, fits_ = true;
  std::vector<HostBatch> cache_;
  HostBatch empty_;
};

// One full pass over a channel with fixed centers: cost, counts and (optionally) sums.
kernels::KMeansStats Pass(TrainContext& ctx, PassSource& source, kernels::KMeansAssigner& assigner, int epoch,
                          bool with_sums) {
  kernels::KMeansStats stats(assigner.k(), assigner.d(), with_sums);
  source.ForEach(ctx, epoch, [&](const HostBatch& batch, bool have) {
    if (have) assigner.Assign(batch, &stats);
  });
  AllReduce(ctx.resources.comm(), stats);
  return stats;
}

double TotalWeight(const kernels::KMeansStats& s) {
  double t = 0;
  for (double w : s.weights) t += w;
  return t;
}

struct FullBatchResult {
  double cost = 0;     // sum of squared distances to the returned centers
  double rows = 0;
  int64_t updates = 0;
};

// Whether full-batch Lloyd keeps Hamerly's bounds between passes (kernels::KMeansBoundedLloyd):
// on the CPU, when the passes read the training batches from memory. MLFORGE_KMEANS_BOUNDS=off
// turns them off (for comparisons; the model is the same up to near-ties, see kmeans_assign.h).
bool UseBounds(const kernels::KMeansAssigner& assigner, const PassSource& source) {
  if (assigner.device() != Device::kCpu || !source.in_memory()) return false;
  const char* env = std::getenv("MLFORGE_KMEANS_BOUNDS");
  if (env == nullptr || *env == '\0') return true;
  const std::string v(env);
  if (v == "off" || v == "0") return false;
  MLF_EXPECTS(v == "on" || v == "1", "MLFORGE_KMEANS_BOUNDS is '{}': set it to on or off", v);
  return true;
}

// Exact Lloyd's over the whole channel, streamed pass by pass: `centers` (k x d) is updated in place
// and on return holds the centers `cost` was measured with. *epoch numbers the passes.
FullBatchResult FullBatchLloyd(TrainContext& ctx, const Config& cfg, PassSource& source,
                               kernels::KMeansAssigner& assigner, std::vector<float>& centers, int* epoch) {
  const int64_t k = cfg.k, d = cfg.feature_dim;
  FullBatchResult r;
  assigner.SetCenters(centers.data(), k, d);
  std::optional<kernels::KMeansBoundedLloyd> bounded;
  if (UseBounds(assigner, source)) bounded.emplace(ctx.resources.threads());
  int64_t row_visits = 0, full_visits = 0;
  double prev_cost = -1;
  for (int64_t it = 0;; ++it) {
    kernels::KMeansStats s;
    if (bounded) {
      s = kernels::KMeansStats(k, d, true);
      bounded->BeginPass(centers.data(), k, d);
      size_t index = 0;
      source.ForEach(ctx, (*epoch)++, [&](const HostBatch& batch, bool have) {
        if (have) bounded->Assign(index++, batch, &s);
      });
      AllReduce(ctx.resources.comm(), s);
      row_visits += bounded->rows();
      full_visits += bounded->full_rows();
      spdlog::debug("full-batch Lloyd pass {}: {} of {} row(s) needed their distances to every center", it,
                    bounded->full_rows(), bounded->rows());
    } else {
      s = Pass(ctx, source, assigner, (*epoch)++, true);
    }
    r.cost = s.cost;
    r.rows = TotalWeight(s);
    spdlog::debug("full-batch Lloyd pass {}: msd {}", it, log::FormatValue(r.cost / r.rows));
    if (prev_cost >= 0 && prev_cost - r.cost <= cfg.full_batch_lloyd_tol * prev_cost) break;
    if (it == cfg.full_batch_lloyd_iterations) break;
    for (int64_t j = 0; j < k; ++j) {
      if (s.weights[j] <= 0) continue;  // an empty cluster keeps its center
      for (int64_t t = 0; t < d; ++t) {
        centers[j * d + t] = static_cast<float>(s.sums[j * d + t] / s.weights[j]);
      }
    }
    if (!bounded) assigner.SetCenters(centers.data(), k, d);
    prev_cost = r.cost;
    ++r.updates;
  }
  if (bounded && row_visits > 0) {
    spdlog::info("full-batch Lloyd: Hamerly bounds settled {:.1f}% of the row visits without distances to every "
                 "center ({} of {} on this host)",
                 100.0 * static_cast<double>(row_visits - full_visits) / static_cast<double>(row_visits),
                 row_visits - full_visits, row_visits);
  }
  return r;
}

}  // namespace

void Train(TrainContext& ctx) {
  Config cfg = ResolveConfig(ctx.hyperparameters);
  Resources& res = ctx.resources;
  comm::Communicator& comm = res.comm();
  const TrainChannel& train = *ctx.channel("train");
  const int64_t d = cfg.feature_dim;
  int64_t big_k = cfg.k * cfg.extra_center_factor;
  const auto t_start = Clock::now();

  io::BatchStream stream(train.source, MakeStreamOptions(cfg, ctx, train, true));
  kernels::KMeansAssigner assigner(res);
  spdlog::info("k-means: k={}, streaming with {} centers (extra_center_factor {}), mini_batch_size {}, {} epoch(s), "
               "device {}", cfg.k, big_k, cfg.extra_center_factor, cfg.mini_batch_size, cfg.epochs,
               DeviceName(assigner.device()));

  // --- Seeding: rank 0 gathers rows from its first mini-batches until it holds K of them. ---
  stream.StartEpoch(0);
  std::deque<HostBatch> pending;
  int64_t pending_rows = 0;
  if (comm.rank() == 0) {
    HostBatch b;
    while (pending_rows < big_k && stream.Next(&b)) {
      pending_rows += b.rows;
      pending.push_back(std::move(b));
      b = HostBatch();
    }
  }
  int64_t seed_rows = pending_rows;
  comm.Broadcast(&seed_rows, sizeof(seed_rows), 0);
  MLF_EXPECTS(seed_rows >= cfg.k,
              "the train channel has {} row(s) on the first host, fewer than k = {}; k-means needs at least k "
              "rows to seed k centers: lower k or add data",
              seed_rows, cfg.k);
  if (seed_rows < big_k) {
    spdlog::warn("only {} training rows are available to seed {} streaming centers: using {} centers "
                 "(extra_center_factor effectively {:.2f})",
                 seed_rows, big_k, seed_rows, static_cast<double>(seed_rows) / cfg.k);
    big_k = seed_rows;
  }
  // Seeding samples: say from how much (SageMaker's image logs the effective batch size too).
  spdlog::info("seeding {} streaming centers ({}) from the first {} training row(s) on the first host",
               big_k, cfg.init_method == InitMethod::kKMeansPlusPlus ? "kmeans++" : "random", seed_rows);
  std::vector<float> centers(static_cast<size_t>(big_k * d));
  // Rank 0 keeps the dense seeding sample when later full-batch trials seed from it.
  std::vector<float> seed_sample, seed_weights;
  int64_t seed_sample_rows = 0;
  if (comm.rank() == 0) {
    int64_t n = 0;
    // One dense batch (the usual case: mini_batch_size >= K) is seeded from in place; the
    // full-batch trials need their own copy of the sample, as the batch moves on.
    std::vector<float> rows;
    kernels::HostDenseView view;
    if (pending.size() == 1 && pending.front().layout == Layout::kDense && cfg.full_batch_lloyd_trials <= 1) {
      n = pending.front().rows;
      view = {pending.front().values.data(), n, d};
    } else {
      rows = DenseRows(pending, d, &n);
      view = {rows.data(), n, d};
    }
    // Weighted rows (in-memory data with sample weights) seed by weight: a row of weight 0 is
    // chosen only once every positive one is.
    seed_weights = RowWeights(pending);
    const float* w = seed_weights.empty() ? nullptr : seed_weights.data();
    std::vector<int64_t> chosen =
        cfg.init_method == InitMethod::kKMeansPlusPlus
            ? kernels::SeedKMeansPlusPlus(view, w, big_k, cfg.seed, 1, res.threads())
            : kernels::SeedRandom(view, w, big_k, cfg.seed);
    centers = kernels::GatherRows(view, chosen);
    if (cfg.full_batch_lloyd_trials > 1) {
      seed_sample = std::move(rows);
      seed_sample_rows = n;
    }
  }
  comm.Broadcast(centers.data(), centers.size() * sizeof(float), 0);
  assigner.SetCenters(centers.data(), big_k, d);

  // The full-batch passes keep the last streaming epoch's batches when they fit in memory.
  std::optional<PassSource> source;
  if (cfg.full_batch_lloyd_iterations > 0) {
    source.emplace(stream, static_cast<size_t>(cfg.full_batch_cache_mb) * 1000000);
  }

  // --- Streaming mini-batch updates. ---
  std::vector<double> center_weight(static_cast<size_t>(big_k), 0.0);
  kernels::KMeansStats stats(big_k, d);
  int64_t rows_seen = 0;
  double last_epoch_cost = 0, last_epoch_rows = 0;
  const auto t_stream = Clock::now();
  for (int epoch = 0; epoch < cfg.epochs; ++epoch) {
    comm.SetPhase(fmt::format("k-means epoch {}", epoch));
    if (epoch > 0) stream.StartEpoch(epoch);
    double epoch_cost = 0, epoch_rows = 0;
    int64_t batches = 0;
    const auto t_epoch = Clock::now();
    HostBatch batch;
    while (true) {
      bool have;
      if (!pending.empty()) {
        batch = std::move(pending.front());
        pending.pop_front();
        have = true;
      } else {
        have = stream.Next(&batch);
      }
      ctx.stop().ThrowIfStopped();
      if (!GroupHasData(comm, have)) break;
      stats.Clear();
      if (have) assigner.Assign(batch, &stats);
      AllReduce(comm, stats);
      const double batch_rows = TotalWeight(stats);
      if (cfg.half_life_time_size > 0) {
        // A point's weight halves after half_life_time_size further points.
        const double decay = std::exp2(-batch_rows / static_cast<double>(cfg.half_life_time_size));
        for (double& w : center_weight) w *= decay;
      }
      for (int64_t j = 0; j < big_k; ++j) {
        const double n_j = stats.weights[j];
        if (n_j <= 0) continue;
        const double p = n_j / (center_weight[j] + n_j);
        float* c = centers.data() + j * d;
        const double* s = stats.sums.data() + j * d;
        for (int64_t t = 0; t < d; ++t) {
          c[t] = static_cast<float>((1.0 - p) * c[t] + p * (s[t] / n_j));
        }
        center_weight[j] += n_j;
      }
      assigner.SetCenters(centers.data(), big_k, d);
      epoch_cost += stats.cost;
      epoch_rows += batch_rows;
      ++batches;
      if (have && source && epoch == cfg.epochs - 1) source->Offer(std::move(batch));
    }
    if (source && epoch == cfg.epochs - 1) source->OfferDone();
    rows_seen += static_cast<int64_t>(epoch_rows);
    last_epoch_cost = epoch_cost;
    last_epoch_rows = epoch_rows;
    MLF_EXPECTS(epoch_rows > 0, "the train channel yielded no rows in epoch {}; k-means needs data", epoch);
    const double secs = Seconds(t_epoch);
    spdlog::info("epoch {}: {} batches, {} rows, streaming msd (before each update) {}", epoch, batches,
                 static_cast<int64_t>(epoch_rows), log::FormatValue(epoch_cost / epoch_rows));
    log::ThroughputMetric(ctx.host, "train", epoch_rows / std::max(secs, 1e-9));
    log::ProgressMetric(ctx.host, 100.0 * (epoch + 1) / cfg.epochs);
  }
  spdlog::info("streaming phase: {} rows in {:.3f} s", rows_seen, Seconds(t_stream));

  // --- Final local Lloyd reduction of the K weighted centers to k. ---
  Model model;
  model.k = cfg.k;
  model.dim = d;
  double train_msd;
  if (big_k == cfg.k) {
    spdlog::info("No shrinking is required as the number of streaming centers equals k.");
    model.centers = centers;
    train_msd = last_epoch_cost / last_epoch_rows;
  } else {
    spdlog::info("shrinking {} centers into {} ({} local Lloyd trial(s), max_iter {}, tol {})", big_k, cfg.k,
                 cfg.local_lloyd_num_trials, cfg.local_lloyd_max_iter, cfg.local_lloyd_tol);
    std::vector<float> w(center_weight.begin(), center_weight.end());
    kernels::LloydOptions lo;
    lo.k = cfg.k;
    lo.max_iter = cfg.local_lloyd_max_iter;
    lo.tol = cfg.local_lloyd_tol;
    lo.num_trials = cfg.local_lloyd_num_trials;
    lo.init = cfg.local_lloyd_init_method == InitMethod::kKMeansPlusPlus ? kernels::KMeansSeeding::kKMeansPlusPlus
                                                                         : kernels::KMeansSeeding::kRandom;
    lo.seed = cfg.seed + 1;
    lo.threads = res.threads();
    kernels::LloydResult r = kernels::WeightedLloyd({centers.data(), big_k, d}, w.data(), lo);
    for (size_t t = 0; t < r.trials.size(); ++t) {
      spdlog::info("local Lloyd trial {}: {} iteration(s), mean square distance {}{}", t, r.trials[t].iterations,
                   log::FormatValue(r.trials[t].cost / r.total_weight), t == size_t(r.best_trial) ? " (best)" : "");
    }
    model.centers = std::move(r.centers);
    train_msd = r.cost / r.total_weight;
  }

  // --- Optional exact Lloyd iterations over the whole data set (streamed), several starts. ---
  if (cfg.full_batch_lloyd_iterations > 0) {
    int epoch = cfg.epochs;
    comm.SetPhase("k-means full-batch Lloyd");
    FullBatchResult best = FullBatchLloyd(ctx, cfg, *source, assigner, model.centers, &epoch);
    spdlog::info("full-batch Lloyd trial 0 (from the streaming centers): {} update(s), msd {}", best.updates,
                 log::FormatValue(best.cost / best.rows));
    int64_t best_trial = 0;
    if (cfg.full_batch_lloyd_trials > 1) {
      const int local_trials = 2 + static_cast<int>(std::log(static_cast<double>(cfg.k)));
      if (comm.rank() == 0) {
        spdlog::info("full-batch Lloyd trials 1..{} start from greedy k-means++ ({} candidates per step) on the "
                     "seeding sample: the first {} training row(s)",
                     cfg.full_batch_lloyd_trials - 1, local_trials, seed_sample_rows);
      }
      for (int64_t t = 1; t < cfg.full_batch_lloyd_trials; ++t) {
        std::vector<float> start(static_cast<size_t>(cfg.k * d));
        if (comm.rank() == 0) {
          kernels::HostDenseView view{seed_sample.data(), seed_sample_rows, d};
          start = kernels::GatherRows(
              view, kernels::SeedKMeansPlusPlus(view, seed_weights.empty() ? nullptr : seed_weights.data(), cfg.k,
                                                cfg.seed + 1000003ULL * static_cast<uint64_t>(t),
                                                local_trials, res.threads()));
        }
        comm.Broadcast(start.data(), start.size() * sizeof(float), 0);
        FullBatchResult r = FullBatchLloyd(ctx, cfg, *source, assigner, start, &epoch);
        const bool better = r.cost < best.cost;
        spdlog::info("full-batch Lloyd trial {}: {} update(s), msd {}{}", t, r.updates,
                     log::FormatValue(r.cost / r.rows), better ? " (best so far)" : "");
        if (better) {
          best = r;
          best_trial = t;
          model.centers = std::move(start);
        }
      }
    }
    spdlog::info("full-batch Lloyd: kept trial {} of {}, msd over {} rows {}", best_trial, cfg.full_batch_lloyd_trials,
                 static_cast<int64_t>(best.rows), log::FormatValue(best.cost / best.rows));
    train_msd = best.cost / best.rows;
  }
  log::QualityMetric(ctx.host, "train", "msd", "loss", train_msd);
  model.metrics["train:msd"] = train_msd;

  // --- Test channel. ---
  if (const TrainChannel* test = ctx.channel("test")) {
    io::BatchStream test_stream(test->source, MakeStreamOptions(cfg, ctx, *test, true));
    PassSource test_source(test_stream, 0);
    assigner.SetCenters(model.centers.data(), cfg.k, d);
    kernels::KMeansStats s = Pass(ctx, test_source, assigner, 0, false);
    const double rows = TotalWeight(s);
    MLF_EXPECTS(rows > 0, "the test channel yielded no rows");
    for (const std::string& m : cfg.eval_metrics) {
      const double value = m == "msd" ? s.cost / rows : s.cost;
      log::QualityMetric(ctx.host, "test", m, "loss", value);
      model.metrics["test:" + m] = value;
    }
  }

  model.hyperparameters_json = ctx.hyperparameters.ToJson();
  model.train_msd = train_msd;
  if (comm.rank() == 0) SaveModel(model, ctx.model_dir);
  spdlog::info("k-means training finished in {:.3f} s", Seconds(t_start));
}

Predictions Predict(const Model& model, const HostBatch& batch, Resources& res) {
  MLF_EXPECTS(batch.cols == model.dim, "input has {} feature(s) per row but the k-means model was trained on {}",
              batch.cols, model.dim);
  kernels::KMeansAssigner assigner(res);
  assigner.SetCenters(model.centers.data(), model.k, model.dim);
  Predictions p;
  assigner.Assign(batch, nullptr, &p.closest_cluster, &p.distance_to_cluster);
  for (float& v : p.distance_to_cluster) v = std::sqrt(v);
  return p;
}

Algorithm Entry() {
  Algorithm a;
  a.name = "kmeans";
  a.description = "k-means clustering (SageMaker-compatible web-scale mini-batch k-means)";
  a.required_channels = {"train"};
  a.optional_channels = {"test"};
  a.hyperparameters = [] { return Hyperparameters(); };
  a.train = Train;
  a.load_predictor = LoadPredictor;
  return a;
}

}  // namespace mlforge::algos::kmeans
