#include "src/class_map_outputs.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "tiling/error.hpp"

namespace rsi {

namespace {
constexpr uint8_t kNodataClass = 255;
constexpr uint8_t kNodataByteProbability = 255;
constexpr float kByteProbabilityScale = 254.0f;
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
    mask.overwrite = options.overwrite;
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
    // Byte: 0..254 for 0..1 and 255 for nodata, so no probability value doubles as "no data".
    p.nodata = as_byte ? std::optional<double>(kNodataByteProbability) : std::optional<double>(kNodataProbability);
    p.band_descriptions.clear();
    for (const auto& c : model.classes) {
        if (options.probability_class < 0 || c.id == options.probability_class) p.band_descriptions.push_back("p_" + c.name);
    }
    if (options.uncertainty) p.band_descriptions.push_back("entropy");
    probability_ = std::make_unique<RasterWriter>(p);
}

void ClassMapOutputs::write_rows(int64_t y, int64_t rows, const float* probabilities, const uint8_t* valid) {
    write_span(y, rows, 0, width_, probabilities, valid);
    flush_band();
}

void ClassMapOutputs::write_span(int64_t y, int64_t rows, int64_t x, int64_t span, const float* probabilities,
                                 const uint8_t* valid) {
    const int64_t K = classes_, n = rows * span, band_n = rows * width_;
    if (band_rows_ == 0) {
        band_y_ = y;
        band_rows_ = rows;
        class_rows_.assign(static_cast<size_t>(band_n), kNodataClass);
        if (probability_) probability_rows_.assign(static_cast<size_t>(probability_bands_ * band_n), kNodataProbability);
    } else if (y != band_y_ || rows != band_rows_) {
        throw Error(options_.output + ": rows " + std::to_string(y) + "+" + std::to_string(rows) + " given while rows " +
                    std::to_string(band_y_) + "+" + std::to_string(band_rows_) + " are unfinished");
    }
    const double norm = K > 1 ? 1.0 / std::log(static_cast<double>(K)) : 1.0;
    for (int64_t j = 0; j < rows; ++j) {
        for (int64_t i = 0; i < span; ++i) {
            const int64_t p = j * span + i;              // in the span
            const int64_t q = j * width_ + x + i;        // in the band
            if (!valid[p]) {
                ++nodata_pixels_;
                continue;
            }
            int64_t best = 0;
            for (int64_t c = 1; c < K; ++c) {
                if (probabilities[c * n + p] > probabilities[best * n + p]) best = c;
            }
            if (probabilities[best * n + p] < options_.min_confidence) best = 0;
            class_rows_[static_cast<size_t>(q)] = static_cast<uint8_t>(best);
            ++class_pixels_[static_cast<size_t>(best)];
            if (!probability_) continue;
            int64_t band = 0;
            for (int64_t c = 0; c < K; ++c) {
                if (options_.probability_class >= 0 && c != options_.probability_class) continue;
                probability_rows_[static_cast<size_t>(band * band_n + q)] = probabilities[c * n + p];
                ++band;
            }
            if (options_.uncertainty) {
                double h = 0;
                for (int64_t c = 0; c < K; ++c) {
                    const double v = probabilities[c * n + p];
                    if (v > 0) h -= v * std::log(v);
                }
                probability_rows_[static_cast<size_t>(band * band_n + q)] = static_cast<float>(h * norm);
            }
        }
    }
}

void ClassMapOutputs::flush_band() {
    if (band_rows_ == 0) return;
    const int64_t y = band_y_, rows = band_rows_;
    band_rows_ = 0;
    mask_->append_rows(y, rows, class_rows_.data());
    if (!probability_) return;
    if (options_.probability_format == ProbabilityFormat::byte) {
        byte_rows_.resize(probability_rows_.size());
        for (size_t i = 0; i < probability_rows_.size(); ++i) {
            const float v = probability_rows_[i];
            byte_rows_[i] = v < 0 ? kNodataByteProbability  // nodata pixels hold kNodataProbability (-1)
                                  : static_cast<uint8_t>(std::lround(std::min(v, 1.0f) * kByteProbabilityScale));
        }
        probability_->append_rows(y, rows, byte_rows_.data());
    } else {
        probability_->append_rows(y, rows, probability_rows_.data());
    }
}

void ClassMapOutputs::close() {
    mask_->close();
    if (probability_) probability_->close();
}

void ClassMapOutputs::commit() {
    // Every final path checked before the first rename, so a file another run wrote meanwhile fails
    // the run with none of its outputs in place; the caller's later outputs are checked too.
    if (options_.before_commit) options_.before_commit();
    if (probability_) probability_->check_final_path_free();
    mask_->check_final_path_free();
    // The mask (the -o output) last: once it has its name, so has the probability raster.
    if (probability_) probability_->commit();
    mask_->commit();
}

void ClassMapOutputs::finish() {
    // Both complete before either is renamed into place.
    close();
    commit();
}

}  // namespace rsi
