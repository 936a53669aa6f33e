#pragma once
// What `rsi info` reports: the raster's description and the tiling plan for a grid spec.
#include <optional>
#include <string>
#include <vector>

#include "tiling/ground_distance.hpp"
#include "tiling/raster_source.hpp"
#include "tiling/tile_grid.hpp"

namespace rsi {

struct TilingPlan {
    GridSpec spec;
    int64_t rows = 0, cols = 0, tiles = 0;
    int64_t stride_x = 0, stride_y = 0;
    double overlap_factor = 0;  // tile pixels processed / image pixels
};

struct RasterSummary {
    RasterInfo info;
    std::optional<GroundPixelSize> ground_pixel;  // metres; empty without georeferencing
    bool ground_on_ellipsoid = false;             // a projection far from true scale, measured on its ellipsoid
    TilingPlan plan;
    std::vector<std::string> warnings;  // e.g. a GeoTIFF whose blocks reach past the end of the file
};

RasterSummary summarize_raster(const std::string& path, const GridSpec& grid);
TilingPlan plan_tiling(int64_t width, int64_t height, const GridSpec& grid);

}  // namespace rsi
