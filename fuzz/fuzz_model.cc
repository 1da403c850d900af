// libFuzzer target for the model parsers that `serve`, `predict` and `mlforge.load` run on a
// model_algo-1 (SageMaker's MXNet NDArray lists for k-means and PCA, its zips of JSON and NDArray
// members for the linear learner and factorization machines, and mlforge's own forms). Input:
// byte 0 picks the algorithm (mod 4), the rest is the model_algo-1 bytes. Every input must parse
// or raise a UserError (anything else - a crash, an InternalError, another exception, a sanitizer
// report - is a finding). A parsed model must be internally consistent: its arrays have the sizes
// its dimensions say.
#include <cstdint>
#include <string>
#include <string_view>

#include "algos/factorization_machines/model.h"
#include "algos/kmeans/model.h"
#include "algos/linear_learner/model.h"
#include "algos/pca/model.h"
#include "core/error.h"
#include "fuzz/fuzz_util.h"

using mlforge::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mlforge::algos;
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  static const std::string kSource = "fuzz/model_algo-1";
  try {
    switch (data[0] % 4) {
      case 0: {
        const kmeans::Model m = kmeans::ParseModel(bytes, kSource);
        Check(m.k >= 1 && m.dim >= 1 && m.centers.size() == static_cast<size_t>(m.k * m.dim));
        break;
      }
      case 1: {
        const pca::Model m = pca::ParseModel(bytes, kSource);
        Check(m.dim >= 1 && m.components >= 1 && m.v.size() == static_cast<size_t>(m.dim * m.components) &&
              m.s.size() == static_cast<size_t>(m.components) &&
              (m.mean.empty() || m.mean.size() == static_cast<size_t>(m.dim)));
        break;
      }
      case 2: {
        const linear_learner::Model m = linear_learner::ParseModel(bytes, kSource);
        Check(m.dim >= 1 && m.outputs >= 1 && m.weights.size() == static_cast<size_t>(m.dim * m.outputs) &&
              m.bias.size() == static_cast<size_t>(m.outputs));
        break;
      }
      default: {
        const factorization_machines::Model m = factorization_machines::ParseModel(bytes, kSource);
        Check(m.params.d >= 1 && m.params.k >= 1 &&
              m.params.v.size() == static_cast<size_t>(m.params.d * m.params.k) &&
              m.params.w.size() == static_cast<size_t>(m.params.d));
        break;
      }
    }
  } catch (const mlforge::UserError&) {
  }
  return 0;
}
