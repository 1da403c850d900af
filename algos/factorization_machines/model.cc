#include "algos/factorization_machines/model.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "algos/common/model_metadata.h"
#include "algos/common/py_json.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/json_depth.h"
#include "io/archive.h"
#include "io/ndarray.h"

namespace mlforge::algos::factorization_machines {

namespace {

constexpr const char* kMetaMember = "meta.json";
constexpr const char* kSymbolMember = "symbol.json";
constexpr const char* kParamsMember = "params";

std::string Num(double x) { return fmt::format("{}", x); }  // shortest round trip, Python's repr for these

// One parameter node of the symbol, in MXNet's layout.
std::string ParamNode(const char* name, const InitSpec& init, double lr_mult, const std::string& shape,
                      bool row_sparse, double wd_mult) {
  std::string attrs = "        \"__init__\": " + nlohmann::json(init.Describe()).dump() + ", \n" +
                      "        \"__lr_mult__\": \"" + Num(lr_mult) + "\", \n" + "        \"__shape__\": \"" + shape +
                      "\", \n";
  if (row_sparse) attrs += "        \"__storage_type__\": \"1\", \n";
  attrs += "        \"__wd_mult__\": \"" + Num(wd_mult) + "\"\n";
  return fmt::format(
      "    {{\n"
      "      \"op\": \"null\", \n"
      "      \"name\": \"{}\", \n"
      "      \"attrs\": {{\n{}      }}, \n"
      "      \"inputs\": []\n"
      "    }}, \n",
      name, attrs);
}

std::string OpNode(const char* op, const char* name, const std::string& inputs, const std::string& attrs = "") {
  return fmt::format(
      "    {{\n"
      "      \"op\": \"{}\", \n"
      "      \"name\": \"{}\", \n{}"
      "      \"inputs\": {}\n"
      "    }}",
      op, name, attrs.empty() ? "" : "      \"attrs\": " + attrs + ", \n", inputs);
}

}  // namespace

std::string MetaJson(const Model& m) {
  nlohmann::ordered_json j;
  j["version"] = 1;
  j["epoch_number"] = m.epoch_number;
  j["training_parameters"] = m.training_parameters;
  j["label_names"] = nlohmann::ordered_json::array({"out_label"});
  return PyDumps(j);
}

std::string SymbolJson(const Model& m) {
  const int64_t d = m.dim(), k = m.factors();
  const char* out_op =
      m.predictor_type == PredictorType::kRegressor ? "LinearRegressionOutput" : "LogisticRegressionOutput";
  std::string s = "{\n  \"nodes\": [\n";
  s += "    {\n      \"op\": \"null\", \n      \"name\": \"data\", \n      \"attrs\": {\"__storage_type__\": \"2\"}, \n"
       "      \"inputs\": []\n    }, \n";
  s += ParamNode("w1_weight", m.linear_init, m.linear_lr_mult, fmt::format("({}, 1)", d), true, m.linear_wd_mult);
  s += OpNode("dot", "dot0", "[[0, 0, 0], [1, 0, 0]]") + ", \n";
  s += ParamNode("w0_weight", m.bias_init, m.bias_lr_mult, "(1,)", false, m.bias_wd_mult);
  s += OpNode("broadcast_add", "broadcast_plus0", "[[2, 0, 0], [3, 0, 0]]") + ", \n";
  s += ParamNode("v", m.factors_init, m.factors_lr_mult, fmt::format("({}, {})", d, k), true, m.factors_wd_mult);
  s += OpNode("dot", "dot2", "[[0, 0, 0], [5, 0, 0]]") + ", \n";
  s += OpNode("square", "Square", "[[6, 0, 0]]") + ", \n";
  s += OpNode("_mul_scalar", "_mulscalar0", "[[7, 0, 0]]", "{\"scalar\": \"0.5\"}") + ", \n";
  s += OpNode("Concat", "concat0", "[[4, 0, 0], [8, 0, 0]]",
              "{\n        \"dim\": \"1\", \n        \"num_args\": \"2\"\n      }") + ", \n";
  s += OpNode("sum", "sum0", "[[9, 0, 0]]", "{\n        \"axis\": \"1\", \n        \"keepdims\": \"True\"\n      }") +
       ", \n";
  s += OpNode("square", "x_square", "[[0, 0, 0]]") + ", \n";
  s += OpNode("_square_sum", "_square_sum0", "[[5, 0, 0]]",
              "{\n        \"axis\": \"1\", \n        \"keepdims\": \"True\"\n      }") + ", \n";
  s += OpNode("dot", "dot1", "[[11, 0, 0], [12, 0, 0]]") + ", \n";
  s += OpNode("negative", "negative0", "[[13, 0, 0]]") + ", \n";
  s += OpNode("_mul_scalar", "_mulscalar1", "[[14, 0, 0]]", "{\"scalar\": \"0.5\"}") + ", \n";
  s += OpNode("elemwise_add", "Final_Summation", "[[10, 0, 0], [15, 0, 0]]") + ", \n";
  s += OpNode("null", "out_label", "[]") + ", \n";
  s += OpNode(out_op, "out", "[[16, 0, 0], [17, 0, 0]]") + "\n";
  s += "  ], \n  \"arg_nodes\": [0, 1, 3, 5, 17], \n  \"node_row_ptr\": [\n";
  for (int i = 0; i <= 19; ++i) s += fmt::format("    {}{}\n", i, i < 19 ? ", " : "");
  s += fmt::format("  ], \n  \"heads\": [[18, 0, 0]], \n  \"attrs\": {{\"mxnet_version\": [\"int\", {}]}}\n}}",
                   m.mxnet_version);
  return s;
}

std::string ParamsBytes(const Model& m) {
  const int64_t d = m.dim(), k = m.factors();
  std::vector<int64_t> all_rows(static_cast<size_t>(d));
  for (int64_t i = 0; i < d; ++i) all_rows[i] = i;
  io::NDArrayList list;
  list.named = true;
  list.arrays.push_back(io::NDArray::RowSparse("arg:w1_weight", {d, 1}, all_rows, m.params.w));
  list.arrays.push_back(io::NDArray::Dense("arg:w0_weight", {1}, std::vector<float>{m.params.w0}));
  list.arrays.push_back(io::NDArray::RowSparse("arg:v", {d, k}, all_rows, m.params.v));
  return io::SerializeNDArrayList(list);
}

// Members stored, not deflated, as in SageMaker's artifact: at 10M x 64 the params member is 2.8 GB
// of floats that deflate barely shrinks in minutes.
std::string SerializeModel(const Model& m) {
  return io::MakeZip({{kMetaMember, MetaJson(m)}, {kSymbolMember, SymbolJson(m)}, {kParamsMember, ParamsBytes(m)}},
                     /*compress=*/false);
}

void SaveModel(const Model& m, const std::string& dir) {
  io::WriteZipFile(dir + "/" + kModelFile,
                   {{kMetaMember, MetaJson(m)}, {kSymbolMember, SymbolJson(m)}, {kParamsMember, ParamsBytes(m)}},
                   /*compress=*/false);
  nlohmann::json meta = {
      {"algorithm", "factorization-machines"},
      {"format_version", 1},
      {"predictor_type", PredictorTypeName(m.predictor_type)},
      {"feature_dim", m.dim()},
      {"num_factors", m.factors()},
      {"hyperparameters", nlohmann::json::parse(m.hyperparameters_json)},
      {"metrics", m.metrics},
  };
  WriteFileAtomic(dir + "/" + kMetadataFile, meta.dump(2) + "\n");
}

Model ParseModel(std::string_view bytes, const std::string& source) {
  MLF_EXPECTS(io::DetectKind(bytes) == io::FileKind::kZip,
              "{}: not a factorization machines model: expected a zip (FM model_algo-1), found {}", source,
              io::FileKindName(io::DetectKind(bytes)));
  std::map<std::string, std::string> members;
  for (auto& e : io::ReadArchiveBuffer(bytes, source)) members[e.name] = std::move(e.data);
  MLF_EXPECTS(members.count(kParamsMember),
              "{}: the zip has no member '{}': not a factorization machines model_algo-1 (it holds {}, {} and {})",
              source, kParamsMember, kMetaMember, kSymbolMember, kParamsMember);
  Model m;
  bool type_known = false;
  if (auto it = members.find(kMetaMember); it != members.end()) {
    nlohmann::ordered_json meta;
    try {
      CheckJsonDepth(it->second, fmt::format("{}:{}", source, kMetaMember));
      meta = nlohmann::ordered_json::parse(it->second);
    } catch (const nlohmann::json::exception& e) {
      MLF_FAIL("{}:{}: not valid JSON: {}", source, kMetaMember, e.what());
    }
    MLF_EXPECTS(meta.is_object(), "{}:{}: expected a JSON object", source, kMetaMember);
    if (meta.contains("epoch_number") && meta["epoch_number"].is_number_integer()) m.epoch_number = meta["epoch_number"];
    if (meta.contains("training_parameters") && meta["training_parameters"].is_object()) {
      m.training_parameters = meta["training_parameters"];
      const auto& tp = m.training_parameters;
      if (tp.contains("predictor_type") && tp["predictor_type"].is_string()) {
        m.predictor_type = ParsePredictorType(tp["predictor_type"].get<std::string>());
        type_known = true;
      }
    }
  }
  if (!type_known) {
    auto it = members.find(kSymbolMember);
    MLF_EXPECTS(it != members.end(), "{}: neither {} nor {} says the predictor type", source, kMetaMember,
                kSymbolMember);
    if (it->second.find("LogisticRegressionOutput") != std::string::npos) {
      m.predictor_type = PredictorType::kBinaryClassifier;
    } else {
      MLF_EXPECTS(it->second.find("LinearRegressionOutput") != std::string::npos,
                  "{}:{}: no LinearRegressionOutput or LogisticRegressionOutput node: not an FM symbol", source,
                  kSymbolMember);
      m.predictor_type = PredictorType::kRegressor;
    }
  }
  const std::string psource = source + ":" + kParamsMember;
  // Each copy of the parameters is released as soon as the next exists: a 10M x 64 model is 2.6 GB.
  io::NDArrayList list = io::ParseNDArrayList(members[kParamsMember], psource);
  members.clear();
  io::NDArray* v = nullptr;
  for (io::NDArray& a : list.arrays)
    if (a.name == "arg:v") v = &a;
  MLF_EXPECTS(v != nullptr, "{}: no array 'arg:v' (the factor matrix): not an FM model", psource);
  io::FloatMatrix vm = io::ToFloatMatrix(*v);
  const std::vector<int64_t> v_shape = v->shape;
  *v = io::NDArray();
  MLF_EXPECTS(vm.rows > 0 && vm.cols > 0 && v_shape.size() == 2, "{}: arg:v has shape ({}); expected (feature_dim, "
              "num_factors)", psource, fmt::format("{}", fmt::join(v_shape, ", ")));
  m.params.d = vm.rows;
  m.params.k = vm.cols;
  m.params.v = std::move(vm.values);
  m.params.w.assign(static_cast<size_t>(vm.rows), 0.0f);
  if (const io::NDArray* w1 = io::FindByName(list, "arg:w1_weight")) {
    io::FloatMatrix wm = io::ToFloatMatrix(*w1);
    MLF_EXPECTS(wm.rows == vm.rows && wm.cols == 1, "{}: arg:w1_weight is {} x {} but arg:v has {} rows; expected "
                "(feature_dim, 1)", psource, wm.rows, wm.cols, vm.rows);
    m.params.w = std::move(wm.values);
  }
  if (const io::NDArray* w0 = io::FindByName(list, "arg:w0_weight")) {
    const std::vector<float> b = w0->ToFloat32();
    MLF_EXPECTS(b.size() == 1 && w0->storage == io::NDStorage::kDense,
                "{}: arg:w0_weight has {} values; expected one (the bias)", psource, b.size());
    m.params.w0 = b[0];
  }
  return m;
}

Model LoadModel(const io::ModelSource& source) {
  Model m = ParseModel(source.model_bytes(), source.model_source());
  if (const std::optional<nlohmann::json> meta = ReadModelMetadata(source, kMetadataFile)) {
    if (meta->contains("hyperparameters")) m.hyperparameters_json = (*meta)["hyperparameters"].dump();
    if (meta->contains("metrics") && (*meta)["metrics"].is_object()) {
      for (const auto& [k, v] : (*meta)["metrics"].items()) {
        if (v.is_number()) m.metrics[k] = v.get<double>();
      }
    }
  }
  return m;
}

Model LoadModel(const std::string& path) { return LoadModel(io::ModelSource::Open(path)); }

void ExportEmbeddings(const Model& m, const std::string& path) {
  const bool csv = path.size() >= 4 && path.compare(path.size() - 4, 4, ".csv") == 0;
  const bool npy = path.size() >= 4 && path.compare(path.size() - 4, 4, ".npy") == 0;
  MLF_EXPECTS(csv || npy, "embeddings file '{}': the name must end in .csv or .npy (the format)", path);
  const int64_t d = m.dim(), k = m.factors();
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  try {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    MLF_EXPECTS(out.good(), "cannot write '{}'", tmp);
    if (npy) {
      std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", d, k + 1);
      const size_t total = 10 + header.size() + 1;
      header.append((64 - total % 64) % 64, ' ');
      header += '\n';
      const uint16_t hlen = static_cast<uint16_t>(header.size());
      out.write("\x93NUMPY\x01\x00", 8);
      const char len_bytes[2] = {static_cast<char>(hlen & 0xff), static_cast<char>(hlen >> 8)};
      out.write(len_bytes, 2);
      out.write(header.data(), static_cast<std::streamsize>(header.size()));
      std::vector<float> row(static_cast<size_t>(k + 1));
      for (int64_t i = 0; i < d; ++i) {
        row[0] = m.params.w[i];
        std::copy(m.params.v.begin() + i * k, m.params.v.begin() + (i + 1) * k, row.begin() + 1);
        out.write(reinterpret_cast<const char*>(row.data()), static_cast<std::streamsize>(row.size() * 4));
      }
    } else {
      std::string line = "feature,w";
      for (int64_t f = 0; f < k; ++f) line += fmt::format(",v{}", f);
      out << line << '\n';
      for (int64_t i = 0; i < d; ++i) {
        line = fmt::format("{},{}", i, m.params.w[i]);
        for (int64_t f = 0; f < k; ++f) line += fmt::format(",{}", m.params.v[i * k + f]);
        out << line << '\n';
      }
    }
    out.flush();
    MLF_EXPECTS(out.good(), "writing '{}' failed (disk full?)", tmp);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  CommitTempFile(tmp, path);
}

}  // namespace mlforge::algos::factorization_machines
