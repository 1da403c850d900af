// libsvm / svmlight text: one row per line,
//   LABEL [qid:N] INDEX:VALUE INDEX:VALUE ... [# comment]
// Rules (each violation is a UserError, see below):
//  - Tokens are separated by blanks (space, tab); a trailing '\r' is accepted. A '#' anywhere
//    starts a comment that runs to the end of the line (as in svmlight and scikit-learn). Lines
//    that are blank or only a comment are skipped and make no row.
//  - LABEL is one float (a leading '+' is accepted, "+1"); a multi-label list ("1,2") is refused.
//    A line must start with its label: "3:1.5 ..." without one is refused.
//  - "qid:N" (N a whole number) may follow the label; it is accepted and ignored.
//  - INDEX is a whole number, 1-based by default (libsvm's and svmlight's convention: the first
//    column is 1); column = INDEX - 1. With zero_based, column = INDEX. Index 0 in 1-based mode
//    is refused (the message names the zero-based option). Indices within a line must be
//    strictly increasing (no sorting, no duplicates: a file that breaks this was not written by
//    a libsvm tool, and sorting would hide which of two duplicate values is meant).
//  - VALUE is a float32 parsed as CSV fields are (io/csv.h ParseFloat32: nan/inf accepted, beyond
//    float32 range refused). Explicit zeros ("3:0") are kept as stored entries.
//  - With a known width (`cols` >= 0, e.g. feature_dim) a column >= cols is refused.
// The row comes out sparse (DecodedRow::sparse, rows == 1, one label), never densified here.
// Errors: "<file>: line <n> at byte <offset>: <what>; <fix>", where <offset> is the file offset
// of the offending token (LibsvmContext::offset is the line's; < 0: "line <n>, byte <k> of the
// line").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/stop.h"
#include "io/decoded_row.h"

namespace mlforge::io {

struct LibsvmContext {
  const std::string* file = nullptr;
  int64_t line = 0;     // 1-based
  int64_t offset = -1;  // byte offset of the line in the file; < 0: unknown
};

struct LibsvmOptions {
  int64_t cols = -1;        // feature width; < 0: any (out->cols = largest column + 1 of the line)
  bool zero_based = false;  // indices start at 0 (default: at 1, libsvm's convention)
};

// Lines longer than this are refused by the channel reader (StreamOptions::max_line_bytes
// default): a runaway or binary file must not be buffered without bound.
inline constexpr int64_t kLibsvmMaxLineBytes = int64_t{256} << 20;

// Parses one line (without its '\n'). Returns false for a blank or comment-only line (`out` is
// then cleared), true with the row in `out`: sparse, rows = 1, has_label, values/indices of the
// stored entries (0-based columns, strictly increasing), cols = options.cols (or the line's
// largest column + 1 when options.cols < 0). Allocates nothing once `out` has grown.
bool ParseLibsvmLine(std::string_view line, const LibsvmOptions& options, const LibsvmContext& ctx,
                     DecodedRow* out);

// The largest index written on `line`, as written (before the 1-based shift), or -1 when the
// line has none. Lenient: a token the decoder would refuse is skipped here (the decoder then
// reports it with its position); used to find a channel's width before decoding.
int64_t LibsvmMaxIndex(std::string_view line);

// The width of libsvm data with no feature_dim given: the largest column over every line of
// `files` + 1 (0 when no line has an index). Reads each file once; `where` (optional) receives
// "<file>: line <n>" of a line holding the largest index. Only the first max_line_bytes of a
// line are looked at (longer lines are the decoder's error). Throws StopRequested on `stop`.
int64_t ScanLibsvmWidth(const std::vector<std::string>& files, bool zero_based, StopToken stop,
                        std::string* where = nullptr, int64_t max_line_bytes = kLibsvmMaxLineBytes);

// Appends one row as a libsvm line (label, then 1-based "index:value" pairs, '\n'). Values and
// label in shortest round-trip form (io/csv.h AppendCsvNumber). `idx` are 0-based columns.
void AppendLibsvmLine(float label, const uint32_t* idx, const float* val, int64_t nnz, std::string* out);

}  // namespace mlforge::io
