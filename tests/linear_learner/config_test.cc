// Linear learner hyperparameters: the table's defaults and ranges (SPEC.md 4.1), `auto`
// resolution and every cross-field rule of ResolveConfig.
#include "algos/linear_learner/config.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/error.h"

namespace mlforge::algos::linear_learner {
namespace {

using Map = std::map<std::string, std::string>;

Config Resolve(const Map& given) {
  HpValues v = Hyperparameters().Parse(given);
  return ResolveConfig(v);
}

// The UserError text of Parse + ResolveConfig, or "" when the map is accepted.
std::string ErrorOf(const Map& given) {
  try {
    Resolve(given);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(LinearLearnerConfig, EveryDocumentedNameIsDeclared) {
  const char* names[] = {"predictor_type",
                         "feature_dim",
                         "num_classes",
                         "mini_batch_size",
                         "epochs",
                         "use_bias",
                         "binary_classifier_model_selection_criteria",
                         "target_recall",
                         "target_precision",
                         "positive_example_weight_mult",
                         "num_models",
                         "num_calibration_samples",
                         "init_method",
                         "init_scale",
                         "init_sigma",
                         "init_bias",
                         "optimizer",
                         "loss",
                         "wd",
                         "l1",
                         "momentum",
                         "learning_rate",
                         "beta_1",
                         "beta_2",
                         "bias_lr_mult",
                         "bias_wd_mult",
                         "use_lr_scheduler",
                         "lr_scheduler_step",
                         "lr_scheduler_factor",
                         "lr_scheduler_minimum_lr",
                         "normalize_data",
                         "normalize_label",
                         "unbias_data",
                         "unbias_label",
                         "num_point_for_scaler",
                         "margin",
                         "quantile",
                         "loss_insensitivity",
                         "huber_delta",
                         "early_stopping_patience",
                         "early_stopping_tolerance",
                         "accuracy_top_k",
                         "f_beta",
                         "balance_multiclass_weights"};
  for (const char* n : names) {
    const HpSpec* s = Hyperparameters().Find(n);
    ASSERT_NE(s, nullptr) << n;
    EXPECT_FALSE(s->doc.empty()) << n;
  }
  EXPECT_TRUE(Hyperparameters().Find("predictor_type")->required);
}

TEST(LinearLearnerConfig, BinaryDefaults) {
  HpValues v = Hyperparameters().Parse({{"predictor_type", "binary_classifier"}});
  Config c = ResolveConfig(v);
  EXPECT_EQ(c.predictor_type, PredictorType::kBinaryClassifier);
  EXPECT_EQ(c.loss, Loss::kLogistic);
  EXPECT_EQ(c.optimizer, Optimizer::kAdam);
  EXPECT_EQ(c.feature_dim, 0);  // auto: from the data
  EXPECT_EQ(c.num_classes, 1);
  EXPECT_EQ(c.num_outputs(), 1);
  EXPECT_EQ(c.mini_batch_size, 1000);
  EXPECT_EQ(c.epochs, 15);
  EXPECT_TRUE(c.use_bias);
  EXPECT_EQ(c.selection_criterion, SelectionCriterion::kAccuracy);
  EXPECT_DOUBLE_EQ(c.target_recall, 0.8);
  EXPECT_DOUBLE_EQ(c.target_precision, 0.8);
  EXPECT_EQ(c.positive_weight_mode, PositiveWeightMode::kValue);
  EXPECT_DOUBLE_EQ(c.positive_example_weight_mult, 1.0);
  EXPECT_EQ(c.num_models, 32);
  EXPECT_EQ(c.num_calibration_samples, 10000000);
  EXPECT_EQ(c.init_method, InitMethod::kUniform);
  EXPECT_DOUBLE_EQ(c.init_scale, 0.07);
  EXPECT_DOUBLE_EQ(c.init_sigma, 0.01);
  EXPECT_DOUBLE_EQ(c.init_bias, 0.0);
  EXPECT_DOUBLE_EQ(c.wd, 0.0);
  EXPECT_DOUBLE_EQ(c.l1, 0.0);
  EXPECT_DOUBLE_EQ(c.momentum, 0.0);
  EXPECT_DOUBLE_EQ(c.learning_rate, 0.001);
  EXPECT_DOUBLE_EQ(c.beta_1, 0.9);
  EXPECT_DOUBLE_EQ(c.beta_2, 0.999);
  EXPECT_DOUBLE_EQ(c.bias_lr_mult, 10.0);
  EXPECT_DOUBLE_EQ(c.bias_wd_mult, 0.0);
  EXPECT_TRUE(c.use_lr_scheduler);
  EXPECT_EQ(c.lr_scheduler_step, 100);
  EXPECT_DOUBLE_EQ(c.lr_scheduler_factor, 0.99);
  EXPECT_DOUBLE_EQ(c.lr_scheduler_minimum_lr, 1e-5);
  EXPECT_TRUE(c.normalize_data);
  EXPECT_FALSE(c.normalize_label);  // classification
  EXPECT_TRUE(c.unbias_data);       // = use_bias
  EXPECT_FALSE(c.unbias_label);
  EXPECT_EQ(c.num_point_for_scaler, 10000);
  EXPECT_DOUBLE_EQ(c.margin, 1.0);
  EXPECT_DOUBLE_EQ(c.quantile, 0.5);
  EXPECT_DOUBLE_EQ(c.loss_insensitivity, 0.01);
  EXPECT_DOUBLE_EQ(c.huber_delta, 1.0);
  EXPECT_EQ(c.early_stopping_patience, 3);
  EXPECT_DOUBLE_EQ(c.early_stopping_tolerance, 0.001);
  EXPECT_EQ(c.accuracy_top_k, 3);
  EXPECT_DOUBLE_EQ(c.f_beta, 1.0);
  EXPECT_FALSE(c.balance_multiclass_weights);
  EXPECT_TRUE(c.learning_rate_auto && c.wd_auto && c.l1_auto && c.momentum_auto && c.lr_schedule_auto);
  // Resolutions are recorded in the values (and so in the logged configuration).
  EXPECT_EQ(v.GetString("loss"), "logistic");
  EXPECT_EQ(v.GetString("optimizer"), "adam");
  EXPECT_EQ(v.GetInt("num_models"), 32);
  EXPECT_TRUE(v.IsAuto("feature_dim"));
}

TEST(LinearLearnerConfig, AutoLossPerPredictorType) {
  EXPECT_EQ(Resolve({{"predictor_type", "regressor"}}).loss, Loss::kSquared);
  Config mc = Resolve({{"predictor_type", "multiclass_classifier"}, {"num_classes", "10"}});
  EXPECT_EQ(mc.loss, Loss::kSoftmax);
  EXPECT_EQ(mc.num_classes, 10);
  EXPECT_EQ(mc.num_outputs(), 10);
  EXPECT_EQ(Resolve({{"predictor_type", "binary_classifier"}, {"loss", "AUTO"}}).loss, Loss::kLogistic);
}

TEST(LinearLearnerConfig, RegressorNormalisationAuto) {
  Config c = Resolve({{"predictor_type", "regressor"}});
  EXPECT_TRUE(c.normalize_label);
  EXPECT_TRUE(c.unbias_label);
  EXPECT_TRUE(c.unbias_data);
  Config nb = Resolve({{"predictor_type", "regressor"}, {"use_bias", "False"}});
  EXPECT_FALSE(nb.unbias_label);
  EXPECT_FALSE(nb.unbias_data);
  // normalize_label is ignored for classifiers even when given.
  EXPECT_FALSE(
      Resolve({{"predictor_type", "binary_classifier"}, {"normalize_label", "true"}}).normalize_label);
}

TEST(LinearLearnerConfig, LearningRateAutoDependsOnOptimizer) {
  EXPECT_DOUBLE_EQ(Resolve({{"predictor_type", "regressor"}, {"optimizer", "sgd"}}).learning_rate, 0.01);
  EXPECT_DOUBLE_EQ(Resolve({{"predictor_type", "regressor"}, {"optimizer", "rmsprop"}}).learning_rate, 0.001);
  Config given = Resolve({{"predictor_type", "regressor"}, {"learning_rate", "0.5"}, {"wd", "0.1"}});
  EXPECT_DOUBLE_EQ(given.learning_rate, 0.5);
  EXPECT_FALSE(given.learning_rate_auto);
  EXPECT_DOUBLE_EQ(given.wd, 0.1);
  EXPECT_FALSE(given.wd_auto);
  EXPECT_TRUE(given.l1_auto);
}

TEST(LinearLearnerConfig, NumModelsAuto) {
  EXPECT_EQ(
      Resolve({{"predictor_type", "regressor"}, {"_tuning_objective_metric", "validation:mse"}}).num_models,
      1);
  EXPECT_EQ(Resolve({{"predictor_type", "regressor"}, {"num_models", "4"}}).num_models, 4);
}

TEST(LinearLearnerConfig, SelectionCriteriaAndLegacySpellings) {
  auto crit = [](const std::string& s) {
    return Resolve(
               {{"predictor_type", "binary_classifier"}, {"binary_classifier_model_selection_criteria", s}})
        .selection_criterion;
  };
  EXPECT_EQ(crit("f_beta"), SelectionCriterion::kFBeta);
  EXPECT_EQ(crit("f1"), SelectionCriterion::kFBeta);
  EXPECT_EQ(crit("precision_at_target_recall"), SelectionCriterion::kPrecisionAtTargetRecall);
  EXPECT_EQ(crit("recall_at_target_precision"), SelectionCriterion::kRecallAtTargetPrecision);
  EXPECT_EQ(crit("loss_function"), SelectionCriterion::kLossFunction);
  EXPECT_EQ(crit("cross_entropy_loss"), SelectionCriterion::kLossFunction);
}

TEST(LinearLearnerConfig, PositiveExampleWeightMult) {
  auto cfg = [](const std::string& s) {
    return Resolve({{"predictor_type", "binary_classifier"}, {"positive_example_weight_mult", s}});
  };
  EXPECT_EQ(cfg("auto").positive_weight_mode, PositiveWeightMode::kAuto);
  EXPECT_EQ(cfg("Balanced").positive_weight_mode, PositiveWeightMode::kBalanced);
  EXPECT_DOUBLE_EQ(cfg("2.5").positive_example_weight_mult, 2.5);
  for (const char* bad : {"0", "-1", "abc", "1.5x", "nan", "inf", ""}) {
    const std::string err =
        ErrorOf({{"predictor_type", "binary_classifier"}, {"positive_example_weight_mult", bad}});
    EXPECT_NE(err.find("positive_example_weight_mult"), std::string::npos) << bad << ": " << err;
    EXPECT_NE(err.find("balanced"), std::string::npos) << err;
  }
}

TEST(LinearLearnerConfig, MulticlassNeedsNumClasses) {
  std::string err = ErrorOf({{"predictor_type", "multiclass_classifier"}});
  EXPECT_NE(err.find("num_classes"), std::string::npos) << err;
  EXPECT_NE(err.find("not set"), std::string::npos) << err;
  err = ErrorOf({{"predictor_type", "multiclass_classifier"}, {"num_classes", "2"}});
  EXPECT_NE(err.find("below 3"), std::string::npos) << err;
  EXPECT_NE(err.find("binary_classifier"), std::string::npos) << err;
  EXPECT_NE(
      ErrorOf({{"predictor_type", "multiclass_classifier"}, {"num_classes", "1000001"}}).find("num_classes"),
      std::string::npos);
  // num_classes is ignored for other predictor types.
  EXPECT_EQ(Resolve({{"predictor_type", "binary_classifier"}, {"num_classes", "5"}}).num_classes, 1);
}

TEST(LinearLearnerConfig, LossMustSuitPredictorType) {
  struct Case {
    const char* predictor;
    const char* loss;
    bool ok;
  } cases[] = {
      {"binary_classifier", "logistic", true},
      {"binary_classifier", "hinge_loss", true},
      {"binary_classifier", "squared_loss", false},
      {"binary_classifier", "softmax_loss", false},
      {"multiclass_classifier", "softmax_loss", true},
      {"multiclass_classifier", "logistic", false},
      {"regressor", "squared_loss", true},
      {"regressor", "absolute_loss", true},
      {"regressor", "eps_insensitive_squared_loss", true},
      {"regressor", "eps_insensitive_absolute_loss", true},
      {"regressor", "quantile_loss", true},
      {"regressor", "huber_loss", true},
      {"regressor", "logistic", false},
      {"regressor", "hinge_loss", false},
      {"regressor", "softmax_loss", false},
  };
  for (const Case& c : cases) {
    Map m = {{"predictor_type", c.predictor}, {"loss", c.loss}};
    if (std::string(c.predictor) == "multiclass_classifier") m["num_classes"] = "3";
    const std::string err = ErrorOf(m);
    if (c.ok) {
      EXPECT_EQ(err, "") << c.predictor << " " << c.loss;
      EXPECT_EQ(LossName(Resolve(m).loss), std::string(c.loss));
    } else {
      EXPECT_NE(err.find("'loss'"), std::string::npos) << c.predictor << " " << c.loss << ": " << err;
      EXPECT_NE(err.find(c.predictor), std::string::npos) << err;
      EXPECT_NE(err.find("use one of"), std::string::npos) << err;
    }
  }
}

TEST(LinearLearnerConfig, UnbiasNeedsBias) {
  std::string err =
      ErrorOf({{"predictor_type", "regressor"}, {"use_bias", "false"}, {"unbias_data", "true"}});
  EXPECT_NE(err.find("unbias_data"), std::string::npos) << err;
  EXPECT_NE(err.find("use_bias"), std::string::npos) << err;
  err = ErrorOf({{"predictor_type", "regressor"}, {"use_bias", "false"}, {"unbias_label", "true"}});
  EXPECT_NE(err.find("unbias_label"), std::string::npos) << err;
}

TEST(LinearLearnerConfig, MinimumLrAboveLearningRate) {
  const std::string err = ErrorOf(
      {{"predictor_type", "regressor"}, {"learning_rate", "0.001"}, {"lr_scheduler_minimum_lr", "0.01"}});
  EXPECT_NE(err.find("lr_scheduler_minimum_lr"), std::string::npos) << err;
  // Without the scheduler the minimum does not matter.
  EXPECT_EQ(ErrorOf({{"predictor_type", "regressor"},
                     {"learning_rate", "0.001"},
                     {"lr_scheduler_minimum_lr", "0.01"},
                     {"use_lr_scheduler", "false"}}),
            "");
}

TEST(LinearLearnerConfig, EveryBadValueNamesTheField) {
  struct Bad {
    const char* name;
    const char* value;
  } bad[] = {
      {"predictor_type", "classifier"},
      {"feature_dim", "0"},
      {"feature_dim", "1.5"},
      {"num_classes", "0"},
      {"mini_batch_size", "0"},
      {"epochs", "0"},
      {"epochs", "auto"},
      {"use_bias", "1"},
      {"binary_classifier_model_selection_criteria", "auc"},
      {"target_recall", "0"},
      {"target_recall", "1"},
      {"target_precision", "1.5"},
      {"num_models", "0"},
      {"num_calibration_samples", "0"},
      {"init_method", "xavier"},
      {"init_scale", "0"},
      {"init_sigma", "-0.1"},
      {"init_bias", "abc"},
      {"optimizer", "adagrad"},
      {"loss", "cross_entropy"},
      {"wd", "-1"},
      {"l1", "-0.5"},
      {"momentum", "1"},
      {"learning_rate", "0"},
      {"beta_1", "1"},
      {"beta_2", "-0.1"},
      {"bias_lr_mult", "0"},
      {"bias_wd_mult", "-1"},
      {"use_lr_scheduler", "yes"},
      {"lr_scheduler_step", "0"},
      {"lr_scheduler_factor", "1"},
      {"lr_scheduler_factor", "0"},
      {"lr_scheduler_minimum_lr", "0"},
      {"normalize_data", "maybe"},
      {"normalize_label", "2"},
      {"unbias_data", "x"},
      {"unbias_label", "x"},
      {"num_point_for_scaler", "0"},
      {"margin", "-1"},
      {"quantile", "0"},
      {"quantile", "1"},
      {"loss_insensitivity", "0"},
      {"huber_delta", "0"},
      {"early_stopping_patience", "0"},
      {"early_stopping_tolerance", "0"},
      {"accuracy_top_k", "0"},
      {"accuracy_top_k", "1000001"},
      {"f_beta", "0"},
      {"balance_multiclass_weights", "sometimes"},
      {"seed", "-1"},
  };
  for (const Bad& b : bad) {
    Map m = {{"predictor_type", "binary_classifier"}};
    m[b.name] = b.value;
    const std::string err = ErrorOf(m);
    EXPECT_NE(err.find(std::string("'") + b.name + "'"), std::string::npos)
        << b.name << "=" << b.value << ": " << err;
  }
  EXPECT_NE(ErrorOf({}).find("predictor_type"), std::string::npos);
  EXPECT_NE(ErrorOf({{"predictor_type", "regressor"}, {"learning_rat", "0.1"}}).find("learning_rate"),
            std::string::npos);
}

}  // namespace
}  // namespace mlforge::algos::linear_learner
