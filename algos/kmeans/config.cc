#include "algos/kmeans/config.h"

#include <algorithm>

#include "core/error.h"

namespace mlforge::algos::kmeans {

const HpTable& Hyperparameters() {
  static const HpTable table = [] {
    HpTable t("kmeans");
    t.Int("feature_dim").Required().AtLeast(1).Doc("number of features (columns) in the input data");
    t.Int("k").Required().AtLeast(2).Doc("number of clusters");
    t.Int("mini_batch_size").Default("5000").AtLeast(1).Doc("rows per mini-batch of the streaming phase");
    t.Int("epochs").Default("1").AtLeast(1).Doc("passes over the training data in the streaming phase");
    t.String("init_method").Default("random").Choices({"random", "kmeans++"})
        .Doc("how the streaming centers are seeded from the first mini-batch");
    t.Int("extra_center_factor").Default("auto").AllowAuto().AtLeast(1)
        .Doc("streaming keeps k * extra_center_factor centers, reduced to k at the end (auto: 10, capped by mini_batch_size / k)");
    t.String("local_lloyd_init_method").Default("kmeans++").Choices({"random", "kmeans++"})
        .Doc("seeding of the final Lloyd reduction of the extra centers to k");
    t.Int("local_lloyd_max_iter").Default("300").AtLeast(1).Doc("iterations of each final Lloyd trial");
    t.Int("local_lloyd_num_trials").Default("auto").AllowAuto().AtLeast(1)
        .Doc("independent final Lloyd trials; the lowest cost is kept (auto: 10)");
    t.Float("local_lloyd_tol").Default("0.0001").AtLeast(0).AtMost(1)
        .Doc("final Lloyd stops when the relative change in cost is below this");
    t.Int("half_life_time_size").Default("0").AtLeast(0)
        .Doc("rows after which a center's accumulated weight halves (0: no decay)");
    t.StringList("eval_metrics").Default("[\"msd\"]").Choices({"msd", "ssd"})
        .Doc("metrics reported for the test channel: msd (mean squared distance), ssd (sum)");
    t.Bool("force_dense").Default("true")
        .Doc("accepted for SageMaker compatibility (the SDK always sends it); sparse input is densified per batch");
    t.Int("full_batch_lloyd_iterations").Default("0").AtLeast(0)
        .Doc("mlforge extension: exact Lloyd passes over all the data after streaming (0: off)");
    t.Float("full_batch_lloyd_tol").Default("0.0001").AtLeast(0).AtMost(1)
        .Doc("mlforge extension: full-batch Lloyd stops when the relative change in cost is below this");
    t.Int("full_batch_lloyd_trials").Default("1").AtLeast(1).AtMost(1000)
        .Doc("mlforge extension: independent full-batch Lloyd runs, lowest inertia kept (like scikit-learn's n_init): "
             "the first starts from the streaming result, the others from greedy k-means++ on the seeding sample "
             "(the first mini-batch)");
    t.Int("full_batch_cache_mb").Default("2048").AtLeast(0)
        .Doc("mlforge extension: full-batch passes keep the training data in host memory when it fits in this "
             "many MB, else stream it from the files on every pass");
    t.Int("seed").Default("0").AtLeast(0).Doc("mlforge extension: seed for center initialisation");
    return t;
  }();
  return table;
}

namespace {
InitMethod ParseInit(const std::string& s) {
  return s == "kmeans++" ? InitMethod::kKMeansPlusPlus : InitMethod::kRandom;
}
}  // namespace

Config ResolveConfig(HpValues& v) {
  Config c;
  c.feature_dim = v.GetInt("feature_dim");
  c.k = v.GetInt("k");
  c.mini_batch_size = v.GetInt("mini_batch_size");
  c.epochs = v.GetInt("epochs");
  c.init_method = ParseInit(v.GetString("init_method"));
  if (v.IsAuto("extra_center_factor")) {
    const int64_t cap = std::max<int64_t>(1, c.mini_batch_size / c.k);
    v.Resolve("extra_center_factor", std::min<int64_t>(10, cap));
  }
  c.extra_center_factor = v.GetInt("extra_center_factor");
  c.local_lloyd_init_method = ParseInit(v.GetString("local_lloyd_init_method"));
  c.local_lloyd_max_iter = v.GetInt("local_lloyd_max_iter");
  if (v.IsAuto("local_lloyd_num_trials")) v.Resolve("local_lloyd_num_trials", int64_t{10});
  c.local_lloyd_num_trials = v.GetInt("local_lloyd_num_trials");
  c.local_lloyd_tol = v.GetDouble("local_lloyd_tol");
  c.half_life_time_size = v.GetInt("half_life_time_size");
  c.eval_metrics = v.GetStringList("eval_metrics");
  c.force_dense = v.GetBool("force_dense");
  c.full_batch_lloyd_iterations = v.GetInt("full_batch_lloyd_iterations");
  c.full_batch_lloyd_tol = v.GetDouble("full_batch_lloyd_tol");
  c.full_batch_lloyd_trials = v.GetInt("full_batch_lloyd_trials");
  c.full_batch_cache_mb = v.GetInt("full_batch_cache_mb");
  MLF_EXPECTS(c.full_batch_lloyd_trials == 1 || c.full_batch_lloyd_iterations > 0,
              "hyperparameter 'full_batch_lloyd_trials' = {} has no effect without full-batch Lloyd: set "
              "'full_batch_lloyd_iterations' > 0 (e.g. 100) or leave full_batch_lloyd_trials at 1",
              c.full_batch_lloyd_trials);
  c.seed = static_cast<uint64_t>(v.GetInt("seed"));
  MLF_EXPECTS(c.k <= c.mini_batch_size,
              "hyperparameter 'k' = {} is larger than 'mini_batch_size' = {}: the first mini-batch seeds "
              "the centers, so it must hold at least k rows; raise mini_batch_size or lower k",
              c.k, c.mini_batch_size);
  return c;
}

}  // namespace mlforge::algos::kmeans
