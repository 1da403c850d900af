// `mlforge predict`: runs a model (ours or SageMaker's) over a file, streaming it in batches, and
// writes the response body an endpoint would return for it (container/inference_io.h).
//   model:  a directory, a model.tar.gz or a bare model_algo-1; the algorithm is detected
//   input:  CSV / recordIO-protobuf (streamed through io::BatchStream), JSON lines (streamed line
//           by line), JSON (one document, read whole)
//   output: stdout, or a file that appears (rename) only when every row was predicted (devices and
//           FIFOs such as /dev/null are written in place)
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "algos/algorithms.h"
#include "algos/kmeans/kmeans.h"
#include "algos/kmeans/model.h"
#include "cli/cli.h"
#include "comm/communicator.h"
#include "container/inference_io.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/resources.h"
#include "core/stop.h"
#include "io/archive.h"
#include "io/batch_stream.h"

namespace mlforge::cli {
namespace {

struct PredictArgs {
  std::string model, input, content_type, accept, output, algorithm;
};

// Where the response goes: stdout ("" or "-"); a regular file (new or existing, possibly through a
// symlink), written as `<file>.tmp-<pid>` next to the real file and renamed over it by Commit(), so
// a failure leaves nothing behind (a sink destroyed without Commit() removes its temporary); or a
// device or FIFO (/dev/null, a pipe), which is written directly since it cannot be replaced.
class OutputSink {
 public:
  explicit OutputSink(std::string path) : path_(std::move(path)) {
    if (path_.empty() || path_ == "-") {
      file_ = stdout;
      return;
    }
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0) {
      MLF_EXPECTS(!S_ISDIR(st.st_mode), "--output {}: is a directory; give a file name", path_);
      if (!S_ISREG(st.st_mode)) {
        file_ = std::fopen(path_.c_str(), "wb");
        MLF_EXPECTS(file_ != nullptr, "cannot open '{}' (--output): {}", path_, std::strerror(errno));
        direct_ = true;
        return;
      }
    }
    std::error_code ec;
    const std::filesystem::path real = std::filesystem::weakly_canonical(path_, ec);
    target_ = ec ? path_ : real.string();
    tmp_ = target_ + ".tmp-" + std::to_string(getpid());
    file_ = std::fopen(tmp_.c_str(), "wb");
    MLF_EXPECTS(file_ != nullptr, "cannot create '{}' (for --output {}): {}", tmp_, path_, std::strerror(errno));
  }
  ~OutputSink() {
    if (file_ != nullptr && file_ != stdout) {
      std::fclose(file_);
      if (!direct_) std::remove(tmp_.c_str());
    }
  }
  OutputSink(const OutputSink&) = delete;
  OutputSink& operator=(const OutputSink&) = delete;

  void Write(std::string* bytes) {
    if (bytes->empty()) return;
    if (std::fwrite(bytes->data(), 1, bytes->size(), file_) != bytes->size()) {
      MLF_FAIL("cannot write '{}': {}", file_ == stdout ? std::string("stdout") : path_, std::strerror(errno));
    }
    bytes->clear();
  }
  void Commit() {
    if (file_ == stdout) {
      MLF_EXPECTS(std::fflush(stdout) == 0, "cannot write stdout: {}", std::strerror(errno));
      return;
    }
    const bool flushed = std::fflush(file_) == 0;
    const int err = errno;
    const bool closed = std::fclose(file_) == 0;
    file_ = nullptr;
    if (!flushed || !closed) {
      if (!direct_) std::remove(tmp_.c_str());
      MLF_FAIL("cannot write '{}': {}", path_, std::strerror(err));
    }
    if (direct_) return;
    if (std::rename(tmp_.c_str(), target_.c_str()) != 0) {
      const int rerr = errno;
      std::remove(tmp_.c_str());
      MLF_FAIL("cannot rename '{}' to '{}': {}", tmp_, target_, std::strerror(rerr));
    }
  }

 private:
  std::string path_;    // as given
  std::string target_;  // the regular file replaced (symlinks resolved)
  std::string tmp_;
  bool direct_ = false;  // a device or FIFO, written in place
  FILE* file_ = nullptr;
};

// The canonical algorithm name for --algorithm / detection, or a UserError saying why predict
// cannot run it.
std::string ResolveAlgorithm(const PredictArgs& args, const io::ModelSource& source) {
  std::string name = args.algorithm;
  for (char& c : name) c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (name == "k-means") name = "kmeans";
  if (name.empty()) {
    name = container::DetectAlgorithm(source);
    MLF_EXPECTS(!name.empty(),
                "{}: cannot tell which algorithm this model belongs to ({} is a {}); if it is a k-means model "
                "(an NDArray list holding one (k, feature_dim) float32 array), pass --algorithm kmeans",
                args.model, source.model_source(), io::FileKindName(source.model_kind()));
  }
  if (name == "kmeans") return name;
  if (name == "pca" || name == "linear-learner" || name == "factorization-machines") {
    MLF_FAIL("{}: this is a {} model{}; mlforge predict supports kmeans models only so far", args.model, name,
             args.algorithm.empty() ? " (detected from model_algo-1)" : "");
  }
  algos::FindAlgorithm(algos::BuiltinAlgorithms(), args.algorithm);  // names the closest valid one
  MLF_FAIL("--algorithm {}: mlforge predict supports kmeans models only so far", args.algorithm);
}

// Rows per batch: about 16 MiB of dense features, between 64 and 8192 rows.
int64_t BatchRows(int64_t dim) { return std::clamp<int64_t>((int64_t{4} << 20) / std::max<int64_t>(dim, 1), 64, 8192); }

int RunPredict(const PredictArgs& args, const GlobalOptions& global) {
  io::ModelSource source = io::ModelSource::Open(args.model);
  ResolveAlgorithm(args, source);
  const algos::kmeans::Model model = algos::kmeans::ParseModel(source.model_bytes(), source.model_source());

  const container::RequestType type = args.content_type.empty() ? container::ContentTypeFromPath(args.input)
                                                                : container::ParseContentType(args.content_type);
  const container::ResponseFormat accept = container::ParseAccept(args.accept);

  Resources res(DeviceRequest::kAuto, global.threads, 0, comm::MakeSingleProcess(), StopToken::FromSignals());
  const StopToken stop = StopToken::FromSignals();
  const int64_t batch_rows = BatchRows(model.dim);
  container::KMeansResponseEncoder encoder(accept);
  OutputSink sink(args.output);
  std::string out;
  int64_t rows = 0;
  auto run = [&](const HostBatch& batch) {
    stop.ThrowIfStopped();
    if (batch.rows == 0) return;
    encoder.Append(algos::kmeans::Predict(model, batch, res), &out);
    sink.Write(&out);
    rows += batch.rows;
  };

  switch (type.format) {
    case container::RequestFormat::kCsv:
    case container::RequestFormat::kRecordIO: {
      io::ChannelSource channel;
      channel.paths = {args.input};
      channel.format = type.format == container::RequestFormat::kCsv ? io::DataFormat::kCsv : io::DataFormat::kRecordIO;
      channel.label_size = type.label_size;
      io::StreamOptions options;
      options.batch_size = batch_rows;
      options.threads = global.threads > 0 ? std::min(global.threads, 4) : 2;
      options.prefetch = 2;
      options.stop = stop;
      io::BatchStream stream(channel, options);
      HostBatch batch;
      bool first = true;
      while (stream.Next(&batch)) {
        if (first && batch.cols != model.dim) {
          // The stream checks that every row has the first row's width; the first row is checked here.
          throw UserError(container::WidthMismatch(
              args.input + (type.format == container::RequestFormat::kCsv ? ": line 1" : ": record 0"), batch.cols,
              model.dim, type));
        }
        first = false;
        run(batch);
      }
      break;
    }
    case container::RequestFormat::kJsonLines: {
      std::ifstream in(args.input, std::ios::binary);
      MLF_EXPECTS(in.good(), "cannot read '{}': {}", args.input, std::strerror(errno));
      container::RequestContext ctx;
      ctx.source = args.input;
      ctx.expected_cols = model.dim;
      std::string chunk, line;
      int64_t lines = 0, line_no = 0;
      auto flush = [&] {
        if (lines == 0) return;
        const HostBatch batch = container::DecodeRequest(type, chunk, ctx);
        run(batch);
        ctx.first_line = line_no + 1;
        ctx.first_row += batch.rows;
        chunk.clear();
        lines = 0;
      };
      while (std::getline(in, line)) {
        ++line_no;
        chunk.append(line).push_back('\n');
        if (++lines >= batch_rows) flush();
      }
      MLF_EXPECTS(in.eof(), "cannot read '{}': {}", args.input, std::strerror(errno));
      flush();
      break;
    }
    case container::RequestFormat::kJson: {
      // One JSON document: parsed whole (use JSON lines, CSV or recordIO for inputs larger than memory).
      container::RequestContext ctx;
      ctx.source = args.input;
      ctx.expected_cols = model.dim;
      run(container::DecodeRequest(type, ReadWholeFile(args.input), ctx));
      break;
    }
  }
  encoder.Finish(&out);
  sink.Write(&out);
  sink.Commit();
  spdlog::info("predicted {} row(s) of {} with the kmeans model {} (k={}, feature_dim={}) -> {} ({})", rows,
               args.input, args.model, model.k, model.dim, args.output.empty() ? "stdout" : args.output,
               container::ResponseFormatName(accept));
  return kExitOk;
}

}  // namespace

void RegisterPredict(CLI::App& app, const GlobalOptions& global, Registry& registry) {
  auto args = std::make_shared<PredictArgs>();
  CLI::App* predict = app.add_subcommand(
      "predict", "Run a trained model (mlforge's or SageMaker's) on a file and write the endpoint's response");
  predict->add_option("--model", args->model, "A model directory, a model.tar.gz or a bare model_algo-1")
      ->required();
  predict->add_option("--input", args->input, "Input file: CSV (features only), recordIO-protobuf, JSON or JSON lines")
      ->required();
  predict->add_option("--content-type", args->content_type,
                      "Input content type: text/csv[;label_size=0|1], application/json, application/jsonlines, "
                      "application/x-recordio-protobuf (default: from the extension .csv .json .jsonl .pbr/.rec/"
                      ".recordio/.protobuf)");
  predict->add_option("--accept", args->accept,
                      "Output content type: application/json (default), application/jsonlines, text/csv, "
                      "application/x-recordio-protobuf");
  predict->add_option("--output", args->output, "Output file, written only on success (default or -: stdout; a device or FIFO is written in place)");
  predict->add_option("--algorithm", args->algorithm, "Override the detected algorithm (kmeans)");
  registry.Add(predict, [args, &global] { return RunPredict(*args, global); });
}

}  // namespace mlforge::cli
