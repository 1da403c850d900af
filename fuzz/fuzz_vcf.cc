// libFuzzer target for the VCF record scanner (io/vcf_scanner.h), mlforge's own GT parser.
// Input: byte 0 picks the sample count (1..4, low 2 bits) and whether the file is also written as
// plain gzip (bit 2: the libdeflate whole-file path); the rest are the records after a fixed header.
// Every record must either scan or raise UserError (a crash, an InternalError or another exception
// is a finding), every kept column must hold only 0/1/2 or the missing code, and the gzip copy must
// scan to exactly the same fates, dosages and error as the plain text.
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz/fuzz_util.h"
#include "io/vcf_scanner.h"

using mlforge::fuzz::Check;

namespace {

// What a scan produced, to compare two scans of the same text.
struct Trace {
  std::vector<int> fates;
  std::vector<uint8_t> dosages;
  std::string error;
};

Trace Scan(const std::string& path) {
  Trace t;
  try {
    mlforge::io::VcfOptions opt;
    mlforge::io::VcfFileScanner f(path, opt, 0);
    mlforge::io::ScannedVariant v;
    while (f.Next(&v)) {
      t.fates.push_back(static_cast<int>(v.fate));
      if (v.fate == mlforge::io::VariantFate::kKept) {
        for (int64_t s = 0; s < f.samples(); ++s) {
          const uint8_t d = v.dosage[s];
          Check(d <= 2 || d == mlforge::io::kMissingDosage);
          t.dosages.push_back(d);
        }
      }
    }
  } catch (const mlforge::UserError& e) {
    t.error = e.what();
  }
  return t;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  Check(f != nullptr);
  Check(std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size());
  std::fclose(f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int samples = 1 + (data[0] & 3);
  const bool gzip = (data[0] & 4) != 0;
  std::string text =
      "##fileformat=VCFv4.2\n##contig=<ID=1>\n##FORMAT=<ID=GT,Number=1,Type=String,Description=\"GT\">\n"
      "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT";
  for (int s = 0; s < samples; ++s) text += "\tS" + std::to_string(s);
  text += "\n";
  text.append(reinterpret_cast<const char*>(data) + 1, size - 1);
  static const std::string dir = [] {
    char templ[] = "/tmp/mlforge-fuzz-vcf-XXXXXX";
    Check(mkdtemp(templ) != nullptr);
    return std::string(templ);
  }();
  const std::string plain = dir + "/in.vcf", packed = dir + "/in.vcf.gz";
  WriteFile(plain, text);
  const Trace a = Scan(plain);
  if (gzip) {
    gzFile g = gzopen(packed.c_str(), "wb");
    Check(g != nullptr);
    if (!text.empty()) Check(gzwrite(g, text.data(), static_cast<unsigned>(text.size())) == static_cast<int>(text.size()));
    gzclose(g);
    const Trace b = Scan(packed);
    Check(a.fates == b.fates);
    Check(a.dosages == b.dosages);
    Check(a.error.empty() == b.error.empty());
  }
  return 0;
}
