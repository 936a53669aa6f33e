#include "src/xview2_score.hpp"

#include <algorithm>
#include <filesystem>

#include "tiling/error.hpp"
#include "tiling/raster_source.hpp"

namespace rsi {

namespace fs = std::filesystem;

double Xview2Counts::precision() const {
    return true_positive == 0 ? 0.0 : static_cast<double>(true_positive) / static_cast<double>(true_positive + false_positive);
}
double Xview2Counts::recall() const {
    return true_positive == 0 ? 0.0 : static_cast<double>(true_positive) / static_cast<double>(true_positive + false_negative);
}
double Xview2Counts::f1() const {
    const double p = precision(), r = recall();
    return p == 0 || r == 0 ? 0.0 : 2 * p * r / (p + r);
}

void add_xview2_pair(const uint8_t* localization_prediction, const uint8_t* damage_prediction, const uint8_t* localization_target,
                     const uint8_t* damage_target, int64_t pixels, Xview2Score& score) {
    std::array<bool, 5> level_in_target{};
    for (int64_t i = 0; i < pixels; ++i) level_in_target[std::min<uint8_t>(damage_target[i], 4)] = true;
    std::array<Xview2Counts, 4> damage{};
    for (int64_t i = 0; i < pixels; ++i) {
        const bool predicted = localization_prediction[i] > 0, building = localization_target[i] > 0;
        score.localization.true_positive += predicted && building;
        score.localization.false_negative += !predicted && building;
        score.localization.false_positive += predicted && !building;
        const int target = damage_target[i];
        if (target == 0) continue;  // damage is scored on the target's buildings only
        const int guess = predicted ? damage_prediction[i] : 0;  // no credit without a predicted building
        for (int level = 1; level <= 4; ++level) {
            Xview2Counts& c = damage[static_cast<size_t>(level - 1)];
            c.true_positive += guess == level && target == level;
            c.false_negative += guess != level && target == level;
            c.false_positive += guess == level && target != level;
        }
    }
    // A level absent from this image's target adds nothing, not even its false positives (the scorer
    // records None for it, which the column sums skip).
    for (int level = 1; level <= 4; ++level) {
        if (!level_in_target[static_cast<size_t>(level)]) continue;
        Xview2Counts& total = score.damage[static_cast<size_t>(level - 1)];
        const Xview2Counts& c = damage[static_cast<size_t>(level - 1)];
        total.true_positive += c.true_positive;
        total.false_negative += c.false_negative;
        total.false_positive += c.false_positive;
    }
    ++score.images;
}

void finish_xview2(Xview2Score& score) {
    score.localization_f1 = score.localization.f1();
    double inverse_sum = 0;
    for (const Xview2Counts& c : score.damage) inverse_sum += 1.0 / (c.f1() + 1e-6);
    score.damage_f1 = 4.0 / inverse_sum;
    score.score = 0.3 * score.localization_f1 + 0.7 * score.damage_f1;
}

namespace {

// One band of 1024x1024 bytes holding 0..4, as the scorer asserts.
std::vector<uint8_t> read_xview2_png(const std::string& path) {
    const RasterSource source = RasterSource::open(path);
    const RasterInfo& info = source.info();
    if (info.width != 1024 || info.height != 1024) {
        throw Error(path + ": is " + std::to_string(info.width) + "x" + std::to_string(info.height) + ", xView2 images are 1024x1024");
    }
    if (info.band_count() != 1 || info.data_type != GDT_Byte) throw Error(path + ": must be one band of bytes (uint8)");
    std::vector<uint8_t> pixels(static_cast<size_t>(info.width * info.height));
    source.read({0, 0, info.width, info.height}, {1}, GDT_Byte, pixels.data());
    for (size_t i = 0; i < pixels.size(); ++i) {
        if (pixels[i] > 4) {
            throw Error(path + ": has the value " + std::to_string(pixels[i]) + " at pixel (" + std::to_string(i % 1024) + ", " +
                        std::to_string(i / 1024) + "); xView2 values are 0..4");
        }
    }
    return pixels;
}

}  // namespace

Xview2Score evaluate_xview2(const std::string& prediction_dir, const std::string& target_dir, const ProgressFn& progress) {
    for (const std::string* dir : {&prediction_dir, &target_dir}) {
        std::error_code ec;
        if (!fs::is_directory(*dir, ec)) throw Error(*dir + ": is not a folder (eval --xview2 takes two folders of PNGs)");
    }
    // <split>_localization_<id>_target.png names one image; its damage target has the same split and id.
    const std::string suffix = "_target.png";
    std::vector<std::pair<std::string, std::string>> split_and_id;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(target_dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (!entry.is_regular_file() || name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
            continue;
        }
        for (const std::string split : {"test", "hold"}) {
            const std::string prefix = split + "_localization_";
            if (name.size() > prefix.size() + suffix.size() && name.rfind(prefix, 0) == 0) {
                split_and_id.emplace_back(split, name.substr(prefix.size(), name.size() - prefix.size() - suffix.size()));
            }
        }
    }
    if (ec) throw Error(target_dir + ": cannot list the folder: " + ec.message());
    if (split_and_id.empty()) throw Error(target_dir + ": no xView2 targets (test_localization_<id>_target.png)");
    std::sort(split_and_id.begin(), split_and_id.end());
    const auto path_of = [](const std::string& dir, const std::string& split, const char* kind, const std::string& id, const char* role) {
        return (fs::path(dir) / (split + "_" + kind + "_" + id + "_" + role + ".png")).string();
    };
    std::vector<std::string> missing;
    for (const auto& [split, id] : split_and_id) {
        for (const char* kind : {"localization", "damage"}) {
            if (!fs::exists(path_of(prediction_dir, split, kind, id, "prediction"))) {
                missing.push_back(fs::path(path_of(prediction_dir, split, kind, id, "prediction")).filename().string());
            }
        }
    }
    if (!missing.empty()) {
        throw Error(prediction_dir + ": lacks " + std::to_string(missing.size()) + " prediction file" + (missing.size() == 1 ? "" : "s") +
                    " of the targets in " + target_dir + " (first: " + missing.front() + ")");
    }
    Xview2Score score;
    for (size_t k = 0; k < split_and_id.size(); ++k) {
        const auto& [split, id] = split_and_id[k];
        const std::vector<uint8_t> lp = read_xview2_png(path_of(prediction_dir, split, "localization", id, "prediction"));
        const std::vector<uint8_t> dp = read_xview2_png(path_of(prediction_dir, split, "damage", id, "prediction"));
        const std::vector<uint8_t> lt = read_xview2_png(path_of(target_dir, split, "localization", id, "target"));
        const std::vector<uint8_t> dt = read_xview2_png(path_of(target_dir, split, "damage", id, "target"));
        add_xview2_pair(lp.data(), dp.data(), lt.data(), dt.data(), static_cast<int64_t>(lp.size()), score);
        report_progress(progress, static_cast<double>(k + 1) / static_cast<double>(split_and_id.size()), "images");
    }
    finish_xview2(score);
    return score;
}

}  // namespace rsi
