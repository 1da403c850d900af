// The linear learner predictor (algos/predictor.h) and the table entry.
#include <fmt/format.h>

#include <memory>

#include "algos/linear_learner/config.h"
#include "algos/linear_learner/linear_learner.h"
#include "algos/linear_learner/model.h"
#include "io/archive.h"

namespace mlforge::algos::linear_learner {
namespace {

class LinearLearnerPredictor final : public Predictor {
 public:
  explicit LinearLearnerPredictor(Model model) : model_(std::move(model)) {}
  std::string algorithm() const override { return "linear-learner"; }
  int64_t feature_dim() const override { return model_.dim; }
  std::string Describe() const override {
    std::string what = fmt::format("linear-learner {} model (feature_dim={}",
                                   PredictorTypeName(model_.predictor_type), model_.dim);
    if (model_.predictor_type == PredictorType::kMulticlassClassifier)
      what += fmt::format(", classes={}", model_.outputs);
    if (model_.predictor_type == PredictorType::kBinaryClassifier)
      what += fmt::format(", threshold={}", model_.threshold);
    return what + ")";
  }
  PredictionTable Predict(const HostBatch& batch, Resources& /*res*/) const override {
    Predictions p = linear_learner::Predict(model_, batch);
    PredictionTable t;
    t.rows = p.rows;
    OutputColumn score;
    score.name = "score";
    score.width = p.score_width;
    score.json_array = model_.predictor_type == PredictorType::kMulticlassClassifier;
    score.values = std::move(p.scores);
    t.columns.push_back(std::move(score));
    if (model_.predictor_type != PredictorType::kRegressor) {
      OutputColumn label;
      label.name = "predicted_label";
      label.json_integer = true;
      label.values = std::move(p.predicted_labels);
      t.columns.push_back(std::move(label));
    }
    return t;
  }

 private:
  const Model model_;
};

}  // namespace

std::unique_ptr<Predictor> LoadPredictor(const io::ModelSource& source) {
  return std::make_unique<LinearLearnerPredictor>(LoadModel(source));
}

Algorithm Entry() {
  Algorithm a;
  a.name = "linear-learner";
  a.description =
      "linear models: binary and multiclass classification, regression (SageMaker's linear learner)";
  a.required_channels = {"train"};
  a.optional_channels = {"validation", "test"};
  a.hyperparameters = [] { return Hyperparameters(); };
  a.train = Train;
  a.load_predictor = LoadPredictor;
  return a;
}

}  // namespace mlforge::algos::linear_learner
