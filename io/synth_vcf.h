// `mlforge data synth genotypes OUT.vcf|OUT.vcf.gz|OUT.bcf`: the Balding-Nichols cohort of
// io/synth.h written variant-major as VCF/BCF (htslib), e.g. to benchmark genotype PCA on files
// that io/vcf.h reads.
//
// Same cohort as the recordIO/CSV output of the same options and seed: sample r is row r of
// SynthGenerator::Fill and variant j is its column j, bit for bit (alt-allele count = dosage,
// population = label). Each row has its own RNG stream (io/synth.h), so the writer keeps one
// stream state per sample (SynthGenerator::GenotypeStream, 48 bytes) and advances all of them
// through a block of `block_variants` columns, then emits that block's variants. No matrix is
// ever held, nothing is spilled to disk.
//
// Memory bound: samples x (block_variants + ~80) bytes (stream states, the block of calls, the
// missing-call keys, one text line or BCF record, the samples sidecar) + the generator's
// parameters (8 x (populations + 1) x variants bytes) + htslib's compression queue (a few MB per
// thread) + at the end the truth JSON (~40 x (populations + 1) x variants bytes). Independent of
// samples x variants. 10,000 x 100,000 .vcf.gz, 2 threads: 43 MB peak RSS.
//
// Layout of the file:
//   header   ##fileformat=VCFv4.2, ##FILTER PASS, ##source (kind, seed, populations, fst,
//            missing rate), ##contig=<ID=1,length=POS of the last variant>, ##FORMAT GT; samples
//            S1..SN zero-padded to the width of N (S01..S37; S00001..S10000).
//   records  CHROM 1, POS = 1000 * (j + 1) (the spacing shrinks to fit BCF's 32-bit positions past
//            2,147,482 variants), ID synth_<j> (0-based column), REF A, ALT G, QUAL ., FILTER PASS,
//            INFO ., FORMAT GT.
//   calls    unphased 0/0, 0/1, 1/1 (either draw order of one ALT allele is 0/1); with `phased`,
//            a|b with a = the first allele drawn and b = the second (so 1|0 and 0|1 both occur).
//            With missing_rate > 0 each call is independently ./. (.|. phased) with that
//            probability, from a hash of (seed, sample, variant): deterministic, and the other
//            calls keep their values.
// Sidecars (each written under a temporary name and renamed, like the data):
//   <path>.samples.tsv  header `sample<TAB>pop`, one line per sample in file order: ID, population
//   <path>.truth.json   SynthGenerator::Truth() plus "vcf": {format, chrom, pos_spacing, ref, alt,
//                       phased, missing_rate, missing_calls, samples_file}  (unless !write_truth)
// The data goes to `<path>.tmp-<pid>` and is renamed only when everything succeeded; on an error
// or a stop no file is left behind.
#pragma once

#include <cstdint>
#include <string>

#include "core/stop.h"
#include "io/synth.h"

namespace mlforge::io {

struct SynthVcfOptions {
  double missing_rate = 0.0;   // probability that a call is written missing, [0, 1)
  bool phased = false;         // a|b in draw order instead of sorted a/b
  int threads = 1;             // htslib BGZF compression threads (.vcf.gz, .bcf); <= 0: all cores
  // BGZF deflate level 0..9 (.vcf.gz, .bcf; plain .vcf ignores it); -1: htslib's default (6).
  // On these calls level 1 compresses ~12x faster than 6 for a ~1.4x larger file.
  int compression_level = -1;
  bool write_truth = true;     // also <path>.truth.json
  int64_t block_variants = 64;  // variants drawn per pass over the samples (memory, not data)
};

enum class VcfOutput { kVcf, kVcfGz, kBcf };

// .vcf -> plain text; .vcf.gz / .vcf.bgz -> BGZF text; .bcf -> BCF (case-insensitive). UserError
// naming the accepted extensions otherwise.
VcfOutput VcfOutputFromPath(const std::string& path);
const char* VcfOutputName(VcfOutput f);  // "vcf", "vcf.gz", "bcf"

// UserError naming the flag and its valid range (--missing-rate, --compression-level), or the kind
// when it is not genotypes (only genotypes have a VCF form).
void ValidateSynthVcf(const SynthOptions& options, const SynthVcfOptions& vcf);

struct SynthVcfResult {
  int64_t samples = 0;
  int64_t variants = 0;
  int64_t missing_calls = 0;
  std::string format;        // VcfOutputName
  std::string samples_path;  // <path>.samples.tsv
  std::string truth_path;    // empty when not written
};

// Writes the cohort of `options` (kind genotypes) to `path` as described above. `stop` is polled
// between blocks of variants (StopRequested; nothing is left behind).
SynthVcfResult WriteSynthGenotypesVcf(const SynthOptions& options, const std::string& path,
                                      const SynthVcfOptions& vcf, StopToken stop = StopToken::Never());

}  // namespace mlforge::io
