// The host-resident mini-batch: one type, two layouts (DESIGN.md "The way data flows").
// Device-resident views live in kernels/ and are built from these; residency is in the type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mlforge {

enum class Layout { kDense, kCsr };

// A mini-batch of rows held in host memory.
//  dense: values is rows x cols, row-major (values.size() == rows * cols); indptr/indices empty.
//  csr:   indptr has rows + 1 entries, indices/values have nnz entries; column indices are
//         strictly < cols and, within a row, in the order the record gave them.
// labels: one per row, or empty when the data carries no labels.
// weights: one per row, or empty meaning every weight is 1.
// first_row: the ordinal (0-based, within its channel and epoch) of the first row; row i of the
//            batch is ordinal first_row + i before any shuffling. After shuffling, `ordinals`
//            holds each row's ordinal (empty when rows are in order).
struct HostBatch {
  Layout layout = Layout::kDense;
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> values;
  std::vector<int64_t> indptr;
  std::vector<uint32_t> indices;
  std::vector<float> labels;
  std::vector<float> weights;
  int64_t first_row = 0;
  std::vector<int64_t> ordinals;

  bool has_labels() const { return !labels.empty(); }
  int64_t nnz() const { return layout == Layout::kDense ? rows * cols : static_cast<int64_t>(values.size()); }
  int64_t ordinal(int64_t i) const { return ordinals.empty() ? first_row + i : ordinals[i]; }
  // Bytes held by the rows (the elements of every buffer; capacity not counted).
  size_t bytes() const {
    return values.size() * sizeof(float) + indptr.size() * sizeof(int64_t) + indices.size() * sizeof(uint32_t) +
           (labels.size() + weights.size()) * sizeof(float) + ordinals.size() * sizeof(int64_t);
  }
  void Clear() {
    rows = 0;
    values.clear();
    indptr.clear();
    indices.clear();
    labels.clear();
    weights.clear();
    ordinals.clear();
  }
};

// Converts a CSR batch to dense in place (only when the user asked for it, e.g. force_dense).
void Densify(HostBatch& batch);

}  // namespace mlforge
