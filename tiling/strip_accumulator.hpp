#pragma once
// Stitches overlapping tile predictions at memory that does not scale with a full tile row of floats.
// Tiles come in row-major order. The accumulator is cut into column chunks: a chunk the current tile
// row is still writing holds all its rows; once the tiles have moved past it, its finished rows
// (those no later tile row reaches) are normalised and handed out, and it keeps only the rows the next
// tile row will add to (the overlap band). So the floats held are about width x overlap rows plus a
// few chunks of a full tile height, instead of width x tile height.
#include <cstdint>
#include <functional>
#include <vector>

#include "tiling/pixel_window.hpp"
#include "tiling/recycle_bin.hpp"

namespace rsi {

class StripAccumulator {
public:
    // Finished pixels: image rows y .. y+rows, columns x .. x+width; `values` is channels x rows x
    // width (weighted means; 0 where nothing was added) and `weight` rows x width (0 = no data).
    // All spans of one release share y and rows, and come left to right.
    using Sink = std::function<void(int64_t y, int64_t rows, int64_t x, int64_t width, const float* values, const float* weight)>;

    // How the accumulated weight of a pixel is known.
    enum class Weights {
        stored,       // a plane of its own
        sum_of_values // the values are probabilities summing to 1, so their weighted sums add up to the
                      // weight: one plane fewer (a third less memory for two classes)
    };

    // Accumulates `channels` values for the image columns and rows of `region`, at most
    // `capacity_rows` rows (a tile's height) at a time, in chunks of `chunk_width` columns.
    StripAccumulator(int channels, const PixelWindow& region, int64_t capacity_rows, int64_t chunk_width = 256,
                     Weights weights = Weights::stored);

    // Adds a tile's values (channels x window.height x window.width) times `weights` (window.height x
    // window.width). Parts of the window outside the region are ignored.
    void add(const PixelWindow& window, const float* values, const float* weights);

    // No tile will add to the rows above `row` left of column `x` any more: hands out the finished
    // part of every chunk entirely left of `x`, and frees all but its overlap rows.
    void release_columns(int64_t row, int64_t x, const Sink& sink);

    // Rows above `row` will receive nothing more: hands out what is left of them (every column) and
    // moves on; the next tiles start at `row` or below.
    void release_until(int64_t row, const Sink& sink);

    int64_t next_row() const { return first_row_; }  // the first row not yet released
    int channels() const { return channels_; }
    // Float storage allocated so far; buffers are recycled, never freed, so this is also the peak.
    int64_t peak_bytes() const { return allocated_bytes_; }

private:
    struct Chunk {
        int64_t x = 0, width = 0;
        bool full = false;           // holds capacity rows from first_row_ (the current tile row)
        int64_t origin = 0;          // image row of data's first row
        int64_t rows = 0;            // rows held in data
        std::vector<float> data;     // planes_ planes of rows x width; with stored weights the last is the weight
    };
    void make_full(Chunk& chunk);
    void finish(Chunk& chunk, int64_t row, const Sink& sink);

    int channels_;
    bool weight_plane_;  // Weights::stored
    int planes_;         // channels, plus the weight plane when stored
    PixelWindow region_;
    int64_t capacity_;
    int64_t first_row_;
    std::vector<Chunk> chunks_;
    std::vector<float> released_, released_weight_;  // handed to the sink, reused
    RecycleBin<float> spare_full_, spare_kept_;  // the two buffer sizes circulate separately
    int64_t allocated_bytes_ = 0;
};

}  // namespace rsi
