#include "io/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>

#include "core/error.h"
#include "core/file_util.h"

namespace fs = std::filesystem;

namespace mlforge::io {
namespace {

constexpr size_t kChunk = 1 << 16;
// Never pre-allocate more than this on the word of a header: sizes in headers can lie.
constexpr uint64_t kMaxReserve = uint64_t{64} << 20;

struct ReadFree {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
struct WriteFree {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
struct EntryFree {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
using ReadHandle = std::unique_ptr<struct archive, ReadFree>;
using WriteHandle = std::unique_ptr<struct archive, WriteFree>;

std::string ArchiveError(struct archive* a) {
  const char* s = archive_error_string(a);
  return s ? s : "unknown libarchive error";
}

std::string StripDotSlash(std::string name) {
  while (name.size() >= 2 && name[0] == '.' && name[1] == '/') name.erase(0, 2);
  return name;
}

std::string HexHead(std::string_view head) {
  std::string s;
  for (size_t i = 0; i < std::min<size_t>(head.size(), 8); ++i)
    s += fmt::format("{}{:02x}", i ? " " : "", static_cast<unsigned char>(head[i]));
  return s.empty() ? "(empty file)" : s;
}

// Explains why bytes starting with `head` are not an archive we read.
[[noreturn]] void NotAnArchive(const std::string& source, std::string_view head) {
  const FileKind kind = DetectKind(head);
  if (kind == FileKind::kNDArrayList)
    MLF_FAIL("{}: is an MXNet NDArray list file, not a tar.gz/tar/zip archive (it can be a bare model_algo-1)",
             source);
  MLF_FAIL("{}: not a tar.gz, tar or zip archive (first bytes: {})", source, HexHead(head));
}

// Where archive bytes come from: a file (streamed) or memory.
struct Input {
  const std::string* path = nullptr;  // when reading a file
  std::string_view bytes;             // when reading memory
  std::string source;                 // name used in messages
};

std::string ReadHead(const std::string& path, size_t n) {
  std::ifstream f(path, std::ios::binary);
  MLF_EXPECTS(f, "{}: cannot open for reading: {}", path, std::strerror(errno));
  std::string head(n, '\0');
  f.read(head.data(), static_cast<std::streamsize>(n));
  head.resize(static_cast<size_t>(f.gcount()));
  return head;
}

ReadHandle OpenRead(const Input& in) {
  const std::string head = in.path ? ReadHead(*in.path, 512) : std::string(in.bytes.substr(0, 512));
  const FileKind kind = DetectKind(head);
  if (kind != FileKind::kGzip && kind != FileKind::kTar && kind != FileKind::kZip) NotAnArchive(in.source, head);
  ReadHandle a(archive_read_new());
  MLF_ASSERT(a != nullptr);
  archive_read_support_filter_gzip(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_zip(a.get());
  const int r = in.path ? archive_read_open_filename(a.get(), in.path->c_str(), kChunk)
                        : archive_read_open_memory(a.get(), in.bytes.data(), in.bytes.size());
  MLF_EXPECTS(r == ARCHIVE_OK || r == ARCHIVE_WARN, "{}: cannot open as a {} archive: {}", in.source,
              FileKindName(kind), ArchiveError(a.get()));
  return a;
}

// Reads the data of the current member, enforcing the per-member cap as bytes arrive (a zip can
// declare a small size and inflate to far more).
std::string ReadData(struct archive* a, const std::string& source, const ArchiveMember& m, bool size_known,
                     uint64_t limit, const std::string& limit_what) {
  MLF_EXPECTS(!size_known || m.size <= limit, "{}: member '{}' declares {} bytes, over {}", source, m.name, m.size,
              limit_what);
  std::string out;
  out.reserve(std::min(m.size, kMaxReserve));
  std::vector<char> buf(kChunk);
  for (;;) {
    const la_ssize_t n = archive_read_data(a, buf.data(), buf.size());
    MLF_EXPECTS(n >= 0, "{}: member '{}': damaged data after {} bytes: {}", source, m.name, out.size(),
                ArchiveError(a));
    if (n == 0) break;
    MLF_EXPECTS(out.size() + static_cast<uint64_t>(n) <= limit,
                "{}: member '{}' inflates to more than {} (a zip bomb or a damaged archive)", source, m.name,
                limit_what);
    out.append(buf.data(), static_cast<size_t>(n));
  }
  MLF_EXPECTS(!size_known || out.size() == m.size, "{}: member '{}' declares {} bytes but holds {}", source, m.name,
              m.size, out.size());
  return out;
}

// Calls `visit(member, read)` for each regular-file member in archive order; `read()` returns the
// member's bytes (call it at most once, before returning). `visit` returns false to stop early.
using Visitor = std::function<bool(const ArchiveMember&, const std::function<std::string()>&)>;

void ForEachMember(const Input& in, const ArchiveLimits& limits, const Visitor& visit) {
  ReadHandle a = OpenRead(in);
  uint64_t count = 0, total = 0;
  for (;;) {
    archive_entry* e = nullptr;
    const int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    MLF_EXPECTS(r == ARCHIVE_OK || r == ARCHIVE_WARN, "{}: damaged archive after {} members: {}", in.source, count,
                ArchiveError(a.get()));
    if (archive_entry_filetype(e) != AE_IFREG) continue;  // directories, links: nothing to load
    MLF_EXPECTS(++count <= limits.max_members, "{}: more than {} members", in.source, limits.max_members);
    const char* raw_name = archive_entry_pathname(e);
    if (!raw_name) raw_name = archive_entry_pathname_utf8(e);
    MLF_EXPECTS(raw_name != nullptr, "{}: member #{} has an unreadable name", in.source, count);
    ArchiveMember m;
    m.name = StripDotSlash(raw_name);
    const bool size_known = archive_entry_size_is_set(e) != 0;
    const la_int64_t declared = archive_entry_size(e);
    MLF_EXPECTS(declared >= 0, "{}: member '{}' has a negative size", in.source, m.name);
    m.size = size_known ? static_cast<uint64_t>(declared) : 0;
    bool read_called = false;
    const std::function<std::string()> read = [&]() {
      MLF_ASSERT(!read_called);
      read_called = true;
      const uint64_t left = limits.max_total_bytes - std::min(total, limits.max_total_bytes);
      const std::string limit_what =
          left < limits.max_member_bytes
              ? fmt::format("the archive's total limit of {} bytes ({} already read)", limits.max_total_bytes, total)
              : fmt::format("the member limit of {} bytes", limits.max_member_bytes);
      std::string data =
          ReadData(a.get(), in.source, m, size_known, std::min(limits.max_member_bytes, left), limit_what);
      total += data.size();
      return data;
    };
    if (!visit(m, read)) return;
  }
}

Input FileInput(const std::string& path) {
  Input in;
  in.path = &path;
  in.source = path;
  return in;
}

Input BufferInput(std::string_view bytes, const std::string& source) {
  Input in;
  in.bytes = bytes;
  in.source = source;
  return in;
}

std::vector<ArchiveMember> List(const Input& in, const ArchiveLimits& limits) {
  std::vector<ArchiveMember> out;
  ForEachMember(in, limits, [&](const ArchiveMember& m, const auto&) {
    out.push_back(m);
    return true;
  });
  return out;
}

std::string ReadOne(const Input& in, const std::string& name, const ArchiveLimits& limits) {
  const std::string want = StripDotSlash(name);
  std::string data;
  bool found = false;
  std::vector<std::string> seen;
  ForEachMember(in, limits, [&](const ArchiveMember& m, const std::function<std::string()>& read) {
    if (m.name != want) {
      seen.push_back(m.name);
      return true;
    }
    data = read();
    found = true;
    return false;
  });
  if (!found) {
    std::string present;
    for (size_t i = 0; i < seen.size() && i < 20; ++i) present += (i ? ", " : "") + seen[i];
    if (seen.size() > 20) present += fmt::format(", ... ({} in all)", seen.size());
    MLF_FAIL("{}: no member named '{}' (members: {})", in.source, want, present.empty() ? "none" : present);
  }
  return data;
}

std::vector<ArchiveEntry> ReadAll(const Input& in, const ArchiveLimits& limits) {
  std::vector<ArchiveEntry> out;
  ForEachMember(in, limits, [&](const ArchiveMember& m, const std::function<std::string()>& read) {
    out.push_back({m.name, read()});
    return true;
  });
  return out;
}

// Whole regular file, refusing files over `limit` before reading them.
std::string ReadFileCapped(const std::string& path, uint64_t limit) {
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  MLF_EXPECTS(!ec, "{}: cannot read: {}", path, ec.message());
  MLF_EXPECTS(size <= limit, "{}: {} bytes, over the limit of {} bytes", path, size, limit);
  std::ifstream f(path, std::ios::binary);
  MLF_EXPECTS(f, "{}: cannot open for reading: {}", path, std::strerror(errno));
  std::string data(size, '\0');
  f.read(data.data(), static_cast<std::streamsize>(size));
  MLF_EXPECTS(static_cast<uint64_t>(f.gcount()) == size, "{}: short read ({} of {} bytes)", path, f.gcount(), size);
  return data;
}

// Relative names of the regular files under `dir`, sorted.
std::vector<std::string> FilesUnder(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file()) names.push_back(fs::relative(it->path(), dir).generic_string());
  }
  MLF_EXPECTS(!ec, "{}: cannot list: {}", dir, ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

void CheckWrite(struct archive* a, int r, const std::string& what) {
  MLF_EXPECTS(r == ARCHIVE_OK || r == ARCHIVE_WARN, "{}: {}", what, ArchiveError(a));
}

la_ssize_t AppendToString(struct archive*, void* client, const void* buf, size_t n) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

}  // namespace

std::string FileKindName(FileKind kind) {
  switch (kind) {
    case FileKind::kGzip:
      return "gzip";
    case FileKind::kTar:
      return "tar";
    case FileKind::kZip:
      return "zip";
    case FileKind::kNDArrayList:
      return "MXNet NDArray list";
    case FileKind::kUnknown:
      break;
  }
  return "unknown";
}

FileKind DetectKind(std::string_view head) {
  if (head.size() >= 2 && static_cast<unsigned char>(head[0]) == 0x1f && static_cast<unsigned char>(head[1]) == 0x8b)
    return FileKind::kGzip;
  if (head.size() >= 4 && head.substr(0, 2) == "PK" &&
      ((head[2] == '\x03' && head[3] == '\x04') || (head[2] == '\x05' && head[3] == '\x06')))
    return FileKind::kZip;
  if (head.size() >= 8) {
    uint64_t magic;
    std::memcpy(&magic, head.data(), sizeof magic);
    if (magic == 0x112) return FileKind::kNDArrayList;
  }
  if (head.size() >= 262 && head.substr(257, 5) == "ustar") return FileKind::kTar;
  return FileKind::kUnknown;
}

FileKind DetectFileKind(const std::string& path) { return DetectKind(ReadHead(path, 512)); }

std::vector<ArchiveMember> ListArchive(const std::string& path, const ArchiveLimits& limits) {
  return List(FileInput(path), limits);
}
std::vector<ArchiveMember> ListArchiveBuffer(std::string_view bytes, const std::string& source,
                                             const ArchiveLimits& limits) {
  return List(BufferInput(bytes, source), limits);
}
std::string ReadArchiveMember(const std::string& path, const std::string& name, const ArchiveLimits& limits) {
  return ReadOne(FileInput(path), name, limits);
}
std::string ReadArchiveMemberBuffer(std::string_view bytes, const std::string& source, const std::string& name,
                                    const ArchiveLimits& limits) {
  return ReadOne(BufferInput(bytes, source), name, limits);
}
std::vector<ArchiveEntry> ReadArchive(const std::string& path, const ArchiveLimits& limits) {
  return ReadAll(FileInput(path), limits);
}
std::vector<ArchiveEntry> ReadArchiveBuffer(std::string_view bytes, const std::string& source,
                                            const ArchiveLimits& limits) {
  return ReadAll(BufferInput(bytes, source), limits);
}

void WriteModelTarGz(const std::string& dir, const std::string& out_path) {
  MLF_EXPECTS(fs::is_directory(dir), "{}: not a directory (cannot pack a model.tar.gz from it)", dir);
  const std::string tmp = fmt::format("{}.tmp-{}", out_path, static_cast<long>(::getpid()));
  std::error_code ec;
  const fs::path out_abs = fs::weakly_canonical(out_path, ec);
  const fs::path tmp_abs = fs::weakly_canonical(tmp, ec);
  std::vector<std::string> names;
  for (std::string& name : FilesUnder(dir)) {
    const fs::path abs = fs::weakly_canonical(fs::path(dir) / name, ec);
    if (abs != out_abs && abs != tmp_abs) names.push_back(std::move(name));
  }
  MLF_EXPECTS(!names.empty(), "{}: no files to pack into {}", dir, out_path);
  const fs::path parent = fs::path(out_path).parent_path();
  if (!parent.empty()) {
    fs::create_directories(parent, ec);
    MLF_EXPECTS(!ec, "{}: cannot create its directory: {}", out_path, ec.message());
  }

  try {
    WriteHandle a(archive_write_new());
    MLF_ASSERT(a != nullptr);
    CheckWrite(a.get(), archive_write_add_filter_gzip(a.get()), out_path);
    CheckWrite(a.get(), archive_write_set_format_pax_restricted(a.get()), out_path);
    CheckWrite(a.get(), archive_write_open_filename(a.get(), tmp.c_str()), tmp);
    std::vector<char> buf(kChunk);
    for (const std::string& name : names) {
      const std::string file = (fs::path(dir) / name).string();
      struct stat st {};
      MLF_EXPECTS(::stat(file.c_str(), &st) == 0, "{}: cannot stat: {}", file, std::strerror(errno));
      std::unique_ptr<archive_entry, EntryFree> e(archive_entry_new());
      archive_entry_set_pathname(e.get(), name.c_str());
      archive_entry_set_filetype(e.get(), AE_IFREG);
      archive_entry_set_perm(e.get(), 0644);
      archive_entry_set_size(e.get(), st.st_size);
      archive_entry_set_mtime(e.get(), st.st_mtime, 0);
      CheckWrite(a.get(), archive_write_header(a.get(), e.get()), out_path + ": member " + name);
      std::ifstream f(file, std::ios::binary);
      MLF_EXPECTS(f, "{}: cannot open for reading: {}", file, std::strerror(errno));
      int64_t written = 0;
      while (f) {
        f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        const std::streamsize n = f.gcount();
        if (n <= 0) break;
        MLF_EXPECTS(archive_write_data(a.get(), buf.data(), static_cast<size_t>(n)) == n, "{}: writing member {}: {}",
                    out_path, name, ArchiveError(a.get()));
        written += n;
      }
      MLF_EXPECTS(written == st.st_size, "{}: changed size while being packed ({} then {} bytes)", file, st.st_size,
                  written);
    }
    CheckWrite(a.get(), archive_write_close(a.get()), out_path);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  CommitTempFile(tmp, out_path);
}

namespace {

// Writes `entries` into an opened zip writer, member by member, in pieces of kChunk bytes
// (libarchive's deflate takes at most 4 GiB per call and its zip writer may accept less than asked).
void WriteZipMembers(struct archive* a, const std::vector<ArchiveEntry>& entries, const std::string& what) {
  for (const ArchiveEntry& entry : entries) {
    std::unique_ptr<archive_entry, EntryFree> e(archive_entry_new());
    archive_entry_set_pathname(e.get(), entry.name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0644);
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(entry.data.size()));
    CheckWrite(a, archive_write_header(a, e.get()), what + ": zip member " + entry.name);
    size_t done = 0;
    while (done < entry.data.size()) {
      const size_t n = std::min<size_t>(kChunk, entry.data.size() - done);
      const la_ssize_t w = archive_write_data(a, entry.data.data() + done, n);
      MLF_EXPECTS(w > 0, "{}: zip member {} at byte {}: {}", what, entry.name, done, ArchiveError(a));
      done += static_cast<size_t>(w);
    }
  }
}

void ConfigureZip(struct archive* a, bool compress, const std::string& what) {
  CheckWrite(a, archive_write_set_format_zip(a), what);
  CheckWrite(a, compress ? archive_write_zip_set_compression_deflate(a) : archive_write_zip_set_compression_store(a),
             what);
  // No block padding: the bytes must end where the zip does.
  CheckWrite(a, archive_write_set_bytes_per_block(a, 0), what);
  CheckWrite(a, archive_write_set_bytes_in_last_block(a, 1), what);
}

}  // namespace

std::string MakeZip(const std::vector<ArchiveEntry>& entries, bool compress) {
  std::string out;
  WriteHandle a(archive_write_new());
  MLF_ASSERT(a != nullptr);
  ConfigureZip(a.get(), compress, "zip");
  CheckWrite(a.get(), archive_write_open(a.get(), &out, nullptr, AppendToString, nullptr), "zip");
  WriteZipMembers(a.get(), entries, "zip");
  CheckWrite(a.get(), archive_write_close(a.get()), "zip");
  return out;
}

void WriteZipFile(const std::string& path, const std::vector<ArchiveEntry>& entries, bool compress) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  try {
    WriteHandle a(archive_write_new());
    MLF_ASSERT(a != nullptr);
    ConfigureZip(a.get(), compress, path);
    CheckWrite(a.get(), archive_write_open_filename(a.get(), tmp.c_str()), tmp);
    WriteZipMembers(a.get(), entries, path);
    CheckWrite(a.get(), archive_write_close(a.get()), path);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  CommitTempFile(tmp, path);
}

ModelSource ModelSource::Open(const std::string& path, const ArchiveLimits& limits) {
  ModelSource s;
  s.path_ = path;
  s.limits_ = limits;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  MLF_EXPECTS(!ec && fs::exists(st),
              "{}: no such file or directory (expected a model directory, a model.tar.gz or a model_algo-1 file)",
              path);

  if (fs::is_directory(st)) {
    const std::string model = (fs::path(path) / kModelMemberName).string();
    if (fs::is_regular_file(model, ec)) {
      s.layout_ = Layout::kDirectory;
      s.model_source_ = model;
      s.model_bytes_ = ReadFileCapped(model, limits.max_member_bytes);
      s.model_kind_ = DetectKind(s.model_bytes_);
      for (const std::string& name : FilesUnder(path)) {
        if (name == kModelMemberName) continue;
        s.others_.push_back({name, static_cast<uint64_t>(fs::file_size(fs::path(path) / name, ec))});
      }
      return s;
    }
    std::vector<std::string> files = FilesUnder(path), tarballs;
    for (const std::string& f : files)
      if (f.find('/') == std::string::npos && f.size() > 7 && f.compare(f.size() - 7, 7, ".tar.gz") == 0)
        tarballs.push_back(f);
    if (tarballs.size() != 1) {
      std::string present;
      for (size_t i = 0; i < files.size() && i < 20; ++i) present += (i ? ", " : "") + files[i];
      MLF_FAIL("{}: model directory has no {} {}(files: {})", path, kModelMemberName,
               tarballs.empty() ? "and no model.tar.gz " : "and several *.tar.gz ", present.empty() ? "none" : present);
    }
    s.archive_ = (fs::path(path) / tarballs[0]).string();
  } else {
    const std::string head = ReadHead(path, 512);
    const FileKind kind = DetectKind(head);
    if (kind == FileKind::kNDArrayList || kind == FileKind::kZip) {
      // A bare model_algo-1: k-means / PCA (NDArray list) or linear learner / FM (zip).
      s.layout_ = Layout::kBareFile;
      s.model_source_ = path;
      s.model_bytes_ = ReadFileCapped(path, limits.max_member_bytes);
      s.model_kind_ = kind;
      return s;
    }
    if (kind != FileKind::kGzip && kind != FileKind::kTar)
      MLF_FAIL("{}: not a model: expected a model directory, a model.tar.gz, or a model_algo-1 file (an MXNet "
               "NDArray list or a zip); first bytes: {}",
               path, HexHead(head));
    s.archive_ = path;
  }

  s.layout_ = Layout::kArchive;
  bool found = false;
  ForEachMember(FileInput(s.archive_), limits, [&](const ArchiveMember& m, const std::function<std::string()>& read) {
    if (m.name == kModelMemberName && !found) {
      s.model_bytes_ = read();
      found = true;
    } else {
      s.others_.push_back(m);
    }
    return true;
  });
  std::sort(s.others_.begin(), s.others_.end(),
            [](const ArchiveMember& x, const ArchiveMember& y) { return x.name < y.name; });
  if (!found) {
    std::string present;
    for (size_t i = 0; i < s.others_.size() && i < 20; ++i) present += (i ? ", " : "") + s.others_[i].name;
    MLF_FAIL("{}: no member named '{}' (members: {}); SageMaker's built-in algorithms store the model there",
             s.archive_, kModelMemberName, present.empty() ? "none" : present);
  }
  s.model_source_ = s.archive_ + ":" + kModelMemberName;
  s.model_kind_ = DetectKind(s.model_bytes_);
  return s;
}

std::string ModelSource::ReadMember(const std::string& name) const {
  if (name == kModelMemberName) return model_bytes_;
  // Only names listed in others() are served: a name from a request must not walk out of the
  // model directory ("../...").
  const bool listed = std::any_of(others_.begin(), others_.end(), [&](const ArchiveMember& m) { return m.name == name; });
  MLF_EXPECTS(listed, "{}: no model member named '{}' ({} other members)", path_, name, others_.size());
  switch (layout_) {
    case Layout::kDirectory:
      return ReadFileCapped((fs::path(path_) / name).string(), limits_.max_member_bytes);
    case Layout::kArchive:
      return ReadArchiveMember(archive_, name, limits_);
    case Layout::kBareFile:
      break;
  }
  MLF_ASSERT(false);  // a bare file has no others
  return "";
}

}  // namespace mlforge::io
