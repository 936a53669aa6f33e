#include "tiling/band_scaling.hpp"

#include <gtest/gtest.h>

#include "test_support.hpp"
#include "tiling/band_list.hpp"
#include "tiling/error.hpp"

namespace rsi {
namespace {

TEST(BandList, ParsesListsAndRanges) {
    EXPECT_EQ(parse_band_list("1,2,3"), (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(parse_band_list("4,3,2,8"), (std::vector<int>{4, 3, 2, 8}));
    EXPECT_EQ(parse_band_list("2-4,1"), (std::vector<int>{2, 3, 4, 1}));
    EXPECT_EQ(parse_band_list("7"), (std::vector<int>{7}));
    for (const char* bad : {"", "0", "1,,2", "a", "1.5", "3-1", "-1", "1,", "99999999999"}) {
        EXPECT_THROW(parse_band_list(bad), Error) << bad;
    }
}

TEST(Scaling, ParsesEveryForm) {
    EXPECT_EQ(parse_scaling("none").method, ScalingMethod::none);
    EXPECT_EQ(parse_scaling("minmax").method, ScalingMethod::minmax);
    const ScalingSpec p = parse_scaling("percentile:1,99.5");
    EXPECT_EQ(p.method, ScalingMethod::percentile);
    EXPECT_DOUBLE_EQ(p.low_percent, 1);
    EXPECT_DOUBLE_EQ(p.high_percent, 99.5);
    EXPECT_DOUBLE_EQ(parse_scaling("percentile").low_percent, 2);
    const ScalingSpec f = parse_scaling("fixed:0.25,-3");
    EXPECT_EQ(f.method, ScalingMethod::fixed);
    EXPECT_DOUBLE_EQ(f.scale, 0.25);
    EXPECT_DOUBLE_EQ(f.offset, -3);
    EXPECT_EQ(to_string(p), "percentile:1,99.5");
    for (const char* bad : {"", "percent", "percentile:98,2", "percentile:2", "fixed:", "fixed:0", "fixed:x", "minmax:1"}) {
        EXPECT_THROW(parse_scaling(bad), Error) << bad;
    }
}

TEST(Scaling, MapsStatisticsIntoTheTargetRange) {
    BandStatistics s;
    s.min = 100;
    s.max = 1100;
    s.low = 200;
    s.high = 600;
    s.samples = 1000;
    const auto minmax = scaling_maps(parse_scaling("minmax"), {s}, 1, 0, 255);
    EXPECT_DOUBLE_EQ(minmax[0].apply(100), 0);
    EXPECT_DOUBLE_EQ(minmax[0].apply(1100), 255);
    const auto pct = scaling_maps(parse_scaling("percentile"), {s}, 1, 0, 1);
    EXPECT_DOUBLE_EQ(pct[0].apply(200), 0);
    EXPECT_DOUBLE_EQ(pct[0].apply(400), 0.5);
    const auto fixed = scaling_maps(parse_scaling("fixed:0.5,1"), {}, 2, 0, 1);
    EXPECT_DOUBLE_EQ(fixed[1].apply(10), 6);
    BandStatistics flat;
    flat.min = flat.max = 7;
    flat.samples = 10;
    EXPECT_DOUBLE_EQ(scaling_maps(parse_scaling("minmax"), {flat}, 1, 3, 9)[0].apply(7), 3);
}

TEST(Normalizer, ScalesThenStandardises) {
    Normalizer n;
    n.scaling = {{1.0 / 255, 0}, {1.0 / 255, 0}};
    n.mean = {0.5f, 0.25f};
    n.std = {0.25f, 0.5f};
    std::vector<float> data = {0, 255, 127.5f, 51};  // two bands, two pixels each
    n.apply(data.data(), 2, 2);
    EXPECT_NEAR(data[0], -2.0, 1e-6);
    EXPECT_NEAR(data[1], 2.0, 1e-6);
    EXPECT_NEAR(data[2], 0.5, 1e-6);
    EXPECT_NEAR(data[3], -0.1, 1e-6);
    Normalizer clamped;
    clamped.scaling = {{2, 0}};
    clamped.clamp = true;
    clamped.clamp_min = 1;
    clamped.clamp_max = 255;
    std::vector<float> v = {0, 100, 200};
    clamped.apply(v.data(), 1, 3);
    EXPECT_EQ(v, (std::vector<float>{1, 200, 255}));
}

TEST(Statistics, PercentilesFromSampledWindowsSkipNodata) {
    const std::string path = "/vsimem/stats.tif";
    // Values 1..90000 over a 300x300 image; the first row is nodata (0).
    test::make_raster(path, 300, 300, 1, GDT_UInt32, [](int, int x, int y) { return y == 0 ? 0 : y * 300 + x + 1; });
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(path.c_str(), GA_Update)));
        ds->GetRasterBand(1)->SetNoDataValue(0);
    }
    const RasterSource src = RasterSource::open(path);
    const auto stats = sample_band_statistics(src, {1}, 2, 98);
    ASSERT_EQ(stats.size(), 1u);
    EXPECT_EQ(stats[0].samples, 89700);  // the whole image fits the sample budget; row 0 is nodata
    EXPECT_EQ(stats[0].min, 301);
    EXPECT_EQ(stats[0].max, 90000);
    EXPECT_NEAR(stats[0].low, 301 + 0.02 * 89699, 1e-3);
    EXPECT_NEAR(stats[0].high, 301 + 0.98 * 89699, 1e-3);
    EXPECT_NEAR(stats[0].mean, (301 + 90000) / 2.0, 1e-3);
    // A small budget samples windows instead of reading everything, and stays in range.
    const auto sampled = sample_band_statistics(src, {1}, 2, 98, 2000);
    EXPECT_LT(sampled[0].samples, 89700);
    EXPECT_GT(sampled[0].samples, 1000);
    EXPECT_GE(sampled[0].low, 301);
    EXPECT_LE(sampled[0].high, 90000);
    VSIUnlink(path.c_str());
}

// A mostly-empty image (a 300² patch of data in 4000² of nodata, 0.6 %): the four 256² windows of the
// first pass all miss the patch; finer lattices find it (no valid sample made every pixel one value).
TEST(Statistics, AMostlyEmptyImageIsSampledUntilItsDataIsFound) {
    const std::string path = "/vsimem/sparse.tif";
    test::make_raster(
        path, 4000, 4000, 1, GDT_Byte,
        [](int, int x, int y) { return x >= 100 && x < 400 && y >= 100 && y < 400 ? 50 + (x + y) % 100 : 0; },
        {"TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE"});
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(path.c_str(), GA_Update)));
        ds->GetRasterBand(1)->SetNoDataValue(0);
    }
    const RasterSource src = RasterSource::open(path);
    const auto stats = sample_band_statistics(src, {1}, 2, 98);
    ASSERT_EQ(stats.size(), 1u);
    EXPECT_GE(stats[0].samples, 4096);
    EXPECT_GE(stats[0].min, 50);
    EXPECT_LE(stats[0].max, 149);
    EXPECT_LT(stats[0].low, 60);
    EXPECT_GT(stats[0].high, 139);
    ScalingSpec spec;
    spec.method = ScalingMethod::percentile;
    const auto maps = scaling_maps(spec, stats, 1, 1, 255);
    EXPECT_GT(maps[0].scale, 1);  // a stretch, not one value for every pixel
    VSIUnlink(path.c_str());

    // No data at all: nothing to stretch from, so the values are kept (not all mapped to the bottom).
    const std::string empty = "/vsimem/empty.tif";
    test::make_raster(empty, 2000, 2000, 1, GDT_Byte, [](int, int, int) { return 0; });
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(empty.c_str(), GA_Update)));
        ds->GetRasterBand(1)->SetNoDataValue(0);
    }
    const auto none = sample_band_statistics(RasterSource::open(empty), {1}, 2, 98);
    EXPECT_EQ(none[0].samples, 0);
    const auto kept = scaling_maps(spec, none, 1, 1, 255);
    EXPECT_EQ(kept[0].scale, 1);
    EXPECT_EQ(kept[0].offset, 0);
    VSIUnlink(empty.c_str());
}

}  // namespace
}  // namespace rsi
