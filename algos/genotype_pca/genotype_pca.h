// Genotype PCA (issue 14): principal components of samples from VCF/BCF genotypes, with plink2's
// definition and output layout, and projection of new samples onto them. README.md in this folder
// has the user's view; this header the contract.
//
// Definition (plink2 --pca, checked against plink2 2.00a3.5 on the 1000 Genomes panel): for each
// kept variant j, p_j = ALT frequency over called genotypes; z_ij = (g_ij - 2 p_j) / sqrt(2 p_j (1 -
// p_j)), with z = 0 for a missing call (mean imputation) and for every call of a monomorphic
// variant; K = Z Z^T / M with M = the number of variants kept (monomorphic ones included, as plink2
// counts them). Eigenvalues: the top k of K, descending (PREFIX.eigenval). Eigenvectors: unit-norm
// columns (PREFIX.eigenvec). Variant weights (PREFIX.loadings.tsv): W = Z^T U diag(lambda)^-1/2,
// which is plink2's biallelic-var-wts scale with the ALT allele counted; then a sample's PC k is
// sum_j z_j W_jk / (M sqrt(lambda_k)), exactly its eigenvector entry for the samples the PCA saw.
//
// How: one pass decodes the VCFs (files in parallel, io/vcf_scanner.h) into a 2-bit-per-call
// variant-major store (RAM up to memory_budget_bytes, else an unlinked temporary file); the exact
// method accumulates K over blocks of kGrmBlockVariants variants (kernels/grm_accumulate.h; CPU
// SSYRK or GPU) and takes its top k eigenpairs (kernels/sym_eigen.h); --approx never forms K: a
// randomized subspace iteration with `approx_iterations` passes over the store, memory O(n (k + p))
// plus one block. The loadings are one more pass over the store.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/stop.h"
#include "io/vcf.h"

namespace mlforge {
class Resources;
}

namespace mlforge::algos::genotype_pca {

// What a missing call contributes. kMean (default): the variant's mean dosage (z = 0), K = Z Z^T /
// M: plink2 --pca meanimpute. kPairwise: plink2 --pca's default: K_ij = sum_v z_iv z_jv / M_ij, M_ij =
// the number of variants where neither sample's call is missing (one more SYRK, of the called-call
// indicators, only when some call is missing). Exact method only.
enum class Missing { kMean, kPairwise };

struct Options {
  int pcs = 10;                     // k: components, 1 <= k < samples
  Missing missing = Missing::kMean;
  bool approx = false;              // randomized method (no n x n matrix)
  int approx_iterations = 15;       // power iterations of the randomized method (>= 1)
  int approx_oversample = 10;       // extra subspace columns beyond k
  bool loadings = true;             // compute the variant weights (one more pass over the store)
  io::VcfOptions vcf;               // filters (min_maf, max_missing, keep_indels, half_missing...)
  int64_t memory_budget_bytes = int64_t{1} << 30;  // 2-bit genotype store held in RAM up to this
  std::string temp_dir;             // spill directory ("" = the system's)
  uint64_t seed = 0;                // approx: the random start
};

// UserError naming the option and its valid range.
void ValidateOptions(const Options& o);
// "mean" | "pairwise" (UserError naming the choices otherwise).
Missing ParseMissing(const std::string& s);

struct VariantRecord {
  std::string chrom;
  int64_t pos = 0;
  std::string id, ref, alt;
  double alt_freq = 0;  // p over called genotypes
};

struct Timings {
  double decode = 0;    // VCF -> 2-bit store (files in parallel)
  double grm = 0;       // K accumulation (exact) or the subspace iterations (approx)
  double eigen = 0;     // eigensolve
  double loadings = 0;  // variant weights
  double total = 0;
};

struct Result {
  std::vector<std::string> sample_ids;
  int64_t samples = 0;
  int64_t variants = 0;                 // M
  int64_t monomorphic = 0;              // of M: contribute nothing (z = 0), counted in M
  std::vector<double> eigenvalues;      // k, descending
  std::vector<double> eigenvectors;     // samples x k, row-major, unit-norm columns
  std::vector<VariantRecord> variant_records;  // M, in file order (empty without loadings)
  std::vector<double> loadings;         // M x k, row-major (empty without loadings)
  io::VcfStats stats;                   // skips, imputed calls, files
  bool approx = false;
  bool missing_pairwise = false;
  bool spilled = false;                 // the genotype store went to a temporary file
  std::string device;                   // where K was accumulated: cpu or gpu
  int64_t store_bytes = 0;              // size of the 2-bit store
  int64_t peak_rss_bytes = 0;           // the process's peak resident memory when Run returned
  Timings seconds;
};

// Runs the whole analysis. Errors: UserError for bad options, unreadable or mismatched inputs
// (naming the file and the first differing sample), no variant kept, fewer than 2 samples, pcs >=
// samples.
Result Run(const std::vector<std::string>& vcf, const Options& options, Resources& res);

// Writes PREFIX.eigenvec (#IID PC1..PCk, tab-separated), PREFIX.eigenval (one value per line) and,
// with loadings, PREFIX.loadings.tsv (#CHROM POS ID REF ALT ALT_FREQ PC1..PCk; the first line after
// the header comment `## M=<variants>` ... see README) plus PREFIX.genotype_pca.json (counts,
// timings, peak memory). Each file atomically (temp name, rename).
void Write(const Result& result, const std::string& prefix);

// Projection of new samples onto a model written by Write.
struct ProjectOptions {
  io::VcfOptions vcf;  // only half_missing_as_missing and threads matter; no frequency filters
};
struct ProjectResult {
  std::vector<std::string> sample_ids;
  int64_t samples = 0;
  int64_t pcs = 0;
  std::vector<double> scores;    // samples x pcs, row-major (same scale as PREFIX.eigenvec)
  int64_t model_variants = 0;    // M of the model
  int64_t matched = 0;           // model variants found in the inputs (ALT/REF swaps flipped)
  int64_t flipped = 0;           // of matched: REF and ALT swapped relative to the model
  int64_t imputed_cells = 0;     // missing calls of matched variants (z = 0)
  int64_t unmatched_input = 0;   // input variants not in the model (ignored)
};
ProjectResult Project(const std::string& model_prefix, const std::vector<std::string>& vcf,
                      const ProjectOptions& options);
// PREFIX.eigenvec of the projected samples (same layout).
void WriteProjection(const ProjectResult& result, const std::string& prefix);

}  // namespace mlforge::algos::genotype_pca
