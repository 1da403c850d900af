// The linear learner training loop (placeholder until the loop lands: issue 5).
#include "algos/linear_learner/linear_learner.h"
#include "core/error.h"

namespace mlforge::algos::linear_learner {

void Train(TrainContext& /*ctx*/) {
  MLF_FAIL(
      "linear-learner training is not implemented yet in this build (prediction with linear learner "
      "models works: mlforge predict / serve)");
}

}  // namespace mlforge::algos::linear_learner
