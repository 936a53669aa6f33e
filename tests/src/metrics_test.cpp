// Worked examples from the contest and metric definitions (shared notes, formats-and-models.md).
#include <gtest/gtest.h>

#include <cmath>

#include "src/confusion_matrix.hpp"
#include "src/tianchi_rle.hpp"
#include "tiling/error.hpp"

namespace rsi {
namespace {

// truth [[1,0,0],[0,1,1],[0,0,1]], prediction [[1,0,1],[0,1,0],[0,0,0]] (row-major)
const uint8_t kTruth[9] = {1, 0, 0, 0, 1, 1, 0, 0, 1};
const uint8_t kPrediction[9] = {1, 0, 1, 0, 1, 0, 0, 0, 0};

TEST(PixelMetrics, WorkedExample) {
    ConfusionMatrix cm(2);
    cm.add(kTruth, kPrediction, 9);
    EXPECT_EQ(cm.at(1, 1), 2);  // TP
    EXPECT_EQ(cm.at(0, 1), 1);  // FP
    EXPECT_EQ(cm.at(1, 0), 2);  // FN
    EXPECT_EQ(cm.at(0, 0), 4);  // TN
    const PixelMetrics m = cm.metrics();
    EXPECT_NEAR(m.classes[1].f1, 0.5714, 1e-4);   // Dice
    EXPECT_NEAR(m.classes[1].iou, 0.4, 1e-12);
    EXPECT_NEAR(m.classes[1].precision, 0.6667, 1e-4);
    EXPECT_NEAR(m.classes[1].recall, 0.5, 1e-12);
    EXPECT_NEAR(m.overall_accuracy, 0.6667, 1e-4);
    EXPECT_NEAR(m.classes[0].iou, 0.5714, 1e-4);
    EXPECT_NEAR(m.mean_iou, 0.4857, 1e-4);
    EXPECT_NEAR(m.kappa, 0.3077, 1e-4);
    EXPECT_NEAR(m.frequency_weighted_iou, 5.0 / 9 * 4.0 / 7 + 4.0 / 9 * 0.4, 1e-12);
}

TEST(PixelMetrics, IgnoreValueAndEmptyInput) {
    ConfusionMatrix cm(3);
    const uint8_t truth[4] = {0, 1, 255, 2}, prediction[4] = {0, 2, 1, 2};
    cm.add(truth, prediction, 4, 255);
    EXPECT_EQ(cm.metrics().pixels, 3);
    EXPECT_NEAR(cm.metrics().overall_accuracy, 2.0 / 3, 1e-12);
    ConfusionMatrix empty(2);
    EXPECT_THROW(empty.metrics(), Error);
}

// Scores with a zero denominator are NaN (undefined), not 0: class 1 is never predicted (precision
// n/a, recall 0), class 2 is predicted but not in the truth (recall n/a, precision 0), class 3 is in
// neither raster. Both rasters one class: kappa is 0/0.
TEST(PixelMetrics, UndefinedScoresAreNaN) {
    ConfusionMatrix cm(4);
    const uint8_t truth[4] = {0, 0, 1, 1}, prediction[4] = {0, 2, 0, 0};
    cm.add(truth, prediction, 4);
    const PixelMetrics m = cm.metrics();
    EXPECT_TRUE(std::isnan(m.classes[1].precision));
    EXPECT_DOUBLE_EQ(m.classes[1].recall, 0.0);
    EXPECT_DOUBLE_EQ(m.classes[1].iou, 0.0);
    EXPECT_DOUBLE_EQ(m.classes[2].precision, 0.0);
    EXPECT_TRUE(std::isnan(m.classes[2].recall));
    EXPECT_TRUE(std::isnan(m.classes[3].iou) && std::isnan(m.classes[3].f1) && !m.classes[3].present());
    EXPECT_NEAR(m.mean_iou, (1.0 / 4 + 0 + 0) / 3, 1e-12);  // class 0: TP 1, FP 2, FN 1
    EXPECT_NEAR(m.frequency_weighted_iou, 0.5 * 0.25, 1e-12);
    ConfusionMatrix one_class(2);
    const uint8_t ones[3] = {1, 1, 1};
    one_class.add(ones, ones, 3);
    EXPECT_DOUBLE_EQ(one_class.metrics().overall_accuracy, 1.0);
    EXPECT_TRUE(std::isnan(one_class.metrics().kappa));
}

TEST(TianchiRle, WorkedExampleIsColumnMajorAndOneBased) {
    EXPECT_EQ(encode_tianchi_rle(kTruth, 3, 3), "1 1 5 1 8 2");  // row-major would wrongly give 1 1 5 2 9 1
    const uint8_t empty[4] = {0, 0, 0, 0};
    EXPECT_EQ(encode_tianchi_rle(empty, 2, 2), "");
    const uint8_t full[6] = {1, 1, 1, 1, 1, 1};
    EXPECT_EQ(encode_tianchi_rle(full, 3, 2), "1 6");
}

TEST(TianchiRle, RoundTripAndDice) {
    std::vector<uint8_t> mask(37 * 23);
    for (size_t i = 0; i < mask.size(); ++i) mask[i] = (i * 7 % 11) < 4;
    const std::string rle = encode_tianchi_rle(mask.data(), 37, 23);
    EXPECT_EQ(decode_tianchi_rle(rle, 37, 23, "x"), mask);
    EXPECT_EQ(decode_tianchi_rle("1 1 5 1 8 2", 3, 3, "x"), std::vector<uint8_t>(kTruth, kTruth + 9));
    EXPECT_NEAR(tianchi_dice(kTruth, kPrediction, 9), 0.5714, 1e-4);
    const uint8_t none[9] = {};
    EXPECT_EQ(tianchi_dice(none, none, 9), 1.0);  // both empty
    EXPECT_EQ(tianchi_dice(kTruth, none, 9), 0.0);
}

TEST(TianchiRle, MalformedRunsNameTheLine) {
    auto message = [](std::string_view rle) {
        try {
            decode_tianchi_rle(rle, 3, 3, "submit.csv:12");
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_EQ(message("1 1 5"), "submit.csv:12: RLE has an odd number of tokens (3)");
    EXPECT_EQ(message("1 x"), "submit.csv:12: RLE token 'x' is not a whole number");
    EXPECT_EQ(message("0 2"), "submit.csv:12: RLE start 0 is below 1");
    EXPECT_EQ(message("8 3"), "submit.csv:12: RLE run 8+3 goes beyond the 3x3 image");
    EXPECT_EQ(message("1 3 2 1"), "submit.csv:12: RLE run at 2 overlaps or precedes the previous run");
    EXPECT_EQ(message("1 0"), "submit.csv:12: RLE run length 0 is below 1");
    EXPECT_EQ(message("-1 2"), "submit.csv:12: RLE start -1 is below 1");
}

}  // namespace
}  // namespace rsi
