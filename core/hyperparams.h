// The declarative hyperparameter table (DESIGN.md "Hyperparameters"). Each algorithm declares its
// hyperparameters once; the same table parses the string map of hyperparameters.json (or
// `--hp k=v`), fills defaults, rejects unknown names, validates ranges, tracks `auto`, and
// renders `--help` text and the README tables.
//
// Parsing rules (SageMaker sends every value as a string, SPEC.md 2.3):
//  - int:    optional '-' then decimal digits, nothing else ("1.5", "1e3", " 5", "+5" rejected).
//  - float:  a finite decimal number as std::from_chars reads it ("0.5", "1e-4", ".5");
//            nan and inf are rejected.
//  - bool:   "true" / "false" in any case (the SDK sends Python's "True"/"False", the built-in
//            images' defaults use "true"/"false"). "1"/"0"/"yes" are rejected on purpose: a
//            number in a boolean slot is more often a mistake than an intent.
//  - string: any text, or one of `choices` (matched exactly) when choices are declared.
//  - list:   a JSON list string as the SDK sends it ('["msd", "ssd"]'), the Spark form
//            ('[msd,ssd]'), or a bare value ('msd'); elements checked against `choices`;
//            empty lists and repeated elements are rejected.
//  - `auto` (any case) is accepted only where the spec allows it; the algorithm resolves it
//    with HpValues::Resolve, which records and logs the value it chose.
//  - Unknown names are rejected with a did-you-mean suggestion, except names starting with '_'
//    that SageMaker injects (_tuning_objective_metric, _kvstore, _num_gpus, ...): those are
//    accepted and ignored with a log line unless the table declares them.
// Every problem in one map is reported in a single UserError, one problem per line.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace mlforge {

enum class HpType { kInt, kFloat, kBool, kString, kStringList };

const char* HpTypeName(HpType type);  // "int", "float", "bool", "string", "list"

// One hyperparameter. Built fluently from HpTable::Int/Float/...:
//   table.Int("k").Required().AtLeast(2).Doc("number of clusters");
struct HpSpec {
  std::string name;
  HpType type = HpType::kString;
  std::string default_value;  // the default as a string ("auto" allowed); unused when required
  bool has_default = false;   // false and not required: the value is simply absent when not given
  bool required = false;
  bool allow_auto = false;
  std::optional<double> min;  // numeric range; inclusive unless min_exclusive
  std::optional<double> max;
  bool min_exclusive = false;
  bool max_exclusive = false;
  std::vector<std::string> choices;  // string: allowed values; list: allowed elements
  std::string doc;                   // one line, shown in --help and the README tables

  HpSpec& Default(std::string value) {
    default_value = std::move(value);
    has_default = true;
    return *this;
  }
  HpSpec& Required() {
    required = true;
    return *this;
  }
  // Accept "auto"; the algorithm must Resolve() it before reading the value.
  HpSpec& AllowAuto() {
    allow_auto = true;
    return *this;
  }
  HpSpec& AtLeast(double v) {
    min = v;
    min_exclusive = false;
    return *this;
  }
  HpSpec& GreaterThan(double v) {
    min = v;
    min_exclusive = true;
    return *this;
  }
  HpSpec& AtMost(double v) {
    max = v;
    max_exclusive = false;
    return *this;
  }
  HpSpec& LessThan(double v) {
    max = v;
    max_exclusive = true;
    return *this;
  }
  HpSpec& Choices(std::vector<std::string> values) {
    choices = std::move(values);
    return *this;
  }
  HpSpec& Doc(std::string text) {
    doc = std::move(text);
    return *this;
  }

  // What a valid value looks like, e.g. "an integer >= 2", "'auto' or a number in (0, 1]",
  // "one of: random, kmeans++". Used in error messages and help text.
  std::string Describe() const;
  // The "Valid values" column: ">= 2", "(0, 1]", "random, kmeans++", "true, false".
  std::string RangeText() const;
};

class HpValues;

class HpTable {
 public:
  HpTable() = default;
  explicit HpTable(std::string algorithm) : algorithm_(std::move(algorithm)) {}

  // Declare a hyperparameter; the returned reference is valid until the next declaration.
  HpSpec& Int(const std::string& name) { return Add(name, HpType::kInt); }
  HpSpec& Float(const std::string& name) { return Add(name, HpType::kFloat); }
  HpSpec& Bool(const std::string& name) { return Add(name, HpType::kBool); }
  HpSpec& String(const std::string& name) { return Add(name, HpType::kString); }
  HpSpec& StringList(const std::string& name) { return Add(name, HpType::kStringList); }
  HpSpec& Add(const std::string& name, HpType type);

  const std::vector<HpSpec>& specs() const { return specs_; }
  const HpSpec* Find(const std::string& name) const;
  const std::string& algorithm() const { return algorithm_; }

  // Parses the user's map (hyperparameters.json or --hp). Throws UserError listing every
  // problem; throws InternalError when a declared default does not parse (a bug in the table).
  HpValues Parse(const std::map<std::string, std::string>& given) const;

  // "  name  type  default  valid values  doc" lines for --help.
  std::string HelpText() const;
  // A GitHub Markdown table: | Name | Type | Required | Default | Valid values | Description |
  std::string MarkdownTable() const;

 private:
  std::string algorithm_;
  std::vector<HpSpec> specs_;
};

// The parsed, validated values of one table. Getters are for names the table declares; asking
// for an undeclared name, the wrong type, an absent optional value or an unresolved `auto` is
// an internal error (a bug in the algorithm, not in the user's input).
class HpValues {
 public:
  bool Has(const std::string& name) const;       // given or defaulted (auto counts)
  bool IsAuto(const std::string& name) const;    // currently `auto` (not yet resolved)
  bool FromUser(const std::string& name) const;  // given by the user rather than defaulted

  int64_t GetInt(const std::string& name) const;
  double GetDouble(const std::string& name) const;  // int or float hyperparameters
  bool GetBool(const std::string& name) const;
  // The canonical text of any hyperparameter ("auto" while unresolved; lists as JSON).
  std::string GetString(const std::string& name) const;
  std::vector<std::string> GetStringList(const std::string& name) const;

  // Replaces an `auto` with the value the algorithm chose, logs
  // "'name' was set to 'auto', evaluated to V." (the built-in images' wording) and records it
  // for ToJson(). The value must be within the declared range (else InternalError).
  template <typename T>
  void Resolve(const std::string& name, T value) {
    if constexpr (std::is_same_v<T, bool>) {
      ResolveBool(name, value);
    } else if constexpr (std::is_integral_v<T>) {
      ResolveInt(name, static_cast<int64_t>(value));
    } else if constexpr (std::is_floating_point_v<T>) {
      ResolveDouble(name, static_cast<double>(value));
    } else {
      ResolveString(name, std::string(value));
    }
  }
  void ResolveInt(const std::string& name, int64_t value);
  void ResolveDouble(const std::string& name, double value);
  void ResolveBool(const std::string& name, bool value);
  void ResolveString(const std::string& name, const std::string& value);

  // The configuration as a JSON object of strings, keys sorted, in the same shape as
  // hyperparameters.json (so it can be fed back): {"epochs": "1", "k": "8", ...}.
  std::string ToJson() const;
  std::vector<std::string> Names() const;

 private:
  friend class HpTable;
  struct Entry {
    HpSpec spec;
    std::string text;  // canonical text: "auto", "10", "0.5", "true", "[\"msd\"]"
    bool is_auto = false;
    bool from_user = false;
    int64_t i = 0;
    double d = 0;
    bool b = false;
    std::vector<std::string> list;
  };
  const Entry& Get(const std::string& name, const char* getter) const;
  Entry& GetAutoForResolve(const std::string& name);
  std::map<std::string, Entry> entries_;
};

// Levenshtein distance (case-insensitive), for did-you-mean suggestions.
size_t EditDistance(const std::string& a, const std::string& b);
// The candidate closest to `name` when it is close enough to be a plausible typo, else "".
std::string ClosestMatch(const std::string& name, const std::vector<std::string>& candidates);

}  // namespace mlforge
