#include "core/batch.h"

#include "core/error.h"

namespace mlforge {

void Densify(HostBatch& b) {
  if (b.layout == Layout::kDense) return;
  std::vector<float> dense(static_cast<size_t>(b.rows * b.cols), 0.0f);
  for (int64_t r = 0; r < b.rows; ++r) {
    for (int64_t k = b.indptr[r]; k < b.indptr[r + 1]; ++k) {
      MLF_ASSERT(b.indices[k] < b.cols);
      dense[static_cast<size_t>(r * b.cols + b.indices[k])] = b.values[k];
    }
  }
  b.values = std::move(dense);
  b.indptr.clear();
  b.indices.clear();
  b.layout = Layout::kDense;
}

}  // namespace mlforge
