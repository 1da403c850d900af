// Helpers shared by the tests: locating ../shared/data (skipping visibly when it is absent),
// temporary directories, and GPU availability.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "container/train.h"
#include "core/resources.h"

namespace mlforge::test {

// Absolute path of ../shared/data/<rel>, or "" when the shared data is not present.
std::string SharedData(const std::string& rel = "");

// A fresh directory under the system temp dir, removed (recursively) by the destructor.
// Sets an environment variable for the scope and restores its previous value (or its absence)
// on exit.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    had_ = old != nullptr;
    if (had_) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_) {
      setenv(name_.c_str(), old_.c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_, old_;
  bool had_ = false;
};

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes `content` to `path` (binary), creating parent directories.
void WriteFile(const std::string& path, const std::string& content);
std::string ReadFile(const std::string& path);

// The built `mlforge` binary run with `args` in `dir` (stdin from /dev/null, no shell
// interpretation of the arguments), its exit code and captured stdout / stderr.
inline constexpr const char* kMlforgeBinary = MLFORGE_BINARY_DIR "/cli/mlforge";
// `s` single-quoted for /bin/sh.
std::string ShellQuote(const std::string& s);
struct CliResult {
  int code = -1;
  std::string out, err;
};
CliResult RunCli(const TempDir& dir, const std::vector<std::string>& args);

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).
int FreeTcpPort();

// Re-encodes the VCF at `vcf_path` as BCF at `bcf_path` with htslib (ADD_FAILURE on an error).
void WriteBcfFromVcf(const std::string& vcf_path, const std::string& bcf_path);

// Training options for tests: the given device and threads, `log_level` logs, and a stop token
// that never fires (so the runner installs no signal handlers).
container::TrainOptions TrainOptionsForTests(DeviceRequest device = DeviceRequest::kCpu, int threads = 2,
                                             const std::string& log_level = "warn");

// One recordIO frame with an explicit continuation flag, padded to 4 bytes, appended to *out.
void RecordIOFrame(uint32_t cflag, std::string_view data, std::string* out);

// recordIO frames the way dmlc-core's RecordIOWriter writes `data` (from its documented
// behaviour): wherever the magic word sits at a 4-byte-aligned offset, the current part ends (flag 1
// for the first, 2 for later ones) and the magic itself is dropped; the last part has flag 3, or 0
// when there was no split. Appends to *out; returns the flags used.
std::vector<uint32_t> DmlcFrame(std::string_view data, std::string* out);

// One training run through the runner (container::TrainLocal).
struct LocalTrainRun {
  int rc = -1;
  std::string failure;  // the failure file's text ("" when training succeeded)
};

// Trains `args` on the CPU with TrainOptionsForTests(kCpu, threads). The failure file is
// args.model_dir + ".failure", removed first; its text comes back with the exit code.
LocalTrainRun TrainLocalForTests(container::LocalTrainArgs args, int threads = 2);

// Trains `base` on `world` ranks: threads of this process on one local communicator group, hosts
// algo-1 .. algo-<world>. Rank r reads train_paths[r] as its "train" channel (train_paths[0] on
// every rank when there is one path: FullyReplicated) and writes model_root/rank<r>, one CPU thread
// each (on `device`: kGpu puts every rank on the same GPU). Returns every rank's exit code; rank 0's
// model is in model_root/rank0.
std::vector<int> TrainRanksForTests(int world, const container::LocalTrainArgs& base,
                                    const std::vector<std::string>& train_paths,
                                    const std::string& model_root, DeviceRequest device = DeviceRequest::kCpu);
// The same with a device per rank (devices.size() == world), e.g. one rank on the GPU beside one
// on the CPU, as device auto gives on a host without a usable GPU.
std::vector<int> TrainRanksForTests(int world, const container::LocalTrainArgs& base,
                                    const std::vector<std::string>& train_paths, const std::string& model_root,
                                    const std::vector<DeviceRequest>& devices);

// True when a CUDA device is usable; otherwise `reason` says why.
bool GpuAvailable(std::string* reason);

}  // namespace mlforge::test

// Skips the current test with a visible reason when the shared data is absent.
#define MLF_REQUIRE_SHARED_DATA()                                              \
  do {                                                                         \
    if (::mlforge::test::SharedData().empty())                                 \
      GTEST_SKIP() << "shared data not found at " MLFORGE_SHARED_DATA          \
                   << " (golden-vector tests need ../shared/data; CI has it)"; \
  } while (0)

// Skips the current test with a visible reason when no GPU is usable.
#define MLF_REQUIRE_GPU()                                                                               \
  do {                                                                                                  \
    std::string _mlf_reason;                                                                            \
    if (!::mlforge::test::GpuAvailable(&_mlf_reason)) GTEST_SKIP() << "no usable GPU: " << _mlf_reason; \
  } while (0)
