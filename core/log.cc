#include "core/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <charconv>
#include <memory>
#include <mutex>

namespace mlforge::log {
namespace {

// spdlog's %l prints "info"/"warning" and %L one letter; the built-in images print the full
// upper-case Python logging names ("INFO", "WARNING"), and log scrapers key on them.
class UpperLevelFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    const char* name = LevelName(msg.level);
    dest.append(name, name + std::char_traits<char>::length(name));
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<UpperLevelFlag>(); }

 private:
  static const char* LevelName(spdlog::level::level_enum level) {
    switch (level) {
      case spdlog::level::trace:
        return "TRACE";
      case spdlog::level::debug:
        return "DEBUG";
      case spdlog::level::info:
        return "INFO";
      case spdlog::level::warn:
        return "WARNING";
      case spdlog::level::err:
        return "ERROR";
      case spdlog::level::critical:
        return "CRITICAL";
      default:
        return "NOTSET";
    }
  }
};

}  // namespace

void Init(const std::string& level) {
  static std::once_flag once;
  std::call_once(once, [] {
    auto logger = spdlog::stderr_logger_mt("mlforge");
    spdlog::set_default_logger(logger);
  });
  // Applies to every registered logger (tests register a capturing one before calling Init).
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<UpperLevelFlag>('*').set_pattern("[%m/%d/%Y %H:%M:%S %* %t] %v");
  spdlog::set_formatter(std::move(formatter));
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
