// NCCL backend: see nccl_group.h.
#include "comm/nccl/nccl_group.h"

#include <nccl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "core/cuda_state.h"
#include "core/error.h"

namespace mlforge::comm {
namespace {

using Clock = std::chrono::steady_clock;

std::string NcclWhy(ncclResult_t r, ncclComm_t comm) {
  std::string why = std::string(ncclGetErrorString(r));
  const char* last = comm != nullptr ? ncclGetLastError(comm) : ncclGetLastError(nullptr);
  if (last != nullptr && *last != '\0') why += std::string(" (") + last + ")";
  return why;
}

std::string Seconds(std::chrono::milliseconds d) { return fmt::format("{:g}", d.count() / 1000.0); }

class NcclGroup final : public DeviceCommunicator {
 public:
  NcclGroup(Communicator& host, int device, std::chrono::milliseconds init_deadline,
            std::chrono::milliseconds collective_deadline)
      : rank_(host.rank()), world_(host.world_size()), device_(device), deadline_(collective_deadline) {
    int version = 0;
    ncclGetVersion(&version);
    version_ = fmt::format("{}.{}.{}", version / 10000, version / 100 % 100, version % 100);
    ncclUniqueId id{};
    if (rank_ == 0) {
      const ncclResult_t r = ncclGetUniqueId(&id);
      if (r != ncclSuccess) throw CudaError("NCCL: ncclGetUniqueId failed: " + NcclWhy(r, nullptr));
    }
    host.Broadcast(&id, sizeof(id), 0);  // the unique id travels over the group's own channel
    MLF_CUDA_TRY(cudaSetDevice(device_));
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;  // every wait below is ours, with a deadline
    const ncclResult_t r = ncclCommInitRankConfig(&comm_, world_, id, rank_, &config);
    if (r != ncclSuccess && r != ncclInProgress) {
      const std::string why = NcclWhy(r, comm_);
      if (comm_ != nullptr) ncclCommAbort(comm_);
      comm_ = nullptr;
      throw CudaError(fmt::format("NCCL: rank {} of {} could not join on GPU {}: {}", rank_, world_, device_, why));
    }
    WaitReady("initialisation", Clock::now() + init_deadline, init_deadline);
    spdlog::info("NCCL {}: rank {} of {} on GPU {}", version_, rank_, world_, device_);
  }

  ~NcclGroup() override {
    if (comm_ != nullptr) {
      // Destroying a communicator with work in flight would block: abort is bounded.
      ncclCommAbort(comm_);
    }
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string backend() const override { return "nccl " + version_; }

  void AllReduceSum(float* data, size_t count, cudaStream_t stream) override {
    AllReduce(data, count, ncclFloat32, "float32", stream);
  }
  void AllReduceSum(double* data, size_t count, cudaStream_t stream) override {
    AllReduce(data, count, ncclFloat64, "float64", stream);
  }

 private:
  // Polls until NCCL has finished the last non-blocking call on the communicator.
  void WaitReady(const char* what, Clock::time_point until, std::chrono::milliseconds deadline) {
    auto pause = std::chrono::microseconds(20);
    while (true) {
      ncclResult_t state = ncclSuccess;
      const ncclResult_t r = ncclCommGetAsyncError(comm_, &state);
      if (r != ncclSuccess) Fail(fmt::format("NCCL {} failed: {}", what, NcclWhy(r, comm_)));
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) Fail(fmt::format("NCCL {} failed: {}", what, NcclWhy(state, comm_)));
      if (Clock::now() > until) {
        Fail(fmt::format("NCCL {} did not finish within the {} s deadline (a rank is missing, stopped, hung or "
                         "unreachable); the NCCL communicator was aborted",
                         what, Seconds(deadline)));
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
  }

  void AllReduce(void* data, size_t count, ncclDataType_t type, const char* type_name, cudaStream_t stream) {
    if (broken_) throw PeerFailure(FailureKind::kAlgorithm, broken_message_);
    if (count == 0) return;
    const Clock::time_point until = Clock::now() + deadline_;
    const std::string what = fmt::format("all-reduce of {} {} values", count, type_name);
    const ncclResult_t r = ncclAllReduce(data, data, count, type, ncclSum, comm_, stream);
    if (r != ncclSuccess && r != ncclInProgress) Fail(fmt::format("NCCL {} failed: {}", what, NcclWhy(r, comm_)));
    WaitReady(what.c_str(), until, deadline_);  // the enqueue itself may be in progress
    cudaEvent_t done = nullptr;
    MLF_CUDA_TRY(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    struct EventGuard {
      cudaEvent_t e;
      ~EventGuard() { cudaEventDestroy(e); }
    } guard{done};
    MLF_CUDA_TRY(cudaEventRecord(done, stream));
    auto pause = std::chrono::microseconds(5);
    while (true) {
      const cudaError_t q = cudaEventQuery(done);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) MLF_CUDA_TRY(q);
      ncclResult_t state = ncclSuccess;
      ncclCommGetAsyncError(comm_, &state);
      if (state != ncclSuccess && state != ncclInProgress) {
        Fail(fmt::format("NCCL {} failed: {}", what, NcclWhy(state, comm_)));
      }
      if (Clock::now() > until) {
        Fail(fmt::format("NCCL {} did not complete within the {} s deadline (a rank stopped, hung or lost its "
                         "network); the NCCL communicator was aborted",
                         what, Seconds(deadline_)));
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
  }

  [[noreturn]] void Fail(const std::string& message) {
    broken_ = true;
    broken_message_ = fmt::format("rank {} (GPU {}): {}", rank_, device_, message);
    if (comm_ != nullptr) {
      // ncclCommAbort returns only once the work queued on the communicator's streams has drained:
      // behind a stream that never moves (seen on an H200 with a held stream: 3 s past the
      // deadline) it would turn the deadline into a hang. It runs on its own thread; the caller
      // gets PeerFailure now and fails the run.
      std::thread([c = comm_] { ncclCommAbort(c); }).detach();
      comm_ = nullptr;
    }
    spdlog::error("{}", broken_message_);
    throw PeerFailure(FailureKind::kAlgorithm, broken_message_);
  }

  int rank_, world_, device_;
  std::chrono::milliseconds deadline_;
  std::string version_;
  ncclComm_t comm_ = nullptr;
  bool broken_ = false;
  std::string broken_message_;
};

}  // namespace

std::unique_ptr<DeviceCommunicator> MakeNcclGroup(Communicator& host, int device,
                                                  std::chrono::milliseconds init_deadline,
                                                  std::chrono::milliseconds collective_deadline) {
  return std::make_unique<NcclGroup>(host, device, init_deadline, collective_deadline);
}

}  // namespace mlforge::comm
