#include "tiling/warped_vrt.hpp"

#include <algorithm>
#include <cmath>
#include <cpl_minixml.h>
#include <cpl_string.h>
#include <gdal_utils.h>
#include <vector>

#include "tiling/error.hpp"
#include "tiling/gdal_dataset.hpp"

namespace rsi {

int warped_block_side(double source_pixels_per_pixel, int64_t bytes_per_source_pixel, int64_t block_read_bytes) {
    const double per_pixel = std::max(1.0, source_pixels_per_pixel) * static_cast<double>(std::max<int64_t>(1, bytes_per_source_pixel));
    if (512.0 * 128.0 * per_pixel <= static_cast<double>(block_read_bytes)) return 0;
    int side = 256;
    while (side > 8 && static_cast<double>(side) * side * per_pixel > static_cast<double>(block_read_bytes)) side /= 2;
    return side;
}

namespace {

// Source pixels behind one pixel of the warped grid: from the pixel sizes on a shared CRS, else from
// the pixel counts (a reprojection's units differ; the extents roughly agree).
double source_pixels_per_pixel(GDALDataset& in, const RasterInfo& grid, int64_t width, int64_t height, bool to_grid_crs) {
    double g[6];
    const auto& t = grid.geotransform;
    if (!to_grid_crs && in.GetGeoTransform(g) == CE_None && width > 0 && height > 0) {
        const double source_area = std::abs(g[1] * g[5] - g[2] * g[4]);
        const double target_area = std::abs(t[1] * t[5] - t[2] * t[4]) * static_cast<double>(grid.width) * static_cast<double>(grid.height) /
                                   (static_cast<double>(width) * static_cast<double>(height));
        if (source_area > 0 && target_area > 0) return target_area / source_area;
    }
    return static_cast<double>(in.GetRasterXSize()) * in.GetRasterYSize() / std::max(1.0, static_cast<double>(width) * static_cast<double>(height));
}

}  // namespace

void set_warped_vrt_block_size(const std::string& path, int block_width, int block_height) {
    CPLXMLNode* root = CPLParseXMLFile(path.c_str());
    if (!root) throw Error(path + ": cannot read back the warped VRT");
    bool done = false;
    for (CPLXMLNode* node = root; node; node = node->psNext) {
        if (node->eType != CXT_Element || !EQUAL(node->pszValue, "VRTDataset")) continue;
        CPLSetXMLValue(node, "BlockXSize", std::to_string(block_width).c_str());
        CPLSetXMLValue(node, "BlockYSize", std::to_string(block_height).c_str());
        done = true;
    }
    const bool written = done && CPLSerializeXMLTreeToFile(root, path.c_str());
    CPLDestroyXMLNode(root);
    if (!written) throw Error(path + ": cannot set the warped VRT's block size");
}

void warp_to_vrt(const std::string& source, const std::string& target, const RasterInfo& grid, int64_t width, int64_t height,
                 const char* resampling, const char* nodata, bool to_grid_crs, const std::string& purpose, int64_t block_read_bytes,
                 bool outside_invalid) {
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
    DatasetPtr in = open_raster(source);
    // Float bands without a declared nodata value hold NaN where there is no data (rsi reads them so):
    // declared to the warper, each band's NaNs are left out of the kernels, where they spread into the
    // valid neighbours (a NaN block came back a pixel or two larger, its edge lost to nodata).
    // Only when no band declares a nodata value or mask of its own, which "nan" would replace.
    bool float_all_valid = !nodata && in->GetRasterCount() > 0;
    for (int b = 1; float_all_valid && b <= in->GetRasterCount(); ++b) {
        GDALRasterBand* band = in->GetRasterBand(b);
        float_all_valid = GDALDataTypeIsFloating(band->GetRasterDataType()) && (band->GetMaskFlags() & GMF_ALL_VALID);
    }
    if (float_all_valid) {
        nodata = "nan";
        for (const char* a : {"-wo", "UNIFIED_SRC_NODATA=NO"}) args.emplace_back(a);
    }
    if (nodata) {
        for (const char* a : {"-srcnodata", nodata, "-dstnodata", nodata}) args.emplace_back(a);
    }
    // A mask band (internal or .msk) marks pixels without data, but a warp keeps it only as an alpha
    // band: without one, masked pixels came out as valid zeros (black, and segmented).
    if (in->GetRasterCount() > 0) {
        const int flags = in->GetRasterBand(1)->GetMaskFlags();
        if ((flags & GMF_PER_DATASET) && !(flags & (GMF_ALPHA | GMF_NODATA | GMF_ALL_VALID)) && !nodata) {
            args.emplace_back("-dstalpha");
        } else if (outside_invalid && (flags & GMF_ALL_VALID) && !nodata) {
            // Every source pixel is valid, so only an alpha band can tell the grid's pixels beyond the
            // source (zeros otherwise, indistinguishable from class 0) from those it covers.
            args.emplace_back("-dstalpha");
        }
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
    int64_t bytes_per_source_pixel = 1;  // the mask the warper builds
    for (int b = 1; b <= in->GetRasterCount(); ++b) bytes_per_source_pixel += GDALGetDataTypeSizeBytes(in->GetRasterBand(b)->GetRasterDataType());
    const int side = warped_block_side(source_pixels_per_pixel(*in, grid, width, height, to_grid_crs), bytes_per_source_pixel, block_read_bytes);
    if (side > 0) {
        out.reset();  // writes the VRT
        set_warped_vrt_block_size(target, side, side);
    }
}

}  // namespace rsi
