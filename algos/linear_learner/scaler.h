// Linear learner data normalisation (SPEC.md 4.1 "Preprocess"): per-feature mean and standard
// deviation (and the label's, for regressors) from a sample of the first num_point_for_scaler
// training rows, and the algebra that keeps the data itself untouched.
//
// The optimiser works on normalised features z = (x - mean) / stdev and, for regressors, a
// normalised label y' = (y - mean_y) / stdev_y. Instead of rewriting every batch, the scaler is
// folded into the weights the kernel sees: with W (d x mk) and bias b in normalised space,
//   W_eff[i, :] = W[i, :] / stdev_i,   b_eff = b - sum_i mean_i W_eff[i, :]
// gives X W_eff + b_eff == Z W + b on the RAW rows (dense or CSR alike), and the gradient in
// normalised space is recovered from the raw one (gW = X^T G, gb = 1^T G) as
//   gW_norm[i, :] = (gW[i, :] - mean_i gb) / stdev_i,   gb_norm = gb.
// The saved model is the same fold followed by the label's: W_raw = stdev_y W_eff,
// b_raw = stdev_y b_eff + mean_y, so it predicts on raw features in raw label units. Evaluation
// uses that raw model too, so every reported metric is what the saved model scores.
// Cost: O(d m k) per step, against O(n d m k) for the GEMMs; no copy of the batch.
//
// Which parts apply (Config): features are scaled when normalize_data; shifted when unbias_data
// and the training data is dense (SPEC: "shift features only for dense data" - a shift would
// destroy sparsity); the label is scaled when normalize_label and shifted when unbias_label
// (regressors only; ResolveConfig clears both for classifiers). A feature or label with zero
// spread in the sample keeps scale 1 (it cannot be normalised; its shift still applies).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "algos/linear_learner/config.h"
#include "core/batch.h"

namespace mlforge::comm {
class Communicator;
}

namespace mlforge::algos::linear_learner {

// Column sums of the scaler sample, mergeable across batches and ranks.
struct ScalerStats {
  int64_t d = 0;
  double rows = 0;
  std::vector<double> sum;     // d
  std::vector<double> sum_sq;  // d
  double label_sum = 0;
  double label_sum_sq = 0;
  bool any_sparse = false;  // some sampled batch was CSR (any rank, after AllReduce)
  // Classifiers: rows per class (binary: [negatives, positives]; multiclass: num_classes
  // entries), for positive_example_weight_mult=balanced and balance_multiclass_weights.
  std::vector<double> class_rows;

  // classes: 0 for a regressor, 2 for binary, num_classes for multiclass.
  explicit ScalerStats(int64_t dim = 0, int64_t classes = 0);
  // Adds rows [0, rows) of `batch` (rows <= batch.rows; dense or CSR with cols == d; labelled,
  // labels already checked to be valid class indices for a classifier).
  void Add(const HostBatch& batch, int64_t rows);
  // Sums every rank's statistics (same result on every rank).
  void AllReduce(comm::Communicator& comm);
};

struct Scaler {
  int64_t d = 0;
  bool scale_data = false, shift_data = false, scale_label = false, shift_label = false;
  std::vector<double> mean;   // d entries; 0 where features are not shifted
  std::vector<double> stdev;  // d entries; 1 where features are not scaled (or have no spread)
  double mean_label = 0;      // 0 unless shift_label
  double stdev_label = 1;     // 1 unless scale_label
  int64_t sample_rows = 0;

  // Identity (no normalisation) for d features.
  static Scaler Identity(int64_t d);
  // Resolves which parts apply (see the header comment) and computes them from `stats`.
  static Scaler FromStats(const Config& cfg, const ScalerStats& stats);

  // SageMaker's log line: "Scaling model computed with parameters: {'stdev_weight': [...],
  // 'stdev_label': ..., 'mean_label': ..., 'mean_weight': [...]}" (None for parts not applied;
  // vectors longer than 1000 entries are cut with an ellipsis).
  std::string Describe() const;

  // Effective weights for raw rows (header comment). w: d x mk row-major (normalised space),
  // b: mk entries (null: no bias; then the shift must be off). Writes w_eff (d x mk) and b_eff
  // (mk entries; zeros when b is null). raw_label additionally applies the label fold, giving the
  // model that predicts raw labels. Host memory; b_eff accumulates in float64.
  void Fold(const float* w, const float* b, int64_t mk, bool raw_label, float* w_eff, float* b_eff) const;
  // In place: turns the raw-row gradient (gw: d x mk, gb: mk) into the normalised-space one.
  void GradientToNormalised(float* gw, const float* gb, int64_t mk) const;
  // Label as the optimiser sees it.
  float NormaliseLabel(float y) const {
    return static_cast<float>((static_cast<double>(y) - mean_label) / stdev_label);
  }
};

}  // namespace mlforge::algos::linear_learner
