#include "core/resources.h"

#include <cstdlib>

#include <spdlog/spdlog.h>

#include <Eigen/Core>
#include <algorithm>
#include <cctype>
#include <exception>
#include <thread>

#include "core/build_config.h"
#include "core/error.h"

#if MLFORGE_HAVE_CUDA
#include "core/cuda_state.h"
#else
namespace mlforge::detail {
// Never instantiated without CUDA; defined so that unique_ptr<CudaState> can be destroyed.
struct CudaState {};
}  // namespace mlforge::detail
#endif

namespace mlforge {

DeviceRequest ParseDeviceRequest(const std::string& s, const std::string& what) {
  std::string v(s);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  if (v == "auto") return DeviceRequest::kAuto;
  if (v == "cpu") return DeviceRequest::kCpu;
  if (v == "gpu") return DeviceRequest::kGpu;
  MLF_FAIL("{}: expected one of auto, cpu, gpu but got '{}'", what, s);
}

const char* DeviceName(Device d) {
  switch (d) {
    case Device::kCpu:
      return "cpu";
    case Device::kGpu:
      return "gpu";
  }
  return "unknown";
}

#if MLFORGE_HAVE_CUDA
namespace {

std::string CudaVersionString(int v) {
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}

std::string Describe(const char* call, cudaError_t err) {
  // A failed query leaves the error as the runtime's "last error"; clear it so that it does not
  // surface later from an unrelated MLF_CUDA_TRY.
  (void)cudaGetLastError();
  return std::string(call) + ": " + cudaGetErrorString(err);
}

// The runtime (libcudart, linked in) loads the driver (libcuda.so) lazily. Without a driver the
// runtime reports errors instead of crashing (checked on a host with the toolkit and no driver:
// cudaDriverGetVersion gives 0 and cudaGetDeviceCount cudaErrorInsufficientDriver), so each query
// below turns its failure into `reason` text.
void DetectWithCuda(GpuReport& r) {
  cudaError_t err = cudaRuntimeGetVersion(&r.runtime_version);
  if (err != cudaSuccess) {
    r.reason = Describe("cudaRuntimeGetVersion", err);
    return;
  }
  err = cudaDriverGetVersion(&r.driver_version);
  if (err != cudaSuccess) {
    r.reason = Describe("cudaDriverGetVersion", err);
    return;
  }
  int count = 0;
  err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    r.reason = Describe("cudaGetDeviceCount", err);
    if (r.driver_version == 0) {
      r.reason += " (no NVIDIA driver found: libcuda.so is absent or failed to load)";
    } else if (r.driver_version < r.runtime_version) {
      r.reason += " (driver supports CUDA " + CudaVersionString(r.driver_version) + ", this build needs " +
                  CudaVersionString(r.runtime_version) + ")";
    }
    return;
  }
  if (count <= 0) {
    r.reason = "cudaGetDeviceCount: no CUDA-capable device is detected";
    return;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    err = cudaGetDeviceProperties(&prop, i);
    if (err != cudaSuccess) {
      r.reason = Describe(("cudaGetDeviceProperties(" + std::to_string(i) + ")").c_str(), err);
      continue;  // another device may still be usable
    }
    GpuInfo g;
    g.index = i;
    g.name = prop.name;
    g.sm_major = prop.major;
    g.sm_minor = prop.minor;
    g.total_memory = prop.totalGlobalMem;
    r.gpus.push_back(std::move(g));
  }
  r.available = !r.gpus.empty();
  if (r.available) r.reason.clear();
}

}  // namespace
#endif

GpuReport DetectGpus() {
  GpuReport r;
  r.built_with_cuda = MLFORGE_HAVE_CUDA != 0;
#if MLFORGE_HAVE_CUDA
  // Documented never to throw: it is called from `mlforge info`, test skips and the device
  // choice, all of which must work on a machine without a GPU.
  try {
    DetectWithCuda(r);
  } catch (const std::exception& e) {
    r.available = false;
    r.gpus.clear();
    r.reason = std::string("GPU detection failed: ") + e.what();
  } catch (...) {
    r.available = false;
    r.gpus.clear();
    r.reason = "GPU detection failed with an unknown exception";
  }
#else
  r.reason = "built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)";
#endif
  return r;
}

BuildInfo GetBuildInfo() {
  BuildInfo b;
  b.version = MLFORGE_VERSION;
  b.cuda = MLFORGE_HAVE_CUDA != 0;
  b.nccl = MLFORGE_HAVE_NCCL != 0;
  b.gloo = MLFORGE_HAVE_GLOO != 0;
  b.cuda_archs = MLFORGE_CUDA_ARCHS;
  b.compiler = MLFORGE_CXX_COMPILER;
  b.build_type = MLFORGE_BUILD_TYPE;
  return b;
}

namespace {

int ResolveThreads(int threads) {
  if (threads > 0) return threads;
  // hardware_concurrency() may return 0 when it cannot tell.
  return std::max(1u, std::thread::hardware_concurrency());
}

std::string DescribeGpu(const GpuInfo& g) {
  return fmt::format("{} (index {}, sm_{}{}, {:.1f} GiB)", g.name, g.index, g.sm_major, g.sm_minor,
                     static_cast<double>(g.total_memory) / (1024.0 * 1024.0 * 1024.0));
}

}  // namespace

Resources::Resources(DeviceRequest device, int threads, uint64_t seed,
                     std::unique_ptr<comm::Communicator> comm, StopToken stop, bool log_choice)
    : device_(Device::kCpu),
      threads_(ResolveThreads(threads)),
      seed_(seed),
      comm_(std::move(comm)),
      stop_(stop) {
  MLF_ASSERT_MSG(comm_ != nullptr,
                 "Resources needs a communicator (comm::MakeSingleProcess() for one process)");
  const auto level = log_choice ? spdlog::level::info : spdlog::level::debug;
  switch (device) {
    case DeviceRequest::kCpu:
      // A forced CPU run never touches CUDA, not even for detection.
      spdlog::log(level, "device: cpu (requested cpu), {} threads", threads_);
      break;
    case DeviceRequest::kAuto: {
      GpuReport r = DetectGpus();
      if (r.available) {
        device_ = Device::kGpu;
        spdlog::log(level, "device: gpu (requested auto): {}", DescribeGpu(r.gpus.front()));
      } else {
        spdlog::log(level, "device: cpu (requested auto; no usable GPU: {}), {} threads", r.reason, threads_);
      }
      break;
    }
    case DeviceRequest::kGpu: {
      GpuReport r = DetectGpus();
      // Never a silent fallback: the user asked for a GPU and would otherwise get a slow run.
      MLF_EXPECTS(r.available, "--device gpu requested but no usable GPU: {}", r.reason);
      device_ = Device::kGpu;
      spdlog::log(level, "device: gpu (requested gpu): {}", DescribeGpu(r.gpus.front()));
      break;
    }
  }
  // Eigen's own parallel products (only when built with OpenMP) follow the same thread budget.
  Eigen::setNbThreads(threads_);
}

Resources::~Resources() = default;

detail::CudaState& Resources::cuda() {
#if MLFORGE_HAVE_CUDA
  MLF_ASSERT_MSG(device_ == Device::kGpu, "Resources::cuda() called on a {} run", DeviceName(device_));
  // One GPU per process: LOCAL_RANK (set by `mlforge launch`, torchrun and similar launchers)
  // picks it among the visible ones, so the ranks of a multi-GPU host use different GPUs;
  // without it, device 0 of what CUDA_VISIBLE_DEVICES shows.
  if (!cuda_) {
    int index = 0;
    const char* local = std::getenv("LOCAL_RANK");
    if (local != nullptr && *local != '\0') {
      const int count = static_cast<int>(DetectGpus().gpus.size());
      if (count > 0) index = std::max(0, std::atoi(local)) % count;
    }
    cuda_ = std::make_unique<detail::CudaState>(index);
  }
  return *cuda_;
#else
  MLF_FAIL("GPU requested but mlforge was built without CUDA (configure with -DMLFORGE_USE_CUDA=ON)");
#endif
}

}  // namespace mlforge
