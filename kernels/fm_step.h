// The factorization-machines coarse step (DESIGN.md "CPU and GPU"): forward, backward and the
// lazy optimizer update of one mini-batch, with the parameters and the optimizer state resident
// on the step's device. fm_step.cc holds the CPU twin and the dispatch (FmStepper); fm_step.cu
// the CUDA twin behind the same class. Plain C++: no CUDA types here.
//
// Model (SPEC.md 4.4), for a row x with non-zeros x_i:
//   s_f  = sum_i v_if x_i                                  (f < k)
//   yhat = w0 + sum_i w_i x_i + 1/2 [ sum_f s_f^2 - sum_i x_i^2 ||v_i||^2 ]
// Loss per row, with g = d loss / d yhat:
//   squared (regressor):          (yhat - y)^2 / 2                 g = yhat - y
//   logistic (binary_classifier): log(1 + e^yhat) - y yhat         g = sigmoid(yhat) - y   (y in {0, 1})
// Gradients of the batch's summed loss:
//   d/dw0 = sum_r g_r;  d/dw_i = sum_r g_r x_ri;  d/dv_if = sum_r g_r x_ri (s_rf - v_if x_ri)
// so only the rows (features) the batch touches get a gradient: a row-sparse gradient, as in
// SageMaker's MXNet graph (w1_weight and v are row_sparse).
//
// Optimizer (MXNet's semantics for row_sparse weights with lazy_update, the way SageMaker's FM
// image trains; SageMaker's meta.json shows `_optimizer` adam by default). For each parameter
// group (bias w0, linear w, factors v) with learning rate lr and weight decay wd, at step t
// (1-based, counting every Step call), for every touched row (always for w0), with
// G = clip(rescale * grad + wd * w) for adam (MXNet adds wd before clipping for adam),
// G = clip(rescale * grad) for sgd and adagrad:
//   sgd:     w = (1 - lr wd) w - lr G
//   adam:    m = b1 m + (1 - b1) G;  u = b2 u + (1 - b2) G^2;
//            w -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(u) + eps)
//   adagrad: h += G^2;  w -= lr (G / sqrt(h + eps) + wd w)
// clip(.) clamps to [-clip_gradient, clip_gradient] when clip_gradient > 0. Rows a batch does not
// touch keep their value and state (weight decay is lazy: it acts only when a row is touched).
// A row is touched when the batch stores an entry for its feature: an explicit zero in a CSR batch
// touches it (as in MXNet's row_sparse gradient); the zeros of a dense batch do not (dense batches
// are converted to CSR without them).
// rescale is 1 / rows of the batch unless set (SageMaker's `rescale_grad`).
//
// Numerics: float32 parameters, state and per-row s; the per-row prediction, loss and the batch's
// loss sums in float64. Gradients of a feature are summed over its rows in a fixed order (rows
// ascending), so the parameters after a step do not depend on the thread count (the reported loss
// sums may differ in the last bits: they are added per thread).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/batch.h"

namespace mlforge {
class Resources;
enum class Device;
}  // namespace mlforge

namespace mlforge::kernels {

enum class FmLoss { kSquared, kLogistic };
enum class FmOptimizer { kSgd, kAdam, kAdagrad };

// One parameter group's optimizer settings (learning rate already multiplied by `_learning_rate`,
// weight decay by `_wd`).
struct FmGroupSpec {
  float lr = 0.001f;
  float wd = 0.0f;
};

struct FmStepSpec {
  FmLoss loss = FmLoss::kSquared;
  FmOptimizer optimizer = FmOptimizer::kAdam;
  FmGroupSpec bias{0.1f, 0.01f};       // w0
  FmGroupSpec linear{0.001f, 0.001f};  // w
  FmGroupSpec factors{0.0001f, 0.00001f};  // v
  bool use_bias = true;    // false: w0 is not trained (keeps its initial value: pass 0)
  bool use_linear = true;  // false: w is not trained (keeps its initial values: pass zeros)
  float beta1 = 0.9f;      // adam
  float beta2 = 0.999f;    // adam
  float eps = 1e-8f;       // adam (1e-8) / adagrad (1e-7): the division guard
  float rescale_grad = 0;  // <= 0: 1 / batch rows
  float clip_gradient = 0; // <= 0: no clipping
};

// The parameters in HOST memory: w0, w (d), v (d x k, row-major; row i is feature i's factors).
struct FmParams {
  int64_t d = 0;
  int64_t k = 0;
  float w0 = 0;
  std::vector<float> w;
  std::vector<float> v;
};

// Summed over a batch's rows (float64): the loss of the step's objective (squared: (yhat-y)^2/2 summed;
// logistic: log loss summed), squared error, absolute error (of yhat for squared loss; of
// sigmoid(yhat) for logistic), and rows. A Predict call fills only `rows`.
struct FmBatchLoss {
  double loss = 0;
  double squared_error = 0;
  double absolute_error = 0;
  int64_t rows = 0;
};

// CPU twin, one piece at a time (exposed for tests and the predictor).
//
// Raw predictions yhat of every row of `batch` (dense or CSR, cols == p.d): `out` receives
// batch.rows floats. `s` (when not null) receives batch.rows x p.k floats, row-major: each row's s.
// Threads over rows (threads <= 0: the default).
void FmForwardCpu(const FmParams& p, const HostBatch& batch, float* out, float* s = nullptr, int threads = 0);

// The row-sparse gradient of the summed loss over the batch (labels: batch.rows floats):
// `rows` receives the touched features in ascending order, grad_w one value per touched feature,
// grad_v k values per touched feature (row-major), grad_w0 the bias gradient. Rescaling, weight
// decay and clipping are NOT applied (they belong to the optimizer). Returns the batch's loss.
FmBatchLoss FmGradientCpu(const FmParams& p, const HostBatch& batch, const float* labels, FmLoss loss,
                          std::vector<int64_t>* rows, std::vector<float>* grad_w, std::vector<float>* grad_v,
                          double* grad_w0, int threads = 0);

// ---------------------------------------------------------------------------------------------
// The stepper the training loop uses: parameters and optimizer state live on res.device().

namespace internal {
struct FmCpuState;
struct FmGpuState;  // defined in fm_step.cu
struct FmGpuStateDeleter {
  void operator()(FmGpuState* s) const;
};
}  // namespace internal

class FmStepper {
 public:
  // Takes the initial parameters (moved to the device on a GPU). UserError naming the size when
  // the parameters and optimizer state do not fit the device's memory.
  FmStepper(Resources& res, FmParams initial, const FmStepSpec& spec);
  ~FmStepper();
  FmStepper(const FmStepper&) = delete;
  FmStepper& operator=(const FmStepper&) = delete;

  Device device() const;
  // One training step on a host batch (CSR or dense, cols == d; labels: batch.rows floats, for
  // logistic 0 or 1). Returns the loss of the batch computed with the parameters BEFORE the update
  // (the progressive training loss SageMaker logs), this rank's rows only. With several ranks in
  // res.comm() it is a collective: see StepGroup.
  FmBatchLoss Step(const HostBatch& batch, const float* labels);
  // Raw predictions yhat with the current parameters (no update): out receives batch.rows floats.
  void Predict(const HostBatch& batch, float* out);
  // The current parameters, copied to the host.
  FmParams Params() const;
  // The parameters, moved out (CPU) or downloaded (GPU), with every device and state buffer freed:
  // the stepper is done (further calls are internal errors). At 10M features x 64 factors this
  // saves a 2.6 GB copy and frees the optimizer state before the model is serialized.
  FmParams TakeParams();
  // Steps taken so far (t of the last step).
  int64_t steps() const { return steps_; }
  // Bytes of parameters plus optimizer state for d features, k factors and an optimizer.
  static size_t StateBytes(int64_t d, int64_t k, FmOptimizer optimizer);

 private:
  // res.comm() with more than one rank: every rank calls Step the same number of times, with an
  // empty batch once its data ran out; the ranks' row-sparse gradients are summed over the union
  // of their touched features (fm_step.cc says how) and every replica applies the same update. On
  // the GPU the gradient rows come down to the host for the exchange and the summed rows go back
  // up for the update (FmGpuGroupGradient / FmGpuApplyRows).
  FmBatchLoss StepGroup(const HostBatch& batch, const float* labels);
  void UpdateBias(double g0, float rescale);

  Resources& res_;
  FmStepSpec spec_;
  int64_t d_ = 0, k_ = 0;
  int64_t steps_ = 0;
  std::unique_ptr<internal::FmCpuState> cpu_;
  std::unique_ptr<internal::FmGpuState, internal::FmGpuStateDeleter> gpu_;
};

namespace internal {
// The GPU half of FmStepper (fm_step.cu; "built without CUDA" stubs otherwise). `t` is the 1-based
// step number. Create throws UserError naming the bytes when the device memory is short.
FmGpuState* FmGpuCreate(Resources& res, const FmParams& initial, const FmStepSpec& spec);
FmBatchLoss FmGpuStep(FmGpuState* s, const HostBatch& batch, const float* labels, int64_t t);
void FmGpuPredict(FmGpuState* s, const HostBatch& batch, float* out);
FmParams FmGpuParams(const FmGpuState* s);
// A group step's two device halves (several ranks; FmStepper::StepGroup exchanges between them).
// GroupGradient: the batch's forward pass and row-sparse gradient without any update: `ids` the
// touched features ascending, `grad` one row of k + 1 floats per id (linear, then the k factors),
// `g0` the bias gradient; returns the batch's loss (this rank's rows). ApplyRows: the optimizer
// step `t` with `rescale` on the rows `ids` with the summed gradient rows `grad` (same layout),
// and on the bias with g0.
FmBatchLoss FmGpuGroupGradient(FmGpuState* s, const HostBatch& batch, const float* labels, std::vector<int64_t>* ids,
                               std::vector<float>* grad, double* g0);
void FmGpuApplyRows(FmGpuState* s, const std::vector<int64_t>& ids, const std::vector<float>& grad, double g0,
                    float rescale, int64_t t);
}  // namespace internal

// The loss of one row (float64) and its derivative g = d loss / d yhat; also used by the metrics.
double FmLossValue(FmLoss loss, double yhat, double label, double* derivative);

}  // namespace mlforge::kernels
