// Streaming writers for CSV, recordIO-protobuf and libsvm (1-based indices, labels required). Output goes to
// `<path>.tmp-<pid>` and is renamed over `path` by Close(), so a failed conversion never leaves a partial
// file behind.
#pragma once

#include <memory>
#include <string>

#include "core/batch.h"
#include "io/format.h"

namespace mlforge::io {

class RowWriter {
 public:
  virtual ~RowWriter() = default;  // without Close(): removes the temporary file
  // Writes every row of `batch` (labels first in CSV when present; in recordIO under label["values"];
  // libsvm: first on each line, and required).
  virtual void Write(const HostBatch& batch) = 0;
  virtual void Close() = 0;
  virtual int64_t rows_written() const = 0;
};

struct WriterOptions {
  DataFormat format = DataFormat::kAuto;  // kAuto: from the path's extension
  // recordIO only: write sparse tensors (keys + shape) for CSR batches; dense batches are always
  // written dense. CSV always writes dense rows; libsvm always sparse ones (a dense row's zeros
  // are left out).
  bool sparse = true;
  bool write_labels = true;  // false drops labels (CSV label_size=0 output)
};

std::unique_ptr<RowWriter> MakeRowWriter(const std::string& path, WriterOptions options);

}  // namespace mlforge::io
