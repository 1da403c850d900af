#include "algos/linear_learner/config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include "core/error.h"

namespace mlforge::algos::linear_learner {

namespace {
constexpr const char* kLossNames[] = {
    "logistic",  "squared_loss",  "absolute_loss", "hinge_loss",   "eps_insensitive_squared_loss",
    "eps_insensitive_absolute_loss", "quantile_loss", "huber_loss", "softmax_loss",
};
}  // namespace

const char* PredictorTypeName(PredictorType p) {
  switch (p) {
    case PredictorType::kBinaryClassifier: return "binary_classifier";
    case PredictorType::kMulticlassClassifier: return "multiclass_classifier";
    case PredictorType::kRegressor: return "regressor";
  }
  return "?";
}

const char* LossName(Loss l) { return kLossNames[static_cast<int>(l)]; }

const char* OptimizerName(Optimizer o) {
  switch (o) {
    case Optimizer::kSgd: return "sgd";
    case Optimizer::kAdam: return "adam";
    case Optimizer::kRmsprop: return "rmsprop";
  }
  return "?";
}

const char* SelectionCriterionName(SelectionCriterion c) {
  switch (c) {
    case SelectionCriterion::kAccuracy: return "accuracy";
    case SelectionCriterion::kFBeta: return "f_beta";
    case SelectionCriterion::kPrecisionAtTargetRecall: return "precision_at_target_recall";
    case SelectionCriterion::kRecallAtTargetPrecision: return "recall_at_target_precision";
    case SelectionCriterion::kLossFunction: return "loss_function";
  }
  return "?";
}

Loss ParseLoss(const std::string& name) {
  for (int i = 0; i < static_cast<int>(std::size(kLossNames)); ++i) {
    if (name == kLossNames[i]) return static_cast<Loss>(i);
  }
  MLF_FAIL("unknown linear learner loss '{}'", name);
}

PredictorType ParsePredictorType(const std::string& name) {
  if (name == "binary_classifier") return PredictorType::kBinaryClassifier;
  if (name == "multiclass_classifier") return PredictorType::kMulticlassClassifier;
  if (name == "regressor") return PredictorType::kRegressor;
  MLF_FAIL("unknown linear learner predictor_type '{}': must be binary_classifier, multiclass_classifier or "
           "regressor",
           name);
}

const HpTable& Hyperparameters() {
  static const HpTable table = [] {
    HpTable t("linear-learner");
    t.String("predictor_type").Required().Choices({"binary_classifier", "multiclass_classifier", "regressor"})
        .Doc("the task: binary classification, multiclass classification or regression");
    t.Int("feature_dim").Default("auto").AllowAuto().AtLeast(1)
        .Doc("number of features of the input data (auto: taken from the data)");
    t.Int("num_classes").Default("1").AtLeast(1).AtMost(1000000)
        .Doc("number of classes; required (>= 3) when predictor_type is multiclass_classifier");
    t.Int("mini_batch_size").Default("1000").AtLeast(1).Doc("rows per mini-batch");
    t.Int("epochs").Default("15").AtLeast(1).Doc("maximum passes over the training data");
    t.Bool("use_bias").Default("true").Doc("whether the model has a bias (intercept) term");
    t.String("binary_classifier_model_selection_criteria").Default("accuracy")
        .Choices({"accuracy", "f_beta", "precision_at_target_recall", "recall_at_target_precision", "loss_function",
                  "f1", "cross_entropy_loss"})
        .Doc("binary_classifier: what model selection and threshold calibration optimise on the validation "
             "data (f1 and cross_entropy_loss are legacy spellings of f_beta and loss_function)");
    t.Float("target_recall").Default("0.8").GreaterThan(0).LessThan(1)
        .Doc("the recall held by precision_at_target_recall");
    t.Float("target_precision").Default("0.8").GreaterThan(0).LessThan(1)
        .Doc("the precision held by recall_at_target_precision");
    t.String("positive_example_weight_mult").Default("1.0")
        .Doc("binary_classifier: weight of positive examples (negatives weigh 1): a number > 0, auto (chosen by "
             "model selection) or balanced (positives and negatives weigh the same in total)");
    t.Int("num_models").Default("auto").AllowAuto().AtLeast(1)
        .Doc("models trained in parallel with nearby settings; the best on validation is kept "
             "(auto: 32, or 1 under automatic model tuning)");
    t.Int("num_calibration_samples").Default("10000000").AllowAuto().AtLeast(1)
        .Doc("rows used to calibrate the threshold and select the model: the first of the validation channel, else of the "
             "training data (auto: 10000000; held in at most 256 MB)");
    t.String("init_method").Default("uniform").Choices({"uniform", "normal"})
        .Doc("weight initialisation: uniform in [-init_scale, init_scale] or normal(0, init_sigma)");
    t.Float("init_scale").Default("0.07").GreaterThan(0).Doc("half-width of the uniform initialisation");
    t.Float("init_sigma").Default("0.01").GreaterThan(0).Doc("standard deviation of the normal initialisation");
    t.Float("init_bias").Default("0").Doc("initial value of the bias");
    t.String("optimizer").Default("auto").AllowAuto().Choices({"sgd", "adam", "rmsprop"})
        .Doc("the optimiser (auto: adam)");
    t.String("loss").Default("auto").AllowAuto()
        .Choices({"logistic", "squared_loss", "absolute_loss", "hinge_loss", "eps_insensitive_squared_loss",
                  "eps_insensitive_absolute_loss", "quantile_loss", "huber_loss", "softmax_loss"})
        .Doc("the loss (auto: logistic for binary_classifier, squared_loss for regressor, softmax_loss for "
             "multiclass_classifier)");
    t.Float("wd").Default("auto").AllowAuto().AtLeast(0).Doc("L2 regularisation weight (auto: 0; the other parallel models use 0 or 1e-6 .. 1e-2)");
    t.Float("l1").Default("auto").AllowAuto().AtLeast(0).Doc("L1 regularisation weight, a proximal step (auto: 0; every 4th parallel model uses 1e-6 .. 1e-3)");
    t.Float("momentum").Default("auto").AllowAuto().AtLeast(0).LessThan(1).Doc("sgd momentum (auto: 0; half the parallel models use 0.9)");
    t.Float("learning_rate").Default("auto").AllowAuto().GreaterThan(0)
        .Doc("step size (auto: 0.001 for adam and rmsprop, 0.01 for sgd; the other parallel models spread 0.1x .. 100x "
             "around it)");
    t.Float("beta_1").Default("auto").AllowAuto().AtLeast(0).LessThan(1)
        .Doc("adam: decay of the first-moment estimate (auto: 0.9)");
    t.Float("beta_2").Default("auto").AllowAuto().AtLeast(0).LessThan(1)
        .Doc("adam: decay of the second-moment estimate (auto: 0.999)");
    t.Float("bias_lr_mult").Default("auto").AllowAuto().GreaterThan(0)
        .Doc("the bias's learning rate is learning_rate x bias_lr_mult (auto: 10)");
    t.Float("bias_wd_mult").Default("auto").AllowAuto().AtLeast(0)
        .Doc("the bias's L2 weight is wd x bias_wd_mult (auto: 0, the bias is not regularised)");
    t.Bool("use_lr_scheduler").Default("true").Doc("whether the learning rate decays during training");
    t.Int("lr_scheduler_step").Default("auto").AllowAuto().AtLeast(1)
        .Doc("mini-batches between learning-rate decays (auto: 100)");
    t.Float("lr_scheduler_factor").Default("auto").AllowAuto().GreaterThan(0).LessThan(1)
        .Doc("the learning rate is multiplied by this every lr_scheduler_step mini-batches (auto: 0.99)");
    t.Float("lr_scheduler_minimum_lr").Default("auto").AllowAuto().GreaterThan(0)
        .Doc("the learning rate never decays below this (auto: 1e-05)");
    t.Bool("normalize_data").Default("true").AllowAuto()
        .Doc("scale the features to unit standard deviation before training (folded into the saved weights)");
    t.Bool("normalize_label").Default("auto").AllowAuto()
        .Doc("regressor: scale the label (auto: true for regressor; ignored for classifiers)");
    t.Bool("unbias_data").Default("auto").AllowAuto()
        .Doc("shift dense features to zero mean before training (auto: when use_bias is true and normalize_data is on)");
    t.Bool("unbias_label").Default("auto").AllowAuto()
        .Doc("regressor: shift the label to zero mean (auto: for regressor when use_bias is true)");
    t.Int("num_point_for_scaler").Default("10000").AtLeast(1)
        .Doc("the first rows of the training data that give the normalisation statistics");
    t.Float("margin").Default("1.0").AtLeast(0).Doc("hinge_loss: the margin");
    t.Float("quantile").Default("0.5").GreaterThan(0).LessThan(1).Doc("quantile_loss: the quantile predicted");
    t.Float("loss_insensitivity").Default("0.01").GreaterThan(0)
        .Doc("eps_insensitive_*_loss: errors below this cost nothing");
    t.Float("huber_delta").Default("1.0").GreaterThan(0)
        .Doc("huber_loss: errors below this are squared, above it linear");
    t.Int("early_stopping_patience").Default("3").AtLeast(1)
        .Doc("epochs without relative improvement of at least early_stopping_tolerance before training stops");
    t.Float("early_stopping_tolerance").Default("0.001").GreaterThan(0)
        .Doc("relative improvement of the early-stopping metric that counts as progress");
    t.Int("accuracy_top_k").Default("3").AtLeast(1).AtMost(1000000)
        .Doc("multiclass_classifier: k of the top-k accuracy metric");
    t.Float("f_beta").Default("1.0").GreaterThan(0).Doc("beta of the F-beta metric and criterion");
    t.Bool("balance_multiclass_weights").Default("false")
        .Doc("multiclass_classifier: weight classes so that each has the same total weight");
    t.String("_tuning_objective_metric").Default("")
        .Doc("set by SageMaker automatic model tuning; when non-empty num_models auto resolves to 1");
    t.Int("seed").Default("0").AtLeast(0).Doc("mlforge extension: seed for initialisation and sampling");
    return t;
  }();
  return table;
}

namespace {

bool ResolveBoolAuto(HpValues& v, const std::string& name, bool value) {
  if (v.IsAuto(name)) v.Resolve(name, value);
  return v.GetBool(name);
}

double ResolveDoubleAuto(HpValues& v, const std::string& name, double value) {
  if (v.IsAuto(name)) v.Resolve(name, value);
  return v.GetDouble(name);
}

bool LossSuits(PredictorType p, Loss l) {
  switch (p) {
    case PredictorType::kBinaryClassifier: return l == Loss::kLogistic || l == Loss::kHinge;
    case PredictorType::kMulticlassClassifier: return l == Loss::kSoftmax;
    case PredictorType::kRegressor:
      return l == Loss::kSquared || l == Loss::kAbsolute || l == Loss::kEpsInsensitiveSquared ||
             l == Loss::kEpsInsensitiveAbsolute || l == Loss::kQuantile || l == Loss::kHuber;
  }
  return false;
}

const char* LossesFor(PredictorType p) {
  switch (p) {
    case PredictorType::kBinaryClassifier: return "auto, logistic, hinge_loss";
    case PredictorType::kMulticlassClassifier: return "auto, softmax_loss";
    case PredictorType::kRegressor:
      return "auto, squared_loss, absolute_loss, eps_insensitive_squared_loss, eps_insensitive_absolute_loss, "
             "quantile_loss, huber_loss";
  }
  return "";
}

}  // namespace

Config ResolveConfig(HpValues& v) {
  Config c;
  c.predictor_type = ParsePredictorType(v.GetString("predictor_type"));
  const bool binary = c.predictor_type == PredictorType::kBinaryClassifier;
  const bool multiclass = c.predictor_type == PredictorType::kMulticlassClassifier;
  const bool regressor = c.predictor_type == PredictorType::kRegressor;

  c.feature_dim = v.IsAuto("feature_dim") ? 0 : v.GetInt("feature_dim");
  c.num_classes = v.GetInt("num_classes");
  if (multiclass) {
    MLF_EXPECTS(v.FromUser("num_classes") && c.num_classes >= 3,
                "hyperparameter 'num_classes' {} but predictor_type is multiclass_classifier: set num_classes to the "
                "number of classes (>= 3; labels are 0 .. num_classes-1), or use binary_classifier for two classes",
                v.FromUser("num_classes") ? "= " + std::to_string(c.num_classes) + " is below 3"
                                          : "is not set");
  } else {
    c.num_classes = 1;  // SageMaker ignores num_classes for the other predictor types
  }
  c.mini_batch_size = v.GetInt("mini_batch_size");
  c.epochs = v.GetInt("epochs");
  c.use_bias = v.GetBool("use_bias");

  const std::string crit = v.GetString("binary_classifier_model_selection_criteria");
  if (crit == "accuracy") c.selection_criterion = SelectionCriterion::kAccuracy;
  else if (crit == "f_beta" || crit == "f1") c.selection_criterion = SelectionCriterion::kFBeta;
  else if (crit == "precision_at_target_recall") c.selection_criterion = SelectionCriterion::kPrecisionAtTargetRecall;
  else if (crit == "recall_at_target_precision") c.selection_criterion = SelectionCriterion::kRecallAtTargetPrecision;
  else c.selection_criterion = SelectionCriterion::kLossFunction;  // loss_function, cross_entropy_loss
  c.target_recall = v.GetDouble("target_recall");
  c.target_precision = v.GetDouble("target_precision");

  // positive_example_weight_mult: a number > 0, auto or balanced.
  {
    std::string text = v.GetString("positive_example_weight_mult");
    std::string lower;
    for (char ch : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (lower == "auto") {
      c.positive_weight_mode = PositiveWeightMode::kAuto;
    } else if (lower == "balanced") {
      c.positive_weight_mode = PositiveWeightMode::kBalanced;
    } else {
      double value = 0;
      const char* first = text.data();
      const char* last = first + text.size();
      auto res = std::from_chars(first, last, value);
      MLF_EXPECTS(!text.empty() && res.ec == std::errc() && res.ptr == last && std::isfinite(value) && value > 0,
                  "hyperparameter 'positive_example_weight_mult' = '{}' is not valid: must be a number > 0 "
                  "(e.g. 2.5), 'auto' or 'balanced'",
                  text);
      c.positive_weight_mode = PositiveWeightMode::kValue;
      c.positive_example_weight_mult = value;
    }
  }

  c.tuning_objective_metric = v.GetString("_tuning_objective_metric");
  if (v.IsAuto("num_models")) v.Resolve("num_models", int64_t{c.tuning_objective_metric.empty() ? 32 : 1});
  c.num_models = v.GetInt("num_models");
  if (v.IsAuto("num_calibration_samples")) v.Resolve("num_calibration_samples", int64_t{10000000});
  c.num_calibration_samples = v.GetInt("num_calibration_samples");

  c.init_method = v.GetString("init_method") == "normal" ? InitMethod::kNormal : InitMethod::kUniform;
  c.init_scale = v.GetDouble("init_scale");
  c.init_sigma = v.GetDouble("init_sigma");
  c.init_bias = v.GetDouble("init_bias");

  if (v.IsAuto("optimizer")) v.Resolve("optimizer", std::string("adam"));
  const std::string opt = v.GetString("optimizer");
  c.optimizer = opt == "sgd" ? Optimizer::kSgd : opt == "rmsprop" ? Optimizer::kRmsprop : Optimizer::kAdam;

  if (v.IsAuto("loss")) {
    v.Resolve("loss", std::string(binary ? "logistic" : multiclass ? "softmax_loss" : "squared_loss"));
  }
  c.loss = ParseLoss(v.GetString("loss"));
  MLF_EXPECTS(LossSuits(c.predictor_type, c.loss),
              "hyperparameter 'loss' = '{}' does not suit predictor_type '{}': use one of {}", LossName(c.loss),
              PredictorTypeName(c.predictor_type), LossesFor(c.predictor_type));

  c.wd_auto = v.IsAuto("wd");
  c.wd = ResolveDoubleAuto(v, "wd", 0.0);
  c.l1_auto = v.IsAuto("l1");
  c.l1 = ResolveDoubleAuto(v, "l1", 0.0);
  c.momentum_auto = v.IsAuto("momentum");
  c.momentum = ResolveDoubleAuto(v, "momentum", 0.0);
  c.learning_rate_auto = v.IsAuto("learning_rate");
  c.learning_rate = ResolveDoubleAuto(v, "learning_rate", c.optimizer == Optimizer::kSgd ? 0.01 : 0.001);
  c.beta_1 = ResolveDoubleAuto(v, "beta_1", 0.9);
  c.beta_2 = ResolveDoubleAuto(v, "beta_2", 0.999);
  c.bias_lr_mult = ResolveDoubleAuto(v, "bias_lr_mult", 10.0);
  c.bias_wd_mult = ResolveDoubleAuto(v, "bias_wd_mult", 0.0);

  c.use_lr_scheduler = v.GetBool("use_lr_scheduler");
  c.lr_schedule_auto =
      v.IsAuto("lr_scheduler_step") || v.IsAuto("lr_scheduler_factor") || v.IsAuto("lr_scheduler_minimum_lr");
  if (v.IsAuto("lr_scheduler_step")) v.Resolve("lr_scheduler_step", int64_t{100});
  c.lr_scheduler_step = v.GetInt("lr_scheduler_step");
  c.lr_scheduler_factor = ResolveDoubleAuto(v, "lr_scheduler_factor", 0.99);
  const bool min_lr_given = !v.IsAuto("lr_scheduler_minimum_lr");
  c.lr_scheduler_minimum_lr = ResolveDoubleAuto(v, "lr_scheduler_minimum_lr", std::min(1e-5, c.learning_rate));
  MLF_EXPECTS(!(min_lr_given && !c.learning_rate_auto && c.use_lr_scheduler) ||
                  c.lr_scheduler_minimum_lr <= c.learning_rate,
              "hyperparameter 'lr_scheduler_minimum_lr' = {} is larger than 'learning_rate' = {}: the scheduler only "
              "lowers the learning rate; lower lr_scheduler_minimum_lr or raise learning_rate",
              c.lr_scheduler_minimum_lr, c.learning_rate);

  c.normalize_data = ResolveBoolAuto(v, "normalize_data", true);
  const bool normalize_label_given = !v.IsAuto("normalize_label");
  c.normalize_label = ResolveBoolAuto(v, "normalize_label", regressor) && regressor;
  (void)normalize_label_given;  // ignored for classifiers, as SPEC.md 4.1 says
  const bool unbias_data_given = !v.IsAuto("unbias_data");
  c.unbias_data_auto = !unbias_data_given;
  c.unbias_data = ResolveBoolAuto(v, "unbias_data", c.use_bias);
  MLF_EXPECTS(!(unbias_data_given && c.unbias_data && !c.use_bias),
              "hyperparameter 'unbias_data' = true needs 'use_bias' = true: the feature shift is folded into the "
              "bias of the saved model; set use_bias=true or unbias_data=false");
  const bool unbias_label_given = !v.IsAuto("unbias_label");
  c.unbias_label_auto = !unbias_label_given;
  const bool unbias_label = ResolveBoolAuto(v, "unbias_label", regressor && c.use_bias);
  MLF_EXPECTS(!(unbias_label_given && unbias_label && regressor && !c.use_bias),
              "hyperparameter 'unbias_label' = true needs 'use_bias' = true: the label shift is folded into the "
              "bias of the saved model; set use_bias=true or unbias_label=false");
  c.unbias_label = unbias_label && regressor;
  c.num_point_for_scaler = v.GetInt("num_point_for_scaler");

  c.margin = v.GetDouble("margin");
  c.quantile = v.GetDouble("quantile");
  c.loss_insensitivity = v.GetDouble("loss_insensitivity");
  c.huber_delta = v.GetDouble("huber_delta");
  c.early_stopping_patience = v.GetInt("early_stopping_patience");
  c.early_stopping_tolerance = v.GetDouble("early_stopping_tolerance");
  c.accuracy_top_k = v.GetInt("accuracy_top_k");
  c.f_beta = v.GetDouble("f_beta");
  c.balance_multiclass_weights = v.GetBool("balance_multiclass_weights");
  c.seed = static_cast<uint64_t>(v.GetInt("seed"));
  return c;
}

}  // namespace mlforge::algos::linear_learner
