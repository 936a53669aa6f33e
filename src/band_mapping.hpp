#pragma once
// How an image's bands become a model's input: which source bands, how raw values are brought into
// the model's data range (percentile stretch for UInt16 and the like), and the model's own
// scale/mean/std. Also the domain checks: pixel size, band count and radiometry far from what the
// model declares give a warning (or an error with `strict`).
#include <string>
#include <utility>
#include <vector>

#include "models/model_metadata.hpp"
#include "tiling/band_scaling.hpp"
#include "tiling/raster_source.hpp"

namespace rsi {

// Image pixels per model pixel along each axis on average (model GSD / the image's ground pixel
// size): how many image pixels a model pixel covers when reading at the model's pixel size; 1 where
// the image's ground pixel size is unknown.
double model_pixel_scale(const RasterInfo& info, const models::ModelMetadata& m);
// Per axis (x, y): different where the image's pixels are not square on the ground (more than 1 %
// apart: a geographic CRS away from the equator), so that a window of the model's size covers a square
// of ground; otherwise both model_pixel_scale.
std::pair<double, double> model_pixel_scales(const RasterInfo& info, const models::ModelMetadata& m);

// The colour a model channel's name stands for: "Red" for "red", "R" or Sentinel-2's "B04", likewise
// "Green" (B03) and "Blue" (B02); "" when it names none.
std::string channel_colour(std::string name);

struct BandMapping {
    std::vector<int> source_bands;  // 1-based, one per model channel (repeated for a replicated band)
    Normalizer normalizer;          // raw values -> model input
    bool rescaled = false;          // a percentile/min-max stretch into the model's data range
    std::string rescale = "none";   // as reported: "none", "percentile 2-98", "minmax"
    std::vector<std::string> warnings;
};

// `requested`: --bands from the user (empty: from the metadata). `command` prefixes messages.
// `resampled`: the caller reads at the model's pixel size, so a different image pixel size is fine.
BandMapping map_bands(const RasterSource& source, const models::ModelMetadata& model,
                      const std::vector<int>& requested, const std::string& command, bool strict,
                      bool resampled = false);

}  // namespace rsi
