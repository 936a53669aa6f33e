#include "src/object_evaluation.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <set>
#include <sstream>

#include <gdal_priv.h>
#include <ogr_api.h>
#include <ogrsf_frmts.h>

#include "src/submission_csv.hpp"
#include "tiling/error.hpp"
#include "tiling/gdal_dataset.hpp"

namespace fs = std::filesystem;

namespace rsi {

double ObjectCounts::precision() const {
    const int64_t n = true_positive + false_positive;
    return n > 0 ? static_cast<double>(true_positive) / static_cast<double>(n) : 0.0;
}
double ObjectCounts::recall() const {
    const int64_t n = true_positive + false_negative;
    return n > 0 ? static_cast<double>(true_positive) / static_cast<double>(n) : 0.0;
}
double ObjectCounts::f1() const {
    const double p = precision(), r = recall();
    return p * r > 0 ? 2 * p * r / (p + r) : 0.0;
}
ObjectCounts& ObjectCounts::operator+=(const ObjectCounts& o) {
    true_positive += o.true_positive;
    false_positive += o.false_positive;
    false_negative += o.false_negative;
    return *this;
}

namespace {

double area_of(const OGRGeometry& g) { return OGR_G_Area(OGRGeometry::ToHandle(const_cast<OGRGeometry*>(&g))); }

}  // namespace

double polygon_iou(const OGRGeometry& a, const OGRGeometry& b) {
    if (a.IsEmpty() || b.IsEmpty()) return 0.0;
    OGREnvelope ea, eb;
    a.getEnvelope(&ea);
    b.getEnvelope(&eb);
    if (!ea.Intersects(eb)) return 0.0;
    std::unique_ptr<OGRGeometry> intersection(a.Intersection(&b));
    if (!intersection) return 0.0;
    const double inter = area_of(*intersection);
    if (inter <= 0) return 0.0;
    std::unique_ptr<OGRGeometry> united(a.Union(&b));
    const double uni = united ? area_of(*united) : 0.0;
    return uni > 0 ? inter / uni : 0.0;
}

ObjectCounts match_objects(const std::vector<ObjectPolygon>& truth, const std::vector<ObjectPolygon>& proposals,
                           double iou_threshold, double min_area) {
    struct Candidate {
        const OGRGeometry* geometry;
        OGREnvelope envelope;
        bool valid;
    };
    std::vector<Candidate> open_truth;
    for (const ObjectPolygon& t : truth) {
        if (!t.geometry || area_of(*t.geometry) < min_area) continue;
        Candidate c{t.geometry.get(), {}, t.geometry->IsValid() != 0};
        t.geometry->getEnvelope(&c.envelope);
        open_truth.push_back(c);
    }
    std::vector<size_t> order;
    for (size_t i = 0; i < proposals.size(); ++i) {
        if (proposals[i].geometry && area_of(*proposals[i].geometry) > min_area) order.push_back(i);
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return proposals[a].confidence > proposals[b].confidence; });
    ObjectCounts counts;
    std::vector<bool> matched(open_truth.size(), false);
    for (size_t i : order) {
        const OGRGeometry* proposal = proposals[i].geometry.get();
        std::unique_ptr<OGRGeometry> repaired;
        if (!proposal->IsValid()) {  // solaris: pred_poly.buffer(0.0) fixes bow-ties and self-intersections
            repaired.reset(proposal->Buffer(0.0));
            if (repaired) proposal = repaired.get();
        }
        OGREnvelope envelope;
        proposal->getEnvelope(&envelope);
        double best = -1;
        size_t best_index = 0;
        for (size_t t = 0; t < open_truth.size(); ++t) {
            if (matched[t] || !envelope.Intersects(open_truth[t].envelope)) continue;
            const double iou = open_truth[t].valid && proposal->IsValid() ? polygon_iou(*proposal, *open_truth[t].geometry) : 0.0;
            if (iou > best) {
                best = iou;
                best_index = t;
            }
        }
        if (best > iou_threshold) {
            ++counts.true_positive;
            matched[best_index] = true;
        } else {
            ++counts.false_positive;
        }
    }
    for (size_t t = 0; t < open_truth.size(); ++t) {
        if (!matched[t] && area_of(*open_truth[t].geometry) > 0) ++counts.false_negative;
    }
    return counts;
}

namespace {

bool is_polygonal(const OGRGeometry& g) {
    const OGRwkbGeometryType t = wkbFlatten(g.getGeometryType());
    return t == wkbPolygon || t == wkbMultiPolygon || t == wkbCurvePolygon || t == wkbMultiSurface;
}

std::string find_field(OGRFeatureDefn& defn, const std::string& wanted, const std::vector<std::string>& defaults) {
    if (!wanted.empty()) return defn.GetFieldIndex(wanted.c_str()) >= 0 ? wanted : std::string();
    for (const std::string& name : defaults) {
        if (defn.GetFieldIndex(name.c_str()) >= 0) return name;
    }
    return {};
}

// The matching frame of one image: the truth's projected CRS, else the UTM zone of its centre.
struct Frame {
    std::unique_ptr<OGRSpatialReference> srs;  // null: no CRS (pixel or unknown units)
    std::string name = "pixel";
};

// A layer's CRS, or null when it has none or only a local one ("Undefined cartesian SRS": the pixel
// coordinates rsi vectorize writes into a GeoPackage for a mask without georeferencing).
// Whether a geographic layer's coordinates cannot be degrees: beyond ±180 of longitude or ±90 of
// latitude (in the layer's data axis order): pixel coordinates in a file that names WGS84.
bool beyond_degrees(OGRLayer& layer, const OGRSpatialReference& srs) {
    if (!srs.IsGeographic()) return false;
    OGREnvelope e;
    if (layer.GetExtent(&e, TRUE) != OGRERR_NONE) return false;
    const std::vector<int> mapping = srs.GetDataAxisToSRSAxisMapping();
    const bool longitude_first = mapping.size() >= 2 ? mapping[0] == 2 : true;  // EPSG:4326 names latitude first
    const double x = std::max(std::abs(e.MinX), std::abs(e.MaxX)), y = std::max(std::abs(e.MinY), std::abs(e.MaxY));
    return longitude_first ? (x > 180 || y > 90) : (x > 90 || y > 180);
}

// The CRS that locates a layer on the globe, or nullptr for pixel coordinates.
const OGRSpatialReference* located_srs(OGRLayer& layer, bool pixel_coordinates) {
    const OGRSpatialReference* srs = layer.GetSpatialRef();
    if (pixel_coordinates || !srs || srs->IsLocal() || beyond_degrees(layer, *srs)) return nullptr;
    return srs;
}

// `truth_srs`, `prediction_srs`: the layers' located_srs.
Frame frame_for(OGRLayer& truth, OGRLayer& prediction, const OGRSpatialReference* truth_srs, const OGRSpatialReference* prediction_srs,
                const std::string& truth_path) {
    Frame frame;
    const OGRSpatialReference* srs = truth_srs ? truth_srs : prediction_srs;
    if (!srs) return frame;
    // A UTM zone's areas are metres squared to within 0.1 %; other projected CRSs can be far off
    // (Web Mercator inflates areas by 1/cos² of the latitude: 4x at 60°, so a --min-area of 100 m²
    // dropped only buildings under 25 m²) or in feet: those are compared in the UTM zone of their centre.
    if (srs->IsProjected() && srs->GetUTMZone(nullptr) != 0) {
        frame.srs = std::make_unique<OGRSpatialReference>(gis_order_srs(*srs));
        const char* code = srs->GetAuthorityCode(nullptr);
        const char* authority = srs->GetAuthorityName(nullptr);
        frame.name = authority && code ? std::string(authority) + ":" + code : std::string(srs->GetName() ? srs->GetName() : "projected");
        return frame;
    }
    OGREnvelope e;
    if (truth.GetExtent(&e, TRUE) != OGRERR_NONE && prediction.GetExtent(&e, TRUE) != OGRERR_NONE) return frame;
    // The extent comes in the layer's data axis order, which the transformation honours.
    OGRSpatialReference wgs84;
    wgs84.SetWellKnownGeogCS("WGS84");
    wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    double lon = (e.MinX + e.MaxX) / 2, lat = (e.MinY + e.MaxY) / 2;
    std::unique_ptr<OGRCoordinateTransformation> to_wgs84(OGRCreateCoordinateTransformation(srs, &wgs84));
    if (!to_wgs84 || !to_wgs84->Transform(1, &lon, &lat)) throw Error(truth_path + ": cannot locate the data on the globe");
    const int zone = std::clamp(static_cast<int>(std::floor((lon + 180.0) / 6.0)) + 1, 1, 60);
    const int epsg = (lat >= 0 ? 32600 : 32700) + zone;
    frame.srs = std::make_unique<OGRSpatialReference>();
    frame.srs->importFromEPSG(epsg);
    frame.srs->SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    frame.name = "EPSG:" + std::to_string(epsg);
    return frame;
}

// `srs`: the layer's located_srs.
std::vector<ObjectPolygon> read_layer(OGRLayer& layer, const OGRSpatialReference* srs, const std::string& path, const Frame& frame,
                                      const std::string& confidence_field, const std::string& class_field) {
    std::unique_ptr<OGRCoordinateTransformation> transform;
    if (frame.srs && srs && !srs->IsSame(frame.srs.get())) {
        // The layer's SRS carries its data axis order (longitude first for GeoJSON), which the
        // transformation honours.
        transform.reset(OGRCreateCoordinateTransformation(srs, frame.srs.get()));
        if (!transform) throw Error(path + ": cannot transform its CRS to " + frame.name);
    } else if (frame.srs && !srs) {
        throw Error(path + ": has no CRS but the other side has one");
    }
    std::vector<ObjectPolygon> out;
    layer.ResetReading();
    for (auto& feature : layer) {
        const OGRGeometry* g = feature->GetGeometryRef();
        if (!g || g->IsEmpty()) continue;
        if (!is_polygonal(*g)) {
            throw Error(path + ": feature " + std::to_string(feature->GetFID()) + " is a " + OGRGeometryTypeToName(g->getGeometryType()) +
                        ", not a polygon");
        }
        ObjectPolygon p;
        p.geometry.reset(g->clone());
        if (transform && p.geometry->transform(transform.get()) != OGRERR_NONE) {
            throw Error(path + ": feature " + std::to_string(feature->GetFID()) + " cannot be transformed to " + frame.name);
        }
        if (!confidence_field.empty()) p.confidence = feature->GetFieldAsDouble(confidence_field.c_str());
        if (!class_field.empty()) p.object_class = feature->GetFieldAsString(class_field.c_str());
        out.push_back(std::move(p));
    }
    return out;
}

std::string lower_extension(const fs::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return ext;
}

bool is_csv(const std::string& path) { return lower_extension(path) == ".csv"; }

bool is_vector_file(const fs::path& p) {
    const std::string ext = lower_extension(p);
    return ext == ".geojson" || ext == ".json" || ext == ".gpkg" || ext == ".shp" || ext == ".fgb" || ext == ".kml" || ext == ".gml";
}

std::map<std::string, std::string> vector_files_by_stem(const std::string& dir) {
    std::map<std::string, std::string> out;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.is_regular_file() && is_vector_file(entry.path())) out[entry.path().stem().string()] = entry.path().string();
    }
    return out;
}

struct ImageInput {
    std::string name;
    std::vector<ObjectPolygon> truth, proposals;
};

void read_spacenet_images(const std::string& path, bool is_truth, std::map<std::string, ImageInput>& images) {
    std::ifstream in(path);
    if (!in) throw Error(path + ": cannot open");
    for (const SpacenetEntry& e : read_spacenet_csv(in, path)) {
        ImageInput& image = images[e.image_id];
        image.name = e.image_id;
        OGRGeometry* raw = nullptr;
        if (OGRGeometryFactory::createFromWkt(e.wkt.c_str(), nullptr, &raw) != OGRERR_NONE || !raw) {
            throw Error(path + ":" + std::to_string(e.line) + ": PolygonWKT_Pix is not valid WKT");
        }
        std::unique_ptr<OGRGeometry> g(raw);
        if (g->IsEmpty()) continue;
        if (!is_polygonal(*g)) throw Error(path + ":" + std::to_string(e.line) + ": PolygonWKT_Pix is not a polygon");
        g->flattenTo2D();
        ObjectPolygon p;
        p.geometry = std::move(g);
        p.confidence = e.confidence;
        (is_truth ? image.truth : image.proposals).push_back(std::move(p));
    }
}

std::string format_threshold(double value) {
    std::ostringstream out;
    out << value;
    return out.str();
}

}  // namespace

bool is_vector_folder(const std::string& path) {
    std::error_code ec;
    if (!fs::is_directory(path, ec)) return false;
    for (const auto& entry : fs::directory_iterator(path, ec)) {
        if (entry.is_regular_file() && is_vector_file(entry.path())) return true;
    }
    return false;
}

ObjectEvaluation evaluate_objects(const ObjectEvaluationOptions& options, const ProgressFn& progress) {
    // Before any input is read.
    if (options.iou_threshold < 0 || options.iou_threshold >= 1) {
        throw usage_error("--iou " + format_threshold(options.iou_threshold) + ": the IoU threshold must be in [0, 1)");
    }
    ObjectEvaluation result;
    std::map<std::string, ImageInput> images;
    const bool csv = is_csv(options.truth);
    if (csv != is_csv(options.prediction)) {
        throw usage_error("eval: compare a SpaceNet CSV with a SpaceNet CSV, or vector files with vector files (" +
                          options.prediction + ", " + options.truth + ")");
    }
    const std::string truth_class_field = options.truth_class_field.empty() ? options.class_field : options.truth_class_field;
    const bool class_aware = !options.class_field.empty();
    bool pixel_frame = true;
    std::set<std::string> frames;
    if (csv) {
        if (class_aware) throw usage_error("eval: SpaceNet CSVs carry no classes; drop --class-field");
        read_spacenet_images(options.truth, true, images);
        read_spacenet_images(options.prediction, false, images);
    } else {
        std::vector<std::pair<std::string, std::string>> pairs;  // prediction, truth (either may be empty)
        std::vector<std::string> names;
        for (const std::string* path : {&options.prediction, &options.truth}) {
            if (!fs::exists(*path) && path->rfind("/vsi", 0) != 0) throw Error(*path + ": no such file or folder");
        }
        const bool truth_dir = fs::is_directory(options.truth), prediction_dir = fs::is_directory(options.prediction);
        if (truth_dir != prediction_dir) throw usage_error("eval: give two folders or two files (" + options.prediction + ", " + options.truth + ")");
        if (truth_dir) {
            const auto truths = vector_files_by_stem(options.truth), predictions = vector_files_by_stem(options.prediction);
            if (truths.empty()) throw Error(options.truth + ": no vector files (.geojson, .gpkg, .shp, .fgb)");
            std::set<std::string> all;
            for (const auto& [k, v] : truths) all.insert(k);
            for (const auto& [k, v] : predictions) all.insert(k);
            for (const std::string& name : all) {
                const auto t = truths.find(name), p = predictions.find(name);
                if (p == predictions.end()) result.warnings.push_back(name + ": no prediction file, its objects count as missed");
                if (t == truths.end()) result.warnings.push_back(name + ": no ground-truth file, its proposals count as false");
                pairs.emplace_back(p == predictions.end() ? "" : p->second, t == truths.end() ? "" : t->second);
                names.push_back(name);
            }
        } else {
            pairs.emplace_back(options.prediction, options.truth);
            names.push_back(fs::path(options.truth).stem().string());
        }
        for (size_t i = 0; i < pairs.size(); ++i) {
            DatasetPtr truth_ds = pairs[i].second.empty() ? nullptr : open_vector(pairs[i].second);
            DatasetPtr prediction_ds = pairs[i].first.empty() ? nullptr : open_vector(pairs[i].first);
            OGRLayer* truth_layer = truth_ds ? truth_ds->GetLayer(0) : prediction_ds->GetLayer(0);
            OGRLayer* prediction_layer = prediction_ds ? prediction_ds->GetLayer(0) : truth_layer;
            // Each layer's CRS decided once (a geographic one is checked against the layer's extent, a pass
            // over its features).
            const auto locate = [&](OGRLayer* layer, const std::string& path) {
                const OGRSpatialReference* located = located_srs(*layer, options.pixel_coordinates);
                const OGRSpatialReference* named = layer->GetSpatialRef();
                if (!located && !options.pixel_coordinates && !path.empty() && named && !named->IsLocal()) {
                    result.warnings.push_back(path + ": names a geographic CRS but its coordinates go beyond ±180 / ±90: taken as "
                                              "pixel coordinates");
                }
                return located;
            };
            const OGRSpatialReference* truth_srs = locate(truth_layer, pairs[i].second);
            const OGRSpatialReference* prediction_srs = prediction_layer == truth_layer ? truth_srs : locate(prediction_layer, pairs[i].first);
            const Frame frame = frame_for(*truth_layer, *prediction_layer, truth_srs, prediction_srs,
                                          truth_ds ? pairs[i].second : pairs[i].first);
            if (frame.srs) pixel_frame = false;
            frames.insert(frame.name);
            ImageInput& image = images[names[i]];
            image.name = names[i];
            if (truth_ds) {
                OGRFeatureDefn& defn = *truth_layer->GetLayerDefn();
                std::string class_field;
                if (class_aware) {
                    class_field = find_field(defn, truth_class_field, {});
                    if (class_field.empty()) throw usage_error(pairs[i].second + ": has no field '" + truth_class_field + "'");
                }
                image.truth = read_layer(*truth_layer, truth_srs, pairs[i].second, frame, "", class_field);
            }
            if (prediction_ds) {
                OGRFeatureDefn& defn = *prediction_layer->GetLayerDefn();
                const std::string confidence = find_field(defn, options.confidence_field, {"confidence", "Confidence", "score"});
                if (!options.confidence_field.empty() && confidence.empty()) {
                    throw usage_error(pairs[i].first + ": has no field '" + options.confidence_field + "'");
                }
                std::string class_field;
                if (class_aware) {
                    class_field = find_field(defn, options.class_field, {});
                    if (class_field.empty()) throw usage_error(pairs[i].first + ": has no field '" + options.class_field + "'");
                }
                image.proposals = read_layer(*prediction_layer, prediction_srs, pairs[i].first, frame, confidence, class_field);
            }
            report_progress(progress, 0.5 * static_cast<double>(i + 1) / static_cast<double>(pairs.size()), "reading");
        }
    }
    result.frame = csv || frames.empty() ? "pixel" : frames.size() == 1 ? *frames.begin() : "UTM zone per image";
    result.min_area = options.min_area ? *options.min_area : (csv || pixel_frame ? 20.0 : 0.0);

    size_t done = 0;
    for (auto& [name, image] : images) {
        ImageObjectScore score;
        score.image = name;
        if (class_aware) {
            std::set<std::string> classes;
            for (const auto& p : image.truth) classes.insert(p.object_class);
            for (const auto& p : image.proposals) classes.insert(p.object_class);
            for (const std::string& c : classes) {
                std::vector<ObjectPolygon> t, p;
                for (const auto& x : image.truth) {
                    if (x.object_class == c) t.push_back({std::unique_ptr<OGRGeometry>(x.geometry->clone()), x.confidence, c});
                }
                for (const auto& x : image.proposals) {
                    if (x.object_class == c) p.push_back({std::unique_ptr<OGRGeometry>(x.geometry->clone()), x.confidence, c});
                }
                const ObjectCounts counts = match_objects(t, p, options.iou_threshold, result.min_area);
                result.classes[c] += counts;
                score.counts += counts;
            }
        } else {
            score.counts = match_objects(image.truth, image.proposals, options.iou_threshold, result.min_area);
        }
        score.truth_objects = score.counts.true_positive + score.counts.false_negative;
        score.proposals = score.counts.true_positive + score.counts.false_positive;
        score.truth_below_min_area = static_cast<int64_t>(image.truth.size()) - score.truth_objects;
        score.proposals_below_min_area = static_cast<int64_t>(image.proposals.size()) - score.proposals;
        result.total += score.counts;
        result.images.push_back(std::move(score));
        report_progress(progress, 0.5 + 0.5 * static_cast<double>(++done) / static_cast<double>(images.size()), "matching");
    }
    if (class_aware && !result.classes.empty()) {
        // Over the classes with something to score: one whose objects all fell below --min-area has no F1.
        double sum = 0;
        int scored = 0;
        for (const auto& [c, counts] : result.classes) {
            if (counts.true_positive + counts.false_positive + counts.false_negative == 0) continue;
            sum += counts.f1();
            ++scored;
        }
        result.mean_class_f1 = scored > 0 ? sum / scored : std::numeric_limits<double>::quiet_NaN();
    }
    return result;
}

}  // namespace rsi
