#include "core/stop.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstring>

#include "core/error.h"

namespace mlforge {
namespace {
std::atomic<bool> g_stop_flag{false};
extern "C" void OnSignal(int) { g_stop_flag.store(true, std::memory_order_relaxed); }

// Read by the SIGBUS handler, which may only use async-signal-safe calls: plain buffers.
char g_failure_file[4096] = {};
std::atomic<int> g_sigbus_exit{2};
constexpr char kSigbusReason[] =
    "ClientError: an input file shrank while mlforge was reading it (SIGBUS on a memory-mapped "
    "recordIO file: it was truncated or rewritten in place); training data must not change during "
    "a run: copy it elsewhere first, or wait until whatever writes it has finished\n";

// Set by the first thread that enters the SIGBUS handler. Several threads can fault on the same
// shrunk mapping at once (the reader walking frame headers, decode workers reading payloads): had
// each written the failure file, a late one's O_TRUNC could empty it just before the first one's
// _exit ended the process, leaving an empty failure file (a failure seen once in a full ctest run).
std::atomic<bool> g_sigbus_taken{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the SIGBUS handler needs a lock-free flag");

extern "C" void OnSigbus(int) {
  if (g_sigbus_taken.exchange(true)) {
    // Another thread is reporting and will _exit the whole process: wait for it.
    for (;;) ::pause();
  }
  ssize_t ignored = ::write(2, kSigbusReason, sizeof(kSigbusReason) - 1);
  if (g_failure_file[0] != '\0') {
    const int fd = ::open(g_failure_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ignored = ::write(fd, kSigbusReason, sizeof(kSigbusReason) - 1);
      ::close(fd);
    }
  }
  (void)ignored;
  ::_exit(g_sigbus_exit.load());
}
}  // namespace

void InstallSigbusHandler(int exit_code) {
  g_sigbus_exit = exit_code;
  struct sigaction sa = {};
  sa.sa_handler = OnSigbus;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGBUS, &sa, nullptr);
}

void SetSignalFailureFile(const std::string& failure_file) {
  const size_t n = std::min(failure_file.size(), sizeof(g_failure_file) - 1);
  // A path too long for the buffer is dropped rather than cut (a cut path names another file).
  const size_t keep = failure_file.size() < sizeof(g_failure_file) ? n : 0;
  std::memcpy(g_failure_file, failure_file.data(), keep);
  g_failure_file[keep] = '\0';
}

void StopToken::ThrowIfStopped() const {
  if (stop_requested()) throw StopRequested();
}

StopToken StopToken::FromSignals() { return StopToken(&g_stop_flag); }

void InstallSignalHandlers() {
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: blocking reads return EINTR so loops notice the stop
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

}  // namespace mlforge
