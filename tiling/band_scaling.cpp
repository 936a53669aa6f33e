#include "tiling/band_scaling.hpp"

#include <cpl_vsi.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "tiling/error.hpp"

namespace rsi {

namespace {

std::vector<double> parse_numbers(std::string_view text, std::string_view whole) {
    std::vector<double> values;
    std::string token;
    std::stringstream stream{std::string(text)};
    while (std::getline(stream, token, ',')) {
        char* end = nullptr;
        const double v = std::strtod(token.c_str(), &end);
        if (token.empty() || end != token.c_str() + token.size() || !std::isfinite(v)) {
            throw usage_error("--scale: '" + std::string(whole) + "' has a value that is not a number");
        }
        values.push_back(v);
    }
    return values;
}

}  // namespace

ScalingSpec parse_scaling(std::string_view text) {
    const size_t colon = text.find(':');
    const std::string_view name = text.substr(0, colon);
    const std::string_view args = colon == std::string_view::npos ? std::string_view{} : text.substr(colon + 1);
    ScalingSpec spec;
    if (name == "none" && colon == std::string_view::npos) return spec;
    if (name == "minmax" && colon == std::string_view::npos) {
        spec.method = ScalingMethod::minmax;
        return spec;
    }
    if (name == "percentile") {
        spec.method = ScalingMethod::percentile;
        if (colon == std::string_view::npos) return spec;
        const auto v = parse_numbers(args, text);
        if (v.size() != 2 || v[0] < 0 || v[1] > 100 || v[0] >= v[1]) {
            throw usage_error("--scale: '" + std::string(text) +
                              "' needs two percentiles low < high in [0,100], e.g. percentile:2,98");
        }
        spec.low_percent = v[0];
        spec.high_percent = v[1];
        return spec;
    }
    if (name == "fixed" && colon != std::string_view::npos) {
        const auto v = parse_numbers(args, text);
        if (v.empty() || v.size() > 2 || v[0] == 0) {
            throw usage_error("--scale: '" + std::string(text) + "' needs fixed:SCALE[,OFFSET] with SCALE != 0");
        }
        spec.method = ScalingMethod::fixed;
        spec.scale = v[0];
        spec.offset = v.size() > 1 ? v[1] : 0;
        return spec;
    }
    throw usage_error("--scale: unknown scaling '" + std::string(text) +
                      "' (expected none, minmax, percentile[:LOW,HIGH] or fixed:SCALE[,OFFSET])");
}

std::string to_string(const ScalingSpec& spec) {
    std::ostringstream out;
    switch (spec.method) {
        case ScalingMethod::none: out << "none"; break;
        case ScalingMethod::minmax: out << "minmax"; break;
        case ScalingMethod::percentile: out << "percentile:" << spec.low_percent << "," << spec.high_percent; break;
        case ScalingMethod::fixed: out << "fixed:" << spec.scale << "," << spec.offset; break;
    }
    return out.str();
}

namespace {

double percentile_of(std::vector<float>& values, double percent) {
    if (values.empty()) return 0;
    const double position = percent / 100.0 * static_cast<double>(values.size() - 1);
    const auto lower = static_cast<size_t>(std::floor(position));
    const size_t upper = std::min(lower + 1, values.size() - 1);
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(lower), values.end());
    const double a = values[lower];
    if (upper == lower) return a;
    const double b = *std::min_element(values.begin() + static_cast<std::ptrdiff_t>(upper), values.end());
    return a + (b - a) * (position - static_cast<double>(lower));
}

// Windows spread evenly over the image, aligned to the block grid, covering about `budget` pixels.
std::vector<PixelWindow> sample_windows(const RasterInfo& info, int64_t budget) {
    if (info.width * info.height <= budget) {
        std::vector<PixelWindow> strips;  // whole image, in strips to keep buffers small
        const int64_t rows = std::max<int64_t>(1, budget / std::max<int64_t>(1, info.width) / 4);
        for (int64_t y = 0; y < info.height; y += rows) {
            strips.push_back({0, y, info.width, std::min(rows, info.height - y)});
        }
        return strips;
    }
    const int64_t side = std::clamp<int64_t>(std::max(info.block_width, info.block_height), 64, 256);
    const int64_t win_w = std::min(side, info.width), win_h = std::min(side, info.height);
    const int64_t count = std::max<int64_t>(1, budget / (win_w * win_h));
    const auto per_axis = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(count))));
    std::vector<PixelWindow> windows;
    for (int64_t j = 0; j < per_axis; ++j) {
        for (int64_t i = 0; i < per_axis; ++i) {
            int64_t x = (info.width - win_w) * (2 * i + 1) / (2 * per_axis);
            int64_t y = (info.height - win_h) * (2 * j + 1) / (2 * per_axis);
            if (info.block_width > 0 && info.block_width < info.width) x -= x % info.block_width;
            if (info.block_height > 0 && info.block_height < info.height) y -= y % info.block_height;
            windows.push_back({x, y, win_w, win_h});
        }
    }
    return windows;
}

// `per_axis` x `per_axis` windows of `side` pixels centred on a regular lattice (not block-aligned:
// several would fall on one block origin).
std::vector<PixelWindow> lattice_windows(const RasterInfo& info, int64_t per_axis, int64_t side) {
    const int64_t win_w = std::min(side, info.width), win_h = std::min(side, info.height);
    std::vector<PixelWindow> windows;
    for (int64_t j = 0; j < per_axis; ++j) {
        for (int64_t i = 0; i < per_axis; ++i) {
            windows.push_back({(info.width - win_w) * (2 * i + 1) / (2 * per_axis), (info.height - win_h) * (2 * j + 1) / (2 * per_axis),
                               win_w, win_h});
        }
    }
    return windows;
}

}  // namespace

std::vector<BandStatistics> sample_band_statistics(const RasterSource& source, const std::vector<int>& bands,
                                                   double low_percent, double high_percent, int64_t max_samples) {
    source.check_bands(bands);
    const RasterInfo& info = source.info();
    std::vector<std::vector<float>> values(bands.size());
    const auto read = [&](const std::vector<PixelWindow>& windows) {
        for (const PixelWindow& w : windows) {
            std::vector<float> data = source.read_float(w, bands);
            std::vector<uint8_t> valid(static_cast<size_t>(w.area()));
            source.read_validity(w, bands, valid.data());
            for (size_t b = 0; b < bands.size(); ++b) {
                const float* band = data.data() + b * static_cast<size_t>(w.area());
                for (int64_t i = 0; i < w.area(); ++i) {
                    if (valid[i] && std::isfinite(band[i])) values[b].push_back(band[i]);
                }
            }
        }
    };
    read(sample_windows(info, max_samples));
    // A mostly-empty image: the few large windows can all miss its data (4 windows of 256² found no
    // valid pixel in an 8000² image that was 4 % data, and every pixel was stretched to one value).
    // Finer lattices of small windows follow until each band has enough samples; an image read whole
    // by the first pass has nothing more to give.
    const int64_t enough = std::clamp<int64_t>(max_samples / 64, 1, 4096);
    const auto short_of_samples = [&] {
        return std::any_of(values.begin(), values.end(), [&](const auto& v) { return static_cast<int64_t>(v.size()) < enough; });
    };
    if (info.width * info.height > max_samples) {
        // (A remote image stops at the first: the finest lattice touches nearly every block, a download
        // of the whole image.)
        const bool local = VSIIsLocal(info.path.c_str());
        for (const auto& [per_axis, side] : {std::pair<int64_t, int64_t>{32, 32}, {128, 16}}) {
            if (!short_of_samples() || (!local && per_axis > 32)) break;
            read(lattice_windows(info, per_axis, side));
        }
    }
    std::vector<BandStatistics> stats(bands.size());
    for (size_t b = 0; b < bands.size(); ++b) {
        auto& v = values[b];
        BandStatistics& s = stats[b];
        s.samples = static_cast<int64_t>(v.size());
        if (v.empty()) continue;
        const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
        s.min = *lo;
        s.max = *hi;
        double sum = 0, sum_sq = 0;
        for (float x : v) {
            sum += x;
            sum_sq += static_cast<double>(x) * x;
        }
        s.mean = sum / static_cast<double>(v.size());
        s.stddev = std::sqrt(std::max(0.0, sum_sq / static_cast<double>(v.size()) - s.mean * s.mean));
        s.low = percentile_of(v, low_percent);
        s.high = percentile_of(v, high_percent);
    }
    return stats;
}

std::vector<LinearMap> scaling_maps(const ScalingSpec& spec, const std::vector<BandStatistics>& stats,
                                    size_t band_count, double out_min, double out_max) {
    std::vector<LinearMap> maps(band_count);
    if (spec.method == ScalingMethod::none) return maps;
    if (spec.method == ScalingMethod::fixed) {
        for (auto& m : maps) m = {spec.scale, spec.offset};
        return maps;
    }
    if (stats.size() != band_count) throw Error("scaling: statistics missing for some bands");
    for (size_t b = 0; b < band_count; ++b) {
        const double lo = spec.method == ScalingMethod::minmax ? stats[b].min : stats[b].low;
        const double hi = spec.method == ScalingMethod::minmax ? stats[b].max : stats[b].high;
        if (stats[b].samples == 0) {
            maps[b] = {1, 0};  // no valid pixel found to stretch from: values as they are (callers warn)
        } else if (hi > lo) {
            const double scale = (out_max - out_min) / (hi - lo);
            maps[b] = {scale, out_min - lo * scale};
        } else {
            maps[b] = {0, out_min};  // a constant band maps to the bottom of the range
        }
    }
    return maps;
}

void Normalizer::apply(float* data, size_t bands, int64_t pixels) const {
    for (size_t b = 0; b < bands; ++b) apply_band(b, data + b * static_cast<size_t>(pixels), pixels);
}

void Normalizer::apply_band(size_t band, float* values, int64_t count) const {
    const LinearMap map = band < scaling.size() ? scaling[band] : LinearMap{};
    const double mu = band < mean.size() ? mean[band] : 0.0;
    const double sigma = band < std.size() ? std[band] : 1.0;
    // Fold scaling and standardisation into one multiply-add per value.
    const auto a = static_cast<float>(map.scale / sigma);
    const auto c = static_cast<float>((map.offset - mu) / sigma);
    if (clamp) {
        const auto lo = static_cast<float>((clamp_min - mu) / sigma), hi = static_cast<float>((clamp_max - mu) / sigma);
        for (int64_t i = 0; i < count; ++i) values[i] = std::clamp(values[i] * a + c, lo, hi);
    } else {
        for (int64_t i = 0; i < count; ++i) values[i] = values[i] * a + c;
    }
}

}  // namespace rsi
