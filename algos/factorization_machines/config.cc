#include "algos/factorization_machines/config.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace mlforge::algos::factorization_machines {

namespace {

void DeclareGroup(HpTable& t, const std::string& g, const char* lr, const char* wd, const char* sigma,
                  const char* what) {
  t.Float(g + "_lr").Default(lr).AtLeast(0).Doc(fmt::format("learning rate of the {}", what));
  t.Float(g + "_wd").Default(wd).AtLeast(0).Doc(fmt::format("weight decay (L2) of the {}", what));
  t.String(g + "_init_method").Default("normal").Choices({"normal", "uniform", "constant"})
      .Doc(fmt::format("initialisation of the {}: normal N(0, sigma), uniform U[-scale, scale], constant value", what));
  t.Float(g + "_init_scale").AtLeast(0).Doc(fmt::format("uniform initialisation only: range of the {}", what));
  t.Float(g + "_init_sigma").Default(sigma).AtLeast(0)
      .Doc(fmt::format("normal initialisation only: standard deviation of the {}", what));
  t.Float(g + "_init_value").Doc(fmt::format("constant initialisation only: value of the {}", what));
}

InitSpec ResolveInit(const HpValues& v, const std::string& g) {
  InitSpec s;
  const std::string method = v.GetString(g + "_init_method");
  s.method = method == "uniform" ? InitMethod::kUniform : method == "constant" ? InitMethod::kConstant : InitMethod::kNormal;
  s.sigma = v.GetDouble(g + "_init_sigma");
  const bool has_scale = v.Has(g + "_init_scale"), has_value = v.Has(g + "_init_value");
  MLF_EXPECTS(!has_scale || s.method == InitMethod::kUniform,
              "hyperparameter '{0}_init_scale' applies to {0}_init_method=uniform only, but {0}_init_method={1}: "
              "remove {0}_init_scale or set {0}_init_method=uniform",
              g, method);
  MLF_EXPECTS(!has_value || s.method == InitMethod::kConstant,
              "hyperparameter '{0}_init_value' applies to {0}_init_method=constant only, but {0}_init_method={1}: "
              "remove {0}_init_value or set {0}_init_method=constant",
              g, method);
  MLF_EXPECTS(!v.FromUser(g + "_init_sigma") || s.method == InitMethod::kNormal,
              "hyperparameter '{0}_init_sigma' applies to {0}_init_method=normal only, but {0}_init_method={1}: "
              "remove {0}_init_sigma or set {0}_init_method=normal",
              g, method);
  if (s.method == InitMethod::kUniform) {
    MLF_EXPECTS(has_scale, "{0}_init_method=uniform needs '{0}_init_scale' (the half-width of the range): set it, "
                "e.g. {0}_init_scale=0.01", g);
    s.scale = v.GetDouble(g + "_init_scale");
  }
  if (s.method == InitMethod::kConstant) {
    MLF_EXPECTS(has_value, "{0}_init_method=constant needs '{0}_init_value': set it, e.g. {0}_init_value=0", g);
    s.value = v.GetDouble(g + "_init_value");
  }
  return s;
}

int64_t HostMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(pages) * page;
}

}  // namespace

std::string InitSpec::Describe() const {
  auto num = [](double x) { return fmt::format("{}", x); };
  switch (method) {
    case InitMethod::kNormal:
      return "[\"normal\", {\"sigma\": " + num(sigma) + "}]";
    case InitMethod::kUniform:
      return "[\"uniform\", {\"scale\": " + num(scale) + "}]";
    case InitMethod::kConstant:
      return "[\"constant\", {\"value\": " + num(value) + "}]";
  }
  return "";
}

PredictorType ParsePredictorType(const std::string& s) {
  if (s == "regressor") return PredictorType::kRegressor;
  if (s == "binary_classifier") return PredictorType::kBinaryClassifier;
  MLF_FAIL("predictor_type '{}' is not one of: binary_classifier, regressor", s);
}

const char* PredictorTypeName(PredictorType p) {
  return p == PredictorType::kRegressor ? "regressor" : "binary_classifier";
}

const HpTable& Hyperparameters() {
  static const HpTable table = [] {
    HpTable t("factorization-machines");
    t.Int("feature_dim").Required().AtLeast(1).AtMost(std::numeric_limits<int32_t>::max())
        .Doc("number of features (columns) of the input; suggested 1e4 to 1e7");
    t.Int("num_factors").Required().AtLeast(1).AtMost(10000)
        .Doc("dimension of the factor vectors; suggested 2 to 1000, 64 a good start");
    t.String("predictor_type").Required().Choices({"binary_classifier", "regressor"})
        .Doc("regressor: squared loss, score = yhat; binary_classifier: log loss, score = sigmoid(yhat)");
    t.Int("epochs").Default("1").AtLeast(1).Doc("passes over the training data");
    t.Int("mini_batch_size").Default("1000").AtLeast(1).AtMost(1 << 24).Doc("rows per optimizer step");
    t.Float("clip_gradient").GreaterThan(0).Doc("clip each (rescaled) gradient element to [-c, c]; absent: no clipping");
    t.Float("eps").GreaterThan(0).Doc("the optimizer's division guard (absent: 1e-8 for adam, 1e-7 for adagrad)");
    t.Float("rescale_grad").GreaterThan(0).Doc("gradient multiplier (absent: 1 / rows of the mini-batch)");
    DeclareGroup(t, "bias", "0.1", "0.01", "0.01", "bias term w0");
    DeclareGroup(t, "linear", "0.001", "0.001", "0.01", "linear terms w");
    DeclareGroup(t, "factors", "0.0001", "0.00001", "0.001", "factor vectors v");
    t.Bool("use_bias").Default("true").Doc("train the bias term w0 (false: w0 = 0)");
    t.Bool("use_linear").Default("true").Doc("train the linear terms w (false: w = 0)");
    t.Int("batch_metrics_publish_interval").Default("500").AtLeast(1)
        .Doc("mini-batches between per-batch training metric lines");
    t.String("_optimizer").Default("adam").Choices({"adam", "sgd", "adagrad"})
        .Doc("the optimizer (SageMaker's image records adam); lazy updates of the rows a mini-batch touches");
    t.Float("_learning_rate").Default("1.0").GreaterThan(0)
        .Doc("global learning rate; each group's rate is this times its *_lr");
    t.Float("_wd").Default("1.0").AtLeast(0).Doc("global weight decay; each group's decay is this times its *_wd");
    t.String("_data_format").Default("record").Doc("accepted and ignored (SageMaker internal)");
    t.Bool("_use_full_symbolic").Default("true").Doc("accepted and ignored (SageMaker internal)");
    return t;
  }();
  return table;
}

Config ResolveConfig(HpValues& v, uint64_t seed) {
  Config c;
  c.feature_dim = v.GetInt("feature_dim");
  c.num_factors = v.GetInt("num_factors");
  c.predictor_type = ParsePredictorType(v.GetString("predictor_type"));
  c.epochs = v.GetInt("epochs");
  c.mini_batch_size = v.GetInt("mini_batch_size");
  c.batch_metrics_publish_interval = v.GetInt("batch_metrics_publish_interval");
  c.bias_init = ResolveInit(v, "bias");
  c.linear_init = ResolveInit(v, "linear");
  c.factors_init = ResolveInit(v, "factors");
  c.seed = seed;

  kernels::FmStepSpec& s = c.step;
  s.loss = c.predictor_type == PredictorType::kRegressor ? kernels::FmLoss::kSquared : kernels::FmLoss::kLogistic;
  const std::string opt = v.GetString("_optimizer");
  s.optimizer = opt == "sgd" ? kernels::FmOptimizer::kSgd
                : opt == "adagrad" ? kernels::FmOptimizer::kAdagrad
                                   : kernels::FmOptimizer::kAdam;
  const double lr = v.GetDouble("_learning_rate"), wd = v.GetDouble("_wd");
  auto group = [&](const std::string& g) {
    return kernels::FmGroupSpec{static_cast<float>(lr * v.GetDouble(g + "_lr")),
                                static_cast<float>(wd * v.GetDouble(g + "_wd"))};
  };
  s.bias = group("bias");
  s.linear = group("linear");
  s.factors = group("factors");
  s.use_bias = v.GetBool("use_bias");
  s.use_linear = v.GetBool("use_linear");
  s.eps = v.Has("eps") ? static_cast<float>(v.GetDouble("eps"))
                       : (s.optimizer == kernels::FmOptimizer::kAdagrad ? 1e-7f : 1e-8f);
  s.rescale_grad = v.Has("rescale_grad") ? static_cast<float>(v.GetDouble("rescale_grad")) : 0.0f;
  s.clip_gradient = v.Has("clip_gradient") ? static_cast<float>(v.GetDouble("clip_gradient")) : 0.0f;

  // The parameters and the optimizer state live in memory for the whole run; writing the model
  // holds the parameters about three times (them, the NDArray buffers, the serialized member).
  const double params = 4.0 * static_cast<double>(c.feature_dim) * static_cast<double>(c.num_factors + 1);
  const double need = std::max(static_cast<double>(kernels::FmStepper::StateBytes(c.feature_dim, c.num_factors,
                                                                                 s.optimizer)),
                               3.0 * params);
  const double have = static_cast<double>(HostMemoryBytes());
  MLF_EXPECTS(need <= 0.8 * have,
              "feature_dim = {} with num_factors = {} needs about {:.1f} GB (parameters of {:.1f} GB = 4 bytes x "
              "feature_dim x (num_factors + 1), with the {} optimizer's state while training and three copies while "
              "the model is written), more than 80% of this host's {:.1f} GB: lower num_factors or feature_dim "
              "(hash features into fewer columns), or use a larger instance",
              c.feature_dim, c.num_factors, need / 1e9, params / 1e9, opt, have / 1e9);
  return c;
}

}  // namespace mlforge::algos::factorization_machines
