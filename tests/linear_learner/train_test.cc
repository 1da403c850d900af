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

}  // namespace
}  // namespace mlforge::ll_test
