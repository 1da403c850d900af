// CPU twin of the k-means assign-and-accumulate step, and the device dispatch (KMeansAssigner).
// The CUDA code is kmeans_assign.cu.
#include "kernels/kmeans_assign.h"
#include "kernels/omp_threads.h"
#include "kernels/squared_distance.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/build_config.h"
#include "core/error.h"
#include "core/resources.h"
#include "kernels/openblas.h"

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

// Rows per tile (CSR): the tile's dot products (tile x k floats) stay within ~1 MiB so they are
// still in L2 when the argmin reads them.
int64_t TileRows(int64_t k) { return std::clamp<int64_t>((int64_t{1} << 18) / std::max<int64_t>(k, 1), 16, 512); }

// Rows per tile (dense): as above, and the tile of X (tile x d floats) within ~1 MiB as well, so
// that the epilogue (exact distance, sums) reads the rows the GEMM just read from cache, not from
// memory again (wide rows: 16 rows of the 1000 Genomes matrix, d = 22,220, are 1.4 MB; 512 rows
// of it were 45 MB, read three times per pass).
int64_t DenseTileRows(int64_t k, int64_t d) {
  const int64_t wide = std::max<int64_t>(std::max<int64_t>(k, 1), d);
  return std::clamp<int64_t>((int64_t{1} << 18) / wide, 16, 512);
}

// Argmin over one row of dot products: val_j = ||c_j||^2 - 2 x.c_j, lowest index on ties (strict
// <, ascending j). A row whose values are all NaN gets center 0.
// 8-lane float / int vectors (GCC vector extensions: AVX registers with -march=native, SSE pairs
// otherwise; no intrinsics, so the code stays portable).
typedef float V8f __attribute__((vector_size(32)));
typedef int32_t V8i __attribute__((vector_size(32)));

inline int32_t ArgminRow(const float* dots, const float* cn, int64_t k) {
  // Per lane: the lowest value of cn[j] - 2 dots[j] and the first j reaching it (strict <), in two
  // independent lane sets (even and odd 8-blocks, halving the compare-select dependency chain)
  // merged lane by lane (ties to the lower index); then the lowest value across lanes and the
  // lowest index holding it, without branches. Same answer as one scalar pass with a strict <.
  // NaN never compares below; when nothing does (all NaN or +inf) the answer is 0.
  constexpr float kInf = std::numeric_limits<float>::infinity();
  float best = kInf;
  int32_t best_j = 0;
  int64_t j = 0;
  if (k >= 16) {
    V8f va = {kInf, kInf, kInf, kInf, kInf, kInf, kInf, kInf}, vb = va;
    V8i ja = {0, 0, 0, 0, 0, 0, 0, 0}, jb = ja;
    V8i idx = {0, 1, 2, 3, 4, 5, 6, 7};
    for (; j + 16 <= k; j += 16) {
      V8f c0, g0, c1, g1;
      std::memcpy(&c0, cn + j, sizeof(c0));
      std::memcpy(&g0, dots + j, sizeof(g0));
      std::memcpy(&c1, cn + j + 8, sizeof(c1));
      std::memcpy(&g1, dots + j + 8, sizeof(g1));
      const V8f v0 = c0 - 2.0f * g0, v1 = c1 - 2.0f * g1;
      const V8i lt0 = v0 < va, lt1 = v1 < vb;
      va = lt0 ? v0 : va;
      ja = lt0 ? idx : ja;
      vb = lt1 ? v1 : vb;
      jb = lt1 ? idx + 8 : jb;
      idx += 16;
    }
    if (j + 8 <= k) {
      V8f c, g;
      std::memcpy(&c, cn + j, sizeof(c));
      std::memcpy(&g, dots + j, sizeof(g));
      const V8f v = c - 2.0f * g;
      const V8i lt = v < va;
      va = lt ? v : va;
      ja = lt ? idx : ja;
      j += 8;
    }
    const V8i take_b = (vb < va) | ((vb == va) & (jb < ja));
    va = take_b ? vb : va;
    ja = take_b ? jb : ja;
    for (int l = 0; l < 8; ++l) best = va[l] < best ? va[l] : best;
    // Lanes still at +inf hold index 0, so an all-+inf vector part leaves best_j = 0.
    int32_t bj = std::numeric_limits<int32_t>::max();
    for (int l = 0; l < 8; ++l) bj = (va[l] == best && ja[l] < bj) ? ja[l] : bj;
    best_j = bj;
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

// The second lowest value of cn[j] - 2 dots[j] over j != best (the nearest center's rival), +inf
// when there is none (k = 1) or every other value is NaN or +inf. Same 8-lane shape as ArgminRow.
inline float SecondSmallest(const float* dots, const float* cn, int64_t k, int32_t best) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  float m = kInf;
  int64_t j = 0;
  if (k >= 8) {
    V8f vm = {kInf, kInf, kInf, kInf, kInf, kInf, kInf, kInf};
    V8i idx = {0, 1, 2, 3, 4, 5, 6, 7};
    const V8i vbest = V8i{0, 0, 0, 0, 0, 0, 0, 0} + best;
    for (; j + 8 <= k; j += 8) {
      V8f c, g;
      std::memcpy(&c, cn + j, sizeof(c));
      std::memcpy(&g, dots + j, sizeof(g));
      const V8f v = c - 2.0f * g;
      const V8i take = (v < vm) & (idx != vbest);
      vm = take ? v : vm;
      idx += 8;
    }
    for (int l = 0; l < 8; ++l) m = vm[l] < m ? vm[l] : m;
  }
  for (; j < k; ++j) {
    const float v = cn[j] - 2.0f * dots[j];
    if (j != best && v < m) m = v;
  }
  return m;
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
void RunTiles(int64_t n, int64_t k, int64_t d, int64_t tile, const HostKMeansOutput& out, int threads,
              TileFn tile_fn) {
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

// ||x - c||^2 in float64 (8 lanes as SquaredDistanceF64, added pairwise) and, when s is not null,
// s[q] += w * x[q]: one pass over the row for the epilogue's two float64 loops.
inline double DistanceAndAccumulate(const float* x, const float* c, int64_t d, double w, double* s) {
  constexpr int kLanes = 8;
  double acc[kLanes] = {};
  int64_t q = 0;
  if (s != nullptr) {
    for (; q + kLanes <= d; q += kLanes) {
      for (int l = 0; l < kLanes; ++l) {
        const double xv = static_cast<double>(x[q + l]);
        const double diff = xv - static_cast<double>(c[q + l]);
        acc[l] += diff * diff;
        s[q + l] += w * xv;
      }
    }
  } else {
    for (; q + kLanes <= d; q += kLanes) {
      for (int l = 0; l < kLanes; ++l) {
        const double diff = static_cast<double>(x[q + l]) - static_cast<double>(c[q + l]);
        acc[l] += diff * diff;
      }
    }
  }
  double dist = 0.0;
  for (; q < d; ++q) {
    const double xv = static_cast<double>(x[q]);
    const double diff = xv - static_cast<double>(c[q]);
    dist += diff * diff;
    if (s != nullptr) s[q] += w * xv;
  }
  // Pairwise: a chain of 8 dependent adds costs more than the loop above for d ~ 100.
  return dist + (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
}

// Centers below this count use SmallKDots instead of SGEMM: a GEMM pads the k side to its
// register tile (16-32 wide), so for k = 5 most of its arithmetic and all of its packing of X are
// waste, and the step turns compute-bound at a few GB/s where it should stream X once.
constexpr int64_t kSmallK = 16;
// ... and rows at least this wide: for narrow rows the 8-lane loop over d barely runs and the GEMM
// (blocked over the rows as well) is faster (measured: d = 2, k = 10 took 2.6x as long).
constexpr int64_t kSmallKMinDim = 64;

// g[r * k + j] = x_r . c_j for R rows (x: R rows of stride d) and KB centers starting at j0, in
// float32: 8-lane partial sums over d, then the lanes added in order. Each element of the rows and
// centers is loaded once per block.
template <int R, int KB>
void DotBlock(const float* x, const float* c, int64_t d, int64_t k, int64_t j0, float* g) {
  V8f acc[R][KB];
  for (int r = 0; r < R; ++r) {
    for (int b = 0; b < KB; ++b) acc[r][b] = V8f{0, 0, 0, 0, 0, 0, 0, 0};
  }
  int64_t q = 0;
  for (; q + 8 <= d; q += 8) {
    V8f xv[R];
    for (int r = 0; r < R; ++r) std::memcpy(&xv[r], x + r * d + q, sizeof(V8f));
    for (int b = 0; b < KB; ++b) {
      V8f cv;
      std::memcpy(&cv, c + (j0 + b) * d + q, sizeof(V8f));
      for (int r = 0; r < R; ++r) acc[r][b] += xv[r] * cv;
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int b = 0; b < KB; ++b) {
      float t = 0.0f;
      for (int64_t p = q; p < d; ++p) t += x[r * d + p] * c[(j0 + b) * d + p];
      for (int l = 0; l < 8; ++l) t += acc[r][b][l];
      g[r * k + j0 + b] = t;
    }
  }
}

// Dot products of R rows with all k < kSmallK centers: the centers in the fewest groups of at
// most 6 (k = 5: one group, so each row is read once).
template <int R>
void DotRows(const float* x, const float* c, int64_t d, int64_t k, float* g) {
  const int64_t groups = (k + 5) / 6;
  int64_t j = 0;
  for (int64_t t = 0; t < groups; ++t) {
    const int64_t size = k / groups + (t < k % groups ? 1 : 0);
    switch (size) {
      case 6:
        DotBlock<R, 6>(x, c, d, k, j, g);
        break;
      case 5:
        DotBlock<R, 5>(x, c, d, k, j, g);
        break;
      case 4:
        DotBlock<R, 4>(x, c, d, k, j, g);
        break;
      case 3:
        DotBlock<R, 3>(x, c, d, k, j, g);
        break;
      case 2:
        DotBlock<R, 2>(x, c, d, k, j, g);
        break;
      default:
        DotBlock<R, 1>(x, c, d, k, j, g);
        break;
    }
    j += size;
  }
}

// m x k dot products of m rows (stride d) with k < kSmallK centers, rows in fours (4 x 6
// accumulators: AVX-512's 32 registers; measured 20% faster than pairs on the 1000 Genomes shape).
void SmallKDots(const float* x, int64_t m, const float* c, int64_t d, int64_t k, float* g) {
  int64_t r = 0;
  for (; r + 4 <= m; r += 4) DotRows<4>(x + r * d, c, d, k, g + r * k);
  for (; r < m; ++r) DotRows<1>(x + r * d, c, d, k, g + r * k);
}

// A per-thread buffer of at least `size` T, kept for the thread's lifetime (OpenMP reuses its
// threads, so the training loop's calls reuse it; a fresh tile-sized buffer each time costs page
// faults); `Use` tells apart buffers that are live at the same time.
enum class ScratchUse { kDots, kGathered, kPending };
template <typename T, ScratchUse Use>
T* Scratch(size_t size) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < size) buffer.resize(size);
  return buffer.data();
}
// A tile's dot products (at most tile x k floats: 1 MiB for k <= 16384), or a block of
// KMeansBoundedLloyd's center Gram matrix (4 MiB).
float* TileScratch(size_t size) { return Scratch<float, ScratchUse::kDots>(size); }
// The rows the bounds could not settle, gathered into one tile (at most tile x d floats), and
// their indices.
float* GatherScratch(size_t size) { return Scratch<float, ScratchUse::kGathered>(size); }
int64_t* PendingScratch(size_t size) { return Scratch<int64_t, ScratchUse::kPending>(size); }

// Whether the dense twin uses SmallKDots (no GEMM) for this shape.
bool UseSmallK(int64_t k, int64_t d) { return k < kSmallK && d >= kSmallKMinDim; }

#if MLFORGE_HAVE_LAPACK
// OpenBLAS single-threaded: the SGEMMs run inside OpenMP threads. Not restored afterwards: every
// other OpenBLAS caller in mlforge sets its own count first (restoring would race when parallel
// local-Lloyd trials call this concurrently).
void BlasSingleThreaded() { openblas_set_num_threads(1); }
#endif

// How the dense twins cut and compute a pass: SmallKDots or the GEMM, and the rows per tile
// (small k: no packing, so tiles only need to keep the rows in L2 for the epilogue, 4 rows of the
// 1000 Genomes matrix). One threading model: OpenMP threads split the row tiles and each calls
// single-threaded SGEMM (OpenBLAS's own threads would compete with the OpenMP ones for the cores).
struct DensePlan {
  bool small_k = false;
  int64_t tile = 0;
};
DensePlan PlanDense(int64_t k, int64_t d) {
  DensePlan p;
  p.small_k = UseSmallK(k, d);
  p.tile = p.small_k ? std::clamp<int64_t>((int64_t{1} << 16) / std::max<int64_t>(d, 1), 4, 512)
                     : DenseTileRows(k, d);
#if MLFORGE_HAVE_LAPACK
  if (!p.small_k) BlasSingleThreaded();
#endif
  return p;
}

// Norms of the centers as given, or computed here when the caller passed none.
const float* CenterNorms(const HostKMeansCenters& c, std::vector<float>& storage) {
  if (c.norms != nullptr) return c.norms;
  storage.resize(static_cast<size_t>(c.k));
  SquaredNormsCpu(c.data, c.k, c.d, storage.data());
  return storage.data();
}


// g (m x k) = the dot products of m rows (xt, stride d) with the k centers c: SmallKDots, or one
// single-threaded SGEMM (Eigen without OpenBLAS; the caller sets OpenBLAS to one thread).
void TileDots(const float* xt, int64_t m, const float* c, int64_t d, int64_t k, bool small_k, float* g) {
  if (small_k) {
    SmallKDots(xt, m, c, d, k, g);
    return;
  }
#if MLFORGE_HAVE_LAPACK
  const int ld = static_cast<int>(std::max<int64_t>(d, 1));
  cblas_sgemm(cblas::kRowMajor, cblas::kNoTrans, cblas::kTrans, static_cast<int>(m), static_cast<int>(k),
              static_cast<int>(d), 1.0f, xt, ld, c, ld, 0.0f, g, static_cast<int>(k));
#else
  Eigen::Map<RowMajorF>(g, m, k).noalias() =
      Eigen::Map<const RowMajorF>(xt, m, d) * Eigen::Map<const RowMajorF>(c, k, d).transpose();
#endif
}

}  // namespace

void KMeansAssignCpu(const HostDenseView& x, const float* row_weights, const HostKMeansCenters& centers,
                     const HostKMeansOutput& out, int threads) {
  CheckShapes(x.rows, x.cols, centers);
  const int64_t n = x.rows, d = x.cols, k = centers.k;
  if (n == 0) return;
  MLF_ASSERT(x.values != nullptr || d == 0);
  MLF_ASSERT_MSG(d <= std::numeric_limits<int>::max(), "k-means: feature_dim = {} does not fit a BLAS int",
                 d);
  std::vector<float> norm_storage;
  const float* cn = CenterNorms(centers, norm_storage);
  const float* c = centers.data;
  const DensePlan plan = PlanDense(k, d);
  const bool small_k = plan.small_k;
  const int64_t tile = plan.tile;

  RunTiles(n, k, d, tile, out, threads, [&](int, int64_t begin, int64_t end, ThreadAccum& a) {
    const int64_t m = end - begin;
    // The tile's m x k dot products, in a per-thread buffer kept across calls (the loop calls
    // this once per batch; a fresh tile-sized buffer each time costs page faults).
    float* g = TileScratch(static_cast<size_t>(tile * k));
    TileDots(x.values + begin * d, m, c, d, k, small_k, g);
    for (int64_t r = 0; r < m; ++r) {
      const int64_t i = begin + r;
      const int32_t j = ArgminRow(g + r * k, cn, k);
      const float* xi = x.values + i * d;
      const float* cj = c + static_cast<int64_t>(j) * d;
      const double w = row_weights != nullptr ? row_weights[i] : 1.0;
      double* s = out.sums != nullptr ? a.sums.data() + static_cast<int64_t>(j) * d : nullptr;
      const double dist = DistanceAndAccumulate(xi, cj, d, w, s);
      if (out.labels != nullptr) out.labels[i] = j;
      if (out.min_dist != nullptr) out.min_dist[i] = static_cast<float>(dist);
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

  RunTiles(n, k, d, TileRows(k), out, threads, [&](int t, int64_t begin, int64_t end, ThreadAccum& a) {
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

// ---------------------------------------------------------------------------------------------
// KMeansBoundedLloyd: Hamerly's bounds over passes.

namespace {

// The largest float <= v (bounds stored as float must stay bounds).
float FloatAtMost(double v) {
  float f = static_cast<float>(v);
  if (static_cast<double>(f) > v) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}

// What a pass needs to know of its centers besides the centers.
struct CenterGeometry {
  const double* half_sep = nullptr;  // k: half the distance to the nearest other center
  double shift_max = 0;              // the largest distance a center moved since the last pass
  double shift_second = 0;           // the largest among the other centers
  int64_t shift_argmax = -1;         // the center that moved shift_max
  double norm_max = 0;               // max ||c_j||^2
};

// One pass over the dense rows of a batch. labels / lower: n entries, the bounds of the previous
// pass when `valid` (updated in place), else overwritten. Returns the rows that took dot products.
int64_t AssignBoundedDense(const HostDenseView& x, const float* row_weights, const HostKMeansCenters& centers,
                           const CenterGeometry& geo, int32_t* labels, float* lower, bool valid,
                           const HostKMeansOutput& out, int threads) {
  CheckShapes(x.rows, x.cols, centers);
  const int64_t n = x.rows, d = x.cols, k = centers.k;
  if (n == 0) return 0;
  MLF_ASSERT(centers.norms != nullptr && geo.half_sep != nullptr);
  const float* cn = centers.norms;
  const float* c = centers.data;
  const DensePlan plan = PlanDense(k, d);
  const bool small_k = plan.small_k;
  const int64_t tile = plan.tile;
  // Rounding of a GEMM value cn_j - 2 x.c_j (float32, d products): at most about
  // (d + 3) 2^-24 (||x||^2 + ||c_j||^2); two of them enter the second distance, so twice that,
  // and twice again for slack (the estimate of ||x||^2 is itself rounded).
  const double margin_factor = 4.0 * static_cast<double>(d + 4) * 0x1p-24;
  const int nt_max = std::max(1, ResolveThreads(threads));
  std::vector<int64_t> full(static_cast<size_t>(nt_max), 0);

  RunTiles(n, k, d, tile, out, threads, [&](int t, int64_t begin, int64_t end, ThreadAccum& a) {
    int64_t* pending = PendingScratch(static_cast<size_t>(tile));
    int64_t m = 0;
    for (int64_t i = begin; i < end; ++i) {
      if (valid) {
        const int32_t j = labels[i];
        const float* xi = x.values + i * d;
        const double dist = DistanceAndAccumulate(xi, c + static_cast<int64_t>(j) * d, d, 0.0, nullptr);
        // Every other center moved at most this much closer since the bound was set.
        const double l = static_cast<double>(lower[i]) - (j == geo.shift_argmax ? geo.shift_second : geo.shift_max);
        const double bound = std::max(l, geo.half_sep[j]);
        // Strict: a row exactly as far from another center is assigned in full (ties to the
        // lowest index, as KMeansAssignCpu).
        if (std::sqrt(dist) * (1.0 + 1e-12) < bound) {
          lower[i] = FloatAtMost(l);
          const double w = row_weights != nullptr ? row_weights[i] : 1.0;
          if (out.sums != nullptr) {
            double* s = a.sums.data() + static_cast<int64_t>(j) * d;
            for (int64_t q = 0; q < d; ++q) s[q] += w * static_cast<double>(xi[q]);
          }
          if (out.labels != nullptr) out.labels[i] = j;
          if (out.min_dist != nullptr) out.min_dist[i] = static_cast<float>(dist);
          a.weights[static_cast<size_t>(j)] += w;
          a.cost += w * dist;
          continue;
        }
      }
      pending[m++] = i;
    }
    if (m == 0) return;
    full[static_cast<size_t>(t)] += m;
    // The unsettled rows as one tile: in place when they are the whole tile, else gathered.
    const float* rows = x.values + begin * d;
    if (m < end - begin) {
      float* gathered = GatherScratch(static_cast<size_t>(tile * d));
      for (int64_t r = 0; r < m; ++r) {
        std::memcpy(gathered + r * d, x.values + pending[r] * d, static_cast<size_t>(d) * sizeof(float));
      }
      rows = gathered;
    }
    float* g = TileScratch(static_cast<size_t>(tile * k));
    TileDots(rows, m, c, d, k, small_k, g);
    for (int64_t r = 0; r < m; ++r) {
      const int64_t i = pending[r];
      const float* gr = g + r * k;
      const int32_t j = ArgminRow(gr, cn, k);
      const float* xi = x.values + i * d;
      const double w = row_weights != nullptr ? row_weights[i] : 1.0;
      double* s = out.sums != nullptr ? a.sums.data() + static_cast<int64_t>(j) * d : nullptr;
      const double dist = DistanceAndAccumulate(xi, c + static_cast<int64_t>(j) * d, d, w, s);
      labels[i] = j;
      // The second nearest center: its squared distance is dist + (v2 - v1) up to the rounding
      // of the two GEMM values, which the margin takes off.
      const float v2 = SecondSmallest(gr, cn, k, j);
      if (k == 1) {
        lower[i] = std::numeric_limits<float>::infinity();
      } else if (!std::isfinite(v2)) {
        lower[i] = 0.0f;  // nothing known: the row is assigned in full next pass
      } else {
        const double v1 = static_cast<double>(cn[j]) - 2.0 * static_cast<double>(gr[j]);
        const double xx = std::max(0.0, dist - v1);
        const double sq2 = dist + (static_cast<double>(v2) - v1) - margin_factor * (xx + geo.norm_max);
        lower[i] = sq2 > 0 ? FloatAtMost(std::sqrt(sq2)) : 0.0f;
      }
      if (out.labels != nullptr) out.labels[i] = j;
      if (out.min_dist != nullptr) out.min_dist[i] = static_cast<float>(dist);
      a.weights[static_cast<size_t>(j)] += w;
      a.cost += w * dist;
    }
  });
  int64_t total = 0;
  for (int64_t f : full) total += f;
  return total;
}

}  // namespace

void KMeansBoundedLloyd::Reset() {
  batches_.clear();
  have_previous_ = false;
  pass_ = -1;
  k_ = d_ = 0;
}

void KMeansBoundedLloyd::BeginPass(const float* centers, int64_t k, int64_t d) {
  MLF_ASSERT(centers != nullptr && k > 0 && d > 0);
  MLF_ASSERT_MSG(k <= std::numeric_limits<int32_t>::max(), "k = {} does not fit int32 labels", k);
  const bool same = pass_ >= 0 && k == k_ && d == d_;
  shift_.assign(static_cast<size_t>(k), 0.0);
  shift_max_ = shift_second_ = 0.0;
  shift_argmax_ = -1;
  if (same) {
    for (int64_t j = 0; j < k; ++j) {
      double s = 0.0;
      for (int64_t q = 0; q < d; ++q) {
        const double diff = static_cast<double>(centers[j * d + q]) - static_cast<double>(centers_[j * d + q]);
        s += diff * diff;
      }
      // Rounded up a little: a bound lowered by too little would not be a bound.
      const double shift = std::sqrt(s) * (1.0 + 1e-9);
      shift_[static_cast<size_t>(j)] = shift;
      if (shift > shift_max_) {
        shift_second_ = shift_max_;
        shift_max_ = shift;
        shift_argmax_ = j;
      } else if (shift > shift_second_) {
        shift_second_ = shift;
      }
    }
  } else {
    batches_.clear();
  }
  have_previous_ = same;
  k_ = k;
  d_ = d;
  centers_.assign(centers, centers + k * d);
  norms_.resize(static_cast<size_t>(k));
  SquaredNormsCpu(centers_.data(), k, d, norms_.data());
  // Half the distance from each center to its nearest other center, from the Gram matrix of one
  // float32 SGEMM (||a||^2 + ||b||^2 - 2 a.b, float64 norms), less the GEMM's rounding bound (as
  // for the rows' second distances), so that it never exceeds the true half distance.
  half_sep_.assign(static_cast<size_t>(k), std::numeric_limits<double>::infinity());
  if (k > 1) {
#if MLFORGE_HAVE_LAPACK
    BlasSingleThreaded();
#endif
    std::vector<double> n64(static_cast<size_t>(k));
    for (int64_t j = 0; j < k; ++j) {
      double t = 0.0;
      for (int64_t q = 0; q < d; ++q) t += static_cast<double>(centers_[j * d + q]) * centers_[j * d + q];
      n64[static_cast<size_t>(j)] = t;
    }
    const double margin_factor = 4.0 * static_cast<double>(d + 4) * 0x1p-24;
    // Blocks of centers against all of them (at most ~1M dot products, 4 MB, per block), so that
    // a large k never needs the whole k x k matrix; blocks in parallel.
    const int64_t block = std::clamp<int64_t>((int64_t{1} << 20) / k, 1, k);
    const int64_t blocks = (k + block - 1) / block;
    const int nt = static_cast<int>(std::clamp<int64_t>(ResolveThreads(threads_), 1, blocks));
#pragma omp parallel for num_threads(nt) schedule(dynamic) if (nt > 1)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t a0 = blk * block, a1 = std::min(k, a0 + block);
      float* gram = TileScratch(static_cast<size_t>(block * k));
      TileDots(centers_.data() + a0 * d, a1 - a0, centers_.data(), d, k, /*small_k=*/false, gram);
      for (int64_t a = a0; a < a1; ++a) {
        double best = std::numeric_limits<double>::infinity();
        const double na = n64[static_cast<size_t>(a)];
        for (int64_t b = 0; b < k; ++b) {
          if (b == a) continue;
          const double nb = n64[static_cast<size_t>(b)];
          const double sq = na + nb - 2.0 * static_cast<double>(gram[static_cast<size_t>((a - a0) * k + b)]) -
                            margin_factor * (na + nb);
          best = std::min(best, sq);
        }
        half_sep_[static_cast<size_t>(a)] = 0.5 * std::sqrt(std::max(best, 0.0));
      }
    }
  }
  ++pass_;
  rows_ = full_rows_ = 0;
}

void KMeansBoundedLloyd::Assign(size_t index, const HostBatch& batch, KMeansStats* stats) {
  MLF_ASSERT_MSG(pass_ >= 0, "KMeansBoundedLloyd::Assign before BeginPass");
  MLF_EXPECTS(batch.cols == d_, "k-means: a batch has {} columns but feature_dim is {}", batch.cols, d_);
  MLF_EXPECTS(batch.weights.empty() || static_cast<int64_t>(batch.weights.size()) == batch.rows,
              "k-means: a batch has {} rows but {} weights", batch.rows, batch.weights.size());
  HostKMeansOutput out;
  if (stats != nullptr) {
    MLF_ASSERT(stats->k == k_ && stats->d == d_);
    MLF_ASSERT(stats->sums.empty() || static_cast<int64_t>(stats->sums.size()) == k_ * d_);
    out.sums = stats->sums.empty() ? nullptr : stats->sums.data();
    out.weights = stats->weights.data();
    out.cost = &stats->cost;
  }
  rows_ += batch.rows;
  if (batch.rows == 0) return;
  const HostKMeansCenters c{centers_.data(), norms_.data(), k_, d_};
  const float* w = batch.weights.empty() ? nullptr : batch.weights.data();
  if (batch.layout == Layout::kCsr) {
    KMeansAssignCpu(CsrView(batch), w, c, out, threads_);
    full_rows_ += batch.rows;
    return;
  }
  MLF_ASSERT(static_cast<int64_t>(batch.values.size()) == batch.rows * batch.cols);
  if (k_ < kSmallK) {
    // A handful of centers: the dot products cost about what the bound test does (one exact
    // distance, then the sums in a second pass over the row), so the bounds cannot pay (measured
    // on the 1000 Genomes matrix, k = 5: 12% slower with them).
    KMeansAssignCpu(HostDenseView{batch.values.data(), batch.rows, batch.cols}, w, c, out, threads_);
    full_rows_ += batch.rows;
    return;
  }
  if (batches_.size() <= index) batches_.resize(index + 1);
  BatchBounds& b = batches_[index];
  const size_t n = static_cast<size_t>(batch.rows);
  const bool valid = have_previous_ && b.pass == pass_ - 1 && b.labels.size() == n;
  if (!valid) {
    b.labels.assign(n, 0);
    b.lower.assign(n, 0.0f);
  }
  b.pass = pass_;
  CenterGeometry geo;
  geo.half_sep = half_sep_.data();
  geo.shift_max = shift_max_;
  geo.shift_second = shift_second_;
  geo.shift_argmax = shift_argmax_;
  for (float v : norms_) geo.norm_max = std::max(geo.norm_max, static_cast<double>(v));
  full_rows_ += AssignBoundedDense(HostDenseView{batch.values.data(), batch.rows, batch.cols}, w, c, geo,
                                   b.labels.data(), b.lower.data(), valid, out, threads_);
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
