// rsi eval PREDICTION TRUTH: pixel metrics (rasters, or a raster against polygons), object F1
// (footprint polygons, SpaceNet rule), scene-classification scores, or the Tianchi contest score.
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <gdal_priv.h>

#include "cli/command_context.hpp"
#include "src/evaluation_report.hpp"
#include "src/object_evaluation.hpp"
#include "src/output_file.hpp"
#include "src/pixel_evaluation.hpp"
#include "src/scene_evaluation.hpp"
#include "src/submission.hpp"
#include "src/xview2_score.hpp"
#include "tiling/error.hpp"
#include "tiling/gdal_dataset.hpp"

namespace fs = std::filesystem;

namespace rsi::cli {

namespace {

// Folder inputs are read file by file: an existing file inside one (at any depth: scene labels sit in
// class folders) is an input, which the report would replace. A report already there (HTML, which no
// mode reads) may be replaced with --overwrite.
void check_report_not_in_input_folders(const std::string& report, const std::vector<std::string>& inputs) {
    std::error_code ec;
    if (!fs::is_regular_file(report, ec)) return;
    std::string extension = fs::path(report).extension().string();
    for (char& c : extension) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (extension == ".html" || extension == ".htm") return;
    for (const std::string& input : inputs) {
        if (fs::is_directory(input, ec) && is_within(report, input)) {
            throw usage_error(report + ": is a file of the input folder " + input + "; write the report elsewhere");
        }
    }
}

struct Options {
    std::string prediction, truth, mode = "auto", report;
    std::string truth_map, prediction_map, truth_class_field, class_field, confidence_field;
    std::string id_column, class_column, size = "512x512";
    int classes = 0, ignore = -1;
    double iou = 0.5, min_area = -1;
    bool tianchi = false, xview2 = false, overwrite = false, pixel_coordinates = false;
};

std::string lower_extension(const std::string& path) {
    std::string ext = fs::path(path).extension().string();
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return ext;
}

std::string first_line(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

// A folder holding xView2 targets (test_localization_<id>_target.png).
bool is_xview2_target_folder(const std::string& path) {
    std::error_code ec;
    if (!fs::is_directory(path, ec)) return false;
    for (const auto& entry : fs::directory_iterator(path, ec)) {
        const std::string name = entry.path().filename().string();
        if ((name.rfind("test_localization_", 0) == 0 || name.rfind("hold_localization_", 0) == 0) &&
            name.size() > 11 && name.compare(name.size() - 11, 11, "_target.png") == 0) {
            return true;
        }
    }
    return false;
}

// pixel, objects, scene, tianchi or xview2, from the inputs when not given.
std::string detect_mode(const Options& o) {
    if (o.tianchi && o.xview2) throw usage_error("--tianchi and --xview2 are two different contests: give one");
    if (o.tianchi) return "tianchi";
    if (o.xview2) return "xview2";
    if (o.mode != "auto") {
        if (o.mode != "pixel" && o.mode != "objects" && o.mode != "scene" && o.mode != "tianchi" && o.mode != "xview2") {
            throw usage_error("--mode: expected auto, pixel, objects, scene, tianchi or xview2, got '" + o.mode + "'");
        }
        return o.mode;
    }
    if (fs::is_directory(o.prediction)) {
        if (is_xview2_target_folder(o.truth)) return "xview2";
        // Folders of class rasters (Inria masks) are scored pixel by pixel; folders of polygons by objects.
        return is_raster_folder(o.truth) && !is_vector_folder(o.truth) ? "pixel" : "objects";
    }
    if (lower_extension(o.prediction) == ".csv") {
        // A SpaceNet CSV: its header, or (the header is optional) a first entry with a WKT polygon.
        const std::string line = first_line(o.prediction);
        const bool spacenet = line.find("PolygonWKT_Pix") != std::string::npos || line.find("POLYGON") != std::string::npos;
        return spacenet ? "objects" : "scene";
    }
    if (is_vector_dataset(o.prediction)) return "objects";
    return "pixel";
}

std::string fixed(double v) {
    if (std::isnan(v)) return "n/a";  // undefined score (0/0)
    std::ostringstream s;
    s << std::fixed << std::setprecision(4) << v;
    return s.str();
}

// Category names of the prediction raster's band 1 (rsi writes them), for readable tables.
std::vector<std::string> category_names(const std::string& path) {
    std::vector<std::string> names;
    CPLPushErrorHandler(CPLQuietErrorHandler);
    DatasetPtr ds(GDALDataset::Open(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
    CPLPopErrorHandler();
    if (ds && ds->GetRasterCount() > 0) {
        // GDAL 3.6's GeoTIFF driver reads the .aux.xml (where the names live) only once some
        // dataset-level metadata is asked for: without this, GetCategoryNames() returns nothing.
        ds->GetMetadata();
        if (char** list = ds->GetRasterBand(1)->GetCategoryNames()) {
            for (int i = 0; list[i]; ++i) names.emplace_back(list[i]);
        }
    }
    return names;
}

// An undefined score (NaN) is null in JSON.
nlohmann::json optional_number(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

nlohmann::json metrics_json(const PixelMetrics& m, const ConfusionMatrix& matrix, const std::vector<std::string>& names) {
    nlohmann::json classes = nlohmann::json::array(), cells = nlohmann::json::array();
    for (int t = 0; t < matrix.classes(); ++t) {
        nlohmann::json row = nlohmann::json::array();
        for (int p = 0; p < matrix.classes(); ++p) row.push_back(matrix.at(t, p));
        cells.push_back(row);
        const auto& c = m.classes[static_cast<size_t>(t)];
        nlohmann::json entry{{"class", t},           {"iou", optional_number(c.iou)}, {"precision", optional_number(c.precision)},
                             {"recall", optional_number(c.recall)}, {"f1", optional_number(c.f1)}, {"support", c.support}};
        if (static_cast<size_t>(t) < names.size()) entry["name"] = names[static_cast<size_t>(t)];
        classes.push_back(entry);
    }
    return {{"overall_accuracy", m.overall_accuracy}, {"mean_iou", m.mean_iou}, {"frequency_weighted_iou", m.frequency_weighted_iou},
            {"kappa", optional_number(m.kappa)}, {"classes", classes}, {"confusion_matrix", cells}};
}

void print_class_table(const PixelMetrics& m, const std::vector<std::string>& names) {
    std::cout << std::left << std::setw(22) << "class" << std::setw(10) << "IoU" << std::setw(10) << "precision" << std::setw(10)
              << "recall" << std::setw(10) << "F1" << "support\n";
    for (size_t c = 0; c < m.classes.size(); ++c) {
        const auto& k = m.classes[c];
        std::cout << std::left << std::setw(22) << (c < names.size() ? names[c] : std::to_string(c)) << std::setw(10) << fixed(k.iou)
                  << std::setw(10) << fixed(k.precision) << std::setw(10) << fixed(k.recall) << std::setw(10) << fixed(k.f1) << k.support << "\n";
    }
}

void print_matrix(const ConfusionMatrix& matrix, const std::vector<std::string>& names) {
    std::cout << "confusion matrix (rows truth, columns prediction):\n";
    for (int t = 0; t < matrix.classes(); ++t) {
        std::cout << "  " << std::left << std::setw(20) << (static_cast<size_t>(t) < names.size() ? names[static_cast<size_t>(t)] : std::to_string(t));
        for (int p = 0; p < matrix.classes(); ++p) std::cout << std::right << std::setw(12) << matrix.at(t, p);
        std::cout << "\n";
    }
}

// Class names for the tables: the prediction raster's category names, else the class numbers.
std::vector<std::string> table_class_names(const std::string& prediction, int classes) {
    std::vector<std::string> names = category_names(prediction);
    names.resize(std::max<size_t>(names.size(), static_cast<size_t>(classes)));
    for (size_t i = 0; i < names.size(); ++i) {
        if (names[i].empty()) names[i] = std::to_string(i);
    }
    return names;
}

// The HTML report of pixel metrics: `report`'s title and summary, then the class table and the matrix.
void write_pixel_report(const Options& o, EvaluationReport& report, const PixelMetrics& m, const ConfusionMatrix& matrix,
                        const std::vector<std::string>& names) {
    add_class_table(report, m, names);
    report.class_names = names;
    report.matrix = &matrix;
    write_html_report(report, o.report, o.overwrite);
}

nlohmann::json pixel_json(const PixelMetrics& m, const ConfusionMatrix& matrix, const std::vector<std::string>& names) {
    nlohmann::json j = metrics_json(m, matrix, names);
    j["mode"] = "pixel";
    j["pixels"] = m.pixels;
    return j;
}

void print_pixel_metrics(const PixelMetrics& m, const ConfusionMatrix& matrix, const std::vector<std::string>& names) {
    print_class_table(m, names);
    std::cout << "overall accuracy " << fixed(m.overall_accuracy) << ", mIoU " << fixed(m.mean_iou) << ", FWIoU "
              << fixed(m.frequency_weighted_iou) << ", kappa " << fixed(m.kappa) << "\n";
    print_matrix(matrix, names);
}

// One row of the per-region / per-image tables: pixels, accuracy, mIoU and each class's IoU.
nlohmann::json summary_json(const std::string& name, const PixelSummary& m) {
    nlohmann::json iou = nlohmann::json::array();
    for (const double v : m.iou) iou.push_back(optional_number(v));
    return {{"name", name}, {"pixels", m.pixels}, {"overall_accuracy", m.overall_accuracy}, {"mean_iou", m.mean_iou}, {"iou", iou}};
}

void print_summary_rows(const std::string& title, const std::vector<std::pair<std::string, const PixelSummary*>>& rows,
                        const std::vector<std::string>& names) {
    const size_t shown = std::min<size_t>(names.size(), 8);  // IoU columns for up to 8 classes
    std::cout << std::left << std::setw(24) << title << std::setw(14) << "pixels" << std::setw(10) << "accuracy" << std::setw(10) << "mIoU";
    for (size_t c = 0; c < shown; ++c) std::cout << std::setw(14) << ("IoU " + names[c]).substr(0, 13);
    std::cout << "\n";
    for (const auto& [name, m] : rows) {
        std::cout << std::left << std::setw(24) << name << std::setw(14) << m->pixels << std::setw(10) << fixed(m->overall_accuracy)
                  << std::setw(10) << fixed(m->mean_iou);
        for (size_t c = 0; c < shown && c < m->iou.size(); ++c) std::cout << std::setw(14) << fixed(m->iou[c]);
        std::cout << "\n";
    }
}

// Two folders of class rasters: pooled over all pixels, per region and per image (Inria's rule).
int run_pixel_folders(const Options& o, CommandContext& context, const PixelEvaluationOptions& e) {
    ProgressBar bar(!context.common.quiet && !context.common.json);
    const PixelFolderEvaluation r = evaluate_pixel_folders(e, context.progress(bar));
    bar.finish();
    if (!context.common.quiet) {
        for (const auto& w : r.warnings) std::cerr << "rsi eval: warning: " << w << "\n";
    }
    const PixelMetrics& m = r.metrics;
    const std::vector<std::string> names = table_class_names(r.images.front().prediction, r.matrix.classes());
    std::vector<std::pair<std::string, const PixelSummary*>> regions, images;
    for (const auto& g : r.regions) regions.emplace_back(g.name + " (" + std::to_string(g.images) + ")", &g.summary);
    for (const auto& i : r.images) images.emplace_back(i.name, &i.summary);
    if (!o.report.empty()) {
        EvaluationReport report;
        report.title = "rsi eval: " + fs::path(o.prediction).filename().string() + " against " + fs::path(o.truth).filename().string();
        report.summary = {{"mode", "pixel, folders (pooled over all pixels)"}, {"images", std::to_string(r.images.size())},
                          {"pixels", std::to_string(m.pixels)}, {"overall accuracy", fixed(m.overall_accuracy)},
                          {"mIoU", fixed(m.mean_iou)}, {"FWIoU", fixed(m.frequency_weighted_iou)}, {"kappa", fixed(m.kappa)}};
        for (const auto& g : r.regions) {
            report.summary.emplace_back("region " + g.name + " (" + std::to_string(g.images) + " images)",
                                        "accuracy " + fixed(g.summary.overall_accuracy) + ", mIoU " + fixed(g.summary.mean_iou));
        }
        write_pixel_report(o, report, m, r.matrix, names);
    }
    if (context.common.json) {
        nlohmann::json j = pixel_json(m, r.matrix, names);
        j["unscored_pixels"] = {{"prediction_nodata", r.unscored_prediction_nodata}, {"truth_nodata", r.unscored_truth_nodata}};
        j["regions"] = nlohmann::json::array();
        for (const auto& g : r.regions) {
            nlohmann::json row = summary_json(g.name, g.summary);
            row["images"] = g.images;
            j["regions"].push_back(row);
        }
        j["images"] = nlohmann::json::array();
        for (const auto& i : r.images) j["images"].push_back(summary_json(i.name, i.summary));
        j["unmatched_predictions"] = r.unmatched;
        print_json(j);
    } else {
        std::cout << r.images.size() << " images, pixels " << m.pixels << " (pooled)\n";
        print_pixel_metrics(m, r.matrix, names);
        if (!regions.empty()) print_summary_rows("region (images)", regions, names);
        print_summary_rows("image", images, names);
    }
    return 0;
}

int run_pixel(const Options& o, CommandContext& context) {
    PixelEvaluationOptions e;
    e.prediction = o.prediction;
    e.truth = o.truth;
    e.truth_class_field = o.truth_class_field;
    e.pixel_coordinates = o.pixel_coordinates;
    e.classes = o.classes;
    e.ignore = o.ignore;
    if (!o.truth_map.empty()) e.truth_map = parse_value_map(o.truth_map, "--truth-map");
    if (!o.prediction_map.empty()) e.prediction_map = parse_value_map(o.prediction_map, "--prediction-map");
    if (fs::is_directory(o.prediction) || fs::is_directory(o.truth)) {
        if (!e.truth_class_field.empty()) throw usage_error("eval: --truth-class-field applies to ground-truth polygons only");
        return run_pixel_folders(o, context, e);
    }
    ProgressBar bar(!context.common.quiet && !context.common.json);
    const PixelEvaluation r = evaluate_pixels(e, context.progress(bar));
    bar.finish();
    if (!context.common.quiet) {
        for (const auto& w : r.warnings) std::cerr << "rsi eval: warning: " << w << "\n";
    }
    const PixelMetrics& m = r.metrics;
    const std::vector<std::string> names = table_class_names(o.prediction, r.matrix.classes());
    if (!o.report.empty()) {
        EvaluationReport report;
        report.title = "rsi eval: " + fs::path(o.prediction).filename().string() + " against " + fs::path(o.truth).filename().string();
        const int64_t unscored = r.unscored_prediction_nodata + r.unscored_truth_nodata + r.unscored_outside_polygons;
        report.summary = {{"mode", "pixel"}, {"pixels", std::to_string(m.pixels)}, {"pixels not scored (nodata, unlabelled)", std::to_string(unscored)},
                          {"overall accuracy", fixed(m.overall_accuracy)},
                          {"mIoU", fixed(m.mean_iou)}, {"FWIoU", fixed(m.frequency_weighted_iou)}, {"kappa", fixed(m.kappa)}};
        write_pixel_report(o, report, m, r.matrix, names);
    }
    if (context.common.json) {
        nlohmann::json j = pixel_json(m, r.matrix, names);
        j["unscored_pixels"] = {{"prediction_nodata", r.unscored_prediction_nodata},
                                {"truth_nodata", r.unscored_truth_nodata},
                                {"outside_polygons", r.unscored_outside_polygons}};
        print_json(j);
    } else {
        std::cout << "pixels " << m.pixels << "\n";
        print_pixel_metrics(m, r.matrix, names);
    }
    return 0;
}

// A score whose denominator is 0 is undefined: n/a / null, not 0 (as in pixel mode). Precision of a
// class never proposed, recall of a class absent from the truth; F1 only when there is nothing to score
// at all (no truth object, no proposal: an empty image rightly left empty), as it is 0 whenever either
// count is not (a per-image mean would otherwise count such an image as a miss).
double precision_of(const ObjectCounts& c) {
    return c.true_positive + c.false_positive == 0 ? std::numeric_limits<double>::quiet_NaN() : c.precision();
}
double recall_of(const ObjectCounts& c) {
    return c.true_positive + c.false_negative == 0 ? std::numeric_limits<double>::quiet_NaN() : c.recall();
}
double f1_of(const ObjectCounts& c) {
    return c.true_positive + c.false_positive + c.false_negative == 0 ? std::numeric_limits<double>::quiet_NaN() : c.f1();
}

nlohmann::json counts_json(const ObjectCounts& c) {
    return {{"true_positives", c.true_positive},
            {"false_positives", c.false_positive},
            {"false_negatives", c.false_negative},
            {"precision", optional_number(precision_of(c))},
            {"recall", optional_number(recall_of(c))},
            {"f1", optional_number(f1_of(c))}};
}

int run_objects(const Options& o, CommandContext& context) {
    ObjectEvaluationOptions e;
    e.prediction = o.prediction;
    e.truth = o.truth;
    e.iou_threshold = o.iou;
    if (o.min_area >= 0) e.min_area = o.min_area;
    e.confidence_field = o.confidence_field;
    e.class_field = o.class_field;
    e.truth_class_field = o.truth_class_field;
    e.pixel_coordinates = o.pixel_coordinates;
    ProgressBar bar(!context.common.quiet && !context.common.json);
    const ObjectEvaluation r = evaluate_objects(e, context.progress(bar));
    bar.finish();
    if (!context.common.quiet) {
        for (const auto& w : r.warnings) std::cerr << "rsi eval: warning: " << w << "\n";
    }
    if (!o.report.empty()) {
        EvaluationReport report;
        report.title = "rsi eval (objects): " + fs::path(o.prediction).filename().string() + " against " + fs::path(o.truth).filename().string();
        report.summary = {{"mode", "objects (SpaceNet rule: IoU > " + fixed(o.iou) + ")"}, {"matching frame", r.frame},
                          {"min area", fixed(r.min_area)}, {"true positives", std::to_string(r.total.true_positive)},
                          {"false positives", std::to_string(r.total.false_positive)},
                          {"false negatives", std::to_string(r.total.false_negative)}, {"precision", fixed(precision_of(r.total))},
                          {"recall", fixed(recall_of(r.total))}, {"F1", fixed(f1_of(r.total))}};
        if (!r.classes.empty()) {
            report.summary.emplace_back("mean class F1", fixed(r.mean_class_f1));
            report.table_header = {"class", "TP", "FP", "FN", "precision", "recall", "F1"};
            for (const auto& [name, c] : r.classes) {
                report.table_rows.push_back({name, std::to_string(c.true_positive), std::to_string(c.false_positive),
                                             std::to_string(c.false_negative), fixed(precision_of(c)), fixed(recall_of(c)),
                                             fixed(f1_of(c))});
            }
        } else {
            report.table_header = {"image", "TP", "FP", "FN", "precision", "recall", "F1"};
            for (const auto& i : r.images) {
                report.table_rows.push_back({i.image, std::to_string(i.counts.true_positive), std::to_string(i.counts.false_positive),
                                             std::to_string(i.counts.false_negative), fixed(precision_of(i.counts)),
                                             fixed(recall_of(i.counts)), fixed(f1_of(i.counts))});
            }
        }
        write_html_report(report, o.report, o.overwrite);
    }
    if (context.common.json) {
        nlohmann::json j = counts_json(r.total);
        j["mode"] = "objects";
        j["iou_threshold"] = o.iou;
        j["min_area"] = r.min_area;
        j["frame"] = r.frame;
        nlohmann::json images = nlohmann::json::array();
        for (const auto& i : r.images) {
            nlohmann::json entry = counts_json(i.counts);
            entry["image"] = i.image;
            entry["truth_objects"] = i.truth_objects;
            entry["proposals"] = i.proposals;
            entry["below_min_area"] = {{"truth", i.truth_below_min_area}, {"proposals", i.proposals_below_min_area}};
            images.push_back(entry);
        }
        j["images"] = images;
        if (!r.classes.empty()) {
            nlohmann::json classes = nlohmann::json::object();
            for (const auto& [name, c] : r.classes) classes[name] = counts_json(c);
            j["classes"] = classes;
            j["mean_class_f1"] = optional_number(r.mean_class_f1);
        }
        print_json(j);
    } else {
        std::cout << "objects: IoU > " << o.iou << ", min area " << r.min_area << " (" << r.frame << " units), " << r.images.size()
                  << " image(s)\n";
        if (!r.classes.empty()) {
            std::cout << std::left << std::setw(34) << "class" << std::setw(6) << "TP" << std::setw(6) << "FP" << std::setw(6) << "FN"
                      << std::setw(11) << "precision" << std::setw(10) << "recall" << "F1\n";
            for (const auto& [name, c] : r.classes) {
                std::cout << std::left << std::setw(34) << name << std::setw(6) << c.true_positive << std::setw(6) << c.false_positive
                          << std::setw(6) << c.false_negative << std::setw(11) << fixed(precision_of(c)) << std::setw(10)
                          << fixed(recall_of(c)) << fixed(f1_of(c)) << "\n";
            }
            std::cout << "mean class F1 " << fixed(r.mean_class_f1) << "\n";
        }
        std::cout << "TP " << r.total.true_positive << ", FP " << r.total.false_positive << ", FN " << r.total.false_negative
                  << "; precision " << fixed(precision_of(r.total)) << ", recall " << fixed(recall_of(r.total))
                  << ", F1 " << fixed(f1_of(r.total)) << "\n";
    }
    return 0;
}

int run_scene(const Options& o, CommandContext& context) {
    SceneEvaluationOptions e;
    e.prediction = o.prediction;
    e.labels = o.truth;
    e.id_column = o.id_column;
    e.class_column = o.class_column;
    const SceneEvaluation r = evaluate_scenes(e);
    const PixelMetrics& m = r.metrics;
    if (!o.report.empty()) {
        EvaluationReport report;
        report.title = "rsi eval (scenes): " + fs::path(o.prediction).filename().string() + " against " + fs::path(o.truth).filename().string();
        report.summary = {{"mode", "scene classification"}, {"items", std::to_string(r.items)},
                          {"accuracy", fixed(m.overall_accuracy)}, {"kappa", fixed(m.kappa)}};
        add_class_table(report, m, r.class_names);
        report.class_names = r.class_names;
        report.matrix = &r.matrix;
        write_html_report(report, o.report, o.overwrite);
    }
    if (context.common.json) {
        nlohmann::json j = metrics_json(m, r.matrix, r.class_names);
        j["mode"] = "scene";
        j["items"] = r.items;
        j["accuracy"] = m.overall_accuracy;
        j["unlabelled_predictions"] = r.unlabelled_predictions;
        print_json(j);
    } else {
        std::cout << "items " << r.items << "\n";
        print_class_table(m, r.class_names);
        std::cout << "accuracy " << fixed(m.overall_accuracy) << ", kappa " << fixed(m.kappa) << "\n";
        print_matrix(r.matrix, r.class_names);
    }
    return 0;
}

int run_tianchi(const Options& o, CommandContext& context) {
    const auto [w, h] = parse_image_size(o.size, "--size");
    ProgressBar bar(!context.common.quiet && !context.common.json);
    const TianchiScore s = evaluate_tianchi(o.prediction, o.truth, w, h, context.progress(bar));
    bar.finish();
    if (!context.common.quiet && !s.missing.empty()) {
        std::cerr << "rsi eval: warning: " << s.missing.size() << " image(s) without a prediction line count as empty masks (first: "
                  << s.missing.front() << ")\n";
    }
    if (!context.common.quiet && !s.unknown.empty()) {
        std::cerr << "rsi eval: warning: " << s.unknown.size() << " prediction line(s) for images not in " << o.truth
                  << " are not scored (first: " << s.unknown.front() << ")\n";
    }
    if (!o.report.empty()) {
        EvaluationReport report;
        report.title = "rsi eval (Tianchi): " + fs::path(o.prediction).filename().string();
        report.summary = {{"mode", "tianchi (mean per-image Dice)"}, {"images", std::to_string(s.images)},
                          {"score", fixed(s.score)}, {"missing predictions", std::to_string(s.missing.size())},
                          {"predictions not in the truth (not scored)", std::to_string(s.unknown.size())}};
        write_html_report(report, o.report, o.overwrite);
    }
    if (context.common.json) {
        print_json({{"mode", "tianchi"}, {"score", s.score}, {"images", s.images}, {"missing", s.missing}, {"not_in_truth", s.unknown}});
    } else {
        std::cout << "tianchi score (mean Dice over " << s.images << " images) " << fixed(s.score) << "\n";
    }
    return 0;
}

int run_xview2(const Options& o, CommandContext& context) {
    ProgressBar bar(!context.common.quiet && !context.common.json);
    const Xview2Score s = evaluate_xview2(o.prediction, o.truth, context.progress(bar));
    bar.finish();
    static const char* levels[4] = {"no damage", "minor damage", "major damage", "destroyed"};
    const auto counts = [](const Xview2Counts& c) {
        return nlohmann::json{{"true_positives", c.true_positive}, {"false_negatives", c.false_negative}, {"false_positives", c.false_positive},
                              {"precision", c.precision()}, {"recall", c.recall()}, {"f1", c.f1()}};
    };
    if (!o.report.empty()) {
        EvaluationReport report;
        report.title = "rsi eval (xView2): " + fs::path(o.prediction).filename().string();
        report.summary = {{"mode", "xview2 (0.3 F1 localisation + 0.7 harmonic mean of damage F1)"}, {"images", std::to_string(s.images)},
                          {"score", fixed(s.score)}, {"localisation F1", fixed(s.localization_f1)}, {"damage F1", fixed(s.damage_f1)}};
        report.table_header = {"damage level", "TP", "FN", "FP", "precision", "recall", "F1"};
        for (size_t k = 0; k < 4; ++k) {
            const Xview2Counts& c = s.damage[k];
            report.table_rows.push_back({std::to_string(k + 1) + " " + levels[k], std::to_string(c.true_positive), std::to_string(c.false_negative),
                                         std::to_string(c.false_positive), fixed(c.precision()), fixed(c.recall()), fixed(c.f1())});
        }
        write_html_report(report, o.report, o.overwrite);
    }
    if (context.common.json) {
        nlohmann::json damage = nlohmann::json::array();
        for (size_t k = 0; k < 4; ++k) {
            nlohmann::json row = counts(s.damage[k]);
            row["level"] = k + 1;
            row["name"] = levels[k];
            damage.push_back(row);
        }
        print_json({{"mode", "xview2"}, {"score", s.score}, {"localization_f1", s.localization_f1}, {"damage_f1", s.damage_f1},
                    {"images", s.images}, {"localization", counts(s.localization)}, {"damage", damage}});
    } else {
        std::cout << "xview2 score " << fixed(s.score) << " (0.3 x localisation F1 " << fixed(s.localization_f1) << " + 0.7 x damage F1 "
                  << fixed(s.damage_f1) << ", " << s.images << " images)\n";
        for (size_t k = 0; k < 4; ++k) {
            std::cout << "  damage " << k + 1 << " " << std::left << std::setw(14) << levels[k] << "F1 " << fixed(s.damage[k].f1())
                      << "  precision " << fixed(s.damage[k].precision()) << "  recall " << fixed(s.damage[k].recall()) << "\n";
        }
    }
    return 0;
}

}  // namespace

void register_eval_command(CLI::App& app, CommandContext& context) {
    auto o = std::make_shared<Options>();
    CLI::App* sub = app.add_subcommand("eval", "Score predictions against ground truth: pixels, objects, scenes, Tianchi, xView2");
    sub->add_option("PREDICTION", o->prediction, "Class raster, footprint polygons (file, folder or SpaceNet CSV), scene CSV or Tianchi CSV")
        ->required();
    sub->add_option("TRUTH", o->truth, "Ground truth of the same kind (a raster may be scored against polygons; scenes: CSV or class folders)")
        ->required();
    sub->add_option("--mode", o->mode, "pixel, objects, scene, tianchi or xview2 (default: from the inputs)")->capture_default_str();
    sub->add_flag("--tianchi", o->tianchi, "The Tianchi contest score: mean per-image Dice of two RLE CSVs");
    sub->add_flag("--xview2", o->xview2,
                  "The xView2 contest score of a folder of predictions against a folder of targets (found by name when not given)");
    sub->add_option("--size", o->size, "Tianchi: image size WIDTHxHEIGHT")->capture_default_str();
    sub->add_option("--classes", o->classes, "Pixel: number of classes (default: largest value + 1)")->check(CLI::Range(1, 256));
    sub->add_option("--ignore", o->ignore, "Pixel: a value whose pixels are not scored, in either raster (after mapping), e.g. 255")->check(CLI::Range(0, 255));
    sub->add_option("--truth-map", o->truth_map, "Pixel: remap truth values, e.g. 255=1 for 0/255 masks");
    sub->add_option("--prediction-map", o->prediction_map, "Pixel: remap predicted values, e.g. 255=1");
    sub->add_option("--truth-class-field", o->truth_class_field,
                    "Ground-truth polygons: attribute with the class (pixel: integer value; objects: class-aware matching)");
    sub->add_option("--class-field", o->class_field, "Objects: prediction attribute for class-aware matching");
    sub->add_option("--confidence-field", o->confidence_field, "Objects: prediction attribute ordering proposals (default: confidence)");
    sub->add_option("--iou", o->iou, "Objects: a match needs IoU strictly greater than this (SpaceNet/solaris)")->capture_default_str()->check(finite_range(0.0, 1.0));
    sub->add_option("--min-area", o->min_area, "Objects: drop smaller polygons (px² for pixel coordinates, default 20; m² otherwise, default 0)")->check(finite_range(0.0, 1e12));
    sub->add_flag("--pixel-coordinates", o->pixel_coordinates,
                  "Objects, and pixel mode's truth polygons: the polygons are pixel coordinates whatever CRS the files name "
                  "(GeoJSON without a crs names WGS84)");
    sub->add_option("--id-column", o->id_column, "Scenes: item id column (default: image, name, file, path, id or window_id)");
    sub->add_option("--class-column", o->class_column, "Scenes: class column (default: class, label, prediction or predicted)");
    sub->add_option("--report", o->report, "Also write an HTML report with the confusion matrix drawn");
    sub->add_flag("--overwrite", o->overwrite, "Replace an existing report");
    add_common_options(*sub, context.common);
    sub->footer(
        "Examples:\n"
        "  rsi eval buildings.tif ../shared/data/inria/test/gt/austin1_2.tif --truth-map 255=1 --ignore 255 --json\n"
        "  rsi eval mask.tif truth_buildings.geojson --report report.html\n"
        "  rsi eval preds/ gt/ --class-field class --truth-class-field make      (object F1, class-aware)\n"
        "  rsi eval proposals.csv truth.csv                                      (SpaceNet CSVs)\n"
        "  rsi eval predicted.csv ../shared/data/eurosat --class-column class    (scene labels from folders)\n"
        "  rsi eval --tianchi submission.csv truth.csv\n"
        "  rsi eval predictions/ targets/                     (xView2: test_localization_<id>_target.png ...)");
    context.on_run(sub, [o, &context] {
        const std::string mode = detect_mode(*o);
        if (!o->report.empty()) {
            check_distinct_outputs({o->report}, {o->prediction, o->truth});  // --report over an input replaced it
            check_report_not_in_input_folders(o->report, {o->prediction, o->truth});
            check_output_file(o->report, o->overwrite);                     // before the work, not after
        }
        if (mode == "pixel") return run_pixel(*o, context);
        if (mode == "objects") return run_objects(*o, context);
        if (mode == "scene") return run_scene(*o, context);
        if (mode == "xview2") return run_xview2(*o, context);
        return run_tianchi(*o, context);
    });
}

}  // namespace rsi::cli
