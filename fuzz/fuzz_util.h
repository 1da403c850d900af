// Helpers the fuzz targets share: an abort that libFuzzer reports as a crash with the input, and
// bit-exact float comparison for round-trip (parse -> write -> parse) checks.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace mlforge::fuzz {

// Aborts (a finding) unless `ok`.
inline void Check(bool ok) {
  if (!ok) std::abort();
}

// Equal bits, or both NaN.
inline bool SameFloat(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  uint32_t ua, ub;
  std::memcpy(&ua, &a, 4);
  std::memcpy(&ub, &b, 4);
  return ua == ub;
}

}  // namespace mlforge::fuzz
