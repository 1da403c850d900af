// BatchStream over rows already in memory (io::MemoryMatrix, what the Python bindings hand over):
// the same batches as the same rows read from a file, sharding, and the named errors file rows get.
#include <gtest/gtest.h>

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/batch_stream.h"
#include "io/row_writer.h"
#include "tests/testutil.h"

namespace mlforge::io {
namespace {

std::vector<HostBatch> ReadAll(const ChannelSource& src, StreamOptions so) {
  BatchStream s(src, so);
  std::vector<HostBatch> out;
  HostBatch b;
  while (s.Next(&b)) out.push_back(b);
  return out;
}

TEST(MemoryStream, DenseAndCsrEqualTheSameRowsReadFromAFile) {
  const int64_t n = 1000, d = 7;
  HostBatch csr;
  csr.layout = Layout::kCsr;
  csr.rows = n;
  csr.cols = d;
  csr.indptr = {0};
  std::vector<int32_t> indptr32 = {0}, indices32;
  std::vector<float> dense(static_cast<size_t>(n * d), 0.0f);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = r % 3; j < d; j += 2) {
      const float v = static_cast<float>(r * 0.5 - j);
      csr.indices.push_back(static_cast<uint32_t>(j));
      indices32.push_back(static_cast<int32_t>(j));
      csr.values.push_back(v);
      dense[r * d + j] = v;
    }
    csr.indptr.push_back(static_cast<int64_t>(csr.values.size()));
    indptr32.push_back(static_cast<int32_t>(csr.values.size()));
    csr.labels.push_back(static_cast<float>(r % 2));
  }
  test::TempDir dir;
  {
    auto w = MakeRowWriter(dir / "rows.pbr", {});
    w->Write(csr);
    w->Close();
  }
  StreamOptions so;
  so.batch_size = 96;
  so.threads = 2;
  so.expected_cols = d;
  ChannelSource file;
  file.paths = {dir / "rows.pbr"};
  const std::vector<HostBatch> want = ReadAll(file, so);

  auto m = std::make_shared<MemoryMatrix>();
  m->layout = Layout::kCsr;
  m->rows = n;
  m->cols = d;
  m->values = csr.values.data();
  m->indptr32 = indptr32.data();
  m->indices = indices32.data();
  m->labels = csr.labels.data();
  ChannelSource mem;
  mem.memory = m;
  const std::vector<HostBatch> got = ReadAll(mem, so);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].rows, want[i].rows);
    EXPECT_EQ(got[i].indptr, want[i].indptr) << "batch " << i;
    EXPECT_EQ(got[i].indices, want[i].indices) << "batch " << i;
    EXPECT_EQ(got[i].values, want[i].values) << "batch " << i;
    EXPECT_EQ(got[i].labels, want[i].labels) << "batch " << i;
  }
  // Dense rows in memory: the same values, densified.
  auto md = std::make_shared<MemoryMatrix>();
  md->rows = n;
  md->cols = d;
  md->values = dense.data();
  md->labels = csr.labels.data();
  ChannelSource dm;
  dm.memory = md;
  int64_t rows = 0;
  for (const HostBatch& b : ReadAll(dm, so)) {
    ASSERT_EQ(b.layout, Layout::kDense);
    for (int64_t r = 0; r < b.rows; ++r)
      for (int64_t j = 0; j < d; ++j) EXPECT_EQ(b.values[r * d + j], dense[(rows + r) * d + j]);
    rows += b.rows;
  }
  EXPECT_EQ(rows, n);
  // Two shards see every row once between them.
  int64_t sharded = 0;
  for (int s = 0; s < 2; ++s) {
    StreamOptions sh = so;
    sh.shard_index = s;
    sh.num_shards = 2;
    for (const HostBatch& b : ReadAll(mem, sh)) sharded += b.rows;
  }
  EXPECT_EQ(sharded, n);
}

TEST(MemoryStream, BadRowsAreNamedErrors) {
  std::vector<float> values = {1, 2, 3};
  std::vector<int32_t> indptr = {0, 2, 3}, indices = {0, 9, 1};
  auto m = std::make_shared<MemoryMatrix>();
  m->layout = Layout::kCsr;
  m->rows = 2;
  m->cols = 4;
  m->values = values.data();
  m->indptr32 = indptr.data();
  m->indices = indices.data();
  m->name = "X";
  ChannelSource src;
  src.memory = m;
  StreamOptions so;
  so.expected_cols = 4;
  try {
    ReadAll(src, so);
    ADD_FAILURE() << "an index past the width was accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("column index 9 is outside [0, 4)"), std::string::npos) << e.what();
  }
  indices = {0, 1, 1};
  so.require_labels = true;
  EXPECT_THROW(ReadAll(src, so), UserError);  // no labels
  values[1] = std::numeric_limits<float>::quiet_NaN();
  so.require_labels = false;
  EXPECT_THROW(ReadAll(src, so), UserError);  // NaN feature
}

// Row weights (the Python estimators' sample_weight) travel with their rows through chunking,
// batching across chunk boundaries and shuffling; a bad weight is a named error.
TEST(MemoryStream, RowWeightsFollowTheirRows) {
  const int64_t n = 1000, d = 3;
  std::vector<float> values(static_cast<size_t>(n * d)), labels(static_cast<size_t>(n)), weights(labels.size());
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < d; ++j) values[r * d + j] = static_cast<float>(r);  // row r holds r
    labels[r] = static_cast<float>(r % 2);
    weights[r] = 0.25f * static_cast<float>(r % 7);  // 0 included
  }
  auto m = std::make_shared<MemoryMatrix>();
  m->rows = n;
  m->cols = d;
  m->values = values.data();
  m->labels = labels.data();
  m->weights = weights.data();
  ChannelSource src;
  src.memory = m;
  for (bool shuffle : {false, true}) {
    StreamOptions so;
    so.batch_size = 96;  // not a divisor of the chunks' row counts
    so.threads = 2;
    so.chunk_bytes = 1000;  // many small chunks, so batches join several
    so.shuffle = shuffle;
    int64_t rows = 0;
    for (const HostBatch& b : ReadAll(src, so)) {
      ASSERT_EQ(static_cast<int64_t>(b.weights.size()), b.rows);
      for (int64_t i = 0; i < b.rows; ++i) {
        const int64_t r = static_cast<int64_t>(b.values[i * d]);
        EXPECT_EQ(b.weights[i], weights[r]) << "row " << r << (shuffle ? " (shuffled)" : "");
      }
      rows += b.rows;
    }
    EXPECT_EQ(rows, n);
  }
  weights[17] = -1.0f;
  try {
    ReadAll(src, StreamOptions{});
    ADD_FAILURE() << "a negative weight was accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("row 17: the weight is -1; row weights must be finite and >= 0"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace mlforge::io
