// `mlforge demo`: the main job on a built-in default data set. Genotypes -> recordIO -> k-means
// (k = 5) -> cluster every sample -> adjusted Rand index against the population labels, a
// confusion table, and the time of each stage. With --vcf it runs on real VCFs (the README's
// command passes the 1000 Genomes panel in ../shared/data when it is present); without, on
// synthetic Balding-Nichols genotypes from `data synth genotypes`.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "algos/algorithms.h"
#include "algos/common/clustering_metrics.h"
#include "algos/kmeans/kmeans.h"
#include "cli/cli.h"
#include "comm/communicator.h"
#include "container/train.h"
#include "core/error.h"
#include "core/resources.h"
#include "io/batch_stream.h"
#include "io/synth.h"
#include "io/vcf.h"

namespace mlforge::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct DemoOptions {
  std::vector<std::string> vcf;
  std::string labels;  // samples.tsv (sample, super_pop columns) or a panel file
  std::string label_column = "super_pop";
  int k = 5;
  std::string work_dir;
  std::string device = "auto";
  int64_t synth_samples = 1000;
  int64_t synth_variants = 5000;
  int synth_populations = 5;
  double synth_fst = 0.05;
  uint64_t seed = 0;
  std::vector<std::string> hp;
};

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// sample ID -> label from a tab-separated file with a header naming `column` and a sample column
// ("sample" or the 1000 Genomes panel's first column).
std::map<std::string, std::string> ReadLabels(const std::string& path, const std::string& column) {
  std::ifstream in(path);
  MLF_EXPECTS(in.good(), "cannot read the labels file '{}'", path);
  std::string line;
  MLF_EXPECTS(static_cast<bool>(std::getline(in, line)), "'{}' is empty; expected a header line", path);
  auto split = [](const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string f;
    while (std::getline(ss, f, '\t')) out.push_back(f);
    return out;
  };
  std::vector<std::string> header = split(line);
  int sample_col = -1, label_col = -1;
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == "sample") sample_col = static_cast<int>(i);
    if (header[i] == column) label_col = static_cast<int>(i);
  }
  if (sample_col < 0) sample_col = 0;
  MLF_EXPECTS(label_col >= 0, "'{}' has no '{}' column in its header; columns: {}", path, column,
              fmt::format("{}", fmt::join(header, ", ")));
  std::map<std::string, std::string> labels;
  int64_t line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    std::vector<std::string> f = split(line);
    MLF_EXPECTS(static_cast<int>(f.size()) > std::max(sample_col, label_col), "{}: line {}: too few columns",
                path, line_no);
    labels[f[sample_col]] = f[label_col];
  }
  return labels;
}

int RunDemo(const DemoOptions& o, const GlobalOptions& global) {
  const auto t_all = Clock::now();
  std::string work = o.work_dir;
  if (work.empty()) work = (fs::temp_directory_path() / ("mlforge-demo-" + std::to_string(getpid()))).string();
  fs::create_directories(work);
  const std::string data = work + "/genotypes.pbr";
  std::vector<std::string> truth;  // label of each row, in row order
  std::vector<std::pair<std::string, double>> timings;

  // Stage 1: genotypes -> recordIO-protobuf.
  auto t = Clock::now();
  int64_t cols = 0;
  if (!o.vcf.empty()) {
    spdlog::info("demo: converting {} VCF file(s) to {}", o.vcf.size(), data);
    io::VcfOptions vo;
    io::VcfStats st = io::ConvertVcf(o.vcf, data, vo);
    std::printf("%s\n", st.Report().c_str());
    cols = st.variants_kept;
    std::ifstream ids(data + ".samples.txt");
    std::map<std::string, std::string> labels;
    if (!o.labels.empty()) labels = ReadLabels(o.labels, o.label_column);
    std::string id;
    while (std::getline(ids, id)) {
      auto it = labels.find(id);
      truth.push_back(it == labels.end() ? std::string("?") : it->second);
    }
    timings.emplace_back("VCF -> recordIO", Since(t));
  } else {
    spdlog::info("demo: no VCF given; generating {} synthetic genotype samples x {} variants in {} populations "
                 "(Balding-Nichols, F_ST {})",
                 o.synth_samples, o.synth_variants, o.synth_populations, o.synth_fst);
    io::SynthOptions so;
    so.kind = io::SynthKind::kGenotypes;
    so.rows = o.synth_samples;
    so.cols = o.synth_variants;
    so.populations = o.synth_populations;
    so.fst = o.synth_fst;
    so.seed = o.seed;
    so.labels = true;
    io::WriteSynth(so, data, {}, true);
    cols = o.synth_variants;
    timings.emplace_back("synthesize genotypes -> recordIO", Since(t));
  }

  // Stage 2: k-means through the same path as `mlforge train kmeans`.
  t = Clock::now();
  container::LocalTrainArgs args;
  args.algorithm = "kmeans";
  args.channels["train"] = {data};
  args.model_dir = work + "/model";
  // The demo's defaults; --hp KEY=VALUE replaces one of them or adds another.
  std::map<std::string, std::string> hps = {{"k", std::to_string(o.k)},
                                            {"feature_dim", std::to_string(cols)},
                                            {"init_method", "kmeans++"},
                                            {"full_batch_lloyd_iterations", "100"},
                                            {"full_batch_lloyd_trials", "40"},
                                            {"seed", std::to_string(o.seed)}};
  for (const auto& [key, value] : container::ParseKeyValues(o.hp, "--hp")) hps[key] = value;
  for (const auto& [key, value] : hps) args.hyperparameters.push_back(key + "=" + value);
  fs::create_directories(args.model_dir);
  container::TrainOptions to;
  to.device = ParseDeviceRequest(o.device);
  to.threads = global.threads;
  to.log_level = global.log_level;
  int rc = container::TrainLocal(args, algos::BuiltinAlgorithms(), to);
  if (rc != 0) return rc;
  timings.emplace_back("k-means training", Since(t));

  // Stage 3: cluster every sample with the saved model.
  t = Clock::now();
  algos::kmeans::Model model = algos::kmeans::LoadModel(args.model_dir);
  Resources res(ParseDeviceRequest(o.device), global.threads, o.seed, comm::MakeSingleProcess());
  io::ChannelSource src;
  src.paths = {data};
  io::StreamOptions so;
  so.batch_size = 4096;
  io::BatchStream stream(src, so);
  HostBatch batch;
  std::vector<int> clusters;
  while (stream.Next(&batch)) {
    algos::kmeans::Predictions p = algos::kmeans::Predict(model, batch, res);
    clusters.insert(clusters.end(), p.closest_cluster.begin(), p.closest_cluster.end());
    if (o.vcf.empty()) {
      for (float l : batch.labels) truth.push_back("pop" + std::to_string(static_cast<int>(l)));
    }
  }
  timings.emplace_back("predict (closest_cluster)", Since(t));

  // Report.
  if (truth.size() == clusters.size() && !truth.empty()) {
    algos::Contingency table = algos::BuildContingency(truth, clusters);
    std::printf("\nclusters vs %s (%zu samples, %lld variants):\n%s", o.vcf.empty() ? "population" : o.label_column.c_str(),
                clusters.size(), static_cast<long long>(cols), algos::FormatContingency(table).c_str());
    std::printf("adjusted Rand index: %.4f\n", algos::AdjustedRandIndex(table));
  } else {
    std::printf("no labels for the %zu samples: ARI not computed\n", clusters.size());
  }
  std::printf("\ntimings:\n");
  for (const auto& [stage, secs] : timings) std::printf("  %-34s %8.3f s\n", stage.c_str(), secs);
  std::printf("  %-34s %8.3f s\n", "total", Since(t_all));
  std::printf("work directory: %s\n", work.c_str());
  return 0;
}

}  // namespace

void RegisterDemo(CLI::App& app, const GlobalOptions& global, Registry& registry) {
  auto opt = std::make_shared<DemoOptions>();
  CLI::App* demo = app.add_subcommand(
      "demo", "The main job: genotypes -> recordIO -> k-means -> ARI vs population labels, with timings");
  demo->add_option("--vcf", opt->vcf, "VCF/BCF files in order (one per chromosome); default: synthetic genotypes");
  demo->add_option("--labels", opt->labels, "tab-separated sample labels with a header (1000 Genomes samples.tsv)");
  demo->add_option("--label-column", opt->label_column, "column of --labels to compare with")->capture_default_str();
  demo->add_option("--k", opt->k, "number of clusters")->capture_default_str();
  demo->add_option("--work-dir", opt->work_dir, "where the converted data and the model go (default: a temp dir)");
  demo->add_option("--device", opt->device, "auto, cpu or gpu")->capture_default_str();
  demo->add_option("--samples", opt->synth_samples, "synthetic samples")->capture_default_str();
  demo->add_option("--variants", opt->synth_variants, "synthetic variants")->capture_default_str();
  demo->add_option("--seed", opt->seed, "seed for synthesis and k-means")->capture_default_str();
  demo->add_option("--hp", opt->hp, "extra k-means hyperparameters KEY=VALUE");
  registry.Add(demo, [opt, &global] { return RunDemo(*opt, global); });
}

}  // namespace mlforge::cli
