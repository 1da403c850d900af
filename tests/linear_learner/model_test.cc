// The linear learner artifact: reading the two real SageMaker models (shapes, values from their
// decoded.json, predictions against a float64 reference), byte-for-byte JSON members, and
// write -> read round trips for binary, regressor and multiclass models.
#include "algos/linear_learner/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "io/archive.h"
#include "tests/testutil.h"

namespace mlforge::algos::linear_learner {
namespace {

nlohmann::json Decoded(const std::string& name) {
  return nlohmann::json::parse(test::ReadFile(test::SharedData("artifacts/" + name + ".decoded.json")));
}

// The bytes of one member of the real model_algo-1 zip.
std::string RealMember(const std::string& name, const std::string& member) {
  const std::string zip =
      io::ReadArchiveMember(test::SharedData("artifacts/" + name + ".model.tar.gz"), io::kModelMemberName);
  return io::ReadArchiveMemberBuffer(zip, name, member);
}

const nlohmann::json& ArrayInfo(const nlohmann::json& decoded, const std::string& key) {
  for (const auto& zm : decoded["tar_members"][0]["zip_members"]) {
    if (!zm.contains("arrays")) continue;
    for (const auto& a : zm["arrays"]) {
      if (a["key"] == key) return a;
    }
  }
  throw std::runtime_error("no array " + key);
}

HostBatch DenseBatch(int64_t rows, int64_t cols, std::vector<float> values) {
  HostBatch b;
  b.layout = Layout::kDense;
  b.rows = rows;
  b.cols = cols;
  b.values = std::move(values);
  return b;
}

TEST(LinearLearnerModel, ReadsRealBinaryModel) {
  MLF_REQUIRE_SHARED_DATA();
  const std::string name = "linear_learner_binary_d5";
  Model m = LoadModel(test::SharedData("artifacts/" + name + ".model.tar.gz"));
  const nlohmann::json dec = Decoded(name);
  EXPECT_EQ(m.predictor_type, PredictorType::kBinaryClassifier);
  EXPECT_EQ(m.loss_type, "logistic");
  EXPECT_EQ(m.dim, 5);
  EXPECT_EQ(m.outputs, 1);
  EXPECT_DOUBLE_EQ(m.threshold, 0.4020986557006836);
  EXPECT_DOUBLE_EQ(m.bias_lr_mult, 10.0);
  EXPECT_EQ(m.mxnet_version, 10000);
  const auto& w = ArrayInfo(dec, "arg:fc0_weight");
  ASSERT_EQ(w["first_values"].size(), 5u);
  double sum = 0;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(m.weights[i], static_cast<float>(w["first_values"][i].get<double>()));
    sum += m.weights[i];
  }
  EXPECT_NEAR(sum, w["sum_ignoring_nan"].get<double>(), 1e-6);
  EXPECT_EQ(m.bias[0], static_cast<float>(ArrayInfo(dec, "arg:fc0_bias")["first_values"][0].get<double>()));

  // Predictions vs a float64 reference computed from the decoded values.
  std::vector<float> x = {1, 0, 0, 0, 0, 0.5f, -1, 2, 0.25f, 3, -2, -2, -2, -2, -2, 0, 0, 0, 0, 0};
  Predictions p = Predict(m, DenseBatch(4, 5, x));
  ASSERT_EQ(p.scores.size(), 4u);
  ASSERT_EQ(p.predicted_labels.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    double z = ArrayInfo(dec, "arg:fc0_bias")["first_values"][0].get<double>();
    for (int j = 0; j < 5; ++j) z += static_cast<double>(x[i * 5 + j]) * w["first_values"][j].get<double>();
    const double score = 1.0 / (1.0 + std::exp(-z));
    EXPECT_NEAR(p.scores[i], score, 1e-6) << i;
    EXPECT_EQ(p.predicted_labels[i], score > 0.4020986557006836 ? 1.0f : 0.0f) << i;
  }
  // All-zero row: sigmoid(bias) = sigmoid(-0.491) = 0.3796 < threshold 0.402 -> 0.
  EXPECT_NEAR(p.scores[3], 1.0 / (1.0 + std::exp(0.4912434220314026)), 1e-6);
  EXPECT_EQ(p.predicted_labels[3], 0.0f);
}

TEST(LinearLearnerModel, ReadsRealRegressorModel) {
  MLF_REQUIRE_SHARED_DATA();
  const std::string name = "linear_learner_regressor_d513";
  Model m = LoadModel(test::SharedData("artifacts/" + name + ".model.tar.gz"));
  const nlohmann::json dec = Decoded(name);
  EXPECT_EQ(m.predictor_type, PredictorType::kRegressor);
  EXPECT_EQ(m.loss_type, "squared_loss");
  EXPECT_EQ(m.dim, 513);
  EXPECT_EQ(m.outputs, 1);
  EXPECT_EQ(m.mxnet_version, 10301);
  const auto& w = ArrayInfo(dec, "arg:fc0_weight");
  for (size_t i = 0; i < w["first_values"].size(); ++i)
    EXPECT_EQ(m.weights[i], static_cast<float>(w["first_values"][i].get<double>()));
  double sum = 0;
  for (float v : m.weights) sum += v;
  EXPECT_NEAR(sum, w["sum_ignoring_nan"].get<double>(), 1e-6 * std::fabs(sum));
  const double bias = ArrayInfo(dec, "arg:fc0_bias")["first_values"][0].get<double>();
  EXPECT_EQ(m.bias[0], static_cast<float>(bias));

  // Row of ones: score = sum(w) + b; unit rows: w_j + b; a sparse row in CSR.
  std::vector<float> x(3 * 513, 0.0f);
  for (int j = 0; j < 513; ++j) x[j] = 1.0f;
  x[513 + 2] = 1.0f;
  x[2 * 513 + 3] = 2.0f;
  x[2 * 513 + 5] = -1.0f;
  Predictions p = Predict(m, DenseBatch(3, 513, x));
  EXPECT_TRUE(p.predicted_labels.empty());
  EXPECT_NEAR(p.scores[0], w["sum_ignoring_nan"].get<double>() + bias, 1e-3);
  EXPECT_NEAR(p.scores[1], w["first_values"][2].get<double>() + bias, 1e-3);
  const double ref2 = 2 * w["first_values"][3].get<double>() - w["first_values"][5].get<double>() + bias;
  EXPECT_NEAR(p.scores[2], ref2, 1e-3);
  HostBatch csr;
  csr.layout = Layout::kCsr;
  csr.rows = 1;
  csr.cols = 513;
  csr.indptr = {0, 2};
  csr.indices = {3, 5};
  csr.values = {2.0f, -1.0f};
  EXPECT_FLOAT_EQ(Predict(m, csr).scores[0], p.scores[2]);
  EXPECT_THROW(Predict(m, DenseBatch(1, 5, std::vector<float>(5))), UserError);
}

TEST(LinearLearnerModel, JsonMembersMatchSageMakersBytes) {
  MLF_REQUIRE_SHARED_DATA();
  for (const std::string name : {"linear_learner_binary_d5", "linear_learner_regressor_d513"}) {
    Model m = LoadModel(test::SharedData("artifacts/" + name + ".model.tar.gz"));
    EXPECT_EQ(ManifestJson(), RealMember(name, "manifest.json")) << name;
    EXPECT_EQ(AdditionalParamsJson(m), RealMember(name, "additional-params.json")) << name;
    EXPECT_EQ(SymbolJson(m), RealMember(name, "mx-mod-symbol.json")) << name;
    EXPECT_EQ(ParamsBytes(m), RealMember(name, "mx-mod-0000.params")) << name;
  }
}

TEST(LinearLearnerModel, MetricsParamsLikeSageMaker) {
  MLF_REQUIRE_SHARED_DATA();
  HpValues v = Hyperparameters().Parse({{"predictor_type", "binary_classifier"}});
  Config c = ResolveConfig(v);
  Model m = LoadModel(test::SharedData("artifacts/linear_learner_binary_d5.model.tar.gz"));
  EXPECT_EQ(MetricsParamsFor(c, m.threshold).dump(), m.metrics_params.dump());
  HpValues rv = Hyperparameters().Parse({{"predictor_type", "regressor"}});
  Config rc = ResolveConfig(rv);
  Model r = LoadModel(test::SharedData("artifacts/linear_learner_regressor_d513.model.tar.gz"));
  EXPECT_EQ(MetricsParamsFor(rc, 0.5).dump(), r.metrics_params.dump());
}

Model Roundtrip(const Model& m, test::TempDir& dir) {
  SaveModel(m, dir.path());
  io::WriteModelTarGz(dir.path(), dir / "out/model.tar.gz");
  return LoadModel(dir / "out/model.tar.gz");
}

TEST(LinearLearnerModel, WriteReadRoundTrip) {
  for (PredictorType pt :
       {PredictorType::kBinaryClassifier, PredictorType::kRegressor, PredictorType::kMulticlassClassifier}) {
    test::TempDir dir;
    Model m;
    m.predictor_type = pt;
    m.dim = 7;
    m.outputs = pt == PredictorType::kMulticlassClassifier ? 4 : 1;
    m.loss_type = pt == PredictorType::kMulticlassClassifier ? "softmax_loss"
                  : pt == PredictorType::kRegressor          ? "huber_loss"
                                                             : "logistic";
    for (int64_t i = 0; i < m.dim * m.outputs; ++i) m.weights.push_back(0.1f * static_cast<float>(i) - 0.7f);
    for (int64_t c = 0; c < m.outputs; ++c) m.bias.push_back(0.25f * static_cast<float>(c) - 0.1f);
    m.threshold = 0.37;
    m.metrics_params = {{"threshold", 0.37}, {"huber_delta", 1.5}};
    m.hyperparameters_json = R"({"predictor_type": "x"})";
    m.metrics["validation:objective_loss"] = 0.125;
    Model r = Roundtrip(m, dir);
    EXPECT_EQ(r.predictor_type, pt);
    EXPECT_EQ(r.loss_type, m.loss_type);
    EXPECT_EQ(r.dim, m.dim);
    EXPECT_EQ(r.outputs, m.outputs);
    EXPECT_EQ(r.weights, m.weights);
    EXPECT_EQ(r.bias, m.bias);
    EXPECT_DOUBLE_EQ(r.threshold, 0.37);
    EXPECT_EQ(r.metrics_params.dump(), m.metrics_params.dump());
    EXPECT_DOUBLE_EQ(r.metrics.at("validation:objective_loss"), 0.125);
    EXPECT_EQ(nlohmann::json::parse(r.hyperparameters_json)["predictor_type"], "x");
    // Member names and order as SageMaker's (binary artifact) zip.
    const std::string zip = SerializeModel(m);
    auto members = io::ListArchiveBuffer(zip, "zip");
    ASSERT_EQ(members.size(), 4u);
    EXPECT_EQ(members[0].name, "manifest.json");
    EXPECT_EQ(members[1].name, "additional-params.json");
    EXPECT_EQ(members[2].name, "mx-mod-symbol.json");
    EXPECT_EQ(members[3].name, "mx-mod-0000.params");
    // The symbol is valid JSON with the right output op and shapes.
    auto sym = nlohmann::json::parse(SymbolJson(m));
    EXPECT_EQ(sym["nodes"][1]["attrs"]["__shape__"], "(7, " + std::to_string(m.outputs) + ")");
    // Predictions are identical before and after.
    std::vector<float> x(2 * 7);
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i));
    Predictions a = Predict(m, DenseBatch(2, 7, x)), b = Predict(r, DenseBatch(2, 7, x));
    EXPECT_EQ(a.scores, b.scores);
    EXPECT_EQ(a.predicted_labels, b.predicted_labels);
    if (pt == PredictorType::kMulticlassClassifier) {
      ASSERT_EQ(a.score_width, 4);
      for (int i = 0; i < 2; ++i) {
        double zs[4], mx = -1e300, tot = 0;
        for (int c = 0; c < 4; ++c) {
          zs[c] = m.bias[c];
          for (int j = 0; j < 7; ++j) zs[c] += static_cast<double>(x[i * 7 + j]) * m.weights[j * 4 + c];
          mx = std::max(mx, zs[c]);
        }
        int best = 0;
        for (int c = 0; c < 4; ++c) {
          tot += std::exp(zs[c] - mx);
          if (zs[c] > zs[best]) best = c;
        }
        for (int c = 0; c < 4; ++c) EXPECT_NEAR(a.scores[i * 4 + c], std::exp(zs[c] - mx) / tot, 1e-6);
        EXPECT_EQ(a.predicted_labels[i], static_cast<float>(best));
      }
    }
  }
}

TEST(LinearLearnerModel, RejectsBadArtifacts) {
  EXPECT_THROW(ParseModel("not a zip at all", "x"), UserError);
  // A zip without the params member.
  const std::string zip = io::MakeZip({{"manifest.json", ManifestJson()}});
  try {
    ParseModel(zip, "bad.zip");
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("additional-params.json"), std::string::npos) << e.what();
  }
  // A binary model whose weight has 2 columns.
  Model m;
  m.dim = 3;
  m.outputs = 2;
  m.weights.assign(6, 1.0f);
  m.bias.assign(2, 0.0f);
  m.predictor_type = PredictorType::kBinaryClassifier;
  EXPECT_THROW(ParseModel(SerializeModel(m), "two-columns"), UserError);
  // A k-means model is not a linear learner model.
  MLF_REQUIRE_SHARED_DATA();
  EXPECT_THROW(LoadModel(test::SharedData("artifacts/kmeans_ufo_k10_d2.model.tar.gz")), UserError);
}

}  // namespace
}  // namespace mlforge::algos::linear_learner
