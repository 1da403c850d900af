#include "container/config.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/json_depth.h"
#include "core/error.h"
#include "io/format.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace mlforge::container {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// nullopt when the file does not exist; UserError when it exists but cannot be read.
std::optional<std::string> ReadIfExists(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  std::ifstream f(path, std::ios::binary);
  MLF_EXPECTS(f.good(), "cannot read {}: {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

json ParseJson(const std::string& text, const std::string& source) {
  CheckJsonDepth(text, source);
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // Drop nlohmann's "[json.exception.parse_error.101] " tag; keep "parse error at line L,
    // column C: ..." which tells the user where to look.
    std::string what = e.what();
    size_t tag_end = what.find("] ");
    if (what.rfind("[json.exception", 0) == 0 && tag_end != std::string::npos)
      what = what.substr(tag_end + 2);
    MLF_FAIL("{} is not valid JSON: {} (byte {})", source, what, e.byte);
  }
}

const char* JsonTypeName(const json& j) { return j.type_name(); }

std::string GetString(const json& obj, const char* key, const std::string& where) {
  const json& v = obj.at(key);
  MLF_EXPECTS(v.is_string(), "{}: '{}' must be a string, got {} {}", where, key, JsonTypeName(v), v.dump());
  return v.get<std::string>();
}

std::vector<std::string> GetStringList(const json& obj, const char* key, const std::string& where) {
  const json& v = obj.at(key);
  MLF_EXPECTS(v.is_array(), "{}: '{}' must be a list of strings, got {} {}", where, key, JsonTypeName(v),
              v.dump());
  std::vector<std::string> out;
  for (const auto& item : v) {
    MLF_EXPECTS(item.is_string(), "{}: '{}' must be a list of strings, but it holds {} {}", where, key,
                JsonTypeName(item), item.dump());
    out.push_back(item.get<std::string>());
  }
  return out;
}

// Case-insensitive match of `value` against `names` (index into names), else UserError.
template <typename Enum>
Enum ParseEnum(const std::string& value, const std::vector<std::pair<const char*, Enum>>& names,
               const std::string& where, const char* key) {
  std::string valid;
  for (const auto& [name, e] : names) {
    if (Lower(value) == Lower(name)) return e;
    valid += (valid.empty() ? "" : ", ") + std::string(name);
  }
  MLF_FAIL("{}: {} '{}' is not supported; use one of: {}", where, key, value, valid);
}

}  // namespace

OptMlPaths ResolveOptMl(const std::string& root_arg) {
  std::string root = root_arg;
  if (root.empty()) {
    const char* env = std::getenv(kOptMlEnv);
    root = env != nullptr && *env != '\0' ? env : "/opt/ml";
  }
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  OptMlPaths p;
  p.root = root;
  p.config_dir = root + "/input/config";
  p.hyperparameters = p.config_dir + "/hyperparameters.json";
  p.inputdataconfig = p.config_dir + "/inputdataconfig.json";
  p.resourceconfig = p.config_dir + "/resourceconfig.json";
  p.data_dir = root + "/input/data";
  p.model_dir = root + "/model";
  p.output_dir = root + "/output";
  p.output_data_dir = p.output_dir + "/data";
  p.failure_file = p.output_dir + "/failure";
  p.checkpoint_dir = root + "/checkpoints";
  return p;
}

int ResourceConfig::rank() const {
  auto it = std::find(hosts.begin(), hosts.end(), current_host);
  MLF_ASSERT(it != hosts.end());
  return static_cast<int>(it - hosts.begin());
}

std::map<std::string, std::string> ParseHyperparameters(const std::string& text, const std::string& source) {
  json j = ParseJson(text, source);
  MLF_EXPECTS(j.is_object(), "{} must hold a JSON object of name -> value strings, got {}", source,
              JsonTypeName(j));
  std::map<std::string, std::string> out;
  for (const auto& [name, v] : j.items()) {
    if (v.is_string()) {
      out[name] = v.get<std::string>();
    } else if (v.is_null()) {
      // The SDK drops None-valued hyperparameters; a null here means the same.
      spdlog::warn("{}: hyperparameter '{}' is null; treating it as not given", source, name);
    } else if (v.is_boolean()) {
      out[name] = v.get<bool>() ? "true" : "false";
    } else if (v.is_number() || v.is_array()) {
      out[name] = v.dump();
    } else {
      MLF_FAIL("{}: hyperparameter '{}' is a JSON {}; values must be strings (e.g. \"{}\": \"10\")", source,
               name, JsonTypeName(v), name);
    }
  }
  return out;
}

std::map<std::string, algos::ChannelConfig> ParseInputDataConfig(const std::string& text,
                                                                 const std::string& source) {
  using algos::InputMode;
  using algos::RecordWrapper;
  using algos::S3Distribution;
  json j = ParseJson(text, source);
  MLF_EXPECTS(j.is_object(), "{} must hold a JSON object of channel name -> settings, got {}", source,
              JsonTypeName(j));
  std::map<std::string, algos::ChannelConfig> out;
  for (const auto& [name, v] : j.items()) {
    const std::string where = fmt::format("{}: channel '{}'", source, name);
    MLF_EXPECTS(!name.empty() && name.find('/') == std::string::npos && name != "." && name != "..",
                "{}: channel name '{}' is not a valid directory name", source, name);
    MLF_EXPECTS(v.is_object(), "{} must be a JSON object, got {}", where, JsonTypeName(v));
    algos::ChannelConfig c;
    if (v.contains("ContentType")) c.content_type = GetString(v, "ContentType", where);
    if (v.contains("TrainingInputMode")) {
      c.input_mode = ParseEnum<InputMode>(
          GetString(v, "TrainingInputMode", where),
          {{"File", InputMode::kFile}, {"FastFile", InputMode::kFastFile}, {"Pipe", InputMode::kPipe}}, where,
          "TrainingInputMode");
    }
    if (v.contains("S3DistributionType")) {
      c.distribution = ParseEnum<S3Distribution>(GetString(v, "S3DistributionType", where),
                                                 {{"FullyReplicated", S3Distribution::kFullyReplicated},
                                                  {"ShardedByS3Key", S3Distribution::kShardedByS3Key}},
                                                 where, "S3DistributionType");
    }
    if (v.contains("RecordWrapperType")) {
      c.record_wrapper =
          ParseEnum<RecordWrapper>(GetString(v, "RecordWrapperType", where),
                                   {{"None", RecordWrapper::kNone}, {"RecordIO", RecordWrapper::kRecordIO}},
                                   where, "RecordWrapperType");
    }
    out[name] = c;
  }
  return out;
}

ResourceConfig ParseResourceConfig(const std::string& text, const std::string& source) {
  json j = ParseJson(text, source);
  MLF_EXPECTS(j.is_object(), "{} must hold a JSON object, got {}", source, JsonTypeName(j));
  ResourceConfig r;
  if (j.contains("current_host")) r.current_host = GetString(j, "current_host", source);
  if (j.contains("hosts")) r.hosts = GetStringList(j, "hosts", source);
  if (j.contains("network_interface_name")) {
    r.network_interface_name = GetString(j, "network_interface_name", source);
  }
  if (j.contains("current_group_name")) r.current_group_name = GetString(j, "current_group_name", source);
  if (j.contains("current_instance_type")) {
    r.current_instance_type = GetString(j, "current_instance_type", source);
  }
  if (j.contains("instance_groups")) {
    const json& groups = j.at("instance_groups");
    MLF_EXPECTS(groups.is_array(), "{}: 'instance_groups' must be a list of objects, got {}", source,
                JsonTypeName(groups));
    for (size_t i = 0; i < groups.size(); ++i) {
      const json& g = groups[i];
      const std::string where = fmt::format("{}: instance_groups[{}]", source, i);
      MLF_EXPECTS(g.is_object(), "{} must be an object, got {}", where, JsonTypeName(g));
      InstanceGroup ig;
      if (g.contains("instance_group_name")) ig.name = GetString(g, "instance_group_name", where);
      if (g.contains("instance_type")) ig.instance_type = GetString(g, "instance_type", where);
      if (g.contains("hosts")) ig.hosts = GetStringList(g, "hosts", where);
      r.instance_groups.push_back(std::move(ig));
    }
  }
  MLF_EXPECTS(!r.hosts.empty(), "{}: 'hosts' is empty; it must list every host, e.g. [\"algo-1\"]", source);
  MLF_EXPECTS(std::find(r.hosts.begin(), r.hosts.end(), r.current_host) != r.hosts.end(),
              "{}: current_host '{}' is not among hosts [{}]", source, r.current_host,
              fmt::join(r.hosts, ", "));
  return r;
}

std::map<std::string, std::string> ReadHyperparameters(const OptMlPaths& paths) {
  auto text = ReadIfExists(paths.hyperparameters);
  if (!text) {
    spdlog::info("No {} found; using the default hyperparameters", paths.hyperparameters);
    return {};
  }
  return ParseHyperparameters(*text, paths.hyperparameters);
}

std::map<std::string, algos::ChannelConfig> ReadInputDataConfig(const OptMlPaths& paths) {
  if (auto text = ReadIfExists(paths.inputdataconfig))
    return ParseInputDataConfig(*text, paths.inputdataconfig);
  // Without the file (local runs), every directory under input/data is a File-mode channel.
  std::map<std::string, algos::ChannelConfig> out;
  std::error_code ec;
  if (fs::is_directory(paths.data_dir, ec)) {
    for (const auto& entry : fs::directory_iterator(paths.data_dir, ec)) {
      if (entry.is_directory(ec)) out[entry.path().filename().string()] = algos::ChannelConfig{};
    }
  }
  std::string names;
  for (const auto& kv : out) names += (names.empty() ? "" : ", ") + kv.first;
  spdlog::info("No {} found; using the directories in {} as File-mode channels: {}", paths.inputdataconfig,
               paths.data_dir, names.empty() ? "(none)" : names);
  return out;
}

ResourceConfig ReadResourceConfig(const OptMlPaths& paths) {
  auto text = ReadIfExists(paths.resourceconfig);
  if (!text) return ResourceConfig{};
  return ParseResourceConfig(*text, paths.resourceconfig);
}

io::ChannelSource MakeChannelSource(const OptMlPaths& paths, const std::string& name,
                                    const algos::ChannelConfig& config) {
  io::ChannelSource src;
  std::string content_type = config.content_type;
  if (config.input_mode == algos::InputMode::kPipe && content_type.empty()) {
    // A FIFO has no file name to guess from; the built-in images default to recordIO-protobuf.
    content_type = "application/x-recordio-protobuf";
    spdlog::warn("Channel '{}' uses Pipe mode without a ContentType; assuming {}", name, content_type);
  }
  int label_size = -1;
  src.format = io::FormatFromContentType(content_type, &label_size, &src.libsvm_zero_based);
  src.label_size = label_size;
  MLF_EXPECTS(config.record_wrapper == algos::RecordWrapper::kNone || src.format != io::DataFormat::kCsv,
              "channel '{}': RecordWrapperType RecordIO with ContentType '{}' is not supported; use "
              "RecordWrapperType None for CSV data",
              name, config.content_type);
  const std::string path = paths.data_dir + "/" + name;
  if (config.input_mode == algos::InputMode::kPipe) {
    src.pipe_prefix = path;
  } else {
    src.paths = {path};
  }
  return src;
}

}  // namespace mlforge::container
