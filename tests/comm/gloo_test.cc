// The Gloo backend across real processes on loopback: every rank is a fork()ed child that joins
// the group through the rendezvous store (comm/tcp_store.h) and runs the collectives; results
// are exact (integer-valued floats), from 1 float to 100 MB, on up to 12 ranks. Failure cases:
// a rank that never arrives, a rank that misses a collective's deadline, a rank that reports a
// failure, and hostile bytes sent to the store.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "comm/group.h"
#include "comm/tcp_store.h"
#include "core/build_config.h"
#include "core/error.h"
#include "tests/testutil.h"

namespace mlforge::comm {
namespace {

using namespace std::chrono_literals;

int FreePort() { return test::FreeTcpPort(); }

// A raw TCP connection to 127.0.0.1:port (a client speaking bytes of its own), or -1.
int ConnectLoopback(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

GroupSpec Spec(int rank, int world, int port, std::chrono::milliseconds collective = 20s,
               std::chrono::milliseconds rendezvous = 20s) {
  GroupSpec s;
  s.rank = rank;
  s.world_size = world;
  s.master_addr = "127.0.0.1";
  s.master_port = static_cast<uint16_t>(port);
  s.collective_timeout = collective;
  s.rendezvous_timeout = rendezvous;
  s.source = "test";
  return s;
}

// A child's result file, for a rank that its collective watchdog ends (OnStuckCollective): the
// reason is its result, as a PeerFailure's text would be.
std::string g_child_result;
[[noreturn]] void WriteStuckResult(FailureKind, const char* reason) {
  std::ofstream(g_child_result) << reason;
  ::_exit(0);
}

// Runs body(rank) in `started` forked processes (ranks 0..started-1 of a group of `world`);
// returns what each one reported: "" for success, else its error text. A child that does not
// finish within `limit` is killed and reported as such.
std::vector<std::string> RunProcesses(int world, int started, const std::function<std::string(int)>& body,
                                      std::chrono::seconds limit = 120s) {
  test::TempDir dir;
  std::vector<pid_t> pids;
  for (int r = 0; r < started; ++r) {
    pid_t pid = ::fork();
    if (pid == 0) {
      g_child_result = dir.path() + "/r" + std::to_string(r);
      SetStuckCollectiveHandler(&WriteStuckResult);
      std::string result;
      try {
        result = body(r);
      } catch (const std::exception& e) {
        result = std::string("exception: ") + e.what();
      }
      std::ofstream(dir.path() + "/r" + std::to_string(r)) << result;
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  (void)world;
  std::vector<std::string> out(static_cast<size_t>(started));
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (int r = 0; r < started; ++r) {
    int status = 0;
    for (;;) {
      if (::waitpid(pids[r], &status, WNOHANG) == pids[r]) break;
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pids[r], SIGKILL);
        ::waitpid(pids[r], &status, 0);
        out[r] = "killed: did not finish in time";
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    if (!out[r].empty()) continue;
    std::ifstream f(dir.path() + "/r" + std::to_string(r));
    if (!f) {
      out[r] = "no result (status " + std::to_string(status) + ")";
      continue;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    out[r] = ss.str();
  }
  return out;
}

#if MLFORGE_HAVE_GLOO

// Every collective on every rank, at several sizes; integer-valued floats make sums exact.
std::string AllCollectives(int rank, int world, int port, const std::vector<size_t>& sizes) {
  auto c = JoinGroup(Spec(rank, world, port));
  if (c->rank() != rank || c->world_size() != world || c->backend() != "gloo") return "wrong identity";
  for (size_t n : sizes) {
    std::vector<float> f(n);
    std::vector<double> d(n);
    for (size_t i = 0; i < n; ++i) {
      f[i] = static_cast<float>((i % 97) + rank);
      d[i] = static_cast<double>((i % 89) * (rank + 1));
    }
    c->AllReduceSum(f.data(), n);
    c->AllReduceSum(d.data(), n);
    const double rank_sum = world * (world - 1) / 2.0;
    for (size_t i = 0; i < n; ++i) {
      if (f[i] != static_cast<float>(world * (i % 97) + rank_sum)) return "float sum wrong at " + std::to_string(i);
      if (d[i] != (i % 89) * (world * (world + 1) / 2.0)) return "double sum wrong at " + std::to_string(i);
    }
    for (size_t i = 0; i < n; ++i) f[i] = rank == static_cast<int>(i % world) ? static_cast<float>(1000 + i % 7) : -1.0f;
    c->AllReduceMax(f.data(), n);
    for (size_t i = 0; i < n; ++i) {
      if (f[i] != static_cast<float>(1000 + i % 7)) return "float max wrong at " + std::to_string(i) + ": " + std::to_string(f[i]);
    }
    std::vector<double> m(std::min<size_t>(n, 1000), -1.0 * rank);
    c->AllReduceMax(m.data(), m.size());
    for (double v : m) {
      if (v != 0.0) return "double max wrong";
    }
  }
  std::vector<char> b(1 << 20, 0);
  if (rank == world - 1) {
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>(i * 7);
  }
  c->Broadcast(b.data(), b.size(), world - 1);
  for (size_t i = 0; i < b.size(); ++i) {
    if (b[i] != static_cast<char>(i * 7)) return "broadcast wrong";
  }
  c->Barrier();
  int64_t mine[2] = {rank, rank * 10};
  std::vector<int64_t> all(2 * static_cast<size_t>(world));
  c->AllGather(mine, sizeof mine, all.data());
  for (int r = 0; r < world; ++r) {
    if (all[2 * r] != r || all[2 * r + 1] != 10 * r) return "all-gather wrong";
  }
  c->AllReduceSum(static_cast<float*>(nullptr), 0);  // an empty collective is allowed
  return "";
}

TEST(Gloo, CollectivesFromOneFloatTo100MBAcrossFourProcesses) {
  const int port = FreePort();
  const std::vector<size_t> sizes = {1, 3, 1000, 262144 + 5, size_t{25} * 1000 * 1000};  // 25M floats = 100 MB
  auto errors = RunProcesses(4, 4, [&](int r) { return AllCollectives(r, 4, port, sizes); }, 300s);
  for (size_t r = 0; r < errors.size(); ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

TEST(Gloo, TwelveRanks) {
  const int port = FreePort();
  auto errors = RunProcesses(12, 12, [&](int r) { return AllCollectives(r, 12, port, {1, 777, 100000}); });
  for (size_t r = 0; r < errors.size(); ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

TEST(Gloo, TwoRanks) {
  const int port = FreePort();
  auto errors = RunProcesses(2, 2, [&](int r) { return AllCollectives(r, 2, port, {1, 4096}); });
  for (size_t r = 0; r < errors.size(); ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

TEST(Gloo, ARankThatNeverArrivesFailsTheRendezvousNamingIt) {
  const int port = FreePort();
  auto errors = RunProcesses(3, 2, [&](int r) -> std::string {
    try {
      JoinGroup(Spec(r, 3, port, 20s, 2s));
    } catch (const UserError& e) {
      return e.what();
    }
    return "joined without rank 2";
  });
  for (size_t r = 0; r < errors.size(); ++r) {
    EXPECT_NE(errors[r].find("rank(s) 2 never arrived"), std::string::npos) << "rank " << r << ": " << errors[r];
  }
}

TEST(Gloo, ARankThatNeverArrivesIsNamedAlsoByARankWhoseDeadlineCameLater) {
  // Rank 1's rendezvous deadline is 1 s after rank 0's: rank 0 must keep the store up until rank 1
  // has read who is missing (a CI run had rank 1 lose the store instead, when its deadline came a
  // moment after rank 0's).
  const int port = FreePort();
  auto errors = RunProcesses(3, 2, [&](int r) -> std::string {
    try {
      JoinGroup(Spec(r, 3, port, 20s, r == 1 ? 3s : 2s));
    } catch (const UserError& e) {
      return e.what();
    }
    return "joined without rank 2";
  });
  for (size_t r = 0; r < errors.size(); ++r) {
    EXPECT_NE(errors[r].find("rank(s) 2 never arrived"), std::string::npos) << "rank " << r << ": " << errors[r];
  }
}

TEST(Gloo, ARankThatMissesACollectiveIsNamedAtTheDeadline) {
  const int port = FreePort();
  const auto t0 = std::chrono::steady_clock::now();
  auto errors = RunProcesses(3, 3, [&](int r) -> std::string {
    auto c = JoinGroup(Spec(r, 3, port, 2s));
    c->SetPhase("test phase");
    float x = 1;
    c->AllReduceSum(&x, 1);
    if (r == 1) {
      std::this_thread::sleep_for(9s);  // never reaches the second collective in time
      return "slept";
    }
    try {
      c->AllReduceSum(&x, 1);
    } catch (const PeerFailure& e) {
      // The group stays broken: a later call fails the same way, at once.
      try {
        c->Barrier();
      } catch (const PeerFailure& again) {
        if (std::string(again.what()) != e.what()) return "second failure differs";
      }
      return e.what();
    }
    return "collective completed without rank 1";
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(errors[1], "slept");
  for (int r : {0, 2}) {
    EXPECT_NE(errors[r].find("rank 1 (algo-2"), std::string::npos) << errors[r];
    EXPECT_NE(errors[r].find("did not reach collective #2 (all-reduce (sum)) in phase 'test phase' within the 2 s "
                             "deadline"),
              std::string::npos)
        << errors[r];
  }
  EXPECT_LT(seconds, 30);
}

TEST(Gloo, AReportedFailureReachesEveryRankWithItsKind) {
  const int port = FreePort();
  auto errors = RunProcesses(3, 3, [&](int r) -> std::string {
    auto c = JoinGroup(Spec(r, 3, port, 60s));
    c->SetPhase("epoch 4");
    float x = 1;
    c->AllReduceSum(&x, 1);
    if (r == 2) {
      c->ReportFailure(FailureKind::kClient, "train.pbr: record 7 is corrupt");
      return "reported";
    }
    const auto t0 = std::chrono::steady_clock::now();
    try {
      c->AllReduceSum(&x, 1);
    } catch (const PeerFailure& e) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (e.kind() != FailureKind::kClient) return "wrong kind";
      if (s > 20) return "noticed only after " + std::to_string(s) + " s";
      return e.what();
    }
    return "collective completed without rank 2";
  });
  EXPECT_EQ(errors[2], "reported");
  for (int r : {0, 1}) {
    EXPECT_NE(errors[r].find("rank 2 (algo-3"), std::string::npos) << errors[r];
    EXPECT_NE(errors[r].find("failed in phase 'epoch 4': train.pbr: record 7 is corrupt"), std::string::npos)
        << errors[r];
  }
}

// Five ranks, so that most survivors notice the death after another survivor has already left:
// each must still name the dead rank, not a survivor that left first nor rank 0 (which keeps
// the store up until the others are gone).
TEST(Gloo, ADeadRankIsNamedByEverySurvivor) {
  const int port = FreePort();
  auto errors = RunProcesses(5, 5, [&](int r) -> std::string {
    auto c = JoinGroup(Spec(r, 5, port, 60s));
    float x = 1;
    c->AllReduceSum(&x, 1);
    if (r == 2) ::raise(SIGKILL);
    // Stagger the survivors so they meet the failure at different times.
    std::this_thread::sleep_for(std::chrono::milliseconds(150 * r));
    try {
      for (int i = 0; i < 100; ++i) c->AllReduceSum(&x, 1);
    } catch (const PeerFailure& e) {
      return e.what();
    }
    return "collectives completed without rank 2";
  });
  EXPECT_EQ(errors[2].rfind("no result", 0), 0u) << errors[2];
  for (int r : {0, 1, 3, 4}) {
    EXPECT_EQ(errors[r].rfind("rank 2 (algo-3", 0), 0u) << "rank " << r << ": " << errors[r];
    EXPECT_NE(errors[r].find("exited without a reason"), std::string::npos) << errors[r];
  }
}

// Where a rank ended by its watchdog writes what it was told (the handler runs on the watchdog
// thread while the collective is still blocked, and must end the process).
std::string g_stuck_result;
std::chrono::steady_clock::time_point g_stuck_since;
[[noreturn]] void RecordStuck(FailureKind kind, const char* reason) {
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - g_stuck_since).count();
  std::ofstream(g_stuck_result) << static_cast<int>(s) << " s, stuck ("
                                << (kind == FailureKind::kClient ? "client" : "other") << "): " << reason;
  ::_exit(0);
}

// The transport can miss a failure: here rank 0 publishes one ("disk full") but keeps its
// connections open and never joins the collective, as a rank stuck on its way out would. The
// ranks waiting in the collective must not wait for the 120 s deadline: their watchdogs see the
// failure in the store and end them after the grace (2 s here), naming rank 0 and its reason.
TEST(Gloo, TheWatchdogEndsARankStuckInACollectiveAfterAPeerFailed) {
  const int port = FreePort();
  test::TempDir dir;
  const auto t0 = std::chrono::steady_clock::now();
  auto results = RunProcesses(3, 3, [&](int r) -> std::string {
    GroupSpec spec = Spec(r, 3, port, 120s);
    spec.watchdog_grace = 2s;
    auto c = JoinGroup(spec);
    c->SetPhase("epoch 2");
    float x = 1;
    c->AllReduceSum(&x, 1);
    if (r == 0) {
      StoreClient store("127.0.0.1", static_cast<uint16_t>(port), 5s, 5s);
      store.Set("failed/0", {'C', 'e', 'p', 'o', 'c', 'h', ' ', '2', '\n', 'd', 'i', 's', 'k', ' ', 'f', 'u', 'l', 'l'});
      store.Set("failed/any", {'0'});
      std::this_thread::sleep_for(15s);  // connections open, never in the collective
      return "rank 0 done";
    }
    g_stuck_result = dir.path() + "/stuck" + std::to_string(r);
    g_stuck_since = std::chrono::steady_clock::now();
    SetStuckCollectiveHandler(&RecordStuck);
    c->AllReduceSum(&x, 1);
    return "the collective completed without rank 0";
  }, 60s);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (int r : {1, 2}) {
    const std::string got = test::ReadFile(dir.path() + "/stuck" + std::to_string(r));
    const size_t at = got.find(" s, stuck (client): rank 0 (algo-1");
    ASSERT_NE(at, std::string::npos) << "rank " << r << ": " << got << " / " << results[r];
    EXPECT_LE(std::stoi(got.substr(0, at)), 10) << "ended long after the grace: " << got;
    EXPECT_NE(got.find("failed in phase 'epoch 2': disk full"), std::string::npos) << got;
    EXPECT_NE(got.find("its watchdog ended it"), std::string::npos) << got;
  }
  EXPECT_EQ(results[0], "rank 0 done");
  EXPECT_LT(secs, 60) << "the stuck ranks waited for the deadline";  // rank 0 alone takes 15 s
}

// A second process with a rank that has joined (the same RANK started twice) is refused at once,
// with the reason, and the group it tried to join carries on.
TEST(Gloo, ASecondProcessWithTheSameRankIsRefusedAtOnce) {
  const int port = FreePort();
  const auto results = RunProcesses(2, 2, [port](int rank) -> std::string {
    auto c = JoinGroup(Spec(rank, 2, port));
    if (rank == 1) {
      const auto t0 = std::chrono::steady_clock::now();
      try {
        JoinGroup(Spec(1, 2, port, 20s, 20s));
        return "a second rank 1 joined";
      } catch (const UserError& e) {
        if (std::string(e.what()).find("refused this rank: rank 1 has already joined") == std::string::npos) {
          return std::string("second rank 1: ") + e.what();
        }
      }
      if (std::chrono::steady_clock::now() - t0 > 5s) return "the refusal waited for the rendezvous deadline";
    }
    std::vector<double> v(10, 1.0);
    c->AllReduceSum(v.data(), v.size());
    return v[0] == 2.0 ? "" : "wrong sum";
  });
  EXPECT_EQ(results[0], "");
  EXPECT_EQ(results[1], "");
}

// A client that holds every slot of the store with idle connections (here 3 of 4) only delays
// the ranks: the store closes each newcomer until an idle connection has been idle for the limit
// (1 s here), and the ranks retry until then, instead of failing "the store stopped answering".
TEST(Gloo, ARankJoinsOnceIdleConnectionsHeldEverySlot) {
  const int port = FreePort();
  const auto results = RunProcesses(2, 2, [port](int rank) -> std::string {
    GroupSpec spec = Spec(rank, 2, port);
    spec.store_limits.max_connections = 4;
    spec.store_limits.idle_eviction = 1s;
    std::vector<int> idle;
    if (rank == 1) {
      const auto until = std::chrono::steady_clock::now() + 20s;
      while (idle.size() < 3 && std::chrono::steady_clock::now() < until) {
        const int fd = ConnectLoopback(static_cast<uint16_t>(port));
        if (fd >= 0) {
          idle.push_back(fd);
        } else {
          std::this_thread::sleep_for(10ms);
        }
      }
      if (idle.size() < 3) return "rank 0's store never came up";
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto c = JoinGroup(spec);
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::vector<float> v(1000, static_cast<float>(rank + 1));
    c->AllReduceSum(v.data(), v.size());
    for (float x : v) {
      if (x != 3.0f) return "wrong sum";
    }
    if (rank == 1 && waited < 0.5) return "joined before any idle connection could give way";
    c->Barrier();
    for (int fd : idle) ::close(fd);
    return "";
  });
  EXPECT_EQ(results[0], "");
  EXPECT_EQ(results[1], "");
}

#else
TEST(Gloo, Skipped) { GTEST_SKIP() << "this build has no Gloo (libgloo-dev); the multi-process backend is absent"; }
#endif

TEST(GroupSpec, FromTheEnvironment) {
  for (const char* v : {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
                        "MLFORGE_COLLECTIVE_TIMEOUT_S", "MLFORGE_RENDEZVOUS_TIMEOUT_S"}) {
    ::unsetenv(v);
  }
  EXPECT_FALSE(GroupFromEnvironment().has_value());
  ::setenv("RANK", "1", 1);
  EXPECT_THROW(GroupFromEnvironment(), UserError);  // RANK without WORLD_SIZE
  ::setenv("WORLD_SIZE", "4", 1);
  try {
    GroupFromEnvironment();
    ADD_FAILURE() << "no MASTER_ADDR accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("MASTER_ADDR is not set"), std::string::npos) << e.what();
  }
  ::setenv("MASTER_ADDR", "10.0.0.1", 1);
  ::setenv("MASTER_PORT", "70000", 1);
  try {
    GroupFromEnvironment();
    ADD_FAILURE() << "port 70000 accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("MASTER_PORT='70000'"), std::string::npos) << e.what();
  }
  ::setenv("MASTER_PORT", "29501", 1);
  ::setenv("MLFORGE_COLLECTIVE_TIMEOUT_S", "7", 1);
  auto s = GroupFromEnvironment();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->rank, 1);
  EXPECT_EQ(s->world_size, 4);
  EXPECT_EQ(s->master_addr, "10.0.0.1");
  EXPECT_EQ(s->master_port, 29501);
  EXPECT_EQ(s->collective_timeout, 7s);
  EXPECT_EQ(s->hosts, (std::vector<std::string>{"algo-1", "algo-2", "algo-3", "algo-4"}));
  ::setenv("RANK", "4", 1);
  EXPECT_THROW(GroupFromEnvironment(), UserError);  // RANK >= WORLD_SIZE
  for (const char* v : {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "MLFORGE_COLLECTIVE_TIMEOUT_S"}) {
    ::unsetenv(v);
  }
  GroupSpec h = GroupFromHosts({"algo-1", "algo-2", "algo-3"}, "algo-3");
  EXPECT_EQ(h.rank, 2);
  EXPECT_EQ(h.world_size, 3);
  EXPECT_EQ(h.master_addr, "algo-1");
  EXPECT_EQ(h.master_port, kDefaultMasterPort);
  EXPECT_THROW(GroupFromHosts({"algo-1"}, "algo-9"), UserError);
}

// Hostile clients cannot hurt the store: oversized lengths, unknown ops and junk close only
// their own connection, and other clients keep being served.
TEST(TcpStore, HostileBytesCloseOnlyTheirConnection) {
  StoreServer server(0);
  StoreClient good("127.0.0.1", server.port(), 5s, 5s);
  good.Set("k", {'v', '1'});
  const std::vector<std::string> attacks = {
      std::string("\x01\xff\xff\xff\xff", 5),                     // key length 4 GiB
      std::string("\x01\x01\x00\x00\x00k\xff\xff\xff\x7f", 10),  // value length 2 GiB
      std::string("\x09\x00\x00\x00\x00\x00\x00\x00\x00", 9),    // unknown op
      std::string("\x03\x00\x00\x00\x00\x02\x00\x00\x00-1", 11), // hello with a negative rank
      std::string(100000, '\x02'),                                 // junk
  };
  for (const std::string& bytes : attacks) {
    const int fd = ConnectLoopback(server.port());
    ASSERT_GE(fd, 0);
    (void)!::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    char buf[16];
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    // The server closes the connection (0) or resets it (-1); for the junk it may first answer
    // the requests that parsed, so read until the end.
    ssize_t r;
    while ((r = ::recv(fd, buf, sizeof buf, 0)) > 0) {
    }
    EXPECT_LE(r, 0);
    ::close(fd);
  }
  std::vector<char> v;
  ASSERT_TRUE(good.TryGet("k", &v));
  EXPECT_EQ(std::string(v.begin(), v.end()), "v1");
  EXPECT_FALSE(good.TryGet("missing", &v));
  EXPECT_THROW(good.Get("missing", 200ms), StoreError);
  EXPECT_THROW(good.Set(std::string(5000, 'k'), {}), StoreError);  // over the key limit, refused locally
  // An impostor claiming a live rank is refused with the reason, and its leaving is no death of
  // that rank (the collective watchdogs act on deaths).
  good.Hello(3);
  {
    StoreClient impostor("127.0.0.1", server.port(), 5s, 5s);
    try {
      impostor.Hello(3);
      ADD_FAILURE() << "a second Hello for rank 3 was accepted";
    } catch (const StoreRefused& e) {
      EXPECT_NE(std::string(e.what()).find("rank 3 has already joined"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(good.DeadRanks().empty());
}

// A client that sends requests and never reads the replies holds one pending reply, never the
// store's thread: the others' round trips stay fast (a blocking send used to stall every client
// for the 5 s send timeout), and the store keeps working after it leaves.
TEST(TcpStore, AClientThatNeverReadsDoesNotStallTheOthers) {
  StoreServer server(0);
  StoreClient good("127.0.0.1", server.port(), 5s, 5s);
  good.Set("big", std::vector<char>(size_t{8} << 20, 'x'));
  const int fd = ConnectLoopback(server.port());
  ASSERT_GE(fd, 0);
  // 64 pipelined gets of the 8 MiB value: 512 MiB of replies that nobody reads.
  const std::string get = std::string("\x02\x03\x00\x00\x00" "big" "\x00\x00\x00\x00", 12);
  std::string burst;
  for (int i = 0; i < 64; ++i) burst += get;
  ASSERT_EQ(::send(fd, burst.data(), burst.size(), MSG_NOSIGNAL), static_cast<ssize_t>(burst.size()));
  std::this_thread::sleep_for(100ms);  // the store has taken the burst and is stuck on the first reply
  double worst = 0;
  for (int i = 0; i < 20; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string key = "k" + std::to_string(i);
    good.Set(key, {'v'});
    std::vector<char> v;
    ASSERT_TRUE(good.TryGet(key, &v));
    worst = std::max(worst, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  EXPECT_LT(worst, 1.0) << "a round trip waited " << worst << " s behind the client that never reads";
  ::close(fd);
  std::vector<char> v;
  ASSERT_TRUE(good.TryGet("big", &v));
  EXPECT_EQ(v.size(), size_t{8} << 20);
}

// Clients that ask for a large value and never read hold the store's reply buffers up to its bound
// (StoreLimits::max_buffered, 16 MiB here): the largest holder is closed to make room, so a rank
// that asks next (for a few bytes or for the same large value) is answered, never dropped.
TEST(TcpStore, HogsOfUnreadRepliesAreClosedNotTheRankThatAsksNext) {
  StoreLimits limits;
  limits.max_buffered = size_t{16} << 20;
  StoreServer server(0, limits);
  StoreClient good("127.0.0.1", server.port(), 5s, 5s);
  good.Hello(0);
  const size_t big = size_t{4} << 20;
  good.Set("big", std::vector<char>(big, 'x'));
  const std::string get = std::string("\x02\x03\x00\x00\x00" "big" "\x00\x00\x00\x00", 12);
  std::string burst;
  for (int i = 0; i < 16; ++i) burst += get;
  std::vector<int> hogs;
  for (int h = 0; h < 8; ++h) {  // 8 x 16 x 4 MiB of replies nobody reads: far past 16 MiB
    const int fd = ConnectLoopback(server.port());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::send(fd, burst.data(), burst.size(), MSG_NOSIGNAL), static_cast<ssize_t>(burst.size()));
    hogs.push_back(fd);
  }
  std::this_thread::sleep_for(300ms);
  for (int i = 0; i < 10; ++i) {
    const std::string key = "k" + std::to_string(i);
    good.Set(key, {'v'});
    std::vector<char> v;
    ASSERT_TRUE(good.TryGet(key, &v)) << "round trip " << i;
    ASSERT_TRUE(good.TryGet("big", &v)) << "round trip " << i;
    ASSERT_EQ(v.size(), big);
  }
  EXPECT_TRUE(good.DeadRanks().empty());
  // Some hogs were closed: reading a closed one ends (after what the kernel had buffered).
  int closed = 0;
  for (int fd : hogs) {
    timeval tv{0, 200000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::vector<char> sink(size_t{1} << 20);
    for (;;) {
      const ssize_t r = ::recv(fd, sink.data(), sink.size(), 0);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        ++closed;
        break;
      }
      if (r < 0) break;  // still open: nothing more within 200 ms
    }
    ::close(fd);
  }
  EXPECT_GT(closed, 0);
}

// Connections that sit idle without saying Hello (a client that opens them by the thousand and
// waits, or sends half a request) give way when every slot is taken: the oldest goes, and a rank
// that arrives next joins. A rank's own connection (Hello) and a busy one (a watchdog sets its
// heartbeat every 0.5 s) are never the ones to go; when only such connections remain, the
// newcomer is the one closed. A Hello for a rank the group does not have is refused.
// (Gloo.ARankJoinsOnceIdleConnectionsHeldEverySlot: the ranks retry until a slot frees.)
TEST(TcpStore, IdleAnonymousConnectionsGiveWayToARankWhenEverySlotIsTaken) {
  StoreLimits limits;
  limits.max_connections = 8;
  limits.idle_eviction = 1500ms;  // far above any stall of this test between two requests
  limits.ranks = 4;
  StoreServer server(0, limits);
  StoreClient rank0("127.0.0.1", server.port(), 5s, 5s);
  rank0.Hello(0);
  StoreClient busy("127.0.0.1", server.port(), 5s, 5s);  // a watchdog: requests, no Hello
  std::vector<int> idle;
  for (int i = 0; i < 6; ++i) {  // the 6 slots left
    const int fd = ConnectLoopback(server.port());
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
    std::this_thread::sleep_for(20ms);  // in this order: the first is the oldest
  }
  (void)!::send(idle[0], "\x02\x03\x00", 3, MSG_NOSIGNAL);  // half a request is no activity
  // Past the idle limit, with the busy client still active.
  for (int i = 0; i < 30; ++i) {
    busy.Set("alive/1", {'b'});
    std::this_thread::sleep_for(60ms);
  }
  const auto closed = [](int fd) {
    timeval tv{0, 300000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char b;
    const ssize_t r = ::recv(fd, &b, 1, 0);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  };
  // Rank 1 arrives: the oldest idle connection gives way.
  StoreClient rank1("127.0.0.1", server.port(), 5s, 5s);
  rank1.Hello(1);
  rank1.Set("info/1", {'1'});
  EXPECT_TRUE(closed(idle[0]));
  EXPECT_FALSE(closed(idle[1]));
  // Its watchdog and 4 more: the other idle ones go, oldest first.
  std::vector<std::unique_ptr<StoreClient>> more;
  for (int i = 0; i < 5; ++i) {
    more.push_back(std::make_unique<StoreClient>("127.0.0.1", server.port(), 5s, 5s));
    more.back()->Set("more/" + std::to_string(i), {'m'});
  }
  for (size_t i = 1; i < idle.size(); ++i) EXPECT_TRUE(closed(idle[i])) << i;
  // Now every slot holds a rank or a connection active within the limit: the newcomer is closed.
  busy.Set("alive/1", {'c'});
  {
    StoreClient late("127.0.0.1", server.port(), 5s, 5s);
    EXPECT_THROW(late.Set("late", {'l'}), StoreError);
  }
  std::vector<char> v;
  busy.Set("alive/1", {'c'});
  ASSERT_TRUE(busy.TryGet("info/1", &v));
  ASSERT_TRUE(rank0.TryGet("more/4", &v));
  EXPECT_TRUE(rank0.DeadRanks().empty());
  // A rank outside the group's 4 is refused, with the reason.
  more.pop_back();
  std::this_thread::sleep_for(100ms);
  StoreClient stray("127.0.0.1", server.port(), 5s, 5s);
  try {
    stray.Hello(4);
    ADD_FAILURE() << "rank 4 joined a group of 4";
  } catch (const StoreRefused& e) {
    EXPECT_NE(std::string(e.what()).find("rank 4 is outside this group of 4 ranks"), std::string::npos) << e.what();
  }
  for (int fd : idle) ::close(fd);
}

// A client that stores junk up to the bound (StoreLimits::max_stored, 4 MiB here) loses its values
// and its connection when a rank's Set needs the room, and so do the values a departed client left;
// a Set larger than everything another client holds is the setter's own fault, and closes it.
TEST(TcpStore, AClientStoringJunkLosesItsValuesNotTheRanksSet) {
  StoreLimits limits;
  limits.max_stored = size_t{4} << 20;
  StoreServer server(0, limits);
  StoreClient junk("127.0.0.1", server.port(), 5s, 5s);
  for (int i = 0; i < 3; ++i) junk.Set("junk" + std::to_string(i), std::vector<char>(size_t{1} << 20, 'j'));
  StoreClient rank("127.0.0.1", server.port(), 5s, 5s);
  rank.Hello(1);
  rank.Set("a", std::vector<char>(size_t{2} << 20, 'a'));
  rank.Set("a", std::vector<char>(size_t{2} << 20, 'b'));  // replacing a value counts it once
  std::vector<char> v;
  ASSERT_TRUE(rank.TryGet("a", &v));
  EXPECT_EQ(v.size(), size_t{2} << 20);
  EXPECT_EQ(v[0], 'b');
  EXPECT_FALSE(rank.TryGet("junk0", &v));
  EXPECT_THROW(junk.Set("more", {'m'}), StoreError);  // the junk client was closed
  EXPECT_TRUE(rank.DeadRanks().empty());
  // Values of a rank that leaves stay readable (its failure reason must outlive it).
  {
    StoreClient leaving("127.0.0.1", server.port(), 5s, 5s);
    leaving.Hello(2);
    leaving.Set("reason", {'r'});
  }
  ASSERT_TRUE(rank.Get("reason", 2s).size() == 1);
  // Many tiny keys count their bookkeeping too (256 bytes each): a client setting them without end
  // is closed at the bound, and dropping it costs its own keys, not every key's. (The rank first
  // shrinks its value to what ranks really store: were it still the largest holder, it would be
  // the one closed.)
  rank.Set("a", {'s'});
  {
    StoreClient tiny("127.0.0.1", server.port(), 5s, 5s);
    int set = 0;
    try {
      for (; set < 100000; ++set) tiny.Set("t" + std::to_string(set), {'x'});
    } catch (const StoreError&) {
    }
    EXPECT_LT(set, 20000) << "4 MiB should hold about 16,000 tiny entries";
    EXPECT_GT(set, 5000);
  }
  rank.Set("after", {'y'});
  ASSERT_TRUE(rank.TryGet("after", &v));
  ASSERT_TRUE(rank.TryGet("a", &v));
  EXPECT_EQ(v, std::vector<char>{'s'});
  // Junk left by a client that has gone is evictable too: it must not fill the store for good.
  {
    StoreClient gone("127.0.0.1", server.port(), 5s, 5s);
    for (int i = 0; i < 3; ++i) gone.Set("gone" + std::to_string(i), std::vector<char>(size_t{1} << 20, 'g'));
  }
  rank.Set("b", std::vector<char>(size_t{2} << 20, 'b'));
  ASSERT_TRUE(rank.TryGet("b", &v));
  EXPECT_FALSE(rank.TryGet("gone0", &v));
  ASSERT_TRUE(rank.TryGet("reason", &v));  // the departed rank's few bytes stay
  EXPECT_TRUE(rank.DeadRanks() == std::vector<int>{2});
  // 5 MiB: more than the bound itself.
  EXPECT_THROW(rank.Set("huge", std::vector<char>(size_t{5} << 20, 'h')), StoreError);
}

TEST(TcpStore, UnreachableMasterFailsWithinItsDeadline) {
  const int port = FreePort();  // nobody listens there
  const auto t0 = std::chrono::steady_clock::now();
  try {
    StoreClient c("127.0.0.1", static_cast<uint16_t>(port), 500ms, 1s);
    ADD_FAILURE() << "connected to nothing";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot reach the rendezvous store of rank 0"), std::string::npos);
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  EXPECT_THROW(StoreClient("not-an-address", 1, 100ms, 100ms), StoreError);
}

}  // namespace
}  // namespace mlforge::comm
