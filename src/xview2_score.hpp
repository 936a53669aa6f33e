#pragma once
// The xView2 (xBD) contest score of a folder of prediction PNGs against a folder of target PNGs, as
// the contest's scorer (DIUx-xView/xView2_scoring, xview2_metrics.py) computes it:
//   localisation: pixels > 0 are building; TP, FN, FP summed over every image; F1_loc from the sums.
//   damage: the damage prediction is zeroed where the localisation prediction has no building, and
//     only pixels that are building in the damage target are scored. For each damage level 1..4 (no
//     damage, minor, major, destroyed) TP, FN, FP are counted in an image only when that level occurs
//     in the image's damage target, then summed. F1_dmg = 4 / sum((F1_k + 1e-6)^-1).
//   score = 0.3 F1_loc + 0.7 F1_dmg.
// Precision and recall are 0 when TP is 0, F1 is 0 when either is 0 (the scorer's F1Recorder).
// Files: {test|hold}_localization_<id>_target.png and _damage_<id>_target.png in the target folder;
// the same with _prediction.png in the prediction folder (what `rsi submit xview2` writes). Every PNG
// is one band of 1024x1024 bytes holding 0..4.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "tiling/progress.hpp"

namespace rsi {

struct Xview2Counts {
    int64_t true_positive = 0, false_negative = 0, false_positive = 0;
    double precision() const;
    double recall() const;
    double f1() const;
};

struct Xview2Score {
    double score = 0, localization_f1 = 0, damage_f1 = 0;
    Xview2Counts localization;
    std::array<Xview2Counts, 4> damage;  // levels 1..4
    int64_t images = 0;
};

// Scores every image of `target_dir` (a target image without its predictions is an error naming it).
Xview2Score evaluate_xview2(const std::string& prediction_dir, const std::string& target_dir, const ProgressFn& progress = {});

// The score from the counts of one image pair (images of `pixels` bytes each), added to `score`'s
// counts; `finish_xview2` computes the F1 values from them. Exposed for worked-example tests.
void add_xview2_pair(const uint8_t* localization_prediction, const uint8_t* damage_prediction, const uint8_t* localization_target,
                     const uint8_t* damage_target, int64_t pixels, Xview2Score& score);
void finish_xview2(Xview2Score& score);

}  // namespace rsi
