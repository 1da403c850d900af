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

const char* kBinary = MLFORGE_BINARY_DIR "/cli/mlforge";

struct Result {
  int code = -1;
  std::string out, err;
};

std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs mlforge with `args` in `dir` (stdin from /dev/null), capturing stdout and stderr.
Result RunCli(const test::TempDir& dir, const std::vector<std::string>& args) {
  std::string cmd = "cd " + Quote(dir.path()) + " && " + Quote(kBinary);
  for (const auto& a : args) cmd += " " + Quote(a);
  cmd += " </dev/null >" + Quote(dir / ".stdout") + " 2>" + Quote(dir / ".stderr");
  const int status = std::system(cmd.c_str());
  Result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = test::ReadFile(dir / ".stdout");
  r.err = test::ReadFile(dir / ".stderr");
  return r;
}

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

  // A PCA artifact is recognised and refused with the reason.
  const std::string pca = test::SharedData("artifacts/pca_regular_d7_k6.model.tar.gz");
  ExpectUserError(RunCli(d, {"predict", "--model", pca, "--input", "centroids.csv"}),
                  "this is a pca model (detected from model_algo-1); mlforge predict supports kmeans models only");
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
                  "this is a pca model; mlforge predict supports kmeans models only");
  ExpectUserError(RunCli(d, {"predict", "--model", "model", "--input", "features.csv", "--algorithm", "kmeens"}),
                  "kmeens");
  // Not a model at all.
  ExpectUserError(RunCli(d, {"predict", "--model", "features.csv", "--input", "features.csv"}), "features.csv");
  EXPECT_TRUE(FilesStartingWith(d, "out").empty());
}

}  // namespace
}  // namespace mlforge
