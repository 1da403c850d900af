// k-means hyperparameters (SPEC.md 4.2, plus mlforge's documented extensions) and the resolved
// configuration the training loop reads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/hyperparams.h"

namespace mlforge::algos::kmeans {

// The declarative table: SageMaker's names, defaults and ranges, then mlforge's extensions.
const HpTable& Hyperparameters();

enum class InitMethod { kRandom, kKMeansPlusPlus };

struct Config {
  int64_t feature_dim = 0;          // d: columns of every row
  int64_t k = 0;                    // clusters in the final model
  int64_t mini_batch_size = 5000;   // rows per streaming update
  int64_t epochs = 1;               // passes of the streaming phase
  InitMethod init_method = InitMethod::kRandom;
  int64_t extra_center_factor = 10;  // streaming keeps k * extra_center_factor centers
  InitMethod local_lloyd_init_method = InitMethod::kKMeansPlusPlus;
  int64_t local_lloyd_max_iter = 300;
  int64_t local_lloyd_num_trials = 10;
  double local_lloyd_tol = 1e-4;
  int64_t half_life_time_size = 0;  // 0: no decay
  std::vector<std::string> eval_metrics = {"msd"};
  bool force_dense = true;
  // Extensions.
  int64_t full_batch_lloyd_iterations = 0;  // exact Lloyd passes over all data after streaming
  double full_batch_lloyd_tol = 1e-4;       // stop when the relative cost change is below this
  int64_t full_batch_lloyd_trials = 1;      // starts of full-batch Lloyd; lowest inertia kept
  int64_t full_batch_cache_mb = 2048;       // host memory for keeping the data between full passes
  uint64_t seed = 0;
};

// Reads (and resolves `auto` in) validated values. auto rules:
//  - extra_center_factor: 10 (the value SageMaker's image logs for auto), then capped so that
//    k * factor <= mini_batch_size: the first mini-batch seeds the centers, so more centers than
//    rows in it cannot be seeded. Never below 1.
//  - local_lloyd_num_trials: 10 (what the image runs for auto).
Config ResolveConfig(HpValues& values);

}  // namespace mlforge::algos::kmeans
