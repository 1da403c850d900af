// The `mlforge` command line (CLI11). Each cmd_*.cc registers its subcommands; main.cc parses,
// runs the one leaf command that was selected, and maps exceptions to exit codes once:
//   0    success
//   1    internal error (a bug in mlforge: "mlforge: internal error: ...")
//   2    user error: bad input, bad option, unknown subcommand, a model the server cannot load
//        ("mlforge: error: ...")
//   143  stopped by SIGTERM/SIGINT (StopRequested): 128 + SIGTERM, the same code the training
//        runner (container/train.h) returns, so every stopped mlforge command exits alike
// `train` and `container train` return the training runner's codes (container::ExitCode: the same
// values, with the reason logged on stderr and written to the failure file).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace mlforge::cli {

constexpr int kExitOk = 0;
constexpr int kExitInternal = 1;
constexpr int kExitUser = 2;
constexpr int kExitStopped = 143;

// Options that apply to every subcommand (given before or after it).
struct GlobalOptions {
  std::string log_level = "info";  // trace, debug, info, warn, error, off
  int threads = 0;                 // worker threads; <= 0: all hardware threads
};

// A leaf subcommand and what to run when it was selected. Actions throw on failure (UserError,
// StopRequested, anything else) and return the exit code on success (normally 0).
class Registry {
 public:
  void Add(CLI::App* app, std::function<int()> action) { commands_.emplace_back(app, std::move(action)); }
  const std::vector<std::pair<CLI::App*, std::function<int()>>>& commands() const { return commands_; }

 private:
  std::vector<std::pair<CLI::App*, std::function<int()>>> commands_;
};

void RegisterInfo(CLI::App& app, const GlobalOptions& global, Registry& registry);
void RegisterData(CLI::App& app, const GlobalOptions& global, Registry& registry);
void RegisterTrain(CLI::App& app, const GlobalOptions& global, Registry& registry);
// predict: a model (directory, model.tar.gz or model_algo-1) over a file -> the endpoint's response
void RegisterPredict(CLI::App& app, const GlobalOptions& global, Registry& registry);
// serve: the HTTP endpoint (container/server.h) for a model; registered after predict (help order)
void RegisterServe(CLI::App& app, const GlobalOptions& global, Registry& registry);
void RegisterContainer(CLI::App& app, const GlobalOptions& global, Registry& registry);
// demo: VCF (or synthetic genotypes) -> recordIO -> k-means -> ARI against population labels
void RegisterDemo(CLI::App& app, const GlobalOptions& global, Registry& registry);
// genotype: PCA of VCF/BCF genotypes with plink2's definition and files, projection of new samples
void RegisterGenotype(CLI::App& app, const GlobalOptions& global, Registry& registry);
// launch: N local ranks of an mlforge command as one group (RANK, WORLD_SIZE, MASTER_ADDR, ...)
void RegisterLaunch(CLI::App& app, const GlobalOptions& global, Registry& registry);

}  // namespace mlforge::cli

namespace mlforge::container {
struct ServeOptions;
}

namespace mlforge::cli {

// Runs the HTTP server until SIGTERM/SIGINT (serve and container serve); returns its exit code.
int RunServer(container::ServeOptions options);

}  // namespace mlforge::cli
