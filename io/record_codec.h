// aialgs.data.Record <-> rows (SPEC.md 1.2, 1.3). Schema in io/record.proto (our own, written
// from the field facts). Float32/Float64/Int32 tensors, dense and sparse (keys + shape), labels
// under any key (first one used; "values" preferred); uid kept; metadata/configuration ignored.
// float64 and int32 features are converted to float32 with a range check.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "io/decoded_row.h"

namespace mlforge::io {

// Where a record came from, for error messages: "<file>: record <n> at byte <offset>: ...".
struct RecordContext {
  const std::string* file = nullptr;
  int64_t record_index = 0;
  uint64_t offset = 0;
};

// Decodes one Record payload into `out` (cleared first). UserError naming the context on an
// undecodable payload ("protobuf parse error"), a missing/empty features map, a sparse tensor
// without shape, a key outside the shape, a float64 value outside float32 range, etc.
void DecodeRecord(std::string_view payload, const RecordContext& ctx, DecodedRow* out);

// Encodes one row as a Record payload (appended to *out), the way the SageMaker SDK does:
// features["values"] Float32Tensor (dense: values only; sparse: values, keys, shape=[cols]),
// label["values"] Float32Tensor with one value when label != nullptr.
void EncodeDenseRecord(const float* x, int64_t cols, const float* label, std::string* out);
void EncodeSparseRecord(const uint32_t* idx, const float* val, int64_t nnz, int64_t cols,
                        const float* label, std::string* out);

}  // namespace mlforge::io
