// Linear learner training end to end through the runner (container::TrainLocal), against float64
// references computed here:
//  - the streaming mini-batch loop equals a float64 replica of it (scaler, sgd / adam, bias_lr_mult,
//    selection of the best epoch) for squared, logistic and softmax losses;
//  - known weights are recovered (regression vs float64 least squares; binary and multiclass vs the
//    generating weights), with every optimizer and every regression loss (quantile_loss finds the
//    noise quantile);
//  - normalisation is folded into the saved weights: the model predicts on raw features whose
//    scales differ by 10^6;
//  - the calibrated threshold is the best one for the criterion on the validation data;
//  - wd equals float64 ridge; l1 zeroes irrelevant features; balanced positive weights;
//  - the model does not depend on how the data is split into files or on the format;
//  - the test channel's metrics are those of the saved model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "algos/linear_learner/metrics.h"
#include "tests/linear_learner/train_util.h"

namespace mlforge::ll_test {
namespace {

// ---------------------------------------------------------------------------------------------
// A float64 replica of the training loop for one model (num_models=1), no schedule, no
// regularisation, weights starting at 0: the scaler from every row, mini-batches of consecutive
// rows, sgd or adam on the mean gradient, bias step bias_lr_mult x lr, and after each epoch the
// raw model's objective over every row; the best epoch's raw model is returned.
struct RefOptions {
  std::string loss;  // "squared", "logistic", "softmax"
  bool adam = false;
  double lr = 0.05;
  double bias_lr_mult = 10;
  int64_t batch = 500;
  int epochs = 4;
  int64_t k = 1;
};

struct RefModel {
  std::vector<double> w;  // d x k
  std::vector<double> b;  // k
  int epoch = -1;
};

RefModel Reference(const Data& data, const RefOptions& o) {
  const int64_t n = data.n, d = data.d, k = o.k;
  const bool regression = o.loss == "squared";
  std::vector<double> mu(d, 0.0), sd(d, 0.0);
  double my = 0, sy = 1;
  for (int64_t j = 0; j < d; ++j) {
    double s = 0, q = 0;
    for (int64_t i = 0; i < n; ++i) s += data.x[i * d + j];
    mu[j] = s / n;
    for (int64_t i = 0; i < n; ++i) q += std::pow(data.x[i * d + j] - mu[j], 2);
    sd[j] = std::sqrt(q / n);
  }
  if (regression) {
    double s = 0, q = 0;
    for (double y : data.y) s += y;
    my = s / n;
    for (double y : data.y) q += (y - my) * (y - my);
    sy = std::sqrt(q / n);
  }
  std::vector<double> z(n * d), yn(n);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) z[i * d + j] = (data.x[i * d + j] - mu[j]) / sd[j];
    yn[i] = regression ? (data.y[i] - my) / sy : data.y[i];
  }
  std::vector<double> w(d * k, 0.0), b(k, 0.0), m1(d * k + k, 0.0), m2(d * k + k, 0.0);
  RefModel best;
  double best_obj = INFINITY;
  int64_t t = 0;
  auto derivs = [&](const double* s, double y, double* g) {
    if (o.loss == "squared") {
      g[0] = s[0] - y;
    } else if (o.loss == "logistic") {
      g[0] = 1 / (1 + std::exp(-s[0])) - y;
    } else {
      double mx = *std::max_element(s, s + k), zsum = 0;
      for (int64_t c = 0; c < k; ++c) zsum += std::exp(s[c] - mx);
      for (int64_t c = 0; c < k; ++c)
        g[c] = std::exp(s[c] - mx) / zsum - (c == static_cast<int64_t>(y) ? 1 : 0);
    }
  };
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    for (int64_t start = 0; start < n; start += o.batch) {
      const int64_t nb = std::min(o.batch, n - start);
      std::vector<double> gw(d * k, 0.0), gb(k, 0.0), s(k), g(k);
      for (int64_t i = start; i < start + nb; ++i) {
        for (int64_t c = 0; c < k; ++c) {
          s[c] = b[c];
          for (int64_t j = 0; j < d; ++j) s[c] += z[i * d + j] * w[j * k + c];
        }
        derivs(s.data(), yn[i], g.data());
        for (int64_t c = 0; c < k; ++c) {
          gb[c] += g[c] / nb;
          for (int64_t j = 0; j < d; ++j) gw[j * k + c] += g[c] * z[i * d + j] / nb;
        }
      }
      ++t;
      auto step = [&](double& p, double grad, double lr, size_t slot) {
        if (!o.adam) {
          p -= lr * grad;
          return;
        }
        m1[slot] = 0.9 * m1[slot] + 0.1 * grad;
        m2[slot] = 0.999 * m2[slot] + 0.001 * grad * grad;
        const double a = lr * std::sqrt(1 - std::pow(0.999, t)) / (1 - std::pow(0.9, t));
        p -= a * m1[slot] / (std::sqrt(m2[slot]) + 1e-8);
      };
      for (int64_t p = 0; p < d * k; ++p) step(w[p], gw[p], o.lr, p);
      for (int64_t c = 0; c < k; ++c) step(b[c], gb[c], o.lr * o.bias_lr_mult, d * k + c);
    }
    // The raw model and its objective over every row.
    RefModel raw;
    raw.w.resize(d * k);
    raw.b.resize(k);
    for (int64_t c = 0; c < k; ++c) {
      double shift = 0;
      for (int64_t j = 0; j < d; ++j) {
        raw.w[j * k + c] = sy * w[j * k + c] / sd[j];
        shift += mu[j] * raw.w[j * k + c];
      }
      raw.b[c] = sy * b[c] + my - shift;
    }
    double obj = 0;
    std::vector<double> s(k);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t c = 0; c < k; ++c) {
        s[c] = raw.b[c];
        for (int64_t j = 0; j < d; ++j) s[c] += data.x[i * d + j] * raw.w[j * k + c];
      }
      if (o.loss == "squared") {
        obj += std::pow(s[0] - data.y[i], 2);
      } else if (o.loss == "logistic") {
        obj += std::log1p(std::exp(-std::fabs(s[0]))) + std::max(s[0], 0.0) - data.y[i] * s[0];
      } else {
        const double mx = *std::max_element(s.begin(), s.end());
        double zsum = 0;
        for (double v : s) zsum += std::exp(v - mx);
        obj += mx + std::log(zsum) - s[static_cast<size_t>(data.y[i])];
      }
    }
    if (obj < best_obj) {
      best_obj = obj;
      best = raw;
      best.epoch = epoch;
    }
  }
  return best;
}

std::vector<std::string> ReplicaHps(const std::string& predictor, const RefOptions& o) {
  return {"predictor_type=" + predictor,
          "num_models=1",
          std::string("optimizer=") + (o.adam ? "adam" : "sgd"),
          "learning_rate=" + std::to_string(o.lr),
          "momentum=0",
          "wd=0",
          "l1=0",
          "use_lr_scheduler=false",
          "init_method=normal",
          "init_sigma=1e-12",
          "mini_batch_size=" + std::to_string(o.batch),
          "epochs=" + std::to_string(o.epochs),
          "early_stopping_patience=100",
          "binary_classifier_model_selection_criteria=loss_function"};
}

void ExpectModelNear(const Model& m, const RefModel& ref, double tol) {
  ASSERT_EQ(m.weights.size(), ref.w.size());
  for (size_t p = 0; p < ref.w.size(); ++p) {
    EXPECT_NEAR(m.weights[p], ref.w[p], tol * std::max(1.0, std::fabs(ref.w[p]))) << "weight " << p;
  }
  for (size_t c = 0; c < ref.b.size(); ++c) {
    EXPECT_NEAR(m.bias[c], ref.b[c], tol * std::max(1.0, std::fabs(ref.b[c]))) << "bias " << c;
  }
}

class LinearLearnerTrain : public ::testing::Test {
 protected:
  test::TempDir dir_;
};

TEST_F(LinearLearnerTrain, StreamingLoopEqualsFloat64ReplicaRegressionSgd) {
  // Features with means and spreads far from 0 / 1 so the scaler matters; 2,000 rows in
  // mini-batches of 300 (the last one short) over two files.
  HostBatch b = Generate(Linear("regression", 2000, 5, 11));
  for (int64_t i = 0; i < b.rows; ++i) {
    for (int64_t j = 0; j < 5; ++j) b.values[i * 5 + j] = b.values[i * 5 + j] * (j + 1) + 2.0f * j;
    b.labels[i] = 3 * b.labels[i] + 7;
  }
  fs::create_directories(dir_ / "split");
  Write(Rows(b, 0, 1100), dir_ / "split/a.pbr");
  Write(Rows(b, 1100, 2000), dir_ / "split/b.pbr");
  RefOptions o;
  o.loss = "squared";
  o.lr = 0.05;
  o.batch = 300;
  o.epochs = 4;
  RunResult r = Train({{"train", {dir_ / "split"}}}, dir_ / "m", ReplicaHps("regressor", o));
  ASSERT_EQ(r.rc, 0) << r.failure;
  const RefModel ref = Reference(ToData(b), o);
  EXPECT_EQ(ref.epoch, 3);
  ExpectModelNear(r.model, ref, 2e-5);
}

TEST_F(LinearLearnerTrain, StreamingLoopEqualsFloat64ReplicaLogisticAdam) {
  const HostBatch b = Generate(Linear("binary", 1500, 6, 12, 0.5));
  Write(b, dir_ / "bin.pbr");
  RefOptions o;
  o.loss = "logistic";
  o.adam = true;
  o.lr = 0.01;
  o.batch = 200;
  o.epochs = 3;
  RunResult r = Train({{"train", {dir_ / "bin.pbr"}}}, dir_ / "m", ReplicaHps("binary_classifier", o));
  ASSERT_EQ(r.rc, 0) << r.failure;
  ExpectModelNear(r.model, Reference(ToData(b), o), 2e-4);
  EXPECT_EQ(r.model.threshold, 0.5);  // loss_function keeps the default threshold
}

TEST_F(LinearLearnerTrain, StreamingLoopEqualsFloat64ReplicaSoftmaxSgd) {
  const HostBatch b = Generate(Linear("multiclass", 1200, 4, 13, 0.3, 4));
  Write(b, dir_ / "mc.pbr");
  RefOptions o;
  o.loss = "softmax";
  o.lr = 0.1;
  o.batch = 250;
  o.epochs = 3;
  o.k = 4;
  auto hps = ReplicaHps("multiclass_classifier", o);
  hps.push_back("num_classes=4");
  RunResult r = Train({{"train", {dir_ / "mc.pbr"}}}, dir_ / "m", hps);
  ASSERT_EQ(r.rc, 0) << r.failure;
  ExpectModelNear(r.model, Reference(ToData(b), o), 2e-5);
}

// ---------------------------------------------------------------------------------------------
// Recovery with SageMaker's defaults (32 parallel models, adam, 15 epochs, mini-batches of 1000).

TEST_F(LinearLearnerTrain, RegressorRecoversLeastSquaresWithDefaults) {
  const HostBatch b = Generate(Linear("regression", 20000, 8, 21));
  Write(b, dir_ / "reg.pbr");
  RunResult r = Train({{"train", {dir_ / "reg.pbr"}}}, dir_ / "m", {"predictor_type=regressor"});
  ASSERT_EQ(r.rc, 0) << r.failure;
  const Data data = ToData(b);
  const std::vector<double> ols = LeastSquares(data);
  for (int64_t j = 0; j < 8; ++j) EXPECT_NEAR(r.model.weights[j], ols[j], 3e-3) << j;
  EXPECT_NEAR(r.model.bias[0], ols[8], 3e-3);
  // The noise has variance 0.01: the fit is as good as least squares to 1%.
  Model ols_model = r.model;
  for (int64_t j = 0; j < 8; ++j) ols_model.weights[j] = static_cast<float>(ols[j]);
  ols_model.bias[0] = static_cast<float>(ols[8]);
  EXPECT_LT(Mse(r.model, data), 1.01 * Mse(ols_model, data));
  EXPECT_NEAR(r.model.metrics["train:mse"], Mse(r.model, data), 1e-6);
}

TEST_F(LinearLearnerTrain, BinaryAndMulticlassRecoverTheGeneratingDirection) {
  io::SynthOptions bo = Linear("binary", 20000, 10, 22, 0.2);
  const HostBatch b = Generate(bo);
  Write(b, dir_ / "bin.pbr");
  RunResult r = Train({{"train", {dir_ / "bin.pbr"}}}, dir_ / "bin", {"predictor_type=binary_classifier"});
  ASSERT_EQ(r.rc, 0) << r.failure;
  const auto truth = io::SynthGenerator(bo).Truth();
  std::vector<double> wt = truth["weights"].get<std::vector<double>>();
  double dot = 0, na = 0, nb = 0;
  for (int64_t j = 0; j < 10; ++j) {
    dot += wt[j] * r.model.weights[j];
    na += wt[j] * wt[j];
    nb += static_cast<double>(r.model.weights[j]) * r.model.weights[j];
  }
  EXPECT_GT(dot / std::sqrt(na * nb), 0.995);
  // The generating rule (x.w + b > 0) classifies the noisy labels about as well as anything can.
  Model truth_model = r.model;
  for (int64_t j = 0; j < 10; ++j) truth_model.weights[j] = static_cast<float>(wt[j]);
  truth_model.bias[0] = truth["bias"].get<float>();
  truth_model.threshold = 0.5;
  const Data data = ToData(b);
  EXPECT_GT(Accuracy(r.model, data), Accuracy(truth_model, data) - 0.005);

  io::SynthOptions mo = Linear("multiclass", 20000, 10, 23, 0.2, 5);
  const HostBatch mb = Generate(mo);
  Write(mb, dir_ / "mc.pbr");
  r = Train({{"train", {dir_ / "mc.pbr"}}}, dir_ / "mc",
            {"predictor_type=multiclass_classifier", "num_classes=5"});
  ASSERT_EQ(r.rc, 0) << r.failure;
  ASSERT_EQ(r.model.outputs, 5);
  const auto mtruth = io::SynthGenerator(mo).Truth();
  Model mtruth_model = r.model;
  for (int c = 0; c < 5; ++c) {
    for (int64_t j = 0; j < 10; ++j) mtruth_model.weights[j * 5 + c] = mtruth["weights"][c][j].get<float>();
    mtruth_model.bias[c] = mtruth["bias"][c].get<float>();
  }
  const Data mdata = ToData(mb);
  EXPECT_GT(Accuracy(r.model, mdata), Accuracy(mtruth_model, mdata) - 0.01);
  EXPECT_NEAR(r.model.metrics["train:multiclass_accuracy"], Accuracy(r.model, mdata), 1e-9);
}

TEST_F(LinearLearnerTrain, EveryOptimizerFits) {
  const HostBatch b = Generate(Linear("regression", 10000, 6, 24));
  Write(b, dir_ / "reg.pbr");
  const Data data = ToData(b);
  const std::vector<double> ols = LeastSquares(data);
  double ols_mse = 0;
  for (int64_t i = 0; i < data.n; ++i) {
    double s = ols[6];
    for (int64_t j = 0; j < 6; ++j) s += ols[j] * data.x[i * 6 + j];
    ols_mse += (s - data.y[i]) * (s - data.y[i]) / data.n;
  }
  // One model per optimizer, with a learning rate suited to it that the scheduler decays by 0.8
  // every 10 steps (the defaults are tuned for 32 models spread around them).
  for (const std::string opt : {"sgd", "sgd+momentum", "adam", "rmsprop"}) {
    SCOPED_TRACE(opt);
    const bool momentum = opt == "sgd+momentum";
    RunResult r = Train({{"train", {dir_ / "reg.pbr"}}}, dir_ / ("m_" + opt),
                        {"predictor_type=regressor", "optimizer=" + opt.substr(0, opt.find('+')),
                         std::string("momentum=") + (momentum ? "0.9" : "0"),
                         std::string("learning_rate=") + (opt == "sgd" ? "0.3"
                                                          : momentum   ? "0.01"
                                                                       : "0.05"),
                         "lr_scheduler_step=10", "lr_scheduler_factor=0.8", "bias_lr_mult=1", "num_models=1",
                         "epochs=20", "early_stopping_patience=100"});
    {
      ASSERT_EQ(r.rc, 0) << r.failure;
      // Within 5% of least squares (noise variance 0.01; the signal's variance is about 1).
      EXPECT_LT(Mse(r.model, data), 1.05 * ols_mse);
    }
  }
}

TEST_F(LinearLearnerTrain, EveryRegressionLossFindsItsTarget) {
  // Gaussian noise, sd 0.1: the mean, the median and the centre of an eps-insensitive tube all sit
  // on the generating line; the 0.9-quantile sits 1.2816 sd above it.
  io::SynthOptions o = Linear("regression", 20000, 4, 25);
  const HostBatch b = Generate(o);
  Write(b, dir_ / "reg.pbr");
  const auto truth = io::SynthGenerator(o).Truth();
  const std::vector<double> wt = truth["weights"].get<std::vector<double>>();
  const double bt = truth["bias"].get<double>();
  struct Case {
    std::string loss;
    std::vector<std::string> extra;
    double bias_shift;
  };
  const std::vector<Case> cases = {{"squared_loss", {}, 0},
                                   {"absolute_loss", {}, 0},
                                   {"huber_loss", {"huber_delta=0.05"}, 0},
                                   {"eps_insensitive_squared_loss", {"loss_insensitivity=0.05"}, 0},
                                   {"eps_insensitive_absolute_loss", {"loss_insensitivity=0.05"}, 0},
                                   {"quantile_loss", {"quantile=0.9"}, 0.12816},
                                   {"quantile_loss", {"quantile=0.2"}, -0.08416}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.loss + (c.extra.empty() ? "" : " " + c.extra[0]));
    std::vector<std::string> hps = {"predictor_type=regressor", "loss=" + c.loss, "epochs=10"};
    hps.insert(hps.end(), c.extra.begin(), c.extra.end());
    RunResult r = Train({{"train", {dir_ / "reg.pbr"}}}, dir_ / "m", hps);
    ASSERT_EQ(r.rc, 0) << r.failure;
    for (int64_t j = 0; j < 4; ++j) EXPECT_NEAR(r.model.weights[j], wt[j], 0.01) << j;
    EXPECT_NEAR(r.model.bias[0], bt + c.bias_shift, 0.01);
    EXPECT_EQ(r.model.loss_type, c.loss);
  }
}

TEST_F(LinearLearnerTrain, NormalisationIsFoldedIntoTheSavedWeights) {
  // Feature scales from 1e-3 to 1e3 with offsets, and a label in the thousands: the saved model
  // predicts on these raw values.
  io::SynthOptions o = Linear("regression", 10000, 4, 26);
  HostBatch b = Generate(o);
  const double scale[] = {1e-3, 1.0, 1e3, 10.0}, offset[] = {0.5, -3.0, 2000.0, 50.0};
  for (int64_t i = 0; i < b.rows; ++i) {
    for (int64_t j = 0; j < 4; ++j)
      b.values[i * 4 + j] = static_cast<float>(b.values[i * 4 + j] * scale[j] + offset[j]);
    b.labels[i] = static_cast<float>(1000.0 * b.labels[i] + 5000.0);
  }
  Write(b, dir_ / "raw.pbr");
  RunResult r = Train({{"train", {dir_ / "raw.pbr"}}}, dir_ / "m", {"predictor_type=regressor"});
  ASSERT_EQ(r.rc, 0) << r.failure;
  const auto truth = io::SynthGenerator(o).Truth();
  // At the features' centre (offset) the model predicts the generating bias, on the label scale.
  double at_centre = r.model.bias[0];
  for (int64_t j = 0; j < 4; ++j) {
    const double w = 1000.0 * truth["weights"][j].get<double>() / scale[j];
    EXPECT_NEAR(r.model.weights[j], w, 0.01 * std::fabs(1000.0 / scale[j])) << j;
    at_centre += static_cast<double>(r.model.weights[j]) * offset[j];
  }
  EXPECT_NEAR(at_centre, 1000.0 * truth["bias"].get<double>() + 5000.0, 10.0);
  // Residual sd 1000 x 0.1 = 100: mse ~ 1e4 on the raw label scale.
  EXPECT_LT(Mse(r.model, ToData(b)), 1.03e4);
}

// ---------------------------------------------------------------------------------------------
// Binary: calibration, selection criteria, positive weights.

// The best value of `criterion` over every threshold of the saved model's scores on `data`.
double BestOverThresholds(const Model& m, const Data& data, algos::linear_learner::Config cfg) {
  std::vector<algos::linear_learner::ScoredRow> rows;
  const std::vector<double> s = Scores(m, data);
  for (int64_t i = 0; i < data.n; ++i) {
    rows.push_back({static_cast<float>(1 / (1 + std::exp(-s[i]))), static_cast<float>(data.y[i]), 1.0f});
  }
  double best = -1;
  for (const auto& t : rows) {
    double tp = 0, fp = 0, fn = 0, tn = 0;
    for (const auto& r : rows)
      (r.score > t.score ? (r.label > 0.5 ? tp : fp) : (r.label > 0.5 ? fn : tn)) += 1;
    const double p = tp + fp > 0 ? tp / (tp + fp) : 0, rc = tp / (tp + fn);
    double v = -1;
    switch (cfg.selection_criterion) {
      case algos::linear_learner::SelectionCriterion::kAccuracy:
        v = (tp + tn) / data.n;
        break;
      case algos::linear_learner::SelectionCriterion::kFBeta:
        v = p + rc > 0 ? 2 * p * rc / (p + rc) : 0;
        break;
      case algos::linear_learner::SelectionCriterion::kPrecisionAtTargetRecall:
        if (rc >= cfg.target_recall) v = p;
        break;
      default:
        break;
    }
    best = std::max(best, v);
  }
  return best;
}

TEST_F(LinearLearnerTrain, CalibratedThresholdIsTheBestForTheCriterion) {
  // Imbalanced, noisy labels: the best thresholds are far from 0.5 and differ by criterion.
  HostBatch b = Generate(Linear("binary", 6000, 5, 27, 1.0));
  for (int64_t i = 0; i < b.rows; ++i)
    b.labels[i] = b.values[i * 5] + b.values[i * 5 + 1] > 1.2f ? 1.0f : 0.0f;
  for (int64_t i = 0; i < b.rows; i += 7) b.labels[i] = 1.0f - b.labels[i];  // label noise
  Write(Rows(b, 0, 4000), dir_ / "train.pbr");
  Write(Rows(b, 4000, 6000), dir_ / "val.pbr");
  const Data val = ToData(Rows(b, 4000, 6000));
  algos::linear_learner::Config cfg;
  struct Case {
    std::string name;
    algos::linear_learner::SelectionCriterion crit;
    std::string metric;
  };
  for (const Case& c :
       {Case{"accuracy", algos::linear_learner::SelectionCriterion::kAccuracy,
             "validation:binary_classification_accuracy"},
        Case{"f_beta", algos::linear_learner::SelectionCriterion::kFBeta, "validation:binary_f_beta"},
        Case{"precision_at_target_recall",
             algos::linear_learner::SelectionCriterion::kPrecisionAtTargetRecall, "validation:precision"}}) {
    SCOPED_TRACE(c.name);
    RunResult r =
        Train({{"train", {dir_ / "train.pbr"}}, {"validation", {dir_ / "val.pbr"}}}, dir_ / c.name,
              {"predictor_type=binary_classifier", "binary_classifier_model_selection_criteria=" + c.name,
               "target_recall=0.9", "epochs=5"});
    ASSERT_EQ(r.rc, 0) << r.failure;
    cfg.selection_criterion = c.crit;
    cfg.target_recall = 0.9;
    const double best = BestOverThresholds(r.model, val, cfg);
    EXPECT_NEAR(r.model.metrics[c.metric], best, 1e-9);
    if (c.name == "precision_at_target_recall") {
      EXPECT_GE(r.model.metrics["validation:recall"], 0.9);
    }
    // The saved threshold is the one the metrics were measured with.
    EXPECT_EQ(r.model.metrics_params["threshold"].get<double>(), r.model.threshold);
  }
}

TEST_F(LinearLearnerTrain, BalancedPositiveWeightRaisesRecallOnRarePositives) {
  HostBatch b = Generate(Linear("binary", 8000, 5, 28, 1.5));
  for (int64_t i = 0; i < b.rows; ++i)
    b.labels[i] = b.values[i * 5] + 0.3f * b.values[i * 5 + 2] > 1.5f ? 1.0f : 0.0f;
  Write(b, dir_ / "rare.pbr");
  // loss_function keeps the threshold at 0.5, so the weighting shows in recall directly.
  const std::vector<std::string> base = {"predictor_type=binary_classifier", "num_models=1", "epochs=5",
                                         "binary_classifier_model_selection_criteria=loss_function"};
  auto plain_hps = base;
  RunResult plain = Train({{"train", {dir_ / "rare.pbr"}}}, dir_ / "plain", plain_hps);
  auto balanced_hps = base;
  balanced_hps.push_back("positive_example_weight_mult=balanced");
  RunResult balanced = Train({{"train", {dir_ / "rare.pbr"}}}, dir_ / "balanced", balanced_hps);
  ASSERT_EQ(plain.rc, 0) << plain.failure;
  ASSERT_EQ(balanced.rc, 0) << balanced.failure;
  double pos = 0;
  for (float y : b.labels) pos += y;
  const double ratio = (b.rows - pos) / pos;
  EXPECT_GT(ratio, 5.0);
  EXPECT_NEAR(balanced.model.metrics_params["positive_example_weight_mult"].get<double>(), ratio,
              1e-9 * ratio);
  EXPECT_EQ(plain.model.metrics_params["positive_example_weight_mult"].get<double>(), 1.0);
  EXPECT_GT(balanced.model.metrics["train:recall"], plain.model.metrics["train:recall"] + 0.1);
}

// ---------------------------------------------------------------------------------------------
// Regularisation.

TEST_F(LinearLearnerTrain, WdEqualsFloat64Ridge) {
  // Full-batch gradient descent to convergence solves mean(r^2)/2 + wd/2 |w|^2 in normalised
  // space (bias not regularised): ridge on standardised features.
  HostBatch b = Generate(Linear("regression", 2000, 4, 29, 0.5));
  for (int64_t i = 0; i < b.rows; ++i) b.values[i * 4 + 1] *= 4.0f;
  Write(b, dir_ / "reg.pbr");
  const double wd = 0.2;
  RunResult r = Train({{"train", {dir_ / "reg.pbr"}}}, dir_ / "m",
                      {"predictor_type=regressor", "num_models=1", "optimizer=sgd", "learning_rate=0.3",
                       "use_lr_scheduler=false", "mini_batch_size=2000", "epochs=300", "wd=0.2",
                       "normalize_label=false", "early_stopping_patience=1000", "bias_lr_mult=1"});
  ASSERT_EQ(r.rc, 0) << r.failure;
  // Reference: standardise, ridge with penalty n * wd on the (centred) features, fold back.
  const Data data = ToData(b);
  Data z = data;
  std::vector<double> mu(4), sd(4);
  for (int64_t j = 0; j < 4; ++j) {
    double s = 0, q = 0;
    for (int64_t i = 0; i < data.n; ++i) s += data.x[i * 4 + j];
    mu[j] = s / data.n;
    for (int64_t i = 0; i < data.n; ++i) q += std::pow(data.x[i * 4 + j] - mu[j], 2);
    sd[j] = std::sqrt(q / data.n);
    for (int64_t i = 0; i < data.n; ++i) z.x[i * 4 + j] = (data.x[i * 4 + j] - mu[j]) / sd[j];
  }
  const std::vector<double> ridge = LeastSquares(z, data.n * wd);
  double bias = ridge[4];
  for (int64_t j = 0; j < 4; ++j) {
    EXPECT_NEAR(r.model.weights[j], ridge[j] / sd[j], 1e-4) << j;
    bias -= ridge[j] / sd[j] * mu[j];
  }
  EXPECT_NEAR(r.model.bias[0], bias, 1e-4);
  // And it is not the unregularised solution.
  const std::vector<double> ols = LeastSquares(data);
  EXPECT_GT(std::fabs(ols[0] - ridge[0] / sd[0]), 0.05);
}

TEST_F(LinearLearnerTrain, L1ZeroesIrrelevantFeatures) {
  // Only the first 3 of 12 features carry signal.
  HostBatch b = Generate(Linear("regression", 8000, 12, 30, 0.3));
  std::vector<double> w = {1.0, -0.5, 0.8};
  for (int64_t i = 0; i < b.rows; ++i) {
    double y = 0.2;
    for (int j = 0; j < 3; ++j) y += w[j] * b.values[i * 12 + j];
    b.labels[i] = static_cast<float>(y + 0.3 * std::sin(37.0 * i));
  }
  Write(b, dir_ / "sparse_truth.pbr");
  RunResult r = Train({{"train", {dir_ / "sparse_truth.pbr"}}}, dir_ / "m",
                      {"predictor_type=regressor", "num_models=1", "optimizer=sgd", "learning_rate=0.05",
                       "l1=0.02", "epochs=10"});
  ASSERT_EQ(r.rc, 0) << r.failure;
  for (int j = 0; j < 3; ++j) EXPECT_GT(std::fabs(r.model.weights[j]), 0.4) << j;
  for (int j = 3; j < 12; ++j) EXPECT_EQ(r.model.weights[j], 0.0f) << j;
}

// ---------------------------------------------------------------------------------------------
// Data handling.

TEST_F(LinearLearnerTrain, ModelDoesNotDependOnFilesOrFormat) {
  const HostBatch b = Generate(Linear("binary", 5000, 6, 31, 0.3));
  Write(b, dir_ / "all.pbr");
  fs::create_directories(dir_ / "split");
  Write(Rows(b, 0, 1234), dir_ / "split/part-0.pbr");
  Write(Rows(b, 1234, 5000), dir_ / "split/part-1.pbr");
  Write(b, dir_ / "all.csv");
  const std::vector<std::string> hps = {"predictor_type=binary_classifier", "num_models=4", "epochs=3",
                                        "mini_batch_size=700"};
  RunResult one = Train({{"train", {dir_ / "all.pbr"}}}, dir_ / "one", hps);
  RunResult split = Train({{"train", {dir_ / "split"}}}, dir_ / "split_model", hps);
  RunResult csv = Train({{"train", {dir_ / "all.csv"}}}, dir_ / "csv", hps);
  for (const RunResult* r : {&one, &split, &csv}) ASSERT_EQ(r->rc, 0) << r->failure;
  EXPECT_EQ(test::ReadFile(dir_ / "one/model_algo-1"), test::ReadFile(dir_ / "split_model/model_algo-1"));
  EXPECT_EQ(test::ReadFile(dir_ / "one/model_algo-1"), test::ReadFile(dir_ / "csv/model_algo-1"));
  // The seed drives the initial weights and the parallel models' settings: another seed, another model.
  auto seeded = hps;
  seeded.push_back("seed=7");
  RunResult other = Train({{"train", {dir_ / "all.pbr"}}}, dir_ / "seed7", seeded);
  ASSERT_EQ(other.rc, 0) << other.failure;
  EXPECT_NE(test::ReadFile(dir_ / "one/model_algo-1"), test::ReadFile(dir_ / "seed7/model_algo-1"));
}

TEST_F(LinearLearnerTrain, SparseInputTrainsWithoutShift) {
  // CSR rows (the fm generator's one-hot user/item pairs) with a binary label.
  io::SynthOptions o;
  o.kind = io::SynthKind::kFm;
  o.task = "binary";
  o.rows = 6000;
  o.users = 30;
  o.items = 20;
  o.cols = 50;
  o.seed = 32;
  io::WriteSynth(o, dir_ / "fm.pbr", io::WriterOptions{}, false);
  RunResult r =
      Train({{"train", {dir_ / "fm.pbr"}}}, dir_ / "m", {"predictor_type=binary_classifier", "epochs=5"});
  ASSERT_EQ(r.rc, 0) << r.failure;
  EXPECT_EQ(r.model.dim, 50);
  // User and item effects explain much of the label.
  EXPECT_GT(r.model.metrics["train:roc_auc_score"], 0.75);
}

TEST_F(LinearLearnerTrain, TestChannelMetricsAreThoseOfTheSavedModel) {
  const HostBatch b = Generate(Linear("binary", 6000, 5, 33, 0.5));
  Write(Rows(b, 0, 4000), dir_ / "train.pbr");
  Write(Rows(b, 4000, 6000), dir_ / "test.pbr");
  RunResult r = Train({{"train", {dir_ / "train.pbr"}}, {"test", {dir_ / "test.pbr"}}}, dir_ / "m",
                      {"predictor_type=binary_classifier", "epochs=10"});
  ASSERT_EQ(r.rc, 0) << r.failure;
  const Data test = ToData(Rows(b, 4000, 6000));
  // The generating rule's accuracy on these noisy labels is the benchmark.
  const auto truth = io::SynthGenerator(Linear("binary", 6000, 5, 33, 0.5)).Truth();
  Model truth_model = r.model;
  for (int64_t j = 0; j < 5; ++j) truth_model.weights[j] = truth["weights"][j].get<float>();
  truth_model.bias[0] = truth["bias"].get<float>();
  truth_model.threshold = 0.5;
  EXPECT_GT(r.model.metrics["test:binary_classification_accuracy"], Accuracy(truth_model, test) - 0.01);
  EXPECT_NEAR(r.model.metrics["test:binary_classification_accuracy"], Accuracy(r.model, test), 1e-9);
  double ll = 0;
  const std::vector<double> s = Scores(r.model, test);
  for (int64_t i = 0; i < test.n; ++i)
    ll += std::log1p(std::exp(-std::fabs(s[i]))) + std::max(s[i], 0.0) - test.y[i] * s[i];
  EXPECT_NEAR(r.model.metrics["test:objective_loss"], ll / test.n, 1e-5);
}

TEST_F(LinearLearnerTrain, MnistZeroVersusRestOnTheSharedDigits) {
  MLF_REQUIRE_SHARED_DATA();
  // The SDK-written recordIO of the first 2,000 MNIST test digits (pixels / 255): is it a zero?
  HostBatch all = ReadAll(test::SharedData("recordio/mnist_t10k_first2000_f32_labeled.pbr"));
  ASSERT_EQ(all.rows, 2000);
  ASSERT_EQ(all.cols, 784);
  for (float& y : all.labels) y = y == 0.0f ? 1.0f : 0.0f;
  Write(Rows(all, 0, 1200), dir_ / "train.pbr");
  Write(Rows(all, 1200, 1500), dir_ / "validation.pbr");
  Write(Rows(all, 1500, 2000), dir_ / "test.pbr");
  RunResult r = Train({{"train", {dir_ / "train.pbr"}},
                       {"validation", {dir_ / "validation.pbr"}},
                       {"test", {dir_ / "test.pbr"}}},
                      dir_ / "m", {"predictor_type=binary_classifier", "mini_batch_size=200", "epochs=10"});
  ASSERT_EQ(r.rc, 0) << r.failure;
  const Data test = ToData(Rows(all, 1500, 2000));
  const double acc = Accuracy(r.model, test);
  EXPECT_NEAR(r.model.metrics["test:binary_classification_accuracy"], acc, 1e-9);
  // 1,200 training rows; the full 10,000-image split reaches 0.98 (tests/linear_learner/sklearn_compare.py).
  EXPECT_GT(acc, 0.97);
}

TEST_F(LinearLearnerTrain, HingeLossCalibratesOnRawScores) {
  io::SynthOptions o = Linear("binary", 6000, 5, 34, 0.3);
  const HostBatch b = Generate(o);
  Write(b, dir_ / "bin.pbr");
  RunResult hinge = Train({{"train", {dir_ / "bin.pbr"}}}, dir_ / "hinge",
                          {"predictor_type=binary_classifier", "loss=hinge_loss", "epochs=8"});
  RunResult logistic = Train({{"train", {dir_ / "bin.pbr"}}}, dir_ / "logistic",
                             {"predictor_type=binary_classifier", "epochs=8"});
  ASSERT_EQ(hinge.rc, 0) << hinge.failure;
  ASSERT_EQ(logistic.rc, 0) << logistic.failure;
  EXPECT_EQ(hinge.model.loss_type, "hinge_loss");
  const Data data = ToData(b);
  // The saved threshold applies to raw scores (Predict does not squash hinge scores), and the
  // reported accuracy is the saved model's.
  EXPECT_NEAR(hinge.model.metrics["train:binary_classification_accuracy"], Accuracy(hinge.model, data), 1e-9);
  EXPECT_GT(Accuracy(hinge.model, data), Accuracy(logistic.model, data) - 0.01);
  EXPECT_EQ(hinge.model.metrics_params["margin"].get<double>(), 1.0);
}

TEST_F(LinearLearnerTrain, NoBiasModelsTheOriginAndAutoPositiveWeightIsRecorded) {
  // y = x.w exactly (no intercept, so the bias must stay 0 in the saved model).
  HostBatch b = Generate(Linear("regression", 5000, 4, 35));
  for (int64_t i = 0; i < b.rows; ++i) {
    b.labels[i] =
        0.5f * b.values[i * 4] - 0.25f * b.values[i * 4 + 3] + 0.01f * std::sin(static_cast<float>(i));
  }
  Write(b, dir_ / "origin.pbr");
  RunResult r = Train({{"train", {dir_ / "origin.pbr"}}}, dir_ / "nobias",
                      {"predictor_type=regressor", "use_bias=false", "epochs=10"});
  ASSERT_EQ(r.rc, 0) << r.failure;
  EXPECT_EQ(r.model.bias[0], 0.0f);
  EXPECT_NEAR(r.model.weights[0], 0.5, 0.01);
  EXPECT_NEAR(r.model.weights[3], -0.25, 0.01);

  HostBatch bin = Generate(Linear("binary", 4000, 4, 36, 0.5));
  Write(bin, dir_ / "bin.pbr");
  r = Train({{"train", {dir_ / "bin.pbr"}}}, dir_ / "auto",
            {"predictor_type=binary_classifier", "positive_example_weight_mult=auto", "epochs=3"});
  ASSERT_EQ(r.rc, 0) << r.failure;
  double pos = 0;
  for (float y : bin.labels) pos += y;
  const double balanced = (bin.rows - pos) / pos,
               chosen = r.model.metrics_params["positive_example_weight_mult"];
  // auto: the selected model's weight is one of 1, balanced, sqrt(balanced).
  EXPECT_TRUE(chosen == 1.0 || std::fabs(chosen - balanced) < 1e-9 ||
              std::fabs(chosen - std::sqrt(balanced)) < 1e-9)
      << chosen << " vs balanced " << balanced;
}

TEST_F(LinearLearnerTrain, BalancedClassWeightsAreRecordedAndHelpRareClasses) {
  // Class 2 is rare: keep 1 in 8 of its rows.
  HostBatch all = Generate(Linear("multiclass", 12000, 5, 37, 0.3, 3));
  HostBatch b;
  b.cols = 5;
  for (int64_t i = 0; i < all.rows; ++i) {
    if (all.labels[i] == 2.0f && i % 8 != 0) continue;
    b.values.insert(b.values.end(), all.values.begin() + i * 5, all.values.begin() + (i + 1) * 5);
    b.labels.push_back(all.labels[i]);
    ++b.rows;
  }
  Write(b, dir_ / "rare.pbr");
  const std::vector<std::string> base = {"predictor_type=multiclass_classifier", "num_classes=3", "epochs=5"};
  auto weighted_hps = base;
  weighted_hps.push_back("balance_multiclass_weights=true");
  RunResult plain = Train({{"train", {dir_ / "rare.pbr"}}}, dir_ / "plain", base);
  RunResult weighted = Train({{"train", {dir_ / "rare.pbr"}}}, dir_ / "weighted", weighted_hps);
  ASSERT_EQ(plain.rc, 0) << plain.failure;
  ASSERT_EQ(weighted.rc, 0) << weighted.failure;
  // class_weights = rows / (classes x class rows) over the scaler sample (the first 10,000 rows).
  std::vector<double> count(3, 0.0);
  for (int64_t i = 0; i < std::min<int64_t>(b.rows, 10000); ++i) count[static_cast<size_t>(b.labels[i])] += 1;
  const auto cw = weighted.model.metrics_params["class_weights"];
  ASSERT_TRUE(cw.is_array());
  ASSERT_EQ(cw.size(), 3u);
  const double n = std::min<int64_t>(b.rows, 10000);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(cw[c].get<double>(), n / (3 * count[c]), 1e-9) << c;
  EXPECT_TRUE(plain.model.metrics_params["class_weights"].is_null());
  // Macro recall (balanced accuracy) rises when the rare class weighs as much as the others.
  EXPECT_GT(weighted.model.metrics["train:multiclass_balanced_accuracy"],
            plain.model.metrics["train:multiclass_balanced_accuracy"]);
}

}  // namespace
}  // namespace mlforge::ll_test
