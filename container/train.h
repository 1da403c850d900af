// Running a training job: the `train` half of the container contract (SPEC.md 2.1-2.8) and the
// `mlforge train ALGO ...` command, which share every step after their inputs are gathered:
//   pick the algorithm -> parse and validate hyperparameters -> check channels -> log the final
//   configuration -> create Resources -> train into a staging directory -> move the files into
//   the model directory (rename, atomic per file) only when training succeeded.
// Any failure leaves no model files, writes the reason to the failure file (first line: the
// user-facing reason; SageMaker shows the first 1024 characters as FailureReason) and to the
// log on stderr, and returns a non-zero exit code.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "algos/algorithm.h"
#include "comm/communicator.h"
#include "container/config.h"
#include "core/resources.h"
#include "core/stop.h"

namespace mlforge::container {

// Process exit codes of a training run. SageMaker only distinguishes zero from non-zero; the
// values tell scripts and tests why a run failed.
enum ExitCode : int {
  kExitSuccess = 0,
  kExitAlgorithmError = 1,  // a bug or an unexpected exception ("AlgorithmError: ..." in the failure file)
  kExitUserError = 2,       // bad hyperparameters, data or configuration ("ClientError: ...")
  kExitStopped = 143,       // SIGTERM (128 + 15), "Training stopped: SIGTERM received"
};

// Environment variable naming the algorithm when none is passed (an image may hold several).
constexpr const char* kAlgorithmEnv = "MLFORGE_ALGORITHM";

struct TrainOptions {
  DeviceRequest device = DeviceRequest::kAuto;
  int threads = 0;  // <= 0: all hardware threads
  uint64_t seed = 0;
  std::string log_level = "info";
  // The token training polls. Unset: SIGTERM/SIGINT handlers are installed and the
  // process-wide token is used (the container case). Tests pass their own flag.
  std::optional<StopToken> stop;
  // Builds the communicator for this host (tests). Unset: resourceconfig.json with several hosts
  // (container train) or RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT (either entry) join a Gloo
  // group (comm/group.h); otherwise one process. Rank 0 writes the model, the others none.
  std::function<std::unique_ptr<comm::Communicator>(const ResourceConfig&)> make_comm;
  // Every collective's deadline in seconds; <= 0: MLFORGE_COLLECTIVE_TIMEOUT_S, else 1800.
  int collective_timeout_s = 0;
};

// The container's `train`: reads <opt_ml_root>/input/config/*.json ("" = MLFORGE_OPT_ML or
// /opt/ml), trains `algorithm` ("" = $MLFORGE_ALGORITHM, else the table's only entry) from
// `table`, writes <root>/model or <root>/output/failure. Returns an ExitCode.
int RunContainerTrain(const std::string& opt_ml_root, const std::string& algorithm,
                      const std::vector<algos::Algorithm>& table, const TrainOptions& options = {});

// `mlforge train ALGO --train PATH [--test PATH] --model-dir DIR --hp k=v ...`.
struct LocalTrainArgs {
  std::string algorithm;
  std::map<std::string, std::vector<std::string>> channels;  // channel -> files/directories
  // Optional SageMaker ContentType per channel ("text/csv;label_size=0"); without one the
  // format comes from each file's extension.
  std::map<std::string, std::string> content_types;
  // Channels whose paths are this host's own share of the data (SageMaker's ShardedByS3Key); the
  // others are FullyReplicated: in a multi-host run every host reads them and keeps its records.
  std::set<std::string> sharded_by_key;
  // With several ranks, a sharded channel's paths hold every object and rank r keeps files
  // r, r + W, r + 2W, ... of their sorted list: what ShardedByS3Key hands host r (`mlforge
  // train --distribution train=ShardedByS3Key` under `mlforge launch`). Otherwise the paths are
  // taken as this rank's share already.
  bool split_sharded_files = false;
  // FullyReplicated channels: every rank reads every record (SageMaker's behaviour) instead of
  // splitting them. Unset: MLFORGE_REPLICATED_READS (all | split), else split.
  std::optional<bool> replicate_reads;
  std::vector<std::string> hyperparameters;  // "name=value" pieces as typed
  std::string model_dir;
  std::string failure_file;  // optional: also write the failure reason here
  ResourceConfig resources;  // host names for the metric lines (default: one host, algo-1)
};
int TrainLocal(const LocalTrainArgs& args, const std::vector<algos::Algorithm>& table,
               const TrainOptions& options = {});

// Splits "name=value" pieces (at the first '='); UserError on a piece without '=' or an empty
// name, and on a name given twice.
std::map<std::string, std::string> ParseKeyValues(const std::vector<std::string>& pieces,
                                                  const std::string& flag = "--hp");

}  // namespace mlforge::container
