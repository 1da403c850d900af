// One Resources object per process, passed explicitly (DESIGN.md "One Resources object").
// CUDA parts are created lazily so a CPU run never touches CUDA.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/stop.h"

namespace mlforge {

enum class Device { kCpu, kGpu };
enum class DeviceRequest { kAuto, kCpu, kGpu };

// Parses "auto" | "cpu" | "gpu" (case-insensitive); throws UserError naming `what` otherwise.
DeviceRequest ParseDeviceRequest(const std::string& s, const std::string& what = "--device");
const char* DeviceName(Device d);

struct GpuInfo {
  int index = 0;
  std::string name;
  int sm_major = 0;
  int sm_minor = 0;
  size_t total_memory = 0;
};

// What the process can see at run time. available is false with `reason` filled when the build
// has no CUDA, or the driver/runtime reports no device.
struct GpuReport {
  bool built_with_cuda = false;
  int runtime_version = 0;  // e.g. 13000
  int driver_version = 0;
  bool available = false;
  std::string reason;
  std::vector<GpuInfo> gpus;
};
GpuReport DetectGpus();

// Build options, for `mlforge info` and the training log.
struct BuildInfo {
  std::string version;
  bool cuda = false;
  bool nccl = false;
  bool gloo = false;
  std::string cuda_archs;
  std::string compiler;
  std::string build_type;
};
BuildInfo GetBuildInfo();

namespace detail {
struct CudaState;  // stream, library handles, workspace: defined in the CUDA translation units
}

class Resources {
 public:
  // Resolves the device request (gpu without one is a UserError, never a silent fallback) and
  // logs the choice (at info level, or debug with log_choice = false: the server makes one per
  // worker). threads <= 0 means all hardware threads. comm must not be null
  // (comm::MakeSingleProcess() for one process).
  Resources(DeviceRequest device, int threads, uint64_t seed, std::unique_ptr<comm::Communicator> comm,
            StopToken stop = StopToken::Never(), bool log_choice = true);
  ~Resources();
  Resources(const Resources&) = delete;
  Resources& operator=(const Resources&) = delete;

  Device device() const { return device_; }
  int threads() const { return threads_; }
  uint64_t seed() const { return seed_; }
  comm::Communicator& comm() { return *comm_; }
  const StopToken& stop() const { return stop_; }
  // Lazily created on first use; only valid when device() == kGpu and the build has CUDA.
  detail::CudaState& cuda();

 private:
  Device device_;
  int threads_;
  uint64_t seed_;
  std::unique_ptr<comm::Communicator> comm_;
  StopToken stop_;
  std::unique_ptr<detail::CudaState> cuda_;
};

}  // namespace mlforge
