#include "comm/communicator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <thread>

#include "comm/local_group.h"
#include "core/error.h"

namespace mlforge::comm {
namespace {

using namespace std::chrono_literals;

// Runs body(comm) on one thread per rank; returns each rank's exception message ("" if none).
std::vector<std::string> RunRanks(std::vector<std::unique_ptr<Communicator>>& group,
                                  const std::function<void(Communicator&)>& body) {
  std::vector<std::string> errors(group.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < group.size(); ++r) {
    threads.emplace_back([&, r] {
      try {
        body(*group[r]);
      } catch (const std::exception& e) {
        errors[r] = e.what();
        if (errors[r].empty()) errors[r] = "(exception without message)";
      }
    });
  }
  for (auto& t : threads) t.join();
  return errors;
}

void ExpectNoErrors(const std::vector<std::string>& errors) {
  for (size_t r = 0; r < errors.size(); ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

TEST(SingleProcess, EveryCollectiveIsTheIdentity) {
  auto c = MakeSingleProcess();
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->world_size(), 1);
  double d[3] = {1.5, -2.0, 3.0};
  c->AllReduceSum(d, 3);
  c->AllReduceMax(d, 3);
  EXPECT_EQ(d[0], 1.5);
  EXPECT_EQ(d[1], -2.0);
  float f[2] = {4.0f, 5.0f};
  c->AllReduceSum(f, 2);
  EXPECT_EQ(f[1], 5.0f);
  int v = 17;
  c->Broadcast(&v, sizeof v, 0);
  EXPECT_EQ(v, 17);
  c->Barrier();
  int64_t send = 99, recv = 0;
  c->AllGather(&send, sizeof send, &recv);
  EXPECT_EQ(recv, 99);
}

TEST(LocalGroup, FourRanksSumMaxBroadcastGather) {
  constexpr int kN = 4;
  auto group = MakeLocalGroup(kN, 30s);
  for (int r = 0; r < kN; ++r) {
    EXPECT_EQ(group[r]->rank(), r);
    EXPECT_EQ(group[r]->world_size(), kN);
    EXPECT_EQ(group[r]->backend(), "local");
  }
  std::vector<std::vector<double>> sums(kN), maxes(kN);
  std::vector<std::vector<float>> fsums(kN);
  std::vector<std::vector<int32_t>> gathered(kN);
  std::vector<int64_t> broadcast(kN);
  auto errors = RunRanks(group, [&](Communicator& c) {
    const int r = c.rank();
    // Several rounds so that generations wrap through the shared slots more than once.
    for (int round = 0; round < 50; ++round) {
      std::vector<double> s = {static_cast<double>(r), 1e15, 0.1 * r, -static_cast<double>(round)};
      c.AllReduceSum(s.data(), s.size());
      std::vector<float> fs = {static_cast<float>(r + 1), 0.5f};
      c.AllReduceSum(fs.data(), fs.size());
      std::vector<double> m = {static_cast<double>(r), -static_cast<double>(r), r == 2 ? 7.0 : 1.0};
      c.AllReduceMax(m.data(), m.size());
      int64_t b = r == 2 ? 12345 + round : -1;
      c.Broadcast(&b, sizeof b, 2);
      int32_t mine[2] = {r, r * r};
      std::vector<int32_t> all(2 * kN, -1);
      c.AllGather(mine, sizeof mine, all.data());
      c.Barrier();
      if (round == 49) {
        sums[r] = s;
        fsums[r] = fs;
        maxes[r] = m;
        broadcast[r] = b;
        gathered[r] = all;
      }
    }
  });
  ExpectNoErrors(errors);
  for (int r = 0; r < kN; ++r) {
    EXPECT_EQ(sums[r][0], 0.0 + 1 + 2 + 3);
    EXPECT_EQ(sums[r][1], 4e15);
    EXPECT_NEAR(sums[r][2], 0.6, 1e-15);
    EXPECT_EQ(sums[r][3], -4.0 * 49);
    // Bitwise identical on every rank (rank-ordered reduction).
    EXPECT_EQ(std::memcmp(sums[r].data(), sums[0].data(), sums[0].size() * sizeof(double)), 0);
    EXPECT_EQ(fsums[r][0], 10.0f);
    EXPECT_EQ(fsums[r][1], 2.0f);
    EXPECT_EQ(maxes[r], (std::vector<double>{3.0, 0.0, 7.0}));
    EXPECT_EQ(broadcast[r], 12345 + 49);
    EXPECT_EQ(gathered[r], (std::vector<int32_t>{0, 0, 1, 1, 2, 4, 3, 9}));
  }
}

TEST(LocalGroup, BarrierReleasesOnlyWhenAllArrived) {
  constexpr int kN = 4;
  auto group = MakeLocalGroup(kN, 30s);
  std::atomic<int> before{0};
  std::vector<int> seen(kN, -1);
  auto errors = RunRanks(group, [&](Communicator& c) {
    // Stagger arrivals so that early ranks really wait.
    std::this_thread::sleep_for(std::chrono::milliseconds(5 * c.rank()));
    before.fetch_add(1);
    c.Barrier();
    seen[c.rank()] = before.load();
  });
  ExpectNoErrors(errors);
  for (int r = 0; r < kN; ++r) EXPECT_EQ(seen[r], kN) << "rank " << r << " left the barrier early";
}

TEST(LocalGroup, AllGatherInPlace) {
  auto group = MakeLocalGroup(3, 30s);
  std::vector<std::vector<double>> out(3);
  auto errors = RunRanks(group, [&](Communicator& c) {
    std::vector<double> buf(3, -1.0);
    buf[c.rank()] = 10.0 * c.rank();
    c.AllGather(&buf[c.rank()], sizeof(double), buf.data());
    out[c.rank()] = buf;
  });
  ExpectNoErrors(errors);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(out[r], (std::vector<double>{0.0, 10.0, 20.0}));
}

TEST(LocalGroup, MissingRankTimesOutOnEveryWaitingRankNamingIt) {
  auto group = MakeLocalGroup(4, 1s);
  std::atomic<int> ready{0};
  auto errors = RunRanks(group, [&](Communicator& c) {
    double x = 1.0;
    c.AllReduceSum(&x, 1);      // everyone takes part
    if (c.rank() == 3) return;  // rank 3 "crashes" before the barrier
    // Start the deadline only once every live rank is here, so a slow thread start on a loaded
    // machine cannot be mistaken for a missing rank.
    ready.fetch_add(1);
    while (ready.load() < 3) std::this_thread::yield();
    c.Barrier();
  });
  for (int r = 0; r < 3; ++r) {
    EXPECT_NE(errors[r].find("Barrier timed out"), std::string::npos) << "rank " << r << ": " << errors[r];
    EXPECT_NE(errors[r].find("rank(s) 3 did not arrive"), std::string::npos)
        << "rank " << r << ": " << errors[r];
  }
  EXPECT_EQ(errors[3], "");
  // The group stays broken: the late rank and any later call fail at once with the same message.
  try {
    group[3]->Barrier();
    FAIL() << "a broken group accepted a collective";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("rank(s) 3 did not arrive"), std::string::npos) << e.what();
  }
  EXPECT_THROW(group[0]->Barrier(), std::runtime_error);
}

TEST(LocalGroup, SeveralMissingRanksAreAllNamed) {
  auto group = MakeLocalGroup(4, 500ms);
  std::atomic<int> ready{0};
  auto errors = RunRanks(group, [&](Communicator& c) {
    if (c.rank() == 1 || c.rank() == 2) return;
    ready.fetch_add(1);
    while (ready.load() < 2) std::this_thread::yield();
    float v = 1.0f;
    c.AllReduceMax(&v, 1);
  });
  EXPECT_NE(errors[0].find("rank(s) 1, 2 did not arrive"), std::string::npos) << errors[0];
  EXPECT_NE(errors[3].find("rank(s) 1, 2 did not arrive"), std::string::npos) << errors[3];
}

TEST(LocalGroup, MismatchedCollectivesFailOnEveryRank) {
  auto group = MakeLocalGroup(3, 30s);
  auto errors = RunRanks(group, [&](Communicator& c) {
    std::vector<double> v(c.rank() == 1 ? 2 : 3, 1.0);
    c.AllReduceSum(v.data(), v.size());
  });
  for (int r = 0; r < 3; ++r) {
    EXPECT_NE(errors[r].find("mismatched collectives"), std::string::npos)
        << "rank " << r << ": " << errors[r];
    EXPECT_NE(errors[r].find("rank 1 called AllReduceSum(double) (size 2"), std::string::npos) << errors[r];
  }
}

TEST(LocalGroup, SingleRankGroupWorks) {
  auto group = MakeLocalGroup(1, 1s);
  double x[2] = {1.0, 2.0};
  group[0]->AllReduceSum(x, 2);
  group[0]->Barrier();
  EXPECT_EQ(x[1], 2.0);
}

TEST(LocalGroup, RejectsBadArguments) {
  EXPECT_THROW(MakeLocalGroup(0, 1s), UserError);
  EXPECT_THROW(MakeLocalGroup(2, 0ms), UserError);
}

}  // namespace
}  // namespace mlforge::comm
