// CUDA twin of the linear learner loss-and-gradient step (contract: linear_loss.h; CPU twin and
// dispatch: linear_loss.cc).
//
// Per call: SGEMM S = X W (cuBLAS, float32, bias added by the loss kernel), LossKernel (one thread
// per (row, model): loss and derivatives in float64, G = weighted dLoss/dS in float32, loss and
// weight sums per block in float64 written as row-slice partials), ColumnSumKernel (bias gradient
// as row-slice partials of G's columns), SGEMM dW = X^T G, ReduceSlicesKernel (adds the partials in
// fixed-order trees into the outputs). No atomics: the result depends only on n and m, not on
// scheduling.
#include <algorithm>
#include <climits>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/resources.h"
#include "kernels/cuda_check.cuh"
#include "kernels/device_buffer.cuh"
#include "comm/device_communicator.h"
#include "kernels/linear_loss.h"

namespace mlforge::kernels {
namespace {

// A block is kThreads threads: `cw` models (or G columns) side by side, kThreads / cw row-threads
// under them; blockIdx.y picks a row slice. cw = the column count rounded up to a power of two, at
// most 32, so one model (m = 1) uses every thread of the block instead of 1 in 32.
constexpr int kThreads = 256;
// Row slices: enough blocks to fill the GPU (2048 x 256 threads: every thread slot of an H200's 132
// multiprocessors; with 256 slices the loss kernel of 32 models ran at a quarter occupancy, latency
// bound on its float64 exp/log1p), few enough that the partials stay small (2048 x m doubles).
constexpr int64_t kMaxSlices = 2048;

// From this many models on, the logistic loss is evaluated in float32 (the CPU twin's threshold).
constexpr int64_t kFloatLogisticModels = 8;

int64_t Slices(int64_t n) { return std::max<int64_t>(1, std::min<int64_t>(kMaxSlices, CeilDiv(n, 64))); }
int ColsPerBlock(int64_t cols) {
  int c = 1;
  while (c < cols && c < 32) c *= 2;
  return c;
}

// Adds s[r * cw + tx] over r into s[tx] (r < kThreads / cw), a fixed-order tree; every thread of
// the block calls it.
__device__ void TreeSumRows(double* s, int cw) {
  __syncthreads();
  for (int half = kThreads / cw / 2; half > 0; half >>= 1) {
    const int ty = threadIdx.x / cw;
    if (ty < half) s[threadIdx.x] += s[threadIdx.x + half * cw];
    __syncthreads();
  }
}

size_t Align(size_t bytes) { return (bytes + 255) / 256 * 256; }

__device__ inline double SignD(double r) { return r > 0 ? 1.0 : (r < 0 ? -1.0 : 0.0); }

// The scalar losses of LinearLossValue (linear_loss.cc), line for line.
__device__ double ScalarLoss(const LinearLossSpec& spec, double s, double y, double* dl) {
  const double r = s - y;
  switch (spec.kind) {
    case LinearLossKind::kLogistic: {
      const double y01 = y > 0.5 ? 1.0 : 0.0;
      const double e = exp(-fabs(s));
      *dl = (s >= 0 ? 1.0 : e) / (1.0 + e) - y01;
      return fmax(s, 0.0) + log1p(e) - y01 * s;
    }
    case LinearLossKind::kSquared:
      *dl = r;
      return 0.5 * r * r;
    case LinearLossKind::kAbsolute:
      *dl = SignD(r);
      return fabs(r);
    case LinearLossKind::kHinge: {
      const double ypm = y > 0.5 ? 1.0 : -1.0;
      const double h = spec.margin - ypm * s;
      *dl = h > 0 ? -ypm : 0.0;
      return h > 0 ? h : 0.0;
    }
    case LinearLossKind::kEpsInsensitiveSquared: {
      const double e = fmax(0.0, fabs(r) - spec.epsilon);
      *dl = SignD(r) * e;
      return 0.5 * e * e;
    }
    case LinearLossKind::kEpsInsensitiveAbsolute: {
      const double e = fabs(r) - spec.epsilon;
      *dl = e > 0 ? SignD(r) : 0.0;
      return e > 0 ? e : 0.0;
    }
    case LinearLossKind::kQuantile:
      if (r < 0) {
        *dl = -spec.quantile;
        return -spec.quantile * r;
      }
      *dl = r > 0 ? 1.0 - spec.quantile : 0.0;
      return (1.0 - spec.quantile) * r;
    case LinearLossKind::kHuber: {
      const double a = fabs(r);
      if (a <= spec.huber_delta) {
        *dl = r;
        return 0.5 * r * r;
      }
      *dl = spec.huber_delta * SignD(r);
      return spec.huber_delta * (a - 0.5 * spec.huber_delta);
    }
    case LinearLossKind::kSoftmax:
      break;  // handled by the caller (k scores per row)
  }
  *dl = 0;
  return 0;
}

// S: n x mk scores without bias (the GEMM's output); adds the bias in place when `bias` is set, so
// S ends as the step's scores. g: n x mk or null. part_loss / part_w: slices x m.
__global__ void LossKernel(float* __restrict__ S, int64_t n, int64_t m, int64_t k,
                           const float* __restrict__ bias, const float* __restrict__ labels,
                           const float* __restrict__ row_weights, const float* __restrict__ positive_weight,
                           LinearLossSpec spec, float* __restrict__ g, double* __restrict__ part_loss,
                           double* __restrict__ part_w, int cw) {
  __shared__ double s_loss[kThreads];
  __shared__ double s_w[kThreads];
  const int tx = threadIdx.x % cw, ty = threadIdx.x / cw, kRows = kThreads / cw;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * cw + tx;
  const int64_t slices = gridDim.y;
  const int64_t mk = m * k;
  const bool softmax = spec.kind == LinearLossKind::kSoftmax;
  const bool binary = spec.kind == LinearLossKind::kLogistic || spec.kind == LinearLossKind::kHinge;
  const bool float_logistic = spec.kind == LinearLossKind::kLogistic && m >= kFloatLogisticModels;
  double loss = 0, wsum = 0;
  if (j < m) {
    for (int64_t i = static_cast<int64_t>(blockIdx.y) * kRows + ty; i < n; i += slices * kRows) {
      const double y = labels[i];
      double w = row_weights != nullptr ? row_weights[i] : 1.0;
      if (binary && y > 0.5 && positive_weight != nullptr) w *= positive_weight[j];
      wsum += w;
      float* s = S + i * mk + j * k;
      if (bias != nullptr) {
        for (int64_t c = 0; c < k; ++c) s[c] += bias[j * k + c];
      }
      if (softmax) {
        const int64_t label = static_cast<int64_t>(y);
        double mx = s[0];
        for (int64_t c = 1; c < k; ++c) mx = fmax(mx, static_cast<double>(s[c]));
        double z = 0;
        for (int64_t c = 0; c < k; ++c) z += exp(static_cast<double>(s[c]) - mx);
        loss += w * (mx + log(z) - static_cast<double>(s[label]));
        if (g != nullptr) {
          float* gr = g + i * mk + j * k;
          for (int64_t c = 0; c < k; ++c) {
            const double p = exp(static_cast<double>(s[c]) - mx) / z;
            gr[c] = static_cast<float>(w * (p - (c == label ? 1.0 : 0.0)));
          }
        }
      } else if (float_logistic) {
        // As the CPU twin for m >= 8: float32 per element (~1e-7 relative), sums in float64. In
        // float64 this kernel was bound by the FP64 units' exp/log1p (0.75 ms of a 1.35 ms step of
        // 32 models on 1M rows, H200).
        const float sf = s[0];
        const float y01 = y > 0.5 ? 1.0f : 0.0f;
        const float e = expf(-fabsf(sf));
        const float dl = (sf >= 0.0f ? 1.0f : e) / (1.0f + e) - y01;
        loss += w * static_cast<double>(fmaxf(sf, 0.0f) + log1pf(e) - y01 * sf);
        if (g != nullptr) g[i * mk + j] = static_cast<float>(w * dl);
      } else {
        double dl = 0;
        loss += w * ScalarLoss(spec, s[0], y, &dl);
        if (g != nullptr) g[i * mk + j] = static_cast<float>(w * dl);
      }
    }
  }
  s_loss[threadIdx.x] = loss;
  s_w[threadIdx.x] = wsum;
  TreeSumRows(s_loss, cw);
  TreeSumRows(s_w, cw);
  if (ty == 0 && j < m) {
    part_loss[blockIdx.y * m + j] = s_loss[tx];
    part_w[blockIdx.y * m + j] = s_w[tx];
  }
}

// part: slices x cols; part[s * cols + c] = sum of column c of g over row slice s (float64).
__global__ void ColumnSumKernel(const float* __restrict__ g, int64_t n, int64_t cols,
                                double* __restrict__ part, int cw) {
  __shared__ double s_sum[kThreads];
  const int tx = threadIdx.x % cw, ty = threadIdx.x / cw, kRows = kThreads / cw;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * cw + tx;
  const int64_t slices = gridDim.y;
  double sum = 0;
  if (c < cols) {
    for (int64_t i = static_cast<int64_t>(blockIdx.y) * kRows + ty; i < n; i += slices * kRows)
      sum += g[i * cols + c];
  }
  s_sum[threadIdx.x] = sum;
  TreeSumRows(s_sum, cw);
  if (ty == 0 && c < cols) part[blockIdx.y * cols + c] = s_sum[tx];
}

// out[c] (= or +=) the sum over slices s of part[s * cols + c], in a fixed order (thread t takes
// slices t, t + kThreads, ..., then a tree): one block per column, so the slices are read in
// parallel rather than one after another by a single thread. Exactly one of out_d / out_f is set.
__global__ void ReduceSlicesKernel(const double* __restrict__ part, int64_t slices, int64_t cols,
                                   bool accumulate, double* __restrict__ out_d, float* __restrict__ out_f) {
  __shared__ double s_sum[kThreads];
  const int64_t c = blockIdx.x;
  double part_sum = 0;
  for (int64_t s = threadIdx.x; s < slices; s += kThreads) part_sum += part[s * cols + c];
  s_sum[threadIdx.x] = part_sum;
  TreeSumRows(s_sum, 1);
  if (threadIdx.x != 0) return;
  const double sum = s_sum[0];
  if (out_d != nullptr) {
    out_d[c] = accumulate ? out_d[c] + sum : sum;
  } else {
    out_f[c] = static_cast<float>(accumulate ? out_f[c] + sum : sum);
  }
}

void Reduce(detail::CudaState& cuda, const double* part, int64_t slices, int64_t cols, bool accumulate,
            double* out_d, float* out_f) {
  MLF_ASSERT_MSG(cols <= INT_MAX, "linear loss GPU: {} columns exceed the grid", cols);
  ReduceSlicesKernel<<<static_cast<unsigned>(cols), kThreads, 0, cuda.stream>>>(part, slices, cols, accumulate,
                                                                                 out_d, out_f);
  MLF_CUDA_TRY_LAUNCH();
}

// Workspace pieces, in order: S (when the caller wants no scores) | G | loss and weight partials
// (2 x slices x m) | bias-gradient partials (slices x mk).
struct Workspace {
  float* s = nullptr;
  float* g = nullptr;
  double* part_loss = nullptr;
  double* part_w = nullptr;
  double* part_gb = nullptr;
  size_t bytes = 0;
};

Workspace Layout(void* base, int64_t n, int64_t m, int64_t k) {
  const int64_t mk = m * k, slices = Slices(n);
  auto* p = static_cast<unsigned char*>(base);
  Workspace w;
  auto take = [&](size_t bytes) {
    unsigned char* at = p == nullptr ? nullptr : p + w.bytes;
    w.bytes += Align(bytes);
    return at;
  };
  w.s = reinterpret_cast<float*>(take(static_cast<size_t>(n * mk) * sizeof(float)));
  w.g = reinterpret_cast<float*>(take(static_cast<size_t>(n * mk) * sizeof(float)));
  w.part_loss = reinterpret_cast<double*>(take(static_cast<size_t>(slices * m) * sizeof(double)));
  w.part_w = reinterpret_cast<double*>(take(static_cast<size_t>(slices * m) * sizeof(double)));
  w.part_gb = reinterpret_cast<double*>(take(static_cast<size_t>(slices * mk) * sizeof(double)));
  return w;
}

}  // namespace

size_t LinearLossGpuWorkspaceBytes(int64_t n, int64_t m, int64_t k) { return Layout(nullptr, n, m, k).bytes; }

void LinearLossGradGpu(detail::CudaState& cuda, const DeviceDenseView& x, const float* labels,
                       const float* row_weights, const DeviceLinearModels& models, const LinearLossSpec& spec,
                       const DeviceLinearLossOutput& out, bool accumulate, void* workspace,
                       size_t workspace_bytes) {
  const int64_t n = x.rows, d = models.d, m = models.m, k = models.k, mk = m * k;
  MLF_ASSERT(x.cols == d && models.weights != nullptr && d >= 1 && m >= 1 && k >= 1);
  MLF_ASSERT_MSG(spec.kind == LinearLossKind::kSoftmax ? k >= 2 : k == 1,
                 "{} outputs per model for this loss", k);
  MLF_ASSERT_MSG(n <= INT_MAX && d <= INT_MAX && mk <= INT_MAX, "linear loss GPU: sizes exceed cuBLAS int");
  const Workspace ws = Layout(workspace, n, m, k);
  MLF_ASSERT(workspace_bytes >= ws.bytes);
  const int64_t slices = Slices(n);
  const bool need_g = out.grad_weights != nullptr || out.grad_bias != nullptr;
  if (n == 0) {
    if (!accumulate) {
      if (out.loss) MLF_CUDA_TRY(cudaMemsetAsync(out.loss, 0, m * sizeof(double), cuda.stream));
      if (out.weight_sum) MLF_CUDA_TRY(cudaMemsetAsync(out.weight_sum, 0, m * sizeof(double), cuda.stream));
      if (out.grad_weights)
        MLF_CUDA_TRY(cudaMemsetAsync(out.grad_weights, 0, d * mk * sizeof(float), cuda.stream));
      if (out.grad_bias) MLF_CUDA_TRY(cudaMemsetAsync(out.grad_bias, 0, mk * sizeof(float), cuda.stream));
    }
    return;
  }
  float* s = out.scores != nullptr ? out.scores : ws.s;
  const float one = 1.0f, zero = 0.0f;
  // Column-major view of row-major arrays: S' (mk x n) = W' (mk x d) * X' (d x n).
  MLF_CUBLAS_TRY(cublasGemmEx(cuda.cublas, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(mk),
                              static_cast<int>(n), static_cast<int>(d), &one, models.weights, CUDA_R_32F,
                              static_cast<int>(mk), x.values, CUDA_R_32F, static_cast<int>(d), &zero, s,
                              CUDA_R_32F, static_cast<int>(mk), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  const int cw_m = ColsPerBlock(m);
  LossKernel<<<dim3(static_cast<unsigned>(CeilDiv(m, cw_m)), static_cast<unsigned>(slices)), kThreads, 0,
               cuda.stream>>>(s, n, m, k, models.bias, labels, row_weights, models.positive_weight, spec,
                              need_g ? ws.g : nullptr, ws.part_loss, ws.part_w, cw_m);
  MLF_CUDA_TRY_LAUNCH();
  if (out.loss) Reduce(cuda, ws.part_loss, slices, m, accumulate, out.loss, nullptr);
  if (out.weight_sum) Reduce(cuda, ws.part_w, slices, m, accumulate, out.weight_sum, nullptr);
  if (out.grad_bias) {
    const int cw_mk = ColsPerBlock(mk);
    ColumnSumKernel<<<dim3(static_cast<unsigned>(CeilDiv(mk, cw_mk)), static_cast<unsigned>(slices)), kThreads,
                      0, cuda.stream>>>(ws.g, n, mk, ws.part_gb, cw_mk);
    MLF_CUDA_TRY_LAUNCH();
    Reduce(cuda, ws.part_gb, slices, mk, accumulate, nullptr, out.grad_bias);
  }
  if (out.grad_weights) {
    // dW' (mk x d) = G' (mk x n) * X'^T (n x d).
    const float beta = accumulate ? 1.0f : 0.0f;
    MLF_CUBLAS_TRY(cublasGemmEx(
        cuda.cublas, CUBLAS_OP_N, CUBLAS_OP_T, static_cast<int>(mk), static_cast<int>(d), static_cast<int>(n),
        &one, ws.g, CUDA_R_32F, static_cast<int>(mk), x.values, CUDA_R_32F, static_cast<int>(d), &beta,
        out.grad_weights, CUDA_R_32F, static_cast<int>(mk), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

// ---------------------------------------------------------------------------------------------
// The GPU half of LinearLossStepper.

namespace internal {

struct LinearGpuState {
  explicit LinearGpuState(detail::CudaState& c)
      : cuda(c),
        x(c.stream),
        labels(c.stream),
        weights_row(c.stream),
        w(c.stream),
        b(c.stream),
        pw(c.stream),
        indptr(c.stream),
        indices(c.stream),
        values(c.stream),
        scores(c.stream),
        sums(c.stream),
        gw(c.stream),
        gb(c.stream),
        workspace(c.stream) {}
  detail::CudaState& cuda;
  GrowBuffer<float> x, labels, weights_row, w, b, pw;
  GrowBuffer<int64_t> indptr;
  GrowBuffer<uint32_t> indices;
  GrowBuffer<float> values;
  GrowBuffer<float> scores;
  GrowBuffer<double> sums;  // loss m | weight_sum m
  GrowBuffer<float> gw, gb;
  GrowBuffer<unsigned char> workspace;
};

void LinearGpuStateDeleter::operator()(LinearGpuState* s) const { delete s; }

LinearGpuState* LinearGpuCreate(Resources& res) { return new LinearGpuState(res.cuda()); }

namespace {

// Queues the step for `batch` on the state's stream into the device outputs `o` (set by the
// caller); nothing comes down.
void Launch(LinearGpuState* s, const HostBatch& batch, const float* labels, const float* row_weights,
            const HostLinearModels& models, const LinearLossSpec& spec, const DeviceLinearLossOutput& o) {
  cudaStream_t st = s->cuda.stream;
  const int64_t n = batch.rows, d = models.d, m = models.m, k = models.k, mk = m * k;
  if (spec.kind == LinearLossKind::kSoftmax) CheckSoftmaxLabels(labels, n, k);  // the kernel indexes by label
  DeviceLinearModels dm;
  dm.weights = Upload(s->w, models.weights, static_cast<size_t>(d * mk), st);
  dm.bias = models.bias != nullptr ? Upload(s->b, models.bias, static_cast<size_t>(mk), st) : nullptr;
  dm.positive_weight = models.positive_weight != nullptr
                           ? Upload(s->pw, models.positive_weight, static_cast<size_t>(m), st)
                           : nullptr;
  dm.d = d;
  dm.m = m;
  dm.k = k;
  const float* dl = Upload(s->labels, labels, static_cast<size_t>(n), st);
  const float* drw =
      row_weights != nullptr ? Upload(s->weights_row, row_weights, static_cast<size_t>(n), st) : nullptr;
  if (batch.layout == Layout::kDense) {
    MLF_ASSERT(static_cast<int64_t>(batch.values.size()) == n * d);
    const float* dx = Upload(s->x, batch.values.data(), static_cast<size_t>(n * d), st);
    const size_t ws_bytes = LinearLossGpuWorkspaceBytes(n, m, k);
    LinearLossGradGpu(s->cuda, DeviceDenseView{dx, n, d}, dl, drw, dm, spec, o, false,
                      s->workspace.Reserve(ws_bytes), ws_bytes);
  } else {
    const HostCsrView v = CsrView(batch);
    const int64_t base = v.indptr[0], nnz = v.indptr[n] - base;
    for (int64_t p = 0; p < nnz; ++p) {  // a bad index would be an out-of-bounds device write
      MLF_EXPECTS(v.indices[base + p] < static_cast<uint64_t>(d),
                  "CSR column index {} is out of range for "
                  "feature_dim {}",
                  v.indices[base + p], d);
    }
    const int64_t* dip = Upload(s->indptr, v.indptr, static_cast<size_t>(n + 1), st);
    const uint32_t* dind = Upload(s->indices, v.indices + base, static_cast<size_t>(nnz), st);
    const float* dval = Upload(s->values, v.values + base, static_cast<size_t>(nnz), st);
    const int64_t tile = CsrTileRows(n, d);
    float* dx = s->x.Reserve(static_cast<size_t>(tile * d));
    const size_t ws_bytes = LinearLossGpuWorkspaceBytes(tile, m, k);
    void* ws = s->workspace.Reserve(ws_bytes);
    for (int64_t r0 = 0; r0 < n; r0 += tile) {
      const int64_t rows = std::min(tile, n - r0);
      ExpandCsrTile(dip, dind, dval, base, r0, rows, d, dx, st);
      DeviceLinearLossOutput ot = o;
      if (ot.scores != nullptr) ot.scores += r0 * mk;
      LinearLossGradGpu(s->cuda, DeviceDenseView{dx, rows, d}, dl + r0, drw != nullptr ? drw + r0 : nullptr,
                        dm, spec, ot, r0 > 0, ws, ws_bytes);
    }
  }
}

}  // namespace

void LinearGpuRun(LinearGpuState* s, const HostBatch& batch, const float* labels, const float* row_weights,
                  const HostLinearModels& models, const LinearLossSpec& spec,
                  const HostLinearLossOutput& out) {
  cudaStream_t st = s->cuda.stream;
  const int64_t n = batch.rows, d = models.d, m = models.m, k = models.k, mk = m * k;
  DeviceLinearLossOutput o;
  double* sums = s->sums.Reserve(static_cast<size_t>(2 * m));
  o.scores = out.scores != nullptr ? s->scores.Reserve(static_cast<size_t>(n * mk)) : nullptr;
  o.loss = out.loss != nullptr ? sums : nullptr;
  o.weight_sum = out.weight_sum != nullptr ? sums + m : nullptr;
  o.grad_weights = out.grad_weights != nullptr ? s->gw.Reserve(static_cast<size_t>(d * mk)) : nullptr;
  o.grad_bias = out.grad_bias != nullptr ? s->gb.Reserve(static_cast<size_t>(mk)) : nullptr;
  Launch(s, batch, labels, row_weights, models, spec, o);
  Download(out.scores, o.scores, static_cast<size_t>(n * mk), st);
  Download(out.loss, o.loss, static_cast<size_t>(m), st);
  Download(out.weight_sum, o.weight_sum, static_cast<size_t>(m), st);
  Download(out.grad_weights, o.grad_weights, static_cast<size_t>(d * mk), st);
  Download(out.grad_bias, o.grad_bias, static_cast<size_t>(mk), st);
  s->cuda.Synchronize();  // the one host sync of this step
}

void LinearGpuRunReduced(LinearGpuState* s, comm::DeviceCommunicator& reduce, const HostBatch* batch,
                         const float* labels, const float* row_weights, const HostLinearModels& models,
                         const LinearLossSpec& spec, const HostLinearLossOutput& out, double rows,
                         double* group_rows) {
  cudaStream_t st = s->cuda.stream;
  const int64_t d = models.d, m = models.m, mk = m * models.k;
  // The gradient as one buffer (dW | db) and the sums as one (loss | weight sum | rows): two
  // collectives per step.
  const size_t ng = static_cast<size_t>(d * mk + mk), ns = static_cast<size_t>(2 * m + 1);
  float* grad = s->gw.Reserve(ng);
  double* sums = s->sums.Reserve(ns);
  DeviceLinearLossOutput o;
  o.loss = sums;
  o.weight_sum = sums + m;
  o.grad_weights = grad;
  o.grad_bias = grad + d * mk;
  if (batch != nullptr && batch->rows > 0) {
    Launch(s, *batch, labels, row_weights, models, spec, o);
  } else {
    MLF_CUDA_TRY(cudaMemsetAsync(grad, 0, ng * sizeof(float), st));
    MLF_CUDA_TRY(cudaMemsetAsync(sums, 0, 2 * static_cast<size_t>(m) * sizeof(double), st));
    rows = 0;
  }
  // From pageable memory: staged before the call returns, so the local may go.
  MLF_CUDA_TRY(cudaMemcpyAsync(sums + 2 * m, &rows, sizeof(double), cudaMemcpyHostToDevice, st));
  reduce.AllReduceSum(grad, ng, st);
  reduce.AllReduceSum(sums, ns, st);
  Download(out.grad_weights, grad, static_cast<size_t>(d * mk), st);
  Download(out.grad_bias, grad + d * mk, static_cast<size_t>(mk), st);
  Download(out.loss, sums, static_cast<size_t>(m), st);
  Download(out.weight_sum, sums + m, static_cast<size_t>(m), st);
  Download(group_rows, sums + 2 * m, 1, st);
  s->cuda.Synchronize();
}

}  // namespace internal
}  // namespace mlforge::kernels
