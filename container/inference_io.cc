#include "container/inference_io.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "algos/algorithms.h"
#include "algos/kmeans/model.h"
#include "algos/predictor.h"
#include "core/json_depth.h"
#include "core/error.h"
#include "io/batch_builder.h"
#include "io/csv.h"
#include "io/decoded_row.h"
#include "io/ndarray.h"
#include "io/record_codec.h"
#include "io/recordio.h"

namespace mlforge::container {
namespace {

using nlohmann::json;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

constexpr const char* kSupportedRequests =
    "text/csv, application/json, application/jsonlines, application/x-recordio-protobuf";
constexpr const char* kSupportedResponses =
    "application/json, application/jsonlines, text/csv, application/x-recordio-protobuf";
constexpr const char* kSupportedResponsesNoCsv =
    "application/json, application/jsonlines, application/x-recordio-protobuf";

// ---------------------------------------------------------------------------------------------
// Request decoding: every format produces rows into one Rows accumulator, which fixes the width
// from the first row (or the model) and reports mismatches with the row's location.

class Rows {
 public:
  Rows(const RequestType& type, const RequestContext& ctx) : type_(type), ctx_(ctx) {
    batch_.cols = ctx.expected_cols >= 0 ? ctx.expected_cols : 0;
    batch_.first_row = ctx.first_row;
  }

  // `where` is built lazily: only on errors.
  template <typename Where>
  void CheckWidth(int64_t cols, const Where& where) {
    if (!width_known_) {
      if (ctx_.expected_cols >= 0 && cols != ctx_.expected_cols) {
        throw UserError(WidthMismatch(where(), cols, ctx_.expected_cols, type_));
      }
      builder_.Reset(&batch_, cols, ctx_.first_row);
      width_known_ = true;
      first_where_ = where();
      return;
    }
    if (cols != batch_.cols) {
      if (ctx_.expected_cols >= 0) throw UserError(WidthMismatch(where(), cols, ctx_.expected_cols, type_));
      MLF_FAIL("{}: {} feature column(s), but {} has {}; every row of a request must have the same width",
               where(), cols, first_where_, batch_.cols);
    }
  }
  // Non-finite features are refused (io/batch_builder.h), naming the row `where` builds.
  template <typename Where>
  void AddDense(const float* x, const Where& where) {
    if (const int64_t j = io::FirstNonFinite(x, batch_.cols); j >= 0)
      throw UserError(io::NonFiniteMessage(where(), j, x[j]));
    builder_.AddDense(x, nullptr);
  }
  template <typename Where>
  void AddSparse(const uint32_t* idx, const float* val, int64_t nnz, const Where& where) {
    if (const int64_t j = io::FirstNonFinite(val, nnz); j >= 0)
      throw UserError(io::NonFiniteMessage(where(), idx[j], val[j]));
    builder_.AddSparse(idx, val, nnz, nullptr);
  }

  HostBatch Take() {
    if (!width_known_) {  // no rows at all
      HostBatch empty;
      empty.cols = ctx_.expected_cols >= 0 ? ctx_.expected_cols : 0;
      empty.first_row = ctx_.first_row;
      return empty;
    }
    return std::move(batch_);
  }

 private:
  RequestType type_;
  const RequestContext& ctx_;
  HostBatch batch_;
  io::BatchBuilder builder_;
  bool width_known_ = false;
  std::string first_where_;
};

void DecodeCsv(std::string_view body, const RequestType& type, const RequestContext& ctx, Rows* rows) {
  if (!body.empty() && body.back() == '\n') body.remove_suffix(1);  // one trailing newline
  if (body.empty()) return;
  io::DecodedRow row;
  int64_t line = ctx.first_line;
  size_t pos = 0;
  for (;;) {
    const size_t nl = body.find('\n', pos);
    const std::string_view text =
        body.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    io::CsvContext c;
    c.file = &ctx.source;
    c.line = line;
    io::ParseCsvLine(text, type.label_size, -1, c, &row);
    const auto where = [&] { return fmt::format("{}: line {}", ctx.source, line); };
    rows->CheckWidth(row.cols, where);
    rows->AddDense(row.values.data(), where);
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
    ++line;
  }
}

void DecodeRecordIO(std::string_view body, const RequestContext& ctx, Rows* rows) {
  io::RecordIOReader reader(body, ctx.source);
  io::DecodedRow row;
  std::string_view payload;
  while (reader.Next(&payload)) {
    io::RecordContext rc;
    rc.file = &ctx.source;
    rc.record_index = reader.record_index();
    rc.offset = reader.record_offset();
    io::DecodeRecord(payload, rc, &row);
    rows->CheckWidth(row.cols, [&] {
      return fmt::format("{}: record {} at byte {}", ctx.source, rc.record_index, rc.offset);
    });
    for (int64_t r = 0; r < row.rows; ++r) {
      const auto where = [&] {
        std::string w = fmt::format("{}: record {} at byte {}", ctx.source, rc.record_index, rc.offset);
        if (row.rows > 1) w += fmt::format(", row {} of the record", r);
        return w;
      };
      if (!row.sparse) {
        rows->AddDense(row.values.data() + r * row.cols, where);
      } else if (row.rows == 1) {
        rows->AddSparse(row.indices.data(), row.values.data(), static_cast<int64_t>(row.values.size()), where);
      } else {
        const int64_t from = row.row_ptr[static_cast<size_t>(r)],
                      to = row.row_ptr[static_cast<size_t>(r + 1)];
        rows->AddSparse(row.indices.data() + from, row.values.data() + from, to - from, where);
      }
    }
  }
}

// nlohmann's messages start with "[json.exception.parse_error.101] "; the rest is the useful part.
std::string JsonReason(const std::exception& e) {
  std::string s = e.what();
  if (!s.empty() && s[0] == '[') {
    const size_t close = s.find("] ");
    if (close != std::string::npos) s = s.substr(close + 2);
  }
  return s;
}

std::string Shown(const json& v) {
  std::string s = v.dump();
  if (s.size() > 40) s = s.substr(0, 40) + "...";
  return s;
}

const char* JsonTypeName(const json& v) {
  return v.is_null()      ? "null"
         : v.is_boolean() ? "a boolean"
         : v.is_number()  ? "a number"
         : v.is_string()  ? "a string"
         : v.is_array()   ? "an array"
                          : "an object";
}

float JsonFloat(const json& v, const std::string& where, const std::string& field, size_t i) {
  if (!v.is_number()) {
    MLF_FAIL(
        "{}: {}[{}]: {} is not a number; features must be numbers (JSON has no NaN: use CSV or recordIO "
        "for missing values)",
        where, field, i, Shown(v));
  }
  const double d = v.get<double>();
  if (std::isfinite(d) && std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max())) {
    MLF_FAIL("{}: {}[{}]: {} is outside the float32 range; values must satisfy |x| <= 3.4e38", where, field,
             i, Shown(v));
  }
  return static_cast<float>(d);
}

const json& JsonArray(const json& obj, const char* key, const std::string& where, const std::string& field) {
  auto it = obj.find(key);
  if (it == obj.end()) MLF_FAIL("{}: {} is missing", where, field);
  if (!it->is_array()) MLF_FAIL("{}: {} must be an array, found {}", where, field, JsonTypeName(*it));
  return *it;
}

constexpr const char* kInstanceForms =
    "an instance is {\"features\": [...]}, {\"data\": {\"features\": {\"values\": [...]}}} (sparse: add "
    "\"keys\" and \"shape\": [feature_dim]) or a bare array of numbers";

// One instance (see the header for the forms). `where` names it ("request.json: instance 3").
void DecodeInstance(const json& inst, const std::string& where, Rows* rows, std::vector<float>* dense,
                    std::vector<std::pair<uint32_t, float>>* pairs) {
  if (inst.is_array()) {  // a bare dense row, as the SDK's JSONSerializer writes a numpy matrix
    dense->clear();
    for (size_t i = 0; i < inst.size(); ++i) dense->push_back(JsonFloat(inst[i], where, "row", i));
    MLF_EXPECTS(!dense->empty(), "{}: the row is empty; an instance needs at least one feature", where);
    rows->CheckWidth(static_cast<int64_t>(dense->size()), [&] { return where; });
    rows->AddDense(dense->data(), [&] { return where; });
    return;
  }
  if (!inst.is_object())
    MLF_FAIL("{}: must be a JSON object or an array of numbers, found {}; {}", where, JsonTypeName(inst),
             kInstanceForms);
  const json* values = nullptr;
  const json* tensor = nullptr;
  std::string field;
  if (auto f = inst.find("features"); f != inst.end()) {
    if (!f->is_array()) {
      MLF_FAIL("{}: features must be an array of numbers, found {}; {}", where, JsonTypeName(*f),
               kInstanceForms);
    }
    values = &*f;
    field = "features";
  } else if (auto d = inst.find("data"); d != inst.end()) {
    if (!d->is_object())
      MLF_FAIL("{}: data must be an object, found {}; {}", where, JsonTypeName(*d), kInstanceForms);
    auto t = d->find("features");
    if (t == d->end()) MLF_FAIL("{}: data.features is missing; {}", where, kInstanceForms);
    if (!t->is_object()) {
      MLF_FAIL("{}: data.features must be an object with \"values\", found {}; {}", where, JsonTypeName(*t),
               kInstanceForms);
    }
    tensor = &*t;
    values = &JsonArray(*t, "values", where, "data.features.values");
    field = "data.features.values";
  } else {
    MLF_FAIL("{}: has neither \"features\" nor \"data\"; {}", where, kInstanceForms);
  }

  const bool sparse = tensor != nullptr && tensor->contains("keys");
  if (!sparse) {
    dense->clear();
    for (size_t i = 0; i < values->size(); ++i) dense->push_back(JsonFloat((*values)[i], where, field, i));
    const auto cols = static_cast<int64_t>(dense->size());
    if (tensor != nullptr && tensor->contains("shape")) {
      const json& shape = JsonArray(*tensor, "shape", where, "data.features.shape");
      const bool ok = shape.size() == 1 && shape[0].is_number_unsigned() &&
                      shape[0].get<uint64_t>() == static_cast<uint64_t>(cols);
      MLF_EXPECTS(ok,
                  "{}: data.features.shape is {} but there are {} values (without keys the values are dense)",
                  where, Shown(shape), cols);
    }
    MLF_EXPECTS(cols > 0, "{}: {} is empty; an instance needs at least one feature", where, field);
    rows->CheckWidth(cols, [&] { return where; });
    rows->AddDense(dense->data(), [&] { return where; });
    return;
  }

  const json& keys = JsonArray(*tensor, "keys", where, "data.features.keys");
  auto s = tensor->find("shape");
  MLF_EXPECTS(s != tensor->end(),
              "{}: data.features.shape is missing; a sparse instance (with keys) needs "
              "\"shape\": [feature_dim]",
              where);
  const json& shape = *s;
  MLF_EXPECTS(shape.is_array() && shape.size() == 1 && shape[0].is_number_unsigned() &&
                  shape[0].get<uint64_t>() >= 1 &&
                  shape[0].get<uint64_t>() <= std::numeric_limits<uint32_t>::max(),
              "{}: data.features.shape must be [feature_dim] with one positive integer, found {}", where,
              Shown(shape));
  const auto cols = static_cast<int64_t>(shape[0].get<uint64_t>());
  MLF_EXPECTS(keys.size() == values->size(),
              "{}: data.features has {} keys but {} values; a sparse instance needs one key per value", where,
              keys.size(), values->size());
  pairs->clear();
  for (size_t i = 0; i < keys.size(); ++i) {
    const json& k = keys[i];
    MLF_EXPECTS(k.is_number_unsigned(), "{}: data.features.keys[{}]: {} is not a non-negative integer", where,
                i, Shown(k));
    const uint64_t key = k.get<uint64_t>();
    MLF_EXPECTS(key < static_cast<uint64_t>(cols),
                "{}: data.features.keys[{}]: {} is outside the shape [{}] (keys are "
                "0-based column indices)",
                where, i, key, cols);
    pairs->emplace_back(static_cast<uint32_t>(key), JsonFloat((*values)[i], where, field, i));
  }
  std::sort(pairs->begin(), pairs->end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < pairs->size(); ++i) {
    MLF_EXPECTS((*pairs)[i].first != (*pairs)[i - 1].first,
                "{}: data.features.keys holds {} twice; each column "
                "may appear once",
                where, (*pairs)[i].first);
  }
  rows->CheckWidth(cols, [&] { return where; });
  std::vector<uint32_t> idx(pairs->size());
  std::vector<float> val(pairs->size());
  for (size_t i = 0; i < pairs->size(); ++i) {
    idx[i] = (*pairs)[i].first;
    val[i] = (*pairs)[i].second;
  }
  rows->AddSparse(idx.data(), val.data(), static_cast<int64_t>(idx.size()), [&] { return where; });
}

// How deep a request's JSON may nest. The deepest form SageMaker defines,
// {"instances": [{"data": {"features": {"values": [...]}}}]}, is 5 levels; the limit leaves room
// for ignored members ("configuration") and stops a hostile body of a hundred thousand '['
// before anything recursive (nlohmann's dump() in error messages, the DOM) sees it.
constexpr int kMaxJsonDepth = 64;

json ParseJson(std::string_view text, const std::string& where) {
  CheckJsonDepth(text, where, kMaxJsonDepth,
                 "; an instance needs at most 5 ({\"instances\": [{\"data\": {\"features\": {\"values\": [...]}}}]})");
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    MLF_FAIL("{}: not valid JSON: {}", where, JsonReason(e));
  } catch (const json::out_of_range& e) {  // a number past double's range ("1e999")
    MLF_FAIL("{}: {}; features must be finite float32 numbers (|x| <= 3.4e38)", where, JsonReason(e));
  }
}

// A parsed document or line: {"instances": [...]}, a single instance, or a bare array: of numbers
// (one row) or of instances / rows ([[1, 2], [3, 4]], what the SDK's JSONSerializer makes of a
// numpy matrix).
void DecodeJsonDocument(const json& doc, const std::string& where, int64_t* instance_counter, Rows* rows) {
  std::vector<float> dense;
  std::vector<std::pair<uint32_t, float>> pairs;
  if (doc.is_array()) {
    if (!doc.empty() && doc[0].is_number()) {
      DecodeInstance(doc, fmt::format("{}: instance {}", where, (*instance_counter)++), rows, &dense, &pairs);
      return;
    }
    for (const json& inst : doc) {
      DecodeInstance(inst, fmt::format("{}: instance {}", where, (*instance_counter)++), rows, &dense,
                     &pairs);
    }
    return;
  }
  if (doc.is_object() && doc.contains("instances")) {
    const json& list = doc["instances"];
    MLF_EXPECTS(list.is_array(), "{}: \"instances\" must be an array, found {}", where, JsonTypeName(list));
    for (const json& inst : list) {
      DecodeInstance(inst, fmt::format("{}: instance {}", where, (*instance_counter)++), rows, &dense,
                     &pairs);
    }
    return;
  }
  MLF_EXPECTS(
      doc.is_object(),
      "{}: expected a JSON object ({{\"instances\": [...]}} or one instance) or an array of rows, found {}",
      where, JsonTypeName(doc));
  DecodeInstance(doc, fmt::format("{}: instance {}", where, (*instance_counter)++), rows, &dense, &pairs);
}

void DecodeJson(std::string_view body, const RequestContext& ctx, Rows* rows) {
  if (Trim(body).empty()) return;
  const json doc = ParseJson(body, ctx.source);
  int64_t counter = 0;
  DecodeJsonDocument(doc, ctx.source, &counter, rows);
}

void DecodeJsonLines(std::string_view body, const RequestContext& ctx, Rows* rows) {
  int64_t line = ctx.first_line;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t nl = body.find('\n', pos);
    const size_t end = nl == std::string_view::npos ? body.size() : nl;
    const std::string_view text = body.substr(pos, end - pos);
    if (!Trim(text).empty()) {
      const std::string where = fmt::format("{}: line {}", ctx.source, line);
      const json doc = ParseJson(text, where);
      int64_t counter = 0;
      // Lines normally hold one instance: name the line only, unless it carries a list.
      if (doc.is_object() && doc.contains("instances")) {
        DecodeJsonDocument(doc, where, &counter, rows);
      } else {
        std::vector<float> dense;
        std::vector<std::pair<uint32_t, float>> pairs;
        DecodeInstance(doc, where, rows, &dense, &pairs);
      }
    }
    pos = end + 1;
    ++line;
  }
}

// ---------------------------------------------------------------------------------------------
// Response encoding.

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

size_t LenField(size_t payload) { return 1 + VarintSize(payload) + payload; }

void AppendJsonNumber(float v, std::string* out) {
  if (!std::isfinite(v)) {
    out->append("null");
    return;
  }
  AppendFloat(v, out);
}

}  // namespace

const char* RequestFormatName(RequestFormat f) {
  switch (f) {
    case RequestFormat::kCsv:
      return "text/csv";
    case RequestFormat::kJson:
      return "application/json";
    case RequestFormat::kJsonLines:
      return "application/jsonlines";
    case RequestFormat::kRecordIO:
      return "application/x-recordio-protobuf";
  }
  return "?";
}

const char* ResponseFormatName(ResponseFormat f) {
  switch (f) {
    case ResponseFormat::kJson:
      return "application/json";
    case ResponseFormat::kJsonLines:
      return "application/jsonlines";
    case ResponseFormat::kCsv:
      return "text/csv";
    case ResponseFormat::kRecordIO:
      return "application/x-recordio-protobuf";
  }
  return "?";
}

RequestType ParseContentType(const std::string& content_type) {
  const std::string lower = Lower(content_type);
  std::string_view rest = lower;
  const size_t semi = rest.find(';');
  const std::string_view media = Trim(rest.substr(0, semi));
  RequestType t;
  if (media == "text/csv") {
    t.format = RequestFormat::kCsv;
  } else if (media == "application/json") {
    t.format = RequestFormat::kJson;
  } else if (media == "application/jsonlines" || media == "application/x-jsonlines") {
    t.format = RequestFormat::kJsonLines;
  } else if (media == "application/x-recordio-protobuf" || media == "application/x-recordio") {
    t.format = RequestFormat::kRecordIO;
  } else {
    MLF_FAIL("unsupported content type '{}'; supported: {} (CSV may add ;label_size=0|1)", content_type,
             kSupportedRequests);
  }
  // Parameters: only CSV's label_size means something.
  size_t at = semi;
  while (at != std::string_view::npos) {
    const size_t next = rest.find(';', at + 1);
    const std::string_view param =
        Trim(rest.substr(at + 1, next == std::string_view::npos ? std::string_view::npos : next - at - 1));
    at = next;
    const size_t eq = param.find('=');
    if (eq == std::string_view::npos || Trim(param.substr(0, eq)) != "label_size") continue;
    MLF_EXPECTS(t.format == RequestFormat::kCsv, "content type '{}': label_size applies to text/csv only",
                content_type);
    const std::string_view v = Trim(param.substr(eq + 1));
    MLF_EXPECTS(
        v == "0" || v == "1",
        "content type '{}': label_size must be 0 (features only) or 1 (first column is a label), got '{}'",
        content_type, v);
    t.label_size = v == "1" ? 1 : 0;
  }
  return t;
}

void CheckRequestType(const RequestType& type, const algos::Predictor& predictor, const std::string& where) {
  MLF_EXPECTS(type.format != RequestFormat::kCsv || predictor.csv_request(),
              "{}: a {} model takes no text/csv; send application/json, application/jsonlines or "
              "application/x-recordio-protobuf",
              where, predictor.algorithm());
}

RequestType ContentTypeFromPath(const std::string& path) {
  const std::string lower = Lower(path);
  RequestType t;
  if (EndsWith(lower, ".csv")) {
    t.format = RequestFormat::kCsv;
  } else if (EndsWith(lower, ".json")) {
    t.format = RequestFormat::kJson;
  } else if (EndsWith(lower, ".jsonl") || EndsWith(lower, ".jsonlines")) {
    t.format = RequestFormat::kJsonLines;
  } else if (EndsWith(lower, ".pbr") || EndsWith(lower, ".rec") || EndsWith(lower, ".recordio") ||
             EndsWith(lower, ".protobuf")) {
    t.format = RequestFormat::kRecordIO;
  } else {
    MLF_FAIL(
        "{}: cannot tell the input format from the file name (.csv, .json, .jsonl, .pbr/.rec/.recordio/"
        ".protobuf); pass --content-type, one of: {}",
        path, kSupportedRequests);
  }
  return t;
}

ResponseFormat ParseAccept(const std::string& accept, bool csv_allowed) {
  const std::string lower = Lower(accept);
  if (Trim(lower).empty()) return ResponseFormat::kJson;
  std::string_view rest = lower;
  while (true) {
    const size_t comma = rest.find(',');
    std::string_view entry = rest.substr(0, comma);
    entry = Trim(entry.substr(0, entry.find(';')));
    if (entry == "application/json" || entry == "*/*" || entry == "application/*")
      return ResponseFormat::kJson;
    if (entry == "application/jsonlines" || entry == "application/x-jsonlines")
      return ResponseFormat::kJsonLines;
    if (entry == "text/csv" && csv_allowed) return ResponseFormat::kCsv;
    if (entry == "application/x-recordio-protobuf") return ResponseFormat::kRecordIO;
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  MLF_FAIL("unsupported accept type '{}'; supported{}: {}", accept, csv_allowed ? "" : " for this model",
           csv_allowed ? kSupportedResponses : kSupportedResponsesNoCsv);
}

std::string WidthMismatch(const std::string& where, int64_t found, int64_t expected,
                          const RequestType& type) {
  std::string msg = fmt::format("{}: {} feature column(s), but the model expects {} (its feature_dim)", where,
                                found, expected);
  if (type.format == RequestFormat::kCsv && type.label_size == 0 && found == expected + 1) {
    msg +=
        "; if the first column is a label, declare it with content type 'text/csv;label_size=1' "
        "(mlforge predict --content-type 'text/csv;label_size=1') or remove the column";
  } else {
    msg += fmt::format("; every row must have exactly {} features", expected);
  }
  return msg;
}

HostBatch DecodeRequest(const RequestType& type, std::string_view body, const RequestContext& ctx) {
  Rows rows(type, ctx);
  switch (type.format) {
    case RequestFormat::kCsv:
      DecodeCsv(body, type, ctx, &rows);
      break;
    case RequestFormat::kJson:
      DecodeJson(body, ctx, &rows);
      break;
    case RequestFormat::kJsonLines:
      DecodeJsonLines(body, ctx, &rows);
      break;
    case RequestFormat::kRecordIO:
      DecodeRecordIO(body, ctx, &rows);
      break;
  }
  return rows.Take();
}

HostBatch DecodeRequest(const std::string& content_type, std::string_view body, const RequestContext& ctx) {
  return DecodeRequest(ParseContentType(content_type), body, ctx);
}

void AppendFloat(float v, std::string* out) {
  if (std::isnan(v)) {
    out->append("nan");
    return;
  }
  if (std::isinf(v)) {
    out->append(v < 0 ? "-inf" : "inf");
    return;
  }
  if (std::signbit(v)) out->push_back('-');
  v = std::fabs(v);
  if (v == 0.0f) {
    out->append("0.0");
    return;
  }
  // Shortest round-trip digits of the float32, then laid out as Python's repr lays out a float:
  // positional for 1e-4 <= |v| < 1e16, else d.ddde+XX.
  char buf[48];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  MLF_ASSERT(r.ec == std::errc());
  const std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));
  const size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e)) {
    if (c != '.') digits.push_back(c);
  }
  int exp = 0;
  std::from_chars(sci.data() + e + 1 + (sci[e + 1] == '+' ? 1 : 0), sci.data() + sci.size(), exp);
  const int n = static_cast<int>(digits.size());
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      if (n <= exp + 1) {
        out->append(digits).append(static_cast<size_t>(exp + 1 - n), '0').append(".0");
      } else {
        out->append(digits, 0, static_cast<size_t>(exp + 1)).push_back('.');
        out->append(digits, static_cast<size_t>(exp + 1), std::string::npos);
      }
    } else {
      out->append("0.").append(static_cast<size_t>(-exp - 1), '0').append(digits);
    }
    return;
  }
  out->push_back(digits[0]);
  if (n > 1) out->append(".").append(digits, 1, std::string::npos);
  out->append(fmt::format("e{}{:02d}", exp < 0 ? '-' : '+', std::abs(exp)));
}

namespace {

// One label entry of a response Record: a Float32Tensor (f32) or Float64Tensor (f64) of `count`
// values.
struct LabelEntry {
  std::string_view key;
  const float* f32 = nullptr;
  const double* f64 = nullptr;
  size_t count = 0;
};

// Record { map<string, Value> label = 2; optional string uid = 3 }  entry { key = 1; value = 2 }
// Value { Float32Tensor float32_tensor = 2; Float64Tensor float64_tensor = 3 }
// Float32Tensor / Float64Tensor { repeated float|double values = 1 [packed] }
void AppendRecord(const LabelEntry* entries, size_t n, const std::string_view* uid, std::string* out) {
  std::string payload;
  for (size_t i = 0; i < n; ++i) {
    const LabelEntry& e = entries[i];
    const size_t width = e.f64 != nullptr ? 8 : 4;
    const size_t bytes = e.count * width;
    const size_t tensor = e.count > 0 ? LenField(bytes) : 0;
    const size_t value = LenField(tensor);
    const size_t entry = LenField(e.key.size()) + LenField(value);
    payload.push_back(0x12);
    PutVarint(entry, &payload);
    payload.push_back(0x0a);
    PutVarint(e.key.size(), &payload);
    payload.append(e.key);
    payload.push_back(0x12);
    PutVarint(value, &payload);
    payload.push_back(e.f64 != nullptr ? 0x1a : 0x12);
    PutVarint(tensor, &payload);
    if (e.count > 0) {
      payload.push_back(0x0a);
      PutVarint(bytes, &payload);
      for (size_t j = 0; j < e.count; ++j) {
        uint64_t bits = 0;
        if (e.f64 != nullptr) {
          std::memcpy(&bits, &e.f64[j], 8);
        } else {
          uint32_t b32;
          std::memcpy(&b32, &e.f32[j], 4);
          bits = b32;
        }
        for (size_t b = 0; b < width; ++b) payload.push_back(static_cast<char>((bits >> (8 * b)) & 0xff));
      }
    }
  }
  if (uid != nullptr) {
    payload.push_back(0x1a);
    PutVarint(uid->size(), &payload);
    payload.append(*uid);
  }
  io::AppendRecordIOFrame(payload, out);
}

// A CSV field: as is, or double-quoted (quotes doubled) when it holds a comma, quote or newline.
void AppendCsvField(std::string_view s, std::string* out) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) {
    out->append(s);
    return;
  }
  out->push_back('"');
  for (char c : s) {
    if (c == '"') out->push_back('"');
    out->push_back(c);
  }
  out->push_back('"');
}

}  // namespace

JoinFields ParseJoinFields(const std::string& spec) {
  JoinFields j;
  const std::string lower = Lower(spec);
  std::string_view rest = lower;
  if (Trim(rest).empty() || Trim(rest) == "none") return j;
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view item = Trim(rest.substr(0, comma));
    if (item == "ordinal") {
      j.ordinal = true;
    } else if (item == "uid") {
      j.uid = true;
    } else {
      MLF_FAIL("--join '{}': '{}' is not a join field; use none, ordinal, uid or ordinal,uid", spec, item);
    }
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return j;
}

ResponseEncoder::ResponseEncoder(ResponseFormat format, std::string list_key, JoinFields join)
    : format_(format), list_key_(std::move(list_key)), join_(join) {}

void ResponseEncoder::Append(const algos::PredictionTable& t, std::string* out) {
  MLF_ASSERT(!join_.any());
  HostBatch none;
  Append(t, none, nullptr, out);
}

void ResponseEncoder::Start(std::string* out) {
  if (started_) return;
  started_ = true;
  if (format_ == ResponseFormat::kJson) out->append("{").append(json(list_key_).dump()).append(":[");
}

void ResponseEncoder::Append(const algos::PredictionTable& t, const HostBatch& batch,
                             const std::vector<std::string>* uids, std::string* out) {
  for (const auto& c : t.columns) MLF_ASSERT(static_cast<int64_t>(c.values.size()) == t.rows * c.width);
  MLF_ASSERT(!join_.any() || t.rows == batch.rows);
  MLF_ASSERT(!join_.uid || uids == nullptr || static_cast<int64_t>(uids->size()) == t.rows);
  Start(out);
  const size_t ncols = t.columns.size();
  std::vector<LabelEntry> entries;
  for (int64_t i = 0; i < t.rows; ++i, ++rows_) {
    const int64_t ordinal = join_.ordinal ? batch.ordinal(i) : 0;
    const std::string_view uid =
        join_.uid && uids != nullptr ? std::string_view((*uids)[i]) : std::string_view();
    // JSON (sep "") and JSON lines (sep " ", Python's json.dumps layout): the join members first,
    // then one member per column.
    auto json_row = [&](const char* sep) {
      out->push_back('{');
      if (join_.ordinal) fmt::format_to(std::back_inserter(*out), "\"ordinal\":{}{},{}", sep, ordinal, sep);
      if (join_.uid) {
        out->append("\"uid\":").append(sep);
        out->append(uid.empty()
                        ? std::string("null")
                        : json(std::string(uid)).dump(-1, ' ', false, json::error_handler_t::replace));
        out->push_back(',');
        out->append(sep);
      }
      for (size_t c = 0; c < ncols; ++c) {
        const algos::OutputColumn& col = t.columns[c];
        if (c > 0) out->append(",").append(sep);
        out->push_back('"');
        out->append(col.name).append("\":").append(sep);
        const bool array = col.json_array || col.width != 1;
        if (array) out->push_back('[');
        for (int64_t j = 0; j < col.width; ++j) {
          if (j > 0) out->append(",").append(sep);
          const float v = col.values[static_cast<size_t>(i * col.width + j)];
          if (col.json_integer && std::isfinite(v)) {
            fmt::format_to(std::back_inserter(*out), "{}", static_cast<int64_t>(v));
          } else {
            AppendJsonNumber(v, out);
          }
        }
        if (array) out->push_back(']');
      }
      out->push_back('}');
    };
    switch (format_) {
      case ResponseFormat::kJson:
        if (rows_ > 0) out->push_back(',');
        json_row("");
        break;
      case ResponseFormat::kJsonLines:
        json_row(" ");
        out->push_back('\n');
        break;
      case ResponseFormat::kCsv: {
        bool first = true;
        if (join_.ordinal) {
          fmt::format_to(std::back_inserter(*out), "{}", ordinal);
          first = false;
        }
        if (join_.uid) {
          if (!first) out->push_back(',');
          AppendCsvField(uid, out);
          first = false;
        }
        for (const auto& col : t.columns) {
          for (int64_t j = 0; j < col.width; ++j) {
            if (!first) out->push_back(',');
            first = false;
            AppendFloat(col.values[static_cast<size_t>(i * col.width + j)], out);
          }
        }
        out->push_back('\n');
        break;
      }
      case ResponseFormat::kRecordIO: {
        const double ord = static_cast<double>(ordinal);
        entries.clear();
        if (join_.ordinal) entries.push_back(LabelEntry{"ordinal", nullptr, &ord, 1});
        for (const auto& col : t.columns) {
          entries.push_back(LabelEntry{col.name, col.values.data() + i * col.width, nullptr,
                                       static_cast<size_t>(col.width)});
        }
        AppendRecord(entries.data(), entries.size(), join_.uid && !uid.empty() ? &uid : nullptr, out);
        break;
      }
    }
  }
}

void ResponseEncoder::Finish(std::string* out) {
  Start(out);
  if (format_ == ResponseFormat::kJson) out->append("]}");
}

std::string EncodeResponse(ResponseFormat format, const std::string& list_key,
                           const algos::PredictionTable& t) {
  ResponseEncoder enc(format, list_key);
  std::string out;
  enc.Append(t, &out);
  enc.Finish(&out);
  return out;
}

std::string DetectAlgorithm(const io::ModelSource& source) {
  for (const auto& member : source.others()) {
    if (member.name != algos::kmeans::kMetadataFile) continue;
    try {
      const std::string text = source.ReadMember(member.name);
      if (JsonTooDeepAt(text, kMaxFileJsonDepth) != std::string_view::npos) continue;  // the loader says why
      const json meta = json::parse(text);
      if (meta.is_object() && meta.contains("algorithm") && meta["algorithm"].is_string()) {
        return meta["algorithm"].get<std::string>();
      }
    } catch (const json::exception&) {
      // fall through to the artifact itself
    }
  }
  const std::string& bytes = source.model_bytes();
  try {
    if (source.model_kind() == io::FileKind::kNDArrayList) {
      const io::NDArrayList list = io::ParseNDArrayList(bytes, source.model_source());
      // PCA: named s, v and (when the mean was subtracted) mean.
      if (list.named && io::FindByName(list, "s") && io::FindByName(list, "v")) return "pca";
      if (!list.named && !list.arrays.empty() && list.arrays[0].storage == io::NDStorage::kDense &&
          list.arrays[0].shape.size() == 2) {
        return "kmeans";
      }
    } else if (source.model_kind() == io::FileKind::kZip) {
      for (const auto& m : io::ListArchiveBuffer(bytes, source.model_source())) {
        if (m.name == "manifest.json" || m.name == "additional-params.json") return "linear-learner";
        if (m.name == "meta.json") return "factorization-machines";
      }
    }
  } catch (const UserError&) {
    // damaged: the algorithm's own loader reports it
  }
  return "";
}

std::unique_ptr<algos::Predictor> LoadPredictor(const io::ModelSource& source, const std::string& algorithm) {
  const auto& table = algos::BuiltinAlgorithms();
  std::string predicting;
  for (const auto& a : table) {
    if (a.load_predictor != nullptr) predicting += (predicting.empty() ? "" : ", ") + a.name;
  }
  std::string name = algorithm;
  const bool detected = name.empty();
  if (detected) {
    name = DetectAlgorithm(source);
    MLF_EXPECTS(!name.empty(),
                "{}: cannot tell which algorithm this model belongs to ({} is a {}); pass the algorithm "
                "(--algorithm kmeans for an NDArray list holding one (k, feature_dim) float32 array, "
                "--algorithm linear-learner for a zip with mx-mod-0000.params, --algorithm factorization-machines for a "
                "zip with params)",
                source.path(), source.model_source(), io::FileKindName(source.model_kind()));
  }
  std::string key = Lower(name);
  for (char& c : key) c = c == '_' ? '-' : c;
  if (key == "k-means") key = "kmeans";
  const algos::Algorithm& algo = algos::FindAlgorithm(table, key);  // names the closest valid one
  MLF_EXPECTS(algo.load_predictor != nullptr, "{}: mlforge has no {} predictor yet (it predicts with {})",
              source.path(), algo.name, predicting);
  return algo.load_predictor(source);
}

}  // namespace mlforge::container
