#include "algos/common/clustering_metrics.h"

#include <algorithm>
#include <map>

#include "core/error.h"

namespace mlforge::algos {

Contingency BuildContingency(const std::vector<std::string>& truth, const std::vector<int>& cluster) {
  MLF_EXPECTS(truth.size() == cluster.size(), "label count {} differs from prediction count {}",
              truth.size(), cluster.size());
  Contingency t;
  std::map<std::string, size_t> row_of;
  for (const auto& s : truth) row_of.emplace(s, 0);
  for (auto& [name, idx] : row_of) {
    idx = t.row_names.size();
    t.row_names.push_back(name);
  }
  int max_cluster = -1;
  for (int c : cluster) {
    MLF_EXPECTS(c >= 0, "cluster id {} is negative", c);
    max_cluster = std::max(max_cluster, c);
  }
  t.n_cols = max_cluster + 1;
  t.counts.assign(t.row_names.size() * static_cast<size_t>(t.n_cols), 0);
  for (size_t i = 0; i < truth.size(); ++i) ++t.counts[row_of[truth[i]] * t.n_cols + cluster[i]];
  return t;
}

namespace {
double Choose2(double n) { return n * (n - 1) / 2; }
}  // namespace

double AdjustedRandIndex(const Contingency& t) {
  const size_t rows = t.row_names.size();
  std::vector<double> row_sum(rows, 0), col_sum(t.n_cols, 0);
  double index = 0, n = 0;
  for (size_t r = 0; r < rows; ++r) {
    for (int c = 0; c < t.n_cols; ++c) {
      const double v = static_cast<double>(t.at(r, c));
      index += Choose2(v);
      row_sum[r] += v;
      col_sum[c] += v;
      n += v;
    }
  }
  double sum_rows = 0, sum_cols = 0;
  for (double v : row_sum) sum_rows += Choose2(v);
  for (double v : col_sum) sum_cols += Choose2(v);
  const double total = Choose2(n);
  if (total == 0) return 1.0;
  const double expected = sum_rows * sum_cols / total;
  const double max_index = 0.5 * (sum_rows + sum_cols);
  // Both partitions trivial (one cluster each, or all singletons): perfect agreement by convention.
  if (max_index == expected) return 1.0;
  return (index - expected) / (max_index - expected);
}

std::string FormatContingency(const Contingency& t) {
  size_t w = 5;
  for (const auto& s : t.row_names) w = std::max(w, s.size());
  std::string out = fmt::format("{:<{}}", "class", w);
  for (int c = 0; c < t.n_cols; ++c) out += fmt::format(" {:>6}", fmt::format("c{}", c));
  out += fmt::format(" {:>7}\n", "total");
  std::vector<int64_t> col_total(t.n_cols, 0);
  for (size_t r = 0; r < t.row_names.size(); ++r) {
    out += fmt::format("{:<{}}", t.row_names[r], w);
    int64_t total = 0;
    for (int c = 0; c < t.n_cols; ++c) {
      out += fmt::format(" {:>6}", t.at(r, c));
      total += t.at(r, c);
      col_total[c] += t.at(r, c);
    }
    out += fmt::format(" {:>7}\n", total);
  }
  out += fmt::format("{:<{}}", "total", w);
  int64_t all = 0;
  for (int c = 0; c < t.n_cols; ++c) {
    out += fmt::format(" {:>6}", col_total[c]);
    all += col_total[c];
  }
  out += fmt::format(" {:>7}\n", all);
  return out;
}

}  // namespace mlforge::algos
