#include "core/json_depth.h"

#include "core/error.h"

namespace mlforge {

size_t JsonTooDeepAt(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return i;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return std::string_view::npos;
}

void CheckJsonDepth(std::string_view text, const std::string& where, int max_depth, std::string_view hint) {
  const size_t at = JsonTooDeepAt(text, max_depth);
  if (at != std::string_view::npos) {
    MLF_FAIL("{}: JSON nested more than {} levels deep (at byte {}){}", where, max_depth, at, hint);
  }
}

}  // namespace mlforge
