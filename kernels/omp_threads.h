// The OpenMP thread count for a kernel call: `threads` when positive, else OpenMP's default
// (1 in a build without OpenMP). Host code only.
#pragma once

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mlforge::kernels {

inline int ResolveThreads(int threads) {
#ifdef _OPENMP
  return threads > 0 ? threads : omp_get_max_threads();
#else
  (void)threads;
  return 1;
#endif
}

}  // namespace mlforge::kernels
