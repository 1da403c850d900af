// The factorization machines commands end to end through the binary: synth -> train (with a test
// channel) -> predict (with --top-k) -> embeddings; the container contract (train from /opt/ml).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/testutil.h"

namespace mlforge {
namespace {

using test::RunCli;
#define EXPECT_OK(r) EXPECT_EQ((r).code, 0) << "stderr: " << (r).err

TEST(FmCli, TrainPredictTopKAndEmbeddings) {
  test::TempDir d;
  EXPECT_OK(RunCli(d, {"data", "synth", "fm", "train.pbr", "--rows", "6000", "--users", "50", "--items", "80",
                       "--seed", "3"}));
  const test::CliResult t =
      RunCli(d, {"train", "factorization-machines", "--train", "train.pbr", "--test", "train.pbr", "--model-dir",
                 "model", "--hp", "feature_dim=130", "--hp", "num_factors=4", "--hp", "predictor_type=regressor",
                 "--hp", "epochs=3"});
  EXPECT_OK(t);
  EXPECT_NE(t.err.find("#test_score (algo-1) : ('rmse', "), std::string::npos) << t.err;
  EXPECT_NE(t.err.find("#quality_metric: host=algo-1, epoch=2, train rmse <loss>="), std::string::npos) << t.err;
  // Users' rows only (feature 0..49), top 3 of the items 50..129.
  test::WriteFile(d / "users.jsonl",
                  "{\"data\": {\"features\": {\"keys\": [4], \"shape\": [130], \"values\": [1.0]}}}\n"
                  "{\"data\": {\"features\": {\"keys\": [7], \"shape\": [130], \"values\": [1.0]}}}\n");
  const test::CliResult p = RunCli(d, {"predict", "--model", "model", "--input", "users.jsonl", "--accept",
                                       "application/jsonlines", "--top-k", "3", "--item-range", "50:130"});
  EXPECT_OK(p);
  std::istringstream lines(p.out);
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    const auto j = nlohmann::json::parse(line);
    ASSERT_EQ(j["top_k_items"].size(), 3u) << line;
    for (const auto& item : j["top_k_items"]) EXPECT_TRUE(item.get<int>() >= 50 && item.get<int>() < 130) << line;
    EXPECT_GE(j["top_k_scores"][0].get<double>(), j["top_k_scores"][2].get<double>()) << line;
  }
  EXPECT_EQ(n, 2);
  // --item-range without --top-k, and --top-k on a model of another algorithm, are usage errors.
  EXPECT_EQ(RunCli(d, {"predict", "--model", "model", "--input", "users.jsonl", "--item-range", "50:130"}).code, 2);
  EXPECT_OK(RunCli(d, {"embeddings", "--model", "model", "--output", "emb.csv"}));
  const std::string csv = test::ReadFile(d / "emb.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 131) << "a header and 130 features";
  EXPECT_EQ(RunCli(d, {"embeddings", "--model", "model", "--output", "emb.txt"}).code, 2);

  // The same rows as libsvm text train the same model (1-based indices in the file).
  EXPECT_OK(RunCli(d, {"data", "convert", "train.pbr", "train.libsvm", "--to", "libsvm"}));
  EXPECT_OK(RunCli(d, {"train", "factorization-machines", "--train", "train.libsvm", "--model-dir", "model_svm", "--hp",
                       "feature_dim=130", "--hp", "num_factors=4", "--hp", "predictor_type=regressor", "--hp",
                       "epochs=3"}));
  EXPECT_OK(RunCli(d, {"embeddings", "--model", "model_svm", "--output", "emb_svm.csv"}));
  EXPECT_EQ(test::ReadFile(d / "emb_svm.csv"), csv);
}

TEST(FmCli, ContainerTrainFromOptMl) {
  test::TempDir d;
  const std::string root = d / "opt/ml";
  std::filesystem::create_directories(root + "/input/data/train");
  EXPECT_OK(RunCli(d, {"data", "synth", "fm", root + "/input/data/train/part0.pbr", "--rows", "2000", "--users", "20",
                       "--items", "30", "--no-truth"}));
  test::WriteFile(root + "/input/config/hyperparameters.json",
                  R"({"feature_dim": "50", "num_factors": "4", "predictor_type": "regressor", "epochs": "2"})");
  test::WriteFile(root + "/input/config/inputdataconfig.json",
                  R"({"train": {"ContentType": "application/x-recordio-protobuf", "TrainingInputMode": "File"}})");
  const test::CliResult r = RunCli(d, {"container", "train", "--opt-ml", root, "--algorithm", "factorization-machines"});
  EXPECT_OK(r);
  EXPECT_TRUE(std::ifstream(root + "/model/model_algo-1").good()) << r.err;  // SageMaker tars /opt/ml/model
  // CSV content type: refused like SageMaker, with the failure file.
  test::WriteFile(root + "/input/config/inputdataconfig.json",
                  R"({"train": {"ContentType": "text/csv", "TrainingInputMode": "File"}})");
  const test::CliResult bad = RunCli(d, {"container", "train", "--opt-ml", root, "--algorithm", "factorization-machines"});
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(test::ReadFile(root + "/output/failure").find("factorization machines do not train on"),
            std::string::npos);
}

TEST(FmCli, ContainerTrainsZeroBasedLibsvmWhenTheContentTypeSaysSo) {
  test::TempDir d;
  const std::string root = d / "opt/ml";
  std::string rows;  // 0-based indices, as scikit-learn's dump_svmlight_file writes them
  for (int r = 0; r < 200; ++r) rows += std::to_string(r % 5) + " 0:1 " + std::to_string(1 + r % 7) + ":1\n";
  test::WriteFile(root + "/input/data/train/part0.svm", rows);
  test::WriteFile(root + "/input/config/hyperparameters.json",
                  R"({"feature_dim": "8", "num_factors": "2", "predictor_type": "regressor"})");
  test::WriteFile(root + "/input/config/inputdataconfig.json",
                  R"({"train": {"ContentType": "text/libsvm; zero_based=true"}})");
  const test::CliResult ok = RunCli(d, {"container", "train", "--opt-ml", root, "--algorithm", "factorization-machines"});
  EXPECT_OK(ok);
  // Read as 1-based (libsvm's convention, the default), index 0 is refused with the way out.
  test::WriteFile(root + "/input/config/inputdataconfig.json", R"({"train": {"ContentType": "text/libsvm"}})");
  const test::CliResult bad =
      RunCli(d, {"container", "train", "--opt-ml", root, "--algorithm", "factorization-machines"});
  EXPECT_NE(bad.code, 0);
  const std::string failure = test::ReadFile(root + "/output/failure");
  EXPECT_NE(failure.find("index 0"), std::string::npos) << failure;
}

}  // namespace
}  // namespace mlforge
