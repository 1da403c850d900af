// recordIO framing (SPEC.md 1.1): [magic][lrec][payload][pad to 4]. lrec = cflag << 29 | length.
// The reader accepts SDK-style single frames (cflag 0) and dmlc-style multi-part records
// (cflag 1, 2..., 3) joined with the magic re-inserted. The writer writes what the SageMaker SDK
// writes (cflag 0 only).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/no_init_allocator.h"
#include "io/input_file.h"

namespace mlforge::io {

// Byte buffers that are about to be read into: NoInitAllocator's resize() leaves new bytes
// uninitialised instead of zeroing them (a whole extra pass over every chunk otherwise).
using ByteBuffer = std::vector<char, NoInitAllocator<char>>;

constexpr uint32_t kRecordIOMagic = 0xCED7230Au;
constexpr uint32_t kRecordIOMaxLength = (1u << 29) - 1;

class RecordIOReader {
 public:
  static constexpr size_t kDefaultBufferBytes = size_t{1} << 20;

  // `in` is read sequentially in blocks of `buffer_bytes` (grown for larger records); its path
  // names the file in errors.
  explicit RecordIOReader(std::unique_ptr<InputFile> in, size_t buffer_bytes = kDefaultBufferBytes);
  // Reads from memory (an HTTP request body, a fuzzer input). `data` must outlive the reader;
  // `name` stands for the file name in errors. Single-frame payloads are views into `data`.
  RecordIOReader(std::string_view data, std::string name);
  ~RecordIOReader();
  RecordIOReader(const RecordIOReader&) = delete;
  RecordIOReader& operator=(const RecordIOReader&) = delete;

  // Reads the next logical record. Returns false at a clean end of file. The view stays valid
  // until the next call. On corrupt input throws UserError:
  //   "<file>: record <n> at byte <offset>: <what>"
  // <n> is the 0-based index of the record being read (= the number of good records before it);
  // <offset> is the file offset of the offending frame, in decimal (for "unterminated multi-part
  // record" and "record over 2^29 bytes": of the record's first frame). <what> starts with one of:
  // "bad magic", "truncated frame header", "truncated payload", "reserved flag",
  // "record over 2^29 bytes", "unterminated multi-part record", "unexpected continuation frame".
  // A missing zero padding after the last frame counts as a truncated payload (dmlc rejects it too).
  bool Next(std::string_view* payload);
  // Chunked mode (for the channel reader, file input only): bytes already returned stay in the
  // buffer, which grows instead of being compacted, so that single-frame payloads can be handed on
  // in place instead of copied. TakeBuffer() then moves every byte consumed since the previous call
  // (frames, payloads in place) into `*out`, byte 0 being the first byte after the previous take,
  // and goes on in `*out`'s former storage (its capacity is reused), which starts with the bytes
  // read ahead. payload_in_buffer() says where the last payload lives: its offset in the buffer
  // (valid until the next TakeBuffer(), even if the buffer grows) or, reading memory, in that
  // memory; -1 for a joined multi-part record (copy it; the view is valid until the next call as
  // always).
  void set_retain(bool retain) { retain_ = retain; }
  int64_t payload_in_buffer(std::string_view payload) const;
  void TakeBuffer(ByteBuffer* out);
  // Makes room for `bytes` more bytes past the current record at once (a chunk's worth), so that
  // the buffer does not grow by doubling, copying what it holds each time.
  void Reserve(size_t bytes);
  // Byte offset of the first frame of the record returned last, and its 0-based index.
  uint64_t record_offset() const { return record_offset_; }
  int64_t record_index() const { return record_index_; }
  const std::string& path() const { return name_; }
  uint64_t bytes_read() const { return pos_; }

 private:
  bool Fill(size_t need);  // ensures `need` bytes are buffered from pos_; false at EOF
  void Consume(size_t n) {
    buf_begin_ += n;
    pos_ += n;
  }
  [[noreturn]] void Fail(int64_t record, uint64_t offset, const std::string& what) const;
  std::unique_ptr<InputFile> in_;  // null when reading from memory
  std::string name_;
  ByteBuffer buf_;
  const char* base_ = nullptr;          // buf_.data(), or the caller's memory
  size_t buf_begin_ = 0, buf_end_ = 0;  // unread window of base_
  bool eof_ = false;
  uint64_t pos_ = 0;    // file offset of base_[buf_begin_]
  bool retain_ = false;
  size_t read_block_ = 0;  // largest single read in retain mode (the look-ahead left to copy)
  std::string joined_;     // multi-part records are assembled here
  uint64_t record_offset_ = 0;
  int64_t record_index_ = -1;
};

// Appends one frame (cflag 0) holding `payload` to `out`, padded to 4 bytes. UserError when the
// payload is 2^29 bytes or more.
void AppendRecordIOFrame(std::string_view payload, std::string* out);

}  // namespace mlforge::io
