// The CUDA column statistics against the CPU twin (itself checked against a float64 reference in
// column_stats_test.cc). Skips visibly without a usable GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/build_config.h"
#include "core/resources.h"
#include "kernels/column_stats.h"
#include "tests/testutil.h"

#if MLFORGE_HAVE_CUDA
#include "core/cuda_state.h"
#endif

namespace mlforge::kernels {
namespace {

std::vector<float> Random(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      // Large, column-dependent offsets: float32 accumulation would be visibly wrong.
      x[i * cols + j] = static_cast<float>((j % 5) * 1e5 - 2e5) + noise(rng);
    }
  }
  return x;
}

// Sums agree to 1e-9 relative: both accumulate in float64, in different orders.
void ExpectClose(const ColumnStats& gpu, const ColumnStats& cpu, const std::string& what) {
  ASSERT_EQ(gpu.cols(), cpu.cols()) << what;
  for (int64_t j = 0; j < cpu.cols(); ++j) {
    EXPECT_EQ(gpu.count[j], cpu.count[j]) << what << " col " << j;
    EXPECT_NEAR(gpu.sum[j], cpu.sum[j], 1e-9 * std::max(1.0, std::fabs(cpu.sum[j]))) << what << " col " << j;
    EXPECT_NEAR(gpu.sum_sq[j], cpu.sum_sq[j], 1e-9 * std::max(1.0, cpu.sum_sq[j])) << what << " col " << j;
  }
}

struct Shape {
  int64_t rows, cols;
};

TEST(ColumnStatsGpu, MatchesCpuOnManyShapes) {
  MLF_REQUIRE_GPU();
  Resources res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  ASSERT_EQ(res.device(), Device::kGpu);
  // Around the tile width (32) and the row-thread count (8), plus tall and wide cases.
  for (Shape s : {Shape{1, 1}, Shape{7, 31}, Shape{8, 32}, Shape{9, 33}, Shape{1000, 1}, Shape{300001, 3},
                  Shape{2000, 1000}, Shape{5, 70000}, Shape{0, 4}}) {
    std::vector<float> x = Random(s.rows, s.cols, static_cast<uint32_t>(s.rows * 31 + s.cols));
    HostDenseView v{x.data(), s.rows, s.cols};
    std::string what = std::to_string(s.rows) + "x" + std::to_string(s.cols);
    ExpectClose(ColumnStatsGpuFromHost(res.cuda(), v), ColumnStatsCpu(v, 4), what);
    ExpectClose(ComputeColumnStats(res, v), ColumnStatsCpu(v, 1), what + " (dispatch)");
  }
}

TEST(ColumnStatsGpu, AcceptsDeviceResidentInput) {
  MLF_REQUIRE_GPU();
#if MLFORGE_HAVE_CUDA
  Resources res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  detail::CudaState& cuda = res.cuda();
  const int64_t rows = 4099, cols = 65;
  std::vector<float> x = Random(rows, cols, 9);
  float* dev = nullptr;
  MLF_CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&dev), x.size() * sizeof(float)));
  MLF_CUDA_TRY(cudaMemcpy(dev, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice));
  ColumnStats g = ColumnStatsGpu(cuda, DeviceDenseView{dev, rows, cols});
  MLF_CUDA_TRY(cudaFree(dev));
  ExpectClose(g, ColumnStatsCpu(HostDenseView{x.data(), rows, cols}, 2), "device view");
  // Repeated calls give identical bits: partials are added in a fixed order, no atomics.
  ColumnStats again = ColumnStatsGpuFromHost(cuda, HostDenseView{x.data(), rows, cols});
  ColumnStats third = ColumnStatsGpuFromHost(cuda, HostDenseView{x.data(), rows, cols});
  EXPECT_EQ(again.sum, third.sum);
  EXPECT_EQ(again.sum_sq, third.sum_sq);
#else
  GTEST_SKIP() << "built without CUDA";
#endif
}

}  // namespace
}  // namespace mlforge::kernels
