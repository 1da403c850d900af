// The inference wire formats (container/inference_io.h): the exact bytes of every k-means
// response format, every request form, and the messages of malformed requests.
#include "container/inference_io.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "algos/kmeans/kmeans.h"
#include "comm/communicator.h"
#include "core/error.h"
#include "core/resources.h"
#include "io/archive.h"
#include "io/ndarray.h"
#include "io/record_codec.h"
#include "io/recordio.h"
#include "record.pb.h"
#include "tests/testutil.h"

namespace mlforge::container {
namespace {

using algos::kmeans::Predictions;

template <typename F>
std::string ErrorOf(F&& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "<no error>";
}

::testing::AssertionResult HasSubstr(const std::string& s, const std::string& part) {
  if (s.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << s << "' does not contain '" << part << "'";
}

std::string Float(float v) {
  std::string s;
  AppendFloat(v, &s);
  return s;
}

// The k-means response through the generic encoder, as the k-means predictor builds its table.
algos::PredictionTable Table(const Predictions& p) {
  algos::PredictionTable t;
  t.rows = static_cast<int64_t>(p.closest_cluster.size());
  t.columns.resize(2);
  t.columns[0].name = "closest_cluster";
  t.columns[0].values.assign(p.closest_cluster.begin(), p.closest_cluster.end());
  t.columns[1].name = "distance_to_cluster";
  t.columns[1].values = p.distance_to_cluster;
  return t;
}

std::string EncodeKMeansResponse(ResponseFormat f, const Predictions& p) {
  return EncodeResponse(f, "predictions", Table(p));
}
std::string EncodeKMeansResponse(const std::string& accept, const Predictions& p) {
  return EncodeKMeansResponse(ParseAccept(accept), p);
}

class KMeansResponseEncoder {
 public:
  explicit KMeansResponseEncoder(ResponseFormat f, JoinFields j = {}) : enc_(f, "predictions", j) {}
  void Append(const Predictions& p, std::string* out) { enc_.Append(Table(p), out); }
  void Append(const Predictions& p, const HostBatch& b, const std::vector<std::string>* uids,
              std::string* out) {
    enc_.Append(Table(p), b, uids, out);
  }
  void Finish(std::string* out) { enc_.Finish(out); }

 private:
  ResponseEncoder enc_;
};

Predictions Small() {
  Predictions p;
  p.closest_cluster = {1, 0, 12};
  p.distance_to_cluster = {3.0f, 0.25f, 0.1f};
  return p;
}

RequestContext Ctx(int64_t cols = -1, std::string source = "req") {
  RequestContext c;
  c.source = std::move(source);
  c.expected_cols = cols;
  return c;
}

// Dense rows of a batch (densifying CSR) for comparisons.
std::vector<std::vector<float>> Rows(const HostBatch& b) {
  std::vector<std::vector<float>> out(static_cast<size_t>(b.rows),
                                      std::vector<float>(static_cast<size_t>(b.cols), 0));
  for (int64_t r = 0; r < b.rows; ++r) {
    if (b.layout == Layout::kDense) {
      for (int64_t j = 0; j < b.cols; ++j) out[r][j] = b.values[static_cast<size_t>(r * b.cols + j)];
    } else {
      for (int64_t k = b.indptr[r]; k < b.indptr[r + 1]; ++k) out[r][b.indices[k]] = b.values[k];
    }
  }
  return out;
}

TEST(InferenceFloat, ShortestRoundTripAlwaysReadsAsFloat) {
  EXPECT_EQ(Float(1.0f), "1.0");
  EXPECT_EQ(Float(0.0f), "0.0");
  EXPECT_EQ(Float(-0.0f), "-0.0");
  EXPECT_EQ(Float(3.0f), "3.0");
  EXPECT_EQ(Float(0.25f), "0.25");
  EXPECT_EQ(Float(0.1f), "0.1");
  EXPECT_EQ(Float(-2.5f), "-2.5");
  EXPECT_EQ(Float(123456.0f), "123456.0");
  EXPECT_EQ(Float(1e20f), "1e+20");
  EXPECT_EQ(Float(1.5e-7f), "1.5e-07");
  EXPECT_EQ(Float(0.0001f), "0.0001");
  EXPECT_EQ(Float(16777216.0f), "16777216.0");
  EXPECT_EQ(Float(1e16f), "1e+16");
  EXPECT_EQ(Float(std::numeric_limits<float>::quiet_NaN()), "nan");
  EXPECT_EQ(Float(-std::numeric_limits<float>::infinity()), "-inf");
  // Every float reads back to itself.
  for (float v : {3.14159274f, 1.17549435e-38f, 3.40282347e+38f, 1e-45f, 7.0e-5f, 12345.678f, 0.3f}) {
    EXPECT_EQ(std::strtof(Float(v).c_str(), nullptr), v) << Float(v);
  }
}

TEST(KMeansResponse, JsonBytes) {
  EXPECT_EQ(EncodeKMeansResponse(ResponseFormat::kJson, Small()),
            "{\"predictions\":[{\"closest_cluster\":1.0,\"distance_to_cluster\":3.0},"
            "{\"closest_cluster\":0.0,\"distance_to_cluster\":0.25},"
            "{\"closest_cluster\":12.0,\"distance_to_cluster\":0.1}]}");
  EXPECT_EQ(EncodeKMeansResponse(ResponseFormat::kJson, Predictions{}), "{\"predictions\":[]}");
  // Parses as JSON, numbers as floats.
  const auto doc = nlohmann::json::parse(EncodeKMeansResponse("application/json", Small()));
  EXPECT_TRUE(doc["predictions"][0]["closest_cluster"].is_number_float());
  EXPECT_EQ(doc["predictions"][2]["closest_cluster"].get<double>(), 12.0);
}

TEST(KMeansResponse, JsonLinesCsvBytes) {
  EXPECT_EQ(EncodeKMeansResponse(ResponseFormat::kJsonLines, Small()),
            "{\"closest_cluster\": 1.0, \"distance_to_cluster\": 3.0}\n"
            "{\"closest_cluster\": 0.0, \"distance_to_cluster\": 0.25}\n"
            "{\"closest_cluster\": 12.0, \"distance_to_cluster\": 0.1}\n");
  EXPECT_EQ(EncodeKMeansResponse(ResponseFormat::kCsv, Small()), "1.0,3.0\n0.0,0.25\n12.0,0.1\n");
  EXPECT_EQ(EncodeKMeansResponse(ResponseFormat::kCsv, Predictions{}), "");
  EXPECT_EQ(EncodeKMeansResponse(ResponseFormat::kJsonLines, Predictions{}), "");
}

TEST(KMeansResponse, JoinFieldsBytes) {
  EXPECT_FALSE(ParseJoinFields("").any());
  EXPECT_FALSE(ParseJoinFields("none").any());
  const JoinFields both = ParseJoinFields(" UID , ordinal");
  EXPECT_TRUE(both.ordinal && both.uid);
  EXPECT_TRUE(HasSubstr(ErrorOf([] { ParseJoinFields("ordinal,id"); }), "'id' is not a join field"));

  HostBatch batch;  // the ordinals: first_row 7, or explicit ones after a shuffle
  batch.rows = 3;
  batch.first_row = 7;
  const std::vector<std::string> uids = {"a", "", "q\"x,y"};
  auto encode = [&](ResponseFormat f, JoinFields j, const HostBatch& b) {
    KMeansResponseEncoder enc(f, j);
    std::string out;
    enc.Append(Small(), b, &uids, &out);
    enc.Finish(&out);
    return out;
  };
  EXPECT_EQ(
      encode(ResponseFormat::kJson, both, batch),
      "{\"predictions\":[{\"ordinal\":7,\"uid\":\"a\",\"closest_cluster\":1.0,\"distance_to_cluster\":3.0},"
      "{\"ordinal\":8,\"uid\":null,\"closest_cluster\":0.0,\"distance_to_cluster\":0.25},"
      "{\"ordinal\":9,\"uid\":\"q\\\"x,y\",\"closest_cluster\":12.0,\"distance_to_cluster\":0.1}]}");
  EXPECT_EQ(encode(ResponseFormat::kJsonLines, ParseJoinFields("ordinal"), batch),
            "{\"ordinal\": 7, \"closest_cluster\": 1.0, \"distance_to_cluster\": 3.0}\n"
            "{\"ordinal\": 8, \"closest_cluster\": 0.0, \"distance_to_cluster\": 0.25}\n"
            "{\"ordinal\": 9, \"closest_cluster\": 12.0, \"distance_to_cluster\": 0.1}\n");
  HostBatch shuffled = batch;
  shuffled.ordinals = {40, 2, 5};
  EXPECT_EQ(encode(ResponseFormat::kCsv, both, shuffled),
            "40,a,1.0,3.0\n2,,0.0,0.25\n5,\"q\"\"x,y\",12.0,0.1\n");
  EXPECT_EQ(encode(ResponseFormat::kCsv, ParseJoinFields("uid"), batch),
            "a,1.0,3.0\n,0.0,0.25\n\"q\"\"x,y\",12.0,0.1\n");

  // recordIO: Record.uid (absent for ""), label["ordinal"] float64, then the prediction's labels.
  const std::string pb = encode(ResponseFormat::kRecordIO, both, batch);
  io::RecordIOReader reader(pb, "response");
  std::string_view payload;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(reader.Next(&payload));
    aialgs::data::Record rec;
    ASSERT_TRUE(rec.ParseFromArray(payload.data(), static_cast<int>(payload.size())));
    EXPECT_EQ(rec.has_uid(), !uids[i].empty());
    EXPECT_EQ(rec.uid(), uids[i]);
    ASSERT_EQ(rec.label().at("ordinal").float64_tensor().values_size(), 1);
    EXPECT_EQ(rec.label().at("ordinal").float64_tensor().values(0), 7.0 + i);
    EXPECT_EQ(rec.label().at("closest_cluster").float32_tensor().values(0),
              static_cast<float>(Small().closest_cluster[i]));
    EXPECT_EQ(rec.label().at("distance_to_cluster").float32_tensor().values(0),
              Small().distance_to_cluster[i]);
  }
  EXPECT_FALSE(reader.Next(&payload));
  // Without join fields the joined Append writes the endpoint's bytes.
  EXPECT_EQ(encode(ResponseFormat::kRecordIO, JoinFields{}, batch),
            EncodeKMeansResponse(ResponseFormat::kRecordIO, Small()));
}

TEST(KMeansResponse, NonFiniteDistances) {
  Predictions p;
  p.closest_cluster = {0, 2};
  p.distance_to_cluster = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()};
  EXPECT_EQ(EncodeKMeansResponse(ResponseFormat::kJson, p),
            "{\"predictions\":[{\"closest_cluster\":0.0,\"distance_to_cluster\":null},"
            "{\"closest_cluster\":2.0,\"distance_to_cluster\":null}]}");
  EXPECT_EQ(EncodeKMeansResponse(ResponseFormat::kCsv, p), "0.0,nan\n2.0,inf\n");
}

TEST(KMeansResponse, RecordIOBytesAndDecoding) {
  Predictions one;
  one.closest_cluster = {1};
  one.distance_to_cluster = {3.0f};
  // Hand-assembled: frame header, Record{label{"closest_cluster": Value{f32{[1.0]}}},
  // label{"distance_to_cluster": Value{f32{[3.0]}}}}, padding.
  std::string payload;
  auto entry = [&](const std::string& key, float v) {
    std::string tensor = std::string("\x0a\x04", 2);
    tensor.append(reinterpret_cast<const char*>(&v), 4);  // little-endian host
    std::string value = std::string("\x12") + static_cast<char>(tensor.size()) + tensor;
    std::string e = std::string("\x0a") + static_cast<char>(key.size()) + key + "\x12" +
                    static_cast<char>(value.size()) + value;
    payload += std::string("\x12") + static_cast<char>(e.size()) + e;
  };
  entry("closest_cluster", 1.0f);
  entry("distance_to_cluster", 3.0f);
  std::string framed;
  io::AppendRecordIOFrame(payload, &framed);
  EXPECT_EQ(EncodeKMeansResponse(ResponseFormat::kRecordIO, one), framed);

  // Same bytes as the generated class's deterministic serialization (map keys sorted).
  aialgs::data::Record rec;
  (*rec.mutable_label())["closest_cluster"].mutable_float32_tensor()->add_values(1.0f);
  (*rec.mutable_label())["distance_to_cluster"].mutable_float32_tensor()->add_values(3.0f);
  std::string det;
  {
    google::protobuf::io::StringOutputStream sos(&det);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    ASSERT_TRUE(rec.SerializeToCodedStream(&cos));
  }
  EXPECT_EQ(payload, det);

  // One Record per row, decodable by libprotobuf.
  const std::string body = EncodeKMeansResponse("application/x-recordio-protobuf", Small());
  io::RecordIOReader reader(body, "response");
  std::string_view p;
  size_t i = 0;
  for (; reader.Next(&p); ++i) {
    aialgs::data::Record r;
    ASSERT_TRUE(r.ParseFromArray(p.data(), static_cast<int>(p.size())));
    EXPECT_EQ(r.features_size(), 0);
    ASSERT_EQ(r.label_size(), 2);
    const auto& c = r.label().at("closest_cluster").float32_tensor();
    const auto& d = r.label().at("distance_to_cluster").float32_tensor();
    ASSERT_EQ(c.values_size(), 1);
    ASSERT_EQ(d.values_size(), 1);
    EXPECT_EQ(c.values(0), static_cast<float>(Small().closest_cluster[i]));
    EXPECT_EQ(d.values(0), Small().distance_to_cluster[i]);
    EXPECT_EQ(c.keys_size() + c.shape_size() + d.keys_size() + d.shape_size(), 0);
  }
  EXPECT_EQ(i, 3u);
  EXPECT_EQ(EncodeKMeansResponse(ResponseFormat::kRecordIO, Predictions{}), "");
}

TEST(KMeansResponse, StreamedEqualsWhole) {
  for (auto f :
       {ResponseFormat::kJson, ResponseFormat::kJsonLines, ResponseFormat::kCsv, ResponseFormat::kRecordIO}) {
    KMeansResponseEncoder enc(f);
    std::string out;
    Predictions a, b;
    a.closest_cluster = {1};
    a.distance_to_cluster = {3.0f};
    b.closest_cluster = {0, 12};
    b.distance_to_cluster = {0.25f, 0.1f};
    enc.Append(a, &out);
    enc.Append(Predictions{}, &out);
    enc.Append(b, &out);
    enc.Finish(&out);
    EXPECT_EQ(out, EncodeKMeansResponse(f, Small())) << ResponseFormatName(f);
  }
}

// Linear learner shapes (SPEC.md 3.6): integer predicted_label in JSON, multiclass score as an array,
// a regressor's score alone; recordIO carries the score vector and the label as float32.
TEST(GenericResponse, LinearLearnerShapes) {
  algos::PredictionTable binary;
  binary.rows = 2;
  binary.columns.resize(2);
  binary.columns[0].name = "score";
  binary.columns[0].values = {0.25f, 0.875f};
  binary.columns[1].name = "predicted_label";
  binary.columns[1].json_integer = true;
  binary.columns[1].values = {0.0f, 1.0f};
  EXPECT_EQ(
      EncodeResponse(ResponseFormat::kJson, "predictions", binary),
      "{\"predictions\":[{\"score\":0.25,\"predicted_label\":0},{\"score\":0.875,\"predicted_label\":1}]}");
  EXPECT_EQ(EncodeResponse(ResponseFormat::kJsonLines, "predictions", binary),
            "{\"score\": 0.25, \"predicted_label\": 0}\n{\"score\": 0.875, \"predicted_label\": 1}\n");

  algos::PredictionTable multi;
  multi.rows = 1;
  multi.columns.resize(2);
  multi.columns[0].name = "score";
  multi.columns[0].width = 3;
  multi.columns[0].json_array = true;
  multi.columns[0].values = {0.125f, 0.5f, 0.375f};
  multi.columns[1].name = "predicted_label";
  multi.columns[1].json_integer = true;
  multi.columns[1].values = {1.0f};
  EXPECT_EQ(EncodeResponse(ResponseFormat::kJson, "predictions", multi),
            "{\"predictions\":[{\"score\":[0.125,0.5,0.375],\"predicted_label\":1}]}");
  EXPECT_EQ(EncodeResponse(ResponseFormat::kJsonLines, "predictions", multi),
            "{\"score\": [0.125, 0.5, 0.375], \"predicted_label\": 1}\n");
  const std::string pb = EncodeResponse(ResponseFormat::kRecordIO, "predictions", multi);
  io::RecordIOReader reader(pb, "response");
  std::string_view payload;
  ASSERT_TRUE(reader.Next(&payload));
  aialgs::data::Record rec;
  ASSERT_TRUE(rec.ParseFromArray(payload.data(), static_cast<int>(payload.size())));
  const auto& score = rec.label().at("score").float32_tensor();
  ASSERT_EQ(score.values_size(), 3);
  EXPECT_EQ(score.values(1), 0.5f);
  EXPECT_EQ(rec.label().at("predicted_label").float32_tensor().values(0), 1.0f);
  EXPECT_FALSE(reader.Next(&payload));

  // A width-1 column flagged json_array (PCA's projection with one component) stays an array, and
  // the list key is the predictor's.
  algos::PredictionTable proj;
  proj.rows = 1;
  proj.columns.resize(1);
  proj.columns[0].name = "projection";
  proj.columns[0].json_array = true;
  proj.columns[0].values = {-1.5f};
  EXPECT_EQ(EncodeResponse(ResponseFormat::kJson, "projections", proj),
            "{\"projections\":[{\"projection\":[-1.5]}]}");
  EXPECT_EQ(EncodeResponse(ResponseFormat::kJson, "projections", algos::PredictionTable{}),
            "{\"projections\":[]}");
}

TEST(AcceptAndContentType, CsvOnlyWhereTheModelAnswersIt) {
  EXPECT_EQ(ParseAccept("text/csv", true), ResponseFormat::kCsv);
  EXPECT_EQ(ParseAccept("text/csv, application/jsonlines", false), ResponseFormat::kJsonLines);
  EXPECT_TRUE(HasSubstr(ErrorOf([] { ParseAccept("text/csv", false); }),
                        "unsupported accept type 'text/csv'; supported for this model: application/json, "
                        "application/jsonlines, application/x-recordio-protobuf"));
}

TEST(AcceptAndContentType, CsvRequestsOnlyWhereTheModelTakesThem) {
  struct NoCsv final : algos::Predictor {
    std::string algorithm() const override { return "factorization-machines"; }
    int64_t feature_dim() const override { return 2; }
    std::string Describe() const override { return "no csv"; }
    bool csv_request() const override { return false; }
    algos::PredictionTable Predict(const HostBatch&, Resources&) const override { return {}; }
  } fm;
  CheckRequestType(ParseContentType("application/json"), fm, "in.json");
  EXPECT_TRUE(HasSubstr(ErrorOf([&] { CheckRequestType(ParseContentType("text/csv"), fm, "in.csv"); }),
                        "in.csv: a factorization-machines model takes no text/csv"));
}

TEST(LoadPredictor, RealArtifactsAndRefusals) {
  MLF_REQUIRE_SHARED_DATA();
  const std::string dir = test::SharedData("artifacts");
  Resources res(DeviceRequest::kCpu, 1, 0, comm::MakeSingleProcess());
  // k-means: the centroids answer themselves.
  const auto km = LoadPredictor(io::ModelSource::Open(dir + "/kmeans_ufo_k10_d2.model.tar.gz"));
  EXPECT_EQ(km->algorithm(), "kmeans");
  EXPECT_EQ(km->feature_dim(), 2);
  EXPECT_TRUE(km->csv_response());
  // Linear learner: detected from the zip; binary has score + integer predicted_label.
  const auto ll = LoadPredictor(io::ModelSource::Open(dir + "/linear_learner_binary_d5.model.tar.gz"));
  EXPECT_EQ(ll->algorithm(), "linear-learner");
  EXPECT_EQ(ll->feature_dim(), 5);
  EXPECT_FALSE(ll->csv_response());
  HostBatch b;
  b.rows = 1;
  b.cols = 5;
  b.values = {0, 0, 0, 0, 0};
  const algos::PredictionTable t = ll->Predict(b, res);
  ASSERT_EQ(t.columns.size(), 2u);
  EXPECT_EQ(t.columns[0].name, "score");
  EXPECT_EQ(t.columns[1].name, "predicted_label");
  EXPECT_TRUE(t.columns[1].json_integer);
  // The FM artifact loads as factorization machines (detected from model_algo-1), and a wrong override.
  EXPECT_EQ(LoadPredictor(io::ModelSource::Open(dir + "/fm_movielens100k_regressor_d2625_k64.model.tar.gz"))
                ->algorithm(),
            "factorization-machines");
  {
    // PCA artifacts load (SageMaker's projections), detected from model_algo-1.
    auto pca = LoadPredictor(io::ModelSource::Open(dir + "/pca_regular_d7_k6.model.tar.gz"));
    EXPECT_EQ(pca->algorithm(), "pca");
    EXPECT_EQ(pca->json_list_key(), "projections");
  }
  EXPECT_TRUE(HasSubstr(ErrorOf([&] {
                          LoadPredictor(io::ModelSource::Open(dir + "/kmeans_ufo_k10_d2.model.tar.gz"),
                                        "linear_learner");
                        }),
                        "not a linear learner model"));
  EXPECT_TRUE(HasSubstr(ErrorOf([&] {
                          LoadPredictor(io::ModelSource::Open(dir + "/kmeans_ufo_k10_d2.model.tar.gz"),
                                        "kmeens");
                        }),
                        "did you mean 'kmeans'?"));
}

TEST(AcceptAndContentType, Parsing) {
  EXPECT_EQ(ParseAccept(""), ResponseFormat::kJson);
  EXPECT_EQ(ParseAccept("*/*"), ResponseFormat::kJson);
  EXPECT_EQ(ParseAccept("Application/JSON; verbose=true"), ResponseFormat::kJson);
  EXPECT_EQ(ParseAccept("application/jsonlines"), ResponseFormat::kJsonLines);
  EXPECT_EQ(ParseAccept("text/csv"), ResponseFormat::kCsv);
  EXPECT_EQ(ParseAccept("application/x-recordio-protobuf"), ResponseFormat::kRecordIO);
  EXPECT_EQ(ParseAccept("image/png, text/csv;q=0.9"), ResponseFormat::kCsv);
  EXPECT_TRUE(HasSubstr(ErrorOf([] { ParseAccept("text/html"); }),
                        "unsupported accept type 'text/html'; supported: "
                        "application/json, application/jsonlines"));

  EXPECT_EQ(ParseContentType("text/csv").format, RequestFormat::kCsv);
  EXPECT_EQ(ParseContentType("text/csv").label_size, 0);
  EXPECT_EQ(ParseContentType("text/csv; label_size=1").label_size, 1);
  EXPECT_EQ(ParseContentType("TEXT/CSV;charset=utf-8").format, RequestFormat::kCsv);
  EXPECT_EQ(ParseContentType("application/json").format, RequestFormat::kJson);
  EXPECT_EQ(ParseContentType("application/jsonlines").format, RequestFormat::kJsonLines);
  EXPECT_EQ(ParseContentType("application/x-recordio-protobuf").format, RequestFormat::kRecordIO);
  EXPECT_TRUE(
      HasSubstr(ErrorOf([] { ParseContentType("text/plain"); }), "unsupported content type 'text/plain'"));
  EXPECT_TRUE(HasSubstr(ErrorOf([] { ParseContentType("text/csv;label_size=2"); }), "label_size must be 0"));

  EXPECT_EQ(ContentTypeFromPath("a/b.CSV").format, RequestFormat::kCsv);
  EXPECT_EQ(ContentTypeFromPath("x.json").format, RequestFormat::kJson);
  EXPECT_EQ(ContentTypeFromPath("x.jsonl").format, RequestFormat::kJsonLines);
  for (const char* p : {"x.pbr", "x.rec", "x.recordio", "x.protobuf"}) {
    EXPECT_EQ(ContentTypeFromPath(p).format, RequestFormat::kRecordIO) << p;
  }
  EXPECT_TRUE(
      HasSubstr(ErrorOf([] { ContentTypeFromPath("data.txt"); }), "data.txt: cannot tell the input format"));
  EXPECT_TRUE(HasSubstr(ErrorOf([] { ContentTypeFromPath("data.txt"); }), "--content-type"));
}

TEST(DecodeRequest, Csv) {
  const HostBatch b = DecodeRequest("text/csv", "1,2,3\n4.5, -6 ,7e1\r\n", Ctx(3));
  EXPECT_EQ(b.layout, Layout::kDense);
  EXPECT_EQ(b.rows, 2);
  EXPECT_EQ(b.cols, 3);
  EXPECT_FALSE(b.has_labels());
  EXPECT_EQ(b.values, (std::vector<float>{1, 2, 3, 4.5f, -6, 70}));
  // No trailing newline; width from the first row when the model's is unknown.
  EXPECT_EQ(DecodeRequest("text/csv", "1,2", Ctx()).cols, 2);
  // label_size=1 drops the first column.
  const HostBatch l = DecodeRequest("text/csv;label_size=1", "9,1,2\n8,3,4\n", Ctx(2));
  EXPECT_EQ(l.values, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_FALSE(l.has_labels());
  EXPECT_EQ(DecodeRequest("text/csv", "", Ctx(2)).rows, 0);
}

TEST(DecodeRequest, JsonDenseAndSparseForms) {
  const std::string body = R"({"instances": [
      {"features": [1.5, 2, 3]},
      {"data": {"features": {"values": [4, 5, 6]}}, "configuration": {}},
      {"data": {"features": {"keys": [2, 0], "shape": [3], "values": [7, 8]}}},
      {"data": {"features": {"keys": [], "shape": [3], "values": []}}}]})";
  const HostBatch b = DecodeRequest("application/json", body, Ctx(3));
  EXPECT_EQ(b.rows, 4);
  EXPECT_EQ(b.cols, 3);
  EXPECT_EQ(b.layout, Layout::kCsr);
  EXPECT_EQ(Rows(b), (std::vector<std::vector<float>>{{1.5f, 2, 3}, {4, 5, 6}, {8, 0, 7}, {0, 0, 0}}));
  // Dense only stays dense; a lone instance is accepted too.
  const HostBatch d =
      DecodeRequest("application/json", R"({"instances":[{"features":[1,2]},{"features":[3,4]}]})", Ctx(2));
  EXPECT_EQ(d.layout, Layout::kDense);
  EXPECT_EQ(d.values, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(DecodeRequest("application/json", R"({"features":[1,2]})", Ctx(2)).rows, 1);
  EXPECT_EQ(DecodeRequest("application/json", R"({"instances":[]})", Ctx(2)).rows, 0);
  EXPECT_EQ(DecodeRequest("application/json", "  \n", Ctx(2)).rows, 0);
  // Bare arrays, as the SageMaker SDK's JSONSerializer writes numpy data: a matrix, one row, or
  // instances and rows mixed.
  EXPECT_EQ(Rows(DecodeRequest("application/json", "[[1, 2], [3, 4.5]]", Ctx(2))),
            (std::vector<std::vector<float>>{{1, 2}, {3, 4.5f}}));
  EXPECT_EQ(Rows(DecodeRequest("application/json", "[1, 2]", Ctx(2))),
            (std::vector<std::vector<float>>{{1, 2}}));
  EXPECT_EQ(
      Rows(DecodeRequest("application/json", R"({"instances": [[1, 2], {"features": [3, 4]}]})", Ctx(2))),
      (std::vector<std::vector<float>>{{1, 2}, {3, 4}}));
  EXPECT_EQ(DecodeRequest("application/json", "[]", Ctx(2)).rows, 0);
  // JSON lines: one bare row per line (the SDK's JSONLinesSerializer of a matrix).
  EXPECT_EQ(Rows(DecodeRequest("application/jsonlines", "[1, 2]\n[3, 4]\n", Ctx(2))),
            (std::vector<std::vector<float>>{{1, 2}, {3, 4}}));
}

TEST(DecodeRequest, JsonLines) {
  const std::string body =
      "{\"features\": [1, 2]}\n"
      "\n"
      "{\"data\": {\"features\": {\"values\": [3, 4]}}}\n"
      "{\"data\": {\"features\": {\"keys\": [1], \"shape\": [2], \"values\": [5]}}}\n"
      "{\"instances\": [{\"features\": [6, 7]}, {\"features\": [8, 9]}]}";
  const HostBatch b = DecodeRequest("application/jsonlines", body, Ctx(2));
  EXPECT_EQ(Rows(b), (std::vector<std::vector<float>>{{1, 2}, {3, 4}, {0, 5}, {6, 7}, {8, 9}}));
  RequestContext ctx = Ctx(2, "in.jsonl");
  ctx.first_line = 41;
  EXPECT_EQ(ErrorOf([&] {
              DecodeRequest("application/jsonlines", "{\"features\": [1, 2]}\n\n{\"features\": [1]}", ctx);
            }),
            "in.jsonl: line 43: 1 feature column(s), but the model expects 2 (its feature_dim); every row "
            "must have "
            "exactly 2 features");
}

TEST(DecodeRequest, RecordIODenseSparseAndMatrix) {
  std::string body;
  const float x[3] = {1, 2, 3};
  const float label = 7;
  std::string payload;
  io::EncodeDenseRecord(x, 3, &label, &payload);  // the label is ignored at inference
  io::AppendRecordIOFrame(payload, &body);
  payload.clear();
  const uint32_t idx[1] = {1};
  const float val[1] = {5};
  io::EncodeSparseRecord(idx, val, 1, 3, &label, &payload);
  io::AppendRecordIOFrame(payload, &body);
  const HostBatch b = DecodeRequest("application/x-recordio-protobuf", body, Ctx(3));
  EXPECT_FALSE(b.has_labels());
  EXPECT_EQ(Rows(b), (std::vector<std::vector<float>>{{1, 2, 3}, {0, 5, 0}}));

  // A [2, 2] tensor is two rows.
  aialgs::data::Record rec;
  auto* t = (*rec.mutable_features())["values"].mutable_float32_tensor();
  for (float v : {1.f, 2.f, 3.f, 4.f}) t->add_values(v);
  t->add_shape(2);
  t->add_shape(2);
  std::string m;
  io::AppendRecordIOFrame(rec.SerializeAsString(), &m);
  EXPECT_EQ(Rows(DecodeRequest("application/x-recordio-protobuf", m, Ctx(2))),
            (std::vector<std::vector<float>>{{1, 2}, {3, 4}}));
}

TEST(DecodeRequest, MalformedRequestsNameWhereAndWhat) {
  auto json = [](const std::string& body, int64_t cols = 2) {
    return ErrorOf([&] { DecodeRequest("application/json", body, Ctx(cols, "r.json")); });
  };
  EXPECT_TRUE(HasSubstr(json("{\"instances\": [1, 2"), "r.json: not valid JSON: parse error"));
  EXPECT_TRUE(HasSubstr(json("\"rows\""), "r.json: expected a JSON object"));
  EXPECT_TRUE(HasSubstr(json("[[1, 2], [3, \"x\"]]"), "r.json: instance 1: row[1]: \"x\" is not a number"));
  EXPECT_TRUE(
      HasSubstr(json("[[1, 2], [3]]"), "r.json: instance 1: 1 feature column(s), but the model expects 2"));
  EXPECT_TRUE(HasSubstr(json("[[1, 2], []]"), "r.json: instance 1: the row is empty"));
  EXPECT_TRUE(HasSubstr(json("[[1, 2], 3]"),
                        "r.json: instance 1: must be a JSON object or an array of numbers, found a number"));
  EXPECT_TRUE(HasSubstr(json("{\"instances\": 3}"), "r.json: \"instances\" must be an array"));
  EXPECT_TRUE(HasSubstr(json("{\"instances\": [{\"features\": [1, 2]}, {\"feature\": [1, 2]}]}"),
                        "r.json: instance 1: has neither \"features\" nor \"data\""));
  EXPECT_EQ(json("{\"instances\": [{\"features\": [1, \"x\"]}]}"),
            "r.json: instance 0: features[1]: \"x\" is not a number; features must be numbers (JSON has no "
            "NaN: use "
            "CSV or recordIO for missing values)");
  EXPECT_TRUE(
      HasSubstr(json("{\"instances\": [{\"features\": [1, null]}]}"), "features[1]: null is not a number"));
  EXPECT_TRUE(HasSubstr(json("{\"instances\": [{\"features\": [1, 1e39]}]}"), "outside the float32 range"));
  EXPECT_TRUE(HasSubstr(json("{\"instances\": [{\"features\": 3}]}"), "features must be an array"));
  EXPECT_TRUE(HasSubstr(json("{\"instances\": [{\"features\": [1, 2, 3]}]}"),
                        "r.json: instance 0: 3 feature column(s), but the model expects 2"));
  EXPECT_TRUE(HasSubstr(json("{\"instances\": [{\"data\": {\"features\": [1, 2]}}]}"),
                        "data.features must be an object"));
  EXPECT_TRUE(
      HasSubstr(json("{\"instances\": [{\"data\": {\"features\": {\"keys\": [0], \"values\": [1]}}}]}"),
                "r.json: instance 0: data.features.shape is missing"));
  EXPECT_TRUE(HasSubstr(json("{\"instances\": [{\"data\": {\"features\": {\"keys\": [0, 1], \"shape\": [2], "
                             "\"values\": [1]}}}]}"),
                        "has 2 keys but 1 values"));
  EXPECT_TRUE(HasSubstr(json("{\"instances\": [{\"data\": {\"features\": {\"keys\": [2], \"shape\": [2], "
                             "\"values\": [1]}}}]}"),
                        "data.features.keys[0]: 2 is outside the shape [2]"));
  EXPECT_TRUE(HasSubstr(json("{\"instances\": [{\"data\": {\"features\": {\"keys\": [-1], \"shape\": [2], "
                             "\"values\": [1]}}}]}"),
                        "data.features.keys[0]: -1 is not a non-negative integer"));
  EXPECT_TRUE(HasSubstr(json("{\"instances\": [{\"data\": {\"features\": {\"keys\": [1, 1], \"shape\": [2], "
                             "\"values\": [1, 2]}}}]}"),
                        "holds 1 twice"));
  // Widths must agree even without a model width.
  EXPECT_TRUE(HasSubstr(json("{\"instances\": [{\"features\": [1, 2]}, {\"features\": [1]}]}", -1),
                        "r.json: instance 1: 1 feature column(s), but r.json: instance 0 has 2"));

  EXPECT_TRUE(HasSubstr(ErrorOf([] {
                          DecodeRequest("application/jsonlines", "{\"features\": [1, 2]}\n{oops}\n",
                                        Ctx(2, "r.jsonl"));
                        }),
                        "r.jsonl: line 2: not valid JSON"));

  // CSV: one column too many suggests label_size.
  const std::string csv = ErrorOf([] { DecodeRequest("text/csv", "1,2\n0,1,2\n", Ctx(2, "r.csv")); });
  EXPECT_EQ(
      csv,
      "r.csv: line 2: 3 feature column(s), but the model expects 2 (its feature_dim); if the first column "
      "is a label, declare it with content type 'text/csv;label_size=1' (mlforge predict --content-type "
      "'text/csv;label_size=1') or remove the column");
  EXPECT_TRUE(HasSubstr(ErrorOf([] { DecodeRequest("text/csv", "1,2\n1,x\n", Ctx(2, "r.csv")); }),
                        "r.csv: line 2, column 2: 'x' is not a number"));
  EXPECT_TRUE(HasSubstr(ErrorOf([] { DecodeRequest("text/csv", "1,2\n\n1,2\n", Ctx(2, "r.csv")); }),
                        "r.csv: line 2, column 1: empty line"));

  // recordIO: corrupt framing and undecodable payloads name the record and the byte offset.
  std::string body;
  const float x[2] = {1, 2};
  std::string payload;
  io::EncodeDenseRecord(x, 2, nullptr, &payload);
  io::AppendRecordIOFrame(payload, &body);
  EXPECT_TRUE(HasSubstr(
      ErrorOf([&] { DecodeRequest("application/x-recordio-protobuf", body + "garbage!", Ctx(2, "r.pbr")); }),
      "r.pbr: record 1 at byte " + std::to_string(body.size()) + ": bad magic"));
  std::string bad;
  io::AppendRecordIOFrame("\xff\xff\xff", &bad);
  EXPECT_TRUE(
      HasSubstr(ErrorOf([&] { DecodeRequest("application/x-recordio-protobuf", bad, Ctx(2, "r.pbr")); }),
                "r.pbr: record 0 at byte 0: protobuf parse error"));
  EXPECT_TRUE(
      HasSubstr(ErrorOf([&] { DecodeRequest("application/x-recordio-protobuf", body, Ctx(3, "r.pbr")); }),
                "r.pbr: record 0 at byte 0: 2 feature column(s), but the model expects 3"));
}

TEST(DetectAlgorithm, FromTheArtifactBytes) {
  test::TempDir dir;
  // k-means: one unnamed (k, d) array.
  io::NDArrayList km;
  km.arrays.push_back(io::NDArray::Dense("", {2, 3}, std::vector<float>(6, 1.0f)));
  io::WriteNDArrayList(dir / "km", km);
  EXPECT_EQ(DetectAlgorithm(io::ModelSource::Open(dir / "km")), "kmeans");
  // PCA: named s, v, mean.
  io::NDArrayList pca;
  pca.named = true;
  pca.arrays.push_back(io::NDArray::Dense("s", {2}, std::vector<float>(2, 1.0f)));
  pca.arrays.push_back(io::NDArray::Dense("v", {3, 2}, std::vector<float>(6, 1.0f)));
  pca.arrays.push_back(io::NDArray::Dense("mean", {1, 3}, std::vector<float>(3, 1.0f)));
  io::WriteNDArrayList(dir / "pca", pca);
  EXPECT_EQ(DetectAlgorithm(io::ModelSource::Open(dir / "pca")), "pca");
  // Linear learner and FM: zips.
  test::WriteFile(dir / "ll", io::MakeZip({{"manifest.json", "{}"}, {"mx-mod-0000.params", ""}}));
  EXPECT_EQ(DetectAlgorithm(io::ModelSource::Open(dir / "ll")), "linear-learner");
  test::WriteFile(dir / "fm", io::MakeZip({{"meta.json", "{}"}, {"params", ""}}));
  EXPECT_EQ(DetectAlgorithm(io::ModelSource::Open(dir / "fm")), "factorization-machines");
}

TEST(DetectAlgorithm, RealArtifacts) {
  MLF_REQUIRE_SHARED_DATA();
  const std::string dir = test::SharedData("artifacts");
  for (const auto& [file, algo] : std::vector<std::pair<std::string, std::string>>{
           {"kmeans_ufo_k10_d2.model.tar.gz", "kmeans"},
           {"kmeans_census_k8_d7_with_state.model.tar.gz", "kmeans"},
           {"pca_regular_d7_k6.model.tar.gz", "pca"},
           {"linear_learner_binary_d5.model.tar.gz", "linear-learner"},
           {"fm_movielens100k_regressor_d2625_k64.model.tar.gz", "factorization-machines"}}) {
    EXPECT_EQ(DetectAlgorithm(io::ModelSource::Open(dir + "/" + file)), algo) << file;
  }
}

}  // namespace
}  // namespace mlforge::container
