#include "src/class_map_outputs.hpp"

#include <algorithm>
#include <cmath>

namespace rsi {

namespace {
constexpr uint8_t kNodataClass = 255;
constexpr float kNodataProbability = -1.0f;
}  // namespace

ClassMapOutputs::ClassMapOutputs(const SegmentOptions& options, const RasterInfo& info, const models::ModelMetadata& model)
    : options_(options), width_(info.width), classes_(static_cast<int64_t>(model.classes.size())) {
    class_pixels_.assign(static_cast<size_t>(classes_), 0);
    RasterWriterOptions mask;
    mask.path = options.output;
    mask.width = info.width;
    mask.height = info.height;
    mask.type = GDT_Byte;
    mask.format = options.format;
    mask.creation_options = options.creation_options;
    mask.nodata = kNodataClass;
    mask.band_descriptions = {"class"};
    georeference_like(mask, info);
    mask_ = std::make_unique<RasterWriter>(mask);
    mask_->set_classes(model.classes);
    if (options.probabilities.empty()) return;
    probability_bands_ = (options.probability_class >= 0 ? 1 : classes_) + (options.uncertainty ? 1 : 0);
    RasterWriterOptions p = mask;
    p.path = options.probabilities;
    p.bands = static_cast<int>(probability_bands_);
    const bool as_byte = options.probability_format == ProbabilityFormat::byte;
    p.type = as_byte ? GDT_Byte : GDT_Float32;
    p.nodata = as_byte ? std::nullopt : std::optional<double>(kNodataProbability);
    p.band_descriptions.clear();
    for (const auto& c : model.classes) {
        if (options.probability_class < 0 || c.id == options.probability_class) p.band_descriptions.push_back("p_" + c.name);
    }
    if (options.uncertainty) p.band_descriptions.push_back("entropy");
    probability_ = std::make_unique<RasterWriter>(p);
}

void ClassMapOutputs::write_rows(int64_t y, int64_t rows, const float* probabilities, const uint8_t* valid) {
    const int64_t n = rows * width_, K = classes_;
    class_rows_.assign(static_cast<size_t>(n), kNodataClass);
    for (int64_t p = 0; p < n; ++p) {
        if (!valid[p]) {
            ++nodata_pixels_;
            continue;
        }
        int64_t best = 0;
        for (int64_t c = 1; c < K; ++c) {
            if (probabilities[c * n + p] > probabilities[best * n + p]) best = c;
        }
        if (probabilities[best * n + p] < options_.min_confidence) best = 0;
        class_rows_[static_cast<size_t>(p)] = static_cast<uint8_t>(best);
        ++class_pixels_[static_cast<size_t>(best)];
    }
    mask_->append_rows(y, rows, class_rows_.data());
    if (!probability_) return;
    probability_rows_.assign(static_cast<size_t>(probability_bands_ * n), kNodataProbability);
    int64_t band = 0;
    for (int64_t c = 0; c < K; ++c) {
        if (options_.probability_class >= 0 && c != options_.probability_class) continue;
        for (int64_t p = 0; p < n; ++p) {
            if (valid[p]) probability_rows_[static_cast<size_t>(band * n + p)] = probabilities[c * n + p];
        }
        ++band;
    }
    if (options_.uncertainty) {
        const double norm = K > 1 ? 1.0 / std::log(static_cast<double>(K)) : 1.0;
        for (int64_t p = 0; p < n; ++p) {
            if (!valid[p]) continue;
            double h = 0;
            for (int64_t c = 0; c < K; ++c) {
                const double q = probabilities[c * n + p];
                if (q > 0) h -= q * std::log(q);
            }
            probability_rows_[static_cast<size_t>(band * n + p)] = static_cast<float>(h * norm);
        }
    }
    if (options_.probability_format == ProbabilityFormat::byte) {
        byte_rows_.resize(probability_rows_.size());
        for (size_t i = 0; i < probability_rows_.size(); ++i) {
            byte_rows_[i] = static_cast<uint8_t>(std::lround(std::clamp(probability_rows_[i], 0.0f, 1.0f) * 255.0f));
        }
        probability_->append_rows(y, rows, byte_rows_.data());
    } else {
        probability_->append_rows(y, rows, probability_rows_.data());
    }
}

void ClassMapOutputs::finish() {
    // Both complete (a full disk fails here) before either is renamed into place.
    mask_->close();
    if (probability_) probability_->close();
    mask_->commit();
    if (probability_) probability_->commit();
}

}  // namespace rsi
