// libFuzzer target: bytes -> RecordIOReader (in memory) -> DecodeRecord, with the fast wire decoder
// cross-checked against the generated libprotobuf parser on every payload. The whole input is also
// decoded as one payload, so the fuzzer reaches the protobuf decoder without having to discover
// the framing first. Any disagreement or any exception other than UserError aborts.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "core/error.h"
#include "io/record_codec.h"
#include "io/recordio.h"

namespace {

using mlforge::UserError;
using mlforge::io::DecodedRow;
using mlforge::io::RecordContext;

[[noreturn]] void Diverged(const char* what, const std::string& fast, const std::string& ref) {
  std::fprintf(stderr, "fast and reference decoders disagree (%s)\n  fast: %s\n  ref:  %s\n", what,
               fast.c_str(), ref.c_str());
  std::abort();
}

bool SameFloats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
}

void CrossCheck(std::string_view payload, const RecordContext& ctx) {
  static DecodedRow fast, ref;
  std::string fast_err, ref_err;
  try {
    mlforge::io::DecodeRecord(payload, ctx, &fast);
  } catch (const UserError& e) {
    fast_err = e.what();
  }
  try {
    mlforge::io::DecodeRecordReference(payload, ctx, &ref);
  } catch (const UserError& e) {
    ref_err = e.what();
  }
  const bool fast_parse = fast_err.find("protobuf parse error") != std::string::npos;
  const bool ref_parse = ref_err.find("protobuf parse error") != std::string::npos;
  if (fast_parse != ref_parse) Diverged("parse acceptance", fast_err, ref_err);
  if (fast_parse) return;
  if (fast_err != ref_err) Diverged("semantic error", fast_err, ref_err);
  if (!fast_err.empty()) return;
  if (fast.sparse != ref.sparse || fast.rows != ref.rows || fast.cols != ref.cols ||
      !SameFloats(fast.values, ref.values) || fast.indices != ref.indices || fast.row_ptr != ref.row_ptr ||
      fast.has_label != ref.has_label || !SameFloats(fast.labels, ref.labels) || fast.uid != ref.uid) {
    Diverged("decoded row", "", "");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string name = "fuzz.pbr";
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  CrossCheck(bytes, RecordContext{&name, 0, 0});
  try {
    mlforge::io::RecordIOReader reader(bytes, name);
    std::string_view payload;
    while (reader.Next(&payload)) {
      if (reader.record_offset() >= size) std::abort();  // offsets must lie inside the input
      CrossCheck(payload, RecordContext{&name, reader.record_index(), reader.record_offset()});
    }
    if (reader.bytes_read() != size) std::abort();  // a clean end consumed everything
  } catch (const UserError&) {
    // Corrupt framing: the expected outcome for most inputs.
  }
  return 0;
}
