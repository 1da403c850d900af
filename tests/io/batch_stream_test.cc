#include "io/batch_stream.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <limits>
#include <thread>

#include "core/error.h"
#include "core/stop.h"
#include "io/csv.h"
#include "io/record_codec.h"
#include "io/recordio.h"
#include "tests/testutil.h"

namespace mlforge::io {
namespace {

using test::TempDir;
using test::WriteFile;

// A reference data set: row i has features (i, i/2, -i/3) and label i % 3, kept exactly as the
// floats the CSV text denotes (written with AppendCsvNumber, which round-trips bit for bit).
struct Ref {
  std::vector<std::vector<float>> x;
  std::vector<float> y;
};

std::string MakeCsv(int64_t first, int64_t n, Ref* ref, int cols = 3, bool label = true) {
  std::string s;
  for (int64_t i = first; i < first + n; ++i) {
    std::vector<float> row;
    for (int j = 0; j < cols; ++j) {
      row.push_back(j == 0 ? static_cast<float>(i)
                           : static_cast<float>(i) / static_cast<float>(j + 1) * (j % 2 ? 1 : -1));
    }
    float y = static_cast<float>(i % 3);
    if (label) {
      AppendCsvNumber(y, &s);
      s += ',';
    }
    for (int j = 0; j < cols; ++j) {
      if (j) s += ',';
      AppendCsvNumber(row[static_cast<size_t>(j)], &s);
    }
    s += '\n';
    if (ref) {
      ref->x.push_back(row);
      if (label) ref->y.push_back(y);
    }
  }
  return s;
}

struct Got {
  Ref rows;
  std::vector<int64_t> sizes;
  std::vector<int64_t> ordinals;  // per row, in delivery order
  std::vector<Layout> layouts;
};

void Append(const HostBatch& in, Got* g) {
  HostBatch b = in;
  g->layouts.push_back(b.layout);
  Densify(b);
  g->sizes.push_back(b.rows);
  for (int64_t i = 0; i < b.rows; ++i) {
    g->rows.x.emplace_back(b.values.begin() + i * b.cols, b.values.begin() + (i + 1) * b.cols);
    if (b.has_labels()) g->rows.y.push_back(b.labels[static_cast<size_t>(i)]);
    g->ordinals.push_back(b.ordinal(i));
  }
}

Got Drain(BatchStream& s) {
  Got g;
  HostBatch b;
  while (s.Next(&b)) Append(b, &g);
  return g;
}

// Drains the stream until it throws; returns the rows delivered before and the error text.
std::string DrainUntilError(BatchStream& s, Got* g) {
  HostBatch b;
  try {
    while (s.Next(&b)) Append(b, g);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

StreamOptions Opts(int64_t batch, int threads = 2, int prefetch = 2) {
  StreamOptions o;
  o.batch_size = batch;
  o.threads = threads;
  o.prefetch = prefetch;
  return o;
}

ChannelSource Files(std::vector<std::string> paths) {
  ChannelSource s;
  s.paths = std::move(paths);
  return s;
}

TEST(BatchStreamTest, StreamingEqualsInMemoryWithExactBatchSizes) {
  TempDir dir;
  Ref ref;
  WriteFile(dir / "train.csv", MakeCsv(0, 1037, &ref));
  BatchStream s(Files({dir / "train.csv"}), Opts(100, 3));
  Got g = Drain(s);
  std::vector<int64_t> want(10, 100);
  want.push_back(37);
  EXPECT_EQ(g.sizes, want);
  EXPECT_EQ(g.rows.x, ref.x);
  EXPECT_EQ(g.rows.y, ref.y);
  for (size_t i = 0; i < g.ordinals.size(); ++i) ASSERT_EQ(g.ordinals[i], static_cast<int64_t>(i));
  EXPECT_EQ(s.cols(), 3);
  const StreamStats& st = s.stats();
  EXPECT_EQ(st.files, 1);
  EXPECT_EQ(st.records, 1037);
  EXPECT_EQ(st.rows, 1037);
  EXPECT_EQ(st.nnz, 1037 * 3);
  EXPECT_EQ(st.bytes, test::ReadFile(dir / "train.csv").size());
  EXPECT_TRUE(st.any_labels);
  EXPECT_FALSE(st.any_sparse);
  // Column sums against a float64 reference computed directly.
  double sum = 0, want_sum = 0;
  for (auto& r : g.rows.x) sum += r[1];
  for (auto& r : ref.x) want_sum += r[1];
  EXPECT_EQ(sum, want_sum);
  HostBatch b;
  EXPECT_FALSE(s.Next(&b));  // stays exhausted
}

TEST(BatchStreamTest, MultiFileChannelSpansFileBoundaries) {
  TempDir dir;
  Ref ref;
  WriteFile(dir / "a.csv", MakeCsv(0, 45, &ref));
  WriteFile(dir / "b.csv", MakeCsv(45, 70, &ref));
  WriteFile(dir / "c.csv", MakeCsv(115, 33, &ref));
  BatchStream s(Files({dir / "a.csv", dir / "b.csv", dir / "c.csv"}), Opts(50));
  Got g = Drain(s);
  EXPECT_EQ(g.sizes, (std::vector<int64_t>{50, 50, 48}));
  EXPECT_EQ(g.rows.x, ref.x);
  EXPECT_EQ(g.rows.y, ref.y);
  EXPECT_EQ(s.stats().files, 3);
}

TEST(BatchStreamTest, DirectoryChannelReadsSortedFilesAndSkipsHidden) {
  TempDir dir;
  Ref ref;
  std::string part0 = MakeCsv(0, 20, &ref);
  std::string part1 = MakeCsv(20, 5, nullptr, 3, false);  // hidden: never read
  std::string part2 = MakeCsv(20, 30, &ref);
  WriteFile(dir / "ch/part-0.csv", part0);
  WriteFile(dir / "ch/.amazon.manifest", "[{\"prefix\": \"s3://b/p/\"}]");
  WriteFile(dir / "ch/.hidden.csv", part1);
  WriteFile(dir / "ch/z/part-2.csv", part2);
  StreamOptions o = Opts(16);
  o.expected_cols = 3;
  BatchStream s(Files({dir / "ch"}), o);
  Got g = Drain(s);
  EXPECT_EQ(g.sizes, (std::vector<int64_t>{16, 16, 16, 2}));
  EXPECT_EQ(g.rows.x, ref.x);
  EXPECT_EQ(g.rows.y, ref.y);
}

TEST(BatchStreamTest, LabelSizeZeroAndCrlf) {
  TempDir dir;
  WriteFile(dir / "u.csv", "1,2\r\n3,4\r\n5,6");  // CRLF and no final newline
  ChannelSource src = Files({dir / "u.csv"});
  src.label_size = 0;
  BatchStream s(src, Opts(2));
  Got g = Drain(s);
  EXPECT_EQ(g.sizes, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(g.rows.x, (std::vector<std::vector<float>>{{1, 2}, {3, 4}, {5, 6}}));
  EXPECT_TRUE(g.rows.y.empty());
  EXPECT_FALSE(s.stats().any_labels);
}

TEST(BatchStreamTest, FifoChannelAcrossTwoEpochs) {
  TempDir dir;
  std::string prefix = dir / "train";
  Ref ref0, ref1;
  std::string d0 = MakeCsv(0, 250, &ref0);
  std::string d1 = MakeCsv(1000, 130, &ref1);
  // SageMaker creates each epoch's FIFO on its own schedule; create them late, from a writer.
  std::thread writer([&] {
    int e = 0;
    for (const std::string* d : {&d0, &d1}) {
      std::string path = prefix + "_" + std::to_string(e++);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (::mkfifo(path.c_str(), 0600) != 0) return;
      int fd = ::open(path.c_str(), O_WRONLY);
      if (fd < 0) return;
      size_t off = 0;
      while (off < d->size()) {
        ssize_t n = ::write(fd, d->data() + off, std::min<size_t>(1000, d->size() - off));
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      ::close(fd);
    }
  });
  ChannelSource src;
  src.pipe_prefix = prefix;
  src.format = DataFormat::kCsv;
  BatchStream s(src, Opts(100));
  s.StartEpoch(0);
  Got g0 = Drain(s);
  s.StartEpoch(1);
  Got g1 = Drain(s);
  writer.join();
  EXPECT_EQ(g0.sizes, (std::vector<int64_t>{100, 100, 50}));
  EXPECT_EQ(g0.rows.x, ref0.x);
  EXPECT_EQ(g1.sizes, (std::vector<int64_t>{100, 30}));
  EXPECT_EQ(g1.rows.x, ref1.x);
  EXPECT_EQ(g1.rows.y, ref1.y);
}

TEST(BatchStreamTest, PipeModeNeedsAFormat) {
  ChannelSource src;
  src.pipe_prefix = "/tmp/x/train";
  EXPECT_THROW(BatchStream(src, Opts(10)), UserError);
}

TEST(BatchStreamTest, SameOutputWithOneOrFourThreads) {
  TempDir dir;
  Ref ref;
  for (int f = 0; f < 4; ++f)
    WriteFile(dir / ("p" + std::to_string(f) + ".csv"), MakeCsv(f * 333, 333, &ref));
  for (bool shuffle : {false, true}) {
    StreamOptions o1 = Opts(64, 1, 1), o4 = Opts(64, 4, 3);
    o1.shuffle = o4.shuffle = shuffle;
    o1.seed = o4.seed = 99;
    BatchStream s1(Files({dir.path()}), o1), s4(Files({dir.path()}), o4);
    Got g1 = Drain(s1), g4 = Drain(s4);
    EXPECT_EQ(g1.rows.x, g4.rows.x) << "shuffle=" << shuffle;
    EXPECT_EQ(g1.ordinals, g4.ordinals);
    EXPECT_EQ(g1.sizes, g4.sizes);
    if (!shuffle) {
      EXPECT_EQ(g1.rows.x, ref.x);
    }
  }
}

TEST(BatchStreamTest, ShuffleIsADeterministicPermutation) {
  TempDir dir;
  Ref ref;
  WriteFile(dir / "t.csv", MakeCsv(0, 1000, &ref));
  auto run = [&](uint64_t seed, int epoch) {
    StreamOptions o = Opts(30, 3);
    o.shuffle = true;
    o.shuffle_window = 4;
    o.seed = seed;
    BatchStream s(Files({dir / "t.csv"}), o);
    s.StartEpoch(epoch);
    return Drain(s);
  };
  Got a = run(7, 0), b = run(7, 0), c = run(8, 0), d = run(7, 1);
  EXPECT_EQ(a.rows.x, b.rows.x);
  EXPECT_EQ(a.ordinals, b.ordinals);
  EXPECT_NE(a.rows.x, c.rows.x);  // seed matters
  EXPECT_NE(a.rows.x, d.rows.x);  // epoch matters
  EXPECT_NE(a.rows.x, ref.x);     // it did shuffle
  std::vector<int64_t> want_sizes(33, 30);
  want_sizes.push_back(10);
  EXPECT_EQ(a.sizes, want_sizes);
  // A true permutation: every row exactly once, each paired with its label and its ordinal.
  ASSERT_EQ(a.rows.x.size(), ref.x.size());
  std::vector<int> seen(ref.x.size(), 0);
  for (size_t i = 0; i < a.rows.x.size(); ++i) {
    int64_t ord = a.ordinals[i];
    ASSERT_GE(ord, 0);
    ASSERT_LT(ord, 1000);
    ++seen[static_cast<size_t>(ord)];
    EXPECT_EQ(a.rows.x[i], ref.x[static_cast<size_t>(ord)]);
    EXPECT_EQ(a.rows.y[i], ref.y[static_cast<size_t>(ord)]);
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), 1000);
  // Rows move only within a window of 4 batches (120 rows).
  for (size_t i = 0; i < a.ordinals.size(); ++i)
    EXPECT_EQ(a.ordinals[i] / 120, static_cast<int64_t>(i) / 120);
}

TEST(BatchStreamTest, ShardingPartitionsRowsExactly) {
  TempDir dir;
  Ref ref;
  WriteFile(dir / "a.csv", MakeCsv(0, 517, &ref));
  WriteFile(dir / "b.csv", MakeCsv(517, 200, &ref));
  std::vector<int> owner(ref.x.size(), -1);
  int64_t total = 0;
  for (int shard = 0; shard < 3; ++shard) {
    StreamOptions o = Opts(40);
    o.num_shards = 3;
    o.shard_index = shard;
    BatchStream s(Files({dir / "a.csv", dir / "b.csv"}), o);
    Got g = Drain(s);
    total += static_cast<int64_t>(g.rows.x.size());
    EXPECT_EQ(s.stats().rows, static_cast<int64_t>(g.rows.x.size()));
    for (auto& row : g.rows.x) {
      size_t id = static_cast<size_t>(row[0]);
      ASSERT_LT(id, owner.size());
      EXPECT_EQ(owner[id], -1) << "row " << id << " delivered twice";
      owner[id] = shard;
      EXPECT_EQ(row, ref.x[id]);
    }
    for (size_t k = 0; k + 1 < g.sizes.size(); ++k) EXPECT_EQ(g.sizes[k], 40);
  }
  EXPECT_EQ(total, static_cast<int64_t>(ref.x.size()));
  // Chunks are 40 lines per file: a.csv has 13 chunks (12 full + 37), b.csv 5; chunk c goes to
  // shard c % 3, so row 0 -> 0, row 40 -> 1, row 80 -> 2, row 517 (chunk 13) -> 1.
  EXPECT_EQ(owner[0], 0);
  EXPECT_EQ(owner[40], 1);
  EXPECT_EQ(owner[80], 2);
  EXPECT_EQ(owner[517], 1);
}

TEST(BatchStreamTest, CorruptLineInThirdBatchDeliversTwoBatchesFirst) {
  TempDir dir;
  std::string csv = MakeCsv(0, 24, nullptr);
  const size_t bad_offset = csv.size();
  csv += "1,2,abc,4\n";  // line 25, in the third batch of 10
  csv += MakeCsv(25, 40, nullptr);
  WriteFile(dir / "t.csv", csv);
  for (int threads : {1, 4}) {
    BatchStream s(Files({dir / "t.csv"}), Opts(10, threads));
    Got g;
    std::string err = DrainUntilError(s, &g);
    EXPECT_EQ(err.rfind(fmt::format("{}: line 25 at byte {}, column 3: 'abc' is not a number", dir / "t.csv",
                                    bad_offset),
                        0),
              0u)
        << err;
    // Batches 1-2 whole, then the 4 good rows of batch 3 before the bad line.
    EXPECT_EQ(g.sizes, (std::vector<int64_t>{10, 10, 4}));
    for (size_t i = 0; i < g.rows.x.size(); ++i) EXPECT_EQ(g.rows.x[i][0], static_cast<float>(i));
    // The error is sticky: a retry must not look like a clean end of data.
    HostBatch b;
    EXPECT_THROW(s.Next(&b), UserError);
  }
}

TEST(BatchStreamTest, WrongColumnCountNamesLineAndOffset) {
  TempDir dir;
  std::string csv = MakeCsv(0, 34, nullptr);
  const size_t off35 = csv.size();
  csv += "0,1,2,3,4\n";  // line 35: 4 features instead of 3, inside the 4th chunk of 10
  csv += MakeCsv(35, 10, nullptr);
  WriteFile(dir / "t.csv", csv);
  BatchStream s(Files({dir / "t.csv"}), Opts(10));
  Got g;
  std::string err = DrainUntilError(s, &g);
  EXPECT_NE(err.find(fmt::format("line 35 at byte {}", off35)), std::string::npos) << err;
  EXPECT_NE(err.find("expected 3 feature column(s)"), std::string::npos) << err;
  EXPECT_EQ(g.rows.x.size(), 34u);
  EXPECT_EQ(g.sizes, (std::vector<int64_t>{10, 10, 10, 4}));
}

TEST(BatchStreamTest, WrongWidthAtChunkStartIsCaughtAcrossChunks) {
  TempDir dir;
  std::string csv = MakeCsv(0, 30, nullptr);
  const size_t off31 = csv.size();
  csv += MakeCsv(30, 10, nullptr, 4);  // the whole 4th chunk is 4 wide: consistent in itself
  WriteFile(dir / "t.csv", csv);
  BatchStream s(Files({dir / "t.csv"}), Opts(10, 4));
  Got g;
  std::string err = DrainUntilError(s, &g);
  EXPECT_EQ(
      err.rfind(fmt::format("{}: line 31 at byte {}: expected 3 feature columns (as in {}: line 1 at byte "
                            "0), found 4",
                            dir / "t.csv", off31, dir / "t.csv"),
                0),
      0u)
      << err;
  EXPECT_EQ(g.rows.x.size(), 30u);
  // With feature_dim given, the very first row is already checked.
  StreamOptions o = Opts(10);
  o.expected_cols = 5;
  BatchStream s5(Files({dir / "t.csv"}), o);
  Got g5;
  err = DrainUntilError(s5, &g5);
  EXPECT_NE(err.find("line 1 at byte 0, column 5: expected 5 feature column(s) after the label, found 3"),
            std::string::npos)
      << err;
  EXPECT_TRUE(g5.rows.x.empty());
}

TEST(BatchStreamTest, RequireLabelsRejectsUnlabeledRows) {
  TempDir dir;
  WriteFile(dir / "u.csv", MakeCsv(0, 30, nullptr, 3, false));
  ChannelSource src = Files({dir / "u.csv"});
  src.label_size = 0;
  StreamOptions o = Opts(8);
  o.require_labels = true;
  BatchStream s(src, o);
  Got g;
  std::string err = DrainUntilError(s, &g);
  EXPECT_EQ(err.rfind(fmt::format("{}: line 1 at byte 0: the row has no label", dir / "u.csv"), 0), 0u)
      << err;
  EXPECT_TRUE(g.rows.x.empty());
}

TEST(BatchStreamTest, UnknownFormatAndMissingPath) {
  TempDir dir;
  WriteFile(dir / "data.txt", "1,2\n");
  BatchStream s(Files({dir / "data.txt"}), Opts(8));
  HostBatch b;
  try {
    s.Next(&b);
    FAIL() << "expected an error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("data.txt: cannot tell the data format"), std::string::npos)
        << e.what();
  }
  BatchStream m(Files({dir / "missing"}), Opts(8));
  EXPECT_THROW(m.Next(&b), UserError);
  EXPECT_THROW(m.Next(&b), UserError);  // sticky
  ChannelSource forced = Files({dir / "data.txt"});
  forced.format = DataFormat::kCsv;  // ContentType overrides the extension
  BatchStream f(forced, Opts(8));
  EXPECT_EQ(Drain(f).rows.x.size(), 1u);
}

TEST(BatchStreamTest, MemoryStaysBoundedBySlowConsumer) {
  TempDir dir;
  WriteFile(dir / "big.csv", MakeCsv(0, 30000, nullptr));
  StreamOptions o = Opts(10, 2, 2);
  BatchStream s(Files({dir / "big.csv"}), o);
  HostBatch b;
  int64_t rows = 0, batches = 0;
  while (s.Next(&b)) {
    rows += b.rows;
    // Give the producers every chance to run ahead; the bound must hold regardless.
    if (++batches < 40) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(rows, 30000);
  // Slots (prefetch + threads) + one chunk per worker mid-conversion + the consumer's own.
  EXPECT_LE(s.stats().peak_live_chunks, o.prefetch + 2 * o.threads + 2);
  EXPECT_GE(s.stats().peak_live_chunks, 2);  // the counter does count
}

TEST(BatchStreamTest, DestructorJoinsWhileWaitingForAFifo) {
  TempDir dir;
  ChannelSource src;
  src.pipe_prefix = dir / "never";
  src.format = DataFormat::kCsv;
  {
    BatchStream s(src, Opts(10));
    s.StartEpoch(0);
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
  }  // must return: the reader polls for the FIFO and sees the cancel
  // A FIFO that exists but whose writer never writes: the reader is blocked in Read().
  std::string fifo = dir / "quiet_0";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  src.pipe_prefix = dir / "quiet";
  {
    BatchStream s(src, Opts(10));
    s.StartEpoch(0);
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
  }
  SUCCEED();
}

TEST(BatchStreamTest, StopTokenEndsAWaitingNext) {
  TempDir dir;
  ChannelSource src;
  src.pipe_prefix = dir / "never";
  src.format = DataFormat::kCsv;
  std::atomic<bool> flag{false};
  StreamOptions o = Opts(10);
  o.stop = StopToken(&flag);
  BatchStream s(src, o);
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    flag = true;
  });
  HostBatch b;
  EXPECT_THROW(s.Next(&b), StopRequested);
  stopper.join();
}

TEST(BatchStreamTest, PipeWaitTimeoutIsAUserError) {
  TempDir dir;
  ChannelSource src;
  src.pipe_prefix = dir / "late";
  src.format = DataFormat::kCsv;
  src.pipe_wait_s = 0.1;
  BatchStream s(src, Opts(10));
  HostBatch b;
  try {
    s.Next(&b);
    FAIL() << "expected an error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("late_0: did not appear within"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------- recordIO

std::string DenseRecordFile(int64_t first, int64_t n, int64_t cols, bool label) {
  std::string file, payload;
  for (int64_t i = first; i < first + n; ++i) {
    std::vector<float> x(static_cast<size_t>(cols));
    for (int64_t j = 0; j < cols; ++j) x[static_cast<size_t>(j)] = static_cast<float>(i * 10 + j);
    float y = static_cast<float>(i % 2);
    payload.clear();
    EncodeDenseRecord(x.data(), cols, label ? &y : nullptr, &payload);
    AppendRecordIOFrame(payload, &file);
  }
  return file;
}

TEST(BatchStreamRecordIOTest, DenseRecordsAndMixedFormatsInOneChannel) {
  TempDir dir;
  WriteFile(dir / "a.pbr", DenseRecordFile(0, 25, 3, true));
  Ref ref;
  WriteFile(dir / "b.csv", MakeCsv(0, 7, &ref));
  BatchStream s(Files({dir / "a.pbr", dir / "b.csv"}), Opts(10, 3));
  Got g = Drain(s);
  EXPECT_EQ(g.sizes, (std::vector<int64_t>{10, 10, 10, 2}));
  ASSERT_EQ(g.rows.x.size(), 32u);
  for (int i = 0; i < 25; ++i) {
    EXPECT_EQ(g.rows.x[static_cast<size_t>(i)],
              (std::vector<float>{i * 10.0f, i * 10.0f + 1, i * 10.0f + 2}));
    EXPECT_EQ(g.rows.y[static_cast<size_t>(i)], static_cast<float>(i % 2));
  }
  for (int i = 0; i < 7; ++i) EXPECT_EQ(g.rows.x[static_cast<size_t>(25 + i)], ref.x[static_cast<size_t>(i)]);
}

TEST(BatchStreamRecordIOTest, MixedLabeledAndUnlabeledFilesAreAnError) {
  TempDir dir;
  WriteFile(dir / "a.pbr", DenseRecordFile(0, 12, 3, true));
  std::string b = DenseRecordFile(100, 5, 3, false);
  WriteFile(dir / "b.pbr", b);
  BatchStream s(Files({dir / "a.pbr", dir / "b.pbr"}), Opts(5));
  Got g;
  std::string err = DrainUntilError(s, &g);
  EXPECT_EQ(err.rfind(fmt::format("{}: record 0 at byte 0: the row has no label", dir / "b.pbr"), 0), 0u)
      << err;
  EXPECT_EQ(g.rows.x.size(), 12u);
  // Within one file, the offending record is named.
  std::string a = DenseRecordFile(0, 3, 3, true);
  const size_t off = a.size();
  a += DenseRecordFile(3, 1, 3, false);
  WriteFile(dir / "m.pbr", a);
  BatchStream m(Files({dir / "m.pbr"}), Opts(10));
  Got gm;
  err = DrainUntilError(m, &gm);
  EXPECT_EQ(
      err.rfind(fmt::format("{}: record 3 at byte {}: the row has no label but", dir / "m.pbr", off), 0), 0u)
      << err;
  EXPECT_EQ(gm.rows.x.size(), 3u);
}

TEST(BatchStreamRecordIOTest, GoldenSparseFileStaysCsrAndForceDenseDensifies) {
  MLF_REQUIRE_SHARED_DATA();
  const std::string path = test::SharedData("recordio/sdk_repo_nips_train_1.pbr");
  // Reference: decode the file sequentially, record by record.
  std::vector<std::vector<std::pair<uint32_t, float>>> want;
  int64_t want_cols = -1;
  {
    RecordIOReader rr(InputFile::Open(path));
    std::string_view payload;
    DecodedRow row;
    while (rr.Next(&payload)) {
      RecordContext ctx{&path, rr.record_index(), rr.record_offset()};
      DecodeRecord(payload, ctx, &row);
      ASSERT_TRUE(row.sparse);
      ASSERT_EQ(row.rows, 1);
      want_cols = row.cols;
      std::vector<std::pair<uint32_t, float>> r;
      for (size_t k = 0; k < row.values.size(); ++k) r.emplace_back(row.indices[k], row.values[k]);
      want.push_back(std::move(r));
    }
  }
  ASSERT_EQ(want.size(), 350u);
  BatchStream s(Files({path}), Opts(64, 3));
  HostBatch b;
  size_t i = 0;
  int64_t nnz = 0;
  while (s.Next(&b)) {
    ASSERT_EQ(b.layout, Layout::kCsr) << "sparse data must never be densified";
    EXPECT_EQ(b.cols, want_cols);
    EXPECT_TRUE(b.rows == 64 || i + static_cast<size_t>(b.rows) == 350u);
    for (int64_t r = 0; r < b.rows; ++r, ++i) {
      std::vector<std::pair<uint32_t, float>> got;
      for (int64_t k = b.indptr[static_cast<size_t>(r)]; k < b.indptr[static_cast<size_t>(r + 1)]; ++k) {
        got.emplace_back(b.indices[static_cast<size_t>(k)], b.values[static_cast<size_t>(k)]);
      }
      ASSERT_EQ(got, want[i]) << "row " << i;
      nnz += static_cast<int64_t>(got.size());
    }
  }
  EXPECT_EQ(i, 350u);
  EXPECT_TRUE(s.stats().any_sparse);
  EXPECT_EQ(s.stats().nnz, nnz);

  StreamOptions o = Opts(100, 2);
  o.force_dense = true;
  BatchStream d(Files({path}), o);
  i = 0;
  while (d.Next(&b)) {
    ASSERT_EQ(b.layout, Layout::kDense);
    ASSERT_EQ(b.values.size(), static_cast<size_t>(b.rows * want_cols));
    for (int64_t r = 0; r < b.rows; ++r, ++i) {
      double sum = 0, want_sum = 0;
      for (int64_t j = 0; j < want_cols; ++j) sum += b.values[static_cast<size_t>(r * want_cols + j)];
      for (auto& [k, v] : want[i]) want_sum += v;
      ASSERT_EQ(sum, want_sum) << "row " << i;
    }
  }
  EXPECT_EQ(i, 350u);
}

// Rows of 1.2 MB: a batch of 7 arrives in 4 MB chunks (4 rows each), decoded by several workers
// and joined by Next(); dmlc multi-part records (a float whose bits are the magic word, at an
// aligned offset) sit among the in-place frames. Every value must come back exact, the rows before
// a corrupt frame first, then its error at its offset. Run twice: the second epoch reuses the
// pooled buffers.
TEST(BatchStreamRecordIOTest, WideRowsSpanChunksAndMultiPartRecordsJoin) {
  constexpr int64_t kRows = 11, kCols = 300000;
  float magic_float;
  const uint32_t magic_bits = 0xCED7230Au;
  std::memcpy(&magic_float, &magic_bits, 4);
  std::string file, payload;
  std::vector<std::vector<float>> want;
  int split = 0;
  for (int64_t i = 0; i < kRows; ++i) {
    std::vector<float> x(static_cast<size_t>(kCols));
    for (int64_t j = 0; j < kCols; ++j)
      x[static_cast<size_t>(j)] = static_cast<float>(i * 7 + j % 1000) * 0.25f;
    if (i % 3 == 1) x[static_cast<size_t>(5 + i)] = x[static_cast<size_t>(kCols - 9)] = magic_float;
    const float y = static_cast<float>(i % 2);
    payload.clear();
    EncodeDenseRecord(x.data(), kCols, &y, &payload);
    split += test::DmlcFrame(payload, &file).size() > 1;
    want.push_back(std::move(x));
  }
  ASSERT_EQ(split, 4);  // the magic floats sit at aligned offsets: those records are multi-part
  const uint64_t bad_at = file.size();
  file += std::string("\x01\x02\x03\x04\x00\x00\x00\x00", 8);
  TempDir dir;
  WriteFile(dir / "wide.pbr", file);
  for (bool mapped : {true, false}) {  // mapped, and read(2) like a FIFO
    SCOPED_TRACE(mapped ? "mapped" : "read");
    StreamOptions o = Opts(7, 3, 2);
    o.chunk_bytes = 4 << 20;
    o.map_files = mapped;
    BatchStream s(Files({dir / "wide.pbr"}), o);
    for (int epoch = 0; epoch < 2; ++epoch) {
      s.StartEpoch(epoch);
      Got g;
      const std::string err = DrainUntilError(s, &g);
      EXPECT_NE(err.find(fmt::format("record 11 at byte {}", bad_at)), std::string::npos) << err;
      EXPECT_NE(err.find("bad magic"), std::string::npos) << err;
      EXPECT_EQ(g.sizes, (std::vector<int64_t>{7, 4}));
      ASSERT_EQ(g.rows.x.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(g.rows.x[i], want[i]) << "row " << i;
        EXPECT_EQ(g.rows.y[i], static_cast<float>(i % 2));
      }
    }
  }
}

// recordIO files are mapped: one that shrinks mid-epoch raises SIGBUS, which must end the run
// like any input error (the reason on stderr and in the failure file, exit 2), never as a crash.
// The stream runs in a forked child (a gtest death test). The outcome does not depend on thread
// timing: the stream holds at most prefetch + threads = 2 chunks (of 100 records) beyond the one
// consumed, so at the truncate at least 197 of the 200 chunks are still unread and the reader must
// touch the lost pages. Several threads may fault at once (the reader on frame headers, the worker
// on payloads): the handler lets the first report (SigbusHandlerTest in tests/core/stop_test.cc);
// before it did, a second thread's O_TRUNC could leave the failure file empty, this test's one
// failure seen in a full ctest run.
TEST(BatchStreamRecordIOTest, FileShrinkingWhileMappedIsAnInputErrorNotACrash) {
  TempDir dir;
  const std::string path = dir / "shrinks.pbr";
  const std::string failure = dir / "failure";
  WriteFile(path, DenseRecordFile(0, 20000, 100, true));  // 9 MB, 200 batches of 100
  auto run = [&] {
    InstallSigbusHandler(2);
    SetSignalFailureFile(failure);
    BatchStream s(Files({path}), Opts(100, 1, 1));
    HostBatch b;
    s.Next(&b);
    if (::truncate(path.c_str(), 0) != 0) std::_Exit(9);
    while (s.Next(&b)) {
    }
    std::_Exit(0);  // not reached: the rest of the file is gone
  };
  EXPECT_EXIT(run(), ::testing::ExitedWithCode(2), "an input file shrank while mlforge was reading it");
  EXPECT_NE(test::ReadFile(failure).find("ClientError: an input file shrank"), std::string::npos);
}

// A NaN or infinite feature ends the epoch with an error naming the file, the record (or line) and
// the column, whichever decoder met it: a record decoded in full (the chunk's first), an SDK dense
// record on the fast path, a sparse record, a CSV line. allow_non_finite (the data tools) passes
// them through unchanged.
TEST(BatchStreamRecordIOTest, NonFiniteFeaturesAreNamedByRecordAndColumn) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  TempDir dir;
  auto dense_file = [](int64_t bad_record, int64_t bad_col, float bad) {
    std::string file, payload;
    for (int64_t i = 0; i < 8; ++i) {
      std::vector<float> x = {1.0f * static_cast<float>(i), 2, 3, 4};
      if (i == bad_record) x[static_cast<size_t>(bad_col)] = bad;
      payload.clear();
      EncodeDenseRecord(x.data(), 4, nullptr, &payload);
      AppendRecordIOFrame(payload, &file);
    }
    return file;
  };
  struct Case {
    std::string name;
    std::string content;
    std::string want;
  };
  std::string sparse, payload;
  for (int64_t i = 0; i < 5; ++i) {
    const uint32_t idx[2] = {1, 6};
    const float val[2] = {1.5f, i == 3 ? -inf : 2.0f};
    payload.clear();
    EncodeSparseRecord(idx, val, 2, 9, nullptr, &payload);
    AppendRecordIOFrame(payload, &sparse);
  }
  const std::vector<Case> cases = {
      {"first.pbr", dense_file(0, 2, nan), "first.pbr: record 0 at byte 0: feature 2 (0-based column) is NaN"},
      {"fast.pbr", dense_file(5, 3, inf), "fast.pbr: record 5 at byte"},
      {"sparse.pbr", sparse, "sparse.pbr: record 3 at byte"},
      // CSV: the first column is the label (label_size=1, the default for files).
      {"lines.csv", "1,2,3\n4,inf,6\n", "lines.csv: line 2 at byte 6: feature 0 (0-based column) is infinity"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    WriteFile(dir / c.name, c.content);
    StreamOptions o = Opts(3, 2);
    BatchStream s(Files({dir / c.name}), o);
    Got g;
    const std::string err = DrainUntilError(s, &g);
    EXPECT_NE(err.find(c.want), std::string::npos) << err;
    EXPECT_NE(err.find("impute or drop them"), std::string::npos) << err;
    o.allow_non_finite = true;
    BatchStream pass(Files({dir / c.name}), o);
    Got all;
    EXPECT_EQ(DrainUntilError(pass, &all), "");
  }
  {
    BatchStream s(Files({dir / "fast.pbr"}), Opts(3, 2));
    Got g;
    EXPECT_NE(DrainUntilError(s, &g).find("feature 3 (0-based column) is infinity"), std::string::npos);
  }
  {
    BatchStream s(Files({dir / "sparse.pbr"}), Opts(3, 2));
    Got g;
    EXPECT_NE(DrainUntilError(s, &g).find("feature 6 (0-based column) is -infinity"), std::string::npos);
  }
}

// Inside a chunk, SDK dense records skip DecodeRecord only when they are as wide and as labeled
// as the chunk's first row; any other record still gets its named error.
TEST(BatchStreamRecordIOTest, WidthAndLabelChangesInsideAChunkAreNamed) {
  TempDir dir;
  WriteFile(dir / "wide.pbr", DenseRecordFile(0, 3, 3, true) + DenseRecordFile(3, 1, 4, true));
  WriteFile(dir / "unlabeled.pbr", DenseRecordFile(0, 2, 3, true) + DenseRecordFile(2, 1, 3, false));
  {
    BatchStream s(Files({dir / "wide.pbr"}), Opts(10));
    Got g;
    const std::string err = DrainUntilError(s, &g);
    EXPECT_NE(err.find("record 3 at byte"), std::string::npos) << err;
    EXPECT_NE(err.find("expected 3 feature columns"), std::string::npos) << err;
  }
  {
    BatchStream s(Files({dir / "unlabeled.pbr"}), Opts(10));
    Got g;
    const std::string err = DrainUntilError(s, &g);
    EXPECT_NE(err.find("record 2 at byte"), std::string::npos) << err;
    EXPECT_NE(err.find("has no label"), std::string::npos) << err;
  }
}

TEST(BatchStreamRecordIOTest, TruncatedPayloadDeliversThreeRowsThenErrors) {
  MLF_REQUIRE_SHARED_DATA();
  const std::string path = test::SharedData("recordio/corrupt_truncated_payload.pbr");
  for (int64_t batch : {2, 10}) {
    BatchStream s(Files({path}), Opts(batch, 2));
    Got g;
    std::string err = DrainUntilError(s, &g);
    EXPECT_NE(err.find("at byte 192"), std::string::npos) << err;
    EXPECT_NE(err.find("truncated payload"), std::string::npos) << err;
    EXPECT_EQ(g.rows.x.size(), 3u);
    EXPECT_EQ(g.sizes, batch == 2 ? (std::vector<int64_t>{2, 1}) : (std::vector<int64_t>{3}));
  }
}

TEST(BatchStreamRecordIOTest, GarbagePayloadIsNamedWithItsOffset) {
  MLF_REQUIRE_SHARED_DATA();
  BatchStream s(Files({test::SharedData("recordio/corrupt_garbage_protobuf.pbr")}), Opts(10));
  Got g;
  std::string err = DrainUntilError(s, &g);
  EXPECT_NE(err.find("record 1 at byte 64"), std::string::npos) << err;
  EXPECT_EQ(g.rows.x.size(), 1u);
}

TEST(BatchStreamRecordIOTest, GoldenDenseFileMatchesItsSidecar) {
  MLF_REQUIRE_SHARED_DATA();
  const std::string base = test::SharedData("recordio/dense_f32_labeled");
  std::vector<std::vector<float>> want_x;
  {
    std::string text = test::ReadFile(base + ".features.csv");
    size_t pos = 0;
    DecodedRow row;
    const std::string name = "sidecar";
    int64_t line = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      ParseCsvLine(std::string_view(text).substr(pos, nl - pos), 0, -1, CsvContext{&name, ++line}, &row);
      want_x.push_back(row.values);
      pos = nl + 1;
    }
  }
  BatchStream s(Files({base + ".pbr"}), Opts(16, 2));
  Got g = Drain(s);
  EXPECT_EQ(g.sizes, (std::vector<int64_t>{16, 16, 16, 2}));
  EXPECT_EQ(g.rows.x, want_x);
  EXPECT_EQ(g.rows.y.size(), 50u);
  EXPECT_EQ(s.stats().records, 50);
}

}  // namespace
}  // namespace mlforge::io
