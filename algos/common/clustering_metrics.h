// Agreement between two labelings of the same items: the contingency table, the adjusted Rand
// index (Hubert & Arabie 1985), and a best one-to-one matching of clusters to classes for the
// confusion table the demos print.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mlforge::algos {

struct Contingency {
  std::vector<std::string> row_names;  // distinct true labels, sorted
  int n_cols = 0;                      // predicted clusters 0..n_cols-1
  std::vector<int64_t> counts;         // row_names.size() x n_cols, row-major
  int64_t at(size_t r, int c) const { return counts[r * n_cols + c]; }
};

// truth[i] is item i's class name, cluster[i] its predicted cluster (>= 0). Sizes must match.
Contingency BuildContingency(const std::vector<std::string>& truth, const std::vector<int>& cluster);

// Adjusted Rand index in [-1, 1]; 1 for identical partitions (up to renaming), ~0 for random.
double AdjustedRandIndex(const Contingency& table);

// A fixed-width text table: one row per class, one column per cluster, with totals.
std::string FormatContingency(const Contingency& table);

}  // namespace mlforge::algos
