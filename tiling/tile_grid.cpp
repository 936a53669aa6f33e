#include "tiling/tile_grid.hpp"

#include <algorithm>

#include "tiling/error.hpp"

namespace rsi {

EdgePolicy parse_edge_policy(std::string_view text) {
    if (text == "shift") return EdgePolicy::shift;
    if (text == "reflect") return EdgePolicy::reflect;
    if (text == "constant") return EdgePolicy::constant;
    throw usage_error("--edge: unknown edge policy '" + std::string(text) +
                      "' (expected shift, reflect or constant)");
}

const char* to_string(EdgePolicy policy) {
    switch (policy) {
        case EdgePolicy::shift: return "shift";
        case EdgePolicy::reflect: return "reflect";
        case EdgePolicy::constant: return "constant";
    }
    return "?";
}

namespace {

int64_t count_along(int64_t extent, int64_t tile, int64_t stride) {
    if (extent <= tile) return 1;
    return (extent - tile + stride - 1) / stride + 1;  // enough tiles to reach the far border
}

int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

}  // namespace

TileGrid::TileGrid(int64_t image_width, int64_t image_height, const GridSpec& spec)
    : width_(image_width), height_(image_height), spec_(spec) {
    if (image_width <= 0 || image_height <= 0) {
        throw Error("tile grid: the image has no pixels (" + std::to_string(image_width) + "x" +
                    std::to_string(image_height) + ")");
    }
    if (spec.tile_width <= 0 || spec.tile_height <= 0) {
        throw usage_error("--tile-size: must be at least 1 pixel (got " + std::to_string(spec.tile_width) +
                          "x" + std::to_string(spec.tile_height) + ")");
    }
    if (spec.overlap < 0) {
        throw usage_error("--overlap: must not be negative (got " + std::to_string(spec.overlap) + ")");
    }
    if (spec.overlap_y < 0) {
        const int64_t smallest = std::min(spec.tile_width, spec.tile_height);
        if (spec.overlap >= smallest) {
            throw usage_error("--overlap " + std::to_string(spec.overlap) + " must be smaller than the tile size " +
                              std::to_string(smallest));
        }
    } else if (spec.overlap >= spec.tile_width || spec.overlap_y >= spec.tile_height) {
        throw usage_error("overlap " + std::to_string(spec.overlap) + "x" + std::to_string(spec.overlap_y) +
                          " must be smaller than the tile " + std::to_string(spec.tile_width) + "x" + std::to_string(spec.tile_height));
    }
    if (spec.align < 1) throw usage_error("tile alignment must be at least 1");
    if (stride_x() % spec.align != 0 || stride_y() % spec.align != 0) {
        throw usage_error("tile stride " + std::to_string(stride_x()) + "x" + std::to_string(stride_y()) +
                          " (tile size minus overlap) must be a multiple of the model's output stride " +
                          std::to_string(spec.align));
    }
    cols_ = count_along(width_, spec.tile_width, stride_x());
    rows_ = count_along(height_, spec.tile_height, stride_y());
}

int64_t TileGrid::origin(int64_t index, int64_t count, int64_t stride, int64_t tile, int64_t extent) const {
    const int64_t regular = index * stride;
    if (spec_.edge != EdgePolicy::shift || index != count - 1 || extent <= tile) return regular;
    // Last tile moved inward to end at the border; rounding up to the alignment keeps origins on the
    // model's output lattice at the cost of a few padded pixels.
    return std::min(regular, round_up(extent - tile, spec_.align));
}

int64_t TileGrid::row_origin(int64_t row) const {
    if (!spec_.spread_rows || spec_.edge != EdgePolicy::shift || rows_ < 2) {
        return origin(row, rows_, stride_y(), spec_.tile_height, height_);
    }
    const int64_t last = origin(rows_ - 1, rows_, stride_y(), spec_.tile_height, height_);
    // The last row's origin, in alignment units, shared out as evenly as whole units allow: steps
    // differ by at most one unit and none exceeds the regular stride (last <= (rows - 1) * stride).
    const int64_t units = last / spec_.align;
    return spec_.align * (row * units / (rows_ - 1));
}

Tile TileGrid::at(int64_t row, int64_t col) const {
    Tile t;
    t.row = row;
    t.col = col;
    t.index = row * cols_ + col;
    t.window = {origin(col, cols_, stride_x(), spec_.tile_width, width_),
                row_origin(row), spec_.tile_width, spec_.tile_height};
    t.valid = t.window.intersect({0, 0, width_, height_});
    return t;
}

PixelWindow TileGrid::row_span(int64_t row) const {
    const Tile first = at(row, 0), last = at(row, cols_ - 1);
    return {first.window.x, first.window.y, last.window.right() - first.window.x, first.window.height};
}

double TileGrid::overlap_factor() const {
    return static_cast<double>(count()) * static_cast<double>(spec_.tile_width * spec_.tile_height) /
           (static_cast<double>(width_) * static_cast<double>(height_));
}

}  // namespace rsi
