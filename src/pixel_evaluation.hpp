#pragma once
// `rsi eval` in pixel mode: a prediction raster against a ground-truth raster on the same grid,
// streamed in row blocks into a confusion matrix.
#include <map>
#include <string>

#include "src/confusion_matrix.hpp"
#include "tiling/progress.hpp"

namespace rsi {

struct PixelEvaluationOptions {
    std::string prediction, truth;
    int classes = 0;                    // 0: the largest value seen in band 1 of either raster + 1 (after mapping)
    int ignore = -1;                    // a value (after mapping) that is not counted, e.g. 255 nodata
    std::map<int, int> truth_map;       // value remapping, e.g. {255: 1} for 0/255 masks
    std::map<int, int> prediction_map;
};

struct PixelEvaluation {
    ConfusionMatrix matrix{1};
    PixelMetrics metrics;
};

PixelEvaluation evaluate_pixels(const PixelEvaluationOptions& options, const ProgressFn& progress = {});

// "255=1,3=2" -> {255: 1, 3: 2}; throws a usage Error.
std::map<int, int> parse_value_map(const std::string& text, const std::string& option);

}  // namespace rsi
