#include "core/spill_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace mlforge {

SpillFile::SpillFile(const std::string& dir, const std::string& what, const std::string& hint)
    : dir_(dir.empty() ? std::filesystem::temp_directory_path().string() : dir), what_(what), hint_(hint) {
  std::string templ = dir_ + "/mlforge-spill-XXXXXX";
  fd_ = ::mkstemp(templ.data());
  MLF_EXPECTS(fd_ >= 0, "cannot create a temporary file for {} in '{}': {}; {}", what_, dir_, std::strerror(errno),
              hint_);
  ::unlink(templ.c_str());  // gone with the process, whatever happens
}

SpillFile::~SpillFile() {
  if (fd_ >= 0) ::close(fd_);
}

int64_t SpillFile::Append(const void* data, int64_t n) {
  const int64_t at = size_;
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t k = ::write(fd_, p, static_cast<size_t>(n));
    if (k < 0 && errno == EINTR) continue;
    MLF_EXPECTS(k > 0, "cannot write the temporary file for {} in '{}': {}; free disk space or {}", what_, dir_,
                std::strerror(errno), hint_);
    p += k;
    n -= k;
    size_ += k;
  }
  return at;
}

void SpillFile::Read(void* data, int64_t n, int64_t offset) const {
  auto* p = static_cast<uint8_t*>(data);
  while (n > 0) {
    const ssize_t k = ::pread(fd_, p, static_cast<size_t>(n), offset);
    if (k < 0 && errno == EINTR) continue;
    MLF_ASSERT_MSG(k > 0, "short read from the temporary file for {}: {}", what_, std::strerror(errno));
    p += k;
    n -= k;
    offset += k;
  }
}

}  // namespace mlforge
