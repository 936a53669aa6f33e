#pragma once
// The tile grid: every window rsi reads comes from here, in a deterministic row-major order.
#include <cstdint>
#include <string>
#include <string_view>

#include "tiling/pixel_window.hpp"

namespace rsi {

// What happens where the last tile of a row or column would cross the image border.
enum class EdgePolicy {
    shift,     // move the last tile inward so it ends at the border (no padding unless the image is smaller than a tile)
    reflect,   // keep the regular lattice and fill outside pixels by mirroring (reflect-101)
    constant,  // keep the regular lattice and fill outside pixels with a constant
};

EdgePolicy parse_edge_policy(std::string_view text);  // throws usage Error
const char* to_string(EdgePolicy policy);

struct GridSpec {
    int64_t tile_width = 512;
    int64_t tile_height = 512;
    int64_t overlap = 0;  // pixels shared by neighbouring tiles; stride = tile - overlap
    int64_t overlap_y = -1;  // rows shared by vertical neighbours when it differs (-1: overlap)
    EdgePolicy edge = EdgePolicy::shift;
    int64_t align = 1;  // tile origins are multiples of this (a model's output stride)
    // With the shift policy: spread the last tile row's move over all tile rows (equal row strides,
    // none longer than tile - overlap) instead of moving only the last row. Segmentation uses it so
    // that two consecutive tile rows never share more than about `overlap` rows: its accumulator keeps
    // the shared rows at full image width (the moved last row alone shared up to a whole tile height).
    bool spread_rows = false;
};

struct Tile {
    int64_t index = 0;  // row * cols + col
    int64_t row = 0;
    int64_t col = 0;
    PixelWindow window;  // what is read; may extend beyond the image (padding)
    PixelWindow valid;   // window ∩ image
    std::string id() const { return "r" + std::to_string(row) + "_c" + std::to_string(col); }
};

class TileGrid {
public:
    // Throws a usage Error for sizes, overlaps or alignments that make no sense.
    TileGrid(int64_t image_width, int64_t image_height, const GridSpec& spec);

    int64_t rows() const { return rows_; }
    int64_t cols() const { return cols_; }
    int64_t count() const { return rows_ * cols_; }
    int64_t stride_x() const { return spec_.tile_width - spec_.overlap; }
    int64_t stride_y() const { return spec_.tile_height - overlap_y(); }
    int64_t overlap_y() const { return spec_.overlap_y >= 0 ? spec_.overlap_y : spec_.overlap; }
    int64_t image_width() const { return width_; }
    int64_t image_height() const { return height_; }
    const GridSpec& spec() const { return spec_; }

    Tile at(int64_t row, int64_t col) const;
    Tile at(int64_t index) const { return at(index / cols_, index % cols_); }

    // Union of the windows of one tile row (what a strip reader reads once for the whole row).
    PixelWindow row_span(int64_t row) const;

    // Tile pixels processed / image pixels: the cost of overlap and padding.
    double overlap_factor() const;

private:
    int64_t origin(int64_t index, int64_t count, int64_t stride, int64_t tile, int64_t extent) const;
    int64_t row_origin(int64_t row) const;

    int64_t width_, height_;
    GridSpec spec_;
    int64_t rows_ = 0, cols_ = 0;
};

}  // namespace rsi
