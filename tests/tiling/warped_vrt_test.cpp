#include "tiling/warped_vrt.hpp"

#include <gdal_priv.h>
#include <gtest/gtest.h>

#include "test_support.hpp"
#include "tiling/gdal_dataset.hpp"

namespace rsi {
namespace {

TEST(WarpedVrt, BlockSideKeepsOneBlocksSourceWindowWithinTheBudget) {
    // GDAL's 512x128 blocks fit: no change
    EXPECT_EQ(warped_block_side(1.0, 4, 32 << 20), 0);
    EXPECT_EQ(warped_block_side(0.25, 4, 32 << 20), 0);  // upsampling reads fewer source pixels
    // a 75x reduction of a 3-band Byte image (plus its mask): 5625 source pixels of 4 bytes per pixel
    const int side = warped_block_side(75.0 * 75.0, 4, 32 << 20);
    EXPECT_EQ(side, 32);  // 32² x 5625 x 4 = 23 MB; 64² would be 92 MB
    // extreme reductions stop at 8x8 blocks
    EXPECT_EQ(warped_block_side(1e9, 4, 1 << 20), 8);
}

TEST(WarpedVrt, AStrongReductionGetsSmallBlocksAndTheSamePixels) {
    test::TempDir dir;
    const std::string image = dir / "big.tif";
    test::make_raster(image, 2048, 2048, 1, GDT_UInt16, [](int, int x, int y) { return (x * 3 + y * 5) % 1000; },
                      {"TILED=YES"});
    const double gt[6] = {500000, 0.1, 0, 4000000, 0, -0.1};
    test::georeference(image, gt, 32633);
    const RasterInfo grid = RasterSource::open(image).info();
    // 2048² into 32²: 4096 source pixels of 3 bytes (UInt16 + mask) behind each VRT pixel
    warp_to_vrt(image, "/vsimem/warped-small-blocks.vrt", grid, 32, 32, "average", nullptr, false, "test", 1 << 20);
    warp_to_vrt(image, "/vsimem/warped-default.vrt", grid, 32, 32, "average", nullptr, false, "test", int64_t{1} << 40);
    const DatasetPtr small = open_raster("/vsimem/warped-small-blocks.vrt");
    const DatasetPtr plain = open_raster("/vsimem/warped-default.vrt");
    int bx = 0, by = 0;
    small->GetRasterBand(1)->GetBlockSize(&bx, &by);
    EXPECT_EQ(bx, 8);  // 8² x 4096 x 3 = 786 KB within 1 MB; 16² would be 3 MB
    EXPECT_EQ(by, 8);
    plain->GetRasterBand(1)->GetBlockSize(&bx, &by);
    EXPECT_EQ(bx, 32);  // GDAL's 512x128, cut to the raster
    EXPECT_EQ(by, 32);
    const auto a = RasterSource::open("/vsimem/warped-small-blocks.vrt").read_float({0, 0, 32, 32}, {1});
    const auto b = RasterSource::open("/vsimem/warped-default.vrt").read_float({0, 0, 32, 32}, {1});
    EXPECT_EQ(a, b);
    // the first pixel averages source pixels 0..63 in x and y: 3 x 31.5 + 5 x 31.5 (no wrap: at most 504)
    EXPECT_NEAR(a[0], 31.5 * 3 + 31.5 * 5, 0.5);
    VSIUnlink("/vsimem/warped-small-blocks.vrt");
    VSIUnlink("/vsimem/warped-default.vrt");
}

}  // namespace
}  // namespace rsi
