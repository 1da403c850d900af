// `mlforge predict`: runs a model (ours or SageMaker's) over a file, streaming it in batches, and
// writes the response body an endpoint would return for it (container/inference_io.h).
//   model:  a directory, a model.tar.gz or a bare model_algo-1; the algorithm is detected
//   input:  CSV / recordIO-protobuf (streamed through io::BatchStream), JSON lines (streamed line
//           by line), JSON (one document, read whole)
//   join:   --join ordinal|uid|ordinal,uid adds each row's input ordinal / Record.uid to its output
//   output: stdout, or a file that appears (rename) only when every row was predicted (devices and
//           FIFOs such as /dev/null are written in place)
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "algos/algorithms.h"
#include "algos/factorization_machines/factorization_machines.h"
#include "algos/factorization_machines/model.h"
#include "algos/predictor.h"
#include "cli/cli.h"
#include "comm/communicator.h"
#include "container/inference_io.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/resources.h"
#include "core/stop.h"
#include "io/archive.h"
#include "io/batch_builder.h"
#include "io/batch_stream.h"
#include "io/decoded_row.h"
#include "io/input_file.h"
#include "io/record_codec.h"
#include "io/recordio.h"

namespace mlforge::cli {
namespace {

struct PredictArgs {
  std::string model, input, content_type, accept, output, algorithm, join, custom_attributes;
  int64_t top_k = 0;
  std::string item_range;
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
    MLF_EXPECTS(file_ != nullptr, "cannot create '{}' (for --output {}): {}", tmp_, path_,
                std::strerror(errno));
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
      MLF_FAIL("cannot write '{}': {}", file_ == stdout ? std::string("stdout") : path_,
               std::strerror(errno));
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

// Rows per batch: about 16 MiB of dense features, between 64 and 8192 rows.
int64_t BatchRows(int64_t dim) {
  return std::clamp<int64_t>((int64_t{4} << 20) / std::max<int64_t>(dim, 1), 64, 8192);
}

// recordIO input when the uid is joined: the file(s) read in order on this thread, each record
// decoded with its uid (io::BatchStream keeps no uids), `batch_rows` rows per batch (a record of r
// rows is never split). `run` gets each batch with one uid per row ("" for a record without one).
template <typename Run>
void StreamRecordIOWithUids(const std::string& input, int64_t batch_rows, int64_t expected_cols,
                            const container::RequestType& type, const StopToken& stop, const Run& run) {
  HostBatch batch;
  std::vector<std::string> uids;
  io::BatchBuilder builder;
  io::DecodedRow row;
  int64_t next_ordinal = 0;
  builder.Reset(&batch, expected_cols, next_ordinal);
  auto flush = [&] {
    if (batch.rows == 0) return;
    next_ordinal += batch.rows;
    run(batch, uids);
    uids.clear();
    builder.Reset(&batch, expected_cols, next_ordinal);
  };
  for (const std::string& path : io::ExpandChannelPaths({input})) {
    io::RecordIOReader reader(io::InputFile::Open(path, stop));
    std::string_view payload;
    while (reader.Next(&payload)) {
      io::RecordContext rc;
      rc.file = &path;
      rc.record_index = reader.record_index();
      rc.offset = reader.record_offset();
      io::DecodeRecord(payload, rc, &row);
      if (row.cols != expected_cols) {
        throw UserError(container::WidthMismatch(
            fmt::format("{}: record {} at byte {}", path, rc.record_index, rc.offset), row.cols,
            expected_cols, type));
      }
      for (int64_t r = 0; r < row.rows; ++r) {
        if (!row.sparse) {
          builder.AddDense(row.values.data() + r * row.cols, nullptr);
        } else if (row.rows == 1) {
          builder.AddSparse(row.indices.data(), row.values.data(), static_cast<int64_t>(row.values.size()),
                            nullptr);
        } else {
          const int64_t from = row.row_ptr[static_cast<size_t>(r)],
                        to = row.row_ptr[static_cast<size_t>(r + 1)];
          builder.AddSparse(row.indices.data() + from, row.values.data() + from, to - from, nullptr);
        }
        uids.push_back(row.uid);
      }
      if (batch.rows >= batch_rows) {
        stop.ThrowIfStopped();
        flush();
      }
    }
  }
  flush();
}

int RunPredict(const PredictArgs& args, const GlobalOptions& global) {
  const std::unique_ptr<algos::Predictor> predictor =
      container::LoadPredictor(io::ModelSource::Open(args.model), args.algorithm);
  const int64_t dim = predictor->feature_dim();
  // Request options, as the endpoint's X-Amzn-SageMaker-Custom-Attributes header carries them.
  std::string attributes = args.custom_attributes;
  MLF_EXPECTS(args.item_range.empty() || args.top_k > 0, "--item-range needs --top-k K");
  if (args.top_k > 0) {
    MLF_EXPECTS(predictor->algorithm() == "factorization-machines",
                "--top-k: recommendations come from factorization machines; {} is a {} model", args.model,
                predictor->algorithm());
    MLF_EXPECTS(!args.item_range.empty(), "--top-k needs --item-range BEGIN:END (the item features, END exclusive)");
    attributes += fmt::format("{}top_k={}; item_range={}", attributes.empty() ? "" : "; ", args.top_k,
                              args.item_range);
  }

  const container::RequestType type = args.content_type.empty()
                                          ? container::ContentTypeFromPath(args.input)
                                          : container::ParseContentType(args.content_type);
  container::CheckRequestType(type, *predictor, args.input);
  const container::ResponseFormat accept = container::ParseAccept(args.accept, predictor->csv_response());

  Resources res(DeviceRequest::kAuto, global.threads, 0, comm::MakeSingleProcess(), StopToken::FromSignals());
  const StopToken stop = StopToken::FromSignals();
  // With --top-k, batches small enough that each call stays under the recommendations limit.
  const int64_t batch_rows =
      args.top_k > 0 ? std::clamp<int64_t>(algos::factorization_machines::kMaxRecommendationsPerCall / args.top_k,
                                           1, BatchRows(dim))
                     : BatchRows(dim);
  const container::JoinFields join = container::ParseJoinFields(args.join);
  MLF_EXPECTS(!join.uid || type.format == container::RequestFormat::kRecordIO,
              "--join uid: only recordIO input carries a uid (Record.uid); {} is {}, use --join ordinal",
              args.input, container::RequestFormatName(type.format));
  container::ResponseEncoder encoder(accept, predictor->json_list_key(), join);
  OutputSink sink(args.output);
  std::string out;
  int64_t rows = 0;
  auto run_with_uids = [&](const HostBatch& batch, const std::vector<std::string>* uids) {
    stop.ThrowIfStopped();
    if (batch.rows == 0) return;
    encoder.Append(predictor->PredictWithAttributes(batch, res, attributes), batch, uids, &out);
    sink.Write(&out);
    rows += batch.rows;
  };
  auto run = [&](const HostBatch& batch) { run_with_uids(batch, nullptr); };

  switch (type.format) {
    case container::RequestFormat::kCsv:
    case container::RequestFormat::kRecordIO: {
      if (join.uid) {
        StreamRecordIOWithUids(args.input, batch_rows, dim, type, stop,
                               [&](const HostBatch& batch, const std::vector<std::string>& uids) {
                                 run_with_uids(batch, &uids);
                               });
        break;
      }
      io::ChannelSource channel;
      channel.paths = {args.input};
      channel.format =
          type.format == container::RequestFormat::kCsv ? io::DataFormat::kCsv : io::DataFormat::kRecordIO;
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
        if (first && batch.cols != dim) {
          // The stream checks that every row has the first row's width; the first row is checked here.
          throw UserError(container::WidthMismatch(
              args.input + (type.format == container::RequestFormat::kCsv ? ": line 1" : ": record 0"),
              batch.cols, dim, type));
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
      ctx.expected_cols = dim;
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
      ctx.expected_cols = dim;
      run(container::DecodeRequest(type, ReadWholeFile(args.input), ctx));
      break;
    }
  }
  encoder.Finish(&out);
  sink.Write(&out);
  sink.Commit();
  spdlog::info("predicted {} row(s) of {} with the {} at {} -> {} ({})", rows, args.input,
               predictor->Describe(), args.model, args.output.empty() ? "stdout" : args.output,
               container::ResponseFormatName(accept));
  return kExitOk;
}

}  // namespace

void RegisterPredict(CLI::App& app, const GlobalOptions& global, Registry& registry) {
  auto args = std::make_shared<PredictArgs>();
  CLI::App* predict = app.add_subcommand(
      "predict",
      "Run a trained model (mlforge's or SageMaker's) on a file and write the endpoint's response");
  predict->add_option("--model", args->model, "A model directory, a model.tar.gz or a bare model_algo-1")
      ->required();
  predict
      ->add_option("--input", args->input,
                   "Input file: CSV (features only), recordIO-protobuf, JSON or JSON lines")
      ->required();
  predict->add_option(
      "--content-type", args->content_type,
      "Input content type: text/csv[;label_size=0|1], application/json, application/jsonlines, "
      "application/x-recordio-protobuf (default: from the extension .csv .json .jsonl .pbr/.rec/"
      ".recordio/.protobuf)");
  predict->add_option("--accept", args->accept,
                      "Output content type: application/json (default), application/jsonlines, text/csv, "
                      "application/x-recordio-protobuf");
  predict->add_option(
      "--output", args->output,
      "Output file, written only on success (default or -: stdout; a device or FIFO is written in place)");
  predict->add_option("--algorithm", args->algorithm,
                      "Override the detected algorithm (kmeans, linear-learner, pca, factorization-machines)");
  predict
      ->add_option(
          "--join", args->join,
          "Add per-row join fields to the output: none (default: the endpoint's exact shapes), ordinal "
          "(0-based input row number), uid (the recordIO Record.uid), or ordinal,uid")
      ->default_str("none");
  predict->add_option("--top-k", args->top_k,
                      "factorization machines: also return the K best items per row (top_k_items, top_k_scores), "
                      "scored exactly over --item-range");
  predict->add_option("--item-range", args->item_range,
                      "factorization machines, with --top-k: the feature indices that are items, BEGIN:END (END "
                      "exclusive), e.g. 943:2625");
  predict->add_option("--custom-attributes", args->custom_attributes,
                      "Request options as the endpoint's X-Amzn-SageMaker-Custom-Attributes header carries them, "
                      "e.g. 'top_k=10; item_range=943:2625'");
  registry.Add(predict, [args, &global] { return RunPredict(*args, global); });

  // embeddings: a factorization machines model's per-feature w and v, for nearest-neighbour
  // search, analysis or another model.
  auto emb = std::make_shared<std::pair<std::string, std::string>>();
  CLI::App* embeddings = app.add_subcommand(
      "embeddings", "Export a factorization machines model's per-feature embeddings (w and v) as CSV or .npy");
  embeddings->add_option("--model", emb->first, "A model directory, a model.tar.gz or a bare model_algo-1")
      ->required();
  embeddings
      ->add_option("--output", emb->second,
                   "OUT.csv (header feature,w,v0..; one line per feature) or OUT.npy (float32, feature_dim x "
                   "(num_factors + 1), w in column 0)")
      ->required();
  registry.Add(embeddings, [emb] {
    const auto model = algos::factorization_machines::LoadModel(emb->first);
    algos::factorization_machines::ExportEmbeddings(model, emb->second);
    spdlog::info("wrote the embeddings of {} features x {} factors to {}", model.dim(), model.factors(), emb->second);
    return kExitOk;
  });
}

}  // namespace mlforge::cli
