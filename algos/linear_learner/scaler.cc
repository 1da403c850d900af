#include "algos/linear_learner/scaler.h"

#include <algorithm>
#include <cmath>

#include "comm/communicator.h"
#include "core/error.h"
#include "core/log.h"

namespace mlforge::algos::linear_learner {

ScalerStats::ScalerStats(int64_t dim, int64_t classes)
    : d(dim),
      sum(static_cast<size_t>(dim), 0.0),
      sum_sq(static_cast<size_t>(dim), 0.0),
      class_rows(static_cast<size_t>(classes), 0.0) {}

void ScalerStats::Add(const HostBatch& batch, int64_t rows) {
  MLF_ASSERT(rows <= batch.rows && batch.cols == d);
  MLF_ASSERT(batch.has_labels());
  if (batch.layout == Layout::kDense) {
    for (int64_t i = 0; i < rows; ++i) {
      const float* x = batch.values.data() + i * d;
      for (int64_t j = 0; j < d; ++j) {
        const double v = x[j];
        sum[j] += v;
        sum_sq[j] += v * v;
      }
    }
  } else {
    any_sparse = true;
    for (int64_t p = batch.indptr[0]; p < batch.indptr[rows]; ++p) {
      const double v = batch.values[p];
      sum[batch.indices[p]] += v;
      sum_sq[batch.indices[p]] += v * v;
    }
  }
  for (int64_t i = 0; i < rows; ++i) {
    const double y = batch.labels[i];
    label_sum += y;
    label_sum_sq += y * y;
    if (class_rows.size() == 2) {
      class_rows[y > 0.5 ? 1 : 0] += 1;
    } else if (!class_rows.empty()) {
      class_rows[static_cast<size_t>(y)] += 1;
    }
  }
  this->rows += static_cast<double>(rows);
}

void ScalerStats::AllReduce(comm::Communicator& comm) {
  if (comm.world_size() == 1) return;
  std::vector<double> buf;
  buf.reserve(2 * sum.size() + 4);
  buf.insert(buf.end(), sum.begin(), sum.end());
  buf.insert(buf.end(), sum_sq.begin(), sum_sq.end());
  buf.push_back(rows);
  buf.push_back(label_sum);
  buf.push_back(label_sum_sq);
  buf.push_back(any_sparse ? 1.0 : 0.0);
  buf.insert(buf.end(), class_rows.begin(), class_rows.end());
  comm.AllReduceSum(buf.data(), buf.size());
  std::copy(buf.begin(), buf.begin() + d, sum.begin());
  std::copy(buf.begin() + d, buf.begin() + 2 * d, sum_sq.begin());
  rows = buf[2 * d];
  label_sum = buf[2 * d + 1];
  label_sum_sq = buf[2 * d + 2];
  any_sparse = buf[2 * d + 3] > 0;
  std::copy(buf.begin() + 2 * d + 4, buf.end(), class_rows.begin());
}

Scaler Scaler::Identity(int64_t d) {
  Scaler s;
  s.d = d;
  s.mean.assign(static_cast<size_t>(d), 0.0);
  s.stdev.assign(static_cast<size_t>(d), 1.0);
  return s;
}

namespace {
// Standard deviation (population) from sums, 1 when there is no usable spread.
double Spread(double sum, double sum_sq, double n) {
  if (n <= 0) return 1.0;
  const double mean = sum / n;
  const double var = std::max(0.0, sum_sq / n - mean * mean);
  const double sd = std::sqrt(var);
  // Relative to the magnitude: a constant column's float64 variance is rounding noise.
  return sd > 1e-12 * std::max(1.0, std::fabs(mean)) ? sd : 1.0;
}
}  // namespace

Scaler Scaler::FromStats(const Config& cfg, const ScalerStats& st) {
  Scaler s = Identity(st.d);
  s.sample_rows = static_cast<int64_t>(st.rows);
  if (st.rows <= 0) return s;
  s.scale_data = cfg.normalize_data;
  s.shift_data =
      cfg.unbias_data && cfg.use_bias && !st.any_sparse && (cfg.normalize_data || !cfg.unbias_data_auto);
  s.scale_label = cfg.normalize_label;
  s.shift_label = cfg.unbias_label && cfg.use_bias && (cfg.normalize_label || !cfg.unbias_label_auto);
  for (int64_t j = 0; j < st.d; ++j) {
    if (s.shift_data) s.mean[j] = st.sum[j] / st.rows;
    if (s.scale_data) s.stdev[j] = Spread(st.sum[j], st.sum_sq[j], st.rows);
  }
  if (s.shift_label) s.mean_label = st.label_sum / st.rows;
  if (s.scale_label) s.stdev_label = Spread(st.label_sum, st.label_sum_sq, st.rows);
  return s;
}

std::string Scaler::Describe() const {
  auto list = [](const std::vector<double>& v) {
    constexpr size_t kMax = 1000;
    std::string out = "[";
    for (size_t i = 0; i < std::min(v.size(), kMax); ++i) out += (i ? ", " : "") + log::FormatValue(v[i]);
    if (v.size() > kMax) out += fmt::format(", ... ({} more)", v.size() - kMax);
    return out + "]";
  };
  return fmt::format(
      "Scaling model computed with parameters: {{'stdev_weight': {}, 'stdev_label': {}, "
      "'mean_label': {}, 'mean_weight': {}}}",
      scale_data ? list(stdev) : "None", scale_label ? log::FormatValue(stdev_label) : "None",
      shift_label ? log::FormatValue(mean_label) : "None", shift_data ? list(mean) : "None");
}

void Scaler::Fold(const float* w, const float* b, int64_t mk, bool raw_label, float* w_eff,
                  float* b_eff) const {
  MLF_ASSERT(b != nullptr || (!shift_data && !(raw_label && shift_label)));
  const double ls = raw_label ? stdev_label : 1.0;
  std::vector<double> shift(static_cast<size_t>(mk), 0.0);
  for (int64_t i = 0; i < d; ++i) {
    const double f = ls / stdev[i];
    const float* src = w + i * mk;
    float* dst = w_eff + i * mk;
    for (int64_t c = 0; c < mk; ++c) {
      const double v = f * src[c];
      dst[c] = static_cast<float>(v);
      if (mean[i] != 0) shift[c] += mean[i] * v;
    }
  }
  for (int64_t c = 0; c < mk; ++c) {
    const double bias = b ? ls * b[c] + (raw_label ? mean_label : 0.0) : 0.0;
    b_eff[c] = static_cast<float>(bias - shift[c]);
  }
}

void Scaler::GradientToNormalised(float* gw, const float* gb, int64_t mk) const {
  for (int64_t i = 0; i < d; ++i) {
    float* row = gw + i * mk;
    const double inv = 1.0 / stdev[i];
    const double mu = mean[i];
    if (mu == 0 && inv == 1.0) continue;
    for (int64_t c = 0; c < mk; ++c) row[c] = static_cast<float>((row[c] - mu * gb[c]) * inv);
  }
}

}  // namespace mlforge::algos::linear_learner
