// `mlforge data inspect | convert | synth`. Everything streams through io::BatchStream /
// io::RowWriter, so memory stays at a few batches whatever the file size.
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "core/error.h"
#include "core/stop.h"
#include "io/batch_stream.h"
#include "kernels/column_stats.h"
#include "io/format.h"
#include "io/input_file.h"
#include "io/row_writer.h"
#include "io/synth.h"
#include "io/synth_vcf.h"
#include "io/vcf.h"

namespace mlforge::cli {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kBatchRows = 4096;
constexpr size_t kMaxDistinctLabels = 20;

// --format/--from/--to values; "" means "from the extension".
io::DataFormat FormatOption(const std::string& s) { return s.empty() ? io::DataFormat::kAuto : io::ParseFormat(s); }

// Shortest round-trip text of a float, the same form the CSV writer uses.
std::string Num(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // %.17g round-trips a double; try shorter first so "0.5" stays "0.5".
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

// ---------------------------------------------------------------------------------------------
// inspect

struct InspectArgs {
  std::string path;
  bool json = false;
  std::string format;
  int label_size = -1;
  bool columns = false;
  bool zero_based = false;   // libsvm indices start at 0
  int64_t feature_dim = -1;  // expected width (libsvm: the width); -1: from the data
};

struct LabelStats {
  int64_t count = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  double sum = 0;
  std::set<float> distinct;  // stops growing past kMaxDistinctLabels
  bool too_many = false;

  void Add(float v) {
    ++count;
    min = std::min<double>(min, v);
    max = std::max<double>(max, v);
    sum += v;
    if (!too_many) {
      distinct.insert(v);
      if (distinct.size() > kMaxDistinctLabels) {
        too_many = true;
        distinct.clear();
      }
    }
  }
};

int RunInspect(const InspectArgs& args, const GlobalOptions& global) {
  io::ChannelSource source;
  source.paths = {args.path};
  source.format = FormatOption(args.format);
  source.label_size = args.label_size;
  source.libsvm_zero_based = args.zero_based;
  const std::vector<std::string> files = io::ExpandChannelPaths(source.paths);

  io::StreamOptions options;
  options.batch_size = kBatchRows;
  options.expected_cols = args.feature_dim;
  options.threads = global.threads;
  options.stop = StopToken::FromSignals();
  options.allow_non_finite = true;  // a data tool shows and converts NaN as it is
  io::BatchStream stream(source, options);

  HostBatch batch;
  int64_t rows = 0, nnz = 0;
  bool sparse = false;
  LabelStats labels;
  kernels::ColumnStats col_stats;
  while (stream.Next(&batch)) {
    rows += batch.rows;
    if (batch.layout == Layout::kCsr) {
      sparse = true;
      nnz += static_cast<int64_t>(batch.values.size());
    } else {
      nnz += std::count_if(batch.values.begin(), batch.values.end(), [](float v) { return v != 0.0f; });
    }
    for (float v : batch.labels) labels.Add(v);
    if (args.columns) {
      if (col_stats.cols() == 0) col_stats = kernels::ColumnStats(batch.cols);
      if (batch.layout == Layout::kDense) {
        col_stats.Merge(kernels::ColumnStatsCpu(kernels::DenseView(batch), global.threads > 0 ? global.threads : 1));
      } else {
        // Implicit zeros count as values: the statistics are those of the dense matrix.
        for (size_t k = 0; k < batch.values.size(); ++k) {
          const double v = batch.values[k];
          col_stats.sum[batch.indices[k]] += v;
          col_stats.sum_sq[batch.indices[k]] += v * v;
        }
        for (auto& c : col_stats.count) c += batch.rows;
      }
    }
  }
  const io::StreamStats& stats = stream.stats();
  const int64_t cols = rows > 0 ? stream.cols() : 0;
  sparse = sparse || stats.any_sparse;

  nlohmann::json j;
  j["path"] = args.path;
  nlohmann::json jfiles = nlohmann::json::array();
  uint64_t total_bytes = 0;
  std::set<std::string> formats;
  for (const auto& f : files) {
    std::error_code ec;
    const uint64_t size = fs::is_regular_file(f, ec) ? fs::file_size(f, ec) : 0;
    io::DataFormat fmt = source.format != io::DataFormat::kAuto ? source.format : io::FormatFromPath(f);
    formats.insert(io::FormatName(fmt));
    total_bytes += size;
    jfiles.push_back({{"path", f}, {"format", io::FormatName(fmt)}, {"bytes", size}});
  }
  j["format"] = formats.size() == 1 ? *formats.begin() : std::string("mixed");
  j["files"] = jfiles;
  j["bytes"] = total_bytes;
  j["records"] = stats.records;
  j["rows"] = rows;
  j["cols"] = cols;
  j["layout"] = sparse ? "sparse" : "dense";
  j["nnz"] = nnz;
  const double cells = static_cast<double>(rows) * static_cast<double>(cols);
  j["density"] = cells > 0 ? static_cast<double>(nnz) / cells : 0.0;
  nlohmann::json jl;
  jl["present"] = labels.count > 0;
  jl["count"] = labels.count;
  if (labels.count > 0) {
    jl["min"] = labels.min;
    jl["max"] = labels.max;
    jl["mean"] = labels.sum / static_cast<double>(labels.count);
    if (labels.too_many) {
      jl["distinct"] = nullptr;
    } else {
      jl["distinct"] = std::vector<float>(labels.distinct.begin(), labels.distinct.end());
    }
  } else {
    jl["min"] = jl["max"] = jl["mean"] = jl["distinct"] = nullptr;
  }
  j["labels"] = jl;
  if (args.columns) {
    nlohmann::json jc = nlohmann::json::array();
    for (int64_t c = 0; c < col_stats.cols(); ++c) {
      jc.push_back({{"mean", col_stats.Mean(c)}, {"std", std::sqrt(col_stats.Variance(c))}});
    }
    j["columns"] = jc;
  }

  if (args.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("path:     %s\n", args.path.c_str());
  std::printf("format:   %s\n", j["format"].get<std::string>().c_str());
  std::printf("files:    %zu (%llu bytes)\n", files.size(), static_cast<unsigned long long>(total_bytes));
  if (files.size() > 1 || files[0] != args.path) {
    for (const auto& f : jfiles) {
      std::printf("  %s  %s  %llu bytes\n", f["path"].get<std::string>().c_str(),
                  f["format"].get<std::string>().c_str(),
                  static_cast<unsigned long long>(f["bytes"].get<uint64_t>()));
    }
  }
  std::printf("records:  %lld\n", static_cast<long long>(stats.records));
  std::printf("rows:     %lld\n", static_cast<long long>(rows));
  std::printf("columns:  %lld\n", static_cast<long long>(cols));
  std::printf("layout:   %s\n", sparse ? "sparse" : "dense");
  std::printf("nnz:      %lld (density %s)\n", static_cast<long long>(nnz), Num(j["density"].get<double>()).c_str());
  if (labels.count == 0) {
    std::printf("labels:   none\n");
  } else {
    std::printf("labels:   %lld (min %s, max %s, mean %s)\n", static_cast<long long>(labels.count),
                Num(labels.min).c_str(), Num(labels.max).c_str(),
                Num(labels.sum / static_cast<double>(labels.count)).c_str());
    if (labels.too_many) {
      std::printf("distinct: more than %zu\n", kMaxDistinctLabels);
    } else {
      std::string list;
      for (float v : labels.distinct) list += (list.empty() ? "" : ", ") + Num(v);
      std::printf("distinct: %zu (%s)\n", labels.distinct.size(), list.c_str());
    }
  }
  if (args.columns) {
    std::printf("column    mean    std\n");
    for (int64_t c = 0; c < col_stats.cols(); ++c) {
      std::printf("%-8lld  %s  %s\n", static_cast<long long>(c), Num(col_stats.Mean(c)).c_str(),
                  Num(std::sqrt(col_stats.Variance(c))).c_str());
    }
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------------------------
// convert

struct ConvertArgs {
  std::vector<std::string> paths;  // inputs..., output
  std::string from, to;
  int label_size = -1;
  bool zero_based = false;   // libsvm input indices start at 0
  int64_t feature_dim = -1;  // expected width (libsvm: the width); -1: from the data
  // VCF only (passed to io/vcf.h).
  double maf = 0;
  double max_missing = 1;
  bool keep_indels = false;
  bool half_missing_as_missing = false;
  bool variants = false;
  std::string samples_out;
};

bool IsVcf(const std::string& path) { return io::FormatFromPath(path) == io::DataFormat::kVcf; }

// VCF/BCF -> samples x variants dosages (io/vcf.h), plus <output>.samples.txt (moved to
// --samples-out when given) and, with --variants, <output>.variants.tsv.
int RunConvertVcf(const ConvertArgs& args, const std::vector<std::string>& inputs, const std::string& output,
                  io::DataFormat to, const GlobalOptions& global) {
  io::VcfOptions vopt;
  vopt.keep_indels = args.keep_indels;
  vopt.half_missing_as_missing = args.half_missing_as_missing;
  vopt.min_maf = args.maf;
  vopt.max_missing = args.max_missing;
  vopt.write_variants = args.variants;
  vopt.threads = global.threads > 0 ? global.threads : 0;
  vopt.stop = StopToken::FromSignals();
  io::ValidateVcfOptions(vopt);
  io::WriterOptions wopt;
  wopt.format = to;
  wopt.write_labels = false;  // genotype rows carry no labels
  const io::VcfStats stats = io::ConvertVcf(inputs, output, vopt, wopt);
  const std::string samples = output + ".samples.txt";
  if (!args.samples_out.empty()) {
    std::error_code ec;
    fs::rename(samples, args.samples_out, ec);
    MLF_EXPECTS(!ec, "cannot move {} to --samples-out {}: {}", samples, args.samples_out, ec.message());
  }
  spdlog::info("{}", stats.Report());
  spdlog::info("wrote {} samples x {} variants to {}", stats.rows_written, stats.variants_kept, output);
  return kExitOk;
}

int RunConvert(const ConvertArgs& args, const GlobalOptions& global) {
  MLF_EXPECTS(args.paths.size() >= 2, "data convert needs at least one INPUT and an OUTPUT (got {} path)",
              args.paths.size());
  const std::vector<std::string> inputs(args.paths.begin(), args.paths.end() - 1);
  const std::string& output = args.paths.back();

  io::DataFormat to = FormatOption(args.to);
  if (to == io::DataFormat::kAuto) to = io::FormatFromPath(output);
  MLF_EXPECTS(to != io::DataFormat::kAuto,
              "cannot tell the output format from '{}': use a .csv, .pbr/.recordio or .libsvm extension or "
              "pass --to csv|recordio|libsvm",
              output);
  MLF_EXPECTS(to != io::DataFormat::kVcf, "{}: mlforge does not write VCF; pass --to csv|recordio|libsvm",
              output);
  std::error_code ec;
  for (const auto& in : inputs) {
    MLF_EXPECTS(!fs::equivalent(in, output, ec), "output '{}' is also an input; write to another path",
                output);
  }

  io::DataFormat from = FormatOption(args.from);
  const bool vcf = from == io::DataFormat::kVcf ||
                   (from == io::DataFormat::kAuto && std::all_of(inputs.begin(), inputs.end(), IsVcf));
  if (vcf) return RunConvertVcf(args, inputs, output, to, global);
  MLF_EXPECTS(from != io::DataFormat::kAuto || std::none_of(inputs.begin(), inputs.end(), IsVcf),
              "VCF inputs cannot be mixed with CSV/recordIO/libsvm inputs; convert them separately");

  io::ChannelSource source;
  source.paths = inputs;
  source.format = from;
  source.label_size = args.label_size;
  source.libsvm_zero_based = args.zero_based;
  io::StreamOptions options;
  options.batch_size = kBatchRows;
  options.expected_cols = args.feature_dim;
  options.threads = global.threads;
  options.stop = StopToken::FromSignals();
  options.allow_non_finite = true;  // a data tool shows and converts NaN as it is
  io::BatchStream stream(source, options);

  io::WriterOptions wopt;
  wopt.format = to;
  wopt.sparse = true;  // recordIO and libsvm keep sparse rows sparse; CSV writes every row dense
  wopt.write_labels = args.label_size != 0;
  auto writer = io::MakeRowWriter(output, wopt);
  HostBatch batch;
  while (stream.Next(&batch)) writer->Write(batch);
  writer->Close();
  spdlog::info("wrote {} rows x {} columns to {} ({})", writer->rows_written(),
               writer->rows_written() > 0 ? stream.cols() : 0, output, io::FormatName(to));
  return kExitOk;
}

// ---------------------------------------------------------------------------------------------
// synth

struct SynthArgs {
  std::string kind, output, to;
  io::SynthOptions opt;
  bool no_labels = false;
  bool no_truth = false;
  CLI::Option* cols = nullptr;
  // genotypes as VCF/BCF only (io/synth_vcf.h).
  io::SynthVcfOptions vcf;
  CLI::Option* missing_rate = nullptr;
  CLI::Option* phased = nullptr;
  CLI::Option* compression_level = nullptr;
};

// genotypes -> .vcf / .vcf.gz / .bcf, with OUTPUT.samples.tsv and OUTPUT.truth.json.
int RunSynthVcf(const SynthArgs& args) {
  io::SynthVcfOptions vopt = args.vcf;
  vopt.threads = args.opt.threads;  // htslib compression threads
  vopt.write_truth = !args.no_truth;
  const io::SynthVcfResult r = io::WriteSynthGenotypesVcf(args.opt, args.output, vopt, StopToken::FromSignals());
  spdlog::info("wrote {} samples x {} variants of synth genotypes to {} ({}, {} missing calls; populations: {}{})",
               r.samples, r.variants, args.output, r.format, r.missing_calls, r.samples_path,
               r.truth_path.empty() ? "" : "; ground truth: " + r.truth_path);
  return kExitOk;
}

int RunSynth(SynthArgs args, const GlobalOptions& global) {
  args.opt.kind = io::ParseSynthKind(args.kind);
  args.opt.threads = global.threads;
  args.opt.labels = !args.no_labels;
  // fm's width is users + items; only a --cols the user typed is checked against it.
  if (args.opt.kind == io::SynthKind::kFm && args.cols->count() == 0) args.opt.cols = 0;
  io::WriterOptions wopt;
  wopt.format = FormatOption(args.to);
  if (wopt.format == io::DataFormat::kAuto) wopt.format = io::FormatFromPath(args.output);
  if (wopt.format == io::DataFormat::kVcf) {
    io::ValidateSynthVcf(args.opt, args.vcf);  // names the kind when it is not genotypes
    return RunSynthVcf(args);
  }
  MLF_EXPECTS(args.missing_rate->count() == 0 && args.phased->count() == 0 && args.compression_level->count() == 0,
              "--missing-rate, --phased and --compression-level apply to genotypes written as VCF/BCF (.vcf, "
              ".vcf.gz, .bcf) only; '{}' is {}",
              args.output, io::FormatName(wopt.format));
  MLF_EXPECTS(wopt.format == io::DataFormat::kCsv || wopt.format == io::DataFormat::kRecordIO,
              "cannot tell the output format from '{}': use a .csv or .pbr/.recordio extension (genotypes: also "
              ".vcf, .vcf.gz or .bcf) or pass --to csv|recordio",
              args.output);
  wopt.write_labels = !args.no_labels;
  const io::SynthResult r = io::WriteSynth(args.opt, args.output, wopt, !args.no_truth, StopToken::FromSignals());
  spdlog::info("wrote {} rows x {} columns of synth {} to {}{}", r.rows, r.cols, args.kind, args.output,
               r.truth_path.empty() ? "" : " (ground truth: " + r.truth_path + ")");
  return kExitOk;
}

}  // namespace

void RegisterData(CLI::App& app, const GlobalOptions& global, Registry& registry) {
  CLI::App* data = app.add_subcommand("data", "Inspect, convert and generate data sets");
  data->require_subcommand(1);

  // inspect
  auto inspect_args = std::make_shared<InspectArgs>();
  CLI::App* inspect = data->add_subcommand(
      "inspect",
      "Stream a file or directory and report format, records, rows, columns, layout, nnz and labels");
  inspect->add_option("FILE", inspect_args->path, "A file or a directory of files (a channel)")->required();
  inspect->add_flag("--json", inspect_args->json,
                    "Print one JSON object: path, format, files[{path,format,bytes}], bytes, records, rows, "
                    "cols, layout (dense|sparse), nnz, density, labels{present,count,min,max,mean,distinct}");
  inspect->add_flag("--columns", inspect_args->columns,
                    "Also report each column's mean and standard deviation (JSON key \"columns\": [{mean, std}])");
  inspect->add_option("--format", inspect_args->format, "csv|recordio|libsvm (default: from the extension)")
      ->check(CLI::IsMember({"csv", "recordio", "libsvm", "svmlight"}));
  inspect->add_option("--label-size", inspect_args->label_size,
                      "CSV: 1 = the first column is the label (default), 0 = no label")
      ->check(CLI::IsMember({0, 1}));
  inspect->add_flag("--zero-based", inspect_args->zero_based,
                    "libsvm: indices start at 0 (default: at 1, libsvm's convention)");
  inspect
      ->add_option("--feature-dim", inspect_args->feature_dim,
                   "Expected number of feature columns (libsvm: the width; default: the largest index)")
      ->check(CLI::NonNegativeNumber);
  registry.Add(inspect, [inspect_args, &global] { return RunInspect(*inspect_args, global); });

  // convert
  auto convert_args = std::make_shared<ConvertArgs>();
  CLI::App* convert = data->add_subcommand(
      "convert",
      "Convert between CSV, recordIO-protobuf and libsvm (several inputs are concatenated), or VCF -> CSV or "
      "recordIO");
  convert->add_option("PATHS", convert_args->paths, "INPUT... OUTPUT: input files/directories, then the output file")
      ->required()
      ->expected(2, CLI::detail::expected_max_vector_size);
  convert->add_option("--from", convert_args->from, "Input format (default: from each extension)")
      ->check(CLI::IsMember({"csv", "recordio", "vcf", "libsvm", "svmlight"}));
  convert->add_option("--to", convert_args->to, "Output format (default: from the extension)")
      ->check(CLI::IsMember({"csv", "recordio", "libsvm"}));
  convert->add_flag("--zero-based", convert_args->zero_based,
                    "libsvm input: indices start at 0 (default: at 1, libsvm's convention; libsvm output is "
                    "always 1-based)");
  convert
      ->add_option("--feature-dim", convert_args->feature_dim,
                   "Expected number of feature columns (libsvm input: the width; default: the largest index)")
      ->check(CLI::NonNegativeNumber);
  convert->add_option("--label-size", convert_args->label_size,
                      "1: CSV input's first column is the label / labels are written (default); 0: no labels")
      ->check(CLI::IsMember({0, 1}));
  convert->add_option("--maf", convert_args->maf, "VCF: drop variants with minor allele frequency below this")
      ->capture_default_str();
  convert->add_option("--max-missing", convert_args->max_missing,
                      "VCF: drop variants with a larger fraction of missing calls")
      ->capture_default_str();
  convert->add_flag("--keep-indels", convert_args->keep_indels, "VCF: keep biallelic indels (default: SNVs only)");
  convert->add_flag("--half-missing-as-missing", convert_args->half_missing_as_missing,
                    "VCF: treat half-missing calls (0/.) as missing instead of haploid");
  convert->add_flag("--variants", convert_args->variants, "VCF: also write OUTPUT.variants.tsv (one line per column)");
  convert->add_option("--samples-out", convert_args->samples_out,
                      "VCF: where the sample IDs go, one per line in row order (default: OUTPUT.samples.txt)");
  registry.Add(convert, [convert_args, &global] { return RunConvert(*convert_args, global); });

  // synth
  auto synth_args = std::make_shared<SynthArgs>();
  io::SynthOptions& o = synth_args->opt;
  CLI::App* synth = data->add_subcommand(
      "synth",
      "Generate a deterministic synthetic data set with known ground truth (written to OUTPUT.truth.json)");
  synth->add_option("KIND", synth_args->kind, "blobs | linear | lowrank | fm | genotypes")
      ->required()
      ->check(CLI::IsMember({"blobs", "linear", "lowrank", "fm", "genotypes"}));
  synth->add_option("OUTPUT", synth_args->output,
                    "Output file (.csv or .pbr/.recordio; genotypes also .vcf, .vcf.gz or .bcf, with "
                    "OUTPUT.samples.tsv)")
      ->required();
  synth->add_option("--rows", o.rows, "Rows (samples for genotypes)")->capture_default_str();
  synth_args->cols =
      synth
          ->add_option("--cols", o.cols,
                       "Columns (variants for genotypes; fm: users + items, or all features with --fields)")
          ->capture_default_str();
  synth->add_option("--seed", o.seed, "Seed: the same seed gives the same bytes")->capture_default_str();
  synth->add_option("--to", synth_args->to, "Output format (default: from the extension)")
      ->check(CLI::IsMember({"csv", "recordio"}));
  synth->add_flag("--no-labels", synth_args->no_labels, "Write no labels (e.g. for k-means / PCA input)");
  synth->add_flag("--no-truth", synth_args->no_truth, "Do not write OUTPUT.truth.json");
  synth->add_option("--k", o.k, "blobs: number of clusters")->capture_default_str();
  synth->add_option("--cluster-std", o.cluster_std, "blobs: standard deviation around each center")
      ->capture_default_str();
  synth->add_option("--center-box", o.center_box, "blobs: centers are uniform in [-box, box]^cols")
      ->capture_default_str();
  synth->add_option("--task", o.task, "linear: regression|binary|multiclass; fm: regression|binary")
      ->capture_default_str();
  synth->add_option("--classes", o.classes, "linear multiclass: number of classes")->capture_default_str();
  synth->add_option("--noise", o.noise, "linear, lowrank, fm: standard deviation of the Gaussian noise")
      ->capture_default_str();
  synth->add_option("--rank", o.rank, "lowrank: number of principal components")->capture_default_str();
  synth->add_option("--spectrum", o.spectrum,
                    "lowrank: standard deviation along each component, comma-separated (default 10*0.7^j)")
      ->delimiter(',');
  synth->add_option("--users", o.users, "fm: number of users")->capture_default_str();
  synth->add_option("--items", o.items, "fm: number of items")->capture_default_str();
  synth->add_option("--factors", o.factors, "fm: factorization dimension")->capture_default_str();
  synth
      ->add_option("--fields", o.fields,
                   "fm: Criteo-like rows, one id in each of this many fields over --cols "
                   "features (0: one user and one item)")
      ->capture_default_str();
  synth->add_option("--zipf", o.zipf, "fm --fields: Zipf exponent of the ids' popularity (0: uniform)")
      ->capture_default_str();
  synth->add_option("--populations", o.populations, "genotypes: number of populations")->capture_default_str();
  synth->add_option("--fst", o.fst, "genotypes: Balding-Nichols F_ST in (0, 1)")->capture_default_str();
  synth_args->missing_rate =
      synth->add_option("--missing-rate", synth_args->vcf.missing_rate,
                        "genotypes as VCF/BCF: each call is missing (./.) with this probability, in [0, 1)")
          ->capture_default_str();
  synth_args->compression_level =
      synth->add_option("--compression-level", synth_args->vcf.compression_level,
                        "genotypes as .vcf.gz/.bcf: BGZF deflate level 0-9 (-1: htslib's default, 6; 1 is ~12x "
                        "faster for a ~1.4x larger file)")
          ->capture_default_str();
  synth_args->phased = synth->add_flag(
      "--phased", synth_args->vcf.phased,
      "genotypes as VCF/BCF: write phased calls a|b (alleles in draw order) instead of 0/0, 0/1, 1/1");
  registry.Add(synth, [synth_args, &global] { return RunSynth(*synth_args, global); });
}

}  // namespace mlforge::cli
