// libsvm / svmlight input (io/libsvm.h): the line decoder against hand-written CSR, 1-based and
// 0-based indices, qid and comments, every named error (file, line and byte offset), the channel
// reader (batching across files, width scan, Pipe mode, overlong lines) and the writer round trip
// libsvm -> recordIO -> libsvm.
#include "io/libsvm.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "io/batch_stream.h"
#include "io/format.h"
#include "io/row_writer.h"
#include "tests/testutil.h"

namespace mlforge::io {
namespace {

using test::TempDir;
using test::WriteFile;

const std::string kFile = "train.libsvm";

DecodedRow Parse(std::string_view line, int64_t cols = -1, bool zero_based = false, bool* got = nullptr) {
  DecodedRow row;
  LibsvmContext ctx{&kFile, 1, 0};
  LibsvmOptions o;
  o.cols = cols;
  o.zero_based = zero_based;
  const bool ok = ParseLibsvmLine(line, o, ctx, &row);
  if (got) *got = ok;
  return row;
}

// The UserError message for `line` read as line 7 starting at byte 1000 of the file, or "".
std::string ErrorOf(std::string_view line, int64_t cols = -1, bool zero_based = false,
                    int64_t offset = 1000) {
  DecodedRow row;
  LibsvmContext ctx{&kFile, 7, offset};
  LibsvmOptions o;
  o.cols = cols;
  o.zero_based = zero_based;
  try {
    ParseLibsvmLine(line, o, ctx, &row);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

// "train.libsvm: line 7 at byte <1000 + position of `token` in `line`>".
std::string At(std::string_view line, std::string_view token) {
  const size_t k = line.find(token);
  EXPECT_NE(k, std::string_view::npos) << token;
  return kFile + ": line 7 at byte " + std::to_string(1000 + k) + ": ";
}

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

TEST(LibsvmTest, ParsesLabelAndSparseFeatures) {
  DecodedRow r = Parse("1 1:0.5 3:-2 10:3e2 # a comment: 4:5", 12);
  EXPECT_TRUE(r.sparse);
  EXPECT_EQ(r.rows, 1);
  EXPECT_EQ(r.cols, 12);
  ASSERT_TRUE(r.has_label);
  EXPECT_EQ(r.labels, (std::vector<float>{1.0f}));
  EXPECT_EQ(r.indices, (std::vector<uint32_t>{0, 2, 9}));  // 1-based on disk, 0-based here
  EXPECT_EQ(r.values, (std::vector<float>{0.5f, -2.0f, 300.0f}));
}

TEST(LibsvmTest, WidthWithoutColsIsTheLargestColumnPlusOne) {
  EXPECT_EQ(Parse("0 2:1 7:1").cols, 7);
  EXPECT_EQ(Parse("0 2:1 7:1", -1, true).cols, 8);
  EXPECT_EQ(Parse("0").cols, 0);
}

TEST(LibsvmTest, PlusLabelsQidTabsCrlfAndExplicitZeros) {
  DecodedRow r = Parse("+1\tqid:17  2:0\t5:-0.25\r", 6);
  EXPECT_EQ(r.labels, (std::vector<float>{1.0f}));
  EXPECT_EQ(r.indices, (std::vector<uint32_t>{1, 4}));
  EXPECT_EQ(r.values, (std::vector<float>{0.0f, -0.25f}));  // the stored zero stays stored
  r = Parse("-1 qid:0");
  EXPECT_EQ(r.labels, (std::vector<float>{-1.0f}));
  EXPECT_TRUE(r.indices.empty());
  r = Parse("2.5");  // a label and no features: an all-zero row
  EXPECT_EQ(r.labels, (std::vector<float>{2.5f}));
  EXPECT_TRUE(r.values.empty());
  r = Parse("3 1:nan 2:-inf 3:1e-45");  // non-finite values are the stream's business
  EXPECT_TRUE(std::isnan(r.values[0]));
  EXPECT_EQ(r.values[1], -std::numeric_limits<float>::infinity());
  EXPECT_GT(r.values[2], 0.0f);  // a denormal, not an error
  r = Parse("1 4:7#comment right after a value");
  EXPECT_EQ(r.values, (std::vector<float>{7.0f}));
}

TEST(LibsvmTest, BlankAndCommentLinesMakeNoRow) {
  for (std::string_view line : {"", "   ", "\t", "\r", "# a comment", "   # indented comment 1:2", "#"}) {
    bool got = true;
    DecodedRow r = Parse(line, -1, false, &got);
    EXPECT_FALSE(got) << "'" << line << "'";
    EXPECT_FALSE(r.has_label);
  }
}

TEST(LibsvmTest, ZeroBasedIndicesAreColumns) {
  DecodedRow r = Parse("0 0:1 4:2", 5, true);
  EXPECT_EQ(r.indices, (std::vector<uint32_t>{0, 4}));
  EXPECT_EQ(r.values, (std::vector<float>{1.0f, 2.0f}));
  // The same index 5 is the last column of a 5-wide 1-based row, beyond a 5-wide 0-based one.
  EXPECT_EQ(Parse("0 5:1", 5).indices, (std::vector<uint32_t>{4}));
  EXPECT_HAS(ErrorOf("0 5:1", 5, true), "beyond feature_dim 5 (0-based indices run 0..4)");
}

TEST(LibsvmTest, EveryErrorNamesFileLineAndByteOffset) {
  struct Case {
    std::string line;
    std::string token;  // where the error points
    std::string what;
    int64_t cols = -1;
  };
  const std::vector<Case> cases = {
      {"1 0:1 2:1", "0:1", "index 0 in 1-based data"},
      {"1 3:1 2:1", "2:1", "index 2 comes after index 3"},
      {"1 3:1 3:2", "3:2", "index 3 repeats index 3"},
      {"1 2:1 5:1", "5:1", "index 5 is beyond feature_dim 4 (1-based indices run 1..4)", 4},
      {"1,2 3:1", "1,2", "multi-label line (labels '1,2')"},
      {"1 3 4:1", "3 4", "'3' has no ':'"},
      {"1 3:", "3:", "'3:' has no value after ':'"},
      {"1 3:abc", "abc", "value 'abc' is not a number"},
      {"1 3:1.5.2", "1.5.2", "value '1.5.2' is not a number"},
      {"1 3:1e999", "1e999", "value '1e999' is outside the float32 range"},
      {"1 99999999999999999999:1", "999", "index '99999999999999999999' is too large"},
      {"1 4294967296:1", "429", "index 4294967296 is too large"},
      {"3:1 4:2", "3:1", "the line starts with '3:1', not with a label"},
      {"abc 1:2", "abc", "label 'abc' is not a number"},
      {"1e40 1:2", "1e40", "label '1e40' is outside the float32 range"},
      {"1 2:1 qid:3", "qid", "'qid:3' is not right after the label"},
      {"1 qid:x 2:1", "qid", "query id 'qid:x' is not a whole number"},
      {"1 -2:1", "-2", "index '-2' is not a whole number"},
      {"1 +2:1", "+2", "index '+2' is not a whole number"},
      {"1 1.5:1", "1.5", "index '1.5' is not a whole number"},
      {"1 :5", ":5", "':5' has no index before ':'"},
      {"1 2:1\x01", "1\x01", "value '1?' is not a number"},
      {"1 2:1:3", "1:3", "value '1:3' is not a number"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.line);
    const std::string e = ErrorOf(c.line, c.cols);
    EXPECT_EQ(e.rfind(At(c.line, c.token), 0), 0u) << e;
    EXPECT_HAS(e, c.what);
  }
  // A width beyond 32 bits does not let an index wrap around.
  EXPECT_HAS(ErrorOf("1 4294967296:1", int64_t{1} << 40), "index 4294967296 is too large");
  EXPECT_HAS(ErrorOf("1 0:1"), "zero-based");  // the fix for libsvm's most common mix-up
  // Without the line's offset the position is given within the line.
  EXPECT_EQ(ErrorOf("1 2:x", -1, false, -1).rfind(kFile + ": line 7, byte 4 of the line: value 'x'", 0), 0u);
  // A runaway token is shown cut short.
  EXPECT_HAS(ErrorOf("1 2:" + std::string(1000, 'x')), "'" + std::string(40, 'x') + "...'");
}

TEST(LibsvmTest, GarbageNeverCrashesOrParsesSilentlyWrong) {
  // Random lines over libsvm's alphabet: each parses into a consistent row or is a UserError.
  std::mt19937 rng(7);
  const std::string alphabet = "0123456789:.+-eE #\t,qidnaf\r\x01";
  DecodedRow row;
  LibsvmContext ctx{&kFile, 1, 0};
  for (int n = 0; n < 20000; ++n) {
    std::string line;
    const int len = static_cast<int>(rng() % 24);
    for (int i = 0; i < len; ++i) line.push_back(alphabet[rng() % alphabet.size()]);
    for (int64_t cols : {int64_t{-1}, int64_t{50}}) {
      LibsvmOptions o;
      o.cols = cols;
      try {
        if (!ParseLibsvmLine(line, o, ctx, &row)) continue;
      } catch (const UserError& e) {
        ASSERT_EQ(std::string(e.what()).rfind(kFile + ": line 1 at byte ", 0), 0u) << e.what();
        continue;
      }
      ASSERT_EQ(row.labels.size(), 1u) << line;
      ASSERT_EQ(row.indices.size(), row.values.size()) << line;
      for (size_t k = 0; k < row.indices.size(); ++k) {
        ASSERT_LT(row.indices[k], static_cast<uint64_t>(row.cols)) << line;
        if (k > 0) ASSERT_LT(row.indices[k - 1], row.indices[k]) << line;
      }
    }
  }
}

TEST(LibsvmTest, MaxIndexIsLenient) {
  EXPECT_EQ(LibsvmMaxIndex("1 3:1 17:2 5:1"), 17);
  EXPECT_EQ(LibsvmMaxIndex("1 qid:99 3:1 # 100:1"), 3);
  EXPECT_EQ(LibsvmMaxIndex("1"), -1);
  EXPECT_EQ(LibsvmMaxIndex("# 5:1"), -1);
  EXPECT_EQ(LibsvmMaxIndex("1 x:1 4 7:z 99999999999999999999:1"), 7);
}

TEST(LibsvmTest, AppendLineRoundTrips) {
  const uint32_t idx[] = {0, 6, 99};
  const float val[] = {0.1f, -3.0f, 1e-20f};
  std::string s;
  AppendLibsvmLine(-1.0f, idx, val, 3, &s);
  AppendLibsvmLine(2.0f, idx, val, 0, &s);
  EXPECT_EQ(s, "-1 1:0.1 7:-3 100:1e-20\n2\n");
  DecodedRow r = Parse(s.substr(0, s.find('\n')), 100);
  EXPECT_EQ(r.indices, (std::vector<uint32_t>{0, 6, 99}));
  EXPECT_EQ(r.values, (std::vector<float>{0.1f, -3.0f, 1e-20f}));
}

TEST(LibsvmTest, FormatNamesExtensionsAndContentTypes) {
  EXPECT_EQ(ParseFormat("libsvm"), DataFormat::kLibsvm);
  EXPECT_EQ(ParseFormat("SVMlight"), DataFormat::kLibsvm);
  EXPECT_STREQ(FormatName(DataFormat::kLibsvm), "libsvm");
  for (const char* p : {"a.libsvm", "/d/b.SVM", "c.svmlight"})
    EXPECT_EQ(FormatFromPath(p), DataFormat::kLibsvm) << p;
  EXPECT_EQ(FormatFromPath("dir.libsvm/part-0"), DataFormat::kAuto);
  int label_size = -1;
  EXPECT_EQ(FormatFromContentType("text/libsvm", &label_size), DataFormat::kLibsvm);
  EXPECT_EQ(FormatFromContentType("Text/X-LibSVM; charset=utf-8", &label_size), DataFormat::kLibsvm);
  EXPECT_EQ(label_size, -1);
  EXPECT_THROW(FormatFromContentType("text/libsvm;label_size=1", &label_size), UserError);
}

// ---------------------------------------------------------------------------------------------
// The channel reader.

StreamOptions Opts(int64_t batch, int64_t cols = -1) {
  StreamOptions o;
  o.batch_size = batch;
  o.threads = 2;
  o.prefetch = 2;
  o.expected_cols = cols;
  return o;
}

ChannelSource Files(std::vector<std::string> paths) {
  ChannelSource s;
  s.paths = std::move(paths);
  return s;
}

std::vector<HostBatch> DrainAll(BatchStream& s) {
  std::vector<HostBatch> out;
  HostBatch b;
  while (s.Next(&b)) out.push_back(b);
  return out;
}

std::string DrainError(BatchStream& s, int64_t* rows) {
  HostBatch b;
  *rows = 0;
  try {
    while (s.Next(&b)) *rows += b.rows;
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(LibsvmStreamTest, DecodesToExpectedCsrAcrossFiles) {
  TempDir dir;
  WriteFile(dir / "a.libsvm",
            "# written by hand\n"
            "1 1:0.5 3:2\n"
            "\n"
            "0 qid:1 2:-1 # trailing\n"
            "1\n");
  WriteFile(dir / "b.svm", "-1 4:8\r\n  0 1:1 2:2 3:3 4:4");  // CRLF, indent, no final newline
  BatchStream s(Files({dir / "a.libsvm", dir / "b.svm"}), Opts(4, 4));
  std::vector<HostBatch> got = DrainAll(s);
  ASSERT_EQ(got.size(), 2u);
  const HostBatch& b0 = got[0];
  EXPECT_EQ(b0.layout, Layout::kCsr);
  EXPECT_EQ(b0.rows, 4);
  EXPECT_EQ(b0.cols, 4);
  EXPECT_EQ(b0.indptr, (std::vector<int64_t>{0, 2, 3, 3, 4}));
  EXPECT_EQ(b0.indices, (std::vector<uint32_t>{0, 2, 1, 3}));
  EXPECT_EQ(b0.values, (std::vector<float>{0.5f, 2.0f, -1.0f, 8.0f}));
  EXPECT_EQ(b0.labels, (std::vector<float>{1, 0, 1, -1}));
  const HostBatch& b1 = got[1];
  EXPECT_EQ(b1.layout, Layout::kCsr);
  EXPECT_EQ(b1.first_row, 4);
  EXPECT_EQ(b1.indptr, (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(b1.indices, (std::vector<uint32_t>{0, 1, 2, 3}));
  EXPECT_EQ(b1.values, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(b1.labels, (std::vector<float>{0}));
  const StreamStats& st = s.stats();
  EXPECT_EQ(st.files, 2);
  EXPECT_EQ(st.records, 5);  // rows, not lines: blank and comment lines are no records
  EXPECT_EQ(st.rows, 5);
  EXPECT_EQ(st.nnz, 8);
  EXPECT_TRUE(st.any_sparse);
  EXPECT_TRUE(st.any_labels);
}

TEST(LibsvmStreamTest, ManyRowsInSmallBatchesMatchTheLineParser) {
  TempDir dir;
  std::mt19937 rng(3);
  std::string text[3];
  std::vector<DecodedRow> want;
  for (int f = 0; f < 3; ++f) {
    for (int i = 0; i < 700; ++i) {
      std::vector<uint32_t> idx;
      std::vector<float> val;
      for (uint32_t c = 0; c < 50; ++c) {
        if (rng() % 7 == 0) {
          idx.push_back(c);
          val.push_back(static_cast<float>(static_cast<int>(rng() % 2001) - 1000) / 8.0f);
        }
      }
      if (i % 97 == 0) text[f] += "# comment line\n\n";
      AppendLibsvmLine(static_cast<float>(i % 2), idx.data(), val.data(), static_cast<int64_t>(idx.size()),
                       &text[f]);
      DecodedRow r;
      r.indices = idx;
      r.values = val;
      r.labels = {static_cast<float>(i % 2)};
      want.push_back(r);
    }
    WriteFile(dir / ("p" + std::to_string(f) + ".libsvm"), text[f]);
  }
  for (bool force_dense : {false, true}) {
    StreamOptions o = Opts(64, 50);
    o.force_dense = force_dense;
    o.threads = 3;
    BatchStream s(Files({dir.path()}), o);
    size_t k = 0;
    HostBatch b;
    while (s.Next(&b)) {
      ASSERT_EQ(b.layout, force_dense ? Layout::kDense : Layout::kCsr);
      ASSERT_TRUE(b.rows == 64 || k + static_cast<size_t>(b.rows) == want.size());
      for (int64_t r = 0; r < b.rows; ++r, ++k) {
        ASSERT_LT(k, want.size());
        ASSERT_EQ(b.labels[r], want[k].labels[0]);
        std::vector<float> dense(50, 0.0f);
        for (size_t j = 0; j < want[k].indices.size(); ++j) dense[want[k].indices[j]] = want[k].values[j];
        if (force_dense) {
          ASSERT_EQ(std::vector<float>(b.values.begin() + r * 50, b.values.begin() + (r + 1) * 50), dense);
        } else {
          ASSERT_EQ(
              std::vector<uint32_t>(b.indices.begin() + b.indptr[r], b.indices.begin() + b.indptr[r + 1]),
              want[k].indices);
          ASSERT_EQ(std::vector<float>(b.values.begin() + b.indptr[r], b.values.begin() + b.indptr[r + 1]),
                    want[k].values);
        }
      }
    }
    EXPECT_EQ(k, want.size());
  }
}

TEST(LibsvmStreamTest, WidthIsScannedWithoutFeatureDim) {
  TempDir dir;
  WriteFile(dir / "a.libsvm", "1 2:1\n0 9:1\n");
  WriteFile(dir / "b.libsvm", "1 4:1\n");
  {
    BatchStream s(Files({dir / "a.libsvm", dir / "b.libsvm"}), Opts(10));
    std::vector<HostBatch> got = DrainAll(s);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].cols, 9);  // 1-based: the largest index
    EXPECT_EQ(s.cols(), 9);
    s.StartEpoch(1);  // the width is kept, not scanned again
    EXPECT_EQ(DrainAll(s).size(), 1u);
  }
  {
    ChannelSource src = Files({dir / "a.libsvm", dir / "b.libsvm"});
    src.libsvm_zero_based = true;
    BatchStream s(src, Opts(10));
    EXPECT_EQ(DrainAll(s)[0].cols, 10);  // 0-based: the largest index + 1
  }
  {
    // A CSV file in the same channel must match the scanned width; the error says where it came from.
    WriteFile(dir / "c.csv", "1,2,3\n");
    BatchStream s(Files({dir / "a.libsvm", dir / "c.csv"}), Opts(10));
    int64_t rows = 0;
    const std::string e = DrainError(s, &rows);
    EXPECT_HAS(
        e, "expected 9 feature columns (as in " + (dir / "a.libsvm") + ": line 2, the largest libsvm index)");
  }
}

TEST(LibsvmStreamTest, IndexBeyondFeatureDimNamesLineAndByteAfterEarlierRows) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 25; ++i) text += "1 1:1 3:1\n";
  const size_t bad_line = text.size();
  text += "0 2:1 4:1\n1 1:1\n";
  WriteFile(dir / "t.libsvm", text);
  BatchStream s(Files({dir / "t.libsvm"}), Opts(10, 3));
  int64_t rows = 0;
  const std::string e = DrainError(s, &rows);
  EXPECT_EQ(rows, 25);  // every row before the bad line is delivered first
  EXPECT_EQ(e.rfind(dir / "t.libsvm" + ": line 26 at byte " + std::to_string(bad_line + 6) +
                        ": index 4 is beyond feature_dim 3",
                    0),
            0u)
      << e;
}

TEST(LibsvmStreamTest, IndexZeroSuggestsZeroBasedAndNonFiniteFollowsTheOption) {
  TempDir dir;
  WriteFile(dir / "z.libsvm", "1 0:1 2:5\n");
  {
    BatchStream s(Files({dir / "z.libsvm"}), Opts(10));
    int64_t rows = 0;
    const std::string e = DrainError(s, &rows);
    EXPECT_EQ(e.rfind(dir / "z.libsvm" + ": line 1 at byte 2: index 0 in 1-based data", 0), 0u) << e;
    EXPECT_HAS(e, "libsvm_zero_based");
  }
  WriteFile(dir / "n.libsvm", "1 1:1\n0 2:nan\n");
  {
    BatchStream s(Files({dir / "n.libsvm"}), Opts(10, 2));
    int64_t rows = 0;
    const std::string e = DrainError(s, &rows);
    EXPECT_HAS(e, dir / "n.libsvm" + ": line 2 at byte 6: feature 1 (0-based column) is NaN");
  }
  {
    StreamOptions o = Opts(10, 2);
    o.allow_non_finite = true;
    BatchStream s(Files({dir / "n.libsvm"}), o);
    std::vector<HostBatch> got = DrainAll(s);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_TRUE(std::isnan(got[0].values[1]));
  }
}

TEST(LibsvmStreamTest, OverlongLineIsAUserErrorNamingIt) {
  TempDir dir;
  const std::string first = "1 1:1\n";
  WriteFile(dir / "long.libsvm", first + "1 " + std::string(5000, '7') + ":1\n");
  StreamOptions o = Opts(10, 4);
  o.max_line_bytes = 1000;
  BatchStream s(Files({dir / "long.libsvm"}), o);
  int64_t rows = 0;
  const std::string e = DrainError(s, &rows);
  EXPECT_EQ(rows, 1);
  EXPECT_EQ(e.rfind(dir / "long.libsvm" + ": line 2 at byte 6: the line is longer than 1000 bytes", 0), 0u)
      << e;
  // The width scan copes with it (the decoder is the one to complain).
  StreamOptions scan = o;
  scan.expected_cols = -1;
  BatchStream s2(Files({dir / "long.libsvm"}), scan);
  EXPECT_HAS(DrainError(s2, &rows), "longer than 1000 bytes");
}

TEST(LibsvmStreamTest, PipeModeNeedsFeatureDimAndThenStreams) {
  TempDir dir;
  ChannelSource src;
  src.pipe_prefix = dir / "train";
  src.format = DataFormat::kLibsvm;
  try {
    BatchStream s(src, Opts(10));
    ADD_FAILURE() << "no error";
  } catch (const UserError& e) {
    EXPECT_HAS(e.what(), "libsvm data in Pipe mode needs feature_dim");
  }
  std::string data;
  for (int i = 0; i < 250; ++i)
    data += std::to_string(i % 2) + " " + std::to_string(i % 5 + 1) + ":" + std::to_string(i) + "\n";
  std::thread writer([&] {
    const std::string path = src.pipe_prefix + "_0";
    if (::mkfifo(path.c_str(), 0600) != 0) return;
    const int fd = ::open(path.c_str(), O_WRONLY);
    if (fd < 0) return;
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::write(fd, data.data() + off, std::min<size_t>(777, data.size() - off));
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::close(fd);
  });
  BatchStream s(src, Opts(100, 5));
  std::vector<HostBatch> got = DrainAll(s);
  writer.join();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2].rows, 50);
  for (const HostBatch& b : got) {
    for (int64_t r = 0; r < b.rows; ++r) {
      const int64_t i = b.first_row + r;
      ASSERT_EQ(b.indptr[r + 1] - b.indptr[r], 1);
      EXPECT_EQ(b.indices[b.indptr[r]], static_cast<uint32_t>(i % 5));
      EXPECT_EQ(b.values[b.indptr[r]], static_cast<float>(i));
      EXPECT_EQ(b.labels[r], static_cast<float>(i % 2));
    }
  }
}

TEST(LibsvmStreamTest, ConvertToRecordIOAndBackIsExact) {
  TempDir dir;
  const std::string text =
      "1 1:0.1 5:-2.5e-3 6:7\n"
      "0\n"
      "-1 2:0 3:3.4028235e38\n"
      "2 6:1e-40\n";
  WriteFile(dir / "in.libsvm", text);
  auto convert = [&](const std::string& from, const std::string& to, int64_t cols) {
    BatchStream s(Files({from}), Opts(3, cols));
    auto w = MakeRowWriter(to, WriterOptions{});
    HostBatch b;
    while (s.Next(&b)) w->Write(b);
    w->Close();
    return w->rows_written();
  };
  EXPECT_EQ(convert(dir / "in.libsvm", dir / "mid.pbr", -1), 4);
  EXPECT_EQ(convert(dir / "mid.pbr", dir / "out.libsvm", -1), 4);
  // recordIO keeps the rows sparse (explicit zero included), libsvm writes them back byte for byte.
  EXPECT_EQ(test::ReadFile(dir / "out.libsvm"),
            "1 1:0.1 5:-0.0025 6:7\n0\n-1 2:0 3:3.4028235e+38\n2 6:1e-40\n");
  BatchStream a(Files({dir / "in.libsvm"}), Opts(10));
  BatchStream b(Files({dir / "mid.pbr"}), Opts(10));
  std::vector<HostBatch> ga = DrainAll(a), gb = DrainAll(b);
  ASSERT_EQ(ga.size(), 1u);
  ASSERT_EQ(gb.size(), 1u);
  EXPECT_EQ(gb[0].layout, Layout::kCsr);
  EXPECT_EQ(ga[0].cols, gb[0].cols);
  EXPECT_EQ(ga[0].indptr, gb[0].indptr);
  EXPECT_EQ(ga[0].indices, gb[0].indices);
  EXPECT_EQ(ga[0].values, gb[0].values);
  EXPECT_EQ(ga[0].labels, gb[0].labels);
  // A dense source writes its non-zeros; unlabeled rows cannot be libsvm.
  WriteFile(dir / "d.csv", "1,0,2.5,0\n0,0,0,0\n");
  EXPECT_EQ(convert(dir / "d.csv", dir / "d.libsvm", 3), 2);
  EXPECT_EQ(test::ReadFile(dir / "d.libsvm"), "1 2:2.5\n0\n");
  WriterOptions no_labels;
  no_labels.write_labels = false;
  auto w = MakeRowWriter(dir / "x.libsvm", no_labels);
  EXPECT_THROW(w->Write(gb[0]), UserError);
}

}  // namespace
}  // namespace mlforge::io
