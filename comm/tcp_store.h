// The rendezvous store of a multi-process group (DESIGN.md "Distribution"): a small key-value
// service that rank 0 serves over TCP while the group lives. Ranks publish their transport
// addresses through it (Gloo's full mesh, NCCL's unique id), and, when something goes wrong, the
// reason a rank failed, so that every other rank can name the culprit.
//
// Debian's Gloo ships no TCP store (only file, hash and Redis stores), hence this one. It is not
// authenticated, like torch's TCPStore: the master port must be reachable only from the group's
// hosts (a private VPC, as SageMaker's instances are). It bounds what a stray client can do:
// keys <= 4 KiB, values <= 16 MiB, 256 MiB stored and 256 MiB of unparsed input and unsent
// replies in all (StoreLimits: the largest holder is closed), 4096 connections (when they are
// all taken, the connection idle longest that never said Hello gives way to the newcomer); a
// malformed request closes that connection and nothing else.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace mlforge::comm {

// The store's memory bounds. When a request would pass one, the largest holder loses its share
// and the request proceeds: for max_buffered, the connection with the most unread replies and
// unparsed input is closed; for max_stored, the owner of the most values (the connection that set
// them last, open or already closed) loses them, and its connection if open. When the requester
// itself holds the most, it is the one closed (and its values removed). Each value counts 256 bytes
// of bookkeeping besides its key and value. So a stray client that stores junk, leaves junk
// behind or never reads its replies loses its share, never a rank whose few bytes arrive while
// the store is full; a closed rank's own values (its failure reason) stay while they are not
// the largest.
//
// Connections: at most max_connections. When a new one arrives and they are all taken, the one
// whose last complete request (or, without any, whose arrival) is oldest gives way, if it never
// said Hello and has been idle for idle_eviction at least; when none qualifies, the newcomer is
// closed. So idle or half-sent connections (a stray client, a scanner, a client that opens
// thousands and waits) cannot lock the ranks out, while a rank's own connection (it said Hello)
// and its watchdog's (it sets its heartbeat every 0.5 s) are never the ones to go.
struct StoreLimits {
  size_t max_stored = size_t{256} << 20;    // keys and values held
  size_t max_buffered = size_t{256} << 20;  // unparsed input and unsent replies, all connections
  size_t max_connections = 4096;
  std::chrono::milliseconds idle_eviction{std::chrono::seconds(10)};
  // The group's size when known (> 0): a Hello for a rank outside [0, ranks) is refused, so that a
  // stray client cannot make itself unevictable by claiming a rank the group does not have.
  int ranks = 0;
};

// Serves the store on every address of this host at `port` (0: a free port, see port()).
// A background thread answers requests until the object is destroyed.
class StoreServer {
 public:
  explicit StoreServer(uint16_t port, StoreLimits limits = {});
  ~StoreServer();
  StoreServer(const StoreServer&) = delete;
  StoreServer& operator=(const StoreServer&) = delete;
  uint16_t port() const;
  // Waits until every client that said Hello has disconnected, or `timeout` passed. Rank 0 calls
  // it after publishing its own failure, so the others can still read the reason before the
  // store goes away.
  void WaitForClientsGone(std::chrono::milliseconds timeout);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// One connection to the store. Not thread-safe: one per rank. Every call has a deadline; an
// unreachable or stalled server throws StoreError instead of blocking.
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The store answered, and said no (Hello for a rank that has already joined, or outside the
// group): retrying cannot help.
class StoreRefused : public StoreError {
 public:
  using StoreError::StoreError;
};

class StoreClient {
 public:
  // Connects to address:port (numeric IPv4/IPv6), retrying until `connect_timeout` (the server
  // may start after this rank). `io_timeout` bounds every later request.
  StoreClient(const std::string& address, uint16_t port, std::chrono::milliseconds connect_timeout,
              std::chrono::milliseconds io_timeout);
  ~StoreClient();
  StoreClient(const StoreClient&) = delete;
  StoreClient& operator=(const StoreClient&) = delete;

  // Registers this connection as `rank`'s: when it closes, DeadRanks() lists the rank.
  // StoreRefused when that rank has already joined or is outside the group.
  void Hello(int rank);
  void Set(const std::string& key, const std::vector<char>& value);
  // The value of `key`, waiting until some rank sets it; StoreError after `timeout`.
  std::vector<char> Get(const std::string& key, std::chrono::milliseconds timeout);
  // Without waiting: false when the key is not set.
  bool TryGet(const std::string& key, std::vector<char>* value);
  // Ranks that said Hello and whose connection has since closed (exited, killed, crashed).
  std::vector<int> DeadRanks();

 private:
  std::vector<char> Request(uint8_t op, const std::string& key, const std::vector<char>& value,
                            uint8_t* status);
  int fd_ = -1;
  std::string where_;
};

// A TCP port on the loopback address that nobody listens on at the moment of asking (the kernel's
// choice for a bind to port 0), or 0 when none could be had. Another process may take it before
// the caller binds it: for launchers and tests that pick a master port.
int FreeLoopbackPort();

}  // namespace mlforge::comm
