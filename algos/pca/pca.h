// PCA (SageMaker's "pca" image): the table entry, the training loop and batched projection.
//
// Training (SPEC.md 4.3): one streamed pass over the train channel accumulating float64 sums on
// res.device() (kernels/pca_accumulate.h), merged across ranks through the Communicator, then a
// host eigensolve:
//   regular:    the d x d scatter matrix Y^T Y -> centred -> top num_components eigenpairs (exact);
//   randomized: SageMaker's single-pass sign sketch H Y (l x d, l = num_components +
//               extra_components) -> SVD; mlforge's power_iterations adds passes of Y^T (Y Q)
//               (subspace iteration with a Nystrom finish) for slowly decaying spectra.
// The model's `s` are singular values of the centred data matrix (sqrt of the scatter's
// eigenvalues, scikit-learn's singular_values_), NaN where regular mode's eigenvalue is negative,
// as SageMaker's artifacts show; randomized mode estimates them as sigma(sketch) / sqrt(l).
#pragma once

#include <memory>
#include <vector>

#include "algos/algorithm.h"
#include "algos/pca/model.h"
#include "algos/predictor.h"
#include "core/batch.h"

namespace mlforge::algos::pca {

// The "pca" entry of the algorithm table.
Algorithm Entry();

// The training entry point (Algorithm::train).
void Train(TrainContext& ctx);

// Projections of every row of `batch` (dense or CSR, cols == model.dim): (x - mean) . v, rows x
// components row-major, in the model's component order. Host (Eigen), up to `threads` threads.
// With row_sq_error non-null, also fills each row's squared reconstruction error
// ||x - mean||^2 - ||projection||^2 (exact when v's columns are orthonormal), in float64.
std::vector<float> Project(const Model& model, const HostBatch& batch, int threads,
                           std::vector<double>* row_sq_error = nullptr);

// The predictor for a PCA artifact (ours or SageMaker's); Algorithm::load_predictor.
std::unique_ptr<Predictor> LoadPredictor(const io::ModelSource& source);

}  // namespace mlforge::algos::pca
