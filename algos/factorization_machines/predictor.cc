// The factorization machines predictor (algos/predictor.h), scoring and exact top-k.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <memory>
#include <queue>

#include "algos/factorization_machines/factorization_machines.h"
#include "core/error.h"
#include "io/archive.h"
#include "kernels/fm_step.h"

namespace mlforge::algos::factorization_machines {

namespace {

inline float Sigmoid(double x) { return static_cast<float>(1.0 / (1.0 + std::exp(-x))); }

std::string Trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return "";
  const size_t e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

int64_t ParseIndex(const std::string& text, const char* what) {
  int64_t v = -1;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  MLF_EXPECTS(r.ec == std::errc() && r.ptr == text.data() + text.size() && v >= 0,
              "request attribute {}: '{}' is not a non-negative integer", what, text);
  return v;
}

}  // namespace

std::vector<float> Score(const Model& model, const HostBatch& batch, int threads) {
  std::vector<float> out(static_cast<size_t>(batch.rows));
  kernels::FmForwardCpu(model.params, batch, out.data(), nullptr, threads);
  if (model.predictor_type == PredictorType::kBinaryClassifier) {
    for (float& y : out) y = Sigmoid(y);
  }
  return out;
}

TopK Recommend(const Model& model, const HostBatch& batch, int64_t item_begin, int64_t item_end, int64_t k,
               int threads) {
  const kernels::FmParams& p = model.params;
  MLF_EXPECTS(0 <= item_begin && item_begin < item_end && item_end <= p.d,
              "item range {}:{} is not within the model's features 0:{} (BEGIN:END, END exclusive, BEGIN < END)",
              item_begin, item_end, p.d);
  MLF_EXPECTS(k >= 1, "top_k = {} must be at least 1", k);
  const int64_t n = batch.rows, nf = p.k;
  TopK out;
  out.rows = n;
  out.k = k;
  out.items.assign(static_cast<size_t>(n * k), -1);
  out.scores.assign(static_cast<size_t>(n * k), std::numeric_limits<float>::quiet_NaN());
  std::vector<float> yhat(static_cast<size_t>(n)), s(static_cast<size_t>(n * nf));
  kernels::FmForwardCpu(p, batch, yhat.data(), s.data(), threads);
  const bool binary = model.predictor_type == PredictorType::kBinaryClassifier;
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max(1, threads)) if (n > 1)
  for (int64_t r = 0; r < n; ++r) {
    // The row's own non-zeros inside the range are not candidates.
    std::vector<int64_t> own;
    if (batch.layout == Layout::kCsr) {
      for (int64_t e = batch.indptr[r]; e < batch.indptr[r + 1]; ++e) {
        const int64_t j = batch.indices[e];
        if (j >= item_begin && j < item_end && batch.values[e] != 0.0f) own.push_back(j);
      }
    } else {
      for (int64_t j = item_begin; j < item_end; ++j) {
        if (batch.values[r * batch.cols + j] != 0.0f) own.push_back(j);
      }
    }
    std::sort(own.begin(), own.end());
    // The best k so far, worst on top; ties keep the lower index.
    using Entry = std::pair<double, int64_t>;
    auto better = [](const Entry& a, const Entry& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    std::priority_queue<Entry, std::vector<Entry>, decltype(better)> heap(better);
    const float* sr = s.data() + r * nf;
    for (int64_t i = item_begin; i < item_end; ++i) {
      if (!own.empty() && std::binary_search(own.begin(), own.end(), i)) continue;
      const float* vi = p.v.data() + i * nf;
      double dot = 0;
      for (int64_t f = 0; f < nf; ++f) dot += static_cast<double>(vi[f]) * sr[f];
      const Entry cand{static_cast<double>(yhat[r]) + p.w[i] + dot, i};
      if (static_cast<int64_t>(heap.size()) < k) {
        heap.push(cand);
      } else if (better(cand, heap.top())) {
        heap.pop();
        heap.push(cand);
      }
    }
    for (int64_t pos = static_cast<int64_t>(heap.size()) - 1; pos >= 0; --pos) {
      const Entry e = heap.top();
      heap.pop();
      out.items[r * k + pos] = e.second;
      out.scores[r * k + pos] = binary ? Sigmoid(e.first) : static_cast<float>(e.first);
    }
  }
  return out;
}

TopKRequest ParseTopKRequest(const std::string& attributes, int64_t feature_dim) {
  TopKRequest req;
  bool has_range = false;
  std::string_view rest = attributes;
  while (!rest.empty()) {
    const size_t cut = rest.find_first_of(";,");
    const std::string item = Trim(rest.substr(0, cut));
    rest = cut == std::string_view::npos ? std::string_view() : rest.substr(cut + 1);
    const size_t eq = item.find('=');
    if (item.empty() || eq == std::string::npos) continue;  // not ours
    const std::string key = Trim(std::string_view(item).substr(0, eq));
    const std::string value = Trim(std::string_view(item).substr(eq + 1));
    if (key == "top_k") {
      req.k = ParseIndex(value, "top_k");
      MLF_EXPECTS(req.k >= 1 && req.k <= 10000, "request attribute top_k={} must be in 1 .. 10000", value);
    } else if (key == "item_range") {
      const size_t colon = value.find(':');
      MLF_EXPECTS(colon != std::string::npos,
                  "request attribute item_range='{}': expected BEGIN:END (feature indices, END exclusive), e.g. "
                  "item_range=943:2625",
                  value);
      req.item_begin = ParseIndex(Trim(std::string_view(value).substr(0, colon)), "item_range");
      req.item_end = ParseIndex(Trim(std::string_view(value).substr(colon + 1)), "item_range");
      has_range = true;
    }
  }
  if (req.k == 0) {
    MLF_EXPECTS(!has_range, "request attribute item_range without top_k: add top_k=K to ask for recommendations");
    return req;
  }
  MLF_EXPECTS(has_range, "request attribute top_k={} needs item_range=BEGIN:END: the feature indices that are the "
              "items to recommend (e.g. item_range=943:2625)", req.k);
  MLF_EXPECTS(req.item_begin < req.item_end && req.item_end <= feature_dim,
              "request attribute item_range={}:{} is not within the model's features 0:{} (END exclusive, BEGIN < END)",
              req.item_begin, req.item_end, feature_dim);
  return req;
}

namespace {

class FmPredictor final : public Predictor {
 public:
  explicit FmPredictor(Model model) : model_(std::move(model)) {}
  std::string algorithm() const override { return "factorization-machines"; }
  int64_t feature_dim() const override { return model_.dim(); }
  std::string Describe() const override {
    return fmt::format("factorization-machines {} model (feature_dim={}, num_factors={})",
                       PredictorTypeName(model_.predictor_type), model_.dim(), model_.factors());
  }
  bool csv_request() const override { return false; }  // SPEC.md 3.5: JSON and recordIO only
  PredictionTable Predict(const HostBatch& batch, Resources& res) const override {
    return PredictWithAttributes(batch, res, "");
  }
  PredictionTable PredictWithAttributes(const HostBatch& batch, Resources& res,
                                        const std::string& attributes) const override {
    const TopKRequest req = ParseTopKRequest(attributes, model_.dim());
    PredictionTable t;
    t.rows = batch.rows;
    OutputColumn score;
    score.name = "score";
    score.values = Score(model_, batch, res.threads());
    if (model_.predictor_type == PredictorType::kBinaryClassifier) {
      OutputColumn label;
      label.name = "predicted_label";
      label.json_integer = true;
      label.values.resize(score.values.size());
      for (size_t i = 0; i < score.values.size(); ++i) label.values[i] = score.values[i] >= 0.5f ? 1.0f : 0.0f;
      t.columns.push_back(std::move(score));
      t.columns.push_back(std::move(label));
    } else {
      t.columns.push_back(std::move(score));
    }
    if (req.k > 0) {
      MLF_EXPECTS(batch.rows * req.k <= kMaxRecommendationsPerCall,
                  "top_k={} for {} rows asks for {} recommendations, more than the {} one request may return: send "
                  "fewer rows per request or ask for a smaller top_k",
                  req.k, batch.rows, batch.rows * req.k, kMaxRecommendationsPerCall);
      const TopK top = Recommend(model_, batch, req.item_begin, req.item_end, req.k, res.threads());
      OutputColumn items, scores;
      items.name = "top_k_items";
      items.width = req.k;
      items.json_array = true;
      items.json_integer = true;
      items.values.assign(top.items.begin(), top.items.end());
      scores.name = "top_k_scores";
      scores.width = req.k;
      scores.json_array = true;
      scores.values = top.scores;
      t.columns.push_back(std::move(items));
      t.columns.push_back(std::move(scores));
    }
    return t;
  }

 private:
  const Model model_;
};

}  // namespace

std::unique_ptr<Predictor> LoadPredictor(const io::ModelSource& source) {
  return std::make_unique<FmPredictor>(LoadModel(source));
}

}  // namespace mlforge::algos::factorization_machines
