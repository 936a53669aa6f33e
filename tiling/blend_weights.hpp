#pragma once
// Weights for blending overlapping tile predictions. A tile's 2-D weight is the outer product of two
// 1-D profiles. The smooth kinds taper only across the overlap zone, and skip the model's halo (the
// pixels next to a tile edge, whose receptive field reaches past the tile): there the weight is ~0
// and the neighbour, for which they are interior, decides. The rising taper f is complementary
// (f(t) + f(1 - t) = 1), so neighbours on the regular lattice sum to exactly 1. Sides that touch the
// image border are not tapered, so after normalising by the summed weights every output pixel is a
// proper weighted mean, borders and corners included.
#include <cstdint>
#include <string_view>
#include <vector>

namespace rsi {

enum class BlendKind {
    hann,      // raised-cosine taper sin²(πt/2)
    gaussian,  // Gaussian-CDF taper (sigma = 1/6 of the taper)
    spline,    // quadratic smoothstep taper (2t², then 1 - 2(1 - t)²)
    linear,    // straight ramp
    average,   // every prediction counts the same
    center,    // keep only the inner part of each tile (each pixel from the tile that owns it)
};

BlendKind parse_blend_kind(std::string_view text);  // throws usage Error
const char* to_string(BlendKind kind);

// Weights along one axis of a tile of `length` pixels sharing `overlap` pixels with each neighbour,
// for a model whose receptive-field half-width is `halo` pixels. `flat_start` / `flat_end`: that
// side lies on the image border and keeps full weight.
std::vector<float> blend_profile(BlendKind kind, int64_t length, int64_t overlap, int64_t halo, bool flat_start,
                                 bool flat_end);

// Row-major tile_height x tile_width weights.
std::vector<float> blend_weights(BlendKind kind, int64_t tile_height, int64_t tile_width, int64_t overlap, int64_t halo,
                                 bool flat_top, bool flat_bottom, bool flat_left, bool flat_right);

}  // namespace rsi
