// libFuzzer target for the libsvm line decoder. Input: byte 0 picks the options (bit 0:
// zero-based indices, bit 1: a known width of 64 columns, else any), the rest is split into
// lines. Every line must parse, be skipped (blank/comment) or raise a UserError naming the file
// (anything else - a crash, an InternalError, another exception - is a finding). An accepted row
// must be consistent (one label, strictly increasing columns below its width), the lenient width
// scanner must agree with it on the largest index, and the row must survive a round trip through
// AppendLibsvmLine bit for bit (NaN stays NaN).
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "core/error.h"
#include "fuzz/fuzz_util.h"
#include "io/decoded_row.h"
#include "io/libsvm.h"

using mlforge::fuzz::Check;
using mlforge::fuzz::SameFloat;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mlforge::io;
  if (size == 0) return 0;
  LibsvmOptions opt;
  opt.zero_based = data[0] & 1;
  opt.cols = (data[0] & 2) ? 64 : -1;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  static const std::string kName = "fuzz.libsvm";
  DecodedRow row, again;
  std::string rebuilt;
  int64_t line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    LibsvmContext ctx{&kName, ++line_no, static_cast<int64_t>(line_no * 3)};
    bool got;
    try {
      got = ParseLibsvmLine(line, opt, ctx, &row);
    } catch (const mlforge::UserError& e) {
      Check(std::string_view(e.what()).substr(0, kName.size()) == kName);
      continue;
    }
    if (!got) {
      Check(!row.has_label && row.values.empty());
      Check(LibsvmMaxIndex(line) == -1);
      continue;
    }
    Check(row.sparse && row.rows == 1 && row.has_label && row.labels.size() == 1);
    Check(row.indices.size() == row.values.size());
    for (size_t k = 0; k < row.indices.size(); ++k) {
      Check(row.indices[k] < static_cast<uint64_t>(row.cols));
      if (k > 0) Check(row.indices[k - 1] < row.indices[k]);
    }
    if (opt.cols >= 0) Check(row.cols == opt.cols);
    const int64_t shift = opt.zero_based ? 0 : 1;
    Check(LibsvmMaxIndex(line) == (row.indices.empty() ? -1 : int64_t{row.indices.back()} + shift));

    // AppendLibsvmLine writes 1-based indices: read them back that way.
    rebuilt.clear();
    AppendLibsvmLine(row.labels[0], row.indices.data(), row.values.data(),
                     static_cast<int64_t>(row.values.size()), &rebuilt);
    Check(!rebuilt.empty() && rebuilt.back() == '\n');
    rebuilt.pop_back();
    LibsvmOptions one_based;
    one_based.cols = row.cols;
    Check(ParseLibsvmLine(rebuilt, one_based, ctx, &again));
    Check(again.indices == row.indices);
    Check(again.values.size() == row.values.size());
    for (size_t k = 0; k < row.values.size(); ++k) Check(SameFloat(again.values[k], row.values[k]));
    Check(SameFloat(again.labels[0], row.labels[0]));
  }
  return 0;
}
