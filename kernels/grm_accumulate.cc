// CPU twin of the genotype relationship-matrix accumulation and the device dispatch
// (GrmAccumulator). The CUDA code is grm_accumulate.cu.
#include "kernels/grm_accumulate.h"

#include <Eigen/Core>
#include <algorithm>
#include <cstring>

#include "core/build_config.h"
#include "core/error.h"
#include "core/resources.h"
#include "kernels/omp_threads.h"

#include "kernels/openblas.h"

namespace mlforge::kernels {

namespace {

#if MLFORGE_HAVE_LAPACK
constexpr int kCblasColMajor = cblas::kColMajor, kCblasNoTrans = cblas::kNoTrans, kCblasLower = cblas::kLower;
#endif

using ColMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic>;

void CheckBlock(const GenotypeBlockView& b) {
  MLF_ASSERT(b.samples >= 1 && b.variants >= 0);
  if (b.variants > 0) MLF_ASSERT(b.packed != nullptr && b.center != nullptr && b.scale != nullptr);
}

}  // namespace

void ExpandGenotypeBlock(const GenotypeBlockView& b, float* z, int threads) {
  CheckBlock(b);
  const int64_t n = b.samples, bytes = PackedBytes(n);
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(ResolveThreads(threads), b.variants / 16)));
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
  for (int64_t v = 0; v < b.variants; ++v) {
    const float c = b.center[v], s = b.scale[v];
    // The four values a code can take; a byte expands through a 256 x 4 table would be faster
    // still, but the table per variant costs more than it saves for the cohorts seen here.
    const float table[4] = {(0.0f - c) * s, (1.0f - c) * s, (2.0f - c) * s, 0.0f};
    const uint8_t* src = b.packed + v * bytes;
    float* dst = z + v * n;
    const int64_t full = n / 4;
    for (int64_t i = 0; i < full; ++i) {
      const uint8_t x = src[i];
      dst[4 * i + 0] = table[x & 3];
      dst[4 * i + 1] = table[(x >> 2) & 3];
      dst[4 * i + 2] = table[(x >> 4) & 3];
      dst[4 * i + 3] = table[x >> 6];
    }
    for (int64_t s2 = full * 4; s2 < n; ++s2) dst[s2] = table[(src[s2 / 4] >> (2 * (s2 % 4))) & 3];
  }
}

void GrmAccumulateReference(const GenotypeBlockView& b, std::vector<double>* total) {
  CheckBlock(b);
  const int64_t n = b.samples;
  MLF_ASSERT(static_cast<int64_t>(total->size()) == n * n);
  std::vector<float> z(static_cast<size_t>(b.variants * n));
  ExpandGenotypeBlock(b, z.data(), 1);
  for (int64_t v = 0; v < b.variants; ++v) {
    const float* zv = z.data() + v * n;
    for (int64_t i = 0; i < n; ++i) {
      const double zi = zv[i];
      if (zi == 0.0) continue;
      double* row = total->data() + i * n;
      for (int64_t j = 0; j < n; ++j) row[j] += zi * static_cast<double>(zv[j]);
    }
  }
}

int64_t GrmAccumulator::CpuBytes(int64_t n) {
  return n * n * static_cast<int64_t>(sizeof(double) + sizeof(float)) +
         kGrmBlockVariants * n * static_cast<int64_t>(sizeof(float));
}

GrmAccumulator::GrmAccumulator(Resources& res, int64_t samples) : res_(res), n_(samples) {
  MLF_ASSERT(samples >= 1);
  if (res.device() == Device::kGpu) {
    gpu_.reset(internal::GrmGpuCreate(res.cuda(), samples));
    return;
  }
  const size_t nn = static_cast<size_t>(n_ * n_);
  total_.assign(nn, 0.0);
  scratch_.assign(nn, 0.0f);
}

GrmAccumulator::~GrmAccumulator() = default;

Device GrmAccumulator::device() const { return gpu_ ? Device::kGpu : Device::kCpu; }

void GrmAccumulator::Add(const GenotypeBlockView& block) {
  CheckBlock(block);
  MLF_ASSERT_MSG(block.samples == n_, "a genotype block has {} samples, the accumulator {}", block.samples, n_);
  if (block.variants == 0) return;
  if (gpu_) {
    internal::GrmGpuAdd(gpu_.get(), block);
    return;
  }
  const int64_t bytes = PackedBytes(n_);
  for (int64_t v0 = 0; v0 < block.variants; v0 += kGrmBlockVariants) {
    const int64_t nv = std::min(kGrmBlockVariants, block.variants - v0);
    GenotypeBlockView part{block.packed + v0 * bytes, nv, n_, block.center + v0, block.scale + v0};
    z_.resize(static_cast<size_t>(nv * n_));
    // One thread: OpenMP workers left spinning after a parallel expand would compete with
    // OpenBLAS's own threads for the cores during the SYRK (measured: 2x slower on 2 cores).
    ExpandGenotypeBlock(part, z_.data(), 1);
    // z_ is variant-major (nv x n row-major), i.e. a column-major n x nv matrix A; A A^T into the
    // lower triangle of the column-major scratch, which read row-major is the upper one.
#if MLFORGE_HAVE_LAPACK
    openblas_set_num_threads(ResolveThreads(res_.threads()));
    cblas_ssyrk(kCblasColMajor, kCblasLower, kCblasNoTrans, static_cast<int>(n_), static_cast<int>(nv), 1.0f,
                z_.data(), static_cast<int>(n_), 1.0f, scratch_.data(), static_cast<int>(n_));
#else
    Eigen::Map<const ColMajorF> A(z_.data(), n_, nv);
    Eigen::Map<ColMajorF> C(scratch_.data(), n_, n_);
    C.selfadjointView<Eigen::Lower>().rankUpdate(A, 1.0f);
#endif
    pending_ += nv;
    if (pending_ >= kGrmFlushVariants) FlushCpu();
  }
}

void GrmAccumulator::FlushCpu() {
  if (pending_ == 0) return;
  const int64_t n = n_;
  // One thread, for the reason given in Add (the add is a few percent of the SYRK it follows).
  // Column j of the column-major lower triangle (entries i >= j) is row j of the row-major upper.
  for (int64_t j = 0; j < n; ++j) {
    float* src = scratch_.data() + j * n;
    double* dst = total_.data() + j * n;
    for (int64_t i = j; i < n; ++i) {
      dst[i] += src[i];
      src[i] = 0.0f;
    }
  }
  pending_ = 0;
}

std::vector<double> GrmAccumulator::Result() {
  std::vector<double> out;
  if (gpu_) {
    internal::GrmGpuResult(gpu_.get(), &out);
    return out;
  }
  FlushCpu();
  out = total_;
  const int64_t n = n_;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) out[static_cast<size_t>(j * n + i)] = out[static_cast<size_t>(i * n + j)];
  return out;
}

#if !MLFORGE_HAVE_CUDA
// Without CUDA grm_accumulate.cu is not compiled; Resources never resolves to the GPU then.
namespace internal {
void GrmGpuStateDeleter::operator()(GrmGpuState*) const {}
GrmGpuState* GrmGpuCreate(detail::CudaState&, int64_t) {
  MLF_FAIL("genotype PCA on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
void GrmGpuAdd(GrmGpuState*, const GenotypeBlockView&) {
  MLF_FAIL("genotype PCA on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
void GrmGpuResult(GrmGpuState*, std::vector<double>*) {
  MLF_FAIL("genotype PCA on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
}  // namespace internal
#endif

}  // namespace mlforge::kernels
