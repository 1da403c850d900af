// Linear learner evaluation (algos/linear_learner/metrics.h): threshold calibration against a
// brute-force search over every threshold for every criterion, weighted ROC AUC against the
// pairwise definition, multiclass and regression metrics against hand-computed values
// (scikit-learn's conventions), and the multi-rank merge against one rank.
#include "algos/linear_learner/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "comm/local_group.h"

namespace mlforge::algos::linear_learner {
namespace {

Config BinaryConfig(SelectionCriterion crit) {
  Config c;
  c.predictor_type = PredictorType::kBinaryClassifier;
  c.loss = Loss::kLogistic;
  c.selection_criterion = crit;
  c.f_beta = 2.0;
  c.target_recall = 0.7;
  c.target_precision = 0.75;
  return c;
}

struct Counts {
  double tp = 0, fp = 0, tn = 0, fn = 0;
};

Counts CountAt(const std::vector<ScoredRow>& rows, double thr) {
  Counts c;
  for (const ScoredRow& r : rows) {
    const bool pred = r.score > thr, pos = r.label > 0.5;
    (pred ? (pos ? c.tp : c.fp) : (pos ? c.fn : c.tn)) += r.weight;
  }
  return c;
}

// The criterion at a threshold, and whether the threshold is admissible for it (float64).
double Criterion(const Config& cfg, const Counts& c, bool* eligible) {
  const double p = c.tp + c.fp > 0 ? c.tp / (c.tp + c.fp) : 0.0;
  const double r = c.tp + c.fn > 0 ? c.tp / (c.tp + c.fn) : 0.0;
  *eligible = true;
  switch (cfg.selection_criterion) {
    case SelectionCriterion::kAccuracy:
      return (c.tp + c.tn) / (c.tp + c.tn + c.fp + c.fn);
    case SelectionCriterion::kFBeta: {
      const double b2 = cfg.f_beta * cfg.f_beta;
      return b2 * p + r > 0 ? (1 + b2) * p * r / (b2 * p + r) : 0.0;
    }
    case SelectionCriterion::kPrecisionAtTargetRecall:
      *eligible = r >= cfg.target_recall;
      return p;
    case SelectionCriterion::kRecallAtTargetPrecision:
      *eligible = p >= cfg.target_precision && c.tp + c.fp > 0;
      return r;
    default:
      return 0;
  }
}

std::vector<ScoredRow> RandomRows(int n, uint64_t seed, int distinct) {
  std::mt19937_64 rng(seed);
  std::vector<ScoredRow> rows(n);
  for (auto& r : rows) {
    // Few distinct scores: many ties. Positives score higher on average.
    const bool pos = rng() % 2 == 0;
    const int level = static_cast<int>(rng() % distinct);
    const int shift = pos ? static_cast<int>(rng() % 3) : 0;
    // Negative and positive scores (the radix sort orders the float bits of both signs).
    r.score = static_cast<float>(std::min(distinct - 1, level + shift) - distinct / 2) / distinct;
    r.label = pos ? 1.0f : 0.0f;
    r.weight = 0.5f + static_cast<float>(rng() % 4);
  }
  return rows;
}

TEST(LinearLearnerCalibration, HandExample) {
  Config cfg = BinaryConfig(SelectionCriterion::kAccuracy);
  std::vector<ScoredRow> rows = {{0.9f, 1, 1}, {0.3f, 0, 1}, {0.8f, 1, 1},
                                 {0.6f, 1, 1}, {0.7f, 0, 1}, {0.4f, 0, 1}};
  // Cuts after 0.8 (2 TP, 0 FP) and after 0.6 (3 TP, 1 FP) both classify 5 of 6 rows; the
  // higher cut wins, and the threshold is the midpoint of 0.8 and 0.7.
  Calibration c = CalibrateThreshold(rows, cfg, 0.5);
  EXPECT_NEAR(c.value, 5.0 / 6.0, 1e-12);
  EXPECT_NEAR(c.threshold, 0.75, 1e-6);
  EXPECT_EQ(c.tp, 2);
  EXPECT_EQ(c.fp, 0);
  // loss_function keeps the default threshold.
  cfg.selection_criterion = SelectionCriterion::kLossFunction;
  c = CalibrateThreshold(rows, cfg, 0.5);
  EXPECT_EQ(c.threshold, 0.5);
  EXPECT_EQ(c.tp, 3);
  EXPECT_EQ(c.fp, 1);
  // Every row positive is a valid answer: all scores equal and all labels 1.
  cfg.selection_criterion = SelectionCriterion::kAccuracy;
  std::vector<ScoredRow> same = {{0.2f, 1, 1}, {0.2f, 1, 1}};
  c = CalibrateThreshold(same, cfg, 0.5);
  EXPECT_LT(c.threshold, 0.2);
  EXPECT_EQ(c.value, 1.0);
}

TEST(LinearLearnerCalibration, MatchesBruteForceForEveryCriterion) {
  for (SelectionCriterion crit :
       {SelectionCriterion::kAccuracy, SelectionCriterion::kFBeta,
        SelectionCriterion::kPrecisionAtTargetRecall, SelectionCriterion::kRecallAtTargetPrecision}) {
    for (uint64_t seed = 1; seed <= 20; ++seed) {
      SCOPED_TRACE(::testing::Message() << SelectionCriterionName(crit) << " seed " << seed);
      const Config cfg = BinaryConfig(crit);
      // 200 rows (comparison sort) and 1500 rows (radix sort), few or many distinct scores.
      std::vector<ScoredRow> rows =
          RandomRows(seed % 2 ? 200 : 1500, seed, 7 + static_cast<int>(seed % 5) * 9 + (seed % 3 ? 0 : 1000));
      // Brute force: every distinct score as a threshold, plus one below them all.
      std::vector<double> thresholds = {-1.0};
      for (const auto& r : rows) thresholds.push_back(r.score);
      double best = -1;
      for (double t : thresholds) {
        bool ok = false;
        const double v = Criterion(cfg, CountAt(rows, t), &ok);
        if (ok) best = std::max(best, v);
      }
      Calibration c = CalibrateThreshold(rows, cfg, 0.5);
      if (best < 0) {
        EXPECT_EQ(c.value, 0.0);  // target unreachable
        continue;
      }
      EXPECT_NEAR(c.value, best, 1e-12);
      // The returned threshold achieves it, and its counts are the counts at it.
      bool ok = false;
      const Counts at = CountAt(rows, c.threshold);
      EXPECT_NEAR(Criterion(cfg, at, &ok), best, 1e-12);
      EXPECT_TRUE(ok);
      EXPECT_NEAR(c.tp, at.tp, 1e-9);
      EXPECT_NEAR(c.fp, at.fp, 1e-9);
    }
  }
}

TEST(LinearLearnerCalibration, BucketedEqualsTheSortedSweepExactly) {
  // Every criterion, on samples large enough for the bucketed path: scores with many ties (few
  // levels), continuous scores, a huge range of magnitudes with both zeros, one class only, and
  // targets out of reach. Unit and half-integer weights (exact sums), so every field must be equal.
  int cases = 0;
  for (SelectionCriterion crit :
       {SelectionCriterion::kAccuracy, SelectionCriterion::kFBeta, SelectionCriterion::kPrecisionAtTargetRecall,
        SelectionCriterion::kRecallAtTargetPrecision, SelectionCriterion::kLossFunction}) {
    for (int shape = 0; shape < 6; ++shape) {
      for (uint64_t seed = 1; seed <= 4; ++seed) {
        SCOPED_TRACE(::testing::Message() << SelectionCriterionName(crit) << " shape " << shape << " seed " << seed);
        Config cfg = BinaryConfig(crit);
        if (shape == 5) {  // out of reach
          cfg.target_precision = 0.999;
          cfg.target_recall = 1.01;
        }
        std::mt19937_64 rng(seed * 31 + static_cast<uint64_t>(shape));
        const size_t n = shape == 1 ? 100000 : 4096 + static_cast<size_t>(rng() % 20000);
        std::normal_distribution<float> nd;
        std::vector<float> scores(n), labels(n), weights(n);
        for (size_t i = 0; i < n; ++i) {
          const bool pos = shape == 4 ? true : rng() % 2 == 0;
          float s = 0;
          switch (shape) {
            case 0:  // 50 levels: heavy ties
              s = static_cast<float>(static_cast<int>(rng() % 50) + (pos ? 5 : 0) - 27) / 10.0f;
              break;
            case 2:  // magnitudes from 1e-30 to 1e30, both signs, and both zeros
              s = (rng() % 2 ? 1.0f : -1.0f) * std::pow(10.0f, static_cast<float>(static_cast<int>(rng() % 61) - 30));
              if (rng() % 50 == 0) s = rng() % 2 ? 0.0f : -0.0f;
              if (pos && s < 0 && rng() % 3 == 0) s = -s;
              break;
            default:  // continuous, positives shifted up
              s = nd(rng) + (pos ? 1.2f : 0.0f);
              break;
          }
          scores[i] = s;
          labels[i] = pos ? 1.0f : 0.0f;
          weights[i] = seed % 2 ? 1.0f : 0.5f * static_cast<float>(1 + rng() % 4);
        }
        std::vector<ScoredRow> rows(n);
        for (size_t i = 0; i < n; ++i) rows[i] = {scores[i], labels[i], weights[i]};
        const Calibration want = CalibrateThreshold(rows, cfg, 0.25);
        const Calibration got =
            CalibrateThresholdBucketed(scores.data(), labels.data(), weights.data(), n, cfg, 0.25);
        EXPECT_EQ(got.threshold, want.threshold);
        EXPECT_EQ(got.value, want.value);
        EXPECT_EQ(got.tp, want.tp);
        EXPECT_EQ(got.fp, want.fp);
        EXPECT_EQ(got.tn, want.tn);
        EXPECT_EQ(got.fn, want.fn);
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 5 * 6 * 4);
  // Below the size threshold, and with a non-finite score, it is the sorted sweep itself.
  const Config cfg = BinaryConfig(SelectionCriterion::kAccuracy);
  std::vector<ScoredRow> small = RandomRows(300, 3, 40);
  std::vector<float> s, l, w;
  for (const auto& r : small) {
    s.push_back(r.score);
    l.push_back(r.label);
    w.push_back(r.weight);
  }
  const Calibration a = CalibrateThresholdBucketed(s.data(), l.data(), w.data(), s.size(), cfg, 0.5);
  const Calibration b = CalibrateThreshold(small, cfg, 0.5);
  EXPECT_EQ(a.threshold, b.threshold);
  EXPECT_EQ(a.tp, b.tp);
}

TEST(LinearLearnerCalibration, RecallAtUnreachablePrecisionFallsBackToTheMostPreciseCut) {
  Config cfg = BinaryConfig(SelectionCriterion::kRecallAtTargetPrecision);
  cfg.target_precision = 0.99;
  std::vector<ScoredRow> rows = {{0.9f, 0, 1}, {0.8f, 1, 1}, {0.7f, 0, 1}, {0.6f, 1, 1}};
  const Calibration c = CalibrateThreshold(rows, cfg, 0.5);
  EXPECT_EQ(c.value, 0.0);
  // Precision 0.5 at cut after 0.8 and after 0.6; the first reached (0.8 / 0.7 midpoint) is kept.
  EXPECT_NEAR(c.threshold, 0.75, 1e-6);
}

TEST(LinearLearnerCalibration, RocAucEqualsThePairwiseDefinition) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    std::vector<ScoredRow> rows = RandomRows(seed % 2 ? 150 : 700, seed, 5 + static_cast<int>(seed) * 40);
    double num = 0, den = 0;
    for (const auto& a : rows) {
      for (const auto& b : rows) {
        if (a.label > 0.5 && b.label < 0.5) {
          den += a.weight * b.weight;
          num += a.weight * b.weight * (a.score > b.score ? 1.0 : a.score == b.score ? 0.5 : 0.0);
        }
      }
    }
    EXPECT_NEAR(RocAuc(rows), num / den, 1e-12) << seed;
  }
  std::vector<ScoredRow> one_class = {{0.1f, 1, 1}, {0.4f, 1, 1}};
  EXPECT_EQ(RocAuc(one_class), 0.5);
}

HostBatch Labelled(std::vector<float> labels, std::vector<float> weights = {}) {
  HostBatch b;
  b.rows = static_cast<int64_t>(labels.size());
  b.cols = 1;
  b.values.assign(labels.size(), 0.0f);
  b.labels = std::move(labels);
  b.weights = std::move(weights);
  return b;
}

const MetricValue& Find(const ModelEvaluation& e, const std::string& name) {
  for (const auto& v : e.metrics) {
    if (v.name == name) return v;
  }
  ADD_FAILURE() << "no metric " << name;
  static MetricValue none;
  return none;
}

TEST(LinearLearnerEvaluation, MulticlassMetricsFollowScikitLearn) {
  Config cfg;
  cfg.predictor_type = PredictorType::kMulticlassClassifier;
  cfg.num_classes = 4;
  cfg.loss = Loss::kSoftmax;
  cfg.accuracy_top_k = 2;
  cfg.f_beta = 1.0;
  // 6 rows, labels 0 0 1 1 2 2 (class 3 never appears); predictions by argmax:
  //   0 1 1 1 0 3  -> confusion: class 0: tp 1, pred 2, act 2; class 1: tp 2, pred 3, act 2;
  //   class 2: tp 0, pred 0, act 2; class 3: tp 0, pred 1, act 0.
  HostBatch b = Labelled({0, 0, 1, 1, 2, 2});
  const std::vector<float> scores = {
      5, 1, 0, 0,  // -> 0 (true 0)
      1, 5, 0, 0,  // -> 1 (true 0; rank of 0 is 1: in top 2)
      0, 5, 1, 0,  // -> 1
      1, 5, 0, 0,  // -> 1
      5, 0, 1, 0,  // -> 0 (true 2; rank 1: in top 2)
      0, 1, 0, 5,  // -> 3 (true 2: classes 1 and 3 score higher, 0 ties with a lower index: rank 3)
  };
  const double loss[] = {3.0}, wsum[] = {6.0};
  Evaluation e(cfg, 1, 0);
  e.Add(b, scores.data(), loss, wsum);
  const ModelEvaluation r = e.Finish(0);
  EXPECT_NEAR(r.objective, 0.5, 1e-12);
  EXPECT_NEAR(Find(r, "multiclass_accuracy").value, 3.0 / 6, 1e-12);
  EXPECT_NEAR(Find(r, "multiclass_top_k_accuracy_2").value, 5.0 / 6, 1e-12);
  // dcg: the true class is the one relevant item, gain 1 / log2(1 + its 1-based rank); true-class
  // ranks 1 2 1 1 2 4.
  EXPECT_NEAR(Find(r, "dcg").value, (3.0 + 2.0 / std::log2(3.0) + 1.0 / std::log2(5.0)) / 6, 1e-12);
  // scikit-learn precision_score(average='macro') over the labels present in y_true or y_pred
  // (0, 1, 2, 3), zero_division=0: (1/2 + 2/3 + 0 + 0) / 4.
  EXPECT_NEAR(Find(r, "macro_precision").value, (0.5 + 2.0 / 3) / 4, 1e-12);
  EXPECT_NEAR(Find(r, "macro_recall").value, (0.5 + 1.0 + 0 + 0) / 4, 1e-12);
  const double f0 = 2 * 0.5 * 0.5 / 1.0, f1 = 2 * (2.0 / 3) * 1.0 / (2.0 / 3 + 1.0);
  EXPECT_NEAR(Find(r, "macro_f_1.000").value, (f0 + f1) / 4, 1e-12);
  // balanced_accuracy_score: mean recall over the classes in y_true.
  EXPECT_NEAR(Find(r, "multiclass_balanced_accuracy").value, (0.5 + 1.0 + 0) / 3, 1e-12);
  EXPECT_FALSE(r.higher_is_better);
  EXPECT_EQ(r.criterion, r.objective);
}

TEST(LinearLearnerEvaluation, RegressionMetricsUseRowWeights) {
  Config cfg;
  cfg.predictor_type = PredictorType::kRegressor;
  cfg.loss = Loss::kSquared;
  HostBatch b = Labelled({1, 2, 3}, {1, 2, 1});
  const std::vector<float> scores = {1.5f, 2, 1};
  // Kernel loss sums carry the 1/2: sum w r^2 / 2 = (0.25 + 0 + 4) / 2.
  const double loss[] = {2.125}, wsum[] = {4};
  Evaluation e(cfg, 1, 0);
  e.Add(b, scores.data(), loss, wsum);
  const ModelEvaluation r = e.Finish(0);
  EXPECT_NEAR(r.objective, 4.25 / 4, 1e-12);  // mse_objective is the mean squared error
  EXPECT_EQ(r.metrics[0].name, "mse_objective");
  EXPECT_NEAR(Find(r, "mse").value, 4.25 / 4, 1e-12);
  EXPECT_NEAR(Find(r, "rmse").value, std::sqrt(4.25 / 4), 1e-12);
  EXPECT_NEAR(Find(r, "absolute_loss").value, 2.5 / 4, 1e-12);
}

TEST(LinearLearnerEvaluation, BinaryFixedThresholdCountsEveryRowAndSigmoidScores) {
  Config cfg = BinaryConfig(SelectionCriterion::kAccuracy);
  HostBatch b = Labelled({1, 0, 1, 0});
  // Raw scores (logits); the threshold applies to sigmoid(score): 0.6 -> logit 0.405.
  const std::vector<float> scores = {2.0f, 0.5f, 0.2f, -1.0f};
  const double loss[] = {1.0}, wsum[] = {4};
  Evaluation e(cfg, 1, /*sample_cap=*/2, {0.6});
  e.Add(b, scores.data(), loss, wsum);
  const ModelEvaluation r = e.Finish(0);
  EXPECT_EQ(r.threshold, 0.6);
  // Predicted positive: rows 0 and 1 -> tp 1, fp 1, fn 1, tn 1 over all four rows (the sample
  // holds only two).
  EXPECT_NEAR(Find(r, "binary_classification_accuracy").value, 0.5, 1e-12);
  EXPECT_NEAR(Find(r, "precision").value, 0.5, 1e-12);
  EXPECT_NEAR(Find(r, "recall").value, 0.5, 1e-12);
  EXPECT_EQ(e.sample_rows(), 2);
  EXPECT_NEAR(Find(r, "roc_auc_score").value, 1.0, 1e-12);  // on the two sampled rows
}

TEST(LinearLearnerEvaluation, RanksMergeToTheOneRankResult) {
  Config cfg = BinaryConfig(SelectionCriterion::kFBeta);
  const int64_t m = 3, n = 90;
  std::mt19937_64 rng(5);
  std::vector<float> labels(n), scores(n * m);
  for (auto& y : labels) y = static_cast<float>(rng() % 2);
  for (auto& s : scores) s = static_cast<float>(static_cast<int>(rng() % 41) - 20) / 10.0f;
  auto add = [&](Evaluation& e, int64_t from, int64_t to) {
    HostBatch b = Labelled(std::vector<float>(labels.begin() + from, labels.begin() + to));
    std::vector<double> loss(m, 0.1 * (to - from)), w(m, static_cast<double>(to - from));
    e.Add(b, scores.data() + from * m, loss.data(), w.data());
  };
  Evaluation one(cfg, m, 1000);
  add(one, 0, n);
  auto group = comm::MakeLocalGroup(2);
  std::vector<ModelEvaluation> results(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      Evaluation e(cfg, m, 1000);
      add(e, r == 0 ? 0 : 30, r == 0 ? 30 : n);  // uneven shares
      e.AllReduce(*group[r]);
      results[r] = e.Finish(1);
    });
  }
  for (auto& t : threads) t.join();
  const ModelEvaluation ref = one.Finish(1);
  for (const auto& r : results) {
    EXPECT_NEAR(r.criterion, ref.criterion, 1e-12);
    EXPECT_NEAR(r.threshold, ref.threshold, 1e-7);
    ASSERT_EQ(r.metrics.size(), ref.metrics.size());
    for (size_t i = 0; i < r.metrics.size(); ++i)
      EXPECT_NEAR(r.metrics[i].value, ref.metrics[i].value, 1e-12);
  }
}

}  // namespace
}  // namespace mlforge::algos::linear_learner
