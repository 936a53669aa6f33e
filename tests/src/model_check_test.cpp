#include "src/model_check.hpp"

#include <gtest/gtest.h>

#include "src/band_mapping.hpp"
#include "test_support.hpp"
#include "tiling/error.hpp"
#include "tiling/raster_source.hpp"

namespace rsi {
namespace {

std::string fixture(const std::string& name) { return std::string(RSI_FIXTURES_DIR) + "/" + name; }

int value_at(int band, int x, int y) { return (x + 2 * y + 7 * band) % 256; }

TEST(ModelCheck, TilesFromAnImageAreSpreadOverItsLatticeAndNormalised) {
    test::TempDir dir;
    const std::string path = dir / "real.tif";
    test::make_raster(path, 300, 200, 3, GDT_Byte, [](int b, int x, int y) { return value_at(b, x, y); });
    const double gt[6] = {300000, 0.3, 0, 5000000, 0, -0.3};  // the fixture's own 0.3 m: read 1:1
    test::georeference(path, gt, 32611);
    const models::Model model = models::Model::load(fixture("tiny_segmenter.pt"));
    const models::ModelMetadata& meta = model.metadata();
    ASSERT_EQ(meta.bands, 3);
    const int64_t T = 64, C = 3;
    const auto tiles = model_check_tiles(path, meta, {4, C, T, T});
    ASSERT_EQ(tiles.size(), static_cast<size_t>(4 * C * T * T));
    // 4 x 3 whole 64-pixel windows; tiles 0..3 take windows 0, 3, 6 and 9.
    const int origins[4][2] = {{0, 0}, {192, 0}, {128, 64}, {64, 128}};
    const RasterSource source = RasterSource::open(path);
    const BandMapping mapping = map_bands(source, meta, {}, "test", false, true);
    for (int i = 0; i < 4; ++i) {
        for (const auto& [dx, dy] : {std::pair{0, 0}, std::pair{63, 0}, std::pair{17, 45}}) {
            std::vector<float> expected(3);
            // make_raster numbers bands from 1
            for (int b = 0; b < 3; ++b) expected[static_cast<size_t>(b)] = static_cast<float>(value_at(b + 1, origins[i][0] + dx, origins[i][1] + dy));
            mapping.normalizer.apply(expected.data(), 3, 1);
            for (int b = 0; b < 3; ++b) {
                EXPECT_FLOAT_EQ(tiles[static_cast<size_t>(((i * C + b) * T + dy) * T + dx)], expected[static_cast<size_t>(b)])
                    << "tile " << i << " band " << b << " at " << dx << "," << dy;
            }
        }
    }
    // Two batches of two: the same four tiles, batch after batch.
    EXPECT_EQ(model_check_tiles(path, meta, {2, C, T, T}, 2), tiles);
    const std::string small = dir / "small.tif";
    test::make_raster(small, 50, 80, 3, GDT_Byte, [](int, int, int) { return 1; });
    test::expect_error([&] { model_check_tiles(small, meta, {1, C, T, T}); }, ErrorKind::usage,
                       "small.tif (50x80) is smaller than one 64-pixel tile");
}

// An image finer than the model's pixels is area-averaged in float, as the scene reader shrinks its
// windows: 2x2 means of a Byte image keep their fractions (GDAL's resampled read would round them).
TEST(ModelCheck, TilesOfAFinerImageAreAveragedInFloat) {
    test::TempDir dir;
    const std::string path = dir / "fine.tif";
    test::make_raster(path, 260, 140, 3, GDT_Byte, [](int b, int x, int y) { return (x + 2 * y + 7 * b) % 200; });
    const double gt[6] = {300000, 0.15, 0, 5000000, 0, -0.15};  // half the fixture's 0.3 m: 128-pixel windows
    test::georeference(path, gt, 32611);
    const models::Model model = models::Model::load(fixture("tiny_segmenter.pt"));
    const models::ModelMetadata& meta = model.metadata();
    const int64_t T = 64, C = 3;
    const auto tiles = model_check_tiles(path, meta, {2, C, T, T});
    const RasterSource source = RasterSource::open(path);
    const BandMapping mapping = map_bands(source, meta, {}, "test", false, true);
    // 2 x 1 whole 128-pixel windows: tile 1 starts at x = 128.
    for (int i = 0; i < 2; ++i) {
        for (const auto& [dx, dy] : {std::pair{0, 0}, std::pair{10, 20}, std::pair{63, 63}}) {
            std::vector<float> expected(3);
            for (int b = 0; b < 3; ++b) {
                const int x = 128 * i + 2 * dx, y = 2 * dy;
                double sum = 0;
                for (int v = 0; v < 2; ++v)
                    for (int u = 0; u < 2; ++u) sum += (x + u + 2 * (y + v) + 7 * (b + 1)) % 200;
                expected[static_cast<size_t>(b)] = static_cast<float>(sum / 4);
            }
            mapping.normalizer.apply(expected.data(), 3, 1);
            for (int b = 0; b < 3; ++b) {
                EXPECT_NEAR(tiles[static_cast<size_t>(((i * C + b) * T + dy) * T + dx)], expected[static_cast<size_t>(b)], 1e-5)
                    << "tile " << i << " band " << b << " at " << dx << "," << dy;
            }
        }
    }
}

// --runners times that many threads side by side besides the single runner; a bad count is a usage error.
TEST(ModelCheck, RunnersAreTimedSideBySide) {
    ModelCheckOptions o;
    o.model_path = fixture("tiny_scene.pt");
    o.batch = 4;
    o.iterations = 3;
    o.compare_eager = false;
    ModelCheckResult single = check_model(o);
    EXPECT_EQ(single.runners, 1);
    EXPECT_EQ(single.concurrent_tiles_per_second, 0.0);
    o.runners = 2;
    const ModelCheckResult two = check_model(o);
    EXPECT_EQ(two.runners, 2);
    EXPECT_GT(two.concurrent_tiles_per_second, 0.0);
    EXPECT_GT(two.tiles_per_second, 0.0);
    o.runners = 0;
    test::expect_error([&] { check_model(o); }, ErrorKind::usage, "--runners must be at least 1");
}

}  // namespace
}  // namespace rsi
