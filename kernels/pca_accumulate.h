// PCA's coarse step: one pass over mini-batches accumulating, in float64, the sums the model is
// solved from (DESIGN.md "CPU and GPU"). pca_accumulate.cc holds the CPU (Eigen) twin and the
// dispatch, pca_accumulate.cu the CUDA code. Plain C++: no CUDA types here.
//
// Every mode works on shifted rows y_i = x_i - c, where c (the `shift`, d floats, or zero) is fixed
// for the whole pass. The PCA loop picks c = the mean of the first mini-batch, so that the later
// centring (subtracting n * delta * delta^T with delta = mean(y)) cancels almost nothing even when
// the data's mean is far larger than its spread. The totals, with Y the n x d matrix of shifted rows:
//   kScatter: matrix = Y^T Y (d x d, symmetric, full)                      (regular mode)
//   kSketch:  matrix = H Y (l x d), sign_sums = H 1 (l)                   (randomized mode, one pass)
//             H is l x n with entries +-1, a fixed function of (sketch_seed, row ordinal, component):
//             SketchSign() below. So the sketch does not depend on how rows are cut into batches,
//             on the thread count or on the device.
//   kProject: matrix = Y^T (Y Q) (d x l) for a given Q (d x l)            (power iterations)
// and in every mode n (rows), sum = Y^T 1 (d) and sum_sq = sum_i ||y_i||^2.
//
// Numerics (CPU). Dense rows: the shifted rows of a block of PcaBlockRows(d) rows are multiplied in
// float32 (OpenBLAS SYRK when the build has it, else Eigen; Eigen GEMMs for the sketch and the
// projection) and each block's product is added to the
// float64 totals, so float32 rounding accumulates over at most that many terms. The depth is a
// trade: shallower is more accurate, but every block costs a d x d float64 add, which for large d
// costs more than the product itself. Measured (6000 x 30 rows whose eigenvalues span 4,400x):
// singular values within 1.1e-6 (Eigen) / 2.2e-6 (OpenBLAS) relative of float64 at depth 64, 7e-6
// at depth 256 (Eigen); 20,000 x 1024 rows with the top 30 eigenvalues spanning 3,100x: 3.2e-7 at
// depth 1024 and 1.5e-7 at depth 512 (OpenBLAS). sum and
// sum_sq are float64 throughout. CSR rows are never densified and never
// shifted: their products are formed and added in float64 (products of two floats are exact in
// float64) and the shift is applied to the totals algebraically, e.g.
//   sum_i (x_i - c)(x_i - c)^T = X^T X - c s^T - s c^T + n c c^T,   s = X^T 1,
// which cancels about 2^-53 |c|^2 / variance (negligible unless |c| exceeds the spread by ~1e5;
// the loop only shifts when the first batch is dense, and sparse data rarely has such a mean).
// Numerics (GPU, pca_accumulate.cu): every product is float64 (rows shifted in float32 like the
// CPU's, then widened; cuBLAS DSYRK / DGEMM with beta = 1 into the float64 totals; FP64 is about
// as fast as FP32 on H100/H200); CSR rows are expanded into bounded dense tiles on the device
// and shifted there (the host batch is never densified). Row weights are ignored (PCA has none
// in SageMaker).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/batch.h"
#include "kernels/column_stats.h"  // HostDenseView, DeviceDenseView
#include "kernels/kmeans_assign.h"  // HostCsrView, CsrView

namespace mlforge {
class Resources;
enum class Device;
namespace detail {
struct CudaState;
}
}  // namespace mlforge

namespace mlforge::kernels {

enum class PcaAccumulation { kScatter, kSketch, kProject };

// Rows per float32 block before its product is added to the float64 totals: 64 below d = 256, 256
// below d = 1024, kPcaBlockRows from there (deeper blocks for wide data, so that the d x d float64
// adds stay a small share: at d = 1024, 512-row blocks run the pass 1.4x faster than 256-row ones).
constexpr int64_t kPcaBlockRows = 512;
inline int64_t PcaBlockRows(int64_t d) { return d < 256 ? 64 : (d < 1024 ? 256 : kPcaBlockRows); }

// The sign of H[j][r] (component j in [0, l), row ordinal r): +1 or -1, bit (j % 64) of
// SplitMix64(seed ^ SplitMix64(r * 0x9E3779B97F4A7C15 + j / 64)). The CUDA code computes the same.
inline uint64_t SplitMix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
inline uint64_t SketchSignWord(uint64_t seed, int64_t row, int64_t word) {
  return SplitMix64(seed ^ SplitMix64(static_cast<uint64_t>(row) * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(word)));
}
inline float SketchSign(uint64_t seed, int64_t row, int64_t j) {
  return ((SketchSignWord(seed, row, j / 64) >> (j % 64)) & 1ULL) ? 1.0f : -1.0f;
}

// Host totals of one pass (what the loop all-reduces through the Communicator: every member is a
// plain sum over rows, so summing the totals of any split of the rows gives the totals of all rows).
struct PcaSums {
  PcaAccumulation mode = PcaAccumulation::kScatter;
  int64_t d = 0;
  int64_t l = 0;                  // kSketch, kProject: sketch / subspace width; kScatter: 0
  double n = 0;                   // rows
  double sum_sq = 0;              // sum_i ||y_i||^2
  std::vector<double> sum;        // d: sum_i y_i
  std::vector<double> matrix;     // kScatter d x d, kSketch l x d, kProject d x l; row-major
  std::vector<double> sign_sums;  // kSketch: l entries, sum_i H[:, i]; otherwise empty

  PcaSums() = default;
  PcaSums(PcaAccumulation mode, int64_t d, int64_t l);  // zeroed
  void Clear();                                        // zero everything, keeping the shape
  void Add(const PcaSums& other);                      // same shape
};

// The settings of one pass.
struct PcaPass {
  PcaAccumulation mode = PcaAccumulation::kScatter;
  int64_t d = 0;
  int64_t l = 0;                   // kSketch / kProject: >= 1; kScatter: ignored
  std::vector<float> shift;        // empty (no shift) or d values
  std::vector<float> q;            // kProject: d x l row-major (the subspace); otherwise empty
  uint64_t sketch_seed = 0;        // kSketch
};

// CPU twins. x: host. Totals are ADDED to `out` (shape from `pass`). Rows are cut into blocks of
// PcaBlockRows(d); up to `threads` OpenMP threads (<= 0: all), each adding into its own float64
// partial that is merged in thread order, so for a fixed thread count the result is deterministic.
// first_row: the ordinal of x's first row (kSketch signs); CSR rows may carry column indices in any
// order and repeats (they add up). Dense kScatter: with OpenBLAS and d > 256, one multi-threaded
// SYRK per block into the single float64 total; otherwise threads split the rows while their
// float64 partials fit in partial_budget_bytes, else split the d x d output into tiles (Eigen
// GEMMs, no partials). partial_budget_bytes = 0 forces the tiles (tests).
constexpr size_t kPcaPartialBudgetBytes = size_t{256} << 20;
void PcaAccumulateCpu(const PcaPass& pass, const HostDenseView& x, int64_t first_row, PcaSums* out, int threads,
                      size_t partial_budget_bytes = kPcaPartialBudgetBytes);
void PcaAccumulateCpu(const PcaPass& pass, const HostCsrView& x, int64_t first_row, PcaSums* out, int threads);

// Bytes of host memory a pass's accumulator needs on the CPU for `threads` threads (the float64
// totals, the per-thread partials and the float32 block buffers), for the loop's memory check.
size_t PcaAccumulateCpuBytes(const PcaPass& pass, int threads);

namespace internal {
struct PcaGpuState;  // device buffers of a PcaAccumulator; defined in pca_accumulate.cu
struct PcaGpuStateDeleter {
  void operator()(PcaGpuState* s) const;
};
// The GPU side of PcaAccumulator (pca_accumulate.cu; stubs that throw without CUDA).
PcaGpuState* PcaGpuCreate(detail::CudaState& cuda);
// Uploads the pass's shift and Q and zeroes the device totals.
void PcaGpuBegin(PcaGpuState* s, const PcaPass& pass);
// Uploads one batch (dense or CSR, cols == pass.d) and adds it to the device totals. May return
// before the work finishes (the host batch must stay valid only until the call returns: it is
// copied to pinned staging first), so the upload of the next batch overlaps this batch's update.
void PcaGpuAdd(PcaGpuState* s, const HostBatch& batch);
// Waits for the device and copies the totals into `out` (shape from the pass), replacing it.
void PcaGpuResult(PcaGpuState* s, PcaSums* out);
}  // namespace internal

// The step for the training loop: host batches in, host totals out, on res.device(). Holds the
// pass settings and (on the GPU) the device-resident float64 totals and staging buffers, so a pass
// is Begin, Add per batch, Result once. Not thread-safe (one per training thread, like Resources).
class PcaAccumulator {
 public:
  explicit PcaAccumulator(Resources& res);
  ~PcaAccumulator();
  PcaAccumulator(const PcaAccumulator&) = delete;
  PcaAccumulator& operator=(const PcaAccumulator&) = delete;

  Device device() const;
  void Begin(PcaPass pass);
  // batch: host, dense or CSR, cols == d (UserError otherwise), rows in order (no ordinals). Row
  // ordinals for the sketch signs are batch.first_row + i.
  void Add(const HostBatch& batch);
  // The totals of every batch added since Begin.
  PcaSums Result();

 private:
  Resources& res_;
  PcaPass pass_;
  PcaSums host_;
  std::unique_ptr<internal::PcaGpuState, internal::PcaGpuStateDeleter> gpu_;
};

}  // namespace mlforge::kernels
