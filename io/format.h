// Data formats and how they are recognised (file extension, --from/--to, channel ContentType).
#pragma once

#include <string>

namespace mlforge::io {

enum class DataFormat { kAuto, kCsv, kRecordIO, kVcf };

const char* FormatName(DataFormat f);  // "csv", "recordio", "vcf", "auto"
// "csv" | "recordio" | "vcf" (also "protobuf", "recordio-protobuf"); UserError otherwise.
DataFormat ParseFormat(const std::string& s);
// .csv -> csv; .pbr .rec .recordio .protobuf -> recordio; .vcf .vcf.gz .bcf -> vcf; else kAuto.
DataFormat FormatFromPath(const std::string& path);
// SageMaker ContentType: "text/csv[;label_size=N]", "application/x-recordio-protobuf",
// "application/x-recordio" (case-insensitive, other parameters ignored). Sets *label_size to N
// (0 or 1; anything else is a UserError) when the parameter is present, else leaves it.
// Returns kAuto for an empty string; UserError for a content type mlforge cannot train on.
DataFormat FormatFromContentType(const std::string& content_type, int* label_size);

}  // namespace mlforge::io
