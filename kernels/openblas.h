// OpenBLAS's C interface and LAPACK routines, declared once for the host code that calls them
// (only when the build links OpenBLAS: MLFORGE_HAVE_LAPACK, cmake/MlforgeDeps.cmake). Declared here
// rather than through cblas.h, which Debian resolves to whichever BLAS provides it.
#pragma once

#include <cstddef>

#include "core/build_config.h"

#if MLFORGE_HAVE_LAPACK
extern "C" {
void cblas_ssyrk(int order, int uplo, int trans, int n, int k, float alpha, const float* a, int lda, float beta,
                 float* c, int ldc);
void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc);
void openblas_set_num_threads(int threads);
// LAPACK (Fortran calling convention; the trailing lengths are gfortran's hidden character-argument
// lengths).
void dsyevr_(const char* jobz, const char* range, const char* uplo, const int* n, double* a, const int* lda,
             const double* vl, const double* vu, const int* il, const int* iu, const double* abstol, int* m,
             double* w, double* z, const int* ldz, int* isuppz, double* work, const int* lwork, int* iwork,
             const int* liwork, int* info, size_t jobz_len, size_t range_len, size_t uplo_len);
}

namespace mlforge::kernels::cblas {
// CBLAS enum values.
constexpr int kRowMajor = 101, kColMajor = 102;
constexpr int kNoTrans = 111, kTrans = 112;
constexpr int kUpper = 121, kLower = 122;
}  // namespace mlforge::kernels::cblas
#endif
