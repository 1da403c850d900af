// VCF/BCF genotypes -> a samples x variants alt-allele dosage matrix (htslib), for clustering
// and PCA of genotype data (`mlforge data convert --from vcf`, the 1000 Genomes demo).
//
// Inputs: plain, gzip or bgzip VCF, or BCF; one file or several given in order (e.g. one per
// chromosome). The variants of all files are concatenated as columns; every file must list the
// same samples in the same order (UserError naming the file and the first differing sample).
//
// Per variant, in this order, the first rule that fails skips it and is counted under that reason
// (VcfStats::skipped_*): nothing is skipped silently.
//   1. alleles: biallelic SNVs (REF and ALT one base of ACGTN) are kept; biallelic indels (REF/ALT of
//      bases only, different lengths) only with keep_indels; multi-allelic sites, symbolic alleles
//      (<CN0>, <INS:ME:ALU>, breakends, '*'), MNPs and ALT '.' are skipped.
//   2. GT field present (a record without one is skipped as no_genotypes).
//   3. ploidy: every call must be diploid. A haploid or polyploid call anywhere skips the whole
//      variant (non_diploid): a 0/1/2 column that mixes 0/1 with 0/1/2 scales would silently
//      weight some samples half. Half-missing calls such as 0/. (how SeqArray writes male chrX
//      genotypes outside the PARs) count as haploid by default; with half_missing_as_missing they
//      are missing calls instead. A fully missing call ('./.' or '.') is missing, whatever ploidy.
//   4. a variant with no called genotype at all is skipped (no_calls: its mean is undefined).
//   5. missingness: kept when missing / samples <= max_missing (plink --geno semantics).
//   6. MAF over called genotypes: kept when min(af, 1 - af) >= min_maf (plink --maf semantics).
// Values: dosage = number of ALT alleles in the call (0, 1, 2; phased or not); a missing call is
// imputed with the variant's mean dosage over called samples (2 * af) and counted.
//
// Memory (the VCF is variant-major, the output sample-major, so the matrix must be transposed):
// kept variants are buffered as uint8 dosages (1 byte per cell, 255 = missing) in tiles of
// tile_variants columns, transposed per tile to sample-major. While the tiles fit in
// memory_budget_bytes they stay in RAM: n_samples x n_kept bytes, plus 4 bytes per kept variant
// (the imputation means). Beyond the budget every tile goes to an unlinked temporary file and the
// output rows are assembled from it with one read per tile per row group, so RAM stays at
// 2 tiles (2 x n_samples x tile_variants bytes) + the means + one row group (rows x n_kept x 5
// bytes, at least one row; a row of float32 dosages is the unit a RowWriter takes). Per-variant
// metadata (CHROM, POS, ...) is never held: the variant sidecar is streamed as variants are kept.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "core/stop.h"
#include "io/row_writer.h"

namespace mlforge::io {

struct VcfOptions {
  bool keep_indels = false;              // also keep biallelic indels (dosage of the ALT allele)
  bool half_missing_as_missing = false;  // 0/. is a missing call (imputed), not a haploid call
  double min_maf = 0.0;                  // keep variants with minor allele frequency >= this, [0, 0.5]
  double max_missing = 1.0;              // keep variants with missing fraction <= this, [0, 1]
  bool write_variants = false;           // ConvertVcf: also write <output>.variants.tsv
  int64_t memory_budget_bytes = int64_t{2} << 30;  // dosage tiles held in RAM before spilling
  std::string temp_dir;                  // where the spill file goes; "" = the system temp dir
  int64_t tile_variants = 4096;          // variants per transposed tile (memory / IO granularity)
  int64_t batch_bytes = int64_t{64} << 20;  // float32 bytes per batch handed to the RowWriter
  int threads = 0;                       // htslib decompression threads per file (BGZF/BCF); 0 = none
  StopToken stop = StopToken::Never();   // polled between records
};

// What a conversion did; printed by the CLI (Report()) and logged as JSON.
struct VcfStats {
  int64_t files = 0;
  int64_t samples = 0;
  int64_t variants_seen = 0;  // records read from all files
  int64_t variants_kept = 0;  // columns of the output
  // Skips, one reason per variant (the first rule that fails, in the order listed in vcf.h).
  int64_t skipped_multiallelic = 0;
  int64_t skipped_indel = 0;         // biallelic indels without keep_indels
  int64_t skipped_other_allele = 0;  // symbolic / breakend / '*' / MNP / no ALT
  int64_t skipped_no_genotypes = 0;  // record without a GT field
  int64_t skipped_non_diploid = 0;   // some call haploid, polyploid or (by default) half-missing
  int64_t skipped_no_calls = 0;      // every call missing
  int64_t skipped_missingness = 0;   // missing fraction > max_missing
  int64_t skipped_maf = 0;           // MAF < min_maf
  int64_t imputed_cells = 0;         // missing calls in kept variants, set to the variant mean
  int64_t rows_written = 0;          // ConvertVcf only
  bool spilled = false;              // the dosage tiles went to a temporary file
  double seconds_read = 0;           // parsing + filtering + buffering
  double seconds_write = 0;          // transpose + RowWriter + sidecars
  double seconds_total = 0;

  int64_t skipped() const;
  // Adds another scan's counts (files, variants, skips, imputed calls) and ORs `spilled`; the
  // sample count is kept (both scans read the same samples) and the times are left alone.
  void Add(const VcfStats& other);
  std::string Report() const;  // a few human-readable lines
  nlohmann::json ToJson() const;
};

// One kept variant (the columns of <output>.variants.tsv).
struct VcfVariant {
  std::string chrom;
  int64_t pos = 0;  // 1-based, as in the VCF
  std::string id;
  std::string ref;
  std::string alt;
  double af = 0;  // ALT allele frequency over called genotypes
};

// The whole matrix in memory (tests, demo, small data).
struct VcfMatrix {
  int64_t samples = 0;
  int64_t variants = 0;
  std::vector<std::string> sample_ids;  // row order
  std::vector<VcfVariant> variants_info;  // column order
  // samples x variants, row-major; 0/1/2 ALT allele count, kMissingDosage for a missing call.
  std::vector<uint8_t> dosage;
  std::vector<float> means;  // per variant: mean dosage over called samples (the imputed value)
  VcfStats stats;

  // The value a RowWriter receives for cell (sample, variant): the dosage, or the mean if missing.
  float Value(int64_t sample, int64_t variant) const;
};

inline constexpr uint8_t kMissingDosage = 255;

// Validates the options (UserError naming the option and its valid range).
void ValidateVcfOptions(const VcfOptions& options);

// Reads `inputs` in order into memory; same rules as ConvertVcf.
VcfMatrix ReadVcfMatrix(const std::vector<std::string>& inputs, const VcfOptions& options);

// Streams the samples x variants float32 matrix (unlabeled dense rows, imputed cells as the mean)
// into `writer` (not closed here) and, when sidecar_prefix is not empty, writes
// <prefix>.samples.txt (one sample ID per line, row order) and, with options.write_variants,
// <prefix>.variants.tsv (header + CHROM POS ID REF ALT AF per column), each atomically.
VcfStats ConvertVcf(const std::vector<std::string>& inputs, const VcfOptions& options, RowWriter& writer,
                    const std::string& sidecar_prefix);

// The `mlforge data convert --from vcf` entry: MakeRowWriter(output, writer), the sidecars next to
// `output`, and Close() only after everything succeeded (no partial output on error).
VcfStats ConvertVcf(const std::vector<std::string>& inputs, const std::string& output,
                    const VcfOptions& options, WriterOptions writer = {});

}  // namespace mlforge::io
