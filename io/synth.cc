#include "io/synth.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <exception>
#include <limits>
#include <mutex>
#include <thread>
#include <unistd.h>

#include "core/error.h"

namespace mlforge::io {
namespace {

// --- Random numbers -------------------------------------------------------------------------
// Hand-written generators and samplers (not <random>'s distributions, whose algorithms differ
// between standard libraries) so that a seed names the same bytes on every platform.

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Seed of an independent stream: `stream` separates parameters from rows, `index` is the row.
uint64_t StreamSeed(uint64_t seed, uint64_t stream, uint64_t index) {
  uint64_t s = seed;
  uint64_t a = SplitMix64(&s);
  s = a ^ (stream * 0xD1B54A32D192ED03ull);
  uint64_t b = SplitMix64(&s);
  s = b ^ (index * 0xA0761D6478BD642Full);
  return SplitMix64(&s);
}

constexpr uint64_t kParamStream = 1;
constexpr uint64_t kRowStream = 2;

// xoshiro256** seeded through splitmix64 (the seeding its authors recommend).
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (auto& w : s_) w = SplitMix64(&seed);
  }
  // Save / resume a stream between draws (only between draws that use no Normal() spare).
  static Rng FromState(const uint64_t state[4]) {
    Rng r(0);
    for (int i = 0; i < 4; ++i) r.s_[i] = state[i];
    return r;
  }
  void SaveState(uint64_t state[4]) const {
    for (int i = 0; i < 4; ++i) state[i] = s_[i];
  }
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Uniform integer in [0, n); rejection removes the modulo bias.
  uint64_t Below(uint64_t n) {
    const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
    uint64_t x;
    do {
      x = Next();
    } while (x >= limit);
    return x % n;
  }
  // Standard normal (Box-Muller; the second value of each pair is kept for the next call).
  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - Uniform();  // (0, 1]: log() stays finite
    const double u2 = Uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double theta = 6.283185307179586 * u2;
    spare_ = r * std::sin(theta);
    has_spare_ = true;
    return r * std::cos(theta);
  }
  // Gamma(shape, 1), Marsaglia & Tsang; shape < 1 via the U^(1/shape) boost.
  double Gamma(double shape) {
    if (shape < 1.0) {
      const double u = 1.0 - Uniform();
      return Gamma(shape + 1.0) * std::pow(u, 1.0 / shape);
    }
    const double d = shape - 1.0 / 3.0;
    const double c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x, v;
      do {
        x = Normal();
        v = 1.0 + c * x;
      } while (v <= 0.0);
      v = v * v * v;
      const double u = 1.0 - Uniform();
      if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
      if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
    }
  }
  // Beta(a, b) from two gammas; `fallback` when both underflow to 0 (tiny a and b).
  double Beta(double a, double b, double fallback) {
    const double x = Gamma(a);
    const double y = Gamma(b);
    return x + y > 0.0 ? x / (x + y) : fallback;
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// One genotype call: both alleles (1 = ALT with probability f), first draw in bit 0, second in
// bit 1. Fill and DrawGenotypes share it, so the VCF writer gives the recordIO data's dosages.
inline int DrawCall(Rng& rng, double f) {
  const int first = rng.Uniform() < f ? 1 : 0;
  const int second = rng.Uniform() < f ? 1 : 0;
  return first | (second << 1);
}

enum class Task { kRegression, kBinary, kMulticlass };

Task ParseTask(const std::string& s, SynthKind kind) {
  if (s == "regression") return Task::kRegression;
  if (s == "binary") return Task::kBinary;
  if (s == "multiclass" && kind == SynthKind::kLinear) return Task::kMulticlass;
  MLF_FAIL("--task '{}' is not valid for synth {}: use {}", s, SynthKindName(kind),
           kind == SynthKind::kLinear ? "regression, binary or multiclass" : "regression or binary");
}

std::vector<double> Take(const std::vector<double>& v, size_t begin, size_t n) {
  return std::vector<double>(v.begin() + begin, v.begin() + begin + n);
}

nlohmann::json Matrix(const std::vector<double>& v, int64_t rows, int64_t cols) {
  nlohmann::json m = nlohmann::json::array();
  for (int64_t r = 0; r < rows; ++r) m.push_back(Take(v, r * cols, cols));
  return m;
}

// fm with fields (SynthOptions::fields > 0): the ground-truth FM and the id distribution of
// every field. Field f owns columns [offsets[f], offsets[f + 1]); over those columns, cdf holds
// the CDF of the popularity ranks and perm the column of each rank.
struct FieldModel {
  std::vector<int64_t> offsets;
  std::vector<double> cdf;
  std::vector<uint32_t> perm;
  std::vector<double> w, v;  // cols, cols x factors

  void Draw(const SynthOptions& o, Rng& rng);
  double Row(const SynthOptions& o, double w0, bool regression, Rng& rng, uint32_t* cols,
             std::vector<double>* sums) const;
};

// Drawn after w0: cardinalities, w, v, then the rank -> column permutations.
void FieldModel::Draw(const SynthOptions& o, Rng& rng) {
  const int64_t d = o.cols;
  const int nf = o.fields;
  // Cardinalities: 1 each, plus the other d - fields columns shared in proportion to log-uniform
  // weights over four decades (Criteo's fields range from a few values to millions); the rounding
  // remainder goes to the heaviest field.
  std::vector<double> weight(nf);
  double total = 0;
  for (auto& x : weight) total += (x = std::exp(rng.Uniform(0.0, std::log(1e4))));
  std::vector<int64_t> card(nf, 1);
  int64_t left = d - nf;
  for (int f = 0; f < nf; ++f) {
    const auto share = static_cast<int64_t>(std::floor(static_cast<double>(d - nf) * (weight[f] / total)));
    card[f] += share;
    left -= share;
  }
  card[std::max_element(weight.begin(), weight.end()) - weight.begin()] += left;
  offsets.assign(nf + 1, 0);
  for (int f = 0; f < nf; ++f) offsets[f + 1] = offsets[f] + card[f];
  MLF_ASSERT(offsets[nf] == d);

  // Scales: the linear part (fields terms) has variance ~0.5 and the pairwise part (fields
  // (fields - 1) / 2 dot products of `factors` terms) variance ~1, as in the user/item mode.
  const double pairs = std::max(1.0, 0.5 * nf * (nf - 1));
  const double sw = std::sqrt(0.5 / nf);
  const double sv = std::pow(pairs * o.factors, -0.25);
  w.resize(d);
  for (auto& x : w) x = sw * rng.Normal();
  v.resize(static_cast<size_t>(d) * o.factors);
  for (auto& x : v) x = sv * rng.Normal();

  cdf.resize(d);
  perm.resize(d);
  for (int f = 0; f < nf; ++f) {
    const int64_t lo = offsets[f], c = card[f];
    double sum = 0;
    for (int64_t j = 0; j < c; ++j) cdf[lo + j] = (sum += std::pow(static_cast<double>(j + 1), -o.zipf));
    for (int64_t j = 0; j < c; ++j) cdf[lo + j] /= sum;
    cdf[lo + c - 1] = 1.0;  // a Uniform() < 1 always lands inside the field
    // Fisher-Yates: rank j -> column perm[lo + j].
    for (int64_t j = 0; j < c; ++j) perm[lo + j] = static_cast<uint32_t>(lo + j);
    for (int64_t j = c - 1; j > 0; --j)
      std::swap(perm[lo + j], perm[lo + static_cast<int64_t>(rng.Below(j + 1))]);
  }
}

// One row: its ids (one per field, hence ascending) into `cols`, and its label. `sums` is scratch
// of `factors` doubles.
double FieldModel::Row(const SynthOptions& o, double w0, bool regression, Rng& rng, uint32_t* cols,
                       std::vector<double>* sums) const {
  const int k = o.factors;
  std::fill(sums->begin(), sums->end(), 0.0);
  double s = w0, self = 0;
  for (int f = 0; f < o.fields; ++f) {
    const double* field_cdf = &cdf[offsets[f]];
    const int64_t c = offsets[f + 1] - offsets[f];
    const int64_t rank = std::upper_bound(field_cdf, field_cdf + c, rng.Uniform()) - field_cdf;
    const uint32_t col = perm[offsets[f] + rank];
    cols[f] = col;
    s += w[col];
    const double* vc = &v[static_cast<size_t>(col) * k];
    for (int j = 0; j < k; ++j) {
      (*sums)[j] += vc[j];
      self += vc[j] * vc[j];
    }
  }
  double sq = 0;
  for (int j = 0; j < k; ++j) sq += (*sums)[j] * (*sums)[j];
  s += 0.5 * (sq - self) + o.noise * rng.Normal();
  return regression ? s : (s > w0 ? 1.0 : 0.0);
}

}  // namespace

SynthKind ParseSynthKind(const std::string& s) {
  if (s == "blobs") return SynthKind::kBlobs;
  if (s == "linear") return SynthKind::kLinear;
  if (s == "lowrank") return SynthKind::kLowRank;
  if (s == "fm") return SynthKind::kFm;
  if (s == "genotypes") return SynthKind::kGenotypes;
  MLF_FAIL("unknown synth kind '{}': use blobs, linear, lowrank, fm or genotypes", s);
}

const char* SynthKindName(SynthKind k) {
  switch (k) {
    case SynthKind::kBlobs: return "blobs";
    case SynthKind::kLinear: return "linear";
    case SynthKind::kLowRank: return "lowrank";
    case SynthKind::kFm: return "fm";
    case SynthKind::kGenotypes: return "genotypes";
  }
  return "?";
}

// Model parameters, drawn once from the seed (row-major where 2-D).
struct SynthGenerator::Params {
  Task task = Task::kRegression;
  int64_t outputs = 1;           // linear: rows of `weights` (classes for multiclass, else 1)
  std::vector<double> centers;   // blobs: k x cols
  std::vector<double> weights;   // linear: outputs x cols
  std::vector<double> bias;      // linear: outputs
  std::vector<double> mean;      // lowrank: cols
  std::vector<double> components;  // lowrank: rank x cols, orthonormal rows
  std::vector<double> stddevs;   // lowrank: rank
  double w0 = 0;                 // fm
  std::vector<double> w_users, w_items;  // fm
  std::vector<double> v_users, v_items;  // fm: users x factors, items x factors
  FieldModel fields;  // fm with fields
  std::vector<double> ancestral;   // genotypes: cols
  std::vector<double> pop_freq;    // genotypes: populations x cols
};

SynthGenerator::SynthGenerator(SynthOptions options) : opt_(std::move(options)), params_(new Params) {
  SynthOptions& o = opt_;
  Params& p = *params_;
  MLF_EXPECTS(o.rows >= 1, "--rows must be at least 1 (got {})", o.rows);
  MLF_EXPECTS(o.batch_rows >= 1, "synth batch size must be at least 1 (got {})", o.batch_rows);
  if (o.kind == SynthKind::kFm && o.fields != 0) {
    MLF_EXPECTS(o.fields >= 1, "--fields must be >= 0 (0: one user and one item per row; got {})", o.fields);
    MLF_EXPECTS(o.cols >= o.fields,
                "synth fm --fields {}: --cols is the total number of features over the fields and must be at "
                "least --fields (got --cols {})",
                o.fields, o.cols);
    MLF_EXPECTS(o.cols <= std::numeric_limits<uint32_t>::max(),
                "synth fm: --cols must fit in 32-bit column indices (got {})", o.cols);
    MLF_EXPECTS(o.zipf >= 0 && std::isfinite(o.zipf), "--zipf must be >= 0 (0: uniform ids; got {})", o.zipf);
  } else if (o.kind == SynthKind::kFm) {
    MLF_EXPECTS(o.users >= 1 && o.items >= 1, "--users and --items must be at least 1 (got {} and {})",
                o.users, o.items);
    MLF_EXPECTS(o.cols <= 0 || o.cols == o.users + o.items,
                "synth fm: --cols is users + items = {}; drop --cols or set --users/--items (got --cols {})",
                o.users + o.items, o.cols);
    MLF_EXPECTS(o.users + o.items <= std::numeric_limits<uint32_t>::max(),
                "synth fm: users + items must fit in 32-bit column indices");
    o.cols = o.users + o.items;
  }
  MLF_EXPECTS(o.cols >= 1, "--cols must be at least 1 (got {})", o.cols);
  MLF_EXPECTS(o.noise >= 0 && std::isfinite(o.noise), "--noise must be >= 0 (got {})", o.noise);
  if (o.kind == SynthKind::kLowRank) o.labels = false;  // PCA data: there is nothing to label

  Rng rng(StreamSeed(o.seed, kParamStream, 0));
  const int64_t d = o.cols;
  switch (o.kind) {
    case SynthKind::kBlobs: {
      MLF_EXPECTS(o.k >= 1, "--k must be at least 1 (got {})", o.k);
      MLF_EXPECTS(o.cluster_std >= 0, "--cluster-std must be >= 0 (got {})", o.cluster_std);
      MLF_EXPECTS(o.center_box > 0, "--center-box must be > 0 (got {})", o.center_box);
      p.centers.resize(static_cast<size_t>(o.k) * d);
      for (auto& c : p.centers) c = rng.Uniform(-o.center_box, o.center_box);
      break;
    }
    case SynthKind::kLinear: {
      p.task = ParseTask(o.task, o.kind);
      if (p.task == Task::kMulticlass) {
        MLF_EXPECTS(o.classes >= 2, "--classes must be at least 2 for --task multiclass (got {})",
                    o.classes);
        p.outputs = o.classes;
      }
      const double scale = 1.0 / std::sqrt(static_cast<double>(d));
      p.weights.resize(p.outputs * d);
      for (auto& w : p.weights) w = scale * rng.Normal();
      p.bias.resize(p.outputs);
      for (auto& b : p.bias) b = 0.2 * rng.Normal();
      break;
    }
    case SynthKind::kLowRank: {
      MLF_EXPECTS(o.rank >= 1 && o.rank <= d, "--rank must be in [1, cols={}] (got {})", d, o.rank);
      if (o.spectrum.empty()) {
        for (int j = 0; j < o.rank; ++j) o.spectrum.push_back(10.0 * std::pow(0.7, j));
      }
      MLF_EXPECTS(static_cast<int>(o.spectrum.size()) == o.rank,
                  "--spectrum has {} values but --rank is {}; give one standard deviation per component",
                  o.spectrum.size(), o.rank);
      for (double s : o.spectrum) MLF_EXPECTS(s > 0, "--spectrum values must be > 0 (got {})", s);
      p.stddevs = o.spectrum;
      p.mean.resize(d);
      for (auto& m : p.mean) m = rng.Uniform(-1.0, 1.0);
      // Gaussian vectors orthonormalised by modified Gram-Schmidt (twice, for float64 accuracy);
      // a near-dependent draw is redrawn, which for rank <= cols has probability ~0.
      p.components.assign(static_cast<size_t>(o.rank) * d, 0.0);
      for (int j = 0; j < o.rank; ++j) {
        double* v = &p.components[static_cast<size_t>(j) * d];
        for (int attempt = 0;; ++attempt) {
          MLF_ASSERT_MSG(attempt < 100, "cannot draw {} orthonormal vectors in {} dimensions", o.rank, d);
          for (int64_t c = 0; c < d; ++c) v[c] = rng.Normal();
          for (int pass = 0; pass < 2; ++pass) {
            for (int i = 0; i < j; ++i) {
              const double* u = &p.components[static_cast<size_t>(i) * d];
              double dot = 0;
              for (int64_t c = 0; c < d; ++c) dot += u[c] * v[c];
              for (int64_t c = 0; c < d; ++c) v[c] -= dot * u[c];
            }
          }
          double norm = 0;
          for (int64_t c = 0; c < d; ++c) norm += v[c] * v[c];
          norm = std::sqrt(norm);
          if (norm < 1e-6) continue;
          for (int64_t c = 0; c < d; ++c) v[c] /= norm;
          break;
        }
      }
      break;
    }
    case SynthKind::kFm: {
      p.task = ParseTask(o.task, o.kind);
      MLF_EXPECTS(o.factors >= 1, "--factors must be at least 1 (got {})", o.factors);
      p.w0 = rng.Normal();
      if (o.fields > 0) {
        p.fields.Draw(o, rng);
        break;
      }
      p.w_users.resize(o.users);
      p.w_items.resize(o.items);
      for (auto& w : p.w_users) w = 0.5 * rng.Normal();
      for (auto& w : p.w_items) w = 0.5 * rng.Normal();
      // Factor entries with variance 1/sqrt(factors) give <v_u, v_i> variance ~1.
      const double s = std::pow(static_cast<double>(o.factors), -0.25);
      p.v_users.resize(static_cast<size_t>(o.users) * o.factors);
      p.v_items.resize(static_cast<size_t>(o.items) * o.factors);
      for (auto& v : p.v_users) v = s * rng.Normal();
      for (auto& v : p.v_items) v = s * rng.Normal();
      break;
    }
    case SynthKind::kGenotypes: {
      MLF_EXPECTS(o.populations >= 1, "--populations must be at least 1 (got {})", o.populations);
      MLF_EXPECTS(o.fst > 0 && o.fst < 1, "--fst must be in (0, 1) (got {})", o.fst);
      p.ancestral.resize(d);
      for (auto& a : p.ancestral) a = rng.Uniform(0.05, 0.95);
      p.pop_freq.resize(static_cast<size_t>(o.populations) * d);
      const double f = (1.0 - o.fst) / o.fst;
      for (int k = 0; k < o.populations; ++k) {
        for (int64_t c = 0; c < d; ++c) {
          const double a = p.ancestral[c];
          p.pop_freq[static_cast<size_t>(k) * d + c] = rng.Beta(a * f, (1.0 - a) * f, a);
        }
      }
      break;
    }
  }
}

SynthGenerator::~SynthGenerator() = default;

bool SynthGenerator::has_labels() const { return opt_.labels && opt_.kind != SynthKind::kLowRank; }

void SynthGenerator::Fill(int64_t first_row, int64_t n, HostBatch* batch) const {
  MLF_ASSERT(first_row >= 0 && n >= 0 && first_row + n <= opt_.rows);
  const SynthOptions& o = opt_;
  const Params& p = *params_;
  const int64_t d = o.cols;
  const bool labels = has_labels();
  batch->Clear();
  batch->rows = n;
  batch->cols = d;
  batch->first_row = first_row;
  if (labels) batch->labels.resize(n);
  if (sparse()) {
    const int64_t per_row = o.fields > 0 ? o.fields : 2;  // one-hot ids per row
    batch->layout = Layout::kCsr;
    batch->indptr.resize(n + 1);
    batch->indices.resize(per_row * n);
    batch->values.assign(per_row * n, 1.0f);
    for (int64_t i = 0; i <= n; ++i) batch->indptr[i] = per_row * i;
  } else {
    batch->layout = Layout::kDense;
    batch->values.resize(static_cast<size_t>(n) * d);
  }

  // Rows [lo, hi) of the batch; each row uses only its own RNG stream, so any split of the rows
  // across threads gives the same values.
  auto fill_rows = [&](int64_t lo, int64_t hi) {
    std::vector<double> scores(p.outputs);
    std::vector<double> row(o.kind == SynthKind::kLowRank ? d : 0);  // float64 until the noise
    std::vector<double> factor_sums(o.kind == SynthKind::kFm ? o.factors : 0);
    for (int64_t i = lo; i < hi; ++i) {
      Rng rng(StreamSeed(o.seed, kRowStream, static_cast<uint64_t>(first_row + i)));
      float* x = sparse() ? nullptr : &batch->values[static_cast<size_t>(i) * d];
      double y = 0;
      switch (o.kind) {
        case SynthKind::kBlobs: {
          const uint64_t k = rng.Below(o.k);
          const double* c = &p.centers[k * d];
          for (int64_t j = 0; j < d; ++j) x[j] = static_cast<float>(c[j] + o.cluster_std * rng.Normal());
          y = static_cast<double>(k);
          break;
        }
        case SynthKind::kLinear: {
          for (int64_t j = 0; j < d; ++j) x[j] = static_cast<float>(rng.Normal());
          // Scores use the float32 features actually written, so the truth explains the file.
          for (int64_t c = 0; c < p.outputs; ++c) {
            const double* w = &p.weights[c * d];
            double s = p.bias[c];
            for (int64_t j = 0; j < d; ++j) s += w[j] * x[j];
            scores[c] = s + o.noise * rng.Normal();
          }
          if (p.task == Task::kRegression) {
            y = scores[0];
          } else if (p.task == Task::kBinary) {
            y = scores[0] > 0 ? 1.0 : 0.0;
          } else {
            y = static_cast<double>(std::max_element(scores.begin(), scores.end()) - scores.begin());
          }
          break;
        }
        case SynthKind::kLowRank: {
          row = p.mean;
          for (int r = 0; r < o.rank; ++r) {
            const double z = p.stddevs[r] * rng.Normal();
            const double* v = &p.components[static_cast<size_t>(r) * d];
            for (int64_t j = 0; j < d; ++j) row[j] += z * v[j];
          }
          for (int64_t j = 0; j < d; ++j) x[j] = static_cast<float>(row[j] + o.noise * rng.Normal());
          break;
        }
        case SynthKind::kFm: {
          if (o.fields > 0) {
            y = p.fields.Row(o, p.w0, p.task == Task::kRegression, rng,
                             &batch->indices[static_cast<size_t>(i) * o.fields], &factor_sums);
            break;
          }
          const uint64_t u = rng.Below(o.users);
          const uint64_t it = rng.Below(o.items);
          batch->indices[2 * i] = static_cast<uint32_t>(u);
          batch->indices[2 * i + 1] = static_cast<uint32_t>(o.users + it);
          double s = p.w0 + p.w_users[u] + p.w_items[it];
          for (int f = 0; f < o.factors; ++f) s += p.v_users[u * o.factors + f] * p.v_items[it * o.factors + f];
          s += o.noise * rng.Normal();
          y = p.task == Task::kRegression ? s : (s > p.w0 ? 1.0 : 0.0);
          break;
        }
        case SynthKind::kGenotypes: {
          const uint64_t k = rng.Below(o.populations);
          const double* f = &p.pop_freq[k * d];
          for (int64_t j = 0; j < d; ++j) {
            const int g = DrawCall(rng, f[j]);
            x[j] = static_cast<float>((g & 1) + (g >> 1));
          }
          y = static_cast<double>(k);
          break;
        }
      }
      if (labels) batch->labels[i] = static_cast<float>(y);
    }
  };

  int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Threads only pay off for batches with real work in them.
  const int64_t work = n * std::max<int64_t>(d, 8);
  threads = static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(1, work / 65536)));
  if (threads <= 1) {
    fill_rows(0, n);
    return;
  }
  std::vector<std::thread> pool;
  std::exception_ptr error;
  std::mutex error_mu;
  for (int t = 0; t < threads; ++t) {
    const int64_t lo = n * t / threads, hi = n * (t + 1) / threads;
    pool.emplace_back([&, lo, hi] {
      try {
        fill_rows(lo, hi);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
      }
    });
  }
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

SynthGenerator::GenotypeStream SynthGenerator::StartGenotypes(int64_t row) const {
  MLF_ASSERT(opt_.kind == SynthKind::kGenotypes && row >= 0 && row < opt_.rows);
  Rng rng(StreamSeed(opt_.seed, kRowStream, static_cast<uint64_t>(row)));
  GenotypeStream s;
  s.population = static_cast<int>(rng.Below(opt_.populations));  // as Fill draws it
  rng.SaveState(s.state);
  return s;
}

void SynthGenerator::DrawGenotypes(GenotypeStream* stream, int64_t ncols, uint8_t* out) const {
  MLF_ASSERT(opt_.kind == SynthKind::kGenotypes && ncols >= 0 && stream->next_col + ncols <= opt_.cols);
  Rng rng = Rng::FromState(stream->state);
  const double* f = &params_->pop_freq[static_cast<size_t>(stream->population) * opt_.cols + stream->next_col];
  for (int64_t c = 0; c < ncols; ++c) out[c] = static_cast<uint8_t>(DrawCall(rng, f[c]));
  rng.SaveState(stream->state);
  stream->next_col += ncols;
}

nlohmann::json SynthGenerator::Truth() const {
  const SynthOptions& o = opt_;
  const Params& p = *params_;
  const int64_t d = o.cols;
  nlohmann::json t;
  t["kind"] = SynthKindName(o.kind);
  t["rows"] = o.rows;
  t["cols"] = d;
  t["seed"] = o.seed;
  t["labels"] = has_labels();
  nlohmann::json opts;
  switch (o.kind) {
    case SynthKind::kBlobs:
      opts = {{"k", o.k}, {"cluster_std", o.cluster_std}, {"center_box", o.center_box}};
      t["centers"] = Matrix(p.centers, o.k, d);
      break;
    case SynthKind::kLinear:
      opts = {{"task", o.task}, {"noise", o.noise}};
      if (p.task == Task::kMulticlass) {
        opts["classes"] = o.classes;
        t["weights"] = Matrix(p.weights, p.outputs, d);
        t["bias"] = p.bias;
      } else {
        t["weights"] = p.weights;
        t["bias"] = p.bias[0];
      }
      break;
    case SynthKind::kLowRank: {
      opts = {{"rank", o.rank}, {"noise", o.noise}};
      t["mean"] = p.mean;
      t["components"] = Matrix(p.components, o.rank, d);
      t["stddevs"] = p.stddevs;
      // Population variance along each component (what PCA's eigenvalues estimate).
      std::vector<double> ev;
      for (double s : p.stddevs) ev.push_back(s * s + o.noise * o.noise);
      t["explained_variance"] = ev;
      break;
    }
    case SynthKind::kFm:
      if (o.fields > 0) {
        opts = {{"task", o.task}, {"noise", o.noise}, {"fields", o.fields}, {"zipf", o.zipf},
                {"factors", o.factors}};
        t["w0"] = p.w0;
        t["field_offsets"] = p.fields.offsets;
        t["w"] = p.fields.w;
        t["v"] = Matrix(p.fields.v, d, o.factors);
        break;
      }
      opts = {{"task", o.task}, {"noise", o.noise}, {"users", o.users}, {"items", o.items},
              {"factors", o.factors}};
      t["w0"] = p.w0;
      t["w_users"] = p.w_users;
      t["w_items"] = p.w_items;
      t["v_users"] = Matrix(p.v_users, o.users, o.factors);
      t["v_items"] = Matrix(p.v_items, o.items, o.factors);
      break;
    case SynthKind::kGenotypes:
      opts = {{"populations", o.populations}, {"fst", o.fst}};
      t["ancestral_freq"] = p.ancestral;
      t["population_freq"] = Matrix(p.pop_freq, o.populations, d);
      break;
  }
  t["options"] = opts;
  return t;
}

void GenerateSynth(const SynthGenerator& gen, const std::function<void(const HostBatch&)>& sink) {
  const int64_t rows = gen.options().rows;
  const int64_t step = gen.options().batch_rows;
  HostBatch batch;
  for (int64_t first = 0; first < rows; first += step) {
    gen.Fill(first, std::min(step, rows - first), &batch);
    sink(batch);
  }
}

SynthResult WriteSynth(const SynthOptions& options, const std::string& path, WriterOptions writer,
                       bool write_truth, StopToken stop) {
  SynthGenerator gen(options);
  auto out = MakeRowWriter(path, writer);
  GenerateSynth(gen, [&](const HostBatch& b) {
    stop.ThrowIfStopped();
    out->Write(b);
  });
  out->Close();
  SynthResult result;
  result.rows = gen.options().rows;
  result.cols = gen.cols();
  if (write_truth) {
    // Temp file + rename, like the data itself: a reader never sees half a truth file.
    result.truth_path = path + ".truth.json";
    const std::string tmp = result.truth_path + ".tmp-" + std::to_string(::getpid());
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      MLF_EXPECTS(f.good(), "cannot write {}: check that the directory exists and is writable", tmp);
      f << gen.Truth().dump(1) << '\n';
      f.flush();
      MLF_EXPECTS(f.good(), "cannot write {} (disk full?)", tmp);
    }
    if (std::rename(tmp.c_str(), result.truth_path.c_str()) != 0) {
      std::remove(tmp.c_str());
      MLF_FAIL("cannot rename {} to {}", tmp, result.truth_path);
    }
  }
  return result;
}

}  // namespace mlforge::io
