#include "algos/algorithms.h"

#include <cctype>

#include "algos/factorization_machines/factorization_machines.h"
#include "algos/kmeans/kmeans.h"
#include "algos/linear_learner/linear_learner.h"
#include "algos/pca/pca.h"
#include "core/error.h"

namespace mlforge::algos {
namespace {

std::string Normalize(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

const char* InputModeName(InputMode m) {
  switch (m) {
    case InputMode::kFile:
      return "File";
    case InputMode::kFastFile:
      return "FastFile";
    case InputMode::kPipe:
      return "Pipe";
  }
  return "?";
}

const char* S3DistributionName(S3Distribution d) {
  return d == S3Distribution::kShardedByS3Key ? "ShardedByS3Key" : "FullyReplicated";
}

const char* RecordWrapperName(RecordWrapper w) { return w == RecordWrapper::kRecordIO ? "RecordIO" : "None"; }

const std::vector<Algorithm>& BuiltinAlgorithms() {
  // One entry per algorithm, in the order `mlforge --help` lists them. k-means comes first.
  static const std::vector<Algorithm> table = {kmeans::Entry(), linear_learner::Entry(), pca::Entry(),
                                                 factorization_machines::Entry()};
  return table;
}

std::string AlgorithmNames(const std::vector<Algorithm>& table) {
  if (table.empty()) return "(none)";
  std::string out;
  for (const auto& a : table) out += (out.empty() ? "" : ", ") + a.name;
  return out;
}

const Algorithm& FindAlgorithm(const std::vector<Algorithm>& table, const std::string& name) {
  const std::string key = Normalize(name);
  std::vector<std::string> names;
  for (const auto& a : table) {
    if (Normalize(a.name) == key) return a;
    names.push_back(a.name);
  }
  MLF_EXPECTS(!table.empty(), "unknown algorithm '{}': this build has no algorithms", name);
  std::string hint = ClosestMatch(key, names);
  MLF_FAIL("unknown algorithm '{}'{} Available: {}", name,
           hint.empty() ? "." : "; did you mean '" + hint + "'?", AlgorithmNames(table));
}

}  // namespace mlforge::algos
