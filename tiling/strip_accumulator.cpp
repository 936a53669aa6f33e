#include "tiling/strip_accumulator.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "tiling/error.hpp"

namespace rsi {

StripAccumulator::StripAccumulator(int channels, const PixelWindow& region, int64_t capacity_rows)
    : channels_(channels), region_(region), capacity_(capacity_rows), first_row_(region.y) {
    values_.assign(static_cast<size_t>(channels) * static_cast<size_t>(capacity_ * region.width), 0.0f);
    weights_.assign(static_cast<size_t>(capacity_ * region.width), 0.0f);
}

void StripAccumulator::add(const PixelWindow& window, const float* values, const float* weights) {
    const PixelWindow inside = window.intersect(region_);
    if (inside.empty()) return;
    if (inside.y < first_row_ || inside.bottom() > first_row_ + capacity_) {
        throw Error("strip accumulator: tile rows " + std::to_string(inside.y) + ".." + std::to_string(inside.bottom()) +
                    " outside the held rows " + std::to_string(first_row_) + ".." +
                    std::to_string(first_row_ + capacity_) + " (tiles out of order?)");
    }
    const int64_t width = region_.width;
    const int64_t plane = capacity_ * width;
    const int64_t tile_plane = window.area();
    for (int64_t j = 0; j < inside.height; ++j) {
        const int64_t ty = inside.y - window.y + j;
        const int64_t sy = inside.y - first_row_ + j;
        const float* w = weights + ty * window.width + (inside.x - window.x);
        float* acc_w = weights_.data() + sy * width + (inside.x - region_.x);
        for (int64_t i = 0; i < inside.width; ++i) acc_w[i] += w[i];
        for (int c = 0; c < channels_; ++c) {
            const float* v = values + c * tile_plane + ty * window.width + (inside.x - window.x);
            float* acc = values_.data() + c * plane + sy * width + (inside.x - region_.x);
            for (int64_t i = 0; i < inside.width; ++i) acc[i] += v[i] * w[i];
        }
    }
}

void StripAccumulator::release_until(int64_t row, const Sink& sink, int64_t chunk_rows) {
    row = std::min(row, region_.bottom());
    const int64_t rows = row - first_row_;
    if (rows <= 0) return;
    const int64_t width = region_.width;
    const int64_t plane = capacity_ * width;
    const int64_t chunk = chunk_rows > 0 ? std::min(chunk_rows, rows) : rows;
    released_.resize(static_cast<size_t>(channels_ * chunk * width));
    for (int64_t start = 0; start < rows; start += chunk) {
        const int64_t n = std::min(chunk, rows - start);
        // Each released pixel becomes a weighted mean.
        const int64_t first = start * width, count = n * width;
        for (int64_t p = 0; p < count; ++p) {
            const float w = weights_[static_cast<size_t>(first + p)];
            const float inv = w > 0 ? 1.0f / w : 0.0f;
            for (int c = 0; c < channels_; ++c) {
                released_[static_cast<size_t>(c * count + p)] = values_[static_cast<size_t>(c * plane + first + p)] * inv;
            }
        }
        sink(first_row_ + start, n, released_.data(), weights_.data() + first);
    }
    // Shift the held rows up and clear the freed space.
    const int64_t keep = capacity_ - rows;
    for (int c = 0; c < channels_; ++c) {
        float* base = values_.data() + c * plane;
        std::memmove(base, base + rows * width, static_cast<size_t>(keep * width) * sizeof(float));
        std::fill(base + keep * width, base + plane, 0.0f);
    }
    std::memmove(weights_.data(), weights_.data() + rows * width, static_cast<size_t>(keep * width) * sizeof(float));
    std::fill(weights_.begin() + keep * width, weights_.end(), 0.0f);
    first_row_ = row;
}

}  // namespace rsi
