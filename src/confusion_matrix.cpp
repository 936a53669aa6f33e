#include "src/confusion_matrix.hpp"

#include "tiling/error.hpp"

#include <limits>

namespace rsi {

ConfusionMatrix::ConfusionMatrix(int classes) : classes_(classes) {
    if (classes < 1 || classes > 256) throw usage_error("confusion matrix: class count must be 1..256");
    cells_.assign(static_cast<size_t>(classes * classes), 0);
}

void ConfusionMatrix::add(const uint8_t* truth, const uint8_t* prediction, int64_t count, int ignore) {
    for (int64_t i = 0; i < count; ++i) {
        const int t = truth[i], p = prediction[i];
        if (t == ignore || p == ignore || t >= classes_ || p >= classes_) continue;
        ++cells_[static_cast<size_t>(t * classes_ + p)];
    }
}

void ConfusionMatrix::add_pair(int truth, int prediction, int64_t times) {
    if (truth < 0 || prediction < 0 || truth >= classes_ || prediction >= classes_) return;
    cells_[static_cast<size_t>(truth * classes_ + prediction)] += times;
}

namespace {
constexpr double kUndefined = std::numeric_limits<double>::quiet_NaN();
}

int64_t ConfusionMatrix::total() const {
    int64_t n = 0;
    for (int64_t c : cells_) n += c;
    return n;
}

PixelMetrics ConfusionMatrix::metrics() const {
    PixelMetrics m;
    const int k = classes_;
    std::vector<int64_t> rows(static_cast<size_t>(k), 0), cols(static_cast<size_t>(k), 0);
    int64_t diagonal = 0;
    for (int t = 0; t < k; ++t)
        for (int p = 0; p < k; ++p) {
            const int64_t v = at(t, p);
            rows[static_cast<size_t>(t)] += v;
            cols[static_cast<size_t>(p)] += v;
            m.pixels += v;
            if (t == p) diagonal += v;
        }
    if (m.pixels == 0) throw Error("metrics: no pixel to compare (everything is ignored or nodata)");
    const double n = static_cast<double>(m.pixels);
    double iou_sum = 0, expected = 0;
    int present = 0;
    for (int c = 0; c < k; ++c) {
        ClassMetrics cm;
        cm.true_positive = at(c, c);
        cm.false_positive = cols[static_cast<size_t>(c)] - cm.true_positive;
        cm.false_negative = rows[static_cast<size_t>(c)] - cm.true_positive;
        cm.support = rows[static_cast<size_t>(c)];
        const double tp = static_cast<double>(cm.true_positive);
        const double union_ = tp + static_cast<double>(cm.false_positive + cm.false_negative);
        cm.iou = union_ > 0 ? tp / union_ : kUndefined;
        cm.precision = cols[static_cast<size_t>(c)] > 0 ? tp / static_cast<double>(cols[static_cast<size_t>(c)]) : kUndefined;
        cm.recall = rows[static_cast<size_t>(c)] > 0 ? tp / static_cast<double>(rows[static_cast<size_t>(c)]) : kUndefined;
        const double dice_denominator = 2 * tp + static_cast<double>(cm.false_positive + cm.false_negative);
        cm.f1 = dice_denominator > 0 ? 2 * tp / dice_denominator : kUndefined;
        if (union_ > 0) {
            iou_sum += cm.iou;
            ++present;
        }
        if (cm.support > 0) m.frequency_weighted_iou += static_cast<double>(cm.support) / n * cm.iou;
        expected += static_cast<double>(rows[static_cast<size_t>(c)]) * static_cast<double>(cols[static_cast<size_t>(c)]);
        m.classes.push_back(cm);
    }
    m.mean_iou = present ? iou_sum / present : 0;
    m.overall_accuracy = static_cast<double>(diagonal) / n;
    const double pe = expected / (n * n);
    m.kappa = pe < 1 ? (m.overall_accuracy - pe) / (1 - pe) : kUndefined;  // 0/0: as scikit-learn
    return m;
}

}  // namespace rsi
