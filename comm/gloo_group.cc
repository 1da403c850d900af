// The Gloo backend: host buffers over a full TCP mesh, rendezvous through comm/tcp_store.h.
//
// Gloo's TCP device is given this host's numeric address (the source address of the route to
// the master), never a host name: Debian's Gloo resolves names itself and, on hosts whose
// /etc/hosts maps the name to 127.0.1.1, would publish an address no peer can reach.
//
// Failures: every collective carries the group's deadline. When one fails (a peer's connection
// closed, or the deadline passed) this rank works out why before it throws PeerFailure:
//   1. a rank that failed published its reason under "failed/<rank>" before leaving: quote it;
//   2. the store saw a rank's connection close without a reason: it died (SIGKILL, OOM, crash);
//   3. on a deadline, the ranks that also timed out publish "late/<n>/<rank>"; the ones that did
//      not (for n, n - 1 or n + 1: ranks can be one collective apart when a peer stops inside
//      one) are the ones that never reached collective n (stopped, hung, or far slower); of
//      those, the ones whose heartbeat ("alive/<rank>", every 0.5 s) stopped are named first;
//   4. the store itself is gone: rank 0, which serves it, is dead, stopped or unreachable.
// A rank that failed because of another publishes its diagnosis ("failed/<rank>" = 'P'...), so
// ranks that notice later adopt it instead of blaming the departure of that bystander; rank 0
// keeps the store up after a failure until the others have left (5 s at most).
#include "core/build_config.h"

#if MLFORGE_HAVE_GLOO

#include <arpa/inet.h>
#include <signal.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>

#include "comm/group.h"
#include "comm/tcp_store.h"
#include "core/error.h"

namespace mlforge::comm {
namespace {

using std::chrono::milliseconds;

// Gloo's rendezvous over our store, under the "gloo/" prefix.
class StoreAdapter final : public gloo::rendezvous::Store {
 public:
  StoreAdapter(StoreClient& client, milliseconds timeout) : client_(client), timeout_(timeout) {}
  void set(const std::string& key, const std::vector<char>& data) override { client_.Set("gloo/" + key, data); }
  std::vector<char> get(const std::string& key) override { return client_.Get("gloo/" + key, timeout_); }
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const milliseconds& timeout) override {
    for (const auto& k : keys) client_.Get("gloo/" + k, timeout);
  }

 private:
  StoreClient& client_;
  milliseconds timeout_;
};

// The local address the kernel would use to reach `peer` (a UDP connect sends nothing).
std::string LocalAddressToward(const std::string& peer) {
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  MLF_EXPECTS(::getaddrinfo(peer.c_str(), "9", &hints, &res) == 0 && res != nullptr,
              "'{}' is not a numeric address", peer);
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, ::freeaddrinfo);
  int fd = ::socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  MLF_EXPECTS(fd >= 0, "socket(): {}", std::strerror(errno));
  std::string out;
  if (::connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    char buf[NI_MAXHOST];
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0 &&
        ::getnameinfo(reinterpret_cast<sockaddr*>(&local), len, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST) == 0) {
      out = buf;
    }
  }
  const int err = errno;
  ::close(fd);
  MLF_EXPECTS(!out.empty(), "no route from this host to the master {}: {}", peer, std::strerror(err));
  return out;
}

std::vector<char> Bytes(const std::string& s) { return std::vector<char>(s.begin(), s.end()); }

std::string ThisProcess() {
  char name[256] = {0};
  ::gethostname(name, sizeof name - 1);
  return fmt::format("{} pid {}", name, ::getpid());
}

char KindCode(FailureKind k) { return k == FailureKind::kClient ? 'C' : k == FailureKind::kStopped ? 'S' : 'A'; }
FailureKind KindFromCode(char c) {
  return c == 'C' ? FailureKind::kClient : c == 'S' ? FailureKind::kStopped : FailureKind::kAlgorithm;
}

class GlooGroup final : public Communicator {
 public:
  explicit GlooGroup(const GroupSpec& spec) : spec_(spec) {
    MLF_ASSERT(spec_.world_size > 1 && spec_.rank >= 0 && spec_.rank < spec_.world_size);
    // A peer that vanished must surface as an error on the next send, not kill this rank: some
    // of Gloo's writes do not pass MSG_NOSIGNAL.
    ::signal(SIGPIPE, SIG_IGN);
    if (spec_.hosts.size() != static_cast<size_t>(spec_.world_size)) {
      spec_.hosts.clear();
      for (int r = 0; r < spec_.world_size; ++r) spec_.hosts.push_back("algo-" + std::to_string(r + 1));
    }
    const std::string master = ResolveHost(spec_.master_addr, spec_.rendezvous_timeout);
    master_where_ = fmt::format("{}:{}", spec_.master_addr == master ? master : spec_.master_addr + " = " + master,
                                spec_.master_port);
    spdlog::info("Joining a group of {} ranks as rank {} ({}); rendezvous at {}; collective deadline {} s",
                 spec_.world_size, spec_.rank, spec_.source, master_where_, spec_.collective_timeout.count() / 1000.0);
    if (spec_.rank == 0) {
      try {
        StoreLimits limits = spec_.store_limits;
        limits.ranks = spec_.world_size;
        server_ = std::make_unique<StoreServer>(spec_.master_port, limits);
      } catch (const StoreError& e) {
        MLF_FAIL("rank 0 cannot serve the rendezvous: {}", e.what());
      }
    }
    try {
      // Only the Hello is retried: once it has been answered, a lost connection is this rank's
      // death in the store's eyes.
      client_ = Connect(master, [this](StoreClient& c) { c.Hello(spec_.rank); }, spec_.rendezvous_timeout);
      client_->Set("info/" + std::to_string(spec_.rank), Bytes(ThisProcess()));
    } catch (const StoreError& e) {
      MLF_FAIL("rank {} could not join the group: {}", spec_.rank, e.what());
    }
    const std::string local = LocalAddressToward(master);
    gloo::transport::tcp::attr attr;
    attr.hostname = local;
    try {
      device_ = gloo::transport::tcp::CreateDevice(attr);
      ctx_ = std::make_shared<gloo::rendezvous::Context>(spec_.rank, spec_.world_size);
      ctx_->setTimeout(spec_.rendezvous_timeout);
      StoreAdapter store(*client_, spec_.rendezvous_timeout);
      ctx_->connectFullMesh(store, device_);
      ctx_->setTimeout(spec_.collective_timeout);
    } catch (const StoreError& e) {
      const std::string why = fmt::format("rendezvous of {} ranks at {} failed: {}; {}", spec_.world_size,
                                          master_where_, e.what(), MissingRanks());
      LingerAfterFailedRendezvous();
      MLF_FAIL("{}", why);
    } catch (const gloo::Exception& e) {
      const std::string why =
          fmt::format("rank {} could not connect to the other ranks from {}: {}", spec_.rank, local, e.what());
      LingerAfterFailedRendezvous();
      MLF_FAIL("{}", why);
    }
    spdlog::info("Group of {} ranks connected (this rank: {} on {}, transport address {})", spec_.world_size,
                 spec_.rank, spec_.hosts[spec_.rank], local);
    StartWatchdog(master);
  }

  ~GlooGroup() override {
    StopWatchdog();
    if (!broken_ && client_) {
      // Leaving after a success: the others' watchdogs must not take this rank's closed
      // connection for a death.
      try {
        client_->Set("done/" + std::to_string(spec_.rank), Bytes("1"));
      } catch (const std::exception&) {
      }
    }
    if (seq_ > 0) {
      // What the scaling bench reads: how much of the run the collectives took on this rank.
      spdlog::info("Gloo: rank {} ran {} collective(s) over {:.3f} MB in {:.3f} s", spec_.rank, seq_,
                   static_cast<double>(bytes_) / 1e6, collective_seconds_);
    }
    ctx_.reset();
    client_.reset();
    if (server_ && broken_) {
      // The group failed: keep the store up while the other ranks read the reasons (each one
      // disconnects when it exits), so that none of them mistakes rank 0's exit for the cause.
      server_->WaitForClientsGone(std::min<milliseconds>(spec_.collective_timeout, std::chrono::seconds(5)));
    }
    server_.reset();
  }

  int rank() const override { return spec_.rank; }
  int world_size() const override { return spec_.world_size; }
  std::string backend() const override { return "gloo"; }
  std::chrono::milliseconds collective_timeout() const override { return spec_.collective_timeout; }

  void AllReduceSum(float* d, size_t n) override { AllReduce(d, n, "all-reduce (sum)", Sum<float>); }
  void AllReduceSum(double* d, size_t n) override { AllReduce(d, n, "all-reduce (sum)", Sum<double>); }
  void AllReduceMax(float* d, size_t n) override { AllReduce(d, n, "all-reduce (max)", Max<float>); }
  void AllReduceMax(double* d, size_t n) override { AllReduce(d, n, "all-reduce (max)", Max<double>); }

  void Broadcast(void* data, size_t bytes, int root) override {
    MLF_ASSERT(root >= 0 && root < spec_.world_size);
    bytes_ += bytes;
    Run("broadcast", [&] {
      if (bytes == 0) return;
      gloo::BroadcastOptions opts(ctx_);
      opts.setOutput(static_cast<uint8_t*>(data), bytes);
      opts.setRoot(root);
      opts.setTimeout(spec_.collective_timeout);
      gloo::broadcast(opts);
    });
  }

  void Barrier() override {
    Run("barrier", [&] {
      gloo::BarrierOptions opts(ctx_);
      opts.setTimeout(spec_.collective_timeout);
      gloo::barrier(opts);
    });
  }

  void AllGather(const void* send, size_t bytes, void* recv) override {
    bytes_ += bytes * spec_.world_size;
    Run("all-gather", [&] {
      if (bytes == 0) return;
      gloo::AllgatherOptions opts(ctx_);
      opts.setInput(const_cast<uint8_t*>(static_cast<const uint8_t*>(send)), bytes);
      opts.setOutput(static_cast<uint8_t*>(recv), bytes * spec_.world_size);
      opts.setTimeout(spec_.collective_timeout);
      gloo::allgather(opts);
    });
  }

  void SetPhase(const std::string& phase) override {
    std::lock_guard<std::mutex> lock(phase_mu_);
    phase_ = phase;
  }

  void ReportFailure(FailureKind kind, const std::string& reason) override {
    if (broken_ || !client_) return;
    broken_ = true;
    broken_kind_ = kind;
    broken_message_ = reason;
    // Best effort: the store may be gone; the others still see this rank's connections close.
    PublishFailure(*client_, std::string(1, KindCode(kind)) + Phase() + '\n' + reason);
    ctx_.reset();  // closes every connection: the others' collectives fail now, not at the deadline
    client_.reset();
    if (server_) {
      // Keep serving the reason while the others notice and read it.
      server_->WaitForClientsGone(std::min<milliseconds>(spec_.collective_timeout, std::chrono::seconds(60)));
    }
  }

 private:
  template <typename T>
  static void Sum(void* c, const void* a, const void* b, size_t n) {
    T* out = static_cast<T*>(c);
    const T* x = static_cast<const T*>(a);
    const T* y = static_cast<const T*>(b);
    for (size_t i = 0; i < n; ++i) out[i] = x[i] + y[i];
  }
  template <typename T>
  static void Max(void* c, const void* a, const void* b, size_t n) {
    T* out = static_cast<T*>(c);
    const T* x = static_cast<const T*>(a);
    const T* y = static_cast<const T*>(b);
    for (size_t i = 0; i < n; ++i) out[i] = std::max(x[i], y[i]);
  }

  template <typename T>
  void AllReduce(T* data, size_t n, const char* what, void (*fn)(void*, const void*, const void*, size_t)) {
    bytes_ += n * sizeof(T);
    Run(what, [&] {
      if (n == 0) return;
      gloo::AllreduceOptions opts(ctx_);
      opts.setOutput(data, n);
      opts.setReduceFunction(fn);
      opts.setTimeout(spec_.collective_timeout);
      gloo::allreduce(opts);
    });
  }

  // A connection to the store that has answered `first` (its opening requests). The store closes a
  // newcomer at once while every slot is taken by ranks and connections active within its idle
  // limit (StoreLimits); it frees one as soon as an anonymous connection has been idle that long.
  // So a connection closed before answering is retried, with back-off, for `patience` (the
  // rendezvous deadline when joining); the last error then propagates. A refusal (StoreRefused)
  // propagates at once.
  std::unique_ptr<StoreClient> Connect(const std::string& master, const std::function<void(StoreClient&)>& first,
                                       milliseconds patience) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    auto wait = milliseconds(50);
    for (;;) {
      auto client = std::make_unique<StoreClient>(master, spec_.master_port, spec_.rendezvous_timeout, IoTimeout());
      try {
        first(*client);
        return client;
      } catch (const StoreRefused&) {
        throw;
      } catch (const StoreError& e) {
        if (std::chrono::steady_clock::now() + wait >= deadline) {
          throw StoreError(fmt::format("{} (it closed this rank's new connections until the rendezvous deadline: "
                                       "other clients may hold all of its connection slots)", e.what()));
        }
        spdlog::debug("rank {}: the rendezvous store closed a new connection ({}); retrying", spec_.rank, e.what());
      }
      std::this_thread::sleep_for(wait);
      wait = std::min(wait * 2, milliseconds(1000));
    }
  }

  milliseconds IoTimeout() const { return std::min<milliseconds>(spec_.collective_timeout, std::chrono::seconds(30)); }

  template <typename F>
  void Run(const char* what, F&& body) {
    if (broken_) throw PeerFailure(broken_kind_, broken_message_);
    ++seq_;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      {
        // What the watchdog sees: this collective is in progress (until it returns or throws).
        struct Running {
          std::atomic<uint64_t>& flag;
          ~Running() { flag.store(0); }
        } running{running_};
        running_what_.store(what);
        running_.store(seq_);
        body();
      }
      collective_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } catch (const gloo::Exception& e) {
      broken_ = true;
      broken_kind_ = FailureKind::kAlgorithm;
      broken_message_ = Diagnose(what, e.what(), *client_, seq_, &broken_kind_);
      ctx_.reset();
      // Publish the diagnosis before leaving: the ranks that notice later must not take this
      // rank's departure for the cause.
      Publish(*client_, broken_kind_, broken_message_);
      throw PeerFailure(broken_kind_, broken_message_);
    }
  }

  // This rank's "failed/<rank>" entry (its own reason: kind code, phase, newline, reason; or 'P',
  // kind code and a diagnosis of another rank's failure, adopted by ranks that notice later) and
  // the "failed/any" flag the watchdogs poll. Best effort: the store may be gone.
  void PublishFailure(StoreClient& client, const std::string& entry) {
    try {
      client.Set("failed/" + std::to_string(spec_.rank), Bytes(entry));
      client.Set("failed/any", Bytes(std::to_string(spec_.rank)));
    } catch (const std::exception&) {
    }
  }
  void Publish(StoreClient& client, FailureKind kind, const std::string& message) {
    PublishFailure(client, std::string("P") + KindCode(kind) + message);
  }

  // The watchdog: its own store connection (StoreClient is one per thread), polled every 0.5 s
  // while a collective is in progress. When the store shows another rank dead (its connection
  // closed), a published failure, or is itself gone, and this rank is still inside the same
  // collective spec_.watchdog_grace later, the transport has missed the failure: diagnose it as
  // a failed collective would, publish it, and end the process through OnStuckCollective.
  void StartWatchdog(const std::string& master) {
    std::unique_ptr<StoreClient> client;
    try {
      // 30 s at most: an idle connection gives way after 10 s; past that the others are waiting
      // in the first collective, and this rank trains without a watchdog (as it always could).
      client = Connect(
          master, [this](StoreClient& c) { c.Set("alive/" + std::to_string(spec_.rank), Bytes("0")); },
          std::min<milliseconds>(spec_.rendezvous_timeout, std::chrono::seconds(30)));
    } catch (const StoreError& e) {
      spdlog::warn("rank {}: no collective watchdog (its store connection failed: {})", spec_.rank, e.what());
      return;
    }
    watchdog_ = std::thread([this, c = std::move(client)] { Watch(*c); });
  }

  void StopWatchdog() {
    if (!watchdog_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(watch_mu_);
      watch_stop_ = true;
    }
    watch_cv_.notify_all();
    watchdog_.join();
  }

  bool FailureVisible(StoreClient& client) const {
    try {
      std::vector<char> v;
      for (int r : client.DeadRanks()) {
        // A rank that finished (and said so) before leaving is no failure.
        if (r != spec_.rank && !client.TryGet("done/" + std::to_string(r), &v)) return true;
      }
      return client.TryGet("failed/any", &v);
    } catch (const StoreError&) {
      return true;  // the store is gone with rank 0
    }
  }

  void Watch(StoreClient& client) {
    using Clock = std::chrono::steady_clock;
    uint64_t watched = 0, beat = 0;
    Clock::time_point since{};
    std::string reason;  // diagnosed when the failure first showed (the store may be gone later)
    FailureKind kind = FailureKind::kAlgorithm;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(watch_mu_);
        if (watch_cv_.wait_for(lock, milliseconds(500), [this] { return watch_stop_; })) return;
      }
      // The heartbeat: a rank that is stopped (SIGSTOP) or hung stops beating, one that is merely
      // slow does not (Diagnose tells them apart on a deadline).
      try {
        client.Set("alive/" + std::to_string(spec_.rank), Bytes(std::to_string(++beat)));
      } catch (const StoreError&) {
      }
      const uint64_t seq = running_.load();
      if (seq != watched) {
        watched = seq;
        since = {};
        reason.clear();
      }
      if (seq == 0) continue;
      if (since == Clock::time_point{}) {
        if (!FailureVisible(client)) continue;
        since = Clock::now();
        kind = FailureKind::kAlgorithm;
        try {
          reason = Diagnose(running_what_.load(), "the transport did not fail it", client, seq, &kind);
        } catch (const std::exception& e) {
          reason = fmt::format("{} could not complete: {}", Where(running_what_.load(), seq), e.what());
        }
      }
      if (Clock::now() - since < spec_.watchdog_grace || running_.load() != seq) continue;
      const std::string message =
          fmt::format("{} (rank {} was still inside that collective {:.0f} s after the failure showed in the "
                      "rendezvous store; its watchdog ended it)",
                      reason, spec_.rank, std::chrono::duration<double>(Clock::now() - since).count());
      Publish(client, kind, message);
      OnStuckCollective(kind, message);
    }
  }

  std::string Who(int r, StoreClient& client) const {
    std::string info;
    std::vector<char> v;
    try {
      if (client.TryGet("info/" + std::to_string(r), &v)) info = ", " + std::string(v.begin(), v.end());
    } catch (const std::exception&) {
    }
    return fmt::format("rank {} ({}{})", r, spec_.hosts[r], info);
  }

  std::string Phase() const {
    std::lock_guard<std::mutex> lock(phase_mu_);
    return phase_;
  }

  std::string Where(const char* what, uint64_t seq) const {
    const std::string phase = Phase();
    return fmt::format("collective #{} ({}){}", seq, what, phase.empty() ? "" : " in phase '" + phase + "'");
  }

  // The rendezvous failed on this rank (the constructor is about to throw, so the destructor will
  // not run): rank 0 keeps the store up until the ranks that did arrive have read why and left
  // (5 s at most), as after a failed collective. Without it a rank whose own deadline came a
  // moment later lost the store instead of naming the ranks that never arrived.
  void LingerAfterFailedRendezvous() {
    ctx_.reset();
    client_.reset();
    if (server_) {
      server_->WaitForClientsGone(std::min<milliseconds>(spec_.rendezvous_timeout, std::chrono::seconds(5)));
      server_.reset();
    }
  }

  std::string MissingRanks() const {
    std::vector<std::string> missing;
    try {
      std::vector<char> v;
      for (int r = 0; r < spec_.world_size; ++r) {
        if (!client_->TryGet("info/" + std::to_string(r), &v)) missing.push_back(std::to_string(r));
      }
    } catch (const std::exception& e) {
      return std::string("the store is unreachable: ") + e.what();
    }
    if (missing.empty()) return "every rank arrived";
    std::string s;
    for (const auto& m : missing) s += (s.empty() ? "" : ", ") + m;
    return "rank(s) " + s + " never arrived: are they started, with the same WORLD_SIZE and MASTER_ADDR/PORT?";
  }

  // Why collective #seq failed, from the store (`client`: the calling thread's connection); *kind
  // receives the failure's kind when a rank published one.
  std::string Diagnose(const char* what, const std::string& detail, StoreClient& client, uint64_t seq,
                       FailureKind* kind) {
    const std::string where = Where(what, seq);
    const bool timed_out = detail.find("imed out") != std::string::npos || detail.find("imeout") != std::string::npos;
    try {
      // 1 and 2: a published reason, else a connection the store saw close. Both take a moment
      // to show up after the peer's sockets close, so look for a few seconds.
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(timed_out ? 1 : 5);
      for (;;) {
        std::vector<char> v;
        std::vector<int> posted;
        std::string adopted;
        FailureKind adopted_kind = FailureKind::kAlgorithm;
        for (int r = 0; r < spec_.world_size; ++r) {
          if (r == spec_.rank || !client.TryGet("failed/" + std::to_string(r), &v) || v.empty()) continue;
          posted.push_back(r);
          if (v[0] == 'P') {  // another survivor's diagnosis: use it unless the culprit's own reason is there
            if (adopted.empty() && v.size() > 2) {
              adopted.assign(v.begin() + 2, v.end());
              adopted_kind = KindFromCode(v[1]);
            }
            continue;
          }
          const std::string body(v.begin() + 1, v.end());
          const size_t nl = body.find('\n');
          const std::string phase = body.substr(0, nl);
          *kind = KindFromCode(v[0]);
          return fmt::format("{} {}{}: {}", Who(r, client), *kind == FailureKind::kStopped ? "was stopped" : "failed",
                             phase.empty() ? "" : " in phase '" + phase + "'",
                             nl == std::string::npos ? "" : body.substr(nl + 1));
        }
        std::vector<int> dead = client.DeadRanks();
        dead.erase(std::remove(dead.begin(), dead.end(), spec_.rank), dead.end());
        // Ranks that left after publishing a reason or a diagnosis are not the culprit.
        for (int r : posted) dead.erase(std::remove(dead.begin(), dead.end(), r), dead.end());
        if (!dead.empty()) {
          return fmt::format("{} exited without a reason (killed, e.g. SIGKILL or out of memory, or crashed); "
                             "{} could not complete",
                             Who(dead.front(), client), where);
        }
        if (!adopted.empty()) {
          *kind = adopted_kind;
          return adopted;
        }
        if (std::chrono::steady_clock::now() >= until) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (timed_out) {
        // 3: who else gave up on this collective?
        const std::string key = fmt::format("late/{}/", seq);
        client.Set(key + std::to_string(spec_.rank), Bytes("1"));
        const auto until_late = std::chrono::steady_clock::now() + std::chrono::seconds(3);
        std::vector<int> missing;
        // A rank that gave up on the collective before or after this one is waiting too: when a
        // peer stops inside a collective, the others can be one collective apart (some finished
        // collective n with the stopped rank's data before it stopped, some did not; seen on a
        // loaded CI machine, where a survivor then named another survivor as well).
        const auto gave_up = [&](uint64_t seq, int r) {
          std::vector<char> v;
          return client.TryGet(fmt::format("late/{}/{}", seq, r), &v);
        };
        // Each rank's heartbeat (its watchdog beats every 0.5 s), read now and after the wait.
        const auto beats = [&] {
          std::vector<std::string> b(static_cast<size_t>(spec_.world_size));
          std::vector<char> v;
          for (int r = 0; r < spec_.world_size; ++r) {
            if (client.TryGet("alive/" + std::to_string(r), &v)) b[static_cast<size_t>(r)].assign(v.begin(), v.end());
          }
          return b;
        };
        const std::vector<std::string> beats_before = beats();
        for (;;) {
          missing.clear();
          for (int r = 0; r < spec_.world_size; ++r) {
            if (!gave_up(seq, r) && !(seq > 0 && gave_up(seq - 1, r)) && !gave_up(seq + 1, r)) {
              missing.push_back(r);
            }
          }
          if (missing.empty() || std::chrono::steady_clock::now() >= until_late) break;
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
        if (!missing.empty()) {
          // A rank still beating is running (out of step, or slower to give up, as a loaded
          // survivor can be); one whose heartbeat stopped is stopped or hung. Name those when
          // there are any.
          const std::vector<std::string> beats_after = beats();
          std::vector<int> silent;
          for (int r : missing) {
            const size_t i = static_cast<size_t>(r);
            if (beats_after[i].empty() || beats_after[i] == beats_before[i]) silent.push_back(r);
          }
          if (!silent.empty()) missing = silent;
          std::string names;
          for (int r : missing) names += (names.empty() ? "" : "; ") + Who(r, client);
          return fmt::format("{} did not reach {} within the {} s deadline: stopped (e.g. SIGSTOP), hung or far "
                             "slower than the other ranks (raise MLFORGE_COLLECTIVE_TIMEOUT_S if such imbalance "
                             "is expected)",
                             names, where, spec_.collective_timeout.count() / 1000.0);
        }
      }
    } catch (const StoreError&) {
      // 4: the store is gone with rank 0.
      if (spec_.rank != 0) {
        return fmt::format("rank 0 ({}, which serves the rendezvous at {}) is gone or not answering (exited, killed, "
                           "stopped or unreachable); {} failed: {}",
                           spec_.hosts[0], master_where_, where, detail);
      }
    }
    return fmt::format("{} failed on rank {} ({}): {}", where, spec_.rank, spec_.hosts[spec_.rank], detail);
  }

  GroupSpec spec_;
  std::string master_where_;
  std::unique_ptr<StoreServer> server_;
  std::unique_ptr<StoreClient> client_;
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::rendezvous::Context> ctx_;
  uint64_t seq_ = 0;
  uint64_t bytes_ = 0;               // payload of every collective so far (all-gather: the result)
  double collective_seconds_ = 0;  // time inside completed collectives, waiting included
  std::string phase_;  // guarded by phase_mu_ (the watchdog reads it)
  mutable std::mutex phase_mu_;
  // The collective in progress (its number; 0: none) and its name, for the watchdog.
  std::atomic<uint64_t> running_{0};
  std::atomic<const char*> running_what_{""};
  std::thread watchdog_;
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool watch_stop_ = false;
  bool broken_ = false;
  FailureKind broken_kind_ = FailureKind::kAlgorithm;
  std::string broken_message_;
};

}  // namespace

std::unique_ptr<Communicator> MakeGlooGroup(const GroupSpec& spec) { return std::make_unique<GlooGroup>(spec); }

}  // namespace mlforge::comm

#endif  // MLFORGE_HAVE_GLOO
