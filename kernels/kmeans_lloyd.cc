// Seeding and weighted Lloyd's algorithm on small host point sets (see kmeans_lloyd.h).
#include "kernels/kmeans_lloyd.h"
#include "kernels/omp_threads.h"
#include "kernels/squared_distance.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>

#include "core/error.h"
#include "kernels/kmeans_assign.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mlforge::kernels {
namespace {

// SplitMix64 (Steele, Lea & Flood 2014): a tiny generator with well-mixed output whose stream is
// fully defined by this code, hence identical on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

uint64_t Mix(uint64_t a, uint64_t b) {
  Rng r(a ^ (b * 0xD1B54A32D192ED03ull));
  return r.Next();
}

double Weight(const float* w, int64_t i) { return w != nullptr ? static_cast<double>(w[i]) : 1.0; }

void CheckSeedingInput(const HostDenseView& p, const float* w, int64_t k) {
  MLF_ASSERT(p.rows >= 0 && p.cols > 0 && (p.values != nullptr || p.rows == 0));
  MLF_EXPECTS(k >= 1, "k-means seeding: k must be >= 1, got {}", k);
  MLF_EXPECTS(p.rows >= k, "k-means seeding: cannot choose {} distinct centers from {} points; use k <= {}", k,
              p.rows, p.rows);
  double total = 0.0;
  for (int64_t i = 0; i < p.rows; ++i) {
    const double wi = Weight(w, i);
    MLF_EXPECTS(wi >= 0.0 && std::isfinite(wi), "k-means seeding: point {} has weight {}; weights must be finite and >= 0",
                i, wi);
    total += wi;
  }
  MLF_EXPECTS(total > 0.0, "k-means seeding: the points' weights sum to 0");
}

double SquaredDistance(const float* a, const float* b, int64_t d) { return SquaredDistanceF64(a, b, d); }

// Index i with prefix(i) > target, where prefix sums `mass` in order; falls back to the last
// positive entry when rounding puts target past the end. mass must have a positive entry.
int64_t DrawByMass(const std::vector<double>& mass, double total, Rng& rng) {
  const double target = rng.Uniform() * total;
  double acc = 0.0;
  int64_t last_positive = -1;
  for (size_t i = 0; i < mass.size(); ++i) {
    if (mass[i] <= 0.0) continue;
    acc += mass[i];
    last_positive = static_cast<int64_t>(i);
    if (acc > target) return last_positive;
  }
  return last_positive;
}

// A row not yet chosen, drawn by weight among those (uniformly when all have weight 0).
int64_t DrawUnchosen(const std::vector<char>& chosen, const float* w, Rng& rng) {
  std::vector<double> mass(chosen.size(), 0.0);
  double total = 0.0;
  for (size_t i = 0; i < chosen.size(); ++i) {
    if (!chosen[i]) total += mass[i] = Weight(w, static_cast<int64_t>(i));
  }
  if (total <= 0.0) {
    for (size_t i = 0; i < chosen.size(); ++i) {
      if (!chosen[i]) total += mass[i] = 1.0;
    }
  }
  return DrawByMass(mass, total, rng);
}

}  // namespace

std::vector<float> GatherRows(const HostDenseView& points, const std::vector<int64_t>& rows) {
  const int64_t d = points.cols;
  std::vector<float> out(rows.size() * static_cast<size_t>(d));
  for (size_t r = 0; r < rows.size(); ++r) {
    MLF_ASSERT(rows[r] >= 0 && rows[r] < points.rows);
    std::copy_n(points.values + rows[r] * d, d, out.begin() + static_cast<int64_t>(r) * d);
  }
  return out;
}

std::vector<int64_t> SeedRandom(const HostDenseView& points, const float* weights, int64_t k, uint64_t seed) {
  CheckSeedingInput(points, weights, k);
  // Weighted sampling without replacement by exponential keys (Efraimidis & Spirakis 2006): key
  // -log(u) / w, the k smallest win. Weight-0 rows get +inf keys and are ordered by a uniform
  // tie-break, so they fill in only after every positive row.
  Rng rng(seed);
  const int64_t n = points.rows;
  std::vector<std::pair<double, double>> key(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double u = rng.Uniform();
    const double wi = Weight(weights, i);
    const double e = -std::log1p(-u);  // Exp(1); log1p(-u) is finite for u < 1
    key[static_cast<size_t>(i)] = {wi > 0.0 ? e / wi : std::numeric_limits<double>::infinity(), e};
  }
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int64_t a, int64_t b) {
    const auto& ka = key[static_cast<size_t>(a)];
    const auto& kb = key[static_cast<size_t>(b)];
    return ka != kb ? ka < kb : a < b;
  });
  idx.resize(static_cast<size_t>(k));
  return idx;
}

std::vector<int64_t> SeedKMeansPlusPlus(const HostDenseView& points, const float* weights, int64_t k,
                                        uint64_t seed, int local_trials, int threads) {
  CheckSeedingInput(points, weights, k);
  MLF_ASSERT(local_trials >= 1);
  const int64_t n = points.rows, d = points.cols;
  const int nt = std::max(1, ResolveThreads(threads));
  Rng rng(seed);
  std::vector<char> chosen(static_cast<size_t>(n), 0);
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(k));

  // First center: by weight.
  std::vector<double> mass(static_cast<size_t>(n));
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += mass[static_cast<size_t>(i)] = Weight(weights, i);
  int64_t first = DrawByMass(mass, total, rng);
  out.push_back(first);
  chosen[static_cast<size_t>(first)] = 1;

  // d2[i]: squared distance from row i to its nearest chosen row.
  std::vector<double> d2(static_cast<size_t>(n));
  // One parallel region per candidate: below ~1M values the fork/join costs more than the pass
  // (and on a busy machine spinning OpenMP threads make it far worse).
  const float* c0 = points.values + first * d;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && n * d > (1 << 20))
  for (int64_t i = 0; i < n; ++i) d2[static_cast<size_t>(i)] = SquaredDistance(points.values + i * d, c0, d);

  std::vector<double> cand_d2;  // local_trials x n: D^2 with each candidate added
  while (static_cast<int64_t>(out.size()) < k) {
    double pot = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double m = chosen[static_cast<size_t>(i)] ? 0.0 : Weight(weights, i) * d2[static_cast<size_t>(i)];
      mass[static_cast<size_t>(i)] = m;
      pot += m;
    }
    int64_t pick = -1;
    if (!(pot > 0.0)) {
      // Every unchosen row coincides with a chosen one (or has weight 0).
      pick = DrawUnchosen(chosen, weights, rng);
      const float* c = points.values + pick * d;
      for (int64_t i = 0; i < n; ++i) {
        d2[static_cast<size_t>(i)] = std::min(d2[static_cast<size_t>(i)], SquaredDistance(points.values + i * d, c, d));
      }
    } else {
      // The candidates are drawn first (they all come from the same D^2 distribution), then one
      // pass over the rows measures every candidate, so each row is read once per step.
      std::vector<int64_t> cands(static_cast<size_t>(local_trials));
      for (int t = 0; t < local_trials; ++t) cands[static_cast<size_t>(t)] = DrawByMass(mass, pot, rng);
      cand_d2.resize(static_cast<size_t>(n * local_trials));
      const int64_t trials = local_trials;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && n * d * trials > (1 << 20))
      for (int64_t i = 0; i < n; ++i) {
        const float* xi = points.values + i * d;
        for (int64_t t = 0; t < trials; ++t) {
          cand_d2[static_cast<size_t>(t * n + i)] =
              std::min(d2[static_cast<size_t>(i)], SquaredDistance(xi, points.values + cands[static_cast<size_t>(t)] * d, d));
        }
      }
      double best_pot = std::numeric_limits<double>::infinity();
      int64_t best_t = 0;
      for (int64_t t = 0; t < trials; ++t) {
        // Summed serially, in row order: the choice must not depend on the thread count.
        double cand_pot = 0.0;
        for (int64_t i = 0; i < n; ++i) cand_pot += Weight(weights, i) * cand_d2[static_cast<size_t>(t * n + i)];
        // Strict <: the first candidate wins ties, so local_trials = 1 is plain k-means++.
        if (cand_pot < best_pot || pick < 0) {
          best_pot = cand_pot;
          pick = cands[static_cast<size_t>(t)];
          best_t = t;
        }
      }
      std::copy(cand_d2.begin() + best_t * n, cand_d2.begin() + (best_t + 1) * n, d2.begin());
    }
    out.push_back(pick);
    chosen[static_cast<size_t>(pick)] = 1;
  }
  return out;
}

namespace {

// One Lloyd run from the given seed rows. `threads` goes to the assignment.
LloydTrial RunTrial(const HostDenseView& p, const float* w, const LloydOptions& opt, uint64_t seed, int threads,
                    std::vector<float>& centers) {
  const int64_t n = p.rows, d = p.cols, k = opt.k;
  LloydTrial trial;
  trial.seed = seed;
  const std::vector<int64_t> rows = opt.init == KMeansSeeding::kRandom
                                        ? SeedRandom(p, w, k, seed)
                                        : SeedKMeansPlusPlus(p, w, k, seed, opt.kmeanspp_local_trials, threads);
  centers = GatherRows(p, rows);

  std::vector<float> dist(static_cast<size_t>(n));
  std::vector<double> sums(static_cast<size_t>(k * d));
  std::vector<double> wsum(static_cast<size_t>(k));
  std::vector<char> used(static_cast<size_t>(n));
  std::vector<float> next(centers.size());
  double cost = 0.0;
  auto assign = [&](const std::vector<float>& c) {
    std::fill(sums.begin(), sums.end(), 0.0);
    std::fill(wsum.begin(), wsum.end(), 0.0);
    cost = 0.0;
    HostKMeansOutput out;
    out.min_dist = dist.data();
    out.sums = sums.data();
    out.weights = wsum.data();
    out.cost = &cost;
    KMeansAssignCpu(p, w, HostKMeansCenters{c.data(), nullptr, k, d}, out, threads);
  };

  assign(centers);
  trial.cost_history.push_back(cost);
  for (int64_t it = 1; it <= opt.max_iter; ++it) {
    // Update: weighted means; empty clusters move onto the farthest unused points.
    std::fill(used.begin(), used.end(), 0);
    for (int64_t j = 0; j < k; ++j) {
      float* cj = next.data() + j * d;
      const double wj = wsum[static_cast<size_t>(j)];
      if (wj > 0.0) {
        for (int64_t q = 0; q < d; ++q) cj[q] = static_cast<float>(sums[static_cast<size_t>(j * d + q)] / wj);
        continue;
      }
      int64_t far = -1;
      bool far_positive = false;
      for (int64_t i = 0; i < n; ++i) {
        if (used[static_cast<size_t>(i)]) continue;
        const bool pos = Weight(w, i) > 0.0;
        if (far < 0 || (pos && !far_positive) ||
            (pos == far_positive && dist[static_cast<size_t>(i)] > dist[static_cast<size_t>(far)])) {
          far = i;
          far_positive = pos;
        }
      }
      if (far < 0) far = 0;  // every point used already (k > n cannot happen: checked by seeding)
      used[static_cast<size_t>(far)] = 1;
      std::copy_n(p.values + far * d, d, cj);
    }
    centers.swap(next);
    const double prev = cost;
    assign(centers);
    trial.cost_history.push_back(cost);
    trial.iterations = it;
    if (prev - cost <= opt.tol * prev) {
      trial.converged = true;
      break;
    }
  }
  trial.cost = cost;
  return trial;
}

}  // namespace

LloydResult WeightedLloyd(const HostDenseView& points, const float* weights, const LloydOptions& opt) {
  MLF_EXPECTS(opt.max_iter >= 0, "local Lloyd: max_iter must be >= 0, got {}", opt.max_iter);
  MLF_EXPECTS(opt.num_trials >= 1, "local Lloyd: num_trials must be >= 1, got {}", opt.num_trials);
  MLF_EXPECTS(opt.tol >= 0.0, "local Lloyd: tol must be >= 0, got {}", opt.tol);
  CheckSeedingInput(points, weights, opt.k);
  const int64_t trials = opt.num_trials;
  const int nt = std::max(1, ResolveThreads(opt.threads));

  LloydResult res;
  for (int64_t i = 0; i < points.rows; ++i) res.total_weight += Weight(weights, i);
  res.trials.resize(static_cast<size_t>(trials));
  std::vector<std::vector<float>> centers(static_cast<size_t>(trials));
  const bool parallel_trials = trials > 1 && nt > 1;
  const int inner_threads = trials > 1 ? 1 : nt;
  // Exceptions must not escape an OpenMP region: keep the first and rethrow after it.
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic) num_threads(static_cast<int>(std::min<int64_t>(nt, trials))) \
    if (parallel_trials)
  for (int64_t t = 0; t < trials; ++t) {
    try {
      res.trials[static_cast<size_t>(t)] =
          RunTrial(points, weights, opt, Mix(opt.seed, static_cast<uint64_t>(t)), inner_threads,
                   centers[static_cast<size_t>(t)]);
    } catch (...) {
#pragma omp critical(mlforge_lloyd_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);

  for (int64_t t = 1; t < trials; ++t) {
    if (res.trials[static_cast<size_t>(t)].cost < res.trials[static_cast<size_t>(res.best_trial)].cost) {
      res.best_trial = t;
    }
  }
  res.cost = res.trials[static_cast<size_t>(res.best_trial)].cost;
  res.centers = std::move(centers[static_cast<size_t>(res.best_trial)]);
  return res;
}

}  // namespace mlforge::kernels
