// Factorization machines: the CPU step against a float64 reference written here (forward values,
// gradients, finite differences, every optimizer step by step), the artifact against SageMaker's
// real MovieLens model and its logged test RMSE, exact top-k against brute force, every bad
// hyperparameter, and learning on synthetic data and on MovieLens ratings.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "algos/algorithms.h"
#include "algos/factorization_machines/factorization_machines.h"
#include "algos/factorization_machines/model.h"
#include "container/train.h"
#include "core/error.h"
#include "core/resources.h"
#include "io/archive.h"
#include "io/batch_stream.h"
#include "io/row_writer.h"
#include "io/synth.h"
#include "kernels/fm_step.h"
#include "tests/testutil.h"

namespace mlforge {
namespace {

namespace fm = algos::factorization_machines;
using kernels::FmParams;

// ---------------------------------------------------------------------------------------------
// Data and a float64 reference.

HostBatch RandomCsr(int64_t rows, int64_t d, int nnz_per_row, uint64_t seed, bool hot_feature = false) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> val(-1.5f, 1.5f);
  HostBatch b;
  b.layout = Layout::kCsr;
  b.rows = rows;
  b.cols = d;
  b.indptr.push_back(0);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<uint32_t> idx;
    if (hot_feature) idx.push_back(0);
    while (static_cast<int>(idx.size()) < nnz_per_row) {
      const uint32_t j = static_cast<uint32_t>(rng() % d);
      if (std::find(idx.begin(), idx.end(), j) == idx.end()) idx.push_back(j);
    }
    for (uint32_t j : idx) {
      b.indices.push_back(j);
      b.values.push_back(val(rng));
    }
    b.indptr.push_back(static_cast<int64_t>(b.values.size()));
    b.labels.push_back(static_cast<float>(rng() % 2));
  }
  return b;
}

HostBatch ToDense(const HostBatch& c) {
  HostBatch b;
  b.rows = c.rows;
  b.cols = c.cols;
  b.values.assign(static_cast<size_t>(c.rows * c.cols), 0.0f);
  for (int64_t r = 0; r < c.rows; ++r)
    for (int64_t e = c.indptr[r]; e < c.indptr[r + 1]; ++e) b.values[r * c.cols + c.indices[e]] = c.values[e];
  b.labels = c.labels;
  return b;
}

FmParams RandomParams(int64_t d, int64_t k, uint64_t seed, float scale = 0.3f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, scale);
  FmParams p;
  p.d = d;
  p.k = k;
  p.w0 = n(rng);
  for (int64_t i = 0; i < d; ++i) p.w.push_back(n(rng));
  for (int64_t i = 0; i < d * k; ++i) p.v.push_back(n(rng));
  return p;
}

// Parameters in float64 for the reference.
struct Ref {
  int64_t d = 0, k = 0;
  double w0 = 0;
  std::vector<double> w, v;
  explicit Ref(const FmParams& p) : d(p.d), k(p.k), w0(p.w0), w(p.w.begin(), p.w.end()), v(p.v.begin(), p.v.end()) {}
};

// The pairwise definition, sum_{i<j} <v_i, v_j> x_i x_j: independent of the O(nk) rewrite the
// kernel uses.
double RefForward(const Ref& p, const HostBatch& b, int64_t r) {
  double y = p.w0;
  for (int64_t e = b.indptr[r]; e < b.indptr[r + 1]; ++e) {
    y += p.w[b.indices[e]] * b.values[e];
    for (int64_t e2 = e + 1; e2 < b.indptr[r + 1]; ++e2) {
      double dot = 0;
      for (int64_t f = 0; f < p.k; ++f) dot += p.v[b.indices[e] * p.k + f] * p.v[b.indices[e2] * p.k + f];
      y += dot * b.values[e] * b.values[e2];
    }
  }
  return y;
}

double RefLoss(kernels::FmLoss loss, double yhat, double y) {
  if (loss == kernels::FmLoss::kSquared) return 0.5 * (yhat - y) * (yhat - y);
  return std::log1p(std::exp(yhat)) - y * yhat;
}

double RefBatchLoss(const Ref& p, const HostBatch& b, kernels::FmLoss loss) {
  double s = 0;
  for (int64_t r = 0; r < b.rows; ++r) s += RefLoss(loss, RefForward(p, b, r), b.labels[r]);
  return s;
}

// Full gradient (dense over features; zero for untouched ones) from the definition.
struct RefGrad {
  double w0 = 0;
  std::vector<double> w, v;
};
RefGrad RefGradient(const Ref& p, const HostBatch& b, kernels::FmLoss loss) {
  RefGrad g;
  g.w.assign(static_cast<size_t>(p.d), 0.0);
  g.v.assign(static_cast<size_t>(p.d * p.k), 0.0);
  for (int64_t r = 0; r < b.rows; ++r) {
    const double yhat = RefForward(p, b, r);
    const double dl = loss == kernels::FmLoss::kSquared ? yhat - b.labels[r] : 1.0 / (1.0 + std::exp(-yhat)) - b.labels[r];
    g.w0 += dl;
    for (int64_t e = b.indptr[r]; e < b.indptr[r + 1]; ++e) {
      const int64_t i = b.indices[e];
      g.w[i] += dl * b.values[e];
      for (int64_t f = 0; f < p.k; ++f) {
        double other = 0;  // sum over j != i of v_jf x_j
        for (int64_t e2 = b.indptr[r]; e2 < b.indptr[r + 1]; ++e2)
          if (e2 != e) other += p.v[b.indices[e2] * p.k + f] * b.values[e2];
        g.v[i * p.k + f] += dl * b.values[e] * other;
      }
    }
  }
  return g;
}

std::unique_ptr<Resources> CpuResources(int threads) {
  return std::make_unique<Resources>(DeviceRequest::kCpu, threads, 0, comm::MakeSingleProcess(), StopToken::Never(),
                                     false);
}

// ---------------------------------------------------------------------------------------------
// The step.

TEST(FmStep, ForwardMatchesPairwiseDefinitionDenseAndSparse) {
  const FmParams p = RandomParams(40, 5, 1);
  const HostBatch b = RandomCsr(200, 40, 7, 2);
  std::vector<float> out(200), dense_out(200);
  kernels::FmForwardCpu(p, b, out.data(), nullptr, 2);
  kernels::FmForwardCpu(p, ToDense(b), dense_out.data(), nullptr, 1);
  const Ref ref(p);
  for (int64_t r = 0; r < 200; ++r) {
    const double want = RefForward(ref, b, r);
    EXPECT_NEAR(out[r], want, 2e-5 * (1 + std::fabs(want))) << "row " << r;
    EXPECT_NEAR(dense_out[r], out[r], 1e-5 * (1 + std::fabs(want))) << "row " << r;
  }
}

TEST(FmStep, GradientMatchesDefinitionAndFiniteDifferences) {
  for (const auto loss : {kernels::FmLoss::kSquared, kernels::FmLoss::kLogistic}) {
    const FmParams p = RandomParams(30, 4, 3);
    HostBatch b = RandomCsr(50, 30, 5, 4, /*hot_feature=*/true);
    if (loss == kernels::FmLoss::kSquared)
      for (float& y : b.labels) y = y * 3 - 1;
    std::vector<int64_t> rows;
    std::vector<float> gw, gv;
    double g0 = 0;
    const kernels::FmBatchLoss l = kernels::FmGradientCpu(p, b, b.labels.data(), loss, &rows, &gw, &gv, &g0, 2);
    const Ref ref(p);
    EXPECT_NEAR(l.loss, RefBatchLoss(ref, b, loss), 1e-4 * (1 + l.loss));
    const RefGrad g = RefGradient(ref, b, loss);
    EXPECT_NEAR(g0, g.w0, 1e-4 * (1 + std::fabs(g.w0)));
    ASSERT_TRUE(std::is_sorted(rows.begin(), rows.end()));
    std::vector<bool> touched(30, false);
    for (size_t u = 0; u < rows.size(); ++u) {
      const int64_t i = rows[u];
      touched[i] = true;
      EXPECT_NEAR(gw[u], g.w[i], 1e-4 * (1 + std::fabs(g.w[i]))) << "feature " << i;
      for (int64_t f = 0; f < 4; ++f)
        EXPECT_NEAR(gv[u * 4 + f], g.v[i * 4 + f], 1e-4 * (1 + std::fabs(g.v[i * 4 + f]))) << i << "," << f;
    }
    for (int64_t i = 0; i < 30; ++i)
      if (!touched[i]) EXPECT_EQ(g.w[i], 0.0) << "a feature with a gradient was not reported: " << i;
    // Central finite differences of the float64 loss check the analytic formula itself.
    const double h = 1e-6;
    for (size_t u = 0; u < rows.size(); u += 3) {
      const int64_t i = rows[u];
      for (int64_t f = 0; f < 4; f += 3) {
        Ref plus = ref, minus = ref;
        plus.v[i * 4 + f] += h;
        minus.v[i * 4 + f] -= h;
        const double fd = (RefBatchLoss(plus, b, loss) - RefBatchLoss(minus, b, loss)) / (2 * h);
        EXPECT_NEAR(gv[u * 4 + f], fd, 1e-3 * (1 + std::fabs(fd))) << "d/dv " << i << "," << f;
      }
      Ref plus = ref, minus = ref;
      plus.w[i] += h;
      minus.w[i] -= h;
      const double fd = (RefBatchLoss(plus, b, loss) - RefBatchLoss(minus, b, loss)) / (2 * h);
      EXPECT_NEAR(gw[u], fd, 1e-3 * (1 + std::fabs(fd))) << "d/dw " << i;
    }
  }
}

// One optimizer step of the reference, in float64, from the definition in kernels/fm_step.h.
struct RefOpt {
  kernels::FmStepSpec spec;
  std::map<std::string, std::vector<double>> a, b;  // per group: first / second moment
  void Apply(const std::string& group, const kernels::FmGroupSpec& g, std::vector<double>& w, size_t i, double grad,
             double rescale, int64_t t) {
    auto& A = a[group];
    auto& B = b[group];
    if (A.size() < w.size()) A.resize(w.size(), 0.0), B.resize(w.size(), 0.0);
    auto clip = [&](double x) {
      return spec.clip_gradient > 0 ? std::clamp(x, -static_cast<double>(spec.clip_gradient),
                                                 static_cast<double>(spec.clip_gradient))
                                    : x;
    };
    switch (spec.optimizer) {
      case kernels::FmOptimizer::kSgd:
        w[i] = (1 - g.lr * static_cast<double>(g.wd)) * w[i] - g.lr * clip(rescale * grad);
        break;
      case kernels::FmOptimizer::kAdam: {
        const double G = clip(rescale * grad + g.wd * w[i]);
        A[i] = spec.beta1 * A[i] + (1 - spec.beta1) * G;
        B[i] = spec.beta2 * B[i] + (1 - spec.beta2) * G * G;
        const double lr_t = g.lr * std::sqrt(1 - std::pow(spec.beta2, t)) / (1 - std::pow(spec.beta1, t));
        w[i] -= lr_t * A[i] / (std::sqrt(B[i]) + spec.eps);
        break;
      }
      case kernels::FmOptimizer::kAdagrad: {
        const double G = clip(rescale * grad);
        A[i] += G * G;
        w[i] -= g.lr * (G / std::sqrt(A[i] + spec.eps) + g.wd * w[i]);
        break;
      }
    }
  }
  void Step(Ref& p, const HostBatch& b, int64_t t) {
    const RefGrad g = RefGradient(p, b, spec.loss);
    const double rescale = 1.0 / static_cast<double>(b.rows);
    std::vector<bool> touched(static_cast<size_t>(p.d), false);
    for (int64_t e = 0; e < b.indptr[b.rows]; ++e) touched[b.indices[e]] = true;
    std::vector<double> w0{p.w0};
    Apply("bias", spec.bias, w0, 0, g.w0, rescale, t);
    p.w0 = w0[0];
    for (int64_t i = 0; i < p.d; ++i) {
      if (!touched[i]) continue;  // lazy: untouched rows keep value and state
      Apply("linear", spec.linear, p.w, static_cast<size_t>(i), g.w[i], rescale, t);
      for (int64_t f = 0; f < p.k; ++f)
        Apply("factors", spec.factors, p.v, static_cast<size_t>(i * p.k + f), g.v[i * p.k + f], rescale, t);
    }
  }
};

TEST(FmStep, EveryOptimizerStepByStepMatchesFloat64Reference) {
  for (const auto opt : {kernels::FmOptimizer::kSgd, kernels::FmOptimizer::kAdam, kernels::FmOptimizer::kAdagrad}) {
    for (const float clip : {0.0f, 0.05f}) {
      SCOPED_TRACE(testing::Message() << "optimizer " << static_cast<int>(opt) << " clip " << clip);
      kernels::FmStepSpec spec;
      spec.optimizer = opt;
      spec.loss = kernels::FmLoss::kSquared;
      spec.bias = {0.05f, 0.01f};
      spec.linear = {0.02f, 0.1f};
      spec.factors = {0.03f, 0.2f};
      spec.clip_gradient = clip;
      spec.eps = opt == kernels::FmOptimizer::kAdagrad ? 1e-7f : 1e-8f;
      const FmParams p0 = RandomParams(25, 3, 5);
      auto res = CpuResources(2);
      kernels::FmStepper stepper(*res, p0, spec);
      RefOpt ref_opt{spec, {}, {}};
      Ref ref(p0);
      for (int64_t t = 1; t <= 6; ++t) {
        HostBatch b = RandomCsr(16, 25, 4, 100 + t);
        for (float& y : b.labels) y = y * 2 - 0.5f;
        const kernels::FmBatchLoss l = stepper.Step(b, b.labels.data());
        EXPECT_NEAR(l.loss, RefBatchLoss(ref, b, spec.loss), 1e-4 * (1 + l.loss)) << "loss before step " << t;
        ref_opt.Step(ref, b, t);
      }
      const FmParams got = stepper.Params();
      EXPECT_NEAR(got.w0, ref.w0, 1e-4);
      for (int64_t i = 0; i < 25; ++i) EXPECT_NEAR(got.w[i], ref.w[i], 1e-4) << "w " << i;
      for (int64_t i = 0; i < 25 * 3; ++i) EXPECT_NEAR(got.v[i], ref.v[i], 1e-4) << "v " << i;
    }
  }
}

TEST(FmStep, UntouchedRowsKeepTheirValuesAndTheResultIgnoresThreads) {
  kernels::FmStepSpec spec;  // adam with weight decay: a non-lazy update would shrink every row
  spec.linear.wd = 0.5f;
  spec.factors.wd = 0.5f;
  // Large enough for the step to use its threads (kernels/fm_step.cc WorthThreads).
  const FmParams p0 = RandomParams(20000, 8, 9);
  HostBatch b = RandomCsr(3000, 20000, 4, 10, true);
  std::vector<bool> touched(20000, false);
  for (uint32_t j : b.indices) touched[j] = true;
  auto r1 = CpuResources(1), r2 = CpuResources(2);
  kernels::FmStepper s1(*r1, p0, spec), s2(*r2, p0, spec);
  for (int t = 0; t < 3; ++t) {
    s1.Step(b, b.labels.data());
    s2.Step(b, b.labels.data());
  }
  const FmParams a = s1.Params(), c = s2.Params();
  EXPECT_EQ(a.w, c.w);
  EXPECT_EQ(a.v, c.v);
  EXPECT_EQ(a.w0, c.w0);
  int64_t untouched = 0;
  for (int64_t i = 0; i < 20000; ++i) {
    if (touched[i]) continue;
    ++untouched;
    EXPECT_EQ(a.w[i], p0.w[i]);
    for (int64_t f = 0; f < 8; ++f) EXPECT_EQ(a.v[i * 8 + f], p0.v[i * 8 + f]);
  }
  EXPECT_GT(untouched, 100);
}

TEST(FmStep, IndptrNeedNotStartAtZero) {
  const FmParams p0 = RandomParams(50, 4, 21);
  const HostBatch b = RandomCsr(40, 50, 5, 22);
  HostBatch shifted = b;  // the same rows behind 3 unused leading entries
  shifted.indices.insert(shifted.indices.begin(), {1, 2, 3});
  shifted.values.insert(shifted.values.begin(), {9.0f, 9.0f, 9.0f});
  for (int64_t& o : shifted.indptr) o += 3;
  auto res = CpuResources(2);
  kernels::FmStepper a(*res, p0, kernels::FmStepSpec{}), c(*res, p0, kernels::FmStepSpec{});
  const kernels::FmBatchLoss la = a.Step(b, b.labels.data()), lc = c.Step(shifted, shifted.labels.data());
  EXPECT_EQ(la.loss, lc.loss);
  EXPECT_EQ(a.Params().v, c.Params().v);
  EXPECT_EQ(a.Params().w, c.Params().w);
}

TEST(FmStep, StateBytesAndShapeErrors) {
  EXPECT_EQ(kernels::FmStepper::StateBytes(10, 3, kernels::FmOptimizer::kSgd), (10 * 4 + 1) * 4u + 40u);
  EXPECT_EQ(kernels::FmStepper::StateBytes(10, 3, kernels::FmOptimizer::kAdam), 3 * (10 * 4 + 1) * 4u + 40u);
  auto res = CpuResources(1);
  kernels::FmStepper s(*res, RandomParams(10, 3, 1), kernels::FmStepSpec{});
  const HostBatch b = RandomCsr(4, 11, 2, 1);
  try {
    s.Step(b, b.labels.data());
    ADD_FAILURE() << "a batch of the wrong width was accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("11 columns but the factorization machine has feature_dim 10"),
              std::string::npos)
        << e.what();
  }
  HostBatch bad = RandomCsr(4, 10, 2, 2);  // an index past the width: refused, as on the GPU
  bad.indices[3] = 10;
  try {
    s.Step(bad, bad.labels.data());
    ADD_FAILURE() << "a column index past feature_dim was accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("column index 10 but feature_dim is 10"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// The real SageMaker artifact.

HostBatch ReadAll(const std::string& path, int64_t cols) {
  io::ChannelSource src;
  src.paths = {path};
  io::StreamOptions so;
  so.batch_size = 1 << 20;
  so.expected_cols = cols;
  io::BatchStream s(src, so);
  HostBatch b;
  EXPECT_TRUE(s.Next(&b));
  return b;
}

TEST(FmArtifact, RealMovieLensModelScoresItsTestSetToSageMakersRmse) {
  if (test::SharedData().empty()) GTEST_SKIP() << "../shared/data is absent";
  const fm::Model m = fm::LoadModel(test::SharedData("artifacts/fm_movielens100k_regressor_d2625_k64.model.tar.gz"));
  EXPECT_EQ(m.dim(), 2625);
  EXPECT_EQ(m.factors(), 64);
  EXPECT_EQ(m.predictor_type, fm::PredictorType::kRegressor);
  const HostBatch b = ReadAll(test::SharedData("artifacts/fm_movielens100k_test.pbr"), 2625);
  ASSERT_EQ(b.rows, 20000);
  ASSERT_EQ(b.layout, Layout::kCsr);
  const std::vector<float> y = fm::Score(m, b, 2);
  // Per record against the expected predictions (float64 formula on the decoded params).
  std::ifstream csv(test::SharedData("artifacts/fm_movielens100k_test.expected.csv"));
  std::string line;
  std::getline(csv, line);
  double sq = 0, worst = 0;
  int64_t r = 0;
  while (std::getline(csv, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
    ASSERT_EQ(f.size(), 5u);
    ASSERT_LT(r, b.rows);
    EXPECT_EQ(b.indices[b.indptr[r]], std::stoul(f[1]));
    EXPECT_EQ(b.indices[b.indptr[r] + 1], std::stoul(f[2]));
    worst = std::max(worst, std::fabs(y[r] - std::stod(f[4])));
    sq += (y[r] - b.labels[r]) * static_cast<double>(y[r] - b.labels[r]);
    ++r;
  }
  EXPECT_EQ(r, 20000);
  EXPECT_LT(worst, 1e-5);
  EXPECT_NEAR(std::sqrt(sq / 20000), 1.0002629948968227, 1e-6);  // SageMaker's logged #test_score rmse
}

TEST(FmArtifact, OurMembersReproduceSageMakersBytes) {
  if (test::SharedData().empty()) GTEST_SKIP() << "../shared/data is absent";
  const std::string path = test::SharedData("artifacts/fm_movielens100k_regressor_d2625_k64.model.tar.gz");
  const std::string zip = io::ReadArchiveMember(path, "model_algo-1");
  fm::Model m = fm::ParseModel(zip, "model_algo-1");
  // The symbol records lr/wd multipliers and init of the job: SageMaker's defaults.
  m.factors_init.sigma = 0.001;
  EXPECT_EQ(fm::SymbolJson(m), io::ReadArchiveMemberBuffer(zip, "zip", "symbol.json"));
  EXPECT_EQ(fm::MetaJson(m), io::ReadArchiveMemberBuffer(zip, "zip", "meta.json"));
  // params: the same arrays (our V2 list of row_sparse arrays with every row) parse back equal.
  const fm::Model again = fm::ParseModel(fm::SerializeModel(m), "ours");
  EXPECT_EQ(again.params.w, m.params.w);
  EXPECT_EQ(again.params.v, m.params.v);
  EXPECT_EQ(again.params.w0, m.params.w0);
  EXPECT_EQ(fm::ParamsBytes(m), io::ReadArchiveMemberBuffer(zip, "zip", "params"));
}

TEST(FmArtifact, DamagedModelsAreNamedErrors) {
  EXPECT_THROW(fm::ParseModel("not a zip", "x"), UserError);
  const std::string no_params = io::MakeZip({{"meta.json", "{}"}});
  try {
    fm::ParseModel(no_params, "m");
    ADD_FAILURE();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("no member 'params'"), std::string::npos) << e.what();
  }
  fm::Model m;
  m.params = RandomParams(5, 2, 1);
  std::string zip = fm::SerializeModel(m);
  EXPECT_EQ(fm::ParseModel(zip, "ok").params.v, m.params.v);
  const std::string bad_meta = io::MakeZip({{"meta.json", "{oops"}, {"params", fm::ParamsBytes(m)}});
  EXPECT_THROW(fm::ParseModel(bad_meta, "m"), UserError);
}

TEST(FmArtifact, EmbeddingsExport) {
  test::TempDir dir;
  fm::Model m;
  m.params = RandomParams(4, 3, 2);
  fm::ExportEmbeddings(m, dir / "e.csv");
  const std::string csv = test::ReadFile(dir / "e.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "feature,w,v0,v1,v2");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 5);
  fm::ExportEmbeddings(m, dir / "e.npy");
  const std::string npy = test::ReadFile(dir / "e.npy");
  ASSERT_EQ(npy.size() % 64, (4 * 4 * 4) % 64);
  EXPECT_EQ(npy.substr(0, 6), "\x93NUMPY");
  EXPECT_NE(npy.find("'shape': (4, 4)"), std::string::npos);
  float v11;  // row 1, column 2 = v[1][1]
  std::memcpy(&v11, npy.data() + npy.size() - 4 * 4 * 4 + (1 * 4 + 2) * 4, 4);
  EXPECT_EQ(v11, m.params.v[1 * 3 + 1]);
  EXPECT_THROW(fm::ExportEmbeddings(m, dir / "e.txt"), UserError);
}

// ---------------------------------------------------------------------------------------------
// Top-k.

TEST(FmTopK, MatchesBruteForceScoringOfEveryCandidate) {
  for (const auto type : {fm::PredictorType::kRegressor, fm::PredictorType::kBinaryClassifier}) {
    fm::Model m;
    m.predictor_type = type;
    m.params = RandomParams(60, 6, 11, 0.5f);
    // Rows: a user one-hot in [0, 20) plus, for row 2, an item already present (excluded).
    HostBatch b;
    b.layout = Layout::kCsr;
    b.cols = 60;
    b.indptr = {0, 1, 2, 4};
    b.indices = {3, 7, 5, 30};
    b.values = {1, 1, 1, 1};
    b.rows = 3;
    const fm::TopK top = fm::Recommend(m, b, 20, 60, 5, 2);
    for (int64_t r = 0; r < 3; ++r) {
      std::vector<std::pair<double, int64_t>> all;
      for (int64_t item = 20; item < 60; ++item) {
        if (r == 2 && item == 30) continue;
        HostBatch one;
        one.layout = Layout::kCsr;
        one.cols = 60;
        one.rows = 1;
        one.indptr = {0};
        for (int64_t e = b.indptr[r]; e < b.indptr[r + 1]; ++e) {
          one.indices.push_back(b.indices[e]);
          one.values.push_back(1);
        }
        one.indices.push_back(static_cast<uint32_t>(item));
        one.values.push_back(1);
        one.indptr.push_back(static_cast<int64_t>(one.values.size()));
        all.emplace_back(RefForward(Ref(m.params), one, 0), item);
      }
      std::sort(all.begin(), all.end(), [](auto& x, auto& y) { return x.first > y.first; });
      for (int j = 0; j < 5; ++j) {
        EXPECT_EQ(top.items[r * 5 + j], all[j].second) << "row " << r << " rank " << j;
        const double want = type == fm::PredictorType::kRegressor ? all[j].first : 1 / (1 + std::exp(-all[j].first));
        EXPECT_NEAR(top.scores[r * 5 + j], want, 1e-5);
      }
    }
    // More items asked than candidates: padded with -1.
    const fm::TopK many = fm::Recommend(m, b, 58, 60, 4, 1);
    EXPECT_EQ(many.items[2], -1);
    EXPECT_TRUE(std::isnan(many.scores[3]));
  }
}

TEST(FmTopK, ARequestForTooManyRecommendationsIsRefusedBeforeAnyWork) {
  test::TempDir dir;
  fm::Model m;
  m.params = RandomParams(20, 2, 3);
  fm::SaveModel(m, dir.path());
  const auto predictor = fm::LoadPredictor(io::ModelSource::Open(dir.path()));
  HostBatch b;  // 1,700 rows without features x top_k 10,000 > 2^24
  b.layout = Layout::kCsr;
  b.cols = 20;
  b.rows = 1700;
  b.indptr.assign(1701, 0);
  auto res = CpuResources(1);
  try {
    predictor->PredictWithAttributes(b, *res, "top_k=10000; item_range=0:20");
    ADD_FAILURE() << "17,000,000 recommendations were computed";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("send fewer rows per request or ask for a smaller top_k"), std::string::npos)
        << e.what();
  }
  b.rows = 1600;  // 16,000,000 <= 2^24: answered
  b.indptr.resize(1601);
  EXPECT_EQ(predictor->PredictWithAttributes(b, *res, "top_k=10000; item_range=0:20").columns.size(), 3u);
}

TEST(FmTopK, RequestAttributes) {
  fm::TopKRequest r = fm::ParseTopKRequest("top_k=10; item_range=943:2625", 2625);
  EXPECT_EQ(r.k, 10);
  EXPECT_EQ(r.item_begin, 943);
  EXPECT_EQ(r.item_end, 2625);
  EXPECT_EQ(fm::ParseTopKRequest("trace=abc,top_k=2,item_range=0:3", 5).k, 2);  // foreign keys ignored
  EXPECT_EQ(fm::ParseTopKRequest("", 5).k, 0);
  EXPECT_EQ(fm::ParseTopKRequest("session=1", 5).k, 0);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"top_k=3", "needs item_range"},
      {"item_range=0:3", "without top_k"},
      {"top_k=0; item_range=0:3", "must be in 1 .. 10000"},
      {"top_k=x; item_range=0:3", "top_k: 'x' is not a non-negative integer"},
      {"top_k=2; item_range=3", "expected BEGIN:END"},
      {"top_k=2; item_range=4:9", "not within the model's features 0:5"},
      {"top_k=2; item_range=3:3", "not within"},
      {"top_k=2; item_range=-1:3", "not a non-negative integer"},
  };
  for (const auto& [text, want] : bad) {
    try {
      fm::ParseTopKRequest(text, 5);
      ADD_FAILURE() << text;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << text << ": " << e.what();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Training through the container runner.

struct Trained {
  int code = -1;
  std::string failure;
};

Trained TrainFm(const test::TempDir& dir, const std::map<std::string, std::string>& channels,
                const std::vector<std::string>& hps, const std::string& model_dir = "model") {
  container::LocalTrainArgs args;
  args.algorithm = "factorization-machines";
  for (const auto& [name, path] : channels) args.channels[name] = {path};
  args.hyperparameters = hps;
  args.model_dir = dir / model_dir;
  args.failure_file = dir / "failure";
  Trained t;
  t.code = container::TrainLocal(args, algos::BuiltinAlgorithms(), test::TrainOptionsForTests());
  std::ifstream f(dir / "failure");
  std::getline(f, t.failure, '\0');
  return t;
}

void WriteSynth(const std::string& path, io::SynthOptions o) {
  io::SynthGenerator gen(o);
  auto w = io::MakeRowWriter(path, {});
  HostBatch b;
  for (int64_t r = 0; r < o.rows; r += 5000) {
    gen.Fill(r, std::min<int64_t>(5000, o.rows - r), &b);
    w->Write(b);
  }
  w->Close();
}

io::SynthOptions FmSynth(int64_t rows, uint64_t seed, const std::string& task) {
  io::SynthOptions o;
  o.kind = io::SynthKind::kFm;
  o.rows = rows;
  o.users = 300;
  o.items = 400;
  o.cols = 700;
  o.factors = 4;
  o.noise = 0.1;
  o.task = task;
  o.seed = seed;
  return o;
}

double Metric(const std::string& model_dir, const std::string& name) {
  const fm::Model m = fm::LoadModel(model_dir);
  auto it = m.metrics.find(name);
  EXPECT_NE(it, m.metrics.end()) << name;
  return it == m.metrics.end() ? NAN : it->second;
}

TEST(FmTrain, RegressorReachesTheNoiseLevelOnSyntheticFmData) {
  test::TempDir dir;
  io::SynthOptions tr = FmSynth(40000, 7, "regression");
  WriteSynth(dir / "train.pbr", tr);
  // Held-out rows of the same model: rows beyond the training ones.
  io::SynthOptions te = tr;
  te.rows = 48000;
  io::SynthGenerator gen(te);
  HostBatch b;
  gen.Fill(40000, 8000, &b);
  auto w = io::MakeRowWriter(dir / "test.pbr", {});
  w->Write(b);
  w->Close();
  const Trained t = TrainFm(dir, {{"train", dir / "train.pbr"}, {"test", dir / "test.pbr"}},
                            {"feature_dim=700", "num_factors=8", "predictor_type=regressor", "epochs=25",
                             "mini_batch_size=500", "factors_lr=0.01", "linear_lr=0.01", "factors_wd=0",
                             "linear_wd=0", "factors_init_sigma=0.1"});
  ASSERT_EQ(t.code, 0) << t.failure;
  const double rmse = Metric(dir / "model", "test:rmse");
  EXPECT_LT(rmse, 0.13) << "noise sd is 0.1";  // the label sd is ~2.3
  EXPECT_GT(rmse, 0.09);
}

TEST(FmTrain, BinaryClassifierLearnsAndSparseEqualsDense) {
  test::TempDir dir;
  io::SynthOptions tr = FmSynth(30000, 8, "binary");
  WriteSynth(dir / "train.pbr", tr);
  // The same rows written dense.
  {
    io::SynthGenerator gen(tr);
    auto w = io::MakeRowWriter(dir / "dense.pbr", {});
    HostBatch b;
    for (int64_t r = 0; r < tr.rows; r += 5000) {
      gen.Fill(r, 5000, &b);
      w->Write(ToDense(b));
    }
    w->Close();
  }
  const std::vector<std::string> hps = {"feature_dim=700", "num_factors=8", "predictor_type=binary_classifier",
                                        "epochs=8", "factors_lr=0.02", "linear_lr=0.02", "factors_init_sigma=0.1",
                                        "mini_batch_size=500"};
  const Trained t = TrainFm(dir, {{"train", dir / "train.pbr"}, {"test", dir / "train.pbr"}}, hps);
  ASSERT_EQ(t.code, 0) << t.failure;
  EXPECT_GT(Metric(dir / "model", "test:binary_classification_accuracy"), 0.85);
  const Trained td = TrainFm(dir, {{"train", dir / "dense.pbr"}}, hps, "dense_model");
  ASSERT_EQ(td.code, 0) << td.failure;
  const fm::Model a = fm::LoadModel(dir / "model"), c = fm::LoadModel(dir / "dense_model");
  ASSERT_EQ(a.params.v.size(), c.params.v.size());
  double worst = 0;
  for (size_t i = 0; i < a.params.v.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(a.params.v[i] - c.params.v[i])));
  EXPECT_LT(worst, 1e-4) << "sparse and dense input train the same model";
  // The binary artifact names its output node for SageMaker's loader.
  EXPECT_NE(fm::SymbolJson(a).find("LogisticRegressionOutput"), std::string::npos);
  EXPECT_EQ(a.predictor_type, fm::PredictorType::kBinaryClassifier);
}

TEST(FmTrain, MovieLensRatingsBeatAUserPlusItemBiasBaseline) {
  if (test::SharedData().empty()) GTEST_SKIP() << "../shared/data is absent";
  // Split the 20,000 real ratings by rating (every 5th to test), not by user.
  const HostBatch all = ReadAll(test::SharedData("artifacts/fm_movielens100k_test.pbr"), 2625);
  test::TempDir dir;
  HostBatch tr, te;
  for (HostBatch* b : {&tr, &te}) {
    b->layout = Layout::kCsr;
    b->cols = 2625;
    b->indptr = {0};
  }
  for (int64_t r = 0; r < all.rows; ++r) {
    HostBatch& b = r % 5 == 4 ? te : tr;
    for (int64_t e = all.indptr[r]; e < all.indptr[r + 1]; ++e) {
      b.indices.push_back(all.indices[e]);
      b.values.push_back(all.values[e]);
    }
    b.indptr.push_back(static_cast<int64_t>(b.values.size()));
    b.labels.push_back(all.labels[r]);
    ++b.rows;
  }
  for (auto [b, name] : {std::pair{&tr, "train.pbr"}, std::pair{&te, "test.pbr"}}) {
    auto w = io::MakeRowWriter(dir / name, {});
    w->Write(*b);
    w->Close();
  }
  // Baseline: global mean + user offset + item offset (of the residual after the user's), each the
  // mean residual shrunk towards 0 by 5 pseudo-ratings (a tuned value: 0 gives 1.014, 5 0.998 here).
  double mean = 0;
  for (float y : tr.labels) mean += y;
  mean /= static_cast<double>(tr.rows);
  std::vector<double> bias(2625, 0.0);
  for (int side = 0; side < 2; ++side) {
    std::vector<double> num(2625, 0.0), den(2625, 0.0);
    for (int64_t r = 0; r < tr.rows; ++r) {
      const uint32_t u = tr.indices[tr.indptr[r]], i = tr.indices[tr.indptr[r] + 1];
      const uint32_t mine = side == 0 ? u : i;
      num[mine] += tr.labels[r] - mean - (side == 0 ? 0.0 : bias[u]);
      den[mine] += 1;
    }
    for (int64_t j = 0; j < 2625; ++j)
      if ((j < 943) == (side == 0)) bias[j] = num[j] / (den[j] + 5.0);
  }
  double base_sq = 0;
  for (int64_t r = 0; r < te.rows; ++r) {
    const double p = mean + bias[te.indices[te.indptr[r]]] + bias[te.indices[te.indptr[r] + 1]];
    base_sq += (p - te.labels[r]) * (p - te.labels[r]);
  }
  const double baseline = std::sqrt(base_sq / static_cast<double>(te.rows));
  const Trained t = TrainFm(dir, {{"train", dir / "train.pbr"}, {"test", dir / "test.pbr"}},
                            {"feature_dim=2625", "num_factors=16", "predictor_type=regressor", "epochs=30",
                             "mini_batch_size=200", "_optimizer=sgd", "bias_lr=0.1", "linear_lr=1", "factors_lr=0.5",
                             "bias_wd=0", "linear_wd=0.002", "factors_wd=0.01", "factors_init_sigma=0.1"});
  ASSERT_EQ(t.code, 0) << t.failure;
  const double rmse = Metric(dir / "model", "test:rmse");
  std::cout << "MovieLens split by rating: FM test rmse " << rmse << ", user+item bias baseline " << baseline << "\n";
  EXPECT_LT(rmse, baseline);
}

TEST(FmTrain, RefusesCsvNonBinaryLabelsAndAWrongWidthByName) {
  test::TempDir dir;
  test::WriteFile(dir / "train.csv", "1,0,1\n0,1,0\n");
  Trained t = TrainFm(dir, {{"train", dir / "train.csv"}},
                      {"feature_dim=2", "num_factors=2", "predictor_type=regressor"});
  EXPECT_NE(t.code, 0);
  EXPECT_NE(t.failure.find("is CSV, which factorization machines do not train on"), std::string::npos) << t.failure;
  EXPECT_FALSE(std::ifstream(dir / "model/model_algo-1").good()) << "no model after a failure";

  io::SynthOptions o = FmSynth(100, 1, "regression");
  WriteSynth(dir / "reg.pbr", o);
  t = TrainFm(dir, {{"train", dir / "reg.pbr"}}, {"feature_dim=700", "num_factors=2", "predictor_type=binary_classifier"});
  EXPECT_NE(t.code, 0);
  EXPECT_NE(t.failure.find("is not 0 or 1; predictor_type=binary_classifier needs 0/1 labels"), std::string::npos)
      << t.failure;
  t = TrainFm(dir, {{"train", dir / "reg.pbr"}}, {"feature_dim=699", "num_factors=2", "predictor_type=regressor"});
  EXPECT_NE(t.code, 0);
  EXPECT_NE(t.failure.find("699"), std::string::npos) << t.failure;
}

TEST(FmTrain, EveryBadHyperparameterIsANamedError) {
  test::TempDir dir;
  WriteSynth(dir / "reg.pbr", FmSynth(50, 1, "regression"));
  const std::vector<std::string> base = {"feature_dim=700", "num_factors=2", "predictor_type=regressor"};
  // Each case: hyperparameters merged over `base` (or, for a missing required one, the whole list)
  // and the text the failure must contain.
  struct Case {
    std::vector<std::string> hps;
    std::string want;
    bool whole = false;
  };
  const std::vector<Case> cases = {
      {{"num_factors=2", "predictor_type=regressor"}, "feature_dim", true},
      {{"feature_dim=700", "predictor_type=regressor"}, "num_factors", true},
      {{"feature_dim=700", "num_factors=2"}, "predictor_type", true},
      {{"predictor_type=multiclass_classifier"}, "predictor_type"},
      {{"feature_dim=0"}, "feature_dim"},
      {{"num_factors=-1"}, "num_factors"},
      {{"epochs=0"}, "epochs"},
      {{"mini_batch_size=0"}, "mini_batch_size"},
      {{"clip_gradient=-1"}, "clip_gradient"},
      {{"eps=0"}, "eps"},
      {{"rescale_grad=abc"}, "rescale_grad"},
      {{"bias_lr=-0.1"}, "bias_lr"},
      {{"linear_lr=-1"}, "linear_lr"},
      {{"factors_lr=x"}, "factors_lr"},
      {{"bias_wd=-1"}, "bias_wd"},
      {{"linear_wd=-1"}, "linear_wd"},
      {{"factors_wd=-1"}, "factors_wd"},
      {{"bias_init_method=xavier"}, "bias_init_method"},
      {{"linear_init_method=uniform"}, "linear_init_method=uniform needs 'linear_init_scale'"},
      {{"factors_init_method=constant"}, "factors_init_method=constant needs 'factors_init_value'"},
      {{"bias_init_scale=0.1"}, "'bias_init_scale' applies to bias_init_method=uniform only"},
      {{"linear_init_value=1"}, "'linear_init_value' applies to linear_init_method=constant only"},
      {{"factors_init_method=uniform", "factors_init_scale=0.1", "factors_init_sigma=0.1"},
       "'factors_init_sigma' applies to factors_init_method=normal only"},
      {{"factors_init_sigma=-1"}, "factors_init_sigma"},
      {{"use_bias=1"}, "use_bias"},
      {{"use_linear=maybe"}, "use_linear"},
      {{"batch_metrics_publish_interval=0"}, "batch_metrics_publish_interval"},
      {{"_optimizer=rmsprop"}, "_optimizer"},
      {{"_learning_rate=0"}, "_learning_rate"},
      {{"_wd=-1"}, "_wd"},
      {{"num_factor=3"}, "num_factor"},
      {{"feature_dim=2000000000", "num_factors=10000"}, "GB (parameters of"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> hps = c.hps;
    if (!c.whole) {
      std::map<std::string, std::string> merged;
      for (const auto& kv : base) merged[kv.substr(0, kv.find('='))] = kv;
      for (const auto& kv : c.hps) merged[kv.substr(0, kv.find('='))] = kv;
      hps.clear();
      for (const auto& [k, kv] : merged) hps.push_back(kv);
    }
    const Trained t = TrainFm(dir, {{"train", dir / "reg.pbr"}}, hps);
    EXPECT_NE(t.code, 0) << c.want;
    EXPECT_NE(t.failure.find(c.want), std::string::npos) << "expected '" << c.want << "' in: " << t.failure;
  }
}

}  // namespace
}  // namespace mlforge
