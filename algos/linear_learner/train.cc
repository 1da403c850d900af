// The linear learner training loop (SPEC.md 4.1), written once for every device and rank count:
//
//   1. Read the first rows of the train channel (this rank's share of max(num_point_for_scaler,
//      the training sample)): feature_dim, label checks, the scaler statistics, class counts and
//      the in-memory training sample; all-reduced so every rank resolves the same values.
//   2. Spread the num_models settings (optimizer.h) and initialise W (d x m k) and the biases.
//   3. Per epoch, per group-wide mini-batch: fold the scaler into the weights (scaler.h), run the
//      loss-and-gradient step for all m models in one GEMM (kernels::LinearLossStepper), bring the
//      gradient back to normalised space, all-reduce gradient, loss and weight sums through the
//      Communicator, and step every model. The prefix read in 1 is replayed in epoch 0.
//   4. After each epoch: evaluate all m models (raw folded weights) on the validation channel, or
//      on the training sample without one; calibrate thresholds (binary), pick the best model by
//      the criterion, keep the best (epoch, model) seen, and stop early after
//      early_stopping_patience epochs without a relative improvement of early_stopping_tolerance.
//   5. Score the kept model on the training sample, the validation and the test channels (metric
//      lines of SPEC.md 2.9) and write model_algo-1 (rank 0).
// Every rank makes the same decisions from the same all-reduced numbers, so the result does not
// depend on which rank writes the model.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "algos/linear_learner/config.h"
#include "algos/linear_learner/linear_learner.h"
#include "algos/linear_learner/metrics.h"
#include "algos/linear_learner/model.h"
#include "algos/linear_learner/optimizer.h"
#include "algos/linear_learner/scaler.h"
#include "core/build_config.h"
#include "core/error.h"
#include "core/log.h"
#include "io/batch_stream.h"
#include "kernels/linear_loss.h"

#if MLFORGE_HAVE_CUDA
#include "comm/device_communicator.h"
#include "core/cuda_state.h"
#endif

namespace mlforge::algos::linear_learner {
namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// Rows of the training sample and binary score samples are kept in host memory up to this many
// bytes (each), whatever num_calibration_samples asks for; a cut is logged as a warning.
constexpr double kSampleBudgetBytes = 256.0 * (1 << 20);

io::StreamOptions MakeStreamOptions(const Config& cfg, const TrainContext& ctx, const TrainChannel& ch,
                                    int64_t expected_cols) {
  io::StreamOptions so;
  so.batch_size = cfg.mini_batch_size;
  so.threads = std::max(1, ctx.resources.threads() - 1);
  so.expected_cols = expected_cols;
  so.require_labels = true;
  so.seed = cfg.seed;
  so.stop = ctx.stop();
  // FullyReplicated data is seen whole by every host, so ranks split it by records;
  // ShardedByS3Key data was already split by the platform.
  if (ctx.world_size() > 1 && ch.config.distribution == S3Distribution::kFullyReplicated &&
      !ch.config.replicate_reads) {
    so.shard_index = ctx.rank();
    so.num_shards = ctx.world_size();
  }
  return so;
}

// SageMaker's label conventions: binary 0 / 1, multiclass 0 .. num_classes - 1, regressor any
// finite number.
void CheckLabels(const Config& cfg, const HostBatch& b, const std::string& channel) {
  MLF_ASSERT(b.has_labels());
  for (int64_t i = 0; i < b.rows; ++i) {
    const float y = b.labels[i];
    switch (cfg.predictor_type) {
      case PredictorType::kBinaryClassifier:
        MLF_EXPECTS(
            y == 0.0f || y == 1.0f,
            "channel '{}' row {}: label {} is not 0 or 1; predictor_type binary_classifier needs labels 0 "
            "and 1 (use multiclass_classifier or regressor for other labels)",
            channel, b.ordinal(i), y);
        break;
      case PredictorType::kMulticlassClassifier:
        MLF_EXPECTS(
            y >= 0 && y < static_cast<float>(cfg.num_classes) && y == std::floor(y),
            "channel '{}' row {}: label {} is not a class index in 0 .. {}; multiclass_classifier needs "
            "integer labels below num_classes = {} (raise num_classes or fix the labels)",
            channel, b.ordinal(i), y, cfg.num_classes - 1, cfg.num_classes);
        break;
      case PredictorType::kRegressor:
        MLF_EXPECTS(std::isfinite(y), "channel '{}' row {}: label {} is not a finite number", channel,
                    b.ordinal(i), y);
        break;
    }
  }
}

// One step of the whole group: every rank offers its next batch (or nothing); false once no rank
// has data left, so ranks with uneven row counts never block each other.
bool GroupHasData(comm::Communicator& comm, bool mine) {
  double flag = mine ? 1.0 : 0.0;
  comm.AllReduceMax(&flag, 1);
  return flag > 0;
}

// The first `rows` rows of `b` as a batch of their own.
HostBatch FirstRows(const HostBatch& b, int64_t rows) {
  if (rows >= b.rows) return b;
  HostBatch out;
  out.layout = b.layout;
  out.rows = rows;
  out.cols = b.cols;
  out.first_row = b.first_row;
  if (b.layout == Layout::kDense) {
    out.values.assign(b.values.begin(), b.values.begin() + rows * b.cols);
  } else {
    out.indptr.assign(b.indptr.begin(), b.indptr.begin() + rows + 1);
    out.indices.assign(b.indices.begin() + b.indptr[0], b.indices.begin() + b.indptr[rows]);
    out.values.assign(b.values.begin() + b.indptr[0], b.values.begin() + b.indptr[rows]);
    for (int64_t& p : out.indptr) p -= b.indptr[0];
  }
  out.labels.assign(b.labels.begin(), b.labels.begin() + rows);
  if (!b.weights.empty()) out.weights.assign(b.weights.begin(), b.weights.begin() + rows);
  if (!b.ordinals.empty()) out.ordinals.assign(b.ordinals.begin(), b.ordinals.begin() + rows);
  return out;
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

kernels::LinearLossKind KindOf(Loss l) {
  switch (l) {
    case Loss::kLogistic:
      return kernels::LinearLossKind::kLogistic;
    case Loss::kSquared:
      return kernels::LinearLossKind::kSquared;
    case Loss::kAbsolute:
      return kernels::LinearLossKind::kAbsolute;
    case Loss::kHinge:
      return kernels::LinearLossKind::kHinge;
    case Loss::kEpsInsensitiveSquared:
      return kernels::LinearLossKind::kEpsInsensitiveSquared;
    case Loss::kEpsInsensitiveAbsolute:
      return kernels::LinearLossKind::kEpsInsensitiveAbsolute;
    case Loss::kQuantile:
      return kernels::LinearLossKind::kQuantile;
    case Loss::kHuber:
      return kernels::LinearLossKind::kHuber;
    case Loss::kSoftmax:
      return kernels::LinearLossKind::kSoftmax;
  }
  return kernels::LinearLossKind::kSquared;
}

// The loss as the kernel evaluates it. label_scale: the label's stdev when the optimiser sees
// normalised labels (the loss parameters are in raw label units, so they shrink with it), else 1.
kernels::LinearLossSpec SpecFor(const Config& cfg, double label_scale) {
  kernels::LinearLossSpec s;
  s.kind = KindOf(cfg.loss);
  s.margin = cfg.margin;
  s.quantile = cfg.quantile;
  s.epsilon = cfg.loss_insensitivity / label_scale;
  s.huber_delta = cfg.huber_delta / label_scale;
  return s;
}

// Raw label units per unit of the normalised-space loss (train objective reporting).
double LossUnitsToRaw(Loss l, double label_scale) {
  switch (l) {
    case Loss::kSquared:
    case Loss::kEpsInsensitiveSquared:
    case Loss::kHuber:
      return label_scale * label_scale;
    case Loss::kAbsolute:
    case Loss::kEpsInsensitiveAbsolute:
    case Loss::kQuantile:
      return label_scale;
    default:
      return 1.0;
  }
}

// Deterministic initial values (mt19937_64's sequence is fixed by the standard; the mappings to
// uniform and normal values are done here).
void InitWeights(const Config& cfg, std::vector<float>& w) {
  std::mt19937_64 rng(cfg.seed * 0xD1B54A32D192ED03ULL + 0x2545F4914F6CDD1DULL);
  auto uniform01 = [&rng] { return ((rng() >> 11) + 0.5) * 0x1.0p-53; };
  for (size_t i = 0; i < w.size(); ++i) {
    if (cfg.init_method == InitMethod::kUniform) {
      w[i] = static_cast<float>(cfg.init_scale * (2 * uniform01() - 1));
    } else {
      // Box-Muller, one value per pair of draws (simple and order-stable).
      const double u1 = uniform01(), u2 = uniform01();
      w[i] = static_cast<float>(cfg.init_sigma * std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2));
    }
  }
}

// The kept model: one column block of the raw (folded) weights.
struct Snapshot {
  bool valid = false;
  int epoch = -1;
  int64_t model = -1;
  double criterion = 0;
  double threshold = 0.5;
  std::vector<float> w;  // d x k
  std::vector<float> b;  // k
};

class Trainer {
 public:
  explicit Trainer(TrainContext& ctx)
      : ctx_(ctx),
        cfg_(ResolveConfig(ctx.hyperparameters)),
        comm_(ctx.resources.comm()),
        stepper_(ctx.resources),
        k_(cfg_.num_outputs()),
        m_(cfg_.num_models) {}

  void Run();

 private:
  void ReadPrefix(io::BatchStream& stream);
  void TrainBatch(const HostBatch& batch, bool have, std::vector<double>* epoch_sums);
  // Runs fn(batch) over every batch of a pass (group-wide), with fn(empty, false) for ranks
  // without data while others still have some.
  template <typename Fn>
  void ForEachBatch(io::BatchStream& stream, int epoch, const std::string& channel, Fn fn);
  // Evaluates `mk / k` models given as raw weights on a channel or on the training sample.
  Evaluation EvaluateStream(io::BatchStream& stream, int epoch, const std::string& channel,
                            const float* w_raw, const float* b_raw, int64_t models,
                            std::vector<double> thresholds, int64_t cap);
  Evaluation EvaluateSample(const float* w_raw, const float* b_raw, int64_t models,
                            std::vector<double> thresholds, int64_t cap);
  void EvaluateBatch(Evaluation& e, const HostBatch& batch, const float* w_raw, const float* b_raw,
                     int64_t models);
  std::vector<float> RowWeights(const HostBatch& batch) const;
  void RawModels(std::vector<float>* w_raw, std::vector<float>* b_raw) const;
  void WriteModel(const Snapshot& best, std::map<std::string, double> metrics);

  TrainContext& ctx_;
  Config cfg_;
  comm::Communicator& comm_;
  kernels::LinearLossStepper stepper_;
  int64_t d_ = 0, k_, m_;
  Scaler scaler_;
  std::vector<ModelSettings> settings_;
  std::vector<float> positive_weight_;  // m (binary)
  std::vector<double> class_weights_;   // num_classes (balance_multiclass_weights)
  // The first batches read (replayed in epoch 0) and the training sample (their first rows;
  // whole batches are shared, not copied).
  std::vector<std::shared_ptr<const HostBatch>> prefix_;
  std::vector<std::shared_ptr<const HostBatch>> sample_;
  int64_t sample_rows_ = 0;
  int64_t binary_cap_ = 0;  // binary score-sample rows per rank
  // Normalised-space parameters and the step's scratch.
  std::vector<float> w_, b_, w_eff_, b_eff_, grad_, labels_, row_weights_, eval_scores_;
  // Binary score-sample buffers kept between passes, per (channel or "sample", models).
  std::map<std::pair<std::string, int64_t>, Evaluation::SampleBuffers> spare_samples_;
  std::vector<double> sums_;
  std::unique_ptr<ParallelOptimizer> opt_;
#if MLFORGE_HAVE_CUDA
  // Several ranks on GPUs: the training step's sums across them, on the devices (NCCL, or staged
  // through the host when ranks share a GPU or the build has no NCCL). Null otherwise.
  std::unique_ptr<comm::DeviceCommunicator> device_comm_;
#endif
};

template <typename Fn>
void Trainer::ForEachBatch(io::BatchStream& stream, int epoch, const std::string& channel, Fn fn) {
  stream.StartEpoch(epoch);
  HostBatch batch, empty;
  while (true) {
    const bool have = stream.Next(&batch);
    ctx_.stop().ThrowIfStopped();
    if (!GroupHasData(comm_, have)) break;
    if (have) CheckLabels(cfg_, batch, channel);
    fn(have ? batch : empty, have);
  }
}

void Trainer::ReadPrefix(io::BatchStream& stream) {
  const int world = comm_.world_size();
  const int64_t scaler_rows = CeilDiv(cfg_.num_point_for_scaler, world);
  int64_t sample_target = CeilDiv(cfg_.num_calibration_samples, world);
  int64_t rows = 0;
  HostBatch b;
  stream.StartEpoch(0);
  bool budget_known = false;
  const int64_t asked = sample_target;
  bool more = true;
  while (rows < std::max(scaler_rows, sample_target) && (more = stream.Next(&b))) {
    ctx_.stop().ThrowIfStopped();
    CheckLabels(cfg_, b, "train");
    if (!budget_known && b.rows > 0) {
      // Cap the training sample by host memory, from the first batch's bytes per row.
      budget_known = true;
      const double per_row = std::max(static_cast<double>(b.bytes()) / static_cast<double>(b.rows), 1.0);
      sample_target =
          std::clamp<int64_t>(static_cast<int64_t>(kSampleBudgetBytes / per_row), 1, sample_target);
    }
    rows += b.rows;
    prefix_.push_back(std::make_shared<const HostBatch>(std::move(b)));
    b = HostBatch();
  }
  if (more && sample_target < asked && rows >= sample_target) {
    spdlog::warn(
        "the training sample for model selection and the train metrics is cut from {} to {} rows per host (a "
        "{:.0f} MB memory budget); give a validation channel to select on all of its rows",
        asked, sample_target, kSampleBudgetBytes / (1 << 20));
  }
  // feature_dim: the data's width (every rank must agree).
  double cols = prefix_.empty() ? 0.0 : static_cast<double>(stream.cols());
  comm_.AllReduceMax(&cols, 1);
  MLF_EXPECTS(cols > 0, "the train channel holds no rows; linear learner needs labelled training data");
  d_ = static_cast<int64_t>(cols);
  MLF_EXPECTS(
      prefix_.empty() || stream.cols() == d_,
      "the train channel has {} features on host {} but {} on another host; every host must read rows "
      "of the same width (feature_dim)",
      stream.cols(), ctx_.host, d_);
  if (ctx_.hyperparameters.IsAuto("feature_dim")) ctx_.hyperparameters.Resolve("feature_dim", d_);
  cfg_.feature_dim = d_;

  // Scaler statistics and class counts over the first scaler_rows rows of every rank.
  ScalerStats stats(d_, cfg_.predictor_type == PredictorType::kBinaryClassifier       ? 2
                        : cfg_.predictor_type == PredictorType::kMulticlassClassifier ? cfg_.num_classes
                                                                                      : 0);
  int64_t left = scaler_rows;
  for (const auto& pb : prefix_) {
    if (left <= 0) break;
    const int64_t take = std::min(left, pb->rows);
    stats.Add(*pb, take);
    left -= take;
  }
  stats.AllReduce(comm_);
  const bool normalise_any =
      cfg_.normalize_data || cfg_.unbias_data || cfg_.normalize_label || cfg_.unbias_label;
  scaler_ = normalise_any ? Scaler::FromStats(cfg_, stats) : Scaler::Identity(d_);
  spdlog::info("scaler sample: {} row(s) ({} per host at most, num_point_for_scaler {})",
               static_cast<int64_t>(stats.rows), scaler_rows, cfg_.num_point_for_scaler);
  spdlog::info("{}", scaler_.Describe());

  // Class balance (binary: positive_example_weight_mult balanced/auto; multiclass: class weights).
  double balanced = 1.0;
  if (cfg_.predictor_type == PredictorType::kBinaryClassifier) {
    const double neg = stats.class_rows[0], pos = stats.class_rows[1];
    if (pos > 0 && neg > 0) {
      balanced = neg / pos;
    } else if (cfg_.positive_weight_mode != PositiveWeightMode::kValue) {
      spdlog::warn(
          "the scaler sample holds {} positive and {} negative rows: positive_example_weight_mult {} "
          "uses 1",
          pos, neg, cfg_.positive_weight_mode == PositiveWeightMode::kAuto ? "auto" : "balanced");
    }
    if (cfg_.positive_weight_mode != PositiveWeightMode::kValue) {
      spdlog::info("balanced positive_example_weight_mult (negatives / positives in the scaler sample): {}",
                   log::FormatValue(balanced));
    }
  }
  if (cfg_.predictor_type == PredictorType::kMulticlassClassifier && cfg_.balance_multiclass_weights) {
    class_weights_.assign(static_cast<size_t>(cfg_.num_classes), 1.0);
    const double total = stats.rows;
    for (int64_t c = 0; c < cfg_.num_classes; ++c) {
      const double n = stats.class_rows[c];
      if (n > 0) class_weights_[c] = total / (static_cast<double>(cfg_.num_classes) * n);
    }
    std::string text;
    for (double w : class_weights_) text += (text.empty() ? "" : ", ") + log::FormatValue(w);
    spdlog::info(
        "balance_multiclass_weights: class weights [{}] (rows / (num_classes x class rows) in the scaler "
        "sample; classes absent from it weigh 1)",
        text);
  }
  settings_ = ParallelModelSettings(cfg_, balanced);
  positive_weight_.resize(static_cast<size_t>(m_));
  for (int64_t j = 0; j < m_; ++j) positive_weight_[j] = static_cast<float>(settings_[j].positive_weight);

  // The training sample: the first sample_target rows of the prefix.
  left = sample_target;
  for (const auto& pb : prefix_) {
    if (left <= 0) break;
    sample_.push_back(left >= pb->rows ? pb : std::make_shared<const HostBatch>(FirstRows(*pb, left)));
    sample_rows_ += sample_.back()->rows;
    left -= sample_.back()->rows;
  }
}

std::vector<float> Trainer::RowWeights(const HostBatch& batch) const {
  if (class_weights_.empty()) return batch.weights;
  std::vector<float> w(static_cast<size_t>(batch.rows));
  for (int64_t i = 0; i < batch.rows; ++i) {
    const double cw = class_weights_[static_cast<size_t>(batch.labels[i])];
    w[i] = static_cast<float>(cw * (batch.weights.empty() ? 1.0 : batch.weights[i]));
  }
  return w;
}

void Trainer::TrainBatch(const HostBatch& batch, bool have, std::vector<double>* epoch_sums) {
  const int64_t mk = m_ * k_;
  const size_t nw = static_cast<size_t>(d_ * mk);
  // grad_ holds [dW (d x mk), db (mk)] so one all-reduce carries both; sums_ [loss (m), weight
  // sum (m), rows].
  grad_.resize(nw + mk);
  sums_.assign(static_cast<size_t>(2 * m_ + 1), 0.0);
  const bool rows = have && batch.rows > 0;
  const float* labels = rows ? batch.labels.data() : nullptr;
  if (rows) {
    if (scaler_.shift_label || scaler_.scale_label) {
      labels_.resize(static_cast<size_t>(batch.rows));
      for (int64_t i = 0; i < batch.rows; ++i) labels_[i] = scaler_.NormaliseLabel(batch.labels[i]);
      labels = labels_.data();
    }
    row_weights_ = RowWeights(batch);
    scaler_.Fold(w_.data(), cfg_.use_bias ? b_.data() : nullptr, mk, false, w_eff_.data(), b_eff_.data());
  }
  kernels::HostLinearModels models;
  models.weights = w_eff_.data();
  models.bias = cfg_.use_bias ? b_eff_.data() : nullptr;
  models.d = d_;
  models.m = m_;
  models.k = k_;
  models.positive_weight =
      cfg_.predictor_type == PredictorType::kBinaryClassifier ? positive_weight_.data() : nullptr;
  kernels::HostLinearLossOutput out;
  out.loss = sums_.data();
  out.weight_sum = sums_.data() + m_;
  out.grad_weights = grad_.data();
  out.grad_bias = grad_.data() + nw;
  const float* rw = rows && !row_weights_.empty() ? row_weights_.data() : nullptr;
#if MLFORGE_HAVE_CUDA
  if (device_comm_ != nullptr) {
    // Several GPUs: the step's gradient and sums are summed on the devices before they come down
    // (every rank takes part, with zeros when it has no rows); the scaler's map to normalised space
    // is linear and the same on every rank, so it follows the sum.
    double group_rows = 0;
    stepper_.RunReduced(*device_comm_, rows ? &batch : nullptr, labels, rw, models, SpecFor(cfg_, scaler_.stdev_label),
                        out, rows ? static_cast<double>(batch.rows) : 0.0, &group_rows);
    scaler_.GradientToNormalised(grad_.data(), grad_.data() + nw, mk);
    sums_[2 * m_] = group_rows;
  } else
#endif
  {
    if (rows) {
      stepper_.Run(batch, labels, rw, models, SpecFor(cfg_, scaler_.stdev_label), out);
      scaler_.GradientToNormalised(grad_.data(), grad_.data() + nw, mk);
      sums_[2 * m_] = static_cast<double>(batch.rows);
    } else {
      std::fill(grad_.begin(), grad_.end(), 0.0f);
    }
    if (comm_.world_size() > 1) {
      comm_.AllReduceSum(grad_.data(), grad_.size());
      comm_.AllReduceSum(sums_.data(), sums_.size());
    }
  }
  opt_->Step(w_.data(), cfg_.use_bias ? b_.data() : nullptr, grad_.data(), grad_.data() + nw,
             sums_.data() + m_);
  for (size_t i = 0; i < sums_.size(); ++i) (*epoch_sums)[i] += sums_[i];
}

void Trainer::RawModels(std::vector<float>* w_raw, std::vector<float>* b_raw) const {
  const int64_t mk = m_ * k_;
  w_raw->resize(static_cast<size_t>(d_ * mk));
  b_raw->resize(static_cast<size_t>(mk));
  scaler_.Fold(w_.data(), cfg_.use_bias ? b_.data() : nullptr, mk, true, w_raw->data(), b_raw->data());
}

void Trainer::EvaluateBatch(Evaluation& e, const HostBatch& batch, const float* w_raw, const float* b_raw,
                            int64_t models) {
  const int64_t mk = models * k_;
  // Kept across batches (a fresh rows x mk buffer was mapped and unmapped every batch).
  std::vector<float>& scores = eval_scores_;
  scores.resize(static_cast<size_t>(batch.rows * mk));
  std::vector<double> sums(static_cast<size_t>(2 * models), 0.0);
  if (batch.rows > 0) {
    kernels::HostLinearModels mm;
    mm.weights = w_raw;
    mm.bias = cfg_.use_bias ? b_raw : nullptr;
    mm.d = d_;
    mm.m = models;
    mm.k = k_;
    kernels::HostLinearLossOutput out;
    out.scores = scores.data();
    out.loss = sums.data();
    out.weight_sum = sums.data() + models;
    stepper_.Run(batch, batch.labels.data(), batch.weights.empty() ? nullptr : batch.weights.data(), mm,
                 SpecFor(cfg_, 1.0), out);
  }
  e.Add(batch, scores.data(), sums.data(), sums.data() + models);
}

Evaluation Trainer::EvaluateStream(io::BatchStream& stream, int epoch, const std::string& channel,
                                   const float* w_raw, const float* b_raw, int64_t models,
                                   std::vector<double> thresholds, int64_t cap) {
  Evaluation e(cfg_, models, cap, std::move(thresholds));
  e.AdoptSample(std::move(spare_samples_[{channel, models}]));
  ForEachBatch(stream, epoch, channel, [&](const HostBatch& batch, bool have) {
    if (have) EvaluateBatch(e, batch, w_raw, b_raw, models);
  });
  e.AllReduce(comm_);
  MLF_EXPECTS(e.weight(0) > 0, "the {} channel yielded no rows (or only rows of weight 0)", channel);
  return e;
}

Evaluation Trainer::EvaluateSample(const float* w_raw, const float* b_raw, int64_t models,
                                   std::vector<double> thresholds, int64_t cap) {
  Evaluation e(cfg_, models, cap, std::move(thresholds));
  e.AdoptSample(std::move(spare_samples_[{"sample", models}]));
  for (const auto& batch : sample_) {
    ctx_.stop().ThrowIfStopped();
    EvaluateBatch(e, *batch, w_raw, b_raw, models);
  }
  e.AllReduce(comm_);
  return e;
}

void Trainer::Run() {
  const auto t_start = Clock::now();
  const TrainChannel& train = *ctx_.channel("train");
  const TrainChannel* validation = ctx_.channel("validation");
  const TrainChannel* test = ctx_.channel("test");
  const int world = comm_.world_size();

  io::BatchStream stream(train.source,
                         MakeStreamOptions(cfg_, ctx_, train, cfg_.feature_dim > 0 ? cfg_.feature_dim : -1));
  ReadPrefix(stream);
  const int64_t mk = m_ * k_;
  binary_cap_ = CeilDiv(
      std::min<int64_t>(cfg_.num_calibration_samples, static_cast<int64_t>(kSampleBudgetBytes / (4.0 * m_))),
      world);
  if (cfg_.predictor_type == PredictorType::kBinaryClassifier &&
      binary_cap_ * world < cfg_.num_calibration_samples) {
    spdlog::info("threshold calibration keeps at most {} rows per host ({:.0f} MB for {} models' scores)",
                 binary_cap_, kSampleBudgetBytes / (1 << 20), m_);
  }
  spdlog::info(
      "linear learner: {} {}, feature_dim {}, {} model(s) in parallel, optimizer {}, mini_batch_size {}, "
      "{} epoch(s), {} host(s), device {}",
      PredictorTypeName(cfg_.predictor_type), LossName(cfg_.loss), d_, m_, OptimizerName(cfg_.optimizer),
      cfg_.mini_batch_size, cfg_.epochs, world, DeviceName(stepper_.device()));
  for (int64_t j = 0; j < m_; ++j)
    spdlog::debug("model {} settings: {}", j, settings_[j].ToJson(cfg_).dump());

  w_.assign(static_cast<size_t>(d_ * mk), 0.0f);
  InitWeights(cfg_, w_);
  b_.assign(static_cast<size_t>(mk), static_cast<float>(cfg_.init_bias));
  w_eff_.resize(w_.size());
  b_eff_.resize(b_.size());
  opt_ = std::make_unique<ParallelOptimizer>(cfg_, settings_, d_, k_, ctx_.resources.threads());
  // The step's sums go through the GPUs only when every rank trains on one: with device auto, a
  // host without a usable GPU trains on its CPU, and its rank must not take another path (with
  // other collectives) than the rest. One all-reduce of a flag, on every rank of every build.
  bool every_rank_on_gpu = stepper_.device() == Device::kGpu;
  if (world > 1) {
    double not_on_gpu = every_rank_on_gpu ? 0.0 : 1.0;
    comm_.AllReduceMax(&not_on_gpu, 1);
    if (every_rank_on_gpu && not_on_gpu > 0) {
      spdlog::info("linear learner: some rank(s) train on their CPU; the step's sums go through the host");
    }
    every_rank_on_gpu = not_on_gpu == 0;
  }
#if MLFORGE_HAVE_CUDA
  // MLFORGE_DEVICE_REDUCE also makes a single rank take the path (tests).
  if (every_rank_on_gpu && (world > 1 || std::getenv("MLFORGE_DEVICE_REDUCE") != nullptr)) {
    device_comm_ = comm::MakeDeviceGroup(comm_, ctx_.resources.cuda().device);
    spdlog::info("linear learner: the training step's sums across {} rank(s) on the GPUs ({})", world,
                 device_comm_->backend());
  }
#endif

  std::unique_ptr<io::BatchStream> val_stream;
  if (validation) {
    val_stream =
        std::make_unique<io::BatchStream>(validation->source, MakeStreamOptions(cfg_, ctx_, *validation, d_));
  }
  const std::string criterion_name = (validation ? "" : "sampled_") + CriterionName(cfg_);
  const std::string objective_name = ObjectiveName(cfg_.loss) + "_objective";
  const double train_units = LossUnitsToRaw(cfg_.loss, scaler_.stdev_label) * ObjectiveScale(cfg_.loss);

  // Passes over the validation channel so far: Pipe mode numbers its FIFOs by pass
  // (validation_0, validation_1, ...), whatever early stopping does to the epochs.
  int val_passes = 0;
  Snapshot best;
  double reference = 0;  // early stopping: the value the next epoch must improve on
  bool have_reference = false;
  int64_t stale_epochs = 0;
  std::vector<float> w_raw, b_raw;
  for (int epoch = 0; epoch < cfg_.epochs; ++epoch) {
    comm_.SetPhase(fmt::format("linear-learner epoch {}", epoch));
    const auto t_epoch = Clock::now();
    const auto wall_start = std::chrono::system_clock::now();
    std::vector<double> epoch_sums(static_cast<size_t>(2 * m_ + 1), 0.0);
    int64_t batches = 0;
    if (epoch == 0) {
      // Replay the prefix read for the scaler, then continue the stream where it stopped.
      HostBatch batch, empty;
      size_t next = 0;
      while (true) {
        const HostBatch* current = &batch;
        std::shared_ptr<const HostBatch> held;
        bool have;
        if (next < prefix_.size()) {
          held = std::move(prefix_[next++]);  // released after its step unless the sample shares it
          current = held.get();
          have = true;
        } else {
          have = stream.Next(&batch);
          if (have) CheckLabels(cfg_, batch, "train");
        }
        ctx_.stop().ThrowIfStopped();
        if (!GroupHasData(comm_, have)) break;
        TrainBatch(have ? *current : empty, have, &epoch_sums);
        ++batches;
      }
      prefix_.clear();
      prefix_.shrink_to_fit();
    } else {
      ForEachBatch(stream, epoch, "train", [&](const HostBatch& batch, bool have) {
        TrainBatch(batch, have, &epoch_sums);
        ++batches;
      });
    }
    const double rows = epoch_sums[2 * m_];
    MLF_EXPECTS(rows > 0, "the train channel yielded no rows in epoch {}", epoch);
    const double train_secs = Seconds(t_epoch);

    // Selection data: the validation channel, else the training sample.
    RawModels(&w_raw, &b_raw);
    Evaluation eval = val_stream ? EvaluateStream(*val_stream, val_passes++, "validation", w_raw.data(),
                                                  b_raw.data(), m_, {}, binary_cap_)
                                 : EvaluateSample(w_raw.data(), b_raw.data(), m_, {}, binary_cap_);
    // Calibration sorts each model's sample: the models are independent, so in parallel.
    std::vector<ModelEvaluation> evals(static_cast<size_t>(m_));
#ifdef _OPENMP
#pragma omp parallel for num_threads(ctx_.resources.threads()) schedule(dynamic) if (m_ > 1)
#endif
    for (int64_t j = 0; j < m_; ++j) evals[j] = eval.Finish(j, /*full=*/false);
    spare_samples_[{val_stream ? "validation" : "sample", m_}] = eval.ReleaseSample();
    int64_t chosen = 0;
    for (int64_t j = 1; j < m_; ++j) {
      if (Better(evals[j].criterion, evals[chosen].criterion, evals[j].higher_is_better)) chosen = j;
    }
    const ModelEvaluation& ce = evals[chosen];
    auto train_objective = [&](int64_t j) {
      return epoch_sums[m_ + j] > 0 ? epoch_sums[j] / epoch_sums[m_ + j] * train_units : 0.0;
    };
    log::QualityMetric(ctx_.host, "train", objective_name, "loss", train_objective(chosen), epoch);
    if (validation) log::QualityMetric(ctx_.host, "validation", objective_name, "loss", ce.objective, epoch);
    spdlog::info("#early_stopping_criteria_metric: host={}, epoch={}, criteria={}, value={}", ctx_.host,
                 epoch, criterion_name, log::FormatValue(ce.criterion));
    const auto wall_end = std::chrono::system_clock::now();
    const auto unix_seconds = [](std::chrono::system_clock::time_point t) {
      return std::chrono::duration<double>(t.time_since_epoch()).count();
    };
    for (int64_t j = 0; j < m_; ++j) {
      nlohmann::ordered_json metrics;
      auto stat = [](double v) {
        return nlohmann::ordered_json{{"sum", v}, {"count", 1}, {"min", v}, {"max", v}};
      };
      metrics["train_" + objective_name] = stat(train_objective(j));
      metrics[(validation ? "validation_" : "sampled_train_") + objective_name] = stat(evals[j].objective);
      nlohmann::ordered_json line = {{"StartTime", unix_seconds(wall_start)},
                                     {"EndTime", unix_seconds(wall_end)},
                                     {"Dimensions",
                                      {{"Algorithm", "Linear Learner"},
                                       {"Host", ctx_.host},
                                       {"Operation", "training"},
                                       {"epoch", epoch},
                                       {"model", j}}},
                                     {"Metrics", metrics}};
      spdlog::info("#metrics {}", line.dump());
    }

    // Keep the best (epoch, model) seen.
    if (!best.valid || Better(ce.criterion, best.criterion, ce.higher_is_better)) {
      spdlog::info("Epoch {}: {} improved to {} (model {}). Updating best model", epoch, criterion_name,
                   log::FormatValue(ce.criterion), chosen);
      best.valid = true;
      best.epoch = epoch;
      best.model = chosen;
      best.criterion = ce.criterion;
      best.threshold = ce.threshold;
      best.w.resize(static_cast<size_t>(d_ * k_));
      best.b.assign(b_raw.begin() + chosen * k_, b_raw.begin() + (chosen + 1) * k_);
      for (int64_t i = 0; i < d_; ++i) {
        std::copy(w_raw.begin() + i * mk + chosen * k_, w_raw.begin() + i * mk + (chosen + 1) * k_,
                  best.w.begin() + i * k_);
      }
    }
    log::ThroughputMetric(ctx_.host, "train", rows / std::max(train_secs, 1e-9));
    log::ProgressMetric(ctx_.host, 100.0 * (epoch + 1) / cfg_.epochs);
    spdlog::info("epoch {}: {} batch(es), {} row(s), {:.4f} s training + {:.4f} s evaluation", epoch, batches,
                 static_cast<int64_t>(rows), train_secs, Seconds(t_epoch) - train_secs);

    // Early stopping on the relative improvement of the epoch's best criterion.
    const double scale = std::max(std::fabs(reference), 1e-12);
    const double gain =
        ce.higher_is_better ? (ce.criterion - reference) / scale : (reference - ce.criterion) / scale;
    if (!have_reference || !std::isfinite(reference) || gain > cfg_.early_stopping_tolerance) {
      have_reference = true;
      reference = ce.criterion;
      stale_epochs = 0;
    } else if (++stale_epochs >= cfg_.early_stopping_patience) {
      spdlog::info(
          "Early stop condition met: {} epoch(s) without a relative improvement of {} in {}. Stopping "
          "training.",
          stale_epochs, log::FormatValue(cfg_.early_stopping_tolerance), criterion_name);
      break;
    }
  }

  // The kept model, scored as it will be saved (one model, fixed threshold).
  MLF_ASSERT(best.valid);
  nlohmann::ordered_json chosen_settings = settings_[best.model].ToJson(cfg_);
  chosen_settings["epoch"] = best.epoch;
  chosen_settings["model"] = best.model;
  spdlog::info("Best model found for hyperparameters: {}", chosen_settings.dump());
  if (cfg_.predictor_type == PredictorType::kBinaryClassifier) {
    spdlog::info("calibrated threshold ({}): {}", SelectionCriterionName(cfg_.selection_criterion),
                 log::FormatValue(best.threshold));
  }
  std::map<std::string, double> metrics;
  const std::vector<double> threshold{best.threshold};
  const int64_t final_cap = CeilDiv(
      std::min<int64_t>(cfg_.num_calibration_samples, static_cast<int64_t>(kSampleBudgetBytes / 4.0)), world);
  ReportMetrics(ctx_.host, "train",
                EvaluateSample(best.w.data(), best.b.data(), 1, threshold, final_cap).Finish(0), &metrics);
  if (val_stream) {
    ReportMetrics(ctx_.host, "validation",
                  EvaluateStream(*val_stream, val_passes++, "validation", best.w.data(), best.b.data(), 1,
                                 threshold, final_cap)
                      .Finish(0),
                  &metrics);
  }
  if (test) {
    io::BatchStream test_stream(test->source, MakeStreamOptions(cfg_, ctx_, *test, d_));
    ReportMetrics(
        ctx_.host, "test",
        EvaluateStream(test_stream, 0, "test", best.w.data(), best.b.data(), 1, threshold, final_cap)
            .Finish(0),
        &metrics);
  }
  WriteModel(best, std::move(metrics));
  spdlog::info("linear learner training finished in {:.3f} s", Seconds(t_start));
}

void Trainer::WriteModel(const Snapshot& best, std::map<std::string, double> metrics) {
  Model model;
  model.predictor_type = cfg_.predictor_type;
  model.loss_type = LossName(cfg_.loss);
  model.dim = d_;
  model.outputs = k_;
  model.weights = best.w;
  model.bias = cfg_.use_bias ? best.b : std::vector<float>(static_cast<size_t>(k_), 0.0f);
  model.threshold = cfg_.predictor_type == PredictorType::kBinaryClassifier ? best.threshold : 0.5;
  model.metrics_params = MetricsParamsFor(cfg_, model.threshold);
  if (cfg_.predictor_type == PredictorType::kBinaryClassifier) {
    model.metrics_params["positive_example_weight_mult"] = settings_[best.model].positive_weight;
  }
  if (!class_weights_.empty()) model.metrics_params["class_weights"] = class_weights_;
  model.bias_lr_mult = cfg_.bias_lr_mult;
  model.hyperparameters_json = ctx_.hyperparameters.ToJson();
  model.metrics = std::move(metrics);
  if (comm_.rank() == 0) SaveModel(model, ctx_.model_dir);
}

}  // namespace

void Train(TrainContext& ctx) {
  Trainer trainer(ctx);
  trainer.Run();
}

}  // namespace mlforge::algos::linear_learner
