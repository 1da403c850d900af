#include "algos/linear_learner/model.h"

#include <fmt/format.h>

#include <cmath>

#include "algos/common/model_metadata.h"
#include "algos/common/py_json.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/json_depth.h"
#include "io/archive.h"
#include "io/ndarray.h"

namespace mlforge::algos::linear_learner {

namespace {

constexpr const char* kManifestMember = "manifest.json";
constexpr const char* kAdditionalParamsMember = "additional-params.json";
constexpr const char* kSymbolMember = "mx-mod-symbol.json";
constexpr const char* kParamsMember = "mx-mod-0000.params";

const char* OutputOp(PredictorType p) {
  switch (p) {
    case PredictorType::kBinaryClassifier: return "LogisticRegressionOutput";
    case PredictorType::kMulticlassClassifier: return "SoftmaxOutput";
    case PredictorType::kRegressor: return "LinearRegressionOutput";
  }
  return "?";
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

nlohmann::ordered_json MetricsParamsFor(const Config& c, double threshold) {
  using J = nlohmann::ordered_json;
  const bool eps = c.loss == Loss::kEpsInsensitiveSquared || c.loss == Loss::kEpsInsensitiveAbsolute;
  J p = J::object();
  p["eps_insensitive_loss_type"] =
      eps ? J(c.loss == Loss::kEpsInsensitiveSquared ? "squared_loss" : "absolute_loss") : J(nullptr);
  p["class_weights"] = nullptr;
  p["huber_delta"] = c.loss == Loss::kHuber ? J(c.huber_delta) : J(nullptr);
  p["quantile"] = c.loss == Loss::kQuantile ? J(c.quantile) : J(nullptr);
  p["loss_insensitivity"] = eps ? J(c.loss_insensitivity) : J(nullptr);
  p["positive_example_weight_mult"] =
      c.positive_weight_mode == PositiveWeightMode::kValue ? c.positive_example_weight_mult : 1.0;
  p["accuracy_top_k"] = c.accuracy_top_k;
  p["threshold"] = threshold;
  p["f_beta"] = c.predictor_type == PredictorType::kRegressor ? J(nullptr) : J(c.f_beta);
  p["margin"] = c.loss == Loss::kHinge ? J(c.margin) : J(nullptr);
  return p;
}

std::string ManifestJson() {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["additional-params.json"] = "json";
  j["mx-mod"] = "mxnet_module";
  j["version"] = 1;
  return PyDumps(j);
}

std::string AdditionalParamsJson(const Model& m) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["threshold"] = m.threshold;
  j["loss_type"] = m.loss_type;
  j["metrics_params"] = m.metrics_params;
  j["predictor_type"] = PredictorTypeName(m.predictor_type);
  return PyDumps(j);
}

std::string SymbolJson(const Model& m) {
  // MXNet's own layout (2-space indent, ", " before each line break), as in the real artifacts.
  const std::string op = OutputOp(m.predictor_type);
  return fmt::format(
      "{{\n"
      "  \"nodes\": [\n"
      "    {{\n"
      "      \"op\": \"null\", \n"
      "      \"name\": \"data\", \n"
      "      \"inputs\": []\n"
      "    }}, \n"
      "    {{\n"
      "      \"op\": \"null\", \n"
      "      \"name\": \"fc0_weight\", \n"
      "      \"attrs\": {{\"__shape__\": \"({}, {})\"}}, \n"
      "      \"inputs\": []\n"
      "    }}, \n"
      "    {{\n"
      "      \"op\": \"dot\", \n"
      "      \"name\": \"dot32\", \n"
      "      \"inputs\": [[0, 0, 0], [1, 0, 0]]\n"
      "    }}, \n"
      "    {{\n"
      "      \"op\": \"null\", \n"
      "      \"name\": \"fc0_bias\", \n"
      "      \"attrs\": {{\n"
      "        \"__lr_mult__\": \"{}\", \n"
      "        \"__shape__\": \"(1, {})\"\n"
      "      }}, \n"
      "      \"inputs\": []\n"
      "    }}, \n"
      "    {{\n"
      "      \"op\": \"broadcast_add\", \n"
      "      \"name\": \"broadcast_plus32\", \n"
      "      \"inputs\": [[2, 0, 0], [3, 0, 0]]\n"
      "    }}, \n"
      "    {{\n"
      "      \"op\": \"null\", \n"
      "      \"name\": \"out_label\", \n"
      "      \"inputs\": []\n"
      "    }}, \n"
      "    {{\n"
      "      \"op\": \"{}\", \n"
      "      \"name\": \"{}32\", \n"
      "      \"inputs\": [[4, 0, 0], [5, 0, 0]]\n"
      "    }}\n"
      "  ], \n"
      "  \"arg_nodes\": [0, 1, 3, 5], \n"
      "  \"node_row_ptr\": [0, 1, 2, 3, 4, 5, 6, 7], \n"
      "  \"heads\": [[6, 0, 0]], \n"
      "  \"attrs\": {{\"mxnet_version\": [\"int\", {}]}}\n"
      "}}",
      m.dim, m.outputs, nlohmann::json(m.bias_lr_mult).dump(), m.outputs, op, Lower(op), m.mxnet_version);
}

std::string ParamsBytes(const Model& m) {
  io::NDArrayList list;
  list.named = true;
  list.arrays.push_back(io::NDArray::Dense("arg:fc0_bias", {1, m.outputs}, m.bias));
  list.arrays.push_back(io::NDArray::Dense("arg:fc0_weight", {m.dim, m.outputs}, m.weights));
  return io::SerializeNDArrayList(list);
}

std::string SerializeModel(const Model& m) {
  MLF_ASSERT(m.dim > 0 && m.outputs > 0);
  MLF_ASSERT(static_cast<int64_t>(m.weights.size()) == m.dim * m.outputs);
  MLF_ASSERT(static_cast<int64_t>(m.bias.size()) == m.outputs);
  return io::MakeZip({
      {kManifestMember, ManifestJson()},
      {kAdditionalParamsMember, AdditionalParamsJson(m)},
      {kSymbolMember, SymbolJson(m)},
      {kParamsMember, ParamsBytes(m)},
  });
}

void SaveModel(const Model& m, const std::string& dir) {
  WriteFileAtomic(dir + "/" + kModelFile, SerializeModel(m));
  nlohmann::json meta = {
      {"algorithm", "linear-learner"},
      {"format_version", 1},
      {"predictor_type", PredictorTypeName(m.predictor_type)},
      {"loss", m.loss_type},
      {"feature_dim", m.dim},
      {"outputs", m.outputs},
      {"threshold", m.threshold},
      {"hyperparameters", nlohmann::json::parse(m.hyperparameters_json)},
      {"metrics", m.metrics},
  };
  WriteFileAtomic(dir + "/" + kMetadataFile, meta.dump(2) + "\n");
}

Model ParseModel(std::string_view bytes, const std::string& source) {
  MLF_EXPECTS(io::DetectKind(bytes) == io::FileKind::kZip,
              "{}: not a linear learner model: expected a zip (linear learner model_algo-1), found {}", source,
              io::FileKindName(io::DetectKind(bytes)));
  std::map<std::string, std::string> members;
  for (auto& e : io::ReadArchiveBuffer(bytes, source)) members[e.name] = std::move(e.data);
  auto member = [&](const char* name) -> const std::string& {
    auto it = members.find(name);
    MLF_EXPECTS(it != members.end(), "{}: the zip has no member '{}'; a linear learner model_algo-1 holds {}, {}, {} "
                "and {}", source, name, kManifestMember, kAdditionalParamsMember, kSymbolMember, kParamsMember);
    return it->second;
  };
  auto parse_json = [&](const char* name) {
    try {
      const std::string& text = member(name);
      CheckJsonDepth(text, fmt::format("{}:{}", source, name));
      return nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      MLF_FAIL("{}:{}: not valid JSON: {}", source, name, e.what());
    }
  };

  Model m;
  const nlohmann::ordered_json manifest = parse_json(kManifestMember);
  MLF_EXPECTS(manifest.is_object() && manifest.value("mx-mod", "") == "mxnet_module",
              "{}:{}: expected {{\"mx-mod\": \"mxnet_module\", ...}}, found {}", source, kManifestMember,
              manifest.dump());
  const nlohmann::ordered_json extra = parse_json(kAdditionalParamsMember);
  MLF_EXPECTS(extra.is_object(), "{}:{}: expected a JSON object", source, kAdditionalParamsMember);
  try {
    if (extra.contains("predictor_type")) {
      m.predictor_type = ParsePredictorType(extra["predictor_type"].get<std::string>());
    }
    if (extra.contains("loss_type") && extra["loss_type"].is_string()) m.loss_type = extra["loss_type"];
    if (extra.contains("threshold") && extra["threshold"].is_number()) m.threshold = extra["threshold"];
    if (extra.contains("metrics_params") && extra["metrics_params"].is_object()) {
      m.metrics_params = extra["metrics_params"];
    }
  } catch (const nlohmann::json::exception& e) {
    MLF_FAIL("{}:{}: {}", source, kAdditionalParamsMember, e.what());
  }
  const nlohmann::ordered_json symbol = parse_json(kSymbolMember);
  try {
    if (symbol.contains("attrs") && symbol["attrs"].contains("mxnet_version")) {
      m.mxnet_version = symbol["attrs"]["mxnet_version"].at(1).get<int>();
    }
    for (const auto& node : symbol.at("nodes")) {
      const std::string name = node.value("name", "");
      if (name == "fc0_bias" && node.contains("attrs") && node["attrs"].contains("__lr_mult__")) {
        m.bias_lr_mult = std::stod(node["attrs"]["__lr_mult__"].get<std::string>());
      }
      // Without additional-params' predictor_type, the output op says what the model is.
      if (!extra.contains("predictor_type")) {
        const std::string op = node.value("op", "");
        if (op == "LinearRegressionOutput") m.predictor_type = PredictorType::kRegressor;
        if (op == "SoftmaxOutput") m.predictor_type = PredictorType::kMulticlassClassifier;
      }
    }
  } catch (const std::exception& e) {
    MLF_FAIL("{}:{}: not an MXNet symbol graph: {}", source, kSymbolMember, e.what());
  }

  const std::string params_source = source + ":" + kParamsMember;
  const io::NDArrayList list = io::ParseNDArrayList(member(kParamsMember), params_source);
  const io::FloatMatrix w = io::ToFloatMatrix(io::GetByName(list, "arg:fc0_weight", params_source));
  MLF_EXPECTS(w.rows >= 1 && w.cols >= 1, "{}: arg:fc0_weight has shape ({}, {}); expected (feature_dim, outputs)",
              params_source, w.rows, w.cols);
  m.dim = w.rows;
  m.outputs = w.cols;
  m.weights = w.values;
  if (const io::NDArray* b = io::FindByName(list, "arg:fc0_bias")) {
    const io::FloatMatrix bm = io::ToFloatMatrix(*b);
    MLF_EXPECTS(bm.rows * bm.cols == m.outputs,
                "{}: arg:fc0_bias has {} values but arg:fc0_weight has {} columns; they must match", params_source,
                bm.rows * bm.cols, m.outputs);
    m.bias = bm.values;
  } else {
    m.bias.assign(m.outputs, 0.0f);  // a model trained with use_bias = false may omit it
  }
  if (m.predictor_type == PredictorType::kMulticlassClassifier) {
    MLF_EXPECTS(m.outputs >= 2, "{}: a multiclass_classifier needs arg:fc0_weight with >= 2 columns, found {}",
                params_source, m.outputs);
  } else {
    MLF_EXPECTS(m.outputs == 1, "{}: a {} has arg:fc0_weight of shape (d, 1), found ({}, {})", params_source,
                PredictorTypeName(m.predictor_type), m.dim, m.outputs);
  }
  return m;
}

Model LoadModel(const std::string& path) { return LoadModel(io::ModelSource::Open(path)); }

Model LoadModel(const io::ModelSource& src) {
  Model m = ParseModel(src.model_bytes(), src.model_source());
  if (std::optional<nlohmann::json> found = ReadModelMetadata(src, kMetadataFile)) {
    nlohmann::json& meta = *found;
    if (meta.contains("hyperparameters")) m.hyperparameters_json = meta["hyperparameters"].dump();
    if (meta.contains("metrics") && meta["metrics"].is_object()) {
      for (const auto& [name, value] : meta["metrics"].items()) {
        if (value.is_number()) m.metrics[name] = value.get<double>();
      }
    }
  }
  return m;
}

Predictions Predict(const Model& model, const HostBatch& batch) {
  MLF_EXPECTS(batch.cols == model.dim, "the input has {} features per row but the linear learner model expects {}",
              batch.cols, model.dim);
  const int64_t n = batch.rows, k = model.outputs;
  const bool multiclass = model.predictor_type == PredictorType::kMulticlassClassifier;
  const bool binary = model.predictor_type == PredictorType::kBinaryClassifier;
  const bool probability = binary && model.loss_type != "hinge_loss";
  Predictions p;
  p.rows = n;
  p.score_width = multiclass ? k : 1;
  p.scores.resize(static_cast<size_t>(n * p.score_width));
  if (binary || multiclass) p.predicted_labels.resize(n);
  std::vector<double> z(k);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t c = 0; c < k; ++c) z[c] = model.bias[c];
    auto add = [&](int64_t col, double v) {
      const float* wrow = model.weights.data() + col * k;
      for (int64_t c = 0; c < k; ++c) z[c] += v * wrow[c];
    };
    if (batch.layout == Layout::kDense) {
      const float* row = batch.values.data() + i * batch.cols;
      for (int64_t j = 0; j < batch.cols; ++j) add(j, row[j]);
    } else {
      for (int64_t q = batch.indptr[i]; q < batch.indptr[i + 1]; ++q) add(batch.indices[q], batch.values[q]);
    }
    if (multiclass) {
      double mx = z[0];
      int64_t best = 0;
      for (int64_t c = 1; c < k; ++c) {
        if (z[c] > mx) {
          mx = z[c];
          best = c;
        }
      }
      double sum = 0;
      for (int64_t c = 0; c < k; ++c) sum += std::exp(z[c] - mx);
      for (int64_t c = 0; c < k; ++c) p.scores[i * k + c] = static_cast<float>(std::exp(z[c] - mx) / sum);
      p.predicted_labels[i] = static_cast<float>(best);
    } else {
      const double s = probability ? 1.0 / (1.0 + std::exp(-z[0])) : z[0];
      p.scores[i] = static_cast<float>(s);
      if (binary) p.predicted_labels[i] = s > model.threshold ? 1.0f : 0.0f;
    }
  }
  return p;
}

}  // namespace mlforge::algos::linear_learner
