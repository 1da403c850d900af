// mlforge's own metadata beside a model_algo-1 (mlforge-model.json: the algorithm, the resolved
// hyperparameters, the job's metrics), read the same way by every algorithm's LoadModel.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>

#include "io/archive.h"

namespace mlforge::algos {

// The member `name` (each algorithm's kMetadataFile) parsed, or nullopt when the artifact has none
// (SageMaker's own). UserError naming the artifact and the file when it is not valid JSON or
// nests deeper than kMaxFileJsonDepth.
std::optional<nlohmann::json> ReadModelMetadata(const io::ModelSource& src, const char* name);

}  // namespace mlforge::algos
