// CSV in SageMaker's convention (SPEC.md 1.5): no header, label in the first column when
// label_size == 1, none when label_size == 0. Numbers parsed with std::from_chars (nan, inf
// accepted). Any empty line, non-numeric field or wrong column count is a UserError:
//   "<file>: line <n>, column <c>: <what>"
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "io/decoded_row.h"

namespace mlforge::io {

struct CsvContext {
  const std::string* file = nullptr;
  int64_t line = 0;  // 1-based
};

// Parses one line (without its '\n'; a trailing '\r' is accepted) into a dense row.
// expected_cols < 0 accepts any width (the caller then fixes it from the first line).
void ParseCsvLine(std::string_view line, int label_size, int64_t expected_cols, const CsvContext& ctx,
                  DecodedRow* out);

// Appends `v` in shortest round-trip form ("nan", "inf", "-inf", "-0" for the specials).
void AppendCsvNumber(float v, std::string* out);

}  // namespace mlforge::io
