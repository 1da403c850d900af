// cuBLAS is opened with dlopen() on first use (core/cublas_lazy.cc); CPU-only runs never load it.
#pragma once

#include <string>

namespace mlforge {

// Why libcublas could not be loaded ("" when it was, or when nothing tried yet).
std::string CublasLoadError();

}  // namespace mlforge
