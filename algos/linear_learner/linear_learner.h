// Linear learner (SageMaker's "linear-learner" image): the table entry, the training loop and the
// predictor. Configuration: config.h; the artifact and batched inference: model.h; the
// loss-and-gradient step: kernels/linear_loss.h.
#pragma once

#include <memory>

#include "algos/algorithm.h"
#include "algos/predictor.h"

namespace mlforge::algos::linear_learner {

// The "linear-learner" entry of the algorithm table.
Algorithm Entry();

// The training entry point (Algorithm::train).
void Train(TrainContext& ctx);

// The predictor for a linear learner artifact (ours or SageMaker's); Algorithm::load_predictor.
// Outputs as SageMaker's endpoint (SPEC.md 3.6): binary score + predicted_label (integer in
// JSON), multiclass score (array of num_classes probabilities) + predicted_label, regressor score.
std::unique_ptr<Predictor> LoadPredictor(const io::ModelSource& source);

}  // namespace mlforge::algos::linear_learner
