// PCA hyperparameters (SPEC.md 4.3, plus mlforge's documented extensions) and the resolved
// configuration the training loop reads.
#pragma once

#include <cstdint>
#include <string>

#include "core/hyperparams.h"

namespace mlforge::algos::pca {

// The declarative table: SageMaker's names, defaults and ranges, then mlforge's extensions.
const HpTable& Hyperparameters();

enum class Mode { kRegular, kRandomized };

struct Config {
  int64_t feature_dim = 0;       // d
  int64_t num_components = 0;    // k
  int64_t mini_batch_size = 500;
  Mode mode = Mode::kRegular;
  bool subtract_mean = true;
  int64_t extra_components = 0;  // randomized: resolved (-1 -> max(10, k)); regular: 0
  int64_t sketch_width = 0;      // randomized: l = min(k + extra_components, d); regular: 0
  // Extensions.
  int64_t power_iterations = 0;  // randomized: extra passes over the data (0: SageMaker's one pass)
  uint64_t seed = 0;
  int64_t memory_limit_mb = 0;   // resolved from auto: half of this host's memory
};

// Reads validated values and applies the cross-field rules, each failure a UserError naming the
// field and the fix. `threads` sizes the memory check of regular mode.
Config ResolveConfig(HpValues& values, int threads);

// Bytes regular mode needs for a d x d problem on the host (accumulator with its per-thread
// partials, and the eigensolver's matrix, eigenvectors and workspace).
size_t RegularModeBytes(int64_t d, int threads);

}  // namespace mlforge::algos::pca
