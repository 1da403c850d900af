// Sequential byte input from a regular file or a FIFO (Pipe mode), read in large blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/stop.h"

namespace mlforge::io {

class InputFile {
 public:
  // Opens `path` for reading. UserError naming the path and errno text when it cannot.
  static std::unique_ptr<InputFile> Open(const std::string& path, StopToken stop = StopToken::Never());
  // Waits until `path` exists (Pipe mode: the FIFO may appear late), polling every 50 ms, then
  // opens it. Throws StopRequested on stop and UserError after `timeout_s` seconds (<= 0: forever).
  static std::unique_ptr<InputFile> OpenWhenReady(const std::string& path, double timeout_s,
                                                  StopToken stop = StopToken::Never());
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  // Reads up to n bytes; returns 0 only at end of file. Retries EINTR unless a stop was requested.
  size_t Read(void* buf, size_t n);
  // Reads exactly n bytes unless EOF comes first; returns the count read.
  size_t ReadFull(void* buf, size_t n);
  const std::string& path() const { return path_; }
  bool is_fifo() const { return is_fifo_; }
  // Size in bytes for regular files, -1 for FIFOs.
  int64_t size() const { return size_; }
  // The open descriptor (for mmap of regular files); owned by this object.
  int fd() const { return fd_; }

 private:
  InputFile(int fd, std::string path, bool is_fifo, int64_t size, StopToken stop);
  int fd_;
  std::string path_;
  bool is_fifo_;
  int64_t size_;
  StopToken stop_;
};

// Expands a list of files/directories into the files of a channel: a directory contributes its
// regular files (recursively), sorted by path, skipping hidden files and folders (names starting
// with '.') and SageMaker's `.amazon.manifest`. UserError if a path does not exist or the result
// is empty.
std::vector<std::string> ExpandChannelPaths(const std::vector<std::string>& paths);

}  // namespace mlforge::io
