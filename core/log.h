// Logging in the built-in algorithms' format (SPEC.md 2.9):
//   [MM/DD/YYYY HH:MM:SS LEVEL <thread-id>] message
// and the metric lines SageMaker's regexes read (#quality_metric, #progress_metric, ...).
#pragma once

#include <spdlog/spdlog.h>

#include <optional>
#include <string>

namespace mlforge::log {

// Installs the SageMaker-style pattern on the default logger (stderr). level: trace, debug,
// info, warn, error, off. Safe to call more than once.
void Init(const std::string& level = "info");

// host is the resourceconfig current_host ("algo-1" for local runs).
// kind is "loss" or "score". Prints e.g.
//   #quality_metric: host=algo-1, epoch=3, train msd <loss>=0.25
//   #quality_metric: host=algo-1, test ssd <loss>=12.5
void QualityMetric(const std::string& host, const std::string& channel, const std::string& name,
                   const std::string& kind, double value, std::optional<int> epoch = std::nullopt,
                   std::optional<int> batch = std::nullopt);
// #progress_metric: host=algo-1, completed 50.0 % of epochs
void ProgressMetric(const std::string& host, double percent);
// #throughput_metric: host=algo-1, train throughput=12345.6 records/second
void ThroughputMetric(const std::string& host, const std::string& channel, double records_per_second);

// Formats a double the way the metric lines print it (shortest round-trip form).
std::string FormatValue(double v);

}  // namespace mlforge::log
