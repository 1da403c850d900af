// Per-column count, sum and sum of squares of a dense float32 matrix, accumulated in float64.
// A coarse step (DESIGN.md "CPU and GPU"): PCA's mean, linear learner's scaler and `data inspect`
// build on it. column_stats.cc holds the CPU twin and the dispatch; column_stats.cu the CUDA code.
// Plain C++: no CUDA types here.
#pragma once

#include <cstdint>
#include <vector>

#include "core/batch.h"

namespace mlforge {
class Resources;
namespace detail {
struct CudaState;
}
}  // namespace mlforge

namespace mlforge::kernels {

// A dense row-major float32 matrix (rows x cols, element (i, j) at values[i * cols + j]) in HOST
// memory. Non-owning.
struct HostDenseView {
  const float* values = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

// The same layout in DEVICE memory (of the CudaState's device). Non-owning.
struct DeviceDenseView {
  const float* values = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

// A view of a dense HostBatch's values (throws UserError for a CSR batch).
HostDenseView DenseView(const HostBatch& batch);

// Sufficient statistics per column; all vectors have cols() entries. Sums are float64 because
// float32 accumulation drifts after ~1e4-1e5 rows of similar-magnitude values. NaN/Inf inputs
// propagate into the sums (callers that accept missing values filter them first).
struct ColumnStats {
  std::vector<int64_t> count;  // values seen per column (dense input: rows for every column)
  std::vector<double> sum;     // sum of x
  std::vector<double> sum_sq;  // sum of x * x

  ColumnStats() = default;
  explicit ColumnStats(int64_t cols);
  int64_t cols() const { return static_cast<int64_t>(sum.size()); }
  // Adds `other` (same cols, or either side empty with cols() == 0) into this. Summing partial
  // stats over any split of the rows gives the stats of all rows (up to float64 rounding), which
  // is what the all-reduce across ranks relies on.
  void Merge(const ColumnStats& other);
  double Mean(int64_t j) const;
  // Population variance (divides by count), clamped at 0 against cancellation.
  double Variance(int64_t j) const;
};

// CPU twin. x: host. Uses up to `threads` threads (row chunks, merged in a fixed order).
ColumnStats ColumnStatsCpu(const HostDenseView& x, int threads);

// CUDA version. x: device memory of cuda.device. Runs on cuda.stream and returns after one host
// sync. Throws UserError "built without CUDA" in a build without CUDA.
ColumnStats ColumnStatsGpu(detail::CudaState& cuda, const DeviceDenseView& x);
// Uploads a host matrix to the device (stream-ordered) and runs ColumnStatsGpu.
ColumnStats ColumnStatsGpuFromHost(detail::CudaState& cuda, const HostDenseView& x);

// Dispatch: runs on res.device() (uploading x when it is the GPU), with res.threads() on the CPU.
ColumnStats ComputeColumnStats(Resources& res, const HostDenseView& x);

}  // namespace mlforge::kernels
