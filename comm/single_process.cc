// World size 1: every collective is the identity (all-gather copies the one contribution).
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "comm/communicator.h"

namespace mlforge::comm {
namespace {

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend() const override { return "single-process"; }
  void AllReduceSum(float*, size_t) override {}
  void AllReduceSum(double*, size_t) override {}
  void AllReduceMax(float*, size_t) override {}
  void AllReduceMax(double*, size_t) override {}
  void Broadcast(void*, size_t, int) override {}
  void Barrier() override {}
  void AllGather(const void* send, size_t bytes, void* recv) override {
    if (bytes) std::memmove(recv, send, bytes);
  }
};

}  // namespace

std::unique_ptr<Communicator> MakeSingleProcess() { return std::make_unique<SingleProcess>(); }

namespace {
std::atomic<StuckCollectiveHandler> g_stuck_handler{nullptr};
}  // namespace

void SetStuckCollectiveHandler(StuckCollectiveHandler handler) { g_stuck_handler.store(handler); }

void OnStuckCollective(FailureKind kind, const std::string& reason) {
  if (StuckCollectiveHandler h = g_stuck_handler.load()) h(kind, reason.c_str());
  spdlog::error("{}", reason);
  spdlog::shutdown();
  std::_Exit(1);
}

}  // namespace mlforge::comm
