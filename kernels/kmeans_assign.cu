// CUDA version of the k-means assign-and-accumulate step (CPU twin and dispatch:
// kmeans_assign.cc). Two paths, chosen by ResolveKMeansGpuPath (see kmeans_assign.h):
//  - fused: one kernel, one thread per row, centers (zero-padded to a power of two >= 4 columns)
//    and per-block partial statistics in shared memory, summed per warp and center before the
//    shared atomics. X is read from DRAM exactly once.
//  - gemm: per row tile, cuBLAS SGEMM (tile x k dot products into a workspace sized to stay in
//    L2) followed by an epilogue kernel (one warp per row) that does the argmin, the exact
//    distance and the float64 atomic accumulation; the epilogue of one tile runs on a second
//    stream beside the SGEMM of the next (two tile buffers).
// Nothing here synchronises with the host; KMeansGpuAssign (the KMeansAssigner's GPU half) does
// exactly one cudaStreamSynchronize per batch.
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/error.h"
#include "kernels/cuda_check.cuh"
#include "kernels/device_buffer.cuh"
#include "kernels/kmeans_assign.h"

namespace mlforge::kernels {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;

constexpr int kFusedThreads = 256;
// Rows one fused block handles; bounds the float32 partial sums (error bound in the header).
constexpr int kFusedRowsPerBlock = 2048;
constexpr int kMaxFusedD = 32;

constexpr int kEpilogueThreads = 256;
constexpr int kEpilogueWarps = kEpilogueThreads / 32;
// The GEMM path adds each block's cost into one of these slots (spread over addresses so that
// thousands of blocks do not serialise on one float64 atomic), then one tiny kernel sums them.
constexpr int kCostSlots = 256;

// The default GEMM tile: ~16 MiB of dot products, small enough to stay in the L2 of an H100/H200
// (50 MiB) between the SGEMM that writes it and the epilogue that reads it.
constexpr int64_t kTileBytes = int64_t{16} << 20;
constexpr int64_t kMinTileRows = 256;

constexpr size_t kAlign = 256;
size_t AlignUp(size_t b) { return (b + kAlign - 1) / kAlign * kAlign; }

// ---- Kernels --------------------------------------------------------------------------------

__device__ __forceinline__ double WarpSum(double v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFullMask, v, off);
  return v;
}

// Adds per-warp values (one per warp, taken from lane 0) into *target with one atomic per block.
// Every thread of the block must call it.
__device__ void BlockAtomicAddCost(double lane0_value, double* target) {
  __shared__ double s_part[32];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = (blockDim.x + 31) >> 5;
  if (lane == 0) s_part[warp] = lane0_value;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int i = 0; i < warps; ++i) total += s_part[i];
    if (total != 0.0) atomicAdd(target, total);
  }
}

// out[j] = ||c_j||^2 for c: k x d row-major (device). One warp per row, float64 accumulation.
__global__ void SquaredNormsKernel(const float* __restrict__ c, int64_t k, int64_t d, float* __restrict__ out) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (row >= k) return;  // whole warps leave together: row is uniform within a warp
  double s = 0.0;
  for (int64_t t = lane; t < d; t += 32) {
    const double v = c[row * d + t];
    s += v * v;
  }
  s = WarpSum(s);
  if (lane == 0) out[row] = static_cast<float>(s);
}

// The fused path. kPad: d rounded up to a power of two >= 4 (<= 32), so a row lives in kPad
// registers and a center row is kPad / 4 aligned float4 loads from shared memory; the padding is
// zero in both, so it adds nothing to dots or distances. kVec: rows may be read as float4
// (d % 4 == 0 and x 16-byte aligned).
//
// Shared memory (dynamic, floats): centers k x kPad | norms k | weights k | sums k x kPad (only
// when sums != nullptr) | a staging area of 32 x (kPad + 1) per warp.
//
// Accumulation: each warp stages its 32 rows (weighted, plus the weight in column kPad) and then,
// once per distinct center among them, lane t adds column t over that center's rows and makes one
// shared-memory atomic. Atomics per 32 rows: (distinct centers) x d instead of 32 x d, and no two
// lanes of a warp ever hit one address (on skewed data most rows pick a few centers, and per-row
// atomics serialised on them).
//
// x: n x d row-major (device); w: n or null; centers: k x d; cnorms: k. Outputs as
// DeviceKMeansOutput (each may be null).
template <int kPad, bool kVec>
__global__ void __launch_bounds__(kFusedThreads)
    FusedAssignKernel(const float* __restrict__ x, const float* __restrict__ w, int64_t n, int d,
                      const float* __restrict__ centers, const float* __restrict__ cnorms, int k,
                      int32_t* __restrict__ labels, float* __restrict__ min_dist, double* __restrict__ sums,
                      double* __restrict__ weights, double* __restrict__ cost) {
  constexpr int kStride = kPad + 1;  // odd: a lane's row and a column across lanes are conflict-free
  extern __shared__ float4 smem_f4[];  // float4 for 16-byte alignment of the center rows
  float* s_c = reinterpret_cast<float*>(smem_f4);
  float* s_cn = s_c + k * kPad;
  float* s_w = s_cn + k;
  float* s_sum = s_w + k;
  const int lane = threadIdx.x & 31;
  float* stage = s_sum + (sums != nullptr ? k * kPad : 0) + (threadIdx.x >> 5) * 32 * kStride;

  for (int idx = threadIdx.x; idx < k * kPad; idx += blockDim.x) {
    const int j = idx / kPad;
    const int t = idx - j * kPad;
    s_c[idx] = t < d ? centers[static_cast<int64_t>(j) * d + t] : 0.0f;
    if (sums != nullptr) s_sum[idx] = 0.0f;
  }
  for (int j = threadIdx.x; j < k; j += blockDim.x) {
    s_cn[j] = cnorms[j];
    s_w[j] = 0.0f;
  }
  __syncthreads();

  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kFusedRowsPerBlock;
  const int64_t end = min(n, begin + kFusedRowsPerBlock);
  double cost_acc = 0.0;
  // base is uniform across the warp, so every lane runs the same iterations (the shuffles and
  // ballots below need the whole warp); lanes past the end take part with valid = false.
  for (int64_t base = begin + (threadIdx.x - lane); base < end; base += blockDim.x) {
    const int64_t i = base + lane;
    const bool valid = i < end;
    int best_j = -1;
    if (valid) {
      const float* xi = x + i * d;
      float xr[kPad];
      if constexpr (kVec) {
#pragma unroll
        for (int q = 0; q < kPad / 4; ++q) {
          float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
          if (4 * q < d) v = __ldg(reinterpret_cast<const float4*>(xi) + q);
          xr[4 * q] = v.x;
          xr[4 * q + 1] = v.y;
          xr[4 * q + 2] = v.z;
          xr[4 * q + 3] = v.w;
        }
      } else {
#pragma unroll
        for (int t = 0; t < kPad; ++t) xr[t] = t < d ? __ldg(xi + t) : 0.0f;
      }

      // Argmin of ||c||^2 - 2 x.c; strict < over ascending j keeps the lowest index on ties.
      float best = INFINITY;
      best_j = 0;
      for (int j = 0; j < k; ++j) {
        const float4* cj = reinterpret_cast<const float4*>(s_c + j * kPad);
        float dot0 = 0.0f, dot1 = 0.0f;  // two chains: half the FMA latency per center
#pragma unroll
        for (int q = 0; q < kPad / 4; ++q) {
          const float4 c4 = cj[q];
          dot0 = fmaf(xr[4 * q], c4.x, dot0);
          dot1 = fmaf(xr[4 * q + 1], c4.y, dot1);
          dot0 = fmaf(xr[4 * q + 2], c4.z, dot0);
          dot1 = fmaf(xr[4 * q + 3], c4.w, dot1);
        }
        const float v = s_cn[j] - 2.0f * (dot0 + dot1);
        if (v < best) {
          best = v;
          best_j = j;
        }
      }

      // The exact distance to the chosen center (no cancellation, never negative).
      const float* cb = s_c + best_j * kPad;
      float dist = 0.0f;
#pragma unroll
      for (int t = 0; t < kPad; ++t) {
        const float diff = xr[t] - cb[t];
        dist = fmaf(diff, diff, dist);
      }
      const float wi = w != nullptr ? w[i] : 1.0f;
      if (labels != nullptr) labels[i] = best_j;
      if (min_dist != nullptr) min_dist[i] = dist;
      cost_acc += static_cast<double>(wi) * dist;
      float* row = stage + lane * kStride;
      if (sums != nullptr) {
#pragma unroll
        for (int t = 0; t < kPad; ++t) row[t] = wi * xr[t];
      }
      row[kPad] = wi;
    }
    __syncwarp();
    unsigned remaining = __ballot_sync(kFullMask, valid);
    while (remaining != 0) {
      const int j = __shfl_sync(kFullMask, best_j, __ffs(remaining) - 1);
      const unsigned peers = __ballot_sync(kFullMask, best_j == j);  // invalid lanes hold -1
      remaining &= ~peers;
      if (sums != nullptr && lane < d) {
        float acc = 0.0f;
        for (unsigned p = peers; p != 0; p &= p - 1) acc += stage[(__ffs(p) - 1) * kStride + lane];
        atomicAdd(s_sum + j * kPad + lane, acc);
      }
      if (lane == 31) {
        float acc = 0.0f;
        for (unsigned p = peers; p != 0; p &= p - 1) acc += stage[(__ffs(p) - 1) * kStride + kPad];
        atomicAdd(s_w + j, acc);
      }
    }
    __syncwarp();  // the stage is rewritten by the next iteration
  }

  // Block totals -> the float64 outputs, one atomic per nonzero entry.
  double warp_cost = WarpSum(cost_acc);
  if (cost != nullptr) {
    BlockAtomicAddCost(warp_cost, cost);  // contains the __syncthreads the flush below needs
  } else {
    __syncthreads();
  }
  if (sums != nullptr) {
    for (int idx = threadIdx.x; idx < k * d; idx += blockDim.x) {
      const int j = idx / d;
      const float v = s_sum[j * kPad + (idx - j * d)];
      if (v != 0.0f) atomicAdd(sums + idx, static_cast<double>(v));
    }
  }
  if (weights != nullptr) {
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
      if (s_w[j] != 0.0f) atomicAdd(weights + j, static_cast<double>(s_w[j]));
    }
  }
}

// The GEMM path's epilogue on one tile of m rows. g: m x k dot products (row-major, device);
// x: the tile's rows, m x d; w: the tile's weights or null; centers: k x d; cnorms: k. Per-row
// outputs point at the tile's first row. Costs go to cost_slots[blockIdx.x % kCostSlots].
// One warp per row; the grid covers the tile exactly (row = blockIdx.x * warps + warp).
__global__ void __launch_bounds__(kEpilogueThreads)
    GemmEpilogueKernel(const float* __restrict__ g, const float* __restrict__ x, const float* __restrict__ w,
                       int64_t m, int64_t d, const float* __restrict__ centers, const float* __restrict__ cnorms,
                       int k, int32_t* __restrict__ labels, float* __restrict__ min_dist,
                       double* __restrict__ sums, double* __restrict__ weights, double* __restrict__ cost_slots) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kEpilogueWarps + warp;
  double lane0_cost = 0.0;
  if (r < m) {  // uniform within a warp, so the shuffles below see all 32 lanes
    const float* gr = g + r * k;
    float best = INFINITY;
    int best_j = INT_MAX;  // loses every tie against a real center
    for (int j = lane; j < k; j += 32) {
      const float v = cnorms[j] - 2.0f * gr[j];
      if (v < best) {
        best = v;
        best_j = j;
      }
    }
    // (value, index) lexicographic minimum across the warp: the lowest index among exact ties.
    for (int off = 16; off > 0; off >>= 1) {
      const float ob = __shfl_xor_sync(kFullMask, best, off);
      const int oj = __shfl_xor_sync(kFullMask, best_j, off);
      if (ob < best || (ob == best && oj < best_j)) {
        best = ob;
        best_j = oj;
      }
    }
    if (best_j >= k) best_j = 0;  // every value NaN (NaN input): center 0, as on the CPU

    const float* xr = x + r * d;
    const float* cb = centers + static_cast<int64_t>(best_j) * d;
    const float wi = w != nullptr ? w[r] : 1.0f;
    double* sb = sums != nullptr ? sums + static_cast<int64_t>(best_j) * d : nullptr;
    double dist = 0.0;
    for (int64_t t = lane; t < d; t += 32) {
      const float xv = xr[t];
      const double diff = static_cast<double>(xv) - cb[t];
      dist += diff * diff;
      if (sb != nullptr) atomicAdd(sb + t, static_cast<double>(wi) * xv);
    }
    dist = WarpSum(dist);
    if (lane == 0) {
      if (labels != nullptr) labels[r] = best_j;
      if (min_dist != nullptr) min_dist[r] = static_cast<float>(dist);
      if (weights != nullptr) atomicAdd(weights + best_j, static_cast<double>(wi));
      lane0_cost = static_cast<double>(wi) * dist;
    }
  }
  if (cost_slots != nullptr) BlockAtomicAddCost(lane0_cost, cost_slots + blockIdx.x % kCostSlots);
}

// *cost += sum of the kCostSlots slots. One block of kCostSlots threads.
__global__ void SumCostSlotsKernel(const double* __restrict__ slots, double* __restrict__ cost) {
  __shared__ double s[kCostSlots];
  s[threadIdx.x] = slots[threadIdx.x];
  __syncthreads();
  for (int half = kCostSlots / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) *cost += s[0];
}

// ---- Launchers ------------------------------------------------------------------------------

int PaddedD(int64_t d) {
  int p = 4;
  while (p < d) p *= 2;
  return p;
}

size_t FusedSharedBytes(int64_t k, int pad, bool with_sums) {
  const int64_t stage = (kFusedThreads / 32) * 32 * (pad + 1);
  return static_cast<size_t>(k * pad + 2 * k + (with_sums ? k * pad : 0) + stage) * sizeof(float);
}

int64_t GemmTileRows(int64_t n, int64_t k, const KMeansGpuOptions& opt) {
  int64_t t = opt.tile_rows > 0 ? opt.tile_rows : std::max(kMinTileRows, kTileBytes / (4 * k));
  return std::max<int64_t>(1, std::min(t, n));
}

template <int kPad, bool kVec>
void LaunchFusedT(detail::CudaState& cuda, const DeviceDenseView& x, const float* w, const float* c, const float* cn,
                  int64_t k, const DeviceKMeansOutput& out) {
  const size_t smem = FusedSharedBytes(k, kPad, out.sums != nullptr);
  auto kernel = FusedAssignKernel<kPad, kVec>;
  if (smem > 48 * 1024) {
    int optin = 0;
    MLF_CUDA_TRY(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, cuda.device));
    MLF_ASSERT_MSG(smem <= static_cast<size_t>(optin),
                   "k-means fused GPU path: k = {}, d <= {} needs {} bytes of shared memory, the device allows {}; "
                   "use the GEMM path",
                   k, kPad, smem, optin);
    MLF_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  }
  const int64_t grid = CeilDiv(x.rows, kFusedRowsPerBlock);
  MLF_ASSERT_MSG(grid <= INT_MAX, "{} rows exceed the grid limit", x.rows);
  kernel<<<static_cast<unsigned>(grid), kFusedThreads, smem, cuda.stream>>>(
      x.values, w, x.rows, static_cast<int>(x.cols), c, cn, static_cast<int>(k), out.labels, out.min_dist, out.sums,
      out.weights, out.cost);
  MLF_CUDA_TRY_LAUNCH();
}

template <int kPad>
void LaunchFusedPad(detail::CudaState& cuda, const DeviceDenseView& x, const float* w, const float* c,
                    const float* cn, int64_t k, const DeviceKMeansOutput& out) {
  const bool vec = x.cols % 4 == 0 && reinterpret_cast<uintptr_t>(x.values) % 16 == 0;
  if (vec) {
    LaunchFusedT<kPad, true>(cuda, x, w, c, cn, k, out);
  } else {
    LaunchFusedT<kPad, false>(cuda, x, w, c, cn, k, out);
  }
}

void LaunchFused(detail::CudaState& cuda, const DeviceDenseView& x, const float* w, const float* c, const float* cn,
                 int64_t k, const DeviceKMeansOutput& out) {
  switch (PaddedD(x.cols)) {
    case 4:
      return LaunchFusedPad<4>(cuda, x, w, c, cn, k, out);
    case 8:
      return LaunchFusedPad<8>(cuda, x, w, c, cn, k, out);
    case 16:
      return LaunchFusedPad<16>(cuda, x, w, c, cn, k, out);
    case 32:
      return LaunchFusedPad<32>(cuda, x, w, c, cn, k, out);
    default:
      MLF_ASSERT_MSG(false, "k-means fused GPU path needs d <= {}, got d = {}", kMaxFusedD, x.cols);
  }
}

// Events for one LaunchGemm call, destroyed on return (the driver keeps a recorded event alive
// until it completes).
struct GemmEvents {
  GemmEvents() {
    for (auto* e : {&gemm_done[0], &gemm_done[1], &epi_done[0], &epi_done[1], &aux_done}) {
      MLF_CUDA_TRY(cudaEventCreateWithFlags(e, cudaEventDisableTiming));
    }
  }
  ~GemmEvents() {
    for (cudaEvent_t e : {gemm_done[0], gemm_done[1], epi_done[0], epi_done[1], aux_done}) {
      if (e != nullptr) cudaEventDestroy(e);
    }
  }
  GemmEvents(const GemmEvents&) = delete;
  GemmEvents& operator=(const GemmEvents&) = delete;
  cudaEvent_t gemm_done[2] = {nullptr, nullptr}, epi_done[2] = {nullptr, nullptr}, aux_done = nullptr;
};

// Tiles alternate between two buffers: the SGEMM of tile t (on cuda.stream, where the cuBLAS handle
// is bound) overlaps the epilogue of tile t - 1 (on the auxiliary stream). The SGEMM of tile t + 2
// waits for the epilogue of tile t, which read the same buffer; cuda.stream waits for the last
// epilogue before the cost reduction, so the caller sees one ordered stream. On an H200 the
// epilogue was ~28% of each tile's time when the two ran one after the other.
void LaunchGemm(detail::CudaState& cuda, const DeviceDenseView& x, const float* w, const float* c, const float* cn,
                int64_t k, const DeviceKMeansOutput& out, float* tile_buf, int64_t tile_rows, double* cost_slots,
                const KMeansGpuOptions& opt) {
  const int64_t n = x.rows, d = x.cols;
  MLF_ASSERT_MSG(d <= INT_MAX && k <= INT_MAX && tile_rows <= INT_MAX, "k-means GEMM: sizes exceed cuBLAS int");
  if (out.cost != nullptr) MLF_CUDA_TRY(cudaMemsetAsync(cost_slots, 0, kCostSlots * sizeof(double), cuda.stream));
  const cublasComputeType_t compute = opt.allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  const float alpha = 1.0f, beta = 0.0f;
  const bool overlap = n > tile_rows;  // one tile: nothing to overlap
  cudaStream_t epi_stream = overlap ? cuda.AuxStream() : cuda.stream;
  std::unique_ptr<GemmEvents> ev;
  if (overlap) ev = std::make_unique<GemmEvents>();
  int64_t t = 0;
  for (int64_t r0 = 0; r0 < n; r0 += tile_rows, ++t) {
    const int64_t m = std::min(tile_rows, n - r0);
    const int b = static_cast<int>(t & 1);
    float* g = tile_buf + (overlap ? b * tile_rows * k : 0);
    const float* xt = x.values + r0 * d;
    if (overlap && t >= 2) MLF_CUDA_TRY(cudaStreamWaitEvent(cuda.stream, ev->epi_done[b], 0));
    // Column-major view: G' (k x m, ld k) = C'^T (k x d) * X' (d x m), where C' and X' are the
    // row-major centers and rows read as column-major d x k and d x m. G' is G (m x k) row-major.
    MLF_CUBLAS_TRY(cublasGemmEx(cuda.cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(k), static_cast<int>(m),
                                static_cast<int>(d), &alpha, c, CUDA_R_32F, static_cast<int>(d), xt, CUDA_R_32F,
                                static_cast<int>(d), &beta, g, CUDA_R_32F, static_cast<int>(k), compute,
                                CUBLAS_GEMM_DEFAULT));
    if (overlap) {
      MLF_CUDA_TRY(cudaEventRecord(ev->gemm_done[b], cuda.stream));
      MLF_CUDA_TRY(cudaStreamWaitEvent(epi_stream, ev->gemm_done[b], 0));
    }
    const int64_t grid = CeilDiv(m, kEpilogueWarps);
    GemmEpilogueKernel<<<static_cast<unsigned>(grid), kEpilogueThreads, 0, epi_stream>>>(
        g, xt, w != nullptr ? w + r0 : nullptr, m, d, c, cn, static_cast<int>(k),
        out.labels != nullptr ? out.labels + r0 : nullptr, out.min_dist != nullptr ? out.min_dist + r0 : nullptr,
        out.sums, out.weights, out.cost != nullptr ? cost_slots : nullptr);
    MLF_CUDA_TRY_LAUNCH();
    if (overlap) MLF_CUDA_TRY(cudaEventRecord(ev->epi_done[b], epi_stream));
  }
  if (overlap) {
    MLF_CUDA_TRY(cudaEventRecord(ev->aux_done, epi_stream));
    MLF_CUDA_TRY(cudaStreamWaitEvent(cuda.stream, ev->aux_done, 0));
  }
  if (out.cost != nullptr) {
    SumCostSlotsKernel<<<1, kCostSlots, 0, cuda.stream>>>(cost_slots, out.cost);
    MLF_CUDA_TRY_LAUNCH();
  }
}

// The workspace, carved in a fixed order: [norms k floats][cost slots][GEMM tile].
struct WorkspaceLayout {
  size_t norms = 0, slots = 0, tile = 0, total = 0;
};

WorkspaceLayout ComputeLayout(int64_t n, int64_t d, int64_t k, const KMeansGpuOptions& opt) {
  WorkspaceLayout l;
  l.norms = 0;
  l.slots = AlignUp(static_cast<size_t>(k) * sizeof(float));
  l.tile = l.slots;
  l.total = l.slots;
  if (n > 0 && ResolveKMeansGpuPath(d, k, opt) == KMeansGpuPath::kGemm) {
    l.tile = l.slots + AlignUp(kCostSlots * sizeof(double));
    // Two tile buffers when there is more than one tile (LaunchGemm alternates between them).
    const int64_t rows = GemmTileRows(n, k, opt);
    l.total = l.tile + AlignUp(static_cast<size_t>((n > rows ? 2 : 1) * rows * k) * sizeof(float));
  }
  return l;
}

}  // namespace

size_t KMeansAssignGpuWorkspaceBytes(int64_t n, int64_t d, int64_t k, const KMeansGpuOptions& opt) {
  return ComputeLayout(n, d, k, opt).total;
}

void KMeansAssignGpu(detail::CudaState& cuda, const DeviceDenseView& x, const float* row_weights,
                     const DeviceKMeansCenters& centers, const DeviceKMeansOutput& out, void* workspace,
                     size_t workspace_bytes, const KMeansGpuOptions& opt) {
  MLF_ASSERT(x.rows >= 0 && centers.k > 0 && centers.data != nullptr);
  MLF_ASSERT_MSG(centers.k <= INT_MAX, "k = {} does not fit int32 labels", centers.k);
  MLF_EXPECTS(x.cols == centers.d, "k-means: the batch has {} columns but the centers have {} (feature_dim)", x.cols,
              centers.d);
  if (x.rows == 0) return;
  MLF_ASSERT(x.values != nullptr);
  const int64_t k = centers.k, d = centers.d;
  const WorkspaceLayout l = ComputeLayout(x.rows, d, k, opt);
  MLF_ASSERT_MSG(workspace_bytes >= l.total, "k-means GPU workspace: {} bytes given, {} needed", workspace_bytes,
                 l.total);
  auto* ws = static_cast<unsigned char*>(workspace);

  const float* cn = centers.norms;
  if (cn == nullptr) {
    float* norms = reinterpret_cast<float*>(ws + l.norms);
    constexpr int kThreads = 256;
    SquaredNormsKernel<<<static_cast<unsigned>(CeilDiv(k * 32, kThreads)), kThreads, 0, cuda.stream>>>(centers.data,
                                                                                                       k, d, norms);
    MLF_CUDA_TRY_LAUNCH();
    cn = norms;
  }
  if (ResolveKMeansGpuPath(d, k, opt) == KMeansGpuPath::kFused) {
    LaunchFused(cuda, x, row_weights, centers.data, cn, k, out);
  } else {
    LaunchGemm(cuda, x, row_weights, centers.data, cn, k, out, reinterpret_cast<float*>(ws + l.tile),
               GemmTileRows(x.rows, k, opt), reinterpret_cast<double*>(ws + l.slots), opt);
  }
}

// ---- The KMeansAssigner's GPU half ------------------------------------------------------------

namespace internal {
struct KMeansGpuState {
  KMeansGpuState(detail::CudaState& c, const KMeansGpuOptions& o)
      : cuda(c),
        opt(o),
        centers(c.stream),
        norms(c.stream),
        x(c.stream),
        w(c.stream),
        indptr(c.stream),
        indices(c.stream),
        values(c.stream),
        labels(c.stream),
        min_dist(c.stream),
        acc(c.stream),
        workspace(c.stream) {}

  detail::CudaState& cuda;
  KMeansGpuOptions opt;
  int64_t k = 0, d = 0;
  GrowBuffer<float> centers, norms;
  GrowBuffer<float> x, w;  // the dense batch, or the dense tile a CSR batch expands into
  GrowBuffer<int64_t> indptr;
  GrowBuffer<uint32_t> indices;
  GrowBuffer<float> values;
  GrowBuffer<int32_t> labels;
  GrowBuffer<float> min_dist;
  GrowBuffer<double> acc;  // sums k x d | weights k | cost 1
  GrowBuffer<unsigned char> workspace;
  std::vector<double> host_acc;
};

void KMeansGpuStateDeleter::operator()(KMeansGpuState* s) const { delete s; }

KMeansGpuState* KMeansGpuCreate(detail::CudaState& cuda, const KMeansGpuOptions& opt) {
  return new KMeansGpuState(cuda, opt);
}

void KMeansGpuSetCenters(KMeansGpuState* s, const float* centers, const float* norms, int64_t k, int64_t d) {
  s->k = k;
  s->d = d;
  cudaStream_t st = s->cuda.stream;
  MLF_CUDA_TRY(cudaMemcpyAsync(s->centers.Reserve(static_cast<size_t>(k * d)), centers,
                               static_cast<size_t>(k * d) * sizeof(float), cudaMemcpyHostToDevice, st));
  MLF_CUDA_TRY(cudaMemcpyAsync(s->norms.Reserve(static_cast<size_t>(k)), norms, static_cast<size_t>(k) * sizeof(float),
                               cudaMemcpyHostToDevice, st));
}

void KMeansGpuAssign(KMeansGpuState* s, const HostBatch& batch, KMeansStats* stats, std::vector<int32_t>* labels,
                     std::vector<float>* min_dist) {
  cudaStream_t st = s->cuda.stream;
  const int64_t n = batch.rows, k = s->k, d = s->d;
  const bool with_sums = stats != nullptr && !stats->sums.empty();

  DeviceKMeansOutput out;
  out.labels = labels != nullptr ? s->labels.Reserve(static_cast<size_t>(n)) : nullptr;
  out.min_dist = min_dist != nullptr ? s->min_dist.Reserve(static_cast<size_t>(n)) : nullptr;
  const size_t acc_n = static_cast<size_t>(k * d + k + 1);
  if (stats != nullptr) {
    double* acc = s->acc.Reserve(acc_n);
    MLF_CUDA_TRY(cudaMemsetAsync(acc, 0, acc_n * sizeof(double), st));
    out.sums = with_sums ? acc : nullptr;
    out.weights = acc + k * d;
    out.cost = acc + k * d + k;
  }
  const DeviceKMeansCenters c{s->centers.get(), s->norms.get(), k, d};

  const float* dw = nullptr;
  if (!batch.weights.empty()) {
    float* p = s->w.Reserve(static_cast<size_t>(n));
    MLF_CUDA_TRY(cudaMemcpyAsync(p, batch.weights.data(), static_cast<size_t>(n) * sizeof(float),
                                 cudaMemcpyHostToDevice, st));
    dw = p;
  }

  if (batch.layout == Layout::kDense) {
    MLF_ASSERT(static_cast<int64_t>(batch.values.size()) == n * d);
    float* dx = s->x.Reserve(static_cast<size_t>(n * d));
    // From pageable memory the copy is staged by the driver; the batch pipeline's pinned buffers
    // make it asynchronous.
    MLF_CUDA_TRY(cudaMemcpyAsync(dx, batch.values.data(), static_cast<size_t>(n * d) * sizeof(float),
                                 cudaMemcpyHostToDevice, st));
    const size_t ws_bytes = KMeansAssignGpuWorkspaceBytes(n, d, k, s->opt);
    KMeansAssignGpu(s->cuda, DeviceDenseView{dx, n, d}, dw, c, out, s->workspace.Reserve(ws_bytes), ws_bytes, s->opt);
  } else {
    const HostCsrView v = CsrView(batch);
    const int64_t base = v.indptr[0];
    const int64_t nnz = v.indptr[n] - base;
    for (int64_t p = 0; p < nnz; ++p) {
      // A bad index would be an out-of-bounds device write: check on the host first.
      MLF_EXPECTS(v.indices[base + p] < static_cast<uint64_t>(d),
                  "k-means: a sparse row has column index {} but feature_dim is {}", v.indices[base + p], d);
    }
    int64_t* dip = s->indptr.Reserve(static_cast<size_t>(n + 1));
    MLF_CUDA_TRY(cudaMemcpyAsync(dip, v.indptr, static_cast<size_t>(n + 1) * sizeof(int64_t), cudaMemcpyHostToDevice,
                                 st));
    uint32_t* dind = s->indices.Reserve(static_cast<size_t>(std::max<int64_t>(nnz, 1)));
    float* dval = s->values.Reserve(static_cast<size_t>(std::max<int64_t>(nnz, 1)));
    if (nnz > 0) {
      MLF_CUDA_TRY(cudaMemcpyAsync(dind, v.indices + base, static_cast<size_t>(nnz) * sizeof(uint32_t),
                                   cudaMemcpyHostToDevice, st));
      MLF_CUDA_TRY(cudaMemcpyAsync(dval, v.values + base, static_cast<size_t>(nnz) * sizeof(float),
                                   cudaMemcpyHostToDevice, st));
    }
    const int64_t tile = CsrTileRows(n, d);
    float* dx = s->x.Reserve(static_cast<size_t>(tile * d));
    const size_t ws_bytes = KMeansAssignGpuWorkspaceBytes(tile, d, k, s->opt);
    void* ws = s->workspace.Reserve(ws_bytes);
    for (int64_t r0 = 0; r0 < n; r0 += tile) {
      const int64_t m = std::min(tile, n - r0);
      ExpandCsrTile(dip, dind, dval, base, r0, m, d, dx, st);
      DeviceKMeansOutput o = out;
      if (o.labels != nullptr) o.labels += r0;
      if (o.min_dist != nullptr) o.min_dist += r0;
      KMeansAssignGpu(s->cuda, DeviceDenseView{dx, m, d}, dw != nullptr ? dw + r0 : nullptr, c, o, ws, ws_bytes,
                      s->opt);
    }
  }

  if (labels != nullptr) {
    MLF_CUDA_TRY(cudaMemcpyAsync(labels->data(), out.labels, static_cast<size_t>(n) * sizeof(int32_t),
                                 cudaMemcpyDeviceToHost, st));
  }
  if (min_dist != nullptr) {
    MLF_CUDA_TRY(cudaMemcpyAsync(min_dist->data(), out.min_dist, static_cast<size_t>(n) * sizeof(float),
                                 cudaMemcpyDeviceToHost, st));
  }
  if (stats != nullptr) {
    s->host_acc.resize(acc_n);
    MLF_CUDA_TRY(cudaMemcpyAsync(s->host_acc.data(), s->acc.get(), acc_n * sizeof(double), cudaMemcpyDeviceToHost, st));
  }
  s->cuda.Synchronize();  // the one host sync of this step
  if (stats != nullptr) {
    const double* a = s->host_acc.data();
    if (with_sums) {
      for (int64_t i = 0; i < k * d; ++i) stats->sums[static_cast<size_t>(i)] += a[i];
    }
    for (int64_t j = 0; j < k; ++j) stats->weights[static_cast<size_t>(j)] += a[k * d + j];
    stats->cost += a[k * d + k];
  }
}

}  // namespace internal
}  // namespace mlforge::kernels
