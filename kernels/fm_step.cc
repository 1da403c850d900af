// CPU twin of the factorization-machines step, and the FmStepper dispatch (fm_step.h).
//
// Gradient aggregation without contention on hot features: the batch's non-zeros are grouped by
// feature with a counting sort over the features the batch touches (a persistent d-entry slot
// table maps a feature to its position among the batch's unique features and is reset after the
// batch, so the cost is O(nnz), not O(d)); then threads take whole features, each summing its rows
// in ascending order and applying the optimizer to that feature's row. No atomics, no per-thread
// d-sized buffers, and the result does not depend on the thread count.
#include "kernels/fm_step.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <functional>
#include <memory>
#include <numeric>

#include "core/build_config.h"
#include "core/error.h"
#include "comm/communicator.h"
#include "core/resources.h"
#include "core/task_pool.h"
#include "kernels/fm_update.h"
#include "kernels/omp_threads.h"

namespace mlforge::kernels {

double FmLossValue(FmLoss loss, double yhat, double label, double* derivative) {
  double d = 0, pred = 0;
  const double l = fm_detail::RowLoss(loss, yhat, label, &d, &pred);
  if (derivative) *derivative = d;
  return l;
}

namespace {

// A CSR view of any batch: CSR batches are used in place; dense batches are converted once
// (their zero entries dropped: they contribute nothing to an FM).
struct Csr {
  const int64_t* indptr = nullptr;
  const uint32_t* indices = nullptr;
  const float* values = nullptr;
  int64_t rows = 0;
  std::vector<int64_t> own_indptr;
  std::vector<uint32_t> own_indices;
  std::vector<float> own_values;
};

void MakeCsr(const HostBatch& b, Csr* c) {
  c->rows = b.rows;
  if (b.layout == Layout::kCsr) {
    c->indptr = b.indptr.data();
    c->indices = b.indices.data();
    c->values = b.values.data();
    return;
  }
  c->own_indptr.assign(1, 0);
  c->own_indices.clear();
  c->own_values.clear();
  for (int64_t r = 0; r < b.rows; ++r) {
    const float* row = b.values.data() + r * b.cols;
    for (int64_t j = 0; j < b.cols; ++j) {
      if (row[j] != 0.0f) {
        c->own_indices.push_back(static_cast<uint32_t>(j));
        c->own_values.push_back(row[j]);
      }
    }
    c->own_indptr.push_back(static_cast<int64_t>(c->own_values.size()));
  }
  c->indptr = c->own_indptr.data();
  c->indices = c->own_indices.data();
  c->values = c->own_values.data();
}

// yhat of row r; fills s (k floats) and uses t (k floats of scratch). The sum of x_i^2 ||v_i||^2
// is accumulated per factor in t and added up at the end, so that both inner loops are
// element-wise and vectorise (a float reduction inside the loop would not, without -ffast-math).
inline double RowForward(const float* w, const float* v, float w0, int64_t k, const Csr& x, int64_t r,
                         float* __restrict s, float* __restrict t) {
  std::fill(s, s + k, 0.0f);
  std::fill(t, t + k, 0.0f);
  double lin = 0;
  for (int64_t p = x.indptr[r]; p < x.indptr[r + 1]; ++p) {
    const int64_t j = x.indices[p];
    const float xv = x.values[p];
    const float* __restrict vj = v + j * k;
    for (int64_t f = 0; f < k; ++f) {
      const float a = vj[f] * xv;
      s[f] += a;
      t[f] += a * a;
    }
    lin += static_cast<double>(w[j]) * xv;
  }
  double ss = 0, sq = 0;
  for (int64_t f = 0; f < k; ++f) {
    ss += static_cast<double>(s[f]) * s[f];
    sq += t[f];
  }
  return static_cast<double>(w0) + lin + 0.5 * (ss - sq);
}

// Whether a pass over the batch is worth a parallel region: below ~64k multiply-adds the fork and
// the barrier cost more than the work, and on a loaded machine a spinning barrier waiting for a
// descheduled thread costs far more (measured: 0.03 s vs 0.5 s per MovieLens-sized epoch).
inline bool WorthThreads(const Csr& x, int64_t k) {
  return (x.indptr[x.rows] - x.indptr[0]) * (k + 1) >= (int64_t{1} << 16);
}

// The width, and for CSR every column index (the per-feature tables are indexed by them), as the
// CUDA twin checks before its upload.
void CheckShape(const FmParams& p, const HostBatch& b) {
  MLF_EXPECTS(b.cols == p.d, "the batch has {} columns but the factorization machine has feature_dim {}", b.cols,
              p.d);
  if (b.layout != Layout::kCsr || b.rows == 0) return;
  uint32_t worst = 0;
  for (int64_t e = b.indptr[0]; e < b.indptr[static_cast<size_t>(b.rows)]; ++e) worst = std::max(worst, b.indices[e]);
  MLF_EXPECTS(worst < static_cast<uint64_t>(p.d), "a sparse row has column index {} but feature_dim is {}", worst,
              p.d);
}

}  // namespace

void FmForwardCpu(const FmParams& p, const HostBatch& batch, float* out, float* s, int threads) {
  CheckShape(p, batch);
  Csr x;
  MakeCsr(batch, &x);
  const int nt = ResolveThreads(threads);
  const int64_t k = p.k;
#pragma omp parallel num_threads(nt) if (WorthThreads(x, k))
  {
    std::vector<float> local(static_cast<size_t>(k)), scratch(static_cast<size_t>(k));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < x.rows; ++r) {
      float* sr = s ? s + r * k : local.data();
      out[r] = static_cast<float>(RowForward(p.w.data(), p.v.data(), p.w0, k, x, r, sr, scratch.data()));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The shared step machinery.

namespace internal {

struct FmCpuState {
  FmParams p;
  // Optimizer state: adam m (first) and u (second) moments; adagrad h in `first`.
  std::vector<float> w_first, w_second, v_first, v_second;
  double b_first = 0, b_second = 0;
  // Per-batch scratch.
  std::vector<int32_t> slot;  // d entries, -1 outside a batch
  std::vector<int64_t> uniq;  // features touched by the batch, in first-seen order
  std::vector<int64_t> offsets;
  std::vector<int64_t> entry_row;
  std::vector<float> entry_val;
  std::vector<float> s;     // rows x k
  std::vector<double> g;    // rows: d loss / d yhat
  std::vector<double> row_loss, row_sq, row_abs;  // per row, summed in row order afterwards
  Csr x;
  std::unique_ptr<TaskPool> pool;  // the step's threads (sleeping between phases)
};

}  // namespace internal

namespace {

using internal::FmCpuState;

// Runs fn(begin, end) over [0, count) on the pool when the batch is worth it, else inline.
void Parallel(FmCpuState& st, int64_t count, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (st.pool && WorthThreads(st.x, st.p.k)) {
    st.pool->ParallelFor(count, grain, [&](int64_t b, int64_t e, int) { fn(b, e); });
  } else {
    fn(0, count);
  }
}

// Forward pass over the batch into st.s / st.g; returns the loss sums (added in row order, so
// they do not depend on the threads).
FmBatchLoss ForwardLoss(FmCpuState& st, const float* labels, FmLoss loss) {
  const Csr& x = st.x;
  const int64_t n = x.rows, k = st.p.k;
  st.s.resize(static_cast<size_t>(n * k));
  st.g.resize(static_cast<size_t>(n));
  st.row_loss.resize(static_cast<size_t>(n));
  st.row_sq.resize(static_cast<size_t>(n));
  st.row_abs.resize(static_cast<size_t>(n));
  Parallel(st, n, 64, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(k));
    for (int64_t r = begin; r < end; ++r) {
      const double yhat =
          RowForward(st.p.w.data(), st.p.v.data(), st.p.w0, k, x, r, st.s.data() + r * k, scratch.data());
      double g = 0, pred = 0;
      st.row_loss[r] = fm_detail::RowLoss(loss, yhat, labels[r], &g, &pred);
      const double e = pred - labels[r];
      st.row_sq[r] = e * e;
      st.row_abs[r] = std::fabs(e);
      st.g[r] = g;
    }
  });
  FmBatchLoss total;
  for (int64_t r = 0; r < n; ++r) {
    total.loss += st.row_loss[r];
    total.squared_error += st.row_sq[r];
    total.absolute_error += st.row_abs[r];
  }
  total.rows = n;
  return total;
}

// Groups the batch's non-zeros by feature: st.uniq (first-seen order), st.offsets (uniq + 1),
// st.entry_row / entry_val (rows ascending within a feature).
void GroupByFeature(FmCpuState& st) {
  const Csr& x = st.x;
  const int64_t first = x.indptr[0], nnz = x.indptr[x.rows] - first;  // indptr may start past 0
  if (st.slot.size() != static_cast<size_t>(st.p.d)) st.slot.assign(static_cast<size_t>(st.p.d), -1);
  st.uniq.clear();
  st.offsets.clear();
  for (int64_t e = first; e < first + nnz; ++e) {
    const uint32_t j = x.indices[e];
    int32_t& sl = st.slot[j];
    if (sl < 0) {
      sl = static_cast<int32_t>(st.uniq.size());
      st.uniq.push_back(j);
      st.offsets.push_back(0);
    }
    ++st.offsets[static_cast<size_t>(sl)];
  }
  const size_t u = st.uniq.size();
  int64_t acc = 0;
  for (size_t i = 0; i < u; ++i) {
    const int64_t c = st.offsets[i];
    st.offsets[i] = acc;
    acc += c;
  }
  st.offsets.push_back(acc);
  st.entry_row.resize(static_cast<size_t>(nnz));
  st.entry_val.resize(static_cast<size_t>(nnz));
  std::vector<int64_t> cursor(st.offsets.begin(), st.offsets.end() - 1);
  for (int64_t r = 0; r < x.rows; ++r) {
    for (int64_t e = x.indptr[r]; e < x.indptr[r + 1]; ++e) {
      const int64_t pos = cursor[static_cast<size_t>(st.slot[x.indices[e]])]++;
      st.entry_row[pos] = r;
      st.entry_val[pos] = x.values[e];
    }
  }
  for (int64_t j : st.uniq) st.slot[static_cast<size_t>(j)] = -1;
}

// The gradient of feature uniq[i]: gw and gv (k floats), from st.s / st.g (pre-update values).
inline void FeatureGradient(const FmCpuState& st, size_t i, double* gw, float* __restrict gv) {
  const int64_t k = st.p.k;
  const int64_t j = st.uniq[i];
  const float* vj = st.p.v.data() + j * k;
  double w_acc = 0;
  std::fill(gv, gv + k, 0.0f);
  for (int64_t e = st.offsets[i]; e < st.offsets[i + 1]; ++e) {
    const int64_t r = st.entry_row[e];
    const float xv = st.entry_val[e];
    const float gx = static_cast<float>(st.g[r]) * xv;
    w_acc += st.g[r] * xv;
    const float* sr = st.s.data() + r * k;
    for (int64_t f = 0; f < k; ++f) gv[f] += gx * (sr[f] - vj[f] * xv);
  }
  *gw = w_acc;
}

using fm_detail::MakeUpdate;
using fm_detail::Update;

// The update of n consecutive values (a feature's factor row) with raw gradients g: Update's own
// per-value steps, one loop per optimizer so that each vectorises.
void ApplyRow(const Update& u, float* __restrict w, float* __restrict a, float* __restrict b,
              const float* __restrict g, int64_t n) {
  switch (u.kind) {
    case FmOptimizer::kSgd:
      for (int64_t f = 0; f < n; ++f) u.Sgd(w + f, g[f]);
      break;
    case FmOptimizer::kAdam:
      for (int64_t f = 0; f < n; ++f) u.Adam(w + f, a + f, b + f, g[f]);
      break;
    case FmOptimizer::kAdagrad:
      for (int64_t f = 0; f < n; ++f) u.Adagrad(w + f, a + f, g[f]);
      break;
  }
}

}  // namespace

FmBatchLoss FmGradientCpu(const FmParams& p, const HostBatch& batch, const float* labels, FmLoss loss,
                          std::vector<int64_t>* rows, std::vector<float>* grad_w, std::vector<float>* grad_v,
                          double* grad_w0, int threads) {
  CheckShape(p, batch);
  FmCpuState st;
  st.p = p;
  MakeCsr(batch, &st.x);
  if (ResolveThreads(threads) > 1) st.pool = std::make_unique<TaskPool>(ResolveThreads(threads));
  FmBatchLoss total = ForwardLoss(st, labels, loss);
  GroupByFeature(st);
  const size_t u = st.uniq.size();
  std::vector<size_t> order(u);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return st.uniq[a] < st.uniq[b]; });
  rows->resize(u);
  grad_w->resize(u);
  grad_v->resize(u * static_cast<size_t>(p.k));
  for (size_t o = 0; o < u; ++o) {
    double gw = 0;
    FeatureGradient(st, order[o], &gw, grad_v->data() + o * p.k);
    (*rows)[o] = st.uniq[order[o]];
    (*grad_w)[o] = static_cast<float>(gw);
  }
  double g0 = 0;
  for (double g : st.g) g0 += g;
  *grad_w0 = g0;
  return total;
}

// ---------------------------------------------------------------------------------------------
// FmStepper.

size_t FmStepper::StateBytes(int64_t d, int64_t k, FmOptimizer optimizer) {
  const size_t params = static_cast<size_t>(d) * static_cast<size_t>(k + 1) + 1;
  const size_t copies = optimizer == FmOptimizer::kAdam ? 3 : optimizer == FmOptimizer::kAdagrad ? 2 : 1;
  return params * copies * sizeof(float) + static_cast<size_t>(d) * sizeof(int32_t);
}

FmStepper::FmStepper(Resources& res, FmParams initial, const FmStepSpec& spec)
    : res_(res), spec_(spec), d_(initial.d), k_(initial.k) {
  MLF_EXPECTS(initial.d > 0 && initial.k > 0 && static_cast<int64_t>(initial.w.size()) == initial.d &&
                  static_cast<int64_t>(initial.v.size()) == initial.d * initial.k,
              "factorization machine parameters of the wrong size: d={}, k={}, {} linear and {} factor values",
              initial.d, initial.k, initial.w.size(), initial.v.size());
  MLF_EXPECTS(initial.d <= std::numeric_limits<int32_t>::max(),
              "feature_dim = {} is larger than this implementation's limit of {}", initial.d,
              std::numeric_limits<int32_t>::max());
  if (res_.device() == Device::kGpu) {
    gpu_.reset(internal::FmGpuCreate(res_, initial, spec_));
    return;
  }
  cpu_ = std::make_unique<internal::FmCpuState>();
  if (res_.threads() > 1) cpu_->pool = std::make_unique<TaskPool>(res_.threads());
  const size_t dv = initial.v.size(), dw = initial.w.size();
  if (spec_.optimizer != FmOptimizer::kSgd) {
    cpu_->w_first.assign(dw, 0.0f);
    cpu_->v_first.assign(dv, 0.0f);
  }
  if (spec_.optimizer == FmOptimizer::kAdam) {
    cpu_->w_second.assign(dw, 0.0f);
    cpu_->v_second.assign(dv, 0.0f);
  }
  cpu_->p = std::move(initial);
}

FmStepper::~FmStepper() = default;

Device FmStepper::device() const { return res_.device(); }

FmBatchLoss FmStepper::Step(const HostBatch& batch, const float* labels) {
  MLF_ASSERT(gpu_ || cpu_);
  ++steps_;
  if (gpu_) {
    MLF_EXPECTS(batch.cols == d_, "the batch has {} columns but the factorization machine has feature_dim {}",
                batch.cols, d_);
    if (res_.comm().world_size() > 1) return StepGroup(batch, labels);
    return internal::FmGpuStep(gpu_.get(), batch, labels, steps_);
  }
  FmCpuState& st = *cpu_;
  CheckShape(st.p, batch);
  comm::Communicator& comm = res_.comm();
  if (comm.world_size() > 1) return StepGroup(batch, labels);
  if (batch.rows == 0) return {};
  MakeCsr(batch, &st.x);
  FmBatchLoss total = ForwardLoss(st, labels, spec_.loss);
  GroupByFeature(st);
  const float rescale = spec_.rescale_grad > 0 ? spec_.rescale_grad : 1.0f / static_cast<float>(batch.rows);
  const Update lin = MakeUpdate(spec_, spec_.linear, rescale, steps_);
  const Update fac = MakeUpdate(spec_, spec_.factors, rescale, steps_);
  const bool adam = spec_.optimizer == FmOptimizer::kAdam, sgd = spec_.optimizer == FmOptimizer::kSgd;
  const int64_t k = st.p.k;
  const int64_t u = static_cast<int64_t>(st.uniq.size());
  Parallel(st, u, 128, [&](int64_t begin, int64_t end) {
    std::vector<float> gv(static_cast<size_t>(k));
    for (int64_t i = begin; i < end; ++i) {
      double gw = 0;
      FeatureGradient(st, static_cast<size_t>(i), &gw, gv.data());
      const int64_t j = st.uniq[i];
      float* vj = st.p.v.data() + j * k;
      float* va = sgd ? nullptr : st.v_first.data() + j * k;
      float* vb = adam ? st.v_second.data() + j * k : nullptr;
      ApplyRow(fac, vj, va, vb, gv.data(), k);
      if (spec_.use_linear) {
        lin.Apply(&st.p.w[j], sgd ? nullptr : &st.w_first[j], adam ? &st.w_second[j] : nullptr,
                  static_cast<float>(gw));
      }
    }
  });
  if (spec_.use_bias) {
    double g0 = 0;
    for (int64_t r = 0; r < batch.rows; ++r) g0 += st.g[r];
    UpdateBias(g0, rescale);
  }
  return total;
}

void FmStepper::UpdateBias(double g0, float rescale) {
  FmCpuState& st = *cpu_;
  const Update bias = MakeUpdate(spec_, spec_.bias, rescale, steps_);
  float a = static_cast<float>(st.b_first), b = static_cast<float>(st.b_second);
  bias.Apply(&st.p.w0, &a, &b, static_cast<float>(g0));
  st.b_first = a;
  st.b_second = b;
}

// Several ranks: every rank computes the row-sparse gradient of its own mini-batch, the ranks agree
// on the union of the features they touched (all-gather of each rank's sorted feature ids), sum the
// gradients of those rows only (one all-reduce of union x (k + 1) floats, plus the bias gradient and
// the row count in float64), and apply the same lazy update to the same rows, so the replicas stay
// identical. Traffic per step is proportional to the features the group's batches touch, never to
// feature_dim: 8 ranks x 1000 Criteo rows (39 ids each) move at most ~312k ids and rows, against
// 2.6 GB for a dense all-reduce of 10M x 64 factors. The result equals one process stepping on the
// union of the ranks' rows (rescale 1 / all rows), up to float summation order.
FmBatchLoss FmStepper::StepGroup(const HostBatch& batch, const float* labels) {
  comm::Communicator& comm = res_.comm();
  const int64_t k = k_;
  FmBatchLoss total;
  // Local gradients, one row of k + 1 floats (w, then v) per touched feature, ids sorted, and the
  // bias gradient.
  std::vector<int64_t> ids;
  std::vector<float> local;
  double local_g0 = 0;
  if (gpu_) {
    total = internal::FmGpuGroupGradient(gpu_.get(), batch, labels, &ids, &local, &local_g0);
  } else {
    FmCpuState& st = *cpu_;
    st.uniq.clear();
    if (batch.rows > 0) {
      MakeCsr(batch, &st.x);
      total = ForwardLoss(st, labels, spec_.loss);
      GroupByFeature(st);
    }
    const int64_t u = static_cast<int64_t>(st.uniq.size());
    std::vector<int64_t> order(static_cast<size_t>(u));
    std::iota(order.begin(), order.end(), int64_t{0});
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return st.uniq[a] < st.uniq[b]; });
    ids.resize(static_cast<size_t>(u));
    for (int64_t i = 0; i < u; ++i) ids[i] = st.uniq[order[i]];
    local.resize(static_cast<size_t>(u * (k + 1)));
    if (u > 0) {
      Parallel(st, u, 128, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          double gw = 0;
          FeatureGradient(st, static_cast<size_t>(order[i]), &gw, local.data() + i * (k + 1) + 1);
          local[i * (k + 1)] = static_cast<float>(gw);
        }
      });
    }
    for (int64_t r = 0; r < batch.rows; ++r) local_g0 += st.g[r];
  }
  const int64_t u = static_cast<int64_t>(ids.size());
  MLF_ASSERT(static_cast<int64_t>(local.size()) == u * (k + 1));
  // The union of the ranks' ids.
  const int world = comm.world_size();
  double counts_max = static_cast<double>(u);
  comm.AllReduceMax(&counts_max, 1);
  const size_t width = static_cast<size_t>(counts_max);
  std::vector<int64_t> padded(width, -1), all(width * world);
  std::copy(ids.begin(), ids.end(), padded.begin());
  if (width > 0) comm.AllGather(padded.data(), width * sizeof(int64_t), all.data());
  std::vector<int64_t> uni;
  uni.reserve(all.size());
  for (int64_t id : all)
    if (id >= 0) uni.push_back(id);
  std::sort(uni.begin(), uni.end());
  uni.erase(std::unique(uni.begin(), uni.end()), uni.end());
  // Sum the gradients of the union's rows.
  const int64_t nu = static_cast<int64_t>(uni.size());
  std::vector<float> grad(static_cast<size_t>(nu * (k + 1)), 0.0f);
  for (int64_t i = 0, p = 0; i < u; ++i) {
    while (uni[p] < ids[i]) ++p;
    std::copy(local.begin() + i * (k + 1), local.begin() + (i + 1) * (k + 1), grad.begin() + p * (k + 1));
  }
  if (!grad.empty()) comm.AllReduceSum(grad.data(), grad.size());
  double sums[2] = {local_g0, static_cast<double>(batch.rows)};  // bias gradient, rows
  comm.AllReduceSum(sums, 2);
  if (sums[1] == 0) return total;  // no rank had rows
  const float rescale = spec_.rescale_grad > 0 ? spec_.rescale_grad : static_cast<float>(1.0 / sums[1]);
  if (gpu_) {
    internal::FmGpuApplyRows(gpu_.get(), uni, grad, spec_.use_bias ? sums[0] : 0.0, rescale, steps_);
    return total;
  }
  FmCpuState& st = *cpu_;
  const Update lin = MakeUpdate(spec_, spec_.linear, rescale, steps_);
  const Update fac = MakeUpdate(spec_, spec_.factors, rescale, steps_);
  const bool adam = spec_.optimizer == FmOptimizer::kAdam, sgd = spec_.optimizer == FmOptimizer::kSgd;
  auto apply = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t j = uni[i];
      const float* g = grad.data() + i * (k + 1);
      ApplyRow(fac, st.p.v.data() + j * k, sgd ? nullptr : st.v_first.data() + j * k,
               adam ? st.v_second.data() + j * k : nullptr, g + 1, k);
      if (spec_.use_linear) {
        lin.Apply(&st.p.w[j], sgd ? nullptr : &st.w_first[j], adam ? &st.w_second[j] : nullptr, g[0]);
      }
    }
  };
  if (st.pool && nu * (k + 1) >= (int64_t{1} << 16)) {
    st.pool->ParallelFor(nu, 128, [&](int64_t b, int64_t e, int) { apply(b, e); });
  } else {
    apply(0, nu);
  }
  if (spec_.use_bias) UpdateBias(sums[0], rescale);
  return total;
}

void FmStepper::Predict(const HostBatch& batch, float* out) {
  MLF_ASSERT(gpu_ || cpu_);
  if (gpu_) {
    internal::FmGpuPredict(gpu_.get(), batch, out);
    return;
  }
  FmForwardCpu(cpu_->p, batch, out, nullptr, res_.threads());
}

FmParams FmStepper::Params() const {
  if (gpu_) return internal::FmGpuParams(gpu_.get());
  MLF_ASSERT(cpu_ != nullptr);
  return cpu_->p;
}

FmParams FmStepper::TakeParams() {
  FmParams p;
  if (gpu_) {
    p = internal::FmGpuParams(gpu_.get());
    gpu_.reset();
  } else {
    MLF_ASSERT(cpu_ != nullptr);
    p = std::move(cpu_->p);
    cpu_.reset();
  }
  return p;
}

#if !MLFORGE_HAVE_CUDA
// Without CUDA fm_step.cu is not compiled; Resources never resolves to the GPU then, so these only
// run when called directly.
namespace internal {
void FmGpuStateDeleter::operator()(FmGpuState*) const {}
FmGpuState* FmGpuCreate(Resources&, const FmParams&, const FmStepSpec&) {
  MLF_FAIL("factorization machines on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
FmBatchLoss FmGpuStep(FmGpuState*, const HostBatch&, const float*, int64_t) {
  MLF_FAIL("factorization machines on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
void FmGpuPredict(FmGpuState*, const HostBatch&, float*) {
  MLF_FAIL("factorization machines on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
FmParams FmGpuParams(const FmGpuState*) {
  MLF_FAIL("factorization machines on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
FmBatchLoss FmGpuGroupGradient(FmGpuState*, const HostBatch&, const float*, std::vector<int64_t>*, std::vector<float>*,
                               double*) {
  MLF_FAIL("factorization machines on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
void FmGpuApplyRows(FmGpuState*, const std::vector<int64_t>&, const std::vector<float>&, double, float, int64_t) {
  MLF_FAIL("factorization machines on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
}  // namespace internal
#endif

}  // namespace mlforge::kernels
