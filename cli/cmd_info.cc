// `mlforge info`: what this binary was built with and what it can see at run time, so that a user
// can tell at a glance why a run is (not) on the GPU.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "algos/algorithms.h"
#include "cli/cli.h"
#include "core/resources.h"

namespace mlforge::cli {
namespace {

std::string CudaVersion(int v) {
  if (v <= 0) return "none";
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

const char* OnOff(bool b) { return b ? "on" : "off"; }

int RunInfo(const GlobalOptions& global) {
  const BuildInfo build = GetBuildInfo();
  std::printf("mlforge %s\n", build.version.c_str());
  std::printf("build:      %s, %s, CUDA %s%s, NCCL %s, Gloo %s\n", build.build_type.c_str(),
              build.compiler.c_str(), OnOff(build.cuda),
              build.cuda ? (" (archs " + build.cuda_archs + ")").c_str() : "", OnOff(build.nccl),
              OnOff(build.gloo));

  const GpuReport gpus = DetectGpus();
  if (gpus.built_with_cuda) {
    std::printf("cuda:       runtime %s, driver %s\n", CudaVersion(gpus.runtime_version).c_str(),
                CudaVersion(gpus.driver_version).c_str());
  } else {
    std::printf("cuda:       not built with CUDA\n");
  }
  if (gpus.available && !gpus.gpus.empty()) {
    std::printf("gpus:       %zu\n", gpus.gpus.size());
    for (const GpuInfo& g : gpus.gpus) {
      std::printf("  gpu %d:    %s, sm_%d%d, %.1f GiB\n", g.index, g.name.c_str(), g.sm_major, g.sm_minor,
                  static_cast<double>(g.total_memory) / (1024.0 * 1024.0 * 1024.0));
    }
  } else {
    std::printf("gpus:       none (%s)\n", gpus.reason.empty() ? "no device reported" : gpus.reason.c_str());
  }

  const unsigned hw = std::thread::hardware_concurrency();
  const int threads = global.threads > 0 ? global.threads : static_cast<int>(hw);
  std::printf("threads:    %d (hardware %u)\n", threads, hw);
  // What the libraries' idle threads do (main.cc, PreferSleepingIdleThreads): mlforge's settings
  // unless the user chose.
  const auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v != nullptr ? v : "(unset)");
  };
  std::printf("idle:       OMP_WAIT_POLICY=%s GOMP_SPINCOUNT=%s OPENBLAS_THREAD_TIMEOUT=%s\n",
              env("OMP_WAIT_POLICY").c_str(), env("GOMP_SPINCOUNT").c_str(), env("OPENBLAS_THREAD_TIMEOUT").c_str());
  std::printf("device:     auto -> %s\n", gpus.available && build.cuda ? "gpu" : "cpu");
  const auto& table = algos::BuiltinAlgorithms();
  std::printf("algorithms: %zu\n", table.size());
  for (const algos::Algorithm& a : table) std::printf("  %-24s %s\n", a.name.c_str(), a.description.c_str());
  return kExitOk;
}

}  // namespace

void RegisterInfo(CLI::App& app, const GlobalOptions& global, Registry& registry) {
  CLI::App* info = app.add_subcommand(
      "info", "Print the version, build options, CUDA runtime/driver, the GPUs seen (or why none), "
              "threads and the algorithms available");
  auto hp_algo = std::make_shared<std::string>();
  info->add_option("--hyperparameters", *hp_algo,
                   "Print ALGO's hyperparameter table (Markdown: name, type, default, valid values) instead");
  registry.Add(info, [&global, hp_algo] {
    if (!hp_algo->empty()) {
      std::fputs(algos::FindAlgorithm(algos::BuiltinAlgorithms(), *hp_algo).hyperparameters().MarkdownTable().c_str(),
                 stdout);
      return kExitOk;
    }
    return RunInfo(global);
  });
}

}  // namespace mlforge::cli
