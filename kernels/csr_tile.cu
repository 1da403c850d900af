// ExpandCsrTile (kernels/device_buffer.cuh).
#include "kernels/device_buffer.cuh"

namespace mlforge::kernels {
namespace {

// One warp per row; atomics because a row may repeat a column index.
__global__ void CsrTileKernel(const int64_t* __restrict__ indptr, const uint32_t* __restrict__ indices,
                              const float* __restrict__ values, int64_t base, int64_t r0, int64_t rows,
                              int64_t d, float* __restrict__ out) {
  const int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (r >= rows) return;
  const int64_t p1 = indptr[r0 + r + 1] - base;
  for (int64_t p = indptr[r0 + r] - base + lane; p < p1; p += 32)
    atomicAdd(out + r * d + indices[p], values[p]);
}

}  // namespace

void ExpandCsrTile(const int64_t* indptr, const uint32_t* indices, const float* values, int64_t base,
                   int64_t r0, int64_t rows, int64_t d, float* out, cudaStream_t st) {
  if (rows <= 0) return;
  MLF_CUDA_TRY(cudaMemsetAsync(out, 0, static_cast<size_t>(rows * d) * sizeof(float), st));
  CsrTileKernel<<<static_cast<unsigned>(CeilDiv(rows * 32, 256)), 256, 0, st>>>(indptr, indices, values, base,
                                                                                r0, rows, d, out);
  MLF_CUDA_TRY_LAUNCH();
}

}  // namespace mlforge::kernels
