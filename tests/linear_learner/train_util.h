// Helpers shared by the linear learner end-to-end tests: data in memory and on disk, training
// through the runner (container::TrainLocal) and float64 scoring of a saved model.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "algos/algorithms.h"
#include "algos/linear_learner/model.h"
#include "container/train.h"
#include "core/batch.h"
#include "io/batch_stream.h"
#include "io/row_writer.h"
#include "io/synth.h"
#include "tests/testutil.h"

namespace mlforge::ll_test {

namespace fs = std::filesystem;
using algos::linear_learner::Model;

// Rows in float64 (dense), with labels.
struct Data {
  int64_t n = 0, d = 0;
  std::vector<double> x;  // n x d
  std::vector<double> y;  // n
};

inline Data ToData(const HostBatch& b) {
  Data data;
  data.n = b.rows;
  data.d = b.cols;
  HostBatch dense = b;
  if (dense.layout == Layout::kCsr) Densify(dense);
  data.x.assign(dense.values.begin(), dense.values.end());
  data.y.assign(dense.labels.begin(), dense.labels.end());
  return data;
}

inline io::SynthOptions Linear(const std::string& task, int64_t rows, int64_t cols, uint64_t seed,
                               double noise = 0.1, int classes = 3) {
  io::SynthOptions o;
  o.kind = io::SynthKind::kLinear;
  o.task = task;
  o.rows = rows;
  o.cols = cols;
  o.seed = seed;
  o.noise = noise;
  o.classes = classes;
  return o;
}

inline HostBatch Generate(const io::SynthOptions& o) {
  io::SynthGenerator gen(o);
  HostBatch b;
  gen.Fill(0, o.rows, &b);
  return b;
}

// Rows [from, to) of a dense labelled batch.
inline HostBatch Rows(const HostBatch& b, int64_t from, int64_t to) {
  HostBatch out;
  out.rows = to - from;
  out.cols = b.cols;
  out.values.assign(b.values.begin() + from * b.cols, b.values.begin() + to * b.cols);
  out.labels.assign(b.labels.begin() + from, b.labels.begin() + to);
  return out;
}

inline void Write(const HostBatch& b, const std::string& path) {
  auto w = io::MakeRowWriter(path, io::WriterOptions{});
  w->Write(b);
  w->Close();
}

// Every row of a file (any format the stream reads), in one batch.
inline HostBatch ReadAll(const std::string& path) {
  io::ChannelSource src;
  src.paths = {path};
  io::StreamOptions so;
  so.batch_size = 1 << 20;
  io::BatchStream stream(src, so);
  HostBatch all, b;
  bool first = true;
  while (stream.Next(&b)) {
    if (first) {
      all = b;
      first = false;
      continue;
    }
    all.values.insert(all.values.end(), b.values.begin(), b.values.end());
    all.labels.insert(all.labels.end(), b.labels.begin(), b.labels.end());
    all.rows += b.rows;
  }
  return all;
}

struct RunResult {
  int rc = -1;
  std::string failure;
  Model model;
};

// Trains through the runner. channels: "train" (required), "validation", "test" -> paths.
inline RunResult Train(const std::map<std::string, std::vector<std::string>>& channels,
                       const std::string& model_dir, std::vector<std::string> hps, int threads = 2) {
  container::LocalTrainArgs args;
  args.algorithm = "linear-learner";
  args.channels = channels;
  args.hyperparameters = std::move(hps);
  args.model_dir = model_dir;
  const test::LocalTrainRun run = test::TrainLocalForTests(std::move(args), threads);
  RunResult r{run.rc, run.failure, {}};
  if (r.rc == 0) r.model = algos::linear_learner::LoadModel(model_dir);
  return r;
}

// Raw scores of a saved model (k per row), float64.
inline std::vector<double> Scores(const Model& m, const Data& data) {
  std::vector<double> s(static_cast<size_t>(data.n * m.outputs));
  for (int64_t i = 0; i < data.n; ++i) {
    for (int64_t c = 0; c < m.outputs; ++c) {
      double z = m.bias[c];
      for (int64_t j = 0; j < data.d; ++j) z += data.x[i * data.d + j] * m.weights[j * m.outputs + c];
      s[i * m.outputs + c] = z;
    }
  }
  return s;
}

inline double Mse(const Model& m, const Data& data) {
  const std::vector<double> s = Scores(m, data);
  double e = 0;
  for (int64_t i = 0; i < data.n; ++i) e += (s[i] - data.y[i]) * (s[i] - data.y[i]);
  return e / data.n;
}

// Accuracy of a binary model (label = sigmoid(score) > threshold) or multiclass (argmax).
inline double Accuracy(const Model& m, const Data& data) {
  const std::vector<double> s = Scores(m, data);
  int64_t ok = 0;
  for (int64_t i = 0; i < data.n; ++i) {
    int64_t pred;
    if (m.outputs == 1) {
      const double p = m.loss_type == "hinge_loss" ? s[i] : 1 / (1 + std::exp(-s[i]));
      pred = p > m.threshold ? 1 : 0;
    } else {
      pred = 0;
      for (int64_t c = 1; c < m.outputs; ++c) {
        if (s[i * m.outputs + c] > s[i * m.outputs + pred]) pred = c;
      }
    }
    ok += pred == static_cast<int64_t>(data.y[i]);
  }
  return static_cast<double>(ok) / data.n;
}

// Ordinary least squares with an intercept, float64 normal equations (Gaussian elimination with
// partial pivoting). Returns d weights followed by the intercept.
inline std::vector<double> LeastSquares(const Data& data, double ridge = 0.0) {
  const int64_t p = data.d + 1;
  std::vector<double> a(p * p, 0.0), rhs(p, 0.0);
  for (int64_t i = 0; i < data.n; ++i) {
    for (int64_t r = 0; r < p; ++r) {
      const double xr = r < data.d ? data.x[i * data.d + r] : 1.0;
      rhs[r] += xr * data.y[i];
      for (int64_t c = 0; c < p; ++c) a[r * p + c] += xr * (c < data.d ? data.x[i * data.d + c] : 1.0);
    }
  }
  for (int64_t r = 0; r < data.d; ++r) a[r * p + r] += ridge;
  for (int64_t col = 0; col < p; ++col) {
    int64_t piv = col;
    for (int64_t r = col + 1; r < p; ++r) {
      if (std::fabs(a[r * p + col]) > std::fabs(a[piv * p + col])) piv = r;
    }
    for (int64_t c = 0; c < p; ++c) std::swap(a[col * p + c], a[piv * p + c]);
    std::swap(rhs[col], rhs[piv]);
    for (int64_t r = 0; r < p; ++r) {
      if (r == col) continue;
      const double f = a[r * p + col] / a[col * p + col];
      for (int64_t c = col; c < p; ++c) a[r * p + c] -= f * a[col * p + c];
      rhs[r] -= f * rhs[col];
    }
  }
  std::vector<double> out(p);
  for (int64_t r = 0; r < p; ++r) out[r] = rhs[r] / a[r * p + r];
  return out;
}

}  // namespace mlforge::ll_test
