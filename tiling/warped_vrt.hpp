#pragma once
// A virtual warp (gdalwarp -of VRT, typically to /vsimem/): pixels are computed block by block as
// they are read, so an image can be read on another grid without a copy of it.
#include <string>

#include "tiling/raster_source.hpp"

namespace rsi {

// Warps `source` into the VRT `target` covering the extent of `grid` with width x height pixels,
// resampled with `resampling` (gdalwarp -r); `nodata` (or nullptr) becomes -srcnodata/-dstnodata;
// `to_grid_crs` reprojects into the grid's CRS. Errors read "<source>: <purpose> failed: <GDAL's reason>".
void warp_to_vrt(const std::string& source, const std::string& target, const RasterInfo& grid, int64_t width, int64_t height,
                 const char* resampling, const char* nodata, bool to_grid_crs, const std::string& purpose);

}  // namespace rsi
