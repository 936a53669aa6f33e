#pragma once
// A virtual warp (gdalwarp -of VRT, typically to /vsimem/): pixels are computed block by block as
// they are read, so an image can be read on another grid without a copy of it.
#include <string>

#include "tiling/raster_source.hpp"

namespace rsi {

// Warps `source` into the VRT `target` covering the extent of `grid` with width x height pixels,
// resampled with `resampling` (gdalwarp -r); `nodata` (or nullptr) becomes -srcnodata/-dstnodata;
// `to_grid_crs` reprojects into the grid's CRS. Errors read "<source>: <purpose> failed: <GDAL's reason>".
// GDAL warps a VRT one whole block at a time, reading the block's entire source window at once (a
// 512x128 block of a 75x reduction is 38400x9600 source pixels): the VRT's blocks are made small
// enough that one block's source window takes at most about `block_read_bytes`. With `outside_invalid`
// the grid's pixels beyond the source are masked (nodata or an alpha band), never valid zeros.
void warp_to_vrt(const std::string& source, const std::string& target, const RasterInfo& grid, int64_t width, int64_t height,
                 const char* resampling, const char* nodata, bool to_grid_crs, const std::string& purpose,
                 int64_t block_read_bytes = int64_t{32} << 20, bool outside_invalid = false);

// Sets the block size a warped VRT declares (gdalwarp -of VRT ignores -co BLOCKXSIZE): blocks as tall
// as the rows a reader takes at once are warped once each even when a row of them outgrows the cache.
void set_warped_vrt_block_size(const std::string& path, int block_width, int block_height);

// The block side (square, a power of two from 8 to 256) whose source window of `source_pixels_per_pixel`
// source pixels per VRT pixel, at `bytes_per_source_pixel`, fits `block_read_bytes`; 0 when GDAL's
// default 512x128 blocks fit.
int warped_block_side(double source_pixels_per_pixel, int64_t bytes_per_source_pixel, int64_t block_read_bytes);

}  // namespace rsi
