#include "algos/linear_learner/metrics.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "comm/communicator.h"
#include "core/error.h"
#include "core/log.h"

namespace mlforge::algos::linear_learner {

std::string ObjectiveName(Loss loss) {
  switch (loss) {
    case Loss::kLogistic:
      return "binary_classification_cross_entropy";
    case Loss::kSoftmax:
      return "multiclass_cross_entropy";
    case Loss::kSquared:
      return "mse";
    default:
      return LossName(loss);
  }
}

double ObjectiveScale(Loss loss) {
  return loss == Loss::kSquared || loss == Loss::kEpsInsensitiveSquared ? 2.0 : 1.0;
}

std::string CriterionName(const Config& cfg) {
  if (cfg.predictor_type == PredictorType::kBinaryClassifier &&
      cfg.selection_criterion != SelectionCriterion::kLossFunction) {
    return SelectionCriterionName(cfg.selection_criterion);
  }
  return ObjectiveName(cfg.loss) + "_objective";
}

bool Better(double a, double b, bool higher_is_better) {
  if (!std::isfinite(a)) return false;
  if (!std::isfinite(b)) return true;
  return higher_is_better ? a > b : a < b;
}

namespace {

double Sigmoid(double s) {
  if (s >= 0) return 1.0 / (1.0 + std::exp(-s));
  const double e = std::exp(s);
  return e / (1.0 + e);
}

double Ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

double FBeta(double precision, double recall, double beta) {
  const double b2 = beta * beta;
  const double den = b2 * precision + recall;
  return den > 0 ? (1 + b2) * precision * recall / den : 0.0;
}

std::string FName(const std::string& prefix, double beta) { return fmt::format("{}_f_{:.3f}", prefix, beta); }

// Sorts rows by descending score, stably: an LSD radix sort on the float bits (2 passes of 16
// bits, both histograms counted in one read), O(n) where std::sort's O(n log n) dominated each
// epoch's calibration of 32 models. Any bit pattern sorts (NaN included), so odd scores cannot
// break the ordering.
void SortByScoreDescending(std::vector<ScoredRow>& rows) {
  const size_t n = rows.size();
  if (n < 1024) {
    std::stable_sort(rows.begin(), rows.end(),
                     [](const ScoredRow& a, const ScoredRow& b) { return a.score > b.score; });
    return;
  }
  // Ascending order of `key` is descending order of the score.
  auto key = [](float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof(u));
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);  // ascending in the float's order
    return ~u;
  };
  std::vector<uint32_t> count(2 * 65536, 0);
  uint32_t* lo = count.data();
  uint32_t* hi = count.data() + 65536;
  for (const ScoredRow& r : rows) {
    const uint32_t k = key(r.score);
    ++lo[k & 0xFFFFu];
    ++hi[k >> 16];
  }
  uint32_t sum_lo = 0, sum_hi = 0;
  for (size_t b = 0; b < 65536; ++b) {
    const uint32_t cl = lo[b], ch = hi[b];
    lo[b] = sum_lo;
    hi[b] = sum_hi;
    sum_lo += cl;
    sum_hi += ch;
  }
  thread_local std::vector<ScoredRow> tmp;
  tmp.resize(n);
  for (const ScoredRow& r : rows) tmp[lo[key(r.score) & 0xFFFFu]++] = r;
  for (const ScoredRow& r : tmp) rows[hi[key(r.score) >> 16]++] = r;
}

}  // namespace

namespace {

// Thresholds beyond the extreme scores keep a margin: Predict recomputes scores in float64, which
// may differ from these float32 ones in the last bits.
double Margin(double s) { return 1e-6 * std::max(1.0, std::fabs(s)); }

// The sweep's choice among cuts (metrics.h, "Calibration"): Consider() is called for the cuts in
// descending threshold order; the first cut with the best key among the eligible ones wins, and
// recall_at_target_precision falls back to the first cut with the highest precision.
class CutChooser {
 public:
  CutChooser(const Config& cfg, double pos, double neg) : cfg_(cfg), pos_(pos), neg_(neg) {}

  // The criterion at a cut with tp / fp weight above it; *eligible: whether the cut may be chosen;
  // *precision: its precision. Every key and predicate is non-decreasing in tp and non-increasing
  // in fp, so Key(tp + P, fp) bounds every cut inside a block of P positive and N negative weight
  // below (tp, fp) (the bucketed calibration relies on this).
  double Key(double tp, double fp, bool* eligible, double* precision) const {
    const double tn = neg_ - fp;
    *precision = Ratio(tp, tp + fp);
    const double recall = Ratio(tp, pos_);
    *eligible = true;
    switch (cfg_.selection_criterion) {
      case SelectionCriterion::kAccuracy:
        return Ratio(tp + tn, pos_ + neg_);
      case SelectionCriterion::kFBeta:
        return FBeta(*precision, recall, cfg_.f_beta);
      case SelectionCriterion::kPrecisionAtTargetRecall:
        *eligible = recall >= cfg_.target_recall;
        return *precision;
      case SelectionCriterion::kRecallAtTargetPrecision:
        *eligible = *precision >= cfg_.target_precision && tp + fp > 0;
        return recall;
      case SelectionCriterion::kLossFunction:
        break;
    }
    *eligible = false;
    return 0;
  }

  void Consider(double tp, double fp, double thr) {
    bool eligible = false;
    double precision = 0;
    const double key = Key(tp, fp, &eligible, &precision);
    Calibration c{thr, 0, tp, fp, neg_ - fp, pos_ - tp};
    if (cfg_.selection_criterion == SelectionCriterion::kRecallAtTargetPrecision && precision > best_precision_) {
      best_precision_ = precision;
      fallback_ = c;
    }
    c.value = key;
    if (eligible && (!have_ || key > best_key_)) {
      have_ = true;
      best_key_ = key;
      best_ = c;
    }
  }

  // The cuts between the distinct scores of `m` rows sorted by descending score, whose weights add
  // to *tp / *fp as they pass; `next`: the score just below the last row (null: none, the last
  // cut then lies the margin below it).
  void Sweep(const ScoredRow* r, size_t m, const double* next, double* tp, double* fp) {
    for (size_t i = 0; i < m;) {
      size_t g = i;
      while (g < m && r[g].score == r[i].score) {
        (r[g].label > 0.5 ? *tp : *fp) += r[g].weight;
        ++g;
      }
      const double here = r[i].score;
      const double thr = g < m ? 0.5 * (here + static_cast<double>(r[g].score))
                               : (next != nullptr ? 0.5 * (here + *next) : here - Margin(here));
      Consider(*tp, *fp, thr);
      i = g;
    }
  }

  Calibration Result() const {
    if (have_) return best_;
    Calibration f = fallback_;
    f.value = 0;
    return f;
  }

 private:
  const Config& cfg_;
  double pos_, neg_;
  Calibration best_, fallback_;
  bool have_ = false;
  double best_key_ = 0, best_precision_ = -1;  // best_precision_: recall_at_target_precision fallback
};


}  // namespace

Calibration CalibrateThreshold(std::vector<ScoredRow>& rows, const Config& cfg, double default_threshold) {
  const SelectionCriterion crit = cfg.selection_criterion;
  if (crit == SelectionCriterion::kLossFunction) {
    // No sweep: the counts at the default threshold, in any order.
    double pos = 0, neg = 0, tp = 0, fp = 0;
    for (const ScoredRow& r : rows) {
      const bool positive = r.label > 0.5;
      (positive ? pos : neg) += r.weight;
      if (r.score > default_threshold) (positive ? tp : fp) += r.weight;
    }
    return Calibration{default_threshold, 0, tp, fp, neg - fp, pos - tp};
  }
  SortByScoreDescending(rows);
  double pos = 0, neg = 0;
  for (const ScoredRow& r : rows) (r.label > 0.5 ? pos : neg) += r.weight;
  if (rows.empty()) return Calibration{default_threshold, 0, 0, 0, 0, 0};
  CutChooser chooser(cfg, pos, neg);
  // No row positive: threshold above the highest score.
  chooser.Consider(0, 0, rows.front().score + Margin(rows.front().score));
  double tp = 0, fp = 0;
  chooser.Sweep(rows.data(), rows.size(), nullptr, &tp, &fp);
  return chooser.Result();
}

CalibrationLabels SummariseCalibrationLabels(const float* labels, const float* weights, size_t n) {
  CalibrationLabels c;
  c.positive.resize(n);
  uint64_t non_unit = 0, positives = 0;
  for (size_t i = 0; i < n; ++i) c.positive[i] = labels[i] > 0.5f;  // no branch on the (random) labels
  for (size_t i = 0; i < n; ++i) positives += c.positive[i];
  for (size_t i = 0; i < n; ++i) non_unit += weights[i] != 1.0f;
  c.unit = non_unit == 0;
  c.pos = static_cast<double>(positives);
  c.total = static_cast<double>(n);
  if (!c.unit) {
    c.pos = c.total = 0;
    for (size_t i = 0; i < n; ++i) {
      const double w = weights[i];
      c.total += w;
      c.pos += w * static_cast<double>(c.positive[i]);
    }
  }
  return c;
}

Calibration CalibrateThresholdBucketed(const float* scores, const float* labels, const float* weights, size_t n,
                                       const Config& cfg, double default_threshold,
                                       const CalibrationLabels* shared) {
  // The labels' side (whether every weight is 1, the default: then counts, integer adds, stand
  // for the weight sums and are the same numbers; the positives) is the same for every model of a
  // pass: callers calibrating many models pass it in.
  CalibrationLabels local;
  if (shared == nullptr) {
    local = SummariseCalibrationLabels(labels, weights, n);
    shared = &local;
  }
  MLF_ASSERT(shared->positive.size() == n);
  const uint8_t* positive = shared->positive.data();
  const bool unit = shared->unit;
  const double pos = shared->pos, total = shared->total;
  // The score range (NaN and infinities are left to the sorted sweep): Eigen's packet min / max,
  // NaNs counted apart (so their handling there does not matter).
  float smin = std::numeric_limits<float>::infinity(), smax = -smin;
  if (n > 0) {
    const Eigen::Map<const Eigen::ArrayXf> sv(scores, static_cast<Eigen::Index>(n));
    smin = sv.minCoeff();
    smax = sv.maxCoeff();
  }
  uint64_t nans = 0;
  for (size_t i = 0; i < n; ++i) nans += scores[i] != scores[i];
  const bool finite = nans == 0 && std::isfinite(smin) && std::isfinite(smax);
  const double neg = total - pos;
  if (n < kBucketedCalibrationMinRows || !finite || cfg.selection_criterion == SelectionCriterion::kLossFunction) {
    std::vector<ScoredRow> rows(n);
    for (size_t i = 0; i < n; ++i) rows[i] = {scores[i], labels[i], weights[i]};
    return CalibrateThreshold(rows, cfg, default_threshold);
  }
  // Buckets of equal width in score between the lowest and the highest score, about 16 rows each
  // (1024 to 2^18 buckets: the per-bucket sums stay in cache), numbered from the highest scores
  // down. The index is monotone in the score (a subtraction and a product rounded in float64
  // never reverse an order), so equal scores (both zeros included) share a bucket and the buckets
  // come in the sweep's order.
  const size_t nb = std::clamp<size_t>(n / 16, 1024, size_t{1} << 18);
  const double width = static_cast<double>(smax) - static_cast<double>(smin);
  const double scale = width > 0 ? static_cast<double>(nb) / width : 0.0;
  const double lo = smin;
  thread_local std::vector<uint32_t> index;
  thread_local std::vector<double> bucket_pos, bucket_weight;
  thread_local std::vector<uint32_t> bucket_count;
  index.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const double u = (static_cast<double>(scores[i]) - lo) * scale;
    index[i] = static_cast<uint32_t>(nb - 1 - std::min(static_cast<size_t>(u), nb - 1));
  }
  bucket_pos.assign(nb, 0.0);
  bucket_weight.assign(nb, 0.0);
  bucket_count.assign(nb, 0);
  if (unit) {
    // Count and positives of a bucket side by side: one cache line per row, not two.
    thread_local std::vector<uint32_t> counts;
    counts.assign(2 * nb, 0);
    for (size_t i = 0; i < n; ++i) {
      uint32_t* c = counts.data() + 2 * static_cast<size_t>(index[i]);
      ++c[0];
      c[1] += positive[i];
    }
    for (size_t b = 0; b < nb; ++b) {
      bucket_count[b] = counts[2 * b];
      bucket_pos[b] = counts[2 * b + 1];
      bucket_weight[b] = counts[2 * b];
    }
  } else {
    for (size_t i = 0; i < n; ++i) {
      const uint32_t b = index[i];
      const double w = weights[i];
      bucket_pos[b] += w * static_cast<double>(positive[i]);
      bucket_weight[b] += w;
      ++bucket_count[b];
    }
  }
  CutChooser bounds(cfg, pos, neg);
  const bool fallback = cfg.selection_criterion == SelectionCriterion::kRecallAtTargetPrecision;
  // Pass 1: the cuts between buckets are real cuts; the best eligible key among them (and the best
  // precision, for the fallback) is a floor for the answer.
  double floor_key = -std::numeric_limits<double>::infinity(), floor_precision = -1;
  bool eligible = false;
  double precision = 0, key = bounds.Key(0, 0, &eligible, &precision);
  if (eligible) floor_key = key;
  floor_precision = precision;
  double tp = 0, fp = 0;
  for (size_t b = 0; b < nb; ++b) {
    if (bucket_count[b] == 0) continue;
    tp += bucket_pos[b];
    fp += bucket_weight[b] - bucket_pos[b];
    key = bounds.Key(tp, fp, &eligible, &precision);
    if (eligible) floor_key = std::max(floor_key, key);
    floor_precision = std::max(floor_precision, precision);
  }
  // Pass 2: a bucket whose best possible cut (all its positives above it, none of its negatives)
  // could reach the floor is swept row by row; reaching it exactly counts too, so that the first
  // cut with the best key is the one found (with slack for rounding). The cut at the floor's own
  // bucket end is such a cut, so every other bucket ends below the answer: its cuts are skipped.
  // The bucket after a refined one gives its highest score (the next row's score).
  constexpr double kSlack = 1e-9;
  constexpr uint8_t kRefine = 1, kNeedTop = 2;
  thread_local std::vector<uint8_t> flag;
  thread_local std::vector<uint32_t> slot;
  thread_local std::vector<float> top;
  flag.assign(nb, 0);
  slot.resize(nb);
  top.resize(nb);
  tp = fp = 0;
  uint32_t gathered_rows = 0;
  size_t previous_refined = nb;  // a refined bucket still waiting for the next non-empty one
  for (size_t b = 0; b < nb; ++b) {
    if (bucket_count[b] == 0) continue;
    if (previous_refined < nb) {
      flag[b] |= kNeedTop;
      top[b] = -std::numeric_limits<float>::infinity();
      previous_refined = nb;
    }
    const double p = bucket_pos[b], q = bucket_weight[b] - bucket_pos[b];
    key = bounds.Key(tp + p, fp, &eligible, &precision);
    const bool may_win = eligible && key + kSlack * std::fabs(key) + 1e-300 >= floor_key;
    const bool may_fall_back = fallback && precision + kSlack * std::fabs(precision) >= floor_precision;
    if (may_win || may_fall_back) {
      flag[b] |= kRefine;
      slot[b] = gathered_rows;
      gathered_rows += bucket_count[b];
      previous_refined = b;
    }
    tp += p;
    fp += q;
  }
  // The flagged buckets lie in [first, last] (usually a few near the optimum): rows outside are
  // skipped on one well-predicted comparison instead of a lookup of their bucket's flag.
  size_t first = nb, last_flagged = 0;
  for (size_t b = 0; b < nb; ++b) {
    if (flag[b] != 0) {
      first = std::min(first, b);
      last_flagged = b;
    }
  }
  const uint32_t span = first < nb ? static_cast<uint32_t>(last_flagged - first) : 0;
  thread_local std::vector<ScoredRow> gathered;
  gathered.resize(gathered_rows);
  for (size_t i = 0; first < nb && i < n; ++i) {
    const uint32_t b = index[i];
    if (b - static_cast<uint32_t>(first) > span) continue;
    const uint8_t f = flag[b];
    if (f == 0) continue;
    if (f & kRefine) gathered[slot[b]++] = {scores[i], labels[i], weights[i]};
    if (f & kNeedTop) top[b] = std::max(top[b], scores[i]);
  }
  // Pass 3: CalibrateThreshold's sweep inside the refined buckets (their rows sorted stably, as
  // the radix sort leaves them), the weight of the others added between them.
  CutChooser chooser(cfg, pos, neg);
  chooser.Consider(0, 0, smax + Margin(smax));
  tp = fp = 0;
  for (size_t b = 0; b < nb; ++b) {
    const uint32_t m = bucket_count[b];
    if (m == 0) continue;
    if (!(flag[b] & kRefine)) {
      tp += bucket_pos[b];
      fp += bucket_weight[b] - bucket_pos[b];
      continue;
    }
    size_t after = b + 1;
    while (after < nb && bucket_count[after] == 0) ++after;
    const bool last = after >= nb;
    const double below = last ? 0.0 : static_cast<double>(top[after]);  // the next row's score
    ScoredRow* r = gathered.data() + (slot[b] - m);
    if (m <= 32) {  // insertion sort: stable, no buffer (std::stable_sort allocates one per call)
      for (size_t i = 1; i < m; ++i) {
        const ScoredRow v = r[i];
        size_t j = i;
        while (j > 0 && r[j - 1].score < v.score) {
          r[j] = r[j - 1];
          --j;
        }
        r[j] = v;
      }
    } else {
      std::stable_sort(r, r + m, [](const ScoredRow& x, const ScoredRow& y) { return x.score > y.score; });
    }
    chooser.Sweep(r, m, last ? nullptr : &below, &tp, &fp);
  }
  return chooser.Result();
}

double RocAuc(std::vector<ScoredRow>& rows) {
  const auto by_score = [](const ScoredRow& a, const ScoredRow& b) { return a.score > b.score; };
  if (!std::is_sorted(rows.begin(), rows.end(), by_score)) SortByScoreDescending(rows);
  double pos = 0, neg = 0;
  for (const ScoredRow& r : rows) (r.label > 0.5 ? pos : neg) += r.weight;
  if (pos <= 0 || neg <= 0) return 0.5;
  double auc = 0, neg_above = 0;
  for (size_t i = 0; i < rows.size();) {
    double p = 0, n = 0;
    size_t g = i;
    while (g < rows.size() && rows[g].score == rows[i].score) {
      (rows[g].label > 0.5 ? p : n) += rows[g].weight;
      ++g;
    }
    // Each positive of the group beats the negatives below it and ties with the group's.
    auc += p * (neg - neg_above - 0.5 * n);
    neg_above += n;
    i = g;
  }
  return auc / (pos * neg);
}

Evaluation::Evaluation(const Config& cfg, int64_t m, int64_t sample_cap, std::vector<double> fixed_thresholds)
    : cfg_(cfg), m_(m), k_(cfg.num_outputs()), sample_cap_(sample_cap), fixed_(std::move(fixed_thresholds)) {
  MLF_ASSERT(fixed_.empty() || static_cast<int64_t>(fixed_.size()) == m_);
  const size_t ms = static_cast<size_t>(m_);
  loss_.assign(ms, 0.0);
  weight_.assign(ms, 0.0);
  switch (cfg.predictor_type) {
    case PredictorType::kRegressor:
      sq_.assign(ms, 0.0);
      abs_.assign(ms, 0.0);
      break;
    case PredictorType::kMulticlassClassifier:
      correct_.assign(ms, 0.0);
      topk_.assign(ms, 0.0);
      dcg_.assign(ms, 0.0);
      // The DCG's discount for each rank, computed once (a libm log2 per row and model was 7% of a
      // 32-model multiclass run).
      log2_rank_.resize(static_cast<size_t>(k_));
      for (int64_t r = 0; r < k_; ++r) log2_rank_[r] = std::log2(static_cast<double>(r) + 2.0);
      tp_c_.assign(ms * k_, 0.0);
      pred_c_.assign(ms * k_, 0.0);
      actual_c_.assign(ms * k_, 0.0);
      break;
    case PredictorType::kBinaryClassifier:
      sample_scores_.resize(ms);
      if (!fixed_.empty()) {
        tp_.assign(ms, 0.0);
        fp_.assign(ms, 0.0);
        tn_.assign(ms, 0.0);
        fn_.assign(ms, 0.0);
      }
      break;
  }
}

void Evaluation::Add(const HostBatch& batch, const float* scores, const double* loss,
                     const double* weight_sum) {
  const int64_t n = batch.rows, mk = m_ * k_;
  for (int64_t j = 0; j < m_; ++j) {
    loss_[j] += loss[j];
    weight_[j] += weight_sum[j];
  }
  const bool logistic = cfg_.loss == Loss::kLogistic;
  if (cfg_.predictor_type == PredictorType::kBinaryClassifier) {
    AddBinary(batch, scores, logistic);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const double w = batch.weights.empty() ? 1.0 : batch.weights[i];
    const float y = batch.labels[i];
    const float* s = scores + i * mk;
    switch (cfg_.predictor_type) {
      case PredictorType::kRegressor:
        for (int64_t j = 0; j < m_; ++j) {
          const double r = static_cast<double>(s[j]) - y;
          sq_[j] += w * r * r;
          abs_[j] += w * std::fabs(r);
        }
        break;
      case PredictorType::kMulticlassClassifier: {
        const int64_t label = static_cast<int64_t>(y);
        for (int64_t j = 0; j < m_; ++j) {
          const float* z = s + j * k_;
          int64_t best = 0;
          for (int64_t c = 1; c < k_; ++c) {
            if (z[c] > z[best]) best = c;
          }
          // Rank of the true class: classes scoring higher, and equal ones with a lower index.
          int64_t rank = 0;
          for (int64_t c = 0; c < k_; ++c) rank += z[c] > z[label] || (z[c] == z[label] && c < label);
          if (best == label) {
            correct_[j] += w;
            tp_c_[j * k_ + label] += w;
          }
          if (rank < cfg_.accuracy_top_k) topk_[j] += w;
          // DCG of the class ranking with the true class as the one relevant item (gain 1 at
          // 1-based position rank + 1): 1 when it ranks first, 1 / log2(3) second, ...
          dcg_[j] += w / log2_rank_[rank];
          pred_c_[j * k_ + best] += w;
          actual_c_[j * k_ + label] += w;
        }
        break;
      }
      case PredictorType::kBinaryClassifier:
        break;  // AddBinary
    }
  }
}

void Evaluation::AdoptSample(SampleBuffers&& buffers) {
  if (cfg_.predictor_type != PredictorType::kBinaryClassifier) return;
  MLF_ASSERT(sample_labels_.empty());
  sample_scores_ = std::move(buffers.scores);
  sample_labels_ = std::move(buffers.labels);
  sample_weights_ = std::move(buffers.weights);
  sample_scores_.resize(static_cast<size_t>(m_));
  for (auto& v : sample_scores_) v.clear();
  sample_labels_.clear();
  sample_weights_.clear();
}

Evaluation::SampleBuffers Evaluation::ReleaseSample() {
  SampleBuffers out{std::move(sample_scores_), std::move(sample_labels_), std::move(sample_weights_)};
  sample_scores_.assign(static_cast<size_t>(m_), FloatBuffer());
  sample_labels_.clear();
  sample_weights_.clear();
  return out;
}

void Evaluation::AddBinary(const HostBatch& batch, const float* scores, bool logistic) {
  const int64_t n = batch.rows, mk = m_ * k_;
  if (!fixed_.empty()) {
    for (int64_t i = 0; i < n; ++i) {
      const double w = batch.weights.empty() ? 1.0 : batch.weights[i];
      const bool positive = batch.labels[i] > 0.5f;
      const float* s = scores + i * mk;
      for (int64_t j = 0; j < m_; ++j) {
        // As Predict decides: on sigmoid(score) for logistic, the raw score for hinge.
        const bool predicted = (logistic ? Sigmoid(s[j]) : s[j]) > fixed_[j];
        (predicted ? (positive ? tp_ : fp_) : (positive ? fn_ : tn_))[j] += w;
      }
    }
  }
  // The sample keeps the first rows up to its cap: each model's column of raw scores (calibration
  // and ROC AUC only need their order; sigmoid is monotone), copied per model rather than pushed
  // row by row (32 models x 100k rows of push_back took ~15 ms per evaluation).
  const int64_t take = std::min<int64_t>(n, std::max<int64_t>(0, sample_cap_ - sample_rows()));
  if (take <= 0) return;
  // In blocks of 64 rows (8 KB of 32 models' scores, in L1) for every model: a model's whole
  // column at once strided through the batch's scores in L2.
  const size_t at = sample_labels_.size();
  thread_local std::vector<float*> out;
  out.resize(static_cast<size_t>(m_));
  for (int64_t j = 0; j < m_; ++j) {
    sample_scores_[j].resize(at + static_cast<size_t>(take));
    out[j] = sample_scores_[j].data() + at;
  }
  constexpr int64_t kBlock = 64;
  for (int64_t i0 = 0; i0 < take; i0 += kBlock) {
    const int64_t i1 = std::min(take, i0 + kBlock);
    for (int64_t j = 0; j < m_; ++j) {
      float* dst = out[j];
      const float* col = scores + j;
      for (int64_t i = i0; i < i1; ++i) dst[i] = col[i * mk];
    }
  }
  sample_labels_.resize(at + static_cast<size_t>(take));
  sample_weights_.resize(at + static_cast<size_t>(take));
  for (int64_t i = 0; i < take; ++i) {
    sample_labels_[at + i] = batch.labels[i] > 0.5f ? 1.0f : 0.0f;
    sample_weights_[at + i] = batch.weights.empty() ? 1.0f : static_cast<float>(batch.weights[i]);
  }
}

void Evaluation::AllReduce(comm::Communicator& comm) {
  if (comm.world_size() > 1) MergeRanks(comm);
  // Every model's calibration reads the same labels and weights: summarised once here.
  if (cfg_.predictor_type == PredictorType::kBinaryClassifier && fixed_.empty()) {
    sample_summary_ =
        SummariseCalibrationLabels(sample_labels_.data(), sample_weights_.data(), sample_labels_.size());
  }
}

void Evaluation::MergeRanks(comm::Communicator& comm) {
  std::vector<std::vector<double>*> parts = {&loss_, &weight_, &sq_,       &abs_, &correct_, &topk_, &dcg_,
                                             &tp_c_, &pred_c_, &actual_c_, &tp_,  &fp_,      &tn_,   &fn_};
  std::vector<double> buf;
  for (auto* p : parts) buf.insert(buf.end(), p->begin(), p->end());
  comm.AllReduceSum(buf.data(), buf.size());
  size_t at = 0;
  for (auto* p : parts) {
    std::copy(buf.begin() + at, buf.begin() + at + p->size(), p->begin());
    at += p->size();
  }
  if (cfg_.predictor_type != PredictorType::kBinaryClassifier) return;
  // Gather the samples: every rank sends max_rows rows of (m scores, label, weight), padded.
  const int world = comm.world_size();
  const int64_t mine = sample_rows();
  std::vector<int64_t> counts(static_cast<size_t>(world));
  comm.AllGather(&mine, sizeof(mine), counts.data());
  const int64_t max_rows = *std::max_element(counts.begin(), counts.end());
  const int64_t width = m_ + 2;
  std::vector<float> send(static_cast<size_t>(max_rows * width), 0.0f);
  for (int64_t i = 0; i < mine; ++i) {
    for (int64_t j = 0; j < m_; ++j) send[i * width + j] = sample_scores_[j][i];
    send[i * width + m_] = sample_labels_[i];
    send[i * width + m_ + 1] = sample_weights_[i];
  }
  std::vector<float> recv(static_cast<size_t>(world * max_rows * width));
  comm.AllGather(send.data(), send.size() * sizeof(float), recv.data());
  for (auto& v : sample_scores_) v.clear();
  sample_labels_.clear();
  sample_weights_.clear();
  for (int r = 0; r < world; ++r) {
    const float* base = recv.data() + static_cast<int64_t>(r) * max_rows * width;
    for (int64_t i = 0; i < counts[r]; ++i) {
      const float* row = base + i * width;
      for (int64_t j = 0; j < m_; ++j) sample_scores_[j].push_back(row[j]);
      sample_labels_.push_back(row[m_]);
      sample_weights_.push_back(row[m_ + 1]);
    }
  }
}

ModelEvaluation Evaluation::Finish(int64_t j, bool full) const {
  ModelEvaluation e;
  e.weight = weight_[j];
  e.objective = Ratio(loss_[j], weight_[j]) * ObjectiveScale(cfg_.loss);
  const std::string objective = ObjectiveName(cfg_.loss) + "_objective";
  e.metrics.push_back({objective, "objective_loss", true, e.objective});
  e.criterion = e.objective;
  e.higher_is_better = false;
  const double w = weight_[j];
  switch (cfg_.predictor_type) {
    case PredictorType::kRegressor: {
      const double mse = Ratio(sq_[j], w);
      e.metrics.push_back({"mse", "mse", true, mse});
      e.metrics.push_back({"rmse", "rmse", true, std::sqrt(mse)});
      e.metrics.push_back({"absolute_loss", "absolute_loss", true, Ratio(abs_[j], w)});
      break;
    }
    case PredictorType::kMulticlassClassifier: {
      double sp = 0, sr = 0, sf = 0, sb = 0;
      int64_t labels = 0, present = 0;
      for (int64_t c = 0; c < k_; ++c) {
        const double tp = tp_c_[j * k_ + c], pred = pred_c_[j * k_ + c], act = actual_c_[j * k_ + c];
        if (act > 0) {
          sb += tp / act;
          ++present;
        }
        if (act <= 0 && pred <= 0) continue;
        const double p = Ratio(tp, pred), r = Ratio(tp, act);
        sp += p;
        sr += r;
        sf += FBeta(p, r, cfg_.f_beta);
        ++labels;
      }
      const double nl = std::max<int64_t>(labels, 1), np = std::max<int64_t>(present, 1);
      e.metrics.push_back({"multiclass_accuracy", "multiclass_accuracy", false, Ratio(correct_[j], w)});
      e.metrics.push_back({fmt::format("multiclass_top_k_accuracy_{}", cfg_.accuracy_top_k),
                           "multiclass_top_k_accuracy", false, Ratio(topk_[j], w)});
      e.metrics.push_back({"dcg", "dcg", false, Ratio(dcg_[j], w)});
      e.metrics.push_back({"macro_precision", "macro_precision", false, sp / nl});
      e.metrics.push_back({"macro_recall", "macro_recall", false, sr / nl});
      e.metrics.push_back({FName("macro", cfg_.f_beta), "macro_f_beta", false, sf / nl});
      e.metrics.push_back({"multiclass_balanced_accuracy", "multiclass_balanced_accuracy", false, sb / np});
      e.metrics.push_back({"multiclass_log_loss", "multiclass_log_loss", false, e.objective});
      break;
    }
    case PredictorType::kBinaryClassifier: {
      e.higher_is_better = cfg_.selection_criterion != SelectionCriterion::kLossFunction;
      if (!std::isfinite(e.objective)) {
        // A diverged model (non-finite scores): nothing to calibrate, never selected.
        e.criterion = std::numeric_limits<double>::quiet_NaN();
        break;
      }
      // Per-thread buffers reused across models and epochs (Finish runs for 32 models per epoch
      // in parallel): fresh multi-MB vectors cost page faults each time.
      thread_local std::vector<ScoredRow> rows;
      if (full) {  // ROC AUC needs every row sorted
        rows.resize(sample_labels_.size());
        for (size_t i = 0; i < rows.size(); ++i) {
          rows[i] = {sample_scores_[j][i], sample_labels_[i], sample_weights_[i]};
        }
      }
      Calibration c;
      if (fixed_.empty()) {
        // On raw scores; the threshold goes back to Predict's scale (a probability for logistic)
        // afterwards. The default (loss_function) threshold is 0.5 = sigmoid(0), or 0 for hinge.
        // Each epoch's selection (32 models) takes the bucketed sweep: no full sort per model.
        c = full ? CalibrateThreshold(rows, cfg_, 0.0)
                 : CalibrateThresholdBucketed(sample_scores_[j].data(), sample_labels_.data(),
                                              sample_weights_.data(), sample_labels_.size(), cfg_, 0.0,
                                              sample_summary_.positive.size() == sample_labels_.size()
                                                  ? &sample_summary_
                                                  : nullptr);
        if (cfg_.loss == Loss::kLogistic) c.threshold = Sigmoid(c.threshold);
      } else {
        c = Calibration{fixed_[j], 0, tp_[j], fp_[j], tn_[j], fn_[j]};
      }
      e.threshold = c.threshold;
      const double total = c.tp + c.fp + c.tn + c.fn;
      const double accuracy = Ratio(c.tp + c.tn, total), precision = Ratio(c.tp, c.tp + c.fp),
                   recall = Ratio(c.tp, c.tp + c.fn), f = FBeta(precision, recall, cfg_.f_beta);
      e.metrics.push_back(
          {"binary_classification_accuracy", "binary_classification_accuracy", false, accuracy});
      e.metrics.push_back({FName("binary", cfg_.f_beta), "binary_f_beta", false, f});
      e.metrics.push_back({"precision", "precision", false, precision});
      e.metrics.push_back({"recall", "recall", false, recall});
      if (full) e.metrics.push_back({"roc_auc_score", "roc_auc_score", false, RocAuc(rows)});
      e.higher_is_better = true;
      switch (cfg_.selection_criterion) {
        case SelectionCriterion::kAccuracy:
          e.criterion = accuracy;
          break;
        case SelectionCriterion::kFBeta:
          e.criterion = f;
          break;
        case SelectionCriterion::kPrecisionAtTargetRecall:
          e.criterion = fixed_.empty() ? c.value : precision;
          break;
        case SelectionCriterion::kRecallAtTargetPrecision:
          e.criterion = fixed_.empty() ? c.value : recall;
          break;
        case SelectionCriterion::kLossFunction:
          e.criterion = e.objective;
          e.higher_is_better = false;
          break;
      }
      break;
    }
  }
  return e;
}

void ReportMetrics(const std::string& host, const std::string& channel, const ModelEvaluation& e,
                   std::map<std::string, double>* out) {
  for (const MetricValue& v : e.metrics) {
    log::QualityMetric(host, channel, v.name, v.loss ? "loss" : "score", v.value);
  }
  for (const MetricValue& v : e.metrics) {
    spdlog::info("#{}_score ({}) : ('{}', {})", channel, host, v.name, log::FormatValue(v.value));
    if (out) (*out)[channel + ":" + v.key] = v.value;
  }
}

}  // namespace mlforge::algos::linear_learner
