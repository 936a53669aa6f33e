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

// Smooth windows never reach exactly zero, so a pixel seen only near tile edges still has weight.
constexpr float kFloor = 1e-3f;

float window_value(BlendKind kind, double position, int64_t length) {
    // position in (0, length): pixel centre; x = distance from the tile centre, 0..1
    const double x = std::abs(2.0 * position / static_cast<double>(length) - 1.0);
    switch (kind) {
        case BlendKind::hann: {
            const double s = std::sin(M_PI * position / static_cast<double>(length));
            return static_cast<float>(s * s);
        }
        case BlendKind::gaussian: {
            const double sigma = 0.25;  // in units of the half length: length / 8
            return static_cast<float>(std::exp(-0.5 * (x / sigma) * (x / sigma)));
        }
        case BlendKind::spline:
            return static_cast<float>(x <= 0.5 ? 1.0 - 2.0 * x * x : 2.0 * (1.0 - x) * (1.0 - x));
        default:
            return 1.0f;
    }
}

}  // namespace

std::vector<float> blend_profile(BlendKind kind, int64_t length, int64_t overlap, bool flat_start, bool flat_end) {
    std::vector<float> w(static_cast<size_t>(length), 1.0f);
    const auto n = static_cast<size_t>(length);
    switch (kind) {
        case BlendKind::average:
            break;
        case BlendKind::center: {
            const int64_t lo = flat_start ? 0 : overlap / 2;
            const int64_t hi = flat_end ? length : length - (overlap - overlap / 2);
            for (int64_t i = 0; i < length; ++i) w[static_cast<size_t>(i)] = (i >= lo && i < hi) ? 1.0f : 0.0f;
            break;
        }
        case BlendKind::linear:
            for (int64_t i = 0; i < overlap && i < length; ++i) {
                const float ramp = static_cast<float>((static_cast<double>(i) + 0.5) / static_cast<double>(overlap));
                if (!flat_start) w[static_cast<size_t>(i)] = std::min(w[static_cast<size_t>(i)], ramp);
                if (!flat_end) w[n - 1 - static_cast<size_t>(i)] = std::min(w[n - 1 - static_cast<size_t>(i)], ramp);
            }
            break;
        default: {
            for (size_t i = 0; i < n; ++i) {
                w[i] = std::max(kFloor, window_value(kind, static_cast<double>(i) + 0.5, length));
            }
            // A side on the image border keeps the peak weight from the centre outwards.
            const size_t mid = n / 2;
            if (flat_start) std::fill(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(mid), w[mid]);
            if (flat_end) std::fill(w.begin() + static_cast<std::ptrdiff_t>(mid), w.end(), w[mid]);
            break;
        }
    }
    return w;
}

std::vector<float> blend_weights(BlendKind kind, int64_t tile_height, int64_t tile_width, int64_t overlap,
                                 bool flat_top, bool flat_bottom, bool flat_left, bool flat_right) {
    const auto rows = blend_profile(kind, tile_height, overlap, flat_top, flat_bottom);
    const auto cols = blend_profile(kind, tile_width, overlap, flat_left, flat_right);
    std::vector<float> w(static_cast<size_t>(tile_height * tile_width));
    for (int64_t y = 0; y < tile_height; ++y)
        for (int64_t x = 0; x < tile_width; ++x)
            w[static_cast<size_t>(y * tile_width + x)] = rows[static_cast<size_t>(y)] * cols[static_cast<size_t>(x)];
    return w;
}

}  // namespace rsi
