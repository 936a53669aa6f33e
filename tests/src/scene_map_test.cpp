#include "src/scene_map.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <ogrsf_frmts.h>
#include <sstream>

#include "models/runtime_info.hpp"
#include "src/model_runners.hpp"
#include "src/output_file.hpp"
#include "test_support.hpp"
#include "tiling/error.hpp"
#include "tiling/raster_source.hpp"

namespace rsi {
namespace {

std::string fixture(const std::string& name) { return std::string(RSI_FIXTURES_DIR) + "/" + name; }

const models::Model& scene_model() {
    static const models::Model model = models::Model::load(fixture("tiny_scene.pt"));
    return model;
}

std::string make_image(const test::TempDir& dir, int width, int height) {
    const std::string path = dir / "scene.tif";
    test::make_raster(path, width, height, 4, GDT_Byte, [](int b, int x, int y) { return (x * 7 + y * 3 * b + (x / 16) * 40) % 256; });
    const double gt[6] = {300000, 0.3, 0, 5000000, 0, -0.3};  // the fixture's 0.3 m: no resampling
    test::georeference(path, gt, 32614);
    return path;
}

SceneOptions options_for(const std::string& input, const std::string& output) {
    SceneOptions o;
    o.input = input;
    o.output = output;
    return o;
}

TEST(SceneMap, LatticeGeoreferencingCentresEachPixelOnItsWindow) {
    test::TempDir dir;
    SceneOptions o = options_for(make_image(dir, 100, 60), dir / "classes.tif");
    o.stride = 8;  // window 16 (the model's), stride 8
    const SceneResult r = map_scenes(scene_model(), o);
    EXPECT_EQ(r.window_pixels, 16);
    EXPECT_EQ(r.stride_pixels, 8);
    EXPECT_EQ(r.cols, 12);  // ceil((100 - 16) / 8) + 1 = 12
    EXPECT_EQ(r.rows, 7);
    const RasterSource out = RasterSource::open(o.output);
    EXPECT_EQ(out.info().width, 12);
    EXPECT_EQ(out.info().height, 7);
    // origin + (window - stride) / 2 pixels; pixel size = stride x source pixel size
    EXPECT_DOUBLE_EQ(out.info().geotransform[0], 300000 + 4 * 0.3);
    EXPECT_DOUBLE_EQ(out.info().geotransform[3], 5000000 - 4 * 0.3);
    EXPECT_DOUBLE_EQ(out.info().geotransform[1], 8 * 0.3);
    EXPECT_DOUBLE_EQ(out.info().geotransform[5], -8 * 0.3);
    EXPECT_EQ(out.info().epsg.value_or(0), 32614);
    char** names = out.dataset().GetRasterBand(1)->GetCategoryNames();
    ASSERT_TRUE(names);
    EXPECT_STREQ(names[2], "water");
}

// A --batch beyond the window count runs only the windows there are (zero-padded ones ran and were held:
// --batch 65536 on 9 windows took 6.5 GB), with the same classes.
TEST(SceneMap, ABatchLargerThanTheWindowsIsCutToThem) {
    test::TempDir dir;
    SceneOptions o = options_for(make_image(dir, 48, 48), dir / "big_batch.tif");
    o.batch = 65536;
    const SceneResult r = map_scenes(scene_model(), o);
    EXPECT_EQ(r.windows, 9);
    EXPECT_EQ(r.batch, 9);
    SceneOptions one = options_for(dir / "scene.tif", dir / "one.tif");
    one.batch = 1;
    map_scenes(scene_model(), one);
    EXPECT_EQ(RasterSource::open(o.output).read_float({0, 0, 3, 3}, {1}), RasterSource::open(one.output).read_float({0, 0, 3, 3}, {1}));
}

TEST(SceneMap, CsvVectorAndProbabilitiesAgreeWithTheRaster) {
    test::TempDir dir;
    SceneOptions o = options_for(make_image(dir, 64, 48), dir / "classes.tif");
    o.csv = dir / "grid.csv";
    o.vector = dir / "grid.gpkg";
    o.probabilities = dir / "p.tif";
    o.top_k = 2;
    map_scenes(scene_model(), o);
    const RasterSource classes = RasterSource::open(o.output), probabilities = RasterSource::open(o.probabilities);
    const auto cls = classes.read_float({0, 0, 4, 3}, {1});
    std::ifstream csv(o.csv);
    std::string line;
    std::getline(csv, line);
    EXPECT_EQ(line, "window_id,row,col,x,y,width,height,center_x,center_y,class,score,class_1,score_1,class_2,score_2");
    const char* names[] = {"field", "forest", "water"};
    int rows = 0;
    while (std::getline(csv, line)) {
        std::stringstream s(line);
        std::vector<std::string> f;
        for (std::string cell; std::getline(s, cell, ',');) f.push_back(cell);
        const int r = std::stoi(f[1]), c = std::stoi(f[2]);
        EXPECT_EQ(f[9], names[static_cast<int>(cls[static_cast<size_t>(r * 4 + c)])]) << line;
        EXPECT_DOUBLE_EQ(std::stod(f[7]), 300000 + (c * 16 + 8) * 0.3);  // window centre
        const float p = probabilities.read_float({c, r, 1, 1}, {static_cast<int>(cls[static_cast<size_t>(r * 4 + c)]) + 1})[0];
        EXPECT_NEAR(std::stod(f[10]), p, 1e-5);
        EXPECT_GE(std::stod(f[10]), std::stod(f[14]));  // top-1 score >= top-2 score
        ++rows;
    }
    EXPECT_EQ(rows, 12);
    DatasetPtr grid(GDALDataset::FromHandle(GDALOpenEx(o.vector.c_str(), GDAL_OF_VECTOR, nullptr, nullptr, nullptr)));
    ASSERT_TRUE(grid);
    OGRLayer* layer = grid->GetLayer(0);
    EXPECT_EQ(layer->GetFeatureCount(), 12);
    for (auto& feature : *layer) {
        const int r = static_cast<int>(feature->GetFieldAsInteger64("row")), c = static_cast<int>(feature->GetFieldAsInteger64("col"));
        EXPECT_STREQ(feature->GetFieldAsString("class"), names[static_cast<int>(cls[static_cast<size_t>(r * 4 + c)])]);
        OGREnvelope env;
        feature->GetGeometryRef()->getEnvelope(&env);
        EXPECT_NEAR(env.MaxX - env.MinX, 16 * 0.3, 1e-6);  // one lattice cell
    }
    // The probability raster ends with an entropy band in [0, 1].
    EXPECT_EQ(probabilities.info().band_count(), 4);
    for (float h : probabilities.read_float({0, 0, 4, 3}, {4})) {
        EXPECT_GE(h, 0.0f);
        EXPECT_LE(h, 1.0f + 1e-6f);
    }
}

// A shapefile grid: its files appear together (lower-case extensions, a .prj with the image's CRS), its
// ten-character field names hold, and a file of an older shapefile there blocks the run before it starts.
TEST(SceneMap, ShapefileGridHasAllItsFilesAndItsFields) {
    test::TempDir dir;
    SceneOptions o = options_for(make_image(dir, 64, 48), dir / "classes.tif");
    o.vector = dir / "grid.SHP";
    o.top_k = 2;
    test::write_text_file(dir / "grid.dbf", "an older shapefile's table");
    test::expect_error([&] { map_scenes(scene_model(), o); }, ErrorKind::usage, "grid.dbf (a file of this shapefile) already exists");
    EXPECT_EQ(test::names_in_folder(dir.str()), (std::vector<std::string>{"grid.dbf", "scene.tif"}));
    o.overwrite = true;
    map_scenes(scene_model(), o);
    EXPECT_EQ(test::names_in_folder(dir.str()),
              (std::vector<std::string>{"classes.tif", "classes.tif.aux.xml", "grid.cpg", "grid.dbf", "grid.prj", "grid.shp", "grid.shx",
                                        "scene.tif"}));
    const RasterSource classes = RasterSource::open(o.output);
    const auto cls = classes.read_float({0, 0, 4, 3}, {1});
    const char* names[] = {"field", "forest", "water"};
    const std::string shp = dir / "grid.shp";
    DatasetPtr grid(GDALDataset::FromHandle(GDALOpenEx(shp.c_str(), GDAL_OF_VECTOR, nullptr, nullptr, nullptr)));
    ASSERT_TRUE(grid);
    OGRLayer* layer = grid->GetLayer(0);
    EXPECT_EQ(layer->GetFeatureCount(), 12);
    ASSERT_TRUE(layer->GetSpatialRef());
    EXPECT_STREQ(layer->GetSpatialRef()->GetAuthorityCode(nullptr), "32614");
    for (const char* field : {"window_id", "class", "row", "col", "score", "class_1", "score_1", "class_2", "score_2"}) {
        EXPECT_GE(layer->GetLayerDefn()->GetFieldIndex(field), 0) << field;
    }
    for (auto& feature : *layer) {
        const int r = static_cast<int>(feature->GetFieldAsInteger64("row")), c = static_cast<int>(feature->GetFieldAsInteger64("col"));
        EXPECT_STREQ(feature->GetFieldAsString("class"), names[static_cast<int>(cls[static_cast<size_t>(r * 4 + c)])]);
        EXPECT_STREQ(feature->GetFieldAsString("class_1"), feature->GetFieldAsString("class"));
        EXPECT_GE(feature->GetFieldAsDouble("score_1"), feature->GetFieldAsDouble("score_2"));
        OGREnvelope env;
        feature->GetGeometryRef()->getEnvelope(&env);
        EXPECT_NEAR(env.MinX, 300000 + c * 16 * 0.3, 1e-6);  // the cell of window (r, c)
        EXPECT_NEAR(env.MaxY, 5000000 - r * 16 * 0.3, 1e-6);
    }
}

// A file another run wrote at one of the outputs while this run worked (here the grid layer, renamed
// before the class map) fails the run at its end with a runtime error and none of its outputs in place;
// a caller's later output (before_commit) is checked with them.
TEST(SceneMap, AnOutputWrittenMeanwhileLeavesNoneOfTheRunsOutputs) {
    test::TempDir dir;
    SceneOptions o = options_for(make_image(dir, 64, 48), dir / "classes.tif");
    o.csv = dir / "grid.csv";
    o.vector = dir / "grid.gpkg";
    o.probabilities = dir / "p.tif";
    o.dense = dir / "dense.tif";
    bool written = false;
    const auto other_run_writes_the_grid = [&](double, std::string_view) {
        if (!written) test::write_text_file(o.vector, "theirs");
        written = true;
        return true;
    };
    test::expect_error([&] { map_scenes(scene_model(), o, other_run_writes_the_grid); }, ErrorKind::runtime,
                       "grid.gpkg: appeared while this run was writing it");
    EXPECT_EQ(test::names_in_folder(dir.str()), (std::vector<std::string>{"grid.gpkg", "scene.tif"}));
    EXPECT_EQ(test::read_text_file(o.vector), "theirs");
    std::filesystem::remove(o.vector);
    const std::string manifest = o.output + ".manifest.json";
    test::write_text_file(manifest, "{}");
    o.before_commit = [&](const std::string& class_map, const SceneResult& so_far) {
        EXPECT_EQ(so_far.cols, 4);
        EXPECT_EQ(RasterSource::open(class_map).info().width, 4);  // the finished lattice, under its temporary name
        check_output_path_again(manifest, false);
    };
    test::expect_error([&] { map_scenes(scene_model(), o); }, ErrorKind::runtime, "classes.tif.manifest.json: appeared while");
    EXPECT_EQ(test::names_in_folder(dir.str()), (std::vector<std::string>{"classes.tif.manifest.json", "scene.tif"}));
    std::filesystem::remove(manifest);
    map_scenes(scene_model(), o);
    EXPECT_EQ(test::names_in_folder(dir.str()),
              (std::vector<std::string>{"classes.tif", "classes.tif.aux.xml", "dense.tif", "dense.tif.aux.xml", "grid.csv", "grid.gpkg",
                                        "p.tif", "scene.tif"}));
}

// A class's km² is the ground of its lattice cells inside the image: windows of the last row and column
// reach past the edge (constant padding), and their cells count only the part inside, so the classes
// add up to the image's area, not more (whole cells made 7 x 4 x 16² px of a 100 x 60 px image).
// Without georeferencing the lattice is placed in the image's pixel coordinates (x right, y down), the
// frame of the CSV's window centres; it had no geotransform, so it lay at 0..cols over the image.
TEST(SceneMap, LatticeOfAnImageWithoutGeoreferencingIsInPixelCoordinates) {
    test::TempDir dir;
    const std::string path = dir / "plain.tif";
    test::make_raster(path, 100, 60, 4, GDT_Byte, [](int b, int x, int y) { return (x * 7 + y * 3 * b) % 255 + 1; });
    SceneOptions o = options_for(path, dir / "classes.tif");
    o.stride = 8;
    o.csv = dir / "windows.csv";
    const SceneResult r = map_scenes(scene_model(), o);
    const RasterSource out = RasterSource::open(o.output);
    ASSERT_TRUE(out.info().has_geotransform);
    EXPECT_EQ(out.info().geotransform, (std::array<double, 6>{4, 8, 0, 4, 0, 8}));
    EXPECT_TRUE(out.info().crs_wkt.empty());
    // The CSV's first window (pixels 0..16) is centred on (8, 8): lattice pixel (0, 0)'s centre.
    std::ifstream csv(o.csv);
    std::string header, first;
    std::getline(csv, header);
    std::getline(csv, first);
    EXPECT_EQ(first.rfind("r0_c0,0,0,0,0,16,16,8,8,", 0), 0u) << first;
    EXPECT_EQ(r.cols, 12);
}

// Pixels of a geographic image at 60 N are half as wide as they are tall on the ground: the window
// (and stride) are square on the ground, so twice as many pixels wide as tall, and the lattice pixel is
// stride_x x stride_y image pixels. (Before, windows were square in pixels: half as wide on the ground.)
TEST(SceneMap, GeographicWindowsAreSquareOnTheGround) {
    test::TempDir dir;
    const std::string path = dir / "geographic.tif";
    test::make_raster(path, 200, 100, 4, GDT_Byte, [](int b, int x, int y) { return (x * 5 + y * 3 * b) % 255 + 1; });  // band 4: alpha, never 0
    const double d = 0.15 / 111320.0;  // about 0.15 m north-south, 0.075 m east-west at 60 N
    const double gt[6] = {10, d, 0, 60.0, 0, -d};
    test::georeference(path, gt, 4326);
    SceneOptions o = options_for(path, dir / "classes.tif");
    o.stride = 8;  // model pixels: window 16, stride 8 at 0.3 m
    o.dense = dir / "dense.tif";
    const SceneResult r = map_scenes(scene_model(), o);
    EXPECT_NEAR(static_cast<double>(r.window_pixels), 64, 1);  // 16 x 0.3 m / 0.075 m
    EXPECT_NEAR(static_cast<double>(r.window_pixels_y), 32, 1);  // 16 x 0.3 m / 0.15 m
    EXPECT_NEAR(static_cast<double>(r.stride_pixels), 32, 1);
    EXPECT_NEAR(static_cast<double>(r.stride_pixels_y), 16, 1);
    EXPECT_NEAR(r.scale, 2 * r.scale_y, 0.05 * r.scale);
    const RasterSource out = RasterSource::open(o.output);
    EXPECT_EQ(out.info().width, r.cols);
    EXPECT_EQ(out.info().height, r.rows);
    EXPECT_EQ(r.cols, (200 - r.window_pixels + r.stride_pixels - 1) / r.stride_pixels + 1);
    EXPECT_EQ(r.rows, (100 - r.window_pixels_y + r.stride_pixels_y - 1) / r.stride_pixels_y + 1);
    const auto& g = out.info().geotransform;
    EXPECT_DOUBLE_EQ(g[1], static_cast<double>(r.stride_pixels) * d);
    EXPECT_DOUBLE_EQ(g[5], -static_cast<double>(r.stride_pixels_y) * d);
    EXPECT_DOUBLE_EQ(g[0], 10 + static_cast<double>(r.window_pixels - r.stride_pixels) / 2 * d);
    EXPECT_DOUBLE_EQ(g[3], 60.0 - static_cast<double>(r.window_pixels_y - r.stride_pixels_y) / 2 * d);
    // The dense map gives every image pixel the class of the lattice cell around it.
    const RasterSource dense = RasterSource::open(o.dense);
    const auto lattice = out.read_float({0, 0, r.cols, r.rows}, {1});
    const auto pixels = dense.read_float({0, 0, 200, 100}, {1});
    const double offset_x = static_cast<double>(r.window_pixels - r.stride_pixels) / 2;
    const double offset_y = static_cast<double>(r.window_pixels_y - r.stride_pixels_y) / 2;
    for (int y = 0; y < 100; y += 7) {
        for (int x = 0; x < 200; x += 11) {
            const int64_t col = std::clamp<int64_t>(static_cast<int64_t>(std::floor((x + 0.5 - offset_x) / r.stride_pixels)), 0, r.cols - 1);
            const int64_t row = std::clamp<int64_t>(static_cast<int64_t>(std::floor((y + 0.5 - offset_y) / r.stride_pixels_y)), 0, r.rows - 1);
            EXPECT_EQ(pixels[static_cast<size_t>(y * 200 + x)], lattice[static_cast<size_t>(row * r.cols + col)]) << x << "," << y;
        }
    }
}

TEST(SceneMap, ClassAreasAddUpToTheGroundTheCellsCover) {
    test::TempDir dir;
    const double pixel_km2 = 0.3 * 0.3 / 1e6;
    const auto total_km2 = [](const SceneResult& r) {
        double sum = 0;
        int64_t windows = 0;
        for (const auto& c : r.classes) {
            sum += c.area_km2;
            windows += c.windows;
        }
        EXPECT_EQ(windows + r.windows_skipped, r.windows);
        return sum;
    };
    const std::string image = make_image(dir, 100, 60);
    SceneOptions every_window = options_for(image, dir / "a.tif");
    every_window.max_nodata = 1;  // the last column's windows are 75 % padding: kept here
    const SceneResult whole = map_scenes(scene_model(), every_window);
    EXPECT_EQ(whole.windows_skipped, 0);
    EXPECT_EQ(whole.cols, 7);
    EXPECT_EQ(whole.rows, 4);
    EXPECT_NEAR(total_km2(whole), 100 * 60 * pixel_km2, 1e-15);
    EXPECT_NEAR(whole.km2, 100 * 60 * pixel_km2, 1e-15);
    // Overlapping windows (stride 8): cells are the 8 x 8 pixels centred on each window, from pixel 4 on;
    // the border cells reach out to the image's edges, as in the dense map (the 4-pixel margin counted
    // nothing: 96 x 56 of 100 x 60).
    // (an image without black pixels: the dense map masks those as no-data, the lattice cells do not)
    const std::string no_black = dir / "no_black.tif";
    test::make_raster(no_black, 100, 60, 4, GDT_Byte, [](int b, int x, int y) { return 1 + (x * 7 + y * 3 * b + (x / 16) * 40) % 255; });
    const double gt[6] = {300000, 0.3, 0, 5000000, 0, -0.3};
    test::georeference(no_black, gt, 32614);
    SceneOptions overlapping = options_for(no_black, dir / "b.tif");
    overlapping.stride = 8;
    overlapping.dense = dir / "b_dense.tif";
    const SceneResult r = map_scenes(scene_model(), overlapping);
    EXPECT_EQ(r.cols, 12);
    EXPECT_EQ(r.rows, 7);
    EXPECT_EQ(r.windows_skipped, 0);
    EXPECT_NEAR(total_km2(r), 100 * 60 * pixel_km2, 1e-15);
    // Each class's area is its pixels in the dense map.
    const auto dense = RasterSource::open(overlapping.dense).read_float({0, 0, 100, 60}, {1});
    std::vector<int64_t> dense_pixels(r.classes.size(), 0);
    for (const float v : dense) ++dense_pixels.at(static_cast<size_t>(v));
    int classes_present = 0;
    for (size_t c = 0; c < r.classes.size(); ++c) {
        EXPECT_NEAR(r.classes[c].area_km2, static_cast<double>(dense_pixels[c]) * pixel_km2, 1e-15) << r.classes[c].name;
        classes_present += dense_pixels[c] > 0;
    }
    EXPECT_GE(classes_present, 2);
    // Skipped windows (default --max-nodata 0.5: the last column, 12 of 16 columns padding) count nothing.
    const SceneResult skipping = map_scenes(scene_model(), options_for(image, dir / "c.tif"));
    EXPECT_EQ(skipping.windows_skipped, 4);
    EXPECT_NEAR(total_km2(skipping), 96 * 60 * pixel_km2, 1e-15);
}

TEST(SceneMap, HierarchyRollUpSumsChildren) {
    const models::Model tree = models::Model::load(fixture("tiny_hierarchy.pt"));
    const ClassRollup level1 = roll_up_classes(tree.metadata(), 1);
    ASSERT_EQ(level1.classes.size(), 2u);
    EXPECT_EQ(level1.classes[0].name, "land");
    EXPECT_EQ(level1.classes[1].name, "water");
    EXPECT_EQ(level1.group_of_leaf, (std::vector<int>{0, 0, 0, 1}));
    const ClassRollup level2 = roll_up_classes(tree.metadata(), 2);
    EXPECT_EQ(level2.classes.size(), 3u);
    EXPECT_EQ(level2.group_of_leaf, (std::vector<int>{0, 0, 1, 2}));
    EXPECT_EQ(roll_up_classes(tree.metadata(), 3).classes.size(), 4u);
    EXPECT_THROW(roll_up_classes(tree.metadata(), 4), Error);

    test::TempDir dir;
    const std::string image = make_image(dir, 32, 32);
    SceneOptions leaves = options_for(image, dir / "leaves.tif");
    leaves.probabilities = dir / "leaves_p.tif";
    map_scenes(tree, leaves);
    SceneOptions top = options_for(image, dir / "top.tif");
    top.probabilities = dir / "top_p.tif";
    top.level = 1;
    map_scenes(tree, top);
    const RasterSource leaf_p = RasterSource::open(leaves.probabilities), top_p = RasterSource::open(top.probabilities);
    const auto land = top_p.read_float({0, 0, 2, 2}, {1});
    const auto water = top_p.read_float({0, 0, 2, 2}, {2});
    for (size_t i = 0; i < 4; ++i) {
        const float sum = leaf_p.read_float({0, 0, 2, 2}, {1})[i] + leaf_p.read_float({0, 0, 2, 2}, {2})[i] +
                          leaf_p.read_float({0, 0, 2, 2}, {3})[i];
        EXPECT_NEAR(land[i], sum, 1e-6);
        EXPECT_NEAR(water[i], leaf_p.read_float({0, 0, 2, 2}, {4})[i], 1e-6);
        const float cls = RasterSource::open(top.output).read_float({0, 0, 2, 2}, {1})[i];
        EXPECT_EQ(cls, land[i] >= water[i] ? 0 : 1);
    }
}

TEST(SceneMap, NodataWindowsAreSkippedAndDenseMapFollowsTheImageGrid) {
    test::TempDir dir;
    const std::string image = dir / "half.tif";
    // the left half nodata, and a 4x4 hole of nodata inside a window that still runs
    const auto hole = [](int x, int y) { return x >= 40 && x < 44 && y >= 4 && y < 8; };
    test::make_raster(image, 64, 32, 4, GDT_Byte, [&](int b, int x, int y) { return x < 32 || hole(x, y) ? 0 : 10 + (x + y * b) % 200; });
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(image.c_str(), GA_Update)));
        for (int b = 1; b <= 4; ++b) ds->GetRasterBand(b)->SetNoDataValue(0);
        const double gt[6] = {0, 0.3, 0, 0, 0, -0.3};
        ds->SetGeoTransform(const_cast<double*>(gt));
        OGRSpatialReference srs;
        srs.importFromEPSG(32614);
        ds->SetSpatialRef(&srs);
    }
    SceneOptions o = options_for(image, dir / "classes.tif");
    o.dense = dir / "dense.tif";
    const SceneResult r = map_scenes(scene_model(), o);
    EXPECT_EQ(r.windows, 8);
    EXPECT_EQ(r.windows_skipped, 4);
    const auto cls = RasterSource::open(o.output).read_float({0, 0, 4, 2}, {1});
    for (int i = 0; i < 8; ++i) EXPECT_EQ(cls[static_cast<size_t>(i)] == 255, i % 4 < 2) << i;
    const RasterSource dense = RasterSource::open(o.dense);
    EXPECT_EQ(dense.info().width, 64);
    EXPECT_EQ(dense.info().geotransform, RasterSource::open(image).info().geotransform);
    const auto d = dense.read_float({0, 0, 64, 32}, {1});
    for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 64; ++x) {
            // a pixel without data is nodata in the dense map even inside a classified window
            const float expected = hole(x, y) ? 255.0f : cls[static_cast<size_t>((y / 16) * 4 + x / 16)];
            ASSERT_EQ(d[static_cast<size_t>(y * 64 + x)], expected) << x << "," << y;
        }
}

// A window larger than the image is padded like any window over the image's edge, and the padding
// counts as nodata against --max-nodata (such images were refused: "the window is larger than the
// image"). 40x40 pixels in a 64-pixel window: 61 % padding.
TEST(SceneMap, AnImageSmallerThanTheWindowIsOnePaddedWindow) {
    test::TempDir dir;
    const std::string image = make_image(dir, 40, 40);
    for (const EdgePolicy edge : {EdgePolicy::constant, EdgePolicy::reflect}) {
        SceneOptions o = options_for(image, dir / "small.tif");
        o.window = 64;
        o.edge = edge;
        o.overwrite = true;
        SceneResult r = map_scenes(scene_model(), o);
        EXPECT_EQ(r.windows, 1);
        EXPECT_EQ(r.windows_skipped, 1);  // 61 % padding > --max-nodata 0.5
        RasterSource out = RasterSource::open(o.output);
        EXPECT_EQ(out.info().width, 1);
        EXPECT_EQ(out.info().height, 1);
        EXPECT_DOUBLE_EQ(out.info().geotransform[0], 300000);
        EXPECT_DOUBLE_EQ(out.info().geotransform[1], 64 * 0.3);
        EXPECT_DOUBLE_EQ(out.info().geotransform[5], -64 * 0.3);
        EXPECT_EQ(out.read_float({0, 0, 1, 1}, {1})[0], 255.0f);
        o.max_nodata = 0.7;
        r = map_scenes(scene_model(), o);
        EXPECT_EQ(r.windows_skipped, 0);
        EXPECT_LT(RasterSource::open(o.output).read_float({0, 0, 1, 1}, {1})[0], 3.0f);  // one of the fixture's 3 classes
    }
    // A one-row strip: every 16-pixel window is 15/16 padding, so nodata.
    SceneOptions strip = options_for(make_image(dir, 40, 1), dir / "strip.tif");
    const SceneResult r = map_scenes(scene_model(), strip);
    EXPECT_EQ(r.windows, 3);
    EXPECT_EQ(r.windows_skipped, 3);
}

// An image with another number of bands than the model reads is mapped through the model's default
// source bands (numbered as in its training imagery): said in a warning and reported, not silent (an
// 8-band image ran the RGBN model on its bands 4,3,2,8 without a word). Chosen bands say nothing.
TEST(SceneMap, DefaultSourceBandsOfAnotherBandCountAreWarned) {
    test::TempDir dir;
    const std::string image = dir / "six.tif";
    test::make_raster(image, 32, 32, 6, GDT_Byte, [](int b, int x, int y) { return (x * 5 + y * b) % 256; });
    const double gt[6] = {300000, 0.3, 0, 5000000, 0, -0.3};
    test::georeference(image, gt, 32614);
    SceneOptions o = options_for(image, dir / "six_classes.tif");
    SceneResult r = map_scenes(scene_model(), o);
    EXPECT_EQ(r.source_bands, (std::vector<int>{1, 2, 3, 4}));
    ASSERT_EQ(r.warnings.size(), 1u);
    EXPECT_NE(r.warnings[0].find("has 6 bands: its bands 1,2,3,4 fill the model's"), std::string::npos) << r.warnings[0];
    EXPECT_NE(r.warnings[0].find("choose them with --bands"), std::string::npos) << r.warnings[0];
    o.bands = {1, 2, 3, 4};
    o.overwrite = true;
    r = map_scenes(scene_model(), o);
    EXPECT_TRUE(r.warnings.empty()) << r.warnings[0];
    EXPECT_EQ(r.source_bands, (std::vector<int>{1, 2, 3, 4}));
}

TEST(SceneMap, BadRequestsFailClearly) {
    test::TempDir dir;
    const std::string image = make_image(dir, 40, 40);
    auto message = [&](const SceneOptions& o, const models::Model& m) {
        try {
            map_scenes(m, o);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    SceneOptions shift = options_for(image, dir / "x.tif");
    shift.edge = EdgePolicy::shift;
    EXPECT_NE(message(shift, scene_model()).find("would break the regular lattice"), std::string::npos);
    const models::Model segmenter = models::Model::load(fixture("tiny_segmenter.pt"));
    EXPECT_NE(message(options_for(image, dir / "x.tif"), segmenter).find("not a scene model"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(dir / "x.tif"));
}

// Windows shrunk by a whole factor are cut from a strip shrunk once per tile row; with no room for a
// strip (a zero budget for the reader) each window is read and shrunk on its own. Both agree.
TEST(SceneMap, StripShrinkingAgreesWithShrinkingEachWindow) {
    test::TempDir dir;
    const double gt[6] = {300000, 0.15, 0, 5000000, 0, -0.15};  // half the model's 0.3 m: factor 2
    test::make_raster(dir / "image.tif", 150, 110, 4, GDT_Byte,
                      // never 0: band 4 is alpha, and a window with a transparent pixel takes the per-window path
                      [](int b, int x, int y) { return 1 + (x * 7 + y * 3 * b + (x / 16) * 40 + (y / 24) * 30) % 255; });
    test::georeference(dir / "image.tif", gt, 32614);
    SceneOptions a = options_for(dir / "image.tif", dir / "a.tif"), b = options_for(dir / "image.tif", dir / "b.tif");
    for (SceneOptions* o : {&a, &b}) {
        o->stride = 8;  // 16 image pixels: a multiple of the factor
        o->batch = 4;
        o->probabilities = o->output + ".p.tif";
    }
    b.memory_budget_mb = 0;
    const SceneResult ra = map_scenes(scene_model(), a), rb = map_scenes(scene_model(), b);
    EXPECT_EQ(ra.window_pixels, 32);
    EXPECT_EQ(ra.windows_run, rb.windows_run);
    const RasterSource pa = RasterSource::open(a.probabilities), pb = RasterSource::open(b.probabilities);
    const PixelWindow all{0, 0, pa.info().width, pa.info().height};
    const auto x = pa.read_float(all, {1, 2, 3}), y = pb.read_float(all, {1, 2, 3});
    ASSERT_EQ(x.size(), y.size());
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(x[i], y[i], 1e-5) << i;
    EXPECT_EQ(RasterSource::open(a.output).read_float(all, {1}), RasterSource::open(b.output).read_float(all, {1}));
}

std::string file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// Every output of a scene map, byte for byte (the library pins GeoPackage timestamps itself).
void expect_same_outputs(const SceneOptions& a, const SceneOptions& b) {
    for (auto member : {&SceneOptions::output, &SceneOptions::probabilities, &SceneOptions::dense, &SceneOptions::csv, &SceneOptions::vector}) {
        const std::string x = file_bytes(a.*member), y = file_bytes(b.*member);
        EXPECT_FALSE(x.empty()) << a.*member;
        EXPECT_TRUE(x == y) << a.*member << " differs from " << b.*member;
    }
}

SceneOptions every_output(const std::string& image, const test::TempDir& dir, const std::string& stem) {
    SceneOptions o = options_for(image, dir / (stem + ".tif"));
    o.probabilities = dir / (stem + "_p.tif");
    o.dense = dir / (stem + "_dense.tif");
    o.csv = dir / (stem + ".csv");
    o.vector = dir / (stem + ".gpkg");
    o.stride = 8;
    o.batch = 5;  // batches straddle lattice rows (12 windows a row)
    return o;
}

// Runners finish batches in any order; the writer restores it, so the outputs are the same as with one.
TEST(SceneMap, SeveralRunnersWriteTheSameOutputsAsOne) {
    test::TempDir dir;
    const std::string image = make_image(dir, 100, 90);
    SceneOptions one = every_output(image, dir, "one"), three = every_output(image, dir, "three");
    one.model_runners = 1;
    three.model_runners = 3;
    three.batch = one.batch = 2;  // many small batches: out-of-order completion is likely
    const SceneResult a = map_scenes(scene_model(), one), b = map_scenes(scene_model(), three);
    EXPECT_EQ(a.model_runners, 1);
    EXPECT_EQ(b.model_runners, 3);
    EXPECT_EQ(a.windows_run, b.windows_run);
    expect_same_outputs(one, three);
    // Cancelled half-way, the runners stop and nothing is written.
    SceneOptions cancelled = every_output(image, dir, "cancelled");
    cancelled.model_runners = 3;
    cancelled.batch = 2;
    EXPECT_THROW(map_scenes(scene_model(), cancelled, [](double f, std::string_view) { return f < 0.5; }), Error);
    EXPECT_FALSE(std::filesystem::exists(cancelled.output));
    EXPECT_FALSE(std::filesystem::exists(cancelled.csv));
}

// The automatic choice on a CPU: one runner per inference thread, at most 4, the threads split.
TEST(SceneMap, RunnersShareTheInferenceThreads) {
    const int before = models::inference_threads();
    const auto split = [](int threads, int requested) {
        models::set_inference_threads(threads);
        return model_runners(scene_model(), requested).threads;
    };
    EXPECT_EQ(split(1, 0), std::vector<int>{0});  // one runner keeps the process-wide count
    EXPECT_EQ(split(2, 0), (std::vector<int>{1, 1}));
    EXPECT_EQ(split(6, 0), (std::vector<int>{2, 2, 1, 1}));
    EXPECT_EQ(split(16, 0), (std::vector<int>{4, 4, 4, 4}));
    EXPECT_EQ(split(2, 3), (std::vector<int>{1, 1, 1}));  // more runners than threads: one each
    EXPECT_EQ(split(8, 1), std::vector<int>{0});
    EXPECT_THROW(split(2, -1), Error);
    models::set_inference_threads(before);
}

// Shards write lattice rows as parts; the merge writes every output exactly as the direct run does.
TEST(SceneMap, ShardsMergedEqualTheDirectRun) {
    test::TempDir dir;
    const std::string image = make_image(dir, 100, 90);
    const SceneOptions direct = every_output(image, dir, "direct");
    const SceneResult d = map_scenes(scene_model(), direct);
    EXPECT_EQ(d.rows, 11);  // ceil((90 - 16) / 8) + 1
    SceneOptions sharded = every_output(image, dir, "sharded");
    for (int k : {1, 2, 0}) {
        SceneOptions o = sharded;
        o.shard = ShardSpec{k, 3};
        const SceneResult r = map_scenes(scene_model(), o);
        EXPECT_FALSE(r.assembled);
        EXPECT_EQ(r.strips_run, r.shard_strips);
        EXPECT_EQ(r.shard_strips, k == 0 ? 3 : 4);  // 11 lattice rows in 3 shards: 3, 4, 4
        EXPECT_FALSE(std::filesystem::exists(o.output));
        if (k == 2) {
            MergeOptions m;
            m.parts_dir = o.output + ".parts";
            try {
                merge_scene_parts(m);
                FAIL() << "merge of an incomplete job";
            } catch (const Error& e) {
                EXPECT_NE(std::string(e.what()).find("shard 0/3 has not started"), std::string::npos) << e.what();
            }
        }
    }
    MergeOptions m;
    m.parts_dir = sharded.output + ".parts";
    EXPECT_EQ(parts_job_kind(m.parts_dir), "scene");
    const SceneResult merged = merge_scene_parts(m);
    EXPECT_EQ(merged.windows_run + merged.windows_skipped, d.windows);
    EXPECT_EQ(merged.windows_run, d.windows_run);
    for (size_t c = 0; c < d.classes.size(); ++c) EXPECT_EQ(merged.classes[c].windows, d.classes[c].windows);
    expect_same_outputs(direct, sharded);
    EXPECT_FALSE(std::filesystem::exists(m.parts_dir));
}

// A run cancelled part-way continues from its journal to the same outputs; other options are refused.
TEST(SceneMap, ResumeAfterCancelEqualsTheDirectRun) {
    test::TempDir dir;
    const std::string image = make_image(dir, 100, 90);
    const SceneOptions direct = every_output(image, dir, "direct");
    map_scenes(scene_model(), direct);
    SceneOptions o = every_output(image, dir, "resumed");
    o.resume = true;
    EXPECT_THROW(map_scenes(scene_model(), o, [](double f, std::string_view) { return f < 0.5; }), Error);
    EXPECT_FALSE(std::filesystem::exists(o.output));
    EXPECT_FALSE(std::filesystem::exists(o.csv));
    ASSERT_TRUE(std::filesystem::exists(o.output + ".parts/shard-0-of-1.journal"));
    SceneOptions other = o;
    other.stride = 16;
    try {
        map_scenes(scene_model(), other);
        FAIL() << "resume with another stride";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::usage);
        EXPECT_NE(std::string(e.what()).find("parts of another job"), std::string::npos) << e.what();
    }
    const SceneResult r = map_scenes(scene_model(), o);
    EXPECT_GT(r.strips_resumed, 0);
    EXPECT_EQ(r.strips_resumed + r.strips_run, r.strips);
    expect_same_outputs(direct, o);
    EXPECT_FALSE(std::filesystem::exists(o.output + ".parts"));
}

}  // namespace
}  // namespace rsi
