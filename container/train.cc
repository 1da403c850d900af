#include "container/train.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <thread>

#include "algos/algorithms.h"
#include "comm/group.h"
#include "core/error.h"
#include "core/hyperparams.h"
#include "core/log.h"
#include "io/input_file.h"

namespace fs = std::filesystem;

namespace mlforge::container {
namespace {

// What both entry points gather before the shared steps run.
struct TrainJob {
  std::string algorithm;  // "" = choose from the environment or the table
  std::map<std::string, std::string> hyperparameters;
  std::string hyperparameters_source;  // for the log: the file or "--hp"
  // Every channel the user configured. `declared_in` names where a missing path came from.
  std::map<std::string, algos::TrainChannel> channels;
  std::string declared_in;
  ResourceConfig resources;
  std::string model_dir;
  // Several processes (resourceconfig with several hosts, or RANK/WORLD_SIZE): the group to join.
  std::optional<comm::GroupSpec> group;
  bool split_sharded_files = false;  // LocalTrainArgs::split_sharded_files
};

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "(none)" : out;
}

std::string DumpStringMap(const std::map<std::string, std::string>& m) {
  std::string out = "{";
  for (const auto& [k, v] : m) out += fmt::format("{}'{}': '{}'", out.size() > 1 ? ", " : "", k, v);
  return out + "}";
}

const algos::Algorithm& PickAlgorithm(const std::string& requested,
                                      const std::vector<algos::Algorithm>& table) {
  if (!requested.empty()) return algos::FindAlgorithm(table, requested);
  const char* env = std::getenv(kAlgorithmEnv);
  if (env != nullptr && *env != '\0') return algos::FindAlgorithm(table, env);
  if (table.size() == 1) return table.front();
  MLF_FAIL("no algorithm given: pass it as an argument or set {}; available: {}", kAlgorithmEnv,
           algos::AlgorithmNames(table));
}

// Required channels must be configured and, outside Pipe mode, exist on disk. Channels the
// algorithm does not read are dropped with a warning.
void CheckChannels(const algos::Algorithm& algo, TrainJob& job) {
  for (const auto& name : algo.required_channels) {
    auto it = job.channels.find(name);
    MLF_EXPECTS(it != job.channels.end(),
                "algorithm '{}' requires the '{}' channel, but {} does not define it", algo.name, name,
                job.declared_in);
  }
  std::set<std::string> known(algo.required_channels.begin(), algo.required_channels.end());
  known.insert(algo.optional_channels.begin(), algo.optional_channels.end());
  for (auto it = job.channels.begin(); it != job.channels.end();) {
    if (!known.count(it->first)) {
      std::vector<std::string> names(known.begin(), known.end());
      spdlog::warn("Ignoring channel '{}': algorithm '{}' reads only {}", it->first, algo.name,
                   JoinNames(names));
      it = job.channels.erase(it);
      continue;
    }
    const algos::TrainChannel& ch = it->second;
    if (ch.source.pipe_prefix.empty()) {
      for (const auto& path : ch.source.paths) {
        std::error_code ec;
        MLF_EXPECTS(fs::exists(path, ec), "channel '{}' of algorithm '{}': {} does not exist", it->first,
                    algo.name, path);
      }
    }
    ++it;
  }
}

// MLFORGE_REPLICATED_READS: "all" (every rank reads every record of a FullyReplicated channel,
// as SageMaker's built-ins do) or "split" (the default: ranks split the records).
bool ReplicateReadsFromEnvironment() {
  const char* v = std::getenv("MLFORGE_REPLICATED_READS");
  if (v == nullptr || *v == '\0' || std::string(v) == "split") return false;
  MLF_EXPECTS(std::string(v) == "all", "MLFORGE_REPLICATED_READS='{}': expected 'split' (default) or 'all'", v);
  return true;
}

// Rank `rank` of `world`'s share of a ShardedByS3Key channel's files: every world-th file.
std::vector<std::string> ShardFiles(const std::string& channel, const std::vector<std::string>& paths, int rank,
                                    int world) {
  const std::vector<std::string> files = io::ExpandChannelPaths(paths);
  std::vector<std::string> mine;
  for (size_t i = static_cast<size_t>(rank); i < files.size(); i += static_cast<size_t>(world)) mine.push_back(files[i]);
  MLF_EXPECTS(!mine.empty(),
              "channel '{}' is ShardedByS3Key over {} file(s), fewer than the {} ranks, so rank {} gets none; "
              "split the data into at least {} files or use FullyReplicated",
              channel, files.size(), world, rank, world);
  return mine;
}

// The group this job belongs to: resourceconfig.json's hosts when it lists several, else the
// launcher's environment (RANK, WORLD_SIZE, ...), else none (one process).
std::optional<comm::GroupSpec> FindGroup(const ResourceConfig& rc, bool from_resourceconfig) {
  if (from_resourceconfig && rc.hosts.size() > 1) return comm::GroupFromHosts(rc.hosts, rc.current_host);
  std::optional<comm::GroupSpec> env = comm::GroupFromEnvironment();
  if (env && env->world_size > 1) return env;
  return std::nullopt;
}

// Removes the staging directory unless the model was committed.
class StagingDir {
 public:
  explicit StagingDir(const std::string& model_dir)
      : model_dir_(model_dir), path_(model_dir + "/.mlforge-staging-" + std::to_string(::getpid())) {
    std::error_code ec;
    fs::create_directories(model_dir_, ec);
    MLF_EXPECTS(!ec, "cannot create the model directory {}: {}", model_dir_, ec.message());
    fs::remove_all(path_, ec);  // a leftover from a killed run with the same pid
    fs::create_directory(path_, ec);
    MLF_EXPECTS(!ec, "cannot create the staging directory {}: {}", path_, ec.message());
  }
  ~StagingDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

  // Moves every entry into the model directory. rename() replaces a file atomically, so a
  // reader of the model directory sees each file either old or complete.
  std::vector<std::string> Commit() {
    std::vector<std::string> moved;
    for (const auto& entry : fs::directory_iterator(path_)) {
      fs::path dest = fs::path(model_dir_) / entry.path().filename();
      std::error_code ec;
      if (fs::is_directory(dest, ec) && !fs::is_symlink(dest, ec)) fs::remove_all(dest, ec);
      fs::rename(entry.path(), dest, ec);
      MLF_EXPECTS(!ec, "cannot move {} to {}: {}", entry.path().string(), dest.string(), ec.message());
      moved.push_back(entry.path().filename().string());
    }
    return moved;
  }

 private:
  std::string model_dir_;
  std::string path_;
};

// Forwards to a communicator owned elsewhere, so that the group outlives the Resources of a
// failed run long enough to publish why it failed.
class BorrowedComm final : public comm::Communicator {
 public:
  explicit BorrowedComm(comm::Communicator& c) : c_(c) {}
  int rank() const override { return c_.rank(); }
  int world_size() const override { return c_.world_size(); }
  std::string backend() const override { return c_.backend(); }
  void AllReduceSum(float* d, size_t n) override { c_.AllReduceSum(d, n); }
  void AllReduceSum(double* d, size_t n) override { c_.AllReduceSum(d, n); }
  void AllReduceMax(float* d, size_t n) override { c_.AllReduceMax(d, n); }
  void AllReduceMax(double* d, size_t n) override { c_.AllReduceMax(d, n); }
  void Broadcast(void* data, size_t bytes, int root) override { c_.Broadcast(data, bytes, root); }
  void Barrier() override { c_.Barrier(); }
  void AllGather(const void* send, size_t bytes, void* recv) override { c_.AllGather(send, bytes, recv); }
  void SetPhase(const std::string& phase) override { c_.SetPhase(phase); }
  void ReportFailure(comm::FailureKind kind, const std::string& reason) override { c_.ReportFailure(kind, reason); }

 private:
  comm::Communicator& c_;
};

// Everything after the group is joined; any exception is reported to the group by RunJob.
void RunJobInGroup(TrainJob& job, const std::vector<algos::Algorithm>& table, const TrainOptions& options,
                   comm::Communicator& group, int threads, StopToken stop) {
  const algos::Algorithm& algo = PickAlgorithm(job.algorithm, table);
  MLF_ASSERT_MSG(algo.train && algo.hyperparameters,
                 "algorithm '{}' has no train or hyperparameters function", algo.name);
  spdlog::info("Algorithm: {}", algo.name);
  spdlog::info("Provided hyperparameters ({}): {}", job.hyperparameters_source,
               DumpStringMap(job.hyperparameters));

  const HpTable hp_table = algo.hyperparameters();
  HpValues hp = hp_table.Parse(job.hyperparameters);
  if (job.split_sharded_files && group.world_size() > 1) {
    for (auto& [name, ch] : job.channels) {
      if (ch.config.distribution != algos::S3Distribution::kShardedByS3Key || !ch.source.pipe_prefix.empty()) continue;
      ch.source.paths = ShardFiles(name, ch.source.paths, group.rank(), group.world_size());
    }
  }
  CheckChannels(algo, job);
  for (const auto& [name, ch] : job.channels) {
    spdlog::info(
        "Channel '{}': {} mode, {}{}, ContentType '{}', {}", name, algos::InputModeName(ch.config.input_mode),
        algos::S3DistributionName(ch.config.distribution),
        group.world_size() > 1 && ch.config.distribution == algos::S3Distribution::kFullyReplicated
            ? (ch.config.replicate_reads ? " (every rank reads every record)" : " (ranks split the records)")
            : "",
        ch.config.content_type,
        ch.source.pipe_prefix.empty() ? JoinNames(ch.source.paths) : ch.source.pipe_prefix + "_<epoch>");
  }
  spdlog::info("Final configuration: {}", hp.ToJson());

  Resources resources(options.device, threads, options.seed, std::make_unique<BorrowedComm>(group), stop);
  const int rank = group.rank();
  StagingDir staging(job.model_dir);
  algos::TrainContext ctx{resources,          hp, job.channels, staging.path(), job.resources.current_host,
                          job.resources.hosts};
  const auto start = std::chrono::steady_clock::now();
  algo.train(ctx);
  // A stop that arrives after the last batch still means "this job was stopped": no model.
  stop.ThrowIfStopped();
  // Every rank must have finished before rank 0 commits: a rank that failed after the last
  // collective would otherwise leave a model behind a failed job.
  group.SetPhase("final barrier before writing the model");
  group.Barrier();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (rank != 0) {
    spdlog::info("Training finished in {:.3f} s on rank {} of {}; rank 0 writes the model", seconds, rank,
                 group.world_size());
    return;
  }
  std::vector<std::string> files = staging.Commit();
  spdlog::info("Training finished in {:.3f} s; model files in {}: {}", seconds, job.model_dir,
               JoinNames(files));
}

// The steps shared by the container and the CLI, after the inputs are gathered. The group (if
// any) is joined first, so that every later failure of one rank reaches the others: they fail
// at once, naming it, instead of waiting for it at a deadline.
void RunJob(TrainJob& job, const std::vector<algos::Algorithm>& table, const TrainOptions& options) {
  StopToken stop = options.stop ? *options.stop : StopToken::FromSignals();
  std::unique_ptr<comm::Communicator> communicator;
  int threads = options.threads;
  if (options.make_comm) {
    communicator = options.make_comm(job.resources);
  } else if (job.group) {
    comm::GroupSpec spec = *job.group;
    if (options.collective_timeout_s > 0) spec.collective_timeout = std::chrono::seconds(options.collective_timeout_s);
    // Ranks sharing a host share its cores (`mlforge launch -n 4` on one machine).
    if (threads <= 0 && spec.local_world_size > 1) {
      threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / spec.local_world_size);
    }
    communicator = comm::JoinGroup(spec);
  } else {
    communicator = comm::MakeSingleProcess();
  }
  MLF_ASSERT(communicator != nullptr);
  comm::Communicator& group = *communicator;
  try {
    RunJobInGroup(job, table, options, group, threads, stop);
  } catch (const comm::PeerFailure&) {
    throw;
  } catch (const StopRequested& e) {
    group.ReportFailure(comm::FailureKind::kStopped, "SIGTERM received");
    throw;
  } catch (const UserError& e) {
    group.ReportFailure(comm::FailureKind::kClient, e.what());
    throw;
  } catch (const std::exception& e) {
    group.ReportFailure(comm::FailureKind::kAlgorithm, e.what());
    throw;
  }
}

void WriteFailure(const std::string& failure_file, const std::string& reason) {
  spdlog::error("{}", reason);
  if (failure_file.empty()) return;
  std::error_code ec;
  fs::create_directories(fs::path(failure_file).parent_path(), ec);
  std::ofstream f(failure_file, std::ios::binary | std::ios::trunc);
  f << reason << "\n";
  if (!f) spdlog::error("could not write the failure file {}", failure_file);
}

namespace {
// Where a rank stuck inside a collective writes its failure (comm::OnStuckCollective runs on the
// communicator's watchdog thread while the training thread is still blocked): one job per process.
std::string g_stuck_failure_file;

[[noreturn]] void EndStuckRank(comm::FailureKind kind, const char* reason) {
  // The same file, prefix and status as a PeerFailure caught by Guarded below.
  int code = kExitAlgorithmError;
  std::string prefix = "AlgorithmError: ";
  if (kind == comm::FailureKind::kClient) {
    code = kExitUserError;
    prefix = "ClientError: ";
  } else if (kind == comm::FailureKind::kStopped) {
    code = kExitStopped;
    prefix = "Training stopped: ";
  }
  WriteFailure(g_stuck_failure_file, prefix + reason);
  spdlog::shutdown();
  std::_Exit(code);
}
}  // namespace

// The one place training exceptions are caught (DESIGN.md "Errors").
int Guarded(const std::string& failure_file, const std::function<void()>& body) {
  if (!failure_file.empty()) {
    std::error_code ec;
    fs::remove(failure_file, ec);  // a stale reason from an earlier local run would mislead
  }
  SetSignalFailureFile(failure_file);  // a SIGBUS on a shrinking input writes its reason there too
  g_stuck_failure_file = failure_file;
  comm::SetStuckCollectiveHandler(&EndStuckRank);
  try {
    body();
    return kExitSuccess;
  } catch (const StopRequested&) {
    WriteFailure(failure_file, "Training stopped: SIGTERM received");
    return kExitStopped;
  } catch (const comm::PeerFailure& e) {
    // Another rank failed first: fail the way it did, naming it.
    switch (e.kind()) {
      case comm::FailureKind::kClient:
        WriteFailure(failure_file, std::string("ClientError: ") + e.what());
        return kExitUserError;
      case comm::FailureKind::kStopped:
        WriteFailure(failure_file, std::string("Training stopped: ") + e.what());
        return kExitStopped;
      case comm::FailureKind::kAlgorithm:
        break;
    }
    WriteFailure(failure_file, std::string("AlgorithmError: ") + e.what());
    return kExitAlgorithmError;
  } catch (const UserError& e) {
    WriteFailure(failure_file, std::string("ClientError: ") + e.what());
    return kExitUserError;
  } catch (const std::exception& e) {
    WriteFailure(failure_file, std::string("AlgorithmError: ") + e.what());
    return kExitAlgorithmError;
  } catch (...) {
    WriteFailure(failure_file, "AlgorithmError: unknown exception");
    return kExitAlgorithmError;
  }
}

void Prepare(const TrainOptions& options) {
  log::Init(options.log_level);
  if (!options.stop) InstallSignalHandlers();
}

}  // namespace

std::map<std::string, std::string> ParseKeyValues(const std::vector<std::string>& pieces,
                                                  const std::string& flag) {
  std::map<std::string, std::string> out;
  for (const auto& piece : pieces) {
    size_t eq = piece.find('=');
    MLF_EXPECTS(eq != std::string::npos && eq > 0, "{} '{}': expected NAME=VALUE, e.g. {} k=10", flag, piece,
                flag);
    std::string name = piece.substr(0, eq);
    MLF_EXPECTS(!out.count(name), "{}: '{}' is given twice ('{}' and '{}')", flag, name, out[name],
                piece.substr(eq + 1));
    out[name] = piece.substr(eq + 1);
  }
  return out;
}

int RunContainerTrain(const std::string& opt_ml_root, const std::string& algorithm,
                      const std::vector<algos::Algorithm>& table, const TrainOptions& options) {
  Prepare(options);
  const OptMlPaths paths = ResolveOptMl(opt_ml_root);
  spdlog::info("mlforge train: /opt/ml root is {}", paths.root);
  return Guarded(paths.failure_file, [&] {
    TrainJob job;
    job.algorithm = algorithm;
    job.hyperparameters = ReadHyperparameters(paths);
    job.hyperparameters_source = paths.hyperparameters;
    job.resources = ReadResourceConfig(paths);
    std::error_code ec;
    job.declared_in = fs::exists(paths.inputdataconfig, ec)
                          ? paths.inputdataconfig
                          : fmt::format("{} (absent, so channels are the directories in {})",
                                        paths.inputdataconfig, paths.data_dir);
    const bool replicate = ReplicateReadsFromEnvironment();
    for (const auto& [name, config] : ReadInputDataConfig(paths)) {
      job.channels[name] = algos::TrainChannel{name, MakeChannelSource(paths, name, config), config};
      job.channels[name].config.replicate_reads = replicate;
    }
    job.model_dir = paths.model_dir;
    job.group = FindGroup(job.resources, /*from_resourceconfig=*/true);
    if (job.group && job.resources.hosts.size() <= 1) {  // from the environment
      job.resources.hosts = job.group->hosts;
      job.resources.current_host = job.group->hosts[job.group->rank];
    }
    RunJob(job, table, options);
  });
}

int TrainLocal(const LocalTrainArgs& args, const std::vector<algos::Algorithm>& table,
               const TrainOptions& options) {
  Prepare(options);
  return Guarded(args.failure_file, [&] {
    MLF_EXPECTS(!args.model_dir.empty(), "no model directory given; pass --model-dir DIR");
    TrainJob job;
    job.algorithm = args.algorithm;
    job.hyperparameters = ParseKeyValues(args.hyperparameters);
    job.hyperparameters_source = "--hp";
    job.resources = args.resources;
    job.declared_in = "the command line (pass it as --<channel> PATH)";
    for (const auto& [name, paths] : args.channels) {
      algos::TrainChannel ch;
      ch.name = name;
      ch.source.paths = paths;
      auto ct = args.content_types.find(name);
      if (ct != args.content_types.end()) {
        ch.config.content_type = ct->second;
        int label_size = -1;
        ch.source.format = io::FormatFromContentType(ct->second, &label_size, &ch.source.libsvm_zero_based);
        ch.source.label_size = label_size;
      }
      if (args.sharded_by_key.count(name)) ch.config.distribution = algos::S3Distribution::kShardedByS3Key;
      ch.config.replicate_reads = args.replicate_reads ? *args.replicate_reads : ReplicateReadsFromEnvironment();
      job.channels[name] = std::move(ch);
    }
    job.model_dir = args.model_dir;
    job.group = FindGroup(job.resources, /*from_resourceconfig=*/false);
    job.split_sharded_files = args.split_sharded_files;
    if (job.group) {
      job.resources.hosts = job.group->hosts;
      job.resources.current_host = job.group->hosts[job.group->rank];
    }
    RunJob(job, table, options);
  });
}

}  // namespace mlforge::container
