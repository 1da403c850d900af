// README.md's factorization machines hyperparameter table is the code's table (`mlforge info
// --hyperparameters factorization-machines`), so the documentation cannot drift from the defaults.
#include <gtest/gtest.h>

#include "algos/factorization_machines/config.h"
#include "tests/testutil.h"

namespace mlforge {
namespace {

TEST(FactorizationMachinesDocs, ReadmeHoldsTheHyperparameterTable) {
  const std::string readme = test::ReadFile(MLFORGE_SOURCE_DIR "/README.md");
  EXPECT_NE(readme.find(algos::factorization_machines::Hyperparameters().MarkdownTable()), std::string::npos)
      << "regenerate README's factorization machines table with: mlforge info --hyperparameters "
         "factorization-machines";
}

}  // namespace
}  // namespace mlforge
