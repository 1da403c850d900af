#include "core/error.h"

namespace mlforge::detail {

void ThrowInternal(const char* cond, const char* file, int line, const std::string& msg) {
  throw InternalError(fmt::format("internal error: {} failed at {}:{}{}{}", cond, file, line,
                                  msg.empty() ? "" : ": ", msg));
}

}  // namespace mlforge::detail
