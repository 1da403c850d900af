// k-means inference on the real SageMaker artifacts in ../shared/data/artifacts: each model loads
// with the shape and centroid values the independent decoding recorded (decoded.json, and the
// decoded.npz bit for bit), and Predict agrees with a brute-force float64 reference on the
// centroids themselves, on random points around them and on near-ties (midpoints), for dense and
// CSR batches.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "algos/kmeans/kmeans.h"
#include "algos/kmeans/model.h"
#include "comm/communicator.h"
#include "core/batch.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/resources.h"
#include "io/archive.h"
#include "tests/testutil.h"

namespace mlforge::algos::kmeans {
namespace {

struct Artifact {
  const char* name;
  int64_t k, d;
};
constexpr Artifact kArtifacts[] = {
    {"kmeans_ufo_k10_d2", 10, 2},
    {"kmeans_ufo_k10_d2_with_state", 10, 2},
    {"kmeans_census_k8_d7_with_state", 8, 7},
};

std::string ArtifactPath(const std::string& name, const std::string& suffix) {
  return test::SharedData("artifacts/" + name + suffix);
}

// The float32 array `member` of a .npz (a zip of .npy files): checks the header says
// little-endian float32, C order and the expected shape, and returns the values.
std::vector<float> NpzFloat32(const std::string& npz, const std::string& member, int64_t rows, int64_t cols) {
  const std::string npy = io::ReadArchiveMember(npz, member);
  EXPECT_EQ(npy.substr(0, 6), "\x93NUMPY") << member;
  if (npy.size() < 10) return {};
  size_t header_len = 0, data_at = 0;
  if (npy[6] == 1) {
    header_len = static_cast<unsigned char>(npy[8]) | static_cast<size_t>(static_cast<unsigned char>(npy[9])) << 8;
    data_at = 10 + header_len;
  } else {
    uint32_t len = 0;
    std::memcpy(&len, npy.data() + 8, 4);
    header_len = len;
    data_at = 12 + header_len;
  }
  const std::string header = npy.substr(data_at - header_len, header_len);
  EXPECT_NE(header.find("'descr': '<f4'"), std::string::npos) << header;
  EXPECT_NE(header.find("'fortran_order': False"), std::string::npos) << header;
  EXPECT_NE(header.find("'shape': (" + std::to_string(rows) + ", " + std::to_string(cols) + ")"), std::string::npos)
      << header;
  const size_t n = static_cast<size_t>(rows * cols);
  EXPECT_EQ(npy.size() - data_at, n * 4) << member;
  std::vector<float> v(n);
  if (npy.size() - data_at >= n * 4) std::memcpy(v.data(), npy.data() + data_at, n * 4);
  return v;
}

// Brute force in float64: squared distance of x to every center.
std::vector<double> SquaredDistances(const Model& m, const float* x) {
  std::vector<double> out(static_cast<size_t>(m.k));
  for (int64_t j = 0; j < m.k; ++j) {
    double s = 0;
    for (int64_t q = 0; q < m.dim; ++q) {
      const double diff = static_cast<double>(x[q]) - m.center(j)[q];
      s += diff * diff;
    }
    out[static_cast<size_t>(j)] = s;
  }
  return out;
}

HostBatch DenseBatch(const std::vector<float>& rows, int64_t d) {
  HostBatch b;
  b.layout = Layout::kDense;
  b.cols = d;
  b.rows = static_cast<int64_t>(rows.size()) / d;
  b.values = rows;
  return b;
}

HostBatch CsrBatch(const std::vector<float>& rows, int64_t d) {
  HostBatch b;
  b.layout = Layout::kCsr;
  b.cols = d;
  b.rows = static_cast<int64_t>(rows.size()) / d;
  b.indptr.push_back(0);
  for (int64_t r = 0; r < b.rows; ++r) {
    for (int64_t q = 0; q < d; ++q) {
      const float v = rows[static_cast<size_t>(r * d + q)];
      if (v == 0.0f) continue;
      b.indices.push_back(static_cast<uint32_t>(q));
      b.values.push_back(v);
    }
    b.indptr.push_back(static_cast<int64_t>(b.values.size()));
  }
  return b;
}

// Checks every prediction against the float64 reference. The model's argmin ranks centers in
// float32 (kernels/kmeans_assign.h), so a center other than the reference's is accepted only when
// the two are tied to within float32 rounding of the expanded distance; the reported distance
// must always be the Euclidean distance to the reported center. Returns how many rows chose the
// reference's own center.
int64_t CheckAgainstReference(const Model& m, const std::vector<float>& rows, const Predictions& p,
                              const std::string& what) {
  const int64_t n = static_cast<int64_t>(rows.size()) / m.dim;
  EXPECT_EQ(static_cast<int64_t>(p.closest_cluster.size()), n) << what;
  EXPECT_EQ(static_cast<int64_t>(p.distance_to_cluster.size()), n) << what;
  int64_t same = 0;
  for (int64_t i = 0; i < n && i < static_cast<int64_t>(p.closest_cluster.size()); ++i) {
    const float* x = rows.data() + i * m.dim;
    const std::vector<double> d2 = SquaredDistances(m, x);
    const auto best = std::min_element(d2.begin(), d2.end()) - d2.begin();  // first minimum: lowest index
    const int32_t got = p.closest_cluster[static_cast<size_t>(i)];
    if (got < 0 || got >= m.k) {
      ADD_FAILURE() << what << " row " << i << ": cluster " << got << " is not in [0, " << m.k << ")";
      continue;
    }
    double xnorm = 0, cnorm = 0;
    for (int64_t q = 0; q < m.dim; ++q) {
      xnorm += static_cast<double>(x[q]) * x[q];
      cnorm += static_cast<double>(m.center(got)[q]) * m.center(got)[q] +
               static_cast<double>(m.center(best)[q]) * m.center(best)[q];
    }
    if (got == best) {
      ++same;
    } else {
      // float32 ranking error is about 2^-23 (||x||^2 + ||c||^2) times a small factor.
      const double slack = 1e-5 * (xnorm + cnorm + 1.0);
      EXPECT_LE(d2[static_cast<size_t>(got)] - d2[static_cast<size_t>(best)], slack)
          << what << " row " << i << ": cluster " << got << " instead of " << best;
    }
    const double want = std::sqrt(d2[static_cast<size_t>(got)]);
    EXPECT_NEAR(p.distance_to_cluster[static_cast<size_t>(i)], want, 2e-6 * want + 1e-6 * std::sqrt(xnorm + 1.0))
        << what << " row " << i;
  }
  return same;
}

class RealKMeansArtifact : public ::testing::TestWithParam<Artifact> {};

TEST_P(RealKMeansArtifact, LoadsWithTheDecodedShapeAndCentroids) {
  MLF_REQUIRE_SHARED_DATA();
  const Artifact a = GetParam();
  const Model m = LoadModel(ArtifactPath(a.name, ".model.tar.gz"));
  EXPECT_EQ(m.k, a.k);
  EXPECT_EQ(m.dim, a.d);
  ASSERT_EQ(static_cast<int64_t>(m.centers.size()), a.k * a.d);
  EXPECT_EQ(m.hyperparameters_json, "{}");  // a foreign model: no mlforge-model.json

  // decoded.json: the model_algo-1 array's shape, first values and sum.
  const auto doc = nlohmann::json::parse(ReadWholeFile(ArtifactPath(a.name, ".decoded.json")));
  bool found = false;
  for (const auto& member : doc["tar_members"]) {
    if (member["name"] != "model_algo-1") continue;
    found = true;
    const auto& arr = member["arrays"][0];
    EXPECT_EQ(arr["shape"], nlohmann::json({a.k, a.d}));
    EXPECT_EQ(arr["dtype"], "float32");
    const auto& first = arr["first_values"];
    for (size_t i = 0; i < first.size(); ++i) {
      EXPECT_EQ(m.centers[i], static_cast<float>(first[i].get<double>())) << "first_values[" << i << "]";
    }
    double sum = 0;
    for (float v : m.centers) sum += v;
    EXPECT_NEAR(sum, arr["sum_ignoring_nan"].get<double>(), 1e-6 * (1.0 + std::fabs(sum)));
  }
  EXPECT_TRUE(found) << "decoded.json lists no model_algo-1";

  // decoded.npz: every centroid, bit for bit.
  const std::vector<float> npz = NpzFloat32(ArtifactPath(a.name, ".decoded.npz"), "model_algo-1/_0.npy", a.k, a.d);
  ASSERT_EQ(npz.size(), m.centers.size());
  EXPECT_EQ(std::memcmp(npz.data(), m.centers.data(), npz.size() * 4), 0);
}

TEST_P(RealKMeansArtifact, PredictsLikeTheFloat64Reference) {
  MLF_REQUIRE_SHARED_DATA();
  const Artifact a = GetParam();
  const Model m = LoadModel(ArtifactPath(a.name, ".model.tar.gz"));
  ASSERT_EQ(m.k, a.k);
  Resources res(DeviceRequest::kCpu, 2, 0, comm::MakeSingleProcess());

  // 1. The centroids themselves: their own cluster (the first of equal ones) at distance 0.
  {
    const Predictions p = Predict(m, DenseBatch(m.centers, m.dim), res);
    ASSERT_EQ(static_cast<int64_t>(p.closest_cluster.size()), m.k);
    for (int64_t j = 0; j < m.k; ++j) {
      int64_t first_equal = j;
      for (int64_t i = 0; i < j; ++i) {
        if (std::equal(m.center(i), m.center(i) + m.dim, m.center(j))) {
          first_equal = i;
          break;
        }
      }
      EXPECT_EQ(p.closest_cluster[static_cast<size_t>(j)], first_equal) << "centroid " << j;
      EXPECT_EQ(p.distance_to_cluster[static_cast<size_t>(j)], 0.0f) << "centroid " << j;
    }
  }

  // 2. Random points over the centroids' bounding box (widened by half its size), points close
  // to each centroid, and midpoints of every pair (near-ties).
  std::vector<float> lo(static_cast<size_t>(m.dim), std::numeric_limits<float>::max());
  std::vector<float> hi(static_cast<size_t>(m.dim), std::numeric_limits<float>::lowest());
  for (int64_t j = 0; j < m.k; ++j) {
    for (int64_t q = 0; q < m.dim; ++q) {
      lo[q] = std::min(lo[q], m.center(j)[q]);
      hi[q] = std::max(hi[q], m.center(j)[q]);
    }
  }
  std::mt19937_64 rng(42);
  std::vector<float> rows;
  for (int i = 0; i < 3000; ++i) {
    for (int64_t q = 0; q < m.dim; ++q) {
      const float span = hi[q] - lo[q];
      std::uniform_real_distribution<float> u(lo[q] - 0.5f * span, hi[q] + 0.5f * span);
      rows.push_back(u(rng));
    }
  }
  std::normal_distribution<float> noise(0.0f, 1.0f);
  for (int64_t j = 0; j < m.k; ++j) {
    for (int rep = 0; rep < 20; ++rep) {
      for (int64_t q = 0; q < m.dim; ++q) rows.push_back(m.center(j)[q] + 0.01f * (hi[q] - lo[q]) * noise(rng));
    }
  }
  for (int64_t i = 0; i < m.k; ++i) {
    for (int64_t j = i + 1; j < m.k; ++j) {
      for (int64_t q = 0; q < m.dim; ++q) rows.push_back(0.5f * (m.center(i)[q] + m.center(j)[q]));
    }
  }
  const int64_t n = static_cast<int64_t>(rows.size()) / m.dim;
  const Predictions dense = Predict(m, DenseBatch(rows, m.dim), res);
  const int64_t same = CheckAgainstReference(m, rows, dense, std::string(a.name) + " dense");
  // Only near-ties may differ, and the random points are almost never near one.
  EXPECT_GE(same, n - m.k * (m.k - 1) / 2 - 5) << same << " of " << n;

  // The same rows as CSR give the same clusters and (to rounding) the same distances.
  const Predictions csr = Predict(m, CsrBatch(rows, m.dim), res);
  CheckAgainstReference(m, rows, csr, std::string(a.name) + " csr");
  int64_t agree = 0;
  for (int64_t i = 0; i < n; ++i) agree += csr.closest_cluster[i] == dense.closest_cluster[i];
  EXPECT_GE(agree, n - m.k * (m.k - 1) / 2) << agree << " of " << n;
}

TEST_P(RealKMeansArtifact, WrongWidthIsAUserError) {
  MLF_REQUIRE_SHARED_DATA();
  const Artifact a = GetParam();
  const Model m = LoadModel(ArtifactPath(a.name, ".model.tar.gz"));
  Resources res(DeviceRequest::kCpu, 1, 0, comm::MakeSingleProcess());
  std::vector<float> row(static_cast<size_t>(m.dim + 1), 1.0f);
  EXPECT_THROW(Predict(m, DenseBatch(row, m.dim + 1), res), UserError);
}

INSTANTIATE_TEST_SUITE_P(SageMaker, RealKMeansArtifact, ::testing::ValuesIn(kArtifacts),
                         [](const ::testing::TestParamInfo<Artifact>& info) { return std::string(info.param.name); });

TEST(KMeansPredict, HandComputedSmallModel) {
  Model m;
  m.k = 3;
  m.dim = 2;
  m.centers = {0, 0, 3, 4, 0, 0};  // centers 0 and 2 coincide: ties go to 0
  Resources res(DeviceRequest::kCpu, 1, 0, comm::MakeSingleProcess());
  const std::vector<float> rows = {0, 0, 3, 4, 6, 8, 1, 1, -3, -4};
  const Predictions p = Predict(m, DenseBatch(rows, 2), res);
  EXPECT_EQ(p.closest_cluster, (std::vector<int32_t>{0, 1, 1, 0, 0}));
  EXPECT_EQ(p.distance_to_cluster, (std::vector<float>{0, 0, 5, std::sqrt(2.0f), 5}));
}

}  // namespace
}  // namespace mlforge::algos::kmeans
