// CPU twin of the k-means assign-and-accumulate step, and the device dispatch (KMeansAssigner).
// The CUDA code is kmeans_assign.cu.
#include "kernels/kmeans_assign.h"
#include "kernels/omp_threads.h"
#include "kernels/squared_distance.h"

#include <Eigen/Core>
#include <algorithm>
#include <cstring>
#include <limits>

#include "core/build_config.h"
#include "core/error.h"
#include "core/resources.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mlforge::kernels {

HostCsrView CsrView(const HostBatch& batch) {
  MLF_EXPECTS(batch.layout == Layout::kCsr, "expected a CSR batch, got a dense batch");
  MLF_ASSERT(static_cast<int64_t>(batch.indptr.size()) == batch.rows + 1);
  MLF_ASSERT(batch.indices.size() == batch.values.size());
  return HostCsrView{batch.indptr.data(), batch.indices.data(), batch.values.data(), batch.rows, batch.cols};
}

void SquaredNormsCpu(const float* rows, int64_t n, int64_t d, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float* r = rows + i * d;
    double s = 0.0;
    for (int64_t j = 0; j < d; ++j) s += static_cast<double>(r[j]) * r[j];
    out[i] = static_cast<float>(s);
  }
}

namespace {

using RowMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows per tile: the tile's dot products (tile x k floats) stay within ~1 MiB so they are still
// in L2 when the argmin reads them; more than 512 rows buys nothing for Eigen's GEMM.
int64_t TileRows(int64_t k) { return std::clamp<int64_t>((int64_t{1} << 18) / std::max<int64_t>(k, 1), 16, 512); }

// Argmin over one row of dot products: val_j = ||c_j||^2 - 2 x.c_j, lowest index on ties (strict
// <, ascending j). A row whose values are all NaN gets center 0.
// 8-lane float / int vectors (GCC vector extensions: AVX registers with -march=native, SSE pairs
// otherwise; no intrinsics, so the code stays portable).
typedef float V8f __attribute__((vector_size(32)));
typedef int32_t V8i __attribute__((vector_size(32)));

inline int32_t ArgminRow(const float* dots, const float* cn, int64_t k) {
  // Per lane: the lowest value of cn[j] - 2 dots[j] and the first j reaching it (strict <); then
  // the lowest value across lanes, ties to the lowest index. Same answer as one scalar pass with
  // a strict <. NaN never compares below; when nothing does (all NaN or +inf) the answer is 0.
  float best = std::numeric_limits<float>::infinity();
  int32_t best_j = 0;
  int64_t j = 0;
  if (k >= 16) {
    V8f lane_v;
    V8i lane_j = {0, 0, 0, 0, 0, 0, 0, 0};
    V8i idx = {0, 1, 2, 3, 4, 5, 6, 7};
    for (int l = 0; l < 8; ++l) lane_v[l] = std::numeric_limits<float>::infinity();
    for (; j + 8 <= k; j += 8) {
      V8f c, g;
      std::memcpy(&c, cn + j, sizeof(c));
      std::memcpy(&g, dots + j, sizeof(g));
      const V8f v = c - 2.0f * g;
      const V8i lt = v < lane_v;
      lane_v = lt ? v : lane_v;
      lane_j = lt ? idx : lane_j;
      idx += 8;
    }
    for (int l = 0; l < 8; ++l) {
      if (lane_v[l] < best || (lane_v[l] == best && lane_j[l] < best_j)) {
        best = lane_v[l];
        best_j = lane_j[l];
      }
    }
  }
  for (; j < k; ++j) {  // the tail's indices are above every lane's: strict < keeps ties low
    const float v = cn[j] - 2.0f * dots[j];
    if (v < best) {
      best = v;
      best_j = static_cast<int32_t>(j);
    }
  }
  return best_j;
}

// The per-thread accumulators, added into the caller's output in thread order.
struct ThreadAccum {
  std::vector<double> sums;
  std::vector<double> weights;
  double cost = 0.0;
};

void CheckShapes(int64_t rows, int64_t cols, const HostKMeansCenters& c) {
  MLF_ASSERT(rows >= 0);
  MLF_ASSERT(c.k > 0 && c.d >= 0 && c.data != nullptr);
  MLF_ASSERT_MSG(c.k <= std::numeric_limits<int32_t>::max(), "k = {} does not fit int32 labels", c.k);
  MLF_EXPECTS(cols == c.d, "k-means: the batch has {} columns but the centers have {} (feature_dim)", cols, c.d);
}

// Shared driver for the dense and CSR twins: runs tile_fn(thread_index, begin, end, accum) over
// row tiles on `threads` threads, then reduces the per-thread accumulators into `out`.
template <typename TileFn>
void RunTiles(int64_t n, int64_t k, int64_t d, const HostKMeansOutput& out, int threads, TileFn tile_fn) {
  const int64_t tile = TileRows(k);
  const int64_t tiles = (n + tile - 1) / tile;
  const int nt = static_cast<int>(std::clamp<int64_t>(ResolveThreads(threads), 1, std::max<int64_t>(tiles, 1)));
  std::vector<ThreadAccum> acc(static_cast<size_t>(nt));
  for (auto& a : acc) {
    if (out.sums != nullptr) a.sums.assign(static_cast<size_t>(k * d), 0.0);
    a.weights.assign(static_cast<size_t>(k), 0.0);
  }
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
#ifdef _OPENMP
    const int t = omp_get_thread_num();
#else
    const int t = 0;
#endif
    // Static contiguous ranges of tiles per thread: deterministic partial sums.
    const int64_t first = tiles * t / nt;
    const int64_t last = tiles * (t + 1) / nt;
    for (int64_t b = first; b < last; ++b) {
      tile_fn(t, b * tile, std::min(n, (b + 1) * tile), acc[static_cast<size_t>(t)]);
    }
  }
  for (const auto& a : acc) {
    if (out.sums != nullptr) {
      for (size_t i = 0; i < a.sums.size(); ++i) out.sums[i] += a.sums[i];
    }
    if (out.weights != nullptr) {
      for (int64_t j = 0; j < k; ++j) out.weights[j] += a.weights[static_cast<size_t>(j)];
    }
    if (out.cost != nullptr) *out.cost += a.cost;
  }
}

// Norms of the centers as given, or computed here when the caller passed none.
const float* CenterNorms(const HostKMeansCenters& c, std::vector<float>& storage) {
  if (c.norms != nullptr) return c.norms;
  storage.resize(static_cast<size_t>(c.k));
  SquaredNormsCpu(c.data, c.k, c.d, storage.data());
  return storage.data();
}

}  // namespace

void KMeansAssignCpu(const HostDenseView& x, const float* row_weights, const HostKMeansCenters& centers,
                     const HostKMeansOutput& out, int threads) {
  CheckShapes(x.rows, x.cols, centers);
  const int64_t n = x.rows, d = x.cols, k = centers.k;
  if (n == 0) return;
  MLF_ASSERT(x.values != nullptr || d == 0);
  std::vector<float> norm_storage;
  const float* cn = CenterNorms(centers, norm_storage);
  const float* c = centers.data;
  Eigen::Map<const RowMajorF> cmat(c, k, d);
  const int64_t tile = TileRows(k);

  // One dot-product buffer per thread, allocated once.
  const int nt_max = std::max(1, ResolveThreads(threads));
  std::vector<RowMajorF> dots(static_cast<size_t>(nt_max));

  RunTiles(n, k, d, out, threads, [&](int t, int64_t begin, int64_t end, ThreadAccum& a) {
    const int64_t m = end - begin;
    RowMajorF& g = dots[static_cast<size_t>(t)];
    if (g.rows() != tile || g.cols() != k) g.resize(tile, k);
    Eigen::Map<const RowMajorF> xt(x.values + begin * d, m, d);
    // m x k dot products; the block keeps g's allocation for the shorter last tile.
    g.topRows(m).noalias() = xt * cmat.transpose();
    for (int64_t r = 0; r < m; ++r) {
      const int64_t i = begin + r;
      const int32_t j = ArgminRow(g.row(r).data(), cn, k);
      const float* xi = x.values + i * d;
      const float* cj = c + static_cast<int64_t>(j) * d;
      const double dist = SquaredDistanceF64(xi, cj, d);
      const double w = row_weights != nullptr ? row_weights[i] : 1.0;
      if (out.labels != nullptr) out.labels[i] = j;
      if (out.min_dist != nullptr) out.min_dist[i] = static_cast<float>(dist);
      if (out.sums != nullptr) {
        double* s = a.sums.data() + static_cast<int64_t>(j) * d;
        for (int64_t q = 0; q < d; ++q) s[q] += w * xi[q];
      }
      a.weights[static_cast<size_t>(j)] += w;
      a.cost += w * dist;
    }
  });
}

void KMeansAssignCpu(const HostCsrView& x, const float* row_weights, const HostKMeansCenters& centers,
                     const HostKMeansOutput& out, int threads) {
  CheckShapes(x.rows, x.cols, centers);
  const int64_t n = x.rows, d = x.cols, k = centers.k;
  if (n == 0) return;
  MLF_ASSERT(x.indptr != nullptr);
  for (int64_t p = x.indptr[0]; p < x.indptr[n]; ++p) {
    // A bad index would read past the centers: O(nnz) to check, next to O(nnz k) to use.
    MLF_EXPECTS(x.indices[p] < static_cast<uint64_t>(d),
                "k-means: a sparse row has column index {} but feature_dim is {}", x.indices[p], d);
  }
  std::vector<float> norm_storage;
  const float* cn = CenterNorms(centers, norm_storage);
  const float* c = centers.data;
  // ct: d x k row-major, so the k values a nonzero in column q multiplies are contiguous.
  std::vector<float> ct(static_cast<size_t>(d * k));
  for (int64_t j = 0; j < k; ++j) {
    for (int64_t q = 0; q < d; ++q) ct[static_cast<size_t>(q * k + j)] = c[j * d + q];
  }
  // Float64 norms for the exact distance (the float32 ones only rank centers).
  std::vector<double> cn64(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) {
    double s = 0.0;
    for (int64_t q = 0; q < d; ++q) s += static_cast<double>(c[j * d + q]) * c[j * d + q];
    cn64[static_cast<size_t>(j)] = s;
  }

  const int nt_max = std::max(1, ResolveThreads(threads));
  std::vector<std::vector<float>> dots(static_cast<size_t>(nt_max), std::vector<float>(static_cast<size_t>(k)));
  std::vector<std::vector<double>> scratch(static_cast<size_t>(nt_max), std::vector<double>(static_cast<size_t>(d)));

  RunTiles(n, k, d, out, threads, [&](int t, int64_t begin, int64_t end, ThreadAccum& a) {
    float* g = dots[static_cast<size_t>(t)].data();
    for (int64_t i = begin; i < end; ++i) {
      const int64_t p0 = x.indptr[i], p1 = x.indptr[i + 1];
      std::fill(g, g + k, 0.0f);
      for (int64_t p = p0; p < p1; ++p) {
        const float v = x.values[p];
        const float* row = ct.data() + static_cast<int64_t>(x.indices[p]) * k;
        for (int64_t j = 0; j < k; ++j) g[j] += v * row[j];
      }
      const int32_t j = ArgminRow(g, cn, k);
      const float* cj = c + static_cast<int64_t>(j) * d;
      // ||x - c||^2 = ||c||^2 + sum over the nonzero columns of (v^2 - 2 v c_q), in float64. A
      // column may repeat within a row, so the values are first merged in a zeroed scratch row
      // (and each merged column is consumed, which zeroes the scratch again).
      double* merged = scratch[static_cast<size_t>(t)].data();
      for (int64_t p = p0; p < p1; ++p) merged[x.indices[p]] += x.values[p];
      double dist = cn64[static_cast<size_t>(j)];
      for (int64_t p = p0; p < p1; ++p) {
        const uint32_t q = x.indices[p];
        const double v = merged[q];
        merged[q] = 0.0;
        dist += v * v - 2.0 * v * cj[q];
      }
      dist = std::max(dist, 0.0);
      const double w = row_weights != nullptr ? row_weights[i] : 1.0;
      if (out.labels != nullptr) out.labels[i] = j;
      if (out.min_dist != nullptr) out.min_dist[i] = static_cast<float>(dist);
      if (out.sums != nullptr) {
        double* s = a.sums.data() + static_cast<int64_t>(j) * d;
        for (int64_t p = p0; p < p1; ++p) s[x.indices[p]] += w * x.values[p];
      }
      a.weights[static_cast<size_t>(j)] += w;
      a.cost += w * dist;
    }
  });
}

KMeansGpuPath ResolveKMeansGpuPath(int64_t d, int64_t k, const KMeansGpuOptions& opt) {
  if (opt.path != KMeansGpuPath::kAuto) return opt.path;
  int64_t padded = 4;
  while (padded < d) padded *= 2;
  return d <= 32 && k * padded <= 8192 ? KMeansGpuPath::kFused : KMeansGpuPath::kGemm;
}

KMeansStats::KMeansStats(int64_t k_, int64_t d_, bool with_sums) : k(k_), d(d_) {
  MLF_ASSERT(k_ >= 0 && d_ >= 0);
  if (with_sums) sums.assign(static_cast<size_t>(k * d), 0.0);
  weights.assign(static_cast<size_t>(k), 0.0);
}

void KMeansStats::Clear() {
  std::fill(sums.begin(), sums.end(), 0.0);
  std::fill(weights.begin(), weights.end(), 0.0);
  cost = 0.0;
}

// ---------------------------------------------------------------------------------------------
// KMeansAssigner: the dispatch.

KMeansAssigner::KMeansAssigner(Resources& res, const KMeansGpuOptions& gpu_options)
    : res_(res), gpu_options_(gpu_options) {
  if (res_.device() == Device::kGpu) gpu_.reset(internal::KMeansGpuCreate(res_.cuda(), gpu_options_));
}

KMeansAssigner::~KMeansAssigner() = default;

Device KMeansAssigner::device() const { return res_.device(); }

void KMeansAssigner::SetCenters(const float* centers, int64_t k, int64_t d) {
  MLF_ASSERT(centers != nullptr && k > 0 && d > 0);
  k_ = k;
  d_ = d;
  centers_.assign(centers, centers + k * d);
  norms_.resize(static_cast<size_t>(k));
  SquaredNormsCpu(centers_.data(), k, d, norms_.data());
  if (gpu_) internal::KMeansGpuSetCenters(gpu_.get(), centers_.data(), norms_.data(), k, d);
}

void KMeansAssigner::Assign(const HostBatch& batch, KMeansStats* stats, std::vector<int32_t>* labels,
                            std::vector<float>* min_dist) {
  MLF_ASSERT_MSG(k_ > 0, "KMeansAssigner::Assign before SetCenters");
  MLF_EXPECTS(batch.cols == d_, "k-means: a batch has {} columns but feature_dim is {}", batch.cols, d_);
  MLF_EXPECTS(batch.weights.empty() || static_cast<int64_t>(batch.weights.size()) == batch.rows,
              "k-means: a batch has {} rows but {} weights", batch.rows, batch.weights.size());
  if (stats != nullptr) {
    MLF_ASSERT(stats->k == k_ && stats->d == d_);
    MLF_ASSERT(stats->sums.empty() || static_cast<int64_t>(stats->sums.size()) == k_ * d_);
  }
  if (labels != nullptr) labels->resize(static_cast<size_t>(batch.rows));
  if (min_dist != nullptr) min_dist->resize(static_cast<size_t>(batch.rows));
  if (batch.rows == 0) return;
  if (gpu_) {
    internal::KMeansGpuAssign(gpu_.get(), batch, stats, labels, min_dist);
    return;
  }
  HostKMeansOutput out;
  out.labels = labels != nullptr ? labels->data() : nullptr;
  out.min_dist = min_dist != nullptr ? min_dist->data() : nullptr;
  if (stats != nullptr) {
    out.sums = stats->sums.empty() ? nullptr : stats->sums.data();
    out.weights = stats->weights.data();
    out.cost = &stats->cost;
  }
  const HostKMeansCenters c{centers_.data(), norms_.data(), k_, d_};
  const float* w = batch.weights.empty() ? nullptr : batch.weights.data();
  if (batch.layout == Layout::kCsr) {
    KMeansAssignCpu(CsrView(batch), w, c, out, res_.threads());
  } else {
    MLF_ASSERT(static_cast<int64_t>(batch.values.size()) == batch.rows * batch.cols);
    KMeansAssignCpu(HostDenseView{batch.values.data(), batch.rows, batch.cols}, w, c, out, res_.threads());
  }
}

#if !MLFORGE_HAVE_CUDA
// Without CUDA kmeans_assign.cu is not compiled; Resources never resolves to the GPU then, so
// these only run when called directly.
namespace internal {
void KMeansGpuStateDeleter::operator()(KMeansGpuState*) const {}
KMeansGpuState* KMeansGpuCreate(detail::CudaState&, const KMeansGpuOptions&) {
  MLF_FAIL("k-means on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
void KMeansGpuSetCenters(KMeansGpuState*, const float*, const float*, int64_t, int64_t) {
  MLF_FAIL("k-means on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
void KMeansGpuAssign(KMeansGpuState*, const HostBatch&, KMeansStats*, std::vector<int32_t>*, std::vector<float>*) {
  MLF_FAIL("k-means on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
}  // namespace internal
size_t KMeansAssignGpuWorkspaceBytes(int64_t, int64_t, int64_t, const KMeansGpuOptions&) { return 0; }
void KMeansAssignGpu(detail::CudaState&, const DeviceDenseView&, const float*, const DeviceKMeansCenters&,
                     const DeviceKMeansOutput&, void*, size_t, const KMeansGpuOptions&) {
  MLF_FAIL("k-means on the GPU: built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
}
#endif

}  // namespace mlforge::kernels
