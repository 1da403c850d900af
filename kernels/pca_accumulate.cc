// CPU twin of PCA's accumulation step and the device dispatch (PcaAccumulator). The CUDA code is
// pca_accumulate.cu.
#include "kernels/pca_accumulate.h"

#include <Eigen/Core>
#include <algorithm>
#include <cstring>

#include "core/build_config.h"
#include "core/error.h"
#include "core/resources.h"
#include "kernels/omp_threads.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/openblas.h"

namespace mlforge::kernels {

namespace {

#if MLFORGE_HAVE_LAPACK
constexpr int kCblasColMajor = cblas::kColMajor, kCblasNoTrans = cblas::kNoTrans, kCblasLower = cblas::kLower;
#endif
// Above this d, a dense scatter block is one multi-threaded BLAS SYRK into a single float64 total
// (no per-thread partials to zero and merge per call); at or below it threads split the rows.
constexpr int64_t kSequentialBlasMinDim = 256;

using RowMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ColMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic>;

size_t MatrixSize(PcaAccumulation mode, int64_t d, int64_t l) {
  return static_cast<size_t>(mode == PcaAccumulation::kScatter ? d * d : d * l);
}

void CheckPass(const PcaPass& pass) {
  MLF_ASSERT(pass.d >= 1);
  MLF_ASSERT(pass.shift.empty() || static_cast<int64_t>(pass.shift.size()) == pass.d);
  if (pass.mode != PcaAccumulation::kScatter) MLF_ASSERT(pass.l >= 1);
  if (pass.mode == PcaAccumulation::kProject) MLF_ASSERT(static_cast<int64_t>(pass.q.size()) == pass.d * pass.l);
}

void CheckOut(const PcaPass& pass, const PcaSums& out) {
  MLF_ASSERT(out.mode == pass.mode && out.d == pass.d);
  MLF_ASSERT(out.matrix.size() == MatrixSize(pass.mode, pass.d, pass.l));
  MLF_ASSERT(static_cast<int64_t>(out.sum.size()) == pass.d);
}

constexpr int64_t kTile = 256;

int ThreadsFor(int64_t rows, int threads) {
  const int64_t t = ResolveThreads(threads);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(t, (rows + 63) / 64)));
}

// Row-split partials (one float64 matrix per thread) while they stay within the budget; larger
// scatter matrices are split by output tiles instead (no partials at all).
bool RowSplit(const PcaPass& pass, int nt, size_t budget = kPcaPartialBudgetBytes) {
  return pass.mode != PcaAccumulation::kScatter ||
         static_cast<size_t>(nt) * MatrixSize(pass.mode, pass.d, pass.l) * sizeof(double) <= budget;
}

// Shifted float32 copy of rows [i0, i1) into yb, and their float64 sum / sum of squares.
void ShiftBlock(const HostDenseView& x, const float* shift, int64_t i0, int64_t i1, float* yb, double* sum,
                double* sum_sq) {
  const int64_t d = x.cols;
  double sq = 0;
  for (int64_t i = i0; i < i1; ++i) {
    const float* r = x.values + i * d;
    float* y = yb + (i - i0) * d;
    if (shift != nullptr) {
      for (int64_t j = 0; j < d; ++j) y[j] = r[j] - shift[j];
    } else {
      std::memcpy(y, r, static_cast<size_t>(d) * sizeof(float));
    }
    for (int64_t j = 0; j < d; ++j) {
      const double v = y[j];
      sum[j] += v;
      sq += v * v;
    }
  }
  *sum_sq += sq;
}

// The l signs of one row (SketchSign(seed, row, j) for j < l) into out[j * stride], one hash per 64
// components.
template <typename T>
void RowSigns(uint64_t seed, int64_t row, int64_t l, T* out, int64_t stride = 1) {
  for (int64_t w = 0; w * 64 < l; ++w) {
    const uint64_t bits = SketchSignWord(seed, row, w);
    const int64_t j1 = std::min<int64_t>(l, (w + 1) * 64);
    for (int64_t j = w * 64; j < j1; ++j) out[j * stride] = ((bits >> (j % 64)) & 1ULL) ? T(1) : T(-1);
  }
}

// acc's upper triangle (row-major d x d, float64) += the lower triangle of f (column-major d x d),
// which read row-major is the upper one: column j's entries i >= j are row j's entries from the
// diagonal on, so the add runs along contiguous memory.
void AddUpper(const float* f, int64_t d, double* acc) {
  for (int64_t j = 0; j < d; ++j) {
    const float* src = f + j * d;
    double* dst = acc + j * d;
    for (int64_t i = j; i < d; ++i) dst[i] += src[i];
  }
}

// f (column-major d x d, lower triangle) = Y^T Y for the row-major rows x d block yb: OpenBLAS SYRK
// (a row-major rows x d matrix is a column-major d x rows one) or Eigen's rank update. The upper
// part of f is not written (the BLAS path) or zero (Eigen); callers read the lower triangle only.
void ScatterBlock(const float* yb, int64_t rows, int64_t d, float* f) {
#if MLFORGE_HAVE_LAPACK
  cblas_ssyrk(kCblasColMajor, kCblasLower, kCblasNoTrans, static_cast<int>(d), static_cast<int>(rows), 1.0f, yb,
              static_cast<int>(d), 0.0f, f, static_cast<int>(d));
#else
  Eigen::Map<const RowMajorF> Y(yb, rows, d);
  Eigen::Map<ColMajorF> F(f, d, d);
  F.setZero();
  F.selfadjointView<Eigen::Lower>().rankUpdate(Y.transpose(), 1.0f);
#endif
}

// One block of shifted rows yb (rows x d, float32) into `acc` (float64 matrix of the mode's shape)
// and sign_sums. f, h, t are scratch buffers sized by the caller.
void BlockProduct(const PcaPass& pass, const float* yb, int64_t rows, int64_t first_row, double* acc,
                  double* sign_sums, std::vector<float>& f, std::vector<float>& h, std::vector<float>& t) {
  const int64_t d = pass.d, l = pass.l;
  Eigen::Map<const RowMajorF> Y(yb, rows, d);
  switch (pass.mode) {
    case PcaAccumulation::kScatter: {
      // Into acc's upper triangle; mirrored once per call.
      f.resize(static_cast<size_t>(d * d));
      ScatterBlock(yb, rows, d, f.data());
      AddUpper(f.data(), d, acc);
      break;
    }
    case PcaAccumulation::kSketch: {
      h.resize(static_cast<size_t>(l * rows));  // l x rows: row i's signs are column i
      for (int64_t i = 0; i < rows; ++i) RowSigns(pass.sketch_seed, first_row + i, l, h.data() + i, rows);
      f.resize(static_cast<size_t>(l * d));
      Eigen::Map<const RowMajorF> H(h.data(), l, rows);
      Eigen::Map<RowMajorF> F(f.data(), l, d);
      F.noalias() = H * Y;
      for (int64_t p = 0; p < l * d; ++p) acc[p] += f[p];
      for (int64_t j = 0; j < l; ++j) {
        double s = 0;
        for (int64_t i = 0; i < rows; ++i) s += h[j * rows + i];
        sign_sums[j] += s;
      }
      break;
    }
    case PcaAccumulation::kProject: {
      t.resize(static_cast<size_t>(rows * l));
      f.resize(static_cast<size_t>(d * l));
      Eigen::Map<const RowMajorF> Q(pass.q.data(), d, l);
      Eigen::Map<RowMajorF> T(t.data(), rows, l);
      Eigen::Map<RowMajorF> F(f.data(), d, l);
      T.noalias() = Y * Q;
      F.noalias() = Y.transpose() * T;
      for (int64_t p = 0; p < d * l; ++p) acc[p] += f[p];
      break;
    }
  }
}

// Scatter of a block by upper-triangular output tiles (large d): every thread owns whole tiles of
// acc, so nothing is shared and nothing is merged.
void TiledScatter(const float* yb, int64_t rows, int64_t d, double* acc, int nt) {
  const int64_t tiles = (d + kTile - 1) / kTile;
  const int64_t pairs = tiles * (tiles + 1) / 2;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
  {
    std::vector<float> f(static_cast<size_t>(kTile * kTile));
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (int64_t p = 0; p < pairs; ++p) {
      // p -> (ti, tj) with ti <= tj: tile rows of the upper triangle of tiles.
      int64_t tj = 0;
      while ((tj + 1) * (tj + 2) / 2 <= p) ++tj;
      const int64_t ti = p - tj * (tj + 1) / 2;
      const int64_t i0 = ti * kTile, i1 = std::min(d, i0 + kTile), j0 = tj * kTile, j1 = std::min(d, j0 + kTile);
      Eigen::Map<const RowMajorF, 0, Eigen::OuterStride<>> Yi(yb + i0, rows, i1 - i0, Eigen::OuterStride<>(d));
      Eigen::Map<const RowMajorF, 0, Eigen::OuterStride<>> Yj(yb + j0, rows, j1 - j0, Eigen::OuterStride<>(d));
      Eigen::Map<RowMajorF> F(f.data(), i1 - i0, j1 - j0);
      F.noalias() = Yi.transpose() * Yj;
      for (int64_t i = i0; i < i1; ++i) {
        const float* src = f.data() + (i - i0) * (j1 - j0);
        double* dst = acc + i * d;
        for (int64_t j = std::max(j0, i); j < j1; ++j) dst[j] += src[j - j0];
      }
    }
  }
}

// Copies the upper triangle over the lower one (dense scatter totals live in the upper triangle).
void MirrorUpper(double* m, int64_t d) {
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = i + 1; j < d; ++j) m[j * d + i] = m[i * d + j];
}

}  // namespace

PcaSums::PcaSums(PcaAccumulation m, int64_t d_, int64_t l_) : mode(m), d(d_), l(m == PcaAccumulation::kScatter ? 0 : l_) {
  sum.assign(static_cast<size_t>(d), 0.0);
  matrix.assign(MatrixSize(mode, d, l), 0.0);
  if (mode == PcaAccumulation::kSketch) sign_sums.assign(static_cast<size_t>(l), 0.0);
}

void PcaSums::Clear() {
  n = 0;
  sum_sq = 0;
  std::fill(sum.begin(), sum.end(), 0.0);
  std::fill(matrix.begin(), matrix.end(), 0.0);
  std::fill(sign_sums.begin(), sign_sums.end(), 0.0);
}

void PcaSums::Add(const PcaSums& o) {
  MLF_ASSERT(o.mode == mode && o.d == d && o.l == l && o.matrix.size() == matrix.size());
  n += o.n;
  sum_sq += o.sum_sq;
  for (size_t i = 0; i < sum.size(); ++i) sum[i] += o.sum[i];
  for (size_t i = 0; i < matrix.size(); ++i) matrix[i] += o.matrix[i];
  for (size_t i = 0; i < sign_sums.size(); ++i) sign_sums[i] += o.sign_sums[i];
}

size_t PcaAccumulateCpuBytes(const PcaPass& pass, int threads) {
  const int nt = static_cast<int>(ResolveThreads(threads));
  const size_t m = MatrixSize(pass.mode, pass.d, pass.l) * sizeof(double);
  const size_t block = static_cast<size_t>(PcaBlockRows(pass.d) * pass.d) * sizeof(float);
  const size_t scratch = pass.mode == PcaAccumulation::kScatter ? static_cast<size_t>(pass.d * pass.d) * sizeof(float)
                                                                : static_cast<size_t>(pass.d * pass.l) * sizeof(float) +
                                                                      static_cast<size_t>(PcaBlockRows(pass.d) * pass.l) * 4;
  if (!RowSplit(pass, nt)) return m + block + static_cast<size_t>(nt) * kTile * kTile * sizeof(float);
  // The totals, and per thread a float64 partial, a block and the product scratch.
  return m + static_cast<size_t>(nt) * (m + block + scratch);
}

void PcaAccumulateCpu(const PcaPass& pass, const HostDenseView& x, int64_t first_row, PcaSums* out, int threads,
                      size_t partial_budget_bytes) {
  CheckPass(pass);
  CheckOut(pass, *out);
  MLF_ASSERT(x.cols == pass.d);
  const int64_t n = x.rows, d = pass.d;
  if (n == 0) return;
  const float* shift = pass.shift.empty() ? nullptr : pass.shift.data();
  const int nt = ThreadsFor(n, threads);

#if MLFORGE_HAVE_LAPACK
  if (pass.mode == PcaAccumulation::kScatter && d > kSequentialBlasMinDim && partial_budget_bytes > 0) {
    // Wide scatter: blocks in order, each one multi-threaded OpenBLAS SYRK added into the single
    // float64 total (its upper triangle, contiguously), mirrored once at the end.
    openblas_set_num_threads(static_cast<int>(ResolveThreads(threads)));
    const int64_t br = PcaBlockRows(d);
    std::vector<float> yb(static_cast<size_t>(std::min(n, br) * d)), f(static_cast<size_t>(d * d));
    double* acc = out->matrix.data();
    for (int64_t i0 = 0; i0 < n; i0 += br) {
      const int64_t i1 = std::min(n, i0 + br);
      ShiftBlock(x, shift, i0, i1, yb.data(), out->sum.data(), &out->sum_sq);
      ScatterBlock(yb.data(), i1 - i0, d, f.data());
      AddUpper(f.data(), d, acc);
    }
    out->n += static_cast<double>(n);
    MirrorUpper(acc, d);
    return;
  }
  // The row split below runs one single-threaded SYRK per OpenMP thread.
  if (pass.mode == PcaAccumulation::kScatter) openblas_set_num_threads(1);
#endif

  if (!RowSplit(pass, nt, partial_budget_bytes)) {
    // Large-d scatter without BLAS (or forced by partial_budget_bytes = 0): blocks in order; each
    // block shifted once, then its tiles in parallel.
    const int64_t br = PcaBlockRows(d);
    std::vector<float> yb(static_cast<size_t>(std::min(n, br) * d));
    for (int64_t i0 = 0; i0 < n; i0 += br) {
      const int64_t i1 = std::min(n, i0 + br);
      ShiftBlock(x, shift, i0, i1, yb.data(), out->sum.data(), &out->sum_sq);
      TiledScatter(yb.data(), i1 - i0, d, out->matrix.data(), nt);
    }
    out->n += static_cast<double>(n);
    // out->matrix's upper triangle holds every block so far; mirror it (the lower triangle is
    // always recomputed from the upper one).
    MirrorUpper(out->matrix.data(), d);
    return;
  }

  // Row split: thread t takes rows [n t / nt, n (t + 1) / nt) in blocks of PcaBlockRows(d).
  const int64_t br = PcaBlockRows(d);
  const size_t msize = MatrixSize(pass.mode, d, pass.l);
  std::vector<double> partial(static_cast<size_t>(nt) * msize, 0.0);
  std::vector<double> part_sum(static_cast<size_t>(nt * d), 0.0), part_sq(static_cast<size_t>(nt), 0.0);
  std::vector<double> part_signs(static_cast<size_t>(nt) * out->sign_sums.size(), 0.0);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
  {
#ifdef _OPENMP
    const int team = omp_get_num_threads(), first = omp_get_thread_num();
#else
    const int team = 1, first = 0;
#endif
    std::vector<float> yb, f, h, t;
    for (int c = first; c < nt; c += team) {
      const int64_t r0 = n * c / nt, r1 = n * (c + 1) / nt;
      yb.resize(static_cast<size_t>(std::min(r1 - r0, br) * d));
      for (int64_t i0 = r0; i0 < r1; i0 += br) {
        const int64_t i1 = std::min(r1, i0 + br);
        ShiftBlock(x, shift, i0, i1, yb.data(), part_sum.data() + c * d, &part_sq[static_cast<size_t>(c)]);
        BlockProduct(pass, yb.data(), i1 - i0, first_row + i0, partial.data() + c * msize,
                     part_signs.data() + c * out->sign_sums.size(), f, h, t);
      }
    }
  }
  for (int c = 0; c < nt; ++c) {
    const double* p = partial.data() + c * msize;
    if (pass.mode == PcaAccumulation::kScatter) {
      // Partials hold upper triangles; add them to the upper triangle of the totals.
      for (int64_t i = 0; i < d; ++i)
        for (int64_t j = i; j < d; ++j) out->matrix[i * d + j] += p[i * d + j];
    } else {
      for (size_t k = 0; k < msize; ++k) out->matrix[k] += p[k];
    }
    for (int64_t j = 0; j < d; ++j) out->sum[j] += part_sum[c * d + j];
    out->sum_sq += part_sq[static_cast<size_t>(c)];
    for (size_t j = 0; j < out->sign_sums.size(); ++j) out->sign_sums[j] += part_signs[c * out->sign_sums.size() + j];
  }
  out->n += static_cast<double>(n);
  if (pass.mode == PcaAccumulation::kScatter) MirrorUpper(out->matrix.data(), d);
}

void PcaAccumulateCpu(const PcaPass& pass, const HostCsrView& x, int64_t first_row, PcaSums* out, int threads) {
  CheckPass(pass);
  CheckOut(pass, *out);
  MLF_ASSERT(x.cols == pass.d);
  const int64_t n = x.rows, d = pass.d, l = pass.l;
  if (n == 0) return;
  const int64_t base = x.indptr[0], nnz = x.indptr[n] - base;
  for (int64_t p = base; p < base + nnz; ++p) {
    MLF_EXPECTS(x.indices[p] < static_cast<uint64_t>(d), "PCA: a sparse row has column index {} but feature_dim is {}",
                x.indices[p], d);
  }
  const int nt = ThreadsFor(std::max<int64_t>(n, nnz / 8), threads);

  // Raw (unshifted) column sums s and sum_i ||x_i||^2 in float64, a row's repeated columns merged
  // first (through `row`, a d-long scratch that is zeroed again behind each row).
  std::vector<double> s(static_cast<size_t>(d), 0.0), row(static_cast<size_t>(d), 0.0);
  double sq = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t p = x.indptr[i]; p < x.indptr[i + 1]; ++p) {
      row[x.indices[p]] += x.values[p];
      s[x.indices[p]] += x.values[p];
    }
    for (int64_t p = x.indptr[i]; p < x.indptr[i + 1]; ++p) {
      double& r = row[x.indices[p]];
      sq += r * r;
      r = 0;
    }
  }
  const std::vector<float>& c = pass.shift;
  const double dn = static_cast<double>(n);
  double cs = 0, cc = 0;
  for (size_t j = 0; j < c.size(); ++j) {
    cs += c[j] * s[j];
    cc += static_cast<double>(c[j]) * c[j];
  }
  for (int64_t j = 0; j < d; ++j) out->sum[j] += s[j] - (c.empty() ? 0.0 : dn * c[j]);
  out->sum_sq += sq - 2 * cs + dn * cc;
  out->n += dn;
  double* m = out->matrix.data();

  switch (pass.mode) {
    case PcaAccumulation::kScatter: {
      // Thread t owns output rows [d t / nt, d (t + 1) / nt): every product v_p v_q with column
      // index_p in its range goes to m[index_p][index_q]. Full matrix, so repeats add up.
#ifdef _OPENMP
#pragma omp parallel for schedule(static, 1) num_threads(nt) if (nt > 1)
#endif
      for (int t = 0; t < nt; ++t) {
        const uint32_t lo = static_cast<uint32_t>(d * t / nt), hi = static_cast<uint32_t>(d * (t + 1) / nt);
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t p = x.indptr[i]; p < x.indptr[i + 1]; ++p) {
            const uint32_t a = x.indices[p];
            if (a < lo || a >= hi) continue;
            const double va = x.values[p];
            double* row = m + static_cast<int64_t>(a) * d;
            for (int64_t q = x.indptr[i]; q < x.indptr[i + 1]; ++q) row[x.indices[q]] += va * x.values[q];
          }
        }
      }
      if (!c.empty()) {
        // - c s^T - s c^T + n c c^T
        for (int64_t i = 0; i < d; ++i)
          for (int64_t j = 0; j < d; ++j) m[i * d + j] += -c[i] * s[j] - s[i] * c[j] + dn * c[i] * c[j];
      }
      break;
    }
    case PcaAccumulation::kSketch: {
      // Column-owned: thread t adds v * H[:, i] into columns [d t / nt, d (t + 1) / nt) of H X,
      // kept transposed (d x l) so the inner loop is contiguous.
      std::vector<double> bt(static_cast<size_t>(d * l), 0.0);
      std::vector<double> signs(static_cast<size_t>(l), 0.0), row_signs(static_cast<size_t>(l));
      for (int64_t i = 0; i < n; ++i) {
        RowSigns(pass.sketch_seed, first_row + i, l, row_signs.data());
        for (int64_t j = 0; j < l; ++j) signs[j] += row_signs[j];
      }
#ifdef _OPENMP
#pragma omp parallel for schedule(static, 1) num_threads(nt) if (nt > 1)
#endif
      for (int t = 0; t < nt; ++t) {
        const uint32_t lo = static_cast<uint32_t>(d * t / nt), hi = static_cast<uint32_t>(d * (t + 1) / nt);
        std::vector<double> hrow(static_cast<size_t>(l));
        for (int64_t i = 0; i < n; ++i) {
          bool any = false;
          for (int64_t p = x.indptr[i]; p < x.indptr[i + 1] && !any; ++p) any = x.indices[p] >= lo && x.indices[p] < hi;
          if (!any) continue;
          RowSigns(pass.sketch_seed, first_row + i, l, hrow.data());
          for (int64_t p = x.indptr[i]; p < x.indptr[i + 1]; ++p) {
            const uint32_t a = x.indices[p];
            if (a < lo || a >= hi) continue;
            const double v = x.values[p];
            double* dst = bt.data() + static_cast<int64_t>(a) * l;
            for (int64_t j = 0; j < l; ++j) dst[j] += v * hrow[j];
          }
        }
      }
      for (int64_t j = 0; j < l; ++j) {
        out->sign_sums[j] += signs[j];
        for (int64_t a = 0; a < d; ++a) m[j * d + a] += bt[a * l + j] - (c.empty() ? 0.0 : signs[j] * c[a]);
      }
      break;
    }
    case PcaAccumulation::kProject: {
      // T = X Q (n x l, float64), then thread t owns output rows [d t / nt, d (t + 1) / nt) of X^T T.
      std::vector<double> tm(static_cast<size_t>(n * l), 0.0);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
      for (int64_t i = 0; i < n; ++i) {
        double* ti = tm.data() + i * l;
        for (int64_t p = x.indptr[i]; p < x.indptr[i + 1]; ++p) {
          const double v = x.values[p];
          const float* qrow = pass.q.data() + static_cast<int64_t>(x.indices[p]) * l;
          for (int64_t j = 0; j < l; ++j) ti[j] += v * qrow[j];
        }
      }
#ifdef _OPENMP
#pragma omp parallel for schedule(static, 1) num_threads(nt) if (nt > 1)
#endif
      for (int t = 0; t < nt; ++t) {
        const uint32_t lo = static_cast<uint32_t>(d * t / nt), hi = static_cast<uint32_t>(d * (t + 1) / nt);
        for (int64_t i = 0; i < n; ++i) {
          const double* ti = tm.data() + i * l;
          for (int64_t p = x.indptr[i]; p < x.indptr[i + 1]; ++p) {
            const uint32_t a = x.indices[p];
            if (a < lo || a >= hi) continue;
            const double v = x.values[p];
            double* dst = m + static_cast<int64_t>(a) * l;
            for (int64_t j = 0; j < l; ++j) dst[j] += v * ti[j];
          }
        }
      }
      if (!c.empty()) {
        // - s (c^T Q) - c (1^T T) + n c (c^T Q)
        std::vector<double> cq(static_cast<size_t>(l), 0.0), tsum(static_cast<size_t>(l), 0.0);
        for (int64_t a = 0; a < d; ++a)
          for (int64_t j = 0; j < l; ++j) cq[j] += static_cast<double>(c[a]) * pass.q[a * l + j];
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < l; ++j) tsum[j] += tm[i * l + j];
        for (int64_t a = 0; a < d; ++a)
          for (int64_t j = 0; j < l; ++j) m[a * l + j] += -s[a] * cq[j] - c[a] * tsum[j] + dn * c[a] * cq[j];
      }
      break;
    }
  }
}

// ---------------------------------------------------------------------------------------------

PcaAccumulator::PcaAccumulator(Resources& res) : res_(res) {
  if (res.device() == Device::kGpu) gpu_.reset(internal::PcaGpuCreate(res.cuda()));
}

PcaAccumulator::~PcaAccumulator() = default;

Device PcaAccumulator::device() const { return gpu_ ? Device::kGpu : Device::kCpu; }

void PcaAccumulator::Begin(PcaPass pass) {
  CheckPass(pass);
  pass_ = std::move(pass);
  if (gpu_) {
    internal::PcaGpuBegin(gpu_.get(), pass_);
  } else {
    host_ = PcaSums(pass_.mode, pass_.d, pass_.l);
  }
}

void PcaAccumulator::Add(const HostBatch& batch) {
  MLF_ASSERT_MSG(pass_.d > 0, "PcaAccumulator::Add before Begin");
  MLF_EXPECTS(batch.cols == pass_.d, "PCA: a batch has {} columns but feature_dim is {}", batch.cols, pass_.d);
  MLF_ASSERT_MSG(batch.ordinals.empty(), "PCA reads rows in order (no shuffling)");
  if (batch.rows == 0) return;
  if (gpu_) {
    internal::PcaGpuAdd(gpu_.get(), batch);
    return;
  }
  if (batch.layout == Layout::kCsr) {
    PcaAccumulateCpu(pass_, CsrView(batch), batch.first_row, &host_, res_.threads());
  } else {
    MLF_ASSERT(static_cast<int64_t>(batch.values.size()) == batch.rows * batch.cols);
    PcaAccumulateCpu(pass_, HostDenseView{batch.values.data(), batch.rows, batch.cols}, batch.first_row, &host_,
                     res_.threads());
  }
}

PcaSums PcaAccumulator::Result() {
  if (gpu_) {
    PcaSums out(pass_.mode, pass_.d, pass_.l);
    internal::PcaGpuResult(gpu_.get(), &out);
    return out;
  }
  return host_;
}

#if !MLFORGE_HAVE_CUDA
// Without CUDA pca_accumulate.cu is not compiled; Resources never resolves to the GPU then.
namespace internal {
void PcaGpuStateDeleter::operator()(PcaGpuState*) const {}
PcaGpuState* PcaGpuCreate(detail::CudaState&) {
  MLF_FAIL("PCA on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
void PcaGpuBegin(PcaGpuState*, const PcaPass&) {
  MLF_FAIL("PCA on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
void PcaGpuAdd(PcaGpuState*, const HostBatch&) {
  MLF_FAIL("PCA on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
void PcaGpuResult(PcaGpuState*, PcaSums*) {
  MLF_FAIL("PCA on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
}  // namespace internal
#endif

}  // namespace mlforge::kernels
