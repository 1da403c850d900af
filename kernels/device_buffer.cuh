// Device-side helpers shared by the CUDA twins (included only by .cu files): a stream-ordered
// device array that grows on demand, host <-> device copies on a stream, and the expansion of CSR
// rows into a dense device tile (the GPU steps run dense GEMMs on bounded tiles of a sparse batch;
// the host batch itself is never densified).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda_check.cuh"

namespace mlforge::kernels {

// A device array that grows on demand (stream-ordered allocation, freed on the same stream), so a
// step's buffers are allocated once and reused across batches.
template <typename T>
class GrowBuffer {
 public:
  explicit GrowBuffer(cudaStream_t stream) : stream_(stream) {}
  ~GrowBuffer() {
    if (ptr_ != nullptr) cudaFreeAsync(ptr_, stream_);  // errors ignored: destructors must not throw
  }
  GrowBuffer(const GrowBuffer&) = delete;
  GrowBuffer& operator=(const GrowBuffer&) = delete;
  // Room for n elements (at least 1, so the pointer is never null); the contents are not preserved.
  // 1/8 headroom so that slowly growing batches do not reallocate every time.
  T* Reserve(size_t n) { return Grow(n, n / 8); }
  // The same without the headroom: for arrays sized once (a model's parameters, optimizer state),
  // where 1/8 extra would be wasted device memory.
  T* ReserveExact(size_t n) { return Grow(n, 0); }
  T* get() const { return ptr_; }

 private:
  T* Grow(size_t n, size_t headroom) {
    n = std::max<size_t>(n, 1);
    if (n > cap_) {
      if (ptr_ != nullptr) MLF_CUDA_TRY(cudaFreeAsync(ptr_, stream_));
      ptr_ = nullptr;
      cap_ = 0;
      const size_t want = n + headroom;
      MLF_CUDA_TRY(cudaMallocAsync(reinterpret_cast<void**>(&ptr_), want * sizeof(T), stream_));
      cap_ = want;
    }
    return ptr_;
  }

  cudaStream_t stream_;
  T* ptr_ = nullptr;
  size_t cap_ = 0;
};

// Page-locked host memory that grows on demand: the staging area of one step's upload (a batch
// packed into one buffer goes up in one DMA) and of its small downloads. The caller makes sure
// the copies that read or write it are complete (e.g. the step's stream sync) before it is
// reused or grown.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() {
    if (ptr_ != nullptr) cudaFreeHost(ptr_);  // errors ignored: destructors must not throw
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  // Room for `bytes` bytes (at least 1); the contents are not preserved.
  void* Reserve(size_t bytes) {
    bytes = std::max<size_t>(bytes, 1);
    if (bytes > cap_) {
      if (ptr_ != nullptr) MLF_CUDA_TRY(cudaFreeHost(ptr_));
      ptr_ = nullptr;
      cap_ = 0;
      const size_t want = bytes + bytes / 8;
      MLF_CUDA_TRY(cudaHostAlloc(&ptr_, want, cudaHostAllocDefault));
      cap_ = want;
    }
    return ptr_;
  }

 private:
  void* ptr_ = nullptr;
  size_t cap_ = 0;
};

// Copies n host elements into `buf` (grown as needed) on `st`; returns the device pointer.
template <typename T>
T* Upload(GrowBuffer<T>& buf, const T* host, size_t n, cudaStream_t st) {
  T* p = buf.Reserve(n);
  if (n > 0) MLF_CUDA_TRY(cudaMemcpyAsync(p, host, n * sizeof(T), cudaMemcpyHostToDevice, st));
  return p;
}

// Copies n device elements to `host` on `st` (nothing when host is null or n is 0).
template <typename T>
void Download(T* host, const T* dev, size_t n, cudaStream_t st) {
  if (host != nullptr && n > 0)
    MLF_CUDA_TRY(cudaMemcpyAsync(host, dev, n * sizeof(T), cudaMemcpyDeviceToHost, st));
}

// Rows of a CSR batch expanded per dense tile: about 64 MiB of tile, at least one row.
inline int64_t CsrTileRows(int64_t n, int64_t d) {
  constexpr int64_t kCsrTileBytes = int64_t{64} << 20;
  return std::max<int64_t>(1, std::min(n, kCsrTileBytes / (4 * std::max<int64_t>(d, 1))));
}

// Writes CSR rows [r0, r0 + rows) as a rows x d row-major dense tile into `out` (device, at least
// rows * d floats), zeroing it first. indptr (device) holds the batch's absolute offsets;
// indices / values (device) were uploaded from offset `base` = indptr[0]. A row that repeats a
// column adds the values up, as the CPU twins do. Asynchronous on `st`.
void ExpandCsrTile(const int64_t* indptr, const uint32_t* indices, const float* values, int64_t base,
                   int64_t r0, int64_t rows, int64_t d, float* out, cudaStream_t st);

}  // namespace mlforge::kernels
