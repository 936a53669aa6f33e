#include "src/raster_summary.hpp"

#include <algorithm>
#include <cstdlib>
#include <utility>

#include <cpl_vsi.h>
#include <gdal_priv.h>

namespace rsi {

TilingPlan plan_tiling(int64_t width, int64_t height, const GridSpec& grid) {
    const TileGrid tiles(width, height, grid);
    TilingPlan plan;
    plan.spec = grid;
    plan.rows = tiles.rows();
    plan.cols = tiles.cols();
    plan.tiles = tiles.count();
    plan.stride_x = tiles.stride_x();
    plan.stride_y = tiles.stride_y();
    plan.overlap_factor = tiles.overlap_factor();
    return plan;
}

RasterSummary summarize_raster(const std::string& path, const GridSpec& grid) {
    const RasterSource source = RasterSource::open(path);
    RasterSummary summary;
    summary.info = source.info();
    if (const std::string problem = truncated_geotiff_problem(source.dataset(), path); !problem.empty()) {
        summary.warnings.push_back(problem + "; reading its pixels will fail");
    }
    summary.ground_pixel = ground_pixel_size(summary.info);
    summary.ground_on_ellipsoid = measured_on_ellipsoid(summary.info);
    summary.plan = plan_tiling(summary.info.width, summary.info.height, grid);
    return summary;
}

}  // namespace rsi
