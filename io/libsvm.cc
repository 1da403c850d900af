#include "io/libsvm.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <memory>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/error.h"
#include "io/csv.h"
#include "io/input_file.h"

namespace mlforge::io {
namespace {

inline bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// The first blank at or after p, or e. Sixteen bytes at a time where they are there to read
// (tokens are mostly 5-15 bytes; a byte loop was a fifth of the decoding time).
inline const char* TokenEnd(const char* p, const char* e) {
#ifdef __SSE2__
  const __m128i space = _mm_set1_epi8(' '), tab = _mm_set1_epi8('\t');
  while (e - p >= 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(x, space), _mm_cmpeq_epi8(x, tab)));
    if (m != 0) return p + __builtin_ctz(static_cast<unsigned>(m));
    p += 16;
  }
#endif
  while (p != e && !IsBlank(*p)) ++p;
  return p;
}

// A whole number at [p, e) followed by ':', of at most 19 digits after any leading zeros: *idx
// and the colon's address; nullptr for anything else (the caller's slow path says what, and
// more digits are too large for any width). Inline digits instead of from_chars, which was an
// out-of-line call per feature; 19 digits cannot overflow uint64.
inline const char* ParseIndex(const char* p, const char* e, uint64_t* idx) {
  const char* b = p;
  while (p != e && *p == '0') ++p;
  const char* significant = p;
  uint64_t v = 0;
  while (p != e && static_cast<unsigned>(*p - '0') < 10) {
    v = v * 10 + static_cast<unsigned>(*p - '0');
    ++p;
  }
  if (p == b || p - significant > 19 || p == e || *p != ':') return nullptr;
  *idx = v;
  return p;
}

// Columns are uint32 in a CSR batch, and the width (largest column + 1) must fit one too.
constexpr uint64_t kMaxColumn = std::numeric_limits<uint32_t>::max() - 1;

std::string Quote(std::string_view s) {
  constexpr size_t kMaxShown = 40;  // a runaway token (binary data) must not flood the log
  std::string q(s.substr(0, kMaxShown));
  for (char& c : q) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  if (s.size() > kMaxShown) q += "...";
  return "'" + q + "'";
}

constexpr const char* kFormatFix =
    "libsvm lines read LABEL [qid:N] INDEX:VALUE ... with whole-number indices and float values";

// The one error format of every libsvm problem; `at` points into `line` at the offending token.
[[noreturn]] __attribute__((noinline, cold)) void LibsvmError(const LibsvmContext& ctx, std::string_view line,
                                                              const char* at, std::string_view what,
                                                              std::string_view fix) {
  const std::string where = ctx.file ? *ctx.file : std::string("<libsvm>");
  const int64_t k = at - line.data();
  if (ctx.offset >= 0) MLF_FAIL("{}: line {} at byte {}: {}; {}", where, ctx.line, ctx.offset + k, what, fix);
  MLF_FAIL("{}: line {}, byte {} of the line: {}; {}", where, ctx.line, k, what, fix);
}

[[noreturn]] __attribute__((noinline, cold)) void NumberError(const LibsvmContext& ctx, std::string_view line,
                                                              const char* b, const char* e, const char* what,
                                                              bool too_large) {
  if (too_large) {
    LibsvmError(ctx, line, b,
                fmt::format("{} {} is outside the float32 range", what, Quote({b, size_t(e - b)})),
                "values must fit in float32 (|x| <= 3.4e38); rescale the column");
  }
  LibsvmError(ctx, line, b, fmt::format("{} {} is not a number", what, Quote({b, size_t(e - b)})),
              kFormatFix);
}

// A feature token that is not "<digits>:": says what is wrong with it. Returns normally only for
// a well-formed "qid:N" right after the label (ignored).
__attribute__((noinline, cold)) void BadIndexToken(const LibsvmContext& ctx, std::string_view line,
                                                   const char* tb, const char* end, bool first_feature) {
  const char* te = TokenEnd(tb, end);
  const std::string_view tok(tb, static_cast<size_t>(te - tb));
  const size_t colon = tok.find(':');
  if (colon == std::string_view::npos) {
    LibsvmError(ctx, line, tb, fmt::format("{} has no ':'", Quote(tok)),
                "features are written INDEX:VALUE (e.g. 7:0.5), separated by spaces; the label is the "
                "line's only bare number");
  }
  const std::string_view index = tok.substr(0, colon);
  if (index == "qid") {
    const std::string_view q = tok.substr(colon + 1);
    uint64_t qid;
    auto r = std::from_chars(q.data(), q.data() + q.size(), qid);
    if (!first_feature) {
      LibsvmError(ctx, line, tb, fmt::format("{} is not right after the label", Quote(tok)),
                  "qid:N must come right after the label (LABEL qid:N INDEX:VALUE ...)");
    }
    if (q.empty() || r.ec != std::errc() || r.ptr != q.data() + q.size()) {
      LibsvmError(ctx, line, tb, fmt::format("query id {} is not a whole number", Quote(tok)),
                  "write qid:N with N a non-negative whole number (mlforge ignores it)");
    }
    return;
  }
  if (index.empty()) {
    LibsvmError(ctx, line, tb, fmt::format("{} has no index before ':'", Quote(tok)), kFormatFix);
  }
  uint64_t idx;
  const auto r = std::from_chars(index.data(), index.data() + index.size(), idx);
  if (r.ptr == index.data() + index.size() && (r.ec == std::errc::result_out_of_range || index.size() > 19)) {
    LibsvmError(ctx, line, tb, fmt::format("index {} is too large", Quote(index)),
                "mlforge's columns are 32-bit: indices must be below 4294967295 (and below feature_dim)");
  }
  LibsvmError(ctx, line, tb, fmt::format("index {} is not a whole number", Quote(index)),
              "indices are non-negative whole numbers written in digits (e.g. 7:0.5)");
}

[[noreturn]] __attribute__((noinline, cold)) void ColumnError(const LibsvmContext& ctx, std::string_view line,
                                                              const char* tb, uint64_t idx,
                                                              const LibsvmOptions& opt, int64_t last) {
  const uint64_t shift = opt.zero_based ? 0 : 1;
  if (idx < shift) {
    LibsvmError(ctx, line, tb, "index 0 in 1-based data",
                "libsvm indices start at 1 by default (column = index - 1); if this file's indices start "
                "at 0, read it as zero-based (ChannelSource::libsvm_zero_based, `--zero-based` on the "
                "mlforge data commands)");
  }
  const uint64_t col = idx - shift;
  if (last >= 0 && col <= static_cast<uint64_t>(last)) {
    LibsvmError(ctx, line, tb,
                fmt::format("index {} {} index {}", idx,
                            col == static_cast<uint64_t>(last) ? "repeats" : "comes after",
                            static_cast<uint64_t>(last) + shift),
                "indices within a line must be strictly increasing (sorted, no duplicates)");
  }
  if (opt.cols >= 0 && col >= static_cast<uint64_t>(opt.cols)) {
    LibsvmError(ctx, line, tb,
                fmt::format("index {} is beyond feature_dim {} ({}-based indices run {}..{})", idx, opt.cols,
                            shift, shift, opt.cols - 1 + static_cast<int64_t>(shift)),
                opt.zero_based
                    ? "set feature_dim to the data's width (largest index + 1)"
                    : "set feature_dim to the data's width (the largest index), or read the file as "
                      "zero-based if its indices start at 0");
  }
  LibsvmError(ctx, line, tb, fmt::format("index {} is too large", idx),
              "mlforge's columns are 32-bit: indices must be below 4294967295");
}

}  // namespace

bool ParseLibsvmLine(std::string_view line, const LibsvmOptions& opt, const LibsvmContext& ctx,
                     DecodedRow* out) {
  out->Clear();
  out->sparse = true;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const char* p = line.data();
  const char* end = p + line.size();
  if (const void* hash = std::memchr(p, '#', line.size())) end = static_cast<const char*>(hash);
  while (p != end && IsBlank(*p)) ++p;
  if (p == end) return false;

  // The label.
  {
    const char* te = TokenEnd(p, end);
    const std::string_view tok(p, static_cast<size_t>(te - p));
    if (tok.find(':') != std::string_view::npos) {
      LibsvmError(ctx, line, p, fmt::format("the line starts with {}, not with a label", Quote(tok)),
                  "every libsvm line starts with its label (LABEL INDEX:VALUE ...); write one, e.g. 0, for "
                  "unlabeled rows");
    }
    if (tok.find(',') != std::string_view::npos) {
      LibsvmError(ctx, line, p, fmt::format("multi-label line (labels {})", Quote(tok)),
                  "mlforge trains on one label per row; write one label per line");
    }
    float y;
    bool too_large;
    if (!ParseFloat32(p, te, &y, &too_large)) NumberError(ctx, line, p, te, "label", too_large);
    out->has_label = true;
    out->labels.push_back(y);
    p = te;
  }

  const uint64_t shift = opt.zero_based ? 0 : 1;
  // Columns must be below `limit` (and fit the batch's uint32 indices whatever the width).
  const uint64_t limit =
      opt.cols >= 0 ? std::min(static_cast<uint64_t>(opt.cols), kMaxColumn + 1) : kMaxColumn + 1;
  int64_t last = -1;  // the previous column
  bool first = true;
  for (;;) {
    while (p != end && IsBlank(*p)) ++p;
    if (p == end) break;
    const char* tb = p;
    uint64_t idx;
    const char* q = ParseIndex(tb, end, &idx);
    if (q == nullptr) {
      BadIndexToken(ctx, line, tb, end, first && last < 0);
      // A qid: skip it.
      p = TokenEnd(tb, end);
      first = false;
      continue;
    }
    first = false;
    const uint64_t col = idx - shift;
    if (idx < shift || col >= limit || static_cast<int64_t>(col) <= last)
      ColumnError(ctx, line, tb, idx, opt, last);
    last = static_cast<int64_t>(col);
    const char* vb = q + 1;
    const char* ve = TokenEnd(vb, end);
    if (vb == ve) {
      LibsvmError(ctx, line, tb, fmt::format("{} has no value after ':'", Quote({tb, size_t(ve - tb)})),
                  kFormatFix);
    }
    float v;
    bool too_large;
    if (!ParseFloat32(vb, ve, &v, &too_large)) NumberError(ctx, line, vb, ve, "value", too_large);
    out->indices.push_back(static_cast<uint32_t>(col));
    out->values.push_back(v);
    p = ve;
  }
  out->cols = opt.cols >= 0 ? opt.cols : last + 1;
  return true;
}

int64_t LibsvmMaxIndex(std::string_view line) {
  const char* p = line.data();
  const char* end = p + line.size();
  if (const void* hash = std::memchr(p, '#', line.size())) end = static_cast<const char*>(hash);
  while (p != end && IsBlank(*p)) ++p;
  p = TokenEnd(p, end);  // the label
  int64_t best = -1;
  for (;;) {
    while (p != end && IsBlank(*p)) ++p;
    if (p == end) break;
    uint64_t idx;
    // Indices the decoder would refuse as too large are skipped, so the width stays 32-bit.
    if (ParseIndex(p, end, &idx) != nullptr && idx <= kMaxColumn + 1) {
      best = std::max(best, static_cast<int64_t>(idx));
    }
    p = TokenEnd(p, end);
  }
  return best;
}

int64_t ScanLibsvmWidth(const std::vector<std::string>& files, bool zero_based, StopToken stop,
                        std::string* where, int64_t max_line_bytes) {
  const size_t max_line = static_cast<size_t>(std::max<int64_t>(max_line_bytes, 1));
  int64_t best = -1;
  const std::string* best_file = nullptr;
  int64_t best_line = 0;
  std::vector<char> block(size_t{1} << 20);
  std::string carry;  // a line that spans blocks
  for (const std::string& file : files) {
    std::unique_ptr<InputFile> in = InputFile::Open(file, stop);
    int64_t line_no = 0;
    auto scan = [&](std::string_view l) {
      ++line_no;
      const int64_t m = LibsvmMaxIndex(l);
      if (m > best) {
        best = m;
        best_file = &file;
        best_line = line_no;
      }
    };
    carry.clear();
    bool partial = false;
    for (;;) {
      stop.ThrowIfStopped();
      const size_t n = in->Read(block.data(), block.size());
      if (n == 0) break;
      const char* p = block.data();
      const char* e = p + n;
      if (partial) {
        const char* nl = static_cast<const char*>(std::memchr(p, '\n', n));
        // An overlong line is refused by the decoder; here its head is enough.
        const size_t room = max_line - std::min(carry.size(), max_line);
        carry.append(p, std::min(static_cast<size_t>((nl ? nl : e) - p), room));
        if (!nl) continue;
        scan(carry);
        carry.clear();
        partial = false;
        p = nl + 1;
      }
      while (p < e) {
        const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(e - p)));
        if (!nl) {
          carry.assign(p, e);
          partial = true;
          break;
        }
        scan(std::string_view(p, static_cast<size_t>(nl - p)));
        p = nl + 1;
      }
    }
    if (partial) scan(carry);
  }
  if (best < 0) return 0;
  if (where) *where = fmt::format("{}: line {}", *best_file, best_line);
  return zero_based ? best + 1 : best;
}

void AppendLibsvmLine(float label, const uint32_t* idx, const float* val, int64_t nnz, std::string* out) {
  AppendCsvNumber(label, out);
  char buf[16];
  for (int64_t k = 0; k < nnz; ++k) {
    out->push_back(' ');
    const auto r = std::to_chars(buf, buf + sizeof buf, static_cast<uint64_t>(idx[k]) + 1);
    out->append(buf, static_cast<size_t>(r.ptr - buf));
    out->push_back(':');
    AppendCsvNumber(val[k], out);
  }
  out->push_back('\n');
}

}  // namespace mlforge::io
