// ||a - b||^2 of two float rows, accumulated in float64 in 8 independent lanes so the compiler
// vectorizes it (a single running double sum cannot be reordered, so it runs one element per
// cycle). Deterministic: the order depends on d only, never on threads. Host code only.
#pragma once

#include <cstdint>

namespace mlforge::kernels {

inline double SquaredDistanceF64(const float* a, const float* b, int64_t d) {
  constexpr int kLanes = 8;
  double acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= d; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const double diff = static_cast<double>(a[j + l]) - static_cast<double>(b[j + l]);
      acc[l] += diff * diff;
    }
  }
  double s = 0.0;
  for (; j < d; ++j) {
    const double diff = static_cast<double>(a[j]) - static_cast<double>(b[j]);
    s += diff * diff;
  }
  for (int l = 0; l < kLanes; ++l) s += acc[l];
  return s;
}

}  // namespace mlforge::kernels
