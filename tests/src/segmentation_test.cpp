#include "src/segmentation.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

#include "src/output_file.hpp"
#include "test_support.hpp"
#include "tiling/error.hpp"
#include "tiling/raster_source.hpp"

namespace rsi {
namespace {

std::string fixture(const std::string& name) { return std::string(RSI_FIXTURES_DIR) + "/" + name; }

const models::Model& segmenter() {
    static const models::Model model = models::Model::load(fixture("tiny_segmenter.pt"));
    return model;
}

// A textured 3-band image with a UTM georeference.
std::string make_image(const test::TempDir& dir, int width, int height, const std::string& name = "image.tif") {
    const std::string path = dir / name;
    test::make_raster(path, width, height, 3, GDT_Byte, [](int b, int x, int y) {
        return std::fmod(127 + 100 * std::sin(0.21 * x + 0.13 * y * b) + 20 * std::cos(0.05 * x * y / (b + 1.0)), 256.0);
    });
    const double gt[6] = {500000, 0.3, 0, 4000000, 0, -0.3};
    test::georeference(path, gt, 32633);
    return path;
}

std::vector<float> read_all(const std::string& path, int band = 1) {
    const RasterSource s = RasterSource::open(path);
    return s.read_float({0, 0, s.info().width, s.info().height}, {band});
}

SegmentOptions options_for(const std::string& input, const std::string& output) {
    SegmentOptions o;
    o.input = input;
    o.output = output;
    o.tile_size = 32;
    o.overlap = 8;
    return o;
}

TEST(Segmentation, TiledEqualsTheWholeImageAsOneTile) {
    // The fixture is three 3x3 convolutions (receptive-field half-width 3, metadata halo 3): with
    // overlap >= 2 x halo + 1, global normalisation and zero padding in model space, tiling must
    // not change a single pixel, with the centre crop and with the halo-aware smooth tapers.
    test::TempDir dir;
    const std::string image = make_image(dir, 96, 96);
    // Constant edge: tiles are padded with zeros at the input, like one 128-pixel tile.
    // Shift edge: no tile reaches beyond the image, like one tile exactly the image's size.
    for (const auto& [edge, whole_tile] : {std::pair{EdgePolicy::constant, 128}, std::pair{EdgePolicy::shift, 96}}) {
        SegmentOptions whole = options_for(image, dir / "whole.tif");
        whole.tile_size = whole_tile;
        whole.edge = edge;
        whole.probabilities = dir / "whole_p.tif";
        whole.overwrite = true;
        EXPECT_EQ(segment_image(segmenter(), whole).tiles, 1);
        for (BlendKind blend : {BlendKind::center, BlendKind::hann, BlendKind::gaussian}) {
            SegmentOptions tiled = options_for(image, dir / "tiled.tif");
            tiled.blend = blend;
            tiled.edge = edge;
            tiled.probabilities = dir / "tiled_p.tif";
            tiled.overwrite = true;
            EXPECT_EQ(segment_image(segmenter(), tiled).tiles, 16);
            const std::string what = std::string(to_string(edge)) + " " + to_string(blend);
            EXPECT_EQ(read_all(dir / "tiled.tif"), read_all(dir / "whole.tif")) << what;
            const auto a = read_all(dir / "tiled_p.tif", 2), b = read_all(dir / "whole_p.tif", 2);
            float worst = 0;
            for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
            EXPECT_LT(worst, 1e-5f) << what;
        }
    }
}

// --tile-size auto: a larger tile whose grid computes fewer pixels, the same mask (the fixture's
// overlap 8 covers its halo, so tiling changes no pixel); resumable runs keep the model's tile.
TEST(Segmentation, AutoTileSizeComputesFewerPixelsForTheSameMask) {
    test::TempDir dir;
    const std::string image = make_image(dir, 300, 200);
    SegmentOptions native = options_for(image, dir / "native.tif");
    native.tile_size = 0;  // the model's: 64
    const SegmentResult n = segment_image(segmenter(), native);
    EXPECT_EQ(n.tile_size, 64);
    SegmentOptions autos = options_for(image, dir / "auto.tif");
    autos.tile_size = kAutoTileSize;
    const SegmentResult a = segment_image(segmenter(), autos);
    EXPECT_GT(a.tile_size, 64);
    EXPECT_LE(a.tile_size, 4 * 64);
    EXPECT_LT(a.tiles * a.tile_size * a.tile_size, n.tiles * 64 * 64);
    EXPECT_EQ(read_all(dir / "auto.tif"), read_all(dir / "native.tif"));
    SegmentOptions resumable = options_for(image, dir / "resumable.tif");
    resumable.tile_size = kAutoTileSize;
    resumable.resume = true;
    EXPECT_EQ(segment_image(segmenter(), resumable).tile_size, 64);
    EXPECT_EQ(read_all(dir / "resumable.tif"), read_all(dir / "native.tif"));
}

// An image smaller than the model's tile (64 here) runs as one tile of its own size (a contest crop is
// not padded out to the model's tile), which is the explicit --tile-size of that size.
TEST(Segmentation, ImageSmallerThanTheModelTileIsOneTileOfItsSize) {
    test::TempDir dir;
    const std::string image = make_image(dir, 40, 29);
    SegmentOptions automatic = options_for(image, dir / "auto.tif");
    automatic.tile_size = 0;  // the model's: 64
    automatic.overlap = -1;
    automatic.probabilities = dir / "auto_p.tif";
    const SegmentResult r = segment_image(segmenter(), automatic);
    EXPECT_EQ(r.tiles, 1);
    SegmentOptions explicit_size = options_for(image, dir / "explicit.tif");
    explicit_size.tile_size = 40;
    explicit_size.overlap = 0;
    explicit_size.probabilities = dir / "explicit_p.tif";
    EXPECT_EQ(segment_image(segmenter(), explicit_size).tiles, 1);
    EXPECT_EQ(read_all(dir / "auto_p.tif", 2), read_all(dir / "explicit_p.tif", 2));
    EXPECT_EQ(read_all(dir / "auto.tif"), read_all(dir / "explicit.tif"));
    // Padded out to the model's 64-pixel tile, the border pixels come out differently.
    SegmentOptions padded = options_for(image, dir / "padded.tif");
    padded.tile_size = 64;
    padded.overlap = 8;
    padded.edge = EdgePolicy::constant;
    padded.probabilities = dir / "padded_p.tif";
    segment_image(segmenter(), padded);
    EXPECT_NE(read_all(dir / "padded_p.tif", 2), read_all(dir / "auto_p.tif", 2));
}

TEST(Segmentation, OutputIsGeoreferencedLikeTheInputWithALegend) {
    test::TempDir dir;
    const std::string image = make_image(dir, 90, 50);
    segment_image(segmenter(), options_for(image, dir / "mask.tif"));
    const RasterSource in = RasterSource::open(image), out = RasterSource::open(dir / "mask.tif");
    EXPECT_EQ(out.info().width, 90);
    EXPECT_EQ(out.info().height, 50);
    EXPECT_EQ(out.info().geotransform, in.info().geotransform);
    EXPECT_EQ(out.info().epsg.value_or(0), 32633);
    EXPECT_EQ(out.info().data_type, GDT_Byte);
    EXPECT_EQ(out.info().bands[0].nodata.value_or(0), 255);
    GDALRasterBand* band = out.dataset().GetRasterBand(1);
    ASSERT_TRUE(band->GetColorTable());
    EXPECT_EQ(band->GetColorTable()->GetColorEntry(1)->c1, 255);  // building colour from the metadata
    char** names = band->GetCategoryNames();
    ASSERT_TRUE(names);
    EXPECT_STREQ(names[0], "background");
    EXPECT_STREQ(names[1], "building");
    for (float v : read_all(dir / "mask.tif")) ASSERT_TRUE(v == 0 || v == 1);
}

TEST(Segmentation, ResamplesToTheModelPixelSizeAndBack) {
    test::TempDir dir;
    const std::string image = dir / "coarse.tif";
    // 0.6 m pixels for a 0.3 m model: read at twice the size, mapped back to the image grid.
    test::make_raster(image, 60, 40, 3, GDT_Byte, [](int b, int x, int y) { return (x * 11 + y * 7 * b) % 256; });
    const double gt[6] = {500000, 0.6, 0, 4000000, 0, -0.6};
    test::georeference(image, gt, 32633);
    SegmentOptions o = options_for(image, dir / "mask.tif");
    o.probabilities = dir / "p.tif";
    const SegmentResult r = segment_image(segmenter(), o);
    EXPECT_DOUBLE_EQ(r.resample_x, 2.0);
    EXPECT_DOUBLE_EQ(r.resample_y, 2.0);
    EXPECT_EQ(r.tiles, 15);  // the 120 x 80 model grid: 5 x 3 tiles of 32 at stride 24
    EXPECT_TRUE(r.warnings.empty());
    const RasterSource out = RasterSource::open(o.output);
    EXPECT_EQ(out.info().width, 60);
    EXPECT_EQ(out.info().height, 40);
    EXPECT_EQ(out.info().geotransform, RasterSource::open(image).info().geotransform);
    EXPECT_EQ(r.class_pixels[0] + r.class_pixels[1], 60 * 40);
    for (const auto& entry : std::filesystem::directory_iterator(dir.str())) {
        EXPECT_EQ(entry.path().filename().string().find("model-grid"), std::string::npos) << entry.path();
    }
    // Native pixels on request, with a warning about the pixel size.
    SegmentOptions native = options_for(image, dir / "native.tif");
    native.resample = false;
    const SegmentResult n = segment_image(segmenter(), native);
    EXPECT_DOUBLE_EQ(n.resample_x, 1.0);
    ASSERT_EQ(n.warnings.size(), 1u);
    EXPECT_NE(n.warnings[0].find("pixel size 0.6 m"), std::string::npos) << n.warnings[0];
}

// Resampling back reads the image in column segments when full rows would outgrow the budget (a
// 100000-pixel-wide image took 230 MB per 256 rows): the outputs are those of a roomy budget.
TEST(Segmentation, ResamplingBackInColumnSegmentsGivesTheSameOutputs) {
    test::TempDir dir;
    const std::string image = dir / "wide.tif";
    test::make_raster(image, 9000, 12, 3, GDT_Byte, [](int b, int x, int y) { return (x * 11 + y * 7 * b) % 256; });
    const double gt[6] = {500000, 0.6, 0, 4000000, 0, -0.6};
    test::georeference(image, gt, 32633);
    SegmentOptions roomy = options_for(image, dir / "roomy.tif");
    roomy.probabilities = dir / "roomy-p.tif";
    const SegmentResult a = segment_image(segmenter(), roomy);
    SegmentOptions tight = options_for(image, dir / "tight.tif");
    tight.probabilities = dir / "tight-p.tif";
    tight.memory_budget_mb = 80;  // segments of 8704 columns (80 MB / 4 / (256 rows x 9 bytes)): 9000 = 8704 + 296
    const SegmentResult b = segment_image(segmenter(), tight);
    EXPECT_DOUBLE_EQ(b.resample_x, 2.0);
    EXPECT_EQ(a.class_pixels, b.class_pixels);
    EXPECT_EQ(RasterSource::open(roomy.output).read_float({0, 0, 9000, 12}, {1}),
              RasterSource::open(tight.output).read_float({0, 0, 9000, 12}, {1}));
    EXPECT_EQ(RasterSource::open(roomy.probabilities).read_float({0, 0, 9000, 12}, {1, 2}),
              RasterSource::open(tight.probabilities).read_float({0, 0, 9000, 12}, {1, 2}));
}

// An error while the resampled copy is read names the user's image, not the internal VRT.
TEST(Segmentation, ErrorsOfTheResampledReadNameTheImage) {
    test::TempDir dir;
    const std::string image = dir / "torn.tif";
    test::make_raster(image, 300, 300, 3, GDT_Byte, [](int b, int x, int y) { return (x * 7 + y * b) % 256; },
                      {"TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64", "COMPRESS=DEFLATE"});
    const double gt[6] = {500000, 0.6, 0, 4000000, 0, -0.6};
    test::georeference(image, gt, 32633);
    {  // a damaged copy: the compressed tiles in the middle of the file overwritten
        std::fstream file(image, std::ios::in | std::ios::out | std::ios::binary);
        const auto size = static_cast<std::streamoff>(std::filesystem::file_size(image));
        file.seekp(size / 4);
        const std::string junk(static_cast<size_t>(size / 3), '\xff');
        file.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    CPLPushErrorHandler(CPLQuietErrorHandler);
    try {
        segment_image(segmenter(), options_for(image, dir / "mask.tif"));
        ADD_FAILURE() << "a torn image was segmented";
    } catch (const Error& e) {
        const std::string message = e.what();
        EXPECT_EQ(message.find("/vsimem/"), std::string::npos) << message;
        EXPECT_NE(message.find("torn.tif (read at the model's pixel size)"), std::string::npos) << message;
    }
    CPLPopErrorHandler();
    EXPECT_FALSE(std::filesystem::exists(dir / "mask.tif"));
}

// The model-grid copy is north-up over the image's extent: a south-up (or rotated) image at another
// pixel size came back mirrored (IoU 0.07 with the right mask on a real Vegas crop). It now runs at
// its own pixel size, said in a warning, refused with --strict; so is a resampling by more than 4x.
TEST(Segmentation, SouthUpOrFarOffPixelSizesAreNotResampledSilently) {
    test::TempDir dir;
    const std::string image = dir / "south.tif";
    test::make_raster(image, 60, 40, 3, GDT_Byte, [](int b, int x, int y) { return (x * 11 + y * 7 * b) % 256; });
    const double south_up[6] = {500000, 0.6, 0, 4000000 - 24, 0, 0.6};
    test::georeference(image, south_up, 32633);
    SegmentOptions o = options_for(image, dir / "mask.tif");
    const SegmentResult r = segment_image(segmenter(), o);
    EXPECT_DOUBLE_EQ(r.resample_x, 1.0);
    EXPECT_EQ(r.tiles, 6);  // the 60 x 40 image itself: 3 x 2 tiles of 32 at stride 24
    ASSERT_FALSE(r.warnings.empty());
    EXPECT_NE(r.warnings.back().find("not north-up"), std::string::npos) << r.warnings.back();
    SegmentOptions native = options_for(image, dir / "native.tif");
    native.resample = false;
    segment_image(segmenter(), native);
    EXPECT_EQ(RasterSource::open(o.output).read_float({0, 0, 60, 40}, {1}), RasterSource::open(native.output).read_float({0, 0, 60, 40}, {1}));
    SegmentOptions strict = options_for(image, dir / "strict.tif");
    strict.strict = true;
    test::expect_error([&] { segment_image(segmenter(), strict); }, ErrorKind::runtime, "not north-up");
    EXPECT_FALSE(std::filesystem::exists(strict.output));
    // 1.5 m pixels for the 0.3 m model: a 5x resampling, done with a warning, refused with --strict
    const std::string coarse = dir / "coarse.tif";
    test::make_raster(coarse, 20, 12, 3, GDT_Byte, [](int b, int x, int y) { return (x * 11 + y * 7 * b) % 256; });
    const double gt[6] = {500000, 1.5, 0, 4000000, 0, -1.5};
    test::georeference(coarse, gt, 32633);
    const SegmentResult far = segment_image(segmenter(), options_for(coarse, dir / "far.tif"));
    EXPECT_DOUBLE_EQ(far.resample_x, 5.0);
    ASSERT_FALSE(far.warnings.empty());
    EXPECT_NE(far.warnings.back().find("resampled by x5"), std::string::npos) << far.warnings.back();
    SegmentOptions far_strict = options_for(coarse, dir / "far_strict.tif");
    far_strict.strict = true;
    test::expect_error([&] { segment_image(segmenter(), far_strict); }, ErrorKind::runtime, "resampled by x5");
}

// A mask band marks no-data pixels like an alpha band does; resampled through the model grid it was
// lost (masked pixels became valid zeros and were segmented). Both now give the same mask.
TEST(Segmentation, AMaskBandSurvivesResamplingLikeAnAlphaBand) {
    test::TempDir dir;
    const auto pixel = [](int b, int x, int y) { return (x * 11 + y * 7 * b) % 256; };
    const double gt[6] = {500000, 0.6, 0, 4000000, 0, -0.6};
    const std::string masked = dir / "masked.tif", alpha = dir / "alpha.tif";
    test::make_raster(masked, 60, 40, 3, GDT_Byte, pixel);
    test::make_raster(alpha, 60, 40, 4, GDT_Byte, [&](int b, int x, int y) { return b == 4 ? (x < 20 ? 0 : 255) : pixel(b, x, y); });
    for (const std::string& path : {masked, alpha}) {
        test::georeference(path, gt, 32633);
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(path.c_str(), GA_Update)));
        if (path == alpha) {
            ds->GetRasterBand(4)->SetColorInterpretation(GCI_AlphaBand);
            continue;
        }
        ASSERT_EQ(ds->CreateMaskBand(GMF_PER_DATASET), CE_None);
        std::vector<uint8_t> mask(60 * 40);
        for (int y = 0; y < 40; ++y)
            for (int x = 0; x < 60; ++x) mask[static_cast<size_t>(y * 60 + x)] = x < 20 ? 0 : 255;
        ASSERT_EQ(ds->GetRasterBand(1)->GetMaskBand()->RasterIO(GF_Write, 0, 0, 60, 40, mask.data(), 60, 40, GDT_Byte, 0, 0), CE_None);
    }
    const SegmentResult a = segment_image(segmenter(), options_for(masked, dir / "m.tif"));
    const SegmentResult b = segment_image(segmenter(), options_for(alpha, dir / "a.tif"));
    EXPECT_DOUBLE_EQ(a.resample_x, 2.0);
    EXPECT_EQ(a.nodata_pixels, 20 * 40);
    EXPECT_EQ(b.nodata_pixels, 20 * 40);
    EXPECT_EQ(RasterSource::open(dir / "m.tif").read_float({0, 0, 60, 40}, {1}), RasterSource::open(dir / "a.tif").read_float({0, 0, 60, 40}, {1}));
}

// A --batch beyond the tile count runs only the tiles there are (64 on a one-tile image took 7x the
// time and 1.9 GB of zero-padded tiles; 65536 ended in std::bad_alloc).
TEST(Segmentation, ABatchLargerThanTheTilesIsCutToThem) {
    test::TempDir dir;
    const std::string image = make_image(dir, 60, 40);
    SegmentOptions o = options_for(image, dir / "mask.tif");
    o.batch = 65536;
    const SegmentResult r = segment_image(segmenter(), o);
    EXPECT_EQ(r.batch, r.tiles);
    EXPECT_LT(r.tiles, 65536);
}

// NaN in a float image without a declared nodata value is no data on the resampled path too, exactly
// where it is: the warp spread it into the valid neighbours (the block came back a pixel or two larger
// on every side), and the validity read back from the image ignored it.
TEST(Segmentation, UndeclaredNanIsNodataExactlyThereWhenResampled) {
    test::TempDir dir;
    const std::string image = dir / "nan.tif";
    const auto inside = [](int x, int y) { return x >= 20 && x < 40 && y >= 10 && y < 30; };
    test::make_raster(image, 60, 40, 3, GDT_Float32, [&](int b, int x, int y) {
        return inside(x, y) ? std::nan("") : static_cast<double>((x * 11 + y * 7 * b) % 256);
    });
    const double gt[6] = {500000, 0.6, 0, 4000000, 0, -0.6};
    test::georeference(image, gt, 32633);
    const SegmentResult r = segment_image(segmenter(), options_for(image, dir / "mask.tif"));
    EXPECT_DOUBLE_EQ(r.resample_x, 2.0);
    EXPECT_EQ(r.nodata_pixels, 20 * 20);
    const std::vector<float> mask = RasterSource::open(dir / "mask.tif").read_float({0, 0, 60, 40}, {1});
    for (int y = 0; y < 40; ++y) {
        for (int x = 0; x < 60; ++x) ASSERT_EQ(mask[static_cast<size_t>(y * 60 + x)] == 255, inside(x, y)) << x << "," << y;
    }
}

TEST(Segmentation, NodataIsSkippedAndNeverBecomesABuilding) {
    test::TempDir dir;
    const std::string image = dir / "nodata.tif";
    // Left 40 columns are nodata (0 in every band).
    test::make_raster(image, 100, 40, 3, GDT_Byte, [](int b, int x, int y) { return x < 40 ? 0 : 50 + (x * b + y) % 150; });
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(image.c_str(), GA_Update)));
        for (int b = 1; b <= 3; ++b) ds->GetRasterBand(b)->SetNoDataValue(0);
    }
    SegmentOptions o = options_for(image, dir / "mask.tif");
    o.overlap = 0;
    o.edge = EdgePolicy::constant;
    o.min_confidence = 0;
    const SegmentResult r = segment_image(segmenter(), o);
    EXPECT_EQ(r.tiles, 8);           // 4 x 2 tiles of 32
    EXPECT_EQ(r.tiles_skipped, 2);   // the first column of tiles holds no data
    EXPECT_EQ(r.nodata_pixels, 40 * 40);
    const auto mask = read_all(dir / "mask.tif");
    for (int64_t y = 0; y < 40; ++y)
        for (int64_t x = 0; x < 100; ++x) {
            const float v = mask[static_cast<size_t>(y * 100 + x)];
            if (x < 40) ASSERT_EQ(v, 255) << x << "," << y;
            else ASSERT_LT(v, 2) << x << "," << y;
        }
}

TEST(Segmentation, BatchCompositionAndRepeatRunsGiveIdenticalOutputs) {
    test::TempDir dir;
    const std::string image = make_image(dir, 120, 90);
    std::vector<std::vector<float>> probabilities;
    for (int64_t batch : {1, 4, 4}) {
        SegmentOptions o = options_for(image, dir / ("mask" + std::to_string(probabilities.size()) + ".tif"));
        o.batch = batch;
        o.probabilities = dir / ("p" + std::to_string(probabilities.size()) + ".tif");
        segment_image(segmenter(), o);
        probabilities.push_back(read_all(o.probabilities, 2));
    }
    EXPECT_EQ(probabilities[0], probabilities[1]) << "batch 1 vs batch 4";
    EXPECT_EQ(probabilities[1], probabilities[2]) << "repeat run";
}

// Several runner threads finish batches out of order; the writer blends them in grid order, so the
// probabilities are the same bytes as with one runner.
TEST(Segmentation, SeveralRunnersGiveTheSameOutputsAsOne) {
    test::TempDir dir;
    const std::string image = make_image(dir, 200, 150);
    std::vector<std::vector<float>> probabilities;
    for (int runners : {1, 3}) {
        SegmentOptions o = options_for(image, dir / ("mask" + std::to_string(runners) + ".tif"));
        o.batch = 2;
        o.model_runners = runners;
        o.probabilities = dir / ("p" + std::to_string(runners) + ".tif");
        const SegmentResult r = segment_image(segmenter(), o);
        EXPECT_EQ(r.model_runners, runners);
        EXPECT_EQ(r.tiles_run, r.tiles);
        probabilities.push_back(read_all(o.probabilities, 2));
    }
    EXPECT_EQ(probabilities[0], probabilities[1]);
    // Resumable runs keep one runner unless asked (their fixed batch of 4 would double in memory).
    SegmentOptions journaled = options_for(image, dir / "journaled.tif");
    journaled.resume = true;
    EXPECT_EQ(segment_image(segmenter(), journaled).model_runners, 1);
}

TEST(Segmentation, TestTimeAugmentationAveragesValidProbabilities) {
    test::TempDir dir;
    const std::string image = make_image(dir, 64, 64);
    SegmentOptions plain = options_for(image, dir / "a.tif");
    plain.probabilities = dir / "pa.tif";
    segment_image(segmenter(), plain);
    SegmentOptions d4 = options_for(image, dir / "b.tif");
    d4.probabilities = dir / "pb.tif";
    d4.tta = Tta::d4;
    d4.uncertainty = true;
    segment_image(segmenter(), d4);
    const auto a = read_all(dir / "pa.tif", 2), b = read_all(dir / "pb.tif", 2), h = read_all(dir / "pb.tif", 3);
    EXPECT_NE(a, b);  // the tiny net is not rotation invariant
    for (size_t i = 0; i < b.size(); ++i) {
        ASSERT_GE(b[i], 0.0f);
        ASSERT_LE(b[i], 1.0f);
        ASSERT_GE(h[i], 0.0f);  // normalised entropy
        ASSERT_LE(h[i], 1.0f + 1e-6f);
    }
}

// A tiled source is read in row segments of about 4096 columns (TileReader), a striped one in whole
// rows: the storage must not change a single output value. 4400 columns of 32-pixel tiles at stride
// 24 make two segments per tile row.
TEST(Segmentation, TiledAndStripedStorageGiveIdenticalOutputs) {
    test::TempDir dir;
    const auto value = [](int b, int x, int y) {
        return std::fmod(127 + 100 * std::sin(0.21 * x + 0.13 * y * b) + 20 * std::cos(0.05 * x * y / (b + 1.0)), 256.0);
    };
    const std::string striped = dir / "striped.tif", tiled = dir / "tiled.tif";
    test::make_raster(striped, 4400, 40, 3, GDT_Byte, value);
    test::make_raster(tiled, 4400, 40, 3, GDT_Byte, value, {"TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=16"});
    ASSERT_EQ(RasterSource::open(striped).info().bands[0].block_width, 4400);
    for (EdgePolicy edge : {EdgePolicy::shift, EdgePolicy::constant}) {
        std::vector<std::vector<float>> masks, probabilities;
        for (const std::string& input : {striped, tiled}) {
            SegmentOptions o = options_for(input, dir / "mask.tif");
            o.edge = edge;
            o.probabilities = dir / "p.tif";
            o.overwrite = true;
            EXPECT_GT(segment_image(segmenter(), o).tiles, 2 * (4096 / 24));
            masks.push_back(read_all(o.output));
            probabilities.push_back(read_all(o.probabilities, 2));
        }
        EXPECT_EQ(masks[0], masks[1]) << to_string(edge);
        EXPECT_EQ(probabilities[0], probabilities[1]) << to_string(edge);
    }
}

TEST(Segmentation, MemoryPlanDoesNotGrowWithImageHeight) {
    test::TempDir dir;
    const auto short_run = segment_image(segmenter(), options_for(make_image(dir, 64, 64, "short.tif"), dir / "s.tif"));
    SegmentOptions tall = options_for(make_image(dir, 64, 2048, "tall.tif"), dir / "t.tif");
    tall.batch = short_run.batch;
    const auto tall_run = segment_image(segmenter(), tall);
    EXPECT_EQ(tall_run.peak_buffer_bytes, short_run.peak_buffer_bytes);
}

TEST(Segmentation, BadRequestsFailClearlyWithoutOutput) {
    test::TempDir dir;
    test::QuietGdal quiet;
    const std::string image = make_image(dir, 40, 40);
    auto message = [&](const SegmentOptions& o, const models::Model& m) {
        try {
            segment_image(m, o);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    const models::Model scene = models::Model::load(fixture("tiny_scene.pt"));
    EXPECT_NE(message(options_for(image, dir / "x.tif"), scene).find("is a scene model, not a segmentation model"), std::string::npos);
    SegmentOptions bands = options_for(image, dir / "x.tif");
    bands.bands = {1, 2};
    EXPECT_NE(message(bands, segmenter()).find("expects 3 bands"), std::string::npos);
    SegmentOptions uncertain = options_for(image, dir / "x.tif");
    uncertain.uncertainty = true;
    EXPECT_NE(message(uncertain, segmenter()).find("--uncertainty"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(dir / "x.tif"));
    segment_image(segmenter(), options_for(image, dir / "y.tif"));
    EXPECT_NE(message(options_for(image, dir / "y.tif"), segmenter()).find("--overwrite"), std::string::npos);
    // Cancelling mid-way leaves no output and no temporary file.
    SegmentOptions cancel = options_for(image, dir / "z.tif");
    int calls = 0;
    EXPECT_THROW(segment_image(segmenter(), cancel, [&](double, std::string_view) { return ++calls < 3; }), Error);
    for (const auto& entry : std::filesystem::directory_iterator(dir.str())) {
        EXPECT_EQ(entry.path().filename().string().find(".rsi-tmp"), std::string::npos) << entry.path();
        EXPECT_NE(entry.path().filename().string(), "z.tif");
    }
}

}  // namespace
}  // namespace rsi

namespace rsi {

namespace {

void expect_same_raster(const std::string& a, const std::string& b) {
    const RasterSource x = RasterSource::open(a), y = RasterSource::open(b);
    ASSERT_EQ(x.info().band_count(), y.info().band_count());
    EXPECT_EQ(x.info().geotransform, y.info().geotransform);
    EXPECT_EQ(x.info().crs_wkt, y.info().crs_wkt);
    for (int band = 1; band <= x.info().band_count(); ++band) EXPECT_EQ(read_all(a, band), read_all(b, band)) << "band " << band;
}

}  // namespace

// Shards of one image, merged, equal the direct run: every strip's pixels sum the same tile terms in
// the same order (halo rows are run again, unwritten), and batches are anchored to the tile index.
TEST(Segmentation, ShardsMergedEqualTheDirectRun) {
    test::TempDir dir;
    const std::string image = make_image(dir, 130, 150);
    SegmentOptions direct = options_for(image, dir / "direct.tif");
    direct.probabilities = dir / "direct_p.tif";
    direct.uncertainty = true;
    direct.batch = 3;
    segment_image(segmenter(), direct);
    for (int k : {2, 0, 1}) {  // any order
        SegmentOptions o = direct;
        o.output = dir / "sharded.tif";
        o.probabilities = dir / "sharded_p.tif";
        o.shard = ShardSpec{k, 3};
        const SegmentResult r = segment_image(segmenter(), o);
        EXPECT_FALSE(r.assembled);
        EXPECT_EQ(r.strips_run, r.shard_strips);
        EXPECT_FALSE(std::filesystem::exists(o.output));
        if (k == 2) {
            // A sibling shard asking for other outputs (here no probability raster) would be
            // ignored by the merge: refused, naming what differs.
            SegmentOptions fewer = o;
            fewer.shard = ShardSpec{0, 3};
            fewer.probabilities.clear();
            fewer.uncertainty = false;
            test::expect_error([&] { segment_image(segmenter(), fewer); }, ErrorKind::usage, "started with other outputs: probabilities");
            // Nor may one run the model with other numbers: a normalisation override, another precision.
            SegmentOptions sibling = o;
            sibling.shard = ShardSpec{0, 3};
            models::ModelOptions mean;
            mean.overrides.mean = {0.3f, 0.3f, 0.3f};
            test::expect_error([&] { segment_image(models::Model::load(fixture("tiny_segmenter.pt"), mean), sibling); }, ErrorKind::usage,
                               "holds parts of another job (model_metadata ");  // names what differs
            models::ModelOptions bf16;
            bf16.precision = models::Precision::bf16;
            test::expect_error([&] { segment_image(models::Model::load(fixture("tiny_segmenter.pt"), bf16), sibling); }, ErrorKind::usage,
                               "holds parts of another job (precision fp32 -> bf16)");
            SegmentOptions center = sibling;  // settings named, not enum numbers ("blend 0 -> 5")
            center.blend = BlendKind::center;
            test::expect_error([&] { segment_image(segmenter(), center); }, ErrorKind::usage, "holds parts of another job (blend hann -> center)");
        }
        if (k == 2) {  // not all shards done yet: merge names the missing one
            MergeOptions m;
            m.parts_dir = o.output + ".parts";
            try {
                merge_segmentation(m);
                FAIL() << "merge of an incomplete job";
            } catch (const Error& e) {
                EXPECT_NE(std::string(e.what()).find("shard 0/3 has not started"), std::string::npos) << e.what();
            }
        }
    }
    MergeOptions m;
    m.parts_dir = dir / "sharded.tif.parts";
    const MergeResult merged = merge_segmentation(m);
    EXPECT_EQ(merged.shards, 3);
    EXPECT_EQ(merged.output, dir / "sharded.tif");
    expect_same_raster(dir / "direct.tif", dir / "sharded.tif");
    expect_same_raster(dir / "direct_p.tif", dir / "sharded_p.tif");
    EXPECT_FALSE(std::filesystem::exists(m.parts_dir));
}

// An image that is resampled to the model's pixel size: shards journal strips of the model grid, and
// the merge resamples back as the single-process run does (job.json carries the image grid and path).
TEST(Segmentation, ResampledShardsMergedEqualTheDirectRun) {
    test::TempDir dir;
    const std::string image = dir / "coarse.tif";
    test::make_raster(image, 70, 90, 3, GDT_Byte, [](int b, int x, int y) { return (x * 11 + y * 7 * b) % 256; });
    const double gt[6] = {500000, 0.6, 0, 4000000, 0, -0.6};  // 0.6 m for the 0.3 m model
    test::georeference(image, gt, 32633);
    SegmentOptions direct = options_for(image, dir / "direct.tif");
    direct.probabilities = dir / "direct_p.tif";
    direct.uncertainty = true;
    direct.batch = 3;
    const SegmentResult d = segment_image(segmenter(), direct);
    EXPECT_DOUBLE_EQ(d.resample_x, 2.0);
    for (int k : {1, 0}) {
        SegmentOptions o = direct;
        o.output = dir / "sharded.tif";
        o.probabilities = dir / "sharded_p.tif";
        o.shard = ShardSpec{k, 2};
        const SegmentResult r = segment_image(segmenter(), o);
        EXPECT_FALSE(r.assembled);
        EXPECT_FALSE(std::filesystem::exists(o.output));
    }
    MergeOptions m;
    m.parts_dir = dir / "sharded.tif.parts";
    m.vrt = true;
    EXPECT_THROW(merge_segmentation(m), Error);  // resampled back into one file, not strips
    m.vrt = false;
    const MergeResult merged = merge_segmentation(m);
    EXPECT_EQ(merged.width, 70);
    EXPECT_EQ(merged.height, 90);
    EXPECT_EQ(merged.class_pixels, d.class_pixels);
    expect_same_raster(dir / "direct.tif", dir / "sharded.tif");
    expect_same_raster(dir / "direct_p.tif", dir / "sharded_p.tif");
    for (const auto& entry : std::filesystem::directory_iterator(dir.str())) {
        EXPECT_EQ(entry.path().filename().string().find("model-grid"), std::string::npos) << entry.path();
    }
}

// `--vrt`: one GeoTIFF per strip and a VRT mosaic (relative paths) that reads back as the direct run,
// legend included; the VRT and its folder can move together.
TEST(Segmentation, ShardsMergedAsVrtReadBackAsTheDirectRun) {
    test::TempDir dir;
    const std::string image = make_image(dir, 90, 120);
    SegmentOptions direct = options_for(image, dir / "direct.tif");
    direct.probabilities = dir / "direct_p.tif";
    direct.batch = 2;
    segment_image(segmenter(), direct);
    const auto run_two_shards = [&](const std::string& stem) {
        for (int k : {0, 1}) {
            SegmentOptions o = direct;
            o.output = dir / (stem + ".tif");
            o.probabilities = dir / (stem + "_p.tif");
            o.shard = ShardSpec{k, 2};
            segment_image(segmenter(), o);
        }
    };
    run_two_shards("sharded");
    MergeOptions m;
    m.parts_dir = dir / "sharded.tif.parts";
    m.vrt = true;
    const MergeResult merged = merge_segmentation(m);
    EXPECT_EQ(merged.output, dir / "sharded.vrt");
    EXPECT_EQ(merged.probabilities, dir / "sharded_p.vrt");
    EXPECT_EQ(merged.strips_dir, dir / "sharded_strips");
    EXPECT_FALSE(std::filesystem::exists(dir / "sharded.tif"));
    std::filesystem::create_directory(dir / "moved");
    for (const char* name : {"sharded.vrt", "sharded_p.vrt", "sharded_strips", "sharded_p_strips"}) {
        std::filesystem::rename(dir / name, dir / ("moved/" + std::string(name)));
    }
    for (const auto& [a, b] : {std::pair{dir / "direct.tif", dir / "moved/sharded.vrt"}, std::pair{dir / "direct_p.tif", dir / "moved/sharded_p.vrt"}}) {
        const RasterSource x = RasterSource::open(a), y = RasterSource::open(b);
        ASSERT_EQ(x.info().band_count(), y.info().band_count());
        EXPECT_EQ(x.info().geotransform, y.info().geotransform);
        EXPECT_EQ(y.info().epsg.value_or(0), 32633);  // the VRT spells the same CRS in WKT1
        for (int band = 1; band <= x.info().band_count(); ++band) {
            EXPECT_EQ(read_all(a, band), read_all(b, band)) << b << " band " << band;
            // What the bands say of themselves (class, p_building, ...) and the dataset's metadata.
            EXPECT_STREQ(x.dataset().GetRasterBand(band)->GetDescription(), y.dataset().GetRasterBand(band)->GetDescription()) << b;
        }
        EXPECT_STREQ(x.dataset().GetMetadataItem("AREA_OR_POINT"), y.dataset().GetMetadataItem("AREA_OR_POINT")) << b;
    }
    const RasterSource vrt = RasterSource::open(dir / "moved/sharded.vrt");
    // Values without a class are opaque in the palette, as the GeoTIFF's read back (only nodata is clear).
    EXPECT_EQ(vrt.dataset().GetRasterBand(1)->GetColorTable()->GetColorEntry(7)->c4, 255);
    EXPECT_EQ(vrt.dataset().GetRasterBand(1)->GetColorTable()->GetColorEntry(255)->c4, 0);
    char** names = vrt.dataset().GetRasterBand(1)->GetCategoryNames();
    ASSERT_TRUE(names);
    EXPECT_STREQ(names[1], "building");
    EXPECT_TRUE(vrt.dataset().GetRasterBand(1)->GetColorTable());
    EXPECT_FALSE(std::filesystem::exists(m.parts_dir));
    // The probabilities' VRT in another folder gets its own strips folder beside it, so it too moves.
    run_two_shards("again");
    std::filesystem::create_directories(dir / "probs");
    MergeOptions elsewhere;
    elsewhere.parts_dir = dir / "again.tif.parts";
    elsewhere.vrt = true;
    elsewhere.probabilities = dir / "probs/p.vrt";
    merge_segmentation(elsewhere);
    std::filesystem::rename(dir / "probs", dir / "probs_moved");
    EXPECT_EQ(read_all(dir / "direct_p.tif", 1), read_all(dir / "probs_moved/p.vrt", 1));
    // The VRTs are written before anything is renamed: a VRT another run wrote meanwhile leaves no strips
    // folder and no VRT of this run, and the parts to merge again (the folders were renamed first).
    run_two_shards("third");
    MergeOptions raced;
    raced.parts_dir = dir / "third.tif.parts";
    raced.vrt = true;
    bool written = false;
    const auto other_run_writes_the_vrt = [&](double, std::string_view) {
        if (!written) test::write_text_file(dir / "third.vrt", "theirs");
        written = true;
        return true;
    };
    test::expect_error([&] { merge_segmentation(raced, other_run_writes_the_vrt); }, ErrorKind::runtime,
                       "third.vrt: appeared while this run was writing it");
    EXPECT_EQ(test::read_text_file(dir / "third.vrt"), "theirs");
    for (const char* name : {"third_strips", "third_p_strips", "third_p.vrt"}) EXPECT_FALSE(std::filesystem::exists(dir / name)) << name;
    EXPECT_TRUE(std::filesystem::exists(raced.parts_dir));
    for (const std::string& name : test::names_in_folder(dir.str())) EXPECT_EQ(name.find(".rsi-tmp"), std::string::npos) << name;
}

// A file another run wrote at one of the outputs while this run worked fails the run at its end (a
// runtime error naming it, not a usage one) with none of its outputs in place: the mask is not renamed
// when its probabilities cannot be, on the native and the resampled path, and a later output of the
// caller (before_commit: a preview, a manifest) is checked with them.
TEST(Segmentation, AnOutputWrittenMeanwhileLeavesNoneOfTheRunsOutputs) {
    test::TempDir dir;
    const std::string image = make_image(dir, 70, 50);
    const std::string coarse = dir / "coarse.tif";  // 0.6 m pixels: the resampled path
    test::make_raster(coarse, 40, 30, 3, GDT_Byte, [](int b, int x, int y) { return (x * 11 + y * 7 * b) % 256; });
    const double gt[6] = {500000, 0.6, 0, 4000000, 0, -0.6};
    test::georeference(coarse, gt, 32633);
    for (const std::string& input : {image, coarse}) {
        SCOPED_TRACE(input);
        SegmentOptions o = options_for(input, dir / "mask.tif");
        o.probabilities = dir / "p.tif";
        bool written = false;
        const auto other_run_writes_probabilities = [&](double, std::string_view) {
            if (!written) test::write_text_file(o.probabilities, "theirs");
            written = true;
            return true;
        };
        test::expect_error([&] { segment_image(segmenter(), o, other_run_writes_probabilities); }, ErrorKind::runtime,
                           "p.tif: appeared while this run was writing it");
        EXPECT_FALSE(std::filesystem::exists(o.output));
        EXPECT_EQ(test::read_text_file(o.probabilities), "theirs");
        std::filesystem::remove(o.probabilities);
        // The caller's preview appeared meanwhile: neither the mask nor the probabilities are renamed.
        const std::string preview = dir / "preview.png";
        test::write_text_file(preview, "theirs");
        o.before_commit = [&] { check_output_path_again(preview, false); };
        test::expect_error([&] { segment_image(segmenter(), o); }, ErrorKind::runtime, "preview.png: appeared while this run was writing it");
        std::filesystem::remove(preview);
        EXPECT_EQ(test::names_in_folder(dir.str()), (std::vector<std::string>{"coarse.tif", "image.tif"}));  // no output, no temporary
        // With the path free the same run writes both.
        segment_image(segmenter(), o);
        EXPECT_TRUE(std::filesystem::exists(o.output));
        EXPECT_TRUE(std::filesystem::exists(o.probabilities));
        remove_with_sidecars(o.output);
        remove_with_sidecars(o.probabilities);
    }
}

// A run stopped part-way (here: only shard 0 of 1's first strips exist because the progress callback
// cancelled) continues from its journal to the same result; other options are refused.
TEST(Segmentation, ResumeAfterCancelEqualsTheDirectRun) {
    test::TempDir dir;
    const std::string image = make_image(dir, 100, 140);
    SegmentOptions direct = options_for(image, dir / "direct.tif");
    direct.batch = 2;
    segment_image(segmenter(), direct);
    SegmentOptions o = direct;
    o.output = dir / "resumed.tif";
    o.resume = true;
    EXPECT_THROW(segment_image(segmenter(), o, [](double f, std::string_view) { return f < 0.4; }), Error);
    EXPECT_FALSE(std::filesystem::exists(o.output));
    ASSERT_TRUE(std::filesystem::exists(o.output + ".parts/shard-0-of-1.journal"));
    SegmentOptions other = o;
    other.tile_size = 64;
    other.overlap = 16;
    try {
        segment_image(segmenter(), other);
        FAIL() << "resume with another tile size";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::usage);
        EXPECT_NE(std::string(e.what()).find("parts of another job"), std::string::npos) << e.what();
    }
    const SegmentResult r = segment_image(segmenter(), o);
    EXPECT_GT(r.strips_resumed, 0);
    EXPECT_EQ(r.strips_resumed + r.strips_run, r.strips);
    expect_same_raster(dir / "direct.tif", dir / "resumed.tif");
    EXPECT_FALSE(std::filesystem::exists(o.output + ".parts"));
}

}  // namespace rsi
