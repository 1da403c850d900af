// The genotype relationship-matrix accumulation on the GPU (kernels/grm_accumulate.cu): a
// GrmAccumulator on a GPU Resources against the float64 reference GrmAccumulateReference. Random
// packed genotypes with missing calls, monomorphic variants (scale 0), an all-missing variant,
// sample counts that are not multiples of 4 (1, 5, 37, 1126), blocks of 1, 7, 1024 and 5000
// variants (5000: split into upload chunks), and several Add calls that cross the float32 flush
// boundary (kGrmFlushVariants) at uneven points. After each Add the host block is overwritten
// (the contract: it need only stay valid until Add returns). Skips visibly without a usable GPU.
// Tolerance: 1e-5 of the largest |entry| (the GPU sums at most kGrmFlushVariants products in
// float32 before adding them to the float64 total; the reference is float64 throughout). The
// result must be exactly symmetric.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/error.h"
#include "core/resources.h"
#include "kernels/grm_accumulate.h"
#include "tests/testutil.h"

namespace mlforge::kernels {
namespace {

constexpr double kRel = 1e-5;

// A block of packed hard calls with its per-variant center and scale, as the genotype reader
// produces them.
struct Block {
  int64_t variants = 0, samples = 0;
  std::vector<uint8_t> packed;
  std::vector<float> center, scale;
  GenotypeBlockView View() const {
    return GenotypeBlockView{packed.data(), variants, samples, center.data(), scale.data()};
  }
};

// Variant kinds: mostly polymorphic with a random ALT frequency and missing rate; some
// monomorphic (all REF or all ALT among called samples: scale 0); some rare (a low frequency,
// large |z|); occasionally all missing (center 0, scale 0).
Block MakeBlock(int64_t variants, int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Block b;
  b.variants = variants;
  b.samples = n;
  const int64_t pb = PackedBytes(n);
  b.packed.assign(static_cast<size_t>(variants * pb), 0xFF);  // padding codes: 3 (missing)
  b.center.resize(static_cast<size_t>(variants));
  b.scale.resize(static_cast<size_t>(variants));
  std::vector<uint8_t> codes(static_cast<size_t>(n));
  for (int64_t v = 0; v < variants; ++v) {
    const double kind = u(rng);
    const double missing = kind < 0.02 ? 1.0 : 0.2 * u(rng);
    const double p = kind < 0.12   ? (u(rng) < 0.5 ? 0.0 : 1.0)
                     : kind < 0.25 ? 0.02 * u(rng)
                                   : 0.05 + 0.9 * u(rng);
    int64_t called = 0, alt = 0;
    for (int64_t s = 0; s < n; ++s) {
      uint8_t c = kGenotypeMissingCode;
      if (u(rng) >= missing) {
        c = static_cast<uint8_t>((u(rng) < p ? 1 : 0) + (u(rng) < p ? 1 : 0));
        ++called;
        alt += c;
      }
      codes[static_cast<size_t>(s)] = c;
    }
    uint8_t* dst = b.packed.data() + v * pb;
    for (int64_t s = 0; s < n; ++s) {
      const int sh = static_cast<int>(2 * (s % 4));
      dst[s / 4] = static_cast<uint8_t>((dst[s / 4] & ~(3 << sh)) | (codes[static_cast<size_t>(s)] << sh));
    }
    const double q = called > 0 ? static_cast<double>(alt) / (2.0 * static_cast<double>(called)) : 0.0;
    const double var = 2.0 * q * (1.0 - q);
    b.center[static_cast<size_t>(v)] = static_cast<float>(2.0 * q);
    b.scale[static_cast<size_t>(v)] = var > 0 ? static_cast<float>(1.0 / std::sqrt(var)) : 0.0f;
  }
  return b;
}

// Overwrites the host block, so that a device that still read it after Add returned would see
// garbage (all-missing codes and NaN center / scale).
void Scribble(Block* b) {
  std::fill(b->packed.begin(), b->packed.end(), uint8_t{0x1B});
  std::fill(b->center.begin(), b->center.end(), std::numeric_limits<float>::quiet_NaN());
  std::fill(b->scale.begin(), b->scale.end(), std::numeric_limits<float>::quiet_NaN());
}

void ExpectSymmetricAndClose(const std::vector<double>& got, const std::vector<double>& want, int64_t n,
                             const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_EQ(got.size(), static_cast<size_t>(n * n));
  ASSERT_EQ(want.size(), static_cast<size_t>(n * n));
  double scale = 0.0;
  for (double w : want) scale = std::max(scale, std::abs(w));
  const double tol = kRel * std::max(scale, 1.0);
  int bad = 0, asym = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const double g = got[static_cast<size_t>(i * n + j)], w = want[static_cast<size_t>(i * n + j)];
      if (!(std::abs(g - w) <= tol) && ++bad <= 5) {
        ADD_FAILURE() << "entry (" << i << ", " << j << "): GPU " << g << " vs reference " << w
                      << " (tolerance " << tol << ")";
      }
      if (g != got[static_cast<size_t>(j * n + i)] && ++asym <= 5) {
        ADD_FAILURE() << "not symmetric at (" << i << ", " << j << "): " << g << " vs "
                      << got[static_cast<size_t>(j * n + i)];
      }
    }
  }
  EXPECT_EQ(bad, 0) << "entries outside the tolerance";
  EXPECT_EQ(asym, 0) << "asymmetric entry pairs";
}

struct Case {
  const char* name;
  int64_t samples;
  std::vector<int64_t> blocks;  // variants per Add call
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class GpuGrmAccumulate : public ::testing::TestWithParam<Case> {};

TEST_P(GpuGrmAccumulate, MatchesFloat64Reference) {
  MLF_REQUIRE_GPU();
  const Case& c = GetParam();
  Resources res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  GrmAccumulator acc(res, c.samples);
  ASSERT_EQ(acc.device(), Device::kGpu);
  ASSERT_EQ(acc.samples(), c.samples);
  std::vector<double> want(static_cast<size_t>(c.samples * c.samples), 0.0);
  int64_t total_variants = 0;
  for (size_t k = 0; k < c.blocks.size(); ++k) {
    Block b = MakeBlock(c.blocks[k], c.samples, 1000 * static_cast<uint64_t>(c.samples) + k);
    GrmAccumulateReference(b.View(), &want);
    acc.Add(b.View());
    Scribble(&b);  // Add has returned: the GPU must not read the host block any more
    total_variants += c.blocks[k];
  }
  // The diagonal is the sum of squared standardised values: with this many variants some vary at
  // sample 0, so a result that lost the blocks would not pass by accident. (With one sample every
  // standardised value is 0: its own mean is subtracted, so n1 checks only that nothing breaks.)
  if (total_variants >= 100 && c.samples >= 2) {
    ASSERT_GT(want[0], 0.0);
  }
  ExpectSymmetricAndClose(acc.Result(), want, c.samples,
                          std::string(c.name) + ", " + std::to_string(total_variants) + " variants");
}

// 1, 7, 1024 and 5000 variants: 6032 in all, one flush inside the 5000 block (after variant 4096)
// and one in Result. "many_adds": eight Adds whose block boundaries miss the flush points (4096 and
// 8192 fall inside the blocks of 1099 and 4089 variants, which are cut into chunks of 1024, a
// chunk ending at the flush point and a remainder).
INSTANTIATE_TEST_SUITE_P(
    Shapes, GpuGrmAccumulate,
    ::testing::Values(Case{"n1", 1, {1, 7, 1024, 5000}}, Case{"n5", 5, {1, 7, 1024, 5000}},
                      Case{"n1126", 1126, {1, 7, 1024, 5000}}, Case{"n37_single_variant", 37, {1}},
                      Case{"n37_many_adds", 37, {1000, 1000, 1000, 1099, 7, 4089, 1, 2048}}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// An empty block is a no-op; a Result with nothing added is all zeros.
TEST(GpuGrmAccumulateEdges, NothingAddedIsZero) {
  MLF_REQUIRE_GPU();
  Resources res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  GrmAccumulator acc(res, 6);
  Block b = MakeBlock(0, 6, 1);
  acc.Add(b.View());
  const std::vector<double> r = acc.Result();
  ASSERT_EQ(r.size(), 36u);
  for (double v : r) EXPECT_EQ(v, 0.0);
}

// Cutting the same variants into different blocks changes only float32 rounding.
TEST(GpuGrmAccumulateEdges, BlockingChangesOnlyRounding) {
  MLF_REQUIRE_GPU();
  Resources res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  const int64_t n = 203, m = 3001;
  const Block whole = MakeBlock(m, n, 77);
  GrmAccumulator one(res, n), parts(res, n);
  one.Add(whole.View());
  const int64_t pb = PackedBytes(n);
  for (int64_t v0 : {int64_t{0}, int64_t{13}, int64_t{1500}}) {
    const int64_t v1 = v0 == 0 ? 13 : v0 == 13 ? 1500 : m;
    parts.Add(GenotypeBlockView{whole.packed.data() + v0 * pb, v1 - v0, n, whole.center.data() + v0,
                                whole.scale.data() + v0});
  }
  std::vector<double> want(static_cast<size_t>(n * n), 0.0);
  GrmAccumulateReference(whole.View(), &want);
  const std::vector<double> a = one.Result(), b = parts.Result();
  ExpectSymmetricAndClose(a, want, n, "one block vs reference");
  ExpectSymmetricAndClose(b, want, n, "three blocks vs reference");
}

// A cohort whose matrices cannot fit the device: a UserError naming the sizes, before any
// allocation, instead of a CUDA out-of-memory error or a crash.
TEST(GpuGrmAccumulateErrors, TooManySamplesIsAUserErrorNamingTheSizes) {
  MLF_REQUIRE_GPU();
  Resources res(DeviceRequest::kGpu, 0, 0, comm::MakeSingleProcess());
  const int64_t n = 2000000;  // 32 TB of float64 total
  try {
    GrmAccumulator acc(res, n);
    FAIL() << "a GPU accumulator for " << n << " samples was created";
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("2000000 samples"), std::string::npos) << msg;
    EXPECT_NE(msg.find("MiB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("free"), std::string::npos) << msg;
  }
  // The device is still usable afterwards.
  GrmAccumulator small(res, 3);
  Block b = MakeBlock(10, 3, 5);
  small.Add(b.View());
  std::vector<double> want(9, 0.0);
  GrmAccumulateReference(b.View(), &want);
  ExpectSymmetricAndClose(small.Result(), want, 3, "after the refused accumulator");
}

}  // namespace
}  // namespace mlforge::kernels
