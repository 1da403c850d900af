#include "algos/common/py_json.h"

namespace mlforge::algos {

std::string PyDumps(const nlohmann::ordered_json& j) {
  if (j.is_object()) {
    std::string out = "{";
    bool first = true;
    for (const auto& [key, value] : j.items()) {
      if (!first) out += ", ";
      first = false;
      out += nlohmann::ordered_json(key).dump() + ": " + PyDumps(value);
    }
    return out + "}";
  }
  if (j.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < j.size(); ++i) out += (i ? ", " : "") + PyDumps(j[i]);
    return out + "]";
  }
  return j.dump();  // numbers print in shortest round-trip form, floats keep ".0" as Python does
}

}  // namespace mlforge::algos
