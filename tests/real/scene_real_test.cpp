// Real imagery: scene maps from the bundled EuroSAT models. A mosaic of EuroSAT patches, each placed
// on the lattice, must give every patch the class the model gives it alone (and that class is the
// patch's label); the NAIP scene map is georeferenced on the lattice formula.
#include <filesystem>
#include <gtest/gtest.h>

#include "src/model_catalog.hpp"
#include "src/scene_map.hpp"
#include "test_support.hpp"
#include "tiling/raster_source.hpp"

namespace fs = std::filesystem;

namespace rsi {
namespace {


const char* kClasses[] = {"AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
                          "Pasture", "PermanentCrop", "Residential", "River", "SeaLake"};

int classify_alone(const models::Model& model, const std::string& patch, const test::TempDir& dir) {
    SceneOptions o;
    o.input = patch;
    o.output = dir / "alone.tif";
    o.overwrite = true;
    o.batch = 1;  // one window; no memory probe
    map_scenes(model, o);
    return static_cast<int>(RasterSource::open(o.output).read_float({0, 0, 1, 1}, {1})[0]);
}

TEST(RealScene, EuroSatMosaicCellsGetTheirPatchClass) {
    const std::string root = test::shared_data("eurosat");
    const models::Model model = models::Model::load(pick_bundled_model(models::Task::scene, test::image_with_bands(13), {}, RSI_BUNDLED_MODELS_DIR).path);
    test::TempDir dir;
    // One correctly classified patch per class, from the validation patches (_11.._14).
    std::vector<std::pair<int, std::string>> chosen;
    for (int c = 0; c < 10; ++c) {
        for (int k = 11; k <= 14; ++k) {
            const std::string patch = root + "/" + kClasses[c] + "/" + kClasses[c] + "_" + std::to_string(k) + ".tif";
            if (classify_alone(model, patch, dir) == c) {
                chosen.push_back({c, patch});
                break;
            }
        }
    }
    ASSERT_GE(chosen.size(), 6u) << "the model should be right on a patch of most classes";
    // A 4-wide mosaic, patch i at lattice cell (i / 4, i % 4), georeferenced like the first patch.
    const int cols = 4, rows = static_cast<int>((chosen.size() + 3) / 4);
    const std::string mosaic = dir / "mosaic.tif";
    {
        const RasterSource first = RasterSource::open(chosen[0].second);
        DatasetPtr ds(GetGDALDriverManager()->GetDriverByName("GTiff")->Create(mosaic.c_str(), 64 * cols, 64 * rows, 13,
                                                                               GDT_UInt16, nullptr));
        ASSERT_TRUE(ds);
        auto gt = first.info().geotransform;
        ds->SetGeoTransform(gt.data());
        OGRSpatialReference srs;
        srs.importFromWkt(first.info().crs_wkt.c_str());
        ds->SetSpatialRef(&srs);
        for (size_t i = 0; i < chosen.size(); ++i) {
            const RasterSource patch = RasterSource::open(chosen[i].second);
            std::vector<uint16_t> pixels(64 * 64 * 13);
            patch.read({0, 0, 64, 64}, patch.all_bands(), GDT_UInt16, pixels.data());
            ASSERT_EQ(ds->RasterIO(GF_Write, static_cast<int>(i % cols) * 64, static_cast<int>(i / cols) * 64, 64, 64,
                                   pixels.data(), 64, 64, GDT_UInt16, 13, nullptr, 0, 0, 0, nullptr),
                      CE_None);
        }
    }
    SceneOptions o;
    o.input = mosaic;
    o.output = dir / "mosaic_classes.tif";
    o.csv = dir / "mosaic.csv";
    o.batch = 4;
    const SceneResult r = map_scenes(model, o);
    EXPECT_EQ(r.window_pixels, 64);
    EXPECT_EQ(r.cols, cols);
    const auto cells = RasterSource::open(o.output).read_float({0, 0, cols, rows}, {1});
    for (size_t i = 0; i < chosen.size(); ++i) {
        EXPECT_EQ(cells[i], chosen[i].first) << chosen[i].second;
    }
}

// The domain checks must not refuse the models' own kind of imagery: every EuroSAT patch runs under
// --strict (dark bands such as a forest's red or the cirrus band sit far below 5% of 0..10000, but
// the patch as a whole is in range), while the NAIP image (Byte 0..255 into the reflectance model:
// every band far below the range) is still flagged.
TEST(RealScene, DomainChecksPassEuroSatAndFlagByteImagery) {
    const std::string root = test::shared_data("eurosat");
    const models::Model model13 = models::Model::load(pick_bundled_model(models::Task::scene, test::image_with_bands(13), {}, RSI_BUNDLED_MODELS_DIR).path);
    test::TempDir dir;
    for (const char* name : kClasses) {
        for (int k : {1, 7, 12}) {
            SceneOptions o;
            o.input = root + "/" + name + "/" + name + "_" + std::to_string(k) + ".tif";
            o.output = dir / "strict.tif";
            o.overwrite = true;
            o.strict = true;
            o.batch = 1;
            EXPECT_NO_THROW(map_scenes(model13, o)) << o.input;
        }
    }
    const models::Model rgbn = models::Model::load(pick_bundled_model(models::Task::scene, test::image_with_bands(4), {}, RSI_BUNDLED_MODELS_DIR).path);
    SceneOptions naip;
    naip.input = test::shared_data("naip") + "/m_4709963_se_14_1_20190904.tif";
    naip.output = dir / "naip.tif";
    naip.batch = 4;
    const SceneResult r = map_scenes(rgbn, naip);
    bool flagged = false;
    for (const auto& w : r.warnings) flagged = flagged || w.find("the brightest of the bands, less than 5%") != std::string::npos;
    EXPECT_TRUE(flagged) << "NAIP Byte values into a 0..10000 reflectance model";
}

TEST(RealScene, NaipLatticeIsGeoreferencedOnTheWindowCentres) {
    const std::string naip = test::shared_data("naip/m_4709963_se_14_1_20190904.tif");
    const models::Model model = models::Model::load(pick_bundled_model(models::Task::scene, test::image_with_bands(4), {}, RSI_BUNDLED_MODELS_DIR).path);
    test::TempDir dir;
    SceneOptions o;
    o.input = naip;
    o.output = dir / "naip_scene.tif";
    o.stride = 32;  // model pixels: 64 image pixels at 5 m for a 10 m model
    const SceneResult r = map_scenes(model, o);
    EXPECT_EQ(r.window_pixels, 128);
    EXPECT_EQ(r.stride_pixels, 64);
    const RasterSource in = RasterSource::open(naip), out = RasterSource::open(o.output);
    const auto& g = in.info().geotransform;
    const auto& h = out.info().geotransform;
    EXPECT_DOUBLE_EQ(h[0], g[0] + (128 - 64) / 2.0 * g[1]);
    EXPECT_DOUBLE_EQ(h[3], g[3] + (128 - 64) / 2.0 * g[5]);
    EXPECT_DOUBLE_EQ(h[1], 64 * g[1]);
    EXPECT_DOUBLE_EQ(h[5], 64 * g[5]);
    EXPECT_EQ(out.info().width, r.cols);
    EXPECT_EQ(out.info().crs_wkt, in.info().crs_wkt);
}

}  // namespace
}  // namespace rsi
