#include "io/batch_builder.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <iterator>

#include "core/error.h"

namespace mlforge::io {

int64_t FirstNonFinite(const void* x, int64_t n) {
  // Branch-free per block so that the common all-finite case runs at memory speed: a float is
  // non-finite exactly when its exponent bits are all ones. Read through memcpy: `x` may be
  // unaligned (floats inside a protobuf payload).
  const char* bytes = static_cast<const char*>(x);
  auto non_finite = [&](int64_t i) {
    uint32_t bits;
    std::memcpy(&bits, bytes + i * 4, sizeof bits);
    return static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  };
  constexpr int64_t kBlock = 64;
  for (int64_t i = 0; i < n; i += kBlock) {
    const int64_t m = std::min(kBlock, n - i);
    uint32_t bad = 0;
    for (int64_t j = 0; j < m; ++j) bad |= non_finite(i + j);
    if (bad) {
      for (int64_t j = 0; j < m; ++j) {
        if (non_finite(i + j)) return i + j;
      }
    }
  }
  return -1;
}

float FloatAt(const void* x, int64_t i) {
  float v;
  std::memcpy(&v, static_cast<const char*>(x) + i * 4, sizeof v);
  return v;
}

std::string NonFiniteMessage(const std::string& where, int64_t column, float v) {
  return fmt::format(
      "{}: feature {} (0-based column) is {}; mlforge neither trains on nor predicts from NaN or infinite "
      "features: impute or drop them first (for example replace a missing value with the column's mean)",
      where, column, std::isnan(v) ? "NaN" : (v < 0 ? "-infinity" : "infinity"));
}

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

namespace {

// float32 values read from unaligned little-endian bytes. Random access, so that vector::insert
// sizes the batch once and copies straight in: resize() + memcpy would zero-fill first, an extra
// write over every value (a sixth of the streaming time).
class UnalignedFloats {
 public:
  using iterator_category = std::random_access_iterator_tag;
  using value_type = float;
  using difference_type = std::ptrdiff_t;
  using pointer = const float*;
  using reference = float;

  explicit UnalignedFloats(const char* p) : p_(p) {}
  float operator*() const {
    float f;
    std::memcpy(&f, p_, sizeof(float));
    return f;
  }
  float operator[](difference_type i) const { return *(*this + i); }
  UnalignedFloats& operator++() {
    p_ += sizeof(float);
    return *this;
  }
  UnalignedFloats operator++(int) {
    UnalignedFloats t = *this;
    ++*this;
    return t;
  }
  UnalignedFloats& operator--() {
    p_ -= sizeof(float);
    return *this;
  }
  UnalignedFloats operator--(int) {
    UnalignedFloats t = *this;
    --*this;
    return t;
  }
  UnalignedFloats& operator+=(difference_type n) {
    p_ += n * static_cast<difference_type>(sizeof(float));
    return *this;
  }
  UnalignedFloats& operator-=(difference_type n) { return *this += -n; }
  friend UnalignedFloats operator+(UnalignedFloats a, difference_type n) { return a += n; }
  friend UnalignedFloats operator+(difference_type n, UnalignedFloats a) { return a += n; }
  friend UnalignedFloats operator-(UnalignedFloats a, difference_type n) { return a -= n; }
  friend difference_type operator-(const UnalignedFloats& a, const UnalignedFloats& b) {
    return (a.p_ - b.p_) / static_cast<difference_type>(sizeof(float));
  }
  friend bool operator==(const UnalignedFloats& a, const UnalignedFloats& b) { return a.p_ == b.p_; }
  friend bool operator!=(const UnalignedFloats& a, const UnalignedFloats& b) { return a.p_ != b.p_; }
  friend bool operator<(const UnalignedFloats& a, const UnalignedFloats& b) { return a.p_ < b.p_; }
  friend bool operator>(const UnalignedFloats& a, const UnalignedFloats& b) { return a.p_ > b.p_; }
  friend bool operator<=(const UnalignedFloats& a, const UnalignedFloats& b) { return a.p_ <= b.p_; }
  friend bool operator>=(const UnalignedFloats& a, const UnalignedFloats& b) { return a.p_ >= b.p_; }

 private:
  const char* p_;
};

}  // namespace

void BatchBuilder::AddDenseBytes(const char* x, const char* label) {
  HostBatch& b = *batch_;
  if (b.layout != Layout::kDense) {
    std::vector<float> row(static_cast<size_t>(b.cols));
    std::memcpy(row.data(), x, row.size() * sizeof(float));
    float y = 0;
    if (label) std::memcpy(&y, label, sizeof(float));
    AddDense(row.data(), label ? &y : nullptr);
    return;
  }
  float y = 0;
  if (label) std::memcpy(&y, label, sizeof(float));
  PushLabel(label ? &y : nullptr);
  b.values.insert(b.values.end(), UnalignedFloats(x), UnalignedFloats(x) + b.cols);
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
