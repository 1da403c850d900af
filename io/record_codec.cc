#include "io/record_codec.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "record.pb.h"

namespace mlforge::io {
namespace {

// Payload floats are copied as is: the format is little-endian, and so are the hosts we build for.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "record_codec.cc assumes a little-endian host");

// ---------------------------------------------------------------------------------------------
// Semantics shared by the fast wire decoder and the reference decoder: both fill TensorData for
// the chosen feature and label values, then FinishRecord turns them into rows.

enum ValueKind : int { kNone = 0, kF32 = 2, kF64 = 3, kI32 = 7, kBytes = 9 };  // Value field numbers

// The content of one aialgs.data.Value after protobuf's merge rules. Values are converted to
// float32 as they are read; `values` points at the output row's storage.
struct TensorData {
  int kind = kNone;
  std::vector<float>* values = nullptr;
  std::vector<uint64_t>* keys = nullptr;
  std::vector<uint64_t>* shape = nullptr;
  bool overflow = false;  // a finite float64 value overflowed float32
  double overflow_value = 0;

  void Reset(int k) {
    kind = k;
    if (values) values->clear();
    if (keys) keys->clear();
    if (shape) shape->clear();
    overflow = false;
  }
  void AddF64(double d) {
    const float f = static_cast<float>(d);
    if (std::isinf(f) && std::isfinite(d) && !overflow) {
      overflow = true;
      overflow_value = d;
    }
    values->push_back(f);
  }
};

// Upper bound on the rows of one 2-D record, so that a bogus shape cannot make us allocate
// gigabytes of row pointers for a few keys.
constexpr uint64_t kMaxRowsPerRecord = uint64_t{1} << 24;

// "features[\"values\"]" in messages, formatted only when a message is built (not per record).
struct TensorName {
  const char* map;
  std::string_view key;
};

}  // namespace
}  // namespace mlforge::io

template <>
struct fmt::formatter<mlforge::io::TensorName> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(const mlforge::io::TensorName& n, FormatContext& ctx) const {
    return fmt::format_to(ctx.out(), "{}[\"{}\"]", n.map, n.key);
  }
};

namespace mlforge::io {
namespace {

std::string Where(const RecordContext& ctx) {
  return fmt::format("{}: record {} at byte {}", ctx.file ? *ctx.file : std::string("<input>"),
                     ctx.record_index, ctx.offset);
}

std::string ShapeText(const std::vector<uint64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// Thread-local scratch so that steady-state decoding allocates nothing.
struct Scratch {
  std::vector<uint64_t> fkeys, fshape, lkeys, lshape;
  std::vector<float> tmp_values;
  std::vector<uint32_t> tmp_idx;
  std::vector<int64_t> counts;
};
Scratch& GetScratch() {
  static thread_local Scratch s;
  return s;
}

void FinishFeatures(TensorData& t, std::string_view key, const RecordContext& ctx, DecodedRow* out) {
  const TensorName name{"features", key};
  if (t.kind == kNone) {
    MLF_FAIL("{}: {} holds no tensor (none of float32_tensor, float64_tensor, int32_tensor is set)",
             Where(ctx), name);
  }
  if (t.kind == kBytes) {
    MLF_FAIL(
        "{}: {} holds Bytes; mlforge reads Float32Tensor, Float64Tensor and Int32Tensor values only "
        "(write numeric features, e.g. with the SageMaker SDK's write_numpy_to_dense_tensor)",
        Where(ctx), name);
  }
  if (t.overflow) {
    MLF_FAIL(
        "{}: {} has the float64 value {} which is outside the float32 range (+-3.4028235e38); "
        "rescale the feature",
        Where(ctx), name, t.overflow_value);
  }
  std::vector<float>& vals = *t.values;
  const std::vector<uint64_t>& keys = *t.keys;
  const std::vector<uint64_t>& shape = *t.shape;
  const uint64_t nvals = vals.size();
  if (shape.size() > 2) {
    MLF_FAIL(
        "{}: {} has shape {} with {} dimensions; mlforge reads vectors ([cols]) and matrices "
        "([rows, cols])",
        Where(ctx), name, ShapeText(shape), shape.size());
  }
  const bool sparse = !keys.empty() || (nvals == 0 && !shape.empty());
  if (!sparse) {
    out->sparse = false;
    if (shape.empty()) {
      out->rows = 1;
      out->cols = static_cast<int64_t>(nvals);
    } else if (shape.size() == 1) {
      MLF_EXPECTS(shape[0] == nvals, "{}: {} is dense with {} values but its shape is {}", Where(ctx), name,
                  nvals, ShapeText(shape));
      out->rows = 1;
      out->cols = static_cast<int64_t>(nvals);
    } else {
      uint64_t prod = 0;
      const bool ovf = __builtin_mul_overflow(shape[0], shape[1], &prod);
      MLF_EXPECTS(!ovf && prod == nvals, "{}: {} is dense with {} values but its shape is {}", Where(ctx),
                  name, nvals, ShapeText(shape));
      MLF_EXPECTS(shape[1] <= (uint64_t{1} << 32), "{}: {} has {} columns; mlforge supports at most 2^32",
                  Where(ctx), name, shape[1]);
      out->rows = static_cast<int64_t>(shape[0]);
      out->cols = static_cast<int64_t>(shape[1]);
    }
    return;
  }

  out->sparse = true;
  MLF_EXPECTS(!shape.empty(),
              "{}: {} is sparse (has keys) but has no shape; sparse tensors must give shape=[cols] (as "
              "the SageMaker SDK writes) or [rows, cols]",
              Where(ctx), name);
  MLF_EXPECTS(keys.size() == nvals, "{}: {} is sparse with {} keys but {} values; they must pair up",
              Where(ctx), name, keys.size(), nvals);
  const uint64_t rows = shape.size() == 1 ? 1 : shape[0];
  const uint64_t cols = shape.size() == 1 ? shape[0] : shape[1];
  MLF_EXPECTS(cols <= (uint64_t{1} << 32), "{}: {} has {} columns; mlforge supports at most 2^32", Where(ctx),
              name, cols);
  MLF_EXPECTS(rows <= kMaxRowsPerRecord, "{}: {} has shape {}: more than {} rows in one record", Where(ctx),
              name, ShapeText(shape), kMaxRowsPerRecord);
  const uint64_t limit = rows * cols;  // no overflow: rows <= 2^24, cols <= 2^32
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i] >= limit) {
      MLF_FAIL("{}: {} has key {} (position {}) outside its shape {}; keys are flat indices below {}",
               Where(ctx), name, keys[i], i, ShapeText(shape), limit);
    }
  }
  out->rows = static_cast<int64_t>(rows);
  out->cols = static_cast<int64_t>(cols);
  if (shape.size() == 1) {
    out->indices.resize(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) out->indices[i] = static_cast<uint32_t>(keys[i]);
    return;
  }
  // [rows, cols]: group the non-zeros by row (stable, so each row keeps the record's order).
  Scratch& s = GetScratch();
  s.counts.assign(rows + 1, 0);
  for (uint64_t k : keys) ++s.counts[k / cols + 1];
  for (uint64_t r = 0; r < rows; ++r) s.counts[r + 1] += s.counts[r];
  out->row_ptr.assign(s.counts.begin(), s.counts.end());
  s.tmp_values.resize(nvals);
  out->indices.resize(nvals);
  for (size_t i = 0; i < keys.size(); ++i) {
    const int64_t dst = s.counts[keys[i] / cols]++;
    s.tmp_values[dst] = vals[i];
    out->indices[dst] = static_cast<uint32_t>(keys[i] % cols);
  }
  vals.swap(s.tmp_values);
}

void FinishLabel(const TensorData& t, std::string_view key, const RecordContext& ctx, DecodedRow* out) {
  const TensorName name{"label", key};
  MLF_EXPECTS(t.kind != kNone,
              "{}: {} holds no tensor (none of float32_tensor, float64_tensor, int32_tensor "
              "is set)",
              Where(ctx), name);
  MLF_EXPECTS(t.kind != kBytes,
              "{}: {} holds Bytes; labels must be Float32Tensor, Float64Tensor or "
              "Int32Tensor values",
              Where(ctx), name);
  MLF_EXPECTS(!t.overflow,
              "{}: {} has the float64 value {} which is outside the float32 range "
              "(+-3.4028235e38)",
              Where(ctx), name, t.overflow_value);
  MLF_EXPECTS(t.keys->empty(), "{}: {} is sparse (has keys); labels must be dense, one value per row",
              Where(ctx), name);
  MLF_EXPECTS(static_cast<int64_t>(t.values->size()) == out->rows,
              "{}: {} has {} values; expected one per row ({} row(s) in this record)", Where(ctx), name,
              t.values->size(), out->rows);
  out->has_label = true;
}

std::string KeyList(std::vector<std::string_view> keys) {
  std::sort(keys.begin(), keys.end());
  std::string r;
  for (size_t i = 0; i < keys.size(); ++i) r += fmt::format("{}\"{}\"", i ? ", " : "", keys[i]);
  return r;
}

[[noreturn]] void FailSeveralFeatureKeys(const std::vector<std::string_view>& keys,
                                         const RecordContext& ctx) {
  MLF_FAIL(
      "{}: the features map has {} keys ({}); mlforge reads one feature tensor per record, stored "
      "under \"values\" as the SageMaker SDK writes it",
      Where(ctx), keys.size(), KeyList(keys));
}

[[noreturn]] void FailSeveralLabelKeys(const std::vector<std::string_view>& keys, const RecordContext& ctx) {
  MLF_FAIL(
      "{}: the label map has {} keys ({}) and none is \"values\"; store the label under "
      "label[\"values\"]",
      Where(ctx), keys.size(), KeyList(keys));
}

// ---------------------------------------------------------------------------------------------
// Fast path: a wire-format walker that mirrors libprotobuf 3.21's generated parser for record.proto
// (same tags per field, packed and unpacked repeated fields, unknown fields and groups skipped,
// the default recursion limit of 100, varints of at most 10 bytes, tags of at most 5, lengths of at
// most 5 bytes below 2^31 - 16).

constexpr int kRecursionLimit = 100;

struct Wire {
  const uint8_t* begin;  // start of the payload (for error offsets)
  const char* why = nullptr;
  size_t at = 0;

  bool Err(const uint8_t* p, const char* what) {
    if (why == nullptr) {
      why = what;
      at = static_cast<size_t>(p - begin);
    }
    return false;
  }

  bool Varint(const uint8_t*& p, const uint8_t* end, uint64_t* v) {
    uint64_t r = 0;
    for (int i = 0; i < 10; ++i) {
      if (p + i >= end) return Err(p, "truncated varint");
      const uint64_t b = p[i];
      r |= (b & 0x7f) << (7 * i);
      if (b < 0x80) {
        p += i + 1;
        *v = r;
        return true;
      }
    }
    return Err(p, "varint longer than 10 bytes");
  }

  bool Tag(const uint8_t*& p, const uint8_t* end, uint32_t* tag) {
    if (p < end && *p < 0x80) {  // every tag of record.proto is one byte
      *tag = *p++;
      return true;
    }
    uint32_t r = 0;
    for (int i = 0; i < 5; ++i) {
      if (p + i >= end) return Err(p, "truncated tag");
      const uint32_t b = p[i];
      r |= (b & 0x7f) << (7 * i);  // bits past 32 are dropped, as libprotobuf does
      if (b < 0x80) {
        p += i + 1;
        *tag = r;
        return true;
      }
    }
    return Err(p, "tag longer than 5 bytes");
  }

  // A length prefix; also checks that the bytes are there.
  bool Size(const uint8_t*& p, const uint8_t* end, uint32_t* n) {
    const uint8_t* start = p;
    uint32_t r = 0;
    int i = 0;
    for (;; ++i) {
      if (p + i >= end) return Err(start, "truncated length");
      const uint32_t b = p[i];
      if (i == 4) {
        if (b >= 8) return Err(start, "length of 2 GiB or more");
        r |= b << 28;
        break;
      }
      r |= (b & 0x7f) << (7 * i);
      if (b < 0x80) break;
    }
    p += i + 1;
    if (r > static_cast<uint32_t>(INT_MAX - 16)) return Err(start, "length too large");
    if (r > static_cast<uint64_t>(end - p)) return Err(start, "length runs past the end of its message");
    *n = r;
    return true;
  }

  bool Skip(uint32_t tag, const uint8_t*& p, const uint8_t* end, int depth) {
    if ((tag >> 3) == 0) return Err(p, "field number 0");
    switch (tag & 7) {
      case 0: {
        uint64_t v;
        return Varint(p, end, &v);
      }
      case 1:
        if (end - p < 8) return Err(p, "truncated fixed64");
        p += 8;
        return true;
      case 2: {
        uint32_t n;
        if (!Size(p, end, &n)) return false;
        p += n;
        return true;
      }
      case 3: {
        if (--depth < 0) return Err(p, "nesting deeper than 100");
        for (;;) {
          if (p >= end) return Err(p, "group without its end tag");
          uint32_t t;
          if (!Tag(p, end, &t)) return false;
          if (t == 0) return Err(p, "zero tag");
          if ((t & 7) == 4) {
            if ((t >> 3) == (tag >> 3)) return true;
            return Err(p, "mismatched end-group tag");
          }
          if (!Skip(t, p, end, depth)) return false;
        }
      }
      case 5:
        if (end - p < 4) return Err(p, "truncated fixed32");
        p += 4;
        return true;
      default:
        return Err(p, "invalid wire type");
    }
  }

  // The fields of a tensor message (Float32Tensor, Float64Tensor or Int32Tensor: same numbers).
  // `t` may have null vectors (validation only).
  template <int kKind>
  bool Tensor(const uint8_t* p, const uint8_t* end, TensorData* t, int depth) {
    if (--depth < 0) return Err(p, "nesting deeper than 100");
    const bool store = t->values != nullptr;
    while (p < end) {
      uint32_t tag;
      if (!Tag(p, end, &tag)) return false;
      if (tag == 0 || (tag & 7) == 4) return Err(p, "unexpected zero or end-group tag");
      if (tag == 10) {  // values, packed
        uint32_t n;
        if (!Size(p, end, &n)) return false;
        const uint8_t* q = p + n;
        if (kKind == kF32) {
          if (n % 4 != 0) return Err(p, "packed float32 values not a multiple of 4 bytes");
          if (store && n > 0) {  // an empty packed field: nothing to copy (and data() may be null)
            const size_t old = t->values->size();
            t->values->resize(old + n / 4);
            std::memcpy(t->values->data() + old, p, n);
          }
        } else if (kKind == kF64) {
          if (n % 8 != 0) return Err(p, "packed float64 values not a multiple of 8 bytes");
          if (store) {
            t->values->reserve(t->values->size() + n / 8);
            for (const uint8_t* r = p; r < q; r += 8) {
              double d;
              std::memcpy(&d, r, 8);
              t->AddF64(d);
            }
          }
        } else {
          const uint8_t* r = p;
          while (r < q) {
            uint64_t v;
            if (!Varint(r, q, &v)) return false;
            if (store)
              t->values->push_back(static_cast<float>(static_cast<int32_t>(static_cast<uint32_t>(v))));
          }
        }
        p = q;
      } else if ((kKind == kF32 && tag == 13) || (kKind == kF64 && tag == 9) || (kKind == kI32 && tag == 8)) {
        // values, unpacked
        if (kKind == kF32) {
          if (end - p < 4) return Err(p, "truncated float32");
          float f;
          std::memcpy(&f, p, 4);
          p += 4;
          if (store) t->values->push_back(f);
        } else if (kKind == kF64) {
          if (end - p < 8) return Err(p, "truncated float64");
          double d;
          std::memcpy(&d, p, 8);
          p += 8;
          if (store) t->AddF64(d);
        } else {
          uint64_t v;
          if (!Varint(p, end, &v)) return false;
          if (store) t->values->push_back(static_cast<float>(static_cast<int32_t>(static_cast<uint32_t>(v))));
        }
      } else if (tag == 18 || tag == 26) {  // keys / shape, packed
        uint32_t n;
        if (!Size(p, end, &n)) return false;
        const uint8_t* q = p + n;
        std::vector<uint64_t>* dst = tag == 18 ? t->keys : t->shape;
        while (p < q) {
          uint64_t v;
          if (!Varint(p, q, &v)) return false;
          if (store) dst->push_back(v);
        }
      } else if (tag == 16 || tag == 24) {  // keys / shape, unpacked
        uint64_t v;
        if (!Varint(p, end, &v)) return false;
        if (store) (tag == 16 ? t->keys : t->shape)->push_back(v);
      } else if (!Skip(tag, p, end, depth)) {
        return false;
      }
    }
    return true;
  }

  bool BytesMsg(const uint8_t* p, const uint8_t* end, int depth) {
    if (--depth < 0) return Err(p, "nesting deeper than 100");
    while (p < end) {
      uint32_t tag;
      if (!Tag(p, end, &tag)) return false;
      if (tag == 0 || (tag & 7) == 4) return Err(p, "unexpected zero or end-group tag");
      if (tag == 10 || tag == 18) {
        uint32_t n;
        if (!Size(p, end, &n)) return false;
        p += n;
      } else if (!Skip(tag, p, end, depth)) {
        return false;
      }
    }
    return true;
  }

  // One serialized Value; several in a row merge (oneof members of the same kind merge, a
  // different kind replaces). `depth` is the map entry's.
  bool Value(const uint8_t* p, const uint8_t* end, TensorData* t, int depth) {
    if (--depth < 0) return Err(p, "nesting deeper than 100");
    while (p < end) {
      uint32_t tag;
      if (!Tag(p, end, &tag)) return false;
      if (tag == 0 || (tag & 7) == 4) return Err(p, "unexpected zero or end-group tag");
      if (tag == 18 || tag == 26 || tag == 58 || tag == 74) {
        uint32_t n;
        if (!Size(p, end, &n)) return false;
        const int kind = static_cast<int>(tag >> 3);
        if (t->kind != kind) t->Reset(kind);
        bool ok = kind == kF32   ? Tensor<kF32>(p, p + n, t, depth)
                  : kind == kF64 ? Tensor<kF64>(p, p + n, t, depth)
                  : kind == kI32 ? Tensor<kI32>(p, p + n, t, depth)
                                 : BytesMsg(p, p + n, depth);
        if (!ok) return false;
        p += n;
      } else if (!Skip(tag, p, end, depth)) {
        return false;
      }
    }
    return true;
  }
};

// One map entry of Record.features / Record.label: its key and the serialized Value fields it
// holds (usually one).
struct Entry {
  bool is_label;
  std::string_view key;
  uint32_t first_seg, num_segs;
  int depth;  // the entry message's remaining recursion budget
};

struct FastScratch {
  std::vector<Entry> entries;
  std::vector<std::string_view> segs;
  std::vector<std::string_view> fkeys, lkeys;  // distinct keys
};

void AddDistinct(std::vector<std::string_view>* v, std::string_view k) {
  if (std::find(v->begin(), v->end(), k) == v->end()) v->push_back(k);
}

[[noreturn]] void FailParse(const Wire& w, std::string_view payload, const RecordContext& ctx) {
  MLF_FAIL(
      "{}: protobuf parse error: {} at payload byte {} of {}; the payload is not an aialgs.data.Record "
      "(SageMaker recordIO-protobuf)",
      Where(ctx), w.why ? w.why : "malformed message", w.at, payload.size());
}

bool ParseEntry(Wire& w, const uint8_t* p, const uint8_t* end, bool is_label, int depth, FastScratch& fs) {
  if (--depth < 0) return w.Err(p, "nesting deeper than 100");
  Entry e{is_label, std::string_view(), static_cast<uint32_t>(fs.segs.size()), 0, depth};
  while (p < end) {
    uint32_t tag;
    if (!w.Tag(p, end, &tag)) return false;
    if (tag == 0 || (tag & 7) == 4) return w.Err(p, "unexpected zero or end-group tag");
    if (tag == 10 || tag == 18) {
      uint32_t n;
      if (!w.Size(p, end, &n)) return false;
      std::string_view bytes(reinterpret_cast<const char*>(p), n);
      if (tag == 10) {
        e.key = bytes;
      } else {
        fs.segs.push_back(bytes);
        ++e.num_segs;
      }
      p += n;
    } else if (!w.Skip(tag, p, end, depth)) {
      return false;
    }
  }
  fs.entries.push_back(e);
  return true;
}

bool ParseValueSegs(Wire& w, const Entry& e, const FastScratch& fs, TensorData* t) {
  for (uint32_t i = 0; i < e.num_segs; ++i) {
    const auto* s = reinterpret_cast<const uint8_t*>(fs.segs[e.first_seg + i].data());
    if (!w.Value(s, s + fs.segs[e.first_seg + i].size(), t, e.depth)) return false;
  }
  return true;
}

// A length prefix that must end exactly at `end` (the message it opens fills its parent).
bool LenToEnd(const uint8_t*& p, const uint8_t* end) {
  uint32_t n = 0;
  for (int i = 0; i < 5; ++i) {
    if (p >= end) return false;
    const uint32_t b = *p++;
    if (i == 4 && b >= 8) return false;  // 2 GiB or more: the general walk reports it
    n |= (b & 0x7f) << (7 * i);
    if (b < 0x80) return n == static_cast<uint64_t>(end - p);
  }
  return false;
}

// One map entry {key "values", value {float32_tensor {values: packed}}} and nothing else, opened
// by `tag`; on success `vals`/`bytes` point at the packed floats and p is past the entry.
bool CanonicalEntry(uint8_t tag, const uint8_t*& p, const uint8_t* end, const uint8_t** vals,
                    uint32_t* bytes) {
  if (p >= end || *p != tag) return false;
  ++p;
  // The entry's own length may be followed by a second entry, so it is read as a plain length.
  uint32_t n = 0;
  for (int i = 0;; ++i) {
    if (i == 5 || p >= end) return false;
    const uint32_t b = *p++;
    if (i == 4 && b >= 8) return false;
    n |= (b & 0x7f) << (7 * i);
    if (b < 0x80) break;
  }
  if (n > static_cast<uint64_t>(end - p)) return false;
  const uint8_t* entry_end = p + n;
  static constexpr uint8_t kKey[8] = {0x0a, 0x06, 'v', 'a', 'l', 'u', 'e', 's'};
  if (entry_end - p < 8 || std::memcmp(p, kKey, 8) != 0) return false;
  p += 8;
  // value (entry field 2) -> float32_tensor (Value field 2) -> values (packed, tensor field 1)
  for (int level = 0; level < 3; ++level) {
    if (p >= entry_end || *p != (level < 2 ? 0x12 : 0x0a)) return false;
    ++p;
    if (!LenToEnd(p, entry_end)) return false;
  }
  *vals = p;
  *bytes = static_cast<uint32_t>(entry_end - p);
  p = entry_end;
  return true;
}

bool DecodeCanonicalDense(std::string_view payload, DecodedRow* out) {
  SdkDenseRecord r;
  if (!MatchSdkDense(payload, &r)) return false;
  out->sparse = false;
  out->rows = 1;
  out->cols = r.cols;
  out->values.resize(static_cast<size_t>(r.cols));
  std::memcpy(out->values.data(), r.features, static_cast<size_t>(r.cols) * 4);
  if (r.label) {
    out->has_label = true;
    out->labels.resize(1);
    std::memcpy(out->labels.data(), r.label, 4);
  }
  return true;
}

}  // namespace

bool MatchSdkDense(std::string_view payload, SdkDenseRecord* out) {
  const auto* p = reinterpret_cast<const uint8_t*>(payload.data());
  const uint8_t* end = p + payload.size();
  const uint8_t* fv;
  uint32_t fbytes;
  if (!CanonicalEntry(0x0a, p, end, &fv, &fbytes) || fbytes == 0 || fbytes % 4 != 0) return false;
  const uint8_t* lv = nullptr;
  uint32_t lbytes = 0;
  if (p != end && (!CanonicalEntry(0x12, p, end, &lv, &lbytes) || lbytes != 4 || p != end)) return false;
  out->features = reinterpret_cast<const char*>(fv);
  out->cols = fbytes / 4;
  out->label = reinterpret_cast<const char*>(lv);
  return true;
}

void DecodeRecord(std::string_view payload, const RecordContext& ctx, DecodedRow* out) {
  out->Clear();
  if (DecodeCanonicalDense(payload, out)) return;
  static thread_local FastScratch fs;
  fs.entries.clear();
  fs.segs.clear();
  fs.fkeys.clear();
  fs.lkeys.clear();

  const auto* p = reinterpret_cast<const uint8_t*>(payload.data());
  const uint8_t* end = p + payload.size();
  Wire w{p};
  // Pass 1: the Record's own fields; map entries are indexed, their Values parsed in pass 2.
  bool has_uid = false;
  std::string_view uid;
  while (p < end) {
    uint32_t tag;
    if (!w.Tag(p, end, &tag)) FailParse(w, payload, ctx);
    if (tag == 0 || (tag & 7) == 4) {
      w.Err(p, "unexpected zero or end-group tag");
      FailParse(w, payload, ctx);
    }
    if (tag == 10 || tag == 18 || tag == 26 || tag == 34 || tag == 42) {
      uint32_t n;
      if (!w.Size(p, end, &n)) FailParse(w, payload, ctx);
      if (tag == 10 || tag == 18) {
        if (!ParseEntry(w, p, p + n, tag == 18, kRecursionLimit, fs)) FailParse(w, payload, ctx);
      } else if (tag == 26) {
        has_uid = true;
        uid = std::string_view(reinterpret_cast<const char*>(p), n);
      }
      p += n;
    } else if (!w.Skip(tag, p, end, kRecursionLimit)) {
      FailParse(w, payload, ctx);
    }
  }

  // A map keeps the last entry of each key.
  int64_t feat = -1, label = -1, label_values = -1;
  for (size_t i = 0; i < fs.entries.size(); ++i) {
    const Entry& e = fs.entries[i];
    if (e.is_label) {
      AddDistinct(&fs.lkeys, e.key);
      label = static_cast<int64_t>(i);
      if (e.key == "values") label_values = static_cast<int64_t>(i);
    } else {
      AddDistinct(&fs.fkeys, e.key);
      feat = static_cast<int64_t>(i);
    }
  }
  if (label_values >= 0) label = label_values;

  // Pass 2: every Value must parse (libprotobuf parses them all); the chosen ones are decoded.
  Scratch& s = GetScratch();
  TensorData ft{kNone, &out->values, &s.fkeys, &s.fshape};
  TensorData lt{kNone, &out->labels, &s.lkeys, &s.lshape};
  s.fkeys.clear();
  s.fshape.clear();
  s.lkeys.clear();
  s.lshape.clear();
  for (size_t i = 0; i < fs.entries.size(); ++i) {
    TensorData scratch_only;  // validation only
    TensorData* t = static_cast<int64_t>(i) == feat    ? &ft
                    : static_cast<int64_t>(i) == label ? &lt
                                                       : &scratch_only;
    if (!ParseValueSegs(w, fs.entries[i], fs, t)) FailParse(w, payload, ctx);
  }

  if (has_uid) out->uid.assign(uid.data(), uid.size());
  if (fs.fkeys.size() > 1) FailSeveralFeatureKeys(fs.fkeys, ctx);
  if (label_values < 0 && fs.lkeys.size() > 1) FailSeveralLabelKeys(fs.lkeys, ctx);
  if (feat >= 0) {
    FinishFeatures(ft, fs.entries[feat].key, ctx, out);
  } else {
    out->rows = 1;  // empty features map: one row of width 0
    out->cols = 0;
  }
  if (label >= 0) FinishLabel(lt, fs.entries[label].key, ctx, out);
}

// ---------------------------------------------------------------------------------------------
// Reference path through the generated classes.

namespace {

template <typename T>
void FillCommon(const T& tensor, TensorData* t) {
  t->keys->assign(tensor.keys().begin(), tensor.keys().end());
  t->shape->assign(tensor.shape().begin(), tensor.shape().end());
}

void FromValue(const aialgs::data::Value& v, TensorData* t) {
  switch (v.value_case()) {
    case aialgs::data::Value::kFloat32Tensor:
      t->Reset(kF32);
      t->values->assign(v.float32_tensor().values().begin(), v.float32_tensor().values().end());
      FillCommon(v.float32_tensor(), t);
      break;
    case aialgs::data::Value::kFloat64Tensor:
      t->Reset(kF64);
      for (double d : v.float64_tensor().values()) t->AddF64(d);
      FillCommon(v.float64_tensor(), t);
      break;
    case aialgs::data::Value::kInt32Tensor:
      t->Reset(kI32);
      for (int32_t i : v.int32_tensor().values()) t->values->push_back(static_cast<float>(i));
      FillCommon(v.int32_tensor(), t);
      break;
    case aialgs::data::Value::kBytes:
      t->Reset(kBytes);
      break;
    case aialgs::data::Value::VALUE_NOT_SET:
      t->Reset(kNone);
      break;
  }
}

}  // namespace

void DecodeRecordReference(std::string_view payload, const RecordContext& ctx, DecodedRow* out) {
  out->Clear();
  aialgs::data::Record rec;
  if (!rec.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    MLF_FAIL(
        "{}: protobuf parse error: libprotobuf rejected the {}-byte payload; the payload is not an "
        "aialgs.data.Record (SageMaker recordIO-protobuf)",
        Where(ctx), payload.size());
  }
  std::vector<uint64_t> fkeys, fshape, lkeys, lshape;
  TensorData ft{kNone, &out->values, &fkeys, &fshape};
  TensorData lt{kNone, &out->labels, &lkeys, &lshape};
  if (rec.has_uid()) out->uid = rec.uid();
  if (rec.features_size() > 1) {
    std::vector<std::string_view> keys;
    for (const auto& kv : rec.features()) keys.push_back(kv.first);
    FailSeveralFeatureKeys(keys, ctx);
  }
  auto lit = rec.label().find("values");
  if (lit == rec.label().end() && rec.label_size() > 1) {
    std::vector<std::string_view> keys;
    for (const auto& kv : rec.label()) keys.push_back(kv.first);
    FailSeveralLabelKeys(keys, ctx);
  }
  if (lit == rec.label().end() && rec.label_size() == 1) lit = rec.label().begin();
  if (rec.features_size() == 1) {
    const auto& kv = *rec.features().begin();
    FromValue(kv.second, &ft);
    FinishFeatures(ft, kv.first, ctx, out);
  } else {
    out->rows = 1;
    out->cols = 0;
  }
  if (lit != rec.label().end()) {
    FromValue(lit->second, &lt);
    FinishLabel(lt, lit->first, ctx, out);
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding, byte for byte what the SageMaker SDK's serializer writes (fields in number order,
// packed repeated fields, the oneof member written even when empty).

namespace {

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Length-delimited field header.
void PutLen(uint8_t tag, uint64_t len, std::string* out) {
  out->push_back(static_cast<char>(tag));
  PutVarint(len, out);
}

size_t LenFieldSize(uint64_t len) { return 1 + VarintSize(len) + len; }

// Writes map entry {key "values", Value{float32_tensor{...}}} as Record field `field_tag`.
// tensor_body_size: bytes of the Float32Tensor message; write_body appends them.
template <typename F>
void PutValuesEntry(uint8_t field_tag, size_t tensor_body_size, std::string* out, F write_body) {
  const size_t value_size = LenFieldSize(tensor_body_size);  // Value{ float32_tensor = 2 }
  const size_t entry_size = LenFieldSize(6) + LenFieldSize(value_size);
  PutLen(field_tag, entry_size, out);
  PutLen(0x0a, 6, out);
  out->append("values", 6);
  PutLen(0x12, value_size, out);
  PutLen(0x12, tensor_body_size, out);
  write_body();
}

void PutFloats(const float* x, int64_t n, std::string* out) {
  const size_t old = out->size();
  out->resize(old + static_cast<size_t>(n) * 4);
  std::memcpy(&(*out)[old], x, static_cast<size_t>(n) * 4);  // little-endian hosts only (x86, arm64)
}

void PutLabel(const float* label, std::string* out) {
  if (label == nullptr) return;
  PutValuesEntry(0x12, LenFieldSize(4), out, [&] {
    PutLen(0x0a, 4, out);
    PutFloats(label, 1, out);
  });
}

}  // namespace

void EncodeDenseRecord(const float* x, int64_t cols, const float* label, std::string* out) {
  MLF_ASSERT(cols >= 0);
  const size_t body = cols > 0 ? LenFieldSize(static_cast<uint64_t>(cols) * 4) : 0;
  PutValuesEntry(0x0a, body, out, [&] {
    if (cols > 0) {
      PutLen(0x0a, static_cast<uint64_t>(cols) * 4, out);
      PutFloats(x, cols, out);
    }
  });
  PutLabel(label, out);
}

void EncodeSparseRecord(const uint32_t* idx, const float* val, int64_t nnz, int64_t cols, const float* label,
                        std::string* out) {
  MLF_ASSERT(nnz >= 0 && cols >= 0);
  size_t keys_bytes = 0;
  for (int64_t i = 0; i < nnz; ++i) keys_bytes += VarintSize(idx[i]);
  size_t body = LenFieldSize(VarintSize(static_cast<uint64_t>(cols)));  // shape = [cols]
  if (nnz > 0) body += LenFieldSize(static_cast<uint64_t>(nnz) * 4) + LenFieldSize(keys_bytes);
  PutValuesEntry(0x0a, body, out, [&] {
    if (nnz > 0) {
      PutLen(0x0a, static_cast<uint64_t>(nnz) * 4, out);
      PutFloats(val, nnz, out);
      PutLen(0x12, keys_bytes, out);
      for (int64_t i = 0; i < nnz; ++i) PutVarint(idx[i], out);
    }
    PutLen(0x1a, VarintSize(static_cast<uint64_t>(cols)), out);
    PutVarint(static_cast<uint64_t>(cols), out);
  });
  PutLabel(label, out);
}

}  // namespace mlforge::io
