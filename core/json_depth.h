// A bound on how deeply a JSON text nests, checked before a parser sees it. nlohmann's parser is
// iterative, but much of what follows is not (dump(), copies, our own walkers): a hostile
// model artifact or configuration file of a million '[' would otherwise overflow the stack
// (seen: a model whose mlforge-model.json nested "hyperparameters" 1,000,000 deep crashed
// `mlforge predict` with SIGSEGV). One linear pass over the bytes, strings and their escapes
// skipped.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mlforge {

// What files mlforge reads may nest: SageMaker's and mlforge's own nest 4 levels at most.
constexpr int kMaxFileJsonDepth = 128;

// The byte offset of the first '[' or '{' (outside strings) that opens level max_depth + 1, or
// npos when `text` stays within max_depth levels.
size_t JsonTooDeepAt(std::string_view text, int max_depth);

// UserError "<where>: JSON nested more than <max_depth> levels deep (at byte N)<hint>" when it is.
inline constexpr std::string_view kFileJsonDepthHint =
    "; mlforge's and SageMaker's files nest a few levels at most: the file is corrupt or not the one expected";
void CheckJsonDepth(std::string_view text, const std::string& where, int max_depth = kMaxFileJsonDepth,
                    std::string_view hint = kFileJsonDepthHint);

}  // namespace mlforge
