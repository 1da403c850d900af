// The inference wire formats (SPEC.md 3.4-3.6), shared by `mlforge predict` and the HTTP server:
// request bodies (Content-Type) -> HostBatch, predictions -> response bodies (Accept), and which
// algorithm a model artifact belongs to.
//
// Requests:
//   text/csv[;label_size=N]          one row per line, features only (label_size=1: the first
//                                    column is a label and is dropped); no header, no blank lines
//                                    (one trailing newline is fine)
//   application/json                 {"instances": [INSTANCE, ...]}, a lone INSTANCE, or [INSTANCE, ...]
//   application/jsonlines            one INSTANCE (or {"instances": [...]}) per line; blank lines skipped
//   application/x-recordio-protobuf  recordIO-framed aialgs.data.Record, features under "values"
// where INSTANCE is one of
//   {"features": [x0, x1, ...]}
//   {"data": {"features": {"values": [x0, x1, ...]}}}
//   {"data": {"features": {"keys": [i, ...], "shape": [dim], "values": [v, ...]}}}   (sparse)
//   [x0, x1, ...]                    a bare dense row (the SDK's JSONSerializer writes a numpy matrix
//                                    as [[...], [...]], its JSONLinesSerializer one [...] per line)
// and any other member of an instance ("configuration", ...) is ignored.
//
// Responses (SPEC.md 3.6) come from an algos::PredictionTable (ResponseEncoder below), one entry
// per input row, numbers in shortest round-trip float32 form, always with a fraction or exponent
// ("1.0", "0.25", "1e+20"), so k-means' closest_cluster reads as a float as SageMaker writes it;
// columns flagged json_integer (linear learner's predicted_label) are JSON integers. JSON has no
// NaN or infinity: such a value (NaN input features) is written as null in JSON and JSON lines,
// and as nan / inf in CSV.
//
// Every decoding problem is a UserError naming the source, the line / instance / record and the
// field, e.g. "request.json: instance 3: data.features.values[2]: \"x\" is not a number".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "algos/predictor.h"
#include "core/batch.h"
#include "io/archive.h"

namespace mlforge::container {

enum class RequestFormat { kCsv, kJson, kJsonLines, kRecordIO };
enum class ResponseFormat { kJson, kJsonLines, kCsv, kRecordIO };

// The canonical media type ("text/csv", "application/json", ...).
const char* RequestFormatName(RequestFormat f);
const char* ResponseFormatName(ResponseFormat f);

struct RequestType {
  RequestFormat format = RequestFormat::kCsv;
  int label_size = 0;  // text/csv only: 1 = first column is a label (dropped)
};

// Parses a Content-Type: the media types above (case-insensitive; parameters other than CSV's
// label_size ignored), plus "application/x-recordio" and "application/x-jsonlines". UserError
// naming the supported types otherwise.
RequestType ParseContentType(const std::string& content_type);
// From a file name: .csv; .json; .jsonl .jsonlines; .pbr .rec .recordio .protobuf. UserError
// naming the path and asking for --content-type when the extension says nothing.
RequestType ContentTypeFromPath(const std::string& path);
// UserError naming `where` (the content type or the input file) when `type` is text/csv and the
// model's endpoint takes no CSV (Predictor::csv_request(): factorization machines).
void CheckRequestType(const RequestType& type, const algos::Predictor& predictor, const std::string& where);

// Parses an Accept value. Empty, "*/*" and "application/*" mean application/json (SageMaker's
// default). A list ("text/csv, application/json;q=0.5") picks the first supported entry; text/csv
// only when csv_allowed (the model's Predictor::csv_response()). UserError naming the supported
// types when none is supported.
ResponseFormat ParseAccept(const std::string& accept, bool csv_allowed = true);

struct RequestContext {
  std::string source = "request";  // names the body in errors (a file name, "request")
  int64_t expected_cols = -1;      // the model's feature_dim; < 0: taken from the first row
  int64_t first_line = 1;          // CSV / JSON lines: number of the body's first line in `source`
  int64_t first_row = 0;           // ordinal of the body's first row (HostBatch::first_row)
};

// Decodes a whole request body into one batch (dense unless a sparse row arrives; labels are
// dropped). An empty body gives a batch with 0 rows. UserError on anything malformed, or on a row
// whose width differs from ctx.expected_cols (see WidthMismatch).
HostBatch DecodeRequest(const RequestType& type, std::string_view body, const RequestContext& ctx);
HostBatch DecodeRequest(const std::string& content_type, std::string_view body, const RequestContext& ctx);

// The UserError message for a row with `found` feature columns where the model has `expected`:
// names `where` (file and line/record), both widths, and, for CSV with one column too many, the
// label_size=1 fix.
std::string WidthMismatch(const std::string& where, int64_t found, int64_t expected, const RequestType& type);

// Join fields (mlforge predict --join): per-row identifiers written with each prediction so that
// an output can be joined back to its input. Off by default (the endpoint's exact shapes).
//   ordinal  the input row's 0-based position in the whole input (HostBatch::ordinal(i))
//   uid      the input Record's uid (recordIO only; rows of one multi-row record share it; a
//            record without uid gives null in JSON, an empty field in CSV, no uid in recordIO)
// Placement: JSON / JSON lines: "ordinal" (integer) and "uid" (string) members before the
// prediction's own; CSV: leading columns ordinal[,uid] (uid quoted as RFC 4180 when needed);
// recordIO: Record.uid and a label["ordinal"] Float64Tensor (exact up to 2^53), before the
// prediction's labels.
struct JoinFields {
  bool ordinal = false;
  bool uid = false;
  bool any() const { return ordinal || uid; }
};

// Parses "none", "ordinal", "uid", "ordinal,uid" (any order, case-insensitive). UserError otherwise.
JoinFields ParseJoinFields(const std::string& spec);

// Streams a response: Append() once per batch of predictions, Finish() once at the end. The
// concatenation of what they append is the complete body (JSON: the opening is written by the first
// Append or by Finish, the closing by Finish). Each row becomes one object / line / Record with one
// member per column of the table, in the table's order (SPEC.md 3.6):
//   application/json       {"<list_key>":[{"closest_cluster":1.0,"distance_to_cluster":3.0},...]}
//   application/jsonlines  {"closest_cluster": 1.0, "distance_to_cluster": 3.0}\n per row
//   text/csv               1.0,3.0\n per row (every column's values in order)
//   recordIO-protobuf      one Record per row, label[<column>] = Float32Tensor of its values
// A column of width > 1 (or json_array) is a JSON array; json_integer columns are JSON integers.
class ResponseEncoder {
 public:
  ResponseEncoder(ResponseFormat format, std::string list_key, JoinFields join = {});
  // Without join fields (the encoder must have been made without them).
  void Append(const algos::PredictionTable& t, std::string* out);
  // With the join fields: row i of `t` is row i of `batch` (its ordinal); uids (may be null when
  // the encoder has no uid field) holds one uid per row, "" for none.
  void Append(const algos::PredictionTable& t, const HostBatch& batch, const std::vector<std::string>* uids,
              std::string* out);
  void Finish(std::string* out);
  ResponseFormat format() const { return format_; }

 private:
  void Start(std::string* out);
  ResponseFormat format_;
  std::string list_key_;
  JoinFields join_;
  bool started_ = false;
  int64_t rows_ = 0;
};

// A whole response body in one call.
std::string EncodeResponse(ResponseFormat format, const std::string& list_key,
                           const algos::PredictionTable& t);

// Formats a float32 in shortest round-trip form that always reads as a float ("1.0", "2.5e-07").
// NaN and infinities give "nan", "inf", "-inf" (callers writing JSON handle them first).
void AppendFloat(float v, std::string* out);

// The algorithm a model artifact was trained with, from model_algo-1 itself: an NDArray list with
// one dense 2-D array is "kmeans", with arrays named s/v/mean "pca"; a zip with manifest.json is
// "linear-learner", with meta.json "factorization-machines"; an mlforge-model.json next to it
// names the algorithm too. "" when it cannot tell.
std::string DetectAlgorithm(const io::ModelSource& source);

// The predictor for a model artifact: `algorithm` (SageMaker's name, case and '_' / '-'
// insensitive) or, when empty, DetectAlgorithm(); then that algorithm's load_predictor from the
// algorithm table. UserError naming the model when the algorithm cannot be told, is unknown, has no
// predictor yet, or the artifact is not a valid model of it.
std::unique_ptr<algos::Predictor> LoadPredictor(const io::ModelSource& source,
                                                const std::string& algorithm = "");

}  // namespace mlforge::container
