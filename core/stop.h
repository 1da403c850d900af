// A cooperative stop flag set by SIGTERM/SIGINT and polled by long loops (training, FIFO waits).
#pragma once

#include <atomic>
#include <string>

namespace mlforge {

class StopToken {
 public:
  bool stop_requested() const { return flag_ != nullptr && flag_->load(std::memory_order_relaxed); }
  // Throws StopRequested when a stop was requested.
  void ThrowIfStopped() const;
  // A token that never fires (tests, library use).
  static StopToken Never() { return StopToken(nullptr); }
  // The process-wide token fed by InstallSignalHandlers(). The flag must be a plain atomic
  // because a signal handler can touch nothing else; this is the one process-wide object.
  static StopToken FromSignals();
  explicit StopToken(const std::atomic<bool>* flag) : flag_(flag) {}

 private:
  const std::atomic<bool>* flag_;
};

// Routes SIGTERM and SIGINT to StopToken::FromSignals(). Idempotent.
void InstallSignalHandlers();

// The channel reader maps recordIO files; if one shrinks while it is mapped (truncated or
// rewritten in place), touching the lost pages raises SIGBUS. This handler turns that into a
// failure like any other input error: a one-line reason on stderr and in `failure_file` (when set
// with SetSignalFailureFile), then _exit(exit_code). Idempotent; the CLI installs it at start.
void InstallSigbusHandler(int exit_code);
void SetSignalFailureFile(const std::string& failure_file);  // "": none

}  // namespace mlforge
