// The channel reader: files, a directory of files, or a Pipe-mode FIFO -> fixed-size mini-batches
// with memory bounded by a few batches however large the data is. Raw chunks are read on one
// thread, decoded on worker threads, and handed out in file order (deterministic for a seed);
// an optional shuffle buffer permutes rows within a window of batches.
//
// Pipeline: one reader thread cuts each file into chunks of batch_size records (CSV or libsvm
// lines, or recordIO records), or fewer once a chunk holds chunk_bytes (a chunk never spans files);
// `threads` workers decode chunks into HostBatch; Next() takes decoded chunks strictly in chunk
// order and re-slices them into batches of exactly batch_size rows (rows of consecutive files
// share a batch; records holding r rows add r rows). recordIO payloads are decoded where read(2)
// put them (the reader only walks frame headers), and finished chunks' buffers are reused. At most prefetch +
// threads chunks are between the reader and Next() at any time, so memory is about (prefetch + 2 * threads +
// shuffle_window + 2) batches whatever the data size, plus the buffers of up to threads + 2 finished chunks
// of each kind, kept for reuse.
//
// libsvm (io/libsvm.h) rows are CSR with expected_cols columns. Without expected_cols, a channel's
// width is its largest index (1-based; largest + 1 when zero-based) over all its libsvm files,
// found by reading them once before the first epoch (ScanLibsvmWidth; about twice as fast as
// decoding) and kept for later epochs. Pipe mode cannot read a FIFO twice, so it needs
// expected_cols (feature_dim). Train and validation channels scanned apart may differ in width:
// set feature_dim.
//
// Checks, each a UserError naming the file, the line/record and its byte offset: unknown format,
// a row whose width differs from expected_cols (or, without it, from the first row), a channel
// mixing labeled and unlabeled rows, an unlabeled row when require_labels. Every row before the
// first bad record is handed out first (the batch before the error may be short); then Next()
// throws the error, and keeps throwing it until the next StartEpoch().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/batch.h"
#include "core/stop.h"
#include "io/format.h"
#include "io/libsvm.h"

namespace mlforge::io {

// Rows already in memory (the Python bindings' numpy / scipy CSR arrays), streamed like a file
// of batch_size-row chunks: the workers copy each chunk's rows into its HostBatch (the only copy;
// the arrays are never copied whole) and apply the checks file rows get (width, labels,
// non-finite values, CSR indices). Nothing here is owned: the arrays must outlive every stream
// reading them (`owner` may keep them alive).
struct MemoryMatrix {
  Layout layout = Layout::kDense;
  int64_t rows = 0;
  int64_t cols = 0;
  const float* values = nullptr;      // dense: rows x cols, row-major; csr: nnz values
  const int64_t* indptr64 = nullptr;  // csr: rows + 1 offsets, either 64-bit ...
  const int32_t* indptr32 = nullptr;  //      ... or 32-bit (scipy's default)
  const int32_t* indices = nullptr;   // csr: nnz column indices, each in [0, cols)
  const float* labels = nullptr;      // rows labels, or null (unlabeled)
  const float* weights = nullptr;     // rows weights (finite, >= 0), or null (every weight 1)
  std::string name = "array";         // in messages: "<name>: row 12"
  std::shared_ptr<const void> owner;  // optional keep-alive for the arrays

  int64_t indptr(int64_t r) const { return indptr64 ? indptr64[r] : static_cast<int64_t>(indptr32[r]); }
};

struct ChannelSource {
  // Rows in memory instead of files (paths and pipe_prefix are then ignored).
  std::shared_ptr<const MemoryMatrix> memory;
  std::vector<std::string> paths;         // files and/or directories (expanded by ExpandChannelPaths)
  DataFormat format = DataFormat::kAuto;  // kAuto: from each file's extension
  int label_size = -1;  // CSV: 1 = first column is the label, 0 = none, -1 = 1 (SageMaker default)
  // libsvm: indices start at 0 (column = index) instead of libsvm's 1 (column = index - 1).
  bool libsvm_zero_based = false;
  // Pipe mode: when non-empty, epoch e reads the FIFO `<pipe_prefix>_<e>` (waiting for it to
  // appear) instead of `paths`; `format` must then be known (not kAuto).
  std::string pipe_prefix;
  double pipe_wait_s = 0;  // <= 0: wait forever (until a stop is requested)
};

struct StreamOptions {
  int64_t batch_size = 1000;  // rows per batch (the last batch of an epoch may be smaller)
  int threads = 0;            // decode workers; <= 0: hardware threads
  int prefetch = 4;           // decoded batches buffered ahead of the consumer
  bool shuffle = false;       // permute rows within a window of shuffle_window batches
  int shuffle_window = 8;
  uint64_t seed = 0;            // shuffle seed (epoch is mixed in, so epochs differ)
  bool force_dense = false;     // scatter sparse rows into dense storage
  int64_t expected_cols = -1;   // e.g. feature_dim; -1: taken from the first row
  bool require_labels = false;  // UserError when a row has no label
  // NaN and infinite features pass through (data tools); off: UserError naming the row and the
  // column (io/batch_builder.h, FirstNonFinite), what every algorithm's channels use.
  bool allow_non_finite = false;
  // A chunk (the unit of decoding) also ends once its records hold this many bytes, so that
  // batches of very wide rows are decoded in pieces by several workers while the reader goes on;
  // Next() then joins the pieces (one copy).
  int64_t chunk_bytes = int64_t{64} << 20;
  // recordIO regular files are memory-mapped and decoded in place (no read(2) copy). Off: read
  // them like FIFOs. A file must not shrink while it is mapped (the process would get SIGBUS).
  bool map_files = true;
  // libsvm: a longer line is a UserError naming it (a runaway or binary file must not be
  // buffered without bound).
  int64_t max_line_bytes = kLibsvmMaxLineBytes;
  int shard_index = 0;          // record-level sharding for FullyReplicated multi-host runs:
  int num_shards = 1;           //   this rank keeps chunks c with c % num_shards == shard_index
                                //   (c counts chunks over the epoch; ordinals count kept rows)
  StopToken stop = StopToken::Never();
};

// records/rows/nnz count what this rank keeps (after sharding); files/bytes what it read.
struct StreamStats {
  int64_t files = 0;
  int64_t records = 0;
  int64_t rows = 0;
  int64_t nnz = 0;
  uint64_t bytes = 0;
  bool any_sparse = false;
  bool any_labels = false;
  // Most raw + decoded chunks alive at once in this stream's lifetime (memory-bound check; a
  // chunk holds about one batch).
  int64_t peak_live_chunks = 0;
};

class BatchStream {
 public:
  BatchStream(ChannelSource source, StreamOptions options);
  ~BatchStream();  // stops and joins the worker threads
  BatchStream(const BatchStream&) = delete;
  BatchStream& operator=(const BatchStream&) = delete;

  // Starts a pass over the data (re-opens files; Pipe mode opens `<prefix>_<epoch>`).
  // Calling Next() without StartEpoch() starts epoch 0.
  void StartEpoch(int epoch);
  // Fills `batch` with the next rows; false once the epoch is exhausted. Every batch before a
  // corrupt record is returned first; then the UserError naming file, record and byte offset is
  // thrown. Throws StopRequested when a stop is requested.
  bool Next(HostBatch* batch);

  int64_t cols() const;              // feature width, known after the first batch (or expected_cols)
  const StreamStats& stats() const;  // totals of the current epoch so far

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mlforge::io
