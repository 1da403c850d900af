// Model archives, through libarchive: SageMaker's model.tar.gz (members at the top level, e.g.
// `model_algo-1`, `state_<uuid>`), and the zip that the linear learner and FM store as their
// `model_algo-1`. Reading works from a path or from bytes in memory (a zip found inside a tarball).
//
// Archives are untrusted input: every member is capped (default 4 GiB, and 16 GiB for a whole
// archive read at once) while it is decompressed, so a zip bomb or a lying size field fails with a
// UserError naming the archive and the member instead of exhausting memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mlforge::io {

// What a file is, from its first bytes.
enum class FileKind {
  kUnknown,
  kGzip,         // 1f 8b (a model.tar.gz)
  kTar,          // "ustar" at byte 257 (an uncompressed tarball)
  kZip,          // PK 03 04 (or an empty zip's PK 05 06): linear learner / FM model_algo-1
  kNDArrayList,  // uint64 0x112: k-means / PCA model_algo-1, .params files
};
std::string FileKindName(FileKind kind);
// `head` is the start of the file (at least 262 bytes to recognise a plain tar).
FileKind DetectKind(std::string_view head);
// Reads the first bytes of `path`; UserError when it cannot be opened.
FileKind DetectFileKind(const std::string& path);

struct ArchiveLimits {
  uint64_t max_member_bytes = uint64_t{4} << 30;  // one decompressed member
  uint64_t max_total_bytes = uint64_t{16} << 30;  // all members read by one ReadArchive call
  uint64_t max_members = 100000;
};

struct ArchiveMember {
  std::string name;  // path inside the archive, a leading "./" removed
  uint64_t size = 0;  // as the header declares it (checked while reading)
};

struct ArchiveEntry {
  std::string name;
  std::string data;
};

// Regular-file members (directories and links are skipped), in archive order. Accepts tar,
// tar.gz and zip. UserError "<source>: ..." for a file that is not one of those or is damaged.
std::vector<ArchiveMember> ListArchive(const std::string& path, const ArchiveLimits& limits = {});
std::vector<ArchiveMember> ListArchiveBuffer(std::string_view bytes, const std::string& source,
                                             const ArchiveLimits& limits = {});

// The bytes of member `name` (leading "./" ignored on both sides). UserError listing the members
// present when it is absent.
std::string ReadArchiveMember(const std::string& path, const std::string& name, const ArchiveLimits& limits = {});
std::string ReadArchiveMemberBuffer(std::string_view bytes, const std::string& source, const std::string& name,
                                    const ArchiveLimits& limits = {});

// Every regular-file member with its bytes.
std::vector<ArchiveEntry> ReadArchive(const std::string& path, const ArchiveLimits& limits = {});
std::vector<ArchiveEntry> ReadArchiveBuffer(std::string_view bytes, const std::string& source,
                                            const ArchiveLimits& limits = {});

// Writes `out_path` (a gzip-compressed ustar/pax tarball, atomically: temp file + rename) from the
// regular files under `dir`, named relative to it (top-level files become top-level members, as
// SageMaker packs /opt/ml/model), sorted by name so the member order is reproducible. `out_path`
// itself is skipped if it lies inside `dir`; its parent directories are created. UserError when
// `dir` has no files.
void WriteModelTarGz(const std::string& dir, const std::string& out_path);

// A zip holding `entries` in the given order, as bytes: how the linear learner and FM
// `model_algo-1` is built. compress: deflate; else stored (as SageMaker's FM image stores its
// members: a large float array gains little from deflate and costs minutes).
std::string MakeZip(const std::vector<ArchiveEntry>& entries, bool compress = true);
// The same zip written to `path` atomically (temp file + rename) without a copy in memory.
void WriteZipFile(const std::string& path, const std::vector<ArchiveEntry>& entries, bool compress = true);

// The member SageMaker's built-in algorithms store their model in (rank 0 is always algo-1).
constexpr const char* kModelMemberName = "model_algo-1";

// Where a model comes from, for `mlforge predict --model` and `serve`: a model directory (what
// SageMaker extracts to /opt/ml/model), a model.tar.gz (or plain tar), or a bare model_algo-1 file.
class ModelSource {
 public:
  // UserError naming `path` when it is none of the above, or when it has no model_algo-1.
  // A directory without model_algo-1 but with exactly one *.tar.gz is opened as that tarball.
  static ModelSource Open(const std::string& path, const ArchiveLimits& limits = {});

  const std::string& path() const { return path_; }
  // Bytes of model_algo-1, and what they are (kNDArrayList or kZip for the built-ins).
  const std::string& model_bytes() const { return model_bytes_; }
  FileKind model_kind() const { return model_kind_; }
  // A name for model_algo-1 in messages: "<tarball>:model_algo-1", "<dir>/model_algo-1" or the path.
  const std::string& model_source() const { return model_source_; }
  // The other members or files next to model_algo-1 (state_<uuid>, ...), sorted by name.
  const std::vector<ArchiveMember>& others() const { return others_; }
  // Bytes of one of others() (or model_algo-1). UserError when absent.
  std::string ReadMember(const std::string& name) const;

 private:
  enum class Layout { kDirectory, kArchive, kBareFile };
  std::string path_;     // as given
  std::string archive_;  // the tarball read (kArchive), possibly inside a directory
  Layout layout_ = Layout::kBareFile;
  ArchiveLimits limits_;
  std::string model_bytes_;
  FileKind model_kind_ = FileKind::kUnknown;
  std::string model_source_;
  std::vector<ArchiveMember> others_;
};

}  // namespace mlforge::io
