#include "core/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <charconv>
#include <mutex>

namespace mlforge::log {

void Init(const std::string& level) {
  static std::once_flag once;
  std::call_once(once, [] {
    auto logger = spdlog::stderr_logger_mt("mlforge");
    spdlog::set_default_logger(logger);
  });
  // %l is the level name; upper-case it to match the built-in images ("INFO").
  spdlog::set_pattern("[%m/%d/%Y %H:%M:%S %^%L%$ %t] %v");
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::flush_on(spdlog::level::info);
}

std::string FormatValue(double v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, res.ptr);
}

void QualityMetric(const std::string& host, const std::string& channel, const std::string& name,
                   const std::string& kind, double value, std::optional<int> epoch,
                   std::optional<int> batch) {
  std::string prefix = "#quality_metric: host=" + host + ", ";
  if (epoch) prefix += "epoch=" + std::to_string(*epoch) + ", ";
  if (batch) prefix += "batch=" + std::to_string(*batch) + " ";
  spdlog::info("{}{} {} <{}>={}", prefix, channel, name, kind, FormatValue(value));
}

void ProgressMetric(const std::string& host, double percent) {
  spdlog::info("#progress_metric: host={}, completed {:.1f} % of epochs", host, percent);
}

void ThroughputMetric(const std::string& host, const std::string& channel, double records_per_second) {
  spdlog::info("#throughput_metric: host={}, {} throughput={} records/second", host, channel,
               FormatValue(records_per_second));
}

}  // namespace mlforge::log
