#include "tiling/strip_accumulator.hpp"

#include <algorithm>
#include <limits>
#include <string>

#include "tiling/error.hpp"

namespace rsi {

StripAccumulator::StripAccumulator(int channels, const PixelWindow& region, int64_t capacity_rows, int64_t chunk_width,
                                   Weights weights)
    : channels_(channels),
      weight_plane_(weights == Weights::stored),
      planes_(channels + (weights == Weights::stored ? 1 : 0)),
      region_(region),
      capacity_(capacity_rows),
      first_row_(region.y) {
    if (channels <= 0) throw Error("strip accumulator: no channels");
    if (chunk_width <= 0 || capacity_rows <= 0) throw Error("strip accumulator: chunk width and capacity must be positive");
    for (int64_t x = region.x; x < region.right(); x += chunk_width) {
        Chunk chunk;
        chunk.x = x;
        chunk.width = std::min(chunk_width, region.right() - x);
        chunk.origin = first_row_;
        chunks_.push_back(std::move(chunk));
    }
}

void StripAccumulator::make_full(Chunk& chunk) {
    if (chunk.full) return;
    const int64_t offset = chunk.origin - first_row_;
    if (offset < 0 || offset + chunk.rows > capacity_) {
        throw Error("strip accumulator: columns " + std::to_string(chunk.x) + ".." + std::to_string(chunk.x + chunk.width) +
                    " hold rows from " + std::to_string(chunk.origin) + ", outside the rows " + std::to_string(first_row_) + ".." +
                    std::to_string(first_row_ + capacity_) + " (tiles out of order?)");
    }
    std::vector<float> data = spare_full_.take();
    const auto before = static_cast<int64_t>(data.capacity());
    const int64_t plane = capacity_ * chunk.width, kept_plane = chunk.rows * chunk.width;
    data.assign(static_cast<size_t>(planes_ * plane), 0.0f);
    allocated_bytes_ += (static_cast<int64_t>(data.capacity()) - before) * static_cast<int64_t>(sizeof(float));
    for (int p = 0; p < planes_; ++p) {
        std::copy_n(chunk.data.data() + p * kept_plane, kept_plane, data.data() + p * plane + offset * chunk.width);
    }
    spare_kept_.give(std::move(chunk.data));
    chunk.data = std::move(data);
    chunk.full = true;
    chunk.origin = first_row_;
    chunk.rows = capacity_;
}

void StripAccumulator::add(const PixelWindow& window, const float* values, const float* weights) {
    const PixelWindow inside = window.intersect(region_);
    if (inside.empty()) return;
    if (inside.y < first_row_ || inside.bottom() > first_row_ + capacity_) {
        throw Error("strip accumulator: tile rows " + std::to_string(inside.y) + ".." + std::to_string(inside.bottom()) +
                    " outside the held rows " + std::to_string(first_row_) + ".." +
                    std::to_string(first_row_ + capacity_) + " (tiles out of order?)");
    }
    const int64_t tile_plane = window.area();
    for (Chunk& chunk : chunks_) {
        const int64_t x0 = std::max(inside.x, chunk.x), x1 = std::min(inside.right(), chunk.x + chunk.width);
        if (x0 >= x1) continue;
        if (chunk.origin != first_row_) {
            throw Error("strip accumulator: a tile reaches columns " + std::to_string(chunk.x) + ".." +
                        std::to_string(chunk.x + chunk.width) + " already released (tiles out of order?)");
        }
        make_full(chunk);
        const int64_t plane = capacity_ * chunk.width, n = x1 - x0;
        for (int64_t j = 0; j < inside.height; ++j) {
            const int64_t ty = inside.y - window.y + j;
            const int64_t sy = inside.y - first_row_ + j;
            const float* w = weights + ty * window.width + (x0 - window.x);
            if (weight_plane_) {
                float* acc_w = chunk.data.data() + channels_ * plane + sy * chunk.width + (x0 - chunk.x);
                for (int64_t i = 0; i < n; ++i) acc_w[i] += w[i];
            }
            for (int c = 0; c < channels_; ++c) {
                const float* v = values + c * tile_plane + ty * window.width + (x0 - window.x);
                float* acc = chunk.data.data() + c * plane + sy * chunk.width + (x0 - chunk.x);
                for (int64_t i = 0; i < n; ++i) acc[i] += v[i] * w[i];
            }
        }
    }
}

void StripAccumulator::finish(Chunk& chunk, int64_t row, const Sink& sink) {
    const int64_t n = row - first_row_;
    if (n <= 0) return;
    make_full(chunk);
    const int64_t width = chunk.width, plane = capacity_ * width, count = n * width;
    const float* weight = nullptr;
    if (weight_plane_) {
        weight = chunk.data.data() + channels_ * plane;
    } else {
        released_weight_.assign(static_cast<size_t>(count), 0.0f);
        for (int c = 0; c < channels_; ++c) {
            const float* v = chunk.data.data() + c * plane;
            for (int64_t p = 0; p < count; ++p) released_weight_[static_cast<size_t>(p)] += v[p];
        }
        weight = released_weight_.data();
    }
    released_.resize(static_cast<size_t>(channels_ * count));
    // Each released pixel becomes a weighted mean.
    for (int64_t p = 0; p < count; ++p) {
        const float w = weight[p];
        const float inv = w > 0 ? 1.0f / w : 0.0f;
        for (int c = 0; c < channels_; ++c) {
            released_[static_cast<size_t>(c * count + p)] = chunk.data[static_cast<size_t>(c * plane + p)] * inv;
        }
    }
    sink(first_row_, n, chunk.x, width, released_.data(), weight);
    // Keep only the rows below `row` (the next tile row adds to them).
    const int64_t keep = capacity_ - n, kept_plane = keep * width;
    std::vector<float> kept = spare_kept_.take();
    const auto before = static_cast<int64_t>(kept.capacity());
    kept.resize(static_cast<size_t>(planes_ * kept_plane));
    allocated_bytes_ += (static_cast<int64_t>(kept.capacity()) - before) * static_cast<int64_t>(sizeof(float));
    for (int p = 0; p < planes_; ++p) {
        std::copy_n(chunk.data.data() + p * plane + count, kept_plane, kept.data() + p * kept_plane);
    }
    spare_full_.give(std::move(chunk.data));
    chunk.data = std::move(kept);
    chunk.full = false;
    chunk.origin = row;
    chunk.rows = keep;
}

void StripAccumulator::release_columns(int64_t row, int64_t x, const Sink& sink) {
    row = std::min(row, region_.bottom());
    if (row <= first_row_) return;
    for (Chunk& chunk : chunks_) {
        if (chunk.x + chunk.width > x) break;  // chunks are in column order
        if (chunk.origin == first_row_) finish(chunk, row, sink);
    }
}

void StripAccumulator::release_until(int64_t row, const Sink& sink) {
    row = std::min(row, region_.bottom());
    if (row <= first_row_) return;
    release_columns(row, std::numeric_limits<int64_t>::max(), sink);
    first_row_ = row;
}

}  // namespace rsi
