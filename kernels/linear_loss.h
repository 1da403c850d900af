// The linear learner coarse step: scores, loss and gradient of m parallel linear models on one
// mini-batch (DESIGN.md "CPU and GPU"). linear_loss.cc holds the CPU (Eigen) twin and the
// dispatch (LinearLossStepper); linear_loss.cu the CUDA twin with the same contract on device
// views. Plain C++: no CUDA types here.
//
// Layout. The m models share one weight matrix W of d x (m * k) floats, row-major, where k is the
// number of outputs per model (1 for every loss but softmax, num_classes for softmax): model j
// owns columns [j * k, (j + 1) * k). The batch's scores are one GEMM, S = X (n x d) * W + bias,
// and the weight gradient another, dW = X^T G, where G (n x m k) holds the per-row derivatives of
// the weighted loss with respect to the scores.
//
// Losses, for a score s (k = 1) or score vector s (softmax), label y and residual r = s - y.
// Binary classification labels are 0 / 1 (a label > 0.5 counts as positive); y± = +1 / -1.
//   logistic                       log(1 + e^s) - y s                    d/ds = sigmoid(s) - y
//   squared_loss                   r^2 / 2                               r
//   absolute_loss                  |r|                                   sign(r)
//   hinge_loss                     max(0, margin - y± s)                 -y± where margin - y± s > 0
//   eps_insensitive_squared_loss   max(0, |r| - eps)^2 / 2               sign(r) max(0, |r| - eps)
//   eps_insensitive_absolute_loss  max(0, |r| - eps)                     sign(r) where |r| > eps
//   quantile_loss                  q (y - s) if y >= s else (1 - q)(s - y)   -q / (1 - q)
//   huber_loss                     r^2 / 2 if |r| <= delta else delta (|r| - delta / 2)
//   softmax_loss (k classes)       logsumexp(s) - s_y                    softmax(s) - onehot(y)
// At a kink the subgradient is the one-sided value away from zero residual (0 at r == 0 for
// absolute / quantile). Row i weighs w_i (row_weights, or 1) times positive_weight[j] when
// model j is a binary classifier and the row is positive.
//
// Numerics: float32 storage and products (Eigen's GEMM, or register tiles on the CPU when m k is a
// multiple of the SIMD width); per-element loss and derivatives are evaluated in float64 (the
// logistic loss of m >= 8 models: float32, ~1e-7 relative per element, vectorised on the CPU, on
// both twins; the softmax loss of m >= 8 models: float32 on the CPU twin only), the loss and
// bias-gradient sums accumulate in float64. Gradients are SUMS over the
// rows (not means): the training loop divides by the weight sum it wants.
#pragma once

#include <cstdint>
#include <memory>

#include "core/batch.h"
#include "kernels/column_stats.h"   // HostDenseView
#include "kernels/kmeans_assign.h"  // HostCsrView, CsrView

namespace mlforge {
class Resources;
enum class Device;
namespace detail {
struct CudaState;
}
}  // namespace mlforge

namespace mlforge::comm {
class DeviceCommunicator;  // comm/device_communicator.h (CUDA builds)
}

namespace mlforge::kernels {

enum class LinearLossKind {
  kLogistic,
  kSquared,
  kAbsolute,
  kHinge,
  kEpsInsensitiveSquared,
  kEpsInsensitiveAbsolute,
  kQuantile,
  kHuber,
  kSoftmax,
};

// The loss and its parameters (the same for all m models).
struct LinearLossSpec {
  LinearLossKind kind = LinearLossKind::kSquared;
  double margin = 1.0;       // hinge
  double quantile = 0.5;     // quantile, in (0, 1)
  double epsilon = 0.01;     // eps_insensitive_*: SageMaker's loss_insensitivity
  double huber_delta = 1.0;  // huber
};

// m models in HOST memory.
struct HostLinearModels {
  const float* weights = nullptr;  // d x (m * k), row-major
  const float* bias = nullptr;     // m * k entries, or null for no bias (use_bias = false)
  int64_t d = 0;
  int64_t m = 1;
  int64_t k = 1;  // outputs per model: 1, or the number of classes for softmax (>= 2)
  // m entries: weight multiplier of positive rows (binary losses only), or null for all ones.
  const float* positive_weight = nullptr;
};

// Outputs in HOST memory; every pointer may be null (that output, and the work for it, is skipped:
// null grad_weights skips the X^T G GEMM, so an evaluation pass costs one GEMM). All are
// OVERWRITTEN.
//   scores:       n x (m k), row-major, the raw scores X W + bias
//   loss:         m entries, sum over rows of (row weight) x loss
//   weight_sum:   m entries, sum of the row weights (including positive_weight)
//   grad_weights: d x (m k), row-major, d(loss sum)/dW
//   grad_bias:    m k entries, d(loss sum)/d bias (computed even when bias is null)
struct HostLinearLossOutput {
  float* scores = nullptr;
  double* loss = nullptr;
  double* weight_sum = nullptr;
  float* grad_weights = nullptr;
  float* grad_bias = nullptr;
};

// CPU twin, dense rows: x is n x d row-major (x.cols == models.d). labels: n entries (softmax:
// class indices 0 .. k-1 stored as floats; UserError for anything else). row_weights: n entries
// or null. threads: OpenMP threads for the element-wise part (<= 0: the default).
void LinearLossGradCpu(const HostDenseView& x, const float* labels, const float* row_weights,
                       const HostLinearModels& models, const LinearLossSpec& spec,
                       const HostLinearLossOutput& out, int threads = 0);
// CPU twin, CSR rows (x.cols == models.d). Same results as the dense twin on the densified batch
// up to float32 summation order.
void LinearLossGradCpu(const HostCsrView& x, const float* labels, const float* row_weights,
                       const HostLinearModels& models, const LinearLossSpec& spec,
                       const HostLinearLossOutput& out, int threads = 0);

// ---------------------------------------------------------------------------------------------
// CUDA.

// m models in DEVICE memory (of the CudaState's device); same layout and meaning as
// HostLinearModels.
struct DeviceLinearModels {
  const float* weights = nullptr;  // d x (m * k), row-major
  const float* bias = nullptr;     // m * k entries, or null
  int64_t d = 0;
  int64_t m = 1;
  int64_t k = 1;
  const float* positive_weight = nullptr;  // m entries, or null
};

// Outputs in DEVICE memory, same shapes as HostLinearLossOutput; null pointers are skipped.
// Overwritten, or added to when `accumulate` is passed to LinearLossGradGpu (so that a batch
// processed in row tiles sums up; scores are always written, at the caller's offset).
struct DeviceLinearLossOutput {
  float* scores = nullptr;
  double* loss = nullptr;
  double* weight_sum = nullptr;
  float* grad_weights = nullptr;
  float* grad_bias = nullptr;
};

// Bytes of device workspace LinearLossGradGpu needs for n rows (256-byte aligned pieces).
size_t LinearLossGpuWorkspaceBytes(int64_t n, int64_t m, int64_t k);

// CUDA step on device data, the GPU twin of LinearLossGradCpu (dense rows): cuBLAS SGEMM for the
// scores S = X W (+ bias), one fused kernel for the per-row losses and derivatives G (float64
// per-element math, per-block float64 partial sums of loss and weight written per row slice, no
// atomics), a column-sum kernel for the bias gradient, cuBLAS SGEMM for X^T G, and a last kernel
// that adds the row-slice partials in a fixed order (deterministic for a given n). x: device,
// n x d row-major; labels: device, n entries (softmax labels must be valid class indices: the
// caller checks them on the host); row_weights: device, n entries or null. Everything is enqueued
// on cuda.stream (cuBLAS on cuda.cublas); nothing synchronises with the host.
void LinearLossGradGpu(detail::CudaState& cuda, const DeviceDenseView& x, const float* labels,
                       const float* row_weights, const DeviceLinearModels& models, const LinearLossSpec& spec,
                       const DeviceLinearLossOutput& out, bool accumulate, void* workspace,
                       size_t workspace_bytes);

// ---------------------------------------------------------------------------------------------
// The step for the training loop: a host batch in, host outputs out, on res.device().

namespace internal {
struct LinearGpuState;  // device buffers of a LinearLossStepper; defined in linear_loss.cu
struct LinearGpuStateDeleter {
  void operator()(LinearGpuState* s) const;
};
}  // namespace internal

// Runs the step on res.device() for a host batch (dense or CSR, cols == models.d; UserError
// otherwise). labels / row_weights: host, batch.rows entries (row_weights may be null): the loop
// passes its own (normalised labels, class weights), not necessarily the batch's. models and out:
// host memory, as for the CPU twin. On the GPU the batch, labels, weights and models are uploaded,
// the step runs there and the requested outputs are copied back with one host sync; device buffers
// grow on demand and are reused across calls. Not thread-safe (one per training thread).
class LinearLossStepper {
 public:
  explicit LinearLossStepper(Resources& res);
  ~LinearLossStepper();
  LinearLossStepper(const LinearLossStepper&) = delete;
  LinearLossStepper& operator=(const LinearLossStepper&) = delete;

  Device device() const;
  void Run(const HostBatch& batch, const float* labels, const float* row_weights,
           const HostLinearModels& models, const LinearLossSpec& spec, const HostLinearLossOutput& out);
  // A training step of several ranks with a GPU each (GPU steppers only): the step's gradient
  // (grad_weights | grad_bias) and sums (loss, weight_sum, and `rows`, this rank's row count) are
  // summed over `reduce`'s ranks on the device before they come down, so `out` receives the
  // group's sums and *group_rows the group's rows. `batch` null: this rank has no rows this step
  // and joins the sums with zeros (models' d, m, k still give the sizes). out.scores must be null;
  // out.grad_weights, grad_bias, loss and weight_sum must be set.
  void RunReduced(comm::DeviceCommunicator& reduce, const HostBatch* batch, const float* labels,
                  const float* row_weights, const HostLinearModels& models, const LinearLossSpec& spec,
                  const HostLinearLossOutput& out, double rows, double* group_rows);

 private:
  Resources& res_;
  std::unique_ptr<internal::LinearGpuState, internal::LinearGpuStateDeleter> gpu_;
};

namespace internal {
// The GPU half of LinearLossStepper (linear_loss.cu; "built without CUDA" stubs otherwise).
LinearGpuState* LinearGpuCreate(Resources& res);
void LinearGpuRun(LinearGpuState* s, const HostBatch& batch, const float* labels, const float* row_weights,
                  const HostLinearModels& models, const LinearLossSpec& spec,
                  const HostLinearLossOutput& out);
void LinearGpuRunReduced(LinearGpuState* s, comm::DeviceCommunicator& reduce, const HostBatch* batch,
                         const float* labels, const float* row_weights, const HostLinearModels& models,
                         const LinearLossSpec& spec, const HostLinearLossOutput& out, double rows,
                         double* group_rows);
}  // namespace internal

// softmax_loss indexes by label: UserError naming the row unless every one of the n host labels is
// a class index in 0 .. k-1. Both twins check before any parallel region or kernel.
void CheckSoftmaxLabels(const float* labels, int64_t n, int64_t k);

// The loss of one row for one score (k = 1 losses) in float64, and its derivative; exposed for
// the metrics code and for tests. `label` as above.
double LinearLossValue(const LinearLossSpec& spec, double score, double label, double* derivative);
// softmax_loss of one row: scores has k entries; probs (k entries, may be null) receives
// softmax(scores). Returns logsumexp(scores) - scores[label].
double SoftmaxLossValue(const float* scores, int64_t k, int64_t label, double* probs);

}  // namespace mlforge::kernels
