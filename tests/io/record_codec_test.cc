// Record payload decoding and SDK-exact encoding. Every decode goes through both the fast wire
// decoder and the reference decoder (generated classes), which must agree.
#include "io/record_codec.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/recordio.h"
#include "record.pb.h"

namespace mlforge::io {
namespace {

using aialgs::data::Record;

const std::string kFile = "t.pbr";

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

std::string Hex(const std::string& s) {
  std::string r;
  for (unsigned char c : s) r += fmt::format("{:02x} ", c);
  return r;
}

// Decodes with both decoders; returns the fast decoder's error ("" on success) after checking
// that the reference agrees (same rows, or an error; same message unless a parse error).
std::string Decode(const std::string& payload, DecodedRow* row) {
  const RecordContext ctx{&kFile, 3, 120};
  std::string fast_err, ref_err;
  DecodedRow ref;
  try {
    DecodeRecord(payload, ctx, row);
  } catch (const UserError& e) {
    fast_err = e.what();
  }
  try {
    DecodeRecordReference(payload, ctx, &ref);
  } catch (const UserError& e) {
    ref_err = e.what();
  }
  EXPECT_EQ(fast_err.empty(), ref_err.empty()) << "fast: " << fast_err << "\nref: " << ref_err << "\n"
                                               << Hex(payload);
  const bool parse_err = fast_err.find("protobuf parse error") != std::string::npos;
  EXPECT_EQ(parse_err, ref_err.find("protobuf parse error") != std::string::npos)
      << fast_err << " | " << ref_err;
  if (!parse_err) {
    EXPECT_EQ(fast_err, ref_err);
  }
  if (fast_err.empty() && ref_err.empty()) {
    EXPECT_EQ(row->sparse, ref.sparse);
    EXPECT_EQ(row->rows, ref.rows);
    EXPECT_EQ(row->cols, ref.cols);
    EXPECT_EQ(row->values.size(), ref.values.size());
    if (row->values.size() == ref.values.size()) {
      EXPECT_EQ(0, std::memcmp(row->values.data(), ref.values.data(), 4 * ref.values.size()));
    }
    EXPECT_EQ(row->indices, ref.indices);
    EXPECT_EQ(row->row_ptr, ref.row_ptr);
    EXPECT_EQ(row->has_label, ref.has_label);
    EXPECT_EQ(row->labels.size(), ref.labels.size());
    if (row->labels.size() == ref.labels.size()) {
      EXPECT_EQ(0, std::memcmp(row->labels.data(), ref.labels.data(), 4 * ref.labels.size()));
    }
    EXPECT_EQ(row->uid, ref.uid);
  }
  return fast_err;
}

std::string Ser(const Record& r) {
  std::string s;
  EXPECT_TRUE(r.SerializeToString(&s));
  return s;
}

aialgs::data::Float32Tensor* F32(Record* r, const std::string& key = "values", bool label = false) {
  auto& m = label ? *r->mutable_label() : *r->mutable_features();
  return m[key].mutable_float32_tensor();
}

// ---- encoding ----

TEST(RecordCodec, DenseEncodingMatchesSdkWorkedExample) {
  // SPEC.md 1.3: dense [1.0, 2.0], float32 label 0.0 -> 52 bytes with framing.
  const float x[2] = {1.0f, 2.0f};
  const float y = 0.0f;
  std::string payload;
  EncodeDenseRecord(x, 2, &y, &payload);
  std::string framed;
  AppendRecordIOFrame(payload, &framed);
  const unsigned char want[] = {0x0a, 0x23, 0xd7, 0xce, 0x2c, 0x00, 0x00, 0x00,  // magic, length 44
                                0x0a, 0x16, 0x0a, 0x06, 'v',  'a',  'l',  'u',  'e',  's',  // features entry
                                0x12, 0x0c, 0x12, 0x0a, 0x0a, 0x08,              // Value, tensor, values
                                0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40,  // 1.0f, 2.0f
                                0x12, 0x12, 0x0a, 0x06, 'v',  'a',  'l',  'u',  'e',  's',    // label entry
                                0x12, 0x08, 0x12, 0x06, 0x0a, 0x04, 0x00, 0x00, 0x00, 0x00};  // 0.0f
  ASSERT_EQ(framed.size(), 52u);
  EXPECT_EQ(Hex(framed), Hex(std::string(reinterpret_cast<const char*>(want), sizeof(want))));
}

TEST(RecordCodec, SparseEncodingMatchesSdkWorkedExample) {
  // SPEC.md 1.3: width 4, {1: 1.0, 3: 4.0}, label 1.0 -> payload 51 bytes + 1 pad byte.
  const uint32_t idx[2] = {1, 3};
  const float val[2] = {1.0f, 4.0f};
  const float y = 1.0f;
  std::string payload;
  EncodeSparseRecord(idx, val, 2, 4, &y, &payload);
  ASSERT_EQ(payload.size(), 51u);
  const std::string tensor("\x0a\x08\x00\x00\x80\x3f\x00\x00\x80\x40\x12\x02\x01\x03\x1a\x01\x04", 17);
  EXPECT_NE(payload.find(tensor), std::string::npos) << Hex(payload);
  std::string framed;
  AppendRecordIOFrame(payload, &framed);
  EXPECT_EQ(framed.size(), 8u + 52);
  // And the generated classes serialize the same Record to the same bytes.
  Record r;
  auto* t = F32(&r);
  t->add_values(1.0f);
  t->add_values(4.0f);
  t->add_keys(1);
  t->add_keys(3);
  t->add_shape(4);
  F32(&r, "values", true)->add_values(1.0f);
  EXPECT_EQ(Hex(payload), Hex(Ser(r)));
}

TEST(RecordCodec, EncodeDecodeRoundTrip) {
  DecodedRow row;
  std::string p;
  const float x[3] = {-1.5f, std::numeric_limits<float>::quiet_NaN(), 1e-45f};
  EncodeDenseRecord(x, 3, nullptr, &p);
  ASSERT_EQ(Decode(p, &row), "");
  EXPECT_FALSE(row.sparse);
  EXPECT_FALSE(row.has_label);
  ASSERT_EQ(row.cols, 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Bits(row.values[i]), Bits(x[i]));

  // Sparse with a large column index (multi-byte varint keys) and an empty sparse row.
  const uint32_t idx[2] = {0, 4000000000u};
  const float val[2] = {2.0f, -3.0f};
  const float y = 7.0f;
  p.clear();
  EncodeSparseRecord(idx, val, 2, 4000000001LL, &y, &p);
  ASSERT_EQ(Decode(p, &row), "");
  EXPECT_TRUE(row.sparse);
  EXPECT_EQ(row.cols, 4000000001LL);
  EXPECT_EQ(row.indices, (std::vector<uint32_t>{0, 4000000000u}));
  EXPECT_EQ(row.values, (std::vector<float>{2.0f, -3.0f}));
  EXPECT_EQ(row.labels, (std::vector<float>{7.0f}));

  p.clear();
  EncodeSparseRecord(nullptr, nullptr, 0, 10, &y, &p);
  ASSERT_EQ(Decode(p, &row), "");
  EXPECT_TRUE(row.sparse);
  EXPECT_EQ(row.rows, 1);
  EXPECT_EQ(row.cols, 10);
  EXPECT_TRUE(row.values.empty());
  EXPECT_TRUE(row.has_label);
}

// ---- decoding semantics ----

TEST(RecordCodec, Float64AndInt32AreConvertedWithRangeCheck) {
  DecodedRow row;
  Record r;
  auto* t = (*r.mutable_features())["values"].mutable_float64_tensor();
  for (double d : {0.1, -1e38, 3.4028235e38, std::nan(""), -HUGE_VAL, -0.0}) t->add_values(d);
  ASSERT_EQ(Decode(Ser(r), &row), "");
  ASSERT_EQ(row.cols, 6);
  EXPECT_EQ(row.values[0], 0.1f);
  EXPECT_EQ(row.values[2], FLT_MAX);  // rounds to FLT_MAX, not an overflow
  EXPECT_TRUE(std::isnan(row.values[3]));
  EXPECT_EQ(row.values[4], -INFINITY);
  EXPECT_TRUE(std::signbit(row.values[5]));

  t->add_values(1e39);
  EXPECT_NE(Decode(Ser(r), &row)
                .find("t.pbr: record 3 at byte 120: features[\"values\"] has the float64 value 1e+39"),
            std::string::npos);

  Record i;
  auto* it = (*i.mutable_features())["values"].mutable_int32_tensor();
  for (int v : {INT_MIN, -1, 0, 16777217, INT_MAX}) it->add_values(v);
  (*i.mutable_label())["values"].mutable_int32_tensor()->add_values(4);
  ASSERT_EQ(Decode(Ser(i), &row), "");
  EXPECT_EQ(row.values, (std::vector<float>{-2147483648.0f, -1.0f, 0.0f, 16777216.0f, 2147483648.0f}));
  EXPECT_EQ(row.labels, (std::vector<float>{4.0f}));
}

TEST(RecordCodec, MatrixShapesGiveSeveralRows) {
  DecodedRow row;
  Record r;
  auto* t = F32(&r);
  for (int v = 0; v < 6; ++v) t->add_values(static_cast<float>(v));
  t->add_shape(2);
  t->add_shape(3);
  auto* l = F32(&r, "values", true);
  l->add_values(10);
  l->add_values(11);
  ASSERT_EQ(Decode(Ser(r), &row), "");
  EXPECT_EQ(row.rows, 2);
  EXPECT_EQ(row.cols, 3);
  EXPECT_EQ(row.labels, (std::vector<float>{10, 11}));

  // Sparse [3, 4] with keys out of row order: grouped by row, record order kept within a row.
  Record s;
  auto* st = F32(&s);
  for (uint64_t k : {9, 1, 11, 0}) {
    st->add_keys(k);
    st->add_values(static_cast<float>(k) + 0.5f);
  }
  st->add_shape(3);
  st->add_shape(4);
  ASSERT_EQ(Decode(Ser(s), &row), "");
  EXPECT_TRUE(row.sparse);
  EXPECT_EQ(row.rows, 3);
  EXPECT_EQ(row.cols, 4);
  EXPECT_EQ(row.row_ptr, (std::vector<int64_t>{0, 2, 2, 4}));
  EXPECT_EQ(row.indices, (std::vector<uint32_t>{1, 0, 1, 3}));
  EXPECT_EQ(row.values, (std::vector<float>{1.5f, 0.5f, 9.5f, 11.5f}));

  st->add_keys(12);
  st->add_values(1);
  EXPECT_NE(Decode(Ser(s), &row).find("has key 12 (position 4) outside its shape [3, 4]"), std::string::npos);

  Record bad;
  auto* bt = F32(&bad);
  bt->add_values(1);
  bt->add_values(2);
  bt->add_shape(3);
  EXPECT_NE(Decode(Ser(bad), &row).find("is dense with 2 values but its shape is [3]"), std::string::npos);
  bt->add_shape(1);
  bt->add_shape(1);
  EXPECT_NE(Decode(Ser(bad), &row).find("with 3 dimensions"), std::string::npos);
}

TEST(RecordCodec, SparseErrors) {
  DecodedRow row;
  Record r;
  auto* t = F32(&r);
  t->add_values(1);
  t->add_keys(2);
  EXPECT_NE(Decode(Ser(r), &row).find("is sparse (has keys) but has no shape"), std::string::npos);
  t->add_shape(2);
  EXPECT_NE(Decode(Ser(r), &row).find("has key 2 (position 0) outside its shape [2]"), std::string::npos);
  t->add_keys(0);
  EXPECT_NE(Decode(Ser(r), &row).find("sparse with 2 keys but 1 values"), std::string::npos);
}

TEST(RecordCodec, MapKeysAndValueKinds) {
  DecodedRow row;
  // Several feature keys: an error listing them.
  Record two;
  F32(&two, "values")->add_values(1);
  F32(&two, "extra")->add_values(2);
  EXPECT_NE(Decode(Ser(two), &row).find("the features map has 2 keys (\"extra\", \"values\")"),
            std::string::npos);

  // One feature key with another name is fine.
  Record other;
  F32(&other, "pixels")->add_values(3);
  ASSERT_EQ(Decode(Ser(other), &row), "");
  EXPECT_EQ(row.values, (std::vector<float>{3}));

  // Labels: "values" preferred; otherwise the only key; several without "values" is an error.
  Record lab;
  F32(&lab)->add_values(1);
  F32(&lab, "values", true)->add_values(5);
  F32(&lab, "weight", true)->add_values(9);
  ASSERT_EQ(Decode(Ser(lab), &row), "");
  EXPECT_EQ(row.labels, (std::vector<float>{5}));
  lab.mutable_label()->erase("values");
  ASSERT_EQ(Decode(Ser(lab), &row), "");
  EXPECT_EQ(row.labels, (std::vector<float>{9}));
  F32(&lab, "other", true)->add_values(8);
  EXPECT_NE(
      Decode(Ser(lab), &row).find("the label map has 2 keys (\"other\", \"weight\") and none is \"values\""),
      std::string::npos);

  // Label count must match the rows.
  Record cnt;
  F32(&cnt)->add_values(1);
  F32(&cnt, "values", true);
  EXPECT_NE(Decode(Ser(cnt), &row).find("label[\"values\"] has 0 values; expected one per row (1 row(s)"),
            std::string::npos);

  // Bytes and empty Values are clear errors.
  Record bytes;
  (*bytes.mutable_features())["values"].mutable_bytes()->add_value("abc");
  EXPECT_NE(Decode(Ser(bytes), &row).find("features[\"values\"] holds Bytes"), std::string::npos);
  Record empty_value;
  (*empty_value.mutable_features())["values"];
  EXPECT_NE(Decode(Ser(empty_value), &row).find("features[\"values\"] holds no tensor"), std::string::npos);

  // Empty features map, empty tensor: one row of width 0.
  Record none;
  ASSERT_EQ(Decode(Ser(none), &row), "");
  EXPECT_EQ(row.rows, 1);
  EXPECT_EQ(row.cols, 0);
  Record zero;
  F32(&zero);
  ASSERT_EQ(Decode(Ser(zero), &row), "");
  EXPECT_EQ(row.rows, 1);
  EXPECT_EQ(row.cols, 0);
  EXPECT_FALSE(row.sparse);

  // uid kept, metadata and configuration ignored.
  Record u;
  F32(&u)->add_values(1);
  u.set_uid("row-7");
  u.set_metadata("{\"a\": 1}");
  u.set_configuration("{}");
  ASSERT_EQ(Decode(Ser(u), &row), "");
  EXPECT_EQ(row.uid, "row-7");
}

// ---- wire-format corners (hand-written bytes) ----

std::string Varint(uint64_t v) {
  std::string s;
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
  return s;
}
std::string Len(int field, const std::string& body) {
  return Varint(static_cast<uint64_t>(field) << 3 | 2) + Varint(body.size()) + body;
}
std::string F32Bytes(float f) { return std::string(reinterpret_cast<const char*>(&f), 4); }
std::string Entry(const std::string& key, const std::string& value) { return Len(1, key) + Len(2, value); }

TEST(RecordCodec, UnpackedFieldsUnknownFieldsAndEntryOrder) {
  DecodedRow row;
  // Unpacked float values (tag 13), unpacked keys (16) and shape (24), mixed with a packed run.
  std::string tensor = "\x0d" + F32Bytes(1.5f) + Len(1, F32Bytes(2.5f)) + "\x0d" + F32Bytes(3.5f);
  tensor += std::string("\x10\x00\x10\x02", 4) + Len(2, "\x04") + "\x18\x05";
  tensor += std::string("\x25", 1) + F32Bytes(9.0f);      // unknown field 4 (fixed32)
  tensor += "\x2b\x08\x01\x2c";                           // unknown group 5 holding a varint
  const std::string value = Len(2, tensor) + "\x50\x01";  // + unknown varint field 10
  // The entry writes its value before its key.
  const std::string payload = Len(1, Len(2, value) + Len(1, "values")) + "\x31" + std::string(8, '\x01');
  ASSERT_EQ(Decode(payload, &row), "");
  EXPECT_TRUE(row.sparse);
  EXPECT_EQ(row.cols, 5);
  EXPECT_EQ(row.indices, (std::vector<uint32_t>{0, 2, 4}));
  EXPECT_EQ(row.values, (std::vector<float>{1.5f, 2.5f, 3.5f}));
}

TEST(RecordCodec, ProtobufMergeRules) {
  DecodedRow row;
  const std::string t1 = Len(1, F32Bytes(1.0f));
  const std::string t2 = Len(1, F32Bytes(2.0f));
  // Two Value fields in one entry merge; two float32_tensor fields in one Value merge.
  ASSERT_EQ(Decode(Len(1, Len(1, "values") + Len(2, Len(2, t1)) + Len(2, Len(2, t2))), &row), "");
  EXPECT_EQ(row.values, (std::vector<float>{1.0f, 2.0f}));
  ASSERT_EQ(Decode(Len(1, Entry("values", Len(2, t1) + Len(2, t2))), &row), "");
  EXPECT_EQ(row.values, (std::vector<float>{1.0f, 2.0f}));
  // A different oneof member replaces the tensor.
  const std::string f64 = Len(1, std::string("\0\0\0\0\0\0\x08\x40", 8));  // 3.0
  ASSERT_EQ(Decode(Len(1, Entry("values", Len(2, t1) + Len(3, f64))), &row), "");
  EXPECT_EQ(row.values, (std::vector<float>{3.0f}));
  // A repeated map key: the last entry wins.
  ASSERT_EQ(Decode(Len(1, Entry("values", Len(2, t1))) + Len(1, Entry("values", Len(2, t2))), &row), "");
  EXPECT_EQ(row.values, (std::vector<float>{2.0f}));
  // The last of two key fields names the entry.
  ASSERT_EQ(Decode(Len(1, Len(1, "x") + Len(2, Len(2, t1)) + Len(1, "values")) +
                       Len(1, Entry("values", Len(2, t2))),
                   &row),
            "");
  EXPECT_EQ(row.values, (std::vector<float>{2.0f}));
}

TEST(RecordCodec, MalformedPayloadsAreParseErrors) {
  DecodedRow row;
  const std::string good = Len(1, Entry("values", Len(2, Len(1, F32Bytes(1.0f)))));
  const std::vector<std::string> bad = {
      std::string("\x0a", 1),                                               // truncated length
      std::string("\x0a\x05\x0a", 3),                                       // length past the end
      std::string("\x00", 1),                                               // tag 0
      std::string("\x0c", 1),                                               // end group without start
      std::string("\x0b\x08\x01", 3),                                       // group without end
      std::string("\x0b\x14", 2),                                           // mismatched end group
      std::string("\x0f", 1),                                               // wire type 7
      std::string("\x02\x00", 2),                                           // field number 0
      std::string("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12),  // 11-byte varint
      Len(1, Entry("values", Len(2, Len(1, "abc")))),                   // packed floats not a multiple of 4
      Len(1, Entry("values", Len(2, Len(2, "\x80")))),                  // truncated packed varint
      Len(1, Entry("values", Len(2, std::string("\x0d\x00\x00", 3)))),  // truncated fixed32
      good + "\x1a\x85\x80\x80\x80\x80\x00",                            // 6-byte length prefix
      std::string("\x80\x80\x80\x80\x10", 5),                           // 5-byte tag that truncates to 0
      std::string("\x80\x80\x80\x80\x80\x01", 6),                       // 6-byte tag
      "GARBAGE-NOT-A-RECORD",
  };
  for (const std::string& p : bad) {
    const std::string err = Decode(p, &row);
    EXPECT_NE(err.find("t.pbr: record 3 at byte 120: protobuf parse error"), std::string::npos)
        << Hex(p) << err;
  }
  // Accepted oddities: an over-long but valid varint and a 10-byte varint with high bits set.
  EXPECT_EQ(Decode(good + "\x40\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", &row), "");
  EXPECT_EQ(Decode(good + std::string("\x1a\x80\x00", 3), &row), "");  // uid "" with a 2-byte length
}

TEST(RecordCodec, RecursionLimitMatchesLibprotobuf) {
  DecodedRow row;
  for (int depth : {99, 100, 101, 102}) {
    std::string p;
    for (int i = 0; i < depth; ++i) p += "\x33";  // start group, field 6
    for (int i = 0; i < depth; ++i) p += "\x34";
    const std::string err = Decode(p, &row);
    EXPECT_EQ(err.empty(), depth <= 100) << depth << " " << err;
  }
  // Inside a tensor the budget is 3 smaller (entry, Value, tensor).
  for (int depth : {96, 97, 98}) {
    std::string g;
    for (int i = 0; i < depth; ++i) g += "\x33";
    for (int i = 0; i < depth; ++i) g += "\x34";
    const std::string err = Decode(Len(1, Entry("values", Len(2, g))), &row);
    EXPECT_EQ(err.empty(), depth <= 97) << depth << " " << err;
  }
}

// Random mutations of valid payloads: the fast decoder and libprotobuf must agree on every one.
// The SDK's dense layout has a fast path; every near miss (other field orders, extra fields,
// label counts, non-minimal lengths, empty or odd-sized values) must decode exactly as the
// generated parser does, values and errors alike.
TEST(RecordCodec, SdkDenseLayoutAndItsNearMissesAgreeWithGeneratedParser) {
  auto varint = [](uint64_t v) {
    std::string r;
    while (v >= 0x80) {
      r.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    r.push_back(static_cast<char>(v));
    return r;
  };
  auto field = [&](uint8_t tag, const std::string& body) {
    return std::string(1, static_cast<char>(tag)) + varint(body.size()) + body;
  };
  auto floats = [](std::initializer_list<float> v) {
    std::string r(v.size() * 4, '\0');
    std::memcpy(r.data(), std::data(v), r.size());
    return r;
  };
  // map entry {key "values", value {float32_tensor {values: packed}}} as Record field `tag`
  auto entry = [&](uint8_t tag, const std::string& packed) {
    return field(tag, field(0x0a, "values") + field(0x12, field(0x12, field(0x0a, packed))));
  };
  const std::string x = floats({1.5f, -2, 0, 3e38f, -0.0f});
  const std::string y = floats({1});
  DecodedRow row;

  EXPECT_EQ(Decode(entry(0x0a, x) + entry(0x12, y), &row), "");
  EXPECT_EQ(row.values, (std::vector<float>{1.5f, -2, 0, 3e38f, -0.0f}));
  EXPECT_EQ(row.labels, (std::vector<float>{1}));
  EXPECT_EQ(Decode(entry(0x0a, x), &row), "");
  EXPECT_FALSE(row.has_label);
  EXPECT_EQ(row.cols, 5);

  EXPECT_EQ(Decode(entry(0x12, y) + entry(0x0a, x), &row), "");  // label first
  EXPECT_EQ(row.values.size(), 5u);
  EXPECT_EQ(Decode(entry(0x0a, x) + entry(0x12, y) + field(0x1a, "uid-7"), &row), "");
  EXPECT_EQ(row.uid, "uid-7");
  EXPECT_EQ(Decode(entry(0x0a, x) + entry(0x0a, floats({4, 5})), &row), "");  // the last entry wins
  EXPECT_EQ(row.values, (std::vector<float>{4, 5}));
  EXPECT_EQ(Decode(entry(0x0a, x) + entry(0x12, y) + entry(0x12, floats({0})), &row), "");
  EXPECT_EQ(row.labels, (std::vector<float>{0}));
  EXPECT_EQ(Decode(entry(0x0a, ""), &row), "");  // no values: a dense row of width 0
  EXPECT_EQ(row.cols, 0);

  EXPECT_NE(Decode(entry(0x0a, x) + entry(0x12, floats({1, 0})), &row).find("expected one per row"),
            std::string::npos);
  EXPECT_NE(Decode(entry(0x0a, x.substr(0, 6)), &row).find("protobuf parse error"), std::string::npos);
  EXPECT_NE(Decode(entry(0x0a, x).substr(0, 20), &row).find("protobuf parse error"), std::string::npos);

  // A non-minimal length varint (0x94 0x00 for 20 bytes) is valid protobuf.
  const std::string tensor = std::string("\x0a\x94\x00", 3) + x;
  EXPECT_EQ(Decode(field(0x0a, field(0x0a, "values") + field(0x12, field(0x12, tensor))), &row), "");
  EXPECT_EQ(row.values.size(), 5u);
  // A 5-byte length with high bits set is an error for both.
  const std::string huge = std::string("\x0a\xff\xff\xff\xff\x0f", 6) + x;
  EXPECT_NE(Decode(field(0x0a, field(0x0a, "values") + field(0x12, field(0x12, huge))), &row)
                .find("protobuf parse error"),
            std::string::npos);
}

TEST(RecordCodec, MutatedPayloadsAgreeWithGeneratedParser) {
  std::vector<std::string> seeds;
  {
    const float x[4] = {1, -2, 3.5f, 0};
    const float y = 1;
    std::string p;
    EncodeDenseRecord(x, 4, &y, &p);
    seeds.push_back(p);
    p.clear();
    const uint32_t idx[2] = {1, 300};
    EncodeSparseRecord(idx, x, 2, 500, &y, &p);
    seeds.push_back(p);
    Record r;
    auto* t = (*r.mutable_features())["values"].mutable_int32_tensor();
    t->add_values(-5);
    t->add_values(70000);
    t->add_shape(2);
    t->add_shape(1);
    (*r.mutable_label())["values"].mutable_float64_tensor()->add_values(0.5);
    (*r.mutable_label())["values"].mutable_float64_tensor()->add_values(1.5);
    r.set_uid("u");
    seeds.push_back(Ser(r));
  }
  std::mt19937 rng(12345);
  DecodedRow row;
  int accepted = 0, rejected = 0;
  for (int iter = 0; iter < 30000; ++iter) {
    std::string p = seeds[iter % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const uint32_t op = rng() % 4;
      const size_t pos = p.empty() ? 0 : rng() % p.size();
      if (op == 0 && !p.empty()) {
        p[pos] = static_cast<char>(rng());
      } else if (op == 1 && !p.empty()) {
        p[pos] ^= static_cast<char>(1u << (rng() % 8));
      } else if (op == 2) {
        p.insert(pos, 1, static_cast<char>(rng()));
      } else if (!p.empty()) {
        p.erase(pos, 1 + rng() % 3);
      }
    }
    const std::string err = Decode(p, &row);
    if (::testing::Test::HasFailure()) FAIL() << "diverged on " << Hex(p);
    (err.empty() ? accepted : rejected)++;
  }
  // Both outcomes must be well represented, or the test is not exercising much.
  EXPECT_GT(accepted, 1000);
  EXPECT_GT(rejected, 1000);
}

}  // namespace
}  // namespace mlforge::io
