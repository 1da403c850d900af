// Device communicators: the host-staged one, and MakeDeviceGroup's choice (device_communicator.h).
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "comm/device_communicator.h"
#include "core/build_config.h"
#include "core/cuda_state.h"
#include "core/error.h"

#if MLFORGE_HAVE_NCCL
#include "comm/nccl/nccl_group.h"
#endif

namespace mlforge::comm {
namespace {

class HostStagedGroup final : public DeviceCommunicator {
 public:
  explicit HostStagedGroup(Communicator& host) : host_(host) {}
  int rank() const override { return host_.rank(); }
  int world_size() const override { return host_.world_size(); }
  std::string backend() const override { return "host-staged " + host_.backend(); }
  void AllReduceSum(float* data, size_t count, cudaStream_t stream) override { Run(data, count, stream, &f32_); }
  void AllReduceSum(double* data, size_t count, cudaStream_t stream) override { Run(data, count, stream, &f64_); }

 private:
  template <typename T>
  void Run(T* data, size_t count, cudaStream_t stream, std::vector<T>* staging) {
    if (count == 0) return;
    staging->resize(count);
    MLF_CUDA_TRY(cudaMemcpyAsync(staging->data(), data, count * sizeof(T), cudaMemcpyDeviceToHost, stream));
    MLF_CUDA_TRY(cudaStreamSynchronize(stream));
    host_.AllReduceSum(staging->data(), count);
    MLF_CUDA_TRY(cudaMemcpyAsync(data, staging->data(), count * sizeof(T), cudaMemcpyHostToDevice, stream));
    MLF_CUDA_TRY(cudaStreamSynchronize(stream));  // the staging vector is reused by the next call
  }

  Communicator& host_;
  std::vector<float> f32_;
  std::vector<double> f64_;
};

// Whether every rank has a GPU of its own: the ranks' (host, device) pairs are all different.
// Collective over `host`; it also checks that every rank has the same MLFORGE_DEVICE_REDUCE
// (`choice`): ranks that chose differently would open different communicators, and wait for each
// other until the deadline.
bool EveryRankHasItsOwnGpu(Communicator& host, int device, const std::string& choice) {
  constexpr size_t kName = 256, kChoice = 8;
  std::vector<char> mine(kName + sizeof(int) + kChoice, 0);
  const char* h = std::getenv("HOSTNAME");
  std::string name = h != nullptr ? h : "";
  if (name.empty()) {
    char buf[kName] = {};
    if (gethostname(buf, sizeof(buf) - 1) == 0) name = buf;
  }
  name.resize(std::min(name.size(), kName - 1));
  std::copy(name.begin(), name.end(), mine.begin());
  std::memcpy(mine.data() + kName, &device, sizeof(int));
  std::copy_n(choice.begin(), std::min(choice.size(), kChoice - 1), mine.begin() + kName + sizeof(int));
  std::vector<char> all(mine.size() * static_cast<size_t>(host.world_size()));
  host.AllGather(mine.data(), mine.size(), all.data());
  const auto choice_of = [&](int r) { return std::string(all.data() + r * mine.size() + kName + sizeof(int)); };
  for (int r = 0; r < host.world_size(); ++r) {
    MLF_EXPECTS(choice_of(r) == choice,
                "MLFORGE_DEVICE_REDUCE differs between ranks: '{}' on rank {}, '{}' on rank {}; set it alike on every "
                "host (or unset it everywhere)",
                choice, host.rank(), choice_of(r), r);
  }
  for (int a = 0; a < host.world_size(); ++a) {
    for (int b = a + 1; b < host.world_size(); ++b) {
      if (std::memcmp(all.data() + a * mine.size(), all.data() + b * mine.size(), mine.size()) == 0) return false;
    }
  }
  return true;
}

}  // namespace

std::unique_ptr<DeviceCommunicator> MakeHostStagedDeviceGroup(Communicator& host) {
  return std::make_unique<HostStagedGroup>(host);
}

std::unique_ptr<DeviceCommunicator> MakeDeviceGroup(Communicator& host, int device) {
  const char* env = std::getenv("MLFORGE_DEVICE_REDUCE");
  const std::string choice = env != nullptr ? env : "";
  MLF_EXPECTS(choice.empty() || choice == "host" || choice == "nccl",
              "MLFORGE_DEVICE_REDUCE is '{}': expected 'nccl' or 'host' (or unset it: NCCL when every rank has "
              "a GPU of its own)",
              choice);
#if MLFORGE_HAVE_NCCL
  // Every rank takes the same branch: the choice is the environment's (checked to be the same on
  // every rank) or the all-gathered devices'. The all-gather runs whatever the choice, so that
  // every rank takes the same collectives.
  const bool distinct = EveryRankHasItsOwnGpu(host, device, choice);
  const bool own = choice.empty() ? distinct : choice == "nccl";
  if (own) {
    const std::chrono::milliseconds deadline = host.collective_timeout();
    try {
      return MakeNcclGroup(host, device, deadline, deadline);
    } catch (const CudaError& e) {
      throw CudaError(std::string(e.what()) +
                      "; MLFORGE_DEVICE_REDUCE=host sums the GPUs' buffers through the host instead of NCCL");
    }
  }
  spdlog::info("device sums staged through the host ({}): {}", host.backend(),
               choice == "host" ? "MLFORGE_DEVICE_REDUCE=host" : "ranks share a GPU");
#else
  (void)device;
  MLF_EXPECTS(choice != "nccl",
              "MLFORGE_DEVICE_REDUCE=nccl but this build has no NCCL (configure with -DMLFORGE_USE_NCCL=ON)");
#endif
  return MakeHostStagedDeviceGroup(host);
}

}  // namespace mlforge::comm
