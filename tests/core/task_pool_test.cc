#include "core/task_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

namespace mlforge {
namespace {

TEST(TaskPool, EveryItemOnceAcrossManyJobs) {
  for (int threads : {1, 2, 4}) {
    TaskPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int job = 0; job < 200; ++job) {
      const int64_t n = 1 + job * 37 % 1000;
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> max_worker{0};
      pool.ParallelFor(n, 3, [&](int64_t b, int64_t e, int w) {
        ASSERT_LT(b, e);
        ASSERT_LE(e, n);
        for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
        int m = max_worker.load();
        while (w > m && !max_worker.compare_exchange_weak(m, w)) {
        }
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "item " << i << " job " << job;
      EXPECT_LT(max_worker.load(), threads);
    }
  }
}

TEST(TaskPool, RethrowsTheFirstErrorAndStaysUsable) {
  TaskPool pool(2);
  EXPECT_THROW(pool.ParallelFor(1000, 10,
                                [](int64_t b, int64_t, int) {
                                  if (b >= 500) throw std::runtime_error("boom");
                                }),
               std::runtime_error);
  std::atomic<int64_t> sum{0};
  pool.ParallelFor(100, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) sum += i;
  });
  EXPECT_EQ(sum.load(), 4950);
}

}  // namespace
}  // namespace mlforge
