// The PCA predictor (algos/predictor.h): "projections" / "projection" as SageMaker's PCA endpoint
// answers (SPEC.md 3.6), computed on the host.
#include "algos/predictor.h"

#include <Eigen/Core>
#include <fmt/format.h>

#include <cmath>
#include <memory>

#include "algos/pca/pca.h"
#include "core/error.h"
#include "core/resources.h"
#include "io/archive.h"

namespace mlforge::algos::pca {

namespace {
using RowMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
constexpr int64_t kBlock = 1024;
}  // namespace

std::vector<float> Project(const Model& m, const HostBatch& batch, int threads, std::vector<double>* row_sq_error) {
  MLF_EXPECTS(batch.cols == m.dim, "input has {} feature(s) per row but the PCA model was trained on {}", batch.cols,
              m.dim);
  const int64_t n = batch.rows, d = m.dim, k = m.components;
  std::vector<float> out(static_cast<size_t>(n * k));
  if (row_sq_error != nullptr) row_sq_error->assign(static_cast<size_t>(n), 0.0);
  if (n == 0) return out;
  Eigen::Map<const RowMajorF> V(m.v.data(), d, k);
  if (batch.layout == Layout::kDense) {
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads > 0 ? threads : 1, blocks)));
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t i0 = b * kBlock, i1 = std::min(n, i0 + kBlock);
      RowMajorF y = Eigen::Map<const RowMajorF>(batch.values.data() + i0 * d, i1 - i0, d);
      if (!m.mean.empty()) y.rowwise() -= Eigen::Map<const Eigen::RowVectorXf>(m.mean.data(), d);
      Eigen::Map<RowMajorF> P(out.data() + i0 * k, i1 - i0, k);
      P.noalias() = y * V;
      if (row_sq_error != nullptr) {
        for (int64_t i = i0; i < i1; ++i) {
          double yy = 0, pp = 0;
          for (int64_t j = 0; j < d; ++j) yy += static_cast<double>(y(i - i0, j)) * y(i - i0, j);
          for (int64_t j = 0; j < k; ++j) pp += static_cast<double>(P(i - i0, j)) * P(i - i0, j);
          (*row_sq_error)[i] = std::max(0.0, yy - pp);
        }
      }
    }
    return out;
  }
  // CSR: x . v - mean . v (float64), never densified.
  std::vector<double> mv(static_cast<size_t>(k), 0.0);
  double mm = 0;
  for (size_t j = 0; j < m.mean.size(); ++j) {
    mm += static_cast<double>(m.mean[j]) * m.mean[j];
    for (int64_t c = 0; c < k; ++c) mv[c] += static_cast<double>(m.mean[j]) * m.v[j * k + c];
  }
  std::vector<double> acc(static_cast<size_t>(k));
  std::vector<double> dense_row(row_sq_error != nullptr ? static_cast<size_t>(d) : 0, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t p = batch.indptr[i]; p < batch.indptr[i + 1]; ++p) {
      const uint32_t j = batch.indices[p];
      MLF_EXPECTS(j < static_cast<uint64_t>(d), "a sparse row has column index {} but the PCA model has feature_dim {}",
                  j, d);
      const double v = batch.values[p];
      const float* vr = m.v.data() + static_cast<int64_t>(j) * k;
      for (int64_t c = 0; c < k; ++c) acc[c] += v * vr[c];
      if (row_sq_error != nullptr) dense_row[j] += v;
    }
    double pp = 0;
    for (int64_t c = 0; c < k; ++c) {
      const double p = acc[c] - mv[c];
      out[i * k + c] = static_cast<float>(p);
      pp += p * p;
    }
    if (row_sq_error != nullptr) {
      // ||x - mean||^2 = ||x||^2 - 2 x.mean + ||mean||^2 (repeated columns merged first)
      double xx = 0, xm = 0;
      for (int64_t p = batch.indptr[i]; p < batch.indptr[i + 1]; ++p) {
        const uint32_t j = batch.indices[p];
        const double v = dense_row[j];
        if (v == 0) continue;  // zero, or a repeat already merged
        xx += v * v;
        if (!m.mean.empty()) xm += v * m.mean[j];
        dense_row[j] = 0;
      }
      (*row_sq_error)[i] = std::max(0.0, xx - 2 * xm + mm - pp);
    }
  }
  return out;
}

namespace {

class PcaPredictor final : public Predictor {
 public:
  explicit PcaPredictor(Model model) : model_(std::move(model)) {}
  std::string algorithm() const override { return "pca"; }
  int64_t feature_dim() const override { return model_.dim; }
  std::string Describe() const override {
    return fmt::format("pca model (num_components={}, feature_dim={}, {})", model_.components, model_.dim,
                       model_.mean.empty() ? "no mean" : "mean subtracted");
  }
  std::string json_list_key() const override { return "projections"; }
  PredictionTable Predict(const HostBatch& batch, Resources& res) const override {
    PredictionTable t;
    t.rows = batch.rows;
    t.columns.resize(1);
    t.columns[0].name = "projection";
    t.columns[0].width = model_.components;
    t.columns[0].json_array = true;
    // Projection is a small GEMM per request; it runs on the host on either device (the server
    // gives each worker one thread).
    t.columns[0].values = Project(model_, batch, res.threads());
    return t;
  }

 private:
  const Model model_;
};

}  // namespace

std::unique_ptr<Predictor> LoadPredictor(const io::ModelSource& source) {
  return std::make_unique<PcaPredictor>(LoadModel(source));
}

}  // namespace mlforge::algos::pca
