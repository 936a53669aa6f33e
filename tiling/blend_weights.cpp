#include "tiling/blend_weights.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "tiling/error.hpp"

namespace rsi {

BlendKind parse_blend_kind(std::string_view text) {
    if (text == "hann") return BlendKind::hann;
    if (text == "gaussian") return BlendKind::gaussian;
    if (text == "spline") return BlendKind::spline;
    if (text == "linear") return BlendKind::linear;
    if (text == "average") return BlendKind::average;
    if (text == "center") return BlendKind::center;
    throw usage_error("--blend: unknown blending '" + std::string(text) +
                      "' (expected hann, gaussian, spline, linear, average or center)");
}

const char* to_string(BlendKind kind) {
    switch (kind) {
        case BlendKind::hann: return "hann";
        case BlendKind::gaussian: return "gaussian";
        case BlendKind::spline: return "spline";
        case BlendKind::linear: return "linear";
        case BlendKind::average: return "average";
        case BlendKind::center: return "center";
    }
    return "?";
}

namespace {

// Tapers never reach exactly zero, so a pixel seen only near tile edges still has weight.
constexpr float kFloor = 1e-6f;

// The rising taper over t in [0, 1], complementary: taper(t) + taper(1 - t) = 1.
double taper(BlendKind kind, double t) {
    switch (kind) {
        case BlendKind::hann: {
            const double s = std::sin(M_PI / 2 * t);
            return s * s;
        }
        case BlendKind::gaussian:
            return 0.5 * (1 + std::erf((t - 0.5) * 6.0 / std::sqrt(2.0)));
        case BlendKind::spline:
            return t < 0.5 ? 2 * t * t : 1 - 2 * (1 - t) * (1 - t);
        default:
            return t;
    }
}

}  // namespace

std::vector<float> blend_profile(BlendKind kind, int64_t length, int64_t overlap, int64_t halo, bool flat_start,
                                 bool flat_end) {
    std::vector<float> w(static_cast<size_t>(length), 1.0f);
    if (kind == BlendKind::average || overlap <= 0) return w;
    if (kind == BlendKind::center) {
        const int64_t lo = flat_start ? 0 : overlap / 2;
        const int64_t hi = flat_end ? length : length - (overlap - overlap / 2);
        for (int64_t i = 0; i < length; ++i) w[static_cast<size_t>(i)] = (i >= lo && i < hi) ? 1.0f : 0.0f;
        return w;
    }
    // Within the overlap zone: `margin` pixels next to the edge (the halo, as far as the overlap
    // allows) get ~0, then the taper rises over the rest of the zone.
    const int64_t margin = std::max<int64_t>(0, std::min(halo, (overlap - 1) / 2));
    const int64_t ramp = overlap - 2 * margin;
    auto edge_weight = [&](int64_t d) {  // d: pixels from the tile edge
        if (d < margin) return kFloor;
        if (d >= overlap - margin) return 1.0f;
        const double t = (static_cast<double>(d - margin) + 0.5) / static_cast<double>(ramp);
        return std::max(kFloor, static_cast<float>(taper(kind, t)));
    };
    for (int64_t d = 0; d < std::min(overlap, length); ++d) {
        if (!flat_start) w[static_cast<size_t>(d)] = std::min(w[static_cast<size_t>(d)], edge_weight(d));
        if (!flat_end) w[static_cast<size_t>(length - 1 - d)] = std::min(w[static_cast<size_t>(length - 1 - d)], edge_weight(d));
    }
    return w;
}

std::vector<float> blend_weights(BlendKind kind, int64_t tile_height, int64_t tile_width, int64_t overlap, int64_t halo,
                                 bool flat_top, bool flat_bottom, bool flat_left, bool flat_right) {
    const auto rows = blend_profile(kind, tile_height, overlap, halo, flat_top, flat_bottom);
    const auto cols = blend_profile(kind, tile_width, overlap, halo, flat_left, flat_right);
    std::vector<float> w(static_cast<size_t>(tile_height * tile_width));
    for (int64_t y = 0; y < tile_height; ++y)
        for (int64_t x = 0; x < tile_width; ++x)
            w[static_cast<size_t>(y * tile_width + x)] = rows[static_cast<size_t>(y)] * cols[static_cast<size_t>(x)];
    return w;
}

}  // namespace rsi
