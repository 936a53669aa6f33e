#include "src/scene_map.hpp"

#include <chrono>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <map>
#include <numeric>
#include <ogrsf_frmts.h>
#include <opencv2/imgproc.hpp>
#include <sstream>
#include <thread>

#include "src/band_mapping.hpp"
#include "src/output_file.hpp"
#include "src/raster_writer.hpp"
#include "src/tta_inference.hpp"
#include "tiling/bounded_queue.hpp"
#include "tiling/first_error.hpp"
#include "tiling/error.hpp"
#include "tiling/ground_distance.hpp"
#include "tiling/tile_reader.hpp"

namespace fs = std::filesystem;

namespace rsi {

ClassRollup roll_up_classes(const models::ModelMetadata& m, int level) {
    ClassRollup r;
    const int levels = static_cast<int>(m.levels.size());
    if (level < 0 || (levels == 0 && level > 1) || level > std::max(levels, 1)) {
        throw usage_error("--level " + std::to_string(level) + ": model " + m.name + " has " +
                          (levels ? std::to_string(levels) + " hierarchy levels" : std::string("no class hierarchy")));
    }
    if (level == 0 || level == levels || levels == 0) {
        r.classes = m.classes;
        r.group_of_leaf.resize(m.classes.size());
        std::iota(r.group_of_leaf.begin(), r.group_of_leaf.end(), 0);
        return r;
    }
    std::map<std::string, int> index;
    for (const auto& leaf : m.classes) {
        const std::string& parent = leaf.parents[static_cast<size_t>(level - 1)];
        auto it = index.find(parent);
        if (it == index.end()) {
            it = index.emplace(parent, static_cast<int>(r.classes.size())).first;
            models::ClassInfo group;
            group.id = it->second;
            group.name = parent;
            group.color = leaf.color;  // the first child's colour stands for the group
            group.parents.assign(leaf.parents.begin(), leaf.parents.begin() + (level - 1));
            r.classes.push_back(group);
        }
        r.group_of_leaf.push_back(it->second);
    }
    return r;
}

namespace {

constexpr uint8_t kNodataClass = 255;

struct Window {
    Tile tile;
    bool skipped = true;
};

struct SceneBatch {
    std::vector<Window> windows;
    std::vector<float> input;   // B x C x S x S
    std::vector<float> output;  // B x K (leaf probabilities)
    bool run = false;
};

class CsvWriter {
public:
    CsvWriter(const std::string& path, int top_k) : pending_(path), out_(pending_.temporary_path()), top_k_(top_k) {
        out_ << "window_id,row,col,x,y,width,height,center_x,center_y,class,score";
        for (int k = 1; k <= top_k; ++k) out_ << ",class_" << k << ",score_" << k;
        out_ << "\n" << std::setprecision(10);
    }
    void row(const std::string& line) { out_ << line << "\n"; }
    void finish(const std::string& path) {
        out_.flush();
        if (!out_) throw Error(path + ": writing the CSV failed");
        out_.close();
        pending_.commit();
    }

private:
    PendingOutput pending_;
    std::ofstream out_;
    int top_k_;
};

// One polygon per lattice cell, written inside transactions; GeoJSON goes to WGS84 (RFC 7946).
class GridLayerWriter {
public:
    GridLayerWriter(const std::string& path, const RasterInfo& info, int top_k) : path_(path), pending_(path) {
        const std::string ext = fs::path(path).extension().string();
        std::string driver_name;
        if (ext == ".gpkg") driver_name = "GPKG";
        else if (ext == ".geojson" || ext == ".json") driver_name = "GeoJSON";
        else if (ext == ".fgb") driver_name = "FlatGeobuf";
        else throw usage_error("--vector: unsupported extension '" + ext + "' (expected .gpkg, .geojson or .fgb)");
        GDALDriver* driver = GetGDALDriverManager()->GetDriverByName(driver_name.c_str());
        if (!driver) throw Error("GDAL has no " + driver_name + " driver");
        CPLErrorReset();
        dataset_.reset(driver->Create(pending_.temporary_path().c_str(), 0, 0, 0, GDT_Unknown, nullptr));
        if (!dataset_) throw Error(path + ": cannot create: " + last_gdal_error());
        OGRSpatialReference source;
        const bool has_srs = !info.crs_wkt.empty() && source.importFromWkt(info.crs_wkt.c_str()) == OGRERR_NONE;
        source.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
        OGRSpatialReference target;
        OGRSpatialReference* layer_srs = has_srs ? &source : nullptr;
        CPLStringList layer_options;
        if (driver_name == "GeoJSON" && has_srs) {
            target.importFromEPSG(4326);
            target.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
            transform_.reset(OGRCreateCoordinateTransformation(&source, &target));
            layer_srs = &target;
            layer_options.SetNameValue("RFC7946", "YES");
        }
        layer_ = dataset_->CreateLayer("scene_grid", layer_srs, wkbPolygon, layer_options.List());
        if (!layer_) throw Error(path + ": cannot create the layer: " + last_gdal_error());
        for (const char* name : {"window_id", "class"}) {
            OGRFieldDefn f(name, OFTString);
            layer_->CreateField(&f);
        }
        for (const char* name : {"row", "col", "x", "y", "width", "height"}) {
            OGRFieldDefn f(name, OFTInteger64);
            layer_->CreateField(&f);
        }
        OGRFieldDefn score("score", OFTReal);
        layer_->CreateField(&score);
        for (int k = 1; k <= top_k; ++k) {
            OGRFieldDefn c(("class_" + std::to_string(k)).c_str(), OFTString), s(("score_" + std::to_string(k)).c_str(), OFTReal);
            layer_->CreateField(&c);
            layer_->CreateField(&s);
        }
        dataset_->StartTransaction();
    }

    OGRFeature make() const { return OGRFeature(layer_->GetLayerDefn()); }

    void add(OGRFeature& feature, OGRPolygon polygon) {
        if (transform_) polygon.transform(transform_.get());
        feature.SetGeometry(&polygon);
        if (layer_->CreateFeature(&feature) != OGRERR_NONE) throw Error(path_ + ": writing a feature failed: " + last_gdal_error());
        if (++in_transaction_ == 10000) {
            dataset_->CommitTransaction();
            dataset_->StartTransaction();
            in_transaction_ = 0;
        }
    }

    void finish() {
        dataset_->CommitTransaction();
        close_written(std::move(dataset_), path_);
        pending_.commit();
    }

private:
    std::string path_;
    PendingOutput pending_;
    DatasetPtr dataset_;
    OGRLayer* layer_ = nullptr;
    std::unique_ptr<OGRCoordinateTransformation> transform_;
    int in_transaction_ = 0;
};

}  // namespace

SceneResult map_scenes(const models::Model& model, const SceneOptions& options, const ProgressFn& progress) {
    const auto start = std::chrono::steady_clock::now();
    const models::ModelMetadata& meta = model.metadata();
    const std::string command = "scene";
    if (meta.task != models::Task::scene) {
        throw usage_error(command + ": model " + meta.name + " is a " + models::to_string(meta.task) +
                          " model, not a scene model");
    }
    if (options.edge == EdgePolicy::shift) {
        throw usage_error(command + ": --edge shift would break the regular lattice of the scene map; use constant or reflect");
    }
    for (const std::string* out : {&options.output, &options.probabilities, &options.dense, &options.csv, &options.vector}) {
        if (!out->empty()) check_output_path(*out, options.overwrite);
    }
    if (options.max_nodata < 0 || options.max_nodata > 1) throw usage_error("--max-nodata must be in [0, 1]");
    const ClassRollup rollup = roll_up_classes(meta, options.level);

    report_progress(progress, 0.0, "planning");
    const RasterSource source = RasterSource::open(options.input);
    const RasterInfo& info = source.info();
    const BandMapping mapping = map_bands(source, meta, options.bands, command, options.strict, options.resample);
    SceneResult result;
    result.warnings = mapping.warnings;

    // Window and stride in model pixels, then in image pixels (GSD matching rounds to whole pixels).
    const int64_t S = options.window > 0 ? options.window : meta.tile_size;
    const int64_t stride_model = options.stride > 0 ? options.stride : S;
    if (stride_model > S) throw usage_error("--stride " + std::to_string(stride_model) + " is larger than the window " + std::to_string(S) + ": windows would leave gaps");
    double scale = 1;
    const auto ground = ground_pixel_size(info);
    if (options.resample && ground) scale = meta.gsd_m / ((ground->x_m + ground->y_m) / 2);
    const int64_t window_px = std::max<int64_t>(1, std::llround(static_cast<double>(S) * scale));
    const int64_t stride_px = std::max<int64_t>(1, std::llround(static_cast<double>(stride_model) * scale));
    if (window_px > info.width || window_px > info.height) {
        throw usage_error(command + ": the window (" + std::to_string(window_px) + " image pixels) is larger than the image (" +
                          std::to_string(info.width) + "x" + std::to_string(info.height) + ")");
    }
    GridSpec spec;
    spec.tile_width = spec.tile_height = window_px;
    spec.overlap = window_px - std::min(stride_px, window_px);
    spec.edge = options.edge;
    const TileGrid grid(info.width, info.height, spec);
    result.windows = grid.count();
    result.rows = grid.rows();
    result.cols = grid.cols();
    result.window_pixels = window_px;
    result.stride_pixels = grid.stride_x();
    result.scale = scale;
    const int64_t C = meta.bands, K = static_cast<int64_t>(meta.classes.size());
    const int64_t G = static_cast<int64_t>(rollup.classes.size());
    const int64_t B = options.batch > 0 ? options.batch
                                        : std::clamp<int64_t>(model.batch_size_for(options.memory_budget_mb * 1024 * 1024 / 2, S, S), 1, 256);
    result.batch = B;

    // Lattice georeferencing: pixel (r, c) is centred on window (r, c).
    const double offset = static_cast<double>(window_px - grid.stride_x()) / 2.0;
    RasterWriterOptions lattice;
    lattice.path = options.output;
    lattice.width = grid.cols();
    lattice.height = grid.rows();
    lattice.format = options.format;
    lattice.creation_options = options.creation_options;
    lattice.nodata = kNodataClass;
    lattice.band_descriptions = {"class"};
    georeference_like(lattice, info, offset, offset, static_cast<double>(grid.stride_x()));
    RasterWriter class_writer(lattice);
    class_writer.set_classes(rollup.classes);
    std::unique_ptr<RasterWriter> prob_writer;
    if (!options.probabilities.empty()) {
        RasterWriterOptions p = lattice;
        p.path = options.probabilities;
        p.bands = static_cast<int>(G + 1);
        p.type = GDT_Float32;
        p.nodata = -1.0;
        p.band_descriptions.clear();
        for (const auto& c : rollup.classes) p.band_descriptions.push_back("p_" + c.name);
        p.band_descriptions.push_back("entropy");
        prob_writer = std::make_unique<RasterWriter>(p);
    }
    std::unique_ptr<CsvWriter> csv;
    if (!options.csv.empty()) csv = std::make_unique<CsvWriter>(options.csv, options.top_k);
    std::unique_ptr<GridLayerWriter> grid_layer;
    if (!options.vector.empty()) grid_layer = std::make_unique<GridLayerWriter>(options.vector, info, options.top_k);

    double cell_km2 = 0;
    if (ground) cell_km2 = ground->x_m * ground->y_m * static_cast<double>(grid.stride_x() * grid.stride_x()) / 1e6;
    if (ground) result.km2 = ground->x_m * ground->y_m * static_cast<double>(info.width * info.height) / 1e6;
    result.classes.resize(static_cast<size_t>(G));
    for (int64_t g = 0; g < G; ++g) result.classes[static_cast<size_t>(g)].name = rollup.classes[static_cast<size_t>(g)].name;

    EdgeFill edge;
    edge.mode = options.edge == EdgePolicy::reflect ? EdgeFill::Mode::reflect : EdgeFill::Mode::constant;
    BoundedQueue<SceneBatch> to_model(2), to_writer(2);
    FirstError failure;

    std::thread reader([&] {
        try {
            const RasterSource own = source.reopen();
            TileReader tiles(own, grid, mapping.source_bands, GDT_Float32, edge, true, options.memory_budget_mb * 1024 * 1024 / 4);
            std::vector<float> raw(static_cast<size_t>(C * window_px * window_px));
            std::vector<uint8_t> valid(static_cast<size_t>(window_px * window_px));
            std::vector<float> resized(static_cast<size_t>(C * S * S));
            const int64_t batches = (grid.count() + B - 1) / B;
            for (int64_t k = 0; k < batches; ++k) {
                SceneBatch batch;
                batch.input.assign(static_cast<size_t>(B * C * S * S), 0.0f);
                for (int64_t i = k * B; i < std::min((k + 1) * B, grid.count()); ++i) {
                    Window w{grid.at(i), true};
                    tiles.read(w.tile, raw.data(), valid.data());
                    mask_non_finite(raw.data(), static_cast<int>(C), window_px * window_px, valid.data());
                    const auto count = std::count_if(valid.begin(), valid.end(), [](uint8_t v) { return v != 0; });
                    const double nodata = 1.0 - static_cast<double>(count) / static_cast<double>(valid.size());
                    w.skipped = nodata > options.max_nodata || count == 0;
                    if (!w.skipped) {
                        float* slot = batch.input.data() + (i - k * B) * C * S * S;
                        const bool all_valid = count == static_cast<int64_t>(valid.size());
                        if (all_valid && window_px != S && !mapping.normalizer.clamp) {
                            // Area averaging and the affine normalisation commute: shrink first,
                            // then normalise the model-sized window (a quarter of the work or less).
                            for (int64_t c = 0; c < C; ++c) {
                                const cv::Mat src(static_cast<int>(window_px), static_cast<int>(window_px), CV_32F,
                                                  raw.data() + c * window_px * window_px);
                                cv::Mat dst(static_cast<int>(S), static_cast<int>(S), CV_32F, slot + c * S * S);
                                cv::resize(src, dst, dst.size(), 0, 0, window_px > S ? cv::INTER_AREA : cv::INTER_LINEAR);
                            }
                            mapping.normalizer.apply(slot, static_cast<size_t>(C), S * S);
                            batch.run = true;
                            batch.windows.push_back(w);
                            continue;
                        }
                        mapping.normalizer.apply(raw.data(), static_cast<size_t>(C), window_px * window_px);
                        for (int64_t p = 0; p < window_px * window_px; ++p) {
                            if (!valid[static_cast<size_t>(p)] && options.edge != EdgePolicy::reflect) {
                                for (int64_t c = 0; c < C; ++c) raw[static_cast<size_t>(c * window_px * window_px + p)] = 0.0f;
                            }
                        }
                        if (window_px == S) {
                            std::copy(raw.begin(), raw.end(), slot);
                        } else {
                            for (int64_t c = 0; c < C; ++c) {
                                const cv::Mat src(static_cast<int>(window_px), static_cast<int>(window_px), CV_32F,
                                                  raw.data() + c * window_px * window_px);
                                cv::Mat dst(static_cast<int>(S), static_cast<int>(S), CV_32F, slot + c * S * S);
                                cv::resize(src, dst, dst.size(), 0, 0, window_px > S ? cv::INTER_AREA : cv::INTER_LINEAR);
                            }
                        }
                        batch.run = true;
                    }
                    batch.windows.push_back(w);
                }
                if (!to_model.push(std::move(batch))) return;
            }
        } catch (...) {
            failure.record(std::current_exception());
        }
        to_model.close();
    });
    std::thread runner([&] {
        try {
            while (auto batch = to_model.pop()) {
                if (batch->run) {
                    run_with_tta(model, options.tta, {B, C, S, S}, batch->input, batch->output);
                }
                batch->input = {};
                if (!to_writer.push(std::move(*batch))) return;
            }
        } catch (...) {
            failure.record(std::current_exception());
        }
        to_writer.close();
    });
    auto stop_workers = [&] {
        to_model.close();
        to_writer.close();
        if (reader.joinable()) reader.join();
        if (runner.joinable()) runner.join();
    };

    try {
        std::vector<uint8_t> class_row(static_cast<size_t>(grid.cols()), kNodataClass);
        std::vector<float> prob_row(static_cast<size_t>((G + 1) * grid.cols()), -1.0f);
        std::vector<float> grouped(static_cast<size_t>(G));
        const auto& g = info.geotransform;
        int64_t done = 0;
        while (auto batch = to_writer.pop()) {
            for (size_t i = 0; i < batch->windows.size(); ++i) {
                const Window& w = batch->windows[i];
                const Tile& t = w.tile;
                if (w.skipped) {
                    ++result.windows_skipped;
                    class_row[static_cast<size_t>(t.col)] = kNodataClass;
                    for (int64_t b = 0; b <= G; ++b) prob_row[static_cast<size_t>(b * grid.cols() + t.col)] = -1.0f;
                } else {
                    ++result.windows_run;
                    std::fill(grouped.begin(), grouped.end(), 0.0f);
                    const int64_t slot = t.index % B;
                    for (int64_t c = 0; c < K; ++c) {
                        grouped[static_cast<size_t>(rollup.group_of_leaf[static_cast<size_t>(c)])] += batch->output[static_cast<size_t>(slot * K + c)];
                    }
                    std::vector<int64_t> order(static_cast<size_t>(G));
                    std::iota(order.begin(), order.end(), 0);
                    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return grouped[static_cast<size_t>(a)] > grouped[static_cast<size_t>(b)]; });
                    const int64_t best = order[0];
                    class_row[static_cast<size_t>(t.col)] = static_cast<uint8_t>(best);
                    auto& summary = result.classes[static_cast<size_t>(best)];
                    ++summary.windows;
                    summary.area_km2 += cell_km2;
                    double entropy = 0;
                    for (int64_t c = 0; c < G; ++c) {
                        const double q = grouped[static_cast<size_t>(c)];
                        prob_row[static_cast<size_t>(c * grid.cols() + t.col)] = static_cast<float>(q);
                        if (q > 0) entropy -= q * std::log(q);
                    }
                    prob_row[static_cast<size_t>(G * grid.cols() + t.col)] = G > 1 ? static_cast<float>(entropy / std::log(static_cast<double>(G))) : 0.0f;
                    // The window's centre in the image CRS.
                    const double px = static_cast<double>(t.window.x) + static_cast<double>(t.window.width) / 2;
                    const double py = static_cast<double>(t.window.y) + static_cast<double>(t.window.height) / 2;
                    const double cx = g[0] + px * g[1] + py * g[2], cy = g[3] + px * g[4] + py * g[5];
                    const int top = static_cast<int>(std::min<int64_t>(options.top_k, G));
                    if (csv) {
                        std::ostringstream line;
                        line << std::setprecision(10) << t.id() << ',' << t.row << ',' << t.col << ',' << t.window.x << ','
                             << t.window.y << ',' << t.window.width << ',' << t.window.height << ',' << cx << ',' << cy << ','
                             << rollup.classes[static_cast<size_t>(best)].name << ',' << std::setprecision(6) << grouped[static_cast<size_t>(best)];
                        for (int k = 0; k < options.top_k; ++k) {
                            if (k < top) line << ',' << rollup.classes[static_cast<size_t>(order[static_cast<size_t>(k)])].name << ',' << grouped[static_cast<size_t>(order[static_cast<size_t>(k)])];
                            else line << ",,";
                        }
                        csv->row(line.str());
                    }
                    if (grid_layer) {
                        OGRFeature f = grid_layer->make();
                        f.SetField("window_id", t.id().c_str());
                        f.SetField("class", rollup.classes[static_cast<size_t>(best)].name.c_str());
                        f.SetField("row", static_cast<GIntBig>(t.row));
                        f.SetField("col", static_cast<GIntBig>(t.col));
                        f.SetField("x", static_cast<GIntBig>(t.window.x));
                        f.SetField("y", static_cast<GIntBig>(t.window.y));
                        f.SetField("width", static_cast<GIntBig>(t.window.width));
                        f.SetField("height", static_cast<GIntBig>(t.window.height));
                        f.SetField("score", grouped[static_cast<size_t>(best)]);
                        for (int k = 0; k < top; ++k) {
                            f.SetField(("class_" + std::to_string(k + 1)).c_str(), rollup.classes[static_cast<size_t>(order[static_cast<size_t>(k)])].name.c_str());
                            f.SetField(("score_" + std::to_string(k + 1)).c_str(), grouped[static_cast<size_t>(order[static_cast<size_t>(k)])]);
                        }
                        // The lattice cell: stride x stride image pixels centred on the window.
                        const double half = static_cast<double>(grid.stride_x()) / 2;
                        OGRLinearRing ring;
                        for (const auto& [dx, dy] : {std::pair{-half, -half}, std::pair{half, -half}, std::pair{half, half}, std::pair{-half, half}, std::pair{-half, -half}}) {
                            ring.addPoint(g[0] + (px + dx) * g[1] + (py + dy) * g[2], g[3] + (px + dx) * g[4] + (py + dy) * g[5]);
                        }
                        OGRPolygon polygon;
                        polygon.addRing(&ring);
                        grid_layer->add(f, polygon);
                    }
                }
                if (t.col == grid.cols() - 1) {
                    class_writer.append_rows(t.row, 1, class_row.data());
                    if (prob_writer) prob_writer->append_rows(t.row, 1, prob_row.data());
                }
                report_progress(progress, static_cast<double>(++done) / static_cast<double>(grid.count()), "windows");
            }
        }
        stop_workers();
        failure.rethrow_if_any();
        if (done != grid.count()) throw Error(command + ": the pipeline stopped early");
        class_writer.finish();
        if (prob_writer) prob_writer->finish();
        if (csv) csv->finish(options.csv);
        if (grid_layer) grid_layer->finish();
    } catch (...) {
        stop_workers();
        failure.rethrow_if_any();
        throw;
    }

    // Dense map: every image pixel takes the class of the lattice cell that contains it.
    if (!options.dense.empty()) {
        report_progress(progress, 1.0, "dense map");
        const RasterSource classes = RasterSource::open(options.output);
        RasterWriterOptions d;
        d.path = options.dense;
        d.width = info.width;
        d.height = info.height;
        d.format = options.format;
        d.creation_options = options.creation_options;
        d.nodata = kNodataClass;
        d.band_descriptions = {"class"};
        georeference_like(d, info);
        RasterWriter dense(d);
        dense.set_classes(rollup.classes);
        std::vector<float> lattice_row;
        std::vector<uint8_t> row(static_cast<size_t>(info.width));
        int64_t cached = -1;
        for (int64_t y = 0; y < info.height; ++y) {
            const int64_t r = std::clamp<int64_t>(static_cast<int64_t>(std::floor((static_cast<double>(y) + 0.5 - offset) / static_cast<double>(grid.stride_x()))), 0, grid.rows() - 1);
            if (r != cached) {
                lattice_row = classes.read_float({0, r, grid.cols(), 1}, {1});
                cached = r;
            }
            for (int64_t x = 0; x < info.width; ++x) {
                const int64_t c = std::clamp<int64_t>(static_cast<int64_t>(std::floor((static_cast<double>(x) + 0.5 - offset) / static_cast<double>(grid.stride_x()))), 0, grid.cols() - 1);
                row[static_cast<size_t>(x)] = static_cast<uint8_t>(lattice_row[static_cast<size_t>(c)]);
            }
            dense.append_rows(y, 1, row.data());
        }
        dense.finish();
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

}  // namespace rsi
