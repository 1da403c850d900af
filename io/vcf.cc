#include "io/vcf.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <utility>

#include "core/batch.h"
#include "core/error.h"
#include "core/spill_file.h"
#include "io/vcf_scanner.h"

namespace mlforge::io {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---------------------------------------------------------------------------------------------
// The transpose buffer (the memory design in vcf.h).
//
// Columns (one per kept variant, n_samples bytes) collect in a variant-major pending tile; a full
// tile is transposed to sample-major (n_samples x width) so that any row range of it is one
// contiguous slice, then kept in RAM or, past the budget, appended to an unlinked temp file.

class DosageTiles {
 public:
  DosageTiles(int64_t samples, int64_t tile_width, int64_t budget, std::string temp_dir)
      : n_(samples), w_(tile_width), budget_(budget), temp_dir_(std::move(temp_dir)) {
    pending_.resize(static_cast<size_t>(n_ * w_));
  }
  DosageTiles(const DosageTiles&) = delete;
  DosageTiles& operator=(const DosageTiles&) = delete;

  void Append(const uint8_t* column) {
    std::memcpy(pending_.data() + pending_cols_ * n_, column, static_cast<size_t>(n_));
    ++columns_;
    if (++pending_cols_ == w_) FlushTile();
  }

  void Finish() {
    if (pending_cols_ > 0) FlushTile();
    pending_.clear();
    pending_.shrink_to_fit();
  }

  int64_t columns() const { return columns_; }
  bool spilled() const { return spill_ != nullptr; }

  // Copies rows [first, first + rows) of the samples x columns() matrix into `out`
  // (rows x columns(), row-major). Call after Finish().
  void ReadRows(int64_t first, int64_t rows, uint8_t* out) {
    MLF_ASSERT(pending_cols_ == 0 && first >= 0 && first + rows <= n_);
    const int64_t cols = columns_;
    for (size_t t = 0; t < widths_.size(); ++t) {
      const int64_t w = widths_[t];
      const uint8_t* src;
      if (!spill_) {
        src = tiles_[t].data() + first * w;
      } else {
        read_buf_.resize(static_cast<size_t>(rows * w));
        spill_->Read(read_buf_.data(), rows * w, offsets_[t] + first * w);
        src = read_buf_.data();
      }
      const int64_t col0 = static_cast<int64_t>(t) * w_;
      for (int64_t r = 0; r < rows; ++r) std::memcpy(out + r * cols + col0, src + r * w, static_cast<size_t>(w));
    }
  }

 private:
  void FlushTile() {
    const int64_t w = pending_cols_;
    std::vector<uint8_t> tile(static_cast<size_t>(n_ * w));
    // Blocked so that both the strided reads and the strided writes stay in cache.
    constexpr int64_t kB = 64;
    for (int64_t s0 = 0; s0 < n_; s0 += kB) {
      const int64_t s1 = std::min(n_, s0 + kB);
      for (int64_t c0 = 0; c0 < w; c0 += kB) {
        const int64_t c1 = std::min(w, c0 + kB);
        for (int64_t c = c0; c < c1; ++c) {
          const uint8_t* col = pending_.data() + c * n_;
          for (int64_t s = s0; s < s1; ++s) tile[s * w + c] = col[s];
        }
      }
    }
    pending_cols_ = 0;
    widths_.push_back(w);
    if (!spill_ && ram_bytes_ + static_cast<int64_t>(tile.size()) > budget_) SpillAll();
    if (spill_) {
      offsets_.push_back(spill_->Append(tile.data(), static_cast<int64_t>(tile.size())));
    } else {
      ram_bytes_ += static_cast<int64_t>(tile.size());
      tiles_.push_back(std::move(tile));
    }
  }

  void SpillAll() {
    spill_ = std::make_unique<SpillFile>(temp_dir_, "the VCF dosage tiles",
                                         "set a writable temp dir or raise the memory budget");
    spdlog::info("VCF: dosage matrix exceeds the memory budget of {} bytes; spilling tiles to {}", budget_,
                 spill_->dir());
    for (auto& tile : tiles_) {
      offsets_.push_back(spill_->Append(tile.data(), static_cast<int64_t>(tile.size())));
      std::vector<uint8_t>().swap(tile);
    }
    tiles_.clear();
    ram_bytes_ = 0;
  }

  int64_t n_, w_, budget_;
  std::string temp_dir_;
  std::vector<uint8_t> pending_;  // variant-major: column c at [c * n_, (c + 1) * n_)
  int64_t pending_cols_ = 0;
  int64_t columns_ = 0;
  std::vector<int64_t> widths_;               // every tile's width (w_ except the last)
  std::vector<std::vector<uint8_t>> tiles_;   // in RAM: sample-major n_ x width
  int64_t ram_bytes_ = 0;
  std::unique_ptr<SpillFile> spill_;          // once spilled
  std::vector<int64_t> offsets_;              // spill: file offset of each tile
  std::vector<uint8_t> read_buf_;
};

// ---------------------------------------------------------------------------------------------
// Writes a text file next to the output atomically: temp name, renamed by Commit().

class AtomicTextFile {
 public:
  explicit AtomicTextFile(std::string path) : path_(std::move(path)) {
    tmp_ = fmt::format("{}.tmp-{}", path_, ::getpid());
    f_ = std::fopen(tmp_.c_str(), "wb");
    MLF_EXPECTS(f_ != nullptr, "cannot write '{}': {}; check that the output directory exists and is writable",
                tmp_, std::strerror(errno));
  }
  ~AtomicTextFile() {
    if (f_) std::fclose(f_);
    if (!committed_) std::remove(tmp_.c_str());
  }
  void Write(const std::string& s) {
    MLF_EXPECTS(std::fwrite(s.data(), 1, s.size(), f_) == s.size(), "cannot write '{}': {}", tmp_,
                std::strerror(errno));
  }
  void Commit() {
    int rc = std::fclose(f_);
    f_ = nullptr;
    MLF_EXPECTS(rc == 0, "cannot write '{}': {}", tmp_, std::strerror(errno));
    MLF_EXPECTS(std::rename(tmp_.c_str(), path_.c_str()) == 0, "cannot rename '{}' to '{}': {}", tmp_, path_,
                std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  bool committed_ = false;
};

// ---------------------------------------------------------------------------------------------
// The scan shared by ReadVcfMatrix and ConvertVcf: applies the rules of vcf.h to every record,
// appends kept columns to the tiles and calls on_kept(hdr, rec, af) for each kept variant.

using KeptFn = std::function<void(const ScannedVariant&)>;

struct Scan {
  std::vector<std::string> sample_ids;
  std::unique_ptr<DosageTiles> tiles;
  std::vector<float> means;
  VcfStats stats;
};

void ScanVcf(const std::vector<std::string>& inputs, const VcfOptions& opt, const KeptFn& on_kept,
             Scan* out) {
  ValidateVcfOptions(opt);
  MLF_EXPECTS(!inputs.empty(), "no VCF/BCF input given; pass one or more .vcf, .vcf.gz or .bcf files");
  const auto t0 = Clock::now();
  VcfStats& st = out->stats;
  ScannedVariant v;
  for (size_t fi = 0; fi < inputs.size(); ++fi) {
    VcfFileScanner f(inputs[fi], opt, opt.threads);
    const int64_t n = f.samples();
    if (fi == 0) {
      out->sample_ids = f.sample_ids();
      out->tiles = std::make_unique<DosageTiles>(n, opt.tile_variants, opt.memory_budget_bytes, opt.temp_dir);
      st.samples = n;
    } else {
      CheckSameSamples(inputs[0], out->sample_ids, f.path(), f.sample_ids());
    }
    ++st.files;
    while (f.Next(&v)) {
      CountFate(v, &st);
      if (v.fate != VariantFate::kKept) continue;
      out->tiles->Append(v.dosage);
      out->means.push_back(static_cast<float>(2.0 * v.af));
      if (on_kept) on_kept(v);
    }
    spdlog::debug("VCF: '{}': {} records, {} samples", f.path(), f.records(), n);
  }
  out->tiles->Finish();
  st.spilled = out->tiles->spilled();
  st.seconds_read = SecondsSince(t0);

  if (st.skipped_non_diploid > 0) {
    spdlog::warn(
        "VCF: skipped {} variants with non-diploid calls (haploid, polyploid{}; e.g. male chrX outside the "
        "PARs)",
        st.skipped_non_diploid, opt.half_missing_as_missing ? "" : " or half-missing like 0/.");
  }
  if (st.imputed_cells > 0) {
    spdlog::warn("VCF: imputed {} missing genotype calls with their variant's mean dosage", st.imputed_cells);
  }
}

VcfVariant MakeVariant(const ScannedVariant& s) {
  VcfVariant v;
  v.chrom = s.chrom.empty() ? std::string(".") : std::string(s.chrom);
  v.pos = s.pos;
  v.id = std::string(s.id);
  v.ref = std::string(s.ref);
  v.alt = std::string(s.alt);
  v.af = s.af;
  return v;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

int64_t VcfStats::skipped() const {
  return skipped_multiallelic + skipped_indel + skipped_other_allele + skipped_no_genotypes +
         skipped_non_diploid + skipped_no_calls + skipped_missingness + skipped_maf;
}

void VcfStats::Add(const VcfStats& o) {
  files += o.files;
  variants_seen += o.variants_seen;
  variants_kept += o.variants_kept;
  skipped_multiallelic += o.skipped_multiallelic;
  skipped_indel += o.skipped_indel;
  skipped_other_allele += o.skipped_other_allele;
  skipped_no_genotypes += o.skipped_no_genotypes;
  skipped_non_diploid += o.skipped_non_diploid;
  skipped_no_calls += o.skipped_no_calls;
  skipped_missingness += o.skipped_missingness;
  skipped_maf += o.skipped_maf;
  imputed_cells += o.imputed_cells;
  rows_written += o.rows_written;
  spilled = spilled || o.spilled;
}

std::string VcfStats::Report() const {
  std::string s = fmt::format(
      "VCF: {} file(s), {} samples, {} variants read, {} kept -> {} x {} dosage matrix\n", files, samples,
      variants_seen, variants_kept, samples, variants_kept);
  s += fmt::format(
      "VCF: skipped {}: multi-allelic {}, indel {}, symbolic/MNP/other {}, no GT {}, non-diploid {}, "
      "no calls {}, missingness {}, MAF {}\n",
      skipped(), skipped_multiallelic, skipped_indel, skipped_other_allele, skipped_no_genotypes,
      skipped_non_diploid, skipped_no_calls, skipped_missingness, skipped_maf);
  s += fmt::format("VCF: imputed {} missing calls with the variant mean dosage\n", imputed_cells);
  s += fmt::format("VCF: time read {:.3f} s, write {:.3f} s, total {:.3f} s{}", seconds_read, seconds_write,
                   seconds_total, spilled ? " (dosage tiles spilled to a temp file)" : "");
  return s;
}

nlohmann::json VcfStats::ToJson() const {
  return nlohmann::json{{"files", files},
                        {"samples", samples},
                        {"variants_seen", variants_seen},
                        {"variants_kept", variants_kept},
                        {"skipped",
                         {{"multiallelic", skipped_multiallelic},
                          {"indel", skipped_indel},
                          {"other_allele", skipped_other_allele},
                          {"no_genotypes", skipped_no_genotypes},
                          {"non_diploid", skipped_non_diploid},
                          {"no_calls", skipped_no_calls},
                          {"missingness", skipped_missingness},
                          {"maf", skipped_maf}}},
                        {"imputed_cells", imputed_cells},
                        {"rows_written", rows_written},
                        {"spilled", spilled},
                        {"seconds_read", seconds_read},
                        {"seconds_write", seconds_write},
                        {"seconds_total", seconds_total}};
}

float VcfMatrix::Value(int64_t sample, int64_t variant) const {
  const uint8_t d = dosage[static_cast<size_t>(sample * variants + variant)];
  return d == kMissingDosage ? means[static_cast<size_t>(variant)] : static_cast<float>(d);
}

void ValidateVcfOptions(const VcfOptions& o) {
  MLF_EXPECTS(o.min_maf >= 0.0 && o.min_maf <= 0.5, "VCF option min_maf = {} is out of range: expected [0, 0.5]",
              o.min_maf);
  MLF_EXPECTS(o.max_missing >= 0.0 && o.max_missing <= 1.0,
              "VCF option max_missing = {} is out of range: expected a fraction in [0, 1]", o.max_missing);
  MLF_EXPECTS(o.tile_variants >= 1 && o.tile_variants <= (int64_t{1} << 20),
              "VCF option tile_variants = {} is out of range: expected [1, 1048576]", o.tile_variants);
  MLF_EXPECTS(o.memory_budget_bytes >= 0, "VCF option memory_budget_bytes = {} must be >= 0",
              o.memory_budget_bytes);
  MLF_EXPECTS(o.batch_bytes >= 1, "VCF option batch_bytes = {} must be >= 1", o.batch_bytes);
  MLF_EXPECTS(o.threads >= 0 && o.threads <= 256, "VCF option threads = {} is out of range: expected [0, 256]",
              o.threads);
}

VcfMatrix ReadVcfMatrix(const std::vector<std::string>& inputs, const VcfOptions& options) {
  const auto t0 = Clock::now();
  VcfMatrix m;
  Scan scan;
  ScanVcf(
      inputs, options,
      [&m](const ScannedVariant& v) { m.variants_info.push_back(MakeVariant(v)); },
      &scan);
  const auto t1 = Clock::now();
  m.samples = scan.stats.samples;
  m.variants = scan.stats.variants_kept;
  m.sample_ids = std::move(scan.sample_ids);
  m.dosage.resize(static_cast<size_t>(m.samples * m.variants));
  if (m.variants > 0) scan.tiles->ReadRows(0, m.samples, m.dosage.data());
  m.means = std::move(scan.means);
  m.stats = scan.stats;
  m.stats.seconds_write = SecondsSince(t1);
  m.stats.seconds_total = SecondsSince(t0);
  return m;
}

VcfStats ConvertVcf(const std::vector<std::string>& inputs, const VcfOptions& options, RowWriter& writer,
                    const std::string& sidecar_prefix) {
  const auto t0 = Clock::now();
  std::unique_ptr<AtomicTextFile> variants_file;
  KeptFn on_kept;
  if (!sidecar_prefix.empty() && options.write_variants) {
    variants_file = std::make_unique<AtomicTextFile>(sidecar_prefix + ".variants.tsv");
    variants_file->Write("CHROM\tPOS\tID\tREF\tALT\tAF\n");
    on_kept = [&variants_file](const ScannedVariant& sv) {
      VcfVariant v = MakeVariant(sv);
      variants_file->Write(fmt::format("{}\t{}\t{}\t{}\t{}\t{:.6g}\n", v.chrom, v.pos, v.id, v.ref, v.alt, v.af));
    };
  }
  Scan scan;
  ScanVcf(inputs, options, on_kept, &scan);
  VcfStats st = scan.stats;
  MLF_EXPECTS(st.variants_kept > 0,
              "no variant of {} input file(s) passed the filters, so there is no matrix to write:\n{}\nrelax "
              "min_maf / max_missing, or keep indels",
              inputs.size(), st.Report());

  const auto t1 = Clock::now();
  const int64_t n = st.samples, cols = st.variants_kept;
  // Rows per batch: as many as batch_bytes of float32 allows, at least one (a row is the unit).
  const int64_t rows_per_batch =
      std::clamp<int64_t>(options.batch_bytes / (cols * static_cast<int64_t>(sizeof(float))), 1, n);
  std::vector<uint8_t> staging(static_cast<size_t>(rows_per_batch * cols));
  const float* means = scan.means.data();
  HostBatch batch;
  for (int64_t first = 0; first < n; first += rows_per_batch) {
    options.stop.ThrowIfStopped();
    const int64_t rows = std::min(rows_per_batch, n - first);
    scan.tiles->ReadRows(first, rows, staging.data());
    batch.Clear();
    batch.layout = Layout::kDense;
    batch.rows = rows;
    batch.cols = cols;
    batch.first_row = first;
    batch.values.resize(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* src = staging.data() + r * cols;
      float* dst = batch.values.data() + r * cols;
      for (int64_t c = 0; c < cols; ++c) dst[c] = src[c] == kMissingDosage ? means[c] : static_cast<float>(src[c]);
    }
    writer.Write(batch);
    st.rows_written += rows;
  }

  if (!sidecar_prefix.empty()) {
    AtomicTextFile samples_file(sidecar_prefix + ".samples.txt");
    std::string text;
    for (const auto& id : scan.sample_ids) {
      text += id;
      text += '\n';
    }
    samples_file.Write(text);
    samples_file.Commit();
    if (variants_file) variants_file->Commit();
  }
  st.seconds_write = SecondsSince(t1);
  st.seconds_total = SecondsSince(t0);
  return st;
}

VcfStats ConvertVcf(const std::vector<std::string>& inputs, const std::string& output,
                    const VcfOptions& options, WriterOptions writer_options) {
  const auto t0 = Clock::now();
  MLF_EXPECTS(!output.empty(), "no output path given for the VCF conversion");
  std::unique_ptr<RowWriter> writer = MakeRowWriter(output, writer_options);
  VcfStats st = ConvertVcf(inputs, options, *writer, output);
  const auto t1 = Clock::now();
  writer->Close();
  st.seconds_write += SecondsSince(t1);
  st.seconds_total = SecondsSince(t0);
  return st;
}

}  // namespace mlforge::io
