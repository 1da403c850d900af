#include "core/stop.h"

#include <csignal>

#include "core/error.h"

namespace mlforge {
namespace {
std::atomic<bool> g_stop_flag{false};
extern "C" void OnSignal(int) { g_stop_flag.store(true, std::memory_order_relaxed); }
}  // namespace

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
