#include "io/batch_stream.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "core/error.h"
#include "io/batch_builder.h"
#include "io/csv.h"
#include "io/decoded_row.h"
#include "io/input_file.h"
#include "io/libsvm.h"
#include "io/record_codec.h"
#include "io/recordio.h"

namespace mlforge::io {
namespace {

// How often blocked waits re-check the user's stop token.
constexpr auto kStopPoll = std::chrono::milliseconds(50);
// Read block for CSV files; big enough that read(2) overhead vanishes, small enough to be cheap
// per reader.
constexpr size_t kCsvBlock = size_t{1} << 20;

// A regular file mapped read-only, whole: recordIO chunks then hold views into it and nothing is
// copied before decoding (read(2) would copy every byte out of the page cache first, a third of
// the streaming time). Chunks give their pages back when done (MADV_DONTNEED drops them from
// this process; the page cache keeps the data), so the resident set stays about the chunks in
// flight however large the file is.
class MappedFile {
 public:
  // nullptr when the file cannot or should not be mapped (FIFO, empty file, mmap failure): the
  // caller then reads it with read(2).
  static std::shared_ptr<MappedFile> Map(const InputFile& in) {
    if (in.is_fifo() || in.size() <= 0) return nullptr;
    const size_t n = static_cast<size_t>(in.size());
    void* p = ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE, in.fd(), 0);
    if (p == MAP_FAILED) return nullptr;
    ::madvise(p, n, MADV_SEQUENTIAL);
    return std::shared_ptr<MappedFile>(new MappedFile(static_cast<const char*>(p), n));
  }
  ~MappedFile() { ::munmap(const_cast<char*>(base_), size_); }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view bytes() const { return std::string_view(base_, size_); }
  // Maps the pages of the next stretch in one call once the reader gets within reach of them
  // (MADV_POPULATE_READ, Linux 5.14+), instead of a page fault every 64 KB in the decoders.
  void PopulateAhead(uint64_t pos) {
    constexpr uint64_t kStep = 2 << 20;
    if (!populate_ok_ || pos + kStep < populated_) return;
    const uint64_t from = populated_, to = std::min<uint64_t>(populated_ + 2 * kStep, size_);
    if (to <= from) return;
#ifdef MADV_POPULATE_READ
    if (::madvise(const_cast<char*>(base_) + from, to - from, MADV_POPULATE_READ) != 0) populate_ok_ = false;
#else
    populate_ok_ = false;
#endif
    populated_ = to;
  }
  // Drops the pages holding [from, to) from the resident set, widened by kFaultAround on each
  // side: a page fault maps up to 64 KB of neighbouring cached pages too (fault-around), so a
  // neighbouring chunk's faults map some of this range back in after it was released (and this
  // one's map some of theirs); without the margin those pages would stay resident, 64 KB per chunk
  // for the whole file. A neighbour still decoding just faults its pages back in.
  void Release(uint64_t from, uint64_t to) const {
    static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    constexpr uint64_t kFaultAround = 128 << 10;
    from = from > kFaultAround ? from - kFaultAround : 0;
    to += kFaultAround;
    from = from / page * page;
    to = std::min<uint64_t>((to + page - 1) / page * page, size_);
    if (to > from) ::madvise(const_cast<char*>(base_) + from, to - from, MADV_DONTNEED);
  }

 private:
  MappedFile(const char* base, size_t size) : base_(base), size_(size) {}
  const char* base_;
  size_t size_;
  uint64_t populated_ = 0;  // reader thread only
  bool populate_ok_ = true;
};

// Counts chunk objects alive, so tests can check the memory bound from outside.
class LiveCounter {
 public:
  LiveCounter(std::atomic<int64_t>* live, std::atomic<int64_t>* peak) : live_(live) {
    int64_t now = live_->fetch_add(1) + 1;
    int64_t seen = peak->load();
    while (now > seen && !peak->compare_exchange_weak(seen, now)) {
    }
  }
  ~LiveCounter() { live_->fetch_sub(1); }
  LiveCounter(const LiveCounter&) = delete;
  LiveCounter& operator=(const LiveCounter&) = delete;

 private:
  std::atomic<int64_t>* live_;
};

// The buffers of a raw chunk (see RawChunk for what they hold), apart so that they can outlive it
// in the pool.
struct RawStorage {
  std::string data;
  ByteBuffer frames;
  std::string side;
  std::vector<uint64_t> starts;
  std::vector<uint64_t> offsets;  // recordIO: file offset of each record
  std::vector<uint32_t> lens;     // recordIO: payload bytes of each record
  void Clear() {  // keeps the capacity
    data.clear();
    frames.clear();
    side.clear();
    starts.clear();
    offsets.clear();
    lens.clear();
  }
};

// Buffers of finished chunks, handed to the next ones with their capacity: in steady state the
// pipeline allocates nothing, so no page faults and no growth copies (a fresh 1-100 MB buffer per
// chunk used to cost about a sixth of the streaming time). Holds at most `limit` of each kind.
class StoragePool {
 public:
  explicit StoragePool(size_t limit) : limit_(limit) {}
  RawStorage TakeRaw() { return Take(&raws_); }
  HostBatch TakeBatch() { return Take(&batches_); }
  void Give(RawStorage&& r) {
    r.Clear();
    if (r.data.capacity() + r.frames.capacity() > 0) Put(std::move(r), &raws_);
  }
  void Give(HostBatch&& b) {
    b.Clear();
    if (b.values.capacity() + b.labels.capacity() > 0) Put(std::move(b), &batches_);
  }

 private:
  template <typename T>
  T Take(std::vector<T>* v) {
    std::lock_guard<std::mutex> lk(mu_);
    if (v->empty()) return T{};
    T t = std::move(v->back());
    v->pop_back();
    return t;
  }
  template <typename T>
  void Put(T&& t, std::vector<T>* v) {
    std::lock_guard<std::mutex> lk(mu_);
    if (v->size() < limit_) v->push_back(std::move(t));
  }
  std::mutex mu_;
  size_t limit_;
  std::vector<RawStorage> raws_;
  std::vector<HostBatch> batches_;
};

// Undecoded records of one file, cut by the reader thread.
struct RawChunk : RawStorage {
  RawChunk(std::atomic<int64_t>* live, std::atomic<int64_t>* peak, StoragePool* pool)
      : RawStorage(pool->TakeRaw()), pool(pool), counter(live, peak) {}
  ~RawChunk() {
    ReleaseMapped();
    pool->Give(std::move(static_cast<RawStorage&>(*this)));
  }
  RawChunk(const RawChunk&) = delete;
  RawChunk& operator=(const RawChunk&) = delete;
  StoragePool* pool;
  int64_t seq = 0;   // position among the chunks this rank keeps, in epoch order
  bool end = false;  // marks the end of the epoch's input
  int file = 0;      // index into Impl::files_
  DataFormat format = DataFormat::kCsv;
  // CSV and libsvm: the lines without '\n' in `data`, line i at [starts[i], starts[i + 1]) (a
  // final sentinel).
  // recordIO: record i's payload is lens[i] bytes at offset starts[i] of the mapped file
  // (`mapped`), or else of `frames`, the bytes read(2) put there, frames and all (in place, no
  // copy either way); a joined multi-part record lives in `side` instead, its start marked with
  // kInSide. offsets[i] is the file offset of its first frame.
  std::shared_ptr<const MappedFile> mapped;
  int64_t first_record = 0;   // CSV/libsvm: 1-based line number; recordIO: 0-based record index
  uint64_t first_offset = 0;  // CSV/libsvm: file offset of the first line
  std::exception_ptr error;   // an I/O or framing error right after these records
  static constexpr uint64_t kInSide = uint64_t{1} << 63;
  // In-memory source (ChannelSource::memory): rows [first_record, first_record + memory_rows).
  int64_t memory_rows = -1;
  int64_t records() const {
    if (memory_rows >= 0) return memory_rows;
    if (format == DataFormat::kRecordIO) return static_cast<int64_t>(lens.size());
    return starts.empty() ? 0 : static_cast<int64_t>(starts.size()) - 1;
  }
  std::string_view payload(int64_t i) const {
    const uint64_t s = starts[static_cast<size_t>(i)];
    const size_t n = lens[static_cast<size_t>(i)];
    if (s & kInSide) return std::string_view(side.data() + (s & ~kInSide), n);
    if (mapped) return mapped->bytes().substr(s, n);
    return std::string_view(frames.data() + s, n);
  }
  // Gives the mapped pages of these records back (see MappedFile).
  void ReleaseMapped() {
    if (mapped && !lens.empty()) {
      const size_t last = lens.size() - 1;
      const uint64_t end = (starts[last] & kInSide) ? offsets[last] : starts[last] + lens[last];
      mapped->Release(offsets.front(), std::max<uint64_t>(end, offsets[last]));
    }
    mapped.reset();
  }
  void ResetRecords() {
    ReleaseMapped();
    Clear();
    if (memory_rows >= 0) memory_rows = 0;
  }
  LiveCounter counter;
};

// A decoded chunk: rows in a HostBatch (any row count), plus what the consumer must check.
struct Decoded {
  Decoded(std::atomic<int64_t>* live, std::atomic<int64_t>* peak, StoragePool* pool)
      : pool(pool), batch(pool->TakeBatch()), counter(live, peak) {}
  ~Decoded() { pool->Give(std::move(batch)); }
  Decoded(const Decoded&) = delete;
  Decoded& operator=(const Decoded&) = delete;
  StoragePool* pool;
  int64_t seq = 0;
  bool end = false;
  HostBatch batch;
  int64_t cols = -1;     // width of the first row; -1 when no record decoded
  bool labeled = false;  // whether the first row had a label
  std::string where;     // "<file>: line <n> at byte <o>" of the first record (for errors)
  int64_t records = 0;   // records decoded (libsvm: lines that hold a row)
  std::exception_ptr error;  // thrown after the rows above have been handed out
  int64_t base_ordinal = 0;  // set by the consumer
  LiveCounter counter;
};

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform in [0, n) without modulo bias worth mentioning, and the same on every platform
// (std::uniform_int_distribution is implementation-defined, which would break determinism).
uint64_t Bounded(std::mt19937_64& rng, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(rng()) * n) >> 64);
}

void DenseToCsr(HostBatch* b) {
  std::vector<float> dense = std::move(b->values);
  b->values.clear();
  b->indices.clear();
  b->indptr.assign(1, 0);
  b->values.reserve(dense.size());
  b->indices.reserve(dense.size());
  for (int64_t r = 0; r < b->rows; ++r) {
    for (int64_t j = 0; j < b->cols; ++j) {
      b->indices.push_back(static_cast<uint32_t>(j));
      b->values.push_back(dense[static_cast<size_t>(r * b->cols + j)]);
    }
    b->indptr.push_back(static_cast<int64_t>(b->values.size()));
  }
  b->layout = Layout::kCsr;
}

// Appends rows [r0, r1) of `s` to `d` (same cols). An empty `d` takes the layout of `s`; dense
// and CSR sources mix the way BatchBuilder mixes them (a CSR row turns the batch into CSR).
void AppendRows(const HostBatch& s, int64_t r0, int64_t r1, HostBatch* d) {
  if (r1 <= r0) return;
  if (d->rows == 0) {
    d->layout = s.layout;
    if (s.layout == Layout::kCsr && d->indptr.empty()) d->indptr.assign(1, 0);
  }
  if (d->layout == Layout::kDense && s.layout == Layout::kCsr) DenseToCsr(d);
  const int64_t cols = s.cols;
  if (d->layout == Layout::kDense) {
    d->values.insert(d->values.end(), s.values.begin() + r0 * cols, s.values.begin() + r1 * cols);
  } else if (s.layout == Layout::kCsr) {
    const int64_t from = s.indptr[r0], to = s.indptr[r1];
    const int64_t base = static_cast<int64_t>(d->values.size()) - from;
    d->values.insert(d->values.end(), s.values.begin() + from, s.values.begin() + to);
    d->indices.insert(d->indices.end(), s.indices.begin() + from, s.indices.begin() + to);
    for (int64_t r = r0 + 1; r <= r1; ++r) d->indptr.push_back(base + s.indptr[r]);
  } else {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t j = 0; j < cols; ++j) {
        d->indices.push_back(static_cast<uint32_t>(j));
        d->values.push_back(s.values[static_cast<size_t>(r * cols + j)]);
      }
      d->indptr.push_back(static_cast<int64_t>(d->values.size()));
    }
  }
  if (s.has_labels()) d->labels.insert(d->labels.end(), s.labels.begin() + r0, s.labels.begin() + r1);
  if (!s.weights.empty()) d->weights.insert(d->weights.end(), s.weights.begin() + r0, s.weights.begin() + r1);
  d->rows += r1 - r0;
}

}  // namespace

struct BatchStream::Impl {
  Impl(ChannelSource s, StreamOptions o) : src(std::move(s)), opt(o) {}

  // Declared first: chunks (destroyed with the members below) give their buffers back to it.
  std::unique_ptr<StoragePool> pool;
  ChannelSource src;
  StreamOptions opt;
  int label_size = 1;
  int threads = 1;
  int64_t capacity = 1;  // chunks allowed between the reader and the consumer
  size_t chunk_bytes_limit = 1;

  // ---- per-epoch pipeline (guarded by mu) ----
  std::vector<std::string> files;
  std::vector<DataFormat> formats;
  std::mutex mu;
  std::condition_variable cv_slots, cv_work, cv_done;
  std::deque<std::unique_ptr<RawChunk>> raw_queue;
  std::map<int64_t, std::unique_ptr<Decoded>> done;
  int64_t slots_used = 0;
  int busy_workers = 0;
  bool reader_exited = false;
  std::atomic<bool> cancel{false};
  std::thread reader;
  std::vector<std::thread> workers;
  std::atomic<int64_t> live{0}, peak{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<int64_t> files_opened{0};

  // ---- consumer state (Next() thread only) ----
  bool started = false;
  int epoch = 0;
  int64_t next_seq = 0;
  bool input_done = false;
  std::exception_ptr deferred;  // the error that ends the epoch, thrown once rows run out
  std::deque<std::shared_ptr<Decoded>> pending;
  int64_t front_row = 0;     // first unconsumed row of pending.front()
  int64_t pending_rows = 0;  // unconsumed rows in pending
  int64_t pulled_rows = 0;
  int64_t emitted_rows = 0;
  std::vector<std::pair<const Decoded*, int64_t>> window;  // shuffled (chunk, row) refs
  std::vector<std::shared_ptr<Decoded>> window_keep;
  size_t window_pos = 0;
  std::mt19937_64 rng;
  int64_t cols = -1;        // fixed by expected_cols or the first row; kept across epochs
  int labeled_state = -1;   // -1 unknown, 0 unlabeled, 1 labeled; kept across epochs
  std::string first_where;  // where the first row came from (for width/label errors)
  int64_t libsvm_cols = -1;  // width of libsvm rows: expected_cols, or scanned at the first Start
  mutable StreamStats stats;

  // ---------------- pipeline control ----------------
  void StopPipeline() {
    {
      std::lock_guard<std::mutex> lk(mu);
      cancel = true;
    }
    cv_slots.notify_all();
    cv_work.notify_all();
    cv_done.notify_all();
    if (reader.joinable()) reader.join();
    for (auto& w : workers) {
      if (w.joinable()) w.join();
    }
    workers.clear();
    raw_queue.clear();
    done.clear();
    slots_used = 0;
    busy_workers = 0;
    reader_exited = false;
    cancel = false;
  }

  void Cancel() {
    {
      std::lock_guard<std::mutex> lk(mu);
      cancel = true;
    }
    cv_slots.notify_all();
    cv_work.notify_all();
  }

  // ---------------- reader thread ----------------
  // Blocks until a chunk slot is free; nullptr when cancelled.
  std::unique_ptr<RawChunk> NewChunk() {
    std::unique_lock<std::mutex> lk(mu);
    cv_slots.wait(lk, [&] { return cancel.load() || slots_used < capacity; });
    if (cancel) return nullptr;
    ++slots_used;
    return std::make_unique<RawChunk>(&live, &peak, pool.get());
  }

  void Push(std::unique_ptr<RawChunk> c) {
    {
      std::lock_guard<std::mutex> lk(mu);
      raw_queue.push_back(std::move(c));
    }
    cv_work.notify_one();
  }

  struct ReaderState {
    std::unique_ptr<RawChunk> cur;  // the chunk being filled (holds a slot)
    int64_t chunk_index = 0;        // over all chunks of the epoch, for sharding
    int64_t seq = 0;                // over the kept chunks
  };

  // Ensures rs.cur exists; false when cancelled.
  bool EnsureChunk(ReaderState& rs) {
    if (!rs.cur) rs.cur = NewChunk();
    return rs.cur != nullptr;
  }

  // Hands the full (or file-final) chunk to the workers, or drops its records when it belongs to
  // another shard (the slot is then reused for the next chunk).
  void Submit(ReaderState& rs) {
    if (!rs.cur || rs.cur->records() == 0) return;
    const bool mine = rs.chunk_index % opt.num_shards == opt.shard_index;
    ++rs.chunk_index;
    if (!mine) {
      rs.cur->ResetRecords();
      return;
    }
    rs.cur->seq = rs.seq++;
    Push(std::move(rs.cur));
  }

  // CSV and libsvm: chunks of whole lines.
  void ReadCsv(InputFile& in, int file, ReaderState& rs) {
    std::vector<char> block(kCsvBlock);
    int64_t line_no = 1;
    uint64_t block_base = 0;
    bool in_line = false;
    try {
      ReadCsvBlocks(in, file, rs, block, line_no, block_base, in_line);
    } catch (...) {
      // A read error mid-line must not turn the line's first half into a row: drop it, keep the
      // complete lines before it (sentinel-terminated, as ReaderLoop expects).
      if (rs.cur) {
        if (in_line) {
          rs.cur->data.resize(rs.cur->starts.back());
          rs.cur->starts.pop_back();
        }
        if (!rs.cur->starts.empty()) rs.cur->starts.push_back(rs.cur->data.size());
      }
      throw;
    }
    // A last line without '\n' is a line like any other.
    if (rs.cur && !rs.cur->starts.empty()) {
      rs.cur->starts.push_back(rs.cur->data.size());
      Submit(rs);
    }
  }

  void ReadCsvBlocks(InputFile& in, int file, ReaderState& rs, std::vector<char>& block, int64_t& line_no,
                     uint64_t& block_base, bool& in_line) {
    const DataFormat format = formats[static_cast<size_t>(file)];
    // Only libsvm lines are capped: CSV keeps its historical behaviour.
    const size_t max_line = format == DataFormat::kLibsvm
                                ? static_cast<size_t>(std::max<int64_t>(opt.max_line_bytes, 1))
                                : std::numeric_limits<size_t>::max();
    uint64_t line_start = 0;  // file offset of the current line
    auto check_length = [&](size_t extra) {
      if (rs.cur->data.size() - rs.cur->starts.back() + extra > max_line) {
        MLF_FAIL(
            "{}: line {} at byte {}: the line is longer than {} bytes; libsvm data has one row per line "
            "(is this a binary file, or a file without line breaks?)",
            files[static_cast<size_t>(file)], line_no, line_start, max_line);
      }
    };
    for (;;) {
      const size_t n = in.Read(block.data(), block.size());
      if (n == 0) break;
      bytes += n;
      const char* p = block.data();
      const char* e = p + n;
      while (p < e) {
        if (!in_line) {
          if (!EnsureChunk(rs)) return;
          RawChunk& c = *rs.cur;
          line_start = block_base + static_cast<uint64_t>(p - block.data());
          if (c.starts.empty()) {
            c.file = file;
            c.format = format;
            c.first_record = line_no;
            c.first_offset = line_start;
          }
          c.starts.push_back(c.data.size());
          in_line = true;
        }
        const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(e - p)));
        if (!nl) {
          check_length(static_cast<size_t>(e - p));
          rs.cur->data.append(p, e);
          break;
        }
        check_length(static_cast<size_t>(nl - p));
        rs.cur->data.append(p, nl);
        in_line = false;
        ++line_no;
        p = nl + 1;
        if (static_cast<int64_t>(rs.cur->starts.size()) == opt.batch_size ||
            rs.cur->data.size() >= chunk_bytes_limit) {
          rs.cur->starts.push_back(rs.cur->data.size());
          Submit(rs);
        }
      }
      block_base += n;
    }
  }

  // A regular file is mapped (MappedFile) and chunks point into the mapping; otherwise (a FIFO,
  // or map_files off) the reader keeps what it reads (RecordIOReader retain mode) and hands each
  // chunk the bytes whole. Either way payloads are decoded where they lie and this thread only
  // walks the frame headers.
  void ReadRecordIO(std::unique_ptr<InputFile> in, int file, ReaderState& rs) {
    std::shared_ptr<MappedFile> mapped = opt.map_files ? MappedFile::Map(*in) : nullptr;
    std::unique_ptr<RecordIOReader> reader =
        mapped ? std::make_unique<RecordIOReader>(mapped->bytes(), in->path())
               : std::make_unique<RecordIOReader>(std::move(in));
    RecordIOReader& rr = *reader;
    if (!mapped) rr.set_retain(true);
    std::string_view payload;
    uint64_t counted = 0;
    size_t chunk_bytes = 0;  // payload bytes in rs.cur
    // A chunk takes the reader's buffer when it is submitted, and before a framing error thrown
    // by rr.Next() goes up: rs.cur then holds the good records before it (see ReaderLoop).
    auto take = [&] {
      if (!mapped && rs.cur && rs.cur->records() > 0) rr.TakeBuffer(&rs.cur->frames);
    };
    for (;;) {
      bool more;
      try {
        more = rr.Next(&payload);
      } catch (...) {
        bytes += rr.bytes_read() - counted;
        take();
        throw;
      }
      bytes += rr.bytes_read() - counted;
      counted = rr.bytes_read();
      if (!more) break;
      if (mapped) mapped->PopulateAhead(counted);
      if (!EnsureChunk(rs)) return;
      RawChunk& c = *rs.cur;
      // Where the payload is, in the mapping or the buffer (-1: a joined copy); before Reserve()
      // moves the buffer.
      const int64_t at = rr.payload_in_buffer(payload);
      if (c.lens.empty()) {
        c.file = file;
        c.format = DataFormat::kRecordIO;
        c.first_record = rr.record_index();
        c.mapped = mapped;
        // Room for the rest of the chunk, guessing that records are about this size (frames add
        // 8 header bytes and up to 3 of padding). Capped: a guess must not reserve gigabytes.
        const size_t frame = payload.size() + 12;
        const int64_t fit = static_cast<int64_t>(chunk_bytes_limit / frame) + 1;
        if (!mapped) rr.Reserve(frame * static_cast<size_t>(std::min<int64_t>(opt.batch_size, fit)));
        chunk_bytes = 0;
      }
      chunk_bytes += payload.size();
      if (at >= 0) {
        c.starts.push_back(static_cast<uint64_t>(at));
      } else {
        c.starts.push_back(RawChunk::kInSide | c.side.size());
        c.side.append(payload.data(), payload.size());
      }
      c.lens.push_back(static_cast<uint32_t>(payload.size()));
      c.offsets.push_back(rr.record_offset());
      if (static_cast<int64_t>(c.lens.size()) == opt.batch_size || chunk_bytes >= chunk_bytes_limit) {
        take();
        Submit(rs);
      }
    }
    take();
    Submit(rs);
  }

  // In-memory rows: chunks of batch_size rows (fewer when they would exceed chunk_bytes).
  void ReadMemory(ReaderState& rs) {
    const MemoryMatrix& m = *src.memory;
    ++files_opened;
    for (int64_t r0 = 0; r0 < m.rows;) {
      const int64_t left = m.rows - r0;
      int64_t n = std::min(opt.batch_size, left);
      if (m.layout == Layout::kDense) {
        const int64_t row_bytes = std::max<int64_t>(1, m.cols) * static_cast<int64_t>(sizeof(float));
        n = std::max<int64_t>(1, std::min<int64_t>(n, static_cast<int64_t>(chunk_bytes_limit) / row_bytes));
      }
      if (!EnsureChunk(rs)) return;
      RawChunk& c = *rs.cur;
      c.file = 0;
      c.first_record = r0;
      c.memory_rows = n;
      const int64_t nnz = m.layout == Layout::kDense ? n * m.cols : m.indptr(r0 + n) - m.indptr(r0);
      bytes += static_cast<uint64_t>(nnz) * (m.layout == Layout::kDense ? 4 : 8) +
               static_cast<uint64_t>(m.labels ? n * 4 : 0) + static_cast<uint64_t>(m.weights ? n * 4 : 0);
      Submit(rs);
      r0 += n;
    }
  }

  void ReaderLoop() {
    ReaderState rs;
    StopToken token(&cancel);
    try {
      if (src.memory) ReadMemory(rs);
      for (size_t f = 0; f < files.size() && !src.memory; ++f) {
        if (cancel) break;
        std::unique_ptr<InputFile> in = src.pipe_prefix.empty()
                                            ? InputFile::Open(files[f], token)
                                            : InputFile::OpenWhenReady(files[f], src.pipe_wait_s, token);
        ++files_opened;
        if (formats[f] == DataFormat::kCsv || formats[f] == DataFormat::kLibsvm) {
          ReadCsv(*in, static_cast<int>(f), rs);
        } else {
          ReadRecordIO(std::move(in), static_cast<int>(f), rs);
        }
      }
      if (EnsureChunk(rs)) {
        MLF_ASSERT(rs.cur->records() == 0);
        rs.cur->end = true;
        rs.cur->seq = rs.seq++;
        Push(std::move(rs.cur));
      }
    } catch (...) {
      // A stop caused by our own cancel needs no report; anything else ends the epoch after the
      // records read so far (which stay in rs.cur, sentinel included).
      if (!cancel) {
        std::exception_ptr err = std::current_exception();
        if (EnsureChunk(rs)) {
          // rs.cur holds the complete records before the error, sentinel-terminated (or none).
          RawChunk& c = *rs.cur;
          const bool mine = rs.chunk_index % opt.num_shards == opt.shard_index;
          // Every rank sees the error, but only the owner of the chunk keeps its records.
          if (!mine) c.ResetRecords();
          c.error = err;
          c.seq = rs.seq++;
          Push(std::move(rs.cur));
        }
      }
    }
    {
      std::lock_guard<std::mutex> lk(mu);
      reader_exited = true;
    }
    cv_done.notify_all();
  }

  // ---------------- workers ----------------
  std::string Where(const RawChunk& raw, int64_t i) const {
    if (raw.memory_rows >= 0) return fmt::format("{}: row {}", src.memory->name, raw.first_record + i);
    if (raw.format != DataFormat::kRecordIO) {
      return fmt::format("{}: line {} at byte {}", files[raw.file], raw.first_record + i,
                         raw.first_offset + raw.starts[i] + static_cast<uint64_t>(i));
    }
    return fmt::format("{}: record {} at byte {}", files[raw.file], raw.first_record + i, raw.offsets[i]);
  }

  // Copies rows of an in-memory source into the chunk's batch, with the checks file rows get.
  void DecodeMemory(const RawChunk& raw, Decoded* d) {
    const MemoryMatrix& m = *src.memory;
    const int64_t r0 = raw.first_record, n = raw.memory_rows;
    d->records = 0;
    if (n <= 0) return;
    d->where = Where(raw, 0);
    d->cols = m.cols;
    d->labeled = m.labels != nullptr;
    if (opt.expected_cols >= 0 && m.cols != opt.expected_cols) {
      MLF_FAIL("{}: expected {} feature columns (feature_dim), found {}; set feature_dim to the data's width",
               d->where, opt.expected_cols, m.cols);
    }
    MLF_EXPECTS(!opt.require_labels || m.labels != nullptr,
                "{}: the rows have no labels; this algorithm trains on labeled data (pass y)", d->where);
    BatchBuilder builder(opt.force_dense);
    builder.Reset(&d->batch, m.cols, 0);
    if (m.layout == Layout::kDense) {
      d->batch.values.reserve(static_cast<size_t>(n * m.cols));
      if (m.labels) d->batch.labels.reserve(static_cast<size_t>(n));
    }
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = r0 + i;
      const float* label = m.labels ? m.labels + r : nullptr;
      if (label && !std::isfinite(*label)) MLF_FAIL("{}: the label is {}", Where(raw, i), *label);
      if (m.weights && !(std::isfinite(m.weights[r]) && m.weights[r] >= 0.0f)) {
        MLF_FAIL("{}: the weight is {}; row weights must be finite and >= 0", Where(raw, i), m.weights[r]);
      }
      if (m.layout == Layout::kDense) {
        const float* x = m.values + r * m.cols;
        if (!opt.allow_non_finite) {
          if (const int64_t j = FirstNonFinite(x, m.cols); j >= 0)
            throw UserError(NonFiniteMessage(Where(raw, i), j, x[j]));
        }
        builder.AddDense(x, label);
      } else {
        const int64_t from = m.indptr(r), to = m.indptr(r + 1);
        MLF_EXPECTS(from <= to, "{}: CSR indptr decreases ({} then {})", Where(raw, i), from, to);
        const int32_t* idx = m.indices + from;
        for (int64_t k = 0; k < to - from; ++k) {
          MLF_EXPECTS(idx[k] >= 0 && idx[k] < m.cols, "{}: column index {} is outside [0, {})", Where(raw, i),
                      idx[k], m.cols);
        }
        if (!opt.allow_non_finite) {
          if (const int64_t j = FirstNonFinite(m.values + from, to - from); j >= 0)
            throw UserError(NonFiniteMessage(Where(raw, i), idx[j], m.values[from + j]));
        }
        static_assert(sizeof(int32_t) == sizeof(uint32_t));
        builder.AddSparse(reinterpret_cast<const uint32_t*>(idx), m.values + from, to - from, label);
      }
      ++d->records;
    }
    if (m.weights) d->batch.weights.assign(m.weights + r0, m.weights + r0 + n);
  }

  void Decode(const RawChunk& raw, Decoded* d) {
    if (raw.memory_rows >= 0) return DecodeMemory(raw, d);
    const int64_t records = raw.records();
    d->records = 0;
    BatchBuilder builder(opt.force_dense);
    DecodedRow row;
    const std::string& path = files[raw.file];
    const bool csv = raw.format == DataFormat::kCsv;
    const bool libsvm = raw.format == DataFormat::kLibsvm;
    LibsvmOptions libsvm_options;
    libsvm_options.cols = libsvm_cols;
    libsvm_options.zero_based = src.libsvm_zero_based;
    bool first = true;  // no row decoded yet (libsvm skips blank and comment lines)
    for (int64_t i = 0; i < records; ++i) {
      if (libsvm) {
        const char* p = raw.data.data() + raw.starts[i];
        const size_t len = raw.starts[i + 1] - raw.starts[i];
        LibsvmContext ctx;
        ctx.file = &path;
        ctx.line = raw.first_record + i;
        ctx.offset = static_cast<int64_t>(raw.first_offset + raw.starts[i] + static_cast<uint64_t>(i));
        if (!ParseLibsvmLine(std::string_view(p, len), libsvm_options, ctx, &row)) continue;
      } else if (csv) {
        const char* p = raw.data.data() + raw.starts[i];
        const size_t len = raw.starts[i + 1] - raw.starts[i];
        CsvContext ctx;
        ctx.file = &path;
        ctx.line = raw.first_record + i;
        ctx.offset = static_cast<int64_t>(raw.first_offset + raw.starts[i] + static_cast<uint64_t>(i));
        ParseCsvLine(std::string_view(p, len), label_size,
                     opt.expected_cols >= 0 ? opt.expected_cols : d->cols, ctx, &row);
      } else {
        const std::string_view payload = raw.payload(i);
        // The SDK's dense layout, as wide and as labeled as the chunk's first row: straight from
        // the payload into the batch. Anything else (and every error) takes DecodeRecord below.
        SdkDenseRecord sdk;
        if (!first && MatchSdkDense(payload, &sdk) && sdk.cols == d->cols &&
            (sdk.label != nullptr) == d->labeled) {
          if (!opt.allow_non_finite) {
            if (const int64_t j = FirstNonFinite(sdk.features, d->cols); j >= 0)
              throw UserError(NonFiniteMessage(Where(raw, i), j, FloatAt(sdk.features, j)));
          }
          builder.AddDenseBytes(sdk.features, sdk.label);
          ++d->records;
          continue;
        }
        RecordContext ctx;
        ctx.file = &path;
        ctx.record_index = raw.first_record + i;
        ctx.offset = raw.offsets[i];
        DecodeRecord(payload, ctx, &row);
      }
      if (first) {
        first = false;
        d->where = Where(raw, i);
        d->cols = row.cols;
        d->labeled = row.has_label;
        builder.Reset(&d->batch, row.cols, 0);
        if (!row.sparse) {
          // Dense chunks: one allocation for the whole batch instead of repeated growth.
          d->batch.values.reserve(static_cast<size_t>(records * row.rows * row.cols));
          if (row.has_label) d->batch.labels.reserve(static_cast<size_t>(records * row.rows));
        }
      }
      if (opt.expected_cols >= 0 && row.cols != opt.expected_cols) {
        MLF_FAIL(
            "{}: expected {} feature columns (feature_dim), found {}; set feature_dim to the "
            "data's width or fix the record",
            Where(raw, i), opt.expected_cols, row.cols);
      }
      if (row.cols != d->cols) {
        MLF_FAIL(
            "{}: expected {} feature columns (as in {}), found {}; every row of a channel "
            "must have the same width",
            Where(raw, i), d->cols, d->where, row.cols);
      }
      if (opt.require_labels && !row.has_label) {
        MLF_FAIL(
            "{}: the row has no label; this algorithm trains on labeled data (CSV: label in "
            "the first column with label_size=1; recordIO: set Record.label; libsvm rows always have one)",
            Where(raw, i));
      }
      if (row.has_label != d->labeled) {
        MLF_FAIL(
            "{}: the row {} but the row at {} {}; a channel's rows must be all labeled or "
            "all unlabeled",
            Where(raw, i), row.has_label ? "has a label" : "has no label", d->where,
            row.has_label ? "has none" : "has one");
      }
      if (!opt.allow_non_finite) CheckFinite(row, [&] { return Where(raw, i); });
      AddRow(row, &builder);
      ++d->records;
    }
  }

  // UserError naming the record (and the row inside a multi-row record) and the column of the
  // first non-finite feature.
  template <typename WhereFn>
  static void CheckFinite(const DecodedRow& row, const WhereFn& where) {
    const int64_t at = FirstNonFinite(row.values.data(), static_cast<int64_t>(row.values.size()));
    if (at < 0) return;
    int64_t r = 0, col = 0;
    if (!row.sparse) {
      r = at / row.cols;
      col = at % row.cols;
    } else {
      col = row.indices[static_cast<size_t>(at)];
      if (row.rows > 1) {
        while (row.row_ptr[static_cast<size_t>(r + 1)] <= at) ++r;
      }
    }
    std::string w = where();
    if (row.rows > 1) w += fmt::format(", row {} of the record", r);
    throw UserError(NonFiniteMessage(w, col, row.values[static_cast<size_t>(at)]));
  }

  static void AddRow(const DecodedRow& row, BatchBuilder* b) {
    MLF_ASSERT(!row.has_label || static_cast<int64_t>(row.labels.size()) == row.rows);
    for (int64_t r = 0; r < row.rows; ++r) {
      const float* label = row.has_label ? &row.labels[static_cast<size_t>(r)] : nullptr;
      if (!row.sparse) {
        MLF_ASSERT(static_cast<int64_t>(row.values.size()) == row.rows * row.cols);
        b->AddDense(row.values.data() + r * row.cols, label);
      } else if (row.rows == 1) {
        b->AddSparse(row.indices.data(), row.values.data(), static_cast<int64_t>(row.values.size()), label);
      } else {
        const int64_t from = row.row_ptr[static_cast<size_t>(r)],
                      to = row.row_ptr[static_cast<size_t>(r + 1)];
        b->AddSparse(row.indices.data() + from, row.values.data() + from, to - from, label);
      }
    }
  }

  void WorkerLoop() {
    for (;;) {
      std::unique_ptr<RawChunk> raw;
      {
        std::unique_lock<std::mutex> lk(mu);
        cv_work.wait(lk, [&] { return cancel.load() || !raw_queue.empty(); });
        if (cancel) return;
        raw = std::move(raw_queue.front());
        raw_queue.pop_front();
        ++busy_workers;
      }
      auto d = std::make_unique<Decoded>(&live, &peak, pool.get());
      d->seq = raw->seq;
      d->end = raw->end;
      if (!raw->end) {
        try {
          Decode(*raw, d.get());
        } catch (...) {
          // The rows decoded before the bad record stay in d->batch and are handed out first.
          d->error = std::current_exception();
        }
        if (!d->error) d->error = raw->error;
      }
      raw.reset();
      {
        std::lock_guard<std::mutex> lk(mu);
        done[d->seq] = std::move(d);
        --busy_workers;
      }
      cv_done.notify_all();
    }
  }

  // ---------------- consumer ----------------
  void Start(int e) {
    StopPipeline();
    started = true;
    epoch = e;
    next_seq = 0;
    input_done = false;
    deferred = nullptr;
    pending.clear();
    front_row = pending_rows = pulled_rows = emitted_rows = 0;
    window.clear();
    window_keep.clear();
    window_pos = 0;
    rng.seed(SplitMix64(opt.seed ^ SplitMix64(static_cast<uint64_t>(e) + 0x5851F42D4C957F2Dull)));
    stats = StreamStats{};
    bytes = 0;
    files_opened = 0;
    try {
      if (src.memory) {
        files = {src.memory->name};
      } else if (!src.pipe_prefix.empty()) {
        files = {fmt::format("{}_{}", src.pipe_prefix, e)};
      } else {
        files = ExpandChannelPaths(src.paths);
      }
      formats.clear();
      for (const std::string& f : files) {
        if (src.memory) {
          formats.push_back(DataFormat::kRecordIO);  // unused: the memory rows decode apart
          continue;
        }
        DataFormat fmt = src.format != DataFormat::kAuto ? src.format : FormatFromPath(f);
        MLF_EXPECTS(fmt != DataFormat::kAuto,
                    "{}: cannot tell the data format from the file name; name files *.csv, "
                    "*.pbr/*.recordio or *.libsvm, or set the channel's ContentType (text/csv, "
                    "application/x-recordio-protobuf or text/libsvm)",
                    f);
        MLF_EXPECTS(fmt == DataFormat::kCsv || fmt == DataFormat::kRecordIO || fmt == DataFormat::kLibsvm,
                    "{}: {} data cannot be streamed as training batches; convert it to CSV or "
                    "recordIO-protobuf (mlforge data convert)",
                    f, FormatName(fmt));
        formats.push_back(fmt);
      }
      if (libsvm_cols < 0 && std::count(formats.begin(), formats.end(), DataFormat::kLibsvm) > 0) {
        FixLibsvmWidth();
      }
    } catch (...) {
      deferred = std::current_exception();
      input_done = true;
      throw;
    }
    reader = std::thread([this] { ReaderLoop(); });
    workers.reserve(static_cast<size_t>(threads));
    for (int i = 0; i < threads; ++i) workers.emplace_back([this] { WorkerLoop(); });
  }

  // libsvm lines do not say how wide the data is: feature_dim does, or else the largest index of
  // the channel's libsvm files, read once here (not in Pipe mode: the constructor requires
  // expected_cols there).
  void FixLibsvmWidth() {
    if (opt.expected_cols >= 0) {
      libsvm_cols = opt.expected_cols;
      return;
    }
    std::vector<std::string> libsvm_files;
    for (size_t f = 0; f < files.size(); ++f) {
      if (formats[f] == DataFormat::kLibsvm) libsvm_files.push_back(files[f]);
    }
    std::string where;
    libsvm_cols = ScanLibsvmWidth(libsvm_files, src.libsvm_zero_based, opt.stop, &where, opt.max_line_bytes);
    if (cols < 0) {
      cols = libsvm_cols;
      first_where =
          where.empty() ? "the libsvm files, which have no index" : where + ", the largest libsvm index";
    }
  }

  std::unique_ptr<Decoded> WaitChunk() {
    std::unique_lock<std::mutex> lk(mu);
    for (;;) {
      auto it = done.find(next_seq);
      if (it != done.end()) {
        std::unique_ptr<Decoded> d = std::move(it->second);
        done.erase(it);
        ++next_seq;
        --slots_used;
        lk.unlock();
        cv_slots.notify_one();
        return d;
      }
      if (opt.stop.stop_requested()) {
        lk.unlock();
        Cancel();
        throw StopRequested();
      }
      // The reader always ends an epoch with an end marker or an error chunk; a pipeline that
      // went quiet without one is a bug, reported instead of hanging.
      MLF_ASSERT_MSG(!(reader_exited && raw_queue.empty() && busy_workers == 0),
                     "batch stream pipeline stopped without delivering chunk {}", next_seq);
      cv_done.wait_for(lk, kStopPoll);
    }
  }

  void Fail(std::exception_ptr e) {
    if (!deferred) deferred = std::move(e);
    input_done = true;
    Cancel();
  }

  void Pull() {
    std::shared_ptr<Decoded> d = WaitChunk();
    if (d->end) {
      input_done = true;
      return;
    }
    stats.records += d->records;
    if (d->cols >= 0) {
      if (cols < 0) {
        cols = d->cols;
        first_where = d->where;
      } else if (d->cols != cols) {
        Fail(std::make_exception_ptr(UserError(fmt::format(
            "{}: expected {} feature columns ({}), found {}; every row of a channel must have the "
            "same width",
            d->where, cols, opt.expected_cols >= 0 ? "feature_dim" : "as in " + first_where, d->cols))));
        return;
      }
      const int lab = d->labeled ? 1 : 0;
      if (labeled_state < 0) {
        labeled_state = lab;
        if (first_where.empty()) first_where = d->where;
      } else if (lab != labeled_state) {
        Fail(std::make_exception_ptr(UserError(
            fmt::format("{}: the row {} but the channel's first row ({}) {}; a channel's rows must be all "
                        "labeled or all unlabeled",
                        d->where, lab ? "has a label" : "has no label", first_where,
                        labeled_state ? "has one" : "has none"))));
        return;
      }
    }
    if (d->batch.rows > 0) {
      d->base_ordinal = pulled_rows;
      pulled_rows += d->batch.rows;
      pending_rows += d->batch.rows;
      stats.rows += d->batch.rows;
      stats.nnz += d->batch.nnz();
      stats.any_sparse |= d->batch.layout == Layout::kCsr;
      stats.any_labels |= d->batch.has_labels();
      std::exception_ptr err = d->error;
      pending.push_back(std::move(d));
      if (err) Fail(err);
    } else if (d->error) {
      Fail(d->error);
    }
  }

  void BeginOut(HostBatch* out) {
    out->Clear();
    out->layout = Layout::kDense;
    out->cols = cols;
    out->first_row = emitted_rows;
  }

  void EmitInOrder(int64_t n, HostBatch* out) {
    Decoded& front = *pending.front();
    if (front_row == 0 && front.batch.rows == n) {
      // The common case (a chunk of exactly batch_size rows): hand the decoded batch over whole.
      std::swap(*out, front.batch);
      out->first_row = emitted_rows;
      out->ordinals.clear();
      pending.pop_front();
    } else {
      BeginOut(out);
      if (front.batch.layout == Layout::kDense) {
        // One allocation for the joined batch (very wide rows arrive in several chunks).
        out->values.reserve(static_cast<size_t>(n * front.batch.cols));
        if (front.batch.has_labels()) out->labels.reserve(static_cast<size_t>(n));
      }
      int64_t left = n;
      while (left > 0) {
        Decoded& c = *pending.front();
        const int64_t take = std::min(left, c.batch.rows - front_row);
        AppendRows(c.batch, front_row, front_row + take, out);
        front_row += take;
        left -= take;
        if (front_row == c.batch.rows) {
          pending.pop_front();
          front_row = 0;
        }
      }
    }
    pending_rows -= n;
    emitted_rows += n;
  }

  void BuildWindow(int64_t n) {
    window.clear();
    window_keep.clear();
    window_pos = 0;
    int64_t left = n;
    while (left > 0) {
      std::shared_ptr<Decoded> c = pending.front();
      const int64_t take = std::min(left, c->batch.rows - front_row);
      for (int64_t r = front_row; r < front_row + take; ++r) window.emplace_back(c.get(), r);
      front_row += take;
      left -= take;
      if (front_row == c->batch.rows) {
        pending.pop_front();
        front_row = 0;
      }
      window_keep.push_back(std::move(c));
    }
    pending_rows -= n;
    // Fisher-Yates with our own bounded draw: the permutation depends only on (seed, epoch).
    for (size_t i = window.size(); i > 1; --i) {
      size_t j = static_cast<size_t>(Bounded(rng, i));
      std::swap(window[i - 1], window[j]);
    }
  }

  void EmitShuffled(HostBatch* out) {
    const size_t n = std::min(window.size() - window_pos, static_cast<size_t>(opt.batch_size));
    BeginOut(out);
    out->ordinals.reserve(n);
    for (size_t k = 0; k < n; ++k) {
      const auto& [c, r] = window[window_pos + k];
      AppendRows(c->batch, r, r + 1, out);
      out->ordinals.push_back(c->base_ordinal + r);
    }
    window_pos += n;
    emitted_rows += static_cast<int64_t>(n);
    if (window_pos == window.size()) {
      window.clear();
      window_keep.clear();
      window_pos = 0;
    }
  }

  bool Next(HostBatch* out) {
    if (!started) Start(0);
    if (opt.stop.stop_requested()) {
      Cancel();
      throw StopRequested();
    }
    for (;;) {
      if (window_pos < window.size()) {
        EmitShuffled(out);
        return true;
      }
      const int64_t need = opt.shuffle ? opt.batch_size * opt.shuffle_window : opt.batch_size;
      while (pending_rows < need && !input_done) Pull();
      if (pending_rows == 0) {
        // Sticky: a caller that catches the error and calls Next() again must not mistake the
        // truncated epoch for a clean end.
        if (deferred) std::rethrow_exception(deferred);
        return false;
      }
      if (opt.shuffle) {
        BuildWindow(std::min(need, pending_rows));
        continue;
      }
      EmitInOrder(std::min(opt.batch_size, pending_rows), out);
      return true;
    }
  }

  void RefreshStats() const {
    stats.files = files_opened.load();
    stats.bytes = bytes.load();
    stats.peak_live_chunks = peak.load();
  }
};

BatchStream::BatchStream(ChannelSource source, StreamOptions options)
    : impl_(std::make_unique<Impl>(std::move(source), options)) {
  Impl& m = *impl_;
  const StreamOptions& o = m.opt;
  MLF_EXPECTS(o.batch_size >= 1, "mini_batch_size must be at least 1, got {}", o.batch_size);
  MLF_EXPECTS(o.prefetch >= 1, "prefetch must be at least 1, got {}", o.prefetch);
  MLF_EXPECTS(!o.shuffle || o.shuffle_window >= 1, "shuffle_window must be at least 1, got {}",
              o.shuffle_window);
  MLF_EXPECTS(o.num_shards >= 1 && o.shard_index >= 0 && o.shard_index < o.num_shards,
              "shard {} of {} is not valid; need 0 <= shard_index < num_shards", o.shard_index, o.num_shards);
  MLF_EXPECTS(m.src.label_size >= -1 && m.src.label_size <= 1, "CSV label_size must be 0 or 1, got {}",
              m.src.label_size);
  MLF_EXPECTS(m.src.pipe_prefix.empty() || m.src.format != DataFormat::kAuto,
              "{}: Pipe mode needs the channel's ContentType (text/csv, "
              "application/x-recordio-protobuf or text/libsvm): a FIFO has no file name to tell the "
              "format from",
              m.src.pipe_prefix);
  MLF_EXPECTS(m.src.pipe_prefix.empty() || m.src.format != DataFormat::kLibsvm || o.expected_cols >= 0,
              "{}: libsvm data in Pipe mode needs feature_dim: libsvm lines do not say how many columns "
              "the data has, and a FIFO cannot be read twice to find the largest index",
              m.src.pipe_prefix);
  MLF_EXPECTS(m.src.memory || !m.src.pipe_prefix.empty() || !m.src.paths.empty(), "channel has no data paths");
  m.label_size = m.src.label_size < 0 ? 1 : m.src.label_size;
  m.threads = o.threads > 0 ? o.threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  m.capacity = static_cast<int64_t>(o.prefetch) + m.threads;
  m.pool = std::make_unique<StoragePool>(static_cast<size_t>(m.threads) + 2);
  MLF_EXPECTS(o.chunk_bytes >= 1, "chunk_bytes must be at least 1, got {}", o.chunk_bytes);
  m.chunk_bytes_limit = static_cast<size_t>(o.chunk_bytes);
}

BatchStream::~BatchStream() { impl_->StopPipeline(); }

void BatchStream::StartEpoch(int epoch) { impl_->Start(epoch); }

bool BatchStream::Next(HostBatch* batch) {
  bool got = impl_->Next(batch);
  impl_->RefreshStats();
  return got;
}

int64_t BatchStream::cols() const { return impl_->cols >= 0 ? impl_->cols : impl_->opt.expected_cols; }

const StreamStats& BatchStream::stats() const {
  impl_->RefreshStats();
  return impl_->stats;
}

}  // namespace mlforge::io
