#pragma once
// Bit depth and normalisation: per-band scaling of raw values into a target range (none, min–max,
// percentile stretch from sampled statistics, or a fixed scale/offset), then mean/std.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tiling/raster_source.hpp"

namespace rsi {

enum class ScalingMethod { none, minmax, percentile, fixed };

struct ScalingSpec {
    ScalingMethod method = ScalingMethod::none;
    double low_percent = 2;    // percentile method
    double high_percent = 98;
    double scale = 1;          // fixed method: value * scale + offset
    double offset = 0;
};

// "none", "minmax", "percentile", "percentile:2,98", "fixed:0.0039,0" (throws usage Error).
ScalingSpec parse_scaling(std::string_view text);
std::string to_string(const ScalingSpec& spec);

struct BandStatistics {
    double min = 0, max = 0;
    double low = 0, high = 0;  // the requested percentiles
    double mean = 0, stddev = 0;
    int64_t samples = 0;       // valid pixels looked at
};

// Statistics from a sample of windows spread over the image (never a full pass): about `max_samples`
// pixels per band, nodata and non-finite values excluded; where those hold few valid pixels (a
// mostly-empty image), finer lattices of small windows add up to ~5 M more. Deterministic. A band with
// no valid pixel found has samples == 0 (its statistics are zeros).
std::vector<BandStatistics> sample_band_statistics(const RasterSource& source, const std::vector<int>& bands,
                                                   double low_percent = 2, double high_percent = 98,
                                                   int64_t max_samples = 1 << 18);

// y = x * scale + offset
struct LinearMap {
    double scale = 1, offset = 0;
    double apply(double x) const { return x * scale + offset; }
};

// One map per band taking raw values to [out_min, out_max] as the spec says (`none` is identity,
// `fixed` ignores the range). Statistics are needed only for minmax and percentile.
std::vector<LinearMap> scaling_maps(const ScalingSpec& spec, const std::vector<BandStatistics>& stats,
                                    size_t band_count, double out_min, double out_max);

// The full per-band transform applied to float tiles: scale into range (optionally clamped), then
// (x - mean) / std.
struct Normalizer {
    std::vector<LinearMap> scaling;  // one per band
    bool clamp = false;
    double clamp_min = 0, clamp_max = 0;
    std::vector<float> mean;  // empty: 0
    std::vector<float> std;   // empty: 1

    // data is band-sequential with `pixels` values per band.
    void apply(float* data, size_t bands, int64_t pixels) const;
    // `count` values of band `band` (0-based) alone.
    void apply_band(size_t band, float* values, int64_t count) const;
};

}  // namespace rsi
