#include "core/resources.h"

#include <gtest/gtest.h>

#include <thread>

#include "core/build_config.h"
#include "core/error.h"

namespace mlforge {
namespace {

std::unique_ptr<comm::Communicator> One() { return comm::MakeSingleProcess(); }

TEST(ParseDeviceRequest, AcceptsTheThreeChoicesCaseInsensitively) {
  EXPECT_EQ(ParseDeviceRequest("auto"), DeviceRequest::kAuto);
  EXPECT_EQ(ParseDeviceRequest("CPU"), DeviceRequest::kCpu);
  EXPECT_EQ(ParseDeviceRequest("Gpu"), DeviceRequest::kGpu);
}

TEST(ParseDeviceRequest, RejectsOthersNamingTheFieldAndTheChoices) {
  for (const char* bad : {"tpu", "", "gpu0", " cpu"}) {
    try {
      ParseDeviceRequest(bad, "hyperparameter device");
      FAIL() << "accepted '" << bad << "'";
    } catch (const UserError& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find("hyperparameter device"), std::string::npos) << msg;
      EXPECT_NE(msg.find("auto, cpu, gpu"), std::string::npos) << msg;
      EXPECT_NE(msg.find(std::string("'") + bad + "'"), std::string::npos) << msg;
    }
  }
  EXPECT_THROW(ParseDeviceRequest("x"), UserError);
}

TEST(DeviceName, NamesBothDevices) {
  EXPECT_STREQ(DeviceName(Device::kCpu), "cpu");
  EXPECT_STREQ(DeviceName(Device::kGpu), "gpu");
}

TEST(DetectGpus, NeverThrowsAndIsConsistent) {
  GpuReport r;
  ASSERT_NO_THROW(r = DetectGpus());
  EXPECT_EQ(r.built_with_cuda, MLFORGE_HAVE_CUDA != 0);
  if (r.available) {
    EXPECT_FALSE(r.gpus.empty());
    EXPECT_TRUE(r.reason.empty()) << r.reason;
    for (const GpuInfo& g : r.gpus) {
      EXPECT_FALSE(g.name.empty());
      EXPECT_GT(g.total_memory, 0u);
      EXPECT_GE(g.sm_major, 1);
    }
  } else {
    EXPECT_TRUE(r.gpus.empty());
    EXPECT_FALSE(r.reason.empty());
  }
#if MLFORGE_HAVE_CUDA
  // The runtime answers even without a driver.
  EXPECT_GT(r.runtime_version, 0);
  if (!r.available) {
    EXPECT_NE(r.reason.find("cuda"), std::string::npos) << r.reason;
  }
#else
  EXPECT_FALSE(r.available);
  EXPECT_NE(r.reason.find("built without CUDA"), std::string::npos) << r.reason;
#endif
  // A second call (runtime already initialised or already failed) gives the same answer.
  GpuReport again = DetectGpus();
  EXPECT_EQ(again.available, r.available);
  EXPECT_EQ(again.reason, r.reason);
}

TEST(Resources, AutoUsesTheGpuExactlyWhenOneIsUsable) {
  GpuReport r = DetectGpus();
  Resources res(DeviceRequest::kAuto, 1, 7, One());
  EXPECT_EQ(res.device(), r.available ? Device::kGpu : Device::kCpu);
}

TEST(Resources, GpuRequestWithoutAGpuNamesTheReason) {
  GpuReport r = DetectGpus();
  if (r.available) GTEST_SKIP() << "a GPU is usable here, so a gpu request succeeds";
  try {
    Resources res(DeviceRequest::kGpu, 1, 7, One());
    FAIL() << "gpu request without a GPU did not throw";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), "--device gpu requested but no usable GPU: " + r.reason);
  }
}

TEST(Resources, CpuRequestKeepsSettings) {
  Resources res(DeviceRequest::kCpu, 3, 42, One());
  EXPECT_EQ(res.device(), Device::kCpu);
  EXPECT_EQ(res.threads(), 3);
  EXPECT_EQ(res.seed(), 42u);
  EXPECT_EQ(res.comm().world_size(), 1);
  EXPECT_FALSE(res.stop().stop_requested());
}

TEST(Resources, NonPositiveThreadsMeansAllHardwareThreads) {
  unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  EXPECT_EQ(Resources(DeviceRequest::kCpu, 0, 0, One()).threads(), static_cast<int>(hw));
  EXPECT_EQ(Resources(DeviceRequest::kCpu, -4, 0, One()).threads(), static_cast<int>(hw));
}

TEST(Resources, NeedsACommunicator) {
  EXPECT_THROW(Resources(DeviceRequest::kCpu, 1, 0, nullptr), InternalError);
}

TEST(Resources, CudaStateIsRefusedOnACpuRun) {
  Resources res(DeviceRequest::kCpu, 1, 0, One());
#if MLFORGE_HAVE_CUDA
  EXPECT_THROW(res.cuda(), InternalError);
#else
  try {
    res.cuda();
    FAIL() << "cuda() did not throw";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("built without CUDA"), std::string::npos) << e.what();
  }
#endif
}

TEST(BuildInfo, ReflectsTheConfiguration) {
  BuildInfo b = GetBuildInfo();
  EXPECT_EQ(b.version, MLFORGE_VERSION);
  EXPECT_EQ(b.cuda, MLFORGE_HAVE_CUDA != 0);
  EXPECT_FALSE(b.compiler.empty());
}

}  // namespace
}  // namespace mlforge
