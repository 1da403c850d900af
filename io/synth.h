// Deterministic, streaming synthetic data sets for `mlforge data synth KIND` (tests, demos,
// benchmarks). Every kind has a known ground truth (cluster centers, weights, components,
// factors, allele frequencies) so that training can be checked for recovery.
//
// Determinism: model parameters depend on the seed alone; row r is drawn from its own RNG stream
// seeded from (seed, r). So the same seed gives the same rows, hence the same bytes, whatever the
// batch size or thread count, and a generator can start at any row.
//
// Memory: rows are produced in batches (SynthOptions::batch_rows) and handed to a sink, so a 10 GB
// file needs a few batches of RAM plus the parameters (O(k*cols), O(rank*cols), ...).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/batch.h"
#include "core/stop.h"
#include "io/row_writer.h"

namespace mlforge::io {

enum class SynthKind { kBlobs, kLinear, kLowRank, kFm, kGenotypes };

// "blobs" | "linear" | "lowrank" | "fm" | "genotypes"; UserError naming the choices otherwise.
SynthKind ParseSynthKind(const std::string& s);
const char* SynthKindName(SynthKind k);

struct SynthOptions {
  SynthKind kind = SynthKind::kBlobs;
  int64_t rows = 1000;
  int64_t cols = 10;  // fm: must be users + items (or <= 0 to take that); genotypes: variants
  uint64_t seed = 0;
  int64_t batch_rows = 4096;  // rows per batch handed to the sink (does not change the data)
  int threads = 1;            // generator threads per batch (does not change the data); <= 0: all
  bool labels = true;         // false: batches carry no labels (lowrank never has any)

  // blobs: k Gaussian clusters, centers ~ U(-center_box, center_box)^cols, label = cluster id.
  int k = 3;
  double cluster_std = 1.0;
  double center_box = 10.0;

  // linear: x ~ N(0, I), w ~ N(0, 1/cols) so the signal x.w + b has variance ~1.
  //   regression: y = x.w + b + noise * e
  //   binary:     y = 1[x.w + b + noise * e > 0]
  //   multiclass: y = argmax_c (x.W_c + b_c + noise * e_c), c < classes
  // lowrank and fm also use `noise` (standard deviation of the additive Gaussian noise).
  std::string task = "regression";
  int classes = 3;
  double noise = 0.1;

  // lowrank: x = mean + sum_j z_j * stddev_j * v_j + noise * e, z ~ N(0, 1), v_j orthonormal.
  // spectrum empty: stddev_j = 10 * 0.7^j.
  int rank = 3;
  std::vector<double> spectrum;

  // fm: one user and one item per row (one-hot, value 1): cols = users + items, CSR output.
  //   score = w0 + w_u + w_i + <v_u, v_i>; regression: y = score + noise * e;
  //   binary (task "binary"): y = 1[score + noise * e > w0].
  int64_t users = 100;
  int64_t items = 100;
  int factors = 4;
  // fm with fields > 0 (Criteo-like; users/items unused): cols (required) is split into `fields`
  // consecutive categorical fields of skewed cardinalities (each >= 1); every row has exactly one
  // id per field (value 1), so `fields` non-zeros in ascending column order. Within a field the
  // id of popularity rank j is drawn with P(j) ~ 1 / (j + 1)^zipf (0: uniform), and ranks map to
  // the field's columns through a fixed random permutation (hot ids scattered, as after hashing).
  //   score = w0 + sum_i w_i + sum_{i<j} <v_i, v_j> over the row's ids; labels as above.
  int fields = 0;
  double zipf = 1.1;

  // genotypes (Balding-Nichols): p ~ U(0.05, 0.95) per variant; each population's frequency
  // ~ Beta(p(1-F)/F, (1-p)(1-F)/F) with F = fst; dosage ~ Binomial(2, p_pop); label = population.
  int populations = 3;
  double fst = 0.1;
};

// Generates the rows of one data set. Construction validates the options (UserError naming the
// option and its valid range) and draws the model parameters from the seed.
class SynthGenerator {
 public:
  explicit SynthGenerator(SynthOptions options);
  ~SynthGenerator();
  SynthGenerator(const SynthGenerator&) = delete;
  SynthGenerator& operator=(const SynthGenerator&) = delete;

  const SynthOptions& options() const { return opt_; }
  int64_t cols() const { return opt_.cols; }
  bool sparse() const { return opt_.kind == SynthKind::kFm; }
  bool has_labels() const;

  // Fills `batch` (cleared first) with rows [first_row, first_row + n): dense layout, or CSR for
  // fm; labels as documented on SynthOptions. first_row + n must not exceed options().rows.
  void Fill(int64_t first_row, int64_t n, HostBatch* batch) const;

  // The ground truth as JSON: {"kind", "rows", "cols", "seed", "options": {...}, and per kind
  // "centers" [k][cols] | "weights" [cols] or [classes][cols] + "bias" | "mean", "components"
  // [rank][cols], "stddevs", "explained_variance" | "w0", "w_users", "w_items", "v_users"
  // [users][factors], "v_items" (fm with fields: "w0", "field_offsets" [fields + 1], "w" [cols],
  // "v" [cols][factors]) | "ancestral_freq" [cols], "population_freq" [pops][cols]}.
  nlohmann::json Truth() const;

  // genotypes only: the draws of Fill, one block of columns at a time, for writers that emit
  // variant-major files (io/synth_vcf.h). A GenotypeStream is row r's RNG stream after its
  // population draw; DrawGenotypes hands out the next `ncols` calls and advances it. Drawing
  // columns [0, cols) in any split gives exactly row r of Fill (dosage = first + second allele)
  // and label `population`: Fill itself draws through the same code.
  struct GenotypeStream {
    uint64_t state[4];
    int population = 0;    // the row's label
    int64_t next_col = 0;  // the column the next DrawGenotypes starts at
  };
  GenotypeStream StartGenotypes(int64_t row) const;
  // out[c] = first allele | second allele << 1 (each 1 = ALT, in draw order) for columns
  // [next_col, next_col + ncols); next_col + ncols must not exceed cols().
  void DrawGenotypes(GenotypeStream* stream, int64_t ncols, uint8_t* out) const;

 private:
  struct Params;
  SynthOptions opt_;
  std::unique_ptr<Params> params_;
};

// Streams every row through `sink`, one batch of options.batch_rows rows at a time (the batch
// object is reused between calls).
void GenerateSynth(const SynthGenerator& gen, const std::function<void(const HostBatch&)>& sink);

struct SynthResult {
  int64_t rows = 0;
  int64_t cols = 0;
  std::string truth_path;  // empty when not written
};

// Writes the data set to `path` through a RowWriter (format from `writer.format`, else from the
// extension) and, when write_truth, the ground truth to `<path>.truth.json`. `stop` is polled
// between batches (StopRequested; the partial output is removed by the writer).
SynthResult WriteSynth(const SynthOptions& options, const std::string& path, WriterOptions writer,
                       bool write_truth = true, StopToken stop = StopToken::Never());

}  // namespace mlforge::io
