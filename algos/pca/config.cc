#include "algos/pca/config.h"

#include <unistd.h>

#include <algorithm>

#include "core/error.h"
#include "kernels/pca_accumulate.h"

namespace mlforge::algos::pca {

const HpTable& Hyperparameters() {
  static const HpTable table = [] {
    HpTable t("pca");
    t.Int("feature_dim").Required().AtLeast(1).Doc("number of features (columns) in the input data");
    t.Int("num_components").Required().AtLeast(1).Doc("number of principal components to compute");
    t.Int("mini_batch_size").Default("500").AtLeast(1)
        .Doc("rows per mini-batch (SageMaker requires it; the SDK sends min(500, rows per instance), the default here)");
    t.String("algorithm_mode").Default("regular").Choices({"regular", "randomized"})
        .Doc("regular: exact, from the d x d covariance; randomized: a sketch of width num_components + "
             "extra_components, for large feature_dim");
    t.Bool("subtract_mean").Default("true").Doc("centre the data (at training and at inference)");
    t.Int("extra_components").Default("-1").AtLeast(-1)
        .Doc("randomized mode only: sketch columns beyond num_components (-1: max(10, num_components)); more is "
             "more accurate and slower");
    t.Int("epochs").Default("1").AtLeast(1).AtMost(1)
        .Doc("accepted for SageMaker compatibility: PCA makes one pass over the data (1 is the only value)");
    t.Bool("force_dense").Default("true")
        .Doc("accepted for SageMaker compatibility; sparse rows are accumulated sparse either way");
    t.Int("power_iterations").Default("0").AtLeast(0).AtMost(50)
        .Doc("mlforge extension, randomized mode: extra passes over the data refining the sketch (subspace "
             "iteration); 0 is SageMaker's single pass, 2 is accurate on slowly decaying spectra");
    t.Int("seed").Default("0").AtLeast(0).Doc("mlforge extension: seed of the randomized sketch");
    t.Int("memory_limit_mb").Default("auto").AllowAuto().AtLeast(1)
        .Doc("mlforge extension: host memory regular mode may use for its d x d problem (auto: half of this "
             "host's memory); past it training stops before reading data and suggests randomized mode");
    return t;
  }();
  return table;
}

size_t RegularModeBytes(int64_t d, int threads) {
  kernels::PcaPass pass;
  pass.mode = kernels::PcaAccumulation::kScatter;
  pass.d = d;
  const size_t dd = static_cast<size_t>(d) * static_cast<size_t>(d) * sizeof(double);
  // The all-reduced copy, the eigensolver's input, eigenvectors and tridiagonalisation workspace.
  return kernels::PcaAccumulateCpuBytes(pass, threads) + 4 * dd;
}

namespace {
int64_t HalfHostMemoryMb() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return 4096;
  return std::max<int64_t>(1, static_cast<int64_t>(pages) * page / 2 / (1 << 20));
}
}  // namespace

Config ResolveConfig(HpValues& v, int threads) {
  Config c;
  c.feature_dim = v.GetInt("feature_dim");
  c.num_components = v.GetInt("num_components");
  c.mini_batch_size = v.GetInt("mini_batch_size");
  c.mode = v.GetString("algorithm_mode") == "randomized" ? Mode::kRandomized : Mode::kRegular;
  c.subtract_mean = v.GetBool("subtract_mean");
  c.power_iterations = v.GetInt("power_iterations");
  c.seed = static_cast<uint64_t>(v.GetInt("seed"));
  if (v.IsAuto("memory_limit_mb")) v.Resolve("memory_limit_mb", HalfHostMemoryMb());
  c.memory_limit_mb = v.GetInt("memory_limit_mb");
  MLF_EXPECTS(c.num_components <= c.feature_dim,
              "hyperparameter 'num_components' = {} is larger than 'feature_dim' = {}: a PCA model has at most "
              "feature_dim components; lower num_components",
              c.num_components, c.feature_dim);
  const int64_t extra = v.GetInt("extra_components");
  if (c.mode == Mode::kRegular) {
    MLF_EXPECTS(extra == -1,
                "hyperparameter 'extra_components' = {} applies to algorithm_mode=randomized only; regular mode "
                "computes the exact components: remove extra_components or set algorithm_mode=randomized",
                extra);
    MLF_EXPECTS(c.power_iterations == 0,
                "hyperparameter 'power_iterations' = {} applies to algorithm_mode=randomized only; regular mode "
                "is exact: remove power_iterations or set algorithm_mode=randomized",
                c.power_iterations);
    const size_t need = RegularModeBytes(c.feature_dim, threads);
    const double need_mb = static_cast<double>(need) / (1 << 20);
    MLF_EXPECTS(need_mb <= static_cast<double>(c.memory_limit_mb),
                "hyperparameter 'feature_dim' = {} is too large for algorithm_mode=regular here: its {} x {} float64 "
                "covariance and eigensolver need about {:.0f} MB, more than the memory limit of {} MB "
                "(memory_limit_mb; auto is half of this host's memory). Use algorithm_mode=randomized, which "
                "needs about (num_components + extra_components) x feature_dim, or raise memory_limit_mb",
                c.feature_dim, c.feature_dim, c.feature_dim, need_mb, c.memory_limit_mb);
  } else {
    c.extra_components = extra == -1 ? std::max<int64_t>(10, c.num_components) : extra;
    c.sketch_width = std::min(c.num_components + c.extra_components, c.feature_dim);
  }
  return c;
}

}  // namespace mlforge::algos::pca
