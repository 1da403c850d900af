// The k-means coarse step: assign every row to its nearest center and accumulate the sufficient
// statistics of the update (per-center weighted sums and weights, and the weighted cost).
// DESIGN.md "CPU and GPU": kmeans_assign.cc holds the CPU twin and the dispatch, kmeans_assign.cu
// the CUDA code. Plain C++: no CUDA types here.
//
// Numerics (both devices):
//  - The argmin uses ||c||^2 - 2 x.c in float32 (||x||^2 is the same for every center of a row, so
//    it is left out). Its rounding error is about 2^-23 * (||x||^2 + ||c||^2) * a small factor, so
//    two centers closer than that to equidistant may be ordered either way; exact ties go to the
//    lowest center index on both devices.
//  - The reported distance of a row (min_dist) and the cost are recomputed exactly for the chosen
//    center as sum_j (x_j - c_j)^2 (float64 on the CPU and in the GPU GEMM path, float32 in the
//    GPU fused path where d <= 32), so they do not suffer the cancellation of the expanded form and
//    are never negative.
//  - Sums, weights and cost accumulate in float64 on the CPU. On the GPU see KMeansGpuPath.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/batch.h"
#include "kernels/column_stats.h"  // HostDenseView, DeviceDenseView

namespace mlforge {
class Resources;
enum class Device;
namespace detail {
struct CudaState;
}
}  // namespace mlforge

namespace mlforge::kernels {

// A CSR matrix in HOST memory: row i holds values[p] at column indices[p] for p in
// [indptr[i], indptr[i + 1]). indptr has rows + 1 entries, nondecreasing, indptr[0] may be > 0
// (a view into a larger matrix); every index < cols. Duplicate indices in a row add up.
// Non-owning.
struct HostCsrView {
  const int64_t* indptr = nullptr;
  const uint32_t* indices = nullptr;
  const float* values = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
};

// A view of a CSR HostBatch (throws UserError for a dense batch).
HostCsrView CsrView(const HostBatch& batch);

// Centers in HOST memory: data is k x d row-major float32; norms (k entries, ||c_j||^2) may be
// null, in which case the step computes them (O(k d), negligible next to O(n k d)).
struct HostKMeansCenters {
  const float* data = nullptr;
  const float* norms = nullptr;
  int64_t k = 0;
  int64_t d = 0;
};

// Outputs in HOST memory; every pointer may be null (that output is skipped, and the work for
// it: e.g. no sums for an evaluation pass). The per-row outputs are overwritten, the statistics
// are ADDED to (so one buffer can accumulate several batches; zero them first):
//   labels:   n entries, index of the nearest center (ties: lowest index)
//   min_dist: n entries, squared Euclidean distance to that center
//   sums:     k x d row-major, += sum over the rows assigned to center j of w_i * x_i
//   weights:  k entries, += sum of w_i over the rows assigned to center j
//   cost:     1 entry, += sum of w_i * min_dist_i
struct HostKMeansOutput {
  int32_t* labels = nullptr;
  float* min_dist = nullptr;
  double* sums = nullptr;
  double* weights = nullptr;
  double* cost = nullptr;
};

// out[i] = ||rows[i]||^2 for a HOST n x d row-major matrix, accumulated in float64.
void SquaredNormsCpu(const float* rows, int64_t n, int64_t d, float* out);

// CPU twin, dense rows. x: host, n x d row-major. row_weights: host, n entries, or null for all
// ones. Rows are cut into tiles (up to 512 rows, ~1 MiB of rows or of dot products at most, 4-16
// rows when d is large); each tile's n_tile x k dot products come from one single-threaded
// OpenBLAS SGEMM (Eigen in builds without OpenBLAS; for k < 16 and d >= 64 a register-blocked
// loop that reads each row once) and the argmin and accumulation follow while the tile is in
// cache, so memory is O(threads * (tile * k + k * d)), never O(n k). Uses up to `threads` OpenMP
// threads (<= 0: all) and sets OpenBLAS to one thread; each thread accumulates into its own
// buffers, added in thread order, so for a fixed thread count the result is deterministic.
void KMeansAssignCpu(const HostDenseView& x, const float* row_weights, const HostKMeansCenters& centers,
                     const HostKMeansOutput& out, int threads);

// CPU twin, CSR rows (x.cols == centers.d). Dot products are sparse x dense against the
// transposed centers (O(nnz k) per batch), never densifying the rows. Same outputs and
// guarantees as the dense overload; the exact distance is ||c||^2 + sum_nnz (v^2 - 2 v c_j) in
// float64 (repeated columns of a row merged first), clamped at 0.
void KMeansAssignCpu(const HostCsrView& x, const float* row_weights, const HostKMeansCenters& centers,
                     const HostKMeansOutput& out, int threads);

// ---------------------------------------------------------------------------------------------
// CUDA.

// Which kernel the GPU step uses.
//  kFused: one thread per row, centers and per-block partial statistics in shared memory; for
//          d <= 32 and small k (the memory-bound regime: X is read once, nothing else goes to
//          DRAM). Sums and weights are accumulated per block in float32 over at most 2048 rows
//          (relative error <= 2048 * 2^-24 ~ 1.2e-4 of sum |w x| in the worst case, ~1e-6
//          typically), then added to the float64 totals with one atomic per entry per block.
//  kGemm:  cuBLAS SGEMM of a row tile against all centers into a tile-sized workspace, then a
//          fused epilogue (one warp per row: argmin, exact distance in float64, float64 atomics
//          straight into the sums and weights; no float32 stage). For large k or large d.
//          Float64 atomics make the last bits of the sums depend on scheduling (~1e-16 relative).
//  kAuto:  kFused when d <= 32 and k * round_up_pow2(d) <= 8192, else kGemm.
enum class KMeansGpuPath { kAuto, kFused, kGemm };

struct KMeansGpuOptions {
  KMeansGpuPath path = KMeansGpuPath::kAuto;
  // SGEMM with TF32 tensor cores (GEMM path): ~3x faster, ~1e-3 relative error in the dot
  // products, so near-ties flip more often. Opt-in (DESIGN.md "Numerics").
  bool allow_tf32 = false;
  // Rows per GEMM tile; 0 picks ~16 MiB of tile (so the tile stays in L2 between the GEMM and the
  // epilogue), at least 256 rows.
  int64_t tile_rows = 0;
};

// The path kAuto resolves to for this shape (for logs and benchmarks).
KMeansGpuPath ResolveKMeansGpuPath(int64_t d, int64_t k, const KMeansGpuOptions& opt);

// Centers in DEVICE memory (of the CudaState's device): data k x d row-major; norms k entries or
// null (then computed into the workspace).
struct DeviceKMeansCenters {
  const float* data = nullptr;
  const float* norms = nullptr;
  int64_t k = 0;
  int64_t d = 0;
};

// Outputs in DEVICE memory, same meaning and same add-to rule as HostKMeansOutput.
struct DeviceKMeansOutput {
  int32_t* labels = nullptr;
  float* min_dist = nullptr;
  double* sums = nullptr;
  double* weights = nullptr;
  double* cost = nullptr;
};

// Bytes of device workspace KMeansAssignGpu needs for n rows (0 is a valid answer).
size_t KMeansAssignGpuWorkspaceBytes(int64_t n, int64_t d, int64_t k, const KMeansGpuOptions& opt);

// CUDA step on device data. x: device, n x d row-major; row_weights: device, n entries, or null.
// workspace: device, at least KMeansAssignGpuWorkspaceBytes(...) bytes, 256-byte aligned.
// Everything is enqueued on cuda.stream (cuBLAS on cuda.cublas) and nothing synchronises with
// the host: the caller copies the results back and syncs once.
void KMeansAssignGpu(detail::CudaState& cuda, const DeviceDenseView& x, const float* row_weights,
                     const DeviceKMeansCenters& centers, const DeviceKMeansOutput& out, void* workspace,
                     size_t workspace_bytes, const KMeansGpuOptions& opt = {});

// ---------------------------------------------------------------------------------------------
// The step for the training loop: host batches in, host statistics out, on res.device().

// Host statistics of one or more batches (what the loop all-reduces through the Communicator).
struct KMeansStats {
  int64_t k = 0;
  int64_t d = 0;
  std::vector<double> sums;     // k x d row-major; empty: sums are not computed
  std::vector<double> weights;  // k
  double cost = 0.0;            // sum of w_i * squared distance to the nearest center

  KMeansStats() = default;
  // Zeroed statistics; with_sums = false for passes that only need cost and counts (evaluation).
  KMeansStats(int64_t k, int64_t d, bool with_sums = true);
  void Clear();  // zero everything, keeping the shape
};

namespace internal {
struct KMeansGpuState;  // device buffers of a KMeansAssigner; defined in kmeans_assign.cu
struct KMeansGpuStateDeleter {
  void operator()(KMeansGpuState* s) const;
};
}  // namespace internal

// Holds the centers (and on the GPU the device buffers: centers, the uploaded batch, workspace,
// accumulators, all grown on demand and reused) across batches, so the loop calls SetCenters once
// per update and Assign once per batch. On the GPU, Assign uploads the batch, runs the step and
// copies the statistics back with exactly one host sync. Dense and CSR batches on both devices
// (the GPU expands CSR rows into a bounded dense tile on the device; the host batch is never
// densified). Not thread-safe (one per training thread, like Resources).
class KMeansAssigner {
 public:
  explicit KMeansAssigner(Resources& res, const KMeansGpuOptions& gpu_options = {});
  ~KMeansAssigner();
  KMeansAssigner(const KMeansAssigner&) = delete;
  KMeansAssigner& operator=(const KMeansAssigner&) = delete;

  Device device() const;
  // centers: host, k x d row-major float32; copied (and uploaded on the GPU).
  void SetCenters(const float* centers, int64_t k, int64_t d);
  int64_t k() const { return k_; }
  int64_t d() const { return d_; }

  // batch: host, dense or CSR, cols == d() (UserError otherwise); weights honoured when present.
  // stats: added to (shape k() x d(); sums skipped when stats->sums is empty); may be null.
  // labels / min_dist: resized to batch.rows and filled when not null.
  void Assign(const HostBatch& batch, KMeansStats* stats, std::vector<int32_t>* labels = nullptr,
              std::vector<float>* min_dist = nullptr);

 private:
  Resources& res_;
  KMeansGpuOptions gpu_options_;
  int64_t k_ = 0;
  int64_t d_ = 0;
  std::vector<float> centers_;  // host copy, k x d
  std::vector<float> norms_;    // host, k
  std::unique_ptr<internal::KMeansGpuState, internal::KMeansGpuStateDeleter> gpu_;
};

// ---------------------------------------------------------------------------------------------
// Exact Lloyd passes over rows that stay the same from pass to pass, with Hamerly's bounds
// (G. Hamerly, "Making k-means even faster", SDM 2010). CPU, dense rows.
//
// Full-batch Lloyd reads the same rows every pass while the centers move less and less. For each
// row this keeps its label and a lower bound on its distance to every other center. After an
// update that bound drops by the largest distance any other center moved (triangle inequality).
// A row whose exact distance u to its own center is below max(lower bound, half the distance from
// its center to the nearest other one) keeps its label with no dot products at all; the distance u
// is needed anyway for the cost, so the upper bound is always exact. Only the other rows go through
// the tile GEMM of KMeansAssignCpu, which also gives them a fresh lower bound from the second
// nearest center (less the float32 rounding bound of the GEMM, so the bound stays a bound).
//
// The statistics are Lloyd's: the same labels, sums and cost as KMeansAssignCpu, except where a
// row is within the GEMM's float32 rounding of equidistant from two centers (KMeansAssignCpu may
// then pick either; a row kept by its bounds is provably nearer its own center, and a tie never
// keeps a row). Memory: 8 bytes per row (label, bound). CPU only: the GPU paths are unchanged.
// With k < 16 every pass is plain KMeansAssignCpu: a row's few dot products cost about what the
// bound test does.
class KMeansBoundedLloyd {
 public:
  explicit KMeansBoundedLloyd(int threads) : threads_(threads) {}

  // Starts a pass with these centers (host, k x d row-major; copied). A pass after another with
  // the same k and d uses the bounds the previous one left; otherwise every row is assigned in
  // full (as after Reset()).
  void BeginPass(const float* centers, int64_t k, int64_t d);
  // Batch `index` of the current pass (host, dense; `index` numbers the batches in pass order and
  // must name the same rows every pass: a batch with a new row count is assigned in full). CSR
  // batches are assigned in full by KMeansAssignCpu. stats: added to, as KMeansAssigner::Assign.
  void Assign(size_t index, const HostBatch& batch, KMeansStats* stats);
  // Forgets every bound (the next pass assigns every row in full).
  void Reset();

  // Rows of the current pass so far, and how many of them needed their dot products.
  int64_t rows() const { return rows_; }
  int64_t full_rows() const { return full_rows_; }

 private:
  struct BatchBounds {
    int64_t pass = -1;             // the pass that last wrote these bounds
    std::vector<int32_t> labels;   // per row
    std::vector<float> lower;      // per row: <= the distance to every other center
  };
  int threads_;
  int64_t k_ = 0, d_ = 0, pass_ = -1;
  bool have_previous_ = false;   // centers_ of the previous pass are valid
  std::vector<float> centers_;   // this pass's centers
  std::vector<float> norms_;     // ||c_j||^2 (float32, for the GEMM argmin)
  std::vector<double> shift_;    // distance each center moved since the previous pass
  std::vector<double> half_sep_; // half the distance to the nearest other center
  double shift_max_ = 0, shift_second_ = 0;
  int64_t shift_argmax_ = -1;
  std::vector<BatchBounds> batches_;
  int64_t rows_ = 0, full_rows_ = 0;
};

namespace internal {
// The GPU half of KMeansAssigner (kmeans_assign.cu; "built without CUDA" stubs otherwise).
KMeansGpuState* KMeansGpuCreate(detail::CudaState& cuda, const KMeansGpuOptions& opt);
void KMeansGpuSetCenters(KMeansGpuState* s, const float* centers, const float* norms, int64_t k, int64_t d);
void KMeansGpuAssign(KMeansGpuState* s, const HostBatch& batch, KMeansStats* stats, std::vector<int32_t>* labels,
                     std::vector<float>* min_dist);
}  // namespace internal

}  // namespace mlforge::kernels
