#pragma once
// `rsi eval` in pixel mode: a prediction raster against a ground-truth raster on the same grid,
// streamed in row blocks into a confusion matrix.
#include <map>
#include <string>
#include <vector>

#include "src/confusion_matrix.hpp"
#include "tiling/progress.hpp"

namespace rsi {

struct PixelEvaluationOptions {
    std::string prediction;
    // A raster on the prediction's grid (a georeferenced raster on another grid is warped onto it,
    // nearest neighbour, with a warning), or polygons (any vector file, any CRS) rasterised onto that
    // grid block by block: a pixel is inside when its centre is (GDAL's rasterisation rule).
    std::string truth;
    // Polygons: the integer attribute giving the class (default: every polygon is 1, outside 0). When
    // some polygon has class 0, pixels outside every polygon are not scored (0 is not background).
    std::string truth_class_field;
    // Polygons: their coordinates are pixel columns and rows of the prediction (x right, y down),
    // whatever CRS the file names (a GeoJSON names WGS 84 by default).
    bool pixel_coordinates = false;
    int classes = 0;                    // 0: the largest value seen in band 1 of either raster + 1 (after mapping)
    int ignore = -1;                    // a value (after mapping) that is not counted, e.g. 255 nodata
    std::map<int, int> truth_map;       // value remapping, e.g. {255: 1} for 0/255 masks
    std::map<int, int> prediction_map;
};

struct PixelEvaluation {
    ConfusionMatrix matrix{1};
    PixelMetrics metrics;
    std::vector<std::string> warnings;  // e.g. the truth was warped onto the prediction's grid, pixels not scored
    // Pixels left out of every metric: nodata in either raster (its nodata value, alpha or mask),
    // outside every polygon when polygons label class 0 themselves.
    int64_t unscored_prediction_nodata = 0;
    int64_t unscored_truth_nodata = 0;
    int64_t unscored_outside_polygons = 0;
};

PixelEvaluation evaluate_pixels(const PixelEvaluationOptions& options, const ProgressFn& progress = {});

// Two folders of class rasters paired by file stem (Inria: the same file names): each pair scored as
// evaluate_pixels scores it, and the matrices pooled — over the whole folder and over each region
// (the name before its first digit: austin1_2.tif and austin3.tif are "austin"), as Inria reports
// IoU and accuracy pooled over a region's pixels, not averaged over its tiles. Without --classes the
// pooled matrix has the classes of the largest value seen in any pair.
// One row of the per-image and per-region tables, over the pooled classes.
struct PixelSummary {
    int64_t pixels = 0;
    double overall_accuracy = 0, mean_iou = 0;
    std::vector<double> iou;  // per class; NaN where the class is in neither raster
};
struct PixelFolderImage {
    std::string name, prediction, truth;
    PixelSummary summary;
};
struct PixelFolderGroup {
    std::string name;
    int64_t images = 0;
    PixelSummary summary;
};
struct PixelFolderEvaluation {
    ConfusionMatrix matrix{1};  // pooled over every pair
    PixelMetrics metrics;
    std::vector<PixelFolderImage> images;    // by name
    std::vector<PixelFolderGroup> regions;   // by name; none when every region would hold one image
    std::vector<std::string> unmatched;      // prediction files without a truth file (not scored)
    std::vector<std::string> warnings;       // the first 10 of the pairs' warnings, then a count
    int64_t unscored_prediction_nodata = 0, unscored_truth_nodata = 0;
};

// True when `path` is a folder holding raster files (.tif, .tiff, .png, .jpg, .jpeg, .bmp, .img, .vrt).
bool is_raster_folder(const std::string& path);

// `options.prediction` and `options.truth` are folders. Every truth raster needs a prediction (a missing
// one is an error naming it: the pooled score would leave its pixels out); predictions without a truth
// are listed and not scored (a whole test set scored on its labelled part).
PixelFolderEvaluation evaluate_pixel_folders(const PixelEvaluationOptions& options, const ProgressFn& progress = {});

// The region of an image name: its stem up to the first digit, without a trailing '_' or '-'
// ("austin1_2.tif" -> "austin", "tyrol-w3" -> "tyrol-w"); the whole stem when it starts with a digit.
std::string image_region(const std::string& file_name);

// True when `path` opens as a vector dataset and not as a raster.
bool is_vector_dataset(const std::string& path);

// The Tianchi contest score of a submission CSV against a ground-truth CSV of the same format
// (src/submission_csv.hpp): per-image Dice (1 when both masks are empty), averaged over every image of
// the truth. An image missing from the prediction counts as an empty mask (and is listed); a
// prediction for an image the truth lacks is not scored (and is listed), as the contest's scorer, which
// walks the truth, does — so a submission for a whole test set can be scored on a labelled part.
struct TianchiScore {
    double score = 0;
    int64_t images = 0;
    std::vector<std::string> missing;  // truth images without a prediction line
    std::vector<std::string> unknown;  // prediction lines for images not in the truth (not scored)
};
TianchiScore evaluate_tianchi(const std::string& prediction_csv, const std::string& truth_csv, int64_t width, int64_t height,
                              const ProgressFn& progress = {});

// "255=1,3=2" -> {255: 1, 3: 2}; throws a usage Error.
std::map<int, int> parse_value_map(const std::string& text, const std::string& option);

}  // namespace rsi
