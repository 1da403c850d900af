// The dense linear algebra that turns PCA's accumulated sums into components (float64; host Eigen,
// except regular mode's large eigendecompositions on a GPU run: kernels/sym_eigen.h). Kept apart
// from the loop so tests can drive it with exact sums.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/pca_accumulate.h"

namespace mlforge {
class Resources;
}

namespace mlforge::algos::pca {

// Components of the centred scatter matrix A = sum_i (x_i - mu)(x_i - mu)^T (or of sum x x^T when
// the mean is not subtracted).
struct Solution {
  std::vector<double> eigenvalues;  // of A, one per component, in `order` (regular mode may hold
                                    // tiny negative values: rounding on rank-deficient data)
  std::vector<double> components;   // d x k row-major: column j is the unit eigenvector of eigenvalues[j]
  int64_t d = 0;
  int64_t k = 0;
};

// delta = mean(y) = sums.sum / n (the shifted rows' mean); the data's mean is shift + delta.
std::vector<double> ShiftedMean(const kernels::PcaSums& sums);

// trace(A): the total variance times n (sum of all eigenvalues).
double TotalScatter(const kernels::PcaSums& sums, bool subtract_mean);

// Regular mode: the top k eigenpairs of A from the kScatter sums, in ASCENDING order of eigenvalue
// (SageMaker's regular-mode order: the largest last). The d x d eigendecomposition runs on
// kernels::SymmetricEigenDevice(res, d): the GPU for large d on a GPU run, else the host.
Solution SolveRegular(Resources& res, const kernels::PcaSums& sums, bool subtract_mean, int64_t k);

// Randomized mode, SageMaker's single pass: the SVD of C = H Y_c (H Y - (H 1) sum^T / n); right
// singular vectors are the components, eigenvalue estimates sigma^2 / l (E[H^T H] = l I). All l
// pairs, in DESCENDING order.
Solution SolveSketch(const kernels::PcaSums& sums, bool subtract_mean);

// Orthonormal basis (d x l row-major, float32 for the next pass) of the columns of a solution.
std::vector<float> Basis(const Solution& s);

// Power-iteration pass result: Z = A Q from the kProject sums for the basis q (d x l, as passed).
// Returns the Nystrom approximation's eigenpairs within span(Z) (Tropp et al.'s stable variant;
// Rayleigh-Ritz on span(Q) when Z is rank deficient), all l, DESCENDING. Basis() of the result
// (orthonormal eigenvectors within about span(Z)) is the next pass's Q.
Solution SolveProjected(const kernels::PcaSums& sums, const std::vector<float>& q, bool subtract_mean);

// Flips each component's sign so that its entry of largest magnitude is positive (deterministic
// output; components are defined up to sign).
void NormalizeSigns(Solution* s);

}  // namespace mlforge::algos::pca
