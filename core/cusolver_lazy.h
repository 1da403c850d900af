// cuSOLVER is opened with dlopen() on first use (core/cusolver_lazy.cc), like cuBLAS
// (core/cublas_lazy.h); CPU-only runs never load it.
#pragma once

#include <string>

namespace mlforge {

// Why libcusolver could not be loaded ("" when it was, or when nothing tried yet).
std::string CusolverLoadError();

}  // namespace mlforge
