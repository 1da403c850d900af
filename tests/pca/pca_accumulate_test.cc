// PCA's accumulation step (kernels/pca_accumulate.h) against float64 references computed here
// row by row: every mode (scatter, sign sketch, projection), dense and CSR rows, with and without
// a shift, one and several threads, the tiled large-d path, and the PcaAccumulator over mixed
// batches. The data have a mean far from zero, so a scheme that accumulated unshifted float32
// products would lose the digits these tolerances ask for.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/resources.h"
#include "kernels/pca_accumulate.h"

namespace mlforge::kernels {
namespace {

struct Rows {
  int64_t n = 0, d = 0;
  std::vector<float> dense;  // n x d
  std::vector<int64_t> indptr;
  std::vector<uint32_t> indices;
  std::vector<float> values;
};

// Dense rows: mean `offset`, correlated columns. Sparse: ~density nonzeros per row, some repeats.
Rows MakeRows(int64_t n, int64_t d, double offset, double density, uint64_t seed) {
  Rows r;
  r.n = n;
  r.d = d;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g(0.0, 1.0);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  r.dense.assign(static_cast<size_t>(n * d), 0.0f);
  r.indptr.push_back(0);
  for (int64_t i = 0; i < n; ++i) {
    const double z = g(rng);
    for (int64_t j = 0; j < d; ++j) {
      if (density < 1.0 && u(rng) > density) continue;
      // On a 2^-10 grid, so adding a repeated column's 0.5 is exact in float32 (the reference below
      // adds in float32, the CSR path in float64).
      const float v = static_cast<float>(std::round((offset + z * (1 + j % 3) + g(rng)) * 1024) / 1024);
      r.indices.push_back(static_cast<uint32_t>(j));
      r.values.push_back(v);
      r.dense[i * d + j] += v;
      if (density < 1.0 && u(rng) < 0.1) {  // a repeated column in the same row: values add up
        r.indices.push_back(static_cast<uint32_t>(j));
        r.values.push_back(0.5f);
        r.dense[i * d + j] += 0.5f;
      }
    }
    r.indptr.push_back(static_cast<int64_t>(r.values.size()));
  }
  return r;
}

// The float64 reference of a pass over `x` (dense rows, first ordinal first_row).
PcaSums Reference(const PcaPass& p, const std::vector<float>& x, int64_t n, int64_t first_row) {
  const int64_t d = p.d, l = p.l;
  PcaSums s(p.mode, d, l);
  std::vector<double> y(static_cast<size_t>(d));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) y[j] = static_cast<double>(x[i * d + j]) - (p.shift.empty() ? 0.0 : p.shift[j]);
    s.n += 1;
    for (int64_t j = 0; j < d; ++j) {
      s.sum[j] += y[j];
      s.sum_sq += y[j] * y[j];
    }
    switch (p.mode) {
      case PcaAccumulation::kScatter:
        for (int64_t a = 0; a < d; ++a)
          for (int64_t b = 0; b < d; ++b) s.matrix[a * d + b] += y[a] * y[b];
        break;
      case PcaAccumulation::kSketch:
        for (int64_t j = 0; j < l; ++j) {
          const double h = SketchSign(p.sketch_seed, first_row + i, j);
          s.sign_sums[j] += h;
          for (int64_t a = 0; a < d; ++a) s.matrix[j * d + a] += h * y[a];
        }
        break;
      case PcaAccumulation::kProject: {
        std::vector<double> t(static_cast<size_t>(l), 0.0);
        for (int64_t a = 0; a < d; ++a)
          for (int64_t j = 0; j < l; ++j) t[j] += y[a] * p.q[a * l + j];
        for (int64_t a = 0; a < d; ++a)
          for (int64_t j = 0; j < l; ++j) s.matrix[a * l + j] += y[a] * t[j];
        break;
      }
    }
  }
  return s;
}

double MaxAbs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

// Every member within rel * (largest magnitude of that member).
void ExpectClose(const PcaSums& got, const PcaSums& want, double rel, const std::string& what) {
  ASSERT_EQ(got.matrix.size(), want.matrix.size()) << what;
  EXPECT_EQ(got.n, want.n) << what;
  EXPECT_NEAR(got.sum_sq, want.sum_sq, rel * std::abs(want.sum_sq) + 1e-9) << what;
  const double ms = MaxAbs(want.sum), mm = MaxAbs(want.matrix);
  for (size_t j = 0; j < want.sum.size(); ++j) ASSERT_NEAR(got.sum[j], want.sum[j], rel * ms + 1e-9) << what << " sum " << j;
  for (size_t p = 0; p < want.matrix.size(); ++p)
    ASSERT_NEAR(got.matrix[p], want.matrix[p], rel * mm + 1e-9) << what << " matrix entry " << p;
  ASSERT_EQ(got.sign_sums.size(), want.sign_sums.size()) << what;
  for (size_t j = 0; j < want.sign_sums.size(); ++j) EXPECT_EQ(got.sign_sums[j], want.sign_sums[j]) << what;
}

PcaPass MakePass(PcaAccumulation mode, int64_t d, int64_t l, const std::vector<float>& shift, uint64_t seed) {
  PcaPass p;
  p.mode = mode;
  p.d = d;
  p.l = l;
  p.shift = shift;
  p.sketch_seed = seed;
  if (mode == PcaAccumulation::kProject) {
    std::mt19937_64 rng(seed + 17);
    std::normal_distribution<float> g(0.0f, 1.0f);
    p.q.resize(static_cast<size_t>(d * l));
    for (float& v : p.q) v = g(rng);
  }
  return p;
}

std::vector<float> MeanOfFirst(const Rows& r, int64_t rows) {
  std::vector<float> c(static_cast<size_t>(r.d), 0.0f);
  for (int64_t j = 0; j < r.d; ++j) {
    double s = 0;
    for (int64_t i = 0; i < rows; ++i) s += r.dense[i * r.d + j];
    c[j] = static_cast<float>(s / rows);
  }
  return c;
}

const PcaAccumulation kModes[] = {PcaAccumulation::kScatter, PcaAccumulation::kSketch, PcaAccumulation::kProject};

TEST(PcaAccumulateCpu, DenseMatchesFloat64WithShiftAnyThreads) {
  // 5000 rows > 2 blocks, mean 1000: the shift keeps y small; float32 blocks stay accurate.
  const Rows r = MakeRows(5000, 37, 1000.0, 1.0, 1);
  const std::vector<float> shift = MeanOfFirst(r, 500);
  for (PcaAccumulation mode : kModes) {
    const PcaPass p = MakePass(mode, r.d, 11, shift, 99);
    const PcaSums want = Reference(p, r.dense, r.n, 7);
    for (int threads : {1, 3}) {
      PcaSums got(mode, r.d, 11);
      PcaAccumulateCpu(p, HostDenseView{r.dense.data(), r.n, r.d}, 7, &got, threads);
      ExpectClose(got, want, 2e-6, "mode " + std::to_string(static_cast<int>(mode)) + " threads " + std::to_string(threads));
    }
  }
}

TEST(PcaAccumulateCpu, UnshiftedDenseAndAddingTwiceDoublesTheTotals) {
  const Rows r = MakeRows(900, 16, 2.0, 1.0, 2);
  for (PcaAccumulation mode : kModes) {
    const PcaPass p = MakePass(mode, r.d, 5, {}, 3);
    PcaSums want = Reference(p, r.dense, r.n, 0);
    PcaSums got(mode, r.d, 5);
    PcaAccumulateCpu(p, HostDenseView{r.dense.data(), r.n, r.d}, 0, &got, 2);
    PcaAccumulateCpu(p, HostDenseView{r.dense.data(), r.n, r.d}, 0, &got, 2);
    want.Add(want);
    ExpectClose(got, want, 2e-6, "twice, mode " + std::to_string(static_cast<int>(mode)));
  }
}

TEST(PcaAccumulateCpu, TiledLargeDimensionPathMatches) {
  // A zero partial budget forces the output-tile split (the path for d in the thousands).
  const Rows r = MakeRows(2500, 300, 50.0, 1.0, 4);
  const std::vector<float> shift = MeanOfFirst(r, 100);
  const PcaPass p = MakePass(PcaAccumulation::kScatter, r.d, 0, shift, 0);
  const PcaSums want = Reference(p, r.dense, r.n, 0);
  PcaSums got(PcaAccumulation::kScatter, r.d, 0);
  PcaAccumulateCpu(p, HostDenseView{r.dense.data(), r.n, r.d}, 0, &got, 2, /*partial_budget_bytes=*/0);
  ExpectClose(got, want, 2e-6, "tiled");
  // Symmetric, as documented.
  for (int64_t a = 0; a < r.d; ++a)
    for (int64_t b = 0; b < a; ++b) ASSERT_EQ(got.matrix[a * r.d + b], got.matrix[b * r.d + a]);
}

TEST(PcaAccumulateCpu, WideDenseScatterInDeepBlocksMatchesFloat64) {
  // d >= 1024: 512-row float32 blocks (one multi-threaded SYRK each with OpenBLAS), 1300 rows so
  // that the last block is partial.
  const Rows r = MakeRows(1300, 1030, 20.0, 1.0, 12);
  const std::vector<float> shift = MeanOfFirst(r, 400);
  const PcaPass p = MakePass(PcaAccumulation::kScatter, r.d, 0, shift, 0);
  const PcaSums want = Reference(p, r.dense, r.n, 0);
  PcaSums got(PcaAccumulation::kScatter, r.d, 0);
  PcaAccumulateCpu(p, HostDenseView{r.dense.data(), r.n, r.d}, 0, &got, 2);
  ExpectClose(got, want, 2e-6, "wide");
  for (int64_t a = 0; a < r.d; a += 97)
    for (int64_t b = 0; b < a; b += 89) ASSERT_EQ(got.matrix[a * r.d + b], got.matrix[b * r.d + a]);
}

TEST(PcaAccumulateCpu, CsrMatchesFloat64WithRepeatsAndShift) {
  const Rows r = MakeRows(700, 40, 3.0, 0.2, 5);
  std::vector<float> shift(static_cast<size_t>(r.d));
  for (int64_t j = 0; j < r.d; ++j) shift[j] = 0.25f * static_cast<float>(j % 5);
  for (PcaAccumulation mode : kModes) {
    for (bool shifted : {false, true}) {
      const PcaPass p = MakePass(mode, r.d, 9, shifted ? shift : std::vector<float>{}, 11);
      const PcaSums want = Reference(p, r.dense, r.n, 40);
      for (int threads : {1, 2}) {
        PcaSums got(mode, r.d, 9);
        PcaAccumulateCpu(p, HostCsrView{r.indptr.data(), r.indices.data(), r.values.data(), r.n, r.d}, 40, &got,
                         threads);
        // CSR products are float64 throughout.
        ExpectClose(got, want, 1e-11, "csr mode " + std::to_string(static_cast<int>(mode)) + (shifted ? " shifted" : ""));
      }
    }
  }
}

TEST(PcaAccumulateCpu, CsrIndexOutOfRangeIsAUserError) {
  std::vector<int64_t> indptr = {0, 1};
  std::vector<uint32_t> idx = {12};
  std::vector<float> val = {1.0f};
  PcaPass p = MakePass(PcaAccumulation::kScatter, 4, 0, {}, 0);
  PcaSums s(PcaAccumulation::kScatter, 4, 0);
  EXPECT_THROW(PcaAccumulateCpu(p, HostCsrView{indptr.data(), idx.data(), val.data(), 1, 4}, 0, &s, 1), UserError);
}

TEST(PcaSketchSigns, BalancedAndIndependentOfBatching) {
  // Signs are a function of (seed, row ordinal, component): about half are +1, different seeds
  // and rows differ, and cutting the rows into batches gives the same sketch.
  int64_t plus = 0, total = 0, same_seed_diff = 0;
  for (int64_t r = 0; r < 2000; ++r)
    for (int64_t j = 0; j < 70; ++j) {
      plus += SketchSign(5, r, j) > 0;
      same_seed_diff += SketchSign(5, r, j) != SketchSign(6, r, j);
      ++total;
    }
  EXPECT_NEAR(static_cast<double>(plus) / total, 0.5, 0.01);
  EXPECT_NEAR(static_cast<double>(same_seed_diff) / total, 0.5, 0.01);

  const Rows r = MakeRows(3000, 12, 1.0, 1.0, 6);
  const PcaPass p = MakePass(PcaAccumulation::kSketch, r.d, 20, {}, 77);
  PcaSums whole(PcaAccumulation::kSketch, r.d, 20), parts(PcaAccumulation::kSketch, r.d, 20);
  PcaAccumulateCpu(p, HostDenseView{r.dense.data(), r.n, r.d}, 0, &whole, 2);
  for (int64_t i0 : {int64_t{0}, int64_t{1234}}) {
    const int64_t i1 = i0 == 0 ? 1234 : r.n;
    PcaAccumulateCpu(p, HostDenseView{r.dense.data() + i0 * r.d, i1 - i0, r.d}, i0, &parts, 1);
  }
  ExpectClose(parts, whole, 1e-6, "batched sketch");
}

TEST(PcaAccumulator, CpuMixedDenseAndCsrBatches) {
  // Batches of different layouts in one pass add up to the reference of all rows.
  Resources res(DeviceRequest::kCpu, 2, 0, comm::MakeSingleProcess());
  const Rows r = MakeRows(1200, 24, 10.0, 0.5, 8);
  const std::vector<float> shift = MeanOfFirst(r, 200);
  for (PcaAccumulation mode : kModes) {
    PcaPass p = MakePass(mode, r.d, 6, shift, 21);
    const PcaSums want = Reference(p, r.dense, r.n, 0);
    PcaAccumulator acc(res);
    EXPECT_EQ(acc.device(), Device::kCpu);
    acc.Begin(p);
    for (int64_t i0 = 0; i0 < r.n; i0 += 300) {
      HostBatch b;
      b.rows = std::min<int64_t>(300, r.n - i0);
      b.cols = r.d;
      b.first_row = i0;
      if ((i0 / 300) % 2 == 0) {
        b.layout = Layout::kDense;
        b.values.assign(r.dense.begin() + i0 * r.d, r.dense.begin() + (i0 + b.rows) * r.d);
      } else {
        b.layout = Layout::kCsr;
        const int64_t base = r.indptr[i0];
        for (int64_t i = i0; i <= i0 + b.rows; ++i) b.indptr.push_back(r.indptr[i] - base);
        b.indices.assign(r.indices.begin() + base, r.indices.begin() + r.indptr[i0 + b.rows]);
        b.values.assign(r.values.begin() + base, r.values.begin() + r.indptr[i0 + b.rows]);
      }
      acc.Add(b);
    }
    ExpectClose(acc.Result(), want, 2e-6, "accumulator mode " + std::to_string(static_cast<int>(mode)));
    HostBatch wrong;
    wrong.rows = 1;
    wrong.cols = r.d + 1;
    wrong.values.assign(static_cast<size_t>(r.d + 1), 0.0f);
    EXPECT_THROW(acc.Add(wrong), UserError);
  }
}

}  // namespace
}  // namespace mlforge::kernels
