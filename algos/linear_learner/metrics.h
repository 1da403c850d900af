// Linear learner evaluation: the metrics SageMaker's regexes read (SPEC.md 2.9), threshold
// calibration and the model-selection criterion, for m models at once.
//
// An Evaluation accumulates one pass over a channel (validation, test, or the in-memory training
// sample) given each batch's RAW scores (the scaler-folded models on raw rows, exactly what the
// saved model computes) and the kernel's per-model weighted loss sums. Row weights are the
// data's own (recordIO weights), never the training-only positive/class weights, so metrics and
// selection judge the models on the data as given.
//  - Every model: objective = mean loss (squared_loss and eps_insensitive_squared_loss are
//    reported as the mean of the un-halved square, so "mse_objective" is the mean squared error).
//  - Binary: the first `sample_cap` rows of this rank keep their raw score, label and weight;
//    after AllReduce (which gathers the samples of every rank) each model's threshold is calibrated
//    on the sample for the criterion (on raw scores, then mapped to Predict's scale: sigmoid for
//    logistic, raw for hinge) and accuracy / precision / recall / F-beta / ROC AUC are measured
//    there. With fixed
//    thresholds (the final pass of the chosen model), the confusion counts come from every row
//    instead, and only ROC AUC uses the sample.
//  - Multiclass: accuracy, top-k accuracy, macro precision / recall / F-beta over the classes
//    present in labels or predictions (scikit-learn's convention, 0 for an empty denominator),
//    balanced accuracy; all streamed over every row (argmax ties: lowest class).
//  - Regressor: mse, rmse, absolute_loss over every row.
// Calibration (binary): rows sorted by score, every cut between distinct scores is a candidate
// (predict positive above it); the best cut for the criterion wins (ties: the highest cut), and the
// threshold is the midpoint of the scores on either side (1e-6 x max(1, |score|) below the lowest
// score when every row is positive, as far above the highest when none is). precision_at_target_recall
// maximises precision among cuts with recall >= target_recall; recall_at_target_precision maximises recall
// among cuts with precision >= target_precision (value 0 and the most precise cut when none reaches it);
// loss_function keeps 0.5 (logistic) or 0 (hinge) and selects on the objective.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "algos/linear_learner/config.h"
#include "core/batch.h"
#include "core/no_init_allocator.h"

namespace mlforge::comm {
class Communicator;
}

namespace mlforge::algos::linear_learner {

// One reported metric: SageMaker's name, loss (lower is better) or score, value.
struct MetricValue {
  std::string name;  // as printed: "binary_classification_accuracy", "mse", "binary_f_1.000", ...
  std::string key;   // SageMaker's metric name after "<channel>:": "binary_f_beta", "objective_loss", ...
  bool loss = false;
  double value = 0;
};

// Whether evaluation `a` is strictly better than `b` by the criterion; a non-finite criterion (a
// diverged model) is worse than any finite one.
bool Better(double a, double b, bool higher_is_better);

struct ModelEvaluation {
  double objective = 0;  // mean loss
  double weight = 0;     // total row weight seen
  double threshold = 0.5;
  // The selection criterion's value and direction (binary: per cfg criterion; otherwise the
  // objective).
  double criterion = 0;
  bool higher_is_better = false;
  std::vector<MetricValue> metrics;  // every metric, the objective first
};

// "binary_classification_cross_entropy", "multiclass_cross_entropy", "mse", "absolute_loss",
// "hinge_loss", ...: the objective's metric name (printed with an "_objective" suffix).
std::string ObjectiveName(Loss loss);
// The factor from the kernel's loss to the reported objective (2 for squared-type losses).
double ObjectiveScale(Loss loss);
// The early-stopping criterion's name ("accuracy", "f_beta", ..., or "<objective>_objective").
std::string CriterionName(const Config& cfg);

// The labels' side of a binary sample, the same for every model calibrated on it
// (SummariseCalibrationLabels).
struct CalibrationLabels {
  std::vector<uint8_t> positive;  // label > 0.5, per row
  bool unit = true;               // every weight is 1
  double pos = 0, total = 0;      // positive and total weight
};

class Evaluation {
 public:
  // m models. sample_cap: binary rows kept on this rank for calibration and ROC AUC.
  // fixed_thresholds: empty (calibrate) or m thresholds (binary counts over every row).
  Evaluation(const Config& cfg, int64_t m, int64_t sample_cap, std::vector<double> fixed_thresholds = {});

  // One batch: scores n x (m k) raw scores (host, row-major), loss / weight_sum: m entries each
  // (the kernel's sums over the batch with the data's row weights).
  void Add(const HostBatch& batch, const float* scores, const double* loss, const double* weight_sum);
  // Merges every rank's accumulators (sums all-reduced; binary samples gathered in rank order).
  // Call on every rank, then Finish gives the same answer everywhere.
  void AllReduce(comm::Communicator& comm);
  // Model j's metrics. full = false computes only what selection needs (the objective, the
  // calibrated threshold and the criterion; ROC AUC is skipped). Thread-safe (const).
  ModelEvaluation Finish(int64_t j, bool full = true) const;

  double weight(int64_t j) const { return weight_[j]; }  // total row weight of model j's pass
  int64_t sample_rows() const { return static_cast<int64_t>(sample_labels_.size()); }

  // The binary score sample's buffers, kept by the caller from one pass to the next (each epoch
  // evaluates the channel again): fresh ones of m x rows floats (12.8 MB for 32 models x 100k
  // rows) were page-faulted in, zeroed and grown by doubling at every epoch. Growing them leaves
  // the new floats unwritten (Add writes them).
  using FloatBuffer = std::vector<float, NoInitAllocator<float>>;
  struct SampleBuffers {
    std::vector<FloatBuffer> scores;
    FloatBuffer labels, weights;
  };
  // Before Add: takes `buffers` as the (empty) sample's storage, keeping their capacity.
  void AdoptSample(SampleBuffers&& buffers);
  // After Finish: gives the storage back for the next pass.
  SampleBuffers ReleaseSample();

 private:
  // AllReduce's exchange between ranks.
  void MergeRanks(comm::Communicator& comm);
  // Add's binary case: confusion counts at fixed thresholds, and the score sample.
  void AddBinary(const HostBatch& batch, const float* scores, bool logistic);

  const Config& cfg_;
  int64_t m_, k_;
  int64_t sample_cap_;
  std::vector<double> fixed_;
  // Per model sums, m entries each (multiclass per-class: m x k).
  std::vector<double> loss_, weight_;
  std::vector<double> sq_, abs_;                  // regressor
  std::vector<double> correct_, topk_, dcg_;      // multiclass
  std::vector<double> log2_rank_;                 // multiclass: log2(rank + 2), k entries
  std::vector<double> tp_c_, pred_c_, actual_c_;  // multiclass per class, m x k
  std::vector<double> tp_, fp_, tn_, fn_;         // binary with fixed thresholds
  // Binary sample: m vectors of sample_rows raw scores (model-major, so that each model's
  // calibration reads its scores contiguously), labels and weights per row.
  std::vector<FloatBuffer> sample_scores_;
  FloatBuffer sample_labels_, sample_weights_;
  CalibrationLabels sample_summary_;  // of the sample's labels and weights, for every model's calibration
};

// Threshold calibration of one model on (score, label, weight) rows (header comment).
struct Calibration {
  double threshold = 0.5;
  double value = 0;  // the criterion at that threshold
  double tp = 0, fp = 0, tn = 0, fn = 0;
};
struct ScoredRow {
  float score;
  float label;  // 0 or 1
  float weight;
};
// rows is sorted in place (descending score). default_threshold: loss_function's threshold.
Calibration CalibrateThreshold(std::vector<ScoredRow>& rows, const Config& cfg, double default_threshold);
// The same answer without sorting every row (n >= kBucketedCalibrationMinRows, finite scores;
// otherwise it is CalibrateThreshold). Rows go into ~n/16 buckets of equal score width; the
// cuts between buckets give a floor for the criterion, and only buckets whose best possible cut
// (all their positives above it, none of their negatives) reaches that floor are sorted and swept
// row by row: near the optimum, a few buckets. The criterion at each cut is computed as in
// CalibrateThreshold; the weight sums above a cut add bucket totals first, so with non-integer
// weights tp / fp may differ from the sorted sweep's in the last bits (with integer weights, the
// default, the result is identical). Scores, labels, weights: n entries each; not modified.
// `shared`: the labels' summary (SummariseCalibrationLabels of the same labels and weights); null
// computes it.
inline constexpr size_t kBucketedCalibrationMinRows = 4096;
CalibrationLabels SummariseCalibrationLabels(const float* labels, const float* weights, size_t n);
Calibration CalibrateThresholdBucketed(const float* scores, const float* labels, const float* weights, size_t n,
                                       const Config& cfg, double default_threshold,
                                       const CalibrationLabels* shared = nullptr);
// Weighted ROC AUC (ties count half); 0.5 when a class is absent. rows sorted in place (already
// sorted rows, e.g. after CalibrateThreshold, are not sorted again).
double RocAuc(std::vector<ScoredRow>& rows);

// Prints `#quality_metric: host=H, [epoch=E, ]<channel> <name> <loss|score>=V` for each metric
// and, without an epoch, SageMaker's `#<channel>_score (H) : ('<name>', V)` line; adds
// "<channel>:<key>" entries to `out`.
void ReportMetrics(const std::string& host, const std::string& channel, const ModelEvaluation& e,
                   std::map<std::string, double>* out);

}  // namespace mlforge::algos::linear_learner
