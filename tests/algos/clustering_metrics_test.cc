#include "algos/common/clustering_metrics.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace mlforge::algos {
namespace {

TEST(ClusteringMetrics, IdenticalPartitionsUpToRenamingScoreOne) {
  std::vector<std::string> truth = {"a", "a", "b", "b", "c", "c"};
  std::vector<int> pred = {2, 2, 0, 0, 1, 1};
  EXPECT_DOUBLE_EQ(AdjustedRandIndex(BuildContingency(truth, pred)), 1.0);
}

TEST(ClusteringMetrics, MatchesHandComputedValue) {
  // Classic example: truth {0,0,0,1,1,1}, pred {0,0,1,1,2,2}. sklearn gives 0.24242424...
  // index = C(2,2)+C(1,2)+C(1,2)+C(2,2) = 2; rows: 2*C(3,2) = 6; cols: 3*C(2,2) = 3; total C(6,2)=15
  // expected = 6*3/15 = 1.2; max = 4.5; ARI = (2-1.2)/(4.5-1.2) = 0.242424...
  std::vector<std::string> truth = {"x", "x", "x", "y", "y", "y"};
  std::vector<int> pred = {0, 0, 1, 1, 2, 2};
  EXPECT_NEAR(AdjustedRandIndex(BuildContingency(truth, pred)), 0.8 / 3.3, 1e-12);
}

TEST(ClusteringMetrics, ContingencyCountsAndFormat) {
  std::vector<std::string> truth = {"EUR", "AFR", "EUR", "AFR", "AFR"};
  std::vector<int> pred = {1, 0, 1, 0, 1};
  Contingency t = BuildContingency(truth, pred);
  ASSERT_EQ(t.row_names, (std::vector<std::string>{"AFR", "EUR"}));
  EXPECT_EQ(t.at(0, 0), 2);
  EXPECT_EQ(t.at(0, 1), 1);
  EXPECT_EQ(t.at(1, 1), 2);
  std::string s = FormatContingency(t);
  EXPECT_NE(s.find("AFR"), std::string::npos);
  EXPECT_NE(s.find("      5"), std::string::npos);  // grand total
}

TEST(ClusteringMetrics, RejectsMismatchedSizes) {
  EXPECT_THROW(BuildContingency({"a"}, {0, 1}), UserError);
}

}  // namespace
}  // namespace mlforge::algos
