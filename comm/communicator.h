// The one collective interface every algorithm uses for cross-rank sums (DESIGN.md
// "Distribution"). Backends: single process (here), Gloo (host, TCP), NCCL (device buffers).
// Buffers are host-resident unless a backend documents otherwise. Every call either completes on
// every rank or throws on every rank (with a deadline), so collectives never hang.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace mlforge::comm {

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
};

// The trivial backend: world size 1, every collective is the identity.
std::unique_ptr<Communicator> MakeSingleProcess();

}  // namespace mlforge::comm
