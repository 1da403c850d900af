// CPU twin of the linear learner loss-and-gradient step (linear_loss.h).
#include "kernels/linear_loss.h"

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/build_config.h"
#include "core/error.h"
#include "core/resources.h"
#include "kernels/omp_threads.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mlforge::kernels {

namespace {

using RowMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

double Sign(double r) { return r > 0 ? 1.0 : (r < 0 ? -1.0 : 0.0); }
bool IsBinary(LinearLossKind k) { return k == LinearLossKind::kLogistic || k == LinearLossKind::kHinge; }

void CheckModels(const HostLinearModels& models, const LinearLossSpec& spec, int64_t cols) {
  MLF_ASSERT(models.weights != nullptr && models.d >= 1 && models.m >= 1 && models.k >= 1);
  MLF_EXPECTS(cols == models.d, "the batch has {} columns but the linear models have feature_dim {}", cols,
              models.d);
  MLF_ASSERT_MSG(spec.kind == LinearLossKind::kSoftmax ? models.k >= 2 : models.k == 1,
                 "{} outputs per model: softmax_loss needs k >= 2 and every other loss k == 1", models.k);
}

// Rows [i0, i1) of the scores S (n x mk, already X W + bias): adds their weighted losses and
// weights to my_loss / my_w (m entries, float64) and writes their weighted derivatives into the
// same rows of G (n x mk; null: not needed). Serial: callers parallelise over row ranges.
// The logistic loss of LossRows for many models (m >= 8), vectorised across a block of rows and all
// models at once: LinearLossValue's formulas (softplus from one e^-|s|) in float32 through Eigen's
// packet exp and log instead of one float64 libm call per element, which dominated the step at
// m = 32 (issue 18: 25% of the time in log1p and exp). Per-element loss and derivative carry float32
// rounding (~1e-7 relative; the scores and gradients are float32 anyway); sums are float64.
void LogisticRowsBlocked(const float* scores, int64_t i0, int64_t i1, const float* labels, const float* row_weights,
                         const HostLinearModels& models, float* g, double* my_loss, double* my_w) {
  // Per block of rows: exp and log over the block's scores as one flat array (Eigen's packets);
  // the rest (the select on the sign, the label, the float64 sums per model) in plain loops over
  // the models that the compiler vectorises. Eigen's select and float-to-double cast on arrays
  // are scalar, and in the array expressions this replaced they took a third of the 32-model step.
  using ArrF = Eigen::ArrayXf;
  const int64_t m = models.m;
  constexpr int64_t kRows = 64;
  thread_local ArrF e, u, lg;
  thread_local std::vector<double> block_loss, pw;
  block_loss.assign(static_cast<size_t>(m), 0.0);
  // No row weights and every positive weight 1 (positive_example_weight_mult's default): the
  // weights are all 1.
  bool unweighted = row_weights == nullptr;
  for (int64_t j = 0; unweighted && models.positive_weight != nullptr && j < m; ++j) {
    unweighted = models.positive_weight[j] == 1.0f;
  }
  pw.resize(static_cast<size_t>(m));
  for (int64_t j = 0; j < m; ++j) pw[j] = models.positive_weight ? models.positive_weight[j] : 1.0;
  double* const bl = block_loss.data();
  for (int64_t b0 = i0; b0 < i1; b0 += kRows) {
    const int64_t rows = std::min(kRows, i1 - b0), len = rows * m;
    const Eigen::Map<const ArrF> s(scores + b0 * m, len);
    e = (-s.abs()).exp();
    u = 1.0f + e;
    // log1p(e) for e in (0, 1] as log(u) - ((u - 1) - e) / u: the classic correction for the
    // rounding of u, accurate to a few ulp (Eigen vectorises log, not log1p).
    lg = u.log() - ((u - 1.0f) - e) / u;
    std::fill(bl, bl + m, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = b0 + r;
      const float* sr = scores + i * m;
      const float* er = e.data() + r * m;
      const float* ur = u.data() + r * m;
      const float* lr = lg.data() + r * m;
      const bool positive = labels[i] > 0.5f;
      const float y = positive ? 1.0f : 0.0f;
      float* gr = g != nullptr ? g + i * m : nullptr;
      if (unweighted) {
        for (int64_t j = 0; j < m; ++j) bl[j] += static_cast<double>(std::max(sr[j], 0.0f) + lr[j] - y * sr[j]);
        if (gr != nullptr) {
          for (int64_t j = 0; j < m; ++j) gr[j] = (sr[j] >= 0.0f ? 1.0f : er[j]) / ur[j] - y;
        }
        continue;
      }
      // Row weight x positive weight in float64, as the scalar path and the sums use them.
      const double rw = row_weights ? row_weights[i] : 1.0;
      for (int64_t j = 0; j < m; ++j) {
        const double w = positive ? rw * pw[j] : rw;
        bl[j] += w * static_cast<double>(std::max(sr[j], 0.0f) + lr[j] - y * sr[j]);
        my_w[j] += w;
        if (gr != nullptr) {
          gr[j] = static_cast<float>(w * static_cast<double>((sr[j] >= 0.0f ? 1.0f : er[j]) / ur[j] - y));
        }
      }
    }
    for (int64_t j = 0; j < m; ++j) my_loss[j] += bl[j];
    if (unweighted) {
      for (int64_t j = 0; j < m; ++j) my_w[j] += static_cast<double>(rows);
    }
  }
}

// The softmax loss of LossRows for many models (m >= 8), as LogisticRowsBlocked: per block of
// rows, the shifted scores s - max of every (row, model) go through Eigen's packet exp as one flat
// array and the sums through its log; the rest is short loops over the k classes. Float32 per
// element (~1e-7 relative), float64 sums, like the scalar path's SoftmaxLossValue otherwise.
// At 32 models x 10 classes the scalar float64 exp per element was most of the step.
void SoftmaxRowsBlocked(const float* scores, int64_t i0, int64_t i1, const float* labels, const float* row_weights,
                        const HostLinearModels& models, float* g, double* my_loss, double* my_w) {
  const int64_t m = models.m, k = models.k, mk = m * k;
  constexpr int64_t kRows = 16;
  thread_local Eigen::ArrayXf t, mx, z;
  for (int64_t b0 = i0; b0 < i1; b0 += kRows) {
    const int64_t rows = std::min(kRows, i1 - b0), groups = rows * m;
    const float* sb = scores + b0 * mk;
    t.resize(groups * k);
    mx.resize(groups);
    z.resize(groups);
    for (int64_t q = 0; q < groups; ++q) {
      const float* sq = sb + q * k;
      float top = sq[0];
      for (int64_t c = 1; c < k; ++c) top = std::max(top, sq[c]);
      mx[q] = top;
      for (int64_t c = 0; c < k; ++c) t[q * k + c] = sq[c] - top;
    }
    t = t.exp();
    for (int64_t q = 0; q < groups; ++q) {
      float sum = 0;
      for (int64_t c = 0; c < k; ++c) sum += t[q * k + c];
      z[q] = sum;  // >= 1: the maximum's term is exp(0)
    }
    const Eigen::ArrayXf lz = z.log();
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = b0 + r;
      const auto label = static_cast<int64_t>(labels[i]);
      const double w = row_weights ? row_weights[i] : 1.0;
      for (int64_t j = 0; j < m; ++j) {
        const int64_t q = r * m + j;
        my_w[j] += w;
        my_loss[j] += w * static_cast<double>(mx[q] + lz[q] - sb[q * k + label]);
        if (g == nullptr) continue;
        float* gq = g + i * mk + j * k;
        const float inv = 1.0f / z[q];
        const float* tq = t.data() + q * k;
        if (row_weights == nullptr) {  // weight 1: the float32 derivative as it is
          for (int64_t c = 0; c < k; ++c) gq[c] = tq[c] * inv;
          gq[label] -= 1.0f;
          continue;
        }
        for (int64_t c = 0; c < k; ++c) {
          const float onehot = c == label ? 1.0f : 0.0f;
          gq[c] = static_cast<float>(w * static_cast<double>(tq[c] * inv - onehot));
        }
      }
    }
  }
}

// Register-tiled products for the dense step of many models (mk a multiple of the SIMD width):
// the forward S = X W + bias and the backward GW += X^T G on a chunk of rows that stays in L1
// between them. Eigen's GEMM packs both operands at every call, and at 1000 x 100 x 32 the
// packing was a fifth of the step. Built on Eigen's packet primitives (the widest SIMD the build
// targets; plain floats without SIMD). Sums run in k order per output element, like a dot product.
namespace tile {

using Packet = Eigen::internal::packet_traits<float>::type;
constexpr int kP = Eigen::internal::packet_traits<float>::size;
constexpr int kRows = 6;  // 6 x 2 packets of accumulators: 12 of the 16 AVX2 / 32 AVX-512 registers

// S[r][c] (+ bias) for R rows of x (leading dimension ldx = d) and C packets of columns.
template <int R, int C>
void Forward(const float* x, int64_t d, const float* w, int64_t ldw, const float* bias, float* s, int64_t lds) {
  using Eigen::internal::pmadd;
  using Eigen::internal::pset1;
  using Eigen::internal::ploadu;
  Packet acc[R][C];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) acc[r][c] = pset1<Packet>(0.0f);
  }
  for (int64_t k = 0; k < d; ++k) {
    Packet wv[C];
    for (int c = 0; c < C; ++c) wv[c] = ploadu<Packet>(w + k * ldw + c * kP);
    for (int r = 0; r < R; ++r) {
      const Packet xv = pset1<Packet>(x[r * d + k]);
      for (int c = 0; c < C; ++c) acc[r][c] = pmadd(xv, wv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      Packet v = acc[r][c];
      if (bias != nullptr) v = Eigen::internal::padd(v, ploadu<Packet>(bias + c * kP));
      Eigen::internal::pstoreu(s + r * lds + c * kP, v);
    }
  }
}

// GW[kk][c] += sum over `rows` rows of x[r][kk] g[r][c], for K columns of x from x (leading
// dimension d) and C packets of columns of g.
template <int K, int C>
void Backward(const float* x, int64_t d, int64_t rows, const float* g, int64_t ldg, float* gw, int64_t ldgw) {
  using Eigen::internal::pmadd;
  using Eigen::internal::pset1;
  using Eigen::internal::ploadu;
  Packet acc[K][C];
  for (int kk = 0; kk < K; ++kk) {
    for (int c = 0; c < C; ++c) acc[kk][c] = ploadu<Packet>(gw + kk * ldgw + c * kP);
  }
  for (int64_t r = 0; r < rows; ++r) {
    Packet gv[C];
    for (int c = 0; c < C; ++c) gv[c] = ploadu<Packet>(g + r * ldg + c * kP);
    for (int kk = 0; kk < K; ++kk) {
      const Packet xv = pset1<Packet>(x[r * d + kk]);
      for (int c = 0; c < C; ++c) acc[kk][c] = pmadd(xv, gv[c], acc[kk][c]);
    }
  }
  for (int kk = 0; kk < K; ++kk) {
    for (int c = 0; c < C; ++c) Eigen::internal::pstoreu(gw + kk * ldgw + c * kP, acc[kk][c]);
  }
}

// Dispatch on the leftover row count (1 .. kRows) at compile time.
template <int C, class F>
void WithRows(int64_t r, F&& f) {
  switch (r) {
    case 1: f(std::integral_constant<int, 1>()); break;
    case 2: f(std::integral_constant<int, 2>()); break;
    case 3: f(std::integral_constant<int, 3>()); break;
    case 4: f(std::integral_constant<int, 4>()); break;
    case 5: f(std::integral_constant<int, 5>()); break;
    default: f(std::integral_constant<int, kRows>()); break;
  }
}

// S (rows x mk, leading dimension mk) = X (rows x d) W (d x mk) + bias.
void ForwardRows(const float* x, int64_t rows, int64_t d, const float* w, int64_t mk, const float* bias, float* s) {
  for (int64_t r0 = 0; r0 < rows; r0 += kRows) {
    const int64_t rr = std::min<int64_t>(kRows, rows - r0);
    int64_t c0 = 0;
    for (; c0 + 2 * kP <= mk; c0 += 2 * kP) {
      WithRows<2>(rr, [&](auto R) {
        Forward<decltype(R)::value, 2>(x + r0 * d, d, w + c0, mk, bias ? bias + c0 : nullptr, s + r0 * mk + c0, mk);
      });
    }
    if (c0 < mk) {
      WithRows<1>(rr, [&](auto R) {
        Forward<decltype(R)::value, 1>(x + r0 * d, d, w + c0, mk, bias ? bias + c0 : nullptr, s + r0 * mk + c0, mk);
      });
    }
  }
}

// GW (d x mk) += X^T (d x rows) G (rows x mk).
void BackwardRows(const float* x, int64_t rows, int64_t d, const float* g, int64_t mk, float* gw) {
  for (int64_t k0 = 0; k0 < d; k0 += kRows) {
    const int64_t kk = std::min<int64_t>(kRows, d - k0);
    int64_t c0 = 0;
    for (; c0 + 2 * kP <= mk; c0 += 2 * kP) {
      WithRows<2>(kk, [&](auto K) {
        Backward<decltype(K)::value, 2>(x + k0, d, rows, g + c0, mk, gw + k0 * mk + c0, mk);
      });
    }
    if (c0 < mk) {
      WithRows<1>(kk, [&](auto K) {
        Backward<decltype(K)::value, 1>(x + k0, d, rows, g + c0, mk, gw + k0 * mk + c0, mk);
      });
    }
  }
}

// Whether the tiles apply: whole packets of columns, and W small enough to stay in L2 while the
// rows stream past it (wider models keep Eigen's blocked GEMM).
bool Applies(int64_t d, int64_t mk) { return mk >= kP && mk % kP == 0 && d * mk <= (int64_t{1} << 17); }

}  // namespace tile

void LossRows(const float* scores, int64_t i0, int64_t i1, const float* labels, const float* row_weights,
              const HostLinearModels& models, const LinearLossSpec& spec, float* g, double* my_loss,
              double* my_w) {
  const int64_t m = models.m, k = models.k, mk = m * k;
  if (spec.kind == LinearLossKind::kLogistic && k == 1 && m >= 8) {
    LogisticRowsBlocked(scores, i0, i1, labels, row_weights, models, g, my_loss, my_w);
    return;
  }
  if (spec.kind == LinearLossKind::kSoftmax && m >= 8) {
    SoftmaxRowsBlocked(scores, i0, i1, labels, row_weights, models, g, my_loss, my_w);
    return;
  }
  const bool softmax = spec.kind == LinearLossKind::kSoftmax;
  const bool binary = IsBinary(spec.kind);
  std::vector<double> probs(softmax ? k : 0);
  for (int64_t i = i0; i < i1; ++i) {
    const double rw = row_weights ? row_weights[i] : 1.0;
    const double y = labels[i];
    const bool positive = binary && y > 0.5;
    const float* srow = scores + i * mk;
    float* grow = g ? g + i * mk : nullptr;
    for (int64_t j = 0; j < m; ++j) {
      double w = rw;
      if (positive && models.positive_weight) w *= models.positive_weight[j];
      my_w[j] += w;
      if (softmax) {
        const double l = SoftmaxLossValue(srow + j * k, k, static_cast<int64_t>(y), probs.data());
        my_loss[j] += w * l;
        if (grow) {
          for (int64_t c = 0; c < k; ++c) {
            const double onehot = c == static_cast<int64_t>(y) ? 1.0 : 0.0;
            grow[j * k + c] = static_cast<float>(w * (probs[c] - onehot));
          }
        }
      } else {
        double deriv = 0;
        const double l = LinearLossValue(spec, srow[j], y, &deriv);
        my_loss[j] += w * l;
        if (grow) grow[j] = static_cast<float>(w * deriv);
      }
    }
  }
}

// Adds the per-thread partials (threads x m) in thread order into loss / weight_sum (either may be
// null).
void MergePartials(const std::vector<double>& part_loss, const std::vector<double>& part_w, int threads,
                   int64_t m, double* loss, double* weight_sum) {
  for (int64_t j = 0; j < m; ++j) {
    double l = 0, w = 0;
    for (int t = 0; t < threads; ++t) {
      l += part_loss[static_cast<size_t>(t) * m + j];
      w += part_w[static_cast<size_t>(t) * m + j];
    }
    if (loss) loss[j] = l;
    if (weight_sum) weight_sum[j] = w;
  }
}

// The CSR path's loss step: parallel over rows, per-thread float64 partials merged in order.
void LossAndDerivatives(const float* scores, int64_t n, const float* labels, const float* row_weights,
                        const HostLinearModels& models, const LinearLossSpec& spec, float* g, double* loss,
                        double* weight_sum, int threads) {
  const int64_t m = models.m, mk = m * models.k;
  if (spec.kind == LinearLossKind::kSoftmax) CheckSoftmaxLabels(labels, n, models.k);
  const int nthreads = ResolveThreads(threads);
  std::vector<double> part_loss(static_cast<size_t>(nthreads) * m, 0.0);
  std::vector<double> part_w(static_cast<size_t>(nthreads) * m, 0.0);
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (n * mk > 20000)
#endif
  {
#ifdef _OPENMP
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    const int t = 0, nt = 1;
#endif
    const int64_t i0 = n * t / nt, i1 = n * (t + 1) / nt;
    LossRows(scores, i0, i1, labels, row_weights, models, spec, g,
             part_loss.data() + static_cast<size_t>(t) * m, part_w.data() + static_cast<size_t>(t) * m);
  }
  MergePartials(part_loss, part_w, nthreads, m, loss, weight_sum);
}

void BiasGradient(const float* g, int64_t n, int64_t mk, float* grad_bias) {
  std::vector<double> acc(mk, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const float* grow = g + i * mk;
    for (int64_t c = 0; c < mk; ++c) acc[c] += grow[c];
  }
  for (int64_t c = 0; c < mk; ++c) grad_bias[c] = static_cast<float>(acc[c]);
}

}  // namespace

// softmax_loss indexes by label: every label must be a class index (checked before any parallel
// region, which an exception must not leave).
void CheckSoftmaxLabels(const float* labels, int64_t n, int64_t k) {
  for (int64_t i = 0; i < n; ++i) {
    const float y = labels[i];
    MLF_EXPECTS(y >= 0 && y < static_cast<float>(k) && y == std::floor(y),
                "label {} of row {} is not a class index in 0 .. {} (num_classes = {})", y, i, k - 1, k);
  }
}

double LinearLossValue(const LinearLossSpec& spec, double s, double y, double* derivative) {
  double l = 0, dl = 0;
  const double r = s - y;
  switch (spec.kind) {
    case LinearLossKind::kLogistic: {
      // softplus(s) = max(s, 0) + log1p(e^-|s|) and sigmoid(s) from the same e^-|s|: one exp
      // per element (this loop, not the GEMMs, dominates the step for m = 32 models).
      const double y01 = y > 0.5 ? 1.0 : 0.0;
      const double e = std::exp(-std::fabs(s));
      l = std::max(s, 0.0) + std::log1p(e) - y01 * s;
      dl = (s >= 0 ? 1.0 : e) / (1.0 + e) - y01;
      break;
    }
    case LinearLossKind::kSquared:
      l = 0.5 * r * r;
      dl = r;
      break;
    case LinearLossKind::kAbsolute:
      l = std::fabs(r);
      dl = Sign(r);
      break;
    case LinearLossKind::kHinge: {
      const double ypm = y > 0.5 ? 1.0 : -1.0;
      const double h = spec.margin - ypm * s;
      l = h > 0 ? h : 0.0;
      dl = h > 0 ? -ypm : 0.0;
      break;
    }
    case LinearLossKind::kEpsInsensitiveSquared: {
      const double e = std::max(0.0, std::fabs(r) - spec.epsilon);
      l = 0.5 * e * e;
      dl = Sign(r) * e;
      break;
    }
    case LinearLossKind::kEpsInsensitiveAbsolute: {
      const double e = std::fabs(r) - spec.epsilon;
      l = e > 0 ? e : 0.0;
      dl = e > 0 ? Sign(r) : 0.0;
      break;
    }
    case LinearLossKind::kQuantile:
      // r = s - y: under-prediction (r < 0) costs q per unit, over-prediction (1 - q).
      if (r < 0) {
        l = -spec.quantile * r;
        dl = -spec.quantile;
      } else {
        l = (1.0 - spec.quantile) * r;
        dl = r > 0 ? 1.0 - spec.quantile : 0.0;
      }
      break;
    case LinearLossKind::kHuber: {
      const double a = std::fabs(r);
      if (a <= spec.huber_delta) {
        l = 0.5 * r * r;
        dl = r;
      } else {
        l = spec.huber_delta * (a - 0.5 * spec.huber_delta);
        dl = spec.huber_delta * Sign(r);
      }
      break;
    }
    case LinearLossKind::kSoftmax:
      MLF_ASSERT_MSG(false, "softmax_loss needs SoftmaxLossValue (k scores per row)");
  }
  if (derivative) *derivative = dl;
  return l;
}

double SoftmaxLossValue(const float* scores, int64_t k, int64_t label, double* probs) {
  double mx = scores[0];
  for (int64_t c = 1; c < k; ++c) mx = std::max(mx, static_cast<double>(scores[c]));
  double z = 0;
  for (int64_t c = 0; c < k; ++c) {
    const double e = std::exp(static_cast<double>(scores[c]) - mx);
    if (probs) probs[c] = e;
    z += e;
  }
  if (probs) {
    for (int64_t c = 0; c < k; ++c) probs[c] /= z;
  }
  return mx + std::log(z) - static_cast<double>(scores[label]);
}

void LinearLossGradCpu(const HostDenseView& x, const float* labels, const float* row_weights,
                       const HostLinearModels& models, const LinearLossSpec& spec,
                       const HostLinearLossOutput& out, int threads) {
  CheckModels(models, spec, x.cols);
  const int64_t n = x.rows, d = models.d, m = models.m, mk = m * models.k;
  if (n == 0) {
    if (out.loss) std::fill(out.loss, out.loss + m, 0.0);
    if (out.weight_sum) std::fill(out.weight_sum, out.weight_sum + m, 0.0);
    if (out.grad_weights) std::fill(out.grad_weights, out.grad_weights + d * mk, 0.0f);
    if (out.grad_bias) std::fill(out.grad_bias, out.grad_bias + mk, 0.0f);
    return;
  }
  if (spec.kind == LinearLossKind::kSoftmax) CheckSoftmaxLabels(labels, n, models.k);
  // Scores and derivatives in buffers kept by the calling thread across steps: fresh ones of
  // n x mk floats (128 KB for 1000 rows x 32 models) were mapped and unmapped by malloc at every
  // step (page faults and munmap were ~6% of a 32-model epoch).
  thread_local std::vector<float> s_local, g;
  float* s = out.scores;
  if (!s) {
    if (s_local.size() < static_cast<size_t>(n * mk)) s_local.resize(static_cast<size_t>(n * mk));
    s = s_local.data();
  }
  const bool need_g = out.grad_weights || out.grad_bias;
  if (need_g && g.size() < static_cast<size_t>(n * mk)) g.resize(static_cast<size_t>(n * mk));
  // The region's threads use these pointers: the names would be their own thread_local copies.
  float* const gp = need_g ? g.data() : nullptr;
  // One parallel region per call: each thread takes a contiguous block of rows through both GEMMs
  // (Eigen runs single-threaded inside the region) and the loss, so the threads meet once per step
  // instead of at every barrier of Eigen's own parallel GEMMs, which stalls badly when the cores
  // are shared (the batch decoders run alongside). Thread t's X_t^T G_t goes to its own d x mk
  // buffer (thread 0's straight into the output), summed in thread order afterwards, so results
  // are deterministic for a thread count. Small batches and very wide models run on one thread.
  const int nthreads = ResolveThreads(threads);
  const int64_t work = n * d * mk;
  const int nt =
      static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({nthreads, n / 32, work > 200000 ? nthreads : 1,
                                                               d * mk > (int64_t{1} << 22) ? 1 : nthreads})));
  // Row blocks, taken by whichever thread is free: twice as many as threads, so that a thread
  // the batch decoders preempt does not hold the step (a block per thread made the other wait).
  const int nb = nt > 1 ? static_cast<int>(std::max<int64_t>(nt, std::min<int64_t>(2 * nt, n / 32))) : 1;
  std::vector<double> part_loss(static_cast<size_t>(nb) * m, 0.0), part_w(static_cast<size_t>(nb) * m, 0.0);
  std::vector<float> part_gw(out.grad_weights ? static_cast<size_t>((nb - 1) * d * mk) : 0);
  std::atomic<int> next_block{0};
  const bool tiles = tile::Applies(d, mk);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
  {
    // Blocks, not threads, own the partial buffers: the result does not depend on how many
    // threads the runtime actually grants, nor on which took which block.
    for (int t = next_block.fetch_add(1); t < nb; t = next_block.fetch_add(1)) {
      const int64_t i0 = n * t / nb, i1 = n * (t + 1) / nb, rows = i1 - i0;
      double* my_loss = part_loss.data() + static_cast<size_t>(t) * m;
      double* my_w = part_w.data() + static_cast<size_t>(t) * m;
      float* dst = !out.grad_weights ? nullptr
                   : t == 0          ? out.grad_weights
                                     : part_gw.data() + static_cast<size_t>(t - 1) * d * mk;
      if (tiles) {
        // Chunks of 64 rows: X's chunk (25 KB at d = 100) stays in L1 from the scores to the
        // gradient.
        if (dst) std::fill(dst, dst + d * mk, 0.0f);
        constexpr int64_t kChunk = 64;
        for (int64_t c0 = i0; c0 < i1; c0 += kChunk) {
          const int64_t c1 = std::min(i1, c0 + kChunk);
          const float* xc = x.values + c0 * d;
          tile::ForwardRows(xc, c1 - c0, d, models.weights, mk, models.bias, s + c0 * mk);
          LossRows(s, c0, c1, labels, row_weights, models, spec, gp, my_loss, my_w);
          if (dst) tile::BackwardRows(xc, c1 - c0, d, gp + c0 * mk, mk, dst);
        }
        continue;
      }
      Eigen::Map<const RowMajorF> X(x.values + i0 * d, rows, d);
      Eigen::Map<const RowMajorF> W(models.weights, d, mk);
      Eigen::Map<RowMajorF> S(s + i0 * mk, rows, mk);
      S.noalias() = X * W;
      if (models.bias) S.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(models.bias, mk);
      LossRows(s, i0, i1, labels, row_weights, models, spec, gp, my_loss, my_w);
      if (dst) {
        Eigen::Map<RowMajorF> GW(dst, d, mk);
        GW.noalias() = X.transpose() * Eigen::Map<const RowMajorF>(gp + i0 * mk, rows, mk);
      }
    }
  }
  MergePartials(part_loss, part_w, nb, m, out.loss, out.weight_sum);
  if (out.grad_weights) {
    for (int t = 1; t < nb; ++t) {
      const float* src = part_gw.data() + static_cast<size_t>(t - 1) * d * mk;
      for (int64_t p = 0; p < d * mk; ++p) out.grad_weights[p] += src[p];
    }
  }
  if (out.grad_bias) BiasGradient(gp, n, mk, out.grad_bias);
}

void LinearLossGradCpu(const HostCsrView& x, const float* labels, const float* row_weights,
                       const HostLinearModels& models, const LinearLossSpec& spec,
                       const HostLinearLossOutput& out, int threads) {
  CheckModels(models, spec, x.cols);
  const int64_t n = x.rows, d = models.d, mk = models.m * models.k;
  std::vector<float> s_local;
  float* s = out.scores;
  if (!s) {
    s_local.resize(static_cast<size_t>(n * mk));
    s = s_local.data();
  }
  // Column indices are checked before the parallel loop (an exception must not leave an OpenMP region).
  for (int64_t p = x.indptr[0]; p < x.indptr[n]; ++p) {
    MLF_EXPECTS(x.indices[p] < d, "CSR column index {} is out of range for feature_dim {}", x.indices[p], d);
  }
  const int nthreads = ResolveThreads(threads);
  // S = X W + bias, one row of S per CSR row: S_i += v * W_col for each stored (col, v).
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(static) if (n * mk > 20000)
#endif
  for (int64_t i = 0; i < n; ++i) {
    float* srow = s + i * mk;
    if (models.bias) {
      std::copy(models.bias, models.bias + mk, srow);
    } else {
      std::fill(srow, srow + mk, 0.0f);
    }
    for (int64_t p = x.indptr[i]; p < x.indptr[i + 1]; ++p) {
      const int64_t col = x.indices[p];
      const float v = x.values[p];
      const float* wrow = models.weights + col * mk;
      for (int64_t c = 0; c < mk; ++c) srow[c] += v * wrow[c];
    }
  }
  (void)nthreads;  // unused without OpenMP
  const bool need_g = out.grad_weights || out.grad_bias;
  std::vector<float> g(need_g ? static_cast<size_t>(n * mk) : 0);
  LossAndDerivatives(s, n, labels, row_weights, models, spec, need_g ? g.data() : nullptr, out.loss,
                     out.weight_sum, threads);
  if (out.grad_weights) {
    // dW = X^T G: scatter each row's derivatives into the rows of dW of its stored columns.
    float* gw = out.grad_weights;
    std::fill(gw, gw + d * mk, 0.0f);
    for (int64_t i = 0; i < n; ++i) {
      const float* grow = g.data() + i * mk;
      for (int64_t p = x.indptr[i]; p < x.indptr[i + 1]; ++p) {
        const float v = x.values[p];
        float* dst = gw + static_cast<int64_t>(x.indices[p]) * mk;
        for (int64_t c = 0; c < mk; ++c) dst[c] += v * grow[c];
      }
    }
  }
  if (out.grad_bias) BiasGradient(g.data(), n, mk, out.grad_bias);
}

// ---------------------------------------------------------------------------------------------
// LinearLossStepper: the dispatch.

LinearLossStepper::LinearLossStepper(Resources& res) : res_(res) {
  if (res_.device() == Device::kGpu) gpu_.reset(internal::LinearGpuCreate(res_));
}

LinearLossStepper::~LinearLossStepper() = default;

Device LinearLossStepper::device() const { return res_.device(); }

void LinearLossStepper::Run(const HostBatch& batch, const float* labels, const float* row_weights,
                            const HostLinearModels& models, const LinearLossSpec& spec,
                            const HostLinearLossOutput& out) {
  MLF_EXPECTS(batch.cols == models.d, "the batch has {} columns but the linear models have feature_dim {}",
              batch.cols, models.d);
  if (gpu_) {
    internal::LinearGpuRun(gpu_.get(), batch, labels, row_weights, models, spec, out);
    return;
  }
  if (batch.layout == Layout::kCsr) {
    LinearLossGradCpu(CsrView(batch), labels, row_weights, models, spec, out, res_.threads());
  } else {
    MLF_ASSERT(static_cast<int64_t>(batch.values.size()) == batch.rows * batch.cols);
    LinearLossGradCpu(HostDenseView{batch.values.data(), batch.rows, batch.cols}, labels, row_weights, models,
                      spec, out, res_.threads());
  }
}

void LinearLossStepper::RunReduced(comm::DeviceCommunicator& reduce, const HostBatch* batch, const float* labels,
                                   const float* row_weights, const HostLinearModels& models,
                                   const LinearLossSpec& spec, const HostLinearLossOutput& out, double rows,
                                   double* group_rows) {
  MLF_ASSERT_MSG(gpu_ != nullptr, "RunReduced is the GPU stepper's");
  MLF_ASSERT(out.scores == nullptr && out.grad_weights != nullptr && out.grad_bias != nullptr &&
             out.loss != nullptr && out.weight_sum != nullptr && group_rows != nullptr);
  if (batch != nullptr) {
    MLF_EXPECTS(batch->cols == models.d, "the batch has {} columns but the linear models have feature_dim {}",
                batch->cols, models.d);
  }
  internal::LinearGpuRunReduced(gpu_.get(), reduce, batch, labels, row_weights, models, spec, out, rows,
                                group_rows);
}

#if !MLFORGE_HAVE_CUDA
// Without CUDA linear_loss.cu is not compiled; Resources never resolves to the GPU then, so these
// only run when called directly.
namespace internal {
void LinearGpuStateDeleter::operator()(LinearGpuState*) const {}
LinearGpuState* LinearGpuCreate(Resources&) {
  MLF_FAIL("linear learner on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
void LinearGpuRun(LinearGpuState*, const HostBatch&, const float*, const float*, const HostLinearModels&,
                  const LinearLossSpec&, const HostLinearLossOutput&) {
  MLF_FAIL("linear learner on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
void LinearGpuRunReduced(LinearGpuState*, comm::DeviceCommunicator&, const HostBatch*, const float*, const float*,
                         const HostLinearModels&, const LinearLossSpec&, const HostLinearLossOutput&, double,
                         double*) {
  MLF_FAIL("linear learner on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
}  // namespace internal
size_t LinearLossGpuWorkspaceBytes(int64_t, int64_t, int64_t) { return 0; }
void LinearLossGradGpu(detail::CudaState&, const DeviceDenseView&, const float*, const float*,
                       const DeviceLinearModels&, const LinearLossSpec&, const DeviceLinearLossOutput&, bool,
                       void*, size_t) {
  MLF_FAIL("linear learner on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
#endif

}  // namespace mlforge::kernels
