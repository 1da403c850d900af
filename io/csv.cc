#include "io/csv.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace mlforge::io {
namespace {

inline bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// Builds the one error format every CSV problem uses, so users can grep for "line <n>".
[[noreturn]] void CsvError(const CsvContext& ctx, int64_t column, std::string_view what,
                           std::string_view fix) {
  std::string where = ctx.file ? *ctx.file : std::string("<csv>");
  if (ctx.offset >= 0) {
    MLF_FAIL("{}: line {} at byte {}, column {}: {}; {}", where, ctx.line, ctx.offset, column, what, fix);
  }
  MLF_FAIL("{}: line {}, column {}: {}; {}", where, ctx.line, column, what, fix);
}

std::string Quote(std::string_view field) {
  constexpr size_t kMaxShown = 40;  // a runaway field (binary data) must not flood the log
  std::string s(field.substr(0, kMaxShown));
  if (field.size() > kMaxShown) s += "...";
  return "'" + s + "'";
}

// Exact powers of ten in double (10^22 is the largest that is).
constexpr double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                             1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

// The common case, plain decimals like "-12.5" or "3.25e-3", in a few nanoseconds (std::from_chars
// is the bottleneck of CSV parsing otherwise). With m < 2^53 and |e10| <= 22 both m and 10^|e10|
// are exact doubles, so m * 10^e10 (or m / 10^-e10) is the correctly rounded double of the
// decimal. Rounding that double to float can differ from rounding the decimal directly only when
// the double lies within one double ulp of a midpoint between two floats; those cases, denormal
// results and anything unusual (nan, inf, more digits) return false and take the exact slow path.
bool FastFloat(const char* b, const char* e, float* out) {
  const char* p = b;
  bool neg = false;
  if (p != e && *p == '-') {
    neg = true;
    ++p;
  }
  uint64_t m = 0;
  int digits = 0, frac = 0;
  const char* int_begin = p;
  while (p != e && static_cast<unsigned>(*p - '0') < 10) {
    m = m * 10 + static_cast<unsigned>(*p - '0');
    ++digits;
    ++p;
  }
  if (p == int_begin) return false;
  if (p != e && *p == '.') {
    ++p;
    const char* frac_begin = p;
    while (p != e && static_cast<unsigned>(*p - '0') < 10) {
      m = m * 10 + static_cast<unsigned>(*p - '0');
      ++digits;
      ++p;
    }
    frac = static_cast<int>(p - frac_begin);
    if (frac == 0) return false;
  }
  if (digits > 19) return false;  // m may have wrapped
  int exp10 = 0;
  if (p != e && (*p == 'e' || *p == 'E')) {
    ++p;
    bool eneg = false;
    if (p != e && (*p == '-' || *p == '+')) {
      eneg = *p == '-';
      ++p;
    }
    const char* exp_begin = p;
    while (p != e && static_cast<unsigned>(*p - '0') < 10 && exp10 < 1000) {
      exp10 = exp10 * 10 + (*p - '0');
      ++p;
    }
    if (p == exp_begin) return false;
    if (eneg) exp10 = -exp10;
  }
  if (p != e) return false;
  if (m > (uint64_t{1} << 53)) return false;
  const int e10 = exp10 - frac;
  if (e10 < -22 || e10 > 22) return false;
  if (m == 0) {
    *out = neg ? -0.0f : 0.0f;
    return true;
  }
  double d = static_cast<double>(m);
  d = e10 < 0 ? d / kPow10[-e10] : d * kPow10[e10];
  if (!(d >= static_cast<double>(std::numeric_limits<float>::min()) &&
        d <= static_cast<double>(std::numeric_limits<float>::max()))) {
    return false;
  }
  uint64_t bits;
  std::memcpy(&bits, &d, 8);
  // The 29 mantissa bits a float drops; 2^28 is exactly half a float ulp.
  const uint64_t low = bits & ((uint64_t{1} << 29) - 1);
  const uint64_t half = uint64_t{1} << 28;
  if (low + 1 >= half && low <= half + 1) return false;
  const float f = static_cast<float>(d);
  *out = neg ? -f : f;
  return true;
}

}  // namespace

// from_chars reports values beyond float range as out_of_range; tiny values that underflow are
// accepted as the nearest float (0 or a denormal, as strtof would give), huge ones are rejected
// rather than silently turned into inf.
bool ParseFloat32(const char* b, const char* e, float* v, bool* too_large) {
  *too_large = false;
  if (b != e && *b == '+') {
    ++b;  // from_chars has no leading '+'; spreadsheets and printf("%+g") write one
    if (b == e || *b == '-' || *b == '+') return false;
  }
  if (FastFloat(b, e, v)) return true;
  auto r = std::from_chars(b, e, *v);
  if (r.ec == std::errc() && r.ptr == e) return true;
  if (r.ec == std::errc::result_out_of_range && r.ptr == e) {
    double d;
    auto rd = std::from_chars(b, e, d);
    if (rd.ptr != e) return false;
    if (rd.ec == std::errc() && std::fabs(d) <= std::numeric_limits<float>::max()) {
      *v = static_cast<float>(d);
      return true;
    }
    if (rd.ec == std::errc::result_out_of_range) {
      // Beyond double range: decide by the exponent's sign whether it underflowed.
      const char* x = b;
      while (x != e && *x != 'e' && *x != 'E') ++x;
      if (x + 1 < e && x[1] == '-') {
        *v = (*b == '-') ? -0.0f : 0.0f;
        return true;
      }
    }
    *too_large = true;
    return false;
  }
  return false;
}

void ParseCsvLine(std::string_view line, int label_size, int64_t expected_cols, const CsvContext& ctx,
                  DecodedRow* out) {
  MLF_EXPECTS(label_size == 0 || label_size == 1,
              "CSV label_size must be 0 or 1, got {}; use ContentType text/csv;label_size=0 for "
              "unlabeled data or text/csv (label in the first column)",
              label_size);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  out->Clear();
  out->sparse = false;
  out->rows = 1;

  const char* p = line.data();
  const char* end = p + line.size();
  {
    const char* q = p;
    while (q != end && IsBlank(*q)) ++q;
    if (q == end) {
      CsvError(ctx, 1, "empty line",
               "CSV training data has one record per line and no blank lines; remove it");
    }
  }

  int64_t column = 0;  // 1-based index of the field being parsed
  const int64_t max_fields = expected_cols >= 0 ? expected_cols + label_size : -1;
  for (;;) {
    ++column;
    // Fields may be padded with blanks (pandas/Excel exports sometimes are); the number itself
    // may not contain any.
    while (p != end && IsBlank(*p)) ++p;
    const char* b = p;
    const char* comma = static_cast<const char*>(std::memchr(p, ',', static_cast<size_t>(end - p)));
    const char* field_end = comma ? comma : end;
    const char* e = field_end;
    while (e != b && IsBlank(e[-1])) --e;
    if (max_fields >= 0 && column > max_fields) {
      int64_t fields = column;
      for (const char* c = field_end; c != end; ++c) fields += (*c == ',');
      CsvError(ctx, column,
               fmt::format("expected {} feature column(s){}, found {}", expected_cols,
                           label_size ? " after the label" : "", fields - label_size),
               "every line must have the same number of columns (feature_dim plus the label "
               "column when label_size=1)");
    }
    if (b == e) {
      CsvError(ctx, column, "empty field",
               "every column needs a number; write nan for a missing value and check for a "
               "trailing comma");
    }
    float v;
    bool too_large;
    if (!ParseFloat32(b, e, &v, &too_large)) {
      if (too_large) {
        CsvError(ctx, column, fmt::format("{} is outside the float32 range", Quote({b, size_t(e - b)})),
                 "values must fit in float32 (|x| <= 3.4e38); rescale the column");
      }
      CsvError(ctx, column, fmt::format("{} is not a number", Quote({b, size_t(e - b)})),
               "CSV must contain only numbers (no header, no quotes, no categorical strings); "
               "nan and inf are accepted");
    }
    if (column == 1 && label_size == 1) {
      out->has_label = true;
      out->labels.push_back(v);
    } else {
      out->values.push_back(v);
    }
    if (!comma) break;
    p = comma + 1;
  }

  const int64_t features = column - label_size;
  if (label_size == 1 && features == 0) {
    CsvError(ctx, 2, "the line has a label but no feature columns",
             "with label_size=1 the first column is the label and the rest are features; use "
             "text/csv;label_size=0 if there is no label");
  }
  if (expected_cols >= 0 && features != expected_cols) {
    CsvError(ctx, column + 1,
             fmt::format("expected {} feature column(s){}, found {}", expected_cols,
                         label_size ? " after the label" : "", features),
             "every line must have the same number of columns (feature_dim plus the label column "
             "when label_size=1)");
  }
  out->cols = features;
}

void AppendCsvNumber(float v, std::string* out) {
  if (std::isnan(v)) {
    out->append("nan");
    return;
  }
  if (std::isinf(v)) {
    out->append(v < 0 ? "-inf" : "inf");
    return;
  }
  if (v == 0.0f) {
    out->append(std::signbit(v) ? "-0" : "0");
    return;
  }
  char buf[32];
  // Shortest representation that reads back to the same float (std::to_chars guarantees it).
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  MLF_ASSERT(r.ec == std::errc());
  out->append(buf, static_cast<size_t>(r.ptr - buf));
}

}  // namespace mlforge::io
