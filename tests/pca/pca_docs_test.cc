// README.md's PCA hyperparameter table is the code's table (`mlforge info --hyperparameters pca`),
// so the documentation cannot drift from the defaults.
#include <gtest/gtest.h>

#include "algos/pca/config.h"
#include "tests/testutil.h"

namespace mlforge {
namespace {

TEST(PcaDocs, ReadmeHoldsTheHyperparameterTable) {
  const std::string readme = test::ReadFile(MLFORGE_SOURCE_DIR "/README.md");
  EXPECT_NE(readme.find(algos::pca::Hyperparameters().MarkdownTable()), std::string::npos)
      << "regenerate README's PCA table with: mlforge info --hyperparameters pca";
}

}  // namespace
}  // namespace mlforge
