// The one collective interface every algorithm uses for cross-rank sums (DESIGN.md
// "Distribution"). Backends: single process (here), Gloo (host, TCP), NCCL (device buffers).
// Buffers are host-resident unless a backend documents otherwise. Every call either completes on
// every rank or throws on every rank (with a deadline), so collectives never hang.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace mlforge::comm {

// How a rank's run ended when it was not a success; carried to the other ranks so that each one
// fails the same way (its exit status and failure-file prefix follow the first failure).
enum class FailureKind { kClient, kAlgorithm, kStopped };

// Thrown on every other rank when one rank failed, stopped, died or missed a collective's
// deadline. The message names that rank, its host, the phase and what happened to it.
class PeerFailure : public std::runtime_error {
 public:
  PeerFailure(FailureKind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  FailureKind kind() const { return kind_; }

 private:
  FailureKind kind_;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;

  // In-place element-wise reductions over `count` elements of `data` (host memory).
  virtual void AllReduceSum(float* data, size_t count) = 0;
  virtual void AllReduceSum(double* data, size_t count) = 0;
  virtual void AllReduceMax(float* data, size_t count) = 0;
  virtual void AllReduceMax(double* data, size_t count) = 0;
  // Copies `bytes` bytes from `root`'s `data` to every rank's `data`.
  virtual void Broadcast(void* data, size_t bytes, int root) = 0;
  virtual void Barrier() = 0;
  // Every rank contributes `bytes` bytes; `recv` receives world_size * bytes, rank-major.
  virtual void AllGather(const void* send, size_t bytes, void* recv) = 0;

  // The deadline of each collective (GroupSpec::collective_timeout): for collectives that other
  // layers run on the same group, e.g. a device communicator's. 30 min where the backend sets none.
  virtual std::chrono::milliseconds collective_timeout() const { return std::chrono::minutes(30); }

  // What the group is doing ("k-means epoch 3"), named in every failure message. Cheap.
  virtual void SetPhase(const std::string& phase) { (void)phase; }
  // This rank failed with `reason`: publish it for the other ranks (best effort, bounded in
  // time) and leave the group, so their collectives fail at once instead of at the deadline.
  // Not called for a PeerFailure (the failure is another rank's).
  virtual void ReportFailure(FailureKind kind, const std::string& reason) {
    (void)kind;
    (void)reason;
  }
};

// The trivial backend: world size 1, every collective is the identity.
std::unique_ptr<Communicator> MakeSingleProcess();

// A transport can leave a rank waiting inside a collective although a peer has failed (seen with
// Debian's Gloo: a survivor waited on a send to a SIGKILLed peer until its 600 s deadline while
// the other survivor had long failed). A backend's watchdog then diagnoses the failure from the
// rendezvous store and calls this handler from its own thread, the collective still blocked; the
// handler must end the process (the training runner writes the failure file and exits with the
// failure's status, as for a PeerFailure). Default: log the reason and _exit(1).
using StuckCollectiveHandler = void (*)(FailureKind kind, const char* reason);
void SetStuckCollectiveHandler(StuckCollectiveHandler handler);
[[noreturn]] void OnStuckCollective(FailureKind kind, const std::string& reason);

}  // namespace mlforge::comm
