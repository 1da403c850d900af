// PCA's accumulation step on the GPU (kernels/pca_accumulate.cu) against the CPU twin: the
// PcaAccumulator on a GPU Resources vs one on a CPU Resources and vs the free functions
// PcaAccumulateCpu, for kScatter, kSketch and kProject, dense and CSR batches (CSR rows with
// unsorted and repeated column indices), with and without a shift, several batches (the sketch
// signs follow the row ordinals across batches), batches large enough to span several device
// chunks, and dense and CSR batches mixed in one pass. Small shapes are also checked against a
// plain float64 reference, so that a disagreement says which side is wrong.
// Tolerances: matrices 1e-5 of their largest magnitude (the CPU multiplies float32 blocks, the
// GPU float64 ones; both add into float64 totals); sum 1e-5 of max(max |sum_j|, sqrt(sum_sq));
// sum_sq 1e-5 relative; n and the sketch's sign sums (integers) exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/error.h"
#include "core/resources.h"
#include "kernels/pca_accumulate.h"
#include "tests/testutil.h"

namespace mlforge::kernels {
namespace {

constexpr double kRel = 1e-5;

// Rows with per-column means well away from zero (so the shift matters) and a low-rank part.
// density < 1: CSR, entries kept with that probability; some kept entries are split in two
// entries of the same column, the second one at the end of the row (unsorted, repeated).
std::vector<HostBatch> MakeBatches(int64_t d, const std::vector<int64_t>& rows, uint64_t seed, double density,
                                   int64_t first_row = 0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<float> mu(static_cast<size_t>(d)), sd(static_cast<size_t>(d)), load(static_cast<size_t>(2 * d));
  for (int64_t j = 0; j < d; ++j) {
    mu[static_cast<size_t>(j)] = 20.0f + 5.0f * nd(rng);
    sd[static_cast<size_t>(j)] = 0.5f + static_cast<float>(u(rng));
  }
  for (auto& v : load) v = 2.0f * nd(rng);
  std::vector<HostBatch> out;
  int64_t ordinal = first_row;
  for (size_t b = 0; b < rows.size(); ++b) {
    // Alternate layouts when density is negative (mixed pass).
    const bool csr = density < 0 ? b % 2 == 1 : density < 1.0;
    const double keep = density < 0 ? -density : density;
    HostBatch hb;
    hb.layout = csr ? Layout::kCsr : Layout::kDense;
    hb.rows = rows[b];
    hb.cols = d;
    hb.first_row = ordinal;
    ordinal += rows[b];
    if (csr) hb.indptr.push_back(0);
    std::vector<float> x(static_cast<size_t>(d));
    for (int64_t i = 0; i < rows[b]; ++i) {
      const float f0 = nd(rng), f1 = nd(rng);
      for (int64_t j = 0; j < d; ++j) {
        const size_t q = static_cast<size_t>(j);
        x[q] = mu[q] + sd[q] * nd(rng) + f0 * load[q] + f1 * load[q + static_cast<size_t>(d)];
      }
      if (!csr) {
        hb.values.insert(hb.values.end(), x.begin(), x.end());
        continue;
      }
      std::vector<std::pair<uint32_t, float>> tail;
      for (int64_t j = 0; j < d; ++j) {
        if (u(rng) >= keep) continue;
        const float v = x[static_cast<size_t>(j)];
        if (u(rng) < 0.1) {
          hb.indices.push_back(static_cast<uint32_t>(j));
          hb.values.push_back(0.25f * v);
          tail.emplace_back(static_cast<uint32_t>(j), 0.75f * v);
        } else {
          hb.indices.push_back(static_cast<uint32_t>(j));
          hb.values.push_back(v);
        }
      }
      for (auto it = tail.rbegin(); it != tail.rend(); ++it) {
        hb.indices.push_back(it->first);
        hb.values.push_back(it->second);
      }
      hb.indptr.push_back(static_cast<int64_t>(hb.values.size()));
    }
    out.push_back(std::move(hb));
  }
  return out;
}

// Row i of a batch as float64 (repeated CSR columns added up).
std::vector<double> Row(const HostBatch& b, int64_t i) {
  std::vector<double> r(static_cast<size_t>(b.cols), 0.0);
  if (b.layout == Layout::kDense) {
    for (int64_t q = 0; q < b.cols; ++q) r[static_cast<size_t>(q)] = b.values[static_cast<size_t>(i * b.cols + q)];
  } else {
    for (int64_t p = b.indptr[i]; p < b.indptr[i + 1]; ++p) r[b.indices[p]] += b.values[static_cast<size_t>(p)];
  }
  return r;
}

// The pass the PCA loop would make: shift = the first batch's mean (or none), Q random.
PcaPass MakePass(PcaAccumulation mode, int64_t d, int64_t l, bool shifted, const std::vector<HostBatch>& batches) {
  PcaPass p;
  p.mode = mode;
  p.d = d;
  p.l = l;
  p.sketch_seed = 0x5eed1234abcdULL + static_cast<uint64_t>(d);
  if (shifted) {
    std::vector<double> m(static_cast<size_t>(d), 0.0);
    const HostBatch& b = batches.front();
    for (int64_t i = 0; i < b.rows; ++i) {
      const std::vector<double> r = Row(b, i);
      for (int64_t j = 0; j < d; ++j) m[static_cast<size_t>(j)] += r[static_cast<size_t>(j)];
    }
    for (double v : m) p.shift.push_back(static_cast<float>(v / static_cast<double>(b.rows)));
  }
  if (mode == PcaAccumulation::kProject) {
    std::mt19937_64 rng(99 + static_cast<uint64_t>(d * l));
    std::normal_distribution<float> nd;
    p.q.resize(static_cast<size_t>(d * l));
    for (auto& v : p.q) v = nd(rng) / std::sqrt(static_cast<float>(d));
  }
  return p;
}

PcaSums RunAccumulator(PcaAccumulator& acc, const PcaPass& pass, const std::vector<HostBatch>& batches) {
  acc.Begin(pass);
  for (const HostBatch& b : batches) acc.Add(b);
  return acc.Result();
}

PcaSums RunFree(const PcaPass& pass, const std::vector<HostBatch>& batches) {
  PcaSums s(pass.mode, pass.d, pass.l);
  for (const HostBatch& b : batches) {
    if (b.layout == Layout::kCsr) {
      PcaAccumulateCpu(pass, CsrView(b), b.first_row, &s, 0);
    } else {
      PcaAccumulateCpu(pass, HostDenseView{b.values.data(), b.rows, b.cols}, b.first_row, &s, 0);
    }
  }
  return s;
}

// Plain float64 sums straight from the definitions in pca_accumulate.h.
PcaSums Reference(const PcaPass& pass, const std::vector<HostBatch>& batches) {
  const int64_t d = pass.d, l = pass.l;
  PcaSums s(pass.mode, d, l);
  for (const HostBatch& b : batches) {
    for (int64_t i = 0; i < b.rows; ++i) {
      std::vector<double> y = Row(b, i);
      for (int64_t j = 0; j < d; ++j) {
        if (!pass.shift.empty()) y[static_cast<size_t>(j)] -= pass.shift[static_cast<size_t>(j)];
        s.sum[static_cast<size_t>(j)] += y[static_cast<size_t>(j)];
        s.sum_sq += y[static_cast<size_t>(j)] * y[static_cast<size_t>(j)];
      }
      s.n += 1;
      double* m = s.matrix.data();
      if (pass.mode == PcaAccumulation::kScatter) {
        for (int64_t a = 0; a < d; ++a)
          for (int64_t c = 0; c < d; ++c) m[a * d + c] += y[static_cast<size_t>(a)] * y[static_cast<size_t>(c)];
      } else if (pass.mode == PcaAccumulation::kSketch) {
        for (int64_t j = 0; j < l; ++j) {
          const double h = SketchSign(pass.sketch_seed, b.first_row + i, j);
          s.sign_sums[static_cast<size_t>(j)] += h;
          for (int64_t a = 0; a < d; ++a) m[j * d + a] += h * y[static_cast<size_t>(a)];
        }
      } else {
        std::vector<double> t(static_cast<size_t>(l), 0.0);
        for (int64_t a = 0; a < d; ++a)
          for (int64_t j = 0; j < l; ++j) t[static_cast<size_t>(j)] += y[static_cast<size_t>(a)] * pass.q[a * l + j];
        for (int64_t a = 0; a < d; ++a)
          for (int64_t j = 0; j < l; ++j) m[a * l + j] += y[static_cast<size_t>(a)] * t[static_cast<size_t>(j)];
      }
    }
  }
  return s;
}

double MaxAbs(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

// `got` against `want` with the file's tolerances; at most a few entries reported per member.
void ExpectSumsMatch(const PcaSums& got, const PcaSums& want, const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_EQ(got.mode, want.mode);
  ASSERT_EQ(got.d, want.d);
  ASSERT_EQ(got.l, want.l);
  ASSERT_EQ(got.matrix.size(), want.matrix.size());
  ASSERT_EQ(got.sum.size(), want.sum.size());
  ASSERT_EQ(got.sign_sums.size(), want.sign_sums.size());
  EXPECT_EQ(got.n, want.n);
  EXPECT_NEAR(got.sum_sq, want.sum_sq, kRel * std::abs(want.sum_sq));
  auto check = [](const std::vector<double>& g, const std::vector<double>& w, double tol, const char* name) {
    int bad = 0;
    for (size_t e = 0; e < w.size() && bad < 5; ++e) {
      if (!(std::abs(g[e] - w[e]) <= tol)) {
        ++bad;
        ADD_FAILURE() << name << "[" << e << "]: got " << g[e] << ", want " << w[e] << " (tolerance " << tol << ")";
      }
    }
  };
  check(got.sum, want.sum, kRel * std::max(MaxAbs(want.sum), std::sqrt(want.sum_sq)), "sum");
  check(got.matrix, want.matrix, kRel * MaxAbs(want.matrix), "matrix");
  check(got.sign_sums, want.sign_sums, 0.0, "sign_sums");
}

const char* ModeName(PcaAccumulation m) {
  return m == PcaAccumulation::kScatter ? "scatter" : m == PcaAccumulation::kSketch ? "sketch" : "project";
}

struct Case {
  std::string name;
  int64_t d, l;
  std::vector<int64_t> rows;
  double density;  // 1: dense; (0, 1): CSR; < 0: dense and CSR batches alternating, CSR density -density
};
// The case's name in test output (ctest lists GetParam() otherwise as a byte dump).
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class GpuPcaAccumulate : public ::testing::TestWithParam<Case> {};

// Every mode, with and without a shift, on one GPU accumulator and one CPU accumulator (each
// reused across passes, as the training loop does).
TEST_P(GpuPcaAccumulate, MatchesCpuTwin) {
  MLF_REQUIRE_GPU();
  const Case& c = GetParam();
  Resources gpu_res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  Resources cpu_res(DeviceRequest::kCpu, 0, 0, comm::MakeSingleProcess());
  PcaAccumulator gpu(gpu_res), cpu(cpu_res);
  ASSERT_EQ(gpu.device(), Device::kGpu);
  ASSERT_EQ(cpu.device(), Device::kCpu);
  const std::vector<HostBatch> batches = MakeBatches(c.d, c.rows, 7 + static_cast<uint64_t>(c.d), c.density, 1000);
  const bool small = c.d <= 300;
  for (PcaAccumulation mode : {PcaAccumulation::kScatter, PcaAccumulation::kSketch, PcaAccumulation::kProject}) {
    for (bool shifted : {false, true}) {
      const std::string what = std::string(ModeName(mode)) + (shifted ? " shifted" : " unshifted");
      const PcaPass pass = MakePass(mode, c.d, c.l, shifted, batches);
      const PcaSums g = RunAccumulator(gpu, pass, batches);
      ExpectSumsMatch(g, RunAccumulator(cpu, pass, batches), what + ": GPU vs CPU accumulator");
      ExpectSumsMatch(g, RunFree(pass, batches), what + ": GPU vs PcaAccumulateCpu");
      if (small) ExpectSumsMatch(g, Reference(pass, batches), what + ": GPU vs float64 reference");
    }
  }
}

// Small shapes; d = 300, l = 70 (two sign words per row); d = 1000 with a batch of 6000 rows,
// more than one device chunk (64 MiB of scratch: ~5500 rows at d = 1000); 1-row batches; many
// small batches of growing size (the two staging buffers regrow while alternating).
INSTANTIATE_TEST_SUITE_P(
    Shapes, GpuPcaAccumulate,
    ::testing::Values(Case{"dense_d37", 37, 9, {1000, 2500, 1}, 1.0}, Case{"csr_d37", 37, 9, {1000, 2500, 1}, 0.3},
                      Case{"dense_d1", 1, 1, {500, 17}, 1.0}, Case{"csr_d2", 2, 3, {300, 1, 40}, 0.6},
                      Case{"dense_d300_l70", 300, 70, {3000, 1200}, 1.0},
                      Case{"csr_d300_l70", 300, 70, {3000, 1200}, 0.1},
                      Case{"mixed_growing", 20, 5, {10, 30, 20, 90, 60, 270, 180, 810, 3, 2000}, -0.4},
                      Case{"dense_d1000_chunks", 1000, 20, {6000, 100}, 1.0},
                      Case{"csr_d1000_chunks", 1000, 20, {6000, 100}, 0.02}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// The sketch signs depend on the row ordinals only: one batch or the same rows cut into three
// batches give the same sketch (up to float64 rounding on the GPU).
TEST(GpuPcaAccumulateSketch, BatchingDoesNotChangeTheSketch) {
  MLF_REQUIRE_GPU();
  Resources res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  PcaAccumulator acc(res);
  const int64_t d = 50, l = 130;
  const std::vector<HostBatch> whole = MakeBatches(d, {3000}, 5, 1.0, 77);
  std::vector<HostBatch> parts;
  for (int64_t r0 : {0, 1000, 2500}) {
    const int64_t r1 = r0 == 0 ? 1000 : r0 == 1000 ? 2500 : 3000;
    HostBatch p;
    p.rows = r1 - r0;
    p.cols = d;
    p.first_row = 77 + r0;
    p.values.assign(whole[0].values.begin() + r0 * d, whole[0].values.begin() + r1 * d);
    parts.push_back(std::move(p));
  }
  const PcaPass pass = MakePass(PcaAccumulation::kSketch, d, l, true, whole);
  const PcaSums a = RunAccumulator(acc, pass, whole);
  const PcaSums b = RunAccumulator(acc, pass, parts);
  ExpectSumsMatch(b, a, "three batches vs one");
  ExpectSumsMatch(a, Reference(pass, whole), "GPU vs float64 reference");
}

TEST(GpuPcaAccumulateErrors, CsrIndexOutOfRangeIsAUserError) {
  MLF_REQUIRE_GPU();
  Resources res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  PcaAccumulator acc(res);
  std::vector<HostBatch> batches = MakeBatches(10, {20}, 3, 0.5);
  batches[0].indices.push_back(10);  // one past the last column, appended to the last row
  batches[0].values.push_back(1.0f);
  batches[0].indptr.back() += 1;
  acc.Begin(MakePass(PcaAccumulation::kScatter, 10, 0, false, MakeBatches(10, {5}, 3, 1.0)));
  EXPECT_THROW(acc.Add(batches[0]), UserError);
}

}  // namespace
}  // namespace mlforge::kernels
