// CUDA version of the genotype relationship-matrix accumulation (CPU twin and dispatch:
// grm_accumulate.cc; the contract is the comment in grm_accumulate.h).
//
// Numerics: the same as the CPU twin. Each chunk of at most kGrmBlockVariants variants travels as
// its packed 2-bit bytes (plus center and scale), is expanded on the device into a float32 Z
// (variant-major nv x n, z = (code - center) * scale rounded exactly like ExpandGenotypeBlock, 0 for
// a missing call), and cuBLAS SSYRK adds Z^T Z into the float32 n x n scratch with beta = 1. Z
// variant-major is a column-major n x nv matrix A (lda = n), so the product is A A^T with
// CUBLAS_OP_N; its column-major LOWER triangle is the row-major UPPER triangle the header asks for
// (the CPU twin's OpenBLAS call is the same). Every kGrmFlushVariants variants (a chunk is cut
// short where needed so that the scratch never holds more) and in Result, a kernel adds the
// scratch's upper triangle into the float64 total and zeroes it. Result mirrors the upper
// triangle into the lower one on the device (a tiled transpose) and downloads the full n x n
// matrix.
//
// Memory, all allocated in GrmGpuCreate after a cudaMemGetInfo check (UserError naming the sizes):
// total n^2 doubles, scratch n^2 floats, Z kGrmBlockVariants x n floats and two device upload
// slots of one chunk each (packed bytes | center | scale); two pinned host staging buffers of the
// same size. Add never allocates.
//
// Overlap (as in pca_accumulate.cu): GrmGpuAdd copies a chunk into one of two pinned staging
// buffers (waiting only until that buffer's previous upload is done), uploads it on a copy stream
// of its own into the matching device slot, and queues expand + SSYRK on the CudaState stream
// behind an event. Nothing waits for the compute, so chunk k+1's host copy and upload overlap
// chunk k's SSYRK. Events per slot: `copied` (recorded on the copy stream after the upload; the
// compute waits on it, the next host copy into the same staging buffer syncs on it) and `used`
// (recorded on the compute stream after the chunk's compute; the next upload into the same device
// slot waits on it).
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "core/error.h"
#include "kernels/cuda_check.cuh"
#include "kernels/device_buffer.cuh"
#include "kernels/grm_accumulate.h"

namespace mlforge::kernels {
namespace {

constexpr int kThreads = 256;
constexpr size_t kAlign = 256;
size_t AlignUp(size_t b) { return (b + kAlign - 1) / kAlign * kAlign; }
// Left free besides the buffers: cuBLAS's workspace and the stream-ordered pool's slack.
constexpr size_t kHeadroomBytes = size_t{64} << 20;
// Largest grid dimension y (CUDA's limit is 65535).
constexpr int64_t kMaxGridY = 65535;
// Mirror tiles: kTile x kTile entries, kTile x kTileRows threads.
constexpr int kTile = 32;
constexpr int kTileRows = 8;

double MiB(size_t b) { return static_cast<double>(b) / (1 << 20); }

// A stream-ordered device allocation freed on the same stream (also on the error paths).
class DeviceAlloc {
 public:
  DeviceAlloc() = default;
  ~DeviceAlloc() {
    if (ptr_ != nullptr) cudaFreeAsync(ptr_, stream_);  // errors ignored: destructors must not throw
  }
  DeviceAlloc(const DeviceAlloc&) = delete;
  DeviceAlloc& operator=(const DeviceAlloc&) = delete;
  void Allocate(size_t bytes, cudaStream_t stream) {
    MLF_ASSERT(ptr_ == nullptr);
    stream_ = stream;
    MLF_CUDA_TRY(cudaMallocAsync(&ptr_, std::max<size_t>(bytes, 1), stream_));
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

// Where a chunk of nv variants sits in a staging buffer / device slot: packed | center | scale.
struct ChunkLayout {
  size_t center = 0, scale = 0, bytes = 0;
  ChunkLayout(int64_t nv, int64_t packed_bytes) {
    center = AlignUp(static_cast<size_t>(nv) * static_cast<size_t>(packed_bytes));
    scale = center + AlignUp(static_cast<size_t>(nv) * sizeof(float));
    bytes = scale + static_cast<size_t>(nv) * sizeof(float);
  }
};

// z[v * n + s] = (code - center[v]) * scale[v] in float32, 0 for code 3 (missing), for the nv
// variants of the chunk: exactly ExpandGenotypeBlock's values. Grid: y over variants, x over samples.
__global__ void __launch_bounds__(kThreads)
    ExpandKernel(const uint8_t* __restrict__ packed, int64_t packed_bytes, int64_t n, int64_t nv,
                 const float* __restrict__ center, const float* __restrict__ scale, float* __restrict__ z) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t v = blockIdx.y; v < nv; v += gridDim.y) {
    const float c = center[v], sc = scale[v];
    const uint8_t* src = packed + v * packed_bytes;
    float* dst = z + v * n;
    for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < n; s += stride) {
      const unsigned code = (static_cast<unsigned>(src[s >> 2]) >> (2 * (s & 3))) & 3u;
      dst[s] = code == kGenotypeMissingCode ? 0.0f : __fmul_rn(__fsub_rn(static_cast<float>(code), c), sc);
    }
  }
}

// total[r][c] += scratch[r][c] and scratch[r][c] = 0 for c >= r (row-major n x n: the upper
// triangle, which is SSYRK's column-major lower one). Grid: y over rows, x over columns.
__global__ void __launch_bounds__(kThreads)
    FlushKernel(float* __restrict__ scratch, double* __restrict__ total, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t r = blockIdx.y; r < n; r += gridDim.y) {
    float* srow = scratch + r * n;
    double* trow = total + r * n;
    for (int64_t c = r + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < n; c += stride) {
      trow[c] += static_cast<double>(srow[c]);
      srow[c] = 0.0f;
    }
  }
}

// m[r][c] = m[c][r] for r > c (row-major n x n): the lower triangle from the upper one. Block
// (x = C, y = R) handles destination tile (R, C) with R >= C: it reads source tile (C, R), all
// upper-triangle entries (on the diagonal tile it reads before any of its own writes), coalesced,
// through shared memory, and writes the transposed tile, coalesced. No two blocks touch one entry.
__global__ void __launch_bounds__(kTile* kTileRows)
    MirrorKernel(double* __restrict__ m, int64_t n, int64_t tiles) {
  __shared__ double tile[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t rt = blockIdx.y; rt < tiles; rt += gridDim.y) {
    for (int64_t ct = blockIdx.x; ct <= rt; ct += gridDim.x) {
      for (int k = 0; k < kTile; k += kTileRows) {
        const int64_t row = ct * kTile + ty + k, col = rt * kTile + tx;
        if (row < n && col < n) tile[ty + k][tx] = m[row * n + col];
      }
      __syncthreads();
      for (int k = 0; k < kTile; k += kTileRows) {
        const int64_t row = rt * kTile + ty + k, col = ct * kTile + tx;
        if (row < n && col < n && row > col) m[row * n + col] = tile[tx][ty + k];
      }
      __syncthreads();
    }
  }
}

}  // namespace

namespace internal {

struct GrmGpuState {
  // One of the two alternating upload slots: pinned staging, its device copy, and their events.
  struct Slot {
    void* host = nullptr;
    DeviceAlloc dev;
    cudaEvent_t copied = nullptr, used = nullptr;
  };

  GrmGpuState(detail::CudaState& c, int64_t samples)
      : cuda(c), n(samples), packed_bytes(PackedBytes(samples)) {
    try {
      const size_t nn = static_cast<size_t>(n) * static_cast<size_t>(n);
      const ChunkLayout max_chunk(kGrmBlockVariants, packed_bytes);
      MLF_CUDA_TRY(cudaStreamCreateWithFlags(&copy, cudaStreamNonBlocking));
      for (Slot& s : slots) {
        MLF_CUDA_TRY(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
        MLF_CUDA_TRY(cudaEventCreateWithFlags(&s.used, cudaEventDisableTiming));
        MLF_CUDA_TRY(cudaHostAlloc(&s.host, max_chunk.bytes, cudaHostAllocDefault));
        s.dev.Allocate(max_chunk.bytes, cuda.stream);
      }
      total.Allocate(nn * sizeof(double), cuda.stream);
      scratch.Allocate(nn * sizeof(float), cuda.stream);
      z.Allocate(static_cast<size_t>(kGrmBlockVariants) * static_cast<size_t>(n) * sizeof(float),
                 cuda.stream);
      MLF_CUDA_TRY(cudaMemsetAsync(total.as<double>(), 0, nn * sizeof(double), cuda.stream));
      MLF_CUDA_TRY(cudaMemsetAsync(scratch.as<float>(), 0, nn * sizeof(float), cuda.stream));
      // The slots are allocated on the compute stream but written on the copy stream: make the
      // allocations (and the zeroing) complete before anything else runs.
      cuda.Synchronize();
    } catch (...) {
      Release();
      throw;
    }
  }
  ~GrmGpuState() { Release(); }
  GrmGpuState(const GrmGpuState&) = delete;
  GrmGpuState& operator=(const GrmGpuState&) = delete;

  // Errors ignored: called from the destructor. The device buffers (members) are freed after this,
  // stream-ordered on the compute stream, which is the last to touch them.
  void Release() {
    if (copy != nullptr) cudaStreamSynchronize(copy);
    cudaStreamSynchronize(cuda.stream);
    for (Slot& s : slots) {
      if (s.copied != nullptr) cudaEventDestroy(s.copied);
      if (s.used != nullptr) cudaEventDestroy(s.used);
      if (s.host != nullptr) cudaFreeHost(s.host);
      s.copied = s.used = nullptr;
      s.host = nullptr;
    }
    if (copy != nullptr) cudaStreamDestroy(copy);
    copy = nullptr;
  }

  detail::CudaState& cuda;
  const int64_t n;
  const int64_t packed_bytes;
  cudaStream_t copy = nullptr;  // uploads only
  Slot slots[2];
  int next = 0;
  DeviceAlloc total;    // n x n float64, row-major upper triangle accumulates
  DeviceAlloc scratch;  // n x n float32, same triangle; the other one stays 0
  DeviceAlloc z;        // kGrmBlockVariants x n float32: one expanded chunk
  int64_t pending = 0;  // variants in the scratch since the last flush
};

namespace {

void Flush(GrmGpuState* s) {
  if (s->pending == 0) return;
  const int64_t n = s->n;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(CeilDiv(n, kThreads), 64)),
                  static_cast<unsigned>(std::min(n, kMaxGridY)));
  FlushKernel<<<grid, kThreads, 0, s->cuda.stream>>>(s->scratch.as<float>(), s->total.as<double>(), n);
  MLF_CUDA_TRY_LAUNCH();
  s->pending = 0;
}

}  // namespace

void GrmGpuStateDeleter::operator()(GrmGpuState* s) const { delete s; }

GrmGpuState* GrmGpuCreate(detail::CudaState& cuda, int64_t samples) {
  MLF_ASSERT_MSG(samples >= 1 && samples <= INT_MAX, "GrmGpuCreate: {} samples outside [1, {}]", samples,
                 INT_MAX);
  const size_t n = static_cast<size_t>(samples);
  const size_t total_bytes = AlignUp(n * n * sizeof(double));
  const size_t scratch_bytes = AlignUp(n * n * sizeof(float));
  const size_t z_bytes = AlignUp(static_cast<size_t>(kGrmBlockVariants) * n * sizeof(float));
  const size_t slot_bytes = 2 * AlignUp(ChunkLayout(kGrmBlockVariants, PackedBytes(samples)).bytes);
  const size_t need = total_bytes + scratch_bytes + z_bytes + slot_bytes + kHeadroomBytes;
  size_t free_bytes = 0, device_bytes = 0;
  MLF_CUDA_TRY(cudaMemGetInfo(&free_bytes, &device_bytes));
  MLF_EXPECTS(
      need <= free_bytes,
      "the genetic relationship matrix of {} samples on the GPU needs {:.0f} MiB of device memory "
      "({} x {} float64 total {:.0f} MiB, float32 scratch {:.0f} MiB, expanded block of {} variants "
      "{:.0f} MiB, upload buffers {:.0f} MiB, plus {:.0f} MiB headroom) but only {:.0f} MiB of {:.0f} MiB "
      "are free: use a GPU with more memory, free it, or run on the CPU (--device cpu / a CPU instance)",
      samples, MiB(need), samples, samples, MiB(total_bytes), MiB(scratch_bytes), kGrmBlockVariants,
      MiB(z_bytes), MiB(slot_bytes), MiB(kHeadroomBytes), MiB(free_bytes), MiB(device_bytes));
  return new GrmGpuState(cuda, samples);
}

void GrmGpuAdd(GrmGpuState* s, const GenotypeBlockView& block) {
  MLF_ASSERT_MSG(block.samples == s->n, "a genotype block has {} samples, the GPU accumulator {}",
                 block.samples, s->n);
  MLF_ASSERT(block.variants >= 0);
  if (block.variants == 0) return;
  MLF_ASSERT(block.packed != nullptr && block.center != nullptr && block.scale != nullptr);
  const int64_t n = s->n, pb = s->packed_bytes;
  cudaStream_t st = s->cuda.stream;
  cublasHandle_t h = s->cuda.cublas;
  const float one = 1.0f;
  for (int64_t v0 = 0, nv = 0; v0 < block.variants; v0 += nv) {
    // A chunk never carries the scratch past kGrmFlushVariants variants, so float32 sums stay
    // within the header's bound whatever the block sizes (blocks of kGrmBlockVariants divide it).
    nv = std::min({kGrmBlockVariants, block.variants - v0, kGrmFlushVariants - s->pending});
    const ChunkLayout lay(nv, pb);
    GrmGpuState::Slot& slot = s->slots[s->next];
    s->next ^= 1;

    // Stage: the staging buffer is free once its previous upload is done.
    MLF_CUDA_TRY(cudaEventSynchronize(slot.copied));
    auto* hb = static_cast<unsigned char*>(slot.host);
    std::memcpy(hb, block.packed + v0 * pb, static_cast<size_t>(nv * pb));
    std::memcpy(hb + lay.center, block.center + v0, static_cast<size_t>(nv) * sizeof(float));
    std::memcpy(hb + lay.scale, block.scale + v0, static_cast<size_t>(nv) * sizeof(float));

    // Upload once the compute that last read this device slot is done.
    unsigned char* dev = slot.dev.as<unsigned char>();
    MLF_CUDA_TRY(cudaStreamWaitEvent(s->copy, slot.used, 0));
    MLF_CUDA_TRY(cudaMemcpyAsync(dev, hb, lay.bytes, cudaMemcpyHostToDevice, s->copy));
    MLF_CUDA_TRY(cudaEventRecord(slot.copied, s->copy));
    MLF_CUDA_TRY(cudaStreamWaitEvent(st, slot.copied, 0));

    // Expand into Z (stream-ordered: waits for the previous chunk's SSYRK), then Z^T Z.
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>(CeilDiv(n, kThreads), 1024)),
                    static_cast<unsigned>(std::min(nv, kMaxGridY)));
    ExpandKernel<<<grid, kThreads, 0, st>>>(dev, pb, n, nv, reinterpret_cast<const float*>(dev + lay.center),
                                            reinterpret_cast<const float*>(dev + lay.scale),
                                            s->z.as<float>());
    MLF_CUDA_TRY_LAUNCH();
    MLF_CUBLAS_TRY(cublasSsyrk(h, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, static_cast<int>(n),
                               static_cast<int>(nv), &one, s->z.as<float>(), static_cast<int>(n), &one,
                               s->scratch.as<float>(), static_cast<int>(n)));
    MLF_CUDA_TRY(cudaEventRecord(slot.used, st));

    s->pending += nv;
    if (s->pending == kGrmFlushVariants) Flush(s);
  }
}

void GrmGpuResult(GrmGpuState* s, std::vector<double>* total) {
  const int64_t n = s->n;
  cudaStream_t st = s->cuda.stream;
  Flush(s);
  const int64_t tiles = CeilDiv(n, kTile);
  const dim3 grid(static_cast<unsigned>(std::min(tiles, int64_t{1024})),
                  static_cast<unsigned>(std::min(tiles, kMaxGridY)));
  MirrorKernel<<<grid, dim3(kTile, kTileRows), 0, st>>>(s->total.as<double>(), n, tiles);
  MLF_CUDA_TRY_LAUNCH();
  const size_t nn = static_cast<size_t>(n) * static_cast<size_t>(n);
  total->resize(nn);
  Download(total->data(), s->total.as<double>(), nn, st);
  s->cuda.Synchronize();  // the one host sync of the accumulation
}

}  // namespace internal
}  // namespace mlforge::kernels
