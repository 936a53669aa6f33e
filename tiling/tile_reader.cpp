#include "tiling/tile_reader.hpp"

#include <cstring>

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

TileReader::TileReader(const RasterSource& source, const TileGrid& grid, std::vector<int> bands, GDALDataType type,
                       EdgeFill edge, bool with_validity, int64_t budget_bytes)
    : source_(source),
      grid_(grid),
      bands_(std::move(bands)),
      type_(type),
      edge_(edge),
      with_validity_(with_validity),
      elem_(static_cast<size_t>(GDALGetDataTypeSizeBytes(type))) {
    const PixelWindow widest = grid.row_span(0);
    const int64_t strip_bytes = widest.area() * (static_cast<int64_t>(bands_.size() * elem_) + (with_validity ? 1 : 0));
    strips_ = strip_bytes <= budget_bytes;
}

void TileReader::load_row(int64_t row) {
    span_ = grid_.row_span(row);
    strip_.resize(static_cast<size_t>(span_.area()) * bands_.size() * elem_);
    source_.read(span_, bands_, type_, strip_.data(), edge_);
    if (with_validity_) {
        strip_validity_.resize(static_cast<size_t>(span_.area()));
        source_.read_validity(span_, bands_, strip_validity_.data());
    }
    cached_row_ = row;
}

void TileReader::read(const Tile& tile, void* out, uint8_t* validity) {
    if (!strips_) {
        source_.read(tile.window, bands_, type_, out, edge_);
        if (with_validity_ && validity) source_.read_validity(tile.window, bands_, validity);
        return;
    }
    if (tile.row != cached_row_) load_row(tile.row);
    copy_subwindow(strip_.data(), span_, bands_.size(), elem_, tile.window, static_cast<unsigned char*>(out));
    if (with_validity_ && validity) copy_subwindow(strip_validity_.data(), span_, 1, 1, tile.window, validity);
}

void TileReader::read_validity(const Tile& tile, uint8_t* validity) {
    if (!strips_) {
        source_.read_validity(tile.window, bands_, validity);
        return;
    }
    if (tile.row != cached_row_) load_row(tile.row);
    copy_subwindow(strip_validity_.data(), span_, 1, 1, tile.window, validity);
}

const unsigned char* TileReader::row_strip(int64_t row, PixelWindow& span) {
    if (!strips_) return nullptr;
    if (row != cached_row_) load_row(row);
    span = span_;
    return strip_.data();
}

}  // namespace rsi
