#pragma once
// Stitches overlapping tile predictions at memory bounded by one tile row: holds only the rows that
// tiles can still touch, and hands finished rows out (normalised by their summed weights) as soon
// as the caller says no later tile reaches them.
#include <cstdint>
#include <functional>
#include <vector>

#include "tiling/pixel_window.hpp"

namespace rsi {

class StripAccumulator {
public:
    // Finished rows: `rows` rows starting at image row `y`; `values` is channels x rows x width
    // (weighted means; 0 where nothing was added) and `weight` rows x width (0 = no data).
    using Sink = std::function<void(int64_t y, int64_t rows, const float* values, const float* weight)>;

    // Accumulates `channels` values for the image columns and rows of `region`, at most
    // `capacity_rows` rows at a time.
    StripAccumulator(int channels, const PixelWindow& region, int64_t capacity_rows);

    // Adds a tile's values (channels x window.height x window.width) times `weights` (window.height x
    // window.width). Parts of the window outside the region are ignored.
    void add(const PixelWindow& window, const float* values, const float* weights);

    // Rows above `row` will receive nothing more: normalise them, pass them to `sink`, forget them.
    // With `chunk_rows` > 0 the sink gets them at most that many rows at a time (so the normalised
    // copy stays small however many rows a tile row finishes); 0 passes them in one call.
    void release_until(int64_t row, const Sink& sink, int64_t chunk_rows = 0);

    int64_t next_row() const { return first_row_; }  // the first row not yet released
    int channels() const { return channels_; }
    int64_t bytes() const { return static_cast<int64_t>((values_.size() + weights_.size()) * sizeof(float)); }

private:
    int channels_;
    PixelWindow region_;
    int64_t capacity_;
    int64_t first_row_;
    std::vector<float> values_;   // channels x capacity x width
    std::vector<float> weights_;  // capacity x width
    std::vector<float> released_;  // normalised rows handed to the sink, reused between calls
};

}  // namespace rsi
