#include "core/task_pool.h"

#include <algorithm>

namespace mlforge {

TaskPool::TaskPool(int threads) {
  size_ = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int w = 1; w < size_; ++w) threads_.emplace_back([this, w] { WorkerLoop(w); });
}

TaskPool::~TaskPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void TaskPool::RunChunks(int worker) {
  for (;;) {
    const int64_t begin = next_.fetch_add(grain_);
    if (begin >= count_ || failed_.load(std::memory_order_relaxed)) return;
    try {
      (*fn_)(begin, std::min(count_, begin + grain_), worker);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
      failed_.store(true);
      return;
    }
  }
}

void TaskPool::WorkerLoop(int worker) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    RunChunks(worker);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--running_ == 0) done_.notify_one();
    }
  }
}

void TaskPool::ParallelFor(int64_t count, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (count <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (size_ == 1 || count < 2 * grain) {
    fn(0, count, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    count_ = count;
    grain_ = grain;
    next_.store(0);
    failed_.store(false);
    error_ = nullptr;
    running_ = size_ - 1;
    ++generation_;
  }
  wake_.notify_all();
  RunChunks(0);
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [&] { return running_ == 0; });
  fn_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

}  // namespace mlforge
