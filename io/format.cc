#include "io/format.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "core/error.h"

namespace mlforge::io {
namespace {

std::string Lower(std::string_view s) {
  std::string r(s);
  std::transform(r.begin(), r.end(), r.begin(), [](unsigned char c) { return std::tolower(c); });
  return r;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

const char* FormatName(DataFormat f) {
  switch (f) {
    case DataFormat::kCsv:
      return "csv";
    case DataFormat::kRecordIO:
      return "recordio";
    case DataFormat::kVcf:
      return "vcf";
    case DataFormat::kLibsvm:
      return "libsvm";
    case DataFormat::kAuto:
      break;
  }
  return "auto";
}

DataFormat ParseFormat(const std::string& s) {
  const std::string v = Lower(Trim(s));
  if (v == "csv") return DataFormat::kCsv;
  if (v == "recordio" || v == "protobuf" || v == "recordio-protobuf") return DataFormat::kRecordIO;
  if (v == "vcf") return DataFormat::kVcf;
  if (v == "libsvm" || v == "svmlight") return DataFormat::kLibsvm;
  if (v == "auto") return DataFormat::kAuto;
  MLF_FAIL(
      "unknown data format '{}': expected csv, recordio (also protobuf, recordio-protobuf), vcf, libsvm "
      "(also svmlight) or auto",
      s);
}

DataFormat FormatFromPath(const std::string& path) {
  // Only the file name counts: a directory called "x.csv" must not decide the format of its files.
  const size_t slash = path.find_last_of('/');
  const std::string name = Lower(slash == std::string::npos ? path : path.substr(slash + 1));
  if (EndsWith(name, ".csv")) return DataFormat::kCsv;
  for (const char* ext : {".pbr", ".rec", ".recordio", ".protobuf"}) {
    if (EndsWith(name, ext)) return DataFormat::kRecordIO;
  }
  for (const char* ext : {".vcf", ".vcf.gz", ".vcf.bgz", ".bcf"}) {
    if (EndsWith(name, ext)) return DataFormat::kVcf;
  }
  for (const char* ext : {".libsvm", ".svm", ".svmlight"}) {
    if (EndsWith(name, ext)) return DataFormat::kLibsvm;
  }
  return DataFormat::kAuto;
}

DataFormat FormatFromContentType(const std::string& content_type, int* label_size, bool* zero_based) {
  std::string_view rest = Trim(content_type);
  if (rest.empty()) return DataFormat::kAuto;
  const size_t semi = rest.find(';');
  const std::string type = Lower(Trim(rest.substr(0, semi)));
  rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);

  DataFormat f;
  if (type == "text/csv") {
    f = DataFormat::kCsv;
  } else if (type == "application/x-recordio-protobuf" || type == "application/x-recordio") {
    f = DataFormat::kRecordIO;
  } else if (type == "text/vcf" || type == "text/x-vcf" || type == "application/x-vcf") {
    f = DataFormat::kVcf;
  } else if (type == "text/libsvm" || type == "text/x-libsvm") {
    f = DataFormat::kLibsvm;
  } else {
    MLF_FAIL(
        "unsupported ContentType '{}': mlforge trains on text/csv[;label_size=N], "
        "application/x-recordio-protobuf or text/libsvm; set the channel's ContentType to one of them",
        content_type);
  }

  // Parameters: "label_size=N" is the only one that changes how data is read; others (charset=...)
  // are accepted and ignored, as SageMaker does.
  while (!rest.empty()) {
    const size_t next = rest.find(';');
    std::string_view param = Trim(rest.substr(0, next));
    rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
    if (param.empty()) continue;
    const size_t eq = param.find('=');
    const std::string key = Lower(Trim(param.substr(0, eq)));
    if (key == "zero_based") {
      MLF_EXPECTS(f == DataFormat::kLibsvm, "ContentType '{}': zero_based applies to text/libsvm only",
                  content_type);
      const std::string val = Lower(eq == std::string_view::npos ? std::string_view() : Trim(param.substr(eq + 1)));
      MLF_EXPECTS(val == "true" || val == "false",
                  "ContentType '{}': zero_based must be true (0-based column indices, scikit-learn's default) or "
                  "false (1-based, libsvm's), got '{}'",
                  content_type, val);
      if (zero_based != nullptr) *zero_based = val == "true";
      continue;
    }
    if (key != "label_size") continue;
    MLF_EXPECTS(f == DataFormat::kCsv, "ContentType '{}': label_size applies to text/csv only", content_type);
    std::string_view val = eq == std::string_view::npos ? std::string_view() : Trim(param.substr(eq + 1));
    int n = -1;
    auto [p, ec] = std::from_chars(val.data(), val.data() + val.size(), n);
    MLF_EXPECTS(ec == std::errc() && p == val.data() + val.size() && n >= 0 && n <= 1,
                "ContentType '{}': label_size must be 0 (no label column) or 1 (label in the first "
                "column), got '{}'",
                content_type, val);
    if (label_size != nullptr) *label_size = n;
  }
  return f;
}

}  // namespace mlforge::io
