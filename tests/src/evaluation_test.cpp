// Evaluation: object F1 by the SpaceNet/solaris rule (hand-worked IoU 0.49 / 0.50 / 0.51 cases),
// scene classification, the Tianchi score, pixel metrics against polygons, the HTML report.
#include <filesystem>
#include <functional>
#include <tuple>
#include <fstream>
#include <ogrsf_frmts.h>

#include "src/evaluation_report.hpp"
#include "src/object_evaluation.hpp"
#include "src/pixel_evaluation.hpp"
#include "src/scene_evaluation.hpp"
#include "src/tianchi_rle.hpp"
#include "src/xview2_score.hpp"
#include "test_support.hpp"
#include "tiling/error.hpp"

using namespace rsi;
using rsi::test::TempDir;

namespace {

std::unique_ptr<OGRGeometry> rect(double x0, double y0, double x1, double y1) {
    OGRGeometry* g = nullptr;
    const std::string wkt = "POLYGON ((" + std::to_string(x0) + " " + std::to_string(y0) + "," + std::to_string(x1) + " " +
                            std::to_string(y0) + "," + std::to_string(x1) + " " + std::to_string(y1) + "," + std::to_string(x0) + " " +
                            std::to_string(y1) + "," + std::to_string(x0) + " " + std::to_string(y0) + "))";
    OGRGeometryFactory::createFromWkt(wkt.c_str(), nullptr, &g);
    return std::unique_ptr<OGRGeometry>(g);
}

// A one-layer vector file of `shapes` (GDAL driver `driver`) in `srs` (nullptr: none named).
void write_polygons(const std::string& path, const char* driver, const OGRSpatialReference* srs,
                    const std::vector<std::unique_ptr<OGRGeometry>>& shapes) {
    ensure_gdal_registered();
    DatasetPtr ds(GetGDALDriverManager()->GetDriverByName(driver)->Create(path.c_str(), 0, 0, 0, GDT_Unknown, nullptr));
    ASSERT_TRUE(ds) << path;
    OGRLayer* layer = ds->CreateLayer("polygons", const_cast<OGRSpatialReference*>(srs), wkbPolygon, nullptr);  // GDAL 3.6 takes it non-const
    for (const auto& g : shapes) {
        OGRFeature f(layer->GetLayerDefn());
        f.SetGeometry(g.get());
        ASSERT_EQ(layer->CreateFeature(&f), OGRERR_NONE);
    }
}

ObjectPolygon object(std::unique_ptr<OGRGeometry> g, double confidence = 1, std::string cls = "") {
    return {std::move(g), confidence, std::move(cls)};
}

std::vector<ObjectPolygon> one(std::unique_ptr<OGRGeometry> g, double confidence = 1) {
    std::vector<ObjectPolygon> v;
    v.push_back(object(std::move(g), confidence));
    return v;
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

// Truth: the 10x10 square [0,10]x[0,10] (area 100). A proposal [0,10]x[0,h] lies inside it, so
// IoU = 10h / 100: h = 4.9 -> 0.49, 5 -> 0.50 exactly, 5.1 -> 0.51. solaris counts a match only when
// IoU > 0.5 (base.py: `if max_iou_row["iou_score"] > miniou`), so 0.50 is a false positive.
TEST(ObjectF1, ThresholdIsStrictlyGreaterThanOneHalf) {
    EXPECT_DOUBLE_EQ(polygon_iou(*rect(0, 0, 10, 10), *rect(0, 0, 10, 5)), 0.5);
    for (const auto& [h, tp] : std::vector<std::pair<double, int>>{{4.9, 0}, {5.0, 0}, {5.1, 1}}) {
        const ObjectCounts c = match_objects(one(rect(0, 0, 10, 10)), one(rect(0, 0, 10, h)), 0.5, 0);
        EXPECT_EQ(c.true_positive, tp) << "h " << h;
        EXPECT_EQ(c.false_positive, 1 - tp) << "h " << h;
        EXPECT_EQ(c.false_negative, 1 - tp) << "h " << h;
    }
    EXPECT_NEAR(polygon_iou(*rect(0, 0, 10, 10), *rect(0, 0, 10, 4.9)), 0.49, 1e-12);
    EXPECT_NEAR(polygon_iou(*rect(0, 0, 10, 10), *rect(0, 0, 10, 5.1)), 0.51, 1e-12);
}

// Worked example: truth A [0,10]², B [20,30]x[0,10]; proposals p1 (conf 0.9) covers A's left 6
// columns (IoU 0.6), p2 (conf 0.8) is A itself (IoU 1), p3 (conf 0.7) is B shifted by 2 (IoU 80/120).
// By confidence p1 takes A first, so p2 finds no unmatched truth it overlaps: TP 2 (p1, p3), FP 1 (p2),
// FN 0; precision 2/3, recall 1, F1 0.8. Without confidences (file order p2, p1, p3) p2 takes A.
TEST(ObjectF1, ConfidenceOrderDecidesWhoMatches) {
    std::vector<ObjectPolygon> truth;
    truth.push_back(object(rect(0, 0, 10, 10)));
    truth.push_back(object(rect(20, 0, 30, 10)));
    std::vector<ObjectPolygon> proposals;
    proposals.push_back(object(rect(0, 0, 10, 10), 0.8));
    proposals.push_back(object(rect(0, 0, 6, 10), 0.9));
    proposals.push_back(object(rect(22, 0, 32, 10), 0.7));
    const ObjectCounts c = match_objects(truth, proposals, 0.5, 0);
    EXPECT_EQ(c.true_positive, 2);
    EXPECT_EQ(c.false_positive, 1);
    EXPECT_EQ(c.false_negative, 0);
    EXPECT_NEAR(c.precision(), 2.0 / 3.0, 1e-12);
    EXPECT_DOUBLE_EQ(c.recall(), 1.0);
    EXPECT_NEAR(c.f1(), 0.8, 1e-12);
}

// SpaceNet: truth below min_area (< 20) is dropped, a proposal needs area > 20.
TEST(ObjectF1, MinAreaRuleFollowsSolaris) {
    // Truth of area 19 is not counted (no FN); a proposal of area 20 is not counted (no FP).
    ObjectCounts c = match_objects(one(rect(0, 0, 19, 1)), one(rect(100, 0, 120, 1)), 0.5, 20);
    EXPECT_EQ(c.true_positive + c.false_positive + c.false_negative, 0);
    // Truth of area exactly 20 counts; a proposal of 21 counts.
    c = match_objects(one(rect(0, 0, 20, 1)), one(rect(100, 0, 121, 1)), 0.5, 20);
    EXPECT_EQ(c.false_negative, 1);
    EXPECT_EQ(c.false_positive, 1);
}

TEST(ObjectF1, InvalidProposalIsRepairedAndEmptyTruthCounts) {
    // The square with a zero-width spike on its top edge: invalid (self-intersecting ring), area 100;
    // buffer(0) removes the spike and the repaired square matches the truth exactly.
    OGRGeometry* spiked = nullptr;
    OGRGeometryFactory::createFromWkt("POLYGON ((0 0,10 0,10 10,5 10,5 12,5 10,0 10,0 0))", nullptr, &spiked);
    ASSERT_FALSE(spiked->IsValid());
    std::vector<ObjectPolygon> proposals;
    proposals.push_back(object(std::unique_ptr<OGRGeometry>(spiked)));
    const ObjectCounts c = match_objects(one(rect(0, 0, 10, 10)), proposals, 0.5, 0);
    EXPECT_EQ(c.true_positive, 1);
    // A bow-tie's lobes cancel: area 0, so (as in solaris, which keeps proposals with area > min_area)
    // it is not counted at all.
    OGRGeometry* bow = nullptr;
    OGRGeometryFactory::createFromWkt("POLYGON ((0 0,10 10,10 0,0 10,0 0))", nullptr, &bow);
    std::vector<ObjectPolygon> bows;
    bows.push_back(object(std::unique_ptr<OGRGeometry>(bow)));
    const ObjectCounts b = match_objects(one(rect(0, 0, 10, 10)), bows, 0.5, 0);
    EXPECT_EQ(b.true_positive + b.false_positive, 0);
    // No proposals at all: every truth is missed; precision and F1 are 0 by convention.
    const ObjectCounts none = match_objects(one(rect(0, 0, 10, 10)), {}, 0.5, 0);
    EXPECT_EQ(none.false_negative, 1);
    EXPECT_EQ(none.f1(), 0.0);
}

// Two images in SpaceNet CSVs, summed: image a = the worked example above in pixels (TP 2, FP 1);
// image b has one truth and no proposal (FN 1); image c has only POLYGON EMPTY rows.
TEST(ObjectF1, SpacenetCsvsSumOverImages) {
    TempDir tmp;
    write_text(tmp / "truth.csv",
               "ImageId,BuildingId,PolygonWKT_Pix,PolygonWKT_Geo\n"
               "a,1,\"POLYGON ((0 0,10 0,10 10,0 10,0 0))\",\"POLYGON EMPTY\"\n"
               "a,2,\"POLYGON ((20 0,30 0,30 10,20 10,20 0))\",\"POLYGON EMPTY\"\n"
               "b,1,\"POLYGON ((0 0,10 0,10 10,0 10,0 0))\",\"POLYGON EMPTY\"\n"
               "c,-1,POLYGON EMPTY,POLYGON EMPTY\n");
    write_text(tmp / "proposals.csv",
               "ImageId,BuildingId,PolygonWKT_Pix,Confidence\n"
               "a,1,\"POLYGON ((0 0,10 0,10 10,0 10,0 0))\",0.8\n"
               "a,2,\"POLYGON ((0 0,6 0,6 10,0 10,0 0))\",0.9\n"
               "a,3,\"POLYGON ((22 0,32 0,32 10,22 10,22 0))\",0.7\n"
               "a,4,\"POLYGON ((50 0,54 0,54 4,50 4,50 0))\",0.6\n"
               "c,-1,POLYGON EMPTY,1\n");
    ObjectEvaluationOptions o;
    o.prediction = tmp / "proposals.csv";
    o.truth = tmp / "truth.csv";
    const ObjectEvaluation r = evaluate_objects(o);
    EXPECT_EQ(r.frame, "pixel");
    EXPECT_DOUBLE_EQ(r.min_area, 20.0);
    ASSERT_EQ(r.images.size(), 3u);
    EXPECT_EQ(r.total.true_positive, 2);
    EXPECT_EQ(r.total.false_positive, 1);
    EXPECT_EQ(r.total.false_negative, 1);
    EXPECT_NEAR(r.total.f1(), 2 * (2.0 / 3) * (2.0 / 3) / (4.0 / 3), 1e-12);  // P = R = 2/3
    EXPECT_EQ(r.images[1].image, "b");
    EXPECT_EQ(r.images[1].counts.false_negative, 1);
    // Per image, the objects scored add up to TP + FN and TP + FP; the 16 px² proposal is dropped by
    // the 20 px² minimum and counted apart (it used to be counted as a proposal that was never scored).
    EXPECT_EQ(r.images[0].truth_objects, 2);
    EXPECT_EQ(r.images[0].proposals, 3);
    EXPECT_EQ(r.images[0].truth_below_min_area, 0);
    EXPECT_EQ(r.images[0].proposals_below_min_area, 1);
}

// GeoJSON of pixel coordinates (`rsi vectorize --keep-crs` of a mask without georeferencing): the file
// names no CRS, which GeoJSON readers take for WGS84. --pixel-coordinates scores it in pixels (min area
// 20 px²); coordinates that cannot be degrees are taken as pixels without it, with a warning. Before,
// the squares were matched as degrees (min area 0 m²), and rows below 90 failed to transform.
TEST(ObjectF1, PixelCoordinateGeoJsonIsScoredInPixels) {
    TempDir tmp;
    ensure_gdal_registered();
    const auto write = [](const std::string& path, const std::vector<std::unique_ptr<OGRGeometry>>& shapes) {
        write_polygons(path, "GeoJSON", nullptr, shapes);
    };
    std::vector<std::unique_ptr<OGRGeometry>> truth, prediction;
    truth.push_back(rect(10, 10, 20, 20));
    truth.push_back(rect(40, 40, 44, 44));  // 16 px²: under the pixel default of 20
    prediction.push_back(rect(10, 10, 20, 20));
    write(tmp / "truth.geojson", truth);
    write(tmp / "prediction.geojson", prediction);
    ObjectEvaluationOptions o;
    o.prediction = tmp / "prediction.geojson";
    o.truth = tmp / "truth.geojson";
    o.pixel_coordinates = true;
    const ObjectEvaluation r = evaluate_objects(o);
    EXPECT_EQ(r.frame, "pixel");
    EXPECT_DOUBLE_EQ(r.min_area, 20.0);
    EXPECT_EQ(r.total.true_positive, 1);
    EXPECT_EQ(r.total.false_negative, 0);
    EXPECT_DOUBLE_EQ(r.total.f1(), 1.0);
    // Rows 100..110: not latitudes, so pixel coordinates even without the option.
    std::vector<std::unique_ptr<OGRGeometry>> low;
    low.push_back(rect(10, 100, 20, 110));
    write(tmp / "low.geojson", low);
    o.prediction = o.truth = tmp / "low.geojson";
    o.pixel_coordinates = false;
    const ObjectEvaluation auto_pixels = evaluate_objects(o);
    EXPECT_EQ(auto_pixels.frame, "pixel");
    EXPECT_EQ(auto_pixels.total.true_positive, 1);
    ASSERT_FALSE(auto_pixels.warnings.empty());
    EXPECT_NE(auto_pixels.warnings[0].find("low.geojson: names a geographic CRS but its coordinates go beyond"), std::string::npos)
        << auto_pixels.warnings[0];
}

// Vector files in different CRSs are matched in a projected frame: a UTM truth square against the
// same square given in WGS84 degrees is a perfect match.
TEST(ObjectF1, FilesInDifferentCrsAreMatchedInProjectedFrame) {
    TempDir tmp;
    ensure_gdal_registered();
    OGRSpatialReference utm, wgs84;
    utm.importFromEPSG(32616);
    wgs84.importFromEPSG(4326);
    wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    utm.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    const auto write = [&](const std::string& path, const OGRSpatialReference& srs, bool to_degrees) {
        GDALDriver* drv = GetGDALDriverManager()->GetDriverByName("GPKG");
        DatasetPtr ds(drv->Create(path.c_str(), 0, 0, 0, GDT_Unknown, nullptr));
        OGRLayer* layer = ds->CreateLayer("b", const_cast<OGRSpatialReference*>(&srs), wkbPolygon, nullptr);
        OGRFieldDefn conf("confidence", OFTReal);
        layer->CreateField(&conf);
        for (const double x0 : {733700.0, 733800.0}) {
            auto g = rect(x0, 3725000, x0 + 20, 3725020);
            if (to_degrees) {
                std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&utm, &srs));
                g->transform(ct.get());
            }
            OGRFeature f(layer->GetLayerDefn());
            f.SetField("confidence", x0 / 1e6);
            f.SetGeometry(g.get());
            ASSERT_EQ(layer->CreateFeature(&f), OGRERR_NONE);
        }
    };
    write(tmp / "truth.gpkg", utm, false);
    write(tmp / "pred.gpkg", wgs84, true);
    ObjectEvaluationOptions o;
    o.prediction = tmp / "pred.gpkg";
    o.truth = tmp / "truth.gpkg";
    const ObjectEvaluation r = evaluate_objects(o);
    EXPECT_EQ(r.frame, "EPSG:32616");
    EXPECT_EQ(r.total.true_positive, 2);
    EXPECT_EQ(r.total.false_positive, 0);
    EXPECT_EQ(r.total.false_negative, 0);
    // The geographic side as truth: matched in the UTM zone of its centre (16 N).
    o.prediction = tmp / "truth.gpkg";
    o.truth = tmp / "pred.gpkg";
    const ObjectEvaluation back = evaluate_objects(o);
    EXPECT_EQ(back.frame, "EPSG:32616");
    EXPECT_EQ(back.total.true_positive, 2);
}

// --min-area is in square metres on the ground, also for Web Mercator files, whose areas are 1/cos²(lat)
// too large (4x at 60° N): a 20 m x 20 m building (400 m²) is dropped by --min-area 500. It was kept,
// its Web Mercator area being 1600.
TEST(ObjectF1, MinAreaIsGroundSquareMetresInWebMercator) {
    TempDir tmp;
    ensure_gdal_registered();
    OGRSpatialReference mercator, utm;
    mercator.importFromEPSG(3857);
    utm.importFromEPSG(32633);  // 15° E, 60° N
    mercator.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    utm.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    std::unique_ptr<OGRCoordinateTransformation> to_mercator(OGRCreateCoordinateTransformation(&utm, &mercator));
    const double x0 = 500000, y0 = 6651411;  // ~60° N on the central meridian
    const auto write = [&](const std::string& path, const std::vector<double>& sides) {
        DatasetPtr ds(GetGDALDriverManager()->GetDriverByName("GPKG")->Create(path.c_str(), 0, 0, 0, GDT_Unknown, nullptr));
        OGRLayer* layer = ds->CreateLayer("b", &mercator, wkbPolygon, nullptr);
        double x = x0;
        for (const double side : sides) {
            auto g = rect(x, y0, x + side, y0 + side);
            g->transform(to_mercator.get());
            OGRFeature f(layer->GetLayerDefn());
            f.SetGeometry(g.get());
            ASSERT_EQ(layer->CreateFeature(&f), OGRERR_NONE);
            x += 100;
        }
    };
    write(tmp / "truth.gpkg", {20, 40});  // 400 m² and 1600 m² on the ground
    write(tmp / "pred.gpkg", {20, 40});
    ObjectEvaluationOptions o;
    o.prediction = tmp / "pred.gpkg";
    o.truth = tmp / "truth.gpkg";
    o.min_area = 500;
    const ObjectEvaluation r = evaluate_objects(o);
    EXPECT_EQ(r.frame, "EPSG:32633");
    EXPECT_EQ(r.total.true_positive, 1);  // only the 40 m square is above 500 m²
    EXPECT_EQ(r.total.false_positive, 0);
    EXPECT_EQ(r.total.false_negative, 0);
    o.min_area = 300;
    EXPECT_EQ(evaluate_objects(o).total.true_positive, 2);
}

// Real multi-class aircraft outlines in degrees (RarePlanes via solaris). The numbers agree with
// tests/tools/object_f1_reference.py, an independent restatement of solaris's loop with GDAL's Python
// bindings (ctest eval.object_f1_reference runs both).
TEST(ObjectF1, RealRarePlanesClassAware) {
    const std::string root = rsi::test::shared_data("rareplanes/eval_vector");
    ObjectEvaluationOptions o;
    o.prediction = root + "/preds";
    o.truth = root + "/gt";
    ObjectEvaluation r = evaluate_objects(o);
    EXPECT_EQ(r.images.size(), 3u);
    EXPECT_EQ(r.total.true_positive, 186);
    EXPECT_EQ(r.total.false_positive, 8);
    EXPECT_EQ(r.total.false_negative, 1);
    o.class_field = "class";
    o.truth_class_field = "make";
    r = evaluate_objects(o);
    EXPECT_EQ(r.total.true_positive, 181);
    EXPECT_EQ(r.total.false_positive, 13);
    EXPECT_EQ(r.total.false_negative, 6);
    const ObjectCounts& small = r.classes.at("Small Civil Transport/Utility");
    EXPECT_EQ(small.true_positive, 153);
    EXPECT_EQ(small.false_positive, 5);
    EXPECT_EQ(small.false_negative, 5);
    EXPECT_EQ(r.classes.size(), 8u);
    o.class_field = "no_such_field";
    EXPECT_THROW(evaluate_objects(o), Error);
}

// Labels a,a,b,b,c; predictions a,b,b,b,c. Matrix rows (truth) a:[1,1,0] b:[0,2,0] c:[0,0,1].
// accuracy 4/5; p_e = (2*1 + 2*3 + 1*1)/25 = 0.36; kappa = (0.8-0.36)/0.64 = 0.6875.
// a: precision 1, recall 0.5, F1 2/3; b: precision 2/3, recall 1, F1 0.8; c: all 1.
TEST(SceneEvaluation, WorkedExample) {
    TempDir tmp;
    write_text(tmp / "labels.csv", "image,label\nx1.tif,a\nx2.tif,a\nx3.tif,b\nx4.tif,b\nx5.tif,c\n");
    write_text(tmp / "pred.csv", "window_id,file,class,score\n0,dir/x1.tif,a,0.9\n1,dir/x2.tif,b,0.6\n2,dir/x3.tif,b,0.8\n"
                                 "3,dir/x4.tif,b,0.7\n4,dir/x5.tif,c,0.5\n5,dir/x9.tif,c,0.5\n");
    SceneEvaluationOptions o;
    o.prediction = tmp / "pred.csv";
    o.labels = tmp / "labels.csv";
    o.id_column = "file";
    o.label_id_column = "image";
    const SceneEvaluation r = evaluate_scenes(o);
    EXPECT_EQ(r.items, 5);
    EXPECT_EQ(r.unlabelled_predictions, 1);
    ASSERT_EQ(r.class_names, (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(r.matrix.at(0, 1), 1);
    EXPECT_DOUBLE_EQ(r.metrics.overall_accuracy, 0.8);
    EXPECT_NEAR(r.metrics.kappa, 0.6875, 1e-12);
    EXPECT_DOUBLE_EQ(r.metrics.classes[0].precision, 1.0);
    EXPECT_DOUBLE_EQ(r.metrics.classes[0].recall, 0.5);
    EXPECT_NEAR(r.metrics.classes[0].f1, 2.0 / 3.0, 1e-12);
    EXPECT_NEAR(r.metrics.classes[1].precision, 2.0 / 3.0, 1e-12);
    EXPECT_NEAR(r.metrics.classes[1].f1, 0.8, 1e-12);

    // Labels from class folders (the EuroSAT layout).
    std::filesystem::create_directories(tmp / "folders/a");
    std::filesystem::create_directories(tmp / "folders/b");
    std::filesystem::create_directories(tmp / "folders/c");
    for (const auto& [f, c] : std::vector<std::pair<std::string, std::string>>{{"x1", "a"}, {"x2", "a"}, {"x3", "b"}, {"x4", "b"}, {"x5", "c"}}) {
        write_text(tmp / ("folders/" + c + "/" + f + ".tif"), "");
    }
    // GDAL's sidecars and hidden files beside the scenes are not scenes (an .aux.xml was "no prediction for 'x1.tif.aux'").
    write_text(tmp / "folders/a/x1.tif.aux.xml", "<PAMDataset/>");
    write_text(tmp / "folders/b/.DS_Store", "");
    write_text(tmp / "folders/b/x3.tfw", "1\n0\n0\n-1\n0\n0\n");
    o.labels = tmp / "folders";
    EXPECT_NEAR(evaluate_scenes(o).metrics.kappa, 0.6875, 1e-12);

    // A label CSV saved with a byte-order mark (Excel) finds its id column all the same.
    write_text(tmp / "labels-bom.csv", "\xEF\xBB\xBF" "image,label\r\nx1.tif,a\r\nx2.tif,a\r\nx3.tif,b\r\nx4.tif,b\r\nx5.tif,c\r\n");
    o.labels = tmp / "labels-bom.csv";
    EXPECT_NEAR(evaluate_scenes(o).metrics.kappa, 0.6875, 1e-12);

    // A labelled item without prediction is an error naming it.
    write_text(tmp / "short.csv", "file,class\nx1.tif,a\n");
    o.prediction = tmp / "short.csv";
    try {
        evaluate_scenes(o);
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("no prediction for 'x2'"), std::string::npos) << e.what();
    }
}

// Truth 3x3 [[1,0,0],[0,1,1],[0,0,1]] ("1 1 5 1 8 2"), prediction [[1,0,1],[0,1,0],[0,0,0]]:
// Dice 0.5714; an image empty in both scores 1; a truth image without a prediction line scores 0.
TEST(TianchiScore, MeanDiceOverTruthImages) {
    TempDir tmp;
    const uint8_t prediction[9] = {1, 0, 1, 0, 1, 0, 0, 0, 0};
    write_text(tmp / "truth.csv", "a.jpg\t1 1 5 1 8 2\nb.jpg\t\nc.jpg\t1 3\n");
    write_text(tmp / "pred.csv", "b.jpg\t\na.jpg\t" + encode_tianchi_rle(prediction, 3, 3) + "\n");
    const TianchiScore s = evaluate_tianchi(tmp / "pred.csv", tmp / "truth.csv", 3, 3);
    EXPECT_EQ(s.images, 3);
    EXPECT_NEAR(s.score, (4.0 / 7.0 + 1.0 + 0.0) / 3.0, 1e-12);
    ASSERT_EQ(s.missing, (std::vector<std::string>{"c.jpg"}));
    // A line for an image the truth lacks is listed and not scored (a whole test set's submission
    // scored on its labelled part); a file with no image in common is refused.
    write_text(tmp / "extra.csv", "z.jpg\t1 1\nb.jpg\t\na.jpg\t" + encode_tianchi_rle(prediction, 3, 3) + "\n");
    const TianchiScore extra = evaluate_tianchi(tmp / "extra.csv", tmp / "truth.csv", 3, 3);
    EXPECT_NEAR(extra.score, s.score, 1e-12);
    EXPECT_EQ(extra.unknown, (std::vector<std::string>{"z.jpg"}));
    write_text(tmp / "other.csv", "z.jpg\t1 1\n");
    try {
        evaluate_tianchi(tmp / "other.csv", tmp / "truth.csv", 3, 3);
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("other.csv: none of its 1 images is in"), std::string::npos) << e.what();
    }
    // An empty truth has nothing to score: an error, not a score of 0 over 0 images.
    write_text(tmp / "empty.csv", "");
    rsi::test::expect_error([&] { evaluate_tianchi(tmp / "pred.csv", tmp / "empty.csv", 3, 3); }, ErrorKind::runtime,
                            "empty.csv: has no image lines: nothing to score");
}

// The xView2 score by the contest's scorer (xview2_metrics.py), worked by hand on two 8-pixel images:
//   A: loc target 11110000, damage target 1123 0000, loc prediction 11101000, damage prediction 1223 1000
//      localisation TP 3, FN 1, FP 1. Damage on the target's buildings (pixels 0-3), the prediction
//      zeroed where no building is predicted (pixel 3): guesses 1 2 2 0 against 1 1 2 3 ->
//      level 1 TP 1 FN 1; level 2 TP 1 FP 1; level 3 FN 1; level 4 absent from A's target.
//   B: loc target 11000000, damage target 22000000, loc prediction 11000000, damage prediction 42000000
//      localisation TP 2. Level 2 TP 1 FN 1; the guess 4 is not counted (level 4 absent from B's
//      target: the scorer records None and the sums skip it), nor level 1 or 3.
//   Totals: localisation F1 5/6; level 1 TP 1 FN 1 (F1 2/3); level 2 TP 2 FN 1 FP 1 (F1 2/3); levels 3, 4 F1 0.
TEST(Xview2Score, WorkedExampleFollowsTheContestScorer) {
    Xview2Score s;
    const uint8_t a_lt[8] = {1, 1, 1, 1, 0, 0, 0, 0}, a_dt[8] = {1, 1, 2, 3, 0, 0, 0, 0};
    const uint8_t a_lp[8] = {1, 1, 1, 0, 1, 0, 0, 0}, a_dp[8] = {1, 2, 2, 3, 1, 0, 0, 0};
    add_xview2_pair(a_lp, a_dp, a_lt, a_dt, 8, s);
    const uint8_t b_lt[8] = {1, 1, 0, 0, 0, 0, 0, 0}, b_dt[8] = {2, 2, 0, 0, 0, 0, 0, 0};
    const uint8_t b_lp[8] = {1, 1, 0, 0, 0, 0, 0, 0}, b_dp[8] = {4, 2, 0, 0, 0, 0, 0, 0};
    add_xview2_pair(b_lp, b_dp, b_lt, b_dt, 8, s);
    finish_xview2(s);
    EXPECT_EQ(s.images, 2);
    EXPECT_EQ(s.localization.true_positive, 5);
    EXPECT_EQ(s.localization.false_negative, 1);
    EXPECT_EQ(s.localization.false_positive, 1);
    EXPECT_NEAR(s.localization_f1, 5.0 / 6.0, 1e-12);
    // level 1: A only (TP 1, FN 1); level 2: A (TP 1, FP 1) + B (TP 1, FN 1); level 3: A (FN 1); level 4: nothing.
    EXPECT_EQ(s.damage[0].true_positive, 1);
    EXPECT_EQ(s.damage[0].false_negative, 1);
    EXPECT_EQ(s.damage[0].false_positive, 0);
    EXPECT_EQ(s.damage[1].true_positive, 2);
    EXPECT_EQ(s.damage[1].false_negative, 1);
    EXPECT_EQ(s.damage[1].false_positive, 1);
    EXPECT_EQ(s.damage[2].false_negative, 1);
    EXPECT_EQ(s.damage[3].true_positive + s.damage[3].false_negative + s.damage[3].false_positive, 0);  // B's guess 4 not counted
    EXPECT_NEAR(s.damage[0].f1(), 2.0 / 3.0, 1e-12);
    EXPECT_NEAR(s.damage[1].f1(), 2.0 / 3.0, 1e-12);
    EXPECT_EQ(s.damage[2].f1(), 0.0);
    const double damage = 4.0 / (2.0 / (2.0 / 3.0 + 1e-6) + 2.0 / 1e-6);
    EXPECT_NEAR(s.damage_f1, damage, 1e-15);
    EXPECT_NEAR(s.score, 0.3 * 5.0 / 6.0 + 0.7 * damage, 1e-12);
}

// The folders as the contest has them: a perfect prediction scores 1 (the harmonic mean's epsilon
// aside); a missing prediction file and a value beyond 4 are errors naming the file.
TEST(Xview2Score, FoldersOfPngs) {
    TempDir tmp;
    ensure_gdal_registered();
    std::filesystem::create_directories(tmp / "pred");
    std::filesystem::create_directories(tmp / "targ");
    const auto png = [&](const std::string& path, const std::function<int(int, int)>& value) {
        const std::string tif = path + ".tif";
        rsi::test::make_raster(tif, 1024, 1024, 1, GDT_Byte, [&](int, int x, int y) { return value(x, y); });
        DatasetPtr src = open_raster(tif);
        DatasetPtr out(GetGDALDriverManager()->GetDriverByName("PNG")->CreateCopy(path.c_str(), src.get(), FALSE, nullptr, nullptr, nullptr));
        ASSERT_TRUE(out);
        out.reset();
        src.reset();
        std::filesystem::remove(tif);
    };
    const auto damage = [](int x, int y) { return x < 512 && y < 512 ? 1 + (x / 128) : 0; };  // levels 1..4 in one quarter
    const auto building = [&](int x, int y) { return damage(x, y) > 0 ? 1 : 0; };
    for (const char* role : {"target", "prediction"}) {
        const std::string dir = std::string(role) == "target" ? tmp / "targ" : tmp / "pred";
        png(dir + "/test_localization_00000_" + role + ".png", building);
        png(dir + "/test_damage_00000_" + role + ".png", damage);
    }
    Xview2Score s = evaluate_xview2(tmp / "pred", tmp / "targ");
    EXPECT_EQ(s.images, 1);
    EXPECT_DOUBLE_EQ(s.localization_f1, 1.0);
    EXPECT_NEAR(s.score, 1.0, 1e-5);
    png(tmp / "pred/test_damage_00000_prediction.png", [](int x, int) { return x == 7 ? 5 : 0; });
    rsi::test::expect_error([&] { evaluate_xview2(tmp / "pred", tmp / "targ"); }, ErrorKind::runtime,
                            "test_damage_00000_prediction.png: has the value 5 at pixel (7, 0); xView2 values are 0..4");
    std::filesystem::remove(tmp / "pred/test_damage_00000_prediction.png");
    rsi::test::expect_error([&] { evaluate_xview2(tmp / "pred", tmp / "targ"); }, ErrorKind::runtime,
                            "lacks 1 prediction file of the targets in");
}

// The worked example with the truth given as polygons (pixel-centre rule): each truth
// pixel is a 1x1 square in the prediction's CRS, burnt onto its grid.
TEST(PixelEvaluation, TruthPolygonsRasterisedOntoPredictionGrid) {
    TempDir tmp;
    ensure_gdal_registered();
    const int prediction[3][3] = {{1, 0, 1}, {0, 1, 0}, {0, 0, 0}};
    rsi::test::make_raster(tmp / "pred.tif", 3, 3, 1, GDT_Byte, [&](int, int x, int y) { return prediction[y][x]; });
    const double gt[6] = {500000, 2, 0, 4000000, 0, -2};
    rsi::test::georeference(tmp / "pred.tif", gt, 32618);
    OGRSpatialReference utm;
    utm.importFromEPSG(32618);
    {
        DatasetPtr ds(GetGDALDriverManager()->GetDriverByName("GeoJSON")->Create((tmp / "truth.geojson").c_str(), 0, 0, 0, GDT_Unknown, nullptr));
        OGRLayer* layer = ds->CreateLayer("truth", &utm, wkbPolygon, nullptr);
        const int truth[3][3] = {{1, 0, 0}, {0, 1, 1}, {0, 0, 1}};
        for (int y = 0; y < 3; ++y) {
            for (int x = 0; x < 3; ++x) {
                if (!truth[y][x]) continue;
                const double x0 = 500000 + 2 * x, y0 = 4000000 - 2 * y;
                OGRFeature f(layer->GetLayerDefn());
                f.SetGeometry(rect(x0, y0 - 2, x0 + 2, y0).get());
                ASSERT_EQ(layer->CreateFeature(&f), OGRERR_NONE);
            }
        }
    }
    PixelEvaluationOptions o;
    o.prediction = tmp / "pred.tif";
    o.truth = tmp / "truth.geojson";
    const PixelEvaluation r = evaluate_pixels(o);
    EXPECT_EQ(r.matrix.at(1, 1), 2);
    EXPECT_EQ(r.matrix.at(0, 1), 1);
    EXPECT_EQ(r.matrix.at(1, 0), 2);
    EXPECT_NEAR(r.metrics.classes[1].f1, 0.5714, 5e-5);
    EXPECT_NEAR(r.metrics.classes[1].iou, 0.4, 1e-12);
    EXPECT_NEAR(r.metrics.overall_accuracy, 0.667, 5e-4);
    EXPECT_NEAR(r.metrics.classes[0].iou, 0.5714, 5e-5);
    EXPECT_NEAR(r.metrics.mean_iou, 0.4857, 5e-5);
    EXPECT_NEAR(r.metrics.kappa, 0.3077, 5e-5);
}

// Pixel-coordinate polygons in a GeoPackage carry a local "Undefined Cartesian SRS" (`rsi vectorize` of a
// mask without georeferencing writes such files): scored against a raster without georeferencing, in
// pixel coordinates. They were refused ("polygons have a CRS but ... is not georeferenced").
TEST(PixelEvaluation, PixelCoordinatePolygonsWithALocalCrsScoreAPlainRaster) {
    TempDir tmp;
    ensure_gdal_registered();
    rsi::test::make_raster(tmp / "pred.tif", 4, 4, 1, GDT_Byte, [](int, int x, int y) { return x < 2 && y < 2 ? 1 : 0; });
    OGRSpatialReference local;
    local.SetLocalCS("Undefined Cartesian SRS");
    std::vector<std::unique_ptr<OGRGeometry>> truth;
    truth.push_back(rect(0, 0, 2, 2));  // pixels x < 2, y < 2 (y down, as the raster's rows)
    write_polygons(tmp / "truth.gpkg", "GPKG", &local, truth);
    PixelEvaluationOptions o;
    o.prediction = tmp / "pred.tif";
    o.truth = tmp / "truth.gpkg";
    const PixelEvaluation r = evaluate_pixels(o);
    EXPECT_EQ(r.matrix.at(1, 1), 4);
    EXPECT_EQ(r.matrix.at(0, 0), 12);
    EXPECT_EQ(r.matrix.at(0, 1) + r.matrix.at(1, 0), 0);
}

// Pixel-coordinate GeoJSON (solaris-style truth; GeoJSON names WGS 84 when it names nothing) against
// a class raster with --pixel-coordinates: burnt in the raster's columns and rows, y down, georeferenced
// or not. Without the flag a raster without georeferencing is refused with a hint to it.
TEST(PixelEvaluation, PixelCoordinateGeoJsonWithTheFlag) {
    TempDir tmp;
    ensure_gdal_registered();
    std::vector<std::unique_ptr<OGRGeometry>> truth;
    truth.push_back(rect(0, 0, 2, 2));  // pixels x < 2, y < 2
    write_polygons(tmp / "truth.geojson", "GeoJSON", nullptr, truth);
    rsi::test::make_raster(tmp / "plain.tif", 4, 4, 1, GDT_Byte, [](int, int x, int y) { return x < 2 && y < 2 ? 1 : 0; });
    rsi::test::make_raster(tmp / "geo.tif", 4, 4, 1, GDT_Byte, [](int, int x, int y) { return x < 2 && y < 2 ? 1 : 0; });
    const double gt[6] = {500000, 2, 0, 4000000, 0, -2};
    rsi::test::georeference(tmp / "geo.tif", gt, 32618);
    PixelEvaluationOptions o;
    o.truth = tmp / "truth.geojson";
    o.prediction = tmp / "plain.tif";
    rsi::test::expect_error([&] { evaluate_pixels(o); }, ErrorKind::runtime, "is not georeferenced (if their coordinates are pixels, give --pixel-coordinates)");
    o.pixel_coordinates = true;
    for (const char* raster : {"plain.tif", "geo.tif"}) {
        o.prediction = tmp / raster;
        const PixelEvaluation r = evaluate_pixels(o);
        EXPECT_EQ(r.matrix.at(1, 1), 4) << raster;
        EXPECT_EQ(r.matrix.at(0, 0), 12) << raster;
        EXPECT_EQ(r.matrix.at(0, 1) + r.matrix.at(1, 0), 0) << raster;
    }
}

// --classes N with a value N or more in either raster: refused (those pixels would silently leave
// every metric), unless the value is --ignore'd.
TEST(PixelEvaluation, ValuesBeyondTheClassCountAreRefused) {
    TempDir tmp;
    rsi::test::make_raster(tmp / "pred.tif", 4, 4, 1, GDT_Byte, [](int, int x, int) { return x < 2 ? 1 : 0; });
    rsi::test::make_raster(tmp / "truth.tif", 4, 4, 1, GDT_Byte, [](int, int x, int y) { return y == 3 ? 2 : x < 2 ? 1 : 0; });
    PixelEvaluationOptions o;
    o.prediction = tmp / "pred.tif";
    o.truth = tmp / "truth.tif";
    o.classes = 2;
    rsi::test::expect_error([&] { evaluate_pixels(o); }, ErrorKind::runtime, "truth.tif: has the class value 2");
    o.ignore = 2;
    const PixelEvaluation r = evaluate_pixels(o);
    EXPECT_EQ(r.metrics.pixels, 12);
    EXPECT_EQ(r.matrix.at(1, 1), 6);
    EXPECT_EQ(r.matrix.at(0, 0), 6);
}

// Two folders of masks (Inria's layout: the same file names) are scored pooled over all pixels, and
// per region (the name before its first digit) — not as a mean of per-tile scores. Worked example,
// class 1 (4x4 tiles):
//   a1_1: truth x < 2 (8 px), prediction x < 3 (12 px)  -> TP 8, FP 4, FN 0
//   a1_2: truth empty,         prediction pixel (0, 0)   -> TP 0, FP 1, FN 0
//   b3:   truth y < 2 (8 px), prediction y < 1 (4 px)   -> TP 4, FP 0, FN 4
// pooled IoU 12 / 21, region a 8 / 13, region b 4 / 8; accuracy (12 + 15 + 12) / 48.
TEST(PixelEvaluation, FoldersArePooledOverAllPixelsAndByRegion) {
    TempDir tmp;
    ensure_gdal_registered();
    std::filesystem::create_directories(tmp / "pred");
    std::filesystem::create_directories(tmp / "truth");
    using Rule = std::function<int(int, int)>;
    const std::vector<std::tuple<std::string, Rule, Rule>> tiles{
        {"a1_1", [](int x, int) { return x < 2; }, [](int x, int) { return x < 3; }},
        {"a1_2", [](int, int) { return 0; }, [](int x, int y) { return x == 0 && y == 0; }},
        {"b3", [](int, int y) { return y < 2; }, [](int, int y) { return y < 1; }}};
    for (const auto& [name, truth, prediction] : tiles) {
        rsi::test::make_raster(tmp / ("truth/" + name + ".tif"), 4, 4, 1, GDT_Byte, [&, t = truth](int, int x, int y) { return t(x, y); });
        rsi::test::make_raster(tmp / ("pred/" + name + ".tif"), 4, 4, 1, GDT_Byte, [&, p = prediction](int, int x, int y) { return p(x, y); });
    }
    // A prediction without a truth file is listed, not scored.
    rsi::test::make_raster(tmp / "pred/c9.tif", 4, 4, 1, GDT_Byte, [](int, int, int) { return 1; });
    EXPECT_TRUE(is_raster_folder(tmp / "pred"));
    EXPECT_FALSE(is_raster_folder(tmp / "pred/c9.tif"));
    PixelEvaluationOptions o;
    o.prediction = tmp / "pred";
    o.truth = tmp / "truth";
    const PixelFolderEvaluation r = evaluate_pixel_folders(o);
    ASSERT_EQ(r.images.size(), 3u);
    EXPECT_EQ(r.metrics.pixels, 48);
    EXPECT_EQ(r.matrix.at(1, 1), 12);
    EXPECT_EQ(r.matrix.at(0, 1), 5);
    EXPECT_EQ(r.matrix.at(1, 0), 4);
    EXPECT_NEAR(r.metrics.classes[1].iou, 12.0 / 21.0, 1e-12);
    EXPECT_NEAR(r.metrics.overall_accuracy, 39.0 / 48.0, 1e-12);
    ASSERT_EQ(r.regions.size(), 2u);
    EXPECT_EQ(r.regions[0].name, "a");
    EXPECT_EQ(r.regions[0].images, 2);
    EXPECT_NEAR(r.regions[0].summary.iou[1], 8.0 / 13.0, 1e-12);
    EXPECT_EQ(r.regions[1].name, "b");
    EXPECT_NEAR(r.regions[1].summary.iou[1], 0.5, 1e-12);
    // Every image's table has the pooled classes: a1_2 has no truth building, its class-1 IoU is 0/1.
    EXPECT_EQ(r.images[1].name, "a1_2.tif");
    ASSERT_EQ(r.images[1].summary.iou.size(), 2u);
    EXPECT_DOUBLE_EQ(r.images[1].summary.iou[1], 0.0);
    EXPECT_EQ(r.images[1].summary.pixels, 16);
    EXPECT_EQ(r.unmatched, (std::vector<std::string>{"c9.tif"}));
    // A truth tile without a prediction would leave its pixels out of the pooled score: refused.
    std::filesystem::remove(tmp / "pred/b3.tif");
    rsi::test::expect_error([&] { evaluate_pixel_folders(o); }, ErrorKind::runtime, "pred: has no prediction for 1 of the 3 images of");
    // Names that start with a digit make a region per image: no region table then (it would repeat the
    // image table).
    std::filesystem::create_directories(tmp / "p2");
    std::filesystem::create_directories(tmp / "t2");
    for (const char* name : {"22678915_15.tif", "22678930_10.tif"}) {
        rsi::test::make_raster(tmp / ("p2/" + std::string(name)), 4, 4, 1, GDT_Byte, [](int, int x, int) { return x < 2; });
        rsi::test::make_raster(tmp / ("t2/" + std::string(name)), 4, 4, 1, GDT_Byte, [](int, int x, int) { return x < 2; });
    }
    o.prediction = tmp / "p2";
    o.truth = tmp / "t2";
    const PixelFolderEvaluation digits = evaluate_pixel_folders(o);
    EXPECT_EQ(digits.images.size(), 2u);
    EXPECT_TRUE(digits.regions.empty());
    EXPECT_EQ(image_region("austin1_2.tif"), "austin");
    EXPECT_EQ(image_region("tyrol-w3.tif"), "tyrol-w");
    EXPECT_EQ(image_region("123.png"), "123");
}

// Class rasters of other integer types are read as whole numbers and checked: reading them as Byte
// clamped 256 to class 255 and -1 to class 0 without a word. Their nodata is still not a class, and a
// floating-point raster (probabilities, an index) is not a class map at all.
TEST(PixelEvaluation, ClassValuesOutsideAByteAreRefusedNotClamped) {
    TempDir tmp;
    ensure_gdal_registered();
    rsi::test::make_raster(tmp / "truth.tif", 3, 3, 1, GDT_Byte, [](int, int x, int) { return x == 0 ? 1 : 0; });
    PixelEvaluationOptions o;
    o.truth = tmp / "truth.tif";
    rsi::test::make_raster(tmp / "p16.tif", 3, 3, 1, GDT_UInt16, [](int, int x, int y) { return x == 2 && y == 1 ? 256 : x == 0 ? 1 : 0; });
    o.prediction = tmp / "p16.tif";
    rsi::test::expect_error([&] { evaluate_pixels(o); }, ErrorKind::runtime, "p16.tif: has the value 256 at pixel (2, 1), not a class 0..255");
    rsi::test::make_raster(tmp / "pneg.tif", 3, 3, 1, GDT_Int16, [](int, int x, int y) { return x == 1 && y == 2 ? -1 : x == 0 ? 1 : 0; });
    o.prediction = tmp / "pneg.tif";
    rsi::test::expect_error([&] { evaluate_pixels(o); }, ErrorKind::runtime, "pneg.tif: has the value -1 at pixel (1, 2)");
    rsi::test::make_raster(tmp / "pf.tif", 3, 3, 1, GDT_Float32, [](int, int x, int) { return x == 0 ? 1 : 0; });
    o.prediction = tmp / "pf.tif";
    rsi::test::expect_error([&] { evaluate_pixels(o); }, ErrorKind::runtime, "pf.tif: is Float32, not an integer class raster");
    o.prediction = tmp / "truth.tif";
    o.truth = tmp / "pf.tif";
    rsi::test::expect_error([&] { evaluate_pixels(o); }, ErrorKind::runtime, "pf.tif: is Float32, not an integer class raster");
    // The same -1 declared as the band's nodata: not scored, the rest scores as a Byte raster would.
    {
        DatasetPtr ds(GDALDataset::Open((tmp / "pneg.tif").c_str(), GDAL_OF_RASTER | GDAL_OF_UPDATE));
        ASSERT_EQ(ds->GetRasterBand(1)->SetNoDataValue(-1), CE_None);
    }
    o.prediction = tmp / "pneg.tif";
    o.truth = tmp / "truth.tif";
    const PixelEvaluation r = evaluate_pixels(o);
    EXPECT_EQ(r.unscored_prediction_nodata, 1);
    EXPECT_EQ(r.matrix.classes(), 2);
    EXPECT_EQ(r.matrix.at(1, 1), 3);
    EXPECT_EQ(r.matrix.at(0, 0), 5);
    EXPECT_DOUBLE_EQ(r.metrics.overall_accuracy, 1.0);
}

// A text class field is held to the same rule as a numeric one ("300" was burnt as class 255, "1.5"
// as 2).
TEST(PixelEvaluation, TextClassFieldValuesMustBeByteClasses) {
    TempDir tmp;
    ensure_gdal_registered();
    rsi::test::make_raster(tmp / "pred.tif", 4, 4, 1, GDT_Byte, [](int, int, int) { return 0; });
    for (const char* bad : {"300", "1.5", "-1"}) {
        {
            DatasetPtr ds(GetGDALDriverManager()->GetDriverByName("GPKG")->Create((tmp / "truth.gpkg").c_str(), 0, 0, 0, GDT_Unknown, nullptr));
            OGRSpatialReference local;
            local.SetLocalCS("Undefined Cartesian SRS");
            OGRLayer* layer = ds->CreateLayer("truth", &local, wkbPolygon, nullptr);
            OGRFieldDefn field("cls", OFTString);
            ASSERT_EQ(layer->CreateField(&field), OGRERR_NONE);
            OGRFeature f(layer->GetLayerDefn());
            f.SetGeometry(rect(0, 0, 2, 2).get());
            f.SetField("cls", bad);
            ASSERT_EQ(layer->CreateFeature(&f), OGRERR_NONE);
        }
        PixelEvaluationOptions o;
        o.prediction = tmp / "pred.tif";
        o.truth = tmp / "truth.gpkg";
        o.truth_class_field = "cls";
        rsi::test::expect_error([&] { evaluate_pixels(o); }, ErrorKind::runtime, std::string("has class ") + bad + ", not a whole number 0..255");
        std::filesystem::remove(tmp / "truth.gpkg");
    }
}

// Nodata is not a class: the prediction's nodata (rsi's masks and scene maps write 255 where the
// input had none) and the truth's are left out of every metric and counted, with a warning. Without
// this, a 255 became a 256th class and dragged down accuracy and mIoU.
TEST(PixelEvaluation, NodataPixelsOfEitherRasterAreNotScored) {
    TempDir tmp;
    ensure_gdal_registered();
    // prediction: column 0 nodata (255); truth: row 3 nodata (9); elsewhere both x < 2 ? 1 : 0
    rsi::test::make_raster(tmp / "pred.tif", 4, 4, 1, GDT_Byte, [](int, int x, int) { return x == 0 ? 255 : x < 2 ? 1 : 0; });
    rsi::test::make_raster(tmp / "truth.tif", 4, 4, 1, GDT_Byte, [](int, int x, int y) { return y == 3 ? 9 : x < 2 ? 1 : 0; });
    for (const auto& [name, value] : {std::pair{"pred.tif", 255.0}, std::pair{"truth.tif", 9.0}}) {
        DatasetPtr ds(GDALDataset::Open((tmp / name).c_str(), GDAL_OF_RASTER | GDAL_OF_UPDATE));
        ASSERT_EQ(ds->GetRasterBand(1)->SetNoDataValue(value), CE_None);
    }
    PixelEvaluationOptions o;
    o.prediction = tmp / "pred.tif";
    o.truth = tmp / "truth.tif";
    const PixelEvaluation r = evaluate_pixels(o);
    EXPECT_EQ(r.matrix.classes(), 2);  // neither 255 nor 9 is a class
    EXPECT_EQ(r.unscored_prediction_nodata, 4);
    EXPECT_EQ(r.unscored_truth_nodata, 3);  // row 3 without its column-0 pixel, counted once
    EXPECT_EQ(r.metrics.pixels, 9);
    EXPECT_EQ(r.matrix.at(1, 1), 3);  // column 1, rows 0..2
    EXPECT_EQ(r.matrix.at(0, 0), 6);
    EXPECT_DOUBLE_EQ(r.metrics.overall_accuracy, 1.0);
    ASSERT_EQ(r.warnings.size(), 2u);
    EXPECT_NE(r.warnings[0].find("4 pixels of " + std::string(tmp / "pred.tif") + " are nodata"), std::string::npos) << r.warnings[0];
    EXPECT_NE(r.warnings[1].find("3 pixels of " + std::string(tmp / "truth.tif") + " are nodata"), std::string::npos) << r.warnings[1];
}

// Without --classes the class count is found in the scoring pass itself (a first pass read every
// pair twice): the matrix is the one --classes gives, progress is one pass, and Ctrl-C stops it.
TEST(PixelEvaluation, TheClassCountComesFromTheOnePassThatScores) {
    TempDir tmp;
    rsi::test::make_raster(tmp / "p.tif", 8, 8, 1, GDT_Byte, [](int, int x, int) { return x % 3; });
    rsi::test::make_raster(tmp / "t.tif", 8, 8, 1, GDT_Byte, [](int, int x, int y) { return y == 0 ? 4 : (x + y) % 3; });
    PixelEvaluationOptions o;
    o.prediction = tmp / "p.tif";
    o.truth = tmp / "t.tif";
    std::vector<std::string> phases;
    std::vector<double> fractions;
    const PixelEvaluation r = evaluate_pixels(o, [&](double f, std::string_view what) {
        phases.emplace_back(what);
        fractions.push_back(f);
        return true;
    });
    ASSERT_EQ(r.matrix.classes(), 5);  // truth class 4 in row 0
    PixelEvaluationOptions counted = o;
    counted.classes = 5;
    const PixelEvaluation c = evaluate_pixels(counted, {});
    for (int t = 0; t < 5; ++t) {
        for (int p = 0; p < 5; ++p) EXPECT_EQ(r.matrix.at(t, p), c.matrix.at(t, p)) << t << "," << p;
    }
    EXPECT_EQ(r.matrix.at(4, 0) + r.matrix.at(4, 1) + r.matrix.at(4, 2), 8);
    EXPECT_EQ(r.metrics.pixels, 64);
    EXPECT_EQ(phases, std::vector<std::string>(phases.size(), "pixels"));
    ASSERT_FALSE(fractions.empty());
    EXPECT_DOUBLE_EQ(fractions.back(), 1.0);
    rsi::test::expect_error([&] { evaluate_pixels(o, [](double, std::string_view) { return false; }); }, ErrorKind::cancelled, "");
}

// Polygons with a class field: outside every polygon is class 0 (background) unless a polygon itself
// has class 0, in which case the polygons label the classes and what they leave out is not scored.
// A text field is refused (it burnt every polygon as 0).
TEST(PixelEvaluation, OutsideThePolygonsIsUnlabelledWhenClassZeroIsAPolygonClass) {
    TempDir tmp;
    ensure_gdal_registered();
    // 4x4 prediction of 2 m pixels, all class 1 in the left half, 0 in the right half
    rsi::test::make_raster(tmp / "pred.tif", 4, 4, 1, GDT_Byte, [](int, int x, int) { return x < 2 ? 1 : 0; });
    const double gt[6] = {500000, 2, 0, 4000000, 0, -2};
    rsi::test::georeference(tmp / "pred.tif", gt, 32618);
    OGRSpatialReference utm;
    utm.importFromEPSG(32618);
    const auto write = [&](const std::string& name, const std::vector<int>& classes) {
        DatasetPtr ds(GetGDALDriverManager()->GetDriverByName("GPKG")->Create((tmp / name).c_str(), 0, 0, 0, GDT_Unknown, nullptr));
        OGRLayer* layer = ds->CreateLayer("truth", &utm, wkbPolygon, nullptr);
        OGRFieldDefn number("class", OFTInteger), text("name", OFTString), digits("digits", OFTString);
        layer->CreateField(&number);
        layer->CreateField(&text);
        layer->CreateField(&digits);
        // polygon k covers the top row's pixel column k (2 m wide, 2 m tall)
        for (size_t k = 0; k < classes.size(); ++k) {
            OGRFeature f(layer->GetLayerDefn());
            const double x0 = 500000 + 2.0 * static_cast<double>(k);
            f.SetGeometry(rect(x0, 4000000 - 2, x0 + 2, 4000000).get());
            f.SetField("class", classes[k]);
            f.SetField("name", classes[k] ? "building" : "ground");
            f.SetField("digits", std::to_string(classes[k]).c_str());  // as `rsi vectorize` writes without class names
            ASSERT_EQ(layer->CreateFeature(&f), OGRERR_NONE);
        }
    };
    write("with_zero.gpkg", {1, 1, 0, 0});  // the top row, labelled; the 12 pixels below unlabelled
    write("without_zero.gpkg", {1, 1});      // buildings only: outside them is background
    PixelEvaluationOptions o;
    o.prediction = tmp / "pred.tif";
    o.truth = tmp / "with_zero.gpkg";
    o.truth_class_field = "class";
    PixelEvaluation r = evaluate_pixels(o);
    EXPECT_EQ(r.unscored_outside_polygons, 12);
    EXPECT_EQ(r.metrics.pixels, 4);
    EXPECT_EQ(r.matrix.at(1, 1), 2);
    EXPECT_EQ(r.matrix.at(0, 0), 2);
    ASSERT_EQ(r.warnings.size(), 1u);
    EXPECT_NE(r.warnings[0].find("12 pixels lie outside every polygon"), std::string::npos) << r.warnings[0];
    o.truth = tmp / "without_zero.gpkg";
    r = evaluate_pixels(o);
    EXPECT_EQ(r.unscored_outside_polygons, 0);
    EXPECT_EQ(r.metrics.pixels, 16);
    EXPECT_EQ(r.matrix.at(1, 1), 2);
    EXPECT_EQ(r.matrix.at(0, 1), 6);  // the left half below the polygons: predicted 1, truth background
    EXPECT_EQ(r.matrix.at(0, 0), 8);
    // A text field of class numbers counts like an integer one; class names are refused, naming one.
    o.truth_class_field = "digits";
    const PixelEvaluation from_text = evaluate_pixels(o);
    EXPECT_EQ(from_text.matrix.at(1, 1), 2);
    EXPECT_EQ(from_text.matrix.at(0, 1), 6);
    o.truth_class_field = "name";
    rsi::test::expect_error([&] { evaluate_pixels(o); }, ErrorKind::usage, "has class 'building' in the text field 'name'");
}

// A truth raster on a coarser grid (2 m pixels over the same extent as the 1 m prediction) is warped
// onto the prediction's grid with nearest neighbour: each truth pixel covers 2x2 prediction pixels.
TEST(PixelEvaluation, TruthOnAnotherGridIsWarpedWithWarning) {
    TempDir tmp;
    rsi::test::make_raster(tmp / "pred.tif", 4, 4, 1, GDT_Byte, [](int, int x, int) { return x < 2 ? 1 : 0; });
    const double fine[6] = {500000, 1, 0, 4000000, 0, -1};
    rsi::test::georeference(tmp / "pred.tif", fine, 32618);
    rsi::test::make_raster(tmp / "truth.tif", 2, 2, 1, GDT_Byte, [](int, int x, int y) { return x == 0 && y == 0 ? 1 : 0; });
    const double coarse[6] = {500000, 2, 0, 4000000, 0, -2};
    rsi::test::georeference(tmp / "truth.tif", coarse, 32618);
    PixelEvaluationOptions o;
    o.prediction = tmp / "pred.tif";
    o.truth = tmp / "truth.tif";
    const PixelEvaluation r = evaluate_pixels(o);
    ASSERT_EQ(r.warnings.size(), 1u);
    EXPECT_NE(r.warnings[0].find("warped onto the prediction's grid"), std::string::npos);
    EXPECT_EQ(r.matrix.at(1, 1), 4);  // the top-left 2x2 block
    EXPECT_EQ(r.matrix.at(0, 1), 4);  // the bottom-left 2x2 block
    EXPECT_EQ(r.matrix.at(0, 0), 8);
    // A truth covering only the left half: the right half is not scored (it was scored as background,
    // so the prediction's buildings there counted as false positives).
    rsi::test::make_raster(tmp / "left.tif", 2, 4, 1, GDT_Byte, [](int, int, int) { return 1; });
    rsi::test::georeference(tmp / "left.tif", fine, 32618);
    rsi::test::make_raster(tmp / "everywhere.tif", 4, 4, 1, GDT_Byte, [](int, int, int) { return 1; });
    rsi::test::georeference(tmp / "everywhere.tif", fine, 32618);
    o.prediction = tmp / "everywhere.tif";
    o.truth = tmp / "left.tif";
    const PixelEvaluation half = evaluate_pixels(o);
    EXPECT_EQ(half.matrix.metrics().pixels, 8);
    EXPECT_EQ(half.matrix.at(1, 1), 8);
    EXPECT_EQ(half.matrix.at(0, 1), 0);
    EXPECT_EQ(half.unscored_truth_nodata, 8);
    ASSERT_EQ(half.warnings.size(), 2u);
    EXPECT_NE(half.warnings[1].find("8 pixels of " + o.truth + " are nodata or outside it: not scored"), std::string::npos) << half.warnings[1];
    // A truth elsewhere (100 km east) is not "nothing to compare": it says why.
    const double far[6] = {600000, 1, 0, 4000000, 0, -1};
    rsi::test::make_raster(tmp / "far.tif", 4, 4, 1, GDT_Byte, [](int, int, int) { return 1; });
    rsi::test::georeference(tmp / "far.tif", far, 32618);
    o.truth = tmp / "far.tif";
    rsi::test::expect_error([&] { evaluate_pixels(o); }, ErrorKind::runtime, "far.tif: does not overlap " + o.prediction);
    o.prediction = tmp / "pred.tif";
    // Without georeferencing, different sizes cannot be reconciled.
    rsi::test::make_raster(tmp / "plain.tif", 2, 2, 1, GDT_Byte, [](int, int, int) { return 0; });
    o.truth = tmp / "plain.tif";
    EXPECT_THROW(evaluate_pixels(o), Error);
    // Of one size, one georeferenced: compared pixel for pixel (a mask cut from the same image), and
    // the warning says what was assumed (it was silent).
    rsi::test::make_raster(tmp / "plain4.tif", 4, 4, 1, GDT_Byte, [](int, int x, int) { return x < 2 ? 1 : 0; });
    o.truth = tmp / "plain4.tif";
    const PixelEvaluation same = evaluate_pixels(o);
    EXPECT_EQ(same.matrix.at(1, 1), 8);
    EXPECT_EQ(same.matrix.at(0, 0), 8);
    ASSERT_EQ(same.warnings.size(), 1u);
    EXPECT_EQ(same.warnings[0], o.truth + " has no georeferencing: compared pixel for pixel (same size), assuming it covers the same ground");
}

TEST(EvaluationReport, HtmlHasSummaryTableAndMatrix) {
    TempDir tmp;
    ConfusionMatrix m(2);
    m.add_pair(0, 0, 4);
    m.add_pair(1, 1, 2);
    m.add_pair(0, 1, 1);
    m.add_pair(1, 0, 2);
    EvaluationReport report;
    report.title = "test <report>";
    report.summary = {{"mIoU", "0.4857"}};
    add_class_table(report, m.metrics(), {"background", "building"});
    report.class_names = {"background", "building"};
    report.matrix = &m;
    write_html_report(report, tmp / "r.html", false);
    std::ifstream in(tmp / "r.html");
    const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(html.find("<title>test &lt;report&gt;</title>"), std::string::npos);
    EXPECT_NE(html.find("<td>0.4857</td>"), std::string::npos);
    EXPECT_NE(html.find("<td class=\"name\">building</td><td>0.4000</td>"), std::string::npos);  // building IoU
    // Row "building": 2 of 4 truth pixels predicted building -> shade 0.5 on the diagonal.
    EXPECT_NE(html.find("rgba(40,100,220,0.500)\">2</td>"), std::string::npos);
    // The run checked the path when it started: a file there now appeared meanwhile (exit 1, not 2).
    try {
        write_html_report(report, tmp / "r.html", false);
        ADD_FAILURE() << "an existing report was replaced without overwrite";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::runtime);
        EXPECT_NE(std::string(e.what()).find("r.html: appeared while this run was writing it"), std::string::npos) << e.what();
    }
}
