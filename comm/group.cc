#include "comm/group.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "core/build_config.h"
#include "core/error.h"

namespace mlforge::comm {
namespace {

std::optional<std::string> Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

long ParseInt(const std::string& text, const char* name, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text.c_str(), &end, 10);
  MLF_EXPECTS(errno == 0 && end != text.c_str() && *end == '\0' && v >= lo && v <= hi,
              "environment variable {}='{}': expected an integer in [{}, {}]", name, text, lo, hi);
  return v;
}

std::vector<std::string> AlgoNames(int n) {
  std::vector<std::string> hosts;
  for (int r = 0; r < n; ++r) hosts.push_back("algo-" + std::to_string(r + 1));
  return hosts;
}

}  // namespace

std::optional<GroupSpec> GroupFromEnvironment() {
  auto world = Env("WORLD_SIZE");
  if (!world) {
    MLF_EXPECTS(!Env("RANK"), "RANK is set but WORLD_SIZE is not: set both (or neither, for one process)");
    return std::nullopt;
  }
  GroupSpec s;
  s.world_size = static_cast<int>(ParseInt(*world, "WORLD_SIZE", 1, 65536));
  auto rank = Env("RANK");
  MLF_EXPECTS(rank || s.world_size == 1, "WORLD_SIZE={} is set but RANK is not: set RANK to 0..{}",
              s.world_size, s.world_size - 1);
  s.rank = rank ? static_cast<int>(ParseInt(*rank, "RANK", 0, s.world_size - 1)) : 0;
  if (auto v = Env("LOCAL_WORLD_SIZE")) {
    s.local_world_size = static_cast<int>(ParseInt(*v, "LOCAL_WORLD_SIZE", 1, s.world_size));
  }
  if (auto v = Env("LOCAL_RANK")) s.local_rank = static_cast<int>(ParseInt(*v, "LOCAL_RANK", 0, 65535));
  if (s.world_size > 1) {
    auto addr = Env("MASTER_ADDR");
    MLF_EXPECTS(addr, "WORLD_SIZE={} but MASTER_ADDR is not set: set it to rank 0's host name or address",
                s.world_size);
    s.master_addr = *addr;
    auto port = Env("MASTER_PORT");
    MLF_EXPECTS(port, "WORLD_SIZE={} but MASTER_PORT is not set: set it to a free TCP port on rank 0's host "
                "(e.g. {})", s.world_size, kDefaultMasterPort);
    s.master_port = static_cast<uint16_t>(ParseInt(*port, "MASTER_PORT", 1, 65535));
  }
  s.hosts = AlgoNames(s.world_size);
  s.source = "environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)";
  ApplyTimeoutsFromEnvironment(s);
  return s;
}

GroupSpec GroupFromHosts(const std::vector<std::string>& hosts, const std::string& current_host) {
  MLF_EXPECTS(!hosts.empty(), "resourceconfig lists no hosts");
  auto it = std::find(hosts.begin(), hosts.end(), current_host);
  MLF_EXPECTS(it != hosts.end(), "resourceconfig: current_host '{}' is not in hosts", current_host);
  GroupSpec s;
  s.world_size = static_cast<int>(hosts.size());
  s.rank = static_cast<int>(it - hosts.begin());
  s.master_addr = hosts.front();
  if (auto port = Env("MASTER_PORT")) s.master_port = static_cast<uint16_t>(ParseInt(*port, "MASTER_PORT", 1, 65535));
  s.hosts = hosts;
  s.source = "resourceconfig.json";
  ApplyTimeoutsFromEnvironment(s);
  return s;
}

void ApplyTimeoutsFromEnvironment(GroupSpec& spec) {
  if (auto v = Env("MLFORGE_COLLECTIVE_TIMEOUT_S")) {
    spec.collective_timeout = std::chrono::seconds(ParseInt(*v, "MLFORGE_COLLECTIVE_TIMEOUT_S", 1, 604800));
  }
  if (auto v = Env("MLFORGE_RENDEZVOUS_TIMEOUT_S")) {
    spec.rendezvous_timeout = std::chrono::seconds(ParseInt(*v, "MLFORGE_RENDEZVOUS_TIMEOUT_S", 1, 604800));
  }
}

std::string ResolveHost(const std::string& host, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto wait = std::chrono::milliseconds(100);
  for (;;) {
    std::string best;
    int rc = 0;
    for (int family : {AF_INET, AF_INET6}) {
      addrinfo hints{};
      hints.ai_family = family;
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
      if (rc == 0 && res != nullptr) {
        char buf[NI_MAXHOST];
        if (::getnameinfo(res->ai_addr, res->ai_addrlen, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST) == 0) best = buf;
        ::freeaddrinfo(res);
        if (!best.empty()) return best;
      }
    }
    if (std::chrono::steady_clock::now() + wait > deadline) {
      MLF_FAIL("cannot resolve host '{}' within {} s ({}); check the host list and DNS", host,
               timeout.count() / 1000.0, ::gai_strerror(rc));
    }
    std::this_thread::sleep_for(wait);
    wait = std::min(wait * 2, std::chrono::milliseconds(2000));
  }
}

std::unique_ptr<Communicator> JoinGroup(const GroupSpec& spec) {
  if (spec.world_size <= 1) return MakeSingleProcess();
#if MLFORGE_HAVE_GLOO
  return MakeGlooGroup(spec);
#else
  MLF_FAIL("a group of {} ranks ({}) needs the Gloo backend, but this build has none: install libgloo-dev "
           "(scripts/setup.sh) and rebuild",
           spec.world_size, spec.source);
#endif
}

}  // namespace mlforge::comm
