// Wire format (little-endian, one request then one reply per round trip):
//   request: op u8 | key length u32 | key | value length u32 | value
//   reply:   status u8 (0 ok, 1 not set, 2 refused: payload = why) | length u32 | payload
// Ops: 1 set, 2 get (non-blocking; clients poll with back-off until their deadline), 3 hello
// (value = rank as decimal text), 4 dead ranks (payload: decimal ranks separated by ',').
// Waiting is done by the clients so that the server never parks a request: it is one thread
// with poll(2) over every connection, and a stalled or hostile client cannot block the others.
#include "comm/tcp_store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

namespace mlforge::comm {
namespace {

constexpr uint8_t kOpSet = 1, kOpGet = 2, kOpHello = 3, kOpDead = 4;
constexpr uint32_t kMaxKey = 4096;
constexpr uint32_t kMaxValue = 16u << 20;
// StoreLimits::max_buffered bounds the bytes held in all connections' unparsed input and unsent
// replies together: many clients each sending most of a 16 MiB value and stalling, or asking for
// it and never reading, must not add up to gigabytes.

// What one stored entry costs: its key and value, plus the maps' per-entry overhead (nodes of the
// value map, the owner map and the owner's key set), so that many tiny keys count too.
constexpr size_t kEntryOverhead = 256;
size_t EntryBytes(const std::string& key, const std::vector<char>& value) {
  return key.size() + value.size() + kEntryOverhead;
}

void PutU32(std::vector<char>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

// Sends all of `data` or returns false (peer gone, or the socket timeout passed).
bool SendAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool RecvAll(int fd, char* data, size_t n) {
  while (n > 0) {
    ssize_t r = ::recv(fd, data, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    data += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

void SetTimeouts(int fd, std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

}  // namespace

class StoreServer::Impl {
 public:
  Impl(uint16_t port, StoreLimits limits) : limits_(limits) {
    listen_fd_ = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool v6 = listen_fd_ >= 0;
    if (!v6) listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw StoreError(fmt::format("rendezvous store: socket(): {}", std::strerror(errno)));
    int one = 1, zero = 0;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc;
    if (v6) {
      ::setsockopt(listen_fd_, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);  // IPv4 too
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_any;
      a.sin6_port = htons(port);
      rc = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_ANY);
      a.sin_port = htons(port);
      rc = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    if (rc != 0 || ::listen(listen_fd_, 1024) != 0) {
      const int err = errno;
      ::close(listen_fd_);
      throw StoreError(fmt::format(
          "rendezvous store: cannot listen on port {}: {}{}", port, std::strerror(err),
          err == EADDRINUSE ? " (another job or process uses it; pick another with MASTER_PORT or --port)" : ""));
    }
    sockaddr_storage got{};
    socklen_t len = sizeof got;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&got), &len);
    port_ = ntohs(got.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&got)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&got)->sin_port);
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
      ::close(listen_fd_);
      throw StoreError(fmt::format("rendezvous store: pipe(): {}", std::strerror(errno)));
    }
    thread_ = std::thread([this] { Loop(); });
  }

  ~Impl() {
    stop_ = true;
    char b = 1;
    (void)!::write(wake_[1], &b, 1);
    thread_.join();
    for (auto& [fd, c] : conns_) ::close(fd);
    ::close(listen_fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  uint16_t port() const { return port_; }

  void WaitForClientsGone(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [this] { return live_hellos_ == 0; });
  }

 private:
  struct Conn {
    std::vector<char> in;
    std::vector<char> out;  // a reply not yet taken by the client (sent as its socket allows)
    size_t out_sent = 0;
    int rank = -1;
    uint64_t owner = 0;           // its entry in owners_ (the values it set last)
    std::chrono::steady_clock::time_point active;  // its last complete request, else its arrival
    bool evicted = false;         // closed for holding the most; dropped after this poll round
  };

  void Loop() {
    std::vector<pollfd> fds;
    while (!stop_) {
      fds.clear();
      fds.push_back({wake_[0], POLLIN, 0});
      fds.push_back({listen_fd_, POLLIN, 0});
      // A connection with a reply pending is only written to: it sends nothing more until its
      // client has read, so a client that never reads holds one reply and never the thread.
      for (auto& [fd, c] : conns_) fds.push_back({fd, static_cast<short>(c.out.empty() ? POLLIN : POLLOUT), 0});
      int n = ::poll(fds.data(), fds.size(), 1000);
      if (n < 0 && errno != EINTR) break;
      if (n <= 0) continue;
      if (fds[1].revents & POLLIN) Accept();
      for (size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        auto it = conns_.find(fds[i].fd);
        if (it == conns_.end() || it->second.evicted) continue;
        Conn& c = it->second;
        bool ok;
        if (!c.out.empty()) {
          ok = (fds[i].revents & (POLLERR | POLLHUP | POLLNVAL)) == 0 && Flush(fds[i].fd, c) &&
               (!c.out.empty() || Process(fds[i].fd, c));
        } else {
          ok = Serve(fds[i].fd);
        }
        if (!ok) Drop(fds[i].fd);
      }
      // Connections evicted during the round are closed only now: the round's pollfd list still
      // names them, and a closed descriptor number may be reused.
      std::vector<int> evicted;
      for (const auto& [fd, c] : conns_) {
        if (c.evicted) evicted.push_back(fd);
      }
      for (int fd : evicted) Drop(fd);
    }
  }

  // Makes room for `need` more buffered bytes on connection `fd`: while that would pass
  // max_buffered, the connection holding the most is evicted; false when that is `fd` itself (or
  // nothing else holds more), and `fd` is then the one to close.
  bool MakeBufferRoom(int fd, size_t need) {
    while (buffered_ + need > limits_.max_buffered) {
      const Conn& self = conns_.at(fd);
      const size_t mine = self.in.size() + self.out.size() + need;
      int hog = -1;
      size_t most = 0;
      for (const auto& [f, c] : conns_) {
        const size_t held = c.in.size() + c.out.size();
        if (f != fd && !c.evicted && held > most) {
          most = held;
          hog = f;
        }
      }
      if (hog < 0 || most <= mine) return false;
      Evict(hog);
    }
    return true;
  }

  // The same for stored bytes, by owner: the values a connection set last, whether it is still
  // connected or not (a departed client's junk must not fill the store for good). The largest
  // other owner loses its values (and its connection, if open); false when the requester itself
  // holds the most, and then its own values go too.
  bool MakeStoreRoom(int fd, size_t need) {
    const uint64_t me = conns_.at(fd).owner;
    while (bytes_ + need > limits_.max_stored) {
      const size_t mine = owners_[me].stored + need;
      uint64_t hog = 0;
      size_t most = 0;
      for (const auto& [id, o] : owners_) {
        if (id != me && o.stored > most) {
          most = o.stored;
          hog = id;
        }
      }
      if (most == 0 || most <= mine) {
        DropValues(me);
        return false;
      }
      const int hog_fd = owners_[hog].fd;
      DropValues(hog);
      if (hog_fd >= 0) Evict(hog_fd);
    }
    return true;
  }

  // Removes every value owner `id` set last, and the owner's record once it has no connection.
  void DropValues(uint64_t id) {
    auto o = owners_.find(id);
    if (o == owners_.end()) return;
    for (const std::string& key : o->second.keys) {
      auto it = data_.find(key);
      if (it != data_.end()) {
        bytes_ -= EntryBytes(key, it->second);
        data_.erase(it);
      }
      key_owner_.erase(key);
    }
    o->second.keys.clear();
    o->second.stored = 0;
    if (o->second.fd < 0) owners_.erase(o);
  }

  // Frees connection `fd`'s buffers and marks it for closing at the end of the poll round.
  void Evict(int fd) {
    Conn& c = conns_.at(fd);
    buffered_ -= c.in.size() + c.out.size();
    c.in.clear();
    c.in.shrink_to_fit();
    c.out.clear();
    c.out.shrink_to_fit();
    c.out_sent = 0;
    if (!c.evicted) ++evicting_;
    c.evicted = true;
  }

  // Makes a connection slot free for a newcomer: evicts the anonymous connection (no Hello) idle
  // longest, if it has been idle for limits_.idle_eviction; false when none qualifies.
  bool EvictIdle(std::chrono::steady_clock::time_point now) {
    int oldest = -1;
    std::chrono::steady_clock::time_point when = now - limits_.idle_eviction;
    for (const auto& [f, c] : conns_) {
      if (c.rank < 0 && !c.evicted && c.active <= when) {
        when = c.active;
        oldest = f;
      }
    }
    if (oldest < 0) return false;
    Evict(oldest);
    return true;
  }

  void Accept() {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    const auto now = std::chrono::steady_clock::now();
    if (conns_.size() - evicting_ >= limits_.max_connections && !EvictIdle(now)) {
      ::close(fd);
      return;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Conn c;
    c.active = now;
    c.owner = ++next_owner_;  // ids, not descriptors: a closed descriptor's number comes back
    owners_[c.owner].fd = fd;
    conns_[fd] = std::move(c);
  }

  void Drop(int fd) {
    auto it = conns_.find(fd);
    if (it == conns_.end()) return;
    if (it->second.rank >= 0) {
      std::lock_guard<std::mutex> lock(mu_);
      dead_.insert(it->second.rank);
      --live_hellos_;
      hello_ranks_.erase(it->second.rank);
      cv_.notify_all();
    }
    buffered_ -= it->second.in.size() + it->second.out.size();
    if (it->second.evicted) --evicting_;
    // Its values stay (a rank's failure reason must outlive it), still counted as its owner's.
    auto o = owners_.find(it->second.owner);
    if (o != owners_.end()) {
      o->second.fd = -1;
      if (o->second.keys.empty()) owners_.erase(o);
    }
    ::close(fd);
    conns_.erase(it);
  }

  // Reads what is there and answers the complete requests; false closes the connection.
  bool Serve(int fd) {
    Conn& c = conns_[fd];
    char buf[65536];
    ssize_t r = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (r == 0) return false;
    if (r < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    if (!MakeBufferRoom(fd, static_cast<size_t>(r))) return false;
    c.in.insert(c.in.end(), buf, buf + r);
    buffered_ += static_cast<size_t>(r);
    return Process(fd, c);
  }

  // Sends what the socket takes of the pending reply, without waiting; false: the peer is gone.
  bool Flush(int fd, Conn& c) {
    while (c.out_sent < c.out.size()) {
      ssize_t w = ::send(fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      if (w <= 0) return false;
      c.out_sent += static_cast<size_t>(w);
    }
    buffered_ -= c.out.size();
    c.out.clear();
    c.out.shrink_to_fit();  // a 16 MiB reply must not stay allocated per connection
    c.out_sent = 0;
    return true;
  }

  // Answers complete requests in `c.in` until one's reply cannot be sent at once (it then waits
  // in `c.out`); false closes the connection.
  bool Process(int fd, Conn& c) {
    for (;;) {
      if (!c.out.empty()) return true;
      if (c.in.size() < 5) return true;
      const uint32_t klen = GetU32(c.in.data() + 1);
      if (klen > kMaxKey) return false;
      if (c.in.size() < 9 + size_t{klen}) return true;
      const uint32_t vlen = GetU32(c.in.data() + 5 + klen);
      if (vlen > kMaxValue) return false;
      const size_t total = 9 + size_t{klen} + vlen;
      if (c.in.size() < total) return true;
      const uint8_t op = static_cast<uint8_t>(c.in[0]);
      std::string key(c.in.data() + 5, klen);
      std::vector<char> value(c.in.begin() + 9 + klen, c.in.begin() + total);
      c.in.erase(c.in.begin(), c.in.begin() + total);
      buffered_ -= total;
      c.active = std::chrono::steady_clock::now();
      uint8_t status = 0;
      std::vector<char> payload;
      if (op == kOpSet) {
        const size_t size = EntryBytes(key, value);
        // The key's previous value no longer counts (nor for its previous setter).
        auto it = data_.find(key);
        if (it != data_.end()) {
          const size_t old = EntryBytes(key, it->second);
          bytes_ -= old;
          auto owner = key_owner_.find(key);
          if (owner != key_owner_.end()) {
            auto o = owners_.find(owner->second);
            if (o != owners_.end()) {
              o->second.stored -= old;
              o->second.keys.erase(key);
              if (o->second.fd < 0 && o->second.keys.empty()) owners_.erase(o);
            }
            key_owner_.erase(owner);
          }
          data_.erase(it);
        }
        if (!MakeStoreRoom(fd, size)) return false;
        bytes_ += size;
        Owner& mine = owners_[c.owner];
        mine.stored += size;
        mine.keys.insert(key);
        key_owner_[key] = c.owner;
        data_[key] = std::move(value);
      } else if (op == kOpGet) {
        auto it = data_.find(key);
        if (it == data_.end()) {
          status = 1;
        } else {
          payload = it->second;
        }
      } else if (op == kOpHello) {
        std::string s(value.begin(), value.end());
        char* end = nullptr;
        long rank = std::strtol(s.c_str(), &end, 10);
        if (s.empty() || *end != '\0' || rank < 0 || rank > 1000000 || c.rank >= 0) return false;
        // Refused, with the reason, and the connection stays anonymous: a rank the group does not
        // have, or a second Hello for a live rank (another process with the same RANK, or a
        // stray client), whose departure must never pass for that rank's death.
        if (limits_.ranks > 0 && rank >= limits_.ranks) {
          status = 2;
          const std::string why = fmt::format("rank {} is outside this group of {} ranks (is WORLD_SIZE the same on "
                                              "every host?)", rank, limits_.ranks);
          payload.assign(why.begin(), why.end());
        } else if (!hello_ranks_.insert(static_cast<int>(rank)).second) {
          status = 2;
          const std::string why = fmt::format("rank {} has already joined (is another process running with the same "
                                              "RANK?)", rank);
          payload.assign(why.begin(), why.end());
        } else {
          c.rank = static_cast<int>(rank);
          std::lock_guard<std::mutex> lock(mu_);
          ++live_hellos_;
        }
      } else if (op == kOpDead) {
        std::string s;
        {
          std::lock_guard<std::mutex> lock(mu_);
          for (int d : dead_) s += (s.empty() ? "" : ",") + std::to_string(d);
        }
        payload.assign(s.begin(), s.end());
      } else {
        return false;
      }
      std::vector<char> reply;
      reply.push_back(static_cast<char>(status));
      PutU32(reply, static_cast<uint32_t>(payload.size()));
      reply.insert(reply.end(), payload.begin(), payload.end());
      if (!MakeBufferRoom(fd, reply.size())) return false;
      buffered_ += reply.size();
      c.out = std::move(reply);
      if (!Flush(fd, c)) return false;
    }
  }

  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::map<int, Conn> conns_;
  StoreLimits limits_;
  std::map<std::string, std::vector<char>> data_;
  struct Owner {
    int fd = -1;                 // its connection, -1 once closed (its values stay)
    size_t stored = 0;           // EntryBytes of the values it set last
    std::set<std::string> keys;  // those values' keys
  };
  std::map<uint64_t, Owner> owners_;
  std::map<std::string, uint64_t> key_owner_;  // key -> the owner that set it last
  uint64_t next_owner_ = 0;
  size_t bytes_ = 0;
  size_t buffered_ = 0;  // sum of every connection's `in` and `out`
  size_t evicting_ = 0;  // connections evicted in this poll round, still in conns_ until its end
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<int> dead_;
  int live_hellos_ = 0;
  std::set<int> hello_ranks_;  // ranks with a live Hello'd connection (store thread only)
};

StoreServer::StoreServer(uint16_t port, StoreLimits limits) : impl_(std::make_unique<Impl>(port, limits)) {}
StoreServer::~StoreServer() = default;
uint16_t StoreServer::port() const { return impl_->port(); }
void StoreServer::WaitForClientsGone(std::chrono::milliseconds timeout) { impl_->WaitForClientsGone(timeout); }

StoreClient::StoreClient(const std::string& address, uint16_t port, std::chrono::milliseconds connect_timeout,
                         std::chrono::milliseconds io_timeout)
    : where_(fmt::format("{}:{}", address, port)) {
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (::getaddrinfo(address.c_str(), service.c_str(), &hints, &res) != 0 || res == nullptr) {
    throw StoreError(fmt::format("rendezvous store address '{}' is not a numeric IP address", address));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, ::freeaddrinfo);
  const auto deadline = std::chrono::steady_clock::now() + connect_timeout;
  auto wait = std::chrono::milliseconds(20);
  std::string last;
  for (;;) {
    int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw StoreError(fmt::format("rendezvous store: socket(): {}", std::strerror(errno)));
    SetTimeouts(fd, std::min<std::chrono::milliseconds>(io_timeout, std::chrono::seconds(10)));
    if (::connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
      fd_ = fd;
      break;
    }
    last = std::strerror(errno);
    ::close(fd);
    if (std::chrono::steady_clock::now() + wait > deadline) {
      throw StoreError(fmt::format(
          "cannot reach the rendezvous store of rank 0 at {} within {} s (last error: {}); is rank 0 running, "
          "and is the address and port right?",
          where_, connect_timeout.count() / 1000.0, last));
    }
    std::this_thread::sleep_for(wait);
    wait = std::min(wait * 2, std::chrono::milliseconds(500));
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  SetTimeouts(fd_, io_timeout);
}

StoreClient::~StoreClient() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<char> StoreClient::Request(uint8_t op, const std::string& key, const std::vector<char>& value,
                                       uint8_t* status) {
  if (fd_ < 0) throw StoreError(fmt::format("the rendezvous store at {} is unreachable (connection lost)", where_));
  std::vector<char> msg;
  msg.push_back(static_cast<char>(op));
  PutU32(msg, static_cast<uint32_t>(key.size()));
  msg.insert(msg.end(), key.begin(), key.end());
  PutU32(msg, static_cast<uint32_t>(value.size()));
  msg.insert(msg.end(), value.begin(), value.end());
  char head[5];
  if (!SendAll(fd_, msg.data(), msg.size()) || !RecvAll(fd_, head, 5)) {
    ::close(fd_);
    fd_ = -1;
    throw StoreError(fmt::format("the rendezvous store at {} (served by rank 0) stopped answering", where_));
  }
  *status = static_cast<uint8_t>(head[0]);
  std::vector<char> payload(GetU32(head + 1));
  if (!payload.empty() && !RecvAll(fd_, payload.data(), payload.size())) {
    ::close(fd_);
    fd_ = -1;
    throw StoreError(fmt::format("the rendezvous store at {} (served by rank 0) stopped answering", where_));
  }
  return payload;
}

void StoreClient::Hello(int rank) {
  uint8_t status;
  const std::string s = std::to_string(rank);
  std::vector<char> why = Request(kOpHello, "", std::vector<char>(s.begin(), s.end()), &status);
  if (status == 2) {
    throw StoreRefused(fmt::format("the rendezvous store at {} refused this rank: {}", where_,
                                   std::string(why.begin(), why.end())));
  }
}

void StoreClient::Set(const std::string& key, const std::vector<char>& value) {
  if (key.size() > kMaxKey || value.size() > kMaxValue) {
    throw StoreError(fmt::format("rendezvous store: key '{}' or its {}-byte value is over the limits", key,
                                 value.size()));
  }
  uint8_t status;
  Request(kOpSet, key, value, &status);
}

bool StoreClient::TryGet(const std::string& key, std::vector<char>* value) {
  uint8_t status;
  std::vector<char> v = Request(kOpGet, key, {}, &status);
  if (status != 0) return false;
  *value = std::move(v);
  return true;
}

std::vector<char> StoreClient::Get(const std::string& key, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto wait = std::chrono::milliseconds(1);
  std::vector<char> v;
  for (;;) {
    if (TryGet(key, &v)) return v;
    if (std::chrono::steady_clock::now() >= deadline) {
      throw StoreError(fmt::format("rendezvous: '{}' was not published within {} s", key, timeout.count() / 1000.0));
    }
    std::this_thread::sleep_for(wait);
    wait = std::min(wait * 2, std::chrono::milliseconds(100));
  }
}

std::vector<int> StoreClient::DeadRanks() {
  uint8_t status;
  std::vector<char> v = Request(kOpDead, "", {}, &status);
  std::vector<int> out;
  std::string s(v.begin(), v.end());
  size_t pos = 0;
  while (pos < s.size()) {
    size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    out.push_back(std::atoi(s.substr(pos, comma - pos).c_str()));
    pos = comma + 1;
  }
  return out;
}

int FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace mlforge::comm
