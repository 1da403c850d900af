// recordIO framing: SDK single frames, dmlc multi-part records, buffering, and every framing error.
#include "io/recordio.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/input_file.h"
#include "tests/testutil.h"

namespace mlforge::io {
namespace {

const std::string kMagic("\x0a\x23\xd7\xce", 4);

void PutLE32(uint32_t v, std::string* out) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

using test::DmlcFrame;
using test::RecordIOFrame;

std::vector<std::string> ReadAllMem(const std::string& bytes) {
  RecordIOReader r(bytes, "mem");
  std::vector<std::string> out;
  std::string_view p;
  while (r.Next(&p)) out.emplace_back(p);
  return out;
}

std::vector<std::string> ReadAllFile(const std::string& path, size_t buffer) {
  RecordIOReader r(InputFile::Open(path), buffer);
  std::vector<std::string> out;
  std::string_view p;
  while (r.Next(&p)) out.emplace_back(p);
  return out;
}

// The UserError message of reading all of `bytes`, or "" when it reads cleanly.
std::string ErrorOf(const std::string& bytes, int64_t* good = nullptr) {
  RecordIOReader r(bytes, "f.pbr");
  std::string_view p;
  int64_t n = 0;
  try {
    while (r.Next(&p)) ++n;
  } catch (const UserError& e) {
    if (good) *good = n;
    return e.what();
  }
  if (good) *good = n;
  return "";
}

TEST(RecordIO, SingleFramesRoundTripWithPadding) {
  std::vector<std::string> payloads;
  std::string bytes;
  for (int len = 0; len < 11; ++len) {
    payloads.push_back(std::string(static_cast<size_t>(len), static_cast<char>('a' + len)));
    AppendRecordIOFrame(payloads.back(), &bytes);
  }
  // 11 frames: 8-byte headers plus payloads 0..10 padded to 4.
  size_t expected = 0;
  for (int len = 0; len < 11; ++len) expected += 8 + (len + 3) / 4 * 4;
  ASSERT_EQ(bytes.size(), expected);
  EXPECT_EQ(bytes.substr(0, 8), kMagic + std::string(4, '\0'));
  EXPECT_EQ(ReadAllMem(bytes), payloads);

  RecordIOReader r(bytes, "mem");
  std::string_view p;
  uint64_t offset = 0;
  for (int i = 0; i < 11; ++i) {
    ASSERT_TRUE(r.Next(&p));
    EXPECT_EQ(r.record_index(), i);
    EXPECT_EQ(r.record_offset(), offset);
    offset += 8 + (i + 3) / 4 * 4;
  }
  EXPECT_FALSE(r.Next(&p));
  EXPECT_EQ(r.bytes_read(), bytes.size());
}

TEST(RecordIO, EmptyInputHasNoRecords) {
  EXPECT_TRUE(ReadAllMem("").empty());
  test::TempDir dir;
  test::WriteFile(dir / "empty.pbr", "");
  EXPECT_TRUE(ReadAllFile(dir / "empty.pbr", RecordIOReader::kDefaultBufferBytes).empty());
}

TEST(RecordIO, DmlcMultiPartRecordsAreJoinedWithTheMagicReinserted) {
  // Payloads with the magic at aligned offsets: in the middle twice (3 parts: flags 1, 2, 3), at
  // the very start (empty first part), at the end (empty last part), back to back (empty middle
  // part); and one with the magic at an unaligned offset, which dmlc does not split.
  const std::vector<std::string> payloads = {
      "abcd" + kMagic + "efghijkl" + kMagic + "mn", kMagic + "xyz",      "1234" + kMagic,
      "12345678" + kMagic + kMagic + "9",           "x" + kMagic + "yz", std::string(),
  };
  const std::vector<std::vector<uint32_t>> want_flags = {{1, 2, 3}, {1, 3}, {1, 3}, {1, 2, 3}, {0}, {0}};
  std::string bytes;
  for (size_t i = 0; i < payloads.size(); ++i) {
    EXPECT_EQ(DmlcFrame(payloads[i], &bytes), want_flags[i]) << i;
  }
  EXPECT_EQ(ReadAllMem(bytes), payloads);

  // Same through a file with a tiny buffer, so frames straddle refills.
  test::TempDir dir;
  test::WriteFile(dir / "m.pbr", bytes);
  EXPECT_EQ(ReadAllFile(dir / "m.pbr", 16), payloads);

  // record_offset names the first frame of a multi-part record.
  RecordIOReader r(bytes, "mem");
  std::string_view p;
  ASSERT_TRUE(r.Next(&p));
  EXPECT_EQ(r.record_offset(), 0u);
  ASSERT_TRUE(r.Next(&p));
  EXPECT_EQ(r.record_offset(), 8u + 4 + 8u + 8 + 8u + 4);
}

TEST(RecordIO, SdkFramedPayloadContainingTheMagicIsNotSplit) {
  const std::string payload = "abcd" + kMagic + "efgh";
  std::string bytes;
  AppendRecordIOFrame(payload, &bytes);
  AppendRecordIOFrame("next", &bytes);
  EXPECT_EQ(ReadAllMem(bytes), (std::vector<std::string>{payload, "next"}));
}

TEST(RecordIO, LargeRecordsGrowTheBufferAndStayIntact) {
  std::mt19937 rng(7);
  std::vector<std::string> payloads;
  std::string bytes;
  for (size_t len : {size_t{3}, size_t{1} << 20, size_t{5}, (size_t{1} << 21) + 3, size_t{0}}) {
    std::string s(len, '\0');
    for (char& ch : s) ch = static_cast<char>(rng());
    payloads.push_back(s);
    AppendRecordIOFrame(s, &bytes);
  }
  test::TempDir dir;
  test::WriteFile(dir / "big.pbr", bytes);
  EXPECT_EQ(ReadAllFile(dir / "big.pbr", 64), payloads);
  EXPECT_EQ(ReadAllFile(dir / "big.pbr", RecordIOReader::kDefaultBufferBytes), payloads);
}

// Retain mode (the channel reader's): payloads stay in the buffer where read() put them and are
// handed over with it; multi-part records are joined apart. Checked with tiny and default
// buffers, hand-overs every few records, and Reserve() calls that move the buffer in between.
TEST(RecordIO, RetainModeHandsOverFramesWithPayloadsInPlace) {
  std::mt19937 rng(11);
  std::vector<std::string> payloads;
  std::string bytes;
  for (int i = 0; i < 60; ++i) {
    std::string s(static_cast<size_t>(i % 7 == 0 ? 3000 + rng() % 5000 : rng() % 90), '\0');
    for (char& ch : s) ch = static_cast<char>(rng());
    if (i % 5 == 2 && s.size() >= 12) s.replace(4, 4, kMagic);  // aligned: dmlc splits it
    payloads.push_back(s);
    if (i % 2) {
      DmlcFrame(s, &bytes);
    } else {
      AppendRecordIOFrame(s, &bytes);
    }
  }
  test::TempDir dir;
  test::WriteFile(dir / "r.pbr", bytes);
  for (size_t buffer : {size_t{16}, RecordIOReader::kDefaultBufferBytes}) {
    RecordIOReader r(InputFile::Open(dir / "r.pbr"), buffer);
    r.set_retain(true);
    ByteBuffer taken;
    std::vector<std::pair<int64_t, std::string>> held;  // (offset in the buffer, or -1 and a copy)
    std::vector<std::string> got;
    int joined = 0;
    auto take = [&] {
      r.TakeBuffer(&taken);
      for (auto& [at, copy] : held) {
        got.push_back(at >= 0 ? std::string(taken.data() + at, copy.size()) : copy);
      }
      held.clear();
    };
    std::string_view p;
    int n = 0;
    while (r.Next(&p)) {
      const int64_t at = r.payload_in_buffer(p);
      joined += at < 0;
      held.emplace_back(at, std::string(p));  // the copy is only used for joined records and sizes
      if (++n % 4 == 0) r.Reserve(static_cast<size_t>(rng() % 20000));
      if (n % 3 == 0) take();
    }
    take();
    EXPECT_EQ(got, payloads) << "buffer " << buffer;
    EXPECT_GT(joined, 3);  // multi-part records were exercised
    EXPECT_EQ(r.bytes_read(), bytes.size());
  }
}

TEST(RecordIO, ErrorsNameFileRecordAndByte) {
  std::string good;
  AppendRecordIOFrame("abcd", &good);  // 12 bytes
  AppendRecordIOFrame("ef", &good);    // 12 bytes

  int64_t n = -1;
  // Bad magic in the third frame.
  std::string bad = good + "XXXX" + std::string(4, '\0');
  EXPECT_EQ(
      ErrorOf(bad, &n).rfind("f.pbr: record 2 at byte 24: bad magic 0x58585858 (expected 0xced7230a)", 0), 0u)
      << ErrorOf(bad);
  EXPECT_EQ(n, 2);

  // 1..7 bytes of a header.
  for (size_t k = 1; k < 8; ++k) {
    std::string t = good;
    AppendRecordIOFrame("zz", &t);
    t.resize(good.size() + k);
    EXPECT_EQ(ErrorOf(t, &n).rfind("f.pbr: record 2 at byte 24: truncated frame header", 0), 0u) << k;
    EXPECT_EQ(n, 2);
  }

  // Payload or padding cut short.
  for (size_t cut : {size_t{1}, size_t{2}, size_t{3}, size_t{6}}) {
    std::string t = good;
    AppendRecordIOFrame("12345", &t);  // 8 + 5 + 3 pad
    t.resize(t.size() - cut);
    EXPECT_EQ(ErrorOf(t, &n).rfind("f.pbr: record 2 at byte 24: truncated payload", 0), 0u)
        << cut << ErrorOf(t);
  }
}

TEST(RecordIO, HugeAndReservedLengthWords) {
  std::string t;
  AppendRecordIOFrame("ok", &t);  // 12 bytes
  std::string huge = t + kMagic;
  PutLE32(0x1FFFFFFFu, &huge);  // flag 0, 512 MiB - 1: cannot be there
  huge += "tiny";
  EXPECT_EQ(
      ErrorOf(huge).rfind("f.pbr: record 1 at byte 12: truncated payload: the frame declares 536870911", 0),
      0u)
      << ErrorOf(huge);
  // The same through a regular file fails without reading 512 MiB.
  test::TempDir dir;
  test::WriteFile(dir / "huge.pbr", huge);
  try {
    ReadAllFile(dir / "huge.pbr", 64);
    ADD_FAILURE() << "expected an error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("record 1 at byte 12: truncated payload"), std::string::npos)
        << e.what();
  }

  for (uint32_t flag = 4; flag < 8; ++flag) {
    std::string r = t + kMagic;
    PutLE32(flag << 29 | 4, &r);
    r += "abcd";
    EXPECT_EQ(ErrorOf(r).rfind("f.pbr: record 1 at byte 12: reserved flag " + std::to_string(flag), 0), 0u)
        << ErrorOf(r);
  }
  std::string all_ones = t + kMagic;
  PutLE32(0xFFFFFFFFu, &all_ones);
  EXPECT_EQ(
      ErrorOf(all_ones).rfind("f.pbr: record 1 at byte 12: reserved flag 7 in length word 0xffffffff", 0), 0u)
      << ErrorOf(all_ones);
}

TEST(RecordIO, MalformedMultiPartSequences) {
  std::string t;
  RecordIOFrame(0, "ok", &t);  // 12 bytes
  int64_t n = -1;

  std::string cont = t;
  RecordIOFrame(2, "mid", &cont);
  EXPECT_EQ(ErrorOf(cont, &n).rfind("f.pbr: record 1 at byte 12: unexpected continuation frame", 0), 0u);
  EXPECT_EQ(n, 1);
  std::string end = t;
  RecordIOFrame(3, "end", &end);
  EXPECT_EQ(ErrorOf(end).rfind("f.pbr: record 1 at byte 12: unexpected continuation frame", 0), 0u);

  std::string unterminated = t;
  RecordIOFrame(1, "abcd", &unterminated);
  RecordIOFrame(2, "efgh", &unterminated);
  EXPECT_EQ(ErrorOf(unterminated, &n).rfind("f.pbr: record 1 at byte 12: unterminated multi-part record", 0),
            0u)
      << ErrorOf(unterminated);
  EXPECT_EQ(n, 1);

  std::string restarted = t;
  RecordIOFrame(1, "abcd", &restarted);
  RecordIOFrame(0, "efgh", &restarted);
  EXPECT_EQ(ErrorOf(restarted).rfind("f.pbr: record 1 at byte 12: unterminated multi-part record", 0), 0u);

  // A part whose length would take the joined record past 2^29 - 1 bytes (only the header is
  // there: the check comes before any attempt to read the part).
  std::string over = t;
  RecordIOFrame(1, "abcd", &over);
  over += kMagic;
  PutLE32(3u << 29 | kRecordIOMaxLength, &over);
  EXPECT_EQ(ErrorOf(over).rfind("f.pbr: record 1 at byte 12: record over 2^29 bytes", 0), 0u)
      << ErrorOf(over);

  // A bad magic inside a multi-part record names that frame's offset.
  std::string badpart = t;
  RecordIOFrame(1, "abcd", &badpart);
  badpart += "ZZZZ" + std::string(4, '\0');
  EXPECT_EQ(ErrorOf(badpart).rfind("f.pbr: record 1 at byte 24: bad magic", 0), 0u) << ErrorOf(badpart);
}

TEST(RecordIO, WriterRejectsOversizedPayloadWithoutAllocatingIt) {
  // A view that claims 2^29 bytes: the size check must come before any copy.
  const std::string_view fake(nullptr, size_t{1} << 29);
  std::string out;
  EXPECT_THROW(AppendRecordIOFrame(fake, &out), UserError);
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace mlforge::io
