// Sums of DEVICE buffers across the ranks of a group, one GPU per rank (CUDA builds only). Two
// implementations:
//  - NCCL (comm/nccl/nccl_group.h, builds with NCCL): the buffers never leave the GPUs;
//  - host-staged (MakeHostStagedDeviceGroup, here): each buffer is copied to the host, summed over
//    the group's host communicator (Gloo), and copied back. For builds without NCCL and for ranks
//    that share a GPU (NCCL refuses two ranks on one device).
// MakeDeviceGroup picks one for a training run: NCCL when the build has it and every rank has a
// GPU of its own, else host-staged; MLFORGE_DEVICE_REDUCE=host or nccl forces the choice (nccl is
// a UserError without NCCL). Creating either is a collective over the host communicator.
#pragma once

#include "core/build_config.h"

#if !MLFORGE_HAVE_CUDA
#error "comm/device_communicator.h is only for CUDA builds"
#endif

#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <string>

#include "comm/communicator.h"

namespace mlforge::comm {

class DeviceCommunicator {
 public:
  virtual ~DeviceCommunicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // "nccl <version>" or "host-staged <host backend>".
  virtual std::string backend() const = 0;
  // In-place element-wise sums of `count` elements of device memory on every rank, ordered after
  // the work already queued on `stream`. Returns when the result is in `data`.
  virtual void AllReduceSum(float* data, size_t count, cudaStream_t stream) = 0;
  virtual void AllReduceSum(double* data, size_t count, cudaStream_t stream) = 0;
};

// Device sums through `host` (which must outlive the result): copy down, host AllReduceSum, copy up.
std::unique_ptr<DeviceCommunicator> MakeHostStagedDeviceGroup(Communicator& host);

// The device communicator for a run whose ranks each use CUDA device `device` (see the header
// comment). Collective over `host`. Only called with a GPU: `device` must be usable.
std::unique_ptr<DeviceCommunicator> MakeDeviceGroup(Communicator& host, int device);

}  // namespace mlforge::comm
