// CPU twin of the column statistics and the device dispatch (the CUDA code is column_stats.cu).
#include "kernels/column_stats.h"

#include <algorithm>

#include "core/build_config.h"
#include "core/error.h"
#include "core/resources.h"

namespace mlforge::kernels {

HostDenseView DenseView(const HostBatch& batch) {
  MLF_EXPECTS(batch.layout == Layout::kDense, "column statistics need a dense batch, got a CSR batch");
  MLF_ASSERT(static_cast<int64_t>(batch.values.size()) == batch.rows * batch.cols);
  return HostDenseView{batch.values.data(), batch.rows, batch.cols};
}

ColumnStats::ColumnStats(int64_t cols) {
  MLF_ASSERT(cols >= 0);
  count.assign(static_cast<size_t>(cols), 0);
  sum.assign(static_cast<size_t>(cols), 0.0);
  sum_sq.assign(static_cast<size_t>(cols), 0.0);
}

void ColumnStats::Merge(const ColumnStats& other) {
  if (other.cols() == 0) return;
  if (cols() == 0) {
    *this = other;
    return;
  }
  MLF_EXPECTS(cols() == other.cols(),
              "column statistics: cannot merge {} columns into {} columns (every record must have the "
              "same feature dimension)",
              other.cols(), cols());
  for (size_t j = 0; j < sum.size(); ++j) {
    count[j] += other.count[j];
    sum[j] += other.sum[j];
    sum_sq[j] += other.sum_sq[j];
  }
}

double ColumnStats::Mean(int64_t j) const {
  MLF_ASSERT(j >= 0 && j < cols());
  return count[j] > 0 ? sum[j] / static_cast<double>(count[j]) : 0.0;
}

double ColumnStats::Variance(int64_t j) const {
  MLF_ASSERT(j >= 0 && j < cols());
  if (count[j] == 0) return 0.0;
  double n = static_cast<double>(count[j]);
  double mean = sum[j] / n;
  return std::max(0.0, sum_sq[j] / n - mean * mean);
}

namespace {

// Accumulates rows [begin, end) of x into s and q (each cols long). The inner loop runs along a
// row, so reads are contiguous and the compiler vectorises the float -> double adds.
void AccumulateRows(const HostDenseView& x, int64_t begin, int64_t end, double* s, double* q) {
  const int64_t d = x.cols;
  for (int64_t i = begin; i < end; ++i) {
    const float* row = x.values + i * d;
    for (int64_t j = 0; j < d; ++j) {
      double v = row[j];
      s[j] += v;
      q[j] += v * v;
    }
  }
}

// Below this many values per chunk, spreading over threads costs more than it saves.
constexpr int64_t kMinValuesPerChunk = 1 << 16;

}  // namespace

ColumnStats ColumnStatsCpu(const HostDenseView& x, int threads) {
  MLF_ASSERT(x.rows >= 0 && x.cols >= 0);
  MLF_ASSERT(x.values != nullptr || x.rows * x.cols == 0);
  ColumnStats out(x.cols);
  std::fill(out.count.begin(), out.count.end(), x.rows);
  if (x.rows == 0 || x.cols == 0) return out;

  // Fixed contiguous row chunks, one partial per chunk, merged in chunk order: the result
  // depends only on the chunk count, not on thread scheduling.
  int64_t by_size = std::max<int64_t>(1, x.rows * x.cols / kMinValuesPerChunk);
  int64_t chunks = std::min<int64_t>({std::max(1, threads), by_size, x.rows});
  std::vector<double> partial(static_cast<size_t>(chunks * 2 * x.cols), 0.0);
  const int64_t d = x.cols;
#pragma omp parallel for schedule(static) num_threads(static_cast <int>(chunks)) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t begin = x.rows * c / chunks;
    int64_t end = x.rows * (c + 1) / chunks;
    double* s = partial.data() + c * 2 * d;
    AccumulateRows(x, begin, end, s, s + d);
  }
  for (int64_t c = 0; c < chunks; ++c) {
    const double* s = partial.data() + c * 2 * d;
    for (int64_t j = 0; j < d; ++j) {
      out.sum[j] += s[j];
      out.sum_sq[j] += s[d + j];
    }
  }
  return out;
}

ColumnStats ComputeColumnStats(Resources& res, const HostDenseView& x) {
  if (res.device() == Device::kGpu) return ColumnStatsGpuFromHost(res.cuda(), x);
  return ColumnStatsCpu(x, res.threads());
}

#if !MLFORGE_HAVE_CUDA
// Without CUDA column_stats.cu is not compiled; Resources never resolves to the GPU then, so
// these only run when called directly.
ColumnStats ColumnStatsGpu(detail::CudaState&, const DeviceDenseView&) {
  MLF_FAIL("column statistics on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
ColumnStats ColumnStatsGpuFromHost(detail::CudaState&, const HostDenseView&) {
  MLF_FAIL("column statistics on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
#endif

}  // namespace mlforge::kernels
