// The HTTP server (container/server.h), started on a free loopback port inside each test and
// talked to with cpp-httplib's client: every content type x accept combination against float64
// references, the golden recordIO files as request bodies, real SageMaker k-means and linear learner
// artifacts, every error path, concurrency, loading and graceful shutdown.
#include "container/server.h"

#include <arpa/inet.h>
#include <google/protobuf/io/coded_stream.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "algos/factorization_machines/factorization_machines.h"
#include "algos/kmeans/model.h"
#include "algos/linear_learner/model.h"
#include "container/inference_io.h"
#include "core/error.h"
#include "io/archive.h"
#include "io/record_codec.h"
#include "io/recordio.h"
#include "record.pb.h"
#include "tests/testutil.h"

namespace mlforge::container {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// A server on 127.0.0.1:<free port>, running on its own thread for the test's lifetime.
class TestServer {
 public:
  explicit TestServer(ServeOptions o, bool wait_ready = true) {
    o.host = "127.0.0.1";
    o.port = 0;
    if (o.workers == 0) o.workers = 2;
    o.summary_seconds = 3600;
    server_ = std::make_unique<Server>(std::move(o));
    run_ = std::async(std::launch::async, [this] { return server_->Run(); });
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (server_->BoundPort() == 0 || (wait_ready && !server_->Ready())) {
      if (run_.wait_for(std::chrono::milliseconds(5)) == std::future_status::ready) break;
      if (Clock::now() > deadline) ADD_FAILURE() << "the server did not come up";
    }
  }
  ~TestServer() {
    server_->Stop();
    if (run_.valid()) {
      try {
        run_.get();
      } catch (...) {
      }
    }
  }
  Server& server() { return *server_; }
  std::future<int>& run() { return run_; }
  int port() const { return server_->BoundPort(); }
  httplib::Client Client() const {
    httplib::Client c("127.0.0.1", port());
    c.set_read_timeout(30, 0);
    return c;
  }
  // POST /invocations.
  httplib::Result Post(const std::string& body, const std::string& content_type,
                       const std::string& accept = "", const std::string& custom_attributes = "") {
    httplib::Client c = Client();
    httplib::Headers h;
    if (!accept.empty()) h.emplace("Accept", accept);
    if (!custom_attributes.empty()) h.emplace("X-Amzn-SageMaker-Custom-Attributes", custom_attributes);
    return c.Post("/invocations", h, body, content_type);
  }

 private:
  std::unique_ptr<Server> server_;
  std::future<int> run_;
};

// Sends `request` as is over a fresh connection and returns everything the server answered.
std::string RawExchange(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

ServeOptions ModelAt(const std::string& path) {
  ServeOptions o;
  o.model_path = path;
  return o;
}

// The reference answer of a k-means model for one row: nearest centre in float64 (ties: lowest).
struct Nearest {
  int cluster = -1;
  double distance = 0;
};
Nearest NearestCenter(const algos::kmeans::Model& m, const std::vector<double>& x) {
  Nearest best;
  double best_d2 = std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < m.k; ++j) {
    double d2 = 0;
    for (int64_t c = 0; c < m.dim; ++c) {
      const double diff = x[static_cast<size_t>(c)] - m.center(j)[c];
      d2 += diff * diff;
    }
    if (d2 < best_d2) {
      best_d2 = d2;
      best.cluster = static_cast<int>(j);
    }
  }
  best.distance = std::sqrt(best_d2);
  return best;
}

// A k-means model with well-separated random centres, saved under `dir`.
algos::kmeans::Model MakeKMeans(const std::string& dir, int64_t k, int64_t d, uint64_t seed) {
  algos::kmeans::Model m;
  m.k = k;
  m.dim = d;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, 3.0f);
  m.centers.resize(static_cast<size_t>(k * d));
  for (float& v : m.centers) v = n(rng);
  std::filesystem::create_directories(dir);
  algos::kmeans::SaveModel(m, dir);
  return m;
}

std::vector<std::vector<double>> RandomRows(int64_t n, int64_t d, uint64_t seed, double zero_fraction = 0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g(0.0, 3.0);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<std::vector<double>> rows(static_cast<size_t>(n), std::vector<double>(static_cast<size_t>(d)));
  for (auto& r : rows) {
    for (double& v : r) v = u(rng) < zero_fraction ? 0.0 : static_cast<float>(g(rng));
  }
  return rows;
}

// ---- request bodies, built independently of mlforge's own encoders where possible ----------------

std::string Num(double v) {
  std::ostringstream s;
  s.precision(9);
  s << v;
  return s.str();
}

std::string CsvBody(const std::vector<std::vector<double>>& rows) {
  std::string out;
  for (const auto& r : rows) {
    for (size_t j = 0; j < r.size(); ++j) out += (j ? "," : "") + Num(r[j]);
    out += "\n";
  }
  return out;
}

json DenseInstance(const std::vector<double>& r, bool data_form) {
  json values = json::array();
  for (double v : r) values.push_back(static_cast<float>(v));
  if (data_form) return {{"data", {{"features", {{"values", values}}}}}};
  return {{"features", values}};
}

json SparseInstance(const std::vector<double>& r) {
  json keys = json::array(), values = json::array();
  for (size_t j = 0; j < r.size(); ++j) {
    if (r[j] != 0) {
      keys.push_back(j);
      values.push_back(static_cast<float>(r[j]));
    }
  }
  return {{"data", {{"features", {{"keys", keys}, {"shape", {r.size()}}, {"values", values}}}}}};
}

enum class Form { kDense, kDenseData, kSparse };
json Instance(const std::vector<double>& r, Form f) {
  return f == Form::kSparse ? SparseInstance(r) : DenseInstance(r, f == Form::kDenseData);
}

std::string JsonBody(const std::vector<std::vector<double>>& rows, Form f) {
  json inst = json::array();
  for (const auto& r : rows) inst.push_back(Instance(r, f));
  return json{{"instances", inst}}.dump();
}

std::string JsonLinesBody(const std::vector<std::vector<double>>& rows, Form f) {
  std::string out;
  for (const auto& r : rows) out += Instance(r, f).dump() + "\n";
  return out;
}

enum class Dtype { kF32, kF64, kI32 };
// recordIO-protobuf with the generated protobuf class: one Record per row, features["values"].
std::string RecordIOBody(const std::vector<std::vector<double>>& rows, Dtype t, bool sparse) {
  std::string out;
  for (const auto& r : rows) {
    aialgs::data::Record rec;
    aialgs::data::Value& v = (*rec.mutable_features())["values"];
    auto fill = [&](auto* tensor) {
      for (size_t j = 0; j < r.size(); ++j) {
        if (sparse && r[j] == 0) continue;
        if (sparse) tensor->add_keys(j);
        if constexpr (std::is_same_v<std::decay_t<decltype(*tensor)>, aialgs::data::Int32Tensor>) {
          tensor->add_values(static_cast<int32_t>(r[j]));
        } else {
          tensor->add_values(r[j]);
        }
      }
      if (sparse) tensor->add_shape(r.size());
    };
    switch (t) {
      case Dtype::kF32:
        fill(v.mutable_float32_tensor());
        break;
      case Dtype::kF64:
        fill(v.mutable_float64_tensor());
        break;
      case Dtype::kI32:
        fill(v.mutable_int32_tensor());
        break;
    }
    io::AppendRecordIOFrame(rec.SerializeAsString(), &out);
  }
  return out;
}

// ---- response parsing: every format back to (closest_cluster, distance_to_cluster) pairs ---------

struct Answer {
  std::vector<std::vector<double>> cols;  // per row, every value of every column in order
  std::vector<json> objects;              // JSON / JSON lines: the row objects
};

Answer ParseAnswer(const std::string& body, ResponseFormat f, const std::string& list_key = "predictions") {
  Answer a;
  // nlohmann::json sorts members: read the keys the test knows in the endpoint's order.
  auto take_object = [&](const json& o) {
    std::vector<double> row;
    size_t known = 0;
    for (const char* key :
         {"closest_cluster", "distance_to_cluster", "score", "predicted_label", "projection"}) {
      if (!o.contains(key)) continue;
      ++known;
      const json& v = o[key];
      if (v.is_array()) {
        for (const auto& x : v) row.push_back(x.is_null() ? std::nan("") : x.get<double>());
      } else {
        row.push_back(v.is_null() ? std::nan("") : v.get<double>());
      }
    }
    EXPECT_EQ(known, o.size()) << "unexpected members in " << o;
    a.cols.push_back(row);
    a.objects.push_back(o);
  };
  switch (f) {
    case ResponseFormat::kJson: {
      const json doc = json::parse(body);
      EXPECT_EQ(doc.size(), 1u);
      for (const auto& o : doc.at(list_key)) take_object(o);
      break;
    }
    case ResponseFormat::kJsonLines: {
      std::istringstream in(body);
      std::string line;
      while (std::getline(in, line)) take_object(json::parse(line));
      break;
    }
    case ResponseFormat::kCsv: {
      std::istringstream in(body);
      std::string line;
      while (std::getline(in, line)) {
        std::vector<double> row;
        std::istringstream fields(line);
        std::string f;
        while (std::getline(fields, f, ',')) row.push_back(std::strtod(f.c_str(), nullptr));
        a.cols.push_back(row);
      }
      break;
    }
    case ResponseFormat::kRecordIO: {
      io::RecordIOReader reader(body, "response");
      std::string_view p;
      while (reader.Next(&p)) {
        aialgs::data::Record rec;
        EXPECT_TRUE(rec.ParseFromArray(p.data(), static_cast<int>(p.size())));
        // Map order is unspecified: read the keys the test knows, in the endpoint's order.
        std::vector<double> row;
        for (const char* key : {"closest_cluster", "distance_to_cluster", "score", "predicted_label"}) {
          auto it = rec.label().find(key);
          if (it == rec.label().end()) continue;
          for (float v : it->second.float32_tensor().values()) row.push_back(v);
        }
        a.cols.push_back(row);
      }
      break;
    }
  }
  return a;
}

constexpr ResponseFormat kAllAccepts[] = {ResponseFormat::kJson, ResponseFormat::kJsonLines,
                                          ResponseFormat::kCsv, ResponseFormat::kRecordIO};

void ExpectKMeansAnswer(const algos::kmeans::Model& m, const std::vector<std::vector<double>>& rows,
                        const Answer& a, const std::string& what) {
  ASSERT_EQ(a.cols.size(), rows.size()) << what;
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSERT_EQ(a.cols[i].size(), 2u) << what << " row " << i;
    const Nearest want = NearestCenter(m, rows[i]);
    EXPECT_EQ(a.cols[i][0], want.cluster) << what << " row " << i;
    EXPECT_NEAR(a.cols[i][1], want.distance, 1e-4 * (1 + want.distance)) << what << " row " << i;
  }
}

// ---------------------------------------------------------------------------------------------

TEST(Server, PingAndExecutionParameters) {
  test::TempDir dir;
  MakeKMeans(dir / "model", 3, 4, 1);
  ServeOptions o = ModelAt(dir / "model");
  o.workers = 3;
  o.max_payload_bytes = size_t{5} << 20;
  TestServer s(o);
  httplib::Client c = s.Client();
  auto ping = c.Get("/ping");
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->status, 200);
  EXPECT_EQ(ping->body, "");
  auto ep = c.Get("/execution-parameters");
  ASSERT_TRUE(ep);
  EXPECT_EQ(ep->status, 200);
  EXPECT_EQ(json::parse(ep->body),
            (json{{"MaxConcurrentTransforms", 3}, {"BatchStrategy", "MULTI_RECORD"}, {"MaxPayloadInMB", 5}}));
  EXPECT_EQ(ep->get_header_value("Content-Type"), "application/json");
}

// Every request form x every accept, dense and sparse, against the float64 nearest centre.
TEST(Server, KMeansEveryContentTypeAndAccept) {
  test::TempDir dir;
  const int64_t d = 6;
  const algos::kmeans::Model m = MakeKMeans(dir / "model", 5, d, 2);
  TestServer s(ModelAt(dir / "model"));
  const auto rows = RandomRows(40, d, 3, /*zero_fraction=*/0.4);
  std::vector<double> zeros(d, 0.0);
  auto with_empty = rows;
  with_empty.push_back(zeros);  // a sparse row with no non-zeros

  struct Request {
    std::string name, body, content_type;
    const std::vector<std::vector<double>>* rows;
  };
  std::vector<std::vector<double>> ints = RandomRows(10, d, 4);
  for (auto& r : ints) {
    for (double& v : r) v = std::round(v);
  }
  const std::vector<Request> requests = {
      {"csv", CsvBody(rows), "text/csv", &rows},
      {"csv label_size=0", CsvBody(rows), "text/csv; label_size=0", &rows},
      {"json features", JsonBody(rows, Form::kDense), "application/json", &rows},
      {"json data.features", JsonBody(rows, Form::kDenseData), "application/json", &rows},
      {"json sparse", JsonBody(with_empty, Form::kSparse), "application/json", &with_empty},
      {"jsonlines dense", JsonLinesBody(rows, Form::kDense), "application/jsonlines", &rows},
      {"jsonlines sparse", JsonLinesBody(with_empty, Form::kSparse), "application/jsonlines", &with_empty},
      {"recordio f32", RecordIOBody(rows, Dtype::kF32, false), "application/x-recordio-protobuf", &rows},
      {"recordio f64", RecordIOBody(rows, Dtype::kF64, false), "application/x-recordio-protobuf", &rows},
      {"recordio i32", RecordIOBody(ints, Dtype::kI32, false), "application/x-recordio-protobuf", &ints},
      {"recordio sparse f32", RecordIOBody(with_empty, Dtype::kF32, true), "application/x-recordio-protobuf",
       &with_empty},
      {"recordio sparse f64", RecordIOBody(with_empty, Dtype::kF64, true), "application/x-recordio-protobuf",
       &with_empty},
  };
  for (const Request& r : requests) {
    for (ResponseFormat f : kAllAccepts) {
      const std::string what = r.name + " -> " + ResponseFormatName(f);
      auto res = s.Post(r.body, r.content_type, ResponseFormatName(f));
      ASSERT_TRUE(res) << what;
      ASSERT_EQ(res->status, 200) << what << ": " << res->body;
      EXPECT_EQ(res->get_header_value("Content-Type"), ResponseFormatName(f)) << what;
      ExpectKMeansAnswer(m, *r.rows, ParseAnswer(res->body, f), what);
    }
  }
  // No Accept, */* and a list: JSON; closest_cluster reads as a float, as SageMaker writes it.
  for (const std::string accept : {"", "*/*", "image/png, application/json;q=0.9"}) {
    auto res = s.Post(CsvBody(rows), "text/csv", accept);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << accept;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
    const Answer a = ParseAnswer(res->body, ResponseFormat::kJson);
    EXPECT_TRUE(a.objects[0]["closest_cluster"].is_number_float());
    ExpectKMeansAnswer(m, rows, a, "accept '" + accept + "'");
  }
}

// The golden recordIO files (written by the SageMaker SDK, and dmlc multi-part framing) as request
// bodies: valid ones answer one prediction per row, equal to the float64 reference on the CSV
// sidecar; corrupt ones get 400 naming the record, the byte offset and what is wrong.
std::string ErrorOf(const httplib::Result& r);

TEST(Server, GoldenRecordIOBodies) {
  MLF_REQUIRE_SHARED_DATA();
  const std::string dir = test::SharedData("recordio") + "/";
  std::ifstream in(dir + "manifest.json");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Python's json writes bare NaN / Infinity in statistics this test does not read.
  for (const char* tok : {"-Infinity", "Infinity", "NaN"}) {
    for (size_t at = text.find(tok); at != std::string::npos; at = text.find(tok, at))
      text.replace(at, std::strlen(tok), "null");
  }
  const json manifest = json::parse(text);
  test::TempDir tmp;
  int valid = 0, corrupt = 0;
  for (const json& c : manifest["cases"]) {
    const std::string file = c["file"];
    SCOPED_TRACE(file);
    const std::string body = test::ReadFile(dir + file);
    if (c["kind"] == "corrupt") {
      // Any model will do: the body is refused before prediction.
      static int n = 0;
      const std::string model_dir = tmp / ("corrupt" + std::to_string(n++));
      MakeKMeans(model_dir, 2, 5, 9);
      TestServer s(ModelAt(model_dir));
      auto res = s.Post(body, "application/x-recordio-protobuf");
      ASSERT_TRUE(res);
      EXPECT_EQ(res->status, 400) << res->body;
      const json err = json::parse(res->body);
      const json& ex = c["expected"];
      const std::string want = "record " + std::to_string(ex["valid_records_before_error"].get<int>()) +
                               " at byte " + std::to_string(ex["at_offset"].get<int>()) + ": " +
                               ex["error"].get<std::string>();
      EXPECT_NE(err["error"].get<std::string>().find(want), std::string::npos)
          << err["error"] << " wants " << want;
      EXPECT_EQ(err["status"], 400);
      ++corrupt;
      continue;
    }
    const json& f = c["features"];
    const int64_t n = f["n_rows"], d = f["n_cols"];
    // The sidecar rows in float64 (dense CSV, or row,col,value triples for sparse files).
    std::vector<std::vector<double>> rows(static_cast<size_t>(n),
                                          std::vector<double>(static_cast<size_t>(d), 0.0));
    // Sidecars: CSV for most dense files, row,col,value triples for sparse ones; the two without a
    // text sidecar (npy only) are checked for one finite answer per row.
    const bool has_csv = f.contains("csv") && f["csv"].is_string();
    const bool reference = f["storage"] == "sparse" || has_csv;
    if (f["storage"] == "dense" && has_csv && n > 0 && d > 0) {
      std::istringstream s(test::ReadFile(dir + f["csv"].get<std::string>()));
      std::string line;
      for (int64_t i = 0; i < n && std::getline(s, line); ++i) {
        std::istringstream fields(line);
        std::string v;
        for (int64_t j = 0; j < d && std::getline(fields, v, ','); ++j)
          rows[i][j] = std::strtod(v.c_str(), nullptr);
      }
    } else if (f["storage"] == "sparse") {
      const std::string coo = dir + file.substr(0, file.size() - 4) + ".features.coo.csv";
      std::istringstream s(test::ReadFile(coo));
      std::string line;
      while (std::getline(s, line)) {
        long r = 0, col = 0;
        double v = 0;
        ASSERT_EQ(std::sscanf(line.c_str(), "%ld,%ld,%lf", &r, &col, &v), 3) << line;
        ASSERT_LT(r, n);
        rows[r][col] = v;
      }
    }
    const std::string model_dir = tmp / file;
    const algos::kmeans::Model m = MakeKMeans(model_dir, 4, std::max<int64_t>(d, 1), 11);
    ServeOptions o = ModelAt(model_dir);
    if (body.size() > (size_t{6} << 20)) {
      // Over SageMaker's default 6 MB: 413 first, then served under a raised limit.
      TestServer small(o);
      auto too_big = small.Post(body, "application/x-recordio-protobuf");
      ASSERT_TRUE(too_big);
      EXPECT_EQ(too_big->status, 413);
      o.max_payload_bytes = body.size();
    }
    TestServer s(o);
    auto res = s.Post(body, "application/x-recordio-protobuf", "application/jsonlines");
    ASSERT_TRUE(res);
    if (body.empty()) {
      EXPECT_EQ(res->status, 400);
      EXPECT_NE(res->body.find("the request body is empty"), std::string::npos) << res->body;
      ++valid;
      continue;
    }
    if (d == 0) {  // rows without features cannot match a model's feature_dim
      EXPECT_EQ(res->status, 400);
      EXPECT_NE(res->body.find("0 feature column(s), but the model expects 1"), std::string::npos)
          << res->body;
      ++valid;
      continue;
    }
    // A NaN or infinite feature is refused, naming the first such record and column (one record
    // per row in these files).
    int64_t bad_row = -1, bad_col = -1;
    for (int64_t i = 0; i < n && bad_row < 0 && reference; ++i) {
      for (int64_t j = 0; j < d; ++j) {
        if (!std::isfinite(rows[i][j])) {
          bad_row = i;
          bad_col = j;
          break;
        }
      }
    }
    if (bad_row >= 0) {
      EXPECT_EQ(res->status, 400) << res->body;
      const std::string err = ErrorOf(res);
      EXPECT_NE(err.find("record " + std::to_string(bad_row) + " at byte"), std::string::npos) << err;
      EXPECT_NE(err.find("feature " + std::to_string(bad_col) + " (0-based column) is " +
                         (std::isnan(rows[bad_row][bad_col]) ? "NaN" : "")),
                std::string::npos)
          << err;
      ++valid;
      continue;
    }
    ASSERT_EQ(res->status, 200) << res->body;
    const Answer a = ParseAnswer(res->body, ResponseFormat::kJsonLines);
    ASSERT_EQ(static_cast<int64_t>(a.cols.size()), n);
    for (int64_t i = 0; i < n; ++i) {
      if (!reference) {
        EXPECT_TRUE(std::isfinite(a.cols[i][1])) << "row " << i;
        continue;
      }
      bool moderate = true;
      for (double v : rows[i]) moderate &= std::fabs(v) < 1e18;
      if (!moderate) continue;  // squared distances past float32's range: no reference to compare
      const Nearest want = NearestCenter(m, rows[i]);
      EXPECT_EQ(a.cols[i][0], want.cluster) << "row " << i;
      EXPECT_NEAR(a.cols[i][1], want.distance, 1e-4 * (1 + want.distance)) << "row " << i;
    }
    ++valid;
  }
  EXPECT_EQ(corrupt, 6);
  EXPECT_GE(valid, 15);
}

// Real SageMaker k-means artifacts: each centroid, sent as a row, is its own cluster at distance 0;
// a model.tar.gz with state_* members and a directory with the tarball in it (what SageMaker
// extracts into /opt/ml/model) both load.
TEST(Server, RealSageMakerKMeansArtifacts) {
  MLF_REQUIRE_SHARED_DATA();
  for (const char* name : {"kmeans_ufo_k10_d2", "kmeans_census_k8_d7_with_state"}) {
    SCOPED_TRACE(name);
    const std::string tarball = test::SharedData(std::string("artifacts/") + name + ".model.tar.gz");
    const algos::kmeans::Model m = algos::kmeans::LoadModel(tarball);
    test::TempDir dir;
    test::WriteFile(dir / "model/model.tar.gz", test::ReadFile(tarball));
    TestServer s(ModelAt(dir / "model"));
    std::vector<std::vector<double>> centroids;
    for (int64_t j = 0; j < m.k; ++j) centroids.emplace_back(m.center(j), m.center(j) + m.dim);
    for (ResponseFormat f : kAllAccepts) {
      auto res = s.Post(JsonBody(centroids, Form::kDense), "application/json", ResponseFormatName(f));
      ASSERT_TRUE(res);
      ASSERT_EQ(res->status, 200) << res->body;
      const Answer a = ParseAnswer(res->body, f);
      ASSERT_EQ(a.cols.size(), static_cast<size_t>(m.k));
      for (int64_t j = 0; j < m.k; ++j) {
        EXPECT_EQ(a.cols[j][0], j);
        EXPECT_NEAR(a.cols[j][1], 0.0, 1e-3);
      }
    }
  }
}

// Real SageMaker linear learner artifacts: binary score = sigmoid(x.w + b) with the calibrated
// threshold, regressor score = x.w + b, in float64 from the artifact's own arrays; predicted_label
// is an integer in JSON; text/csv is not an answer the linear learner endpoint gives (406).
TEST(Server, RealSageMakerLinearLearnerArtifacts) {
  MLF_REQUIRE_SHARED_DATA();
  for (const char* name : {"linear_learner_binary_d5", "linear_learner_regressor_d513"}) {
    SCOPED_TRACE(name);
    const std::string tarball = test::SharedData(std::string("artifacts/") + name + ".model.tar.gz");
    const algos::linear_learner::Model m = algos::linear_learner::LoadModel(tarball);
    const bool binary = m.predictor_type == algos::linear_learner::PredictorType::kBinaryClassifier;
    TestServer s(ModelAt(tarball));
    const auto rows = RandomRows(25, m.dim, 5, 0.5);
    std::vector<double> want(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      double z = m.bias[0];
      for (int64_t j = 0; j < m.dim; ++j) z += rows[i][j] * m.weights[static_cast<size_t>(j)];
      want[i] = binary ? 1.0 / (1.0 + std::exp(-z)) : z;
    }
    for (ResponseFormat f : {ResponseFormat::kJson, ResponseFormat::kJsonLines, ResponseFormat::kRecordIO}) {
      for (const std::string& ct :
           {std::string("text/csv"), std::string("application/x-recordio-protobuf")}) {
        const std::string body = ct == "text/csv" ? CsvBody(rows) : RecordIOBody(rows, Dtype::kF32, true);
        auto res = s.Post(body, ct, ResponseFormatName(f));
        ASSERT_TRUE(res);
        ASSERT_EQ(res->status, 200) << res->body;
        const Answer a = ParseAnswer(res->body, f);
        ASSERT_EQ(a.cols.size(), rows.size());
        for (size_t i = 0; i < rows.size(); ++i) {
          ASSERT_EQ(a.cols[i].size(), binary ? 2u : 1u);
          EXPECT_NEAR(a.cols[i][0], want[i], 1e-4 * (1 + std::fabs(want[i]))) << "row " << i;
          if (binary) {
            EXPECT_EQ(a.cols[i][1], want[i] > m.threshold ? 1.0 : 0.0) << "row " << i;
          }
          if (binary && f != ResponseFormat::kRecordIO) {
            EXPECT_TRUE(a.objects[i]["predicted_label"].is_number_integer());
          }
          if (!binary && f != ResponseFormat::kRecordIO) {
            EXPECT_EQ(a.objects[i].size(), 1u) << a.objects[i];  // score only
          }
        }
      }
    }
    auto csv = s.Post(CsvBody(rows), "text/csv", "text/csv");
    ASSERT_TRUE(csv);
    EXPECT_EQ(csv->status, 406);
    EXPECT_NE(csv->body.find("supported for this model"), std::string::npos) << csv->body;
  }
}

// The real SageMaker factorization machines model (MovieLens, 2625 one-hot features): sparse JSON
// and sparse recordIO requests score as the float64 formula does; top-k through SageMaker's
// CustomAttributes header equals the library's exact ranking; CSV and bad attributes are refused.
TEST(Server, RealSageMakerFactorizationMachinesArtifactAndTopK) {
  MLF_REQUIRE_SHARED_DATA();
  namespace fm = algos::factorization_machines;
  const std::string tarball = test::SharedData("artifacts/fm_movielens100k_regressor_d2625_k64.model.tar.gz");
  const fm::Model m = fm::LoadModel(tarball);
  TestServer s(ModelAt(tarball));
  std::vector<std::vector<double>> rows;
  for (int r = 0; r < 12; ++r) {
    std::vector<double> x(2625, 0.0);
    x[static_cast<size_t>(r * 71 % 943)] = 1;               // a user
    if (r % 3 != 0) x[static_cast<size_t>(943 + r * 131 % 1682)] = 1;  // and, for most rows, a movie
    rows.push_back(std::move(x));
  }
  HostBatch b;
  b.layout = Layout::kCsr;
  b.cols = 2625;
  b.indptr = {0};
  for (const auto& x : rows) {
    for (size_t j = 0; j < x.size(); ++j)
      if (x[j] != 0) b.indices.push_back(static_cast<uint32_t>(j)), b.values.push_back(1.0f);
    b.indptr.push_back(static_cast<int64_t>(b.values.size()));
    ++b.rows;
  }
  const std::vector<float> want = fm::Score(m, b, 1);
  for (ResponseFormat f : {ResponseFormat::kJson, ResponseFormat::kJsonLines, ResponseFormat::kRecordIO}) {
    for (const std::string& ct : {std::string("application/json"), std::string("application/x-recordio-protobuf")}) {
      const std::string body = ct == "application/json" ? JsonBody(rows, Form::kSparse) : RecordIOBody(rows, Dtype::kF32, true);
      auto res = s.Post(body, ct, ResponseFormatName(f));
      ASSERT_TRUE(res);
      ASSERT_EQ(res->status, 200) << res->body;
      const Answer a = ParseAnswer(res->body, f);
      ASSERT_EQ(a.cols.size(), rows.size());
      for (size_t i = 0; i < rows.size(); ++i) {
        ASSERT_EQ(a.cols[i].size(), 1u);
        EXPECT_NEAR(a.cols[i][0], want[i], 1e-5) << "row " << i;
      }
    }
  }
  // Top-k: the 5 best movies for each row, through the header.
  const fm::TopK top = fm::Recommend(m, b, 943, 2625, 5, 1);
  auto res = s.Post(JsonBody(rows, Form::kSparse), "application/json", "application/json",
                    "top_k=5; item_range=943:2625");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json preds = json::parse(res->body)["predictions"];
  ASSERT_EQ(preds.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSERT_EQ(preds[i]["top_k_items"].size(), 5u) << preds[i];
    for (int j = 0; j < 5; ++j) {
      EXPECT_EQ(preds[i]["top_k_items"][j].get<int64_t>(), top.items[i * 5 + j]);
      EXPECT_NEAR(preds[i]["top_k_scores"][j].get<double>(), top.scores[i * 5 + j], 1e-5);
    }
    EXPECT_NEAR(preds[i]["score"].get<double>(), want[i], 1e-5);
  }
  // Attributes of other tools are ignored; a bad top-k request is a 400 naming the attribute.
  auto other = s.Post(JsonBody(rows, Form::kSparse), "application/json", "", "trace-id=abc");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 200);
  auto bad = s.Post(JsonBody(rows, Form::kSparse), "application/json", "", "top_k=5");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("needs item_range"), std::string::npos) << bad->body;
  auto csv = s.Post(CsvBody(rows), "text/csv");
  ASSERT_TRUE(csv);
  EXPECT_EQ(csv->status, 415) << csv->body;
}

// An mlforge multiclass linear learner model: score is the softmax vector (a JSON array of
// num_classes probabilities), predicted_label its argmax as a JSON integer.
TEST(Server, MulticlassLinearLearnerScoresAreArrays) {
  test::TempDir dir;
  algos::linear_learner::Model m;
  m.predictor_type = algos::linear_learner::PredictorType::kMulticlassClassifier;
  m.loss_type = "softmax_loss";
  m.dim = 4;
  m.outputs = 3;
  std::mt19937_64 rng(3);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (int i = 0; i < 12; ++i) m.weights.push_back(g(rng));
  m.bias = {0.1f, -0.2f, 0.05f};
  std::filesystem::create_directories(dir / "ll");
  algos::linear_learner::SaveModel(m, dir / "ll");
  TestServer s(ModelAt(dir / "ll"));
  const auto rows = RandomRows(30, 4, 8);
  for (ResponseFormat f : {ResponseFormat::kJson, ResponseFormat::kJsonLines, ResponseFormat::kRecordIO}) {
    auto res = s.Post(JsonBody(rows, Form::kDense), "application/json", ResponseFormatName(f));
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const Answer a = ParseAnswer(res->body, f);
    ASSERT_EQ(a.cols.size(), rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      double z[3], mx = -1e300, sum = 0;
      int best = 0;
      for (int c = 0; c < 3; ++c) {
        z[c] = m.bias[c];
        for (int j = 0; j < 4; ++j) z[c] += rows[i][j] * m.weights[static_cast<size_t>(j * 3 + c)];
        if (z[c] > mx) {
          mx = z[c];
          best = c;
        }
      }
      for (double v : z) sum += std::exp(v - mx);
      ASSERT_EQ(a.cols[i].size(), 4u);  // 3 probabilities, then the label
      for (int c = 0; c < 3; ++c) EXPECT_NEAR(a.cols[i][c], std::exp(z[c] - mx) / sum, 1e-5) << "row " << i;
      EXPECT_EQ(a.cols[i][3], best) << "row " << i;
      if (f != ResponseFormat::kRecordIO) {
        EXPECT_TRUE(a.objects[i]["score"].is_array());
        EXPECT_TRUE(a.objects[i]["predicted_label"].is_number_integer());
      }
    }
  }
}

// A predictor under the test's control: predicts the row sum, or fails / waits as told.
class FakePredictor final : public algos::Predictor {
 public:
  enum class Mode { kSum, kThrowInternal, kThrowUser, kSlow };
  explicit FakePredictor(Mode mode, int64_t dim = 2) : mode_(mode), dim_(dim) {}
  std::string algorithm() const override { return "fake"; }
  int64_t feature_dim() const override { return dim_; }
  std::string Describe() const override { return "fake model"; }
  algos::PredictionTable Predict(const HostBatch& b, Resources&) const override {
    if (mode_ == Mode::kThrowInternal) throw std::runtime_error("secret internal detail");
    if (mode_ == Mode::kThrowUser) throw UserError("row 0: feature 1 is out of range for this model");
    if (mode_ == Mode::kSlow) std::this_thread::sleep_for(std::chrono::milliseconds(400));
    algos::PredictionTable t;
    t.rows = b.rows;
    t.columns.resize(1);
    t.columns[0].name = "score";
    for (int64_t i = 0; i < b.rows; ++i) {
      float s = 0;
      for (int64_t j = 0; j < b.cols; ++j) s += b.values[static_cast<size_t>(i * b.cols + j)];
      t.columns[0].values.push_back(s);
    }
    return t;
  }

 private:
  Mode mode_;
  int64_t dim_;
};

ServeOptions Fake(FakePredictor::Mode mode) {
  ServeOptions o;
  o.load = [mode] { return std::make_unique<FakePredictor>(mode); };
  return o;
}

std::string ErrorOf(const httplib::Result& r) {
  if (!r) return "<no response>";
  return json::parse(r->body).at("error").get<std::string>();
}

TEST(Server, ClientErrorsAnswerJsonWithTheReason) {
  ServeOptions o = Fake(FakePredictor::Mode::kSum);
  o.max_payload_bytes = 1000;
  TestServer s(o);
  auto expect = [&](const httplib::Result& r, int status, const std::string& part) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << r->body;
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
    const json body = json::parse(r->body);
    EXPECT_EQ(body["status"], status);
    EXPECT_NE(body["error"].get<std::string>().find(part), std::string::npos)
        << body["error"] << " lacks " << part;
  };
  // 415: unsupported or missing Content-Type.
  expect(s.Post("1,2\n", "text/html"), 415, "unsupported content type 'text/html'");
  {
    // httplib's client always sends a Content-Type: write this request by hand.
    const std::string raw = RawExchange(
        s.port(),
        "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\n1,2\n");
    EXPECT_EQ(raw.substr(0, 12), "HTTP/1.1 415") << raw;
    EXPECT_NE(raw.find("missing Content-Type"), std::string::npos) << raw;
  }
  expect(s.Post("1,2\n", "text/csv;label_size=2"), 415, "label_size must be 0");
  // 406: unsupported Accept (a fake model answers no CSV either).
  expect(s.Post("1,2\n", "text/csv", "image/png"), 406, "unsupported accept type 'image/png'");
  expect(s.Post("1,2\n", "text/csv", "text/csv"), 406, "supported for this model");
  // 400: malformed bodies name the line / instance / record and the field.
  expect(s.Post("1,x\n", "text/csv"), 400, "request: line 1");
  expect(s.Post("1,2\n3\n", "text/csv"), 400, "line 2: 1 feature column(s), but the model expects 2");
  expect(s.Post("1,2,3\n", "text/csv"), 400, "label_size=1");
  expect(s.Post("{\"instances\": [{\"features\": [1, 2]}, {\"features\": [1, \"a\"]}]}", "application/json"),
         400, "instance 1");
  expect(s.Post("{\"instances\": [", "application/json"), 400, "request");
  expect(s.Post("{\"features\": [1, 2]}\nnot json\n", "application/jsonlines"), 400, "line 2");
  expect(s.Post("garbage that is not recordIO", "application/x-recordio-protobuf"), 400,
         "record 0 at byte 0");
  expect(s.Post("", "text/csv"), 400, "the request body is empty");
  // 413 over the payload limit, with the limit and the fix.
  expect(s.Post(std::string(2000, '1'), "text/csv"), 413, "payload limit of 0 MB");
  // 404 / 405.
  {
    httplib::Client c = s.Client();
    expect(c.Get("/predict"), 404, "GET /predict: no such endpoint");
    expect(c.Get("/invocations"), 405, "use POST");
    expect(c.Post("/ping", "", "text/plain"), 405, "use GET");
    auto r = c.Get("/invocations");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->get_header_value("Allow"), "POST");
  }
  // The server still answers.
  auto ok = s.Post("1,2\n3,4\n", "text/csv", "application/jsonlines");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, "{\"score\": 3.0}\n{\"score\": 7.0}\n");
}

// What a hostile client sends is refused with the limit or the field named, and the server stays
// up: 120,000 nested '[' (which once crashed it with SIGSEGV), the same in JSON lines, a JSON
// number past float32, and NaN / infinite features in every request format (k-means would answer
// cluster 0 with a null distance: a silently wrong answer).
TEST(Server, HostileAndNonFiniteBodiesAreRefusedAndTheServerStaysUp) {
  ServeOptions o = Fake(FakePredictor::Mode::kSum);
  TestServer s(o);
  auto expect = [&](const httplib::Result& r, int status, const std::string& part) {
    ASSERT_TRUE(r) << "no answer: the server is down";
    EXPECT_EQ(r->status, status) << r->body;
    EXPECT_NE(ErrorOf(r).find(part), std::string::npos) << r->body;
  };
  const std::string deep = std::string(120000, '[') + std::string(120000, ']');
  expect(s.Post("{\"instances\":" + deep + "}", "application/json"), 400, "JSON nested more than 64 levels deep");
  expect(s.Post(deep, "application/json"), 400, "at byte 64");
  expect(s.Post("[1, 2]\n" + deep + "\n", "application/jsonlines"), 400, "request: line 2: JSON nested more");
  // 64 levels are parsed; the error then names the instance (the nesting is not a row).
  expect(s.Post("{\"instances\":" + std::string(63, '[') + std::string(63, ']') + "}", "application/json"), 400,
         "instance 0");
  expect(s.Post("{\"instances\": [[1, 1e999]]}", "application/json"), 400, "number overflow parsing '1e999'");
  expect(s.Post("{\"instances\": [[1, 1e39]]}", "application/json"), 400, "outside the float32 range");
  expect(s.Post("1,2\n3,nan\n", "text/csv"), 400, "request: line 2: feature 1 (0-based column) is NaN");
  expect(s.Post("-inf,2\n", "text/csv"), 400, "line 1: feature 0 (0-based column) is -infinity");
  {
    std::string body, payload;
    const float x[2] = {1, std::numeric_limits<float>::infinity()};
    io::EncodeDenseRecord(x, 2, nullptr, &payload);
    io::AppendRecordIOFrame(payload, &body);
    expect(s.Post(body, "application/x-recordio-protobuf"), 400,
           "request: record 0 at byte 0: feature 1 (0-based column) is infinity");
  }
  {
    std::string body, payload;
    const uint32_t idx[1] = {1};
    const float val[1] = {std::numeric_limits<float>::quiet_NaN()};
    io::EncodeSparseRecord(idx, val, 1, 2, nullptr, &payload);
    io::AppendRecordIOFrame(payload, &body);
    expect(s.Post(body, "application/x-recordio-protobuf"), 400, "feature 1 (0-based column) is NaN");
  }
  auto ok = s.Post("1,2\n", "text/csv", "application/jsonlines");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, "{\"score\": 3.0}\n");
}

TEST(Server, InternalFaultIs500WithoutDetailsAndTheServerKeepsServing) {
  TestServer s(Fake(FakePredictor::Mode::kThrowInternal));
  for (int i = 0; i < 3; ++i) {
    auto r = s.Post("1,2\n", "text/csv");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 500);
    EXPECT_EQ(r->body.find("secret internal detail"), std::string::npos) << r->body;
    EXPECT_NE(ErrorOf(r).find("internal error"), std::string::npos);
  }
  auto ping = s.Client().Get("/ping");
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->status, 200);
  // A UserError from the predictor is the request's fault: 400 with its reason.
  TestServer u(Fake(FakePredictor::Mode::kThrowUser));
  auto r = u.Post("1,2\n", "text/csv");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(ErrorOf(r).find("feature 1 is out of range"), std::string::npos);
}

// /ping is 503 and /invocations 503 until the model is loaded, then 200.
TEST(Server, PingAnswers200OnlyOnceTheModelIsLoaded) {
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  ServeOptions o;
  o.load = [gate] {
    gate.wait();
    return std::make_unique<FakePredictor>(FakePredictor::Mode::kSum);
  };
  TestServer s(o, /*wait_ready=*/false);
  httplib::Client c = s.Client();
  auto ping = c.Get("/ping");
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->status, 503);
  auto inv = s.Post("1,2\n", "text/csv");
  ASSERT_TRUE(inv);
  EXPECT_EQ(inv->status, 503);
  EXPECT_NE(ErrorOf(inv).find("still loading"), std::string::npos);
  release.set_value();
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!s.server().Ready() && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ping = c.Get("/ping");
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->status, 200);
}

TEST(Server, AModelThatCannotLoadStopsTheServerWithTheReason) {
  test::TempDir dir;
  ServeOptions o = ModelAt(dir / "no-such-model");
  TestServer s(o, /*wait_ready=*/false);
  ASSERT_EQ(s.run().wait_for(std::chrono::seconds(20)), std::future_status::ready);
  try {
    s.run().get();
    ADD_FAILURE() << "Run() returned normally";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot load the model"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no-such-model"), std::string::npos) << e.what();
  }
}

TEST(Server, BusyPortIsAUserErrorNamingIt) {
  TestServer a(Fake(FakePredictor::Mode::kSum));
  ServeOptions o = Fake(FakePredictor::Mode::kSum);
  o.host = "127.0.0.1";
  o.port = a.port();
  Server b(o);
  try {
    b.Run();
    ADD_FAILURE() << "bound a busy port";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(a.port())),
              std::string::npos)
        << e.what();
  }
}

// Many clients at once, each checking its own exact answers.
TEST(Server, ConcurrentRequestsGetTheirOwnAnswers) {
  test::TempDir dir;
  const algos::kmeans::Model m = MakeKMeans(dir / "model", 8, 5, 21);
  ServeOptions o = ModelAt(dir / "model");
  o.workers = 3;
  TestServer s(o);
  std::atomic<int> wrong{0}, done{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      httplib::Client c = s.Client();
      for (int i = 0; i < 25; ++i) {
        const auto rows = RandomRows(1 + (t * 7 + i) % 30, 5, static_cast<uint64_t>(1000 * t + i));
        httplib::Headers h = {{"Accept", "text/csv"}};
        auto r = c.Post("/invocations", h, CsvBody(rows), "text/csv");
        if (!r || r->status != 200) {
          ++wrong;
          continue;
        }
        const Answer a = ParseAnswer(r->body, ResponseFormat::kCsv);
        if (a.cols.size() != rows.size()) {
          ++wrong;
          continue;
        }
        for (size_t k = 0; k < rows.size(); ++k) {
          if (a.cols[k][0] != NearestCenter(m, rows[k]).cluster) ++wrong;
        }
        ++done;
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(done.load(), 200);
}

// Stop (SIGTERM's path: the stop token) while a request is in flight: it completes with 200, new
// connections are refused, Run() returns 0 promptly.
TEST(Server, GracefulShutdownFinishesRequestsInFlight) {
  std::atomic<bool> flag{false};
  ServeOptions o = Fake(FakePredictor::Mode::kSlow);
  o.stop = StopToken(&flag);
  TestServer s(o);
  auto in_flight = std::async(std::launch::async, [&] { return s.Post("1,2\n", "text/csv"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto t0 = Clock::now();
  flag.store(true);
  auto r = in_flight.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["predictions"][0]["score"], 3.0);
  ASSERT_EQ(s.run().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(s.run().get(), 0);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 30.0);
  httplib::Client c("127.0.0.1", s.port());
  c.set_connection_timeout(1, 0);
  EXPECT_FALSE(c.Get("/ping"));
}

TEST(Server, SageMakerEnvironment) {
  ServeOptions o;
  setenv("SAGEMAKER_BIND_TO_PORT", "9123", 1);
  setenv("SAGEMAKER_MAX_PAYLOAD_IN_MB", "12", 1);
  setenv("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", "3", 1);
  setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/jsonlines", 1);
  ApplyServeEnvironment(&o);
  EXPECT_EQ(o.port, 9123);
  EXPECT_EQ(o.max_payload_bytes, size_t{12} << 20);
  EXPECT_EQ(o.workers, 3);
  EXPECT_EQ(o.default_accept, "application/jsonlines");
  setenv("SAGEMAKER_BIND_TO_PORT", "80x", 1);
  try {
    ApplyServeEnvironment(&o);
    ADD_FAILURE() << "accepted a bad port";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("SAGEMAKER_BIND_TO_PORT='80x'"), std::string::npos) << e.what();
  }
  unsetenv("SAGEMAKER_BIND_TO_PORT");
  setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "image/png", 1);
  EXPECT_THROW(ApplyServeEnvironment(&o), UserError);
  for (const char* v : {"SAGEMAKER_MAX_PAYLOAD_IN_MB", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS",
                        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"}) {
    unsetenv(v);
  }
  // The default Accept applies when the request has none or */*; an explicit one wins.
  ServeOptions f = Fake(FakePredictor::Mode::kSum);
  f.default_accept = "application/jsonlines";
  TestServer s(f);
  for (const std::string accept : {"", "*/*"}) {
    auto r = s.Post("1,2\n", "text/csv", accept);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "{\"score\": 3.0}\n") << accept;
  }
  auto r = s.Post("1,2\n", "text/csv", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "{\"predictions\":[{\"score\":3.0}]}");
}

}  // namespace
}  // namespace mlforge::container
