#include "io/row_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/csv.h"
#include "io/libsvm.h"
#include "io/record_codec.h"
#include "io/recordio.h"

namespace mlforge::io {
namespace {

constexpr size_t kFlushBytes = size_t{1} << 20;

// Buffered output into `<path>.tmp-<pid>`, renamed over `path` on Commit() and removed otherwise,
// so readers never see a half-written file.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path)
      : path_(std::move(path)), tmp_(path_ + ".tmp-" + std::to_string(::getpid())) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    MLF_EXPECTS(fd_ >= 0,
                "cannot create {} (temporary file for {}): {}; check that the directory exists "
                "and is writable",
                tmp_, path_, std::strerror(errno));
    buf_.reserve(kFlushBytes + 4096);
  }
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  std::string& buffer() { return buf_; }
  void MaybeFlush() {
    if (buf_.size() >= kFlushBytes) Flush();
  }
  void Flush() {
    size_t done = 0;
    while (done < buf_.size()) {
      const ssize_t n = ::write(fd_, buf_.data() + done, buf_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      MLF_EXPECTS(n > 0, "cannot write {}: {}{}", tmp_, n < 0 ? std::strerror(errno) : "no progress",
                  errno == ENOSPC ? " (the disk is full; free space or write elsewhere)" : "");
      done += static_cast<size_t>(n);
    }
    buf_.clear();
  }
  void Commit() {
    Flush();
    const int fd = fd_;
    fd_ = -1;
    MLF_EXPECTS(::close(fd) == 0, "cannot write {}: {}", tmp_, std::strerror(errno));
    MLF_EXPECTS(::rename(tmp_.c_str(), path_.c_str()) == 0, "cannot rename {} to {}: {}", tmp_, path_,
                std::strerror(errno));
    committed_ = true;
  }
  bool committed() const { return committed_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  std::string buf_;
  bool committed_ = false;
};

// Checks that a batch is shaped as core/batch.h promises, so a caller bug becomes a clear error
// instead of a read past the end.
void CheckBatch(const HostBatch& b) {
  MLF_ASSERT(b.rows >= 0 && b.cols >= 0);
  if (b.layout == Layout::kDense) {
    MLF_ASSERT(b.values.size() == static_cast<size_t>(b.rows * b.cols));
  } else {
    MLF_ASSERT(b.indptr.size() == static_cast<size_t>(b.rows + 1));
    MLF_ASSERT(b.indices.size() == b.values.size());
    MLF_ASSERT(b.indptr.back() == static_cast<int64_t>(b.values.size()));
  }
  MLF_ASSERT(b.labels.empty() || b.labels.size() == static_cast<size_t>(b.rows));
}

class WriterBase : public RowWriter {
 public:
  WriterBase(const std::string& path, WriterOptions options) : file_(path), options_(options) {}
  void Close() override {
    if (!file_.committed()) file_.Commit();
  }
  int64_t rows_written() const override { return rows_; }

 protected:
  void Begin(const HostBatch& b) {
    MLF_ASSERT_MSG(!file_.committed(), "Write() after Close() on {}", file_.path());
    CheckBatch(b);
    if (cols_ < 0) cols_ = b.cols;
    MLF_EXPECTS(b.cols == cols_, "{}: cannot append rows of {} columns after rows of {} columns",
                file_.path(), b.cols, cols_);
  }
  // Row r of a CSR batch scattered into dense_ (cols_ floats).
  const float* DenseRow(const HostBatch& b, int64_t r) {
    dense_.assign(static_cast<size_t>(cols_), 0.0f);
    for (int64_t k = b.indptr[r]; k < b.indptr[r + 1]; ++k) {
      MLF_ASSERT(b.indices[k] < static_cast<uint64_t>(cols_));
      dense_[b.indices[k]] = b.values[k];
    }
    return dense_.data();
  }

  AtomicFile file_;
  WriterOptions options_;
  int64_t rows_ = 0;
  int64_t cols_ = -1;
  std::vector<float> dense_;
};

class CsvWriter final : public WriterBase {
 public:
  using WriterBase::WriterBase;
  void Write(const HostBatch& b) override {
    Begin(b);
    const bool labels = options_.write_labels && b.has_labels();
    MLF_EXPECTS(b.rows == 0 || labels || b.cols > 0,
                "{}: cannot write rows with no columns and no label as CSV (they would be empty lines)",
                file_.path());
    std::string& out = file_.buffer();
    for (int64_t r = 0; r < b.rows; ++r) {
      const float* x = b.layout == Layout::kDense ? b.values.data() + r * b.cols : DenseRow(b, r);
      if (labels) {
        AppendCsvNumber(b.labels[r], &out);
        if (b.cols > 0) out.push_back(',');
      }
      for (int64_t c = 0; c < b.cols; ++c) {
        if (c > 0) out.push_back(',');
        AppendCsvNumber(x[c], &out);
      }
      out.push_back('\n');
      file_.MaybeFlush();
    }
    rows_ += b.rows;
  }
};

class RecordIOWriter final : public WriterBase {
 public:
  using WriterBase::WriterBase;
  void Write(const HostBatch& b) override {
    Begin(b);
    const bool labels = options_.write_labels && b.has_labels();
    std::string& out = file_.buffer();
    for (int64_t r = 0; r < b.rows; ++r) {
      const float* label = labels ? &b.labels[r] : nullptr;
      // Encode straight after a placeholder header, then patch the length in: no payload copy.
      const size_t start = out.size();
      out.append(8, '\0');
      if (b.layout == Layout::kDense) {
        EncodeDenseRecord(b.values.data() + r * b.cols, b.cols, label, &out);
      } else if (options_.sparse) {
        const int64_t k0 = b.indptr[r], nnz = b.indptr[r + 1] - k0;
        EncodeSparseRecord(b.indices.data() + k0, b.values.data() + k0, nnz, b.cols, label, &out);
      } else {
        EncodeDenseRecord(DenseRow(b, r), b.cols, label, &out);
      }
      const size_t len = out.size() - start - 8;
      MLF_EXPECTS(len <= kRecordIOMaxLength,
                  "{}: row {} encodes to {} bytes; recordIO records must be under 2^29 bytes", file_.path(),
                  rows_ + r, len);
      const uint32_t words[2] = {kRecordIOMagic, static_cast<uint32_t>(len)};
      std::memcpy(&out[start], words, 8);  // little-endian host (see record_codec.cc)
      out.append((4 - len % 4) % 4, '\0');
      file_.MaybeFlush();
    }
    rows_ += b.rows;
  }
};

// One "label index:value ..." line per row, 1-based indices. CSR rows keep their stored entries
// (explicit zeros included); dense rows write their non-zero values only, libsvm's convention.
class LibsvmWriter final : public WriterBase {
 public:
  using WriterBase::WriterBase;
  void Write(const HostBatch& b) override {
    Begin(b);
    MLF_EXPECTS(b.rows == 0 || (options_.write_labels && b.has_labels()),
                "{}: cannot write rows without labels as libsvm (every libsvm line starts with its label); "
                "write CSV with --label-size 0 or recordIO instead",
                file_.path());
    std::string& out = file_.buffer();
    for (int64_t r = 0; r < b.rows; ++r) {
      if (b.layout == Layout::kCsr) {
        const int64_t k0 = b.indptr[r];
        AppendLibsvmLine(b.labels[r], b.indices.data() + k0, b.values.data() + k0, b.indptr[r + 1] - k0,
                         &out);
      } else {
        idx_.clear();
        val_.clear();
        const float* x = b.values.data() + r * b.cols;
        for (int64_t c = 0; c < b.cols; ++c) {
          if (x[c] != 0.0f) {
            idx_.push_back(static_cast<uint32_t>(c));
            val_.push_back(x[c]);
          }
        }
        AppendLibsvmLine(b.labels[r], idx_.data(), val_.data(), static_cast<int64_t>(idx_.size()), &out);
      }
      file_.MaybeFlush();
    }
    rows_ += b.rows;
  }

 private:
  std::vector<uint32_t> idx_;
  std::vector<float> val_;
};

}  // namespace

std::unique_ptr<RowWriter> MakeRowWriter(const std::string& path, WriterOptions options) {
  DataFormat f = options.format == DataFormat::kAuto ? FormatFromPath(path) : options.format;
  MLF_EXPECTS(
      f != DataFormat::kAuto,
      "cannot tell the output format of {} from its extension; name it .csv, .pbr or .libsvm, or give "
      "the format explicitly",
      path);
  MLF_EXPECTS(f != DataFormat::kVcf,
              "cannot write {}: mlforge reads VCF but writes only CSV, recordIO and libsvm", path);
  if (f == DataFormat::kCsv) return std::make_unique<CsvWriter>(path, options);
  if (f == DataFormat::kLibsvm) return std::make_unique<LibsvmWriter>(path, options);
  return std::make_unique<RecordIOWriter>(path, options);
}

}  // namespace mlforge::io
