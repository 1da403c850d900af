// An unlinked temporary file for data that outgrew its memory budget (the VCF transpose tiles,
// genotype PCA's 2-bit store): created in `dir` (the system's temp dir when empty) and removed from
// the directory at once, so it vanishes with the process whatever happens; appended to, read back at
// any offset.
#pragma once

#include <cstdint>
#include <string>

namespace mlforge {

class SpillFile {
 public:
  // `what` names the data in messages ("the VCF dosage tiles"); `hint` is the fix the user can
  // apply ("pass --temp-dir or raise --memory-mb"). UserError when the file cannot be created.
  SpillFile(const std::string& dir, const std::string& what, const std::string& hint);
  ~SpillFile();
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;

  const std::string& dir() const { return dir_; }
  int64_t size() const { return size_; }
  // Appends n bytes; returns the offset they start at. UserError (disk full, ...) naming the dir.
  int64_t Append(const void* p, int64_t n);
  // Reads n bytes at offset (which Append wrote): InternalError on a short read.
  void Read(void* p, int64_t n, int64_t offset) const;

 private:
  std::string dir_, what_, hint_;
  int fd_ = -1;
  int64_t size_ = 0;
};

}  // namespace mlforge
