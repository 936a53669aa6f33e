#pragma once
// Object-level F1 of building (or any object) footprints, by the rule of the SpaceNet scorer as
// implemented in solaris (CosmiQ/solaris, solaris/eval/base.py, Evaluator.eval_iou_spacenet_csv):
//
//   per image: drop ground-truth polygons with area < min_area and proposals with area <= min_area;
//   sort proposals by confidence, highest first (stable: equal confidences keep file order);
//   match each proposal to the still-unmatched ground-truth polygon of highest IoU (the first one in
//   file order on a tie); it is a true positive when that IoU is strictly greater than the threshold
//   (solaris: `if max_iou_row["iou_score"] > miniou`), which removes that ground truth from matching;
//   otherwise a false positive. Unmatched ground truth with area > 0 are false negatives.
//   TP, FP and FN are summed over images (spacenet_buildings2_dataset.py sums the per-image counts
//   before computing precision, recall and F1 = 2PR / (P + R)).
//
// As in solaris, an invalid proposal is repaired with buffer(0) and an invalid ground-truth polygon
// scores IoU 0 against everything (it can only be a false negative).
//
// Inputs are vector files in any CRS (matched in a projected CRS: the truth's own when projected,
// otherwise the UTM zone of the truth's centre, so areas are m²), folders of such files paired by
// file name, or SpaceNet CSVs (`ImageId,BuildingId,PolygonWKT_Pix[,Confidence]`, pixel coordinates,
// images grouped by ImageId, `POLYGON EMPTY` rows mark images without buildings).
// Class-aware matching compares only proposals and ground truth of the same class.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ogr_geometry.h>

#include "tiling/progress.hpp"

namespace rsi {

struct ObjectCounts {
    int64_t true_positive = 0, false_positive = 0, false_negative = 0;
    double precision() const;
    double recall() const;
    double f1() const;
    ObjectCounts& operator+=(const ObjectCounts& other);
};

struct ObjectPolygon {
    std::unique_ptr<OGRGeometry> geometry;  // in the matching frame
    double confidence = 1;
    std::string object_class;               // class-aware matching only
};

// One image: the solaris rule above. `truth` and `proposals` are taken in file order.
ObjectCounts match_objects(const std::vector<ObjectPolygon>& truth, const std::vector<ObjectPolygon>& proposals,
                           double iou_threshold, double min_area);

// Intersection over union of two polygons (0 when either is empty).
double polygon_iou(const OGRGeometry& a, const OGRGeometry& b);

struct ObjectEvaluationOptions {
    std::string prediction, truth;       // both files, both folders, or both SpaceNet CSVs
    double iou_threshold = 0.5;
    std::optional<double> min_area;      // px² for pixel coordinates, m² otherwise (in a UTM zone);
                                         // default 20 for pixel coordinates (SpaceNet), 0 otherwise
    std::string confidence_field;        // default: "confidence"/"Confidence"/"score" when present
    std::string class_field;             // prediction attribute for class-aware matching (empty: off)
    std::string truth_class_field;       // default: class_field
    // Polygons are pixel coordinates whatever CRS their files name (a GeoJSON without a "crs" member
    // names WGS84: `rsi vectorize --keep-crs` of a mask without georeferencing writes such files).
    // Without it, a geographic layer whose coordinates cannot be degrees (beyond ±180 / ±90) is taken
    // as pixel coordinates too, with a warning.
    bool pixel_coordinates = false;
};

struct ImageObjectScore {
    std::string image;
    ObjectCounts counts;
    // The objects scored (truth_objects = TP + FN, proposals = TP + FP) and those read but dropped by
    // min_area (or empty), so the counts add up to the files.
    int64_t truth_objects = 0, proposals = 0;
    int64_t truth_below_min_area = 0, proposals_below_min_area = 0;
};

struct ObjectEvaluation {
    ObjectCounts total;
    std::vector<ImageObjectScore> images;          // sorted by name
    std::map<std::string, ObjectCounts> classes;   // class-aware only
    double mean_class_f1 = 0;                      // class-aware only: unweighted mean over classes with something to score (NaN: none)
    std::string frame;                             // "pixel" or the matching CRS, e.g. "EPSG:32617"
    double min_area = 0;
    std::vector<std::string> warnings;             // e.g. an image with truth but no prediction file
};

// True when `path` is a folder holding vector files (.geojson, .json, .gpkg, .shp, .fgb, .kml, .gml).
bool is_vector_folder(const std::string& path);

ObjectEvaluation evaluate_objects(const ObjectEvaluationOptions& options, const ProgressFn& progress = {});

}  // namespace rsi
