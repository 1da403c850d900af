// Seeding (random, k-means++) and weighted Lloyd iterations on a small, host-resident point set:
// SageMaker's final "local Lloyd" reduction of the k * extra_center_factor streaming centers
// (weighted by the mass they absorbed) down to k, and the seeding of the streaming centers from
// the first mini-batch. CPU only: the point sets are small (thousands of rows), so a GPU would
// spend more on launches than on arithmetic. The assignment inside Lloyd is KMeansAssignCpu.
//
// Determinism: every random choice comes from a counter-based generator seeded by `seed` (and the
// trial index), never from std:: distributions (whose output differs between standard libraries),
// so a seed gives the same centers on every platform.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/column_stats.h"  // HostDenseView

namespace mlforge::kernels {

enum class KMeansSeeding { kRandom, kKMeansPlusPlus };

// Chooses k distinct rows of points (host, n x d row-major) by weighted sampling without
// replacement: row i is picked with probability proportional to weights[i] (weights: host, n
// entries >= 0, or null for all ones; rows of weight 0 only once every positive row is taken).
// Returns the chosen row indices in the order drawn. Needs n >= k (UserError otherwise, naming
// both) and a positive total weight.
std::vector<int64_t> SeedRandom(const HostDenseView& points, const float* weights, int64_t k, uint64_t seed);

// k-means++ (Arthur & Vassilvitskii 2007) on weighted points: the first row is drawn with
// probability proportional to its weight, each next one proportional to weight * D^2, where D is
// the distance to the nearest row chosen so far (float64). With local_trials > 1 each step draws
// that many candidates and keeps the one that lowers the total weighted D^2 most (the "greedy"
// variant scikit-learn uses with 2 + ln k trials); 1 is the plain algorithm. Rows are distinct:
// when every remaining weight * D^2 is 0 (fewer distinct points than k), the next row is drawn
// by weight among the rows not yet chosen. Cost O(n k d local_trials); `threads` OpenMP threads
// (<= 0: all) over rows; the result does not depend on the thread count. Same preconditions as
// SeedRandom.
std::vector<int64_t> SeedKMeansPlusPlus(const HostDenseView& points, const float* weights, int64_t k,
                                        uint64_t seed, int local_trials = 1, int threads = 1);

// rows.size() x d row-major copy of the given rows of points (host).
std::vector<float> GatherRows(const HostDenseView& points, const std::vector<int64_t>& rows);

struct LloydOptions {
  int64_t k = 0;                  // centers to produce (1 <= k <= points)
  int64_t max_iter = 300;         // center updates per trial at most
  double tol = 1e-4;              // stop when (previous cost - cost) <= tol * previous cost
  int64_t num_trials = 1;         // independent seedings; the lowest final cost wins
  KMeansSeeding init = KMeansSeeding::kKMeansPlusPlus;
  int kmeanspp_local_trials = 1;  // candidates per k-means++ step (1: plain k-means++)
  uint64_t seed = 0;              // trial t uses a seed derived from (seed, t)
  int threads = 0;                // OpenMP threads (<= 0: all)
};

struct LloydTrial {
  uint64_t seed = 0;    // the seed this trial's seeding used
  double cost = 0.0;    // final weighted sum of squared distances
  int64_t iterations = 0;  // center updates performed
  bool converged = false;  // stopped by tol (false: ran max_iter updates)
  // cost_history[0]: cost of the seeded centers; [t]: cost after update t. Non-increasing up to
  // rounding (Lloyd's and the empty-cluster rule below never raise the cost).
  std::vector<double> cost_history;
};

struct LloydResult {
  std::vector<float> centers;  // k x d row-major, of the best trial
  double cost = 0.0;           // its weighted sum of squared distances
  double total_weight = 0.0;   // sum of the point weights (cost / total_weight is the msd)
  int64_t best_trial = 0;      // lowest cost, ties to the lowest trial index
  std::vector<LloydTrial> trials;
};

// Weighted Lloyd's algorithm. points: host, n x d row-major; weights: host, n entries >= 0 or null
// (all ones). Each trial seeds k centers (opt.init), then alternates assignment (nearest center,
// ties to the lowest index) and update (center = weighted mean of its points) until the relative
// cost decrease is <= tol or max_iter updates ran. The centers returned are those the returned
// cost was measured with.
//
// Empty clusters: a center that received no weight is moved onto the point farthest from its own
// center (largest squared distance; among rows of positive weight first, each point used once per
// update, ties to the lowest row index). That point is then at distance 0, so the cost cannot rise,
// and no center is ever left without data while distinct points remain. When more trials than one
// are run they run in parallel with one thread each (results are independent of the thread count
// then); a single trial uses all threads for the assignment.
LloydResult WeightedLloyd(const HostDenseView& points, const float* weights, const LloydOptions& opt);

}  // namespace mlforge::kernels
