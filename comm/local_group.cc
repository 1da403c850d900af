// The in-process backend. Each collective is a rendezvous on shared state: every rank publishes
// its buffers and the call's shape in its slot; the last rank to arrive checks that the calls
// match, performs the whole operation on everyone's buffers (they are all blocked in the call, so
// the buffers are valid) and advances the generation counter, which releases the others.
#include "comm/local_group.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#include "core/error.h"

namespace mlforge::comm {
namespace {

enum class Op { kSumF32, kSumF64, kMaxF32, kMaxF64, kBroadcast, kBarrier, kAllGather };

const char* OpName(Op op) {
  switch (op) {
    case Op::kSumF32:
      return "AllReduceSum(float)";
    case Op::kSumF64:
      return "AllReduceSum(double)";
    case Op::kMaxF32:
      return "AllReduceMax(float)";
    case Op::kMaxF64:
      return "AllReduceMax(double)";
    case Op::kBroadcast:
      return "Broadcast";
    case Op::kBarrier:
      return "Barrier";
    case Op::kAllGather:
      return "AllGather";
  }
  return "?";
}

// What one rank passed to the collective it is in.
struct Slot {
  Op op = Op::kBarrier;
  size_t size = 0;  // element count (reductions) or bytes (broadcast, all-gather)
  int root = 0;
  const void* send = nullptr;
  void* recv = nullptr;
};

struct Group {
  Group(int n, std::chrono::milliseconds t) : world(n), timeout(t), slots(n), arrived(n, false) {}

  const int world;
  const std::chrono::milliseconds timeout;
  std::mutex mu;
  std::condition_variable cv;
  // Guarded by mu.
  uint64_t generation = 0;  // completed collectives
  int n_arrived = 0;
  std::vector<Slot> slots;
  std::vector<bool> arrived;
  std::string broken;      // non-empty once a collective failed; every later call throws it
  uint64_t broken_at = 0;  // the generation (collective index) that failed
};

// The error every rank of a broken group throws. A distinct type is not needed by callers: the
// message names the collective and the missing ranks, which is what the user has to act on.
[[noreturn]] void ThrowBroken(const std::string& msg) { throw std::runtime_error(msg); }

template <typename T, typename Combine>
void ReduceInPlace(Group& g, size_t count, Combine combine) {
  // Combine in rank order into rank 0's values, then copy out: the same bits on every rank.
  std::vector<T> acc(static_cast<const T*>(g.slots[0].recv), static_cast<const T*>(g.slots[0].recv) + count);
  for (int r = 1; r < g.world; ++r) {
    const T* v = static_cast<const T*>(g.slots[r].recv);
    for (size_t i = 0; i < count; ++i) acc[i] = combine(acc[i], v[i]);
  }
  for (int r = 0; r < g.world; ++r) {
    if (count) std::memcpy(g.slots[r].recv, acc.data(), count * sizeof(T));
  }
}

// Runs the collective on everyone's buffers. Called by the last rank to arrive, with mu held.
// Returns an error message when the ranks' calls do not match, else "".
std::string Execute(Group& g) {
  const Slot& first = g.slots[0];
  for (int r = 1; r < g.world; ++r) {
    const Slot& s = g.slots[r];
    if (s.op != first.op || s.size != first.size || s.root != first.root) {
      return fmt::format(
          "local group: mismatched collectives: rank 0 called {} (size {}, root {}) but rank {} called {} "
          "(size {}, root {}); every rank must issue the same collectives in the same order",
          OpName(first.op), first.size, first.root, r, OpName(s.op), s.size, s.root);
    }
  }
  const size_t n = first.size;
  switch (first.op) {
    case Op::kSumF32:
      ReduceInPlace<float>(g, n, [](float a, float b) { return a + b; });
      break;
    case Op::kSumF64:
      ReduceInPlace<double>(g, n, [](double a, double b) { return a + b; });
      break;
    case Op::kMaxF32:
      ReduceInPlace<float>(g, n, [](float a, float b) { return std::max(a, b); });
      break;
    case Op::kMaxF64:
      ReduceInPlace<double>(g, n, [](double a, double b) { return std::max(a, b); });
      break;
    case Op::kBroadcast:
      if (first.root < 0 || first.root >= g.world) {
        return fmt::format("local group: Broadcast root {} is not a rank of a group of {}", first.root,
                           g.world);
      }
      for (int r = 0; r < g.world; ++r) {
        if (r != first.root && n) std::memcpy(g.slots[r].recv, g.slots[first.root].recv, n);
      }
      break;
    case Op::kBarrier:
      break;
    case Op::kAllGather:
      for (int d = 0; d < g.world; ++d) {
        char* out = static_cast<char*>(g.slots[d].recv);
        // memmove: a rank may pass its own slice of recv as send (in place).
        for (int s = 0; s < g.world && n; ++s) std::memmove(out + s * n, g.slots[s].send, n);
      }
      break;
  }
  return "";
}

class LocalComm final : public Communicator {
 public:
  LocalComm(std::shared_ptr<Group> g, int rank) : g_(std::move(g)), rank_(rank) {}
  int rank() const override { return rank_; }
  int world_size() const override { return g_->world; }
  std::string backend() const override { return "local"; }
  std::chrono::milliseconds collective_timeout() const override { return g_->timeout; }

  void AllReduceSum(float* data, size_t count) override { Run({Op::kSumF32, count, 0, data, data}); }
  void AllReduceSum(double* data, size_t count) override { Run({Op::kSumF64, count, 0, data, data}); }
  void AllReduceMax(float* data, size_t count) override { Run({Op::kMaxF32, count, 0, data, data}); }
  void AllReduceMax(double* data, size_t count) override { Run({Op::kMaxF64, count, 0, data, data}); }
  void Broadcast(void* data, size_t bytes, int root) override {
    Run({Op::kBroadcast, bytes, root, data, data});
  }
  void Barrier() override { Run({Op::kBarrier, 0, 0, nullptr, nullptr}); }
  void AllGather(const void* send, size_t bytes, void* recv) override {
    Run({Op::kAllGather, bytes, 0, send, recv});
  }

 private:
  void Run(const Slot& mine) {
    Group& g = *g_;
    std::unique_lock<std::mutex> lock(g.mu);
    if (!g.broken.empty()) ThrowBroken(g.broken);
    MLF_ASSERT_MSG(!g.arrived[rank_], "rank {} entered a collective twice (shared between threads?)", rank_);
    g.slots[rank_] = mine;
    g.arrived[rank_] = true;
    if (++g.n_arrived == g.world) {
      std::string err = Execute(g);
      g.n_arrived = 0;
      std::fill(g.arrived.begin(), g.arrived.end(), false);
      if (!err.empty()) {
        g.broken = err;
        g.broken_at = g.generation;
      }
      ++g.generation;
      lock.unlock();
      g.cv.notify_all();
      if (!err.empty()) ThrowBroken(err);
      return;
    }
    const uint64_t gen = g.generation;
    const auto deadline = std::chrono::steady_clock::now() + g.timeout;
    bool done = g.cv.wait_until(lock, deadline, [&] { return g.generation != gen || !g.broken.empty(); });
    if (!done) {
      // Name the ranks still missing now, while the flags still describe this collective.
      std::string missing;
      for (int r = 0; r < g.world; ++r) {
        if (!g.arrived[r]) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
      }
      g.broken = fmt::format(
          "local group: {} timed out after {} ms on rank {}: rank(s) {} did not arrive (crashed, stuck or "
          "issued a different sequence of collectives)",
          OpName(mine.op), g.timeout.count(), rank_, missing);
      g.broken_at = gen;
      lock.unlock();
      g.cv.notify_all();
      ThrowBroken(g_->broken);
    }
    // Our collective failed (mismatch, or another rank timed out in it). A break recorded for a
    // later collective does not concern this call, which completed; the next call will throw.
    if (!g.broken.empty() && g.broken_at == gen) ThrowBroken(g.broken);
  }

  std::shared_ptr<Group> g_;
  const int rank_;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> MakeLocalGroup(int n, std::chrono::milliseconds timeout) {
  MLF_EXPECTS(n >= 1, "local group: world size must be at least 1, got {}", n);
  MLF_EXPECTS(timeout.count() > 0, "local group: timeout must be positive, got {} ms", timeout.count());
  auto g = std::make_shared<Group>(n, timeout);
  std::vector<std::unique_ptr<Communicator>> out;
  out.reserve(n);
  for (int r = 0; r < n; ++r) out.push_back(std::make_unique<LocalComm>(g, r));
  return out;
}

}  // namespace mlforge::comm
