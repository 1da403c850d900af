// README.md's linear learner hyperparameter table is the code's table (`mlforge info
// --hyperparameters linear-learner`), so the documentation cannot drift from the defaults.
#include <gtest/gtest.h>

#include "algos/linear_learner/config.h"
#include "tests/testutil.h"

namespace mlforge {
namespace {

TEST(LinearLearnerDocs, ReadmeHoldsTheHyperparameterTable) {
  const std::string readme = test::ReadFile(MLFORGE_SOURCE_DIR "/README.md");
  EXPECT_NE(readme.find(algos::linear_learner::Hyperparameters().MarkdownTable()), std::string::npos)
      << "regenerate README's linear learner table with: mlforge info --hyperparameters linear-learner";
}

}  // namespace
}  // namespace mlforge
