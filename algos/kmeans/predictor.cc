// The k-means predictor (algos/predictor.h): closest_cluster and distance_to_cluster (Euclidean),
// as SageMaker's k-means endpoint answers (SPEC.md 3.6); the only built-in that also answers CSV.
#include "algos/predictor.h"

#include <fmt/format.h>

#include <memory>

#include "algos/kmeans/kmeans.h"
#include "algos/kmeans/model.h"
#include "io/archive.h"

namespace mlforge::algos::kmeans {
namespace {

class KMeansPredictor final : public Predictor {
 public:
  explicit KMeansPredictor(Model model) : model_(std::move(model)) {}
  std::string algorithm() const override { return "kmeans"; }
  int64_t feature_dim() const override { return model_.dim; }
  std::string Describe() const override {
    return fmt::format("kmeans model (k={}, feature_dim={})", model_.k, model_.dim);
  }
  bool csv_response() const override { return true; }
  PredictionTable Predict(const HostBatch& batch, Resources& res) const override {
    Predictions p = kmeans::Predict(model_, batch, res);
    PredictionTable t;
    t.rows = batch.rows;
    t.columns.resize(2);
    t.columns[0].name = "closest_cluster";
    t.columns[0].values.assign(p.closest_cluster.begin(), p.closest_cluster.end());
    t.columns[1].name = "distance_to_cluster";
    t.columns[1].values = std::move(p.distance_to_cluster);
    return t;
  }

 private:
  const Model model_;
};

}  // namespace

std::unique_ptr<Predictor> LoadPredictor(const io::ModelSource& source) {
  return std::make_unique<KMeansPredictor>(LoadModel(source));
}

}  // namespace mlforge::algos::kmeans
