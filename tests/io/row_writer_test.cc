// CSV and recordIO writers: exact output, round trips through the readers, atomic replacement.
#include "io/row_writer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/input_file.h"
#include "io/record_codec.h"
#include "io/recordio.h"
#include "tests/testutil.h"

namespace mlforge::io {
namespace {

namespace fs = std::filesystem;

HostBatch Dense(int64_t rows, int64_t cols, std::vector<float> values, std::vector<float> labels = {}) {
  HostBatch b;
  b.layout = Layout::kDense;
  b.rows = rows;
  b.cols = cols;
  b.values = std::move(values);
  b.labels = std::move(labels);
  return b;
}

// 3 x 5 CSR: row 0 {1: 1.5, 4: -2}, row 1 empty, row 2 {0: 0.25}.
HostBatch Csr(bool labels) {
  HostBatch b;
  b.layout = Layout::kCsr;
  b.rows = 3;
  b.cols = 5;
  b.indptr = {0, 2, 2, 3};
  b.indices = {1, 4, 0};
  b.values = {1.5f, -2.0f, 0.25f};
  if (labels) b.labels = {1, 0, 1};
  return b;
}

std::string TempName(const std::string& path) { return path + ".tmp-" + std::to_string(::getpid()); }

std::vector<DecodedRow> ReadRecords(const std::string& path) {
  RecordIOReader r(InputFile::Open(path));
  std::vector<DecodedRow> rows;
  std::string_view p;
  while (r.Next(&p)) {
    rows.emplace_back();
    DecodeRecord(p, RecordContext{&path, r.record_index(), r.record_offset()}, &rows.back());
  }
  return rows;
}

TEST(RowWriter, CsvDenseWithLabelsIsExact) {
  test::TempDir dir;
  const std::string path = dir / "out.csv";
  auto w = MakeRowWriter(path, WriterOptions{});
  const float nan = std::numeric_limits<float>::quiet_NaN();
  w->Write(Dense(2, 3, {0.1f, -2.0f, 1e-7f, nan, -0.0f, 3.0f}, {1.0f, 0.0f}));
  w->Write(Dense(1, 3, {std::numeric_limits<float>::infinity(), 16777216.0f, 0.5f}, {2.0f}));
  EXPECT_EQ(w->rows_written(), 3);
  w->Close();
  EXPECT_EQ(test::ReadFile(path), "1,0.1,-2,1e-07\n0,nan,-0,3\n2,inf,16777216,0.5\n");
}

TEST(RowWriter, CsvSparseRowsAreWrittenDenseAndLabelsCanBeDropped) {
  test::TempDir dir;
  {
    auto w = MakeRowWriter(dir / "a.csv", WriterOptions{});
    w->Write(Csr(true));
    w->Close();
  }
  EXPECT_EQ(test::ReadFile(dir / "a.csv"), "1,0,1.5,0,0,-2\n0,0,0,0,0,0\n1,0.25,0,0,0,0\n");
  {
    WriterOptions o;
    o.write_labels = false;
    auto w = MakeRowWriter(dir / "b.csv", o);
    w->Write(Csr(true));
    w->Close();
  }
  EXPECT_EQ(test::ReadFile(dir / "b.csv"), "0,1.5,0,0,-2\n0,0,0,0,0\n0.25,0,0,0,0\n");
}

TEST(RowWriter, RecordIODenseRoundTrip) {
  test::TempDir dir;
  const std::string path = dir / "d.pbr";
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x = {1, 2, nan, -0.0f, 5, 6};
  auto w = MakeRowWriter(path, WriterOptions{});
  w->Write(Dense(3, 2, x, {0, 1, 2}));
  w->Close();
  const auto rows = ReadRecords(path);
  ASSERT_EQ(rows.size(), 3u);
  for (int r = 0; r < 3; ++r) {
    EXPECT_FALSE(rows[r].sparse);
    ASSERT_EQ(rows[r].cols, 2);
    EXPECT_EQ(0, std::memcmp(rows[r].values.data(), &x[2 * r], 8));
    ASSERT_TRUE(rows[r].has_label);
    EXPECT_EQ(rows[r].labels[0], static_cast<float>(r));
  }
  // Byte-exact against the encoder + framer directly (SDK layout).
  std::string want;
  for (int r = 0; r < 3; ++r) {
    std::string p;
    const float y = static_cast<float>(r);
    EncodeDenseRecord(&x[2 * r], 2, &y, &p);
    AppendRecordIOFrame(p, &want);
  }
  EXPECT_TRUE(test::ReadFile(path) == want);
}

TEST(RowWriter, RecordIOSparseOrDensified) {
  test::TempDir dir;
  {
    auto w = MakeRowWriter(dir / "s.pbr", WriterOptions{});
    w->Write(Csr(true));
    w->Close();
  }
  auto rows = ReadRecords(dir / "s.pbr");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_TRUE(rows[0].sparse);
  EXPECT_EQ(rows[0].cols, 5);
  EXPECT_EQ(rows[0].indices, (std::vector<uint32_t>{1, 4}));
  EXPECT_EQ(rows[0].values, (std::vector<float>{1.5f, -2.0f}));
  EXPECT_TRUE(rows[1].sparse);
  EXPECT_TRUE(rows[1].values.empty());
  EXPECT_EQ(rows[1].cols, 5);
  EXPECT_EQ(rows[2].labels, (std::vector<float>{1}));

  WriterOptions o;
  o.sparse = false;
  o.write_labels = false;
  {
    auto w = MakeRowWriter(dir / "d.recordio", o);
    w->Write(Csr(true));
    w->Close();
  }
  rows = ReadRecords(dir / "d.recordio");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_FALSE(rows[0].sparse);
  EXPECT_EQ(rows[0].values, (std::vector<float>{0, 1.5f, 0, 0, -2.0f}));
  EXPECT_EQ(rows[1].values, (std::vector<float>(5, 0.0f)));
  EXPECT_FALSE(rows[2].has_label);
}

TEST(RowWriter, OutputAppearsOnlyOnClose) {
  test::TempDir dir;
  const std::string path = dir / "x.pbr";
  test::WriteFile(path, "old");
  {
    auto w = MakeRowWriter(path, WriterOptions{});
    w->Write(Dense(1, 1, {1}));
    EXPECT_TRUE(fs::exists(TempName(path)));
    EXPECT_EQ(test::ReadFile(path), "old");
    w->Close();
    EXPECT_FALSE(fs::exists(TempName(path)));
    EXPECT_EQ(ReadRecords(path).size(), 1u);
    w->Close();  // idempotent
  }
  EXPECT_TRUE(fs::exists(path));
}

TEST(RowWriter, DestroyedWithoutCloseLeavesNothing) {
  test::TempDir dir;
  const std::string path = dir / "y.csv";
  {
    auto w = MakeRowWriter(path, WriterOptions{});
    w->Write(Dense(2, 1, {1, 2}));
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(TempName(path)));
  EXPECT_TRUE(fs::is_empty(dir.path()));

  // A failed write (column count changes) then destruction: still nothing left behind.
  {
    auto w = MakeRowWriter(path, WriterOptions{});
    w->Write(Dense(1, 2, {1, 2}));
    EXPECT_THROW(w->Write(Dense(1, 3, {1, 2, 3})), UserError);
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(RowWriter, ErrorsNameThePath) {
  test::TempDir dir;
  try {
    MakeRowWriter(dir / "missing/sub/out.csv", WriterOptions{});
    ADD_FAILURE() << "expected an error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(dir / "missing/sub/out.csv"), std::string::npos) << e.what();
  }
  EXPECT_THROW(MakeRowWriter(dir / "out.txt", WriterOptions{}), UserError);
  EXPECT_THROW(MakeRowWriter(dir / "out.vcf", WriterOptions{}), UserError);
  WriterOptions csv;
  csv.format = DataFormat::kCsv;
  auto w = MakeRowWriter(dir / "out.txt", csv);  // explicit format wins over the extension
  w->Write(Dense(1, 1, {4}));
  w->Close();
  EXPECT_EQ(test::ReadFile(dir / "out.txt"), "4\n");
}

TEST(RowWriter, DiskFullIsAUserError) {
  // /dev/full accepts the open but fails every write with ENOSPC; the writer writes to
  // /dev/full.tmp-<pid>, which cannot be created by a normal user, so use a symlinked temp name.
  test::TempDir dir;
  const std::string path = dir / "full.csv";
  std::error_code ec;
  fs::create_symlink("/dev/full", TempName(path), ec);
  if (ec || !fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  auto w = MakeRowWriter(path, WriterOptions{});
  HostBatch big = Dense(1, 300000, std::vector<float>(300000, 1.25f));
  try {
    w->Write(big);
    w->Close();
    ADD_FAILURE() << "expected an error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("disk is full"), std::string::npos) << e.what();
  }
}

// io/format.h: how writers (and readers) pick a format.
TEST(Format, NamesExtensionsAndContentTypes) {
  EXPECT_EQ(ParseFormat("CSV"), DataFormat::kCsv);
  EXPECT_EQ(ParseFormat("recordio-protobuf"), DataFormat::kRecordIO);
  EXPECT_EQ(ParseFormat("protobuf"), DataFormat::kRecordIO);
  EXPECT_EQ(ParseFormat("vcf"), DataFormat::kVcf);
  EXPECT_THROW(ParseFormat("parquet"), UserError);
  for (DataFormat f : {DataFormat::kCsv, DataFormat::kRecordIO, DataFormat::kVcf, DataFormat::kAuto}) {
    EXPECT_EQ(ParseFormat(FormatName(f)), f);
  }

  EXPECT_EQ(FormatFromPath("/a/b/train.csv"), DataFormat::kCsv);
  EXPECT_EQ(FormatFromPath("matrix_0.pbr"), DataFormat::kRecordIO);
  EXPECT_EQ(FormatFromPath("x.RecordIO"), DataFormat::kRecordIO);
  EXPECT_EQ(FormatFromPath("calls.vcf.gz"), DataFormat::kVcf);
  EXPECT_EQ(FormatFromPath("calls.bcf"), DataFormat::kVcf);
  EXPECT_EQ(FormatFromPath("dir.csv/part-0"), DataFormat::kAuto);
  EXPECT_EQ(FormatFromPath("notes.txt"), DataFormat::kAuto);

  int label_size = -1;
  EXPECT_EQ(FormatFromContentType("", &label_size), DataFormat::kAuto);
  EXPECT_EQ(FormatFromContentType("text/csv", &label_size), DataFormat::kCsv);
  EXPECT_EQ(label_size, -1);
  EXPECT_EQ(FormatFromContentType("Text/CSV; charset=utf-8; label_size=0", &label_size), DataFormat::kCsv);
  EXPECT_EQ(label_size, 0);
  EXPECT_EQ(FormatFromContentType("text/csv;label_size=1", &label_size), DataFormat::kCsv);
  EXPECT_EQ(label_size, 1);
  EXPECT_EQ(FormatFromContentType("application/x-recordio-protobuf", &label_size), DataFormat::kRecordIO);
  EXPECT_EQ(FormatFromContentType("application/x-recordio", nullptr), DataFormat::kRecordIO);
  EXPECT_THROW(FormatFromContentType("text/csv;label_size=2", &label_size), UserError);
  bool zero_based = false;
  EXPECT_EQ(FormatFromContentType("text/libsvm; zero_based=TRUE", &label_size, &zero_based), DataFormat::kLibsvm);
  EXPECT_TRUE(zero_based);
  EXPECT_EQ(FormatFromContentType("text/x-libsvm;zero_based=false", &label_size, &zero_based), DataFormat::kLibsvm);
  EXPECT_FALSE(zero_based);
  EXPECT_THROW(FormatFromContentType("text/libsvm;zero_based=1", &label_size, &zero_based), UserError);
  EXPECT_THROW(FormatFromContentType("text/csv;zero_based=true", &label_size, &zero_based), UserError);
  EXPECT_THROW(FormatFromContentType("text/csv;label_size=x", &label_size), UserError);
  EXPECT_THROW(FormatFromContentType("application/json", &label_size), UserError);
}

}  // namespace
}  // namespace mlforge::io
