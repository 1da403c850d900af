#include "core/log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace mlforge {
namespace {

// Routes the default logger into a string for the lifetime of the fixture, with the pattern
// log::Init installs (Init formats every registered logger, so ours gets the real format).
class LogCapture : public ::testing::Test {
 protected:
  void SetUp() override {
    log::Init("info");  // runs Init's one-time setup first, so it cannot replace our logger
    previous_ = spdlog::default_logger();
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    auto logger = std::make_shared<spdlog::logger>("log_test_capture", sink);
    spdlog::set_default_logger(logger);
    log::Init("info");
  }
  void TearDown() override {
    spdlog::set_default_logger(previous_);
    log::Init("info");
  }
  std::vector<std::string> Lines() const {
    std::vector<std::string> lines;
    std::istringstream in(out_.str());
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }
  // The message part after the "[MM/DD/YYYY HH:MM:SS LEVEL tid] " prefix.
  static std::string Message(const std::string& line) {
    size_t end = line.find("] ");
    return end == std::string::npos ? line : line.substr(end + 2);
  }
  // The first capture group of SageMaker's metric regex applied to `line`, or "<no match>".
  static std::string Capture(const std::string& pattern, const std::string& line) {
    std::smatch m;
    if (!std::regex_search(line, m, std::regex(pattern))) return "<no match>";
    return m[1].str();
  }

  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

// The built-in images' prefix: [MM/DD/YYYY HH:MM:SS LEVEL <thread-id>] (SPEC.md 2.9).
const char* kPrefix = R"(^\[\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2} (INFO|WARNING|ERROR|DEBUG) \d+\] )";

TEST_F(LogCapture, PrefixUsesUpperCaseFullLevelNames) {
  spdlog::set_level(spdlog::level::debug);
  spdlog::info("hello");
  spdlog::warn("careful");
  spdlog::error("broken");
  spdlog::debug("details");
  auto lines = Lines();
  ASSERT_EQ(lines.size(), 4u) << out_.str();
  const char* levels[] = {"INFO", "WARNING", "ERROR", "DEBUG"};
  const char* messages[] = {"hello", "careful", "broken", "details"};
  for (size_t i = 0; i < 4; ++i) {
    std::smatch m;
    ASSERT_TRUE(std::regex_search(lines[i], m, std::regex(kPrefix))) << lines[i];
    EXPECT_EQ(m[1].str(), levels[i]);
    EXPECT_EQ(Message(lines[i]), messages[i]);
  }
}

TEST_F(LogCapture, QualityMetricMatchesSageMakerRegexes) {
  log::QualityMetric("algo-1", "train", "msd", "loss", 0.25);
  log::QualityMetric("algo-1", "test", "ssd", "loss", 12.5);
  log::QualityMetric("algo-2", "test", "msd", "loss", 1e-05);
  log::QualityMetric("algo-1", "train", "binary_cross_entropy_objective", "loss", 0.5, 3);
  log::QualityMetric("algo-1", "validation", "binary_f_1.000", "score", 0.75, 3);
  log::QualityMetric("algo-1", "train", "rmse", "loss", 0.19, 2, 40);
  auto lines = Lines();
  ASSERT_EQ(lines.size(), 6u) << out_.str();
  EXPECT_EQ(Message(lines[0]), "#quality_metric: host=algo-1, train msd <loss>=0.25");
  EXPECT_EQ(Message(lines[1]), "#quality_metric: host=algo-1, test ssd <loss>=12.5");
  EXPECT_EQ(Message(lines[3]),
            "#quality_metric: host=algo-1, epoch=3, train binary_cross_entropy_objective <loss>=0.5");
  EXPECT_EQ(Message(lines[5]), "#quality_metric: host=algo-1, epoch=2, batch=40 train rmse <loss>=0.19");
  // k-means (SDK doc/overview.rst)
  EXPECT_EQ(Capture(R"(#quality_metric: host=\S+, train msd <loss>=(\S+))", lines[0]), "0.25");
  EXPECT_EQ(Capture(R"(#quality_metric: host=\S+, test ssd <loss>=(\S+))", lines[1]), "12.5");
  EXPECT_EQ(Capture(R"(#quality_metric: host=\S+, test msd <loss>=(\S+))", lines[2]), "1e-05");
  // linear learner per-epoch objective and F-beta
  EXPECT_EQ(Capture(R"(#quality_metric: host=\S+, epoch=\S+, train \S+_objective <loss>=(\S+))", lines[3]),
            "0.5");
  EXPECT_EQ(
      Capture(R"(#quality_metric: host=\S+, epoch=\S+, validation binary_f_\S+ <score>=(\S+))", lines[4]),
      "0.75");
  // factorization machines per-batch
  EXPECT_EQ(Capture(R"(#quality_metric: host=\S+, epoch=\S+, batch=\S+ train rmse <loss>=(\S+))", lines[5]),
            "0.19");
  // The final-value regex must not match the per-epoch line (SageMaker keeps them apart).
  EXPECT_EQ(Capture(R"(#quality_metric: host=\S+, train \S+_objective <loss>=(\S+))", lines[3]),
            "<no match>");
}

TEST_F(LogCapture, ProgressAndThroughputMatchSageMakerRegexes) {
  log::ProgressMetric("algo-1", 100);
  log::ProgressMetric("algo-1", 33.333333);
  log::ThroughputMetric("algo-1", "train", 12345.5);
  auto lines = Lines();
  ASSERT_EQ(lines.size(), 3u) << out_.str();
  EXPECT_EQ(Message(lines[0]), "#progress_metric: host=algo-1, completed 100.0 % of epochs");
  EXPECT_EQ(Message(lines[1]), "#progress_metric: host=algo-1, completed 33.3 % of epochs");
  EXPECT_EQ(Message(lines[2]), "#throughput_metric: host=algo-1, train throughput=12345.5 records/second");
  EXPECT_EQ(Capture(R"(#progress_metric: host=\S+, completed (\S+) %)", lines[0]), "100.0");
  EXPECT_EQ(Capture(R"(#throughput_metric: host=\S+, train throughput=(\S+) records/second)", lines[2]),
            "12345.5");
  for (const auto& line : lines) EXPECT_TRUE(std::regex_search(line, std::regex(kPrefix))) << line;
}

TEST(LogFormat, FormatValueIsShortestRoundTrip) {
  EXPECT_EQ(log::FormatValue(0.1), "0.1");
  EXPECT_EQ(log::FormatValue(2), "2");
  EXPECT_EQ(log::FormatValue(1.0 / 3), "0.3333333333333333");
}

}  // namespace
}  // namespace mlforge
