#include "tiling/tile_reader.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace rsi {
namespace {

using test::make_raster;

// Every tile the reader cuts from its cached row strips (moved-up overlap rows, narrow strip type
// converted per tile) equals a direct read of the tile's window as Float32, validity included.
// With segment_tiles > 0 the strip is cached in segments of that many tiles and never holds more
// than one segment's window.
void expect_tiles_equal_direct_reads(const std::string& path, EdgePolicy policy, double fill, GDALDataType expected_strip,
                                     int64_t segment_tiles = 0) {
    const RasterSource source = RasterSource::open(path);
    GridSpec spec;
    spec.tile_width = spec.tile_height = 16;
    spec.overlap = 6;
    spec.edge = policy;
    const TileGrid grid(source.info().width, source.info().height, spec);
    ASSERT_GT(grid.rows(), 2);
    EdgeFill edge;
    edge.mode = policy == EdgePolicy::reflect ? EdgeFill::Mode::reflect : EdgeFill::Mode::constant;
    edge.value = fill;
    const std::vector<int> bands{2, 1, 2};  // reordered and repeated, as band mappings do
    const GDALDataType strip_type = compact_strip_type(source.info(), bands, GDT_Float32, edge);
    EXPECT_EQ(strip_type, expected_strip);
    TileReader reader(source, grid, bands, GDT_Float32, edge, true, 1 << 20, strip_type, segment_tiles);
    ASSERT_TRUE(reader.reads_strips());
    const int64_t span_width = segment_tiles > 0 ? 16 + (segment_tiles - 1) * 10 : grid.row_span(0).width;
    const size_t strip_limit = static_cast<size_t>(span_width * 16) * (3 * GDALGetDataTypeSizeBytes(strip_type) + 1);
    const size_t n = 16 * 16;
    std::vector<float> cut(3 * n), direct(3 * n);
    std::vector<uint8_t> cut_valid(n), direct_valid(n);
    for (int64_t i = 0; i < grid.count(); ++i) {
        const Tile tile = grid.at(i);
        reader.read(tile, cut.data(), cut_valid.data());
        source.read(tile.window, bands, GDT_Float32, direct.data(), edge);
        source.read_validity(tile.window, bands, direct_valid.data());
        ASSERT_EQ(cut, direct) << path << " tile " << tile.id();
        ASSERT_EQ(cut_valid, direct_valid) << path << " tile " << tile.id();
        ASSERT_LE(reader.strip_bytes(), strip_limit) << path << " tile " << tile.id();
    }
}

TEST(TileReader, StripsInTheSourceTypeGiveTheSameTilesAsFloatReads) {
    const std::string byte = "/vsimem/reader_byte.tif";
    make_raster(byte, 45, 41, 2, GDT_Byte, [](int b, int x, int y) { return (b * 37 + x * 5 + y * 11) % 256; },
                {"TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16"});
    {  // a nodata value, so the validity strip matters too
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(byte.c_str(), GA_Update)));
        ds->GetRasterBand(1)->SetNoDataValue(7);
        ds->GetRasterBand(2)->SetNoDataValue(7);
    }
    expect_tiles_equal_direct_reads(byte, EdgePolicy::constant, 0, GDT_Byte);
    expect_tiles_equal_direct_reads(byte, EdgePolicy::reflect, 0, GDT_Byte);
    expect_tiles_equal_direct_reads(byte, EdgePolicy::shift, 0, GDT_Byte);
    // A fill value Byte cannot hold keeps the strip in Float32.
    expect_tiles_equal_direct_reads(byte, EdgePolicy::constant, -1.5, GDT_Float32);

    const std::string uint16 = "/vsimem/reader_uint16.tif";
    make_raster(uint16, 40, 50, 2, GDT_UInt16, [](int b, int x, int y) { return b * 20000 + x * 301 + y * 7; });
    expect_tiles_equal_direct_reads(uint16, EdgePolicy::constant, 0, GDT_UInt16);
    expect_tiles_equal_direct_reads(uint16, EdgePolicy::reflect, 0, GDT_UInt16);

    const std::string float32 = "/vsimem/reader_float.tif";
    make_raster(float32, 40, 40, 2, GDT_Float32, [](int b, int x, int y) { return b * 0.25 + x * 0.5 - y * 1.75; });
    expect_tiles_equal_direct_reads(float32, EdgePolicy::constant, 0, GDT_Float32);  // nothing narrower
    for (const std::string& p : {byte, uint16, float32}) VSIUnlink(p.c_str());
}

// Integer sources whose mask is a per-band nodata value: the reader derives the validity from the
// strip's values; every tile's validity must still equal GDAL's nodata masks (direct reads), for
// several types, a band without nodata beside one with it, and nodata values the type cannot hold
// (the reader then leaves the masks to GDAL).
TEST(TileReader, ValidityFromStripValuesEqualsGdalsNodataMasks) {
    const auto with_nodata = [](const std::string& path, std::optional<double> first, std::optional<double> second) {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(path.c_str(), GA_Update)));
        if (first) ds->GetRasterBand(1)->SetNoDataValue(*first);
        if (second) ds->GetRasterBand(2)->SetNoDataValue(*second);
    };
    const std::string uint16 = "/vsimem/reader_nodata_uint16.tif";
    make_raster(uint16, 43, 39, 2, GDT_UInt16, [](int b, int x, int y) { return (x * 7 + y * 3 + b) % 5 == 0 ? 500 : b * 1000 + x + y; },
                {"TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16"});
    with_nodata(uint16, 500, 500);
    expect_tiles_equal_direct_reads(uint16, EdgePolicy::constant, 0, GDT_UInt16);
    expect_tiles_equal_direct_reads(uint16, EdgePolicy::reflect, 0, GDT_UInt16);
    expect_tiles_equal_direct_reads(uint16, EdgePolicy::shift, 0, GDT_UInt16, 2);

    const std::string int16 = "/vsimem/reader_nodata_int16.tif";
    make_raster(int16, 41, 45, 2, GDT_Int16, [](int b, int x, int y) { return (x + 2 * y + b) % 3 == 0 ? -9999 : x - y * b; });
    with_nodata(int16, -9999, -9999);
    expect_tiles_equal_direct_reads(int16, EdgePolicy::constant, 0, GDT_Int16);
    expect_tiles_equal_direct_reads(int16, EdgePolicy::reflect, 0, GDT_Int16);

    // Band 1 with nodata, band 2 without: band 2 holds data everywhere, so every pixel inside is valid.
    const std::string mixed = "/vsimem/reader_nodata_mixed.tif";
    make_raster(mixed, 40, 40, 2, GDT_Byte, [](int b, int x, int y) { return (x + y) % 4 == 0 ? 0 : b + x; });
    with_nodata(mixed, 0, std::nullopt);
    expect_tiles_equal_direct_reads(mixed, EdgePolicy::constant, 0, GDT_Byte);

    // A nodata value Byte cannot hold exactly: GDAL's masks decide.
    const std::string odd = "/vsimem/reader_nodata_odd.tif";
    make_raster(odd, 40, 40, 2, GDT_Byte, [](int b, int x, int y) { return (x * y + b) % 7; });
    with_nodata(odd, 3.5, 300);
    expect_tiles_equal_direct_reads(odd, EdgePolicy::constant, 0, GDT_Byte);
    // The first three take the values path, the last does not (else this test would prove nothing).
    for (const auto& [path, from_values] : std::vector<std::pair<std::string, bool>>{{uint16, true}, {int16, true}, {mixed, true}, {odd, false}}) {
        const RasterSource source = RasterSource::open(path);
        GridSpec spec;
        spec.tile_width = spec.tile_height = 16;
        spec.overlap = 6;
        const TileGrid grid(source.info().width, source.info().height, spec);
        const GDALDataType narrow = compact_strip_type(source.info(), {1, 2}, GDT_Float32, EdgeFill{});
        const TileReader reader(source, grid, {1, 2}, GDT_Float32, EdgeFill{}, true, 1 << 20, narrow);
        EXPECT_EQ(reader.validity_from_values(), from_values) << path;
    }
    for (const std::string& p : {uint16, int16, mixed, odd}) VSIUnlink(p.c_str());
}

TEST(TileReader, RowSegmentsGiveTheSameTilesAndBoundTheStripByTheSegment) {
    const std::string byte = "/vsimem/reader_segments.tif";
    // 5 tile columns: segments of 2 tiles leave a last segment of one (shifted, for shift) tile.
    make_raster(byte, 57, 41, 2, GDT_Byte, [](int b, int x, int y) { return (b * 59 + x * 3 + y * 13) % 256; },
                {"TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16"});
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(byte.c_str(), GA_Update)));
        ds->GetRasterBand(1)->SetNoDataValue(9);
        ds->GetRasterBand(2)->SetNoDataValue(9);
    }
    for (const int64_t segment : {1, 2, 3}) {
        SCOPED_TRACE("segment_tiles " + std::to_string(segment));
        expect_tiles_equal_direct_reads(byte, EdgePolicy::constant, 0, GDT_Byte, segment);
        expect_tiles_equal_direct_reads(byte, EdgePolicy::reflect, 0, GDT_Byte, segment);
        expect_tiles_equal_direct_reads(byte, EdgePolicy::shift, 0, GDT_Byte, segment);
        expect_tiles_equal_direct_reads(byte, EdgePolicy::constant, -1.5, GDT_Float32, segment);
    }
    // Whole rows cached: row_strip() serves them; a segmented reader refuses (it has no whole row).
    const RasterSource source = RasterSource::open(byte);
    GridSpec spec;
    spec.tile_width = spec.tile_height = 16;
    spec.overlap = 6;
    const TileGrid grid(source.info().width, source.info().height, spec);
    TileReader segmented(source, grid, {1}, GDT_Float32, EdgeFill{}, false, 1 << 20, GDT_Byte, 2);
    PixelWindow span;
    EXPECT_THROW(segmented.row_strip(0, span), std::logic_error);
    TileReader whole(source, grid, {1}, GDT_Float32, EdgeFill{}, false, 1 << 20, GDT_Byte, 0);
    ASSERT_NE(whole.row_strip(1, span), nullptr);
    EXPECT_EQ(span.y, 10);
    EXPECT_EQ(span.width, 57);
    VSIUnlink(byte.c_str());
}

TEST(TileReader, RowSegmentsOnlyForLocalTiledSources) {
    GridSpec spec;
    spec.tile_width = spec.tile_height = 512;
    spec.overlap = 128;
    const TileGrid grid(32000, 2000, spec);
    RasterInfo info;
    info.width = 32000;
    info.height = 2000;
    info.path = "/vsimem/wide.tif";
    BandInfo band;
    band.data_type = GDT_Byte;
    band.block_width = band.block_height = 256;
    info.bands = {band, band, band};
    EXPECT_EQ(row_segment_tiles(info, {1, 2, 3}, grid), 4096 / 384);
    info.path = "/data/wide.tif";
    EXPECT_EQ(row_segment_tiles(info, {1, 2, 3}, grid), 10);
    info.path = "/vsicurl/https://example.com/wide.tif";  // the overlap would be downloaded again
    EXPECT_EQ(row_segment_tiles(info, {1, 2, 3}, grid), 0);
    info.path = "/data/wide.tif";
    info.bands[1].block_width = 32000;  // one band stored in full-width strips
    EXPECT_EQ(row_segment_tiles(info, {1}, grid), 10);
    EXPECT_EQ(row_segment_tiles(info, {1, 2}, grid), 0);
    EXPECT_EQ(row_segment_tiles(info, {4}, grid), 0);  // no such band: no segments
}

}  // namespace
}  // namespace rsi
