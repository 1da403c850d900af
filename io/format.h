// Data formats and how they are recognised (file extension, --from/--to, channel ContentType).
#pragma once

#include <string>

namespace mlforge::io {

enum class DataFormat { kAuto, kCsv, kRecordIO, kVcf, kLibsvm };

const char* FormatName(DataFormat f);  // "csv", "recordio", "vcf", "libsvm", "auto"
// "csv" | "recordio" (also "protobuf", "recordio-protobuf") | "vcf" | "libsvm" (also
// "svmlight") | "auto", case-insensitive; UserError otherwise.
DataFormat ParseFormat(const std::string& s);
// .csv -> csv; .pbr .rec .recordio .protobuf -> recordio; .vcf .vcf.gz .bcf -> vcf;
// .libsvm .svm .svmlight -> libsvm; else kAuto.
DataFormat FormatFromPath(const std::string& path);
// SageMaker ContentType: "text/csv[;label_size=N]", "application/x-recordio-protobuf",
// "application/x-recordio", "text/libsvm", "text/x-libsvm" (the XGBoost container's names)
// (case-insensitive, other parameters ignored). Sets *label_size to N
// (0 or 1; anything else is a UserError) when the parameter is present, else leaves it.
// "text/libsvm;zero_based=true|false" sets *zero_based (when not null): 0-based column indices, as
// scikit-learn's dump_svmlight_file writes by default (libsvm's own tools write 1-based).
// Returns kAuto for an empty string; UserError for a content type mlforge cannot train on.
DataFormat FormatFromContentType(const std::string& content_type, int* label_size, bool* zero_based = nullptr);

}  // namespace mlforge::io
