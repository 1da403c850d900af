// The factorization-machines optimizer update and per-row loss, defined once for both twins: the
// CPU step (fm_step.cc) and the CUDA step (fm_step.cu) include this header, so their arithmetic
// cannot drift apart. Plain C++ for g++; under nvcc the functions are __host__ __device__.
// The formulas are documented in fm_step.h.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/fm_step.h"

#if defined(__CUDACC__)
#define MLF_FM_HD __host__ __device__
#else
#define MLF_FM_HD
#endif

namespace mlforge::kernels::fm_detail {

// The update of one parameter group for one step.
struct Update {
  FmOptimizer kind;
  float lr, wd, rescale, clip, beta1, beta2, eps;
  float adam_lr;  // lr * sqrt(1 - b2^t) / (1 - b1^t), computed in float64 by MakeUpdate

  // Clamped to [-clip, clip] when clip > 0; NaN passes through (a diverged step stays visible).
  MLF_FM_HD float Clip(float g) const { return clip > 0 ? (g < -clip ? -clip : (g > clip ? clip : g)) : g; }
  MLF_FM_HD void Sgd(float* w, float grad) const {
    const float G = Clip(rescale * grad);
    *w = (1.0f - lr * wd) * *w - lr * G;
  }
  MLF_FM_HD void Adam(float* w, float* m, float* u, float grad) const {
    const float G = Clip(rescale * grad + wd * *w);  // MXNet's adam adds the decay before clipping
    *m = beta1 * *m + (1.0f - beta1) * G;
    *u = beta2 * *u + (1.0f - beta2) * G * G;
    *w -= adam_lr * *m / (std::sqrt(*u) + eps);
  }
  MLF_FM_HD void Adagrad(float* w, float* h, float grad) const {
    const float G = Clip(rescale * grad);
    *h += G * G;
    *w -= lr * (G / std::sqrt(*h + eps) + wd * *w);
  }
  // w: the parameter; a, b: its state (adam m, u; adagrad h in a; unused ones may be null).
  MLF_FM_HD void Apply(float* w, float* a, float* b, float grad) const {
    switch (kind) {
      case FmOptimizer::kSgd:
        Sgd(w, grad);
        break;
      case FmOptimizer::kAdam:
        Adam(w, a, b, grad);
        break;
      case FmOptimizer::kAdagrad:
        Adagrad(w, a, grad);
        break;
    }
  }
};

// Step t's update of `group` (t is 1-based). Host only.
inline Update MakeUpdate(const FmStepSpec& spec, const FmGroupSpec& group, float rescale, int64_t t) {
  Update u{spec.optimizer, group.lr, group.wd, rescale, spec.clip_gradient, spec.beta1, spec.beta2, spec.eps, 0};
  const double c1 = 1.0 - std::pow(static_cast<double>(spec.beta1), static_cast<double>(t));
  const double c2 = 1.0 - std::pow(static_cast<double>(spec.beta2), static_cast<double>(t));
  u.adam_lr = static_cast<float>(group.lr * std::sqrt(c2) / c1);
  return u;
}

// The loss of one row; *derivative = d loss / d yhat; *prediction = yhat (squared) or sigmoid(yhat)
// (logistic), the value the error metrics are taken of. Computed without overflow.
MLF_FM_HD inline double RowLoss(FmLoss loss, double yhat, double label, double* derivative, double* prediction) {
  if (loss == FmLoss::kSquared) {
    const double r = yhat - label;
    *derivative = r;
    *prediction = yhat;
    return 0.5 * r * r;
  }
  const double softplus = yhat > 0 ? yhat + std::log1p(std::exp(-yhat)) : std::log1p(std::exp(yhat));
  const double p = yhat >= 0 ? 1.0 / (1.0 + std::exp(-yhat)) : std::exp(yhat) / (1.0 + std::exp(yhat));
  *derivative = p - label;
  *prediction = p;
  return softplus - label * yhat;
}

}  // namespace mlforge::kernels::fm_detail
