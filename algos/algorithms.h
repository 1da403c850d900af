// The explicit table of built-in algorithms and lookup by name.
#pragma once

#include <string>
#include <vector>

#include "algos/algorithm.h"

namespace mlforge::algos {

// Every algorithm this build provides, in a fixed order. Adding an algorithm means adding one
// line to algorithms.cc (there is no static self-registration).
const std::vector<Algorithm>& BuiltinAlgorithms();

// Finds `name` in `table`. Matching ignores case and treats '_' as '-' ("Linear_Learner" finds
// "linear-learner"). Throws UserError naming the closest algorithm and listing all of them.
const Algorithm& FindAlgorithm(const std::vector<Algorithm>& table, const std::string& name);

// "kmeans, linear-learner" (or "(none)"), for messages and help text.
std::string AlgorithmNames(const std::vector<Algorithm>& table);

}  // namespace mlforge::algos
