#include "algos/common/model_metadata.h"

#include <fmt/format.h>

#include <string>

#include "core/error.h"
#include "core/json_depth.h"

namespace mlforge::algos {

std::optional<nlohmann::json> ReadModelMetadata(const io::ModelSource& src, const char* name) {
  for (const auto& member : src.others()) {
    if (member.name != name) continue;
    const std::string text = src.ReadMember(name);
    CheckJsonDepth(text, fmt::format("{}: {}", src.path(), name));
    try {
      return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      MLF_FAIL("{}: {} is not valid JSON: {}", src.path(), name, e.what());
    }
  }
  return std::nullopt;
}

}  // namespace mlforge::algos
