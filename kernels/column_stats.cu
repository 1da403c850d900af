// CUDA version of the column statistics (CPU twin and dispatch: column_stats.cc).
//
// One kernel: a block covers kTileCols consecutive columns and a strided slice of the rows; each
// thread accumulates one column of its rows in float64, the block reduces its kRowThreads partial
// sums in shared memory and writes one partial per (row slice, column). The host adds the
// partials of the few row slices in a fixed order after the one sync, so results are
// deterministic (no atomics) and the copy back is small.
#include <algorithm>
#include <vector>

#include "core/error.h"
#include "kernels/column_stats.h"
#include "kernels/cuda_check.cuh"

namespace mlforge::kernels {
namespace {

// A warp spans 32 consecutive columns of one row: coalesced 128-byte reads.
constexpr int kTileCols = 32;
constexpr int kRowThreads = 8;
// Blocks per SM to aim for; 8 x 256 threads fills an SM's 2048 thread slots.
constexpr int kBlocksPerSm = 8;
constexpr int64_t kMaxGridY = 65535;

// x: rows x cols row-major float32 on the device. partial: 2 x slices x cols float64 on the
// device, where slices == gridDim.y; partial[s * cols + j] receives the sum of column j over row
// slice s, partial[(slices + s) * cols + j] the sum of squares.
__global__ void ColumnStatsKernel(const float* __restrict__ x, int64_t rows, int64_t cols,
                                  double* __restrict__ partial) {
  __shared__ double s_sum[kRowThreads][kTileCols];
  __shared__ double s_sq[kRowThreads][kTileCols];
  const int tx = threadIdx.x;
  const int ty = threadIdx.y;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kTileCols + tx;
  const int64_t slices = gridDim.y;
  const int64_t row_stride = slices * kRowThreads;

  double sum = 0.0;
  double sq = 0.0;
  if (j < cols) {
    for (int64_t i = static_cast<int64_t>(blockIdx.y) * kRowThreads + ty; i < rows; i += row_stride) {
      // float -> double before squaring: the product of two float32 values is exact in float64.
      double v = x[i * cols + j];
      sum += v;
      sq += v * v;
    }
  }
  s_sum[ty][tx] = sum;
  s_sq[ty][tx] = sq;
  __syncthreads();
  if (ty == 0 && j < cols) {
    for (int r = 1; r < kRowThreads; ++r) {
      sum += s_sum[r][tx];
      sq += s_sq[r][tx];
    }
    partial[static_cast<int64_t>(blockIdx.y) * cols + j] = sum;
    partial[(slices + blockIdx.y) * cols + j] = sq;
  }
}

// A stream-ordered device allocation, freed on the same stream (no device-wide sync).
template <typename T>
class StreamBuffer {
 public:
  StreamBuffer(size_t n, cudaStream_t stream) : stream_(stream) {
    if (n > 0) MLF_CUDA_TRY(cudaMallocAsync(reinterpret_cast<void**>(&ptr_), n * sizeof(T), stream_));
  }
  ~StreamBuffer() {
    if (ptr_ != nullptr) cudaFreeAsync(ptr_, stream_);  // errors ignored: destructors must not throw
  }
  StreamBuffer(const StreamBuffer&) = delete;
  StreamBuffer& operator=(const StreamBuffer&) = delete;
  T* get() const { return ptr_; }

 private:
  T* ptr_ = nullptr;
  cudaStream_t stream_;
};

}  // namespace

ColumnStats ColumnStatsGpu(detail::CudaState& cuda, const DeviceDenseView& x) {
  MLF_ASSERT(x.rows >= 0 && x.cols >= 0);
  MLF_ASSERT(x.values != nullptr || x.rows * x.cols == 0);
  ColumnStats out(x.cols);
  std::fill(out.count.begin(), out.count.end(), x.rows);
  if (x.rows == 0 || x.cols == 0) return out;

  const int64_t grid_x = CeilDiv(x.cols, kTileCols);
  MLF_ASSERT_MSG(grid_x <= 0x7fffffff, "{} columns exceed the grid limit", x.cols);
  // Enough row slices to fill the device, but no more: each slice costs 2 * cols doubles of
  // partials to copy back and add on the host.
  const int64_t target_blocks = static_cast<int64_t>(cuda.sm_count) * kBlocksPerSm;
  const int64_t grid_y = std::clamp<int64_t>(CeilDiv(target_blocks, grid_x), 1,
                                             std::min(kMaxGridY, CeilDiv(x.rows, kRowThreads)));

  const size_t n_partial = static_cast<size_t>(2 * grid_y * x.cols);
  StreamBuffer<double> partial(n_partial, cuda.stream);
  dim3 block(kTileCols, kRowThreads);
  dim3 grid(static_cast<unsigned>(grid_x), static_cast<unsigned>(grid_y));
  ColumnStatsKernel<<<grid, block, 0, cuda.stream>>>(x.values, x.rows, x.cols, partial.get());
  MLF_CUDA_TRY_LAUNCH();

  std::vector<double> host(n_partial);
  MLF_CUDA_TRY(cudaMemcpyAsync(host.data(), partial.get(), n_partial * sizeof(double), cudaMemcpyDeviceToHost,
                               cuda.stream));
  cuda.Synchronize();  // the one host sync of this step

  for (int64_t s = 0; s < grid_y; ++s) {
    const double* ps = host.data() + s * x.cols;
    const double* pq = host.data() + (grid_y + s) * x.cols;
    for (int64_t j = 0; j < x.cols; ++j) {
      out.sum[j] += ps[j];
      out.sum_sq[j] += pq[j];
    }
  }
  return out;
}

ColumnStats ColumnStatsGpuFromHost(detail::CudaState& cuda, const HostDenseView& x) {
  MLF_ASSERT(x.rows >= 0 && x.cols >= 0);
  if (x.rows == 0 || x.cols == 0) {
    ColumnStats out(x.cols);
    std::fill(out.count.begin(), out.count.end(), x.rows);
    return out;
  }
  const size_t n = static_cast<size_t>(x.rows * x.cols);
  StreamBuffer<float> dev(n, cuda.stream);
  // From pageable memory the copy is staged by the driver; the batch pipeline's pinned buffers
  // make it asynchronous.
  MLF_CUDA_TRY(cudaMemcpyAsync(dev.get(), x.values, n * sizeof(float), cudaMemcpyHostToDevice, cuda.stream));
  return ColumnStatsGpu(cuda, DeviceDenseView{dev.get(), x.rows, x.cols});
}

}  // namespace mlforge::kernels
