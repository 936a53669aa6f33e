#include "src/vectorize.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <geodesic.h>
#include <gtest/gtest.h>
#include <iterator>
#include <ogrsf_frmts.h>
#include <optional>
#include <sstream>

#include "test_support.hpp"
#include "tiling/error.hpp"

namespace fs = std::filesystem;

namespace rsi {
namespace {

const double kUtm[6] = {500000, 2, 0, 5000000, 0, -2};  // EPSG:32633, 2 m pixels

struct Feature {
    int64_t id = 0;
    std::string cls;
    int class_id = -1;
    std::optional<double> area_m2;
    std::optional<double> confidence;
    std::unique_ptr<OGRGeometry> geometry;
};

struct Layer {
    std::vector<Feature> features;
    std::unique_ptr<OGRSpatialReference> srs;
    std::vector<std::string> fields;
};

Layer read_layer(const std::string& path) {
    Layer out;
    DatasetPtr ds(GDALDataset::FromHandle(GDALOpenEx(path.c_str(), GDAL_OF_VECTOR, nullptr, nullptr, nullptr)));
    EXPECT_TRUE(ds) << "cannot open " << path;
    if (!ds) return out;
    OGRLayer* layer = ds->GetLayer(0);
    if (const OGRSpatialReference* srs = layer->GetSpatialRef()) out.srs.reset(srs->Clone());
    OGRFeatureDefn* defn = layer->GetLayerDefn();
    for (int i = 0; i < defn->GetFieldCount(); ++i) out.fields.push_back(defn->GetFieldDefn(i)->GetNameRef());
    const int id = defn->GetFieldIndex("id"), cls = defn->GetFieldIndex("class"), class_id = defn->GetFieldIndex("class_id");
    const int area = defn->GetFieldIndex("area_m2"), conf = defn->GetFieldIndex("confidence");
    layer->ResetReading();
    for (std::unique_ptr<OGRFeature> f(layer->GetNextFeature()); f; f.reset(layer->GetNextFeature())) {
        Feature feature;
        feature.id = f->GetFieldAsInteger64(id);
        feature.cls = f->GetFieldAsString(cls);
        if (class_id >= 0) feature.class_id = f->GetFieldAsInteger(class_id);
        if (area >= 0 && f->IsFieldSetAndNotNull(area)) feature.area_m2 = f->GetFieldAsDouble(area);
        if (conf >= 0 && f->IsFieldSetAndNotNull(conf)) feature.confidence = f->GetFieldAsDouble(conf);
        feature.geometry.reset(f->StealGeometry());
        out.features.push_back(std::move(feature));
    }
    std::sort(out.features.begin(), out.features.end(), [](const Feature& a, const Feature& b) { return a.id < b.id; });
    return out;
}

// A Byte mask whose pixel (x, y) holds value(x, y); optionally georeferenced (UTM 33N by default).
template <typename Fn>
std::string make_mask(const test::TempDir& dir, const std::string& name, int width, int height, Fn value,
                      const double* gt = kUtm, int epsg = 32633, const std::vector<std::string>& options = {}) {
    const std::string path = dir / name;
    test::make_raster(
        path, width, height, 1, GDT_Byte, [&](int, int x, int y) { return value(x, y); }, options);
    if (gt) test::georeference(path, gt, epsg);
    return path;
}

bool in_rect(int x, int y, int x0, int y0, int x1, int y1) { return x >= x0 && x < x1 && y >= y0 && y < y1; }

VectorizeOptions options_for(const std::string& mask, const std::string& output) {
    VectorizeOptions o;
    o.mask = mask;
    o.output = output;
    return o;
}

const OGRPolygon& polygon_of(const Feature& f) { return *f.geometry->toPolygon(); }

template <typename Fn>
void expect_error(Fn fn, ErrorKind kind, const std::vector<std::string>& fragments) {
    test::QuietGdal quiet;
    try {
        fn();
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), kind) << e.what();
        const std::string message = e.what();
        EXPECT_EQ(message.find('\n'), std::string::npos) << message;
        for (const auto& fragment : fragments) EXPECT_NE(message.find(fragment), std::string::npos) << message;
    }
}

std::string file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<std::string> leftovers(const test::TempDir& dir) {
    std::vector<std::string> out;
    for (const auto& entry : fs::directory_iterator(dir.str())) {
        const std::string name = entry.path().filename().string();
        if (name.find("rsi-tmp") != std::string::npos) out.push_back(name);
    }
    return out;
}

// A canonical text of a layer: id, class, area, and the geometry as WKT (for run-to-run comparisons).
std::string describe(const Layer& layer) {
    std::ostringstream out;
    out.precision(12);
    for (const Feature& f : layer.features) {
        char* wkt = nullptr;
        f.geometry->exportToWkt(&wkt);
        out << f.id << ' ' << f.cls << ' ' << (f.area_m2 ? *f.area_m2 : -1) << ' ' << wkt << '\n';
        CPLFree(wkt);
    }
    return out.str();
}

// Corners of an outline (every ring) and how many are within `tolerance_deg` of a right angle.
std::pair<int, int> right_angle_corners(const OGRPolygon& polygon, double tolerance_deg) {
    int corners = 0, right = 0;
    for (int r = 0; r <= polygon.getNumInteriorRings(); ++r) {
        const OGRLinearRing* ring = r == 0 ? polygon.getExteriorRing() : polygon.getInteriorRing(r - 1);
        const int n = ring->getNumPoints() - 1;  // closed ring
        for (int i = 0; i < n; ++i) {
            const int p = (i + n - 1) % n, q = (i + 1) % n;
            const double ax = ring->getX(i) - ring->getX(p), ay = ring->getY(i) - ring->getY(p);
            const double bx = ring->getX(q) - ring->getX(i), by = ring->getY(q) - ring->getY(i);
            const double cosine = (ax * bx + ay * by) / (std::hypot(ax, ay) * std::hypot(bx, by));
            const double angle = std::acos(std::clamp(cosine, -1.0, 1.0)) * 180.0 / M_PI;
            ++corners;
            if (std::fabs(angle - 90.0) <= tolerance_deg) ++right;
        }
    }
    return {corners, right};
}

double iou(const OGRGeometry& a, const OGRGeometry& b) {
    std::unique_ptr<OGRGeometry> common(a.Intersection(&b));
    const double inter = common ? OGR_G_Area(OGRGeometry::ToHandle(common.get())) : 0;
    const double sum = OGR_G_Area(OGRGeometry::ToHandle(const_cast<OGRGeometry*>(&a))) +
                       OGR_G_Area(OGRGeometry::ToHandle(const_cast<OGRGeometry*>(&b)));
    return inter / (sum - inter);
}

// A w x h rectangle rotated by `degrees` about (cx, cy), rasterised by pixel centres.
auto rotated_rectangle(double cx, double cy, double w, double h, double degrees) {
    return [=](int x, int y) {
        const double t = degrees * M_PI / 180, dx = x + 0.5 - cx, dy = y + 0.5 - cy;
        const double u = dx * std::cos(t) + dy * std::sin(t), v = -dx * std::sin(t) + dy * std::cos(t);
        return std::fabs(u) <= w / 2 && std::fabs(v) <= h / 2 ? 1 : 0;
    };
}

TEST(Vectorize, SquareAcrossTileAndStripBordersIsOnePolygonWithItsArea) {
    test::TempDir dir;
    // A 12x12 square from pixel 10 to 22: it crosses the corner of four 16x16 tiles, and the borders
    // of 5-row strips.
    auto square = [](int x, int y) { return in_rect(x, y, 10, 10, 22, 22) ? 1 : 0; };
    const std::vector<std::vector<std::string>> layouts{{"TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16"},
                                                        {"BLOCKYSIZE=5"}};
    for (size_t i = 0; i < layouts.size(); ++i) {
        const std::string mask =
            make_mask(dir, "mask" + std::to_string(i) + ".tif", 48, 40, square, kUtm, 32633, layouts[i]);
        const VectorizeResult r = vectorize_mask(options_for(mask, dir / ("out" + std::to_string(i) + ".gpkg")));
        EXPECT_EQ(r.polygons, 1);
        EXPECT_DOUBLE_EQ(r.area_m2, 144 * 4.0);
        EXPECT_EQ(r.layer, "out" + std::to_string(i));
        const Layer layer = read_layer(r.output);
        ASSERT_EQ(layer.features.size(), 1u);
        const Feature& f = layer.features[0];
        EXPECT_EQ(f.id, 1);
        EXPECT_EQ(f.cls, "1");
        EXPECT_DOUBLE_EQ(*f.area_m2, 576.0);  // 144 pixels of 2 m x 2 m
        EXPECT_FALSE(f.confidence);
        EXPECT_EQ(polygon_of(f).getNumInteriorRings(), 0);
        EXPECT_EQ(polygon_of(f).getExteriorRing()->getNumPoints(), 5);  // a plain square, no seams
        OGREnvelope env;
        f.geometry->getEnvelope(&env);
        EXPECT_DOUBLE_EQ(env.MinX, 500020);
        EXPECT_DOUBLE_EQ(env.MaxX, 500044);
        EXPECT_DOUBLE_EQ(env.MaxY, 4999980);
        EXPECT_DOUBLE_EQ(env.MinY, 4999956);
        ASSERT_TRUE(layer.srs);
        EXPECT_STREQ(layer.srs->GetAuthorityCode(nullptr), "32633");
        EXPECT_EQ(layer.fields, (std::vector<std::string>{"id", "class", "class_id", "area_m2"}));
    }
}

TEST(Vectorize, GeographicAreaIsGeodesicAndMinAreaUsesIt) {
    test::TempDir dir;
    const double gt[6] = {10.0, 1e-4, 0, 50.0, 0, -1e-4};  // EPSG:4326, about 7 m x 11 m pixels
    const std::string mask = make_mask(
        dir, "geo.tif", 40, 40, [](int x, int y) { return in_rect(x, y, 5, 5, 25, 25); }, gt, 4326);
    const VectorizeResult r = vectorize_mask(options_for(mask, dir / "geo.gpkg"));
    ASSERT_EQ(r.polygons, 1);
    // The same square's geodesic area computed here with PROJ (lat/lon of its corners on WGS84).
    geod_geodesic g;
    geod_init(&g, 6378137, 1 / 298.257223563);
    double lats[4] = {49.9995, 49.9995, 49.9975, 49.9975}, lons[4] = {10.0005, 10.0025, 10.0025, 10.0005};
    double expected = 0, perimeter = 0;
    geod_polygonarea(&g, lats, lons, 4, &expected, &perimeter);
    expected = std::fabs(expected);
    const Layer layer = read_layer(r.output);
    ASSERT_EQ(layer.features.size(), 1u);
    EXPECT_NEAR(*layer.features[0].area_m2, expected, expected * 1e-9);
    EXPECT_NEAR(expected, 222.46 * 143.4, 222.46 * 143.4 * 0.005);  // 0.002 deg of latitude x of longitude at 50 N
    // min-area in square metres on the geographic raster.
    VectorizeOptions o = options_for(mask, dir / "big.gpkg");
    o.min_area_m2 = expected * 1.001;
    EXPECT_EQ(vectorize_mask(o).dropped_small, 1);
    o.output = dir / "small.gpkg";
    o.min_area_m2 = expected * 0.999;
    EXPECT_EQ(vectorize_mask(o).polygons, 1);
}

// Web Mercator (the CRS of XYZ imagery) is 1/cos(latitude) too large: 4x in area at 60 N. Its
// areas and --min-area are measured on the ellipsoid (they were the map's, x3.99 here).
TEST(Vectorize, WebMercatorAreaIsGeodesic) {
    test::TempDir dir;
    const double a = 6378137, y_top = 8399738 + 200;  // 60.0 N
    const double gt[6] = {1113195, 10, 0, y_top, 0, -10};  // 10 units: about 5 m of ground
    const std::string mask = make_mask(
        dir, "mercator.tif", 40, 40, [](int x, int y) { return in_rect(x, y, 5, 5, 25, 25); }, gt, 3857);
    const VectorizeResult r = vectorize_mask(options_for(mask, dir / "mercator.gpkg"));
    ASSERT_EQ(r.polygons, 1);
    // The square's corners to longitude/latitude with the spherical Mercator formulas, then PROJ's
    // geodesic area on WGS84.
    const auto lon = [&](double x) { return x / a * 180 / M_PI; };
    const auto lat = [&](double y) { return (2 * std::atan(std::exp(y / a)) - M_PI / 2) * 180 / M_PI; };
    const double x0 = gt[0] + 5 * 10, x1 = gt[0] + 25 * 10, y0 = y_top - 5 * 10, y1 = y_top - 25 * 10;
    double lats[4] = {lat(y0), lat(y0), lat(y1), lat(y1)}, lons[4] = {lon(x0), lon(x1), lon(x1), lon(x0)};
    geod_geodesic g;
    geod_init(&g, a, 1 / 298.257223563);
    double expected = 0, perimeter = 0;
    geod_polygonarea(&g, lats, lons, 4, &expected, &perimeter);
    expected = std::fabs(expected);
    EXPECT_NEAR(expected, 200 * 200 / 4.0, 200 * 200 / 4.0 * 0.01);  // cos(60)^2 of the map's 40000
    const Layer layer = read_layer(r.output);
    ASSERT_EQ(layer.features.size(), 1u);
    EXPECT_NEAR(*layer.features[0].area_m2, expected, expected * 1e-9);
    VectorizeOptions o = options_for(mask, dir / "big.gpkg");
    o.min_area_m2 = expected * 1.001;
    EXPECT_EQ(vectorize_mask(o).dropped_small, 1);
}

TEST(Vectorize, HolesAreKept) {
    test::TempDir dir;
    const std::string mask = make_mask(dir, "ring.tif", 24, 24, [](int x, int y) {
        return in_rect(x, y, 4, 4, 16, 16) && !in_rect(x, y, 8, 8, 12, 12) ? 1 : 0;
    });
    const VectorizeResult r = vectorize_mask(options_for(mask, dir / "ring.gpkg"));
    ASSERT_EQ(r.polygons, 1);
    const Layer layer = read_layer(r.output);
    const OGRPolygon& p = polygon_of(layer.features[0]);
    EXPECT_EQ(p.getNumInteriorRings(), 1);
    EXPECT_TRUE(p.IsValid());
    EXPECT_DOUBLE_EQ(*layer.features[0].area_m2, (144 - 16) * 4.0);
    EXPECT_DOUBLE_EQ(p.get_Area(), (144 - 16) * 4.0);
}

// 0 background, 1 and 2 touching rectangles, 3 a square, 255 nodata (not polygonised either).
int multi_class(int x, int y) {
    if (in_rect(x, y, 2, 2, 10, 8)) return 1;
    if (in_rect(x, y, 10, 2, 16, 8)) return 2;
    if (in_rect(x, y, 20, 12, 24, 16)) return 3;
    if (in_rect(x, y, 0, 20, 30, 24)) return 255;
    return 0;
}

TEST(Vectorize, BackgroundAndNodataAreNotPolygonisedAndClassesSelect) {
    test::TempDir dir;
    const std::string mask = make_mask(dir, "classes.tif", 30, 24, multi_class);
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(mask.c_str(), GA_Update)));
        ds->GetRasterBand(1)->SetNoDataValue(255);
    }
    VectorizeOptions o = options_for(mask, dir / "all.gpkg");
    o.class_names = {{1, "building"}, {2, "road"}};
    VectorizeResult r = vectorize_mask(o);
    EXPECT_EQ(r.polygons, 3);
    EXPECT_DOUBLE_EQ(r.area_m2, (48 + 36 + 16) * 4.0);  // no background, no nodata
    Layer layer = read_layer(r.output);
    ASSERT_EQ(layer.features.size(), 3u);
    // ids in reading order of the top-left pixel: (2,2) class 1, (2,10) class 2, (12,20) class 3.
    EXPECT_EQ(layer.features[0].cls, "building");
    EXPECT_EQ(layer.features[1].cls, "road");
    EXPECT_EQ(layer.features[2].cls, "3");
    // The value itself, for styling and joins: an integer field whether or not the class has a name.
    EXPECT_EQ(layer.features[0].class_id, 1);
    EXPECT_EQ(layer.features[1].class_id, 2);
    EXPECT_EQ(layer.features[2].class_id, 3);
    EXPECT_DOUBLE_EQ(*layer.features[0].area_m2, 48 * 4.0);
    EXPECT_DOUBLE_EQ(*layer.features[1].area_m2, 36 * 4.0);

    o.output = dir / "roads.gpkg";
    o.classes = {2, 3};
    r = vectorize_mask(o);
    EXPECT_EQ(r.polygons, 2);
    layer = read_layer(r.output);
    EXPECT_EQ(layer.features[0].cls, "road");
    EXPECT_EQ(layer.features[0].id, 1);
    EXPECT_EQ(layer.features[1].cls, "3");

    o.output = dir / "nodata.gpkg";
    o.classes = {255};
    expect_error([&] { vectorize_mask(o); }, ErrorKind::usage, {mask, "nodata"});
}

TEST(Vectorize, WiderIntegerMasksSelectLargeClassValues) {
    test::TempDir dir;
    const std::string mask = dir / "int32.tif";
    test::make_raster(mask, 30, 10, 1, GDT_Int32, [](int, int x, int y) {
        if (y < 2 || y >= 8) return 0.0;
        return x < 10 ? 40000.0 : x < 20 ? -7.0 : 3000000.0;
    });
    test::georeference(mask, kUtm, 32633);
    VectorizeOptions o = options_for(mask, dir / "all.gpkg");
    EXPECT_EQ(vectorize_mask(o).polygons, 3);
    o.output = dir / "table.gpkg";
    o.classes = {40000, -7};  // a lookup table over -7..40000
    const VectorizeResult table = vectorize_mask(o);
    EXPECT_TRUE(table.warnings.empty());
    Layer layer = read_layer(table.output);
    ASSERT_EQ(layer.features.size(), 2u);
    EXPECT_EQ(layer.features[0].cls, "40000");
    EXPECT_EQ(layer.features[1].cls, "-7");
    EXPECT_EQ(layer.features[0].class_id, 40000);
    EXPECT_EQ(layer.features[1].class_id, -7);
    o.output = dir / "search.gpkg";
    o.classes = {-7, 3000000};  // too wide a range for a table
    layer = read_layer(vectorize_mask(o).output);
    ASSERT_EQ(layer.features.size(), 2u);
    EXPECT_EQ(layer.features[0].cls, "-7");
    EXPECT_EQ(layer.features[1].cls, "3000000");
    // Classes that never occur are said, with the values that do (a 0/255 mask asked for class 1
    // gave no polygons and no word why); through the lookup table and the sorted search alike.
    o.output = dir / "absent_table.gpkg";
    o.classes = {1, 40000, 2};
    VectorizeResult r = vectorize_mask(o);
    EXPECT_EQ(r.polygons, 1);
    EXPECT_EQ(r.warnings, std::vector<std::string>{mask + ": classes 1, 2 do not occur in the mask (its other values: -7, 0, 3000000)"});
    o.output = dir / "absent_search.gpkg";
    o.classes = {-7, 5000000};
    r = vectorize_mask(o);
    EXPECT_EQ(r.warnings, std::vector<std::string>{mask + ": class 5000000 does not occur in the mask (its other values: 0, 40000, 3000000)"});
}

// UInt32 classes are read as Int32: its usual nodata (4294967295) is still nodata, and a value above
// Int32's range is refused (two such classes became one polygon of class 2147483647).
TEST(Vectorize, UInt32MasksKeepTheirNodataAndRefuseValuesAboveInt32) {
    test::TempDir dir;
    const std::string mask = dir / "uint32.tif";
    test::make_raster(mask, 20, 10, 1, GDT_UInt32, [](int, int x, int y) {
        return y < 5 ? 4294967295.0 : x < 10 ? 7.0 : 2147483647.0;
    });
    test::georeference(mask, kUtm, 32633);
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(mask.c_str(), GA_Update)));
        ASSERT_TRUE(ds);
        ds->GetRasterBand(1)->SetNoDataValue(4294967295.0);
    }
    const Layer layer = read_layer(vectorize_mask(options_for(mask, dir / "all.gpkg")).output);
    ASSERT_EQ(layer.features.size(), 2u);
    EXPECT_EQ(layer.features[0].class_id, 7);
    EXPECT_EQ(layer.features[1].class_id, 2147483647);
    EXPECT_DOUBLE_EQ(*layer.features[0].area_m2, 50 * 4.0);

    const std::string large = dir / "large.tif";
    test::make_raster(large, 20, 10, 1, GDT_UInt32, [](int, int x, int) { return x < 10 ? 3000000000.0 : 3500000000.0; });
    test::georeference(large, kUtm, 32633);
    expect_error([&] { vectorize_mask(options_for(large, dir / "large.gpkg")); }, ErrorKind::runtime,
                 {large, "class value 3000000000 (row 0) is above 2147483647"});
    EXPECT_FALSE(fs::exists(dir / "large.gpkg"));
}

TEST(Vectorize, MinAreaDropsExactlyTheSmallerPolygons) {
    test::TempDir dir;
    const double gt[6] = {300000, 1, 0, 4000000, 0, -1};  // 1 m pixels: squares of 1, 4, 9, 16 and 25 m2
    const std::string mask = make_mask(
        dir, "squares.tif", 40, 10,
        [](int x, int y) {
            for (int s = 1; s <= 5; ++s) {
                if (in_rect(x, y, s * 7, 1, s * 7 + s, 1 + s)) return 1;
            }
            return 0;
        },
        gt, 32633);
    VectorizeOptions o = options_for(mask, dir / "nine.gpkg");
    o.min_area_m2 = 9;
    VectorizeResult r = vectorize_mask(o);
    EXPECT_EQ(r.polygons, 3);
    EXPECT_EQ(r.dropped_small, 2);
    EXPECT_DOUBLE_EQ(r.area_m2, 9 + 16 + 25);
    const Layer layer = read_layer(r.output);
    ASSERT_EQ(layer.features.size(), 3u);
    EXPECT_DOUBLE_EQ(*layer.features[0].area_m2, 9);
    EXPECT_EQ(layer.features[0].id, 1);  // ids count the kept polygons only
    o.output = dir / "more.gpkg";
    o.min_area_m2 = 9.5;
    r = vectorize_mask(o);
    EXPECT_EQ(r.polygons, 2);
    EXPECT_EQ(r.dropped_small, 3);
    // With simplification the threshold applies to the written outline: none below it is kept.
    o.output = dir / "simplified.gpkg";
    o.min_area_m2 = 9;
    o.simplify_m = 2;
    r = vectorize_mask(o);
    for (const auto& f : read_layer(r.output).features) EXPECT_GE(*f.area_m2, 9.0);
    EXPECT_EQ(r.polygons + r.dropped_small, 5);
    // ... and only there: an outline that grows past the threshold when shaped is kept. The count equals
    // the unfiltered shaped run's polygons at or above it, for every threshold between the squares.
    o.output = dir / "all.gpkg";
    o.min_area_m2 = 0;
    const Layer shaped = read_layer(vectorize_mask(o).output);
    for (const double threshold : {0.5, 1.0, 1.5, 3.0, 4.5, 8.0, 9.5, 15.0, 20.0}) {
        o.output = dir / ("t" + std::to_string(static_cast<int>(threshold * 10)) + ".gpkg");
        o.min_area_m2 = threshold;
        const size_t expected = static_cast<size_t>(
            std::count_if(shaped.features.begin(), shaped.features.end(), [&](const auto& f) { return *f.area_m2 >= threshold; }));
        EXPECT_EQ(static_cast<size_t>(vectorize_mask(o).polygons), expected) << threshold;
    }
}

// A disk of radius 15 pixels (1 m) centred at (20, 20).
int disk(int x, int y) { return std::hypot(x + 0.5 - 20, y + 0.5 - 20) <= 15 ? 1 : 0; }

TEST(Vectorize, SimplifyReducesVerticesAndKeepsValidity) {
    test::TempDir dir;
    const double gt[6] = {300000, 1, 0, 4000000, 0, -1};
    const std::string mask = make_mask(dir, "disk.tif", 40, 40, disk, gt, 32633);
    const Layer raw = read_layer(vectorize_mask(options_for(mask, dir / "raw.gpkg")).output);
    VectorizeOptions o = options_for(mask, dir / "simple.gpkg");
    o.simplify_m = 1.0;
    const Layer simple = read_layer(vectorize_mask(o).output);
    ASSERT_EQ(raw.features.size(), 1u);
    ASSERT_EQ(simple.features.size(), 1u);
    const int raw_points = polygon_of(raw.features[0]).getExteriorRing()->getNumPoints();
    const int simple_points = polygon_of(simple.features[0]).getExteriorRing()->getNumPoints();
    EXPECT_GT(raw_points, 60);
    EXPECT_LT(simple_points, raw_points / 3);
    EXPECT_GE(simple_points, 8);
    EXPECT_TRUE(simple.features[0].geometry->IsValid());
    EXPECT_NEAR(*simple.features[0].area_m2, *raw.features[0].area_m2, *raw.features[0].area_m2 * 0.05);
    EXPECT_NEAR(*simple.features[0].area_m2, polygon_of(simple.features[0]).get_Area(), 1e-6);
    EXPECT_GT(iou(*simple.features[0].geometry, *raw.features[0].geometry), 0.95);
}

// Outlines reshaped one by one used to overlap where polygons touch at a corner or lie closer than the
// tolerance (dozens of overlapping pairs on this mask before). A mask of blobs of two classes,
// many diagonal neighbours: simplified or regularised, no two polygons overlap, every one is valid,
// no polygon covers another's pixels, and the stored area is the written polygon's.
TEST(Vectorize, ReshapedNeighboursDoNotOverlap) {
    test::TempDir dir;
    const double gt[6] = {300000, 0.5, 0, 4000000, 0, -0.5};
    uint32_t state = 12345;
    std::vector<uint8_t> cells(60 * 60);
    for (uint8_t& c : cells) {
        state = state * 1664525u + 1013904223u;
        c = static_cast<uint8_t>((state >> 24) % 5 < 2 ? 1 + (state >> 16) % 2 : 0);  // 40 % blobs, classes 1 and 2
    }
    const std::string mask = make_mask(dir, "blobs.tif", 120, 120, [&](int x, int y) { return cells[static_cast<size_t>(y / 2 * 60 + x / 2)]; }, gt);
    const Layer pixels = read_layer(vectorize_mask(options_for(mask, dir / "pixels.gpkg")).output);
    for (const bool regularize : {false, true}) {
        VectorizeOptions o = options_for(mask, dir / (regularize ? "regular.gpkg" : "simple.gpkg"));
        o.simplify_m = 1.5;
        o.regularize = regularize;
        const Layer shaped = read_layer(vectorize_mask(o).output);
        ASSERT_GT(shaped.features.size(), 600u);  // more than one batch of 512: outlines settled in earlier batches count too
        int touching = 0;
        for (size_t i = 0; i < shaped.features.size(); ++i) {
            const OGRGeometry& a = *shaped.features[i].geometry;
            EXPECT_TRUE(a.IsValid()) << shaped.features[i].id;
            EXPECT_NEAR(*shaped.features[i].area_m2, a.toPolygon()->get_Area(), 1e-6);
            for (size_t j = i + 1; j < shaped.features.size(); ++j) {
                const OGRGeometry& b = *shaped.features[j].geometry;
                if (!a.Intersects(&b)) continue;
                ++touching;
                std::unique_ptr<OGRGeometry> common(a.Intersection(&b));
                const double area = common ? OGR_G_Area(OGRGeometry::ToHandle(common.get())) : 0.0;
                EXPECT_LT(area, 1e-9) << "ids " << shaped.features[i].id << " and " << shaped.features[j].id << " overlap";
            }
        }
        EXPECT_GT(touching, 100) << "the mask should have neighbours that touch";
        // Outline i covers no other polygon's pixels (same reading order, so same ids as `pixels`).
        ASSERT_EQ(shaped.features.size(), pixels.features.size());
        for (size_t i = 0; i < shaped.features.size(); ++i) {
            for (size_t j = 0; j < pixels.features.size(); ++j) {
                if (i == j || !shaped.features[i].geometry->Intersects(pixels.features[j].geometry.get())) continue;
                std::unique_ptr<OGRGeometry> common(shaped.features[i].geometry->Intersection(pixels.features[j].geometry.get()));
                EXPECT_LT(common ? OGR_G_Area(OGRGeometry::ToHandle(common.get())) : 0.0, 1e-9) << "outline " << i << " on pixels of " << j;
            }
        }
    }
}

// An RGB image given as the mask is polygonised (band 1), with a warning saying so.
TEST(Vectorize, SeveralBandsGetAWarning) {
    test::TempDir dir;
    const std::string rgb = dir / "photo.tif";
    test::make_raster(rgb, 12, 10, 3, GDT_Byte, [](int b, int x, int) { return x > 5 ? b : 0; });
    test::georeference(rgb, kUtm, 32633);
    const VectorizeResult r = vectorize_mask(options_for(rgb, dir / "photo.gpkg"));
    EXPECT_EQ(r.polygons, 1);
    ASSERT_EQ(r.warnings.size(), 1u);
    EXPECT_NE(r.warnings[0].find("photo.tif has 3 bands: band 1 is polygonised"), std::string::npos) << r.warnings[0];
    const std::string mask = make_mask(dir, "mask.tif", 12, 10, [](int x, int) { return x > 5; });
    EXPECT_TRUE(vectorize_mask(options_for(mask, dir / "mask.gpkg")).warnings.empty());
}

TEST(Vectorize, ConfidenceIsTheMeanProbabilityOfTheClass) {
    test::TempDir dir;
    // Class 1: a 4x3 rectangle and a 2x2 square; class 2: a 3x3 square.
    auto classes = [](int x, int y) {
        if (in_rect(x, y, 1, 1, 5, 4)) return 1;
        if (in_rect(x, y, 10, 1, 12, 3)) return 1;
        if (in_rect(x, y, 1, 8, 4, 11)) return 2;
        return 0;
    };
    const std::string mask = make_mask(dir, "mask.tif", 16, 12, classes);
    auto p1 = [](int x, int y) { return 0.05 * x + 0.01 * y; };
    auto p2 = [](int x, int y) { return 0.9 - 0.02 * x - 0.01 * y; };
    auto expected_mean = [&](auto p, int x0, int y0, int x1, int y1) {
        double sum = 0;
        for (int y = y0; y < y1; ++y)
            for (int x = x0; x < x1; ++x) sum += static_cast<float>(p(x, y));
        return sum / ((x1 - x0) * (y1 - y0));
    };
    // Float32, one band per class (band 1 is the background, band c+1 is class c).
    const std::string probs = dir / "probs.tif";
    test::make_raster(probs, 16, 12, 3, GDT_Float32, [&](int b, int x, int y) {
        return b == 1 ? 0.5 : b == 2 ? p1(x, y) : p2(x, y);
    });
    test::georeference(probs, kUtm, 32633);
    VectorizeOptions o = options_for(mask, dir / "conf.gpkg");
    o.probabilities = probs;
    VectorizeResult r = vectorize_mask(o);
    ASSERT_EQ(r.polygons, 3);
    Layer layer = read_layer(r.output);
    EXPECT_EQ(layer.fields.back(), "confidence");
    EXPECT_NEAR(*layer.features[0].confidence, expected_mean(p1, 1, 1, 5, 4), 1e-6);
    EXPECT_NEAR(*layer.features[1].confidence, expected_mean(p1, 10, 1, 12, 3), 1e-6);
    EXPECT_NEAR(*layer.features[2].confidence, expected_mean(p2, 1, 8, 4, 11), 1e-6);

    // min-confidence between the two class-1 means drops the weaker one.
    const double low = expected_mean(p1, 1, 1, 5, 4), high = expected_mean(p1, 10, 1, 12, 3);
    o.output = dir / "confident.gpkg";
    o.min_confidence = (low + high) / 2;
    r = vectorize_mask(o);
    EXPECT_EQ(r.polygons, 2);
    EXPECT_EQ(r.dropped_unconfident, 1);

    // Byte probabilities (0..255), a single band used for every class.
    const std::string bytes = dir / "bytes.tif";
    test::make_raster(bytes, 16, 12, 1, GDT_Byte, [](int, int x, int y) { return 10 * x + y; });
    test::georeference(bytes, kUtm, 32633);
    o = options_for(mask, dir / "bytes.gpkg");
    o.probabilities = bytes;
    layer = read_layer(vectorize_mask(o).output);
    double sum = 0;
    for (int y = 8; y < 11; ++y)
        for (int x = 1; x < 4; ++x) sum += 10 * x + y;
    EXPECT_NEAR(*layer.features[2].confidence, sum / 9 / 255, 1e-9);
}

TEST(Vectorize, GeoJsonIsWgs84UnlessTheCrsIsKept) {
    test::TempDir dir;
    const std::string mask =
        make_mask(dir, "m.tif", 20, 20, [](int x, int y) { return in_rect(x, y, 4, 4, 8, 8) ? 1 : 0; });
    const Layer wgs84 = read_layer(vectorize_mask(options_for(mask, dir / "out.geojson")).output);
    ASSERT_EQ(wgs84.features.size(), 1u);
    // The UTM corner (500008, 4999992) in WGS84, computed with OGR.
    OGRSpatialReference utm, geographic;
    utm.importFromEPSG(32633);
    utm.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    geographic.importFromEPSG(4326);
    geographic.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&utm, &geographic));
    double x = 500008, y = 4999992;
    ASSERT_TRUE(ct->Transform(1, &x, &y));
    OGREnvelope env;
    wgs84.features[0].geometry->getEnvelope(&env);
    EXPECT_NEAR(env.MinX, x, 1e-6);  // 7 decimals in RFC 7946 output
    EXPECT_NEAR(env.MaxY, y, 1e-6);
    EXPECT_NEAR(env.MinX, 15.0, 0.01);  // central meridian of zone 33, near 45 N
    EXPECT_NEAR(env.MaxY, 45.15, 0.05);
    EXPECT_DOUBLE_EQ(*wgs84.features[0].area_m2, 64);  // the area stays the image CRS's
    const std::string text = file_bytes(dir / "out.geojson");
    EXPECT_EQ(text.find("\"crs\""), std::string::npos);  // RFC 7946: no crs member

    VectorizeOptions o = options_for(mask, dir / "utm.geojson");
    o.keep_crs = true;
    const Layer kept = read_layer(vectorize_mask(o).output);
    kept.features[0].geometry->getEnvelope(&env);
    EXPECT_DOUBLE_EQ(env.MinX, 500008);
    EXPECT_DOUBLE_EQ(env.MaxY, 4999992);
    ASSERT_TRUE(kept.srs);
    EXPECT_STREQ(kept.srs->GetAuthorityCode(nullptr), "32633");
}

TEST(Vectorize, GeographicSimplifyAndRegularizeWorkInMetres) {
    test::TempDir dir;
    // EPSG:4326 at 45 N: 1e-5 degree pixels are about 0.79 m (east) x 1.11 m (north), so right angles
    // and metre tolerances only hold in a metric frame, checked here in UTM 33N.
    const double gt[6] = {15.0, 1e-5, 0, 45.0, 0, -1e-5};
    auto ground_rectangle = [](int x, int y) {  // 40 m x 20 m, rotated by 30 degrees on the ground
        const double t = 30 * M_PI / 180, dx = (x + 0.5 - 40) * 0.7885, dy = (y + 0.5 - 40) * 1.1113;
        const double u = dx * std::cos(t) + dy * std::sin(t), v = -dx * std::sin(t) + dy * std::cos(t);
        return std::fabs(u) <= 20 && std::fabs(v) <= 10 ? 1 : 0;
    };
    const std::string mask = make_mask(dir, "geo.tif", 80, 80, ground_rectangle, gt, 4326);
    VectorizeOptions o = options_for(mask, dir / "raw.gpkg");
    const Layer raw = read_layer(vectorize_mask(o).output);
    o.output = dir / "simple.gpkg";
    o.simplify_m = 1.0;
    const Layer simple = read_layer(vectorize_mask(o).output);
    o.output = dir / "regular.gpkg";
    o.simplify_m = 0;
    o.regularize = true;
    const Layer regular = read_layer(vectorize_mask(o).output);
    ASSERT_EQ(raw.features.size(), 1u);
    ASSERT_EQ(simple.features.size(), 1u);
    ASSERT_EQ(regular.features.size(), 1u);
    EXPECT_LT(polygon_of(simple.features[0]).getExteriorRing()->getNumPoints(),
              polygon_of(raw.features[0]).getExteriorRing()->getNumPoints() / 3);
    EXPECT_TRUE(simple.features[0].geometry->IsValid());
    EXPECT_NEAR(*simple.features[0].area_m2, *raw.features[0].area_m2, *raw.features[0].area_m2 * 0.03);

    OGRSpatialReference geographic, utm;
    geographic.importFromEPSG(4326);
    geographic.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    utm.importFromEPSG(32633);
    utm.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&geographic, &utm));
    std::unique_ptr<OGRGeometry> projected(regular.features[0].geometry->clone());
    ASSERT_EQ(projected->transform(ct.get()), OGRERR_NONE);
    const OGRPolygon& p = *projected->toPolygon();
    EXPECT_EQ(p.getExteriorRing()->getNumPoints(), 5);
    const auto [corners, right] = right_angle_corners(p, 0.5);
    EXPECT_EQ(right, corners);
    std::unique_ptr<OGRGeometry> raw_projected(raw.features[0].geometry->clone());
    ASSERT_EQ(raw_projected->transform(ct.get()), OGRERR_NONE);
    EXPECT_GT(iou(p, *raw_projected), 0.9);
    // The geodesic area matches the area in UTM (scale factor 0.9996 on the central meridian, squared).
    EXPECT_NEAR(*regular.features[0].area_m2, p.get_Area() / (0.9996 * 0.9996), p.get_Area() * 2e-3);
}

// Several shapes placed so that their reading order differs from any creation order.
int scattered(int x, int y) {
    if (in_rect(x, y, 30, 2, 34, 6)) return 1;   // id 2: top-left pixel row 2, column 30
    if (in_rect(x, y, 3, 5, 9, 9)) return 2;     // id 3: row 5, column 3
    if (in_rect(x, y, 15, 2, 18, 12)) return 1;  // id 1: row 2, column 15
    if (in_rect(x, y, 20, 5, 22, 7)) return 1;   // id 4: row 5, column 20
    if (in_rect(x, y, 2, 20, 40, 22)) return 2;  // id 5: row 20
    return 0;
}

TEST(Vectorize, IdsFollowTheTopLeftPixelAndOutputIsDeterministic) {
    test::TempDir dir;
    const std::string tiled =
        make_mask(dir, "tiled.tif", 48, 32, scattered, kUtm, 32633, {"TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16"});
    const std::string striped = make_mask(dir, "striped.tif", 48, 32, scattered, kUtm, 32633, {"BLOCKYSIZE=3"});
    fs::create_directories(dir / "a");
    fs::create_directories(dir / "b");
    const VectorizeResult a = vectorize_mask(options_for(tiled, dir / "a/out.gpkg"));
    const VectorizeResult b = vectorize_mask(options_for(tiled, dir / "b/out.gpkg"));
    EXPECT_EQ(a.polygons, 5);
    EXPECT_TRUE(file_bytes(a.output) == file_bytes(b.output));  // byte for byte
    const Layer layer = read_layer(a.output);
    ASSERT_EQ(layer.features.size(), 5u);
    const std::vector<std::pair<double, double>> top_left{
        {500030, 4999996}, {500060, 4999996}, {500006, 4999990}, {500040, 4999990}, {500004, 4999960}};
    for (size_t i = 0; i < 5; ++i) {
        OGREnvelope env;
        layer.features[i].geometry->getEnvelope(&env);
        EXPECT_EQ(layer.features[i].id, static_cast<int64_t>(i + 1));
        EXPECT_DOUBLE_EQ(env.MinX, top_left[i].first) << "id " << i + 1;
        EXPECT_DOUBLE_EQ(env.MaxY, top_left[i].second) << "id " << i + 1;
    }
    // A different block layout, and scratch layers on disk instead of in memory: the same features.
    VectorizeOptions o = options_for(striped, dir / "c.gpkg");
    o.memory_budget_mb = 0;
    vectorize_mask(o);
    EXPECT_EQ(describe(read_layer(dir / "c.gpkg")), describe(layer));
    EXPECT_FALSE(describe(layer).empty());
    EXPECT_TRUE(leftovers(dir).empty());
    // GeoPackage fids are the ids.
    DatasetPtr ds(GDALDataset::FromHandle(GDALOpenEx(a.output.c_str(), GDAL_OF_VECTOR, nullptr, nullptr, nullptr)));
    std::unique_ptr<OGRFeature> third(ds->GetLayer(0)->GetFeature(3));
    ASSERT_TRUE(third);
    EXPECT_EQ(third->GetFieldAsInteger64("id"), 3);
}

TEST(Vectorize, FlatGeobufAndShapefileWithAllTheirFiles) {
    test::TempDir dir;
    const std::string mask = make_mask(dir, "m.tif", 48, 32, scattered);
    vectorize_mask(options_for(mask, dir / "ref.gpkg"));
    for (const std::string name : {"out.fgb", "out.shp", "out.json"}) {
        VectorizeOptions o = options_for(mask, dir / name);
        o.keep_crs = true;
        const VectorizeResult r = vectorize_mask(o);
        EXPECT_EQ(r.polygons, 5) << name;
        const Layer layer = read_layer(r.output);
        ASSERT_EQ(layer.features.size(), 5u) << name;
        ASSERT_TRUE(layer.srs) << name;
        double area = 0;
        for (const Feature& f : layer.features) area += *f.area_m2;
        EXPECT_DOUBLE_EQ(area, r.area_m2) << name;
    }
    for (const char* ext : {".shp", ".shx", ".dbf", ".prj", ".cpg"})
        EXPECT_TRUE(fs::exists(dir / (std::string("out") + ext))) << ext;
    // GDAL writes a shapefile's files with lower-case extensions: so does the output name.
    const VectorizeResult upper = vectorize_mask(options_for(mask, dir / "upper.SHP"));
    EXPECT_EQ(upper.output, dir / "upper.shp");
    EXPECT_TRUE(fs::exists(dir / "upper.shp") && fs::exists(dir / "upper.dbf"));
    EXPECT_TRUE(leftovers(dir).empty());
    // Shapefile rings come back in the same places (ids 1..5 in the same order).
    const Layer shp = read_layer(dir / "out.shp");
    const Layer ref = read_layer(dir / "ref.gpkg");
    for (size_t i = 0; i < 5; ++i) EXPECT_NEAR(iou(*shp.features[i].geometry, *ref.features[i].geometry), 1.0, 1e-12);
}

TEST(Vectorize, ExistingOutputNeedsOverwriteAndStaleSidecarsGo) {
    test::TempDir dir;
    const std::string mask =
        make_mask(dir, "m.tif", 20, 20, [](int x, int y) { return in_rect(x, y, 2, 2, 6, 6) ? 1 : 0; });
    vectorize_mask(options_for(mask, dir / "out.shp"));
    expect_error([&] { vectorize_mask(options_for(mask, dir / "out.shp")); }, ErrorKind::usage,
                 {"out.shp", "--overwrite"});
    std::ofstream(dir / "out.qix") << "stale spatial index";
    VectorizeOptions o = options_for(mask, dir / "out.shp");
    o.overwrite = true;
    o.classes = {7};  // nothing of class 7: an empty layer replaces the old one
    EXPECT_EQ(vectorize_mask(o).polygons, 0);
    EXPECT_FALSE(fs::exists(dir / "out.qix"));
    EXPECT_TRUE(read_layer(dir / "out.shp").features.empty());
    EXPECT_TRUE(leftovers(dir).empty());
}

TEST(Vectorize, ErrorsNameTheFileAndTheProblem) {
    test::TempDir dir;
    const std::string mask =
        make_mask(dir, "m.tif", 20, 20, [](int x, int y) { return in_rect(x, y, 2, 2, 6, 6) ? 1 : 0; });
    const std::string out = dir / "out.gpkg";
    {
        // Probabilities on the same pixel grid but in another CRS are not the mask's grid.
        const double gt[6] = {300000, 1, 0, 4000000, 0, -1};
        const std::string utm = make_mask(dir, "utm.tif", 20, 20, [](int, int) { return 1; }, gt, 32633);
        test::make_raster(dir / "p_other.tif", 20, 20, 1, GDT_Float32, [](int, int, int) { return 0.9; });
        test::georeference(dir / "p_other.tif", gt, 32617);
        VectorizeOptions o = options_for(utm, dir / "crs.gpkg");
        o.probabilities = dir / "p_other.tif";
        expect_error([&] { vectorize_mask(o); }, ErrorKind::runtime, {"p_other.tif", "CRS differs"});
    }
    expect_error([&] { vectorize_mask(options_for(dir / "missing.tif", out)); }, ErrorKind::runtime,
                 {"missing.tif", "no such file"});
    std::ofstream(dir / "text.tif") << "not a raster";
    expect_error([&] { vectorize_mask(options_for(dir / "text.tif", out)); }, ErrorKind::runtime,
                 {"text.tif", "not a raster"});
    const std::string floats = dir / "float.tif";
    test::make_raster(floats, 8, 8, 1, GDT_Float32, [](int, int x, int) { return x * 0.5; });
    expect_error([&] { vectorize_mask(options_for(floats, out)); }, ErrorKind::runtime,
                 {"float.tif", "Float32", "integer"});
    expect_error([&] { vectorize_mask(options_for(mask, dir / "out.txt")); }, ErrorKind::usage, {"out.txt", ".gpkg"});
    expect_error([&] { vectorize_mask(options_for(mask, dir / "no_dir/out.gpkg")); }, ErrorKind::runtime,
                 {"does not exist"});

    // Probabilities on another grid.
    VectorizeOptions o = options_for(mask, out);
    o.probabilities = dir / "small.tif";
    test::make_raster(o.probabilities, 10, 20, 1, GDT_Float32, [](int, int, int) { return 0.5; });
    test::georeference(o.probabilities, kUtm, 32633);
    expect_error([&] { vectorize_mask(o); }, ErrorKind::runtime, {"small.tif", "10x20", "20x20", "grid"});
    o.probabilities = dir / "shifted.tif";
    test::make_raster(o.probabilities, 20, 20, 1, GDT_Float32, [](int, int, int) { return 0.5; });
    const double shifted[6] = {500002, 2, 0, 5000000, 0, -2};
    test::georeference(o.probabilities, shifted, 32633);
    expect_error([&] { vectorize_mask(o); }, ErrorKind::runtime, {"shifted.tif", "geotransform"});
    o.probabilities = dir / "uint16.tif";
    test::make_raster(o.probabilities, 20, 20, 1, GDT_UInt16, [](int, int, int) { return 5; });
    test::georeference(o.probabilities, kUtm, 32633);
    expect_error([&] { vectorize_mask(o); }, ErrorKind::runtime, {"uint16.tif", "UInt16", "Float32"});
    o.probabilities = dir / "two.tif";
    test::make_raster(o.probabilities, 20, 20, 2, GDT_Float32, [](int, int, int) { return 0.5; });
    test::georeference(o.probabilities, kUtm, 32633);
    o.classes = {3};
    expect_error([&] { vectorize_mask(o); }, ErrorKind::runtime, {"two.tif", "class 3", "band 4"});
    // Percentages (or logits) are not probabilities: their confidences were written as 50.
    o.classes = {};
    o.probabilities = dir / "percent.tif";
    test::make_raster(o.probabilities, 20, 20, 1, GDT_Float32, [](int, int, int) { return 50.0; });
    test::georeference(o.probabilities, kUtm, 32633);
    expect_error([&] { vectorize_mask(o); }, ErrorKind::runtime, {"percent.tif", "band 1 holds 50 at pixel (", "within 0..1"});
    EXPECT_FALSE(fs::exists(out));

    // Metres on a mask without georeferencing.
    const std::string plain = make_mask(
        dir, "plain.tif", 20, 20, [](int x, int) { return x > 10; }, nullptr);
    o = options_for(plain, out);
    o.min_area_m2 = 10;
    expect_error([&] { vectorize_mask(o); }, ErrorKind::usage, {"plain.tif", "--min-area", "not georeferenced"});
    o.min_area_m2 = 0;
    o.simplify_m = 1;
    expect_error([&] { vectorize_mask(o); }, ErrorKind::usage, {"plain.tif", "--simplify", "not georeferenced"});
    expect_error([&] { vectorize_mask(options_for(plain, dir / "plain.geojson")); }, ErrorKind::usage,
                 {"plain.tif", "write another format (.gpkg", "--keep-crs to write its pixel coordinates"});
    // A geotransform without a CRS: --keep-crs writes the geotransform's coordinates, not pixels.
    const std::string no_crs = make_mask(dir, "no_crs.tif", 20, 20, [](int x, int) { return x > 10; }, nullptr);
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(no_crs.c_str(), GA_Update)));
        double gt[6] = {500000, 2, 0, 5000000, 0, -2};
        ds->SetGeoTransform(gt);
    }
    expect_error([&] { vectorize_mask(options_for(no_crs, dir / "no_crs.geojson")); }, ErrorKind::usage,
                 {"no_crs.tif", "a geotransform but no CRS", "geotransform's coordinates"});
    o = options_for(mask, out);
    o.min_confidence = 0.5;
    expect_error([&] { vectorize_mask(o); }, ErrorKind::usage, {"--probabilities"});
    EXPECT_FALSE(fs::exists(out));
    EXPECT_TRUE(leftovers(dir).empty());

    // Without georeferencing, plain vectorisation still works in pixel coordinates (no area).
    VectorizeOptions p = options_for(plain, dir / "pixels.gpkg");
    p.regularize = true;
    const VectorizeResult r = vectorize_mask(p);
    EXPECT_EQ(r.polygons, 1);
    const Layer layer = read_layer(r.output);
    EXPECT_FALSE(layer.features[0].area_m2);
    EXPECT_TRUE(!layer.srs || (layer.srs->IsLocal() && !layer.srs->GetAuthorityCode(nullptr)));  // undefined Cartesian
    OGREnvelope env;
    layer.features[0].geometry->getEnvelope(&env);
    EXPECT_NEAR(env.MinX, 11, 1e-9);
    EXPECT_NEAR(env.MaxY, 20, 1e-9);
}

TEST(Vectorize, CancelLeavesNothingBehind) {
    test::TempDir dir;
    const std::string mask = make_mask(dir, "m.tif", 64, 64, disk);
    for (double stop_at : {0.2, 0.7}) {
        VectorizeOptions o = options_for(mask, dir / "out.gpkg");
        o.memory_budget_mb = 0;  // scratch on disk
        expect_error([&] { vectorize_mask(o, [stop_at](double f, std::string_view) { return f < stop_at; }); },
                     ErrorKind::cancelled, {"cancelled"});
        EXPECT_FALSE(fs::exists(dir / "out.gpkg"));
        EXPECT_TRUE(leftovers(dir).empty());
    }
}

TEST(Vectorize, RegularizeSquaresARotatedRectangle) {
    test::TempDir dir;
    const double gt[6] = {300000, 0.5, 0, 4000000, 0, -0.5};
    const std::string mask = make_mask(dir, "rect.tif", 80, 80, rotated_rectangle(40, 40, 50, 24, 30), gt, 32633);
    const Layer raw = read_layer(vectorize_mask(options_for(mask, dir / "raw.gpkg")).output);
    VectorizeOptions o = options_for(mask, dir / "regular.gpkg");
    o.regularize = true;
    const Layer regular = read_layer(vectorize_mask(o).output);
    ASSERT_EQ(regular.features.size(), 1u);
    const OGRPolygon& p = polygon_of(regular.features[0]);
    EXPECT_EQ(p.getExteriorRing()->getNumPoints(), 5);  // four corners
    const auto [corners, right] = right_angle_corners(p, 0.01);
    EXPECT_EQ(right, corners);
    // Pixel rows go down, so the rectangle's long side runs at -30 degrees in map coordinates (60 mod 90).
    const OGRLinearRing* ring = p.getExteriorRing();
    double angle = std::atan2(ring->getY(1) - ring->getY(0), ring->getX(1) - ring->getX(0)) * 180 / M_PI;
    angle = std::fmod(angle + 360, 90);
    EXPECT_NEAR(angle, 60, 1.0);
    EXPECT_GT(iou(p, *raw.features[0].geometry), 0.95);
    EXPECT_NEAR(*regular.features[0].area_m2, 50 * 24 * 0.25, 50 * 24 * 0.25 * 0.05);
}

struct RegularizeStats {
    int buildings = 0, corners = 0, right = 0, orthogonal = 0;
    double iou_sum = 0, iou_min = 1, inter = 0, uni = 0;
    void add(const OGRPolygon& before, const OGRPolygon& after, bool is_orthogonal) {
        ++buildings;
        orthogonal += is_orthogonal;
        const auto [c, r] = right_angle_corners(after, 5.0);
        corners += c;
        right += r;
        const double v = iou(before, after);
        iou_sum += v;
        iou_min = std::min(iou_min, v);
    }
    double right_share() const { return static_cast<double>(right) / corners; }
    double mean_iou() const { return iou_sum / buildings; }
};

// Acceptance of the issue, on real buildings: >= 90% of corners within 5 degrees of a right angle,
// and intersection over union with the unregularised outline >= 0.9.
TEST(Vectorize, RegularizeRealAtlantaBuildingsFromTheMask) {
    ensure_gdal_registered();  // this test may run alone (real-data label)
    test::TempDir dir;
    const std::string source_mask = test::shared_data("spacenet/atlanta_footprint_mask.tif");
    const std::string pan = test::shared_data("spacenet/atlanta_pan.tif");
    // The mask is not georeferenced: a copy gets the panchromatic image's grid (same 900x900 pixels).
    const std::string mask = dir / "atlanta_mask.tif";
    {
        DatasetPtr src(GDALDataset::FromHandle(
            GDALOpenEx(source_mask.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr)));
        DatasetPtr ref(GDALDataset::FromHandle(
            GDALOpenEx(pan.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr)));
        ASSERT_TRUE(src && ref);
        DatasetPtr copy(GetGDALDriverManager()->GetDriverByName("GTiff")->CreateCopy(mask.c_str(), src.get(), FALSE,
                                                                                     nullptr, nullptr, nullptr));
        ASSERT_TRUE(copy);
        double gt[6];
        ASSERT_EQ(ref->GetGeoTransform(gt), CE_None);
        copy->SetGeoTransform(gt);
        copy->SetSpatialRef(ref->GetSpatialRef());
    }
    VectorizeOptions o = options_for(mask, dir / "raw.gpkg");
    o.min_area_m2 = 10;  // a few pixels of noise are not buildings
    const VectorizeResult raw_result = vectorize_mask(o);
    o.output = dir / "regular.gpkg";
    o.regularize = true;
    // Candidate outlines that GEOS finds invalid are expected and dropped quietly: no GDAL warning
    // ("Self-intersection at or near point ...") reaches the user.
    static int warnings = 0;
    warnings = 0;
    CPLPushErrorHandler([](CPLErr kind, CPLErrorNum, const char*) {
        if (kind == CE_Warning) ++warnings;
    });
    const VectorizeResult regular_result = vectorize_mask(o);
    CPLPopErrorHandler();
    EXPECT_EQ(warnings, 0);
    ASSERT_EQ(raw_result.polygons, regular_result.polygons);  // same ids, one to one
    const Layer raw = read_layer(raw_result.output), regular = read_layer(regular_result.output);
    ASSERT_GE(raw.features.size(), 30u);
    RegularizeStats stats, before;
    for (size_t i = 0; i < raw.features.size(); ++i) {
        const OGRPolygon& a = polygon_of(raw.features[i]);
        const OGRPolygon& b = polygon_of(regular.features[i]);
        EXPECT_TRUE(b.IsValid()) << "id " << regular.features[i].id;
        stats.add(a, b, true);
        before.add(a, a, true);
    }
    std::cout << "[ atlanta mask ] buildings " << stats.buildings << ", corners within 5 deg of 90: " << stats.right
              << "/" << stats.corners << " (" << 100 * stats.right_share() << "%; " << before.corners
              << " pixel-stair corners before); IoU mean " << stats.mean_iou() << ", min " << stats.iou_min << "\n";
    EXPECT_GE(stats.right_share(), 0.9);
    EXPECT_GE(stats.mean_iou(), 0.9);
}

TEST(Vectorize, RegularizeRealAtlantaBuildingOutlines) {
    ensure_gdal_registered();
    ensure_gdal_registered();
    const std::string path = test::shared_data("spacenet/atlanta_buildings.geojson");
    DatasetPtr ds(GDALDataset::FromHandle(
        GDALOpenEx(path.c_str(), GDAL_OF_VECTOR | GDAL_OF_READONLY, nullptr, nullptr, nullptr)));
    ASSERT_TRUE(ds);
    OGRLayer* layer = ds->GetLayer(0);
    RegularizeStats stats, before;
    for (std::unique_ptr<OGRFeature> f(layer->GetNextFeature()); f; f.reset(layer->GetNextFeature())) {
        const OGRGeometry* g = f->GetGeometryRef();
        ASSERT_TRUE(g && wkbFlatten(g->getGeometryType()) == wkbPolygon);
        const OGRPolygon& outline = *g->toPolygon();
        const RegularizedOutline r = regularize_outline(outline, 0.5);  // UTM metres, the imagery's 0.5 m pixel
        EXPECT_TRUE(r.polygon->IsValid());
        stats.add(outline, *r.polygon, r.orthogonal);
        before.add(outline, outline, true);
    }
    std::cout << "[ atlanta outlines ] buildings " << stats.buildings << " (" << stats.orthogonal
              << " orthogonalised), corners within 5 deg of 90: " << stats.right << "/" << stats.corners << " ("
              << 100 * stats.right_share() << "%; " << 100 * before.right_share() << "% before); IoU mean "
              << stats.mean_iou() << ", min " << stats.iou_min << "\n";
    EXPECT_EQ(stats.buildings, 43);
    EXPECT_GE(stats.right_share(), 0.9);
    EXPECT_GE(stats.mean_iou(), 0.9);
}

}  // namespace
}  // namespace rsi
