#include "core/hyperparams.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <set>

#include "core/error.h"
#include "core/log.h"

namespace mlforge {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::string Join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// A range bound as it should read for this type: integers without a decimal point.
std::string Bound(const HpSpec& spec, double v) {
  if (spec.type == HpType::kInt) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

// ">= 2", "> 0", "<= 1", "in [0, 1]", "in (0, 1]"; "" when unbounded.
std::string NumericRange(const HpSpec& spec) {
  if (spec.min && spec.max) {
    return fmt::format("in {}{}, {}{}", spec.min_exclusive ? "(" : "[", Bound(spec, *spec.min),
                       Bound(spec, *spec.max), spec.max_exclusive ? ")" : "]");
  }
  if (spec.min) return fmt::format("{} {}", spec.min_exclusive ? ">" : ">=", Bound(spec, *spec.min));
  if (spec.max) return fmt::format("{} {}", spec.max_exclusive ? "<" : "<=", Bound(spec, *spec.max));
  return "";
}

bool InRange(const HpSpec& spec, double v) {
  if (spec.min && (spec.min_exclusive ? !(v > *spec.min) : !(v >= *spec.min))) return false;
  if (spec.max && (spec.max_exclusive ? !(v < *spec.max) : !(v <= *spec.max))) return false;
  return true;
}

bool IsAutoText(const std::string& text) { return Lower(text) == "auto"; }

// Splits a list value: '["msd", "ssd"]' (JSON, as the SDK sends it), '[msd,ssd]' (Spark) or a
// bare 'msd'. Returns false when the brackets or quotes are malformed.
bool SplitList(const std::string& raw, std::vector<std::string>* out) {
  std::string text = Trim(raw);
  out->clear();
  if (text.empty()) return true;
  if (text.front() != '[') {
    if (text.back() == ']') return false;
    text = "[" + text + "]";
  }
  if (text.back() != ']') return false;
  std::string inner = Trim(text.substr(1, text.size() - 2));
  if (inner.empty()) return true;
  size_t pos = 0;
  while (pos <= inner.size()) {
    size_t comma = inner.find(',', pos);
    if (comma == std::string::npos) comma = inner.size();
    std::string item = Trim(inner.substr(pos, comma - pos));
    if (item.size() >= 2 && (item.front() == '"' || item.front() == '\'')) {
      if (item.back() != item.front()) return false;
      item = item.substr(1, item.size() - 2);
    } else if (!item.empty() &&
               (item.front() == '"' || item.front() == '\'' || item.back() == '"' || item.back() == '\'')) {
      return false;
    }
    if (item.empty()) return false;
    out->push_back(item);
    pos = comma + 1;
  }
  return true;
}

std::string ListToJson(const std::vector<std::string>& items) {
  std::vector<std::string> quoted;
  for (const auto& s : items) quoted.push_back(JsonQuote(s));
  return "[" + Join(quoted, ", ") + "]";
}

}  // namespace

const char* HpTypeName(HpType type) {
  switch (type) {
    case HpType::kInt:
      return "int";
    case HpType::kFloat:
      return "float";
    case HpType::kBool:
      return "bool";
    case HpType::kString:
      return "string";
    case HpType::kStringList:
      return "list";
  }
  return "?";
}

std::string HpSpec::Describe() const {
  std::string base;
  switch (type) {
    case HpType::kInt:
    case HpType::kFloat: {
      base = type == HpType::kInt ? "an integer" : "a number";
      std::string range = NumericRange(*this);
      if (!range.empty()) base += " " + range;
      break;
    }
    case HpType::kBool:
      base = "true or false";
      break;
    case HpType::kString:
      base = choices.empty() ? "a string" : "one of: " + Join(choices, ", ");
      break;
    case HpType::kStringList:
      base = choices.empty() ? "a list of strings" : "a list of: " + Join(choices, ", ");
      base += choices.empty() ? " such as [\"a\", \"b\"]" : fmt::format(" such as [\"{}\"]", choices.front());
      break;
  }
  return allow_auto ? "'auto' or " + base : base;
}

std::string HpSpec::RangeText() const {
  std::string base;
  switch (type) {
    case HpType::kInt:
    case HpType::kFloat:
      base = NumericRange(*this);
      break;
    case HpType::kBool:
      base = "true, false";
      break;
    case HpType::kString:
      base = Join(choices, ", ");
      break;
    case HpType::kStringList:
      base = choices.empty() ? "" : "list of " + Join(choices, ", ");
      break;
  }
  if (base.rfind("in ", 0) == 0) base = base.substr(3);
  if (allow_auto) return base.empty() ? "auto" : "auto, " + base;
  return base.empty() ? "any" : base;
}

namespace {

// Parses `text` for `spec` into `e`. Returns the user-facing problem, or "" when valid.
std::string ParseInto(const HpSpec& spec, const std::string& text, std::string* canonical, bool* is_auto,
                      int64_t* i, double* d, bool* b, std::vector<std::string>* list) {
  const std::string head = fmt::format("hyperparameter '{}' = '{}'", spec.name, text);
  *is_auto = false;
  if (spec.allow_auto && IsAutoText(text)) {
    *is_auto = true;
    *canonical = "auto";
    return "";
  }
  const std::string invalid = head + " is not valid: must be " + spec.Describe();
  switch (spec.type) {
    case HpType::kInt: {
      const char* first = text.data();
      const char* last = first + text.size();
      // from_chars accepts a leading '-' and digits only: no '+', spaces, '.', or exponent.
      auto res = std::from_chars(first, last, *i);
      if (text.empty() || res.ptr != last) {
        return invalid + (IsAutoText(text) ? " ('auto' is not allowed here)" : "");
      }
      if (res.ec == std::errc::result_out_of_range) {
        return fmt::format("{} is out of range: must be {} (got a value that does not fit in 64 bits)", head,
                           spec.Describe());
      }
      if (res.ec != std::errc()) return invalid;
      if (!InRange(spec, static_cast<double>(*i))) {
        return fmt::format("{} is out of range: must be {} (got {})", head, spec.Describe(), *i);
      }
      *d = static_cast<double>(*i);
      *canonical = std::to_string(*i);
      return "";
    }
    case HpType::kFloat: {
      const char* first = text.data();
      const char* last = first + text.size();
      auto res = std::from_chars(first, last, *d, std::chars_format::general);
      if (text.empty() || res.ptr != last) {
        return invalid + (IsAutoText(text) ? " ('auto' is not allowed here)" : "");
      }
      if (res.ec == std::errc::result_out_of_range) {
        return fmt::format("{} is out of range: must be {} (the value does not fit in a double)", head,
                           spec.Describe());
      }
      if (res.ec != std::errc()) return invalid;
      if (!std::isfinite(*d)) return invalid + " (nan and inf are not allowed)";
      if (!InRange(spec, *d)) {
        return fmt::format("{} is out of range: must be {} (got {})", head, spec.Describe(), *d);
      }
      *canonical = text;
      return "";
    }
    case HpType::kBool: {
      std::string lower = Lower(text);
      if (lower == "true" || lower == "false") {
        *b = lower == "true";
        *canonical = lower;
        return "";
      }
      return invalid + " (any case)";
    }
    case HpType::kString: {
      if (!spec.choices.empty() &&
          std::find(spec.choices.begin(), spec.choices.end(), text) == spec.choices.end()) {
        std::string hint = ClosestMatch(text, spec.choices);
        return invalid + (hint.empty() ? "" : fmt::format("; did you mean '{}'?", hint));
      }
      *canonical = text;
      return "";
    }
    case HpType::kStringList: {
      if (!SplitList(text, list)) return invalid;
      if (list->empty()) return head + " is not valid: the list is empty; must be " + spec.Describe();
      std::set<std::string> seen;
      for (const auto& item : *list) {
        if (!spec.choices.empty() &&
            std::find(spec.choices.begin(), spec.choices.end(), item) == spec.choices.end()) {
          std::string hint = ClosestMatch(item, spec.choices);
          return fmt::format("{} is not valid: element '{}' must be one of: {}{}", head, item,
                             Join(spec.choices, ", "),
                             hint.empty() ? "" : fmt::format("; did you mean '{}'?", hint));
        }
        if (!seen.insert(item).second) {
          return fmt::format("{} is not valid: '{}' is listed more than once", head, item);
        }
      }
      *canonical = ListToJson(*list);
      return "";
    }
  }
  return invalid;
}

}  // namespace

HpSpec& HpTable::Add(const std::string& name, HpType type) {
  MLF_ASSERT_MSG(Find(name) == nullptr, "hyperparameter '{}' declared twice", name);
  HpSpec spec;
  spec.name = name;
  spec.type = type;
  specs_.push_back(std::move(spec));
  return specs_.back();
}

const HpSpec* HpTable::Find(const std::string& name) const {
  for (const auto& s : specs_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

HpValues HpTable::Parse(const std::map<std::string, std::string>& given) const {
  HpValues out;
  std::vector<std::string> errors;
  std::vector<std::string> names;
  for (const auto& s : specs_) names.push_back(s.name);

  auto parse_entry = [&](const HpSpec& spec, const std::string& text, bool from_user) -> std::string {
    HpValues::Entry e;
    e.spec = spec;
    e.from_user = from_user;
    std::string err = ParseInto(spec, text, &e.text, &e.is_auto, &e.i, &e.d, &e.b, &e.list);
    if (err.empty()) out.entries_[spec.name] = std::move(e);
    return err;
  };

  for (const auto& [name, text] : given) {
    const HpSpec* spec = Find(name);
    if (spec == nullptr) {
      if (!name.empty() && name[0] == '_') {
        // SageMaker and the SDK inject these (tuning objective, kvstore, GPU count); the
        // built-in images accept them, so rejecting them would break tuning jobs.
        spdlog::info("Ignoring SageMaker-internal hyperparameter '{}' = '{}'", name, text);
        continue;
      }
      std::string hint = ClosestMatch(name, names);
      if (!hint.empty()) {
        errors.push_back(fmt::format("unknown hyperparameter '{}'; did you mean '{}'?", name, hint));
      } else {
        errors.push_back(fmt::format("unknown hyperparameter '{}'; valid names{}: {}", name,
                                     algorithm_.empty() ? "" : " for " + algorithm_, Join(names, ", ")));
      }
      continue;
    }
    std::string err = parse_entry(*spec, text, true);
    if (!err.empty()) errors.push_back(err);
  }

  for (const auto& spec : specs_) {
    if (given.count(spec.name)) continue;
    if (spec.required) {
      errors.push_back(fmt::format("missing required hyperparameter '{}' ({}){}", spec.name, spec.Describe(),
                                   spec.doc.empty() ? "" : ": " + spec.doc));
    } else if (spec.has_default) {
      std::string err = parse_entry(spec, spec.default_value, false);
      MLF_ASSERT_MSG(err.empty(), "the default of hyperparameter '{}' in the {} table is invalid: {}",
                     spec.name, algorithm_.empty() ? "(unnamed)" : algorithm_, err);
    }
  }
  if (!errors.empty()) throw UserError(Join(errors, "\n"));
  return out;
}

std::string HpTable::HelpText() const {
  size_t width = 0;
  for (const auto& s : specs_) width = std::max(width, s.name.size());
  std::string out;
  for (const auto& s : specs_) {
    std::string meta = s.required      ? fmt::format("{}, required", HpTypeName(s.type))
                       : s.has_default ? fmt::format("{}, default {}", HpTypeName(s.type), s.default_value)
                                       : fmt::format("{}, optional", HpTypeName(s.type));
    out += fmt::format("  {:<{}}  {}. {} [{}]\n", s.name, width, s.doc.empty() ? "(undocumented)" : s.doc,
                       "Valid: " + s.RangeText(), meta);
  }
  return out;
}

std::string HpTable::MarkdownTable() const {
  auto cell = [](std::string s) {
    std::string out;
    for (char c : s) {
      if (c == '|')
        out += "\\|";
      else
        out += c;
    }
    return out;
  };
  std::string out =
      "| Name | Type | Required | Default | Valid values | Description |\n"
      "| --- | --- | --- | --- | --- | --- |\n";
  for (const auto& s : specs_) {
    std::string def = s.required ? "—" : s.has_default ? "`" + s.default_value + "`" : "(none)";
    out += fmt::format("| `{}` | {} | {} | {} | {} | {} |\n", s.name, HpTypeName(s.type),
                       s.required ? "yes" : "no", cell(def), cell(s.RangeText()), cell(s.doc));
  }
  return out;
}

const HpValues::Entry& HpValues::Get(const std::string& name, const char* getter) const {
  auto it = entries_.find(name);
  MLF_ASSERT_MSG(it != entries_.end(), "{}('{}'): the hyperparameter is not declared or has no value", getter,
                 name);
  MLF_ASSERT_MSG(!it->second.is_auto, "{}('{}'): the value is 'auto' and was not resolved", getter, name);
  return it->second;
}

bool HpValues::Has(const std::string& name) const { return entries_.count(name) > 0; }

bool HpValues::IsAuto(const std::string& name) const {
  auto it = entries_.find(name);
  return it != entries_.end() && it->second.is_auto;
}

bool HpValues::FromUser(const std::string& name) const {
  auto it = entries_.find(name);
  return it != entries_.end() && it->second.from_user;
}

int64_t HpValues::GetInt(const std::string& name) const {
  const Entry& e = Get(name, "GetInt");
  MLF_ASSERT_MSG(e.spec.type == HpType::kInt, "GetInt('{}'): declared as {}", name, HpTypeName(e.spec.type));
  return e.i;
}

double HpValues::GetDouble(const std::string& name) const {
  const Entry& e = Get(name, "GetDouble");
  MLF_ASSERT_MSG(e.spec.type == HpType::kFloat || e.spec.type == HpType::kInt,
                 "GetDouble('{}'): declared as {}", name, HpTypeName(e.spec.type));
  return e.d;
}

bool HpValues::GetBool(const std::string& name) const {
  const Entry& e = Get(name, "GetBool");
  MLF_ASSERT_MSG(e.spec.type == HpType::kBool, "GetBool('{}'): declared as {}", name,
                 HpTypeName(e.spec.type));
  return e.b;
}

std::string HpValues::GetString(const std::string& name) const {
  auto it = entries_.find(name);
  MLF_ASSERT_MSG(it != entries_.end(), "GetString('{}'): the hyperparameter is not declared or has no value",
                 name);
  return it->second.text;
}

std::vector<std::string> HpValues::GetStringList(const std::string& name) const {
  const Entry& e = Get(name, "GetStringList");
  MLF_ASSERT_MSG(e.spec.type == HpType::kStringList, "GetStringList('{}'): declared as {}", name,
                 HpTypeName(e.spec.type));
  return e.list;
}

HpValues::Entry& HpValues::GetAutoForResolve(const std::string& name) {
  auto it = entries_.find(name);
  MLF_ASSERT_MSG(it != entries_.end(), "Resolve('{}'): the hyperparameter is not declared", name);
  MLF_ASSERT_MSG(it->second.is_auto, "Resolve('{}'): the value is '{}', not 'auto'", name, it->second.text);
  return it->second;
}

namespace {
void FinishResolve(const std::string& name, const HpSpec& spec, const std::string& text,
                   std::string* canonical, bool* is_auto, int64_t* i, double* d, bool* b,
                   std::vector<std::string>* list) {
  HpSpec concrete = spec;
  concrete.allow_auto = false;  // "auto" is not a resolution
  // Parse into temporaries so a rejected value leaves the entry 'auto'.
  std::string t_canonical;
  bool t_auto = false, t_b = false;
  int64_t t_i = 0;
  double t_d = 0;
  std::vector<std::string> t_list;
  std::string err = ParseInto(concrete, text, &t_canonical, &t_auto, &t_i, &t_d, &t_b, &t_list);
  MLF_ASSERT_MSG(err.empty(), "resolving 'auto' for '{}' produced an invalid value: {}", name, err);
  *canonical = t_canonical;
  *is_auto = false;
  *i = t_i;
  *d = t_d;
  *b = t_b;
  *list = std::move(t_list);
  spdlog::info("'{}' was set to 'auto', evaluated to {}.", name, *canonical);
}
}  // namespace

void HpValues::ResolveInt(const std::string& name, int64_t value) {
  Entry& e = GetAutoForResolve(name);
  MLF_ASSERT_MSG(e.spec.type == HpType::kInt, "ResolveInt('{}'): declared as {}", name,
                 HpTypeName(e.spec.type));
  FinishResolve(name, e.spec, std::to_string(value), &e.text, &e.is_auto, &e.i, &e.d, &e.b, &e.list);
}

void HpValues::ResolveDouble(const std::string& name, double value) {
  Entry& e = GetAutoForResolve(name);
  MLF_ASSERT_MSG(e.spec.type == HpType::kFloat, "ResolveDouble('{}'): declared as {}", name,
                 HpTypeName(e.spec.type));
  FinishResolve(name, e.spec, log::FormatValue(value), &e.text, &e.is_auto, &e.i, &e.d, &e.b, &e.list);
}

void HpValues::ResolveBool(const std::string& name, bool value) {
  Entry& e = GetAutoForResolve(name);
  MLF_ASSERT_MSG(e.spec.type == HpType::kBool, "ResolveBool('{}'): declared as {}", name,
                 HpTypeName(e.spec.type));
  FinishResolve(name, e.spec, value ? "true" : "false", &e.text, &e.is_auto, &e.i, &e.d, &e.b, &e.list);
}

void HpValues::ResolveString(const std::string& name, const std::string& value) {
  Entry& e = GetAutoForResolve(name);
  MLF_ASSERT_MSG(e.spec.type == HpType::kString || e.spec.type == HpType::kStringList,
                 "ResolveString('{}'): declared as {}", name, HpTypeName(e.spec.type));
  FinishResolve(name, e.spec, value, &e.text, &e.is_auto, &e.i, &e.d, &e.b, &e.list);
}

std::string HpValues::ToJson() const {
  std::vector<std::string> parts;
  for (const auto& [name, e] : entries_) parts.push_back(JsonQuote(name) + ": " + JsonQuote(e.text));
  return "{" + Join(parts, ", ") + "}";
}

std::vector<std::string> HpValues::Names() const {
  std::vector<std::string> out;
  for (const auto& kv : entries_) out.push_back(kv.first);
  return out;
}

size_t EditDistance(const std::string& a_in, const std::string& b_in) {
  const std::string a = Lower(a_in), b = Lower(b_in);
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string ClosestMatch(const std::string& name, const std::vector<std::string>& candidates) {
  // A typo changes a few characters; allow about one edit per four characters, 1 to 3 in all.
  const size_t limit = std::clamp<size_t>(name.size() / 4, 1, 3);
  std::string best;
  size_t best_d = limit + 1;
  for (const auto& c : candidates) {
    size_t d = EditDistance(name, c);
    if (d < best_d && d < std::max(name.size(), c.size())) {
      best = c;
      best_d = d;
    }
  }
  return best;
}

}  // namespace mlforge
