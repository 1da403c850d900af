#include "core/stop.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "tests/testutil.h"

namespace mlforge {
namespace {

using test::TempDir;

constexpr char kReason[] = "ClientError: an input file shrank while mlforge was reading it";

// Many threads fault on a truncated mapping at the same moment, as the channel reader's reader
// thread and decode workers can: the failure file must still hold the reason once (before the
// handler let only its first thread report, a later thread's O_TRUNC could empty the file just
// before the first one's _exit ended the process). Repeated, since the race is one of timing.
TEST(SigbusHandlerTest, ManyThreadsFaultingAtOnceLeaveOneCompleteReason) {
  TempDir dir;
  const std::string data = dir / "data";
  const std::string failure = dir / "failure";
  constexpr size_t kPages = 64;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  for (int round = 0; round < 40; ++round) {
    SCOPED_TRACE(round);
    test::WriteFile(data, std::string(kPages * page, 'x'));  // the child truncates it
    ::unlink(failure.c_str());
    auto run = [&] {
      InstallSigbusHandler(2);
      SetSignalFailureFile(failure);
      const int fd = ::open(data.c_str(), O_RDWR);
      if (fd < 0) std::_Exit(9);
      void* p = ::mmap(nullptr, kPages * page, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) std::_Exit(9);
      if (::ftruncate(fd, 0) != 0) std::_Exit(9);
      const volatile char* bytes = static_cast<const char*>(p);
      std::atomic<int> ready{0};
      std::atomic<bool> go{false};
      std::vector<std::thread> threads;
      const int n = 8;
      for (int t = 0; t < n; ++t) {
        threads.emplace_back([&, t] {
          ready.fetch_add(1);
          while (!go.load()) {
          }
          // Each thread faults on pages of its own, over and over.
          for (size_t i = 0;; ++i) (void)bytes[((static_cast<size_t>(t) + i * n) % kPages) * page];
        });
      }
      while (ready.load() < n) {
      }
      go.store(true);
      for (auto& th : threads) th.join();
      std::_Exit(0);  // not reached
    };
    EXPECT_EXIT(run(), ::testing::ExitedWithCode(2), kReason);
    const std::string text = test::ReadFile(failure);
    ASSERT_EQ(text.find(kReason), 0u) << "failure file: '" << text << "'";
    // One report, not several run together.
    EXPECT_EQ(text.find(kReason, 1), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace mlforge
