// Accumulates decoded rows into a HostBatch. Shared by every decoder (CSV, recordIO, VCF) so that
// layout rules live in one place: a batch is dense until a sparse row arrives; then it becomes
// CSR (dense rows already in it are converted), unless force_dense, in which case sparse rows are
// scattered into dense storage.
#pragma once

#include <cstdint>
#include <string>

#include "core/batch.h"

namespace mlforge::io {

// Non-finite features (NaN, +-Inf) are refused wherever rows enter an algorithm: training
// channels (BatchStream, unless StreamOptions::allow_non_finite), `mlforge predict` and the
// endpoint. None of the algorithms has a meaning for them (a NaN distance picks cluster 0, a NaN
// margin label 0): an error naming the row and the column beats a silently wrong answer.
// The data tools (`data inspect`, `data convert`) pass them through.
//
// Index of the first NaN or infinite float32 among x[0..n), or -1; `x` may be unaligned.
int64_t FirstNonFinite(const void* x, int64_t n);
// The float32 at index i of `x` (unaligned read).
float FloatAt(const void* x, int64_t i);
// The UserError message for feature `column` (0-based) of the row `where` names, holding `v`.
std::string NonFiniteMessage(const std::string& where, int64_t column, float v);

class BatchBuilder {
 public:
  explicit BatchBuilder(bool force_dense = false) : force_dense_(force_dense) {}

  // Begins a new batch: clears `batch` and fixes its column count.
  void Reset(HostBatch* batch, int64_t cols, int64_t first_row);

  // x has `cols` values. label may be null (unlabeled row).
  void AddDense(const float* x, const float* label);
  // The same from raw little-endian float32 bytes (unaligned, e.g. inside a protobuf payload).
  void AddDenseBytes(const char* x, const char* label);
  // nnz (index, value) pairs, indices < cols (the caller validated them).
  void AddSparse(const uint32_t* idx, const float* val, int64_t nnz, const float* label);
  // Appends a row whose values the caller fills in: returns a pointer to `cols` zeroed floats
  // (dense layout only). Lets decoders convert float64/int32 without a temporary.
  float* AppendDenseRow(const float* label);

  HostBatch* batch() { return batch_; }
  int64_t rows() const { return batch_ ? batch_->rows : 0; }

 private:
  void PushLabel(const float* label);
  void ToCsr();
  bool force_dense_;
  HostBatch* batch_ = nullptr;
  bool labels_seen_ = false;
};

}  // namespace mlforge::io
