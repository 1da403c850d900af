// `mlforge train`: local training through the container's training entry, no /opt/ml needed
// (`predict` is in cmd_predict.cc, `serve` in cmd_serve.cc).
#include <memory>
#include <string>
#include <vector>

#include "algos/algorithms.h"
#include "cli/cli.h"
#include "container/train.h"
#include "core/error.h"
#include "core/resources.h"

namespace mlforge::cli {

namespace {

struct TrainArgs {
  std::string algorithm;
  std::string train, validation, test;
  std::string model_dir;
  std::vector<std::string> hp;             // KEY=VALUE
  std::vector<std::string> content_types;  // CHANNEL=TYPE
  std::string device = "auto";
  std::string failure_file;
  std::vector<std::string> distributions;  // CHANNEL=FullyReplicated|ShardedByS3Key
  std::string replicated_reads;            // split | all ("" = MLFORGE_REPLICATED_READS)
  int collective_timeout_s = 0;
};

// Failures are reported by the training runner itself (log line on stderr + optional failure
// file) and come back as its exit code (container::ExitCode: 0, 1, 2, 143).
int RunTrain(const TrainArgs& args, const GlobalOptions& global) {
  container::LocalTrainArgs local;
  local.algorithm = args.algorithm;
  local.channels["train"] = {args.train};
  if (!args.validation.empty()) local.channels["validation"] = {args.validation};
  if (!args.test.empty()) local.channels["test"] = {args.test};
  for (const auto& [channel, type] : container::ParseKeyValues(args.content_types, "--content-type")) {
    MLF_EXPECTS(local.channels.count(channel),
                "--content-type {}={}: there is no '{}' channel; use train, "
                "validation or test for a channel given on the command line",
                channel, type, channel);
    local.content_types[channel] = type;
  }
  for (const auto& [channel, dist] : container::ParseKeyValues(args.distributions, "--distribution")) {
    MLF_EXPECTS(local.channels.count(channel), "--distribution {}={}: there is no '{}' channel", channel, dist,
                channel);
    MLF_EXPECTS(dist == "FullyReplicated" || dist == "ShardedByS3Key",
                "--distribution {}={}: expected FullyReplicated or ShardedByS3Key", channel, dist);
    if (dist == "ShardedByS3Key") local.sharded_by_key.insert(channel);
  }
  local.split_sharded_files = true;  // every rank is given the same paths; each keeps its share
  if (!args.replicated_reads.empty()) local.replicate_reads = args.replicated_reads == "all";
  local.hyperparameters = args.hp;
  local.model_dir = args.model_dir;
  local.failure_file = args.failure_file;
  container::TrainOptions options;
  options.device = ParseDeviceRequest(args.device);
  options.threads = global.threads;
  options.log_level = global.log_level;
  options.collective_timeout_s = args.collective_timeout_s;
  return container::TrainLocal(local, algos::BuiltinAlgorithms(), options);
}

}  // namespace

void RegisterTrain(CLI::App& app, const GlobalOptions& global, Registry& registry) {
  auto targs = std::make_shared<TrainArgs>();
  CLI::App* train = app.add_subcommand(
      "train", "Train ALGO on local files/directories (the container contract without /opt/ml)");
  train
      ->add_option("ALGO", targs->algorithm,
                   "The SageMaker algorithm name; this build has: " +
                       algos::AlgorithmNames(algos::BuiltinAlgorithms()))
      ->required();
  train->add_option("--train", targs->train, "Training channel: a file or a directory of files")->required();
  train->add_option("--validation", targs->validation, "Validation channel (file or directory)");
  train->add_option("--test", targs->test, "Test channel (file or directory)");
  train->add_option("--model-dir", targs->model_dir, "Where the model artifacts (model_algo-1) are written")
      ->required();
  train->add_option("--hp", targs->hp, "Hyperparameter KEY=VALUE (repeatable), as in hyperparameters.json")
      ->allow_extra_args(false);
  train
      ->add_option(
          "--content-type", targs->content_types,
          "CHANNEL=TYPE (repeatable), e.g. train=text/csv;label_size=0 (default: from the extension)")
      ->allow_extra_args(false);
  train->add_option("--failure-file", targs->failure_file, "Also write the failure reason to this file");
  train->add_option("--device", targs->device, "auto | cpu | gpu (gpu without one is an error)")
      ->check(CLI::IsMember({"auto", "cpu", "gpu"}, CLI::ignore_case))
      ->capture_default_str();
  train
      ->add_option("--distribution", targs->distributions,
                   "CHANNEL=FullyReplicated|ShardedByS3Key (repeatable). With several ranks (RANK/WORLD_SIZE, "
                   "e.g. under `mlforge launch`), ShardedByS3Key gives rank r files r, r+N, ... of the channel; "
                   "FullyReplicated (default) splits the records between ranks")
      ->allow_extra_args(false);
  train
      ->add_option("--replicated-reads", targs->replicated_reads,
                   "FullyReplicated with several ranks: split (default; no work repeated) or all (every rank "
                   "trains on every record, as SageMaker's built-ins do)")
      ->check(CLI::IsMember({"split", "all"}));
  train->add_option("--collective-timeout", targs->collective_timeout_s,
                    "Deadline of every collective in seconds with several ranks (default: "
                    "MLFORGE_COLLECTIVE_TIMEOUT_S, else 1800)")
      ->check(CLI::PositiveNumber);
  registry.Add(train, [targs, &global] { return RunTrain(*targs, global); });
}

}  // namespace mlforge::cli
