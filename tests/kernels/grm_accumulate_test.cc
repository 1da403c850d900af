// The CPU twin of the genotype relationship-matrix accumulation (kernels/grm_accumulate.h):
// ExpandGenotypeBlock against the definition written out here, and GrmAccumulator on a CPU Resources
// against GrmAccumulateReference (float64) over blocks that cross the float32 flush boundary, with
// missing codes, monomorphic variants (scale 0) and sample counts that are not multiples of 4.
// The GPU twin is compared with the same reference in grm_accumulate_gpu_test.cc.
#include "kernels/grm_accumulate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "comm/communicator.h"
#include "core/resources.h"

namespace mlforge::kernels {
namespace {

struct Block {
  int64_t n = 0, m = 0;
  std::vector<uint8_t> codes;  // m x n, 0..3
  std::vector<uint8_t> packed;
  std::vector<float> center, scale;
  GenotypeBlockView View(int64_t v0, int64_t count) const {
    return GenotypeBlockView{packed.data() + v0 * PackedBytes(n), count, n, center.data() + v0, scale.data() + v0};
  }
};

Block MakeBlock(int64_t n, int64_t m, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  Block b;
  b.n = n;
  b.m = m;
  b.codes.resize(static_cast<size_t>(n * m));
  b.packed.assign(static_cast<size_t>(m * PackedBytes(n)), 0xFF);
  for (int64_t v = 0; v < m; ++v) {
    const bool mono = v % 11 == 4;
    const double p = 0.02 + 0.96 * u(rng);
    for (int64_t s = 0; s < n; ++s) {
      uint8_t c = mono ? 0 : static_cast<uint8_t>((u(rng) < p) + (u(rng) < p));
      if (u(rng) < 0.03) c = kGenotypeMissingCode;
      b.codes[static_cast<size_t>(v * n + s)] = c;
      uint8_t& byte = b.packed[static_cast<size_t>(v * PackedBytes(n) + s / 4)];
      byte = static_cast<uint8_t>((byte & ~(3u << (2 * (s % 4)))) | (static_cast<unsigned>(c) << (2 * (s % 4))));
    }
    b.center.push_back(static_cast<float>(2 * p));
    b.scale.push_back(mono ? 0.0f : static_cast<float>(1 / std::sqrt(2 * p * (1 - p))));
  }
  return b;
}

TEST(GrmAccumulate, ExpandFollowsTheDefinition) {
  for (int64_t n : {1, 3, 4, 7, 130}) {
    Block b = MakeBlock(n, 23, static_cast<uint64_t>(n));
    std::vector<float> z(static_cast<size_t>(n * b.m));
    ExpandGenotypeBlock(b.View(0, b.m), z.data(), 2);
    for (int64_t v = 0; v < b.m; ++v)
      for (int64_t s = 0; s < n; ++s) {
        const uint8_t c = b.codes[static_cast<size_t>(v * n + s)];
        const float want = c == kGenotypeMissingCode ? 0.0f : (c - b.center[static_cast<size_t>(v)]) * b.scale[static_cast<size_t>(v)];
        ASSERT_EQ(z[static_cast<size_t>(v * n + s)], want) << "n " << n << " v " << v << " s " << s;
      }
  }
}

TEST(GrmAccumulate, CpuTwinMatchesFloat64Reference) {
  Resources res(DeviceRequest::kCpu, 2, 0, comm::MakeSingleProcess());
  for (int64_t n : {2, 5, 131}) {
    // 9000 variants in uneven calls: crosses the 4096-variant flush twice and the 1024 split.
    Block b = MakeBlock(n, 9000, 100 + static_cast<uint64_t>(n));
    GrmAccumulator acc(res, n);
    EXPECT_EQ(acc.device(), Device::kCpu);
    std::vector<double> ref(static_cast<size_t>(n * n), 0.0);
    int64_t v0 = 0;
    for (int64_t count : {1, 7, 1500, 0, 4096, 3396}) {
      acc.Add(b.View(v0, count));
      GrmAccumulateReference(b.View(v0, count), &ref);
      v0 += count;
    }
    ASSERT_EQ(v0, 9000);
    std::vector<double> got = acc.Result();
    double scale = 0;
    for (double x : ref) scale = std::max(scale, std::abs(x));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        EXPECT_NEAR(got[static_cast<size_t>(i * n + j)], ref[static_cast<size_t>(i * n + j)], 1e-6 * scale)
            << n << " " << i << " " << j;
        EXPECT_EQ(got[static_cast<size_t>(i * n + j)], got[static_cast<size_t>(j * n + i)]);
      }
  }
}

}  // namespace
}  // namespace mlforge::kernels
