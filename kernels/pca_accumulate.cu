// CUDA version of PCA's accumulation step (CPU twin and dispatch: pca_accumulate.cc; the contract
// is the comment in pca_accumulate.h).
//
// Numerics: the device works in float64 throughout. Each chunk of rows is shifted and widened to a
// float64 block Y (dense rows: y = x - c rounded to float32 first, exactly the CPU twin's float32
// rows; CSR rows: expanded to a dense float32 tile with ExpandCsrTile, then y = double(x) - c in
// float64), and cuBLAS DSYRK / DGEMM (FP64 tensor cores on H100/H200, as fast as SGEMM there) add
// the block's products straight into the float64 totals with beta = 1. So the GPU is at least as
// accurate as the CPU twin (its float32 block products) and chunks are sized by memory only, not
// by kPcaBlockRows. sum = Y^T 1 is a DGEMM with a ones vector; sum_sq a fixed-grid reduction; both,
// like the GEMMs, in a fixed order, so a pass is deterministic for a given batching.
//
// Overlap: PcaGpuAdd copies the host batch into one of two pinned staging buffers (waiting only
// until that buffer's previous upload is done), uploads it on a copy stream of its own into the
// matching device buffer, and queues the compute on the CudaState stream behind an event. Nothing
// waits for the compute, so batch k+1's host copy and upload overlap batch k's compute. Events:
// `copied` (recorded on the copy stream after the upload; the compute waits on it, the next host
// copy into the same staging buffer syncs on it) and `used` (recorded on the compute stream after
// the batch's compute; the next upload into the same device buffer waits on it).
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/cuda_check.cuh"
#include "kernels/device_buffer.cuh"
#include "kernels/pca_accumulate.h"

namespace mlforge::kernels {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kThreads = 256;
// Blocks of the sum-of-squares reduction: each writes one partial, one block then adds them in order.
constexpr int kSqSlots = 1024;
// Device scratch per chunk of rows (float32 tile + float64 rows + sketch signs or X Q): ~64 MiB.
constexpr int64_t kChunkBytes = int64_t{64} << 20;
constexpr int64_t kMaxChunkRows = int64_t{1} << 20;
constexpr size_t kAlign = 256;
size_t AlignUp(size_t b) { return (b + kAlign - 1) / kAlign * kAlign; }

// The header's SplitMix64 / SketchSignWord, bit for bit.
__device__ __forceinline__ uint64_t SplitMix64Dev(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
__device__ __forceinline__ uint64_t SketchSignWordDev(uint64_t seed, int64_t row, int64_t word) {
  return SplitMix64Dev(seed ^ SplitMix64Dev(static_cast<uint64_t>(row) * 0x9E3779B97F4A7C15ULL +
                                            static_cast<uint64_t>(word)));
}

__device__ __forceinline__ double WarpSum(double v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFullMask, v, off);
  return v;
}

unsigned GridFor(int64_t count, int64_t cap) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(cap, CeilDiv(count, kThreads))));
}

// y[e] = x[e] - shift[e % d] in float64 (kF32Shift: the difference rounded to float32 first, as the
// CPU twin's dense rows), for e < count; block b's share of sum y^2 goes to slots[b]. Grid-stride
// with a grid that depends only on count, so the partials are summed in a fixed order.
template <bool kF32Shift>
__global__ void __launch_bounds__(kThreads)
    ShiftWidenKernel(const float* __restrict__ x, int64_t count, int64_t d, const float* __restrict__ shift,
                     double* __restrict__ y, double* __restrict__ slots) {
  double sq = 0.0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < count; e += stride) {
    const float xv = x[e];
    double v;
    if (shift == nullptr) {
      v = xv;
    } else if (kF32Shift) {
      v = static_cast<double>(__fsub_rn(xv, shift[e % d]));
    } else {
      v = static_cast<double>(xv) - static_cast<double>(shift[e % d]);
    }
    y[e] = v;
    sq = fma(v, v, sq);
  }
  __shared__ double s_warp[kThreads / 32];
  sq = WarpSum(sq);
  if ((threadIdx.x & 31) == 0) s_warp[threadIdx.x >> 5] = sq;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0.0;
    for (int w = 0; w < kThreads / 32; ++w) t += s_warp[w];
    slots[blockIdx.x] = t;
  }
}

// *target += slots[0] + ... + slots[count - 1] (count <= kSqSlots). One block of kSqSlots threads.
__global__ void __launch_bounds__(kSqSlots) SumSlotsKernel(const double* __restrict__ slots, int count,
                                                           double* __restrict__ target) {
  __shared__ double s[kSqSlots];
  s[threadIdx.x] = static_cast<int>(threadIdx.x) < count ? slots[threadIdx.x] : 0.0;
  __syncthreads();
  for (int half = kSqSlots / 2; half > 0; half >>= 1) {
    if (static_cast<int>(threadIdx.x) < half) s[threadIdx.x] += s[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) *target += s[0];
}

// h (l x m, row-major): h[j][i] = SketchSign(seed, row0 + i, j).
__global__ void SignsKernel(uint64_t seed, int64_t row0, int64_t m, int64_t l, double* __restrict__ h) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < l * m; e += stride) {
    const int64_t j = e / m, i = e - j * m;
    const uint64_t w = SketchSignWordDev(seed, row0 + i, j >> 6);
    h[e] = ((w >> (j & 63)) & 1ULL) ? 1.0 : -1.0;
  }
}

// sign_sums[j] += sum_i h[j][i] (h: l x m). One warp per j; the sums are integers, so exact.
__global__ void SignSumsKernel(const double* __restrict__ h, int64_t m, int64_t l, double* __restrict__ sign_sums) {
  const int64_t j = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (j >= l) return;  // uniform within a warp
  double s = 0.0;
  for (int64_t i = lane; i < m; i += 32) s += h[j * m + i];
  s = WarpSum(s);
  if (lane == 0) sign_sums[j] += s;
}

__global__ void FillKernel(double* __restrict__ p, int64_t n, double v) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) p[i] = v;
}

// C (column-major M x N, ldc) = op(A) op(B) + beta C, all float64.
void Dgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k,
           const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  const double alpha = 1.0;
  MLF_CUBLAS_TRY(cublasGemmEx(h, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), &alpha, a,
                              CUDA_R_64F, static_cast<int>(lda), b, CUDA_R_64F, static_cast<int>(ldb), &beta, c,
                              CUDA_R_64F, static_cast<int>(ldc), CUBLAS_COMPUTE_64F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace

namespace internal {

struct PcaGpuState {
  // One of the two alternating upload slots: pinned staging, its device copy, and their events.
  struct Slot {
    explicit Slot(cudaStream_t st) : dev(st) {}
    void* host = nullptr;
    size_t host_cap = 0;
    GrowBuffer<unsigned char> dev;  // allocated on the compute stream
    size_t dev_cap = 0;             // the most bytes ever reserved in dev
    cudaEvent_t copied = nullptr, used = nullptr;
  };

  explicit PcaGpuState(detail::CudaState& c)
      : cuda(c),
        slots{Slot(c.stream), Slot(c.stream)},
        shift(c.stream),
        tile(c.stream),
        q(c.stream),
        y(c.stream),
        aux(c.stream),
        ones(c.stream),
        totals(c.stream),
        sq_slots(c.stream) {
    try {
      MLF_CUDA_TRY(cudaStreamCreateWithFlags(&copy, cudaStreamNonBlocking));
      for (Slot& s : slots) {
        MLF_CUDA_TRY(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
        MLF_CUDA_TRY(cudaEventCreateWithFlags(&s.used, cudaEventDisableTiming));
      }
    } catch (...) {
      Release();
      throw;
    }
  }
  ~PcaGpuState() { Release(); }
  PcaGpuState(const PcaGpuState&) = delete;
  PcaGpuState& operator=(const PcaGpuState&) = delete;

  // Errors ignored: called from the destructor. The device buffers (members) are freed after this,
  // stream-ordered on the compute stream, which is the last to touch them.
  void Release() {
    if (copy != nullptr) cudaStreamSynchronize(copy);
    cudaStreamSynchronize(cuda.stream);
    for (Slot& s : slots) {
      if (s.copied != nullptr) cudaEventDestroy(s.copied);
      if (s.used != nullptr) cudaEventDestroy(s.used);
      if (s.host != nullptr) cudaFreeHost(s.host);
      s.copied = s.used = nullptr;
      s.host = nullptr;
    }
    if (copy != nullptr) cudaStreamDestroy(copy);
    copy = nullptr;
  }

  size_t MatrixSize() const {
    return static_cast<size_t>(pass.mode == PcaAccumulation::kScatter ? pass.d * pass.d : pass.d * l);
  }
  // totals: matrix | sum (d) | sign_sums (l, kSketch) | sum_sq (1)
  size_t TotalsSize() const {
    return MatrixSize() + static_cast<size_t>(pass.d) + (pass.mode == PcaAccumulation::kSketch ? l : 0) + 1;
  }
  double* Matrix() const { return totals.get(); }
  double* Sum() const { return totals.get() + MatrixSize(); }
  double* SignSums() const { return Sum() + pass.d; }
  double* SumSq() const { return totals.get() + TotalsSize() - 1; }

  detail::CudaState& cuda;
  cudaStream_t copy = nullptr;  // uploads only
  Slot slots[2];
  int next = 0;
  PcaPass pass;                // shift and q also live on the device
  int64_t l = 0;               // 0 for kScatter
  int64_t chunk_rows = 1;
  double n = 0;
  std::vector<double> host_q;  // q in float64 (kProject)
  GrowBuffer<float> shift;     // d (when the pass has a shift)
  GrowBuffer<float> tile;      // a CSR chunk expanded: chunk_rows x d
  GrowBuffer<double> q;        // d x l (kProject)
  GrowBuffer<double> y;        // the chunk's shifted rows: chunk_rows x d
  GrowBuffer<double> aux;      // kSketch: signs (l x chunk_rows); kProject: Y Q (chunk_rows x l)
  GrowBuffer<double> ones;     // ones_len ones
  int64_t ones_len = 0;
  GrowBuffer<double> totals;
  GrowBuffer<double> sq_slots;
  std::vector<double> host_totals;
};

namespace {

// Adds the chunk's m shifted rows (s->y, m x d row-major = column-major d x m) to the totals.
// Row-major A (r x c) is column-major A^T, so each product below is written for cuBLAS transposed.
void AddChunk(PcaGpuState* s, int64_t m, int64_t row0) {
  const int64_t d = s->pass.d, l = s->l;
  cublasHandle_t h = s->cuda.cublas;
  cudaStream_t st = s->cuda.stream;
  const double* y = s->y.get();
  Dgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, d, 1, m, y, d, s->ones.get(), m, 1.0, s->Sum(), d);  // sum += Y^T 1
  switch (s->pass.mode) {
    case PcaAccumulation::kScatter: {
      // Column-major upper triangle of Y^T Y = the row-major lower triangle (mirrored in Result).
      const double one = 1.0;
      MLF_CUBLAS_TRY(cublasDsyrk(h, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, static_cast<int>(d), static_cast<int>(m),
                                 &one, y, static_cast<int>(d), &one, s->Matrix(), static_cast<int>(d)));
      break;
    }
    case PcaAccumulation::kSketch: {
      double* hs = s->aux.get();  // H, l x m row-major = column-major m x l
      SignsKernel<<<GridFor(l * m, 4096), kThreads, 0, st>>>(s->pass.sketch_seed, row0, m, l, hs);
      MLF_CUDA_TRY_LAUNCH();
      SignSumsKernel<<<static_cast<unsigned>(CeilDiv(l * 32, kThreads)), kThreads, 0, st>>>(hs, m, l, s->SignSums());
      MLF_CUDA_TRY_LAUNCH();
      // (H Y)^T (column-major d x l) = Y^T H^T: row-major l x d.
      Dgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, d, l, m, y, d, hs, m, 1.0, s->Matrix(), d);
      break;
    }
    case PcaAccumulation::kProject: {
      double* t = s->aux.get();
      // T^T (column-major l x m) = Q^T Y^T: T = Y Q row-major m x l.
      Dgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, l, m, d, s->q.get(), l, y, d, 0.0, t, l);
      // (Y^T T)^T (column-major l x d) = T^T Y: Y^T T row-major d x l.
      Dgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, l, d, m, t, l, y, d, 1.0, s->Matrix(), l);
      break;
    }
  }
}

// x: m rows (dense float32 on the device) -> s->y shifted in float64, sum_sq added.
void ShiftWiden(PcaGpuState* s, const float* x, int64_t m, bool f32_shift) {
  const int64_t count = m * s->pass.d;
  const unsigned grid = GridFor(count, kSqSlots);
  cudaStream_t st = s->cuda.stream;
  const float* c = s->pass.shift.empty() ? nullptr : s->shift.get();
  if (f32_shift) {
    ShiftWidenKernel<true><<<grid, kThreads, 0, st>>>(x, count, s->pass.d, c, s->y.get(), s->sq_slots.get());
  } else {
    ShiftWidenKernel<false><<<grid, kThreads, 0, st>>>(x, count, s->pass.d, c, s->y.get(), s->sq_slots.get());
  }
  MLF_CUDA_TRY_LAUNCH();
  SumSlotsKernel<<<1, kSqSlots, 0, st>>>(s->sq_slots.get(), static_cast<int>(grid), s->SumSq());
  MLF_CUDA_TRY_LAUNCH();
}

}  // namespace

void PcaGpuStateDeleter::operator()(PcaGpuState* s) const { delete s; }

PcaGpuState* PcaGpuCreate(detail::CudaState& cuda) { return new PcaGpuState(cuda); }

void PcaGpuBegin(PcaGpuState* s, const PcaPass& pass) {
  const int64_t d = pass.d, l = pass.mode == PcaAccumulation::kScatter ? 0 : pass.l;
  MLF_ASSERT(d >= 1 && d <= INT_MAX && l <= INT_MAX);
  MLF_ASSERT(pass.shift.empty() || static_cast<int64_t>(pass.shift.size()) == d);
  MLF_ASSERT(pass.mode != PcaAccumulation::kProject || static_cast<int64_t>(pass.q.size()) == d * l);
  cudaStream_t st = s->cuda.stream;
  s->pass = pass;
  s->l = l;
  s->n = 0;
  if (!pass.shift.empty()) Upload(s->shift, pass.shift.data(), pass.shift.size(), st);
  if (pass.mode == PcaAccumulation::kProject) {
    s->host_q.assign(pass.q.begin(), pass.q.end());
    Upload(s->q, s->host_q.data(), s->host_q.size(), st);
  }
  // Bytes per chunk row: float32 tile + float64 rows + signs or X Q + a one.
  const int64_t per_row = 12 * d + 8 * l + 8;
  s->chunk_rows = std::clamp<int64_t>(kChunkBytes / per_row, 1, kMaxChunkRows);
  const size_t tn = s->TotalsSize();
  MLF_CUDA_TRY(cudaMemsetAsync(s->totals.Reserve(tn), 0, tn * sizeof(double), st));
  s->sq_slots.Reserve(kSqSlots);
}

void PcaGpuAdd(PcaGpuState* s, const HostBatch& batch) {
  const int64_t n = batch.rows, d = s->pass.d, l = s->l;
  MLF_ASSERT_MSG(s->totals.get() != nullptr, "PcaGpuAdd before PcaGpuBegin");
  MLF_ASSERT(batch.cols == d && batch.ordinals.empty());
  if (n == 0) return;
  cudaStream_t st = s->cuda.stream;
  const bool dense = batch.layout == Layout::kDense;

  // The staged layout. Dense: n x d floats. CSR: indptr (n + 1) | indices (nnz) | values (nnz),
  // indices and values taken from offset base = indptr[0].
  int64_t base = 0, nnz = 0;
  size_t off_ind = 0, off_val = 0, bytes = 0;
  if (dense) {
    MLF_ASSERT(static_cast<int64_t>(batch.values.size()) == n * d);
    bytes = static_cast<size_t>(n * d) * sizeof(float);
  } else {
    MLF_ASSERT(static_cast<int64_t>(batch.indptr.size()) == n + 1);
    base = batch.indptr[0];
    nnz = batch.indptr[static_cast<size_t>(n)] - base;
    for (int64_t p = base; p < base + nnz; ++p) {
      // A bad index would be an out-of-bounds device write: check on the host first.
      MLF_EXPECTS(batch.indices[static_cast<size_t>(p)] < static_cast<uint64_t>(d),
                  "PCA: a sparse row has column index {} but feature_dim is {}", batch.indices[static_cast<size_t>(p)],
                  d);
    }
    off_ind = AlignUp(static_cast<size_t>(n + 1) * sizeof(int64_t));
    off_val = AlignUp(off_ind + static_cast<size_t>(nnz) * sizeof(uint32_t));
    bytes = off_val + static_cast<size_t>(nnz) * sizeof(float);
  }

  PcaGpuState::Slot& slot = s->slots[s->next];
  s->next ^= 1;
  MLF_CUDA_TRY(cudaEventSynchronize(slot.copied));  // the staging buffer's previous upload is done
  if (bytes > slot.host_cap) {
    if (slot.host != nullptr) MLF_CUDA_TRY(cudaFreeHost(slot.host));
    slot.host = nullptr;
    slot.host_cap = 0;
    const size_t want = bytes + bytes / 8;
    MLF_CUDA_TRY(cudaHostAlloc(&slot.host, want, cudaHostAllocDefault));
    slot.host_cap = want;
  }
  auto* hb = static_cast<unsigned char*>(slot.host);
  if (dense) {
    std::memcpy(hb, batch.values.data(), bytes);
  } else {
    std::memcpy(hb, batch.indptr.data(), static_cast<size_t>(n + 1) * sizeof(int64_t));
    if (nnz > 0) {
      std::memcpy(hb + off_ind, batch.indices.data() + base, static_cast<size_t>(nnz) * sizeof(uint32_t));
      std::memcpy(hb + off_val, batch.values.data() + base, static_cast<size_t>(nnz) * sizeof(float));
    }
  }

  // The device copy: reused once the compute of the batch that last used it is done (`used`). When
  // Reserve may reallocate (stream-ordered on the compute stream), the copy waits for that too.
  unsigned char* dev = slot.dev.Reserve(bytes);
  if (bytes > slot.dev_cap) {
    slot.dev_cap = bytes;
    MLF_CUDA_TRY(cudaEventRecord(slot.used, st));
  }
  MLF_CUDA_TRY(cudaStreamWaitEvent(s->copy, slot.used, 0));
  MLF_CUDA_TRY(cudaMemcpyAsync(dev, hb, bytes, cudaMemcpyHostToDevice, s->copy));
  MLF_CUDA_TRY(cudaEventRecord(slot.copied, s->copy));
  MLF_CUDA_TRY(cudaStreamWaitEvent(st, slot.copied, 0));

  // Scratch for the largest chunk of this batch (stream-ordered: reuse waits for earlier chunks).
  const int64_t mmax = std::min(n, s->chunk_rows);
  s->y.Reserve(static_cast<size_t>(mmax * d));
  if (l > 0) s->aux.Reserve(static_cast<size_t>(mmax * l));
  if (!dense) s->tile.Reserve(static_cast<size_t>(mmax * d));
  if (s->ones_len < mmax) {
    FillKernel<<<GridFor(mmax, 1024), kThreads, 0, st>>>(s->ones.Reserve(static_cast<size_t>(mmax)), mmax, 1.0);
    MLF_CUDA_TRY_LAUNCH();
    s->ones_len = mmax;
  }

  const auto* dip = reinterpret_cast<const int64_t*>(dev);
  const auto* dind = reinterpret_cast<const uint32_t*>(dev + off_ind);
  const auto* dval = reinterpret_cast<const float*>(dev + off_val);
  for (int64_t r0 = 0; r0 < n; r0 += s->chunk_rows) {
    const int64_t m = std::min(s->chunk_rows, n - r0);
    if (dense) {
      ShiftWiden(s, reinterpret_cast<const float*>(dev) + r0 * d, m, true);
    } else {
      ExpandCsrTile(dip, dind, dval, base, r0, m, d, s->tile.get(), st);
      ShiftWiden(s, s->tile.get(), m, false);
    }
    AddChunk(s, m, batch.first_row + r0);
  }
  MLF_CUDA_TRY(cudaEventRecord(slot.used, st));
  s->n += static_cast<double>(n);
}

void PcaGpuResult(PcaGpuState* s, PcaSums* out) {
  MLF_ASSERT_MSG(s->totals.get() != nullptr, "PcaGpuResult before PcaGpuBegin");
  const int64_t d = s->pass.d, l = s->l;
  const size_t tn = s->TotalsSize();
  s->host_totals.resize(tn);
  Download(s->host_totals.data(), s->totals.get(), tn, s->cuda.stream);
  s->cuda.Synchronize();  // the one host sync of a pass
  *out = PcaSums(s->pass.mode, d, l);
  const double* t = s->host_totals.data();
  const size_t msize = s->MatrixSize();
  std::copy(t, t + msize, out->matrix.begin());
  if (s->pass.mode == PcaAccumulation::kScatter) {
    double* m = out->matrix.data();
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = i + 1; j < d; ++j) m[i * d + j] = m[j * d + i];
  }
  std::copy(t + msize, t + msize + d, out->sum.begin());
  if (s->pass.mode == PcaAccumulation::kSketch) std::copy(t + msize + d, t + msize + d + l, out->sign_sums.begin());
  out->sum_sq = t[tn - 1];
  out->n = s->n;
}

}  // namespace internal
}  // namespace mlforge::kernels
