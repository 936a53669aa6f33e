#include "src/tile_export.hpp"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
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
    TileExportOptions o;
    o.input = image;
    o.output_dir = dir / "out";
    o.grid.tile_width = o.grid.tile_height = 32;
    o.grid.overlap = 0;
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

TEST(TileExport, ExistingOutputNeedsOverwriteAndStaleTilesGo) {
    Fixture f;
    export_tiles(f.options());
    try {
        export_tiles(f.options());
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::usage);
        EXPECT_NE(std::string(e.what()).find("--overwrite"), std::string::npos);
    }
    TileExportOptions bigger = f.options();
    bigger.grid.tile_width = bigger.grid.tile_height = 64;
    bigger.overwrite = true;
    const TileExportResult r = export_tiles(bigger);
    EXPECT_EQ(r.tiles_written, 4);
    EXPECT_FALSE(fs::exists(f.dir / "tiles/r2_c3.tif")) << "tiles of the earlier run must not linger";
    EXPECT_EQ(count_lines(r.index_csv), 5);
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

}  // namespace
}  // namespace rsi
