#pragma once
// Weights for blending overlapping tile predictions. A tile's 2-D weight is the outer product of two
// 1-D profiles. Sides that touch the image border are not tapered, so after normalising by the
// summed weights every output pixel is a proper weighted mean, borders and corners included.
#include <cstdint>
#include <string_view>
#include <vector>

namespace rsi {

enum class BlendKind {
    hann,      // sin² window over the whole tile
    gaussian,  // Gaussian window, sigma = tile / 8
    spline,    // piecewise-quadratic window (1 - 2x² inside, 2(1 - x)² outside the half radius)
    linear,    // ramps across the overlap zones, 1 elsewhere (neighbours sum to 1)
    average,   // every prediction counts the same
    center,    // keep only the inner part of each tile (each pixel from the tile that owns it)
};

BlendKind parse_blend_kind(std::string_view text);  // throws usage Error
const char* to_string(BlendKind kind);

// Weights along one axis of a tile of `length` pixels sharing `overlap` pixels with each neighbour.
// `flat_start` / `flat_end`: that side lies on the image border and keeps full weight.
std::vector<float> blend_profile(BlendKind kind, int64_t length, int64_t overlap, bool flat_start, bool flat_end);

// Row-major tile_height x tile_width weights.
std::vector<float> blend_weights(BlendKind kind, int64_t tile_height, int64_t tile_width, int64_t overlap,
                                 bool flat_top, bool flat_bottom, bool flat_left, bool flat_right);

}  // namespace rsi
