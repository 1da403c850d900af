// What an algorithm provides to the CLI and the container (DESIGN.md "The container"): its
// SageMaker name, the channels it reads, its hyperparameter table and its training entry point.
// Entries are listed explicitly in algos/algorithms.cc; there is no static self-registration.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "algos/predictor.h"
#include "core/hyperparams.h"
#include "core/resources.h"
#include "core/stop.h"
#include "io/batch_stream.h"

namespace mlforge::algos {

// inputdataconfig.json's per-channel settings (SPEC.md 2.4).
enum class InputMode { kFile, kFastFile, kPipe };
enum class S3Distribution { kFullyReplicated, kShardedByS3Key };
enum class RecordWrapper { kNone, kRecordIO };

const char* InputModeName(InputMode m);            // "File", "FastFile", "Pipe"
const char* S3DistributionName(S3Distribution d);  // "FullyReplicated", "ShardedByS3Key"
const char* RecordWrapperName(RecordWrapper w);    // "None", "RecordIO"

struct ChannelConfig {
  std::string content_type;  // as given ("text/csv;label_size=0"); "" when omitted
  InputMode input_mode = InputMode::kFile;
  // FullyReplicated: every host sees all data, so multi-host runs shard records by rank
  // (StreamOptions::shard_index). ShardedByS3Key: the platform already split the objects.
  S3Distribution distribution = S3Distribution::kFullyReplicated;
  // FullyReplicated with several ranks: false (default) splits the records between the ranks so
  // no work is repeated; true reproduces SageMaker's built-ins, where every host reads and
  // trains on every record (MLFORGE_REPLICATED_READS=all, `train --replicated-reads all`).
  bool replicate_reads = false;
  RecordWrapper record_wrapper = RecordWrapper::kNone;
};

// One input channel, ready to stream.
struct TrainChannel {
  std::string name;          // "train", "validation", "test"
  io::ChannelSource source;  // directory (File/FastFile), FIFO prefix (Pipe) or local paths
  ChannelConfig config;
};

// Everything a training run gets. The runner (container/train.cc) builds it, whether from
// /opt/ml or from command-line pieces, and owns every referenced object for the whole run.
struct TrainContext {
  Resources& resources;  // device, threads, seed, communicator, stop token
  // Parsed and validated against the algorithm's table. Mutable so the algorithm can Resolve()
  // its `auto` values (each resolution is logged and lands in ToJson()).
  HpValues& hyperparameters;
  std::map<std::string, TrainChannel> channels;  // only channels that are present
  // The staging directory to write the model into. The runner moves its files to the real
  // model directory only after Train returns normally, so a failed run leaves no model.
  std::string model_dir;
  std::string host = "algo-1";  // resourceconfig current_host (metric lines use it)
  std::vector<std::string> hosts = {"algo-1"};

  int rank() const { return resources.comm().rank(); }
  int world_size() const { return resources.comm().world_size(); }
  // Training loops poll this (or call stop().ThrowIfStopped()) at least once per mini-batch.
  const StopToken& stop() const { return resources.stop(); }
  const TrainChannel* channel(const std::string& name) const {
    auto it = channels.find(name);
    return it == channels.end() ? nullptr : &it->second;
  }
};

struct Algorithm {
  std::string name;                            // the SageMaker image name: "kmeans", "linear-learner", ...
  std::string description;                     // one line for `mlforge --help`
  std::vector<std::string> required_channels;  // e.g. {"train"}: missing -> UserError before training
  std::vector<std::string> optional_channels;  // e.g. {"test"}; other channels are ignored with a warning
  std::function<HpTable()> hyperparameters;    // the declarative table (built on each call)
  // Trains and writes the model files into ctx.model_dir. Throws UserError for bad input and
  // StopRequested when ctx.stop() fires; must not write anywhere else under /opt/ml/model.
  std::function<void(TrainContext& ctx)> train;
  // Loads a model artifact for inference (`mlforge predict`, the server): the same table entry
  // serves what it trains. Null while an algorithm has no predictor.
  PredictorLoader load_predictor = nullptr;
};

}  // namespace mlforge::algos
