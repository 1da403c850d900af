// Table-driven over ../shared/data/recordio/manifest.json: every valid file reproduces its sidecar
// matrix and labels bit for bit; every corrupt file fails with the named error at the named byte
// after exactly the named number of good records; SDK-written float32 files re-encode byte for byte.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/input_file.h"
#include "io/record_codec.h"
#include "io/recordio.h"
#include "tests/testutil.h"

namespace mlforge::io {
namespace {

using nlohmann::json;

// Minimal .npy reader for the dtypes the sidecars use (<f4, <f8, <i8, <u8; C order).
struct Npy {
  std::string descr;
  std::vector<int64_t> shape;
  std::string data;
  size_t count() const {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    return n;
  }
  size_t itemsize() const { return descr == "<f4" ? 4 : 8; }
  // Element i as the float32 the reader must produce (int64 -> float32 of the value).
  float AsFloat(size_t i) const {
    const char* p = data.data() + i * itemsize();
    if (descr == "<f4") {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    if (descr == "<f8") {
      double d;
      std::memcpy(&d, p, 8);
      return static_cast<float>(d);
    }
    int64_t v;
    std::memcpy(&v, p, 8);
    return static_cast<float>(v);
  }
  uint64_t AsU64(size_t i) const {
    uint64_t v;
    std::memcpy(&v, data.data() + i * 8, 8);
    return v;
  }
};

Npy ReadNpy(const std::string& path) {
  const std::string raw = test::ReadFile(path);
  if (raw.size() < 10 || raw.compare(0, 6, "\x93NUMPY") != 0) throw std::runtime_error("not .npy: " + path);
  const int major = static_cast<unsigned char>(raw[6]);
  size_t hlen, hstart;
  if (major == 1) {
    hlen = static_cast<unsigned char>(raw[8]) | static_cast<unsigned char>(raw[9]) << 8;
    hstart = 10;
  } else {
    uint32_t h;
    std::memcpy(&h, raw.data() + 8, 4);
    hlen = h;
    hstart = 12;
  }
  const std::string header = raw.substr(hstart, hlen);
  Npy n;
  const size_t d = header.find("'descr': '");
  n.descr = header.substr(d + 10, 3);
  if (n.descr != "<f4" && n.descr != "<f8" && n.descr != "<i8" && n.descr != "<u8")
    throw std::runtime_error("unexpected dtype " + n.descr + " in " + path);
  if (header.find("'fortran_order': False") == std::string::npos) throw std::runtime_error("fortran order");
  const size_t s = header.find("'shape': (");
  const size_t e = header.find(')', s);
  std::string dims = header.substr(s + 10, e - s - 10);
  size_t pos = 0;
  while (pos < dims.size()) {
    size_t comma = dims.find(',', pos);
    std::string tok = dims.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (tok.find_first_of("0123456789") != std::string::npos) n.shape.push_back(std::stoll(tok));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  n.data = raw.substr(hstart + hlen);
  if (n.data.size() != n.count() * n.itemsize()) throw std::runtime_error("bad .npy size: " + path);
  return n;
}

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Everything a file decodes to, in CSR form for sparse rows.
struct Decoded {
  int64_t records = 0;
  int64_t rows = 0;
  std::vector<int64_t> cols;  // per row
  std::vector<bool> sparse;   // per record
  std::vector<float> dense;   // concatenated dense rows
  std::vector<int64_t> indptr{0};
  std::vector<uint64_t> indices;
  std::vector<float> data;
  std::vector<bool> has_label;
  std::vector<float> labels;
  std::vector<std::string> uids;
  std::string error;  // what() of the UserError that stopped the read, if any
};

void ExpectSameRow(const DecodedRow& a, const DecodedRow& b) {
  EXPECT_EQ(a.sparse, b.sparse);
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.cols, b.cols);
  ASSERT_EQ(a.values.size(), b.values.size());
  EXPECT_EQ(0, std::memcmp(a.values.data(), b.values.data(), a.values.size() * 4));
  EXPECT_EQ(a.indices, b.indices);
  EXPECT_EQ(a.row_ptr, b.row_ptr);
  EXPECT_EQ(a.has_label, b.has_label);
  ASSERT_EQ(a.labels.size(), b.labels.size());
  EXPECT_EQ(0, std::memcmp(a.labels.data(), b.labels.data(), a.labels.size() * 4));
  EXPECT_EQ(a.uid, b.uid);
}

Decoded ReadAll(const std::string& path) {
  Decoded d;
  RecordIOReader reader(InputFile::Open(path));
  DecodedRow row, ref;
  std::string_view payload;
  try {
    while (reader.Next(&payload)) {
      RecordContext ctx{&reader.path(), reader.record_index(), reader.record_offset()};
      // The reference decoder must agree, error message included.
      std::string ref_error;
      try {
        DecodeRecordReference(payload, ctx, &ref);
      } catch (const UserError& e) {
        ref_error = e.what();
      }
      try {
        DecodeRecord(payload, ctx, &row);
      } catch (const UserError& e) {
        const std::string what = e.what();
        EXPECT_FALSE(ref_error.empty()) << "reference accepted what the fast decoder rejected: " << what;
        if (what.find("protobuf parse error") == std::string::npos) {
          EXPECT_EQ(what, ref_error);
        }
        throw;
      }
      EXPECT_TRUE(ref_error.empty()) << "fast decoder accepted what the reference rejected: " << ref_error;
      if (ref_error.empty()) ExpectSameRow(row, ref);
      ++d.records;
      d.sparse.push_back(row.sparse);
      d.uids.push_back(row.uid);
      for (int64_t r = 0; r < row.rows; ++r) {
        d.cols.push_back(row.cols);
        d.has_label.push_back(row.has_label);
        if (row.has_label) d.labels.push_back(row.labels[r]);
        if (!row.sparse) {
          d.dense.insert(d.dense.end(), row.values.begin() + r * row.cols,
                         row.values.begin() + (r + 1) * row.cols);
        } else {
          const int64_t b = row.rows == 1 ? 0 : row.row_ptr[r];
          const int64_t e = row.rows == 1 ? static_cast<int64_t>(row.values.size()) : row.row_ptr[r + 1];
          for (int64_t k = b; k < e; ++k) {
            d.indices.push_back(row.indices[k]);
            d.data.push_back(row.values[k]);
          }
          d.indptr.push_back(static_cast<int64_t>(d.data.size()));
        }
      }
      d.rows += row.rows;
    }
  } catch (const UserError& e) {
    d.error = e.what();
  }
  return d;
}

// The manifest was written by Python's json module, which emits bare NaN / Infinity (in statistics
// we do not use); strict JSON parsers reject them, so they become null outside strings.
json Manifest() {
  const std::string text = test::ReadFile(test::SharedData("recordio/manifest.json"));
  std::string clean;
  clean.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (in_string) {
      clean.push_back(ch);
      if (ch == '\\' && i + 1 < text.size()) {
        clean.push_back(text[++i]);
      } else if (ch == '"') {
        in_string = false;
      }
      continue;
    }
    if (ch == '"') in_string = true;
    bool replaced = false;
    for (const char* tok : {"-Infinity", "Infinity", "NaN"}) {
      if (text.compare(i, std::strlen(tok), tok) == 0) {
        clean += "null";
        i += std::strlen(tok) - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) clean.push_back(ch);
  }
  return json::parse(clean);
}

void ExpectFloatsBitwise(const std::vector<float>& got, const Npy& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.count()) << what;
  size_t mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (Bits(got[i]) != Bits(want.AsFloat(i)) && mismatches++ < 5) {
      ADD_FAILURE() << what << " element " << i << ": got " << got[i] << " want " << want.AsFloat(i);
    }
  }
  EXPECT_EQ(mismatches, 0u) << what;
}

TEST(GoldenRecordIO, ValidCasesReproduceSidecars) {
  MLF_REQUIRE_SHARED_DATA();
  const std::string dir = test::SharedData("recordio") + "/";
  int checked = 0;
  const json manifest = Manifest();
  for (const json& c : manifest["cases"]) {
    if (c["kind"] != "valid" || !c["features"].contains("storage")) continue;
    const std::string file = c["file"];
    const json& f = c["features"];
    if (!f.contains("npy") && !f.contains("npy_data")) continue;  // mnist: own test below
    SCOPED_TRACE(file);
    Decoded d = ReadAll(dir + file);
    ASSERT_EQ(d.error, "");
    EXPECT_EQ(d.records, c["n_records"].get<int64_t>());
    EXPECT_EQ(d.rows, f["n_rows"].get<int64_t>());
    for (int64_t w : d.cols) ASSERT_EQ(w, f["n_cols"].get<int64_t>());
    if (f["storage"] == "dense") {
      for (bool s : d.sparse) EXPECT_FALSE(s);
      ExpectFloatsBitwise(d.dense, ReadNpy(dir + f["npy"].get<std::string>()), "features");
    } else {
      for (bool s : d.sparse) EXPECT_TRUE(s);
      const Npy indptr = ReadNpy(dir + f["npy_indptr"].get<std::string>());
      const Npy indices = ReadNpy(dir + f["npy_indices"].get<std::string>());
      ExpectFloatsBitwise(d.data, ReadNpy(dir + f["npy_data"].get<std::string>()), "sparse data");
      ASSERT_EQ(d.indptr.size(), indptr.count());
      for (size_t i = 0; i < indptr.count(); ++i)
        ASSERT_EQ(static_cast<uint64_t>(d.indptr[i]), indptr.AsU64(i));
      ASSERT_EQ(d.indices.size(), indices.count());
      for (size_t i = 0; i < indices.count(); ++i) ASSERT_EQ(d.indices[i], indices.AsU64(i)) << i;
      EXPECT_EQ(static_cast<int64_t>(d.data.size()), f["nnz"].get<int64_t>());
      for (int64_t r : f["empty_rows"]) EXPECT_EQ(d.indptr[r], d.indptr[r + 1]) << "row " << r;
    }
    if (c["labels"].is_null()) {
      for (bool h : d.has_label) EXPECT_FALSE(h);
    } else {
      for (bool h : d.has_label) EXPECT_TRUE(h);
      ExpectFloatsBitwise(d.labels, ReadNpy(dir + c["labels"]["npy"].get<std::string>()), "labels");
    }
    ++checked;
  }
  EXPECT_GE(checked, 17);
}

TEST(GoldenRecordIO, UidIsKept) {
  MLF_REQUIRE_SHARED_DATA();
  Decoded d = ReadAll(test::SharedData("recordio/dense_f32_with_uid_metadata.pbr"));
  ASSERT_EQ(d.error, "");
  ASSERT_EQ(d.uids.size(), 12u);
  EXPECT_EQ(d.uids[0], "row-0000");
  EXPECT_EQ(d.uids[11], "row-0011");
}

TEST(GoldenRecordIO, CorruptCasesFailWithNamedErrorAtNamedByte) {
  MLF_REQUIRE_SHARED_DATA();
  const std::string dir = test::SharedData("recordio") + "/";
  int checked = 0;
  const json manifest = Manifest();
  for (const json& c : manifest["cases"]) {
    if (c["kind"] != "corrupt") continue;
    const std::string file = c["file"];
    SCOPED_TRACE(file);
    const json& ex = c["expected"];
    const int64_t good = ex["valid_records_before_error"];
    const uint64_t at = ex["at_offset"];
    Decoded d = ReadAll(dir + file);
    EXPECT_EQ(d.records, good);
    const std::string prefix =
        fmt::format("{}: record {} at byte {}: {}", dir + file, good, at, ex["error"].get<std::string>());
    EXPECT_EQ(d.error.substr(0, prefix.size()), prefix) << d.error;
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

// The SDK wrote these files; our encoder must write the same bytes for the same rows.
TEST(GoldenRecordIO, ReencodingSdkFilesIsByteExact) {
  MLF_REQUIRE_SHARED_DATA();
  const std::string dir = test::SharedData("recordio") + "/";
  int checked = 0;
  const json manifest = Manifest();
  for (const json& c : manifest["cases"]) {
    if (c["kind"] != "valid") continue;
    const std::string file = c["file"];
    if (c["features"]["tensor"] != "float32_tensor") continue;
    if (!c["labels"].is_null() && c["labels"]["tensor"] != "float32_tensor") continue;
    if (c.contains("cflags") && c["cflags"].size() > 1) continue;  // dmlc multi-part framing
    SCOPED_TRACE(file);
    const std::string original = test::ReadFile(dir + file);
    RecordIOReader reader(original, file);
    std::string_view payload;
    DecodedRow row;
    std::string out;
    bool has_uid = false;
    while (reader.Next(&payload)) {
      DecodeRecord(payload, RecordContext{&file, reader.record_index(), reader.record_offset()}, &row);
      has_uid |= !row.uid.empty();
      ASSERT_EQ(row.rows, 1);
      const float* label = row.has_label ? row.labels.data() : nullptr;
      std::string p;
      if (row.sparse) {
        EncodeSparseRecord(row.indices.data(), row.values.data(), static_cast<int64_t>(row.values.size()),
                           row.cols, label, &p);
      } else {
        EncodeDenseRecord(row.values.data(), row.cols, label, &p);
      }
      AppendRecordIOFrame(p, &out);
    }
    if (has_uid) continue;  // our encoder does not write uids
    EXPECT_TRUE(out == original) << "re-encoded bytes differ (" << out.size() << " vs " << original.size()
                                 << ")";
    ++checked;
  }
  EXPECT_GE(checked, 10);  // dense_f32_labeled, sparse_f32_labeled, sdk_repo_*, mnist, ...
}

std::string Gunzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open " + path);
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  gzclose(f);
  return out;
}

TEST(GoldenRecordIO, MnistMatchesIdxFiles) {
  MLF_REQUIRE_SHARED_DATA();
  const std::string mnist = test::SharedData("mnist");
  const std::string labels_idx = Gunzip(mnist + "/t10k-labels-idx1-ubyte.gz");
  const std::string images_idx = Gunzip(mnist + "/t10k-images-idx3-ubyte.gz");
  ASSERT_GE(labels_idx.size(), 8u + 2000);
  ASSERT_GE(images_idx.size(), 16u + 2000 * 784);
  Decoded d = ReadAll(test::SharedData("recordio/mnist_t10k_first2000_f32_labeled.pbr"));
  ASSERT_EQ(d.error, "");
  ASSERT_EQ(d.rows, 2000);
  ASSERT_EQ(d.labels.size(), 2000u);
  int hist[10] = {0};
  for (int i = 0; i < 2000; ++i) {
    const int digit = static_cast<unsigned char>(labels_idx[8 + i]);
    ASSERT_EQ(d.labels[i], static_cast<float>(digit)) << "row " << i;
    ++hist[digit];
  }
  EXPECT_EQ(hist[0], 175);
  EXPECT_EQ(hist[9], 194);
  ASSERT_EQ(d.dense.size(), 2000u * 784);
  for (size_t i = 0; i < d.dense.size(); ++i) {
    const float want = static_cast<float>(static_cast<unsigned char>(images_idx[16 + i])) / 255.0f;
    ASSERT_EQ(Bits(d.dense[i]), Bits(want)) << "value " << i;
  }
}

}  // namespace
}  // namespace mlforge::io
