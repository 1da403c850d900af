// `mlforge launch -n N -- COMMAND...`: starts N local ranks of an mlforge command (normally
// `train ...`) with the variables a launcher sets (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR=127.0.0.1, MASTER_PORT), prefixes their output with "[rank r] ", and supervises
// them: SIGTERM/SIGINT to the launcher goes to every rank; when one rank fails the others are
// given --grace seconds to fail on their own (they normally do at once, naming it), then SIGTERM,
// then SIGKILL. Exit status: 0 when every rank succeeded, else the first failed rank's (a rank
// killed by signal s counts as 128 + s).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli.h"
#include "comm/tcp_store.h"
#include "core/error.h"
#include "core/stop.h"

namespace mlforge::cli {
namespace {

struct LaunchArgs {
  int ranks = 2;
  int master_port = 0;
  int collective_timeout_s = 0;
  double grace_s = 30;
  std::vector<std::string> command;
};

int FreePort() {
  const int port = comm::FreeLoopbackPort();
  MLF_EXPECTS(port > 0, "launch: could not find a free TCP port on the loopback interface; pass --master-port");
  return port;
}

// Splits what arrives on a pipe into lines and writes each with the rank's prefix.
struct Stream {
  int fd = -1;
  int out = 2;
  std::string pending;
};

void Flush(Stream& s, const std::string& prefix, bool all) {
  size_t pos = 0;
  for (;;) {
    size_t nl = s.pending.find('\n', pos);
    if (nl == std::string::npos) break;
    std::string line = prefix + s.pending.substr(pos, nl - pos + 1);
    (void)!::write(s.out, line.data(), line.size());
    pos = nl + 1;
  }
  s.pending.erase(0, pos);
  if (all && !s.pending.empty()) {
    std::string line = prefix + s.pending + "\n";
    (void)!::write(s.out, line.data(), line.size());
    s.pending.clear();
  }
}

struct Rank {
  pid_t pid = -1;
  bool done = false;
  int code = 0;  // exit status, or 128 + signal
  Stream streams[2];
};

int RunLaunch(const LaunchArgs& args) {
  MLF_EXPECTS(args.ranks >= 1 && args.ranks <= 1024, "launch -n {}: expected 1..1024 ranks", args.ranks);
  MLF_EXPECTS(!args.command.empty(), "launch: no command given; e.g. mlforge launch -n 2 -- train kmeans ...");
  const int port = args.master_port > 0 ? args.master_port : FreePort();
  std::vector<std::string> argv_s = {"mlforge"};
  argv_s.insert(argv_s.end(), args.command.begin(), args.command.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  MLF_EXPECTS(n > 0, "launch: cannot find this executable (/proc/self/exe): {}", std::strerror(errno));
  self[n] = '\0';

  std::string shown;
  for (const auto& a : args.command) shown += " " + a;
  ::fprintf(stderr, "launch: %d rank(s) of 'mlforge%s', rendezvous at 127.0.0.1:%d\n", args.ranks, shown.c_str(),
            port);
  std::vector<Rank> ranks(static_cast<size_t>(args.ranks));
  const pid_t parent = ::getpid();
  for (int r = 0; r < args.ranks; ++r) {
    int pipes[2][2];
    for (auto& p : pipes) MLF_EXPECTS(::pipe2(p, O_CLOEXEC) == 0, "launch: pipe(): {}", std::strerror(errno));
    const pid_t pid = ::fork();
    MLF_EXPECTS(pid >= 0, "launch: fork(): {}", std::strerror(errno));
    if (pid == 0) {
      // The child: die with the launcher, report through the pipes, become rank r.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(143);
      ::dup2(pipes[0][1], 1);
      ::dup2(pipes[1][1], 2);
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(args.ranks).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(args.ranks).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      if (args.collective_timeout_s > 0) {
        ::setenv("MLFORGE_COLLECTIVE_TIMEOUT_S", std::to_string(args.collective_timeout_s).c_str(), 1);
      }
      ::signal(SIGTERM, SIG_DFL);
      ::signal(SIGINT, SIG_DFL);
      ::execv(self, argv.data());
      ::_exit(127);
    }
    Rank& rk = ranks[static_cast<size_t>(r)];
    rk.pid = pid;
    for (int s = 0; s < 2; ++s) {
      ::close(pipes[s][1]);
      rk.streams[s].fd = pipes[s][0];
      rk.streams[s].out = s == 0 ? 1 : 2;
    }
  }

  StopToken stop = StopToken::FromSignals();
  bool forwarded = false;
  int first_failed = -1;
  std::chrono::steady_clock::time_point term_at{}, kill_at{};
  bool termed = false, killed = false;
  const auto grace = std::chrono::milliseconds(static_cast<int64_t>(args.grace_s * 1000));
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<std::pair<int, int>> owner;
    for (int r = 0; r < args.ranks; ++r) {
      for (int s = 0; s < 2; ++s) {
        if (ranks[r].streams[s].fd >= 0) {
          fds.push_back({ranks[r].streams[s].fd, POLLIN, 0});
          owner.emplace_back(r, s);
        }
      }
    }
    if (!fds.empty()) ::poll(fds.data(), fds.size(), 100);
    else std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      Stream& st = ranks[owner[i].first].streams[owner[i].second];
      const std::string prefix = "[rank " + std::to_string(owner[i].first) + "] ";
      char buf[65536];
      ssize_t got = ::read(st.fd, buf, sizeof buf);
      if (got > 0) {
        st.pending.append(buf, static_cast<size_t>(got));
        Flush(st, prefix, false);
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        Flush(st, prefix, true);
        ::close(st.fd);
        st.fd = -1;
      }
    }
    bool all_done = true;
    for (int r = 0; r < args.ranks; ++r) {
      Rank& rk = ranks[r];
      if (rk.done) continue;
      int status = 0;
      if (::waitpid(rk.pid, &status, WNOHANG) == rk.pid) {
        rk.done = true;
        rk.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (rk.code != 0 && first_failed < 0) {
          first_failed = r;
          ::fprintf(stderr, "launch: rank %d exited with status %d; the others have %.0f s to finish\n", r, rk.code,
                    args.grace_s);
          term_at = std::chrono::steady_clock::now() + grace;
        }
      } else {
        all_done = false;
      }
    }
    bool streams_open = false;
    for (auto& rk : ranks) streams_open |= rk.streams[0].fd >= 0 || rk.streams[1].fd >= 0;
    if (all_done && !streams_open) break;
    if (all_done) continue;  // drain what is left in the pipes
    const auto now = std::chrono::steady_clock::now();
    if (stop.stop_requested() && !forwarded) {
      forwarded = true;
      ::fprintf(stderr, "launch: stop requested; sending SIGTERM to every rank\n");
      for (auto& rk : ranks) {
        if (!rk.done) ::kill(rk.pid, SIGTERM);
      }
      if (first_failed < 0) term_at = now + grace;
    }
    if ((first_failed >= 0 || forwarded) && !termed && now >= term_at) {
      termed = true;
      kill_at = now + std::chrono::seconds(5);
      for (int r = 0; r < args.ranks; ++r) {
        if (ranks[r].done) continue;
        ::fprintf(stderr, "launch: rank %d is still running; sending SIGTERM\n", r);
        ::kill(ranks[r].pid, SIGTERM);
        ::kill(ranks[r].pid, SIGCONT);  // a stopped rank cannot act on SIGTERM
      }
    }
    if (termed && !killed && now >= kill_at) {
      killed = true;
      for (int r = 0; r < args.ranks; ++r) {
        if (ranks[r].done) continue;
        ::fprintf(stderr, "launch: rank %d ignored SIGTERM; sending SIGKILL\n", r);
        ::kill(ranks[r].pid, SIGKILL);
      }
    }
  }
  if (first_failed < 0 && forwarded) return kExitStopped;
  if (first_failed < 0) return 0;
  std::string summary;
  for (int r = 0; r < args.ranks; ++r) summary += " " + std::to_string(r) + ":" + std::to_string(ranks[r].code);
  ::fprintf(stderr, "launch: failed; first rank %d (status %d); rank:status%s\n", first_failed,
            ranks[first_failed].code, summary.c_str());
  return ranks[first_failed].code;
}

}  // namespace

void RegisterLaunch(CLI::App& app, const GlobalOptions& global, Registry& registry) {
  (void)global;
  auto largs = std::make_shared<LaunchArgs>();
  CLI::App* launch = app.add_subcommand(
      "launch", "Run N local ranks of an mlforge command as one group, e.g. launch -n 4 -- train kmeans ...");
  launch->add_option("-n,--ranks", largs->ranks, "Number of ranks (processes) to start")->capture_default_str();
  launch->add_option("--master-port", largs->master_port, "Rendezvous TCP port on 127.0.0.1 (default: a free one)");
  launch->add_option("--collective-timeout", largs->collective_timeout_s,
                     "Deadline of every collective in seconds (sets MLFORGE_COLLECTIVE_TIMEOUT_S; default 1800)");
  launch->add_option("--grace", largs->grace_s,
                     "Seconds the other ranks get to exit after one fails, before SIGTERM and SIGKILL")
      ->capture_default_str();
  launch->add_option("command", largs->command, "The mlforge command every rank runs (after --)")->required();
  registry.Add(launch, [largs] { return RunLaunch(*largs); });
}

}  // namespace mlforge::cli
