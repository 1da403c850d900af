// Decode throughput of dense float32 recordIO-protobuf and of CSV, single thread and all threads,
// against the raw read (memcpy) rate of the same bytes from memory / page cache.
// Counters: bytes_per_second (MB/s as Google Benchmark reports it) and rows/s.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/batch.h"
#include "io/batch_stream.h"
#include "io/csv.h"
#include "io/decoded_row.h"
#include "io/record_codec.h"
#include "io/recordio.h"
#include "io/row_writer.h"

namespace {

namespace fs = std::filesystem;
using namespace mlforge;

constexpr int64_t kRows = 200000;

std::vector<float> RandomMatrix(int64_t rows, int64_t cols) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (auto& v : x) v = nd(rng);
  return x;
}

// Writes (once per process) a dense labeled file of kRows x cols in `format`; returns its path.
std::string DataFile(io::DataFormat format, int64_t cols) {
  std::string path = (fs::temp_directory_path() /
                      fmt::format("mlforge-bench-{}-{}.{}", kRows, cols,
                                  format == io::DataFormat::kCsv ? "csv" : "pbr"))
                         .string();
  if (fs::exists(path)) return path;
  auto x = RandomMatrix(kRows, cols);
  HostBatch b;
  b.layout = Layout::kDense;
  b.rows = kRows;
  b.cols = cols;
  b.values = x;
  b.labels.assign(kRows, 1.0f);
  io::WriterOptions opt;
  opt.format = format;
  auto w = io::MakeRowWriter(path, opt);
  w->Write(b);
  w->Close();
  return path;
}

std::string Slurp(const std::string& path) {
  std::string s;
  s.resize(fs::file_size(path));
  FILE* f = std::fopen(path.c_str(), "rb");
  size_t got = std::fread(s.data(), 1, s.size(), f);
  std::fclose(f);
  s.resize(got);
  return s;
}

// The floor: copying the same bytes once.
void BM_Memcpy(benchmark::State& state) {
  const int64_t cols = state.range(0);
  std::string bytes = Slurp(DataFile(io::DataFormat::kRecordIO, cols));
  std::string dst(bytes.size(), '\0');
  for (auto _ : state) {
    std::memcpy(dst.data(), bytes.data(), bytes.size());
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
  state.SetLabel(fmt::format("{} bytes", bytes.size()));
}

// The same copy split over `threads` threads (each copies its own slice): the all-cores floor.
void BM_MemcpyThreads(benchmark::State& state) {
  const int64_t cols = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  std::string bytes = Slurp(DataFile(io::DataFormat::kRecordIO, cols));
  std::string dst(bytes.size(), '\0');
  const size_t slice = (bytes.size() + static_cast<size_t>(threads) - 1) / static_cast<size_t>(threads);
  for (auto _ : state) {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const size_t from = std::min(bytes.size(), slice * static_cast<size_t>(t));
        const size_t to = std::min(bytes.size(), from + slice);
        std::memcpy(dst.data() + from, bytes.data() + from, to - from);
      });
    }
    for (auto& th : pool) th.join();
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
  state.SetLabel(fmt::format("{} bytes threads={}", bytes.size(), threads));
}

// The raw read rate: read(2) of the whole file from the page cache into a reused 1 MB buffer.
void BM_PageCacheRead(benchmark::State& state) {
  const int64_t cols = state.range(0);
  std::string path = DataFile(io::DataFormat::kRecordIO, cols);
  const auto size = static_cast<int64_t>(fs::file_size(path));
  std::vector<char> buf(size_t{1} << 20);
  for (auto _ : state) {
    FILE* f = std::fopen(path.c_str(), "rb");
    std::setvbuf(f, nullptr, _IONBF, 0);
    size_t total = 0, got;
    while ((got = std::fread(buf.data(), 1, buf.size(), f)) > 0) total += got;
    std::fclose(f);
    benchmark::DoNotOptimize(total);
  }
  state.SetBytesProcessed(state.iterations() * size);
}

// Single thread: framing + protobuf decode of every record, from the page cache.
void BM_RecordIODecode1T(benchmark::State& state) {
  const int64_t cols = state.range(0);
  std::string path = DataFile(io::DataFormat::kRecordIO, cols);
  const auto size = static_cast<int64_t>(fs::file_size(path));
  io::DecodedRow row;
  for (auto _ : state) {
    io::RecordIOReader reader(io::InputFile::Open(path));
    std::string_view payload;
    int64_t n = 0;
    while (reader.Next(&payload)) {
      io::RecordContext ctx{&path, reader.record_index(), reader.record_offset()};
      io::DecodeRecord(payload, ctx, &row);
      ++n;
    }
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(state.iterations() * size);
  state.counters["rows/s"] = benchmark::Counter(static_cast<double>(kRows) * state.iterations(),
                                                benchmark::Counter::kIsRate);
  state.SetLabel(fmt::format("n={} d={}", kRows, cols));
}

// Single thread: CSV parse of every line (file already in memory).
void BM_CsvParse1T(benchmark::State& state) {
  const int64_t cols = state.range(0);
  std::string path = DataFile(io::DataFormat::kCsv, cols);
  std::string text = Slurp(path);
  io::DecodedRow row;
  for (auto _ : state) {
    size_t pos = 0;
    int64_t line = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      io::CsvContext ctx{&path, ++line};
      io::ParseCsvLine(std::string_view(text).substr(pos, nl - pos), 1, cols, ctx, &row);
      pos = nl + 1;
    }
    benchmark::DoNotOptimize(line);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(text.size()));
  state.counters["rows/s"] = benchmark::Counter(static_cast<double>(kRows) * state.iterations(),
                                                benchmark::Counter::kIsRate);
  state.SetLabel(fmt::format("n={} d={}", kRows, cols));
}

// The full channel reader (read thread + decode workers + batching), `threads` workers.
void StreamBench(benchmark::State& state, io::DataFormat format) {
  const int64_t cols = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  std::string path = DataFile(format, cols);
  const auto size = static_cast<int64_t>(fs::file_size(path));
  io::ChannelSource src;
  src.paths = {path};
  io::StreamOptions opt;
  opt.batch_size = 5000;
  opt.threads = threads;
  // One stream, one epoch per iteration: what training's epochs do (the stream's buffers are
  // reused from the second epoch on; the first pays for allocating them).
  io::BatchStream stream(src, opt);
  int epoch = 0;
  HostBatch b;
  for (auto _ : state) {
    stream.StartEpoch(epoch++);
    int64_t rows = 0;
    while (stream.Next(&b)) rows += b.rows;
    benchmark::DoNotOptimize(rows);
  }
  state.SetBytesProcessed(state.iterations() * size);
  state.counters["rows/s"] = benchmark::Counter(static_cast<double>(kRows) * state.iterations(),
                                                benchmark::Counter::kIsRate);
  state.SetLabel(fmt::format("n={} d={} threads={}", kRows, cols, threads));
}
void BM_RecordIOStream(benchmark::State& s) { StreamBench(s, io::DataFormat::kRecordIO); }
void BM_CsvStream(benchmark::State& s) { StreamBench(s, io::DataFormat::kCsv); }

const int kAllThreads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

BENCHMARK(BM_Memcpy)->Arg(100)->Arg(784)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MemcpyThreads)->Args({100, kAllThreads})->Args({784, kAllThreads})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_PageCacheRead)->Arg(100)->Arg(784)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_RecordIODecode1T)->Arg(100)->Arg(784)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CsvParse1T)->Arg(100)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_RecordIOStream)
    ->Args({100, 1})
    ->Args({100, kAllThreads})
    ->Args({784, 1})
    ->Args({784, kAllThreads})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_CsvStream)->Args({100, 1})->Args({100, kAllThreads})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
