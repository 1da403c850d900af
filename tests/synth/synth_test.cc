// io/synth: determinism (batch size, threads, start row) and recovery of the ground truth that
// each generator reports.
#include <Eigen/Dense>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <vector>

#include "core/error.h"
#include "io/synth.h"
#include "tests/testutil.h"

namespace mlforge::io {
namespace {

// Every row of a data set in one batch, generated with the given batch size and thread count.
HostBatch Collect(SynthOptions o, int64_t batch_rows, int threads) {
  o.batch_rows = batch_rows;
  o.threads = threads;
  SynthGenerator gen(o);
  HostBatch all;
  all.cols = gen.cols();
  all.layout = gen.sparse() ? Layout::kCsr : Layout::kDense;
  if (gen.sparse()) all.indptr.push_back(0);
  GenerateSynth(gen, [&](const HostBatch& b) {
    EXPECT_EQ(b.first_row, all.rows);
    EXPECT_EQ(b.cols, all.cols);
    if (b.layout == Layout::kCsr) {
      const int64_t base = static_cast<int64_t>(all.values.size());
      for (int64_t i = 1; i <= b.rows; ++i) all.indptr.push_back(base + b.indptr[i]);
      all.indices.insert(all.indices.end(), b.indices.begin(), b.indices.end());
    }
    all.values.insert(all.values.end(), b.values.begin(), b.values.end());
    all.labels.insert(all.labels.end(), b.labels.begin(), b.labels.end());
    all.rows += b.rows;
  });
  return all;
}

SynthOptions Opts(SynthKind kind, int64_t rows, int64_t cols, uint64_t seed = 7) {
  SynthOptions o;
  o.kind = kind;
  o.rows = rows;
  o.cols = cols;
  o.seed = seed;
  return o;
}

// Bitwise comparison: the same seed must give the same bytes.
void ExpectSameBatch(const HostBatch& a, const HostBatch& b) {
  ASSERT_EQ(a.rows, b.rows);
  ASSERT_EQ(a.cols, b.cols);
  ASSERT_EQ(a.values.size(), b.values.size());
  EXPECT_EQ(0, std::memcmp(a.values.data(), b.values.data(), a.values.size() * sizeof(float)));
  EXPECT_EQ(a.indptr, b.indptr);
  EXPECT_EQ(a.indices, b.indices);
  ASSERT_EQ(a.labels.size(), b.labels.size());
  EXPECT_EQ(0, std::memcmp(a.labels.data(), b.labels.data(), a.labels.size() * sizeof(float)));
}

class SynthKinds : public ::testing::TestWithParam<SynthKind> {};

TEST_P(SynthKinds, SameSeedSameDataWhateverBatchSizeAndThreads) {
  SynthOptions o = Opts(GetParam(), 1003, 9);
  if (GetParam() == SynthKind::kFm) o.cols = 0;
  const HostBatch ref = Collect(o, 4096, 1);
  ASSERT_EQ(ref.rows, 1003);
  ExpectSameBatch(ref, Collect(o, 7, 1));
  ExpectSameBatch(ref, Collect(o, 100, 3));
  ExpectSameBatch(ref, Collect(o, 1003, 4));
  // A different seed gives different data (and different parameters).
  SynthOptions other = o;
  other.seed = 8;
  const HostBatch diff = Collect(other, 4096, 1);
  EXPECT_NE(0, std::memcmp(ref.values.data(), diff.values.data(), ref.values.size() * sizeof(float)) +
                   (ref.indices != diff.indices ? 1 : 0));
}

TEST_P(SynthKinds, FillFromAnyRowMatchesTheFullPass) {
  SynthOptions o = Opts(GetParam(), 300, 6);
  if (GetParam() == SynthKind::kFm) o.cols = 0;
  SynthGenerator gen(o);
  HostBatch full, part;
  gen.Fill(0, 300, &full);
  gen.Fill(123, 10, &part);
  EXPECT_EQ(part.first_row, 123);
  ASSERT_EQ(part.rows, 10);
  if (gen.sparse()) {
    for (int64_t i = 0; i < 10; ++i) {
      EXPECT_EQ(part.indices[2 * i], full.indices[2 * (123 + i)]);
      EXPECT_EQ(part.indices[2 * i + 1], full.indices[2 * (123 + i) + 1]);
    }
  } else {
    for (int64_t k = 0; k < 10 * gen.cols(); ++k) EXPECT_EQ(part.values[k], full.values[123 * gen.cols() + k]);
  }
  for (int64_t i = 0; i < static_cast<int64_t>(part.labels.size()); ++i) EXPECT_EQ(part.labels[i], full.labels[123 + i]);
}

INSTANTIATE_TEST_SUITE_P(All, SynthKinds,
                         ::testing::Values(SynthKind::kBlobs, SynthKind::kLinear, SynthKind::kLowRank,
                                           SynthKind::kFm, SynthKind::kGenotypes),
                         [](const auto& info) { return std::string(SynthKindName(info.param)); });

TEST(Synth, BlobsClusterAroundTheReturnedCenters) {
  SynthOptions o = Opts(SynthKind::kBlobs, 8000, 5);
  o.k = 4;
  o.cluster_std = 1.0;
  SynthGenerator gen(o);
  const nlohmann::json truth = gen.Truth();
  ASSERT_EQ(truth["centers"].size(), 4u);
  HostBatch b = Collect(o, 4096, 2);
  std::vector<std::vector<double>> sum(4, std::vector<double>(5, 0.0));
  std::vector<int64_t> count(4, 0);
  for (int64_t i = 0; i < b.rows; ++i) {
    const int k = static_cast<int>(b.labels[i]);
    ASSERT_EQ(static_cast<float>(k), b.labels[i]);
    ASSERT_GE(k, 0);
    ASSERT_LT(k, 4);
    ++count[k];
    for (int j = 0; j < 5; ++j) sum[k][j] += b.values[i * 5 + j];
  }
  for (int k = 0; k < 4; ++k) {
    ASSERT_GT(count[k], 1500) << "cluster " << k << " is under-populated";
    for (int j = 0; j < 5; ++j) {
      const double center = truth["centers"][k][j].get<double>();
      EXPECT_LE(std::abs(center), 10.0);
      // Standard error of the mean is 1/sqrt(~2000) ~ 0.022.
      EXPECT_NEAR(sum[k][j] / count[k], center, 0.12) << "cluster " << k << " column " << j;
    }
  }
}

// x.w + b for row i of a dense batch, with the truth's weights.
double Score(const HostBatch& b, int64_t i, const nlohmann::json& w, double bias) {
  double s = bias;
  for (int64_t j = 0; j < b.cols; ++j) s += w[j].get<double>() * b.values[i * b.cols + j];
  return s;
}

TEST(Synth, LinearRegressionResidualVarianceIsNoiseSquared) {
  SynthOptions o = Opts(SynthKind::kLinear, 20000, 8);
  o.noise = 0.3;
  SynthGenerator gen(o);
  const nlohmann::json truth = gen.Truth();
  const HostBatch b = Collect(o, 4096, 2);
  double sum = 0, sum_sq = 0;
  for (int64_t i = 0; i < b.rows; ++i) {
    const double r = b.labels[i] - Score(b, i, truth["weights"], truth["bias"].get<double>());
    sum += r;
    sum_sq += r * r;
  }
  const double mean = sum / b.rows;
  const double var = sum_sq / b.rows - mean * mean;
  EXPECT_NEAR(mean, 0.0, 0.02);
  // Relative standard error of a variance estimate is sqrt(2/n) = 1%.
  EXPECT_NEAR(var, 0.09, 0.09 * 0.06);
}

TEST(Synth, LinearBinaryLabelsFollowTheTrueWeights) {
  SynthOptions o = Opts(SynthKind::kLinear, 10000, 12);
  o.task = "binary";
  o.noise = 0.1;
  SynthGenerator gen(o);
  const nlohmann::json truth = gen.Truth();
  const HostBatch b = Collect(o, 4096, 1);
  int64_t correct = 0, ones = 0;
  for (int64_t i = 0; i < b.rows; ++i) {
    ASSERT_TRUE(b.labels[i] == 0.0f || b.labels[i] == 1.0f);
    ones += b.labels[i] == 1.0f;
    const float pred = Score(b, i, truth["weights"], truth["bias"].get<double>()) > 0 ? 1.0f : 0.0f;
    correct += pred == b.labels[i];
  }
  // With noise 0.1 on a unit-variance margin about 3% of labels flip.
  EXPECT_GT(static_cast<double>(correct) / b.rows, 0.93);
  EXPECT_GT(ones, b.rows / 5);
  EXPECT_LT(ones, b.rows * 4 / 5);
}

TEST(Synth, LinearMulticlassLabelsAreTheArgmaxOfTheTrueScores) {
  SynthOptions o = Opts(SynthKind::kLinear, 6000, 10);
  o.task = "multiclass";
  o.classes = 4;
  o.noise = 0.05;
  SynthGenerator gen(o);
  const nlohmann::json truth = gen.Truth();
  ASSERT_EQ(truth["weights"].size(), 4u);
  const HostBatch b = Collect(o, 4096, 1);
  int64_t correct = 0;
  std::set<float> seen;
  for (int64_t i = 0; i < b.rows; ++i) {
    int best = 0;
    double best_score = -1e300;
    for (int c = 0; c < 4; ++c) {
      const double s = Score(b, i, truth["weights"][c], truth["bias"][c].get<double>());
      if (s > best_score) best_score = s, best = c;
    }
    correct += static_cast<float>(best) == b.labels[i];
    seen.insert(b.labels[i]);
  }
  EXPECT_EQ(seen, (std::set<float>{0, 1, 2, 3}));
  EXPECT_GT(static_cast<double>(correct) / b.rows, 0.9);
}

TEST(Synth, LowRankCovarianceTopEigenvectorsAreTheTrueComponents) {
  SynthOptions o = Opts(SynthKind::kLowRank, 20000, 12);
  o.rank = 3;
  o.noise = 0.1;
  SynthGenerator gen(o);
  EXPECT_FALSE(gen.has_labels());
  const nlohmann::json truth = gen.Truth();
  const HostBatch b = Collect(o, 4096, 2);
  EXPECT_TRUE(b.labels.empty());
  const int64_t d = b.cols;
  Eigen::MatrixXd x(b.rows, d);
  for (int64_t i = 0; i < b.rows; ++i)
    for (int64_t j = 0; j < d; ++j) x(i, j) = b.values[i * d + j];
  const Eigen::RowVectorXd mean = x.colwise().mean();
  for (int64_t j = 0; j < d; ++j) EXPECT_NEAR(mean(j), truth["mean"][j].get<double>(), 0.25);
  const Eigen::MatrixXd centered = x.rowwise() - mean;
  const Eigen::MatrixXd cov = centered.transpose() * centered / static_cast<double>(b.rows - 1);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(cov);  // ascending eigenvalues
  for (int r = 0; r < 3; ++r) {
    const Eigen::VectorXd v = eig.eigenvectors().col(d - 1 - r);
    Eigen::VectorXd t(d);
    for (int64_t j = 0; j < d; ++j) t(j) = truth["components"][r][j].get<double>();
    EXPECT_NEAR(t.norm(), 1.0, 1e-9);
    EXPECT_GT(std::abs(v.dot(t)), 0.995) << "component " << r;
    const double expected = truth["explained_variance"][r].get<double>();
    EXPECT_NEAR(eig.eigenvalues()(d - 1 - r), expected, 0.05 * expected) << "component " << r;
  }
  // Beyond the rank only the noise is left.
  EXPECT_LT(eig.eigenvalues()(d - 4), 0.02);
  // Components are orthonormal to each other.
  for (int r = 0; r < 3; ++r) {
    for (int s = r + 1; s < 3; ++s) {
      double dot = 0;
      for (int64_t j = 0; j < d; ++j) dot += truth["components"][r][j].get<double>() * truth["components"][s][j].get<double>();
      EXPECT_NEAR(dot, 0.0, 1e-12);
    }
  }
}

TEST(Synth, FmIsOneHotCsrWithLabelsFromTheTrueFactorization) {
  SynthOptions o = Opts(SynthKind::kFm, 5000, 0);
  o.users = 30;
  o.items = 20;
  o.factors = 3;
  o.noise = 0.2;
  SynthGenerator gen(o);
  EXPECT_TRUE(gen.sparse());
  EXPECT_EQ(gen.cols(), 50);
  const nlohmann::json t = gen.Truth();
  const HostBatch b = Collect(o, 999, 2);
  ASSERT_EQ(b.layout, Layout::kCsr);
  ASSERT_EQ(b.indptr.size(), 5001u);
  ASSERT_EQ(b.indices.size(), 10000u);
  double sum_sq = 0;
  for (int64_t i = 0; i < b.rows; ++i) {
    ASSERT_EQ(b.indptr[i], 2 * i);
    const uint32_t u = b.indices[2 * i], it = b.indices[2 * i + 1] - 30;
    ASSERT_LT(u, 30u);
    ASSERT_GE(b.indices[2 * i + 1], 30u);
    ASSERT_LT(b.indices[2 * i + 1], 50u);
    EXPECT_EQ(b.values[2 * i], 1.0f);
    EXPECT_EQ(b.values[2 * i + 1], 1.0f);
    double s = t["w0"].get<double>() + t["w_users"][u].get<double>() + t["w_items"][it].get<double>();
    for (int f = 0; f < 3; ++f) s += t["v_users"][u][f].get<double>() * t["v_items"][it][f].get<double>();
    const double r = b.labels[i] - s;
    sum_sq += r * r;
  }
  EXPECT_NEAR(sum_sq / b.rows, 0.04, 0.04 * 0.1);

  // --cols must agree with users + items.
  o.cols = 49;
  EXPECT_THROW(SynthGenerator{o}, UserError);
}

SynthOptions FieldOpts(int64_t rows, int64_t cols, int fields, uint64_t seed = 7) {
  SynthOptions o = Opts(SynthKind::kFm, rows, cols, seed);
  o.fields = fields;
  o.factors = 3;
  o.noise = 0.2;
  return o;
}

TEST(Synth, FmFieldsIsOneIdPerFieldWithSkewedIdsAndLabelsFromTheTrueFm) {
  const int nf = 12;
  const SynthOptions o = FieldOpts(20000, 30000, nf);
  SynthGenerator gen(o);
  EXPECT_TRUE(gen.sparse());
  EXPECT_EQ(gen.cols(), 30000);
  const nlohmann::json t = gen.Truth();
  const auto offsets = t["field_offsets"].get<std::vector<int64_t>>();
  ASSERT_EQ(offsets.size(), static_cast<size_t>(nf + 1));
  EXPECT_EQ(offsets.front(), 0);
  EXPECT_EQ(offsets.back(), 30000);
  int64_t widest = 0;  // the field with the most ids
  for (int f = 0; f < nf; ++f) {
    ASSERT_GE(offsets[f + 1] - offsets[f], 1);
    if (offsets[f + 1] - offsets[f] > offsets[widest + 1] - offsets[widest]) widest = f;
  }
  // Cardinalities differ by orders of magnitude, as Criteo's do.
  int64_t narrowest = offsets[1] - offsets[0];
  for (int f = 0; f < nf; ++f) narrowest = std::min(narrowest, offsets[f + 1] - offsets[f]);
  EXPECT_GT(offsets[widest + 1] - offsets[widest], 20 * narrowest);

  const HostBatch b = Collect(o, 999, 2);
  ASSERT_EQ(b.layout, Layout::kCsr);
  ASSERT_EQ(b.indices.size(), static_cast<size_t>(nf) * b.rows);
  std::vector<int64_t> count(gen.cols(), 0);
  double sum_sq = 0;
  std::vector<double> sums(3);
  for (int64_t i = 0; i < b.rows; ++i) {
    ASSERT_EQ(b.indptr[i + 1] - b.indptr[i], nf);  // row nnz == fields
    double s = t["w0"].get<double>(), self = 0;
    std::fill(sums.begin(), sums.end(), 0.0);
    for (int f = 0; f < nf; ++f) {
      const uint32_t c = b.indices[b.indptr[i] + f];
      ASSERT_GE(c, offsets[f]) << "row " << i << " field " << f;
      ASSERT_LT(c, offsets[f + 1]) << "row " << i << " field " << f;
      EXPECT_EQ(b.values[b.indptr[i] + f], 1.0f);
      ++count[c];
      s += t["w"][c].get<double>();
      for (int k = 0; k < 3; ++k) {
        const double v = t["v"][c][k].get<double>();
        sums[k] += v;
        self += v * v;
      }
    }
    for (int k = 0; k < 3; ++k) s += 0.5 * sums[k] * sums[k];
    s -= 0.5 * self;
    const double r = b.labels[i] - s;
    sum_sq += r * r;
  }
  EXPECT_NEAR(sum_sq / b.rows, 0.04, 0.04 * 0.1);  // the noise alone

  // Skew: the hottest id of the widest field is drawn far more often than a uniform id would be.
  const int64_t lo = offsets[widest], hi = offsets[widest + 1];
  const int64_t hottest = *std::max_element(count.begin() + lo, count.begin() + hi);
  EXPECT_GT(hottest, 50.0 * b.rows / (hi - lo));
  // Ranks are permuted over a field's columns: the hottest id is rarely the field's first column.
  int hot_at_start = 0;
  for (int f = 0; f < nf; ++f) {
    hot_at_start += std::max_element(count.begin() + offsets[f], count.begin() + offsets[f + 1]) - count.begin() ==
                    offsets[f];
  }
  EXPECT_LT(hot_at_start, nf / 2);

  // --zipf 0: uniform ids, no hot feature.
  SynthOptions flat = o;
  flat.zipf = 0;
  const HostBatch u = Collect(flat, 4096, 1);
  std::fill(count.begin(), count.end(), 0);
  for (uint32_t c : u.indices) ++count[c];
  const int64_t flat_hottest = *std::max_element(count.begin() + lo, count.begin() + hi);
  EXPECT_LT(flat_hottest, 10.0 * u.rows / (hi - lo) + 10);
}

TEST(Synth, FmFieldsIsTheSameBytesForASeedWhateverBatchSizeThreadsAndStartRow) {
  const SynthOptions o = FieldOpts(1003, 5000, 39);
  const HostBatch ref = Collect(o, 4096, 1);
  ExpectSameBatch(ref, Collect(o, 7, 1));
  ExpectSameBatch(ref, Collect(o, 100, 3));
  SynthGenerator gen(o);
  HostBatch part;
  gen.Fill(123, 10, &part);
  ASSERT_EQ(part.rows, 10);
  for (int64_t k = 0; k < 10 * 39; ++k) EXPECT_EQ(part.indices[k], ref.indices[123 * 39 + k]);
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(part.labels[i], ref.labels[123 + i]);

  // The recordIO files: the same seed gives the same bytes, another seed other bytes.
  test::TempDir dir;
  WriterOptions w;
  w.format = DataFormat::kRecordIO;
  SynthOptions binary = o;
  binary.task = "binary";
  WriteSynth(binary, dir / "a.pbr", w, false);
  binary.threads = 3;
  binary.batch_rows = 10;
  WriteSynth(binary, dir / "b.pbr", w, false);
  binary.seed = 8;
  WriteSynth(binary, dir / "c.pbr", w, false);
  const std::string a = test::ReadFile(dir / "a.pbr");
  EXPECT_GT(a.size(), 1003u * 39 * 4);
  EXPECT_EQ(a, test::ReadFile(dir / "b.pbr"));
  EXPECT_NE(a, test::ReadFile(dir / "c.pbr"));
  // binary labels are 0/1 and both occur.
  const HostBatch lb = Collect(FieldOpts(1003, 5000, 39), 4096, 1);
  SynthOptions bo = FieldOpts(1003, 5000, 39);
  bo.task = "binary";
  const HostBatch bb = Collect(bo, 4096, 1);
  EXPECT_EQ(bb.indices, lb.indices);
  const auto ones = std::count(bb.labels.begin(), bb.labels.end(), 1.0f);
  EXPECT_EQ(ones + std::count(bb.labels.begin(), bb.labels.end(), 0.0f), 1003);
  EXPECT_GT(ones, 200);
  EXPECT_LT(ones, 803);
}

TEST(Synth, FmFieldsBadOptionsNameTheOption) {
  auto message = [](SynthOptions o) -> std::string {
    try {
      SynthGenerator gen(o);
    } catch (const UserError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message(FieldOpts(10, 5, 6)).find("--cols"), std::string::npos);
  EXPECT_NE(message(FieldOpts(10, 0, 6)).find("--cols"), std::string::npos);
  SynthOptions o = FieldOpts(10, 50, 6);
  o.zipf = -1;
  EXPECT_NE(message(o).find("--zipf"), std::string::npos);
  o = FieldOpts(10, 50, -2);
  EXPECT_NE(message(o).find("--fields"), std::string::npos);
  EXPECT_EQ(message(FieldOpts(10, 6, 6)), "");  // one id per field is allowed
}

TEST(Synth, GenotypesAreDosagesWithPopulationFrequenciesDriftedByFst) {
  for (double fst : {0.02, 0.25}) {
    SCOPED_TRACE(fst);
    SynthOptions o = Opts(SynthKind::kGenotypes, 4000, 1500);
    o.populations = 4;
    o.fst = fst;
    SynthGenerator gen(o);
    const nlohmann::json t = gen.Truth();
    const HostBatch b = Collect(o, 1000, 2);
    const int64_t d = b.cols;
    std::vector<double> dosage_sum(4 * d, 0.0);
    std::vector<int64_t> count(4, 0);
    for (int64_t i = 0; i < b.rows; ++i) {
      const int k = static_cast<int>(b.labels[i]);
      ASSERT_GE(k, 0);
      ASSERT_LT(k, 4);
      ++count[k];
      for (int64_t j = 0; j < d; ++j) {
        const float v = b.values[i * d + j];
        ASSERT_TRUE(v == 0.0f || v == 1.0f || v == 2.0f) << v;
        dosage_sum[k * d + j] += v;
      }
    }
    // Truth: the spread of population frequencies around the ancestral one is F_ST
    // (Var(p_k) = F p (1 - p) under Balding-Nichols).
    double ratio = 0, abs_err = 0;
    for (int k = 0; k < 4; ++k) {
      ASSERT_GT(count[k], 700);
      for (int64_t j = 0; j < d; ++j) {
        const double p = t["ancestral_freq"][j].get<double>();
        EXPECT_GE(p, 0.05);
        EXPECT_LE(p, 0.95);
        const double pk = t["population_freq"][k][j].get<double>();
        ratio += (pk - p) * (pk - p) / (p * (1 - p));
        abs_err += std::abs(dosage_sum[k * d + j] / (2.0 * count[k]) - pk);
      }
    }
    ratio /= 4.0 * d;
    EXPECT_NEAR(ratio, fst, 0.15 * fst);
    // The rows follow their population's frequencies (standard error ~0.011 per cell).
    EXPECT_LT(abs_err / (4.0 * d), 0.015);
  }
}

TEST(Synth, BadOptionsAreUserErrorsNamingTheOption) {
  auto message = [](SynthOptions o) -> std::string {
    try {
      SynthGenerator gen(o);
    } catch (const UserError& e) {
      return e.what();
    }
    return "";
  };
  SynthOptions o = Opts(SynthKind::kLowRank, 10, 4);
  o.rank = 5;
  EXPECT_NE(message(o).find("--rank"), std::string::npos);
  o = Opts(SynthKind::kGenotypes, 10, 4);
  o.fst = 1.0;
  EXPECT_NE(message(o).find("--fst"), std::string::npos);
  o = Opts(SynthKind::kLinear, 10, 4);
  o.task = "ranking";
  EXPECT_NE(message(o).find("--task"), std::string::npos);
  o = Opts(SynthKind::kBlobs, 0, 4);
  EXPECT_NE(message(o).find("--rows"), std::string::npos);
  o = Opts(SynthKind::kLowRank, 10, 4);
  o.rank = 2;
  o.spectrum = {1.0};
  EXPECT_NE(message(o).find("--spectrum"), std::string::npos);
  EXPECT_THROW(ParseSynthKind("spirals"), UserError);
  EXPECT_EQ(ParseSynthKind("genotypes"), SynthKind::kGenotypes);
}

TEST(Synth, WriteSynthWritesTheDataAndTheTruthSidecar) {
  test::TempDir dir;
  SynthOptions o = Opts(SynthKind::kBlobs, 50, 3);
  o.k = 2;
  WriterOptions w;
  const SynthResult r = WriteSynth(o, dir / "blobs.csv", w);
  EXPECT_EQ(r.rows, 50);
  EXPECT_EQ(r.truth_path, dir / "blobs.csv.truth.json");
  const std::string csv = test::ReadFile(dir / "blobs.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 50);
  // label + 3 features per line
  EXPECT_EQ(std::count(csv.begin(), csv.begin() + csv.find('\n'), ','), 3);
  const nlohmann::json t = nlohmann::json::parse(test::ReadFile(r.truth_path));
  EXPECT_EQ(t["kind"], "blobs");
  EXPECT_EQ(t["centers"].size(), 2u);
  EXPECT_EQ(t, SynthGenerator(o).Truth());
}

}  // namespace
}  // namespace mlforge::io
