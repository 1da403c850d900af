// The NCCL backend (comm/nccl/nccl_group.h) at world size 1 on one GPU: initialisation with the
// unique id passed over the host communicator, exact all-reduces of device buffers from 1 value to
// 100 MB (a sum over one rank is the identity, bit for bit), and a collective that cannot finish
// (its stream is held by a host callback for 3 s) failing at a 0.3 s deadline with PeerFailure,
// the communicator aborted and later calls refused. The last runs in a child process (a gtest death
// test re-executing this binary): after an abort, work queued behind it may fault when the stream
// moves on, which must not touch the other tests' CUDA context.
// Skips with the reason without a GPU or without NCCL in the build.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "core/build_config.h"
#include "tests/testutil.h"

#if MLFORGE_HAVE_NCCL
#include <cuda_runtime_api.h>

#include "comm/nccl/nccl_group.h"
#endif

namespace mlforge::comm {
namespace {

#if MLFORGE_HAVE_NCCL

#define MLF_TEST_CUDA(call) ASSERT_EQ((call), cudaSuccess) << #call

template <typename T>
void ExpectIdentityAllReduce(DeviceCommunicator& nccl, size_t count, cudaStream_t stream) {
  std::vector<T> host(count);
  uint64_t s = 0x9E3779B97F4A7C15ull ^ count;
  for (auto& v : host) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v = static_cast<T>(static_cast<int64_t>(s >> 33) - (int64_t{1} << 30)) / static_cast<T>(1 << 20);
  }
  T* d = nullptr;
  MLF_TEST_CUDA(cudaMalloc(reinterpret_cast<void**>(&d), count * sizeof(T)));
  MLF_TEST_CUDA(cudaMemcpy(d, host.data(), count * sizeof(T), cudaMemcpyHostToDevice));
  nccl.AllReduceSum(d, count, stream);
  std::vector<T> back(count);
  MLF_TEST_CUDA(cudaMemcpy(back.data(), d, count * sizeof(T), cudaMemcpyDeviceToHost));
  MLF_TEST_CUDA(cudaFree(d));
  size_t bad = 0;
  for (size_t i = 0; i < count; ++i) bad += back[i] != host[i];
  EXPECT_EQ(bad, 0u) << count << " values of " << sizeof(T) << " bytes";
}

TEST(NcclGroup, WorldSizeOneInitAndExactAllReduce) {
  MLF_REQUIRE_GPU();
  auto host = MakeSingleProcess();
  auto nccl = MakeNcclGroup(*host, 0, std::chrono::seconds(60), std::chrono::seconds(60));
  EXPECT_EQ(nccl->rank(), 0);
  EXPECT_EQ(nccl->world_size(), 1);
  EXPECT_EQ(nccl->backend().rfind("nccl ", 0), 0u) << nccl->backend();
  cudaStream_t stream = nullptr;
  MLF_TEST_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  for (size_t n : {size_t{1}, size_t{1000}, size_t{1} << 20, size_t{25} << 20}) {  // 25M floats: 100 MB
    ExpectIdentityAllReduce<float>(*nccl, n, stream);
  }
  ExpectIdentityAllReduce<double>(*nccl, 12345, stream);
  nccl->AllReduceSum(static_cast<float*>(nullptr), 0, stream);  // nothing to do: no NCCL call
  MLF_TEST_CUDA(cudaStreamDestroy(stream));
}

void HoldStream(void* seconds) {
  std::this_thread::sleep_for(std::chrono::duration<double>(*static_cast<double*>(seconds)));
}

// Runs in the death-test child: exits 0 only when the deadline path behaved.
void DeadlineChild() {
  auto host = MakeSingleProcess();
  auto nccl = MakeNcclGroup(*host, 0, std::chrono::seconds(60), std::chrono::milliseconds(300));
  cudaStream_t stream = nullptr;
  float* d = nullptr;
  if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess ||
      cudaMalloc(reinterpret_cast<void**>(&d), 1024 * sizeof(float)) != cudaSuccess) {
    std::_Exit(3);
  }
  static double hold = 3.0;
  if (cudaLaunchHostFunc(stream, HoldStream, &hold) != cudaSuccess) std::_Exit(4);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    nccl->AllReduceSum(d, 1024, stream);
    std::fprintf(stderr, "all-reduce returned behind a held stream\n");
    std::_Exit(5);
  } catch (const PeerFailure& e) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "first: %s (after %.2f s)\n", e.what(), s);
    if (s < 0.29 || s > 2.0) std::_Exit(6);
  }
  try {
    nccl->AllReduceSum(d, 1024, stream);
    std::_Exit(7);
  } catch (const PeerFailure& e) {
    std::fprintf(stderr, "later: %s\n", e.what());
  }
  std::_Exit(0);  // skip teardown: the held stream and the aborted work die with the process
}

TEST(NcclGroupDeathTest, MissedDeadlineAbortsAndFailsLaterCalls) {
  MLF_REQUIRE_GPU();
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process: CUDA does not survive fork
  EXPECT_EXIT(DeadlineChild(), ::testing::ExitedWithCode(0),
              "first: rank 0 \\(GPU 0\\): NCCL all-reduce of 1024 float32 values did not (complete|finish) within the "
              "0.3 s deadline.*aborted.*\n.*later: rank 0 \\(GPU 0\\): NCCL all-reduce");
}

#else

TEST(NcclGroup, WorldSizeOneInitAndExactAllReduce) { GTEST_SKIP() << "built without NCCL"; }

#endif

}  // namespace
}  // namespace mlforge::comm
