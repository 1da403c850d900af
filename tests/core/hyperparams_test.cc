#include "core/hyperparams.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace mlforge {
namespace {

// A table shaped like k-means' (SPEC.md 4.2), plus one of each remaining type.
HpTable TestTable() {
  HpTable t("testalgo");
  t.Int("feature_dim").Required().GreaterThan(0).Doc("number of features");
  t.Int("k").Required().AtLeast(2).Doc("number of clusters");
  t.Int("mini_batch_size").Default("5000").GreaterThan(0).Doc("rows per mini-batch");
  t.String("init_method").Default("random").Choices({"random", "kmeans++"}).Doc("how centers start");
  t.Int("extra_center_factor")
      .Default("auto")
      .AllowAuto()
      .GreaterThan(0)
      .Doc("extra centers while streaming");
  t.Float("local_lloyd_tol").Default("0.0001").AtLeast(0).AtMost(1).Doc("tolerance on the loss change");
  t.Float("learning_rate").Default("auto").AllowAuto().GreaterThan(0).LessThan(1).Doc("step size");
  t.StringList("eval_metrics").Default("[\"msd\"]").Choices({"msd", "ssd"}).Doc("test metrics");
  t.Bool("force_dense").Default("true").Doc("densify sparse input");
  t.String("label").Doc("an optional free string without a default");
  return t;
}

std::map<std::string, std::string> Base() { return {{"feature_dim", "7"}, {"k", "8"}}; }

// The UserError message Parse throws for `given`, or "" when it parses.
std::string ParseError(std::map<std::string, std::string> given) {
  try {
    TestTable().Parse(given);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

std::string ErrorFor(const std::string& name, const std::string& value) {
  auto given = Base();
  given[name] = value;
  return ParseError(given);
}

TEST(HpTable, FillsDefaultsAndParsesGivenValues) {
  HpValues v = TestTable().Parse({{"feature_dim", "7"},
                                  {"k", "8"},
                                  {"init_method", "kmeans++"},
                                  {"local_lloyd_tol", "1e-3"},
                                  {"force_dense", "False"}});
  EXPECT_EQ(v.GetInt("feature_dim"), 7);
  EXPECT_EQ(v.GetInt("k"), 8);
  EXPECT_EQ(v.GetInt("mini_batch_size"), 5000);
  EXPECT_EQ(v.GetString("init_method"), "kmeans++");
  EXPECT_DOUBLE_EQ(v.GetDouble("local_lloyd_tol"), 1e-3);
  EXPECT_DOUBLE_EQ(v.GetDouble("k"), 8.0);  // ints read as doubles too
  EXPECT_FALSE(v.GetBool("force_dense"));
  EXPECT_EQ(v.GetStringList("eval_metrics"), std::vector<std::string>{"msd"});
  EXPECT_TRUE(v.FromUser("k"));
  EXPECT_FALSE(v.FromUser("mini_batch_size"));
  EXPECT_TRUE(v.IsAuto("extra_center_factor"));
  EXPECT_FALSE(v.Has("label"));  // optional without a default: absent
}

TEST(HpTable, BooleansAreCaseInsensitive) {
  for (const char* t : {"true", "True", "TRUE", "tRuE"}) {
    auto given = Base();
    given["force_dense"] = t;
    EXPECT_TRUE(TestTable().Parse(given).GetBool("force_dense")) << t;
  }
  for (const char* f : {"false", "False", "FALSE"}) {
    auto given = Base();
    given["force_dense"] = f;
    EXPECT_FALSE(TestTable().Parse(given).GetBool("force_dense")) << f;
  }
}

TEST(HpTable, RejectsNonBooleans) {
  for (const char* bad : {"1", "0", "yes", "", "truee"}) {
    EXPECT_EQ(ErrorFor("force_dense", bad), std::string("hyperparameter 'force_dense' = '") + bad +
                                                "' is not valid: must be true or false (any case)");
  }
}

TEST(HpTable, IntegersAreStrict) {
  for (const char* bad : {"1.5", "10.0", "1e3", " 5", "5 ", "+5", "abc", "8x", ""}) {
    EXPECT_EQ(ErrorFor("k", bad),
              std::string("hyperparameter 'k' = '") + bad + "' is not valid: must be an integer >= 2")
        << bad;
  }
}

TEST(HpTable, IntegerOutOfRangeNamesTheBound) {
  EXPECT_EQ(ErrorFor("k", "0"), "hyperparameter 'k' = '0' is out of range: must be an integer >= 2 (got 0)");
  EXPECT_EQ(ErrorFor("k", "-3"),
            "hyperparameter 'k' = '-3' is out of range: must be an integer >= 2 (got -3)");
  EXPECT_EQ(ErrorFor("feature_dim", "0"),
            "hyperparameter 'feature_dim' = '0' is out of range: must be an integer > 0 (got 0)");
  EXPECT_EQ(
      ErrorFor("k", "99999999999999999999"),
      "hyperparameter 'k' = '99999999999999999999' is out of range: must be an integer >= 2 (got a value "
      "that does not fit in 64 bits)");
}

TEST(HpTable, FloatsParseAndRejectNonFinite) {
  auto given = Base();
  given["local_lloyd_tol"] = ".5";
  EXPECT_DOUBLE_EQ(TestTable().Parse(given).GetDouble("local_lloyd_tol"), 0.5);
  given["local_lloyd_tol"] = "0";  // inclusive lower bound
  EXPECT_DOUBLE_EQ(TestTable().Parse(given).GetDouble("local_lloyd_tol"), 0.0);
  for (const char* bad : {"nan", "NaN", "inf", "-inf"}) {
    EXPECT_EQ(ErrorFor("local_lloyd_tol", bad), std::string("hyperparameter 'local_lloyd_tol' = '") + bad +
                                                    "' is not valid: must be a number in [0, 1] (nan and inf "
                                                    "are not allowed)");
  }
  EXPECT_EQ(ErrorFor("local_lloyd_tol", "0.1x"),
            "hyperparameter 'local_lloyd_tol' = '0.1x' is not valid: must be a number in [0, 1]");
  EXPECT_EQ(
      ErrorFor("local_lloyd_tol", "1e999"),
      "hyperparameter 'local_lloyd_tol' = '1e999' is out of range: must be a number in [0, 1] (the value "
      "does not fit in a double)");
}

TEST(HpTable, FloatRangeExclusiveBounds) {
  EXPECT_EQ(ErrorFor("local_lloyd_tol", "1.5"),
            "hyperparameter 'local_lloyd_tol' = '1.5' is out of range: must be a number in [0, 1] (got 1.5)");
  EXPECT_EQ(
      ErrorFor("learning_rate", "1"),
      "hyperparameter 'learning_rate' = '1' is out of range: must be 'auto' or a number in (0, 1) (got 1)");
  EXPECT_EQ(
      ErrorFor("learning_rate", "0"),
      "hyperparameter 'learning_rate' = '0' is out of range: must be 'auto' or a number in (0, 1) (got 0)");
}

TEST(HpTable, AutoOnlyWhereAllowed) {
  auto given = Base();
  given["extra_center_factor"] = "AUTO";
  EXPECT_TRUE(TestTable().Parse(given).IsAuto("extra_center_factor"));
  EXPECT_EQ(ErrorFor("k", "auto"),
            "hyperparameter 'k' = 'auto' is not valid: must be an integer >= 2 ('auto' is not allowed here)");
  EXPECT_EQ(
      ErrorFor("local_lloyd_tol", "auto"),
      "hyperparameter 'local_lloyd_tol' = 'auto' is not valid: must be a number in [0, 1] ('auto' is not "
      "allowed here)");
  EXPECT_EQ(
      ErrorFor("extra_center_factor", "0"),
      "hyperparameter 'extra_center_factor' = '0' is out of range: must be 'auto' or an integer > 0 (got 0)");
}

TEST(HpTable, ChoicesSuggestTheClosest) {
  EXPECT_EQ(
      ErrorFor("init_method", "k-means++"),
      "hyperparameter 'init_method' = 'k-means++' is not valid: must be one of: random, kmeans++; did you "
      "mean 'kmeans++'?");
  EXPECT_EQ(ErrorFor("init_method", "zzzzzzzzzzzz"),
            "hyperparameter 'init_method' = 'zzzzzzzzzzzz' is not valid: must be one of: random, kmeans++");
}

TEST(HpTable, StringListsAcceptSdkSparkAndBareForms) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"[\"msd\", \"ssd\"]", {"msd", "ssd"}},
      {"[msd,ssd]", {"msd", "ssd"}},
      {"msd", {"msd"}},
      {"['ssd']", {"ssd"}},
      {" [ \"ssd\" ] ", {"ssd"}}};
  for (const auto& [text, expected] : cases) {
    auto given = Base();
    given["eval_metrics"] = text;
    HpValues v = TestTable().Parse(given);
    EXPECT_EQ(v.GetStringList("eval_metrics"), expected) << text;
  }
  auto given = Base();
  given["eval_metrics"] = "[msd,ssd]";
  EXPECT_EQ(TestTable().Parse(given).GetString("eval_metrics"), "[\"msd\", \"ssd\"]");  // canonical JSON
}

TEST(HpTable, StringListErrors) {
  const std::string describe = "must be a list of: msd, ssd such as [\"msd\"]";
  EXPECT_EQ(ErrorFor("eval_metrics", "[msd"),
            "hyperparameter 'eval_metrics' = '[msd' is not valid: " + describe);
  EXPECT_EQ(ErrorFor("eval_metrics", "[\"msd\", ]"),
            "hyperparameter 'eval_metrics' = '[\"msd\", ]' is not valid: " + describe);
  EXPECT_EQ(ErrorFor("eval_metrics", "[]"),
            "hyperparameter 'eval_metrics' = '[]' is not valid: the list is empty; " + describe);
  EXPECT_EQ(
      ErrorFor("eval_metrics", "[msd, mse]"),
      "hyperparameter 'eval_metrics' = '[msd, mse]' is not valid: element 'mse' must be one of: msd, ssd; "
      "did you mean 'msd'?");
  EXPECT_EQ(ErrorFor("eval_metrics", "[msd, msd]"),
            "hyperparameter 'eval_metrics' = '[msd, msd]' is not valid: 'msd' is listed more than once");
}

TEST(HpTable, UnknownNameSuggestsTheClosest) {
  auto given = Base();
  given["mini_batch_siz"] = "100";
  EXPECT_EQ(ParseError(given), "unknown hyperparameter 'mini_batch_siz'; did you mean 'mini_batch_size'?");
  given = Base();
  given["K"] = "3";
  EXPECT_EQ(ParseError(given), "unknown hyperparameter 'K'; did you mean 'k'?");
}

TEST(HpTable, UnknownNameWithoutCloseMatchListsTheValidNames) {
  auto given = Base();
  given["completely_unrelated"] = "1";
  EXPECT_EQ(
      ParseError(given),
      "unknown hyperparameter 'completely_unrelated'; valid names for testalgo: feature_dim, k, "
      "mini_batch_size, init_method, extra_center_factor, local_lloyd_tol, learning_rate, eval_metrics, "
      "force_dense, label");
}

TEST(HpTable, SageMakerInternalNamesAreIgnored) {
  auto given = Base();
  given["_tuning_objective_metric"] = "test:msd";
  given["_kvstore"] = "dist_sync";
  given["_num_gpus"] = "auto";
  HpValues v = TestTable().Parse(given);
  EXPECT_FALSE(v.Has("_kvstore"));
  EXPECT_EQ(v.ToJson().find("_kvstore"), std::string::npos);
}

TEST(HpTable, MissingRequiredNamesTheParameter) {
  EXPECT_EQ(ParseError({{"feature_dim", "7"}}),
            "missing required hyperparameter 'k' (an integer >= 2): number of clusters");
}

TEST(HpTable, ReportsEveryProblemOnItsOwnLine) {
  EXPECT_EQ(ParseError({{"k", "1"}, {"mini_batch_siz", "3"}}),
            "hyperparameter 'k' = '1' is out of range: must be an integer >= 2 (got 1)\n"
            "unknown hyperparameter 'mini_batch_siz'; did you mean 'mini_batch_size'?\n"
            "missing required hyperparameter 'feature_dim' (an integer > 0): number of features");
}

TEST(HpTable, InvalidDefaultIsAnInternalError) {
  HpTable t("broken");
  t.Int("epochs").Default("one").AtLeast(1);
  try {
    t.Parse({});
    FAIL() << "expected InternalError";
  } catch (const InternalError& e) {
    EXPECT_NE(
        std::string(e.what()).find("the default of hyperparameter 'epochs' in the broken table is invalid: "
                                   "hyperparameter 'epochs' = 'one' is not valid: must be an integer >= 1"),
        std::string::npos)
        << e.what();
  }
}

TEST(HpTable, DeclaringTwiceIsAnInternalError) {
  HpTable t;
  t.Int("k");
  EXPECT_THROW(t.Int("k"), InternalError);
}

TEST(HpValues, ResolveRecordsTheValue) {
  HpValues v = TestTable().Parse(Base());
  EXPECT_EQ(v.GetString("extra_center_factor"), "auto");
  v.Resolve("extra_center_factor", 10);
  EXPECT_FALSE(v.IsAuto("extra_center_factor"));
  EXPECT_EQ(v.GetInt("extra_center_factor"), 10);
  v.Resolve("learning_rate", 0.25);
  EXPECT_DOUBLE_EQ(v.GetDouble("learning_rate"), 0.25);
  EXPECT_EQ(
      v.ToJson(),
      "{\"eval_metrics\": \"[\\\"msd\\\"]\", \"extra_center_factor\": \"10\", \"feature_dim\": \"7\", "
      "\"force_dense\": \"true\", \"init_method\": \"random\", \"k\": \"8\", \"learning_rate\": \"0.25\", "
      "\"local_lloyd_tol\": \"0.0001\", \"mini_batch_size\": \"5000\"}");
}

TEST(HpValues, MisuseIsAnInternalError) {
  HpValues v = TestTable().Parse(Base());
  EXPECT_THROW(v.GetInt("extra_center_factor"), InternalError);  // unresolved auto
  EXPECT_THROW(v.GetInt("nonexistent"), InternalError);
  EXPECT_THROW(v.GetBool("k"), InternalError);                       // wrong type
  EXPECT_THROW(v.GetString("label"), InternalError);                 // absent optional
  EXPECT_THROW(v.Resolve("k", 3), InternalError);                    // not auto
  EXPECT_THROW(v.Resolve("extra_center_factor", 0), InternalError);  // out of range
  try {
    v.GetInt("extra_center_factor");
  } catch (const InternalError& e) {
    EXPECT_NE(
        std::string(e.what()).find("GetInt('extra_center_factor'): the value is 'auto' and was not resolved"),
        std::string::npos);
  }
}

TEST(HpValues, ToJsonEscapes) {
  auto given = Base();
  given["label"] = "a\"b\\c\nd";
  EXPECT_NE(TestTable().Parse(given).ToJson().find("\"label\": \"a\\\"b\\\\c\\nd\""), std::string::npos);
}

TEST(HpTable, HelpAndMarkdown) {
  HpTable t = TestTable();
  std::string md = t.MarkdownTable();
  EXPECT_NE(md.find("| Name | Type | Required | Default | Valid values | Description |"), std::string::npos);
  EXPECT_NE(md.find("| `k` | int | yes | — | >= 2 | number of clusters |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `local_lloyd_tol` | float | no | `0.0001` | [0, 1] | tolerance on the loss change |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| `extra_center_factor` | int | no | `auto` | auto, > 0 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `eval_metrics` | list | no | `[\"msd\"]` | list of msd, ssd |"), std::string::npos)
      << md;
  std::string help = t.HelpText();
  EXPECT_NE(help.find("init_method"), std::string::npos);
  EXPECT_NE(help.find("how centers start. Valid: random, kmeans++ [string, default random]"),
            std::string::npos)
      << help;
  EXPECT_NE(help.find("number of clusters. Valid: >= 2 [int, required]"), std::string::npos) << help;
}

TEST(ClosestMatch, OnlyPlausibleTypos) {
  EXPECT_EQ(ClosestMatch("mini_batch_siz", {"k", "mini_batch_size"}), "mini_batch_size");
  EXPECT_EQ(ClosestMatch("epoch", {"epochs", "k"}), "epochs");
  EXPECT_EQ(ClosestMatch("foo_bar_baz", {"k", "epochs"}), "");
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
  EXPECT_EQ(EditDistance("ABC", "abc"), 0u);
}

}  // namespace
}  // namespace mlforge
