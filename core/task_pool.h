// A small persistent pool of worker threads that sleep (condition variable) between jobs.
//
// Why not OpenMP here: a training step that alternates short parallel loops with serial work and
// runs beside the data reader's decode threads is hurt by OpenMP's spinning waits: on a 2-core
// machine libgomp's idle workers spun for 65% of the cycles of factorization machines' step
// (perf), starving the reader. These workers block instead, and wake in microseconds.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace mlforge {

class TaskPool {
 public:
  // `threads` participants in all (the calling thread is one of them); <= 0: hardware threads.
  explicit TaskPool(int threads);
  ~TaskPool();
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  int size() const { return size_; }
  // Calls fn(begin, end, worker) over [0, count) in chunks of `grain` items taken in turn by the
  // participants (worker in [0, size())), and returns when all are done. The first exception
  // thrown by fn is rethrown here (the remaining chunks are skipped). Not reentrant; one caller at
  // a time. count below 2 * grain runs on the caller alone.
  void ParallelFor(int64_t count, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

 private:
  void WorkerLoop(int worker);
  void RunChunks(int worker);

  int size_ = 1;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;  // bumped per job
  int running_ = 0;          // workers still in the current job
  bool stop_ = false;
  // The current job.
  const std::function<void(int64_t, int64_t, int)>* fn_ = nullptr;
  int64_t count_ = 0, grain_ = 1;
  std::atomic<int64_t> next_{0};
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
};

}  // namespace mlforge
