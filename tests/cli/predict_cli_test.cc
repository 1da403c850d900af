// End-to-end tests of `mlforge predict`: synth blobs -> train kmeans -> predict with every accept
// type and every input format (the answers must agree), a model.tar.gz and a real SageMaker
// artifact as --model, and bad input: exit 2, one line of reason, no output file left behind.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "algos/kmeans/model.h"
#include "io/archive.h"
#include "io/recordio.h"
#include "record.pb.h"
#include "tests/testutil.h"

namespace fs = std::filesystem;

namespace mlforge {
namespace {

using Result = test::CliResult;
using test::RunCli;
const char* const kBinary = test::kMlforgeBinary;
std::string Quote(const std::string& s) { return test::ShellQuote(s); }

#define EXPECT_OK(r) EXPECT_EQ((r).code, 0) << "stderr: " << (r).err

// Compared as float32, the precision of every format (the text forms are shortest round-trip).
struct Row {
  float cluster, distance;
  bool operator==(const Row& o) const { return cluster == o.cluster && distance == o.distance; }
};
void PrintTo(const Row& r, std::ostream* os) { *os << "(" << r.cluster << ", " << r.distance << ")"; }

std::vector<Row> FromJson(const std::string& body) {
  std::vector<Row> rows;
  const auto doc = nlohmann::json::parse(body);
  for (const auto& p : doc.at("predictions")) {
    EXPECT_TRUE(p.at("closest_cluster").is_number_float()) << p.dump();
    rows.push_back({p.at("closest_cluster").get<float>(), p.at("distance_to_cluster").get<float>()});
  }
  return rows;
}

std::vector<Row> FromJsonLines(const std::string& body) {
  std::vector<Row> rows;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    const auto p = nlohmann::json::parse(line);
    rows.push_back({p.at("closest_cluster").get<float>(), p.at("distance_to_cluster").get<float>()});
  }
  return rows;
}

std::vector<Row> FromCsv(const std::string& body) {
  std::vector<Row> rows;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    const size_t comma = line.find(',');
    EXPECT_NE(comma, std::string::npos) << line;
    EXPECT_NE(line.find(".", 0), std::string::npos) << line;  // closest_cluster reads as a float
    rows.push_back({std::strtof(line.substr(0, comma).c_str(), nullptr), std::strtof(line.c_str() + comma + 1, nullptr)});
  }
  return rows;
}

std::vector<Row> FromRecordIO(const std::string& body) {
  std::vector<Row> rows;
  io::RecordIOReader reader(body, "response");
  std::string_view payload;
  while (reader.Next(&payload)) {
    aialgs::data::Record rec;
    EXPECT_TRUE(rec.ParseFromArray(payload.data(), static_cast<int>(payload.size())));
    const auto& c = rec.label().at("closest_cluster").float32_tensor();
    const auto& d = rec.label().at("distance_to_cluster").float32_tensor();
    EXPECT_EQ(c.values_size(), 1);
    EXPECT_EQ(d.values_size(), 1);
    rows.push_back({c.values(0), d.values(0)});
  }
  return rows;
}

// Files in `dir` whose names start with `prefix` (an output or its temporary).
std::vector<std::string> FilesStartingWith(const test::TempDir& dir, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0) out.push_back(name);
  }
  return out;
}

// Exit 2, the last stderr line is the one reason, and it contains `part`.
void ExpectUserError(const Result& r, const std::string& part) {
  EXPECT_EQ(r.code, 2) << r.err;
  std::string err = r.err;
  ASSERT_FALSE(err.empty());
  EXPECT_EQ(err.back(), '\n');
  err.pop_back();
  const std::string last = err.substr(err.rfind('\n') == std::string::npos ? 0 : err.rfind('\n') + 1);
  EXPECT_EQ(last.rfind("mlforge: error: ", 0), 0u) << r.err;
  EXPECT_NE(last.find(part), std::string::npos) << "'" << part << "' not in: " << r.err;
}

class PredictCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    const test::TempDir& d = *dir_;
    // Three well separated blobs in 4-D; labels in the first column (CSV) / Record.label.
    ASSERT_EQ(RunCli(d, {"data", "synth", "blobs", "blobs.pbr", "--rows", "3000", "--cols", "4", "--k", "3",
                         "--cluster-std", "0.3", "--seed", "7"}).code, 0);
    ASSERT_EQ(RunCli(d, {"data", "convert", "blobs.pbr", "labeled.csv"}).code, 0);
    ASSERT_EQ(RunCli(d, {"data", "convert", "blobs.pbr", "features.csv", "--label-size", "0"}).code, 0);
    const Result t = RunCli(d, {"train", "kmeans", "--train", "blobs.pbr", "--model-dir", "model", "--hp", "k=3",
                                "--hp", "feature_dim=4", "--device", "cpu"});
    ASSERT_EQ(t.code, 0) << t.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static test::TempDir* dir_;
};
test::TempDir* PredictCli::dir_ = nullptr;

TEST_F(PredictCli, EveryAcceptTypeGivesTheSameAnswers) {
  const test::TempDir& d = *dir_;
  const Result json = RunCli(d, {"predict", "--model", "model", "--input", "features.csv"});
  EXPECT_OK(json);
  const std::vector<Row> want = FromJson(json.out);
  ASSERT_EQ(want.size(), 3000u);
  EXPECT_EQ(json.out.rfind("{\"predictions\":[{\"closest_cluster\":", 0), 0u) << json.out.substr(0, 80);

  // The clusters recover the blobs: every label maps to one cluster (and vice versa).
  const std::string labeled = test::ReadFile(d / "labeled.csv");
  std::istringstream in(labeled);
  std::map<int, std::set<float>> clusters_of_label;
  size_t i = 0;
  for (std::string line; std::getline(in, line); ++i) {
    ASSERT_LT(i, want.size());
    clusters_of_label[std::stoi(line.substr(0, line.find(',')))].insert(want[i].cluster);
    EXPECT_GE(want[i].distance, 0.0f);
    EXPECT_LT(want[i].distance, 3.0f);  // std 0.3 in 4-D: a few sigma at most
  }
  ASSERT_EQ(clusters_of_label.size(), 3u);
  std::set<float> all;
  for (const auto& [label, clusters] : clusters_of_label) {
    EXPECT_EQ(clusters.size(), 1u) << "label " << label;
    all.insert(clusters.begin(), clusters.end());
  }
  EXPECT_EQ(all, (std::set<float>{0.0f, 1.0f, 2.0f}));

  const Result jl = RunCli(d, {"predict", "--model", "model", "--input", "features.csv", "--accept",
                               "application/jsonlines"});
  EXPECT_OK(jl);
  EXPECT_EQ(FromJsonLines(jl.out), want);
  const Result csv = RunCli(d, {"predict", "--model", "model", "--input", "features.csv", "--accept", "text/csv"});
  EXPECT_OK(csv);
  EXPECT_EQ(FromCsv(csv.out), want);
  const Result pb = RunCli(d, {"predict", "--model", "model", "--input", "features.csv", "--accept",
                               "application/x-recordio-protobuf"});
  EXPECT_OK(pb);
  EXPECT_EQ(FromRecordIO(pb.out), want);
  const Result explicit_json = RunCli(d, {"predict", "--model", "model", "--input", "features.csv", "--accept",
                                          "application/json"});
  EXPECT_EQ(explicit_json.out, json.out);

  // --output: the same bytes in a file, nothing on stdout, no temporary left.
  const Result to_file = RunCli(d, {"predict", "--model", "model", "--input", "features.csv", "--accept", "text/csv",
                                    "--output", "preds.csv"});
  EXPECT_OK(to_file);
  EXPECT_EQ(to_file.out, "");
  EXPECT_EQ(test::ReadFile(d / "preds.csv"), csv.out);
  EXPECT_EQ(FilesStartingWith(d, "preds.csv"), std::vector<std::string>{"preds.csv"});
}

TEST_F(PredictCli, EveryInputFormatGivesTheSameAnswers) {
  const test::TempDir& d = *dir_;
  const Result base = RunCli(d, {"predict", "--model", "model", "--input", "features.csv", "--accept", "text/csv"});
  ASSERT_EQ(base.code, 0) << base.err;

  // recordIO (labels are ignored), labeled CSV with label_size=1.
  const Result pbr = RunCli(d, {"predict", "--model", "model", "--input", "blobs.pbr", "--accept", "text/csv"});
  EXPECT_OK(pbr);
  EXPECT_EQ(pbr.out, base.out);
  const Result lab = RunCli(d, {"predict", "--model", "model", "--input", "labeled.csv", "--content-type",
                                "text/csv;label_size=1", "--accept", "text/csv"});
  EXPECT_OK(lab);
  EXPECT_EQ(lab.out, base.out);

  // JSON and JSON lines written from the CSV rows (dense, and every other row sparse).
  const std::string features = test::ReadFile(d / "features.csv");
  std::istringstream in(features);
  nlohmann::json instances = nlohmann::json::array();
  std::string jsonl;
  int n = 0;
  for (std::string line; std::getline(in, line); ++n) {
    std::vector<double> x;
    std::istringstream fields(line);
    for (std::string f; std::getline(fields, f, ',');) x.push_back(std::stod(f));
    nlohmann::json inst;
    if (n % 2 == 0) {
      inst = {{"features", x}};
    } else {
      std::vector<int> keys;
      std::vector<double> values;
      for (size_t q = 0; q < x.size(); ++q) {
        if (x[q] != 0.0) {
          keys.push_back(static_cast<int>(q));
          values.push_back(x[q]);
        }
      }
      inst = {{"data", {{"features", {{"keys", keys}, {"shape", {x.size()}}, {"values", values}}}}}};
    }
    instances.push_back(inst);
    jsonl += inst.dump() + "\n";
  }
  test::WriteFile(d / "req.json", nlohmann::json{{"instances", instances}}.dump());
  test::WriteFile(d / "req.jsonl", jsonl);
  test::WriteFile(d / "req.data", jsonl);
  const Result js = RunCli(d, {"predict", "--model", "model", "--input", "req.json", "--accept", "text/csv"});
  EXPECT_OK(js);
  EXPECT_EQ(js.out, base.out);
  const Result jl = RunCli(d, {"predict", "--model", "model", "--input", "req.jsonl", "--accept", "text/csv"});
  EXPECT_OK(jl);
  EXPECT_EQ(jl.out, base.out);
  const Result typed = RunCli(d, {"predict", "--model", "model", "--input", "req.data", "--content-type",
                                  "application/jsonlines", "--accept", "text/csv"});
  EXPECT_OK(typed);
  EXPECT_EQ(typed.out, base.out);
}

TEST_F(PredictCli, ModelTarballAndBareModelFile) {
  const test::TempDir& d = *dir_;
  const Result base = RunCli(d, {"predict", "--model", "model", "--input", "features.csv", "--accept", "text/csv"});
  ASSERT_EQ(base.code, 0) << base.err;
  io::WriteModelTarGz(d / "model", d / "model.tar.gz");
  const Result tgz = RunCli(d, {"predict", "--model", "model.tar.gz", "--input", "features.csv", "--accept", "text/csv"});
  EXPECT_OK(tgz);
  EXPECT_EQ(tgz.out, base.out);
  const Result bare = RunCli(d, {"predict", "--model", "model/model_algo-1", "--input", "features.csv", "--accept",
                                 "text/csv", "--algorithm", "kmeans"});
  EXPECT_OK(bare);
  EXPECT_EQ(bare.out, base.out);
}

TEST_F(PredictCli, RealSageMakerArtifact) {
  MLF_REQUIRE_SHARED_DATA();
  const test::TempDir& d = *dir_;
  const std::string model = test::SharedData("artifacts/kmeans_census_k8_d7_with_state.model.tar.gz");
  // The centroids as input: cluster j at distance 0, exactly.
  const algos::kmeans::Model m = algos::kmeans::LoadModel(model);
  ASSERT_EQ(m.k, 8);
  ASSERT_EQ(m.dim, 7);
  std::string csv, want;
  for (int64_t j = 0; j < m.k; ++j) {
    for (int64_t q = 0; q < m.dim; ++q) {
      csv += (q ? "," : "") + fmt::format("{}", m.center(j)[q]);  // shortest round trip: exact
    }
    csv += "\n";
    want += std::to_string(j) + ".0,0.0\n";
  }
  test::WriteFile(d / "centroids.csv", csv);
  const Result r = RunCli(d, {"predict", "--model", model, "--input", "centroids.csv", "--accept", "text/csv"});
  EXPECT_OK(r);
  EXPECT_EQ(r.out, want);

  // The default accept is JSON.
  const Result js = RunCli(d, {"predict", "--model", model, "--input", "centroids.csv"});
  EXPECT_OK(js);
  EXPECT_EQ(FromJson(js.out).size(), 8u);

  // A factorization-machines artifact is recognised, and refuses CSV input as SageMaker's FM does.
  const std::string fm = test::SharedData("artifacts/fm_movielens100k_regressor_d2625_k64.model.tar.gz");
  ExpectUserError(RunCli(d, {"predict", "--model", fm, "--input", "centroids.csv"}),
                  "a factorization-machines model takes no text/csv");
  // A PCA artifact predicts: 7 features in, 6 projections out per row.
  const std::string pca = test::SharedData("artifacts/pca_regular_d7_k6.model.tar.gz");
  test::WriteFile(d / "seven.csv", "1,2,3,4,5,6,7\n0,0,0,0,0,0,0\n");
  const Result pr = RunCli(d, {"predict", "--model", pca, "--input", "seven.csv"});
  EXPECT_OK(pr);
  const nlohmann::json pj = nlohmann::json::parse(pr.out);
  ASSERT_EQ(pj["projections"].size(), 2u) << pr.out;
  EXPECT_EQ(pj["projections"][0]["projection"].size(), 6u) << pr.out;
}

TEST_F(PredictCli, OutputThroughSymlinkFifoAndDash) {
  const test::TempDir& d = *dir_;
  const Result base = RunCli(d, {"predict", "--model", "model", "--input", "features.csv", "--accept", "text/csv"});
  ASSERT_EQ(base.code, 0) << base.err;
  // "-" is stdout.
  const Result dash = RunCli(d, {"predict", "--model", "model", "--input", "features.csv", "--accept", "text/csv",
                                 "--output", "-"});
  EXPECT_OK(dash);
  EXPECT_EQ(dash.out, base.out);
  // A symlink stays a symlink; the file it points to is replaced.
  test::WriteFile(d / "sub/real.csv", "old\n");
  fs::create_symlink("sub/real.csv", d / "link.csv");
  EXPECT_OK(RunCli(d, {"predict", "--model", "model", "--input", "features.csv", "--accept", "text/csv", "--output",
                       "link.csv"}));
  EXPECT_TRUE(fs::is_symlink(d / "link.csv"));
  EXPECT_EQ(test::ReadFile(d / "sub/real.csv"), base.out);
  EXPECT_EQ(FilesStartingWith(d, "link.csv"), std::vector<std::string>{"link.csv"});
  // A FIFO is written in place (not replaced by a regular file).
  ASSERT_EQ(std::system(("mkfifo " + Quote(d / "out.fifo")).c_str()), 0);
  const std::string cmd = "cd " + Quote(d.path()) + " && (timeout 20 cat out.fifo > from_fifo.csv &) && " + Quote(kBinary) +
                          " predict --model model --input features.csv --accept text/csv --output out.fifo "
                          "2>/dev/null && sleep 0.2";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_EQ(fs::status(d / "out.fifo").type(), fs::file_type::fifo);
  EXPECT_EQ(test::ReadFile(d / "from_fifo.csv"), base.out);
  fs::remove(d / "out.fifo");
  fs::remove(d / "from_fifo.csv");
}

TEST_F(PredictCli, BadInputExitsTwoWithOneLineAndNoOutputFile) {
  const test::TempDir& d = *dir_;
  // One column too many: suggests label_size=1.
  Result r = RunCli(d, {"predict", "--model", "model", "--input", "labeled.csv", "--output", "out1.json"});
  ExpectUserError(r, "labeled.csv: line 1: 5 feature column(s), but the model expects 4 (its feature_dim); if the "
                     "first column is a label, declare it with content type 'text/csv;label_size=1'");
  EXPECT_TRUE(FilesStartingWith(d, "out1").empty());

  // A bad row deep in the file, after many good batches were predicted: still no output file.
  std::string features = test::ReadFile(d / "features.csv");
  std::string big;
  for (int rep = 0; rep < 10; ++rep) big += features;
  test::WriteFile(d / "bad_late.csv", big + "1,2,x,4\n");
  r = RunCli(d, {"predict", "--model", "model", "--input", "bad_late.csv", "--output", "out2.json"});
  ExpectUserError(r, "bad_late.csv: line 30001");
  EXPECT_NE(r.err.find("'x' is not a number"), std::string::npos) << r.err;
  EXPECT_TRUE(FilesStartingWith(d, "out2").empty());

  // A truncated recordIO file names the record and the byte offset.
  const std::string pbr = test::ReadFile(d / "blobs.pbr");
  test::WriteFile(d / "cut.pbr", pbr.substr(0, pbr.size() - 7));
  r = RunCli(d, {"predict", "--model", "model", "--input", "cut.pbr", "--output", "out3.pbr", "--accept",
                 "application/x-recordio-protobuf"});
  ExpectUserError(r, "cut.pbr: record 2999 at byte");
  EXPECT_TRUE(FilesStartingWith(d, "out3").empty());

  // Malformed JSON / JSON lines.
  test::WriteFile(d / "bad.json", "{\"instances\": [{\"features\": [1, 2, 3, 4]}, {\"features\": [1, 2]}]}");
  r = RunCli(d, {"predict", "--model", "model", "--input", "bad.json", "--output", "out4.json"});
  ExpectUserError(r, "bad.json: instance 1: 2 feature column(s), but the model expects 4");
  EXPECT_TRUE(FilesStartingWith(d, "out4").empty());
  test::WriteFile(d / "bad.jsonl", "{\"features\": [1, 2, 3, 4]}\n{\"features\": [1, 2, 3, 4]\n");
  r = RunCli(d, {"predict", "--model", "model", "--input", "bad.jsonl", "--output", "out5.json"});
  ExpectUserError(r, "bad.jsonl: line 2: not valid JSON");
  EXPECT_TRUE(FilesStartingWith(d, "out5").empty());

  // Options and paths.
  ExpectUserError(RunCli(d, {"predict", "--model", "model", "--input", "features.csv", "--accept", "text/html"}),
                  "unsupported accept type 'text/html'");
  ExpectUserError(RunCli(d, {"predict", "--model", "model", "--input", "features.txt"}),
                  "features.txt: cannot tell the input format");
  ExpectUserError(RunCli(d, {"predict", "--model", "model", "--input", "features.csv", "--content-type", "image/png"}),
                  "unsupported content type 'image/png'");
  ExpectUserError(RunCli(d, {"predict", "--model", "no-such-model", "--input", "features.csv"}), "no-such-model");
  ExpectUserError(RunCli(d, {"predict", "--model", "model", "--input", "no-such.csv"}), "no-such.csv");
  ExpectUserError(RunCli(d, {"predict", "--model", "model", "--input", "features.csv", "--algorithm", "pca"}),
                  "not a PCA model");
  ExpectUserError(RunCli(d, {"predict", "--model", "model", "--input", "features.csv", "--algorithm", "kmeens"}),
                  "kmeens");
  // Not a model at all.
  ExpectUserError(RunCli(d, {"predict", "--model", "features.csv", "--input", "features.csv"}), "features.csv");
  EXPECT_TRUE(FilesStartingWith(d, "out").empty());
}


// Splits one CSV line into fields (RFC 4180 quotes, as the uid column may need them).
std::vector<std::string> CsvFields(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        out.back().push_back('"');
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        out.back().push_back(c);
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else {
      out.back().push_back(c);
    }
  }
  return out;
}

std::vector<std::string> Lines(const std::string& body) {
  std::vector<std::string> out;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// A model whose mlforge-model.json nests a million levels deep (a corrupt or hostile artifact) is an
// error naming the file, for every algorithm's loader; before, `predict` died of a stack overflow
// (SIGSEGV) on the kmeans one.
TEST_F(PredictCli, AModelWhoseMetadataNestsTooDeepIsAnErrorNotACrash) {
  const test::TempDir& d = *dir_;
  const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  ASSERT_EQ(RunCli(d, {"data", "synth", "linear", "lin.pbr", "--rows", "500", "--cols", "4", "--task", "binary"}).code, 0);
  ASSERT_EQ(RunCli(d, {"data", "synth", "fm", "fm.pbr", "--rows", "500"}).code, 0);
  // algorithm, training file, prediction input, hyperparameters
  const std::vector<std::vector<std::string>> trainings = {
      {"kmeans", "blobs.pbr", "features.csv", "k=3", "feature_dim=4"},
      {"pca", "blobs.pbr", "features.csv", "num_components=2", "feature_dim=4"},
      {"linear-learner", "lin.pbr", "features.csv", "predictor_type=binary_classifier", "feature_dim=4"},
      {"factorization-machines", "fm.pbr", "fm.pbr", "predictor_type=regressor", "feature_dim=200", "num_factors=4"},
  };
  for (const auto& t : trainings) {
    const std::string model = "deep_" + t[0];
    std::vector<std::string> train = {"train", t[0], "--train", t[1], "--model-dir", model, "--device", "cpu"};
    for (size_t i = 3; i < t.size(); ++i) train.insert(train.end(), {"--hp", t[i]});
    const Result r = RunCli(d, train);
    ASSERT_EQ(r.code, 0) << r.err;
    const Result ok = RunCli(d, {"predict", "--model", model, "--input", t[2], "--output", "ok_" + t[0]});
    ASSERT_EQ(ok.code, 0) << ok.err;
    const std::string meta = test::ReadFile(d / (model + "/mlforge-model.json"));
    const size_t at = meta.find("\"hyperparameters\": ");
    ASSERT_NE(at, std::string::npos) << meta;
    // "hyperparameters": <a million levels>, "x": {the real ones}
    test::WriteFile(d / (model + "/mlforge-model.json"),
                    meta.substr(0, at) + "\"hyperparameters\": " + deep + ", \"x\"" + meta.substr(at + 17));
    const Result bad = RunCli(d, {"predict", "--model", model, "--input", t[2], "--output", "bad_" + t[0],
                                  "--algorithm", t[0]});
    ExpectUserError(bad, "mlforge-model.json: JSON nested more than 128 levels deep");
    EXPECT_TRUE(FilesStartingWith(d, "bad_" + t[0]).empty()) << t[0];
  }
}

TEST_F(PredictCli, JoinOrdinalInEveryAcceptTypeAcrossBatches) {
  const test::TempDir& d = *dir_;
  // 20,000 rows of 4 features: 3 batches of at most 8,192 rows; ordinals must run on across them.
  ASSERT_EQ(RunCli(d, {"data", "synth", "blobs", "many.pbr", "--rows", "20000", "--cols", "4", "--k", "3",
                       "--seed", "11"}).code, 0);
  ASSERT_EQ(RunCli(d, {"data", "convert", "many.pbr", "many.csv", "--label-size", "0"}).code, 0);
  const Result base = RunCli(d, {"predict", "--model", "model", "--input", "many.csv", "--accept", "text/csv"});
  ASSERT_EQ(base.code, 0) << base.err;
  const std::vector<std::string> base_lines = Lines(base.out);
  ASSERT_EQ(base_lines.size(), 20000u);
  const std::vector<Row> want = FromCsv(base.out);

  // --join none is the default: the exact endpoint shapes.
  const Result none = RunCli(d, {"predict", "--model", "model", "--input", "many.csv", "--accept", "text/csv",
                                 "--join", "none"});
  EXPECT_OK(none);
  EXPECT_EQ(none.out, base.out);

  for (const std::string input : {"many.csv", "many.pbr"}) {
    SCOPED_TRACE(input);
    // CSV: one leading column.
    const Result csv = RunCli(d, {"predict", "--model", "model", "--input", input, "--accept", "text/csv", "--join",
                                  "ordinal"});
    EXPECT_OK(csv);
    const std::vector<std::string> lines = Lines(csv.out);
    ASSERT_EQ(lines.size(), base_lines.size());
    for (size_t i = 0; i < lines.size(); ++i) {
      ASSERT_EQ(lines[i], std::to_string(i) + "," + base_lines[i]) << "row " << i;
    }
    // JSON: "ordinal" first, then the prediction's own members.
    const Result js = RunCli(d, {"predict", "--model", "model", "--input", input, "--join", "ordinal"});
    EXPECT_OK(js);
    EXPECT_EQ(js.out.rfind("{\"predictions\":[{\"ordinal\":0,\"closest_cluster\":", 0), 0u) << js.out.substr(0, 80);
    EXPECT_EQ(FromJson(js.out), want);
    const auto doc = nlohmann::json::parse(js.out);
    for (size_t i = 0; i < doc["predictions"].size(); ++i) {
      ASSERT_TRUE(doc["predictions"][i]["ordinal"].is_number_integer());
      ASSERT_EQ(doc["predictions"][i]["ordinal"].get<int64_t>(), static_cast<int64_t>(i));
    }
    // JSON lines.
    const Result jl = RunCli(d, {"predict", "--model", "model", "--input", input, "--accept", "application/jsonlines",
                                 "--join", "ordinal"});
    EXPECT_OK(jl);
    EXPECT_EQ(FromJsonLines(jl.out), want);
    const std::vector<std::string> jlines = Lines(jl.out);
    ASSERT_EQ(jlines.size(), want.size());
    EXPECT_EQ(jlines[0].rfind("{\"ordinal\": 0, \"closest_cluster\": ", 0), 0u) << jlines[0];
    EXPECT_EQ(nlohmann::json::parse(jlines[19999])["ordinal"].get<int64_t>(), 19999);
    // recordIO: label["ordinal"] as a float64 tensor; no uid.
    const Result pb = RunCli(d, {"predict", "--model", "model", "--input", input, "--accept",
                                 "application/x-recordio-protobuf", "--join", "ordinal"});
    EXPECT_OK(pb);
    EXPECT_EQ(FromRecordIO(pb.out), want);
    io::RecordIOReader reader(pb.out, "response");
    std::string_view payload;
    int64_t i = 0;
    while (reader.Next(&payload)) {
      aialgs::data::Record rec;
      ASSERT_TRUE(rec.ParseFromArray(payload.data(), static_cast<int>(payload.size())));
      const auto& o = rec.label().at("ordinal").float64_tensor();
      ASSERT_EQ(o.values_size(), 1);
      ASSERT_EQ(o.values(0), static_cast<double>(i));
      ASSERT_FALSE(rec.has_uid());
      ++i;
    }
    EXPECT_EQ(i, 20000);
  }

  // JSON lines input is batched too: its ordinals run on as well.
  std::string jsonl;
  for (const std::string& line : Lines(test::ReadFile(d / "many.csv"))) jsonl += "{\"features\": [" + line + "]}\n";
  test::WriteFile(d / "many.jsonl", jsonl);
  const Result jin = RunCli(d, {"predict", "--model", "model", "--input", "many.jsonl", "--accept", "text/csv",
                                "--join", "ordinal"});
  EXPECT_OK(jin);
  const std::vector<std::string> jin_lines = Lines(jin.out);
  ASSERT_EQ(jin_lines.size(), base_lines.size());
  for (size_t i = 0; i < jin_lines.size(); ++i) {
    ASSERT_EQ(jin_lines[i], std::to_string(i) + "," + base_lines[i]) << "row " << i;
  }
}

TEST_F(PredictCli, JoinUidFromRecordIO) {
  const test::TempDir& d = *dir_;
  // Records with and without uid, one uid needing CSV quotes, one record holding two rows ([2, 4]),
  // one sparse row; split over two files of a directory (ordinals run on across files).
  const float rows[6][4] = {{0, 0, 0, 0}, {1, 2, 3, 4}, {-1, 0.5f, 2, 0}, {3, 3, 3, 3}, {0, 0, 7, 0}, {2, 1, 0, -2}};
  auto record = [](const float* x, int n_rows, const char* uid, bool sparse) {
    aialgs::data::Record rec;
    auto* t = (*rec.mutable_features())["values"].mutable_float32_tensor();
    if (sparse) {
      for (int q = 0; q < 4; ++q) {
        if (x[q] != 0) {
          t->add_keys(static_cast<uint64_t>(q));
          t->add_values(x[q]);
        }
      }
      t->add_shape(4);
    } else {
      for (int q = 0; q < 4 * n_rows; ++q) t->add_values(x[q]);
      if (n_rows > 1) {
        t->add_shape(static_cast<uint64_t>(n_rows));
        t->add_shape(4);
      }
    }
    if (uid != nullptr) rec.set_uid(uid);
    std::string frame;
    io::AppendRecordIOFrame(rec.SerializeAsString(), &frame);
    return frame;
  };
  std::string part1 = record(rows[0], 1, "a-0", false) + record(rows[1], 1, nullptr, false) +
                      record(rows[2], 2, "pair", false);  // rows 2 and 3
  std::string part2 = record(rows[4], 1, "x,\"y\"", true) + record(rows[5], 1, "last", false);
  test::WriteFile(d / "uids/part-1.pbr", part1);
  test::WriteFile(d / "uids/part-2.pbr", part2);
  const std::vector<std::string> uids = {"a-0", "", "pair", "pair", "x,\"y\"", "last"};

  const Result base = RunCli(d, {"predict", "--model", "model", "--input", "uids", "--content-type",
                                 "application/x-recordio-protobuf", "--accept", "text/csv"});
  ASSERT_EQ(base.code, 0) << base.err;
  const std::vector<std::string> base_lines = Lines(base.out);
  ASSERT_EQ(base_lines.size(), 6u);

  // CSV: ordinal,uid,closest_cluster,distance_to_cluster.
  const Result csv = RunCli(d, {"predict", "--model", "model", "--input", "uids", "--content-type",
                                "application/x-recordio-protobuf", "--accept", "text/csv", "--join", "ordinal,uid"});
  EXPECT_OK(csv);
  const std::vector<std::string> lines = Lines(csv.out);
  ASSERT_EQ(lines.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    const std::vector<std::string> f = CsvFields(lines[i]);
    ASSERT_EQ(f.size(), 4u) << lines[i];
    EXPECT_EQ(f[0], std::to_string(i));
    EXPECT_EQ(f[1], uids[i]);
    EXPECT_EQ(f[2] + "," + f[3], base_lines[i]);
  }
  EXPECT_EQ(lines[4].substr(0, 12), "4,\"x,\"\"y\"\"\",") << lines[4];
  // uid alone: one leading column.
  const Result uid_only = RunCli(d, {"predict", "--model", "model", "--input", "uids", "--content-type",
                                     "application/x-recordio-protobuf", "--accept", "text/csv", "--join", "uid"});
  EXPECT_OK(uid_only);
  EXPECT_EQ(Lines(uid_only.out)[0], "a-0," + base_lines[0]);
  EXPECT_EQ(Lines(uid_only.out)[1], "," + base_lines[1]);

  // JSON: "uid" is null for the record without one.
  const Result js = RunCli(d, {"predict", "--model", "model", "--input", "uids", "--content-type",
                               "application/x-recordio-protobuf", "--join", "uid,ordinal"});
  EXPECT_OK(js);
  const auto doc = nlohmann::json::parse(js.out);
  ASSERT_EQ(doc["predictions"].size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    const auto& p = doc["predictions"][i];
    EXPECT_EQ(p["ordinal"].get<int64_t>(), static_cast<int64_t>(i));
    if (uids[i].empty()) {
      EXPECT_TRUE(p["uid"].is_null()) << p.dump();
    } else {
      EXPECT_EQ(p["uid"].get<std::string>(), uids[i]);
    }
  }
  EXPECT_EQ(FromJson(js.out), FromCsv(base.out));
  const Result jl = RunCli(d, {"predict", "--model", "model", "--input", "uids", "--content-type",
                               "application/x-recordio-protobuf", "--accept", "application/jsonlines", "--join", "uid"});
  EXPECT_OK(jl);
  EXPECT_EQ(Lines(jl.out)[2].rfind("{\"uid\": \"pair\", \"closest_cluster\": ", 0), 0u) << jl.out;
  EXPECT_EQ(FromJsonLines(jl.out), FromCsv(base.out));

  // recordIO: Record.uid set (absent for the record without one), ordinal label.
  const Result pb = RunCli(d, {"predict", "--model", "model", "--input", "uids", "--content-type",
                               "application/x-recordio-protobuf", "--accept", "application/x-recordio-protobuf",
                               "--join", "ordinal,uid"});
  EXPECT_OK(pb);
  EXPECT_EQ(FromRecordIO(pb.out), FromCsv(base.out));
  io::RecordIOReader reader(pb.out, "response");
  std::string_view payload;
  size_t i = 0;
  while (reader.Next(&payload)) {
    aialgs::data::Record rec;
    ASSERT_TRUE(rec.ParseFromArray(payload.data(), static_cast<int>(payload.size())));
    ASSERT_LT(i, uids.size());
    EXPECT_EQ(rec.has_uid(), !uids[i].empty());
    EXPECT_EQ(rec.uid(), uids[i]);
    EXPECT_EQ(rec.label().at("ordinal").float64_tensor().values(0), static_cast<double>(i));
    ++i;
  }
  EXPECT_EQ(i, 6u);

  // The uid path reads blobs.pbr (no uids) to the same answers as the streaming path.
  const Result plain = RunCli(d, {"predict", "--model", "model", "--input", "blobs.pbr", "--accept", "text/csv"});
  const Result with_uid = RunCli(d, {"predict", "--model", "model", "--input", "blobs.pbr", "--accept", "text/csv",
                                     "--join", "uid"});
  EXPECT_OK(with_uid);
  std::string prefixed;
  for (const std::string& line : Lines(plain.out)) prefixed += "," + line + "\n";
  EXPECT_EQ(with_uid.out, prefixed);

  // Errors: uid needs recordIO; unknown join fields; a wrong width names the record.
  ExpectUserError(RunCli(d, {"predict", "--model", "model", "--input", "features.csv", "--join", "uid"}),
                  "--join uid: only recordIO input carries a uid");
  ExpectUserError(RunCli(d, {"predict", "--model", "model", "--input", "features.csv", "--join", "row"}),
                  "--join 'row': 'row' is not a join field");
  std::string wide;
  {
    aialgs::data::Record rec;
    for (int q = 0; q < 5; ++q) (*rec.mutable_features())["values"].mutable_float32_tensor()->add_values(1);
    io::AppendRecordIOFrame(rec.SerializeAsString(), &wide);
  }
  test::WriteFile(d / "wide.pbr", part1 + wide);
  ExpectUserError(RunCli(d, {"predict", "--model", "model", "--input", "wide.pbr", "--join", "uid", "--output",
                             "outw.json"}),
                  "wide.pbr: record 3 at byte");
  EXPECT_TRUE(FilesStartingWith(d, "outw").empty());
}

}  // namespace
}  // namespace mlforge
