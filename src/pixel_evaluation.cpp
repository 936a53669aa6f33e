#include "src/pixel_evaluation.hpp"

#include <array>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include <gdal_alg.h>
#include <gdal_priv.h>
#include <ogrsf_frmts.h>

#include "src/submission_csv.hpp"
#include "src/tianchi_rle.hpp"
#include "tiling/error.hpp"
#include "tiling/gdal_dataset.hpp"
#include "tiling/raster_source.hpp"
#include "tiling/warped_vrt.hpp"

namespace rsi {

std::map<int, int> parse_value_map(const std::string& text, const std::string& option) {
    std::map<int, int> out;
    std::stringstream stream(text);
    for (std::string pair; std::getline(stream, pair, ',');) {
        const size_t eq = pair.find('=');
        try {
            if (eq == std::string::npos) throw std::invalid_argument("no =");
            size_t used = 0;
            const int from = std::stoi(pair.substr(0, eq), &used);
            if (used != eq) throw std::invalid_argument("junk");
            const std::string right = pair.substr(eq + 1);
            const int to = std::stoi(right, &used);
            if (used != right.size() || from < 0 || from > 255 || to < 0 || to > 255) throw std::invalid_argument("range");
            if (const auto [at, added] = out.emplace(from, to); !added && at->second != to) {
                // 1=2,1=0: which one was meant? (The last silently won.)
                throw usage_error(option + ": value " + std::to_string(from) + " is mapped twice (to " + std::to_string(at->second) +
                                  " and to " + std::to_string(to) + ")");
            }
        } catch (const Error&) {
            throw;
        } catch (const std::exception&) {
            throw usage_error(option + ": '" + pair + "' is not VALUE=CLASS with values 0..255");
        }
    }
    return out;
}

namespace {

void remap(std::vector<uint8_t>& values, const std::map<int, int>& map) {
    if (map.empty()) return;
    uint8_t table[256];
    for (int v = 0; v < 256; ++v) {
        const auto it = map.find(v);
        table[v] = static_cast<uint8_t>(it == map.end() ? v : it->second);
    }
    for (uint8_t& v : values) v = table[v];
}

// Ground-truth polygons rasterised onto the prediction grid one block of rows at a time. The
// geometries are held (their number is the data's, not the image's size); pixels never are.
class TruthPolygons {
public:
    TruthPolygons(const std::string& path, const RasterInfo& grid, const std::string& class_field, bool pixel_coordinates)
        : grid_(grid), pixel_coordinates_(pixel_coordinates) {
        const DatasetPtr ds = open_vector(path);
        OGRLayer* layer = ds->GetLayer(0);
        bool text_field = false;
        if (!class_field.empty()) {
            const int field = layer->GetLayerDefn()->GetFieldIndex(class_field.c_str());
            if (field < 0) throw usage_error(path + ": has no field '" + class_field + "'");
            const OGRFieldType type = layer->GetLayerDefn()->GetFieldDefn(field)->GetType();
            // A text field of numbers counts too (`rsi vectorize` without class names writes "1", "2")
            text_field = type == OFTString;
            if (type != OFTInteger && type != OFTInteger64 && type != OFTReal && !text_field) {
                throw usage_error(path + ": field '" + class_field + "' is of type " + OGRFieldDefn::GetFieldTypeName(type) +
                                  "; --truth-class-field needs class numbers (an integer field)");
            }
        }
        std::unique_ptr<OGRCoordinateTransformation> transform;
        // A local (engineering) CRS — "Undefined Cartesian SRS", which GeoPackages of pixel-coordinate
        // polygons carry, `rsi vectorize` of a mask without georeferencing among them — locates nothing.
        const OGRSpatialReference* layer_srs = layer->GetSpatialRef();
        const OGRSpatialReference* srs = layer_srs && !layer_srs->IsLocal() && !pixel_coordinates ? layer_srs : nullptr;
        if (srs && !grid.crs_wkt.empty()) {
            target_.importFromWkt(grid.crs_wkt.c_str());
            target_.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
            if (!srs->IsSame(&target_)) {
                transform.reset(OGRCreateCoordinateTransformation(srs, &target_));
                if (!transform) throw Error(path + ": cannot transform its CRS to the prediction's");
            }
        } else if (srs && !grid.has_geotransform) {
            throw Error(path + ": polygons have a CRS but " + grid.path + " is not georeferenced (if their coordinates are pixels, "
                        "give --pixel-coordinates)");
        }
        for (auto& feature : *layer) {
            const OGRGeometry* g = feature->GetGeometryRef();
            if (!g || g->IsEmpty()) continue;
            std::unique_ptr<OGRGeometry> copy(g->clone());
            if (transform && copy->transform(transform.get()) != OGRERR_NONE) {
                throw Error(path + ": feature " + std::to_string(feature->GetFID()) + " cannot be transformed to the prediction's CRS");
            }
            double value = 1;
            if (text_field) {
                const std::string text = feature->GetFieldAsString(class_field.c_str());
                char* end = nullptr;
                value = std::strtod(text.c_str(), &end);
                if (text.empty() || end != text.c_str() + text.size()) {
                    throw usage_error(path + ": feature " + std::to_string(feature->GetFID()) + " has class '" + text + "' in the text field '" +
                                      class_field + "'; --truth-class-field needs class numbers");
                }
            } else if (!class_field.empty()) {
                value = feature->GetFieldAsDouble(class_field.c_str());
            }
            if (!class_field.empty()) {
                if (value < 0 || value > 255 || value != std::floor(value)) {
                    throw Error(path + ": feature " + std::to_string(feature->GetFID()) + " has class " + feature->GetFieldAsString(class_field.c_str()) +
                                ", not a whole number 0..255");
                }
            }
            geometries_.push_back(std::move(copy));
            values_.push_back(value);
            if (value == 0) zero_is_a_polygon_class_ = true;
        }
    }

    // When a polygon carries class 0, a pixel outside every polygon is unlabelled rather than class 0
    // (background): the polygons then label the classes themselves, and what they leave out is unknown.
    bool outside_is_unlabelled() const { return zero_is_a_polygon_class_; }

    // Class values of rows [y, y + rows) into `out` (0 outside every polygon) and, when `covered` is
    // given, 1 inside some polygon and 0 outside.
    void render(int64_t y, int64_t rows, uint8_t* out, uint8_t* covered = nullptr) const {
        const int64_t W = grid_.width;
        std::fill(out, out + rows * W, uint8_t{0});
        if (covered) std::fill(covered, covered + rows * W, uint8_t{0});
        if (geometries_.empty()) return;
        const int band_count = covered ? 2 : 1;
        GDALDriver* mem = GetGDALDriverManager()->GetDriverByName("MEM");
        DatasetPtr block(mem->Create("", static_cast<int>(W), static_cast<int>(rows), band_count, GDT_Byte, nullptr));
        // Pixel-coordinate polygons: columns and rows of the prediction, y down.
        std::array<double, 6> g = pixel_coordinates_ ? std::array<double, 6>{0, 1, 0, static_cast<double>(y), 0, 1}
                                                     : grid_.window_geotransform(0, y);
        block->SetGeoTransform(g.data());
        std::vector<OGRGeometryH> handles;
        for (const auto& geometry : geometries_) handles.push_back(OGRGeometry::ToHandle(geometry.get()));
        std::vector<int> bands{1, 2};
        std::vector<double> burn;  // per geometry, one value per band
        for (const double v : values_) {
            burn.push_back(v);
            if (covered) burn.push_back(1);
        }
        if (GDALRasterizeGeometries(GDALDataset::ToHandle(block.get()), band_count, bands.data(), static_cast<int>(handles.size()),
                                    handles.data(), nullptr, nullptr, burn.data(), nullptr, nullptr, nullptr) != CE_None) {
            throw Error(grid_.path + ": rasterising the ground-truth polygons failed: " + last_gdal_error());
        }
        for (int b = 1; b <= band_count; ++b) {
            if (block->GetRasterBand(b)->RasterIO(GF_Read, 0, 0, static_cast<int>(W), static_cast<int>(rows), b == 1 ? out : covered,
                                                  static_cast<int>(W), static_cast<int>(rows), GDT_Byte, 0, 0) != CE_None) {
                throw Error(grid_.path + ": reading rasterised polygons failed: " + last_gdal_error());
            }
        }
    }

private:
    const RasterInfo& grid_;
    bool pixel_coordinates_ = false;
    OGRSpatialReference target_;
    std::vector<std::unique_ptr<OGRGeometry>> geometries_;
    std::vector<double> values_;
    bool zero_is_a_polygon_class_ = false;
};

}  // namespace

bool is_vector_dataset(const std::string& path) {
    ensure_gdal_registered();
    CPLPushErrorHandler(CPLQuietErrorHandler);
    DatasetPtr raster(GDALDataset::Open(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
    DatasetPtr vector;
    if (!raster) vector.reset(GDALDataset::Open(path.c_str(), GDAL_OF_VECTOR | GDAL_OF_READONLY));
    CPLPopErrorHandler();
    CPLErrorReset();
    return !raster && vector && vector->GetLayerCount() > 0;
}

TianchiScore evaluate_tianchi(const std::string& prediction_csv, const std::string& truth_csv, int64_t width, int64_t height,
                              const ProgressFn& progress) {
    if (width < 1 || height < 1) throw usage_error("eval --tianchi: the image size must be positive");
    auto read = [](const std::string& path) {
        std::ifstream in(path);
        if (!in) throw Error(path + ": cannot open");
        return read_tianchi_csv(in, path);
    };
    const std::vector<TianchiEntry> truth = read(truth_csv), prediction = read(prediction_csv);
    if (truth.empty()) throw Error(truth_csv + ": has no image lines: nothing to score");
    std::map<std::string, const TianchiEntry*> predicted;
    for (const TianchiEntry& e : prediction) predicted[e.name] = &e;
    std::set<std::string> known;
    for (const TianchiEntry& e : truth) known.insert(e.name);
    TianchiScore score;
    for (const TianchiEntry& e : prediction) {
        if (!known.count(e.name)) score.unknown.push_back(e.name);
    }
    if (!prediction.empty() && score.unknown.size() == prediction.size()) {
        // Nothing in common: a wrong file, not a larger submission.
        throw Error(prediction_csv + ": none of its " + std::to_string(prediction.size()) + " images is in " + truth_csv +
                    " (first: '" + prediction.front().name + "')");
    }
    double sum = 0;
    const std::vector<uint8_t> empty(static_cast<size_t>(width * height), 0);
    for (const TianchiEntry& t : truth) {
        const std::vector<uint8_t> a = decode_tianchi_rle(t.rle, width, height, truth_csv + ":" + std::to_string(t.line));
        const auto p = predicted.find(t.name);
        if (p == predicted.end()) {
            score.missing.push_back(t.name);
            sum += tianchi_dice(a.data(), empty.data(), width * height);
        } else {
            const std::vector<uint8_t> b =
                decode_tianchi_rle(p->second->rle, width, height, prediction_csv + ":" + std::to_string(p->second->line));
            sum += tianchi_dice(a.data(), b.data(), width * height);
        }
        ++score.images;
        report_progress(progress, static_cast<double>(score.images) / static_cast<double>(truth.size()), "images");
    }
    score.score = score.images > 0 ? sum / static_cast<double>(score.images) : 0.0;
    return score;
}

namespace {

bool has_raster_extension(const std::filesystem::path& path) {
    std::string ext = path.extension().string();
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const char* known : {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".img", ".vrt"}) {
        if (ext == known) return true;
    }
    return false;
}

// Raster files of a folder by stem; two files with one stem (a.tif, a.png) are ambiguous.
std::map<std::string, std::string> raster_files_by_stem(const std::string& dir) {
    std::map<std::string, std::string> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        if (!entry.is_regular_file() || !has_raster_extension(entry.path())) continue;
        const std::string stem = entry.path().stem().string();
        const auto [it, fresh] = out.emplace(stem, entry.path().string());
        if (!fresh) {
            throw usage_error(dir + ": holds both " + std::filesystem::path(it->second).filename().string() + " and " +
                              entry.path().filename().string() + ": which one is image " + stem + "?");
        }
    }
    if (ec) throw Error(dir + ": cannot list the folder: " + ec.message());
    return out;
}

// `into` grown to `from`'s classes if needed, then `from` added to it.
void pool(ConfusionMatrix& into, const ConfusionMatrix& from) {
    if (from.classes() > into.classes()) {
        ConfusionMatrix grown(from.classes());
        for (int t = 0; t < into.classes(); ++t) {
            for (int p = 0; p < into.classes(); ++p) grown.add_pair(t, p, into.at(t, p));
        }
        into = grown;
    }
    for (int t = 0; t < from.classes(); ++t) {
        for (int p = 0; p < from.classes(); ++p) {
            if (from.at(t, p) != 0) into.add_pair(t, p, from.at(t, p));
        }
    }
}

}  // namespace

bool is_raster_folder(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::is_directory(path, ec)) return false;
    for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
        if (entry.is_regular_file() && has_raster_extension(entry.path())) return true;
    }
    return false;
}

std::string image_region(const std::string& file_name) {
    const std::string stem = std::filesystem::path(file_name).stem().string();
    size_t end = 0;
    while (end < stem.size() && !std::isdigit(static_cast<unsigned char>(stem[end]))) ++end;
    while (end > 0 && (stem[end - 1] == '_' || stem[end - 1] == '-')) --end;
    return end == 0 ? stem : stem.substr(0, end);
}

PixelFolderEvaluation evaluate_pixel_folders(const PixelEvaluationOptions& options, const ProgressFn& progress) {
    for (const std::string* dir : {&options.prediction, &options.truth}) {
        std::error_code ec;
        if (!std::filesystem::is_directory(*dir, ec)) throw usage_error("eval: " + *dir + " is not a folder (give two folders of rasters)");
    }
    const auto truths = raster_files_by_stem(options.truth), predictions = raster_files_by_stem(options.prediction);
    if (truths.empty()) throw Error(options.truth + ": no raster files (.tif, .png, .jpg, ...)");
    std::vector<std::string> missing;
    for (const auto& [stem, path] : truths) {
        if (!predictions.count(stem)) missing.push_back(stem);
    }
    if (!missing.empty()) {
        std::string list;
        for (size_t i = 0; i < missing.size() && i < 5; ++i) list += (i ? ", " : "") + missing[i];
        if (missing.size() > 5) list += ", ...";
        throw Error(options.prediction + ": has no prediction for " + std::to_string(missing.size()) + " of the " +
                    std::to_string(truths.size()) + " images of " + options.truth + " (" + list + ")");
    }
    PixelFolderEvaluation result;
    for (const auto& [stem, path] : predictions) {
        if (!truths.count(stem)) result.unmatched.push_back(std::filesystem::path(path).filename().string());
    }
    if (!result.unmatched.empty()) {
        result.warnings.push_back(std::to_string(result.unmatched.size()) + " prediction" + (result.unmatched.size() == 1 ? "" : "s") +
                                  " without a truth file in " + options.truth + ": not scored (first: " + result.unmatched.front() + ")");
    }
    // Non-zero cells only (a 0/255 mask pair has 4 of a 256x256 matrix), per image and per region:
    // their tables are computed at the end, over the pooled class count, which is known only then.
    using Cells = std::map<std::pair<int, int>, int64_t>;
    std::vector<Cells> image_cells;
    std::map<std::string, std::pair<int64_t, Cells>> regions;  // name -> images, cells
    size_t warnings_dropped = 0;
    constexpr size_t kMaxWarnings = 10;  // per-image warnings (no georeferencing, nodata) of thousands of tiles
    size_t done = 0;
    for (const auto& [stem, truth] : truths) {
        PixelEvaluationOptions one = options;
        one.prediction = predictions.at(stem);
        one.truth = truth;
        const double base = static_cast<double>(done) / static_cast<double>(truths.size());
        const PixelEvaluation r = evaluate_pixels(one, [&](double f, std::string_view what) {
            return !progress || progress(base + f / static_cast<double>(truths.size()), what);
        });
        for (const std::string& w : r.warnings) {
            if (result.warnings.size() < kMaxWarnings) result.warnings.push_back(w);
            else ++warnings_dropped;
        }
        result.unscored_prediction_nodata += r.unscored_prediction_nodata;
        result.unscored_truth_nodata += r.unscored_truth_nodata;
        PixelFolderImage image;
        image.name = std::filesystem::path(truth).filename().string();
        image.prediction = one.prediction;
        image.truth = truth;
        Cells cells;
        for (int t = 0; t < r.matrix.classes(); ++t) {
            for (int p = 0; p < r.matrix.classes(); ++p) {
                if (r.matrix.at(t, p) != 0) cells[{t, p}] = r.matrix.at(t, p);
            }
        }
        auto& region = regions[image_region(image.name)];
        ++region.first;
        for (const auto& [cell, count] : cells) region.second[cell] += count;
        pool(result.matrix, r.matrix);
        image_cells.push_back(std::move(cells));
        result.images.push_back(std::move(image));
        ++done;
    }
    if (warnings_dropped > 0) result.warnings.push_back("... and " + std::to_string(warnings_dropped) + " more warnings of this kind");
    const auto summary_of = [&](const Cells& cells) {
        ConfusionMatrix wide(result.matrix.classes());
        for (const auto& [cell, count] : cells) wide.add_pair(cell.first, cell.second, count);
        const PixelMetrics m = wide.metrics();
        PixelSummary summary{m.pixels, m.overall_accuracy, m.mean_iou, {}};
        for (const ClassMetrics& c : m.classes) summary.iou.push_back(c.iou);
        return summary;
    };
    for (size_t i = 0; i < result.images.size(); ++i) result.images[i].summary = summary_of(image_cells[i]);
    // Regions of one image each (names that start with a digit) would only repeat the image table.
    if (regions.size() < result.images.size()) {
        for (const auto& [name, region] : regions) result.regions.push_back({name, region.first, summary_of(region.second)});
    }
    result.metrics = result.matrix.metrics();
    return result;
}

PixelEvaluation evaluate_pixels(const PixelEvaluationOptions& options, const ProgressFn& progress) {
    const RasterSource prediction = RasterSource::open(options.prediction);
    const RasterInfo& p = prediction.info();
    std::optional<RasterSource> truth_raster;
    std::unique_ptr<TruthPolygons> truth_polygons;
    if (is_vector_dataset(options.truth)) {
        truth_polygons = std::make_unique<TruthPolygons>(options.truth, p, options.truth_class_field, options.pixel_coordinates);
    } else {
        if (!options.truth_class_field.empty()) throw usage_error("eval: --truth-class-field applies to ground-truth polygons only");
        truth_raster = RasterSource::open(options.truth);
    }
    const RasterInfo& t = truth_raster ? truth_raster->info() : p;
    // A class map holds whole numbers; a probability or index raster compared as classes would score
    // rounded values.
    const auto require_integer_classes = [](const RasterInfo& info, const std::string& path) {
        if (GDALDataTypeIsFloating(info.data_type) || GDALDataTypeIsComplex(info.data_type)) {
            throw Error(path + ": is " + GDALGetDataTypeName(info.data_type) + ", not an integer class raster");
        }
    };
    require_integer_classes(p, options.prediction);
    if (truth_raster) require_integer_classes(t, options.truth);
    PixelEvaluation result;
    std::string warped;  // /vsimem VRT of the truth on the prediction's grid, when the grids differ
    const auto same_grid = [&](const RasterInfo& a, const RasterInfo& b) {
        if (a.width != b.width || a.height != b.height) return false;
        if (!a.has_geotransform || !b.has_geotransform) return true;
        for (int i = 0; i < 6; ++i) {
            const double tolerance = 1e-6 * std::max(std::abs(a.geotransform[1]), 1e-12) * (i == 0 || i == 3 ? 1 : 1e-3);
            if (std::abs(a.geotransform[static_cast<size_t>(i)] - b.geotransform[static_cast<size_t>(i)]) > std::max(tolerance, 1e-12)) {
                return false;
            }
        }
        return true;
    };
    if (truth_raster && !same_grid(p, t)) {
        if (!p.georeferenced() || !t.georeferenced()) {
            throw Error(options.prediction + " is " + std::to_string(p.width) + "x" + std::to_string(p.height) + " but " + options.truth +
                        " is " + std::to_string(t.width) + "x" + std::to_string(t.height) +
                        (p.width == t.width && p.height == t.height ? " on another grid" : "") +
                        ": the rasters must share the grid (they are not both georeferenced, so one cannot be warped onto the other)");
        }
        // Warp the truth onto the prediction's grid (nearest neighbour keeps class values) as a VRT:
        // pixels are computed block by block as they are read, never held whole.
        static int counter = 0;
        warped = "/vsimem/rsi-eval-truth-" + std::to_string(counter++) + ".vrt";
        // Pixels the truth does not cover are not scored (they came out as valid class 0: a prediction
        // larger than the truth had all its buildings there counted as false positives).
        warp_to_vrt(options.truth, warped, p, p.width, p.height, "near", nullptr, true, "warping onto the grid of " + options.prediction,
                    int64_t{32} << 20, true);
        truth_raster = RasterSource::open(warped);
        result.warnings.push_back(options.truth + " is on another grid than " + options.prediction +
                                  ": warped onto the prediction's grid (nearest neighbour) for scoring");
    } else if (truth_raster && p.has_geotransform != t.has_geotransform) {
        // Same size, one georeferenced: compared pixel for pixel, which is right for a mask cut from the
        // same image (SpaceNet's, Inria's) and wrong for one from elsewhere; say which was assumed.
        const std::string& plain = p.has_geotransform ? options.truth : options.prediction;
        result.warnings.push_back(plain + " has no georeferencing: compared pixel for pixel (same size), assuming it covers the same ground");
    }
    struct VsimemCleanup {
        std::string path;
        ~VsimemCleanup() {
            if (!path.empty()) VSIUnlink(path.c_str());
        }
    } cleanup{warped};
    const int64_t W = p.width, H = p.height;
    const int64_t rows_per_block = std::max<int64_t>(1, std::min<int64_t>(H, (4 << 20) / std::max<int64_t>(1, W)));
    // A block of both rasters, mapped, with a flag per pixel: scored, or why not. The prediction's
    // nodata (rsi writes 255 where its input had none) and the truth's are not classes.
    enum : uint8_t { scored = 0, prediction_nodata = 1, truth_nodata = 2, outside_polygons = 3 };
    std::vector<uint8_t> a, b, why, validity;
    std::vector<int32_t> wide;  // class values of a raster that is not Byte, checked before narrowing
    // Band 1 of `raster` in `rows` rows from `y` as class values 0..255, and its validity. Reading
    // another integer type as Byte would clamp 256 to 255 and -1 to 0 without a word.
    const auto read_classes = [&](const RasterSource& raster, const std::string& path, int64_t y, int64_t rows, uint8_t* out) {
        const size_t n = static_cast<size_t>(rows * W);
        if (raster.info().data_type == GDT_Byte) {
            raster.read({0, y, W, rows}, {1}, GDT_Byte, out);
            raster.read_validity({0, y, W, rows}, {1}, validity.data());
            return;
        }
        wide.resize(n);
        raster.read({0, y, W, rows}, {1}, GDT_Int32, wide.data());
        raster.read_validity({0, y, W, rows}, {1}, validity.data());
        for (size_t i = 0; i < n; ++i) {
            if (validity[i] && (wide[i] < 0 || wide[i] > 255)) {
                throw Error(path + ": has the value " + std::to_string(wide[i]) + " at pixel (" + std::to_string(i % static_cast<size_t>(W)) +
                            ", " + std::to_string(y + static_cast<int64_t>(i) / W) +
                            "), not a class 0..255 (set it as the band's nodata if it marks no data)");
            }
            out[i] = static_cast<uint8_t>(validity[i] ? wide[i] : 0);
        }
    };
    const auto read_block = [&](int64_t y, int64_t rows) {
        const size_t n = static_cast<size_t>(rows * W);
        a.resize(n);
        b.resize(n);
        why.assign(n, scored);
        validity.resize(n);
        read_classes(prediction, options.prediction, y, rows, b.data());
        for (size_t i = 0; i < n; ++i) {
            if (!validity[i]) why[i] = prediction_nodata;
        }
        if (truth_polygons) {
            const bool coverage = truth_polygons->outside_is_unlabelled();
            truth_polygons->render(y, rows, a.data(), coverage ? validity.data() : nullptr);
            if (coverage) {
                for (size_t i = 0; i < n; ++i) {
                    if (!validity[i] && why[i] == scored) why[i] = outside_polygons;
                }
            }
        } else {
            read_classes(*truth_raster, options.truth, y, rows, a.data());
            for (size_t i = 0; i < n; ++i) {
                if (!validity[i] && why[i] == scored) why[i] = truth_nodata;
            }
        }
        remap(a, options.truth_map);
        remap(b, options.prediction_map);
    };
    // Without --classes the count is the largest class value seen + 1: pairs are counted over all 256
    // values in the one pass and the matrix cut to that count at the end.
    const int classes = options.classes > 0 ? options.classes : 256;
    int largest = 0;
    result.matrix = ConfusionMatrix(classes);
    const auto beyond_classes = [&](int value, const std::string& path, const char* map_option) {
        throw Error(path + ": has the class value " + std::to_string(value) + " (after mapping), outside --classes " +
                    std::to_string(classes) + " (0 to " + std::to_string(classes - 1) + "); map it with " + map_option +
                    ", --ignore it or raise --classes");
    };
    int64_t unscored[4] = {0, 0, 0, 0};
    for (int64_t y = 0; y < H; y += rows_per_block) {
        const int64_t rows = std::min(rows_per_block, H - y);
        read_block(y, rows);
        for (size_t i = 0; i < why.size(); ++i) {
            ++unscored[why[i]];
            if (why[i] != scored) continue;
            // A value beyond --classes would silently drop its pixels from every metric.
            if (a[i] != options.ignore && a[i] >= classes) beyond_classes(a[i], options.truth, "--truth-map");
            if (b[i] != options.ignore && b[i] >= classes) beyond_classes(b[i], options.prediction, "--prediction-map");
            if (a[i] != options.ignore) largest = std::max<int>(largest, a[i]);
            if (b[i] != options.ignore) largest = std::max<int>(largest, b[i]);
            if (a[i] != options.ignore && b[i] != options.ignore) result.matrix.add_pair(a[i], b[i]);
        }
        report_progress(progress, static_cast<double>(y + rows) / static_cast<double>(H), "pixels");
    }
    if (options.classes <= 0) {
        ConfusionMatrix seen(largest + 1);
        for (int t = 0; t <= largest; ++t) {
            for (int p = 0; p <= largest; ++p) {
                if (result.matrix.at(t, p) != 0) seen.add_pair(t, p, result.matrix.at(t, p));
            }
        }
        result.matrix = std::move(seen);
    }
    result.unscored_prediction_nodata = unscored[prediction_nodata];
    result.unscored_truth_nodata = unscored[truth_nodata];
    result.unscored_outside_polygons = unscored[outside_polygons];
    const auto count = [](int64_t n) { return std::to_string(n) + (n == 1 ? " pixel" : " pixels"); };
    if (unscored[prediction_nodata] > 0) {
        result.warnings.push_back(count(unscored[prediction_nodata]) + " of " + options.prediction + " are nodata: not scored");
    }
    if (unscored[truth_nodata] > 0) {
        result.warnings.push_back(count(unscored[truth_nodata]) + " of " + options.truth +
                                  (warped.empty() ? " are nodata" : " are nodata or outside it") + ": not scored");
    }
    if (unscored[outside_polygons] > 0) {
        result.warnings.push_back(count(unscored[outside_polygons]) + " lie outside every polygon of " + options.truth +
                                  ": not scored (a polygon has class 0, so class 0 is not the background)");
    }
    if (!warped.empty() && unscored[truth_nodata] == W * H) {
        throw Error(options.truth + ": does not overlap " + options.prediction + " (no pixel to compare; are they of the same place?)");
    }
    if (result.matrix.total() == 0) {  // name the files (metrics() alone says only "metrics: ...")
        throw Error(options.prediction + " vs " + options.truth + ": no pixel to compare (every pixel is nodata or ignored in one of them)");
    }
    result.metrics = result.matrix.metrics();
    return result;
}

}  // namespace rsi
