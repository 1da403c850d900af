// Where a multi-process group comes from, and the communicator that joins it.
//
// In this order (DESIGN.md "Distribution"):
//   1. SageMaker's resourceconfig.json with several hosts: rank = index of current_host in hosts,
//      master = hosts[0] (resolved by DNS), port = $MASTER_PORT or 29500 (`container train`).
//   2. The variables torchrun, Kubeflow's PyTorchJob, `mlforge launch` and similar launchers set:
//      RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK, LOCAL_WORLD_SIZE (`mlforge train`).
//   3. Otherwise one process.
// Rank 0 serves the rendezvous store (comm/tcp_store.h) at the master address; the others connect
// to it, publish their numeric transport addresses and build Gloo's full TCP mesh.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/tcp_store.h"

namespace mlforge::comm {

constexpr uint16_t kDefaultMasterPort = 29500;
// Every collective's deadline when neither MLFORGE_COLLECTIVE_TIMEOUT_S nor an option sets one:
// long enough for honest imbalance (a rank with a larger shard finishing its pass), as torch's
// 30-minute default; a dead rank is noticed at once (its connections close), a stopped one at
// the deadline.
constexpr int kDefaultCollectiveTimeoutS = 1800;
// How long ranks wait for each other to start (instances boot at different times).
constexpr int kDefaultRendezvousTimeoutS = 600;

struct GroupSpec {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";  // a host name or a numeric address
  uint16_t master_port = kDefaultMasterPort;
  std::vector<std::string> hosts;  // a name per rank, for messages and metric lines
  std::string source;              // where this came from, for the log
  std::chrono::milliseconds collective_timeout{std::chrono::seconds(kDefaultCollectiveTimeoutS)};
  std::chrono::milliseconds rendezvous_timeout{std::chrono::seconds(kDefaultRendezvousTimeoutS)};
  // How long a rank may stay inside one collective after the store shows another rank dead
  // (without having said it finished) or failed, before its watchdog ends it with the diagnosis
  // it made when the failure showed (OnStuckCollective). The transport normally fails the
  // collective within a second of that, so this is only the backstop.
  std::chrono::milliseconds watchdog_grace{std::chrono::seconds(5)};
  // The bounds of the store rank 0 serves (its `ranks` is set to world_size).
  StoreLimits store_limits;
};

// RANK/WORLD_SIZE/... from the environment; nullopt when WORLD_SIZE is unset. UserError naming
// the variable when one is malformed or missing (RANK without WORLD_SIZE, RANK >= WORLD_SIZE...).
// Hosts are named algo-1..algo-N as SageMaker names them.
std::optional<GroupSpec> GroupFromEnvironment();

// SageMaker's multi-instance contract: the ordered host list and this host's name.
GroupSpec GroupFromHosts(const std::vector<std::string>& hosts, const std::string& current_host);

// MLFORGE_COLLECTIVE_TIMEOUT_S and MLFORGE_RENDEZVOUS_TIMEOUT_S (seconds, > 0), else the defaults.
void ApplyTimeoutsFromEnvironment(GroupSpec& spec);

// A host name or address to a numeric address (IPv4 preferred), retrying DNS until `timeout`
// (SageMaker's algo-N names appear as instances start). UserError when it never resolves.
std::string ResolveHost(const std::string& host, std::chrono::milliseconds timeout);

// World size 1: the single-process communicator. More: joins the group through Gloo (TCP),
// blocking until every rank has arrived or the rendezvous deadline passed. UserError when this
// build has no Gloo.
std::unique_ptr<Communicator> JoinGroup(const GroupSpec& spec);

// The Gloo backend itself (comm/gloo_group.cc); JoinGroup calls it for world sizes above 1.
std::unique_ptr<Communicator> MakeGlooGroup(const GroupSpec& spec);

}  // namespace mlforge::comm
