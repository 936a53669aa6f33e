#pragma once
// Fast writing of the many same-shaped, uncompressed GeoTIFF tiles of one tiling job.
//
// GDAL writes the first tile; every other tile of the job has the same size, bands, data type, CRS,
// nodata and creation options, so its file differs from that one only in the pixel strip and in the
// tie point (the tile's origin in map coordinates). Creating each tile through GDAL instead costs a
// driver probe, a block cache round trip and dozens of small writes per file: with ~1300 tiles of
// 512² that was most of `rsi tile`'s time. The template is only used after it has reproduced, byte
// for byte, the file GDAL writes for a second window; otherwise the caller keeps writing through GDAL.
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <gdal.h>

#include "tiling/pixel_window.hpp"

namespace rsi {

class GeoTiffTileTemplate {
public:
    // Writes one tile through GDAL to `gdal_path` (a /vsimem/ path here): `pixels` are band-sequential
    // (all of band 1, then band 2, ...), the window's width x height x bands values of `type`.
    using GdalTileWriter = std::function<void(const std::string& gdal_path, const PixelWindow& window, const void* pixels)>;
    // The map origin (x, y) of a window's top-left corner.
    using OriginOf = std::function<std::array<double, 2>(const PixelWindow& window)>;

    // nullopt when the file GDAL writes is not a single-strip, uncompressed, classic little-endian
    // GeoTIFF with one tie point, or when the template does not reproduce GDAL's file for `check`.
    static std::optional<GeoTiffTileTemplate> build(const GdalTileWriter& gdal_write, const OriginOf& origin_of,
                                                    const PixelWindow& first, const PixelWindow& check, int bands,
                                                    GDALDataType type);

    // Writes the tile file for `window` at `path` (created or truncated) with POSIX I/O. `pixels` as
    // above; `scratch` is reused between calls. Throws rsi::Error naming `path` on any write error.
    void write(const std::string& path, const PixelWindow& window, const void* pixels,
               std::vector<unsigned char>& scratch) const;

    // The bytes write() would put in the file (for the self-check and tests).
    std::vector<unsigned char> file_bytes(const PixelWindow& window, const void* pixels) const;

private:
    GeoTiffTileTemplate() = default;
    // Writes the window's map origin into a copy of the ModelTiepoint tag's 6 doubles at `tiepoint`.
    void patch_origin(unsigned char* tiepoint, const PixelWindow& window) const;
    void interleave(const void* pixels, unsigned char* strip) const;

    std::vector<unsigned char> bytes_;  // the GDAL-written file of the first tile
    uint64_t strip_offset_ = 0, strip_bytes_ = 0;
    uint64_t tiepoint_offset_ = 0;  // 6 doubles: raster (i, j, k), then map (x, y, z)
    int64_t width_ = 0, height_ = 0;
    int bands_ = 0;
    int element_bytes_ = 0;
    OriginOf origin_of_;
};

}  // namespace rsi
