#include "src/tile_export.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <optional>
#include <sstream>
#include <ogrsf_frmts.h>

#include "test_support.hpp"
#include "tiling/error.hpp"
#include "tiling/raster_source.hpp"

namespace fs = std::filesystem;

namespace rsi {
namespace {

double value(int b, int x, int y) { return b * 1000 + y * 7 + x; }

struct Fixture {
    test::TempDir dir;
    std::string image = dir / "image.tif";
    Fixture() {
        test::make_raster(image, 100, 70, 3, GDT_UInt16, value);
        const double gt[6] = {600000, 2, 0, 5000000, 0, -2};
        test::georeference(image, gt, 32633);
    }
    TileExportOptions options(const std::string& out = "tiles") const {
        TileExportOptions o;
        o.input = image;
        o.output_dir = dir / out;
        o.grid.tile_width = o.grid.tile_height = 32;
        o.grid.overlap = 8;
        o.grid.edge = EdgePolicy::constant;
        o.fill_value = 7;
        return o;
    }
};

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// Every file under `dir` (relative name -> bytes).
std::map<std::string, std::string> folder_bytes(const std::string& dir) {
    std::map<std::string, std::string> out;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
        if (entry.is_regular_file()) out[fs::relative(entry.path(), dir).string()] = read_bytes(entry.path().string());
    }
    return out;
}

// Both folders hold the same file names with the same bytes.
void expect_same_folders(const std::string& a, const std::string& b) {
    const auto left = folder_bytes(a), right = folder_bytes(b);
    std::vector<std::string> left_names, right_names;
    for (const auto& [name, bytes] : left) left_names.push_back(name);
    for (const auto& [name, bytes] : right) right_names.push_back(name);
    ASSERT_EQ(left_names, right_names);
    for (const auto& [name, bytes] : left) EXPECT_TRUE(bytes == right.at(name)) << name << " differs";
}

// 32 x 32 tiles without overlap of `input` into `output_dir`.
TileExportOptions tiles_of_32(const std::string& input, const std::string& output_dir) {
    TileExportOptions o;
    o.input = input;
    o.output_dir = output_dir;
    o.grid.tile_width = o.grid.tile_height = 32;
    o.grid.overlap = 0;
    return o;
}

int count_lines(const std::string& path) {
    std::ifstream in(path);
    int n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
}

TEST(TileExport, TilesCarryTheirGeoreferencingAndPixels) {
    Fixture f;
    const TileExportResult r = export_tiles(f.options());
    EXPECT_EQ(r.cols, 4);  // stride 24: 0,24,48,72 (the last ends at 104)
    EXPECT_EQ(r.rows, 3);  // 0,24,48
    EXPECT_EQ(r.tiles_written, 12);
    EXPECT_EQ(r.data_type, "UInt16");
    EXPECT_TRUE(r.warnings.empty());
    const RasterSource tile = RasterSource::open(f.dir / "tiles/r1_c2.tif");
    EXPECT_EQ(tile.info().width, 32);
    EXPECT_EQ(tile.info().band_count(), 3);
    EXPECT_EQ(*tile.info().epsg, 32633);
    EXPECT_DOUBLE_EQ(tile.info().geotransform[0], 600000 + 48 * 2);  // origin + offset * pixel size
    EXPECT_DOUBLE_EQ(tile.info().geotransform[3], 5000000 - 24 * 2);
    const auto px = tile.read_float({3, 5, 1, 1}, {2});
    EXPECT_EQ(px[0], value(2, 48 + 3, 24 + 5));
    // The last tile of the last row reaches beyond the image: constant fill outside.
    const RasterSource corner = RasterSource::open(f.dir / "tiles/r2_c3.tif");
    EXPECT_EQ(corner.read_float({27, 21, 1, 1}, {1})[0], value(1, 99, 69));
    EXPECT_EQ(corner.read_float({28, 21, 1, 1}, {1})[0], 7);
    EXPECT_EQ(corner.read_float({0, 22, 1, 1}, {1})[0], 7);
    // ... and the fill is masked (it passed for data before); tiles inside the image carry no mask.
    EXPECT_EQ(corner.info().mask, MaskSource::mask_band);
    std::vector<uint8_t> valid(32 * 32);
    corner.read_validity({0, 0, 32, 32}, {}, valid.data());
    EXPECT_EQ(valid[21 * 32 + 27], 255);
    EXPECT_EQ(valid[21 * 32 + 28], 0);
    EXPECT_EQ(valid[22 * 32], 0);
    EXPECT_EQ(std::count(valid.begin(), valid.end(), 255), 28 * 22);
    EXPECT_EQ(tile.info().mask, MaskSource::none);
    // Index: one CSV line per tile plus the header; GeoJSON features with footprints in the image CRS.
    EXPECT_EQ(count_lines(r.index_csv), 13);
    DatasetPtr index(GDALDataset::FromHandle(GDALOpenEx(r.index_geojson.c_str(), GDAL_OF_VECTOR, nullptr, nullptr, nullptr)));
    ASSERT_TRUE(index);
    OGRLayer* layer = index->GetLayer(0);
    EXPECT_EQ(layer->GetFeatureCount(), 12);
    layer->SetAttributeFilter("id = 'r1_c2'");
    std::unique_ptr<OGRFeature> feature(layer->GetNextFeature());
    ASSERT_TRUE(feature);
    OGREnvelope env;
    feature->GetGeometryRef()->getEnvelope(&env);
    EXPECT_DOUBLE_EQ(env.MinX, 600096);
    EXPECT_DOUBLE_EQ(env.MaxX, 600096 + 64);
    EXPECT_DOUBLE_EQ(env.MaxY, 5000000 - 48);
    EXPECT_EQ(feature->GetFieldAsInteger64("x"), 48);
    EXPECT_STREQ(feature->GetFieldAsString("file"), "r1_c2.tif");
    // A padded tile's footprint is the part inside the image (x 72..100, y 48..70), its window the whole tile.
    layer->SetAttributeFilter("id = 'r2_c3'");
    std::unique_ptr<OGRFeature> edge(layer->GetNextFeature());
    ASSERT_TRUE(edge);
    edge->GetGeometryRef()->getEnvelope(&env);
    EXPECT_DOUBLE_EQ(env.MinX, 600000 + 72 * 2);
    EXPECT_DOUBLE_EQ(env.MaxX, 600000 + 100 * 2);
    EXPECT_DOUBLE_EQ(env.MinY, 5000000 - 70 * 2);
    EXPECT_EQ(edge->GetFieldAsInteger64("width"), 32);
}

// An image without georeferencing: its index footprints are pixel coordinates, which a GeoJSON reader
// takes for WGS84 degrees; the result says so (it was silent).
TEST(TileExport, AnImageWithoutGeoreferencingIsNamedInAWarning) {
    test::TempDir dir;
    const std::string image = dir / "plain.tif";
    test::make_raster(image, 64, 32, 1, GDT_Byte, [](int, int x, int y) { return x + y; });
    TileExportOptions o = tiles_of_32(image, dir / "out");
    const TileExportResult r = export_tiles(o);
    EXPECT_EQ(r.tiles_written, 2);
    ASSERT_EQ(r.warnings.size(), 1u);
    EXPECT_EQ(r.warnings[0].rfind(image + " is not georeferenced: the tiles and the index footprints are in pixel coordinates", 0), 0u)
        << r.warnings[0];
}

// NaN is no data in a float image without a declared nodata (as segment and scene take it): all-NaN
// tiles are skipped, and scaled tiles write it as 0 (nodata) with valid pixels in 1..255. Before, every
// tile was written and NaN became 0 undeclared, like the darkest data.
TEST(TileExport, NanIsNoDataInFloatImages) {
    test::TempDir dir;
    const std::string image = dir / "nan.tif";
    test::make_raster(image, 64, 64, 1, GDT_Float32, [](int, int x, int y) { return y < 32 ? std::nan("") : 10.0 + x + y + (x == 40 && y == 40 ? std::nan("") : 0); });
    const double gt[6] = {1000, 1, 0, 2000, 0, -1};
    test::georeference(image, gt, 32633);
    TileExportOptions o = tiles_of_32(image, dir / "plain");
    o.skip_empty = true;
    const TileExportResult plain = export_tiles(o);
    EXPECT_EQ(plain.tiles_skipped, 2);  // the top row: all NaN
    EXPECT_EQ(plain.tiles_written, 2);
    const RasterSource kept = RasterSource::open(dir / "plain/r1_c1.tif");
    EXPECT_TRUE(std::isnan(kept.read_float({8, 8, 1, 1}, {1})[0]));  // values kept
    ASSERT_TRUE(kept.info().bands[0].nodata.has_value());  // and declared NaN, so GDAL and QGIS skip them too
    EXPECT_TRUE(std::isnan(*kept.info().bands[0].nodata));
    o.output_dir = dir / "scaled";
    o.scaling = parse_scaling("minmax");
    o.format = "PNG";
    const TileExportResult scaled = export_tiles(o);
    EXPECT_EQ(scaled.tiles_written, 2);
    const RasterSource tile = RasterSource::open(dir / "scaled/r1_c1.png");
    ASSERT_TRUE(tile.info().bands[0].nodata.has_value());
    EXPECT_EQ(*tile.info().bands[0].nodata, 0);
    EXPECT_EQ(tile.read_float({8, 8, 1, 1}, {1})[0], 0);        // the NaN pixel (40, 40)
    EXPECT_GE(tile.read_float({0, 0, 1, 1}, {1})[0], 1);        // data never 0
    EXPECT_EQ(tile.read_float({31, 31, 1, 1}, {1})[0], 255);    // the maximum, 10 + 63 + 63
}

// An image smaller than one tile: scaled tiles keep 0 for the padding (nodata 0) and valid pixels in
// 1..255, as for masked pixels; before, the padding was 0 with no nodata, the same as the darkest data.
TEST(TileExport, ScaledTilesOfASmallImageMarkTheirPadding) {
    test::TempDir dir;
    const std::string image = dir / "small.tif";
    test::make_raster(image, 20, 12, 1, GDT_UInt16, [](int, int x, int y) { return 300 + x * 10 + y; });
    const double gt[6] = {1000, 1, 0, 2000, 0, -1};
    test::georeference(image, gt, 32633);
    TileExportOptions o = tiles_of_32(image, dir / "out");
    o.scaling = parse_scaling("minmax");
    o.format = "PNG";
    const TileExportResult r = export_tiles(o);
    EXPECT_EQ(r.tiles_written, 1);
    const RasterSource tile = RasterSource::open(dir / "out/r0_c0.png");
    EXPECT_EQ(tile.info().width, 32);
    ASSERT_TRUE(tile.info().bands[0].nodata.has_value());
    EXPECT_EQ(*tile.info().bands[0].nodata, 0);
    EXPECT_EQ(tile.read_float({0, 0, 1, 1}, {1})[0], 1);     // the minimum, 300
    EXPECT_EQ(tile.read_float({19, 11, 1, 1}, {1})[0], 255);  // the maximum, 501
    EXPECT_EQ(tile.read_float({20, 0, 1, 1}, {1})[0], 0);     // padding
    EXPECT_EQ(tile.read_float({0, 12, 1, 1}, {1})[0], 0);
}

// GeoTIFF tiles written from the checked template equal, byte for byte, the tiles GDAL writes when
// every tile goes through its driver (forced here by a creation option that changes nothing else).
TEST(TileExport, TemplateTilesEqualGdalTilesForEveryDataType) {
    struct Case {
        GDALDataType type;
        int bands;
        std::optional<double> nodata;
    };
    for (const Case& c : {Case{GDT_Byte, 3, std::nullopt}, Case{GDT_UInt16, 1, 0.0}, Case{GDT_Int16, 2, -9999.0},
                          Case{GDT_Float32, 4, std::nullopt}, Case{GDT_Float64, 2, -1.5}, Case{GDT_Int32, 5, std::nullopt}}) {
        SCOPED_TRACE(GDALGetDataTypeName(c.type) + std::string(" x ") + std::to_string(c.bands));
        test::TempDir dir;
        const std::string image = dir / "image.tif";
        const auto pixel = [](int b, int x, int y) { return (b * 37 + y * 3 + x) % 200; };  // fits every type
        test::make_raster(image, 90, 61, c.bands, c.type, pixel);
        const double gt[6] = {500000.5, 0.3, 0, 4200000.25, 0, -0.3};
        test::georeference(image, gt, 32611);
        if (c.nodata) {
            DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(image.c_str(), GA_Update)));
            for (int b = 1; b <= c.bands; ++b) ds->GetRasterBand(b)->SetNoDataValue(*c.nodata);
        }
        TileExportOptions o;
        o.input = image;
        o.grid.tile_width = o.grid.tile_height = 32;
        o.grid.overlap = 5;
        o.grid.edge = EdgePolicy::shift;
        o.output_dir = dir / "template";
        const TileExportResult fast = export_tiles(o);
        EXPECT_EQ(fast.tile_writer, "geotiff-template");
        o.output_dir = dir / "gdal";
        o.creation_options = {"BLOCKYSIZE=32"};
        const TileExportResult slow = export_tiles(o);
        EXPECT_EQ(slow.tile_writer, "gdal");
        EXPECT_EQ(fast.tiles_written, 12);
        expect_same_folders(dir / "template", dir / "gdal");
        // And they read back right: origin + offset * pixel size, the source's pixels, its nodata.
        const RasterSource tile = RasterSource::open(dir / "template/r2_c3.tif");
        EXPECT_DOUBLE_EQ(tile.info().geotransform[0], 500000.5 + 58 * 0.3);  // shifted last column: 90 - 32
        EXPECT_DOUBLE_EQ(tile.info().geotransform[3], 4200000.25 - 29 * 0.3);  // shifted last row: 61 - 32
        EXPECT_EQ(*tile.info().epsg, 32611);
        EXPECT_EQ(tile.info().bands[0].data_type, c.type);
        // (float tiles without one declare NaN, which rsi takes for no data)
        EXPECT_EQ(tile.info().bands[0].nodata.has_value(), c.nodata.has_value() || GDALDataTypeIsFloating(c.type));
        const int last = c.bands;
        EXPECT_EQ(tile.read_float({31, 31, 1, 1}, {last})[0], static_cast<float>(pixel(last, 58 + 31, 29 + 31)));
    }
}

TEST(TileExport, TemplateIsNotUsedWhereItCannotReproduceGdal) {
    Fixture f;
    // A rotated geotransform is stored as a transformation matrix, not a tie point.
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(f.image.c_str(), GA_Update)));
        double gt[6] = {600000, 2, 0.5, 5000000, 0.5, -2};
        ds->SetGeoTransform(gt);
    }
    TileExportOptions o = f.options("rotated");
    EXPECT_EQ(export_tiles(o).tile_writer, "gdal");
    // One tile: nothing to check the template against.
    o = f.options("single");
    o.grid.tile_width = o.grid.tile_height = 128;
    EXPECT_EQ(export_tiles(o).tile_writer, "gdal");
    // Compression requested: GDAL writes every tile.
    o = f.options("compressed");
    o.creation_options = {"COMPRESS=DEFLATE"};
    EXPECT_EQ(export_tiles(o).tile_writer, "gdal");
}

TEST(TileExport, ReflectTilesMatchReflectReads) {
    Fixture f;
    TileExportOptions o = f.options();
    o.grid.edge = EdgePolicy::reflect;
    export_tiles(o);
    const RasterSource src = RasterSource::open(f.image);
    EdgeFill reflect;
    reflect.mode = EdgeFill::Mode::reflect;
    const auto expected = src.read_float({72, 48, 32, 32}, {1, 2, 3}, reflect);
    const RasterSource tile = RasterSource::open(f.dir / "tiles/r2_c3.tif");
    EXPECT_EQ(tile.read_float({0, 0, 32, 32}, {1, 2, 3}), expected);
}

TEST(TileExport, ShiftTilesNeedNoPaddingAndBandsSelectAndReorder) {
    Fixture f;
    TileExportOptions o = f.options();
    o.grid.edge = EdgePolicy::shift;
    o.bands = {3, 1};
    export_tiles(o);
    const RasterSource tile = RasterSource::open(f.dir / "tiles/r2_c3.tif");
    EXPECT_DOUBLE_EQ(tile.info().geotransform[0], 600000 + 68 * 2);  // 100 - 32
    EXPECT_EQ(tile.info().band_count(), 2);
    EXPECT_EQ(tile.read_float({31, 31, 1, 1}, {1})[0], value(3, 99, 69));
    EXPECT_EQ(tile.read_float({31, 31, 1, 1}, {2})[0], value(1, 99, 69));
}

TEST(TileExport, SkipEmptyAndPercentileScalingToByte) {
    test::TempDir dir;
    const std::string image = dir / "nodata.tif";
    // Left half is nodata (0).
    test::make_raster(image, 64, 32, 1, GDT_UInt16, [](int, int x, int y) { return x < 32 ? 0 : 100 + x * 10 + y; });
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(image.c_str(), GA_Update)));
        ds->GetRasterBand(1)->SetNoDataValue(0);
    }
    const double gt[6] = {1000, 1, 0, 2000, 0, -1};
    test::georeference(image, gt, 32633);
    TileExportOptions o = tiles_of_32(image, dir / "out");
    o.skip_empty = true;
    o.scaling = parse_scaling("minmax");
    o.format = "PNG";
    const TileExportResult r = export_tiles(o);
    EXPECT_EQ(r.tiles_written, 1);
    EXPECT_EQ(r.tiles_skipped, 1);
    EXPECT_EQ(r.data_type, "Byte");
    EXPECT_FALSE(fs::exists(dir / "out/r0_c0.png"));
    const RasterSource tile = RasterSource::open(dir / "out/r0_c1.png");
    EXPECT_TRUE(fs::exists(dir / "out/r0_c1.wld"));
    // minmax over valid pixels: 420 -> 1 (nodata keeps 0), 761 -> 255
    EXPECT_EQ(tile.read_float({0, 0, 1, 1}, {1})[0], 1);
    EXPECT_EQ(tile.read_float({31, 31, 1, 1}, {1})[0], 255);
}

// PNG tiles of a geographic image: their .aux.xml must keep x = longitude. It said the data axes were
// (latitude, longitude), so QGIS and gdalwarp put the tiles at 36 E, 115 S instead of 115 W, 36 N.
TEST(TileExport, GeographicTilesInSidecarFormatsKeepLongitudeFirst) {
    test::TempDir dir;
    const std::string image = dir / "wgs84.tif";
    test::make_raster(image, 64, 32, 3, GDT_Byte, [](int b, int x, int y) { return b * 40 + x + y; });
    const double gt[6] = {-115.2, 1e-5, 0, 36.1, 0, -1e-5};
    test::georeference(image, gt, 4326);
    TileExportOptions o = tiles_of_32(image, dir / "out");
    o.format = "PNG";
    export_tiles(o);
    DatasetPtr tile(GDALDataset::Open((dir / "out/r0_c1.png").c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
    ASSERT_TRUE(tile);
    const OGRSpatialReference* srs = tile->GetSpatialRef();
    ASSERT_NE(srs, nullptr);
    EXPECT_EQ(srs->GetDataAxisToSRSAxisMapping(), (std::vector<int>{2, 1}));  // data x -> the CRS's second axis (longitude)
    OGRSpatialReference wgs84;
    wgs84.importFromEPSG(4326);
    wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    std::unique_ptr<OGRCoordinateTransformation> to_lonlat(OGRCreateCoordinateTransformation(srs, &wgs84));
    ASSERT_TRUE(to_lonlat);
    double g[6];
    tile->GetGeoTransform(g);
    double x = g[0], y = g[3];
    ASSERT_TRUE(to_lonlat->Transform(1, &x, &y));
    EXPECT_NEAR(x, -115.2 + 32e-5, 1e-9);
    EXPECT_NEAR(y, 36.1, 1e-9);
}

// A 64 x 32 image whose mask band marks columns 0..39 as without data.
template <typename Fn>
void make_left_masked_image(const std::string& path, int bands, GDALDataType type, Fn value) {
    test::make_raster(path, 64, 32, bands, type, value);
    DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(path.c_str(), GA_Update)));
    ASSERT_EQ(ds->CreateMaskBand(GMF_PER_DATASET), CE_None);
    std::vector<uint8_t> mask(64 * 32);
    for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 64; ++x) mask[static_cast<size_t>(y * 64 + x)] = x < 40 ? 0 : 255;
    ASSERT_EQ(ds->GetRasterBand(1)->GetMaskBand()->RasterIO(GF_Write, 0, 0, 64, 32, mask.data(), 64, 32, GDT_Byte, 0, 0), CE_None);
}

// An image with a mask band: unscaled GeoTIFF tiles carry it as their own mask (masked pixels kept
// their raw values and passed for data); with --bands leaving out an alpha band, likewise.
TEST(TileExport, UnscaledGeoTiffTilesCarryTheSourceMask) {
    test::TempDir dir;
    const std::string image = dir / "masked.tif";
    make_left_masked_image(image, 2, GDT_UInt16, [](int b, int x, int y) { return 100 * b + x + y; });
    TileExportOptions o = tiles_of_32(image, dir / "out");
    export_tiles(o);
    const RasterSource left = RasterSource::open(dir / "out/r0_c0.tif"), right = RasterSource::open(dir / "out/r0_c1.tif");
    EXPECT_EQ(right.info().mask, MaskSource::mask_band);
    std::vector<uint8_t> valid(32 * 32);
    right.read_validity({0, 0, 32, 32}, {}, valid.data());
    for (int x = 0; x < 32; ++x) EXPECT_EQ(valid[static_cast<size_t>(x)], x + 32 < 40 ? 0 : 255) << x;
    EXPECT_EQ(right.read_float({10, 5, 1, 1}, {2})[0], 200 + 42 + 5);  // the values themselves unchanged
    left.read_validity({0, 0, 32, 32}, {}, valid.data());
    EXPECT_EQ(std::count(valid.begin(), valid.end(), 0), 32 * 32);
    // The mask is inside the tile (it was a .msk file beside it, lost by a copy of the listed files).
    EXPECT_FALSE(fs::exists(dir / "out/r0_c1.tif.msk"));
    // --overwrite removes an earlier run's .msk files: GDAL attached them to the new tiles of the same
    // names (a 32 x 32 tile then took the old run's mask).
    test::write_text_file(dir / "out/r0_c0.tif.msk", "left by an earlier run");
    const std::string plain = dir / "plain.tif";
    test::make_raster(plain, 64, 32, 2, GDT_UInt16, [](int b, int x, int y) { return 100 * b + x + y; });
    o.input = plain;
    o.overwrite = true;
    export_tiles(o);
    EXPECT_FALSE(fs::exists(dir / "out/r0_c0.tif.msk"));
    EXPECT_EQ(RasterSource::open(dir / "out/r0_c0.tif").info().mask, MaskSource::none);
}

// JPEG tiles carry it too (GDAL's internal bitmask after the JPEG data).
TEST(TileExport, UnscaledJpegTilesCarryTheSourceMask) {
    test::TempDir dir;
    const std::string image = dir / "masked.tif";
    make_left_masked_image(image, 3, GDT_Byte, [](int b, int x, int y) { return 60 * b + x + y; });
    TileExportOptions o;
    o.input = image;
    o.output_dir = dir / "out";
    o.format = "JPEG";
    o.grid.tile_width = o.grid.tile_height = 32;
    o.grid.overlap = 0;
    export_tiles(o);
    const RasterSource right = RasterSource::open(dir / "out/r0_c1.jpg");
    EXPECT_EQ(right.info().mask, MaskSource::mask_band);
    std::vector<uint8_t> valid(32 * 32);
    right.read_validity({0, 0, 32, 32}, {}, valid.data());
    for (int x = 0; x < 32; ++x) EXPECT_EQ(valid[static_cast<size_t>(x)], x + 32 < 40 ? 0 : 255) << x;
    const RasterSource left = RasterSource::open(dir / "out/r0_c0.jpg");
    left.read_validity({0, 0, 32, 32}, {}, valid.data());
    EXPECT_EQ(std::count(valid.begin(), valid.end(), 0), 32 * 32);
}

// A plain run owns OUTDIR while it writes (two plain runs into one folder: the failing one removed
// the tiles it had written, which were the other's): a second run is refused, also with --overwrite,
// and touches nothing; a lock left by a killed run is taken over.
TEST(TileExport, APlainRunOwnsItsFolderWhileItWrites) {
    Fixture f;
    const TileExportOptions o = f.options();
    fs::create_directories(o.output_dir);
    { std::ofstream(fs::path(o.output_dir) / ".rsi-tile-lock") << ::getpid() << "\n"; }  // a live run (this process)
    { std::ofstream(fs::path(o.output_dir) / "r0_c0.tif") << "its tile"; }
    TileExportOptions again = o;
    again.overwrite = true;
    test::expect_error([&] { export_tiles(again); }, ErrorKind::runtime, "another rsi tile run (pid " + std::to_string(::getpid()) + ")");
    EXPECT_EQ(read_bytes(fs::path(o.output_dir) / "r0_c0.tif"), "its tile");
    EXPECT_TRUE(fs::exists(fs::path(o.output_dir) / ".rsi-tile-lock"));
    // the same lock of a process that is gone: taken over, and released at the end
    fs::remove_all(o.output_dir);
    fs::create_directories(o.output_dir);
    { std::ofstream(fs::path(o.output_dir) / ".rsi-tile-lock") << 2147483647 << "\n"; }
    const TileExportResult r = export_tiles(o);
    EXPECT_EQ(r.tiles_written, 12);  // 4 x 3 tiles of 32 at stride 24 over 100 x 70
    EXPECT_FALSE(fs::exists(fs::path(o.output_dir) / ".rsi-tile-lock"));
}

TEST(TileExport, ExistingOutputNeedsOverwriteAndStaleTilesGo) {
    Fixture f;
    export_tiles(f.options());
    test::expect_error([&] { export_tiles(f.options()); }, ErrorKind::usage, "--overwrite");
    TileExportOptions bigger = f.options();
    bigger.grid.tile_width = bigger.grid.tile_height = 64;
    bigger.overwrite = true;
    const TileExportResult r = export_tiles(bigger);
    EXPECT_EQ(r.tiles_written, 4);
    EXPECT_FALSE(fs::exists(f.dir / "tiles/r2_c3.tif")) << "tiles of the earlier run must not linger";
    EXPECT_EQ(count_lines(r.index_csv), 5);
}

// An index kept outside OUTDIR: never replaces a file of the user's without --overwrite (neither
// the GeoJSON nor the CSV beside it), a refused run leaves no OUTDIR, and its file column leads from
// the index's folder to the tiles.
TEST(TileExport, IndexOutsideTheFolderNamesTilesFromItsOwnPlace) {
    Fixture f;
    TileExportOptions o = f.options();
    o.index_path = f.dir / "catalog.geojson";
    std::ofstream(f.dir / "catalog.csv") << "mine\n";
    test::expect_error([&] { export_tiles(o); }, ErrorKind::usage, "catalog.csv: already exists");
    EXPECT_EQ(read_bytes(f.dir / "catalog.csv"), "mine\n");
    EXPECT_FALSE(fs::exists(f.dir / "tiles")) << "refused before OUTDIR was made";
    fs::remove(f.dir / "catalog.csv");
    const TileExportResult r = export_tiles(o);
    std::ifstream csv(r.index_csv);
    std::string header, first;
    std::getline(csv, header);
    std::getline(csv, first);
    EXPECT_NE(first.find(",tiles/r0_c0.tif,"), std::string::npos) << first;
    EXPECT_TRUE(fs::exists(f.dir / "tiles/r0_c0.tif"));
    // Inside OUTDIR (the default) the file column is the bare name.
    TileExportOptions inside = f.options("inside");
    const TileExportResult r2 = export_tiles(inside);
    std::ifstream csv2(r2.index_csv);
    std::getline(csv2, header);
    std::getline(csv2, first);
    EXPECT_NE(first.find(",r0_c0.tif,"), std::string::npos) << first;
}

// An index CSV another run wrote outside OUTDIR while this run worked: the run fails (a runtime error
// naming it) and writes neither index file, not the GeoJSON without its CSV.
TEST(TileExport, AnIndexFileWrittenMeanwhileLeavesNeitherIndex) {
    Fixture f;
    TileExportOptions o = f.options();
    o.index_path = f.dir / "catalog.geojson";
    bool written = false;
    const auto other_run_writes_the_csv = [&](double, std::string_view) {
        if (!written) std::ofstream(f.dir / "catalog.csv") << "theirs\n";
        written = true;
        return true;
    };
    test::expect_error([&] { export_tiles(o, other_run_writes_the_csv); }, ErrorKind::runtime,
                       "catalog.csv: appeared while this run was writing it");
    EXPECT_FALSE(fs::exists(f.dir / "catalog.geojson"));
    EXPECT_EQ(read_bytes(f.dir / "catalog.csv"), "theirs\n");
    EXPECT_FALSE(fs::exists(f.dir / "tiles")) << "the folder this run made goes with its tiles";
}

TEST(TileExport, BadRequestsLeaveNothingBehind) {
    Fixture f;
    test::QuietGdal quiet;
    TileExportOptions jpeg = f.options("jpeg");
    jpeg.format = "JPEG";
    EXPECT_THROW(export_tiles(jpeg), Error);  // UInt16 into JPEG
    EXPECT_FALSE(fs::exists(f.dir / "jpeg"));
    TileExportOptions bands = f.options("bands");
    bands.bands = {4};
    EXPECT_THROW(export_tiles(bands), Error);
    EXPECT_FALSE(fs::exists(f.dir / "bands"));
}

TEST(TileExport, CancelRemovesWhatThisRunWrote) {
    Fixture f;
    int calls = 0;
    try {
        export_tiles(f.options(), [&](double, std::string_view) { return ++calls < 5; });
        FAIL() << "no cancel";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::cancelled);
    }
    EXPECT_FALSE(fs::exists(f.dir / "tiles")) << "the directory this run created goes too";
}

TEST(TileExport, ShardsTogetherEqualTheDirectRunAndMergeWritesTheSameIndex) {
    Fixture f;
    TileExportOptions direct = f.options("direct");
    direct.format = "PNG";  // sidecars too (.wld, .aux.xml)
    direct.skip_empty = true;
    const TileExportResult whole = export_tiles(direct);
    ASSERT_EQ(whole.rows, 3);
    int64_t written = 0, skipped = 0;
    for (int k : {2, 0, 1}) {  // any order
        TileExportOptions o = direct;
        o.output_dir = f.dir / "sharded";
        o.shard = ShardSpec{k, 3};
        const TileExportResult r = export_tiles(o);
        EXPECT_FALSE(r.index_written);
        EXPECT_EQ(r.first_row, k);  // 3 rows over 3 shards: one row each
        EXPECT_EQ(r.end_row, k + 1);
        EXPECT_EQ(r.tiles_written, 4);
        written += r.tiles_written;
        skipped += r.tiles_skipped;
    }
    EXPECT_EQ(written, whole.tiles_written);
    EXPECT_EQ(skipped, whole.tiles_skipped);
    EXPECT_FALSE(fs::exists(f.dir / "sharded/index.geojson")) << "shards never write the index";
    EXPECT_TRUE(fs::exists(f.dir / "sharded/index.geojson.parts/shard-1-of-3.json"));
    TileIndexMergeOptions m;
    m.output_dir = f.dir / "sharded";
    const TileIndexMergeResult merged = merge_tile_index(m);
    EXPECT_EQ(merged.shards, 3);
    EXPECT_EQ(merged.tiles_written, 12);
    EXPECT_EQ(merged.index_geojson, f.dir / "sharded/index.geojson");
    EXPECT_FALSE(fs::exists(f.dir / "sharded/index.geojson.parts")) << "the parts folder goes after the merge";
    expect_same_folders(f.dir / "direct", f.dir / "sharded");
    EXPECT_EQ(read_bytes(f.dir / "sharded/index.csv"), read_bytes(f.dir / "direct/index.csv"));
    // Merging again: the index exists now and the parts are gone.
    test::QuietGdal quiet;
    EXPECT_THROW(merge_tile_index(m), Error);
}

TEST(TileExport, MergeNamesTheMissingShardAndShardsMustAgreeOnOptions) {
    Fixture f;
    TileExportOptions o = f.options("out");
    for (int k : {0, 2}) {
        o.shard = ShardSpec{k, 3};
        export_tiles(o);
    }
    TileIndexMergeOptions m;
    m.output_dir = f.dir / "out";
    try {
        merge_tile_index(m);
        FAIL() << "merged without shard 1";
    } catch (const Error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("shard 1 of 3 has not finished"), std::string::npos) << what;
        EXPECT_NE(what.find("--shard 1/3"), std::string::npos) << what;
    }
    EXPECT_FALSE(fs::exists(f.dir / "out/index.geojson"));
    // A sibling shard with another tile size is refused, naming the setting.
    TileExportOptions other = o;
    other.shard = ShardSpec{1, 3};
    other.grid.tile_width = other.grid.tile_height = 40;
    test::expect_error([&] { export_tiles(other); }, ErrorKind::usage, "tile_size [32,32] -> [40,40]");
    // Another N is refused as well.
    TileExportOptions four = o;
    four.shard = ShardSpec{1, 4};
    EXPECT_THROW(export_tiles(four), Error);
    // A shard run again (a requeued task) keeps the tiles it finished, as with --resume.
    o.shard = ShardSpec{0, 3};
    EXPECT_EQ(export_tiles(o).tiles_resumed, 4);
    o.shard = ShardSpec{1, 3};
    export_tiles(o);
    EXPECT_EQ(merge_tile_index(m).tiles_written, 12);
    EXPECT_EQ(count_lines(f.dir / "out/index.csv"), 13);
}

TEST(TileExport, ResumeAfterCancelKeepsFinishedTilesAndEqualsTheDirectRun) {
    Fixture f;
    export_tiles(f.options("direct"));
    TileExportOptions o = f.options("resumed");
    o.resume = true;
    o.threads = 1;
    int calls = 0;
    EXPECT_THROW(export_tiles(o, [&](double, std::string_view) { return ++calls < 7; }), Error);
    size_t kept = 0;
    for (const auto& entry : fs::directory_iterator(f.dir / "resumed")) kept += entry.path().extension() == ".tif";
    EXPECT_GE(kept, 1u) << "a resumable run keeps its finished tiles";
    EXPECT_LT(kept, 12u);
    // A temporary a killed process left behind (its pid is not this one) is cleaned up.
    std::ofstream(f.dir / "resumed/.rsi-tmp-999999-3-r2_c1.tif") << "torn";
    // Other options are refused, naming what changed.
    TileExportOptions other = o;
    other.bands = {1, 2};
    try {
        export_tiles(other);
        FAIL() << "no refusal";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("bands [1,2,3] -> [1,2]"), std::string::npos) << e.what();
    }
    const TileExportResult r = export_tiles(o);
    EXPECT_EQ(r.tiles_resumed, static_cast<int64_t>(kept));
    EXPECT_EQ(r.tiles_written, 12);
    EXPECT_TRUE(r.index_written);
    EXPECT_FALSE(fs::exists(f.dir / "resumed/.rsi-tmp-999999-3-r2_c1.tif"));
    EXPECT_FALSE(fs::exists(f.dir / "resumed/index.geojson.parts"));
    expect_same_folders(f.dir / "direct", f.dir / "resumed");
}

TEST(TileExport, ResumeNeverAdoptsTilesItDidNotJournal) {
    Fixture f;
    export_tiles(f.options());  // a plain run, as if killed before its index: no job.json
    fs::remove(f.dir / "tiles/index.geojson");
    fs::remove(f.dir / "tiles/index.csv");
    TileExportOptions o = f.options();
    o.resume = true;
    test::expect_error([&] { export_tiles(o); }, ErrorKind::usage, "no resumable or sharded run of this job wrote it");
}

}  // namespace
}  // namespace rsi
