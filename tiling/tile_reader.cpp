#include "tiling/tile_reader.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <cpl_vsi.h>

namespace rsi {

void copy_subwindow(const unsigned char* span_data, const PixelWindow& span, size_t bands, size_t elem,
                    const PixelWindow& window, unsigned char* out) {
    const auto e = static_cast<int64_t>(elem);
    for (size_t b = 0; b < bands; ++b) {
        const unsigned char* src_band = span_data + static_cast<int64_t>(b) * span.area() * e;
        unsigned char* dst_band = out + static_cast<int64_t>(b) * window.area() * e;
        for (int64_t j = 0; j < window.height; ++j) {
            std::memcpy(dst_band + j * window.width * e,
                        src_band + ((window.y - span.y + j) * span.width + (window.x - span.x)) * e,
                        static_cast<size_t>(window.width * e));
        }
    }
}

GDALDataType compact_strip_type(const RasterInfo& info, const std::vector<int>& bands, GDALDataType type,
                                const EdgeFill& edge) {
    GDALDataType narrow = GDT_Unknown;
    for (int b : bands) {
        if (b < 1 || b > static_cast<int>(info.bands.size())) return type;
        const GDALDataType t = info.bands[static_cast<size_t>(b - 1)].data_type;
        narrow = narrow == GDT_Unknown ? t : GDALDataTypeUnion(narrow, t);
    }
    if (narrow == GDT_Unknown || GDALGetDataTypeSizeBytes(narrow) >= GDALGetDataTypeSizeBytes(type)) return type;
    if (GDALDataTypeIsComplex(narrow) != GDALDataTypeIsComplex(type)) return type;
    if (edge.mode == EdgeFill::Mode::constant) {
        int clamped = 0, rounded = 0;
        if (GDALAdjustValueToDataType(narrow, edge.value, &clamped, &rounded) != edge.value || clamped || rounded) return type;
    }
    return narrow;
}

int64_t row_segment_tiles(const RasterInfo& info, const std::vector<int>& bands, const TileGrid& grid) {
    // Remote data: a segment's overlap would be downloaded again; whole rows fetch each block once.
    if (!VSIIsLocal(info.path.c_str())) return 0;
    for (int b : bands) {
        if (b < 1 || b > static_cast<int>(info.bands.size())) return 0;
        const BandInfo& band = info.bands[static_cast<size_t>(b - 1)];
        if (band.block_width <= 0 || band.block_width >= info.width) return 0;
    }
    return std::max<int64_t>(1, 4096 / grid.stride_x());
}

int64_t widest_row_segment(const TileGrid& grid, int64_t segment_tiles) {
    const PixelWindow row = grid.row_span(0);
    if (segment_tiles <= 0 || segment_tiles >= grid.cols()) return row.width;
    return grid.at(0, segment_tiles - 1).window.right() - row.x;
}

TileReader::TileReader(const RasterSource& source, const TileGrid& grid, std::vector<int> bands, GDALDataType type,
                       EdgeFill edge, bool with_validity, int64_t budget_bytes, GDALDataType strip_type,
                       int64_t segment_tiles)
    : source_(source),
      grid_(grid),
      bands_(std::move(bands)),
      type_(type),
      edge_(edge),
      with_validity_(with_validity),
      elem_(static_cast<size_t>(GDALGetDataTypeSizeBytes(type))),
      strip_type_(strip_type == GDT_Unknown ? type : strip_type),
      strip_elem_(static_cast<size_t>(GDALGetDataTypeSizeBytes(strip_type_))),
      segment_tiles_(segment_tiles > 0 && segment_tiles < grid.cols() ? segment_tiles : 0) {
    const PixelWindow widest{0, 0, widest_row_segment(grid, segment_tiles_), grid.row_span(0).height};
    // Without a mask, validity is just "inside the image": computed per tile, not cached.
    validity_strip_ = with_validity && source.info().mask != MaskSource::none;
    // The strip's values can stand in for GDAL's nodata masks when it holds every band's values exactly
    // (an integer strip type that contains each band's type, as compact_strip_type picks).
    bool exact_strip = validity_strip_ && !bands_.empty() && !GDALDataTypeIsFloating(strip_type_) &&
                       !GDALDataTypeIsComplex(strip_type_) && GDALGetDataTypeSizeBytes(strip_type_) <= 4;
    for (int b : bands_) {
        if (!exact_strip) break;
        exact_strip = b >= 1 && b <= static_cast<int>(source.info().bands.size()) &&
                      GDALDataTypeUnion(strip_type_, source.info().bands[static_cast<size_t>(b - 1)].data_type) == strip_type_;
    }
    if (exact_strip) band_nodata_ = source.exact_integer_nodata(bands_);
    const int64_t strip_bytes = widest.area() * (static_cast<int64_t>(bands_.size() * strip_elem_) + (validity_strip_ ? 1 : 0));
    strips_ = strip_bytes <= budget_bytes;
}

PixelWindow TileReader::segment_span(int64_t row, int64_t col) const {
    if (segment_tiles_ == 0) return grid_.row_span(row);
    const int64_t first = col / segment_tiles_ * segment_tiles_;
    const int64_t last = std::min(first + segment_tiles_, grid_.cols()) - 1;
    const PixelWindow a = grid_.at(row, first).window, b = grid_.at(row, last).window;
    return {a.x, a.y, b.right() - a.x, a.height};
}

void TileReader::ensure_loaded(const Tile& tile) {
    const int64_t segment = segment_tiles_ == 0 ? 0 : tile.col / segment_tiles_;
    if (tile.row != cached_row_ || segment != cached_segment_) load(tile.row, segment, segment_span(tile.row, tile.col));
}

void TileReader::fill_validity(int64_t first_row, int64_t rows, uint8_t* out) const {
    const PixelWindow region{span_.x, span_.y + first_row, span_.width, rows};
    if (band_nodata_.empty()) {
        source_.read_validity(region, bands_, out);
        return;
    }
    source_.validity_from_values(region, strip_type_, strip_.data() + first_row * span_.width * static_cast<int64_t>(strip_elem_),
                                 span_.area(), band_nodata_, out);
}

void TileReader::load(int64_t row, int64_t segment, const PixelWindow& next) {
    // Rows the previous strip shares with this one (the tile overlap) are moved up, not read again:
    // the block cache then only needs the block row that straddles the two reads.
    const bool shares_rows = cached_row_ >= 0 && next.x == span_.x && next.width == span_.width &&
                             next.height == span_.height && next.y > span_.y && next.y < span_.bottom();
    const int64_t kept = shares_rows ? span_.bottom() - next.y : 0;
    const int64_t plane = next.area() * static_cast<int64_t>(strip_elem_);
    strip_.resize(static_cast<size_t>(plane) * bands_.size());
    if (validity_strip_) strip_validity_.resize(static_cast<size_t>(next.area()));
    if (kept == 0) {
        span_ = next;
        source_.read(span_, bands_, strip_type_, strip_.data(), edge_);
        if (validity_strip_) fill_validity(0, span_.height, strip_validity_.data());
        cached_row_ = row;
        cached_segment_ = segment;
        return;
    }
    const int64_t row_bytes = next.width * static_cast<int64_t>(strip_elem_);
    const int64_t skip = next.y - span_.y;
    const PixelWindow fresh{next.x, span_.bottom(), next.width, next.bottom() - span_.bottom()};
    for (size_t b = 0; b < bands_.size(); ++b) {
        unsigned char* base = strip_.data() + static_cast<int64_t>(b) * plane;
        std::memmove(base, base + skip * row_bytes, static_cast<size_t>(kept * row_bytes));
        source_.read(fresh, {bands_[b]}, strip_type_, base + kept * row_bytes, edge_);
    }
    span_ = next;
    cached_row_ = row;
    cached_segment_ = segment;
    if (validity_strip_) {
        std::memmove(strip_validity_.data(), strip_validity_.data() + skip * next.width, static_cast<size_t>(kept * next.width));
        fill_validity(kept, next.height - kept, strip_validity_.data() + kept * next.width);
    }
}

void TileReader::read(const Tile& tile, void* out, uint8_t* validity) {
    if (!strips_) {
        source_.read(tile.window, bands_, type_, out, edge_);
        if (with_validity_ && validity) source_.read_validity(tile.window, bands_, validity);
        return;
    }
    ensure_loaded(tile);
    if (strip_type_ == type_) {
        copy_subwindow(strip_.data(), span_, bands_.size(), elem_, tile.window, static_cast<unsigned char*>(out));
    } else {
        const PixelWindow& w = tile.window;
        const auto se = static_cast<int64_t>(strip_elem_), e = static_cast<int64_t>(elem_);
        for (size_t b = 0; b < bands_.size(); ++b) {
            const unsigned char* src_band = strip_.data() + static_cast<int64_t>(b) * span_.area() * se;
            unsigned char* dst_band = static_cast<unsigned char*>(out) + static_cast<int64_t>(b) * w.area() * e;
            for (int64_t j = 0; j < w.height; ++j) {
                GDALCopyWords64(src_band + ((w.y - span_.y + j) * span_.width + (w.x - span_.x)) * se, strip_type_,
                                static_cast<int>(se), dst_band + j * w.width * e, type_, static_cast<int>(e), w.width);
            }
        }
    }
    if (with_validity_ && validity) {
        if (validity_strip_) {
            copy_subwindow(strip_validity_.data(), span_, 1, 1, tile.window, validity);
        } else {
            source_.read_validity(tile.window, bands_, validity);
        }
    }
}

void TileReader::read_validity(const Tile& tile, uint8_t* validity) {
    if (!strips_ || !validity_strip_) {
        source_.read_validity(tile.window, bands_, validity);
        return;
    }
    ensure_loaded(tile);
    copy_subwindow(strip_validity_.data(), span_, 1, 1, tile.window, validity);
}

const unsigned char* TileReader::row_strip(int64_t row, PixelWindow& span) {
    if (!strips_) return nullptr;
    if (segment_tiles_ != 0) throw std::logic_error("TileReader::row_strip: the reader caches row segments");
    if (row != cached_row_) load(row, 0, grid_.row_span(row));
    span = span_;
    return strip_.data();
}

}  // namespace rsi
