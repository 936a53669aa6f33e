#pragma once
// Reads the tiles of a grid, one request per tile row when the row fits the memory budget (so each
// source block is read about once however large the overlap), else one request per tile. With
// segment_tiles > 0 a tile row is read in segments of that many tiles, so the cached strip no longer
// grows with the image width (the overlap rows and columns are then read again from the source).
#include <cstdint>
#include <optional>
#include <vector>

#include "tiling/raster_source.hpp"
#include "tiling/tile_grid.hpp"

namespace rsi {

class TileReader {
public:
    // Tiles come out as `type`. The cached strip holds `strip_type` (GDT_Unknown: `type`); a narrower
    // one (e.g. the source's Byte for Float32 tiles, from compact_strip_type) keeps it 4x smaller and
    // converts each tile as it is copied out, with the same values as a direct read.
    TileReader(const RasterSource& source, const TileGrid& grid, std::vector<int> bands, GDALDataType type,
               EdgeFill edge, bool with_validity, int64_t budget_bytes, GDALDataType strip_type = GDT_Unknown,
               int64_t segment_tiles = 0);

    // Fills `out` (bands x window, band-sequential, `type`) and, when enabled, `validity`
    // (window, 255 = data). Tiles should come in row-major order for the row cache to pay off.
    void read(const Tile& tile, void* out, uint8_t* validity);

    // Only the validity of `tile` (window, 255 = data); needs with_validity.
    void read_validity(const Tile& tile, uint8_t* validity);

    // The cached strip of tile row `row` (bands x span, band-sequential, strip_type()), loading it when
    // needed; `span` receives its window. Only when reads_strips() and whole rows are cached
    // (segment_tiles 0); else a logic error.
    const unsigned char* row_strip(int64_t row, PixelWindow& span);

    bool reads_strips() const { return strips_; }
    size_t element_size() const { return elem_; }
    GDALDataType strip_type() const { return strip_type_; }
    // Whether the validity comes from the strip's values (per-band integer nodata), not GDAL's masks.
    bool validity_from_values() const { return !band_nodata_.empty(); }
    // Bytes the cached strip holds now (pixels and validity).
    size_t strip_bytes() const { return strip_.size() + strip_validity_.size(); }

private:
    // The window cached for tile (row, col): the union of its segment's tile windows.
    PixelWindow segment_span(int64_t row, int64_t col) const;
    void load(int64_t row, int64_t segment, const PixelWindow& next);
    void ensure_loaded(const Tile& tile);
    // Validity of strip rows first_row .. first_row + rows (all of span_'s columns) into `out`: from the
    // strip's own values where band_nodata_ allows, else read through GDAL's masks.
    void fill_validity(int64_t first_row, int64_t rows, uint8_t* out) const;

    const RasterSource& source_;
    const TileGrid& grid_;
    std::vector<int> bands_;
    GDALDataType type_;
    EdgeFill edge_;
    bool with_validity_;
    bool validity_strip_ = false;  // the source has a mask: validity is read and cached with the strip
    // Integer data whose only mask is a per-band nodata value (RasterSource::exact_integer_nodata): the
    // validity is derived from the strip's values instead of GDAL reading every band again for its
    // nodata mask. Empty: GDAL's masks are read.
    std::vector<std::optional<int64_t>> band_nodata_;
    size_t elem_;
    GDALDataType strip_type_;
    size_t strip_elem_;
    bool strips_;
    int64_t segment_tiles_;  // tile columns per cached segment (the whole row when 0)
    int64_t cached_row_ = -1;
    int64_t cached_segment_ = -1;
    PixelWindow span_;
    std::vector<unsigned char> strip_;
    std::vector<uint8_t> strip_validity_;
};

// The narrowest type that holds `bands` of `info` exactly, where it is narrower than `type` and the
// edge fill value survives it; else `type`.
GDALDataType compact_strip_type(const RasterInfo& info, const std::vector<int>& bands, GDALDataType type,
                                const EdgeFill& edge);

// Tile columns per cached row segment for reading `bands` of a source on `grid`: about 4096 columns
// when the source is stored in tiles (blocks narrower than the image), so the strip stays the same
// size however wide the image; 0 (whole rows) for a source stored in full-width strips, whose blocks
// every segment would decode again, and for remote sources (/vsicurl/, /vsis3/ ...), whose shared
// rows every segment would download again.
int64_t row_segment_tiles(const RasterInfo& info, const std::vector<int>& bands, const TileGrid& grid);

// Width of the widest window a TileReader with `segment_tiles` caches (the first segment of a row).
int64_t widest_row_segment(const TileGrid& grid, int64_t segment_tiles);

// Copies `window` out of a band-sequential buffer that holds `span` (both in image coordinates).
void copy_subwindow(const unsigned char* span_data, const PixelWindow& span, size_t bands, size_t elem,
                    const PixelWindow& window, unsigned char* out);

}  // namespace rsi
