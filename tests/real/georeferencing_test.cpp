// Real imagery: tiles keep the source's georeferencing exactly (origin + offset x pixel size).
#include <gtest/gtest.h>

#include "src/raster_summary.hpp"
#include "src/tile_export.hpp"
#include "test_support.hpp"
#include "tiling/ground_distance.hpp"

namespace rsi {
namespace {

void check_tile_georeferencing(const std::string& image, int expected_epsg) {
    const RasterSource src = RasterSource::open(image);
    ASSERT_EQ(src.info().epsg.value_or(0), expected_epsg);
    test::TempDir dir;
    TileExportOptions o;
    o.input = image;
    o.output_dir = dir / "tiles";
    o.grid.tile_width = o.grid.tile_height = 256;
    o.grid.overlap = 32;
    const TileExportResult r = export_tiles(o);
    ASSERT_GT(r.tiles_written, 4);
    const TileGrid grid(src.info().width, src.info().height, o.grid);
    for (int64_t i : {int64_t{0}, int64_t{1}, grid.cols() + 1, grid.count() - 1}) {
        const Tile t = grid.at(i);
        const RasterSource tile = RasterSource::open(dir / ("tiles/" + t.id() + ".tif"));
        const auto& g = src.info().geotransform;
        const auto& tg = tile.info().geotransform;
        EXPECT_NEAR(tg[0], g[0] + t.window.x * g[1], std::abs(g[1]) * 1e-9) << t.id();
        EXPECT_NEAR(tg[3], g[3] + t.window.y * g[5], std::abs(g[5]) * 1e-9) << t.id();
        EXPECT_DOUBLE_EQ(tg[1], g[1]);
        EXPECT_DOUBLE_EQ(tg[5], g[5]);
        EXPECT_EQ(tile.info().epsg.value_or(0), expected_epsg);
        // Pixels equal the source's at the same place.
        EXPECT_EQ(tile.read_float({10, 20, 5, 5}, {1}),
                  src.read_float({t.window.x + 10, t.window.y + 20, 5, 5}, {1}))
            << t.id();
    }
}

TEST(RealGeoreferencing, VegasRgbInEpsg4326) {
    check_tile_georeferencing(test::shared_data("spacenet/vegas_rgb.tif"), 4326);
}

TEST(RealGeoreferencing, AtlantaPanchromaticUInt16InUtm) {
    check_tile_georeferencing(test::shared_data("spacenet/atlanta_pan.tif"), 32616);
}

TEST(RealGeoreferencing, GroundPixelSizePerAxis) {
    const auto vegas = summarize_raster(test::shared_data("spacenet/vegas_rgb.tif"), GridSpec{});
    ASSERT_TRUE(vegas.ground_pixel);
    EXPECT_NEAR(vegas.ground_pixel->x_m, 0.2427, 0.001);  // 2.7e-6 degrees of longitude at 36.24 N
    EXPECT_NEAR(vegas.ground_pixel->y_m, 0.2996, 0.001);  // 2.7e-6 degrees of latitude
    EXPECT_EQ(vegas.info.mask, MaskSource::alpha);
    const auto atlanta = summarize_raster(test::shared_data("spacenet/atlanta_pan.tif"), GridSpec{});
    ASSERT_TRUE(atlanta.ground_pixel);
    EXPECT_DOUBLE_EQ(atlanta.ground_pixel->x_m, 0.5);
    EXPECT_EQ(atlanta.info.data_type, GDT_UInt16);
}

}  // namespace
}  // namespace rsi
