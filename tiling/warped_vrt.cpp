#include "tiling/warped_vrt.hpp"

#include <algorithm>
#include <cpl_string.h>
#include <gdal_utils.h>
#include <vector>

#include "tiling/error.hpp"
#include "tiling/gdal_dataset.hpp"

namespace rsi {

void warp_to_vrt(const std::string& source, const std::string& target, const RasterInfo& grid, int64_t width, int64_t height,
                 const char* resampling, const char* nodata, bool to_grid_crs, const std::string& purpose) {
    const auto& g = grid.geotransform;
    const double x0 = g[0], x1 = g[0] + static_cast<double>(grid.width) * g[1];
    const double y0 = g[3] + static_cast<double>(grid.height) * g[5], y1 = g[3];
    std::vector<std::string> args{"-of", "VRT", "-te", std::to_string(std::min(x0, x1)), std::to_string(std::min(y0, y1)),
                                  std::to_string(std::max(x0, x1)), std::to_string(std::max(y0, y1)), "-ts",
                                  std::to_string(width), std::to_string(height), "-r", resampling};
    if (to_grid_crs && !grid.crs_wkt.empty()) {
        args.emplace_back("-t_srs");
        args.push_back(grid.crs_wkt);
    }
    if (nodata) {
        for (const char* a : {"-srcnodata", nodata, "-dstnodata", nodata}) args.emplace_back(a);
    }
    DatasetPtr in = open_raster(source);
    // A mask band (internal or .msk) marks pixels without data, but a warp keeps it only as an alpha
    // band: without one, masked pixels came out as valid zeros (black, and segmented).
    if (in->GetRasterCount() > 0) {
        const int flags = in->GetRasterBand(1)->GetMaskFlags();
        if ((flags & GMF_PER_DATASET) && !(flags & (GMF_ALPHA | GMF_NODATA | GMF_ALL_VALID)) && !nodata) args.emplace_back("-dstalpha");
    }
    CPLStringList argv;
    for (const auto& a : args) argv.AddString(a.c_str());
    GDALWarpAppOptions* warp = GDALWarpAppOptionsNew(argv.List(), nullptr);
    GDALDatasetH handle = GDALDataset::ToHandle(in.get());
    int usage = 0;
    CPLErrorReset();
    DatasetPtr out(GDALDataset::FromHandle(GDALWarp(target.c_str(), nullptr, 1, &handle, warp, &usage)));
    GDALWarpAppOptionsFree(warp);
    if (!out) throw Error(source + ": " + purpose + " failed: " + last_gdal_error());
}

}  // namespace rsi
