#pragma once
// Pixel metrics from a confusion matrix (rows truth, columns prediction): per-class IoU, precision,
// recall, F1/Dice, mIoU, frequency-weighted IoU, overall accuracy and Cohen's kappa. Accumulates
// block by block, so rasters of any size stream through it.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace rsi {

struct ClassMetrics {
    int64_t true_positive = 0, false_positive = 0, false_negative = 0, support = 0;  // support = truth pixels
    // A score whose denominator is 0 is undefined and holds NaN (printed n/a, null in JSON), not 0:
    // precision of a class never predicted, recall of a class absent from the truth, and every score
    // of a class in neither raster.
    double iou = 0, precision = 0, recall = 0, f1 = 0;
    // In the truth or the prediction: otherwise it takes no part in the means.
    bool present() const { return true_positive + false_positive + false_negative > 0; }
};

struct PixelMetrics {
    std::vector<ClassMetrics> classes;
    double mean_iou = 0;              // over classes present in truth or prediction
    double frequency_weighted_iou = 0;
    double overall_accuracy = 0;
    double kappa = 0;                 // NaN when chance agreement is 1 (both rasters one and the same class)
    int64_t pixels = 0;               // counted (ignore value excluded)
};

class ConfusionMatrix {
public:
    explicit ConfusionMatrix(int classes);

    // Adds `count` pixel pairs; values outside 0..classes-1 or equal to `ignore` are skipped.
    void add(const uint8_t* truth, const uint8_t* prediction, int64_t count, int ignore = -1);
    void add_pair(int truth, int prediction, int64_t times = 1);

    int classes() const { return classes_; }
    int64_t at(int truth, int prediction) const { return cells_[static_cast<size_t>(truth * classes_ + prediction)]; }
    int64_t total() const;  // pixel pairs counted
    PixelMetrics metrics() const;

private:
    int classes_;
    std::vector<int64_t> cells_;
};

}  // namespace rsi
