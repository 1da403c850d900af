#include "io/input_file.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "core/error.h"

namespace mlforge::io {
namespace fs = std::filesystem;

namespace {

// One read(2) call moves at most this much: Linux caps a single read near 2 GiB anyway, and
// smaller calls keep stop checks responsive on slow media.
constexpr size_t kMaxReadChunk = size_t{1} << 30;
// How often a FIFO wait re-checks the stop flag.
constexpr int kPollMs = 50;

std::string ErrnoText(int err) { return std::strerror(err); }

bool IsHidden(const fs::path& p) {
  std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

}  // namespace

InputFile::InputFile(int fd, std::string path, bool is_fifo, int64_t size, StopToken stop)
    : fd_(fd), path_(std::move(path)), is_fifo_(is_fifo), size_(size), stop_(stop) {}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::unique_ptr<InputFile> InputFile::Open(const std::string& path, StopToken stop) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    MLF_FAIL("{}: cannot open: {}; check that the channel path exists and is readable", path, ErrnoText(err));
  }
  MLF_EXPECTS(!S_ISDIR(st.st_mode),
              "{}: is a directory, not a data file; pass the files in it (or "
              "the directory as a channel path, which expands it)",
              path);
  const bool fifo = S_ISFIFO(st.st_mode);
  // A FIFO is opened non-blocking: a blocking open would hang until a writer appears, and nothing
  // could interrupt it on SIGTERM (SA_RESTART aside, open(2) on a FIFO restarts). Read() then
  // waits for data with poll(), checking the stop flag between polls.
  int flags = O_RDONLY | O_CLOEXEC | (fifo ? O_NONBLOCK : 0);
  int fd;
  do {
    fd = ::open(path.c_str(), flags);
  } while (fd < 0 && errno == EINTR && !stop.stop_requested());
  if (fd < 0) {
    int err = errno;
    stop.ThrowIfStopped();
    MLF_FAIL("{}: cannot open: {}; check that the channel path exists and is readable", path, ErrnoText(err));
  }
  int64_t size = -1;
  if (!fifo) {
    struct stat fst {};
    if (::fstat(fd, &fst) == 0 && S_ISREG(fst.st_mode)) size = static_cast<int64_t>(fst.st_size);
  }
  return std::unique_ptr<InputFile>(new InputFile(fd, path, fifo, size, stop));
}

std::unique_ptr<InputFile> InputFile::OpenWhenReady(const std::string& path, double timeout_s,
                                                    StopToken stop) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  for (;;) {
    stop.ThrowIfStopped();
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) return Open(path, stop);
    int err = errno;
    // Only "not there yet" is worth waiting for; permission problems will not fix themselves.
    MLF_EXPECTS(err == ENOENT, "{}: cannot open: {}; check the Pipe-mode channel path", path, ErrnoText(err));
    double waited = std::chrono::duration<double>(Clock::now() - start).count();
    MLF_EXPECTS(timeout_s <= 0 || waited < timeout_s,
                "{}: did not appear within {:.1f} s; in Pipe mode SageMaker creates one FIFO per "
                "channel and epoch (<channel>_<epoch>): check the channel name and input mode",
                path, timeout_s);
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
  }
}

size_t InputFile::Read(void* buf, size_t n) {
  if (n == 0) return 0;
  n = std::min(n, kMaxReadChunk);
  for (;;) {
    if (is_fifo_) {
      // Linux reports neither POLLIN nor POLLHUP on a FIFO whose writer has not connected yet
      // (read() would return 0 there, a false EOF), so waiting on poll() both waits for the
      // writer and keeps the wait interruptible.
      pollfd pfd{fd_, POLLIN, 0};
      int pr = ::poll(&pfd, 1, kPollMs);
      if (pr < 0 && errno != EINTR) {
        int err = errno;
        MLF_FAIL("{}: read failed: {}", path_, ErrnoText(err));
      }
      if (pr <= 0) {
        stop_.ThrowIfStopped();
        continue;
      }
    }
    ssize_t got = ::read(fd_, buf, n);
    if (got >= 0) return static_cast<size_t>(got);
    int err = errno;
    if (err == EINTR || err == EAGAIN || err == EWOULDBLOCK) {
      stop_.ThrowIfStopped();
      continue;
    }
    MLF_FAIL("{}: read failed: {}; the file may be on a failing or disconnected volume", path_,
             ErrnoText(err));
  }
}

size_t InputFile::ReadFull(void* buf, size_t n) {
  char* p = static_cast<char*>(buf);
  size_t done = 0;
  while (done < n) {
    size_t got = Read(p + done, n - done);
    if (got == 0) break;
    done += got;
  }
  return done;
}

std::vector<std::string> ExpandChannelPaths(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const std::string& p : paths) {
    std::error_code ec;
    fs::file_status st = fs::status(p, ec);
    MLF_EXPECTS(!ec && fs::exists(st),
                "{}: no such file or directory; check the channel's data path (File mode reads "
                "/opt/ml/input/data/<channel>/)",
                p);
    if (!fs::is_directory(st)) {
      // A path named explicitly is taken as is (even a FIFO or a hidden file): the user asked.
      out.push_back(p);
      continue;
    }
    std::vector<std::string> found;
    fs::recursive_directory_iterator it(p, fs::directory_options::none, ec);
    MLF_EXPECTS(!ec, "{}: cannot list directory: {}", p, ec.message());
    for (fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
      MLF_EXPECTS(!ec, "{}: cannot list directory: {}", p, ec.message());
      const fs::path& entry = it->path();
      // Hidden entries include SageMaker's `.amazon.manifest` and editor/OS droppings; they are
      // never training data.
      if (IsHidden(entry)) {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(ec)) found.push_back(entry.string());
    }
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  std::string listed;
  for (const std::string& p : paths) listed += (listed.empty() ? "" : ", ") + p;
  MLF_EXPECTS(!out.empty(),
              "channel is empty: no data files in {}; (hidden files and .amazon.manifest are "
              "skipped) check the S3 prefix the channel was given",
              listed.empty() ? std::string("<no paths>") : listed);
  return out;
}

}  // namespace mlforge::io
