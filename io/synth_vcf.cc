#include "io/synth_vcf.h"

#include <fmt/format.h>
#include <htslib/bgzf.h>
#include <htslib/hfile.h>
#include <htslib/hts.h>
#include <htslib/vcf.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <thread>
#include <vector>

#include "core/error.h"

namespace mlforge::io {
namespace {

constexpr const char* kChrom = "1";
constexpr int64_t kPosSpacing = 1000;
// BCF stores POS as a signed 32-bit 0-based value.
constexpr int64_t kMaxPos = std::numeric_limits<int32_t>::max() - 1;
constexpr uint8_t kMissingCode = 4;  // a call code: 0..3 = alleles (bit 0 first, bit 1 second)

bool EndsWithLower(const std::string& path, const char* ext) {
  const size_t n = std::strlen(ext);
  if (path.size() < n) return false;
  for (size_t i = 0; i < n; ++i) {
    if (std::tolower(static_cast<unsigned char>(path[path.size() - n + i])) != ext[i]) return false;
  }
  return true;
}

// Independent per-call missingness: splitmix64 over (seed, sample, variant), not the row's
// genotype stream, so the called genotypes are those of Fill whatever the rate.
uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
uint64_t MissingRowKey(uint64_t seed, int64_t row) {
  return Mix64(Mix64(seed ^ 0x6D697373696E6721ull) + static_cast<uint64_t>(row) * 0x9E3779B97F4A7C15ull);
}
bool IsMissing(uint64_t row_key, int64_t variant, double rate) {
  const uint64_t h = Mix64(row_key + (static_cast<uint64_t>(variant) + 1) * 0xD1B54A32D192ED03ull);
  return static_cast<double>(h >> 11) * 0x1.0p-53 < rate;
}

// A temporary file next to its destination, removed unless committed (renamed into place).
class PendingFile {
 public:
  explicit PendingFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp-" + std::to_string(::getpid())) {}
  ~PendingFile() {
    if (!committed_) std::remove(tmp_.c_str());
  }
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;
  const std::string& tmp() const { return tmp_; }
  const std::string& path() const { return path_; }
  void Commit() {
    MLF_EXPECTS(std::rename(tmp_.c_str(), path_.c_str()) == 0, "cannot rename {} to {}: {}", tmp_, path_,
                std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string path_, tmp_;
  bool committed_ = false;
};

void WriteText(const PendingFile& f, const std::string& text) {
  std::ofstream out(f.tmp(), std::ios::binary | std::ios::trunc);
  MLF_EXPECTS(out.good(), "cannot write {}: check that the directory exists and is writable", f.tmp());
  out << text;
  out.flush();
  MLF_EXPECTS(out.good(), "cannot write {} (disk full?)", f.tmp());
}

struct HtsCloser {
  void operator()(htsFile* f) const {
    if (f) hts_close(f);
  }
};
struct HdrDeleter {
  void operator()(bcf_hdr_t* h) const { bcf_hdr_destroy(h); }
};
struct RecDeleter {
  void operator()(bcf1_t* r) const { bcf_destroy(r); }
};

}  // namespace

VcfOutput VcfOutputFromPath(const std::string& path) {
  if (EndsWithLower(path, ".bcf")) return VcfOutput::kBcf;
  if (EndsWithLower(path, ".vcf.gz") || EndsWithLower(path, ".vcf.bgz")) return VcfOutput::kVcfGz;
  if (EndsWithLower(path, ".vcf")) return VcfOutput::kVcf;
  MLF_FAIL("cannot tell the VCF output format from '{}': use .vcf, .vcf.gz (or .vcf.bgz, BGZF) or .bcf", path);
}

const char* VcfOutputName(VcfOutput f) {
  switch (f) {
    case VcfOutput::kVcf: return "vcf";
    case VcfOutput::kVcfGz: return "vcf.gz";
    case VcfOutput::kBcf: return "bcf";
  }
  return "?";
}

void ValidateSynthVcf(const SynthOptions& options, const SynthVcfOptions& vcf) {
  MLF_EXPECTS(options.kind == SynthKind::kGenotypes,
              "synth {} cannot be written as VCF/BCF: only genotypes can; write {} as .csv or .pbr/.recordio",
              SynthKindName(options.kind), SynthKindName(options.kind));
  MLF_EXPECTS(std::isfinite(vcf.missing_rate) && vcf.missing_rate >= 0 && vcf.missing_rate < 1,
              "--missing-rate must be in [0, 1) (got {})", vcf.missing_rate);
  MLF_EXPECTS(vcf.compression_level >= -1 && vcf.compression_level <= 9,
              "--compression-level must be in [0, 9], or -1 for htslib's default (got {})", vcf.compression_level);
  MLF_EXPECTS(vcf.block_variants >= 1, "synth VCF block size must be at least 1 (got {})", vcf.block_variants);
  MLF_EXPECTS(options.cols <= kMaxPos, "synth genotypes as VCF/BCF: --cols must be at most {} (got {})", kMaxPos,
              options.cols);
}

SynthVcfResult WriteSynthGenotypesVcf(const SynthOptions& options, const std::string& path,
                                      const SynthVcfOptions& vcf, StopToken stop) {
  const VcfOutput format = VcfOutputFromPath(path);
  ValidateSynthVcf(options, vcf);
  const SynthGenerator gen(options);  // validates the generator's own options
  const int64_t n = gen.options().rows;
  const int64_t d = gen.cols();
  const int64_t spacing = d <= kMaxPos / kPosSpacing ? kPosSpacing : kMaxPos / d;

  PendingFile data(path);
  PendingFile samples(path + ".samples.tsv");
  std::unique_ptr<PendingFile> truth;
  if (vcf.write_truth) truth = std::make_unique<PendingFile>(path + ".truth.json");

  // Sample IDs S<r+1> zero-padded to the width of n.
  const int width = static_cast<int>(std::to_string(n).size());
  std::vector<SynthGenerator::GenotypeStream> streams(n);
  std::string samples_text = "sample\tpop\n";
  for (int64_t r = 0; r < n; ++r) {
    streams[r] = gen.StartGenotypes(r);
    samples_text += fmt::format("S{:0{}}\t{}\n", r + 1, width, streams[r].population);
  }

  // Header.
  std::unique_ptr<bcf_hdr_t, HdrDeleter> hdr(bcf_hdr_init("w"));
  MLF_ASSERT_MSG(hdr != nullptr, "bcf_hdr_init failed");
  const auto append = [&](const std::string& line) {
    MLF_ASSERT_MSG(bcf_hdr_append(hdr.get(), line.c_str()) == 0, "bad VCF header line {}", line);
  };
  append(fmt::format("##source=mlforge data synth genotypes (Balding-Nichols; seed={}, populations={}, fst={}, "
                     "missing_rate={}, phased={})",
                     options.seed, gen.options().populations, gen.options().fst, vcf.missing_rate,
                     vcf.phased ? "true" : "false"));
  append(fmt::format("##contig=<ID={},length={}>", kChrom, spacing * d));
  append("##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">");
  for (int64_t r = 0; r < n; ++r) {
    const std::string id = fmt::format("S{:0{}}", r + 1, width);
    MLF_ASSERT_MSG(bcf_hdr_add_sample(hdr.get(), id.c_str()) == 0, "cannot add sample {}", id);
  }
  MLF_ASSERT_MSG(bcf_hdr_sync(hdr.get()) == 0, "bcf_hdr_sync failed");

  std::string mode = format == VcfOutput::kBcf ? "wb" : format == VcfOutput::kVcfGz ? "wz" : "w";
  if (format != VcfOutput::kVcf && vcf.compression_level >= 0) mode += std::to_string(vcf.compression_level);
  std::unique_ptr<htsFile, HtsCloser> fp(hts_open(data.tmp().c_str(), mode.c_str()));
  MLF_EXPECTS(fp != nullptr, "cannot write {}: {} (check that the directory exists and is writable)", data.tmp(),
              std::strerror(errno));
  if (format != VcfOutput::kVcf) {
    const int threads =
        vcf.threads > 0 ? vcf.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    MLF_EXPECTS(hts_set_threads(fp.get(), threads) == 0, "cannot start {} htslib threads for {}", threads,
                data.tmp());
  }
  MLF_EXPECTS(bcf_hdr_write(fp.get(), hdr.get()) == 0, "cannot write the VCF header to {} (disk full?)",
              data.tmp());

  // Call codes -> text (4 bytes each: tab + GT) and BCF allele pairs.
  static constexpr char kUnphased[5][5] = {"\t0/0", "\t0/1", "\t0/1", "\t1/1", "\t./."};
  static constexpr char kPhased[5][5] = {"\t0|0", "\t1|0", "\t0|1", "\t1|1", "\t.|."};
  const auto& text_of = vcf.phased ? kPhased : kUnphased;
  int32_t gt_of[5][2];
  for (int c = 0; c < 4; ++c) {
    int a = c & 1, b = c >> 1;
    if (!vcf.phased && a > b) std::swap(a, b);
    gt_of[c][0] = bcf_gt_unphased(a);
    gt_of[c][1] = vcf.phased ? bcf_gt_phased(b) : bcf_gt_unphased(b);
  }
  gt_of[kMissingCode][0] = bcf_gt_missing;
  gt_of[kMissingCode][1] = vcf.phased ? (bcf_gt_missing | 1) : bcf_gt_missing;

  std::vector<uint64_t> missing_key;
  if (vcf.missing_rate > 0) {
    missing_key.resize(n);
    for (int64_t r = 0; r < n; ++r) missing_key[r] = MissingRowKey(options.seed, r);
  }

  const int64_t block = std::min<int64_t>(vcf.block_variants, d);
  std::vector<uint8_t> calls(static_cast<size_t>(n) * block);  // sample-major: calls[i * block + c]
  std::string line;
  std::vector<int32_t> gt;
  std::unique_ptr<bcf1_t, RecDeleter> rec;
  int pass_id = 0;
  if (format == VcfOutput::kBcf) {
    gt.resize(2 * n);
    rec.reset(bcf_init());
    pass_id = bcf_hdr_id2int(hdr.get(), BCF_DT_ID, "PASS");
  } else {
    line.resize(64 + 4 * static_cast<size_t>(n) + 1);
  }
  int64_t missing_calls = 0;
  for (int64_t j0 = 0; j0 < d; j0 += block) {
    stop.ThrowIfStopped();
    const int64_t nb = std::min(block, d - j0);
    for (int64_t i = 0; i < n; ++i) {
      uint8_t* out = &calls[static_cast<size_t>(i) * block];
      gen.DrawGenotypes(&streams[i], nb, out);
      if (!missing_key.empty()) {
        for (int64_t c = 0; c < nb; ++c) {
          if (IsMissing(missing_key[i], j0 + c, vcf.missing_rate)) {
            out[c] = kMissingCode;
            ++missing_calls;
          }
        }
      }
    }
    for (int64_t c = 0; c < nb; ++c) {
      const int64_t j = j0 + c;
      const int64_t pos = spacing * (j + 1);
      if (format == VcfOutput::kBcf) {
        bcf1_t* v = rec.get();
        bcf_clear(v);
        v->rid = 0;
        v->pos = pos - 1;
        v->n_sample = static_cast<uint32_t>(n);
        bcf_float_set_missing(v->qual);
        const std::string id = fmt::format("synth_{}", j);
        bool ok = bcf_update_id(hdr.get(), v, id.c_str()) == 0 && bcf_update_alleles_str(hdr.get(), v, "A,G") == 0 &&
                  bcf_update_filter(hdr.get(), v, &pass_id, 1) == 0;
        for (int64_t i = 0; i < n; ++i) {
          const uint8_t code = calls[static_cast<size_t>(i) * block + c];
          gt[2 * i] = gt_of[code][0];
          gt[2 * i + 1] = gt_of[code][1];
        }
        ok = ok && bcf_update_genotypes(hdr.get(), v, gt.data(), static_cast<int>(2 * n)) == 0;
        MLF_ASSERT_MSG(ok, "cannot build BCF record {}", j);
        MLF_EXPECTS(bcf_write(fp.get(), hdr.get(), v) == 0, "cannot write {} (disk full?)", data.tmp());
      } else {
        char* p = line.data();
        const auto head = fmt::format_to_n(p, 64, "{}\t{}\tsynth_{}\tA\tG\t.\tPASS\t.\tGT", kChrom, pos, j);
        MLF_ASSERT(head.size <= 64);
        p += head.size;
        for (int64_t i = 0; i < n; ++i) {
          std::memcpy(p, text_of[calls[static_cast<size_t>(i) * block + c]], 4);
          p += 4;
        }
        *p++ = '\n';
        const size_t len = static_cast<size_t>(p - line.data());
        const ssize_t w = format == VcfOutput::kVcfGz ? bgzf_write(fp->fp.bgzf, line.data(), len)
                                                      : hwrite(fp->fp.hfile, line.data(), len);
        MLF_EXPECTS(w == static_cast<ssize_t>(len), "cannot write {} (disk full?)", data.tmp());
      }
    }
  }
  stop.ThrowIfStopped();
  // hts_close flushes (and, with threads, waits for the last blocks): its result decides success.
  const int close_rc = hts_close(fp.release());
  MLF_EXPECTS(close_rc == 0, "cannot write {} (disk full?)", data.tmp());

  SynthVcfResult result;
  result.samples = n;
  result.variants = d;
  result.missing_calls = missing_calls;
  result.format = VcfOutputName(format);
  result.samples_path = samples.path();
  WriteText(samples, samples_text);
  if (truth) {
    nlohmann::json t = gen.Truth();
    t["vcf"] = {{"format", result.format},
                {"chrom", kChrom},
                {"pos_spacing", spacing},
                {"ref", "A"},
                {"alt", "G"},
                {"phased", vcf.phased},
                {"missing_rate", vcf.missing_rate},
                {"missing_calls", missing_calls},
                {"samples_file", samples.path()}};
    WriteText(*truth, t.dump(1) + "\n");
    result.truth_path = truth->path();
  }
  // Sidecars first, the data last: a data file never appears without its sidecars, and a failed
  // rename takes the sidecars already renamed with it.
  bool samples_done = false, truth_done = false;
  try {
    samples.Commit();
    samples_done = true;
    if (truth) truth->Commit();
    truth_done = truth != nullptr;
    data.Commit();
  } catch (...) {
    if (samples_done) std::remove(samples.path().c_str());
    if (truth_done) std::remove(truth->path().c_str());
    throw;
  }
  return result;
}

}  // namespace mlforge::io
