#include "io/recordio.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace mlforge::io {
namespace {

// The format is little-endian on disk whatever the host is (SPEC.md 1.1).
uint32_t LoadLE32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} | uint32_t{u[1]} << 8 | uint32_t{u[2]} << 16 | uint32_t{u[3]} << 24;
}

void AppendLE32(uint32_t v, std::string* out) {
  const char b[4] = {static_cast<char>(v & 0xff), static_cast<char>((v >> 8) & 0xff),
                     static_cast<char>((v >> 16) & 0xff), static_cast<char>((v >> 24) & 0xff)};
  out->append(b, 4);
}

constexpr uint64_t Padded(uint64_t len) { return (len + 3) & ~uint64_t{3}; }

constexpr char kMagicBytes[4] = {0x0a, 0x23, static_cast<char>(0xd7), static_cast<char>(0xce)};

}  // namespace

RecordIOReader::RecordIOReader(std::unique_ptr<InputFile> in, size_t buffer_bytes) : in_(std::move(in)) {
  MLF_ASSERT(in_ != nullptr);
  name_ = in_->path();
  buf_.resize(std::max<size_t>(buffer_bytes, 64));
  base_ = buf_.data();
  read_block_ = buf_.size();
}

RecordIOReader::RecordIOReader(std::string_view data, std::string name)
    : name_(std::move(name)), base_(data.data()), buf_end_(data.size()), eof_(true) {}

RecordIOReader::~RecordIOReader() = default;

void RecordIOReader::Fail(int64_t record, uint64_t offset, const std::string& what) const {
  MLF_FAIL("{}: record {} at byte {}: {}", name_, record, offset, what);
}

bool RecordIOReader::Fill(size_t need) {
  if (buf_end_ - buf_begin_ >= need) return true;
  if (eof_ || in_ == nullptr) return false;
  if (!retain_ && buf_begin_ > 0) {
    // Move the unread tail to the front so that one large read refills the rest of the buffer.
    const size_t avail = buf_end_ - buf_begin_;
    if (avail > 0) std::memmove(buf_.data(), buf_.data() + buf_begin_, avail);
    buf_begin_ = 0;
    buf_end_ = avail;
  }
  // Retain mode keeps [0, buf_begin_) and grows; reads stop at read_block_ past what is needed, so
  // that little is read ahead of the chunk being filled.
  const size_t want = buf_begin_ + need;
  if (want > buf_.size()) {
    size_t grow = std::max(want, buf_.size() * 2);
    if (want <= buf_.capacity()) grow = std::min(grow, buf_.capacity());  // no reallocation
    buf_.resize(grow);
  }
  base_ = buf_.data();
  while (buf_end_ < want) {
    size_t room = buf_.size() - buf_end_;
    if (retain_) room = std::min(room, std::max(want - buf_end_, read_block_));
    const size_t got = in_->Read(buf_.data() + buf_end_, room);
    if (got == 0) {
      eof_ = true;
      return false;
    }
    buf_end_ += got;
  }
  return true;
}

int64_t RecordIOReader::payload_in_buffer(std::string_view payload) const {
  const size_t size = in_ ? buf_.size() : buf_end_;  // the buffer, or the memory being read
  if (payload.data() < base_ || payload.data() >= base_ + size) return -1;
  return payload.data() - base_;
}

void RecordIOReader::Reserve(size_t bytes) {
  if (in_ != nullptr && buf_.capacity() < buf_begin_ + bytes) buf_.reserve(buf_begin_ + bytes);
  base_ = buf_.data();
}

void RecordIOReader::TakeBuffer(ByteBuffer* out) {
  MLF_ASSERT(in_ != nullptr && retain_);
  const size_t ahead = buf_end_ - buf_begin_;
  ByteBuffer next = std::move(*out);
  next.resize(std::max(ahead, buf_.size()));  // no zeroing (NoInitAllocator); reuses next's capacity
  if (ahead > 0) std::memcpy(next.data(), buf_.data() + buf_begin_, ahead);
  buf_.resize(buf_begin_);  // shrinking keeps the capacity (and writes nothing)
  *out = std::move(buf_);
  buf_ = std::move(next);
  base_ = buf_.data();
  buf_begin_ = 0;
  buf_end_ = ahead;
}

bool RecordIOReader::Next(std::string_view* payload) {
  const int64_t n = record_index_ + 1;
  const uint64_t first = pos_;
  bool in_multi = false;
  int parts = 0;
  joined_.clear();
  for (;;) {
    const uint64_t frame = pos_;
    if (!Fill(8)) {
      const size_t avail = buf_end_ - buf_begin_;
      if (avail == 0 && !in_multi) return false;  // clean end of file
      if (avail == 0) {
        Fail(n, first,
             fmt::format("unterminated multi-part record: end of file after {} part(s) (flags 1, 2...) "
                         "without the end part (flag 3); the file is truncated",
                         parts));
      }
      Fail(n, frame,
           fmt::format("truncated frame header: only {} of 8 header bytes before end of file; the file "
                       "is truncated",
                       avail));
    }
    const char* hdr = base_ + buf_begin_;
    const uint32_t magic = LoadLE32(hdr);
    const uint32_t lrec = LoadLE32(hdr + 4);
    if (magic != kRecordIOMagic) {
      Fail(n, frame,
           fmt::format("bad magic 0x{:08x} (expected 0x{:08x}); the file is not recordIO-protobuf or is "
                       "corrupt here",
                       magic, kRecordIOMagic));
    }
    const uint32_t cflag = lrec >> 29;
    const uint32_t len = lrec & kRecordIOMaxLength;
    if (cflag > 3) {
      Fail(n, frame,
           fmt::format("reserved flag {} in length word 0x{:08x} (recordIO uses flags 0-3); the file is "
                       "corrupt",
                       cflag, lrec));
    }
    if (!in_multi && (cflag == 2 || cflag == 3)) {
      Fail(n, frame,
           fmt::format("unexpected continuation frame: flag {} without a preceding start frame (flag 1)",
                       cflag));
    }
    if (in_multi && (cflag == 0 || cflag == 1)) {
      Fail(n, first,
           fmt::format("unterminated multi-part record: a new record (flag {} at byte {}) starts before "
                       "the end part (flag 3)",
                       cflag, frame));
    }
    if (in_multi && joined_.size() + 4 + uint64_t{len} > kRecordIOMaxLength) {
      Fail(n, first,
           fmt::format("record over 2^29 bytes: its parts add up to {} bytes (the limit is {})",
                       joined_.size() + 4 + uint64_t{len}, kRecordIOMaxLength));
    }
    const uint64_t frame_bytes = 8 + Padded(len);
    // A regular file's size is known: a huge bogus length fails here instead of buffering the rest
    // of the file first.
    const int64_t file_size = in_ ? in_->size() : static_cast<int64_t>(pos_ + (buf_end_ - buf_begin_));
    bool truncated = false;
    uint64_t left = 0;
    if (file_size >= 0 && frame + frame_bytes > static_cast<uint64_t>(file_size)) {
      truncated = true;
      left = static_cast<uint64_t>(file_size) - (frame + 8);
    } else if (!Fill(frame_bytes)) {
      truncated = true;
      left = buf_end_ - buf_begin_ - 8;
    }
    if (truncated) {
      Fail(n, frame,
           fmt::format("truncated payload: the frame declares {} payload bytes plus {} padding but only {} "
                       "bytes follow its header; the file is truncated",
                       len, Padded(len) - len, left));
    }
    const char* data = base_ + buf_begin_ + 8;
    if (in_ == nullptr) {
      // Reading memory (a mapped file): the walk from header to header is a chain of dependent
      // loads, one cache miss per record. Prefetching the bytes this frame's length ahead turns it
      // into a stream (the decoders then find the payloads in cache too).
      constexpr size_t kAhead = 16 << 10;
      const size_t from = buf_begin_ + kAhead,
                   to = std::min(buf_end_, from + static_cast<size_t>(frame_bytes));
      for (size_t q = from; q < to; q += 64) __builtin_prefetch(base_ + q);
    }
    if (cflag == 0) {
      *payload = std::string_view(data, len);
      Consume(frame_bytes);
      record_offset_ = first;
      record_index_ = n;
      return true;
    }
    if (cflag == 1) {
      joined_.assign(data, len);
      in_multi = true;
    } else {
      // dmlc's writer dropped the magic word where it split the payload; put it back.
      joined_.append(kMagicBytes, 4);
      joined_.append(data, len);
    }
    ++parts;
    Consume(frame_bytes);
    if (cflag == 3) {
      *payload = joined_;
      record_offset_ = first;
      record_index_ = n;
      return true;
    }
  }
}

void AppendRecordIOFrame(std::string_view payload, std::string* out) {
  MLF_EXPECTS(payload.size() <= kRecordIOMaxLength,
              "cannot write a recordIO record of {} bytes: records must be under 2^29 bytes; write "
              "fewer columns per record",
              payload.size());
  const size_t pad = Padded(payload.size()) - payload.size();
  out->reserve(out->size() + 8 + payload.size() + pad);
  AppendLE32(kRecordIOMagic, out);
  AppendLE32(static_cast<uint32_t>(payload.size()), out);
  out->append(payload.data(), payload.size());
  out->append(pad, '\0');
}

}  // namespace mlforge::io
