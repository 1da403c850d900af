// One decoded input row (or a small matrix, for records that carry one), reused across records so
// that decoding allocates nothing in steady state. Produced by every decoder (recordIO, CSV, VCF)
// and appended to a batch by BatchBuilder.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mlforge::io {

struct DecodedRow {
  bool sparse = false;
  int64_t rows = 1;               // rows in this record (1, or r for a 2-D [r, c] tensor)
  int64_t cols = 0;               // feature width (dense: values.size() / rows; sparse: shape)
  std::vector<float> values;      // dense: rows * cols row-major; sparse: nnz values
  std::vector<uint32_t> indices;  // sparse: column index of each value (rows == 1), else empty
  std::vector<int64_t> row_ptr;   // sparse with rows > 1: rows + 1 offsets into values
  bool has_label = false;
  std::vector<float> labels;      // one per row when has_label
  std::string uid;                // Record.uid when present (joins predictions to inputs)

  void Clear() {
    sparse = false;
    rows = 1;
    cols = 0;
    values.clear();
    indices.clear();
    row_ptr.clear();
    has_label = false;
    labels.clear();
    uid.clear();
  }
};

}  // namespace mlforge::io
