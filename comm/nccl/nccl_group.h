// The NCCL backend (DESIGN.md "Distribution"): sums of DEVICE buffers across one GPU per rank.
//
// Only in builds with NCCL (MLFORGE_HAVE_NCCL; library mlforge_nccl). The group itself comes from
// the host communicator the run already joined (Gloo over the rendezvous store, or the single
// process one): rank 0 draws NCCL's unique id and Broadcasts it over that communicator, so NCCL
// needs no launcher or store of its own and its ranks are the host group's ranks.
//
// Never a hang: NCCL runs non-blocking (ncclConfig_t::blocking = 0). Initialisation and every
// all-reduce are waited for by polling, against the deadlines given at creation (the group's
// rendezvous and collective deadlines); NCCL's asynchronous errors are checked while waiting. A missed deadline
// or an NCCL error aborts the communicator (ncclCommAbort: kernels in flight stop) and throws
// PeerFailure naming the operation, its size and the deadline; every later call throws the same.
// After an abort the CUDA context may hold work that can no longer complete: the caller is
// expected to fail the run, as after any PeerFailure.
#pragma once

#include "core/build_config.h"

#if !MLFORGE_HAVE_NCCL
#error "comm/nccl/nccl_group.h is only for builds with NCCL (configure with -DMLFORGE_USE_NCCL=ON)"
#endif

#include <cuda_runtime_api.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "comm/communicator.h"
#include "comm/device_communicator.h"

namespace mlforge::comm {

// Joins `host`'s group on CUDA device `device` (one per rank). Collective over `host`: every rank
// must call it. `init_deadline` bounds the initialisation (GroupSpec::rendezvous_timeout),
// `collective_deadline` each all-reduce (GroupSpec::collective_timeout). Throws PeerFailure when
// either passes, CudaError when NCCL refuses (e.g. two ranks on one GPU).
std::unique_ptr<DeviceCommunicator> MakeNcclGroup(Communicator& host, int device,
                                                  std::chrono::milliseconds init_deadline,
                                                  std::chrono::milliseconds collective_deadline);

}  // namespace mlforge::comm
