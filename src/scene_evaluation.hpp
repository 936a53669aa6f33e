#pragma once
// Scene-classification scores: predicted classes (a CSV, e.g. from `rsi scene --csv`) against labels
// (a CSV, or a folder with one sub-folder per class as EuroSAT and UC Merced ship). Items are joined
// by id, compared by file name (any directory part and the extension are dropped, so
// "patches/River_12.tif" matches "River_12"). Classes are compared by name.
#include <string>
#include <vector>

#include "src/confusion_matrix.hpp"

namespace rsi {

struct SceneEvaluationOptions {
    std::string prediction;        // CSV
    std::string labels;            // CSV or folder of class folders
    std::string id_column;         // default: the first of image, name, file, path, id, window_id
    std::string class_column;      // default: the first of class, label, prediction, predicted
    std::string label_id_column, label_class_column;  // defaults: as above
};

struct SceneEvaluation {
    std::vector<std::string> class_names;  // sorted; confusion matrix index order
    ConfusionMatrix matrix{1};
    PixelMetrics metrics;                  // per-class precision/recall/F1, OA (= accuracy), kappa
    int64_t items = 0;
    int64_t unlabelled_predictions = 0;    // predictions whose id has no label (ignored)
};

// Throws when a labelled item has no prediction (naming it) or the columns cannot be found.
SceneEvaluation evaluate_scenes(const SceneEvaluationOptions& options);

}  // namespace rsi
