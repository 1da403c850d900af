// Small file helpers shared by writers of model files and sidecars.
#pragma once

#include <string>
#include <string_view>

namespace mlforge {

// Writes `bytes` to `<path>.tmp-<pid>` and renames it over `path`, so readers never see a
// partial file. UserError naming the path and the OS error on failure (the temp file is removed).
void WriteFileAtomic(const std::string& path, std::string_view bytes);
// The last step of such a write for files produced some other way (streamed, by a library):
// renames the finished `tmp` over `path`; on failure removes `tmp` and throws a UserError naming both.
void CommitTempFile(const std::string& tmp, const std::string& path);
// The whole file. UserError naming the path when it cannot be read.
std::string ReadWholeFile(const std::string& path);

}  // namespace mlforge
