// model.tar.gz / tar / zip reading and writing, ModelSource's three layouts, size limits and the
// errors for files that are not archives.
#include "io/archive.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/ndarray.h"
#include "tests/testutil.h"

namespace mlforge::io {
namespace {

std::string CentroidsBytes() {
  NDArrayList list;
  list.arrays.push_back(NDArray::Dense("", {2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6}));
  return SerializeNDArrayList(list);
}

// Decompresses a gzip file with zlib (independently of libarchive) to get a plain tar.
std::string Gunzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  EXPECT_NE(f, nullptr);
  std::string out;
  char buf[4096];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  gzclose(f);
  return out;
}

std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a UserError";
  return "";
}

TEST(Archive, WritesAModelTarGzAndReadsItBack) {
  test::TempDir dir;
  const std::string model = CentroidsBytes();
  const std::string state(100000, '\x07');
  test::WriteFile(dir / "model/model_algo-1", model);
  test::WriteFile(dir / "model/state_1234", state);
  test::WriteFile(dir / "model/sub/extra.json", "{}");
  WriteModelTarGz(dir / "model", dir / "model.tar.gz");
  EXPECT_EQ(DetectFileKind(dir / "model.tar.gz"), FileKind::kGzip);

  const std::vector<ArchiveMember> members = ListArchive(dir / "model.tar.gz");
  ASSERT_EQ(members.size(), 3u);
  EXPECT_EQ(members[0].name, "model_algo-1");  // top level, sorted
  EXPECT_EQ(members[0].size, model.size());
  EXPECT_EQ(members[1].name, "state_1234");
  EXPECT_EQ(members[2].name, "sub/extra.json");

  const std::vector<ArchiveEntry> all = ReadArchive(dir / "model.tar.gz");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].data, model);
  EXPECT_EQ(all[1].data, state);
  EXPECT_EQ(ReadArchiveMember(dir / "model.tar.gz", "./state_1234"), state);
  const std::string msg = ErrorOf([&] { ReadArchiveMember(dir / "model.tar.gz", "model_algo-2"); });
  EXPECT_NE(msg.find("no member named 'model_algo-2'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("state_1234"), std::string::npos) << msg;

  // The same bytes as a plain tar (gunzipped by zlib) read from memory.
  const std::string tar = Gunzip(dir / "model.tar.gz");
  EXPECT_EQ(DetectKind(tar), FileKind::kTar);
  EXPECT_EQ(ReadArchiveMemberBuffer(tar, "model.tar", "model_algo-1"), model);

  // Packing a directory into a file inside it skips the output itself.
  WriteModelTarGz(dir / "model", dir / "model/model.tar.gz");
  EXPECT_EQ(ListArchive(dir / "model/model.tar.gz").size(), 3u);
  EXPECT_THROW(WriteModelTarGz(dir / "empty-missing", dir / "x.tar.gz"), UserError);
}

TEST(Archive, ReadsZipsFromMemory) {
  const std::string params = CentroidsBytes();
  const std::string zip = MakeZip({{"manifest.json", R"({"version": 1})"}, {"mx-mod-0000.params", params}});
  EXPECT_EQ(DetectKind(zip), FileKind::kZip);
  const std::vector<ArchiveMember> members = ListArchiveBuffer(zip, "model_algo-1");
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[0].name, "manifest.json");
  EXPECT_EQ(members[1].name, "mx-mod-0000.params");
  EXPECT_EQ(ReadArchiveMemberBuffer(zip, "model_algo-1", "mx-mod-0000.params"), params);
  EXPECT_EQ(ReadArchiveBuffer(zip, "model_algo-1")[0].data, R"({"version": 1})");
}

TEST(Archive, StoredAndDeflatedZipsInMemoryAndOnDisk) {
  // A member of several write chunks, stored (as SageMaker's FM artifact) and deflated.
  std::string big(3 * 65536 + 123, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 2654435761u >> 24);
  const std::vector<ArchiveEntry> entries = {{"meta.json", "{}"}, {"params", big}};
  test::TempDir dir;
  for (const bool compress : {false, true}) {
    const std::string zip = MakeZip(entries, compress);
    EXPECT_EQ(ReadArchiveMemberBuffer(zip, "zip", "params"), big);
    if (!compress) EXPECT_GT(zip.size(), big.size()) << "stored members are not compressed";
    WriteZipFile(dir / "m.zip", entries, compress);
    EXPECT_EQ(test::ReadFile(dir / "m.zip"), zip) << "the file holds the same bytes as the in-memory zip";
    EXPECT_EQ(ReadArchiveMember(dir / "m.zip", "params"), big);
  }
}

TEST(Archive, MemberLimitsStopZipBombs) {
  const std::string zeros(1 << 20, '\0');
  const std::string zip = MakeZip({{"a", zeros}, {"b", zeros}});
  EXPECT_LT(zip.size(), zeros.size() / 50);  // it really is a small file that inflates
  ArchiveLimits small;
  small.max_member_bytes = 64 << 10;
  std::string msg = ErrorOf([&] { ReadArchiveMemberBuffer(zip, "bomb.zip", "a", small); });
  EXPECT_NE(msg.find("bomb.zip: member 'a'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("limit of 65536"), std::string::npos) << msg;
  ArchiveLimits total;
  total.max_total_bytes = (1 << 20) + 10;
  msg = ErrorOf([&] { ReadArchiveBuffer(zip, "bomb.zip", total); });
  EXPECT_NE(msg.find("total limit"), std::string::npos) << msg;
  ArchiveLimits few;
  few.max_members = 1;
  EXPECT_THROW(ListArchiveBuffer(zip, "bomb.zip", few), UserError);
}

TEST(Archive, NonArchivesGiveClearErrors) {
  test::TempDir dir;
  test::WriteFile(dir / "notes.txt", "hello, this is not an archive");
  std::string msg = ErrorOf([&] { ListArchive(dir / "notes.txt"); });
  EXPECT_NE(msg.find("notes.txt: not a tar.gz, tar or zip archive"), std::string::npos) << msg;
  test::WriteFile(dir / "model_algo-1", CentroidsBytes());
  msg = ErrorOf([&] { ListArchive(dir / "model_algo-1"); });
  EXPECT_NE(msg.find("is an MXNet NDArray list file"), std::string::npos) << msg;
  EXPECT_THROW(ListArchive(dir / "missing.tar.gz"), UserError);
  EXPECT_THROW(ListArchiveBuffer("", "empty"), UserError);

  // Every truncation of a real tar.gz fails with a UserError (or, for a prefix that still holds
  // the whole member, reads it correctly), never crashes.
  test::WriteFile(dir / "m/model_algo-1", CentroidsBytes());
  WriteModelTarGz(dir / "m", dir / "m.tar.gz");
  const std::string gz = test::ReadFile(dir / "m.tar.gz");
  for (size_t n = 0; n < gz.size(); ++n) {
    try {
      EXPECT_EQ(ReadArchiveMemberBuffer(std::string_view(gz).substr(0, n), "cut.tar.gz", "model_algo-1"),
                CentroidsBytes());
    } catch (const UserError&) {
    }
  }
}

TEST(ModelSource, OpensDirectoriesTarballsAndBareFiles) {
  test::TempDir dir;
  const std::string model = CentroidsBytes();
  test::WriteFile(dir / "model/model_algo-1", model);
  test::WriteFile(dir / "model/state_abc", "state");
  WriteModelTarGz(dir / "model", dir / "out/model.tar.gz");

  const ModelSource from_dir = ModelSource::Open(dir / "model");
  EXPECT_EQ(from_dir.model_bytes(), model);
  EXPECT_EQ(from_dir.model_kind(), FileKind::kNDArrayList);
  ASSERT_EQ(from_dir.others().size(), 1u);
  EXPECT_EQ(from_dir.others()[0].name, "state_abc");
  EXPECT_EQ(from_dir.others()[0].size, 5u);
  EXPECT_EQ(from_dir.ReadMember("state_abc"), "state");
  EXPECT_THROW(from_dir.ReadMember("../out/model.tar.gz"), UserError);

  const ModelSource from_tar = ModelSource::Open(dir / "out/model.tar.gz");
  EXPECT_EQ(from_tar.model_bytes(), model);
  EXPECT_EQ(from_tar.model_source(), (dir / "out/model.tar.gz") + ":model_algo-1");
  ASSERT_EQ(from_tar.others().size(), 1u);
  EXPECT_EQ(from_tar.ReadMember("state_abc"), "state");

  // A directory holding only the tarball (what a user downloads from S3).
  const ModelSource from_out = ModelSource::Open(dir / "out");
  EXPECT_EQ(from_out.model_bytes(), model);

  const ModelSource bare = ModelSource::Open(dir / "model/model_algo-1");
  EXPECT_EQ(bare.model_bytes(), model);
  EXPECT_TRUE(bare.others().empty());

  // A linear-learner style zip model_algo-1.
  test::WriteFile(dir / "ll/model_algo-1", MakeZip({{"mx-mod-0000.params", model}}));
  const ModelSource zip = ModelSource::Open(dir / "ll/model_algo-1");
  EXPECT_EQ(zip.model_kind(), FileKind::kZip);
  EXPECT_EQ(ReadArchiveMemberBuffer(zip.model_bytes(), zip.model_source(), "mx-mod-0000.params"), model);
}

TEST(ModelSource, ExplainsWhatIsMissing) {
  test::TempDir dir;
  std::string msg = ErrorOf([&] { ModelSource::Open(dir / "nothing-here"); });
  EXPECT_NE(msg.find("no such file or directory"), std::string::npos) << msg;
  test::WriteFile(dir / "d/readme.txt", "x");
  msg = ErrorOf([&] { ModelSource::Open(dir / "d"); });
  EXPECT_NE(msg.find("no model_algo-1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("readme.txt"), std::string::npos) << msg;
  msg = ErrorOf([&] { ModelSource::Open(dir / "d/readme.txt"); });
  EXPECT_NE(msg.find("not a model"), std::string::npos) << msg;
  test::WriteFile(dir / "t/state_1", "s");
  WriteModelTarGz(dir / "t", dir / "t.tar.gz");
  msg = ErrorOf([&] { ModelSource::Open(dir / "t.tar.gz"); });
  EXPECT_NE(msg.find("no member named 'model_algo-1'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("state_1"), std::string::npos) << msg;
}

}  // namespace
}  // namespace mlforge::io
