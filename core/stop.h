// A cooperative stop flag set by SIGTERM/SIGINT and polled by long loops (training, FIFO waits).
#pragma once

#include <atomic>

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

}  // namespace mlforge
