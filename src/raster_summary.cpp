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

std::string truncated_geotiff_problem(GDALDataset& dataset, const std::string& path) {
    if (!dataset.GetDriver() || std::string(dataset.GetDriver()->GetDescription()) != "GTiff" || path.rfind("/vsi", 0) == 0) return "";
    VSIStatBufL stat;
    if (VSIStatL(path.c_str(), &stat) != 0) return "";
    const auto file_size = static_cast<unsigned long long>(stat.st_size);
    unsigned long long end = 0;
    for (int b = 1; b <= dataset.GetRasterCount(); ++b) {
        GDALRasterBand* band = dataset.GetRasterBand(b);
        int block_x = 0, block_y = 0;
        band->GetBlockSize(&block_x, &block_y);
        const int columns = (dataset.GetRasterXSize() + block_x - 1) / block_x, rows = (dataset.GetRasterYSize() + block_y - 1) / block_y;
        for (const auto& [x, y] : {std::pair{0, 0}, std::pair{columns - 1, rows - 1}}) {
            const std::string at = std::to_string(x) + "_" + std::to_string(y);
            const char* offset = band->GetMetadataItem(("BLOCK_OFFSET_" + at).c_str(), "TIFF");
            const char* size = band->GetMetadataItem(("BLOCK_SIZE_" + at).c_str(), "TIFF");
            if (!offset || !size) continue;
            const unsigned long long o = std::strtoull(offset, nullptr, 10), n = std::strtoull(size, nullptr, 10);
            if (o > 0) end = std::max(end, o + n);  // offset 0: a sparse block, not written
        }
    }
    if (end <= file_size) return "";
    return "is truncated: its blocks reach byte " + std::to_string(end) + " but the file has " + std::to_string(file_size) +
           " bytes (a copy cut short?); reading its pixels will fail";
}

RasterSummary summarize_raster(const std::string& path, const GridSpec& grid) {
    const RasterSource source = RasterSource::open(path);
    RasterSummary summary;
    summary.info = source.info();
    if (const std::string problem = truncated_geotiff_problem(source.dataset(), path); !problem.empty()) {
        summary.warnings.push_back(problem);
    }
    summary.ground_pixel = ground_pixel_size(summary.info);
    summary.plan = plan_tiling(summary.info.width, summary.info.height, grid);
    return summary;
}

}  // namespace rsi
