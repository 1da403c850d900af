// mlforge: the command line entry point. Parses with CLI11, runs the selected leaf command and is
// the one place where exceptions become exit codes (the table is in cli/cli.h).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "core/error.h"
#include "core/log.h"
#include "core/stop.h"

namespace {

// One line on stderr: a multi-line message (e.g. from a nested library) would break the
// "one-line reason" contract that scripts and the acceptance checks read.
void PrintError(const char* prefix, const std::string& message) {
  std::string line = message;
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::fprintf(stderr, "mlforge: %s: %s\n", prefix, line.c_str());
}

// CLI11 reports "A subcommand is required" for `mlforge bogus` because requirements are checked
// before leftover arguments; name the unknown command and the valid ones instead.
std::string UnknownCommandMessage(const CLI::App& app) {
  const CLI::App* deepest = &app;
  std::string path = app.get_name();
  for (bool descended = true; descended;) {
    descended = false;
    for (const CLI::App* sub : deepest->get_subcommands({})) {
      if (sub->parsed()) {
        deepest = sub;
        path += " " + sub->get_name();
        descended = true;
        break;
      }
    }
  }
  const std::vector<std::string> rest = app.remaining(true);  // fallthrough hands leftovers up
  if (rest.empty() || rest[0].empty() || rest[0][0] == '-') return "";
  std::string names;
  for (const CLI::App* sub : deepest->get_subcommands({})) names += (names.empty() ? "" : ", ") + sub->get_name();
  return "unknown command '" + rest[0] + "' for '" + path + "' (commands: " + names + ")";
}

// Idle OpenMP threads spin by default (libgomp polls up to 300,000 times before sleeping) and take
// the cores from the batch decoders that always run beside them. On 2 cores this stalled small
// jobs 50-90 ms at random (MNIST "is it a zero?": 0.53-0.91x scikit-learn's time to its accuracy,
// 1.02x with passive waiting; 32 linear learner models 5-10% faster per epoch; k-means the same):
// bench/README.md, "OpenMP wait policy". OpenBLAS's worker threads (started as the library loads,
// whether or not the job calls BLAS) likewise spin on sched_yield for 2^28 cycles (about 0.1 s)
// after they start and after each BLAS call: 16% of the CPU samples of a 0.15 s linear learner job
// that never calls BLAS, 11% of its wall time (bench/README.md, "OpenBLAS's idle threads").
// Both libraries read their settings as they load, before main (a variable set from .preinit_array
// or a library constructor was not seen), so for each setting the user did not choose mlforge
// sets its own and executes itself again (same process and arguments; about 7 ms):
// OMP_WAIT_POLICY=passive (unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set) and
// OPENBLAS_THREAD_TIMEOUT=4 (idle OpenBLAS threads sleep at once; a BLAS call wakes them). If that
// exec fails (no /proc), it carries on as it is.
void PreferSleepingIdleThreads(char** argv) {
  bool changed = false;
  if (std::getenv("OMP_WAIT_POLICY") == nullptr && std::getenv("GOMP_SPINCOUNT") == nullptr) {
    changed |= ::setenv("OMP_WAIT_POLICY", "passive", 1) == 0;
  }
  if (std::getenv("OPENBLAS_THREAD_TIMEOUT") == nullptr) {
    changed |= ::setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1) == 0;
  }
  if (!changed) return;
  ::execv("/proc/self/exe", argv);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mlforge;
  PreferSleepingIdleThreads(argv);
  CLI::App app{"mlforge: SageMaker-compatible linear-learner, k-means, PCA and factorization machines "
               "(CPU and CUDA)"};
  app.name("mlforge");
  app.require_subcommand(1);
  // Subcommands created after this inherit it: global options are accepted after the
  // subcommand too (`mlforge data inspect x.pbr --threads 2`).
  app.fallthrough();
  app.footer("Exit status: 0 success, 1 internal error, 2 usage or input error, 143 stopped by SIGTERM/SIGINT.");
  // An input file that shrinks while mapped is an input error (exit 2), not a crash.
  InstallSigbusHandler(2);

  cli::GlobalOptions global;
  app.add_option("--log-level", global.log_level, "Log level: trace, debug, info, warn, error, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.add_option("--threads", global.threads, "Worker threads (0 = all hardware threads)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();

  cli::Registry registry;
  cli::RegisterInfo(app, global, registry);
  cli::RegisterData(app, global, registry);
  cli::RegisterTrain(app, global, registry);
  cli::RegisterPredict(app, global, registry);
  cli::RegisterServe(app, global, registry);
  cli::RegisterContainer(app, global, registry);
  cli::RegisterGenotype(app, global, registry);
  cli::RegisterDemo(app, global, registry);
  cli::RegisterLaunch(app, global, registry);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);  // prints the help of the subcommand that asked for it; exit 0
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string message = UnknownCommandMessage(app);
    if (message.empty()) message = e.what();
    PrintError("error", message + " (run 'mlforge --help' or 'mlforge <command> --help')");
    return cli::kExitUser;
  }

  try {
    log::Init(global.log_level);
    InstallSignalHandlers();
    for (const auto& [sub, action] : registry.commands()) {
      if (sub->parsed()) return action();
    }
    MLF_ASSERT_MSG(false, "no command was selected although the parser accepted the arguments");
  } catch (const UserError& e) {
    PrintError("error", e.what());
    return cli::kExitUser;
  } catch (const StopRequested& e) {
    PrintError("stopped", e.what());
    return cli::kExitStopped;
  } catch (const std::exception& e) {
    PrintError("internal error", e.what());
    return cli::kExitInternal;
  } catch (...) {
    PrintError("internal error", "unknown exception");
    return cli::kExitInternal;
  }
  return cli::kExitInternal;
}
