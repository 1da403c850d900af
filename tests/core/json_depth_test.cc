// The JSON nesting bound checked before any parser sees a file or a request (core/json_depth.h).
#include "core/json_depth.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace mlforge {
namespace {

TEST(JsonDepth, CountsArraysAndObjectsOutsideStrings) {
  EXPECT_EQ(JsonTooDeepAt("", 0), std::string::npos);
  EXPECT_EQ(JsonTooDeepAt("1", 0), std::string::npos);
  EXPECT_EQ(JsonTooDeepAt("[]", 0), 0u);
  EXPECT_EQ(JsonTooDeepAt("[]", 1), std::string::npos);
  EXPECT_EQ(JsonTooDeepAt(R"({"a": [1, {"b": []}]})", 4), std::string::npos);
  EXPECT_EQ(JsonTooDeepAt(R"({"a": [1, {"b": []}]})", 3), 16u);  // the fourth level opens at byte 16
  // Siblings do not add up: depth, not count.
  EXPECT_EQ(JsonTooDeepAt("[[],[],[],[[]]]", 3), std::string::npos);
  EXPECT_EQ(JsonTooDeepAt("[[],[],[],[[]]]", 2), 11u);
  // Brackets inside strings, escaped quotes and escaped backslashes do not count.
  EXPECT_EQ(JsonTooDeepAt(R"(["[[[[", "\"[[[[", "\\", [1]])", 2), std::string::npos);
  EXPECT_EQ(JsonTooDeepAt(R"(["\\", [[1]]])", 2), 8u);
  // A million levels: found at the limit, in one pass.
  const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  EXPECT_EQ(JsonTooDeepAt(deep, 128), 128u);
  EXPECT_EQ(JsonTooDeepAt(deep, 1000000), std::string::npos);
}

TEST(JsonDepth, CheckNamesTheFileTheByteAndTheCause) {
  CheckJsonDepth(R"({"k": "8"})", "hp.json");
  try {
    CheckJsonDepth(std::string(200, '['), "model/mlforge-model.json");
    ADD_FAILURE() << "200 levels passed";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()),
              "model/mlforge-model.json: JSON nested more than 128 levels deep (at byte 128); mlforge's and "
              "SageMaker's files nest a few levels at most: the file is corrupt or not the one expected");
  }
  EXPECT_THROW(CheckJsonDepth("[[[1]]]", "r.json", 2, ""), UserError);
}

}  // namespace
}  // namespace mlforge
