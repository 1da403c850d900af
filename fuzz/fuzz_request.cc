// libFuzzer target for the endpoint's request decoders (container/inference_io.h DecodeRequest):
// the bytes are a request body as a hostile client would send it. Built four times
// (fuzz/CMakeLists.txt), one executable per content type, MLF_FUZZ_FORMAT =
//   0 text/csv (byte 0's low bit: label_size)   1 application/json
//   2 application/jsonlines                     3 application/x-recordio-protobuf
// and byte 0's bits 1-3 pick the model's feature_dim (0 = none: taken from the first row).
// Every body must decode or raise UserError (a crash, a hang, an InternalError or any other
// exception is a finding), and a decoded batch must be what the predictors may rely on: the
// feature_dim asked for, and only finite values.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "container/inference_io.h"
#include "core/error.h"
#include "fuzz/fuzz_util.h"

#ifndef MLF_FUZZ_FORMAT
#error "build with -DMLF_FUZZ_FORMAT=0..3 (fuzz/CMakeLists.txt)"
#endif

using mlforge::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mlforge::container;
  if (size == 0) return 0;
  RequestType type;
  type.format = static_cast<RequestFormat>(MLF_FUZZ_FORMAT);
  type.label_size = type.format == RequestFormat::kCsv ? (data[0] & 1) : 0;
  RequestContext ctx;
  ctx.source = "request";
  const int dims = (data[0] >> 1) & 7;
  ctx.expected_cols = dims == 0 ? -1 : dims;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const mlforge::HostBatch b = DecodeRequest(type, body, ctx);
    if (b.rows > 0 && ctx.expected_cols > 0) Check(b.cols == ctx.expected_cols);
    if (b.layout == mlforge::Layout::kDense) {
      Check(b.values.size() == static_cast<size_t>(b.rows * b.cols));
    }
    for (float v : b.values) Check(std::isfinite(v));
  } catch (const mlforge::UserError&) {
    // a named rejection: fine
  }
  return 0;
}
