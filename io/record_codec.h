// aialgs.data.Record <-> rows (SPEC.md 1.2, 1.3). Schema in io/record.proto (our own, written
// from the field facts). Float32/Float64/Int32 tensors, dense and sparse (keys + shape); features
// under one map key ("values" as the SDK writes; several feature keys are an error); the label
// under "values", or under its only key; uid kept; metadata/configuration ignored.
// float64 and int32 values are converted to float32; a finite float64 that overflows float32 is an
// error (NaN and +-Inf pass through).
//
// Shapes: no shape or [cols] -> one row; [r, c] -> r rows (sparse keys map to row key / c, column
// key % c). A tensor with neither keys nor values but a shape is a sparse row with no non-zeros
// (what the SDK writes for an empty CSR row). An empty features map, or an empty tensor without
// shape, is one dense row of width 0.
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

// Decodes one Record payload into `out` (cleared first). UserError
// "<file>: record <n> at byte <offset>: <what>" on an undecodable payload ("protobuf parse error"),
// several feature keys, a Bytes value, a sparse tensor without shape, a key outside the shape, a
// label count that is not one per row, a float64 value outside float32 range, etc.
// Walks the protobuf wire format directly (no Record object, no per-record allocation in steady
// state); it accepts exactly the payloads libprotobuf's generated parser accepts.
void DecodeRecord(std::string_view payload, const RecordContext& ctx, DecodedRow* out);

// The layout the SageMaker SDK's dense writer (and EncodeDenseRecord) produces:
//   features {"values": float32_tensor {values: d floats}} [label {"values": float32_tensor {values: 1
//   float}}]
// matched byte for byte, every length consistent, nothing else in the payload. Such a payload
// decodes to one dense row of `cols` floats (little-endian, unaligned, at `features`) and the
// label at `label` (null when absent): exactly what DecodeRecord gives, which tries this first.
// False for anything else (keys, shape, uid, other types, other field orders, no values).
struct SdkDenseRecord {
  const char* features = nullptr;
  int64_t cols = 0;
  const char* label = nullptr;
};
bool MatchSdkDense(std::string_view payload, SdkDenseRecord* out);

// The same decoding through the generated aialgs::data::Record class: the reference the tests and
// the fuzzer compare DecodeRecord with. Slower; same results and same error messages, except the
// detail after "protobuf parse error".
void DecodeRecordReference(std::string_view payload, const RecordContext& ctx, DecodedRow* out);

// Encodes one row as a Record payload (appended to *out), the way the SageMaker SDK does:
// features["values"] Float32Tensor (dense: values only; sparse: values, keys, shape=[cols]),
// label["values"] Float32Tensor with one value when label != nullptr.
void EncodeDenseRecord(const float* x, int64_t cols, const float* label, std::string* out);
void EncodeSparseRecord(const uint32_t* idx, const float* val, int64_t nnz, int64_t cols, const float* label,
                        std::string* out);

}  // namespace mlforge::io
