// Checks for CUDA code in kernels/ (included only by .cu files). The call checks
// (MLF_CUDA_TRY, MLF_CUBLAS_TRY) live in core/cuda_state.h because core/resources.cc needs them
// too; this adds the launch check and the small grid helpers every launcher uses.
#pragma once

#include <cstdint>

#include "core/cuda_state.h"

// MLF_CUDA_TRY_LAUNCH() right after every kernel<<<...>>>: reports a bad launch configuration at
// the launch site. Faults while the kernel runs surface at the next synchronising MLF_CUDA_TRY.
#define MLF_CUDA_TRY_LAUNCH() MLF_CUDA_TRY(cudaGetLastError())

namespace mlforge::kernels {

// ceil(a / b) for positive b, in 64 bits so that rows * cols products do not overflow.
__host__ __device__ inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace mlforge::kernels
