// `mlforge demo`: the main job on a built-in default data set, two routes to population clusters.
// Route 1: genotypes -> recordIO -> k-means (k = 5) on the dosages -> cluster every sample. Route 2:
// genotype PCA (plink2's definition, algos/genotype_pca) -> k-means on the top PCs. For each, the
// adjusted Rand index against the population labels and a confusion table; a PC1/PC2 and PC3/PC4
// scatter plot (PNG and SVG, scripts/plot_pca.py with matplotlib) when a plotting python is given;
// and the time of each stage. With --vcf it runs on real VCFs (the README's command passes the 1000
// Genomes panel in ../shared/data when it is present); without, on a synthetic Balding-Nichols
// cohort written as VCF (`data synth genotypes OUT.vcf.gz`).
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "algos/algorithms.h"
#include "algos/genotype_pca/genotype_pca.h"
#include "algos/common/clustering_metrics.h"
#include "algos/kmeans/kmeans.h"
#include "cli/cli.h"
#include "comm/communicator.h"
#include "container/train.h"
#include "core/error.h"
#include "core/resources.h"
#include "io/batch_stream.h"
#include "io/row_writer.h"
#include "io/synth.h"
#include "io/synth_vcf.h"
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
  int pcs = 10;             // the PCA route: k-means on the top `pcs` PCs
  double pca_maf = 0.05;    // the PCA route keeps common variants (MAF >= this), as plink2 users do
  bool no_pca = false;
  std::string plot_python;  // a python with matplotlib: draws the PC scatter plots
  std::string plot_script;  // scripts/plot_pca.py
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

// Runs argv (no shell); returns its exit status (-1 when it could not start).
int RunProgram(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// k-means through the same path as `mlforge train kmeans` on `data` (feature_dim cols), then every
// row's cluster with the saved model.
std::vector<int> KMeansRoute(const std::string& data, int64_t cols, const std::string& model_dir,
                             const DemoOptions& o, const GlobalOptions& global, int* rc) {
  container::LocalTrainArgs args;
  args.algorithm = "kmeans";
  args.channels["train"] = {data};
  args.model_dir = model_dir;
  // The demo's defaults; --hp KEY=VALUE replaces one of them or adds another.
  std::map<std::string, std::string> hps = {{"k", std::to_string(o.k)},
                                            {"feature_dim", std::to_string(cols)},
                                            {"init_method", "kmeans++"},
                                            {"full_batch_lloyd_iterations", "100"},
                                            {"full_batch_lloyd_trials", "40"},
                                            {"seed", std::to_string(o.seed)}};
  for (const auto& [key, value] : container::ParseKeyValues(o.hp, "--hp")) hps[key] = value;
  hps["feature_dim"] = std::to_string(cols);
  for (const auto& [key, value] : hps) args.hyperparameters.push_back(key + "=" + value);
  fs::create_directories(args.model_dir);
  container::TrainOptions to;
  to.device = ParseDeviceRequest(o.device);
  to.threads = global.threads;
  to.log_level = global.log_level;
  *rc = container::TrainLocal(args, algos::BuiltinAlgorithms(), to);
  std::vector<int> clusters;
  if (*rc != 0) return clusters;
  algos::kmeans::Model model = algos::kmeans::LoadModel(args.model_dir);
  Resources res(ParseDeviceRequest(o.device), global.threads, o.seed, comm::MakeSingleProcess());
  io::ChannelSource src;
  src.paths = {data};
  io::StreamOptions so;
  so.batch_size = 4096;
  io::BatchStream stream(src, so);
  HostBatch batch;
  while (stream.Next(&batch)) {
    algos::kmeans::Predictions p = algos::kmeans::Predict(model, batch, res);
    clusters.insert(clusters.end(), p.closest_cluster.begin(), p.closest_cluster.end());
  }
  return clusters;
}

int RunDemo(const DemoOptions& o, const GlobalOptions& global) {
  const auto t_all = Clock::now();
  std::string work = o.work_dir;
  if (work.empty()) work = (fs::temp_directory_path() / ("mlforge-demo-" + std::to_string(getpid()))).string();
  fs::create_directories(work);
  const std::string data = work + "/genotypes.pbr";
  std::vector<std::string> truth;  // label of each row, in row order
  std::vector<std::pair<std::string, double>> timings;

  // Stage 0 (no VCF given): a synthetic cohort written as VCF, so that both routes read a VCF.
  auto t = Clock::now();
  std::vector<std::string> vcf = o.vcf;
  std::string labels_path = o.labels, label_column = o.label_column;
  if (vcf.empty()) {
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
    io::SynthVcfOptions vo;
    vo.threads = global.threads;
    vo.compression_level = 1;
    const std::string path = work + "/genotypes.vcf.gz";
    io::SynthVcfResult r = io::WriteSynthGenotypesVcf(so, path, vo);
    vcf = {path};
    labels_path = r.samples_path;
    label_column = "pop";
    timings.emplace_back("synthesize genotypes -> VCF", Since(t));
    t = Clock::now();
  }

  // Route 1, stage 1: genotypes -> recordIO-protobuf.
  spdlog::info("demo: converting {} VCF file(s) to {}", vcf.size(), data);
  io::VcfOptions vo;
  io::VcfStats st = io::ConvertVcf(vcf, data, vo);
  std::printf("%s\n", st.Report().c_str());
  const int64_t cols = st.variants_kept;
  std::vector<std::string> ids;
  {
    std::ifstream in(data + ".samples.txt");
    for (std::string id; std::getline(in, id);) ids.push_back(id);
  }
  std::map<std::string, std::string> labels;
  if (!labels_path.empty()) labels = ReadLabels(labels_path, label_column);
  for (const auto& id : ids) {
    auto it = labels.find(id);
    truth.push_back(it == labels.end() ? std::string("?") : it->second);
  }
  timings.emplace_back("VCF -> recordIO", Since(t));

  // Route 1, stage 2: k-means on the dosages; cluster every sample with the saved model.
  t = Clock::now();
  int rc = 0;
  std::vector<int> clusters = KMeansRoute(data, cols, work + "/model", o, global, &rc);
  if (rc != 0) return rc;
  timings.emplace_back("k-means on dosages (train + predict)", Since(t));

  auto report = [&](const char* route, const std::vector<int>& c, int64_t dims) {
    if (truth.size() == c.size() && !truth.empty() && !labels.empty()) {
      algos::Contingency table = algos::BuildContingency(truth, c);
      std::printf("\n%s: clusters vs %s (%zu samples, %lld features):\n%s", route, label_column.c_str(), c.size(),
                  static_cast<long long>(dims), algos::FormatContingency(table).c_str());
      const double ari = algos::AdjustedRandIndex(table);
      std::printf("adjusted Rand index (%s): %.4f\n", route, ari);
      return ari;
    }
    std::printf("no labels for the %zu samples: ARI not computed\n", c.size());
    return std::nan("");
  };
  const double ari_dosage = report("k-means on dosages", clusters, cols);

  // Route 2: genotype PCA (plink2's definition) -> k-means on the top PCs, scaled by sqrt(eigenvalue)
  // so that each PC weighs what it explains; PREFIX.eigenvec/.eigenval land in the work directory.
  double ari_pcs = std::nan("");
  if (!o.no_pca) {
    t = Clock::now();
    namespace gp = algos::genotype_pca;
    gp::Options po;
    po.pcs = o.pcs;
    po.loadings = false;
    // Standardisation gives a variant with frequency p a weight of 1 / sqrt(2p(1-p)): rare variants
    // (most of the 1000 Genomes subset: 16,840 of 22,220 have MAF < 1%) would dominate the PCs, so
    // population-structure PCA is run on common variants (plink2 --maf 0.05 is the usual filter).
    // On the panel this takes the ARI of k-means on the PCs from 0.66 (no filter) to 0.89.
    po.vcf.min_maf = o.pca_maf;
    Resources res(ParseDeviceRequest(o.device), global.threads, o.seed, comm::MakeSingleProcess());
    gp::Result pr = gp::Run(vcf, po, res);
    const std::string prefix = work + "/pca";
    gp::Write(pr, prefix);
    timings.emplace_back("genotype PCA (" + std::to_string(o.pcs) + " PCs)", Since(t));
    std::printf("\ngenotype PCA on %lld variants with MAF >= %g (of %lld read), %lld samples\n",
                static_cast<long long>(pr.variants), o.pca_maf, static_cast<long long>(pr.stats.variants_seen),
                static_cast<long long>(pr.samples));
    t = Clock::now();
    const std::string pcs_data = work + "/pcs.pbr";
    {
      std::unique_ptr<io::RowWriter> w = io::MakeRowWriter(pcs_data, {});
      HostBatch b;
      b.layout = Layout::kDense;
      b.rows = pr.samples;
      b.cols = po.pcs;
      b.values.resize(static_cast<size_t>(b.rows * b.cols));
      for (int64_t i = 0; i < b.rows; ++i)
        for (int64_t c = 0; c < b.cols; ++c)
          b.values[static_cast<size_t>(i * b.cols + c)] =
              static_cast<float>(pr.eigenvectors[static_cast<size_t>(i * b.cols + c)] *
                                 std::sqrt(std::max(0.0, pr.eigenvalues[static_cast<size_t>(c)])));
      w->Write(b);
      w->Close();
    }
    std::vector<int> pc_clusters = KMeansRoute(pcs_data, po.pcs, work + "/model_pcs", o, global, &rc);
    if (rc != 0) return rc;
    timings.emplace_back("k-means on the PCs (train + predict)", Since(t));
    std::printf("genotype PCA: eigenvalues");
    for (double x : pr.eigenvalues) std::printf(" %.4g", x);
    std::printf(" (%s.eigenvec, %s.eigenval)\n", prefix.c_str(), prefix.c_str());
    ari_pcs = report("k-means on the top PCs", pc_clusters, po.pcs);
    if (!o.plot_python.empty() && !o.plot_script.empty() && !labels_path.empty()) {
      t = Clock::now();
      const int prc = RunProgram({o.plot_python, o.plot_script, "--eigenvec", prefix + ".eigenvec", "--eigenval",
                                  prefix + ".eigenval", "--labels", labels_path, "--label-column", label_column,
                                  "--out", work + "/pca_plot"});
      if (prc == 0) {
        timings.emplace_back("scatter plots (matplotlib)", Since(t));
      } else {
        std::printf("plot: %s exited with status %d (see its message above); the PCs are in %s.eigenvec\n",
                    o.plot_script.c_str(), prc, prefix.c_str());
      }
    } else {
      std::printf("plot: not drawn (pass --plot-python PY --plot-script scripts/plot_pca.py, as scripts/demo.sh "
                  "does, for %s/pca_plot.png and .svg)\n",
                  work.c_str());
    }
  }
  if (!std::isnan(ari_dosage) && !std::isnan(ari_pcs)) {
    std::printf("\nARI against %s: k-means on dosages %.4f, k-means on the top %d PCs %.4f\n", label_column.c_str(),
                ari_dosage, o.pcs, ari_pcs);
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
      "demo", "The main job: genotypes -> k-means on dosages, and -> PCA -> k-means on the top PCs; ARI of both "
              "against population labels, PC scatter plots, timings");
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
  demo->add_option("--pcs", opt->pcs, "the PCA route: k-means on this many top PCs")->capture_default_str();
  demo->add_flag("--no-pca", opt->no_pca, "skip the PCA route");
  demo->add_option("--pca-maf", opt->pca_maf, "the PCA route uses variants with minor allele frequency >= this")
      ->capture_default_str();
  demo->add_option("--plot-python", opt->plot_python, "a python with matplotlib, to draw the PC scatter plots");
  demo->add_option("--plot-script", opt->plot_script, "the plotting script (scripts/plot_pca.py)");
  registry.Add(demo, [opt, &global] { return RunDemo(*opt, global); });
}

}  // namespace mlforge::cli
