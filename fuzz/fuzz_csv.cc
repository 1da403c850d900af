// libFuzzer target for the CSV line parser. Input: byte 0 picks label_size (low bit), the rest is
// split into lines. Every line must either parse or raise UserError (anything else - a crash, an
// InternalError, another exception - is a finding); every accepted line must survive a round
// trip through AppendCsvNumber bit for bit (NaN stays NaN).
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "core/error.h"
#include "fuzz/fuzz_util.h"
#include "io/csv.h"
#include "io/decoded_row.h"

using mlforge::fuzz::Check;
using mlforge::fuzz::SameFloat;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using mlforge::io::AppendCsvNumber;
  using mlforge::io::CsvContext;
  using mlforge::io::DecodedRow;
  using mlforge::io::ParseCsvLine;
  if (size == 0) return 0;
  const int label_size = data[0] & 1;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  static const std::string kName = "fuzz.csv";
  DecodedRow row, again;
  std::string rebuilt;
  int64_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    CsvContext ctx{&kName, ++line_no, static_cast<int64_t>(line_no * 3)};
    try {
      ParseCsvLine(line, label_size, -1, ctx, &row);
    } catch (const mlforge::UserError& e) {
      // The message must name where the problem is.
      Check(std::string_view(e.what()).substr(0, kName.size()) == kName);
      continue;
    }
    Check(row.cols >= 1);
    Check(static_cast<int64_t>(row.values.size()) == row.cols);
    Check(row.has_label == (label_size == 1));
    Check(row.labels.size() == static_cast<size_t>(label_size));

    rebuilt.clear();
    if (label_size) {
      AppendCsvNumber(row.labels[0], &rebuilt);
      rebuilt += ',';
    }
    for (size_t i = 0; i < row.values.size(); ++i) {
      if (i) rebuilt += ',';
      AppendCsvNumber(row.values[i], &rebuilt);
    }
    // The rebuilt line must be accepted with the width fixed, and read back to the same floats.
    ParseCsvLine(rebuilt, label_size, row.cols, ctx, &again);
    Check(again.values.size() == row.values.size());
    for (size_t i = 0; i < row.values.size(); ++i) Check(SameFloat(again.values[i], row.values[i]));
    if (label_size) Check(SameFloat(again.labels[0], row.labels[0]));
  }
  return 0;
}
