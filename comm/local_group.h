// An in-process communicator group: N ranks as threads of one process, sharing memory. Used by
// tests to assert that a distributed run gives the single-process result without sockets, and
// to exercise the failure paths (a rank that never arrives) deterministically.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "comm/communicator.h"

namespace mlforge::comm {

// Returns n communicators; element r has rank r. Each must be used by one thread, and every rank
// must call the same collectives in the same order with the same sizes (and root), as with any
// backend; a mismatch throws on every rank that took part.
//
// Every collective has a deadline: a rank that waits longer than `timeout` for the others marks
// the group broken and throws, naming the ranks that did not arrive; every other waiting rank,
// and any later call on the group, throws the same message. A broken group stays broken.
//
// Results are identical on every rank (reductions add contributions in rank order).
std::vector<std::unique_ptr<Communicator>> MakeLocalGroup(
    int n, std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace mlforge::comm
