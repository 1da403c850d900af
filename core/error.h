// Error types and the checking macros used everywhere (DESIGN.md "Errors").
// Exceptions are thrown inside and caught once at each boundary (CLI main, container train, HTTP).
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace mlforge {

// Bad input from the user: data, hyperparameters, requests, files. The message is shown to the
// user as is, so it names the file / record / byte offset / field, what was expected and the fix.
class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& what) : std::runtime_error(what) {}
};

// A broken internal invariant (a bug in mlforge, not in the input).
class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& what) : std::logic_error(what) {}
};

// Raised when a stop was requested (SIGTERM) so that loops unwind without writing a model.
class StopRequested : public std::runtime_error {
 public:
  StopRequested() : std::runtime_error("training stopped: SIGTERM received") {}
};

namespace detail {
[[noreturn]] void ThrowInternal(const char* cond, const char* file, int line, const std::string& msg);
}  // namespace detail

}  // namespace mlforge

// MLF_EXPECTS(cond, "fmt {}", args...): precondition on user input; throws UserError.
#define MLF_EXPECTS(cond, ...)                                       \
  do {                                                               \
    if (!(cond)) throw ::mlforge::UserError(fmt::format(__VA_ARGS__)); \
  } while (0)

// MLF_FAIL("fmt {}", args...): unconditional UserError.
#define MLF_FAIL(...) throw ::mlforge::UserError(fmt::format(__VA_ARGS__))

// MLF_ASSERT(cond) / MLF_ASSERT_MSG(cond, "fmt", ...): internal invariant; throws InternalError.
#define MLF_ASSERT(cond)                                                          \
  do {                                                                            \
    if (!(cond)) ::mlforge::detail::ThrowInternal(#cond, __FILE__, __LINE__, ""); \
  } while (0)
#define MLF_ASSERT_MSG(cond, ...)                                                                 \
  do {                                                                                            \
    if (!(cond)) ::mlforge::detail::ThrowInternal(#cond, __FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
  } while (0)
