// The bundled default models: metadata valid, weights as recorded, the recorded output on the
// golden input, and batches of the right shape.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <gtest/gtest.h>

#include "models/model.hpp"
#include "models/runtime_info.hpp"
#include "src/segmentation.hpp"
#include "tiling/error.hpp"
#include "src/band_mapping.hpp"
#include "src/model_catalog.hpp"
#include "src/preview.hpp"
#include "test_support.hpp"

namespace rsi {
namespace {

const std::string kModels = RSI_BUNDLED_MODELS_DIR;


TEST(BundledModels, AllThreeArePresentAndDescribeThemselves) {
    const auto entries = list_bundled_models(kModels);
    std::vector<std::string> names;
    for (const auto& e : entries) names.push_back(e.name);
    EXPECT_EQ(names, (std::vector<std::string>{"buildings", "eurosat-rgbn", "eurosat13"}));
    for (const auto& e : entries) {
        EXPECT_FALSE(e.metadata.license.empty()) << e.name;
        EXPECT_TRUE(e.metadata.provenance.contains("command")) << e.name;
        EXPECT_FALSE(e.metadata.golden.is_null()) << e.name << " has no golden values";
    }
}

TEST(BundledModels, RecordedOutputsWeightsAndShapes) {
    for (const auto& e : list_bundled_models(kModels)) {
        const models::Model model = models::Model::load(e.path);
        EXPECT_LT(model.golden_difference(), 1e-4) << e.name;
        EXPECT_EQ(model.weights_sha256(), e.metadata.weights_sha256) << e.name;
        const auto& m = model.metadata();
        const int64_t size = m.task == models::Task::scene ? m.tile_size : 128;
        const models::BatchShape shape{2, m.bands, size, size};
        const auto input = models::ramp_input(shape);
        std::vector<float> out;
        const auto out_shape = model.run(input.data(), shape, out);
        if (m.task == models::Task::scene) {
            EXPECT_EQ(out_shape, (std::vector<int64_t>{2, static_cast<int64_t>(m.classes.size())})) << e.name;
        } else {
            EXPECT_EQ(out_shape, (std::vector<int64_t>{2, static_cast<int64_t>(m.classes.size()), 128, 128})) << e.name;
        }
    }
}

// On a CPU, a tile whose forward needs >= 64 MB (the building model at 512²: ~180 MB) runs one per
// batch however large the budget; small tiles (the scene models' 64²) still fill large batches.
TEST(BundledModels, CpuBatchIsOneForLargeTiles) {
    const models::Model buildings = models::Model::load(kModels + "/buildings.pt");
    ASSERT_EQ(buildings.device(), "cpu");
    EXPECT_GE(buildings.measure_memory(512, 512).per_tile_bytes, int64_t{64} << 20);
    EXPECT_EQ(buildings.batch_size_for(int64_t{4096} << 20, 512, 512), 1);
    EXPECT_GT(buildings.batch_size_for(int64_t{4096} << 20, 64, 64), 1);
    const models::Model scene = models::Model::load(kModels + "/eurosat-rgbn.pt");
    EXPECT_GT(scene.batch_size_for(int64_t{1024} << 20, 64, 64), 16);
}

// The automatic batch of a small-tile model was anything from 4 to 256 between identical runs (the
// growth of 2 tiles over 1 is allocator noise): now the same for each fresh load (as in a new run),
// a power of two, and smaller for a smaller budget (scene gives the model half of --ram 64, 256, 1024).
TEST(BundledModels, AutomaticBatchOfSmallTilesIsRepeatable) {
    for (const char* name : {"eurosat-rgbn", "eurosat13"}) {
        std::vector<int64_t> by_budget;
        for (const int64_t budget_mb : {32, 128, 512}) {
            std::set<int64_t> batches;
            for (int i = 0; i < 4; ++i) {
                const models::Model scene = models::Model::load(kModels + "/" + name + ".pt");
                batches.insert(scene.batch_size_for(budget_mb << 20, 64, 64));
            }
            EXPECT_EQ(batches.size(), 1u) << name << " at " << budget_mb << " MB gave " << *batches.begin() << " and " << *batches.rbegin();
            const int64_t b = *batches.begin();
            EXPECT_EQ(b & (b - 1), 0) << name << ": " << b << " is not a power of two";
            by_budget.push_back(b);
        }
        EXPECT_LT(by_budget[0], by_budget[1]) << name;
        EXPECT_LE(by_budget[1], by_budget[2]) << name;
        EXPECT_LE(by_budget[2], 256) << name;
    }
}

// Automatic model runners fit --ram: each holds a forward's activations, so a small budget gets one.
TEST(BundledModels, AutomaticRunnersFitTheMemoryBudget) {
    const models::Model buildings = models::Model::load(kModels + "/buildings.pt");
    const int threads = models::inference_threads();
    models::set_inference_threads(2);
    test::TempDir dir;
    const std::string image = dir / "image.tif";
    test::make_raster(image, 700, 700, 3, GDT_Byte, [](int b, int x, int y) { return (x * 5 + y * 3 * b) % 256; });
    const double gt[6] = {500000, 0.3, 0, 4000000, 0, -0.3};
    test::georeference(image, gt, 32633);
    SegmentOptions roomy;
    roomy.input = image;
    roomy.output = dir / "roomy.tif";
    roomy.memory_budget_mb = 768;  // --ram 1024, the default
    SegmentOptions tight = roomy;
    tight.output = dir / "tight.tif";
    tight.memory_budget_mb = 48;  // --ram 64
    const SegmentResult a = segment_image(buildings, roomy);
    const SegmentResult b = segment_image(buildings, tight);
    models::set_inference_threads(threads);
    EXPECT_EQ(a.model_runners, 2);
    EXPECT_EQ(b.model_runners, 1);
    EXPECT_EQ(a.class_pixels, b.class_pixels);  // the runner count never changes the outputs
}

// The building U-Net runs faster frozen channels-last than through optimize_for_inference on the
// CPUs measured (docs/BENCHMARKS.md, Session 14), so its file asks for that graph; both give the
// same probabilities to float rounding.
TEST(BundledModels, BuildingModelRunsChannelsLastAndMatchesTheOtherGraph) {
    const models::Model buildings = models::Model::load(kModels + "/buildings.pt");
    EXPECT_EQ(buildings.metadata().cpu_graph, "channels_last");
    EXPECT_EQ(buildings.graph(), "channels_last");
    EXPECT_EQ(buildings.graph_detail(), "4 concatenations split into convolutions");
    models::ModelOptions other;
    other.cpu_graph = models::CpuGraph::optimize_for_inference;
    const models::Model reference = models::Model::load(kModels + "/buildings.pt", other);
    EXPECT_EQ(reference.graph(), "optimize_for_inference");
    const models::BatchShape shape{1, 3, 128, 128};
    const auto input = models::ramp_input(shape);
    std::vector<float> a, b;
    buildings.run(input.data(), shape, a);
    reference.run(input.data(), shape, b);
    ASSERT_EQ(a.size(), b.size());
    float worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
    EXPECT_LT(worst, 1e-5f);
    // The scene models keep the default graph.
    EXPECT_EQ(models::Model::load(kModels + "/eurosat13.pt").graph(), "optimize_for_inference");
}

TEST(BundledModels, ThePickFollowsTheImageBands) {
    EXPECT_EQ(pick_bundled_model(models::Task::scene, test::image_with_bands(13), {}, kModels).name, "eurosat13");
    EXPECT_EQ(pick_bundled_model(models::Task::scene, test::image_with_bands(4), {}, kModels).name, "eurosat-rgbn");
    EXPECT_EQ(pick_bundled_model(models::Task::segmentation, test::image_with_bands(3), {}, kModels).name, "buildings");
    EXPECT_EQ(pick_bundled_model(models::Task::segmentation, test::image_with_bands(1), {}, kModels).name, "buildings");  // pan replicated
    EXPECT_EQ(pick_bundled_model(models::Task::segmentation, test::image_with_bands(3, true), {}, kModels).name, "buildings");
    test::expect_error([] { pick_bundled_model(models::Task::scene, test::image_with_bands(3), {}, kModels); }, ErrorKind::runtime,
                       "image.tif: no bundled scene model");
    // --bands counts, not the image: 4 of 13 bands -> the 4-band model
    EXPECT_EQ(pick_bundled_model(models::Task::scene, test::image_with_bands(13), {4, 3, 2, 8}, kModels).name, "eurosat-rgbn");
    // An RGB + alpha image is 3 bands of data: no scene model (the alpha band was read as NIR)
    test::expect_error([] { pick_bundled_model(models::Task::scene, test::image_with_bands(3, true), {}, kModels); }, ErrorKind::runtime,
                       "its alpha band is not data");
    // 5 bands: the 4-band model's default source bands (4,3,2,8) do not all exist, the 13-band one needs more
    test::expect_error([] { pick_bundled_model(models::Task::scene, test::image_with_bands(5), {}, kModels); }, ErrorKind::runtime,
                       "reads a 5-band image");
}

// The RGBN model names the 13-band stack its source bands 4,3,2,8 are numbered in: a 13-band
// Sentinel-2 image maps without a word (it was warned as "another band count"), an 8-band one is
// warned with that count, and --bands silences it.
TEST(BundledModels, TheRgbnModelKnowsItsSourceStack) {
    const models::ModelMetadata rgbn = models::Model::load(kModels + "/eurosat-rgbn.pt").metadata();
    EXPECT_EQ(rgbn.source_band_count, 13);
    EXPECT_EQ(rgbn.to_json()["input"]["source_band_count"], 13);
    test::TempDir dir;
    const auto mapping_of = [&](int bands, const std::vector<int>& requested) {
        const std::string path = dir / ("stack" + std::to_string(bands) + ".tif");
        if (!std::filesystem::exists(path))
            test::make_raster(path, 16, 16, bands, GDT_UInt16, [](int b, int x, int y) { return 500 + 100 * b + x + y; });
        return map_bands(RasterSource::open(path), rgbn, requested, "scene", false);
    };
    const BandMapping thirteen = mapping_of(13, {});
    EXPECT_EQ(thirteen.source_bands, (std::vector<int>{4, 3, 2, 8}));
    EXPECT_TRUE(thirteen.warnings.empty()) << thirteen.warnings[0];
    const BandMapping eight = mapping_of(8, {});
    ASSERT_EQ(eight.warnings.size(), 1u);
    EXPECT_NE(eight.warnings[0].find("has 8 bands: its bands 4,3,2,8 fill the model's red, green, blue, nir channels (the model's "
                                     "default source bands, numbered as in its 13-band training imagery)"),
              std::string::npos)
        << eight.warnings[0];
    EXPECT_TRUE(mapping_of(8, {3, 2, 1, 4}).warnings.empty());
    test::expect_error([&] { map_bands(RasterSource::open(dir / "stack8.tif"), rgbn, {}, "scene", true); }, ErrorKind::runtime,
                       "has 8 bands: its bands 4,3,2,8");
}

// The building model stretches wider data types into its 0..255 range, but Byte imagery stored as
// UInt16 or Float32 is read as it is, like its Byte original (stretched, it predicted 6 % fewer
// building pixels); 11-bit values and 0..1 reflectance are still stretched, and the run says which.
TEST(BundledModels, ByteValuesInAWiderTypeAreNotStretched) {
    const models::ModelMetadata buildings = models::Model::load(kModels + "/buildings.pt").metadata();
    ASSERT_EQ(buildings.rescale, "percentile");
    test::TempDir dir;
    const auto mapping_of = [&](const std::string& name, GDALDataType type, double scale) {
        const std::string path = dir / name;
        test::make_raster(path, 64, 64, 3, type, [&](int b, int x, int y) { return scale * ((x * 3 + y * 2 + b * 20) % 240 + 10); });
        return map_bands(RasterSource::open(path), buildings, {}, "buildings", false);
    };
    const BandMapping byte = mapping_of("byte.tif", GDT_Byte, 1);
    EXPECT_EQ(byte.rescale, "none");
    for (const auto& [name, type] : {std::pair{"u16.tif", GDT_UInt16}, std::pair{"f32.tif", GDT_Float32}}) {
        const BandMapping wide = mapping_of(name, type, 1);
        EXPECT_FALSE(wide.rescaled) << name;
        EXPECT_EQ(wide.rescale, "none") << name;
        ASSERT_EQ(wide.normalizer.scaling.size(), byte.normalizer.scaling.size());
        for (size_t b = 0; b < byte.normalizer.scaling.size(); ++b) {
            EXPECT_DOUBLE_EQ(wide.normalizer.scaling[b].scale, byte.normalizer.scaling[b].scale) << name;
            EXPECT_DOUBLE_EQ(wide.normalizer.scaling[b].offset, byte.normalizer.scaling[b].offset) << name;
        }
    }
    const BandMapping eleven_bit = mapping_of("pan11.tif", GDT_UInt16, 8);
    EXPECT_TRUE(eleven_bit.rescaled);
    EXPECT_EQ(eleven_bit.rescale, "percentile 2-98");
    EXPECT_EQ(mapping_of("reflectance.tif", GDT_Float32, 1.0 / 255).rescale, "percentile 2-98");
}

// Previews show what the model calls red, green and blue: B04, B03, B02 of a Sentinel-2 stack (the
// first three bands are B01, B02, B03), the R, G, B of the RGBN model through its source bands.
TEST(BundledModels, PreviewsUseTheModelsRedGreenBlueBands) {
    EXPECT_EQ(model_rgb_bands(models::Model::load(kModels + "/eurosat13.pt").metadata(), {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}),
              (std::vector<int>{4, 3, 2}));
    const models::ModelMetadata rgbn = models::Model::load(kModels + "/eurosat-rgbn.pt").metadata();
    EXPECT_EQ(model_rgb_bands(rgbn, rgbn.source_bands), (std::vector<int>{4, 3, 2}));
    EXPECT_EQ(model_rgb_bands(rgbn, {1, 2, 3, 4}), (std::vector<int>{1, 2, 3}));  // NAIP given with --bands 1,2,3,4
    EXPECT_TRUE(model_rgb_bands(models::Model::load(std::string(RSI_FIXTURES_DIR) + "/tiny_scene.pt").metadata(), {1, 2, 3, 4}).empty());
}

// One unreadable package in the models folder is skipped and named, not fatal for the others.
TEST(BundledModels, ABrokenPackageIsSkippedAndNamed) {
    test::TempDir dir;
    std::filesystem::copy_file(kModels + "/eurosat-rgbn.pt", dir / "eurosat-rgbn.pt");
    { std::ofstream(dir / "broken.pt") << "not a zip"; }
    std::vector<std::string> skipped;
    const auto entries = list_bundled_models(dir.str(), &skipped);
    ASSERT_EQ(entries.size(), 1u);
    EXPECT_EQ(entries[0].name, "eurosat-rgbn");
    ASSERT_EQ(skipped.size(), 1u);
    EXPECT_NE(skipped[0].find("broken.pt"), std::string::npos) << skipped[0];
    skipped.clear();
    EXPECT_EQ(pick_bundled_model(models::Task::scene, test::image_with_bands(4), {}, dir.str(), &skipped).name, "eurosat-rgbn");
    EXPECT_EQ(skipped.size(), 1u);
}

}  // namespace
}  // namespace rsi
