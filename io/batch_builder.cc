#include "io/batch_builder.h"

#include <algorithm>

#include "core/error.h"

namespace mlforge::io {

void BatchBuilder::Reset(HostBatch* batch, int64_t cols, int64_t first_row) {
  batch_ = batch;
  batch_->Clear();
  batch_->layout = Layout::kDense;
  batch_->cols = cols;
  batch_->first_row = first_row;
  labels_seen_ = false;
}

void BatchBuilder::PushLabel(const float* label) {
  HostBatch& b = *batch_;
  // Labels are all-or-nothing within a batch: the decoders check this per file with context;
  // here it is an invariant.
  if (b.rows == 0) labels_seen_ = label != nullptr;
  MLF_ASSERT_MSG(labels_seen_ == (label != nullptr), "mixed labeled and unlabeled rows in one batch");
  if (label) b.labels.push_back(*label);
}

float* BatchBuilder::AppendDenseRow(const float* label) {
  HostBatch& b = *batch_;
  MLF_ASSERT(b.layout == Layout::kDense);
  PushLabel(label);
  size_t at = b.values.size();
  b.values.resize(at + static_cast<size_t>(b.cols), 0.0f);
  ++b.rows;
  return b.values.data() + at;
}

void BatchBuilder::AddDense(const float* x, const float* label) {
  HostBatch& b = *batch_;
  if (b.layout == Layout::kDense) {
    PushLabel(label);
    b.values.insert(b.values.end(), x, x + b.cols);  // one write per value (no zero fill first)
    ++b.rows;
    return;
  }
  PushLabel(label);
  for (int64_t j = 0; j < b.cols; ++j) {
    b.indices.push_back(static_cast<uint32_t>(j));
    b.values.push_back(x[j]);
  }
  b.indptr.push_back(static_cast<int64_t>(b.values.size()));
  ++b.rows;
}

void BatchBuilder::ToCsr() {
  HostBatch& b = *batch_;
  std::vector<float> dense = std::move(b.values);
  b.values.clear();
  b.indptr.assign(1, 0);
  for (int64_t r = 0; r < b.rows; ++r) {
    for (int64_t j = 0; j < b.cols; ++j) {
      b.indices.push_back(static_cast<uint32_t>(j));
      b.values.push_back(dense[static_cast<size_t>(r * b.cols + j)]);
    }
    b.indptr.push_back(static_cast<int64_t>(b.values.size()));
  }
  b.layout = Layout::kCsr;
}

void BatchBuilder::AddSparse(const uint32_t* idx, const float* val, int64_t nnz, const float* label) {
  HostBatch& b = *batch_;
  if (force_dense_) {
    float* dst = AppendDenseRow(label);
    for (int64_t k = 0; k < nnz; ++k) dst[idx[k]] = val[k];
    return;
  }
  if (b.layout == Layout::kDense) ToCsr();
  PushLabel(label);
  b.indices.insert(b.indices.end(), idx, idx + nnz);
  b.values.insert(b.values.end(), val, val + nnz);
  b.indptr.push_back(static_cast<int64_t>(b.values.size()));
  ++b.rows;
}

}  // namespace mlforge::io
