// What an algorithm provides for inference (DESIGN.md "The container"): a loaded model that turns a
// batch of rows into named outputs. `mlforge predict` and the HTTP server share it; the wire
// formats around it (request decoding, response encoding) live in container/inference_io.h and
// know nothing of any algorithm beyond the columns described here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/batch.h"
#include "core/resources.h"

namespace mlforge::io {
class ModelSource;
}

namespace mlforge::algos {

// One named output of a prediction (SPEC.md 3.6), `width` float32 values per row.
struct OutputColumn {
  std::string name;           // "closest_cluster", "score", "predicted_label", "projection", ...
  int64_t width = 1;          // values per row
  bool json_array = false;    // JSON / JSON lines: an array even when width == 1 (PCA projection)
  bool json_integer = false;  // JSON / JSON lines: written as integers ("predicted_label":1); recordIO and
                              // CSV always carry floats
  std::vector<float> values;  // rows x width, row-major
};

// The outputs for one batch: every column has rows * width values, in the predictor's order.
struct PredictionTable {
  int64_t rows = 0;
  std::vector<OutputColumn> columns;
};

class Predictor {
 public:
  virtual ~Predictor() = default;
  // The SageMaker image name ("kmeans", "linear-learner", ...).
  virtual std::string algorithm() const = 0;
  // Features per row the model takes; every request row must have exactly this many.
  virtual int64_t feature_dim() const = 0;
  // One line for logs and /ping diagnostics: "kmeans model (k=10, feature_dim=16)".
  virtual std::string Describe() const = 0;
  // The member of the JSON response holding the per-row objects: "predictions" (PCA: "projections").
  virtual std::string json_list_key() const { return "predictions"; }
  // Whether the endpoint answers text/csv (SPEC.md 3.5: k-means only) and takes text/csv requests
  // (every built-in but factorization machines).
  virtual bool csv_response() const { return false; }
  virtual bool csv_request() const { return true; }
  // Predicts every row of `batch` (dense or CSR, cols == feature_dim(); labels ignored) on
  // res.device(). Const and thread-safe: the server calls it concurrently, one Resources per worker.
  virtual PredictionTable Predict(const HostBatch& batch, Resources& res) const = 0;
  // Predict with request options: the text of SageMaker's CustomAttributes header
  // (X-Amzn-SageMaker-Custom-Attributes; `mlforge predict --custom-attributes`). Algorithms without
  // options ignore it (clients and proxies may send attributes of their own); factorization
  // machines read "top_k=K; item_range=B:E" from it.
  virtual PredictionTable PredictWithAttributes(const HostBatch& batch, Resources& res,
                                                const std::string& /*attributes*/) const {
    return Predict(batch, res);
  }
};

// Loads a model artifact (ours or SageMaker's) into its predictor; UserError naming the source when
// the bytes are not a valid model of the algorithm.
using PredictorLoader = std::unique_ptr<Predictor> (*)(const io::ModelSource& source);

}  // namespace mlforge::algos
