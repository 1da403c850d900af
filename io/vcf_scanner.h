// One VCF/BCF file read record by record under the rules of io/vcf.h (allele classes, ploidy,
// missing calls, missingness and MAF filters): what `data convert --from vcf` (io/vcf.cc) and
// genotype PCA (algos/genotype_pca) share.
//
// Text VCF (plain, gzip or BGZF) is parsed here, not by htslib's vcf_parse: htslib decompresses
// (zlib for plain gzip; libdeflate, on `threads` extra threads, for BGZF) and hands over lines, and
// the scanner reads only what the rules need. CHROM, POS, ID, REF and ALT always; the GT subfield
// of every sample only for sites whose alleles pass rule 1, so skipped multi-allelic and symbolic
// sites cost one line scan. That is about 5x faster than vcf_parse on the 1000 Genomes panel
// (which decodes every FORMAT field of every record into typed arrays first). BCF goes through
// htslib's bcf_read (binary, already cheap).
//
// Errors are UserErrors naming the file, the record number and site, and the sample where one is
// involved: a non-numeric or zero POS, fewer than 8 columns, a sample column count that differs from
// the header's, a malformed GT ("0|x"), an allele index past the record's alleles.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/vcf.h"

namespace mlforge::io {

// Why a record was skipped (one per record, the first rule of vcf.h that fails) or kKept.
enum class VariantFate {
  kKept,
  kMultiallelic,
  kIndel,
  kOtherAllele,
  kNoGenotypes,
  kNonDiploid,
  kNoCalls,
  kMissingness,
  kMaf,
};

struct ScannedVariant {
  VariantFate fate = VariantFate::kKept;
  // Valid until the next call of Next (views into the scanner's line buffer).
  std::string_view chrom, id, ref, alt;
  int64_t pos = 0;  // 1-based
  // kKept (and kMissingness / kMaf, whose calls were read): one entry per sample, the ALT allele
  // count 0/1/2 or kMissingDosage; valid until the next call of Next.
  const uint8_t* dosage = nullptr;
  int64_t missing = 0;  // missing calls among them
  double af = 0;        // ALT frequency over called genotypes (kKept, kMissingness, kMaf)
};

class VcfFileScanner {
 public:
  // Opens the file and reads its header (UserError when it cannot be opened, is not VCF/BCF, has a
  // malformed header or no sample columns). threads: htslib decompression threads (BGZF and BCF).
  // A plain-gzip text VCF of up to 256 MB compressed / 1 GiB inflated is inflated whole here with
  // libdeflate (about 10x zlib's speed) and held until the scanner is destroyed; anything else
  // streams through htslib in bounded memory.
  VcfFileScanner(const std::string& path, const VcfOptions& options, int threads);
  ~VcfFileScanner();
  VcfFileScanner(const VcfFileScanner&) = delete;
  VcfFileScanner& operator=(const VcfFileScanner&) = delete;

  const std::string& path() const;
  const std::vector<std::string>& sample_ids() const;
  int64_t samples() const;
  int64_t records() const;  // read so far
  bool is_bcf() const;

  // Reads the next record and applies the rules; false at end of file.
  bool Next(ScannedVariant* out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The sample IDs of a VCF/BCF file's header (reads nothing else). UserError like the scanner's.
std::vector<std::string> VcfSampleIds(const std::string& path);

// Counts one record's fate into the stats (variants_seen, skipped_*, variants_kept, imputed_cells).
void CountFate(const ScannedVariant& v, VcfStats* stats);

// UserError naming `path` and the first difference when `ids` differ from `first_ids` (the sample
// list of `first_path`): every input must list the same samples in the same order.
void CheckSameSamples(const std::string& first_path, const std::vector<std::string>& first_ids,
                      const std::string& path, const std::vector<std::string>& ids);

}  // namespace mlforge::io
