// The training half of the /opt/ml contract (SPEC.md 2.2-2.6): where things live and how the
// three JSON files under input/config are read.
//
// The root is /opt/ml unless redirected: an explicit argument (the CLI's `--opt-ml DIR`) wins,
// then the environment variable MLFORGE_OPT_ML, then /opt/ml. Local runs and tests use this to
// exercise the whole contract without Docker.
//
// Missing files are not errors: no hyperparameters.json means no hyperparameters; no
// inputdataconfig.json means one File-mode channel per directory in input/data; no
// resourceconfig.json means a single host "algo-1". A file that exists but does not parse is a
// UserError naming the file and the line/column of the JSON error.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "algos/algorithm.h"
#include "io/batch_stream.h"

namespace mlforge::container {

constexpr const char* kOptMlEnv = "MLFORGE_OPT_ML";

struct OptMlPaths {
  std::string root;             // /opt/ml
  std::string config_dir;       // <root>/input/config
  std::string hyperparameters;  // <config_dir>/hyperparameters.json
  std::string inputdataconfig;  // <config_dir>/inputdataconfig.json
  std::string resourceconfig;   // <config_dir>/resourceconfig.json
  std::string data_dir;         // <root>/input/data (one entry per channel)
  std::string model_dir;        // <root>/model
  std::string output_dir;       // <root>/output
  std::string output_data_dir;  // <root>/output/data
  std::string failure_file;     // <root>/output/failure
  std::string checkpoint_dir;   // <root>/checkpoints
};

// root_arg: "" to use MLFORGE_OPT_ML or /opt/ml.
OptMlPaths ResolveOptMl(const std::string& root_arg = "");

struct InstanceGroup {
  std::string name;  // instance_group_name
  std::string instance_type;
  std::vector<std::string> hosts;
};

// resourceconfig.json. Keys absent from the file keep these defaults.
struct ResourceConfig {
  std::string current_host = "algo-1";
  std::vector<std::string> hosts = {"algo-1"};  // in the file's order (SageMaker sorts them)
  std::string network_interface_name;           // "eth0", "ethwe", ...
  std::string current_group_name;               // heterogeneous clusters only
  std::string current_instance_type;
  std::vector<InstanceGroup> instance_groups;

  // Index of current_host in hosts: the rank this process has in a multi-host run.
  int rank() const;
};

// Parsers for the file contents. `source` names the file in error messages.
//
// hyperparameters.json: an object. String values are kept as is. Other JSON values are turned
// into the strings the SDK would have sent: numbers in their JSON text (nlohmann's shortest
// round-trip form, so 1e-4 reads back as 0.0001), booleans as "true"/"false" (the table parses
// booleans case-insensitively, so this equals the SDK's "True"/"False"), lists as JSON text
// (the SDK json.dumps lists); null means "not given" (the SDK skips None). Objects are rejected.
std::map<std::string, std::string> ParseHyperparameters(const std::string& text, const std::string& source);
// inputdataconfig.json: {"train": {"ContentType": ..., "TrainingInputMode": ...}, ...}. The
// enumerated values are matched case-insensitively; other keys are ignored.
std::map<std::string, algos::ChannelConfig> ParseInputDataConfig(const std::string& text,
                                                                 const std::string& source);
ResourceConfig ParseResourceConfig(const std::string& text, const std::string& source);

// The same, reading the files under `paths` (with the missing-file defaults above).
std::map<std::string, std::string> ReadHyperparameters(const OptMlPaths& paths);
std::map<std::string, algos::ChannelConfig> ReadInputDataConfig(const OptMlPaths& paths);
ResourceConfig ReadResourceConfig(const OptMlPaths& paths);

// The data source of channel `name`: File/FastFile -> the directory <data_dir>/<name>;
// Pipe -> the FIFO prefix <data_dir>/<name> (epoch e reads <name>_<e>). The format and CSV
// label_size come from ContentType (io::FormatFromContentType); Pipe mode without a
// ContentType assumes application/x-recordio-protobuf, the built-ins' default, and logs it.
io::ChannelSource MakeChannelSource(const OptMlPaths& paths, const std::string& name,
                                    const algos::ChannelConfig& config);

}  // namespace mlforge::container
