// JSON in Python's json.dumps layout: what SageMaker's MXNet-based images write into their
// artifacts' small JSON members (linear learner additional-params.json, FM meta.json), so that our
// artifacts match the real ones byte for byte given the same values.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace mlforge::algos {

// ", " and ": " separators, keys in insertion order, numbers in shortest round-trip form.
std::string PyDumps(const nlohmann::ordered_json& j);

}  // namespace mlforge::algos
