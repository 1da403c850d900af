// k-means (SageMaker's "kmeans" image): the table entry, the training loop and batched inference.
//
// Training (SPEC.md 4.2): streaming mini-batch k-means over K = k * extra_center_factor centers,
// seeded from the first mini-batch(es) (random or k-means++), per-batch update
//   c_j <- (1 - p) c_j + p * mean(batch rows assigned to j),  p = n_j / (W_j + n_j),  W_j += n_j
// with optional exponential decay of W (half_life_time_size), `epochs` passes, then a weighted
// local Lloyd reduction of the K centers to k (multi-trial, best cost kept). mlforge extension:
// full_batch_lloyd_iterations exact Lloyd passes over the whole data set, streamed from disk.
// Every cross-batch and cross-rank sum goes through the Communicator; every rank finalizes
// identically and rank 0 writes the model.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "algos/algorithm.h"
#include "algos/kmeans/model.h"
#include "algos/predictor.h"
#include "core/batch.h"
#include "core/resources.h"

namespace mlforge::algos::kmeans {

// The "kmeans" entry of the algorithm table.
Algorithm Entry();

// The training entry point (Algorithm::train).
void Train(TrainContext& ctx);

// Batched inference shared by `mlforge predict` and the server: for every row of `batch`
// (dense or CSR, cols == model.dim) the nearest centroid (ties: lowest index) and the Euclidean
// (not squared) distance to it, as SageMaker's k-means endpoint answers. Runs on res.device().
struct Predictions {
  std::vector<int32_t> closest_cluster;
  std::vector<float> distance_to_cluster;
};
Predictions Predict(const Model& model, const HostBatch& batch, Resources& res);

// The predictor for a k-means artifact (ours or SageMaker's); Algorithm::load_predictor.
std::unique_ptr<Predictor> LoadPredictor(const io::ModelSource& source);

}  // namespace mlforge::algos::kmeans
