// Factorization machines (SageMaker's "factorization-machines" image): the table entry, the
// training loop, the predictor and exact top-k recommendations. Configuration: config.h; the
// artifact: model.h; the forward-backward-update step: kernels/fm_step.h.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "algos/algorithm.h"
#include "algos/factorization_machines/model.h"
#include "algos/predictor.h"
#include "core/batch.h"

namespace mlforge::algos::factorization_machines {

// The "factorization-machines" entry of the algorithm table.
Algorithm Entry();

// The training entry point (Algorithm::train).
void Train(TrainContext& ctx);

// Scores of every row of `batch` (dense or CSR, cols == model.dim()): yhat for a regressor,
// sigmoid(yhat) for a binary classifier. Host, up to `threads` threads.
std::vector<float> Score(const Model& model, const HostBatch& batch, int threads);

// Exact top-k recommendations. For each row x (e.g. a user's one-hot features) and each candidate
// feature i in [item_begin, item_end) that is zero in x, the score of the row with x_i = 1 added:
//   yhat(x + e_i) = yhat(x) + w_i + <v_i, s(x)>       (s(x)_f = sum_j v_jf x_j)
// (one GEMV over the item factors plus the linear terms), then sigmoid for a binary classifier.
// Returns the k best per row, best first (ties: lower index first); a row with fewer than k
// candidates is padded with index -1 and score NaN.
struct TopK {
  int64_t rows = 0;
  int64_t k = 0;
  std::vector<int64_t> items;  // rows x k, feature indices
  std::vector<float> scores;   // rows x k
};
TopK Recommend(const Model& model, const HostBatch& batch, int64_t item_begin, int64_t item_end, int64_t k,
               int threads);

// The most recommendations (rows x k) one prediction call returns: an endpoint builds its whole
// response in memory, so a request of many rows with a large top_k could otherwise exhaust it
// (60,000 rows x top_k 10,000 would be 1.2e9 values). `mlforge predict` sizes its batches under it.
constexpr int64_t kMaxRecommendationsPerCall = int64_t{1} << 24;

// Request options of a top-k query (SageMaker's CustomAttributes header, or `mlforge predict
// --top-k/--item-range`): "top_k=K; item_range=BEGIN:END" (feature indices, END exclusive).
struct TopKRequest {
  int64_t k = 0;  // 0: no top-k
  int64_t item_begin = 0;
  int64_t item_end = 0;
};
// Parses the attributes text ("key=value" pairs separated by ';' or ','; other keys are ignored).
// UserError naming the attribute for a bad value, top_k without item_range, or a range outside
// [0, feature_dim).
TopKRequest ParseTopKRequest(const std::string& attributes, int64_t feature_dim);

// The predictor for an FM artifact (ours or SageMaker's); Algorithm::load_predictor.
std::unique_ptr<Predictor> LoadPredictor(const io::ModelSource& source);

}  // namespace mlforge::algos::factorization_machines
