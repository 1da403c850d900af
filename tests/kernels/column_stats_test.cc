#include "kernels/column_stats.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "core/resources.h"

namespace mlforge::kernels {
namespace {

// rows x cols row-major; column j has offset offsets[j % size] and unit-ish noise, so large
// offsets make float32 accumulation drift while float64 stays exact to ~1e-16 per add.
std::vector<float> RandomMatrix(int64_t rows, int64_t cols, const std::vector<double>& offsets,
                                uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0.0, 1.0);
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      double off = offsets[static_cast<size_t>(j) % offsets.size()];
      x[i * cols + j] = static_cast<float>(off + noise(rng) * (1.0 + std::abs(off) * 1e-3));
    }
  }
  return x;
}

// The float64 reference: long double accumulation, row by row.
struct Reference {
  std::vector<long double> sum, sum_sq;
};
Reference Ref(const std::vector<float>& x, int64_t rows, int64_t cols) {
  Reference r{std::vector<long double>(cols, 0.0L), std::vector<long double>(cols, 0.0L)};
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      long double v = x[i * cols + j];
      r.sum[j] += v;
      r.sum_sq[j] += v * v;
    }
  }
  return r;
}

void ExpectNear(double got, long double want, double rel, const std::string& what) {
  double tol = rel * std::max(1.0L, std::fabs(want));
  EXPECT_NEAR(got, static_cast<double>(want), tol) << what;
}

TEST(ColumnStatsCpu, MatchesFloat64ReferenceWithLargeValues) {
  const int64_t rows = 200000, cols = 5;
  std::vector<double> offsets = {0.0, 1e4, -3e5, 1e6, 0.5};
  std::vector<float> x = RandomMatrix(rows, cols, offsets, 1);
  Reference ref = Ref(x, rows, cols);
  for (int threads : {1, 2, 7}) {
    ColumnStats s = ColumnStatsCpu(HostDenseView{x.data(), rows, cols}, threads);
    ASSERT_EQ(s.cols(), cols);
    for (int64_t j = 0; j < cols; ++j) {
      EXPECT_EQ(s.count[j], rows);
      ExpectNear(s.sum[j], ref.sum[j], 1e-12,
                 "sum col " + std::to_string(j) + " threads " + std::to_string(threads));
      ExpectNear(s.sum_sq[j], ref.sum_sq[j], 1e-12, "sum_sq col " + std::to_string(j));
    }
  }
  // The data is hard enough to matter: a float32 running sum of column 3 is far off.
  float f32 = 0.0f;
  for (int64_t i = 0; i < rows; ++i) f32 += x[i * cols + 3];
  EXPECT_GT(std::fabs(f32 - static_cast<double>(ref.sum[3])) / std::fabs(static_cast<double>(ref.sum[3])),
            1e-6);
}

TEST(ColumnStatsCpu, MeanAndVarianceMatchTwoPassReference) {
  const int64_t rows = 5000, cols = 3;
  std::vector<float> x = RandomMatrix(rows, cols, {2.0, -7.0, 1e3}, 2);
  ColumnStats s = ColumnStatsCpu(HostDenseView{x.data(), rows, cols}, 2);
  for (int64_t j = 0; j < cols; ++j) {
    long double mean = 0;
    for (int64_t i = 0; i < rows; ++i) mean += x[i * cols + j];
    mean /= rows;
    long double var = 0;
    for (int64_t i = 0; i < rows; ++i) var += (x[i * cols + j] - mean) * (x[i * cols + j] - mean);
    var /= rows;
    ExpectNear(s.Mean(j), mean, 1e-12, "mean");
    // One-pass variance loses digits to cancellation relative to mean^2.
    EXPECT_NEAR(s.Variance(j), static_cast<double>(var), 1e-9 * std::max(1.0L, mean * mean)) << j;
  }
}

TEST(ColumnStatsCpu, HandlesEmptyAndTinyShapes) {
  ColumnStats none = ColumnStatsCpu(HostDenseView{nullptr, 0, 4}, 4);
  ASSERT_EQ(none.cols(), 4);
  for (int64_t j = 0; j < 4; ++j) {
    EXPECT_EQ(none.count[j], 0);
    EXPECT_EQ(none.sum[j], 0.0);
    EXPECT_EQ(none.Mean(j), 0.0);
    EXPECT_EQ(none.Variance(j), 0.0);
  }
  EXPECT_EQ(ColumnStatsCpu(HostDenseView{nullptr, 9, 0}, 1).cols(), 0);
  float one[] = {3.0f, -2.0f};
  ColumnStats s = ColumnStatsCpu(HostDenseView{one, 1, 2}, 8);
  EXPECT_EQ(s.count[0], 1);
  EXPECT_EQ(s.sum[1], -2.0);
  EXPECT_EQ(s.sum_sq[1], 4.0);
}

TEST(ColumnStats, MergeOfPartsEqualsWholeAndIsAssociative) {
  const int64_t rows = 30000, cols = 4;
  std::vector<float> x = RandomMatrix(rows, cols, {1e5, -1.0, 0.0, 3e3}, 3);
  const int64_t cut1 = 7001, cut2 = 19999;
  auto part = [&](int64_t b, int64_t e) {
    return ColumnStatsCpu(HostDenseView{x.data() + b * cols, e - b, cols}, 1);
  };
  ColumnStats a = part(0, cut1), b = part(cut1, cut2), c = part(cut2, rows);
  ColumnStats whole = ColumnStatsCpu(HostDenseView{x.data(), rows, cols}, 3);

  ColumnStats left = a;  // (a + b) + c
  left.Merge(b);
  left.Merge(c);
  ColumnStats bc = b;  // a + (b + c)
  bc.Merge(c);
  ColumnStats right = a;
  right.Merge(bc);
  ColumnStats from_empty;  // merging into a default (0-column) stats copies
  from_empty.Merge(whole);

  Reference ref = Ref(x, rows, cols);
  for (int64_t j = 0; j < cols; ++j) {
    EXPECT_EQ(left.count[j], rows);
    EXPECT_EQ(right.count[j], rows);
    EXPECT_EQ(from_empty.count[j], rows);
    EXPECT_NEAR(left.sum[j], right.sum[j], 1e-13 * std::fabs(right.sum[j]) + 1e-9);
    EXPECT_NEAR(left.sum_sq[j], right.sum_sq[j], 1e-13 * right.sum_sq[j]);
    ExpectNear(left.sum[j], ref.sum[j], 1e-12, "merged sum");
    ExpectNear(left.sum_sq[j], ref.sum_sq[j], 1e-12, "merged sum_sq");
    EXPECT_EQ(from_empty.sum[j], whole.sum[j]);
  }
  ColumnStats unchanged = whole;
  unchanged.Merge(ColumnStats());
  EXPECT_EQ(unchanged.sum, whole.sum);
}

TEST(ColumnStats, MergeRejectsADifferentWidth) {
  ColumnStats a(3), b(4);
  try {
    a.Merge(b);
    FAIL() << "merged 4 columns into 3";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot merge 4 columns into 3"), std::string::npos) << e.what();
  }
}

TEST(ColumnStats, DenseViewRejectsCsr) {
  HostBatch b;
  b.layout = Layout::kCsr;
  EXPECT_THROW(DenseView(b), UserError);
  b.layout = Layout::kDense;
  b.rows = 2;
  b.cols = 1;
  b.values = {1.0f, 2.0f};
  HostDenseView v = DenseView(b);
  EXPECT_EQ(v.rows, 2);
  EXPECT_EQ(v.values, b.values.data());
}

TEST(ColumnStats, DispatchOnCpuMatchesTheCpuTwin) {
  Resources res(DeviceRequest::kCpu, 2, 0, comm::MakeSingleProcess());
  const int64_t rows = 1234, cols = 17;
  std::vector<float> x = RandomMatrix(rows, cols, {10.0, -4.0}, 4);
  ColumnStats d = ComputeColumnStats(res, HostDenseView{x.data(), rows, cols});
  ColumnStats c = ColumnStatsCpu(HostDenseView{x.data(), rows, cols}, 2);
  EXPECT_EQ(d.count, c.count);
  EXPECT_EQ(d.sum, c.sum);
  EXPECT_EQ(d.sum_sq, c.sum_sq);
}

}  // namespace
}  // namespace mlforge::kernels
