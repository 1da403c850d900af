// `mlforge container train|serve`: the SageMaker container contract (SPEC.md 2). The /opt/ml root
// comes from --opt-ml, else $MLFORGE_OPT_ML, else /opt/ml, so the contract runs without Docker.
#include <memory>
#include <string>
#include <utility>

#include "algos/algorithms.h"
#include "cli/cli.h"
#include "container/config.h"
#include "container/server.h"
#include "container/train.h"
#include "core/error.h"

namespace mlforge::cli {
namespace {

struct ContainerArgs {
  std::string opt_ml;
  std::string algorithm;
};

// The runner reports failures itself (<opt-ml>/output/failure + a log line on stderr) and
// returns container::ExitCode (0, 1 algorithm error, 2 client error, 143 stopped).
int RunContainerTrainCommand(const ContainerArgs& args, const GlobalOptions& global) {
  container::TrainOptions options;
  options.threads = global.threads;
  options.log_level = global.log_level;
  // An empty root / algorithm lets the runner apply $MLFORGE_OPT_ML / $MLFORGE_ALGORITHM.
  return container::RunContainerTrain(args.opt_ml, args.algorithm, algos::BuiltinAlgorithms(), options);
}

// SageMaker's `serve`: the model SageMaker extracted into <opt-ml>/model, every setting from the
// environment (SPEC.md 3.2).
int RunContainerServeCommand(const ContainerArgs& args, const GlobalOptions& global) {
  container::ServeOptions o;
  o.model_path = container::ResolveOptMl(args.opt_ml).model_dir;
  o.algorithm = args.algorithm;
  o.workers = global.threads > 0 ? global.threads : 0;
  container::ApplyServeEnvironment(&o);
  return RunServer(std::move(o));
}

}  // namespace

void RegisterContainer(CLI::App& app, const GlobalOptions& global, Registry& registry) {
  CLI::App* container =
      app.add_subcommand("container", "The SageMaker container entry points (train, serve)");
  container->require_subcommand(1);

  auto targs = std::make_shared<ContainerArgs>();
  CLI::App* train = container->add_subcommand(
      "train", "Run a training job from <opt-ml>/input (writes <opt-ml>/model, or <opt-ml>/output/failure)");
  train->add_option("--opt-ml", targs->opt_ml, "The /opt/ml root (default: $MLFORGE_OPT_ML, else /opt/ml)");
  train->add_option("--algorithm", targs->algorithm,
                    "The algorithm (default: $MLFORGE_ALGORITHM, or the one this image was built for)");
  registry.Add(train, [targs, &global] { return RunContainerTrainCommand(*targs, global); });

  auto sargs = std::make_shared<ContainerArgs>();
  CLI::App* serve = container->add_subcommand(
      "serve", "Serve <opt-ml>/model (model.tar.gz or its files) on $SAGEMAKER_BIND_TO_PORT, else 8080");
  serve->add_option("--opt-ml", sargs->opt_ml, "The /opt/ml root (default: $MLFORGE_OPT_ML, else /opt/ml)");
  serve->add_option("--algorithm", sargs->algorithm, "Override the algorithm detected from the model");
  registry.Add(serve, [sargs, &global] { return RunContainerServeCommand(*sargs, global); });
}

}  // namespace mlforge::cli
