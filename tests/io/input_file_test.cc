#include "io/input_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "core/error.h"
#include "tests/testutil.h"

namespace mlforge::io {
namespace {

using test::TempDir;
using test::WriteFile;

std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

std::string ReadAll(InputFile& in, size_t block = 7) {
  std::string out;
  std::vector<char> buf(block);
  for (;;) {
    size_t n = in.Read(buf.data(), buf.size());
    if (n == 0) break;
    out.append(buf.data(), n);
  }
  return out;
}

// Writes `data` into the FIFO at `path` from another thread (open blocks until our reader opens).
std::thread FifoWriter(const std::string& path, std::string data, int delay_ms = 0) {
  return std::thread([path, data, delay_ms] {
    if (delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    int fd = ::open(path.c_str(), O_WRONLY);
    if (fd < 0) return;
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::write(fd, data.data() + off, std::min<size_t>(4096, data.size() - off));
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::close(fd);
  });
}

TEST(InputFileTest, ReadsRegularFile) {
  TempDir dir;
  std::string content;
  for (int i = 0; i < 10000; ++i) content += std::to_string(i) + "\n";
  WriteFile(dir / "a.csv", content);
  auto in = InputFile::Open(dir / "a.csv");
  EXPECT_FALSE(in->is_fifo());
  EXPECT_EQ(in->size(), static_cast<int64_t>(content.size()));
  EXPECT_EQ(in->path(), dir / "a.csv");
  EXPECT_EQ(ReadAll(*in, 4093), content);
  char c;
  EXPECT_EQ(in->Read(&c, 1), 0u);  // stays at EOF
}

TEST(InputFileTest, ReadFullStopsAtEof) {
  TempDir dir;
  WriteFile(dir / "x", "hello");
  auto in = InputFile::Open(dir / "x");
  char buf[16];
  EXPECT_EQ(in->ReadFull(buf, 3), 3u);
  EXPECT_EQ(std::string(buf, 3), "hel");
  EXPECT_EQ(in->ReadFull(buf, 16), 2u);
  EXPECT_EQ(std::string(buf, 2), "lo");
}

TEST(InputFileTest, MissingFileNamesPathAndReason) {
  TempDir dir;
  std::string e = ErrorOf([&] { InputFile::Open(dir / "nope.csv"); });
  EXPECT_NE(e.find(dir / "nope.csv"), std::string::npos) << e;
  EXPECT_NE(e.find("No such file or directory"), std::string::npos) << e;
  std::string d = ErrorOf([&] { InputFile::Open(dir.path()); });
  EXPECT_NE(d.find("is a directory"), std::string::npos) << d;
}

TEST(InputFileTest, ReadsFifoFromWriterThread) {
  TempDir dir;
  std::string path = dir / "train_0";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  std::string data;
  for (int i = 0; i < 50000; ++i) data += "1,2,3\n";  // more than a pipe buffer
  // The writer connects late: Read() must wait for it rather than report a false EOF.
  std::thread w = FifoWriter(path, data, 100);
  auto in = InputFile::Open(path);
  EXPECT_TRUE(in->is_fifo());
  EXPECT_EQ(in->size(), -1);
  EXPECT_EQ(ReadAll(*in, 65536), data);
  w.join();
}

TEST(InputFileTest, FifoWithEmptyWriterIsEmpty) {
  TempDir dir;
  std::string path = dir / "p";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  std::thread w = FifoWriter(path, "", 50);
  auto in = InputFile::Open(path);
  EXPECT_EQ(ReadAll(*in), "");
  w.join();
}

TEST(InputFileTest, StopWhileWaitingForFifoWriter) {
  TempDir dir;
  std::string path = dir / "p";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  std::atomic<bool> flag{false};
  auto in = InputFile::Open(path, StopToken(&flag));  // returns at once: no writer needed
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    flag = true;
  });
  char buf[8];
  EXPECT_THROW(in->Read(buf, sizeof(buf)), StopRequested);
  stopper.join();
}

TEST(InputFileTest, OpenWhenReadyWaitsForLateFifo) {
  TempDir dir;
  std::string path = dir / "train_1";
  std::thread creator([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
    int fd = ::open(path.c_str(), O_WRONLY);  // blocks until the reader has opened
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "abc", 3), 3);
    ::close(fd);
  });
  auto in = InputFile::OpenWhenReady(path, 0);
  EXPECT_TRUE(in->is_fifo());
  EXPECT_EQ(ReadAll(*in), "abc");
  creator.join();
}

TEST(InputFileTest, OpenWhenReadyTimesOut) {
  TempDir dir;
  std::string e = ErrorOf([&] { InputFile::OpenWhenReady(dir / "never_0", 0.2); });
  EXPECT_NE(e.find(dir / "never_0"), std::string::npos) << e;
  EXPECT_NE(e.find("did not appear within 0.2 s"), std::string::npos) << e;
}

TEST(InputFileTest, OpenWhenReadyHonoursStop) {
  TempDir dir;
  std::atomic<bool> flag{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    flag = true;
  });
  EXPECT_THROW(InputFile::OpenWhenReady(dir / "never_0", 0, StopToken(&flag)), StopRequested);
  stopper.join();
}

TEST(ExpandChannelPathsTest, DirectoryIsSortedRecursiveAndSkipsHidden) {
  TempDir dir;
  WriteFile(dir / "b.csv", "1\n");
  WriteFile(dir / "a.csv", "1\n");
  WriteFile(dir / "sub/c.csv", "1\n");
  WriteFile(dir / "sub/a.csv", "1\n");
  WriteFile(dir / ".amazon.manifest", "[]");
  WriteFile(dir / ".hidden.csv", "1\n");
  WriteFile(dir / ".cache/x.csv", "1\n");
  WriteFile(dir / "sub/.DS_Store", "x");
  std::vector<std::string> got = ExpandChannelPaths({dir.path()});
  std::vector<std::string> want = {dir / "a.csv", dir / "b.csv", dir / "sub/a.csv", dir / "sub/c.csv"};
  EXPECT_EQ(got, want);
}

TEST(ExpandChannelPathsTest, ExplicitFilesKeepTheirOrder) {
  TempDir dir;
  WriteFile(dir / "z.csv", "1\n");
  WriteFile(dir / "d/m.csv", "1\n");
  std::vector<std::string> got = ExpandChannelPaths({dir / "z.csv", dir / "d"});
  EXPECT_EQ(got, (std::vector<std::string>{dir / "z.csv", dir / "d/m.csv"}));
}

TEST(ExpandChannelPathsTest, MissingPathAndEmptyChannelAreErrors) {
  TempDir dir;
  std::string missing = ErrorOf([&] { ExpandChannelPaths({dir / "absent"}); });
  EXPECT_NE(missing.find(dir / "absent"), std::string::npos) << missing;
  EXPECT_NE(missing.find("no such file or directory"), std::string::npos) << missing;
  WriteFile(dir / "empty/.amazon.manifest", "[]");
  std::string empty = ErrorOf([&] { ExpandChannelPaths({dir / "empty"}); });
  EXPECT_NE(empty.find("channel is empty"), std::string::npos) << empty;
  EXPECT_NE(empty.find(dir / "empty"), std::string::npos) << empty;
}

}  // namespace
}  // namespace mlforge::io
