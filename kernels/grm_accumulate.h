// Genotype PCA's heavy step (issue 14): the n x n genetic relationship matrix of standardised
// genotypes, accumulated over blocks of variants (DESIGN.md "CPU and GPU"). grm_accumulate.cc holds
// the CPU twin and the dispatch, grm_accumulate.cu the CUDA code. Plain C++: no CUDA types here.
//
// Data. A block holds B variants x n samples of hard calls packed 2 bits per call, variant-major:
// variant v's calls are the bytes packed[v * PackedBytes(n) ...], sample s in byte s / 4 at bits
// 2 (s % 4) .. 2 (s % 4) + 1; code 0, 1, 2 = number of ALT alleles, 3 = missing. Padding codes of
// the last byte are 3 (missing). Per variant, center[v] = 2 p_v and scale[v] = 1 / sqrt(2 p_v (1 -
// p_v)) with p_v the ALT frequency over called samples (scale 0 for a monomorphic variant, whose
// standardised values are all 0: plink2 counts such variants in M but they add nothing).
// The standardised value is z = (code - center) * scale, and z = 0 for a missing call (mean
// imputation: the variant's mean dosage 2p standardises to 0).
//
// Totals. GrmAccumulator adds Z_b^T Z_b (Z_b: B x n) of every block into a float64 n x n total;
// the caller divides by M (the number of variants) to get plink2's relationship matrix Z Z^T / M.
// Numerics: products of a block are formed in float32 (OpenBLAS SSYRK when the build has it, else
// Eigen) into a float32 n x n scratch with beta = 1, and the scratch is added to the float64 total
// (and zeroed) as soon as kGrmFlushVariants variants have gone into it (with blocks of
// kGrmBlockVariants, which divides it, exactly that many), so float32 rounding accumulates over at
// most kGrmFlushVariants + kGrmBlockVariants - 1 terms; the GPU twin does the same with cuBLAS SSYRK (the block travels as its packed bytes:
// n B / 4 bytes) and a float64 add kernel.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace mlforge {
class Resources;
enum class Device;
namespace detail {
struct CudaState;
}
}  // namespace mlforge

namespace mlforge::kernels {

inline int64_t PackedBytes(int64_t samples) { return (samples + 3) / 4; }
constexpr uint8_t kGenotypeMissingCode = 3;

struct GenotypeBlockView {
  const uint8_t* packed = nullptr;  // variants x PackedBytes(samples)
  int64_t variants = 0;
  int64_t samples = 0;
  const float* center = nullptr;  // variants: 2 p
  const float* scale = nullptr;   // variants: 1 / sqrt(2 p (1 - p)), or 0
};

// Variants a float32 scratch accumulates before it is added into the float64 total.
constexpr int64_t kGrmFlushVariants = 4096;

// Standardised float32 values of the block, variant-major: z[v * samples + s]. Threads: up to
// `threads` OpenMP threads (<= 0: all).
void ExpandGenotypeBlock(const GenotypeBlockView& block, float* z, int threads);

namespace internal {
struct GrmGpuState;  // device buffers; defined in grm_accumulate.cu
struct GrmGpuStateDeleter {
  void operator()(GrmGpuState* s) const;
};
// GPU side of GrmAccumulator (grm_accumulate.cu; stubs that throw "built without CUDA" otherwise).
// Create allocates the float64 total and float32 scratch for n samples (UserError naming the sizes
// when they do not fit the device's free memory) and zeroes them.
GrmGpuState* GrmGpuCreate(detail::CudaState& cuda, int64_t samples);
// Uploads the block (packed bytes, center, scale), expands it on the device and adds its SSYRK
// product into the float32 scratch; flushes the scratch into the float64 total every
// kGrmFlushVariants variants. May return before the device finishes (the host block must stay
// valid only until the call returns).
void GrmGpuAdd(GrmGpuState* s, const GenotypeBlockView& block);
// Flushes, waits, and copies the float64 total (n x n row-major, both triangles filled) into `total`.
void GrmGpuResult(GrmGpuState* s, std::vector<double>* total);
}  // namespace internal

// The accumulation on res.device(): Add per block, Result once. Not thread-safe.
class GrmAccumulator {
 public:
  GrmAccumulator(Resources& res, int64_t samples);
  ~GrmAccumulator();
  GrmAccumulator(const GrmAccumulator&) = delete;
  GrmAccumulator& operator=(const GrmAccumulator&) = delete;

  Device device() const;
  int64_t samples() const { return n_; }
  // block.samples must equal samples(). Any number of variants per call (0 is a no-op).
  void Add(const GenotypeBlockView& block);
  // sum over every block added of Z_b^T Z_b: n x n row-major, both triangles filled (symmetric).
  std::vector<double> Result();
  // Host bytes the CPU twin holds for n samples (the float64 total, the float32 scratch and one
  // expanded block of kGrmBlockVariants): for the memory report.
  static int64_t CpuBytes(int64_t samples);

 private:
  void FlushCpu();
  Resources& res_;
  int64_t n_;
  std::vector<double> total_;    // CPU: n x n, upper triangle (row-major) accumulates
  std::vector<float> scratch_;   // CPU: n x n float32, same triangle
  std::vector<float> z_;         // CPU: one expanded block
  int64_t pending_ = 0;          // variants in scratch_ since the last flush
  std::unique_ptr<internal::GrmGpuState, internal::GrmGpuStateDeleter> gpu_;
};

// Variants per block the genotype PCA hands to Add (one SSYRK call each).
constexpr int64_t kGrmBlockVariants = 1024;

// CPU twin alone (tests): Z^T Z of the block added into `total` (n x n row-major, both triangles),
// in float64 directly (expand, then a float64 product): the reference the twins are checked against.
void GrmAccumulateReference(const GenotypeBlockView& block, std::vector<double>* total);

}  // namespace mlforge::kernels
