// CUDA twin of the factorization-machines step (contract: fm_step.h; CPU twin and FmStepper
// dispatch: fm_step.cc).
//
// Residency. The parameters live in one device array laid out v (d x k) | w (d) | w0, and the
// optimizer state in one or two arrays of the same layout (adam: m and u; adagrad: h; sgd: none),
// for the whole training. A step uploads only the batch (indptr rebased to 0 | indices | values
// | labels, packed into one pinned staging buffer and sent in one copy; a dense batch is converted
// to CSR on the host first, its zero entries dropped as the CPU twin does) and downloads the four
// float64 sums of the loss (one host sync per step).
//
// Per step, all on the CudaState stream:
//   ForwardKernel   a group of G lanes per row (G = 4, 8, 16 or 32: the power of two <= k, at
//                   most a warp); lane l owns factors l, l + G, ...: s_f (float32, written to an
//                   n x k workspace), the row's x_i^2 ||v_i||^2 terms, and the linear term over
//                   every G-th non-zero, in float64; a fixed shuffle tree combines the lanes. Lane
//                   0 evaluates yhat, the loss and g = dloss/dyhat (float64). The loss sums go to
//                   one float64 partial per block (groups added in a fixed order; no atomics).
//   FinishKernel    one warp: the block partials added in block order, then the bias update.
//   aggregation     the row-sparse gradient and the optimizer update of the touched rows, by one
//                   of two paths chosen once per FmGpuCreate by the environment variable
//                   MLFORGE_FM_GPU_AGGREGATION:
//     sort (default)  CUB DeviceRadixSort orders the (feature, position) pairs of the batch's
//                     non-zeros by feature (stable, so positions, and therefore rows, stay
//                     ascending within a feature); DeviceRunLengthEncode + DeviceScan give each
//                     unique feature its segment. SortedUpdateKernel: a group per unique feature
//                     sums the feature's terms over its rows in ascending row order (float64;
//                     lane l owns factors l, l + G, ...; lane 0 also the linear gradient) and
//                     applies the optimizer to w_i and v_i in the same kernel. Deterministic: a
//                     step gives the same bits for the same batch on the same device.
//     atomic          ScatterKernel: a group per row adds g x (linear) and g x (s_f - v_if x)
//                     into d-sized float32 gradient arrays with atomicAdd, and the first touch of
//                     a feature (atomicExch on a flag) appends it to a list; ListUpdateKernel: a
//                     group per listed feature applies the optimizer and zeroes its gradient row
//                     and flag for the next step (O(nnz) per step, not O(d)). Costs d (k + 3)
//                     extra 4-byte words of device memory; the gradient's last bits depend on
//                     scheduling. For measuring against the sort on skewed data (a few features
//                     in most rows contend on the same addresses).
//   Any other value of MLFORGE_FM_GPU_AGGREGATION is a UserError.
//
// Group steps (several ranks, FmStepper::StepGroup): the same ForwardKernel (FinishKernel only adds
// the partials), the sort, and SortedGradientKernel writing each unique feature's gradient row
// (k + 1 floats, features ascending) instead of updating; the rows come down (FmGpuGroupGradient),
// the host sums the ranks' rows over the union of their features, and ApplyRowsKernel plus
// BiasUpdateKernel apply the optimizer to the summed rows sent back up (FmGpuApplyRows). Always
// the sorted aggregation, whatever MLFORGE_FM_GPU_AGGREGATION says.
//
// Numerics follow the CPU twin: float32 parameters, state and s; yhat, loss and g in float64; the
// per-feature gradient sums in float64 here (float32 for the factors on the CPU), so the two
// devices agree to ~1e-6 relative, not bit for bit. The adam bias correction
// lr sqrt(1 - b2^t) / (1 - b1^t) is computed on the host in float64.
//
// Memory: FmStepper::StateBytes (parameters + optimizer state), plus the atomic path's gradient
// arrays, plus kHeadroomBytes for the per-batch workspace, are checked against cudaMemGetInfo in
// FmGpuCreate (UserError naming the sizes). The per-batch workspace (the batch, s: n x k floats,
// g, the sort buffers) grows on demand with the largest batch and is reused.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_run_length_encode.cuh>
#include <cub/device/device_scan.cuh>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/resources.h"
#include "kernels/cuda_check.cuh"
#include "kernels/device_buffer.cuh"
#include "kernels/fm_step.h"
#include "kernels/fm_update.h"

namespace mlforge::kernels {
namespace {

constexpr int kBlock = 256;
// Grid cap for the grid-stride kernels: enough resident blocks to fill every SM, few enough that
// the per-block loss partials stay small.
constexpr int kBlocksPerSm = 8;
// Free device memory FmGpuCreate asks for beyond the state: the per-batch workspace and the
// stream-ordered pool's slack.
constexpr size_t kHeadroomBytes = size_t{64} << 20;
constexpr size_t kAlign = 256;
size_t AlignUp(size_t b) { return (b + kAlign - 1) / kAlign * kAlign; }
double MiB(size_t b) { return static_cast<double>(b) / (1 << 20); }

// The loss sums in a partial / total: loss, squared error, absolute error, sum of g (bias gradient).
constexpr int kSums = 4;

// Lanes per row / per feature: the largest power of two <= k, between 4 and 32.
int GroupSize(int64_t k) { return k >= 32 ? 32 : k >= 16 ? 16 : k >= 8 ? 8 : 4; }

// The optimizer update and the per-row loss: the CPU twin's own definitions (fm_update.h).
using DevUpdate = fm_detail::Update;
using fm_detail::MakeUpdate;
using fm_detail::RowLoss;

// Views of the parameter (or state) array v (d x k) | w (d) | w0.
struct ParamView {
  float* v = nullptr;
  float* w = nullptr;
  float* w0 = nullptr;
};
ParamView Split(float* base, int64_t d, int64_t k) {
  if (base == nullptr) return {};
  return {base, base + d * k, base + d * k + d};
}

struct ForwardArgs {
  const int64_t* indptr;  // n + 1, starting at 0
  const uint32_t* indices;
  const float* values;
  const float* labels;  // n, or null (predict)
  const float* v;
  const float* w;
  const float* w0;
  int64_t n;
  int k;
  FmLoss loss;
  float* s;          // n x k, or null (predict)
  double* g;         // n, or null (predict)
  int32_t* row_of;   // nnz: the row of each non-zero, or null
  float* yhat;       // n, or null
  double* partials;  // gridDim.x x kSums, or null (predict)
};

// A group of G lanes per row; the row loop is uniform across a warp (the shuffles need every
// lane), rows past n are computed as empty and discarded.
template <int G>
__global__ void __launch_bounds__(kBlock) ForwardKernel(ForwardArgs a) {
  constexpr int kPerWarp = 32 / G;
  constexpr int kGroups = kBlock / G;
  __shared__ double sh[kGroups][kSums];
  const int lane = threadIdx.x % G;
  const int group = threadIdx.x / G;
  const int warp_group = (threadIdx.x % 32) / G;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x) / 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (kBlock / 32);
  const int k = a.k;
  double acc[kSums] = {0, 0, 0, 0};
  for (int64_t r0 = warp * kPerWarp; r0 < a.n; r0 += warps * kPerWarp) {
    const int64_t r = r0 + warp_group;
    const bool valid = r < a.n;
    const int64_t b = valid ? a.indptr[r] : 0, e = valid ? a.indptr[r + 1] : 0;
    double lin = 0, sq = 0, ss = 0;
    for (int64_t p = b + lane; p < e; p += G) {
      lin += static_cast<double>(a.w[a.indices[p]]) * a.values[p];
      if (a.row_of != nullptr) a.row_of[p] = static_cast<int32_t>(r);
    }
    for (int f = lane; f < k; f += G) {
      float sf = 0;
      for (int64_t p = b; p < e; ++p) {
        const float x = a.values[p];
        const float vf = a.v[static_cast<int64_t>(a.indices[p]) * k + f];
        sf += vf * x;
        const double xv = static_cast<double>(x) * vf;
        sq += xv * xv;
      }
      ss += static_cast<double>(sf) * sf;
      if (valid && a.s != nullptr) a.s[r * k + f] = sf;
    }
#pragma unroll
    for (int off = G / 2; off > 0; off /= 2) {
      lin += __shfl_xor_sync(0xffffffffu, lin, off, G);
      sq += __shfl_xor_sync(0xffffffffu, sq, off, G);
      ss += __shfl_xor_sync(0xffffffffu, ss, off, G);
    }
    if (valid && lane == 0) {
      const double yhat = static_cast<double>(*a.w0) + lin + 0.5 * (ss - sq);
      if (a.yhat != nullptr) a.yhat[r] = static_cast<float>(yhat);
      if (a.labels != nullptr) {
        const double y = a.labels[r];
        double dl = 0, pred = 0;
        acc[0] += RowLoss(a.loss, yhat, y, &dl, &pred);
        const double err = pred - y;
        acc[1] += err * err;
        acc[2] += fabs(err);
        acc[3] += dl;
        a.g[r] = dl;
      }
    }
  }
  if (a.partials == nullptr) return;
  if (lane == 0) {
#pragma unroll
    for (int c = 0; c < kSums; ++c) sh[group][c] = acc[c];
  }
  __syncthreads();
  if (threadIdx.x < kSums) {
    double t = 0;
    for (int i = 0; i < kGroups; ++i) t += sh[i][threadIdx.x];
    a.partials[static_cast<int64_t>(blockIdx.x) * kSums + threadIdx.x] = t;
  }
}

// One warp: totals[c] = the partials of every block added in block order; then the bias update
// with the bias gradient totals[3] (when `bias` is set).
__global__ void FinishKernel(const double* __restrict__ partials, int blocks, double* __restrict__ totals,
                             DevUpdate update, bool bias, float* w0, float* a0, float* b0) {
  const int lane = threadIdx.x;
  double t = 0;
  if (lane < kSums) {
    for (int b = 0; b < blocks; ++b) t += partials[static_cast<int64_t>(b) * kSums + lane];
    totals[lane] = t;
  }
  const double g0 = __shfl_sync(0xffffffffu, t, 3);
  if (lane == 0 && bias) update.Apply(w0, a0, b0, static_cast<float>(g0));
}

__global__ void IotaKernel(int32_t* out, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = static_cast<int32_t>(i);
}

struct UpdateArgs {
  int k;
  const double* g;      // n
  const float* s;       // n x k
  const float* values;  // nnz
  ParamView p, a, b;    // parameters and optimizer state (a, b: null members when unused)
  DevUpdate linear, factors;
  bool use_linear;
};

// Feature i's gradient sums over its segment [beg, end) of the sorted non-zeros, in ascending row
// order: returns factor f's (float64) and adds the linear term's to *gw.
__device__ inline double SegmentSums(const UpdateArgs& a, int64_t i, int f, int32_t beg, int32_t end,
                                     const int32_t* __restrict__ sorted_pos, const int32_t* __restrict__ row_of,
                                     double* gw) {
  const int k = a.k;
  const double vf = a.p.v[i * k + f];
  double gv = 0, gl = 0;
  for (int32_t j = beg; j < end; ++j) {
    const int32_t pos = sorted_pos[j];
    const int64_t r = row_of[pos];
    const double x = a.values[pos];
    const double gx = a.g[r] * x;
    gv += gx * (static_cast<double>(a.s[r * k + f]) - vf * x);
    gl += gx;
  }
  *gw += gl;
  return gv;
}

// Sorted path: a group of G lanes per unique feature (segments in sorted order). Lane l owns
// factors l, l + G, ...; lane 0 also sums the linear gradient (in its first factor pass). With
// `out` null the optimizer is applied to the feature's parameters (SortedUpdateKernel); otherwise
// the sums go to out, one row of k + 1 floats per segment: the linear gradient, then the k
// factors' (SortedGradientKernel, for group steps).
template <int G>
__device__ void SortedSegments(const UpdateArgs& a, const uint32_t* __restrict__ uniq,
                               const int32_t* __restrict__ offsets, const int32_t* __restrict__ counts,
                               const int32_t* __restrict__ num_runs, const int32_t* __restrict__ sorted_pos,
                               const int32_t* __restrict__ row_of, float* __restrict__ out) {
  const int lane = threadIdx.x % G;
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x) / G;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * (kBlock / G);
  const int64_t runs = *num_runs;
  const int k = a.k;
  for (int64_t seg = first; seg < runs; seg += stride) {
    const int64_t i = uniq[seg];
    const int32_t beg = offsets[seg], end = beg + counts[seg];
    for (int f = lane; f < k; f += G) {
      const int64_t at = i * k + f;
      double gw = 0;  // used by lane 0's first pass only
      const double gv = SegmentSums(a, i, f, beg, end, sorted_pos, row_of, &gw);
      if (out != nullptr) {
        float* row = out + seg * (k + 1);
        row[1 + f] = static_cast<float>(gv);
        if (f == 0) row[0] = static_cast<float>(gw);
        continue;
      }
      a.factors.Apply(a.p.v + at, a.a.v ? a.a.v + at : nullptr, a.b.v ? a.b.v + at : nullptr,
                      static_cast<float>(gv));
      if (f == 0 && a.use_linear) {
        a.linear.Apply(a.p.w + i, a.a.w ? a.a.w + i : nullptr, a.b.w ? a.b.w + i : nullptr,
                       static_cast<float>(gw));
      }
    }
  }
}

template <int G>
__global__ void __launch_bounds__(kBlock)
    SortedUpdateKernel(UpdateArgs a, const uint32_t* __restrict__ uniq, const int32_t* __restrict__ offsets,
                       const int32_t* __restrict__ counts, const int32_t* __restrict__ num_runs,
                       const int32_t* __restrict__ sorted_pos, const int32_t* __restrict__ row_of) {
  SortedSegments<G>(a, uniq, offsets, counts, num_runs, sorted_pos, row_of, nullptr);
}

template <int G>
__global__ void __launch_bounds__(kBlock)
    SortedGradientKernel(UpdateArgs a, const uint32_t* __restrict__ uniq, const int32_t* __restrict__ offsets,
                         const int32_t* __restrict__ counts, const int32_t* __restrict__ num_runs,
                         const int32_t* __restrict__ sorted_pos, const int32_t* __restrict__ row_of,
                         float* __restrict__ out) {
  SortedSegments<G>(a, uniq, offsets, counts, num_runs, sorted_pos, row_of, out);
}

// Atomic path, step 1: a group of G lanes per row adds the row's terms into the d-sized gradient
// arrays (gw: d, gv: d x k, float32) and lists the features it touches first.
template <int G>
__global__ void __launch_bounds__(kBlock)
    ScatterKernel(const int64_t* __restrict__ indptr, const uint32_t* __restrict__ indices,
                  const float* __restrict__ values, int64_t n, int k, const double* __restrict__ g,
                  const float* __restrict__ s, const float* __restrict__ v, float* gw, float* gv,
                  int32_t* flags, int32_t* list, int32_t* count) {
  const int lane = threadIdx.x % G;
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x) / G;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * (kBlock / G);
  for (int64_t r = first; r < n; r += stride) {
    const double gr = g[r];
    for (int64_t p = indptr[r]; p < indptr[r + 1]; ++p) {
      const int64_t i = indices[p];
      const double x = values[p];
      const double gx = gr * x;
      if (lane == 0) {
        atomicAdd(gw + i, static_cast<float>(gx));
        if (atomicExch(flags + i, 1) == 0) list[atomicAdd(count, 1)] = static_cast<int32_t>(i);
      }
      for (int f = lane; f < k; f += G) {
        const double vf = v[i * k + f];
        atomicAdd(gv + i * k + f, static_cast<float>(gx * (static_cast<double>(s[r * k + f]) - vf * x)));
      }
    }
  }
}

// Atomic path, step 2: a group of G lanes per listed feature applies the optimizer and zeroes the
// feature's gradient row and flag.
template <int G>
__global__ void __launch_bounds__(kBlock)
    ListUpdateKernel(UpdateArgs a, const int32_t* __restrict__ list, const int32_t* __restrict__ count,
                     float* gw, float* gv, int32_t* flags) {
  const int lane = threadIdx.x % G;
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x) / G;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * (kBlock / G);
  const int64_t listed = *count;
  const int k = a.k;
  for (int64_t q = first; q < listed; q += stride) {
    const int64_t i = list[q];
    for (int f = lane; f < k; f += G) {
      const int64_t at = i * k + f;
      const float grad = gv[at];
      gv[at] = 0;
      a.factors.Apply(a.p.v + at, a.a.v ? a.a.v + at : nullptr, a.b.v ? a.b.v + at : nullptr, grad);
    }
    if (lane == 0) {
      if (a.use_linear)
        a.linear.Apply(a.p.w + i, a.a.w ? a.a.w + i : nullptr, a.b.w ? a.b.w + i : nullptr, gw[i]);
      gw[i] = 0;
      flags[i] = 0;
    }
  }
}

// Group steps: the optimizer on the rows `ids` with the group's summed gradient rows (layout of
// SortedGradientKernel's output).
template <int G>
__global__ void __launch_bounds__(kBlock)
    ApplyRowsKernel(UpdateArgs a, const uint32_t* __restrict__ ids, int64_t rows, const float* __restrict__ grad) {
  const int lane = threadIdx.x % G;
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x) / G;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * (kBlock / G);
  const int k = a.k;
  for (int64_t q = first; q < rows; q += stride) {
    const int64_t i = ids[q];
    const float* gq = grad + q * (k + 1);
    for (int f = lane; f < k; f += G) {
      const int64_t at = i * k + f;
      a.factors.Apply(a.p.v + at, a.a.v ? a.a.v + at : nullptr, a.b.v ? a.b.v + at : nullptr, gq[1 + f]);
    }
    if (lane == 0 && a.use_linear) {
      a.linear.Apply(a.p.w + i, a.a.w ? a.a.w + i : nullptr, a.b.w ? a.b.w + i : nullptr, gq[0]);
    }
  }
}

__global__ void BiasUpdateKernel(DevUpdate update, float* w0, float* a0, float* b0, float g0) {
  update.Apply(w0, a0, b0, g0);
}

// Launches kernel template K<G> for the runtime group size.
#define MLF_FM_LAUNCH(K, g, grid, stream, ...)               \
  do {                                                       \
    switch (g) {                                             \
      case 32:                                               \
        K<32><<<(grid), kBlock, 0, (stream)>>>(__VA_ARGS__); \
        break;                                               \
      case 16:                                               \
        K<16><<<(grid), kBlock, 0, (stream)>>>(__VA_ARGS__); \
        break;                                               \
      case 8:                                                \
        K<8><<<(grid), kBlock, 0, (stream)>>>(__VA_ARGS__);  \
        break;                                               \
      default:                                               \
        K<4><<<(grid), kBlock, 0, (stream)>>>(__VA_ARGS__);  \
        break;                                               \
    }                                                        \
    MLF_CUDA_TRY_LAUNCH();                                   \
  } while (0)

enum class Aggregation { kSort, kAtomic };

Aggregation AggregationFromEnv() {
  const char* e = std::getenv("MLFORGE_FM_GPU_AGGREGATION");
  const std::string v = e == nullptr ? "" : e;
  if (v.empty() || v == "sort") return Aggregation::kSort;
  if (v == "atomic") return Aggregation::kAtomic;
  MLF_FAIL(
      "MLFORGE_FM_GPU_AGGREGATION is '{}': expected 'sort' (the default) or 'atomic'; unset it or set one of "
      "those",
      v);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The GPU half of FmStepper.

namespace internal {

struct FmGpuState {
  FmGpuState(detail::CudaState& c, const FmStepSpec& sp, int64_t d_, int64_t k_, Aggregation agg)
      : cuda(c),
        spec(sp),
        d(d_),
        k(k_),
        group(GroupSize(k_)),
        aggregation(agg),
        params(c.stream),
        state_a(c.stream),
        state_b(c.stream),
        batch(c.stream),
        s(c.stream),
        yhat(c.stream),
        g(c.stream),
        partials(c.stream),
        totals(c.stream),
        row_of(c.stream),
        iota(c.stream),
        sorted_pos(c.stream),
        sorted_keys(c.stream),
        uniq(c.stream),
        offsets(c.stream),
        counts(c.stream),
        num_runs(c.stream),
        cub_temp(c.stream),
        group_grad(c.stream),
        apply_ids(c.stream),
        grad(c.stream),
        flags(c.stream),
        list(c.stream),
        count(c.stream) {}
  ~FmGpuState() {
    // The pinned buffers are freed by their destructors; no copy may still be reading them.
    cudaStreamSynchronize(cuda.stream);  // errors ignored: destructors must not throw
  }
  FmGpuState(const FmGpuState&) = delete;
  FmGpuState& operator=(const FmGpuState&) = delete;

  size_t Elements() const { return static_cast<size_t>(d * k + d + 1); }
  // Grid of a grid-stride kernel over `items` groups.
  unsigned Grid(int64_t items) const {
    const int64_t per_block = kBlock / group;
    return static_cast<unsigned>(std::max<int64_t>(
        1, std::min<int64_t>(CeilDiv(items, per_block), int64_t{cuda.sm_count} * kBlocksPerSm)));
  }

  detail::CudaState& cuda;
  const FmStepSpec spec;
  const int64_t d, k;
  const int group;
  const Aggregation aggregation;
  GrowBuffer<float> params;            // v | w | w0
  GrowBuffer<float> state_a, state_b;  // same layout: adam m, u; adagrad h (a)
  PinnedBuffer host_in, host_out;
  // Per batch.
  GrowBuffer<unsigned char> batch;  // indptr | indices | values | labels, as packed by Pack
  GrowBuffer<float> s, yhat;
  GrowBuffer<double> g, partials, totals;
  // Sorted aggregation.
  GrowBuffer<int32_t> row_of, iota, sorted_pos;
  GrowBuffer<uint32_t> sorted_keys, uniq;
  GrowBuffer<int32_t> offsets, counts, num_runs;
  GrowBuffer<unsigned char> cub_temp;
  int64_t iota_len = 0;
  // Group steps: gradient rows (k + 1 floats per touched feature) and the rows to update.
  GrowBuffer<float> group_grad;
  GrowBuffer<uint32_t> apply_ids;
  // Atomic aggregation: gradient gv (d x k) | gw (d), kept zero between steps; flags (d), list (d).
  GrowBuffer<float> grad;
  GrowBuffer<int32_t> flags, list, count;
};

void FmGpuStateDeleter::operator()(FmGpuState* s) const { delete s; }

namespace {

// The batch in device memory (pointers into FmGpuState::batch).
struct DeviceCsr {
  const int64_t* indptr = nullptr;
  const uint32_t* indices = nullptr;
  const float* values = nullptr;
  const float* labels = nullptr;
  int64_t n = 0, nnz = 0;
};

// Packs the batch (CSR, or dense converted to CSR without its zeros) and the labels into the
// pinned staging buffer and uploads it in one copy. Checks the column indices on the host: a bad
// one would be an out-of-bounds device access.
DeviceCsr Pack(FmGpuState* s, const HostBatch& batch, const float* labels) {
  const int64_t n = batch.rows, d = s->d;
  MLF_EXPECTS(batch.cols == d, "the batch has {} columns but the factorization machine has feature_dim {}",
              batch.cols, d);
  MLF_EXPECTS(n <= INT_MAX, "a batch of {} rows is larger than the GPU step's limit of {}", n, INT_MAX);
  int64_t nnz = 0, base = 0;
  if (batch.layout == Layout::kCsr) {
    MLF_ASSERT(static_cast<int64_t>(batch.indptr.size()) == n + 1);
    base = batch.indptr[0];
    nnz = batch.indptr[static_cast<size_t>(n)] - base;
    for (int64_t p = base; p < base + nnz; ++p) {
      MLF_EXPECTS(batch.indices[static_cast<size_t>(p)] < static_cast<uint64_t>(d),
                  "a sparse row has column index {} but feature_dim is {}",
                  batch.indices[static_cast<size_t>(p)], d);
    }
  } else {
    MLF_ASSERT(static_cast<int64_t>(batch.values.size()) == n * d);
    for (float x : batch.values) nnz += x != 0.0f;
  }
  MLF_EXPECTS(nnz <= INT_MAX, "a batch with {} non-zeros is larger than the GPU step's limit of {}", nnz,
              INT_MAX);
  const size_t off_ind = AlignUp(static_cast<size_t>(n + 1) * sizeof(int64_t));
  const size_t off_val = off_ind + AlignUp(static_cast<size_t>(nnz) * sizeof(uint32_t));
  const size_t off_lab = off_val + AlignUp(static_cast<size_t>(nnz) * sizeof(float));
  const size_t bytes = off_lab + static_cast<size_t>(labels != nullptr ? n : 0) * sizeof(float);
  auto* h = static_cast<unsigned char*>(s->host_in.Reserve(bytes));
  auto* ip = reinterpret_cast<int64_t*>(h);
  auto* ind = reinterpret_cast<uint32_t*>(h + off_ind);
  auto* val = reinterpret_cast<float*>(h + off_val);
  if (batch.layout == Layout::kCsr) {
    for (int64_t r = 0; r <= n; ++r) ip[r] = batch.indptr[static_cast<size_t>(r)] - base;
    if (nnz > 0) {
      std::memcpy(ind, batch.indices.data() + base, static_cast<size_t>(nnz) * sizeof(uint32_t));
      std::memcpy(val, batch.values.data() + base, static_cast<size_t>(nnz) * sizeof(float));
    }
  } else {
    int64_t p = 0;
    ip[0] = 0;
    for (int64_t r = 0; r < n; ++r) {
      const float* row = batch.values.data() + r * d;
      for (int64_t j = 0; j < d; ++j) {
        if (row[j] != 0.0f) {
          ind[p] = static_cast<uint32_t>(j);
          val[p++] = row[j];
        }
      }
      ip[r + 1] = p;
    }
  }
  if (labels != nullptr && n > 0) std::memcpy(h + off_lab, labels, static_cast<size_t>(n) * sizeof(float));
  unsigned char* dev = s->batch.Reserve(bytes);
  MLF_CUDA_TRY(cudaMemcpyAsync(dev, h, bytes, cudaMemcpyHostToDevice, s->cuda.stream));
  DeviceCsr c;
  c.indptr = reinterpret_cast<const int64_t*>(dev);
  c.indices = reinterpret_cast<const uint32_t*>(dev + off_ind);
  c.values = reinterpret_cast<const float*>(dev + off_val);
  c.labels = labels != nullptr ? reinterpret_cast<const float*>(dev + off_lab) : nullptr;
  c.n = n;
  c.nnz = nnz;
  return c;
}

ForwardArgs MakeForward(FmGpuState* s, const DeviceCsr& x) {
  const ParamView p = Split(s->params.get(), s->d, s->k);
  ForwardArgs a{};
  a.indptr = x.indptr;
  a.indices = x.indices;
  a.values = x.values;
  a.labels = x.labels;
  a.v = p.v;
  a.w = p.w;
  a.w0 = p.w0;
  a.n = x.n;
  a.k = static_cast<int>(s->k);
  a.loss = s->spec.loss;
  return a;
}

// Bits of the sort keys: enough for feature d - 1.
int KeyBits(int64_t d) {
  int bits = 1;
  while (bits < 32 && (int64_t{1} << bits) < d) ++bits;
  return bits;
}

// The update of step t with `rescale` on the state's parameters and optimizer state (the batch's
// g, s and values left for the caller).
UpdateArgs MakeUpdateArgs(FmGpuState* s, float rescale, int64_t t) {
  UpdateArgs ua{};
  ua.k = static_cast<int>(s->k);
  ua.p = Split(s->params.get(), s->d, s->k);
  ua.a = Split(s->state_a.get(), s->d, s->k);
  ua.b = Split(s->state_b.get(), s->d, s->k);
  ua.linear = MakeUpdate(s->spec, s->spec.linear, rescale, t);
  ua.factors = MakeUpdate(s->spec, s->spec.factors, rescale, t);
  ua.use_linear = s->spec.use_linear;
  return ua;
}

// The batch's non-zeros grouped by feature: s->uniq (features ascending), s->offsets and s->counts
// (each feature's segment of s->sorted_pos), s->num_runs (on the device).
void SortByFeature(FmGpuState* s, const DeviceCsr& x) {
  cudaStream_t st = s->cuda.stream;
  const int nnz = static_cast<int>(x.nnz);
  if (s->iota_len < nnz) {  // the sort's input values 0, 1, ..., kept across steps
    int32_t* io = s->iota.Reserve(static_cast<size_t>(nnz));
    IotaKernel<<<static_cast<unsigned>(std::min<int64_t>(CeilDiv(nnz, kBlock), 4096)), kBlock, 0, st>>>(io,
                                                                                                        nnz);
    MLF_CUDA_TRY_LAUNCH();
    s->iota_len = nnz;
  }
  uint32_t* keys = s->sorted_keys.Reserve(static_cast<size_t>(nnz));
  int32_t* pos = s->sorted_pos.Reserve(static_cast<size_t>(nnz));
  uint32_t* uniq = s->uniq.Reserve(static_cast<size_t>(nnz));
  int32_t* counts = s->counts.Reserve(static_cast<size_t>(nnz));
  int32_t* offsets = s->offsets.Reserve(static_cast<size_t>(nnz));
  int32_t* runs = s->num_runs.Reserve(1);
  const int bits = KeyBits(s->d);
  size_t sort_bytes = 0, rle_bytes = 0, scan_bytes = 0;
  MLF_CUDA_TRY(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, x.indices, keys, s->iota.get(), pos, nnz,
                                               0, bits, st));
  MLF_CUDA_TRY(cub::DeviceRunLengthEncode::Encode(nullptr, rle_bytes, keys, uniq, counts, runs, nnz, st));
  MLF_CUDA_TRY(cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, counts, offsets, nnz, st));
  size_t temp_bytes = std::max({sort_bytes, rle_bytes, scan_bytes});
  void* temp = s->cub_temp.Reserve(temp_bytes);
  // The three calls run one after the other on the stream, so they share the temporary storage.
  MLF_CUDA_TRY(cub::DeviceRadixSort::SortPairs(temp, sort_bytes, x.indices, keys, s->iota.get(), pos, nnz, 0,
                                               bits, st));
  // The scan covers nnz counts, of which Encode writes only the first (number of runs): zero the
  // rest so that it reads no uninitialised memory (their sums are never used).
  MLF_CUDA_TRY(cudaMemsetAsync(counts, 0, static_cast<size_t>(nnz) * sizeof(int32_t), st));
  MLF_CUDA_TRY(cub::DeviceRunLengthEncode::Encode(temp, rle_bytes, keys, uniq, counts, runs, nnz, st));
  MLF_CUDA_TRY(cub::DeviceScan::ExclusiveSum(temp, scan_bytes, counts, offsets, nnz, st));
}

void SortedAggregate(FmGpuState* s, const DeviceCsr& x, const UpdateArgs& ua) {
  SortByFeature(s, x);
  const unsigned grid = s->Grid(std::min<int64_t>(x.nnz, s->d));
  MLF_FM_LAUNCH(SortedUpdateKernel, s->group, grid, s->cuda.stream, ua, s->uniq.get(), s->offsets.get(),
                s->counts.get(), s->num_runs.get(), s->sorted_pos.get(), s->row_of.get());
}

void AtomicAggregate(FmGpuState* s, const DeviceCsr& x, const UpdateArgs& ua) {
  cudaStream_t st = s->cuda.stream;
  const int64_t d = s->d, k = s->k;
  float* gv = s->grad.get();
  float* gw = gv + d * k;
  int32_t* count = s->count.get();
  MLF_CUDA_TRY(cudaMemsetAsync(count, 0, sizeof(int32_t), st));
  MLF_FM_LAUNCH(ScatterKernel, s->group, s->Grid(x.n), st, x.indptr, x.indices, x.values, x.n,
                static_cast<int>(k), s->g.get(), s->s.get(), ua.p.v, gw, gv, s->flags.get(), s->list.get(),
                count);
  MLF_FM_LAUNCH(ListUpdateKernel, s->group, s->Grid(std::min<int64_t>(x.nnz, d)), st, ua, s->list.get(),
                count, gw, gv, s->flags.get());
}

}  // namespace

FmGpuState* FmGpuCreate(Resources& res, const FmParams& initial, const FmStepSpec& spec) {
  const int64_t d = initial.d, k = initial.k;
  MLF_ASSERT(d >= 1 && k >= 1 && static_cast<int64_t>(initial.w.size()) == d &&
             static_cast<int64_t>(initial.v.size()) == d * k);
  MLF_EXPECTS(d <= INT_MAX && k <= INT_MAX / 2,
              "the GPU step supports feature_dim <= {} and num_factors <= {}", INT_MAX, INT_MAX / 2);
  const Aggregation agg = AggregationFromEnv();
  detail::CudaState& cuda = res.cuda();
  const size_t state_bytes = FmStepper::StateBytes(d, k, spec.optimizer);
  // Atomic path: gradient v | w (d (k + 1) floats), flags and list (d int32 each), count.
  const size_t atomic_bytes = agg == Aggregation::kAtomic
                                  ? static_cast<size_t>(d) * static_cast<size_t>(k + 3) * 4 + sizeof(int32_t)
                                  : 0;
  const size_t need = state_bytes + atomic_bytes + kHeadroomBytes;
  size_t free_bytes = 0, device_bytes = 0;
  MLF_CUDA_TRY(cudaMemGetInfo(&free_bytes, &device_bytes));
  MLF_EXPECTS(
      need <= free_bytes,
      "factorization machines on the GPU with feature_dim {} and num_factors {} need {} bytes ({:.0f} MiB) "
      "of "
      "device memory ({} bytes of parameters and optimizer state, {} bytes of atomic-aggregation buffers, "
      "{} bytes of batch workspace headroom) but only {} bytes ({:.0f} MiB) of {} bytes are free: use a GPU "
      "with more memory, fewer features or factors, or run on the CPU (--device cpu / a CPU instance)",
      d, k, need, MiB(need), state_bytes, atomic_bytes, kHeadroomBytes, free_bytes, MiB(free_bytes),
      device_bytes);

  auto state = std::make_unique<FmGpuState>(cuda, spec, d, k, agg);
  FmGpuState* s = state.get();
  cudaStream_t st = cuda.stream;
  const size_t elems = s->Elements();
  float* p = s->params.ReserveExact(elems);
  if (spec.optimizer != FmOptimizer::kSgd) {
    MLF_CUDA_TRY(cudaMemsetAsync(s->state_a.ReserveExact(elems), 0, elems * sizeof(float), st));
  }
  if (spec.optimizer == FmOptimizer::kAdam) {
    MLF_CUDA_TRY(cudaMemsetAsync(s->state_b.ReserveExact(elems), 0, elems * sizeof(float), st));
  }
  if (agg == Aggregation::kAtomic) {
    const size_t g_elems = static_cast<size_t>(d * k + d);
    MLF_CUDA_TRY(cudaMemsetAsync(s->grad.ReserveExact(g_elems), 0, g_elems * sizeof(float), st));
    MLF_CUDA_TRY(cudaMemsetAsync(s->flags.ReserveExact(static_cast<size_t>(d)), 0, d * sizeof(int32_t), st));
    s->list.ReserveExact(static_cast<size_t>(d));
    s->count.ReserveExact(1);
  }
  // The initial parameters go up through the pinned buffer (one copy). Taken as given, like the
  // CPU twin: without a bias or linear term the caller passes zeros, which then stay untrained.
  auto* h = static_cast<float*>(s->host_in.Reserve(elems * sizeof(float)));
  std::memcpy(h, initial.v.data(), static_cast<size_t>(d * k) * sizeof(float));
  std::memcpy(h + d * k, initial.w.data(), static_cast<size_t>(d) * sizeof(float));
  h[d * k + d] = initial.w0;
  MLF_CUDA_TRY(cudaMemcpyAsync(p, h, elems * sizeof(float), cudaMemcpyHostToDevice, st));
  cuda.Synchronize();
  return state.release();
}

FmBatchLoss FmGpuStep(FmGpuState* s, const HostBatch& batch, const float* labels, int64_t t) {
  MLF_ASSERT(t >= 1 && labels != nullptr);
  FmBatchLoss out;
  if (batch.rows == 0) {
    MLF_EXPECTS(batch.cols == s->d,
                "the batch has {} columns but the factorization machine has feature_dim {}", batch.cols,
                s->d);
    return out;  // nothing to learn from (the CPU twin does the same)
  }
  cudaStream_t st = s->cuda.stream;
  const DeviceCsr x = Pack(s, batch, labels);
  const int64_t n = x.n, k = s->k;
  const bool sorted = s->aggregation == Aggregation::kSort;

  ForwardArgs fa = MakeForward(s, x);
  fa.s = s->s.Reserve(static_cast<size_t>(n * k));
  fa.g = s->g.Reserve(static_cast<size_t>(n));
  fa.row_of = sorted ? s->row_of.Reserve(static_cast<size_t>(x.nnz)) : nullptr;
  const unsigned grid = s->Grid(n);
  fa.partials = s->partials.Reserve(static_cast<size_t>(grid) * kSums);
  MLF_FM_LAUNCH(ForwardKernel, s->group, grid, st, fa);

  const float rescale = s->spec.rescale_grad > 0 ? s->spec.rescale_grad : 1.0f / static_cast<float>(n);
  const ParamView p = Split(s->params.get(), s->d, k), a = Split(s->state_a.get(), s->d, k),
                  b = Split(s->state_b.get(), s->d, k);
  double* totals = s->totals.Reserve(kSums);
  FinishKernel<<<1, 32, 0, st>>>(fa.partials, static_cast<int>(grid), totals,
                                 MakeUpdate(s->spec, s->spec.bias, rescale, t), s->spec.use_bias, p.w0,
                                 a.w0, b.w0);
  MLF_CUDA_TRY_LAUNCH();

  if (x.nnz > 0) {
    UpdateArgs ua = MakeUpdateArgs(s, rescale, t);
    ua.g = fa.g;
    ua.s = fa.s;
    ua.values = x.values;
    if (sorted) {
      SortedAggregate(s, x, ua);
    } else {
      AtomicAggregate(s, x, ua);
    }
  }

  auto* h = static_cast<double*>(s->host_out.Reserve(kSums * sizeof(double)));
  Download(h, totals, kSums, st);
  s->cuda.Synchronize();  // the one host sync of this step
  out.loss = h[0];
  out.squared_error = h[1];
  out.absolute_error = h[2];
  out.rows = n;
  return out;
}

FmBatchLoss FmGpuGroupGradient(FmGpuState* s, const HostBatch& batch, const float* labels, std::vector<int64_t>* ids,
                               std::vector<float>* grad, double* g0) {
  MLF_ASSERT(labels != nullptr || batch.rows == 0);
  ids->clear();
  grad->clear();
  *g0 = 0;
  FmBatchLoss out;
  if (batch.rows == 0) return out;
  cudaStream_t st = s->cuda.stream;
  const DeviceCsr x = Pack(s, batch, labels);
  const int64_t n = x.n, k = s->k;
  // The forward pass as in FmGpuStep (row_of for the segments); FinishKernel only adds the
  // partials: the bias waits for the group's gradient.
  ForwardArgs fa = MakeForward(s, x);
  fa.s = s->s.Reserve(static_cast<size_t>(n * k));
  fa.g = s->g.Reserve(static_cast<size_t>(n));
  fa.row_of = s->row_of.Reserve(static_cast<size_t>(std::max<int64_t>(x.nnz, 1)));
  const unsigned grid = s->Grid(n);
  fa.partials = s->partials.Reserve(static_cast<size_t>(grid) * kSums);
  MLF_FM_LAUNCH(ForwardKernel, s->group, grid, st, fa);
  double* totals = s->totals.Reserve(kSums);
  FinishKernel<<<1, 32, 0, st>>>(fa.partials, static_cast<int>(grid), totals, DevUpdate{}, false, nullptr,
                                 nullptr, nullptr);
  MLF_CUDA_TRY_LAUNCH();
  int32_t runs = 0;
  if (x.nnz > 0) {
    SortByFeature(s, x);
    UpdateArgs ua{};
    ua.k = static_cast<int>(k);
    ua.g = fa.g;
    ua.s = fa.s;
    ua.values = x.values;
    ua.p = Split(s->params.get(), s->d, k);
    float* rows_out = s->group_grad.Reserve(static_cast<size_t>(x.nnz * (k + 1)));
    MLF_FM_LAUNCH(SortedGradientKernel, s->group, s->Grid(std::min<int64_t>(x.nnz, s->d)), st, ua,
                  s->uniq.get(), s->offsets.get(), s->counts.get(), s->num_runs.get(), s->sorted_pos.get(),
                  s->row_of.get(), rows_out);
    Download(&runs, s->num_runs.get(), 1, st);
  }
  auto* h = static_cast<double*>(s->host_out.Reserve(kSums * sizeof(double)));
  Download(h, totals, kSums, st);
  s->cuda.Synchronize();
  out.loss = h[0];
  out.squared_error = h[1];
  out.absolute_error = h[2];
  out.rows = n;
  *g0 = h[3];
  if (runs > 0) {
    std::vector<uint32_t> u32(static_cast<size_t>(runs));
    grad->resize(static_cast<size_t>(runs) * static_cast<size_t>(k + 1));
    Download(u32.data(), s->uniq.get(), u32.size(), st);
    Download(grad->data(), s->group_grad.get(), grad->size(), st);
    s->cuda.Synchronize();
    ids->assign(u32.begin(), u32.end());
  }
  return out;
}

void FmGpuApplyRows(FmGpuState* s, const std::vector<int64_t>& ids, const std::vector<float>& grad, double g0,
                    float rescale, int64_t t) {
  const int64_t k = s->k, rows = static_cast<int64_t>(ids.size());
  MLF_ASSERT(t >= 1 && static_cast<int64_t>(grad.size()) == rows * (k + 1));
  cudaStream_t st = s->cuda.stream;
  const ParamView p = Split(s->params.get(), s->d, k), a = Split(s->state_a.get(), s->d, k),
                  b = Split(s->state_b.get(), s->d, k);
  if (rows > 0) {
    // ids (as uint32: feature_dim <= INT_MAX) and the gradient rows up in one pinned copy each.
    std::vector<uint32_t> u32(ids.begin(), ids.end());
    uint32_t* dev_ids = s->apply_ids.Reserve(static_cast<size_t>(rows));
    float* dev_grad = s->group_grad.Reserve(grad.size());
    MLF_CUDA_TRY(cudaMemcpyAsync(dev_ids, u32.data(), u32.size() * sizeof(uint32_t), cudaMemcpyHostToDevice, st));
    MLF_CUDA_TRY(cudaMemcpyAsync(dev_grad, grad.data(), grad.size() * sizeof(float), cudaMemcpyHostToDevice, st));
    const UpdateArgs ua = MakeUpdateArgs(s, rescale, t);
    MLF_FM_LAUNCH(ApplyRowsKernel, s->group, s->Grid(rows), st, ua, dev_ids, rows, dev_grad);
  }
  if (s->spec.use_bias) {
    BiasUpdateKernel<<<1, 1, 0, st>>>(MakeUpdate(s->spec, s->spec.bias, rescale, t), p.w0, a.w0, b.w0,
                                      static_cast<float>(g0));
    MLF_CUDA_TRY_LAUNCH();
  }
  // The host vectors above are pageable: the copies are done when the stream is.
  s->cuda.Synchronize();
}

void FmGpuPredict(FmGpuState* s, const HostBatch& batch, float* out) {
  if (batch.rows == 0) return;
  cudaStream_t st = s->cuda.stream;
  const DeviceCsr x = Pack(s, batch, nullptr);
  ForwardArgs fa = MakeForward(s, x);
  fa.yhat = s->yhat.Reserve(static_cast<size_t>(x.n));
  MLF_FM_LAUNCH(ForwardKernel, s->group, s->Grid(x.n), st, fa);
  auto* h = static_cast<float*>(s->host_out.Reserve(static_cast<size_t>(x.n) * sizeof(float)));
  Download(h, fa.yhat, static_cast<size_t>(x.n), st);
  s->cuda.Synchronize();
  std::memcpy(out, h, static_cast<size_t>(x.n) * sizeof(float));
}

FmParams FmGpuParams(const FmGpuState* s) {
  const int64_t d = s->d, k = s->k;
  FmParams p;
  p.d = d;
  p.k = k;
  std::vector<float> all(s->Elements());
  // A pageable copy: Params is called rarely (checkpoints, the end of training).
  MLF_CUDA_TRY(cudaMemcpyAsync(all.data(), s->params.get(), all.size() * sizeof(float),
                               cudaMemcpyDeviceToHost, s->cuda.stream));
  s->cuda.Synchronize();
  p.v.assign(all.begin(), all.begin() + d * k);
  p.w.assign(all.begin() + d * k, all.begin() + d * k + d);
  p.w0 = all[static_cast<size_t>(d * k + d)];
  return p;
}

}  // namespace internal
}  // namespace mlforge::kernels
