#include "io/vcf_scanner.h"

#include <htslib/hts.h>
#include <htslib/kstring.h>
#include <htslib/vcf.h>
#include <libdeflate.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace mlforge::io {
namespace {

struct HtsFileCloser {
  void operator()(htsFile* f) const { hts_close(f); }
};
struct HdrDestroyer {
  void operator()(bcf_hdr_t* h) const { bcf_hdr_destroy(h); }
};
struct RecDestroyer {
  void operator()(bcf1_t* r) const { bcf_destroy(r); }
};

bool IsBases(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    switch (c) {
      case 'A': case 'C': case 'G': case 'T': case 'N':
      case 'a': case 'c': case 'g': case 't': case 'n':
        break;
      default:
        return false;
    }
  }
  return true;
}

// Rule 1 of vcf.h on the allele strings (n_allele counts REF; ALT "." is no allele).
VariantFate ClassifyAlleles(int n_allele, std::string_view ref, std::string_view alt, bool keep_indels) {
  if (n_allele > 2) return VariantFate::kMultiallelic;
  if (n_allele < 2) return VariantFate::kOtherAllele;
  if (!IsBases(ref) || !IsBases(alt)) return VariantFate::kOtherAllele;
  if (ref.size() == 1 && alt.size() == 1) return VariantFate::kKept;  // SNV
  if (ref.size() != alt.size()) return keep_indels ? VariantFate::kKept : VariantFate::kIndel;
  return VariantFate::kOtherAllele;  // MNP
}

// Plain (non-BGZF) gzip files up to these sizes are inflated whole with libdeflate (about 10x
// zlib's streaming inflate on VCF text); larger ones stream through htslib (zlib) in bounded memory.
constexpr int64_t kWholeFileMaxCompressed = int64_t{256} << 20;
constexpr int64_t kWholeFileMaxInflated = int64_t{1} << 30;

// A growable byte buffer that is never zero-filled (the inflated text of a whole file is written
// once, so std::string's zeroing would be a wasted pass over it).
struct RawBuffer {
  char* data = nullptr;
  size_t size = 0;
  RawBuffer() = default;
  RawBuffer(const RawBuffer&) = delete;
  RawBuffer& operator=(const RawBuffer&) = delete;
  ~RawBuffer() { std::free(data); }
  void Resize(size_t n) {
    if (n > cap) {
      char* p = static_cast<char*>(std::realloc(data, n));
      MLF_EXPECTS(p != nullptr, "out of memory: cannot hold {} bytes of inflated VCF text", n);
      data = p;
      cap = n;
    }
    size = n;
  }
  void Release() {
    std::free(data);
    data = nullptr;
    size = cap = 0;
  }

 private:
  size_t cap = 0;
};

struct DecompressorFree {
  void operator()(libdeflate_decompressor* d) const { libdeflate_free_decompressor(d); }
};

// Inflates every gzip member of `in` into `out` (replaced). False when the data is not valid gzip
// or would exceed kWholeFileMaxInflated (the caller then streams the file instead).
bool InflateWhole(const std::string& in, RawBuffer* out) {
  std::unique_ptr<libdeflate_decompressor, DecompressorFree> d(libdeflate_alloc_decompressor());
  if (!d || in.size() < 18) return false;
  out->Resize(0);
  size_t pos = 0;
  while (pos < in.size()) {
    // A member's size is known only after inflating it: start from the file's last ISIZE (exact
    // for a single member below 4 GiB) or 8x the remaining input, and double on demand.
    const auto* tail = reinterpret_cast<const unsigned char*>(in.data() + in.size() - 4);
    const size_t isize = tail[0] | tail[1] << 8 | tail[2] << 16 | static_cast<size_t>(tail[3]) << 24;
    size_t avail = std::max<size_t>({isize, 8 * (in.size() - pos), 1 << 16});
    for (;;) {
      if (static_cast<int64_t>(out->size + avail) > kWholeFileMaxInflated) return false;
      const size_t base = out->size;
      out->Resize(base + avail);
      size_t used_in = 0, used_out = 0;
      const libdeflate_result r = libdeflate_gzip_decompress_ex(d.get(), in.data() + pos, in.size() - pos,
                                                                out->data + base, avail, &used_in, &used_out);
      if (r == LIBDEFLATE_SUCCESS) {
        out->Resize(base + used_out);
        pos += used_in;
        break;
      }
      out->Resize(base);
      if (r != LIBDEFLATE_INSUFFICIENT_SPACE) return false;
      avail *= 2;
    }
  }
  return true;
}

}  // namespace

struct VcfFileScanner::Impl {
  std::string path;
  VcfOptions opt;
  std::unique_ptr<htsFile, HtsFileCloser> file;
  std::unique_ptr<bcf_hdr_t, HdrDestroyer> hdr;
  std::unique_ptr<bcf1_t, RecDestroyer> rec;  // BCF only
  bool bcf = false;
  std::vector<std::string> ids;
  int64_t n = 0;
  int64_t records = 0;
  std::string last_site;  // CHROM:POS of the previous record, for messages
  kstring_t line = {0, 0, nullptr};
  // The whole inflated text of a plain-gzip file (see InflateWhole); records are read from it
  // at text_pos instead of through htslib.
  bool in_memory = false;
  RawBuffer text;
  size_t text_pos = 0;
  std::vector<uint8_t> column;
  int32_t* gt = nullptr;  // BCF: htslib grows it with realloc
  int gt_cap = 0;

  ~Impl() {
    std::free(line.s);
    std::free(gt);
  }

  std::string Where() const { return last_site.empty() ? "the first record" : "after " + last_site; }

  [[noreturn]] void Fail(const std::string& what) const {
    MLF_FAIL("'{}': variant record {} ({}): {}; fix or drop the record", path, records, Where(), what);
  }

  // Applies rules 3-6 to the column (filled by the caller): fate and af.
  void Finish(ScannedVariant* v, int64_t missing, int64_t alt_sum) const {
    v->dosage = column.data();
    v->missing = missing;
    const int64_t called = n - missing;
    if (called == 0) {
      v->fate = VariantFate::kNoCalls;
      return;
    }
    v->af = static_cast<double>(alt_sum) / (2.0 * static_cast<double>(called));
    if (static_cast<double>(missing) / static_cast<double>(n) > opt.max_missing) {
      v->fate = VariantFate::kMissingness;
    } else if (std::min(v->af, 1.0 - v->af) < opt.min_maf) {
      v->fate = VariantFate::kMaf;
    } else {
      v->fate = VariantFate::kKept;
    }
  }

  // Rule 3 of vcf.h for sample s's call (present alleles, how many of them missing, how many ALT):
  // stores its dosage (or kMissingDosage) and counts it; false for a non-diploid call (haploid,
  // polyploid, or half-missing read as haploid), which skips the variant.
  bool StoreCall(int64_t s, int present, int miss, int alt, int64_t* missing, int64_t* alt_sum) {
    uint8_t d;
    if (present == 0 || miss == present) {
      d = kMissingDosage;  // './.', '.', or no value at all
    } else if (present == 2 && miss == 0) {
      d = static_cast<uint8_t>(alt);
    } else if (present == 2 && miss == 1 && opt.half_missing_as_missing) {
      d = kMissingDosage;
    } else {
      return false;
    }
    column[static_cast<size_t>(s)] = d;
    if (d == kMissingDosage) {
      ++*missing;
    } else {
      *alt_sum += d;
    }
    return true;
  }

  bool NextText(ScannedVariant* v);
  // The next record line (no CR/LF), skipping blank and '#' lines; false at end of file.
  bool NextLine(char** begin, char** end);
  // Plain gzip within the size limits: inflate it whole and parse the header from memory.
  bool TryInMemory();
  bool NextBcf(ScannedVariant* v);
};

VcfFileScanner::VcfFileScanner(const std::string& path, const VcfOptions& options, int threads)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.path = path;
  m.opt = options;
  m.file.reset(hts_open(path.c_str(), "r"));
  MLF_EXPECTS(m.file != nullptr, "cannot open VCF/BCF '{}': {}; check the path and permissions", path,
              std::strerror(errno));
  const htsFormat* fmt = hts_get_format(m.file.get());
  if (fmt->category != variant_data) {
    char* desc = hts_format_description(fmt);
    std::string d = desc ? desc : "unknown";
    std::free(desc);
    MLF_FAIL("'{}' is not a VCF or BCF file (htslib detected: {}); pass a .vcf, .vcf.gz or .bcf file", path, d);
  }
  m.bcf = fmt->format == bcf;
  if (!m.bcf && m.TryInMemory()) {
    // header parsed from memory
  } else {
    // Decompression threads only help BGZF (bgzipped VCF, BCF); htslib ignores them otherwise.
    if (threads > 0) hts_set_threads(m.file.get(), threads);
    m.hdr.reset(bcf_hdr_read(m.file.get()));
  }
  MLF_EXPECTS(m.hdr != nullptr,
              "'{}': cannot read the VCF header (htslib rejected it; see its message above). A VCF must "
              "start with ##fileformat=VCFv4.x and a #CHROM line",
              path);
  m.n = bcf_hdr_nsamples(m.hdr.get());
  MLF_EXPECTS(m.n > 0,
              "'{}' has no sample columns (a sites-only VCF); a dosage matrix needs genotypes (FORMAT GT "
              "and one column per sample)",
              path);
  m.ids.reserve(static_cast<size_t>(m.n));
  for (int64_t i = 0; i < m.n; ++i) m.ids.emplace_back(m.hdr->samples[i]);
  m.column.resize(static_cast<size_t>(m.n));
  if (m.bcf) {
    m.rec.reset(bcf_init());
    MLF_ASSERT(m.rec != nullptr);
  }
}

VcfFileScanner::~VcfFileScanner() = default;

const std::string& VcfFileScanner::path() const { return impl_->path; }
const std::vector<std::string>& VcfFileScanner::sample_ids() const { return impl_->ids; }
int64_t VcfFileScanner::samples() const { return impl_->n; }
int64_t VcfFileScanner::records() const { return impl_->records; }
bool VcfFileScanner::is_bcf() const { return impl_->bcf; }

bool VcfFileScanner::Next(ScannedVariant* out) {
  impl_->opt.stop.ThrowIfStopped();
  return impl_->bcf ? impl_->NextBcf(out) : impl_->NextText(out);
}

bool VcfFileScanner::Impl::NextLine(char** begin, char** end) {
  for (;;) {
    char* b;
    size_t len;
    if (in_memory) {
      if (text_pos >= text.size) return false;
      b = text.data + text_pos;
      const char* nl = static_cast<const char*>(std::memchr(b, '\n', text.size - text_pos));
      len = nl ? static_cast<size_t>(nl - b) : text.size - text_pos;
      text_pos += len + 1;
    } else {
      const int r = hts_getline(file.get(), '\n', &line);
      if (r == -1) return false;
      MLF_EXPECTS(r >= 0, "'{}': cannot read after variant record {} ({}): the file is truncated or corrupt "
                  "(htslib error {}); re-download or re-compress it",
                  path, records, last_site.empty() ? "at the first record" : last_site, r);
      b = line.s;
      len = line.l;
    }
    // A CR of a CRLF file, blank lines and stray header lines are not records.
    if (len > 0 && b[len - 1] == '\r') --len;
    if (len == 0 || b[0] == '#') continue;
    *begin = b;
    *end = b + len;
    return true;
  }
}

bool VcfFileScanner::Impl::TryInMemory() {
  const htsFormat* fmt = hts_get_format(file.get());
  if (fmt->format != vcf || fmt->compression != gzip) return false;  // BGZF, plain text, BCF: htslib
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size <= 0 || size > kWholeFileMaxCompressed) return false;
  std::string raw(static_cast<size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(raw.data(), size)) return false;
  if (!InflateWhole(raw, &text)) {
    text.Release();
    return false;  // htslib reports what is wrong with it, or streams a file too large to hold
  }
  // The header: every line up to and including #CHROM, parsed by htslib as it would parse it.
  size_t pos = 0;
  for (;;) {
    if (pos >= text.size || text.data[pos] != '#') {
      MLF_FAIL("'{}': the VCF header has no #CHROM line (a VCF must start with ##fileformat=VCFv4.x lines and "
               "a #CHROM line naming the columns)",
               path);
    }
    const char* nl = static_cast<const char*>(std::memchr(text.data + pos, '\n', text.size - pos));
    const size_t next = nl ? static_cast<size_t>(nl - text.data) + 1 : text.size;
    const bool chrom_line = text.size - pos >= 6 && std::memcmp(text.data + pos, "#CHROM", 6) == 0;
    pos = next;
    if (chrom_line) break;
  }
  std::string header;
  header.reserve(pos);
  for (size_t i = 0; i < pos; ++i) {  // CRLF -> LF, as htslib's line reader does
    if (!(text.data[i] == '\r' && i + 1 < pos && text.data[i + 1] == '\n')) header += text.data[i];
  }
  hdr.reset(bcf_hdr_init("r"));
  MLF_ASSERT(hdr != nullptr);
  MLF_EXPECTS(bcf_hdr_parse(hdr.get(), header.data()) == 0,
              "'{}': cannot read the VCF header (htslib rejected it; see its message above). A VCF must start "
              "with ##fileformat=VCFv4.x and a #CHROM line",
              path);
  text_pos = pos;
  in_memory = true;
  file.reset();  // nothing more to read through htslib
  return true;
}

bool VcfFileScanner::Impl::NextText(ScannedVariant* v) {
  char* p;
  char* end;
  if (!NextLine(&p, &end)) return false;
  ++records;
  *v = ScannedVariant{};
  // The 8 fixed columns and FORMAT.
  std::string_view f[9];
  int nf = 0;
  bool sample_columns = false;  // a tab follows FORMAT
  while (nf < 9) {
    char* tab = static_cast<char*>(std::memchr(p, '\t', static_cast<size_t>(end - p)));
    char* stop = tab ? tab : end;
    f[nf++] = std::string_view(p, static_cast<size_t>(stop - p));
    if (!tab) {
      p = end;
      break;
    }
    p = tab + 1;
    if (nf == 9) sample_columns = true;
  }
  v->chrom = f[0];
  if (nf < 8) Fail(fmt::format("it has {} tab-separated columns; a VCF record needs at least 8", nf));
  // POS: digits only, >= 1 (what vcf_parse reads as -1 without an error code is an error here).
  int64_t pos = 0;
  bool pos_ok = !f[1].empty() && f[1].size() <= 18;
  for (char c : f[1]) {
    if (!pos_ok || c < '0' || c > '9') {  // 18 digits at most: no overflow
      pos_ok = false;
      break;
    }
    pos = pos * 10 + (c - '0');
  }
  if (!pos_ok || pos < 1) {
    MLF_FAIL("'{}': variant record {} ({}) has no valid POS (column 2 is '{}'; it must be a position >= 1); "
             "fix or drop the record",
             path, records, Where(), f[1]);
  }
  v->pos = pos;
  v->id = f[2];
  v->ref = f[3];
  v->alt = f[4];
  last_site = fmt::format("{}:{}", v->chrom, pos);
  const int n_allele = v->alt == "." ? 1 : 2 + static_cast<int>(std::count(v->alt.begin(), v->alt.end(), ','));
  v->fate = ClassifyAlleles(n_allele, v->ref, v->alt, opt.keep_indels);
  if (v->fate != VariantFate::kKept) return true;
  if (nf < 9) {  // no FORMAT column
    v->fate = VariantFate::kNoGenotypes;
    return true;
  }
  // The position of GT among the FORMAT keys (the spec puts it first; others are tolerated).
  int gt_index = -1;
  {
    int k = 0;
    size_t start = 0;
    const std::string_view fmtf = f[8];
    while (start <= fmtf.size()) {
      size_t colon = fmtf.find(':', start);
      if (colon == std::string_view::npos) colon = fmtf.size();
      if (fmtf.substr(start, colon - start) == "GT") {
        gt_index = k;
        break;
      }
      ++k;
      start = colon + 1;
    }
  }
  if (gt_index < 0) {
    v->fate = VariantFate::kNoGenotypes;
    return true;
  }
  if (!sample_columns) Fail(fmt::format("it has no sample columns but the header lists {}", n));
  int64_t missing = 0, alt_sum = 0;
  uint8_t* col = column.data();
  // The common line: FORMAT is GT alone, biallelic, every call two single-digit alleles ("0|1\t"),
  // so the samples are exactly 4 bytes apart. Checked and decoded without branches; any other
  // byte anywhere (a missing call, a third allele, a longer field) sends the whole line to the
  // general loop below, which also names what is wrong.
  if (n_allele == 2 && f[8] == "GT" && end - p == 4 * n - 1) {
    unsigned bad = 0;
    const unsigned char* q = reinterpret_cast<const unsigned char*>(p);
    for (int64_t s = 0; s < n; ++s) {
      const unsigned a = q[4 * s] - '0', sep = q[4 * s + 1], b = q[4 * s + 2] - '0';
      const unsigned tab = s + 1 < n ? q[4 * s + 3] : '\t';
      bad |= (a | b) & ~1u;  // alleles 0 or 1 only
      bad |= static_cast<unsigned>(sep != '|' && sep != '/') | static_cast<unsigned>(tab != '\t');
      const unsigned d = a + b;
      col[s] = static_cast<uint8_t>(d);
      alt_sum += d;
    }
    if (bad == 0) {
      Finish(v, 0, alt_sum);
      return true;
    }
    alt_sum = 0;
  }
  for (int64_t s = 0; s < n; ++s) {
    for (int k = 0; k < gt_index; ++k) {  // skip FORMAT subfields before GT
      while (p < end && *p != ':' && *p != '\t') ++p;
      if (p < end && *p == ':') ++p;
    }
    int present = 0, miss = 0, alt = 0;
    if (end - p >= 3 && static_cast<unsigned>(p[0] - '0') < 10u && (p[1] == '|' || p[1] == '/') &&
        static_cast<unsigned>(p[2] - '0') < 10u && (p + 3 == end || p[3] == '\t' || p[3] == ':')) {
      // The common case: two single-digit alleles.
      const int x = p[0] - '0', y = p[2] - '0';
      if (x >= n_allele || y >= n_allele) {
        MLF_FAIL("'{}': {} sample '{}': GT allele index {} but the record has only {} alleles; fix the genotype",
                 path, last_site, ids[static_cast<size_t>(s)], std::max(x, y), n_allele);
      }
      present = 2;
      alt = (x > 0) + (y > 0);
      p += 3;
    } else {
      // General: alleles ('.' or an index) separated by '|' or '/', up to ':' or a tab.
      for (;;) {
        if (p < end && *p == '.') {
          ++miss;
          ++p;
        } else if (p < end && static_cast<unsigned>(*p - '0') < 10u) {
          int64_t a = 0;
          while (p < end && static_cast<unsigned>(*p - '0') < 10u && a < 1000000) a = a * 10 + (*p++ - '0');
          if (a >= n_allele) {
            MLF_FAIL("'{}': {} sample '{}': GT allele index {} but the record has only {} alleles; fix the "
                     "genotype",
                     path, last_site, ids[static_cast<size_t>(s)], a, n_allele);
          }
          alt += a > 0;
        } else {
          const char* q = p;
          while (q < end && *q != '\t' && *q != ':') ++q;
          MLF_FAIL("'{}': {} sample '{}': malformed GT '{}' (expected alleles such as 0/1, 1|0, ./.); fix the "
                   "genotype",
                   path, last_site, ids[static_cast<size_t>(s)], std::string_view(p, static_cast<size_t>(q - p)));
        }
        ++present;
        if (p < end && (*p == '|' || *p == '/')) {
          ++p;
          continue;
        }
        break;
      }
      if (p < end && *p != '\t' && *p != ':') {
        const char* q = p;
        while (q < end && *q != '\t') ++q;
        MLF_FAIL("'{}': {} sample '{}': malformed GT field '{}'; fix the genotype", path, last_site,
                 ids[static_cast<size_t>(s)], std::string_view(p, static_cast<size_t>(q - p)));
      }
    }
    // Past the rest of this sample's subfields to the next column.
    if (p < end && *p == ':') {
      char* tab = static_cast<char*>(std::memchr(p, '\t', static_cast<size_t>(end - p)));
      p = tab ? tab : end;
    }
    if (s + 1 < n) {
      if (p >= end) Fail(fmt::format("it has {} sample columns but the header lists {}", s + 1, n));
      ++p;  // the tab
    } else if (p < end) {
      Fail(fmt::format("it has more sample columns than the {} the header lists", n));
    }
    if (!StoreCall(s, present, miss, alt, &missing, &alt_sum)) {
      v->fate = VariantFate::kNonDiploid;
      return true;
    }
  }
  Finish(v, missing, alt_sum);
  return true;
}

bool VcfFileScanner::Impl::NextBcf(ScannedVariant* v) {
  bcf1_t* r = rec.get();
  const int rc = bcf_read(file.get(), hdr.get(), r);
  if (rc == -1) return false;
  ++records;
  MLF_EXPECTS(rc >= 0 && r->errcode == 0,
              "'{}': cannot parse variant record {} ({}; htslib error code {}, see its message above); fix "
              "or drop the record (bcftools view reports the same error)",
              path, records, last_site.empty() ? "the first record" : "after " + last_site,
              rc < 0 ? rc : r->errcode);
  MLF_EXPECTS(r->pos >= 0,
              "'{}': variant record {} ({}) has no valid POS (column 2 must be a position >= 1); fix or drop the "
              "record",
              path, records, Where());
  *v = ScannedVariant{};
  bcf_unpack(r, BCF_UN_STR);
  const char* chrom = bcf_seqname(hdr.get(), r);
  v->chrom = chrom ? chrom : "?";
  v->pos = r->pos + 1;
  v->id = r->d.id ? r->d.id : ".";
  v->ref = r->n_allele > 0 ? r->d.allele[0] : "";
  v->alt = r->n_allele > 1 ? r->d.allele[1] : ".";
  last_site = fmt::format("{}:{}", v->chrom, v->pos);
  v->fate = ClassifyAlleles(r->n_allele, v->ref, v->alt, opt.keep_indels);
  if (v->fate != VariantFate::kKept) return true;
  const int ngt = bcf_get_genotypes(hdr.get(), r, &gt, &gt_cap);
  if (ngt <= 0) {
    v->fate = VariantFate::kNoGenotypes;
    return true;
  }
  MLF_ASSERT(ngt % n == 0);
  const int ploidy_max = static_cast<int>(ngt / n);
  int64_t missing = 0, alt_sum = 0;
  for (int64_t s = 0; s < n; ++s) {
    const int32_t* q = gt + s * ploidy_max;
    int present = 0, miss = 0, alt = 0;
    for (int j = 0; j < ploidy_max && q[j] != bcf_int32_vector_end; ++j) {
      ++present;
      if (q[j] == bcf_int32_missing || bcf_gt_is_missing(q[j])) {
        ++miss;
        continue;
      }
      const int a = bcf_gt_allele(q[j]);
      MLF_EXPECTS(a >= 0 && a < r->n_allele,
                  "'{}': {} sample '{}': GT allele index {} but the record has only {} alleles; fix the genotype",
                  path, last_site, ids[static_cast<size_t>(s)], a, static_cast<int>(r->n_allele));
      alt += a > 0;
    }
    if (!StoreCall(s, present, miss, alt, &missing, &alt_sum)) {
      v->fate = VariantFate::kNonDiploid;
      return true;
    }
  }
  Finish(v, missing, alt_sum);
  return true;
}

std::vector<std::string> VcfSampleIds(const std::string& path) {
  std::unique_ptr<htsFile, HtsFileCloser> f(hts_open(path.c_str(), "r"));
  MLF_EXPECTS(f != nullptr, "cannot open VCF/BCF '{}': {}; check the path and permissions", path, std::strerror(errno));
  MLF_EXPECTS(hts_get_format(f.get())->category == variant_data,
              "'{}' is not a VCF or BCF file; pass a .vcf, .vcf.gz or .bcf file", path);
  std::unique_ptr<bcf_hdr_t, HdrDestroyer> h(bcf_hdr_read(f.get()));
  MLF_EXPECTS(h != nullptr,
              "'{}': cannot read the VCF header (htslib rejected it; see its message above). A VCF must start "
              "with ##fileformat=VCFv4.x and a #CHROM line",
              path);
  std::vector<std::string> ids;
  for (int i = 0; i < bcf_hdr_nsamples(h.get()); ++i) ids.emplace_back(h->samples[i]);
  return ids;
}

void CountFate(const ScannedVariant& v, VcfStats* st) {
  ++st->variants_seen;
  switch (v.fate) {
    case VariantFate::kKept:
      ++st->variants_kept;
      st->imputed_cells += v.missing;
      break;
    case VariantFate::kMultiallelic: ++st->skipped_multiallelic; break;
    case VariantFate::kIndel: ++st->skipped_indel; break;
    case VariantFate::kOtherAllele: ++st->skipped_other_allele; break;
    case VariantFate::kNoGenotypes: ++st->skipped_no_genotypes; break;
    case VariantFate::kNonDiploid: ++st->skipped_non_diploid; break;
    case VariantFate::kNoCalls: ++st->skipped_no_calls; break;
    case VariantFate::kMissingness: ++st->skipped_missingness; break;
    case VariantFate::kMaf: ++st->skipped_maf; break;
  }
}

void CheckSameSamples(const std::string& first_path, const std::vector<std::string>& first_ids,
                      const std::string& path, const std::vector<std::string>& ids) {
  MLF_EXPECTS(ids.size() == first_ids.size(),
              "'{}' has {} samples but '{}' has {}: every input must list the same samples in the same "
              "order (bcftools view -s <list> selects and reorders samples)",
              path, ids.size(), first_path, first_ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    MLF_EXPECTS(ids[i] == first_ids[i],
                "'{}': sample {} (0-based, after FORMAT) is '{}' but '{}' has '{}' there: every input must "
                "list the same samples in the same order (bcftools view -s <list> reorders them)",
                path, i, ids[i], first_path, first_ids[i]);
  }
}

}  // namespace mlforge::io
