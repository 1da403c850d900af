#include "io/csv.h"

#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>

#include "core/error.h"

namespace mlforge::io {
namespace {

const std::string kFile = "train.csv";

DecodedRow Parse(std::string_view line, int label_size = 1, int64_t expected = -1, int64_t line_no = 1) {
  DecodedRow row;
  CsvContext ctx{&kFile, line_no};
  ParseCsvLine(line, label_size, expected, ctx, &row);
  return row;
}

// Returns the UserError message, or "" when the line parsed.
std::string ErrorOf(std::string_view line, int label_size = 1, int64_t expected = -1, int64_t line_no = 7,
                    int64_t offset = -1) {
  DecodedRow row;
  CsvContext ctx{&kFile, line_no, offset};
  try {
    ParseCsvLine(line, label_size, expected, ctx, &row);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(CsvTest, ParsesLabelAndFeatures) {
  DecodedRow r = Parse("1,2.5,-3e2,0.125");
  EXPECT_FALSE(r.sparse);
  EXPECT_EQ(r.rows, 1);
  EXPECT_EQ(r.cols, 3);
  ASSERT_TRUE(r.has_label);
  ASSERT_EQ(r.labels.size(), 1u);
  EXPECT_EQ(r.labels[0], 1.0f);
  EXPECT_EQ(r.values, (std::vector<float>{2.5f, -300.0f, 0.125f}));
}

TEST(CsvTest, LabelSizeZeroKeepsEveryColumnAsFeature) {
  DecodedRow r = Parse("1,2,3", 0);
  EXPECT_FALSE(r.has_label);
  EXPECT_TRUE(r.labels.empty());
  EXPECT_EQ(r.cols, 3);
  EXPECT_EQ(r.values, (std::vector<float>{1, 2, 3}));
  DecodedRow single = Parse("4.5", 0);
  EXPECT_EQ(single.cols, 1);
  EXPECT_EQ(single.values[0], 4.5f);
}

TEST(CsvTest, RejectsOtherLabelSizes) {
  EXPECT_NE(ErrorOf("1,2", 2).find("label_size must be 0 or 1"), std::string::npos);
  EXPECT_NE(ErrorOf("1,2", -1).find("label_size must be 0 or 1"), std::string::npos);
}

TEST(CsvTest, SpecialValues) {
  DecodedRow r = Parse("nan,inf,-inf,-0,NaN,Infinity,1e-45,+2.5", 0);
  ASSERT_EQ(r.cols, 8);
  EXPECT_TRUE(std::isnan(r.values[0]));
  EXPECT_EQ(r.values[1], std::numeric_limits<float>::infinity());
  EXPECT_EQ(r.values[2], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(Bits(r.values[3]), 0x80000000u);  // -0 keeps its sign
  EXPECT_TRUE(std::isnan(r.values[4]));
  EXPECT_EQ(r.values[5], std::numeric_limits<float>::infinity());
  EXPECT_EQ(Bits(r.values[6]), 1u);  // smallest denormal
  EXPECT_EQ(r.values[7], 2.5f);
}

TEST(CsvTest, UnderflowBecomesZeroOverflowIsAnError) {
  DecodedRow r = Parse("1e-60,-1e-400", 0);
  EXPECT_EQ(Bits(r.values[0]), 0u);
  EXPECT_EQ(Bits(r.values[1]), 0x80000000u);
  std::string e = ErrorOf("1,1e39");
  EXPECT_NE(e.find("train.csv: line 7, column 2: '1e39' is outside the float32 range"), std::string::npos)
      << e;
  EXPECT_NE(ErrorOf("1,-1e400").find("outside the float32 range"), std::string::npos);
}

TEST(CsvTest, SurroundingBlanksAndCrlf) {
  DecodedRow r = Parse(" 1 ,\t2.5\t, 3\r");
  EXPECT_EQ(r.labels[0], 1.0f);
  EXPECT_EQ(r.values, (std::vector<float>{2.5f, 3.0f}));
  DecodedRow crlf = Parse("0,1,2\r");
  EXPECT_EQ(crlf.values, (std::vector<float>{1, 2}));
}

TEST(CsvTest, ExpectedColumnsAccepted) {
  DecodedRow r = Parse("0,1,2", 1, 2);
  EXPECT_EQ(r.cols, 2);
  DecodedRow u = Parse("0,1,2", 0, 3);
  EXPECT_EQ(u.cols, 3);
}

TEST(CsvTest, ErrorsNameLineAndColumn) {
  // Each error path with its exact location.
  EXPECT_EQ(ErrorOf("1,2,abc,4").rfind("train.csv: line 7, column 3: 'abc' is not a number; ", 0), 0u)
      << ErrorOf("1,2,abc,4");
  EXPECT_EQ(ErrorOf("1,,3").rfind("train.csv: line 7, column 2: empty field; ", 0), 0u);
  EXPECT_EQ(ErrorOf("1,2,").rfind("train.csv: line 7, column 3: empty field; ", 0), 0u);
  EXPECT_EQ(ErrorOf(",2").rfind("train.csv: line 7, column 1: empty field; ", 0), 0u);
  EXPECT_EQ(ErrorOf("").rfind("train.csv: line 7, column 1: empty line; ", 0), 0u);
  EXPECT_EQ(ErrorOf("\r").rfind("train.csv: line 7, column 1: empty line; ", 0), 0u);
  EXPECT_EQ(ErrorOf("  ").rfind("train.csv: line 7, column 1: empty line; ", 0), 0u);
  EXPECT_EQ(ErrorOf("1,\"2\"").rfind("train.csv: line 7, column 2: '\"2\"' is not a number", 0), 0u);
  EXPECT_EQ(ErrorOf("1,2 3").rfind("train.csv: line 7, column 2: '2 3' is not a number", 0), 0u);
  EXPECT_EQ(ErrorOf("1,0x10").rfind("train.csv: line 7, column 2: '0x10' is not a number", 0), 0u);
  EXPECT_EQ(ErrorOf("1,+-2").rfind("train.csv: line 7, column 2: '+-2' is not a number", 0), 0u);
  EXPECT_EQ(ErrorOf("1,+").rfind("train.csv: line 7, column 2: '+' is not a number", 0), 0u);
  EXPECT_EQ(ErrorOf("1,2;3").rfind("train.csv: line 7, column 2: '2;3' is not a number", 0), 0u);
  EXPECT_EQ(ErrorOf("x,2").rfind("train.csv: line 7, column 1: 'x' is not a number", 0), 0u);
  EXPECT_EQ(ErrorOf("5").rfind("train.csv: line 7, column 2: the line has a label but no feature columns", 0),
            0u);
}

TEST(CsvTest, ColumnCountErrors) {
  // Too many: reported at the first extra column, with the count found.
  std::string many = ErrorOf("1,2,3,4", 1, 2);
  EXPECT_EQ(
      many.rfind("train.csv: line 7, column 4: expected 2 feature column(s) after the label, found 3; ", 0),
      0u)
      << many;
  // Too few: reported just past the last column.
  std::string few = ErrorOf("1,2", 1, 2);
  EXPECT_EQ(
      few.rfind("train.csv: line 7, column 3: expected 2 feature column(s) after the label, found 1; ", 0),
      0u)
      << few;
  std::string unl = ErrorOf("1,2", 0, 3);
  EXPECT_EQ(unl.rfind("train.csv: line 7, column 3: expected 3 feature column(s), found 2; ", 0), 0u) << unl;
}

TEST(CsvTest, ErrorWithByteOffsetAndNoFile) {
  std::string e = ErrorOf("1,zz", 1, -1, 3, 120);
  EXPECT_EQ(e.rfind("train.csv: line 3 at byte 120, column 2: 'zz' is not a number", 0), 0u) << e;
  DecodedRow row;
  CsvContext ctx;  // no file
  ctx.line = 2;
  try {
    ParseCsvLine("a", 0, -1, ctx, &row);
    FAIL() << "expected an error";
  } catch (const UserError& err) {
    EXPECT_EQ(std::string(err.what()).rfind("<csv>: line 2, column 1:", 0), 0u) << err.what();
  }
}

TEST(CsvTest, LongGarbageFieldIsTruncatedInTheMessage) {
  std::string junk(500, 'q');
  std::string e = ErrorOf("1," + junk);
  EXPECT_NE(e.find("'" + std::string(40, 'q') + "...'"), std::string::npos);
  EXPECT_LT(e.size(), 400u);
}

TEST(CsvTest, RowIsReusedWithoutStaleData) {
  DecodedRow row;
  CsvContext ctx{&kFile, 1};
  ParseCsvLine("1,2,3,4", 1, -1, ctx, &row);
  ParseCsvLine("5,6", 0, -1, ctx, &row);
  EXPECT_FALSE(row.has_label);
  EXPECT_TRUE(row.labels.empty());
  EXPECT_EQ(row.values, (std::vector<float>{5, 6}));
}

TEST(CsvTest, AppendCsvNumberSpecials) {
  std::string s;
  AppendCsvNumber(std::numeric_limits<float>::quiet_NaN(), &s);
  s += ',';
  AppendCsvNumber(std::numeric_limits<float>::infinity(), &s);
  s += ',';
  AppendCsvNumber(-std::numeric_limits<float>::infinity(), &s);
  s += ',';
  AppendCsvNumber(-0.0f, &s);
  s += ',';
  AppendCsvNumber(0.0f, &s);
  s += ',';
  AppendCsvNumber(0.1f, &s);
  s += ',';
  AppendCsvNumber(-2.5f, &s);
  s += ',';
  AppendCsvNumber(1e20f, &s);
  EXPECT_EQ(s, "nan,inf,-inf,-0,0,0.1,-2.5,1e+20");
}

TEST(CsvTest, AppendCsvNumberRoundTripsBitExact) {
  std::mt19937 rng(12345);
  std::string line;
  std::vector<float> expect;
  DecodedRow row;
  CsvContext ctx{&kFile, 1};
  for (int round = 0; round < 200; ++round) {
    line.clear();
    expect.clear();
    for (int i = 0; i < 500; ++i) {
      float f;
      if (i % 2 == 0) {
        uint32_t bits = rng();  // every bit pattern: denormals, huge, tiny
        std::memcpy(&f, &bits, 4);
      } else {
        f = std::uniform_real_distribution<float>(-1000.0f, 1000.0f)(rng);
      }
      if (!line.empty()) line += ',';
      AppendCsvNumber(f, &line);
      expect.push_back(f);
    }
    ParseCsvLine(line, 0, static_cast<int64_t>(expect.size()), ctx, &row);
    ASSERT_EQ(row.values.size(), expect.size());
    for (size_t i = 0; i < expect.size(); ++i) {
      if (std::isnan(expect[i])) {
        EXPECT_TRUE(std::isnan(row.values[i]));
      } else {
        ASSERT_EQ(Bits(row.values[i]), Bits(expect[i])) << "value " << expect[i];
      }
    }
  }
}

TEST(CsvTest, ParsedValuesMatchFromCharsOnRandomDecimals) {
  // ParseCsvLine takes a shortcut for plain decimals; it must agree with a correctly rounded
  // decimal -> float conversion (std::from_chars) bit for bit, including near float midpoints.
  std::mt19937_64 rng(2024);
  DecodedRow row;
  CsvContext ctx{&kFile, 1};
  std::string field;
  int checked = 0;
  for (int iter = 0; iter < 200000; ++iter) {
    field.clear();
    if (rng() % 2) field += '-';
    const int ndig = 1 + static_cast<int>(rng() % 20);
    const int point = static_cast<int>(rng() % (ndig + 1));
    for (int k = 0; k < ndig; ++k) {
      if (k == point && k > 0) field += '.';
      field += static_cast<char>('0' + rng() % 10);
    }
    if (rng() % 3 == 0) field += "e" + std::to_string(static_cast<int>(rng() % 90) - 45);
    if (iter % 7 == 0) {
      // Decimal expansions of float midpoints: the hardest case for double rounding.
      float a = static_cast<float>(rng() % 100000) / 7.0f;
      double mid = (static_cast<double>(a) + static_cast<double>(std::nextafter(a, 1e30f))) / 2;
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.17g", mid + (iter % 2 ? 1e-12 * mid : 0));
      field = buf;
    }
    float want;
    auto r = std::from_chars(field.data(), field.data() + field.size(), want);
    if (r.ec != std::errc() || r.ptr != field.data() + field.size()) continue;
    ParseCsvLine(field, 0, 1, ctx, &row);
    ASSERT_EQ(Bits(row.values[0]), Bits(want)) << field;
    ++checked;
  }
  EXPECT_GT(checked, 150000);
}

}  // namespace
}  // namespace mlforge::io
