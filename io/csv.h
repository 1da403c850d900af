// CSV in SageMaker's convention (SPEC.md 1.5): no header, label in the first column when
// label_size == 1, none when label_size == 0. Numbers parsed with std::from_chars (nan, inf,
// -inf, infinity accepted; a leading '+' is accepted; blanks (space, tab) around a field are
// ignored). Values beyond float32 range are an error; values that underflow become the nearest
// float (0 or a denormal). Any empty line, empty field, non-numeric field, quoted field or wrong
// column count is a UserError:
//   "<file>: line <n>, column <c>: <what>; <fix>"
// or, when the caller knows where the line starts in the file (CsvContext::offset >= 0),
//   "<file>: line <n> at byte <offset>, column <c>: <what>; <fix>"
// Columns are 1-based and count the label column.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "io/decoded_row.h"

namespace mlforge::io {

struct CsvContext {
  const std::string* file = nullptr;
  int64_t line = 0;     // 1-based
  int64_t offset = -1;  // byte offset of the line in the file; < 0: unknown (not printed)
};

// Parses one line (without its '\n'; a trailing '\r' is accepted) into a dense row: out->values
// holds the features (out->cols of them), out->labels the label when label_size == 1.
// expected_cols (feature columns, label excluded) < 0 accepts any width >= 1 (the caller then
// fixes it from the first line). Allocates nothing once `out` has grown to the row width.
void ParseCsvLine(std::string_view line, int label_size, int64_t expected_cols, const CsvContext& ctx,
                  DecodedRow* out);

// Parses [b, e) (blanks already trimmed) as a float32 the way CSV fields are read (also used by
// the libsvm decoder): plain decimals take an exact fast path, anything else std::from_chars.
// False when the text is not a number; then *too_large says whether it was one beyond float32
// range (|x| > 3.4e38), which is refused rather than turned into inf.
bool ParseFloat32(const char* b, const char* e, float* v, bool* too_large);

// Appends `v` in shortest round-trip form ("nan", "inf", "-inf", "-0" for the specials).
void AppendCsvNumber(float v, std::string* out);

}  // namespace mlforge::io
