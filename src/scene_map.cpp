#include "src/scene_map.hpp"
#include "src/json_text.hpp"

#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <map>
#include <mutex>
#include <numeric>
#include <ogrsf_frmts.h>
#include <sstream>
#include <thread>

#include "models/runtime_info.hpp"
#include "src/area_shrink.hpp"
#include "src/band_mapping.hpp"
#include "src/model_runners.hpp"
#include "src/output_file.hpp"
#include "src/scoped_gdal_config.hpp"
#include "src/raster_writer.hpp"
#include "src/run_manifest.hpp"
#include "src/shard_lock.hpp"
#include "src/tta_inference.hpp"
#include "src/vector_output.hpp"
#include "tiling/bounded_queue.hpp"
#include "tiling/first_error.hpp"
#include "tiling/error.hpp"
#include "tiling/ground_distance.hpp"
#include "tiling/recycle_bin.hpp"
#include "tiling/reorder_buffer.hpp"
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
    int64_t index = 0;  // batch number: runners finish out of order, the writer restores it
    std::vector<Window> windows;
    std::vector<float> input;   // B x C x S x S
    std::vector<float> output;  // B x K (leaf probabilities)
    bool run = false;
};

class CsvWriter {
public:
    CsvWriter(const std::string& path, int top_k, bool overwrite) : pending_(path, overwrite), out_(pending_.temporary_path()) {
        out_ << "window_id,row,col,x,y,width,height,center_x,center_y,class,score";
        for (int k = 1; k <= top_k; ++k) out_ << ",class_" << k << ",score_" << k;
        out_ << "\n" << std::setprecision(10);
    }
    void row(const std::string& line) { out_ << line << "\n"; }
    void close() {
        out_.flush();
        if (!out_) throw Error(pending_.final_path() + ": writing the CSV failed" + write_failure_reason());
        out_.close();
    }
    void commit() { pending_.commit(); }
    void check_final_path_free() const { pending_.check_final_path_free(); }

private:
    PendingOutput pending_;
    std::ofstream out_;
};

// One polygon per lattice cell, written inside transactions; GeoJSON goes to WGS84 (RFC 7946).
class GridLayerWriter {
public:
    // GDAL writes GeoPackage change times on whichever thread creates, commits or closes: each of
    // those pins the date, so the file is the same bytes in a direct and a sharded run.
    GridLayerWriter(const std::string& path, const RasterInfo& info, int top_k, bool overwrite)
        : GridLayerWriter(path, vector_format(path), info, top_k, overwrite) {}

    OGRFeature make() const { return OGRFeature(layer_->GetLayerDefn()); }

    void add(OGRFeature& feature, OGRPolygon polygon) {
        const ScopedThreadConfig pinned_date = pinned_vector_date();
        if (transform_) polygon.transform(transform_.get());
        feature.SetGeometry(&polygon);
        if (layer_->CreateFeature(&feature) != OGRERR_NONE) throw Error(path_ + ": writing a feature failed: " + last_gdal_error());
        ++features_;
        if (++in_transaction_ == 10000) {
            dataset_->CommitTransaction();
            dataset_->StartTransaction();
            in_transaction_ = 0;
        }
    }

    void close() {
        const ScopedThreadConfig pinned_date = pinned_vector_date();
        dataset_->CommitTransaction();
        close_written(std::move(dataset_), path_);
        check_vector_written(pending_.temporary_path(), path_, features_, "lattice cells");
    }
    void commit() { pending_.commit(); }
    void check_final_path_free() const { pending_.check_final_path_free(); }

private:
    GridLayerWriter(const std::string& path, const VectorFormat& format, const RasterInfo& info, int top_k, bool overwrite)
        : path_(written_vector_path(path, format)), pending_(path_, format, overwrite) {
        const ScopedThreadConfig pinned_date = pinned_vector_date();
        GDALDriver* driver = GetGDALDriverManager()->GetDriverByName(format.driver.c_str());
        if (!driver) throw Error("GDAL has no " + format.driver + " driver");
        CPLErrorReset();
        dataset_.reset(driver->Create(pending_.temporary_path().c_str(), 0, 0, 0, GDT_Unknown, nullptr));
        if (!dataset_) throw Error(path + ": cannot create: " + last_gdal_error());
        OGRSpatialReference source;
        const bool has_srs = !info.crs_wkt.empty() && source.importFromWkt(info.crs_wkt.c_str()) == OGRERR_NONE;
        source.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
        OGRSpatialReference target;
        OGRSpatialReference* layer_srs = has_srs ? &source : nullptr;
        CPLStringList layer_options;
        if (format.geojson && has_srs) {
            target.importFromEPSG(4326);
            target.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
            transform_.reset(OGRCreateCoordinateTransformation(&source, &target));
            layer_srs = &target;
            layer_options.SetNameValue("RFC7946", "YES");
        }
        if (format.driver == "ESRI Shapefile") layer_options.SetNameValue("ENCODING", "UTF-8");  // class names; a .cpg says so
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

    std::string path_;
    PendingVectorOutput pending_;
    DatasetPtr dataset_;
    OGRLayer* layer_ = nullptr;
    int64_t features_ = 0;
    std::unique_ptr<OGRCoordinateTransformation> transform_;
    int in_transaction_ = 0;
};


// Where lattice cells lie: the window grid on the image (rebuilt from job.json by a merge).
struct SceneLattice {
    RasterInfo info;  // the image's size and georeferencing
    // The window in image pixels: square on the ground, so not in pixels where those are not square
    // on the ground (a geographic CRS away from the equator).
    int64_t window_px = 0, overlap = 0;
    int64_t window_px_y = 0, overlap_y = 0;
    EdgePolicy edge = EdgePolicy::constant;
    // The image and its source bands: the dense map masks the image's no-data pixels (a merge of
    // shards reads them from here).
    std::string input;
    std::vector<int> bands;

    TileGrid grid() const {
        GridSpec spec;
        spec.tile_width = window_px;
        spec.tile_height = window_px_y;
        spec.overlap = overlap;
        if (overlap_y != overlap) spec.overlap_y = overlap_y;
        spec.edge = edge;
        return TileGrid(info.width, info.height, spec);
    }
    nlohmann::json to_json() const {
        nlohmann::json j = georeference_to_job(info);
        j.update({{"window_pixels", window_px}, {"overlap", overlap}, {"edge", static_cast<int>(edge)}, {"input", input}, {"bands", bands}});
        if (window_px_y != window_px || overlap_y != overlap) j.update({{"window_pixels_y", window_px_y}, {"overlap_y", overlap_y}});
        return j;
    }
    static SceneLattice from_json(const nlohmann::json& j) {
        SceneLattice l;
        l.info = georeference_from_job(j);
        l.window_px = j.at("window_pixels").get<int64_t>();
        l.overlap = j.at("overlap").get<int64_t>();
        l.window_px_y = j.value("window_pixels_y", l.window_px);
        l.overlap_y = j.value("overlap_y", l.overlap);
        l.edge = static_cast<EdgePolicy>(j.at("edge").get<int>());
        l.input = j.value("input", "");
        l.bands = j.value("bands", std::vector<int>{});
        return l;
    }
};

// The scene map's outputs, written lattice row by lattice row from each window's leaf-class
// probabilities and validity: the same whether the rows come straight from the model or from
// journaled parts. Nothing is renamed into place until every output is complete.
class SceneOutputs {
public:
    SceneOutputs(const SceneOptions& options, const SceneLattice& lattice, const ClassRollup& rollup, int64_t leaf_classes,
                 SceneResult& result)
        : options_(options), lattice_(lattice), grid_(lattice.grid()), rollup_(rollup), K_(leaf_classes),
          G_(static_cast<int64_t>(rollup.classes.size())), result_(result) {
        const RasterInfo& info = lattice.info;
        // Lattice georeferencing: pixel (r, c) is centred on window (r, c).
        offset_ = static_cast<double>(lattice.window_px - grid_.stride_x()) / 2.0;
        offset_y_ = static_cast<double>(lattice.window_px_y - grid_.stride_y()) / 2.0;
        RasterWriterOptions classes;
        classes.path = options.output;
        classes.width = grid_.cols();
        classes.height = grid_.rows();
        classes.format = options.format;
        classes.creation_options = options.creation_options;
        classes.nodata = kNodataClass;
        classes.band_descriptions = {"class"};
        classes.overwrite = options.overwrite;
        // An image without georeferencing: the lattice still says where its cells lie, in the image's
        // pixel coordinates (x right, y down), the frame of the CSV and the grid layer.
        RasterInfo frame = info;
        if (!frame.has_geotransform) {
            frame.geotransform = {0, 1, 0, 0, 0, 1};
            frame.has_geotransform = true;
        }
        georeference_like(classes, frame, offset_, offset_y_, static_cast<double>(grid_.stride_x()), static_cast<double>(grid_.stride_y()));
        class_writer_ = std::make_unique<RasterWriter>(classes);
        class_writer_->set_classes(rollup.classes);
        if (!options.probabilities.empty()) {
            RasterWriterOptions p = classes;
            p.path = options.probabilities;
            p.bands = static_cast<int>(G_ + 1);
            p.type = GDT_Float32;
            p.nodata = -1.0;
            p.band_descriptions.clear();
            for (const auto& c : rollup.classes) p.band_descriptions.push_back("p_" + c.name);
            p.band_descriptions.push_back("entropy");
            prob_writer_ = std::make_unique<RasterWriter>(p);
        }
        if (!options.csv.empty()) csv_ = std::make_unique<CsvWriter>(options.csv, options.top_k, options.overwrite);
        if (!options.vector.empty()) grid_layer_ = std::make_unique<GridLayerWriter>(options.vector, info, options.top_k, options.overwrite);

        const auto ground = ground_pixel_size(info);
        if (ground) pixel_km2_ = ground->x_m * ground->y_m / 1e6;
        if (ground) result.km2 = ground->x_m * ground->y_m * static_cast<double>(info.width * info.height) / 1e6;
        result.rows = grid_.rows();
        result.cols = grid_.cols();
        result.windows = grid_.count();
        result.window_pixels = lattice.window_px;
        result.stride_pixels = grid_.stride_x();
        result.window_pixels_y = lattice.window_px_y;
        result.stride_pixels_y = grid_.stride_y();
        result.classes.assign(static_cast<size_t>(G_), {});
        for (int64_t g = 0; g < G_; ++g) result.classes[static_cast<size_t>(g)].name = rollup.classes[static_cast<size_t>(g)].name;
        class_row_.assign(static_cast<size_t>(grid_.cols()), kNodataClass);
        prob_row_.assign(static_cast<size_t>((G_ + 1) * grid_.cols()), -1.0f);
        grouped_.resize(static_cast<size_t>(G_));
    }

    // Lattice row `row`: `leaf` holds K planes of `cols` probabilities, `valid` one flag per window.
    void write_row(int64_t row, const float* leaf, const uint8_t* valid) {
        const int64_t cols = grid_.cols();
        for (int64_t col = 0; col < cols; ++col) {
            if (!valid[col]) {
                ++result_.windows_skipped;
                class_row_[static_cast<size_t>(col)] = kNodataClass;
                for (int64_t b = 0; b <= G_; ++b) prob_row_[static_cast<size_t>(b * cols + col)] = -1.0f;
                continue;
            }
            ++result_.windows_run;
            std::fill(grouped_.begin(), grouped_.end(), 0.0f);
            for (int64_t c = 0; c < K_; ++c) {
                grouped_[static_cast<size_t>(rollup_.group_of_leaf[static_cast<size_t>(c)])] += leaf[c * cols + col];
            }
            write_window(grid_.at(row, col));
        }
        class_writer_->append_rows(row, 1, class_row_.data());
        if (prob_writer_) prob_writer_->append_rows(row, 1, prob_row_.data());
    }

    // Closes every output, derives the dense map from the closed lattice, then renames all into place.
    void finish(const ProgressFn& progress) {
        class_writer_->close();
        if (prob_writer_) prob_writer_->close();
        if (csv_) csv_->close();
        if (grid_layer_) grid_layer_->close();
        std::unique_ptr<RasterWriter> dense;
        if (!options_.dense.empty()) dense = write_dense(progress);
        // Every final path checked before the first rename: a file another run wrote meanwhile fails
        // the run with none of its outputs in place (the caller's later ones included).
        if (options_.before_commit) options_.before_commit(class_writer_->closed_path(), result_);
        if (prob_writer_) prob_writer_->check_final_path_free();
        if (csv_) csv_->check_final_path_free();
        if (grid_layer_) grid_layer_->check_final_path_free();
        if (dense) dense->check_final_path_free();
        class_writer_->check_final_path_free();
        // The class map (the -o output) last: once it has its name, every other output has too, so a
        // kill between the renames cannot pass for a finished run.
        if (prob_writer_) prob_writer_->commit();
        if (csv_) csv_->commit();
        if (grid_layer_) grid_layer_->commit();
        if (dense) dense->commit();
        class_writer_->commit();
    }

private:
    // The ground a lattice cell stands for: its stride x stride pixels centred on the window, clipped to
    // the image, with the cells of the first and last rows and columns reaching out to the image's
    // edges as in the dense map (the (window - stride)/2 border margin is no cell's otherwise). With
    // every window run, the classes' areas add up to the image's.
    double cell_km2(int64_t row, int64_t col) const {
        const auto inside = [](double start, double stride, double extent, bool first, bool last) {
            const double from = first ? 0.0 : std::max(start, 0.0);
            const double to = last ? extent : std::min(start + stride, extent);
            return std::max(to - from, 0.0);
        };
        const double w = static_cast<double>(lattice_.info.width), h = static_cast<double>(lattice_.info.height);
        const double sx = static_cast<double>(grid_.stride_x()), sy = static_cast<double>(grid_.stride_y());
        const double inside_x = inside(offset_ + static_cast<double>(col) * sx, sx, w, col == 0, col == grid_.cols() - 1);
        const double inside_y = inside(offset_y_ + static_cast<double>(row) * sy, sy, h, row == 0, row == grid_.rows() - 1);
        return pixel_km2_ * inside_x * inside_y;
    }

    void write_window(const Tile& t) {
        const int64_t cols = grid_.cols();
        std::vector<int64_t> order(static_cast<size_t>(G_));
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return grouped_[static_cast<size_t>(a)] > grouped_[static_cast<size_t>(b)]; });
        const int64_t best = order[0];
        class_row_[static_cast<size_t>(t.col)] = static_cast<uint8_t>(best);
        auto& summary = result_.classes[static_cast<size_t>(best)];
        ++summary.windows;
        summary.area_km2 += cell_km2(t.row, t.col);
        double entropy = 0;
        for (int64_t c = 0; c < G_; ++c) {
            const double q = grouped_[static_cast<size_t>(c)];
            prob_row_[static_cast<size_t>(c * cols + t.col)] = static_cast<float>(q);
            if (q > 0) entropy -= q * std::log(q);
        }
        prob_row_[static_cast<size_t>(G_ * cols + t.col)] = G_ > 1 ? static_cast<float>(entropy / std::log(static_cast<double>(G_))) : 0.0f;
        if (!csv_ && !grid_layer_) return;
        // The window's centre in the image CRS.
        const auto& g = lattice_.info.geotransform;
        const double px = static_cast<double>(t.window.x) + static_cast<double>(t.window.width) / 2;
        const double py = static_cast<double>(t.window.y) + static_cast<double>(t.window.height) / 2;
        const double cx = g[0] + px * g[1] + py * g[2], cy = g[3] + px * g[4] + py * g[5];
        const int top = static_cast<int>(std::min<int64_t>(options_.top_k, G_));
        const auto name = [&](int64_t k) { return rollup_.classes[static_cast<size_t>(order[static_cast<size_t>(k)])].name; };
        const auto score = [&](int64_t k) { return grouped_[static_cast<size_t>(order[static_cast<size_t>(k)])]; };
        if (csv_) {
            std::ostringstream line;
            line << std::setprecision(10) << t.id() << ',' << t.row << ',' << t.col << ',' << t.window.x << ',' << t.window.y << ','
                 << t.window.width << ',' << t.window.height << ',' << cx << ',' << cy << ',' << name(0) << ',' << std::setprecision(6)
                 << score(0);
            for (int k = 0; k < options_.top_k; ++k) {
                if (k < top) line << ',' << name(k) << ',' << score(k);
                else line << ",,";
            }
            csv_->row(line.str());
        }
        if (grid_layer_) {
            OGRFeature f = grid_layer_->make();
            f.SetField("window_id", t.id().c_str());
            f.SetField("class", name(0).c_str());
            f.SetField("row", static_cast<GIntBig>(t.row));
            f.SetField("col", static_cast<GIntBig>(t.col));
            f.SetField("x", static_cast<GIntBig>(t.window.x));
            f.SetField("y", static_cast<GIntBig>(t.window.y));
            f.SetField("width", static_cast<GIntBig>(t.window.width));
            f.SetField("height", static_cast<GIntBig>(t.window.height));
            f.SetField("score", score(0));
            for (int k = 0; k < top; ++k) {
                f.SetField(("class_" + std::to_string(k + 1)).c_str(), name(k).c_str());
                f.SetField(("score_" + std::to_string(k + 1)).c_str(), score(k));
            }
            // The lattice cell: stride x stride image pixels centred on the window.
            const double hx = static_cast<double>(grid_.stride_x()) / 2, hy = static_cast<double>(grid_.stride_y()) / 2;
            OGRLinearRing ring;
            for (const auto& [dx, dy] : {std::pair{-hx, -hy}, std::pair{hx, -hy}, std::pair{hx, hy}, std::pair{-hx, hy}, std::pair{-hx, -hy}}) {
                ring.addPoint(g[0] + (px + dx) * g[1] + (py + dy) * g[2], g[3] + (px + dx) * g[4] + (py + dy) * g[5]);
            }
            OGRPolygon polygon;
            polygon.addRing(&ring);
            grid_layer_->add(f, polygon);
        }
    }

    // Every image pixel takes the class of the lattice cell that contains it (read back row by row),
    // but a pixel without data in the image is nodata, as in a building map.
    std::unique_ptr<RasterWriter> write_dense(const ProgressFn& progress) {
        report_progress(progress, 1.0, "dense map");
        const RasterInfo& info = lattice_.info;
        const RasterSource classes = RasterSource::open(class_writer_->closed_path());
        std::optional<RasterSource> image;
        if (!lattice_.input.empty()) {
            try {
                image = RasterSource::open(lattice_.input);
            } catch (const Error& e) {
                throw Error(std::string(e.what()) + " (the dense map masks the image's no-data pixels, so it needs the image)");
            }
            if (image->info().width != info.width || image->info().height != info.height) {
                throw Error(lattice_.input + ": is not the image this scene map was made from (its size differs)");
            }
        }
        const bool check_finite = image && may_hold_non_finite(image->info(), lattice_.bands);
        std::vector<uint8_t> validity(static_cast<size_t>(info.width));
        RasterWriterOptions d;
        d.path = options_.dense;
        d.overwrite = options_.overwrite;
        d.width = info.width;
        d.height = info.height;
        d.format = options_.format;
        d.creation_options = options_.creation_options;
        d.nodata = kNodataClass;
        d.band_descriptions = {"class"};
        georeference_like(d, info);
        auto dense = std::make_unique<RasterWriter>(d);
        dense->set_classes(rollup_.classes);
        const auto cell = [](int64_t pixel, int64_t cells, double offset, int64_t stride) {
            return std::clamp<int64_t>(static_cast<int64_t>(std::floor((static_cast<double>(pixel) + 0.5 - offset) / static_cast<double>(stride))), 0,
                                       cells - 1);
        };
        std::vector<float> lattice_row;
        std::vector<uint8_t> row(static_cast<size_t>(info.width));
        int64_t cached = -1;
        for (int64_t y = 0; y < info.height; ++y) {
            const int64_t r = cell(y, grid_.rows(), offset_y_, grid_.stride_y());
            if (r != cached) {
                lattice_row = classes.read_float({0, r, grid_.cols(), 1}, {1});
                cached = r;
            }
            for (int64_t x = 0; x < info.width; ++x) row[static_cast<size_t>(x)] = static_cast<uint8_t>(lattice_row[static_cast<size_t>(cell(x, grid_.cols(), offset_, grid_.stride_x()))]);
            if (image) {
                image->read_validity({0, y, info.width, 1}, lattice_.bands, validity.data());
                if (check_finite) {
                    std::vector<float> values = image->read_float({0, y, info.width, 1}, lattice_.bands);
                    mask_non_finite(values.data(), static_cast<int>(lattice_.bands.size()), info.width, validity.data());
                }
                for (int64_t x = 0; x < info.width; ++x) {
                    if (!validity[static_cast<size_t>(x)]) row[static_cast<size_t>(x)] = kNodataClass;
                }
            }
            dense->append_rows(y, 1, row.data());
        }
        dense->close();
        return dense;
    }

    const SceneOptions& options_;
    SceneLattice lattice_;
    TileGrid grid_;
    const ClassRollup& rollup_;
    int64_t K_, G_;
    SceneResult& result_;
    double offset_ = 0, offset_y_ = 0, pixel_km2_ = 0;
    std::unique_ptr<RasterWriter> class_writer_, prob_writer_;
    std::unique_ptr<CsvWriter> csv_;
    std::unique_ptr<GridLayerWriter> grid_layer_;
    std::vector<uint8_t> class_row_;
    std::vector<float> prob_row_, grouped_;
};

// Writes the outputs from every lattice-row part in order, as the direct run would have.
void assemble_scene_parts(const std::string& parts_dir, const std::string& fingerprint, const SceneOptions& options,
                          const SceneLattice& lattice, const ClassRollup& rollup, int64_t K, SceneResult& result,
                          const ProgressFn& progress) {
    SceneOutputs outputs(options, lattice, rollup, K, result);
    const TileGrid grid = lattice.grid();
    std::vector<float> probabilities;
    std::vector<uint8_t> valid;
    for (int64_t r = 0; r < grid.rows(); ++r) {
        const std::string part = (fs::path(parts_dir) / StripJournal::part_name(r)).string();
        read_strip_part(part, fingerprint, static_cast<int>(K), grid.cols(), 1, probabilities, valid);
        outputs.write_row(r, probabilities.data(), valid.data());
        report_progress(progress, static_cast<double>(r + 1) / static_cast<double>(grid.rows()), "assembling");
    }
    outputs.finish(progress);
}

// Paths absolute, as the segmentation job's (src/segmentation.cpp output_settings).
nlohmann::json scene_output_settings(const SceneOptions& o) {
    return {{"output", output_path_for_job(o.output)}, {"probabilities", output_path_for_job(o.probabilities)},
            {"dense", output_path_for_job(o.dense)}, {"csv", output_path_for_job(o.csv)}, {"vector", output_path_for_job(o.vector)},
            {"top_k", o.top_k}, {"level", o.level}, {"format", o.format},
            {"creation_options", o.creation_options}};
}

}  // namespace

std::string parts_job_kind(const std::string& parts_dir) {
    const std::string format = read_job(parts_dir).value("format", "");
    if (format == "rsi-segmentation-job") return "segmentation";
    if (format == "rsi-scene-job") return "scene";
    throw Error(parts_dir + "/job.json: not an rsi job (format '" + format + "')");
}

SceneResult map_scenes(const models::Model& model, const SceneOptions& requested, const ProgressFn& progress) {
    const auto start = std::chrono::steady_clock::now();
    const models::ModelMetadata& meta = model.metadata();
    const std::string command = "scene";
    if (meta.task != models::Task::scene) {
        throw usage_error(model.path() + ": model " + meta.name + " is a " + models::to_string(meta.task) +
                          " model, not a scene model");
    }
    const ClassRollup rollup = roll_up_classes(meta, requested.level);
    // Top-k beyond the classes the map has would only add empty columns.
    SceneOptions options = requested;
    options.top_k = std::min<int>(options.top_k, static_cast<int>(rollup.classes.size()));
    if (options.edge == EdgePolicy::shift) {
        throw usage_error(command + ": --edge shift would break the regular lattice of the scene map; use constant or reflect");
    }
    const bool journaled = options.resume || options.shard.has_value();
    const std::string parts_dir = options.parts_dir.empty() ? options.output + ".parts" : options.parts_dir;
    if (options.resume || !options.shard) {  // what killed runs left (segment_image says why)
        for (const std::string* out : {&options.output, &options.probabilities, &options.dense, &options.csv, &options.vector}) {
            if (!out->empty()) remove_stale_temporaries(*out);
        }
    }
    if (!options.shard) {
        for (const std::string* out : {&options.output, &options.probabilities, &options.dense, &options.csv}) {
            if (!out->empty()) check_output_file(*out, options.overwrite);
        }
        if (!options.vector.empty()) check_vector_output(options.vector, options.overwrite);  // a shapefile's files too
        check_distinct_outputs({options.output, options.probabilities, options.dense, options.csv, options.vector}, {options.input});
    }
    if (options.max_nodata < 0 || options.max_nodata > 1) throw usage_error("--max-nodata must be in [0, 1]");
    if (options.window < 0) throw usage_error("--window " + std::to_string(options.window) + " must be positive (or 0: the model's tile size)");
    if (options.stride < 0) throw usage_error("--stride " + std::to_string(options.stride) + " must be positive (or 0: the window)");
    if (options.batch < 0) throw usage_error("--batch " + std::to_string(options.batch) + " must be positive (or 0: from --ram)");
    if (options.top_k < 1) throw usage_error("--top-k " + std::to_string(options.top_k) + " must be 1 or more");

    report_progress(progress, 0.0, "planning");
    const RasterSource source = RasterSource::open(options.input);
    const RasterInfo& info = source.info();
    const BandMapping mapping = map_bands(source, meta, options.bands, command, options.strict, options.resample);
    SceneResult result;
    result.warnings = mapping.warnings;
    result.source_bands = mapping.source_bands;
    result.band_rescale = mapping.rescale;

    // Window and stride in model pixels, then in image pixels (GSD matching rounds to whole pixels).
    const int64_t S = options.window > 0 ? options.window : meta.tile_size;
    const int64_t stride_model = options.stride > 0 ? options.stride : S;
    if (stride_model > S) throw usage_error("--stride " + std::to_string(stride_model) + " is larger than the window " + std::to_string(S) + ": windows would leave gaps");
    const auto [scale, scale_y] = options.resample ? model_pixel_scales(info, meta) : std::pair<double, double>{1.0, 1.0};
    const int64_t window_px = std::max<int64_t>(1, std::llround(static_cast<double>(S) * scale));
    const int64_t stride_px = std::max<int64_t>(1, std::llround(static_cast<double>(stride_model) * scale));
    const int64_t window_px_y = std::max<int64_t>(1, std::llround(static_cast<double>(S) * scale_y));
    const int64_t stride_px_y = std::max<int64_t>(1, std::llround(static_cast<double>(stride_model) * scale_y));
    // A window larger than the image is padded by the edge policy like any window over the image's
    // edge; the padding counts as nodata against --max-nodata (a 60x60 crop in a 64-pixel window is
    // classified, a 320x1 strip is not).
    SceneLattice lattice;
    lattice.info = info;
    lattice.window_px = window_px;
    lattice.overlap = window_px - std::min(stride_px, window_px);
    lattice.window_px_y = window_px_y;
    lattice.overlap_y = window_px_y - std::min(stride_px_y, window_px_y);
    lattice.edge = options.edge;
    lattice.input = journaled ? input_path_for_job(options.input) : options.input;
    lattice.bands = mapping.source_bands;
    const TileGrid grid = lattice.grid();
    result.windows = grid.count();
    result.rows = grid.rows();
    result.cols = grid.cols();
    result.window_pixels = window_px;
    result.stride_pixels = grid.stride_x();
    result.window_pixels_y = window_px_y;
    result.stride_pixels_y = grid.stride_y();
    result.scale = scale;
    result.scale_y = scale_y;
    const int64_t C = meta.bands, K = static_cast<int64_t>(meta.classes.size());
    const int64_t R = grid.rows(), cols = grid.cols();
    int64_t B = options.batch;
    if (journaled && B <= 0 && fs::exists(fs::path(parts_dir) / "job.json")) {
        // Batches are anchored to the global window index: a resumed or sibling shard uses the same size.
        B = read_job(parts_dir).value("batch", int64_t{0});
    }
    if (B <= 0) {
        // The model's estimate is measured (peak RSS) and can differ between processes, so journaled
        // runs, whose shards and resumes must agree on the batch, take a fixed default.
        B = journaled ? 16 : std::clamp<int64_t>(model.batch_size_for(options.memory_budget_mb * 1024 * 1024 / 2, S, S), 1, 256);
    }
    B = std::min(B, std::max<int64_t>(1, grid.count()));  // never more windows than there are (zero-padded ones ran)
    result.batch = B;

    // Journaled runs: which lattice rows to compute; the others in their first and last batches are
    // read and run again (so every batch holds the same windows as in any other run) but not kept.
    int64_t first_strip = 0, end_strip = R;
    std::unique_ptr<StripJournal> journal;
    std::unique_ptr<SceneOutputs> outputs;
    nlohmann::json job;
    if (journaled) {
        nlohmann::json settings{{"input", fs::path(options.input).filename().string()},
                                {"width", info.width}, {"height", info.height}, {"bands", mapping.source_bands},
                                {"model", meta.weights_sha256}, {"model_name", meta.name}, {"window", S},
                                {"window_pixels", window_px}, {"stride_pixels", grid.stride_x()}, {"edge", to_string(options.edge)},
                                {"max_nodata", options.max_nodata}, {"resample", options.resample}, {"tta", to_string(options.tta)},
                                {"batch", B},
                                // the metadata as overridden (--mean, --std, ...) and the precision run at
                                {"model_metadata", sha256_hex(json_text(meta.to_json()))},
                                {"precision", models::to_string(model.precision())}};
        if (window_px_y != window_px || grid.stride_y() != grid.stride_x()) {
            settings.update({{"window_pixels_y", window_px_y}, {"stride_pixels_y", grid.stride_y()}});
        }
        try {
            settings["input_fingerprint"] = file_fingerprint(options.input);
        } catch (const std::exception&) {
            settings["input_fingerprint"] = options.input;  // e.g. a remote URL
        }
        const std::string fingerprint = sha256_hex(json_text(settings));
        job = {{"format", "rsi-scene-job"}, {"version", 1}, {"fingerprint", fingerprint}, {"settings", settings},
               {"shards", options.shard ? options.shard->count : 1}, {"batch", B}, {"strips", R},
               {"lattice", lattice.to_json()}, {"model", meta.to_json()}, {"outputs", scene_output_settings(options)}};
        job = write_or_check_job(parts_dir, job);
        const ShardSpec shard = options.shard.value_or(ShardSpec{});
        check_shard_count(job, shard, parts_dir);
        journal = std::make_unique<StripJournal>(parts_dir, fingerprint, shard);
        std::tie(first_strip, end_strip) = shard_strips(R, shard);
        result.strips = R;
        result.shard_strips = end_strip - first_strip;
        result.parts_dir = parts_dir;
        while (first_strip < end_strip && journal->done(first_strip)) {
            ++first_strip;
            ++result.strips_resumed;
        }
        if (first_strip == end_strip) first_strip = end_strip = 0;
    } else {
        outputs = std::make_unique<SceneOutputs>(options, lattice, rollup, K, result);
    }
    const int64_t first_window = first_strip * cols, end_window = end_strip * cols;
    const int64_t first_batch = first_window / B, end_batch = end_window > first_window ? (end_window - 1) / B + 1 : first_batch;

    EdgeFill edge;
    edge.mode = options.edge == EdgePolicy::reflect ? EdgeFill::Mode::reflect : EdgeFill::Mode::constant;
    const ModelRunners runners = model_runners(model, options.model_runners);
    result.model_runners = runners.count;
    BoundedQueue<SceneBatch> to_model(2), to_writer(static_cast<size_t>(2 * runners.count));
    std::mutex model_seconds_mutex;
    double model_seconds = 0;  // the runners' time inside the forward calls, summed
    FirstError failure;
    RecycleBin<float> spare_inputs;  // batch inputs, allocated once per run

    const bool check_finite = may_hold_non_finite(info, mapping.source_bands);  // NaN/Inf only in float bands
    // Several runners read their own batches, one at a time under this lock and in batch order (the
    // strip cache reads each lattice row once): a separate reader thread would preempt a runner on
    // every core they use, and a preempted forward loses its caches. A single runner (a GPU's) gets a
    // reader thread, so that reading overlaps the forward.
    const bool reader_thread = runners.count == 1;
    std::mutex reading;
    int64_t next_batch = first_batch;
    const RasterSource own = source.reopen();
    // The strip keeps the source's own type (e.g. Byte: a quarter of Float32's bytes to read,
    // move and shrink); windows are converted as they are cut.
    TileReader tiles(own, grid, mapping.source_bands, GDT_Float32, edge, true, options.memory_budget_mb * 1024 * 1024 / 4,
                     compact_strip_type(info, mapping.source_bands, GDT_Float32, edge));
    const int64_t window_area = window_px * window_px_y;
    std::vector<float> raw(static_cast<size_t>(C * window_area));
    std::vector<uint8_t> valid(static_cast<size_t>(window_area));
    // Overlapping windows shrunk by a whole factor: shrink each tile row's strip once and
    // cut the windows out of it (each block is averaged once, not once per window over it).
    const int64_t factor = window_px == window_px_y && window_px % S == 0 ? window_px / S : 0;
    const bool shrink_strips = factor > 1 && grid.stride_x() % factor == 0 && !mapping.normalizer.clamp && !check_finite &&
                               tiles.reads_strips();
    std::vector<float> shrunk, shrink_scratch;
    PixelWindow span;
    int64_t shrunk_row = -1, shrunk_width = 0;
    // Shrunk and normalised once per strip (area averaging and the affine normalisation
    // commute); the windows are then plain copies.
    const auto cut_from_shrunk_strip = [&](const Tile& t, float* slot) {
        if (t.row != shrunk_row) {
            const PixelWindow previous = span;
            const unsigned char* strip = tiles.row_strip(t.row, span);
            // Overlapping tile rows share source rows: when this strip starts a whole number of
            // blocks below the last one, its first shrunk rows are the last strip's final ones
            // (moved up), and only the rows below them are read from the strip and shrunk.
            const int64_t step = span.y - previous.y;
            const int64_t kept = shrunk_row >= 0 && span.x == previous.x && span.width == previous.width && step > 0 &&
                                         step % factor == 0 && step / factor < S
                                     ? S - step / factor
                                     : 0;
            shrunk_width = span.width / factor;
            shrunk.resize(static_cast<size_t>(C * S * shrunk_width));
            const int64_t elem = GDALGetDataTypeSizeBytes(tiles.strip_type());
            for (int64_t c = 0; c < C; ++c) {
                float* plane = shrunk.data() + c * S * shrunk_width;
                std::copy(plane + (S - kept) * shrunk_width, plane + S * shrunk_width, plane);
                area_shrink(strip + (c * span.height + kept * factor) * span.width * elem, tiles.strip_type(), 1, (S - kept) * factor,
                            span.width, factor, S - kept, plane + kept * shrunk_width, shrink_scratch);
                mapping.normalizer.apply_band(static_cast<size_t>(c), plane + kept * shrunk_width, (S - kept) * shrunk_width);
            }
            shrunk_row = t.row;
        }
        const int64_t x0 = (t.window.x - span.x) / factor;
        for (int64_t c = 0; c < C; ++c)
            for (int64_t y = 0; y < S; ++y) {
                std::copy_n(shrunk.data() + (c * S + y) * shrunk_width + x0, S, slot + (c * S + y) * S);
            }
    };
    // Fills the next batch in order; false once every batch was handed out.
    const auto read_next_batch = [&](SceneBatch& batch) {
        const std::lock_guard<std::mutex> lock(reading);
        if (next_batch >= end_batch) return false;
        const int64_t k = next_batch++;
        batch.index = k;
        // Recycled: every slot below is either filled or zeroed.
        batch.input = spare_inputs.take();
        batch.input.resize(static_cast<size_t>(B * C * S * S));
        const int64_t batch_end = std::min((k + 1) * B, grid.count());
        std::fill(batch.input.begin() + (batch_end - k * B) * C * S * S, batch.input.end(), 0.0f);
        for (int64_t i = k * B; i < batch_end; ++i) {
            Window w{grid.at(i), true};
            if (shrink_strips) {
                const bool aligned = (w.tile.window.x - grid.row_span(w.tile.row).x) % factor == 0 &&
                                     w.tile.window.y == grid.row_span(w.tile.row).y;
                // Without nodata or a mask, a window inside the image is valid throughout.
                const bool inside = w.tile.window.right() <= info.width && w.tile.window.bottom() <= info.height;
                const bool all_valid = aligned && ((info.mask == MaskSource::none && inside) || [&] {
                    tiles.read_validity(w.tile, valid.data());
                    return std::all_of(valid.begin(), valid.end(), [](uint8_t v) { return v != 0; });
                }());
                if (all_valid) {
                    float* slot = batch.input.data() + (i - k * B) * C * S * S;
                    cut_from_shrunk_strip(w.tile, slot);
                    w.skipped = false;
                    batch.run = true;
                    batch.windows.push_back(w);
                    continue;
                }
            }
            tiles.read(w.tile, raw.data(), valid.data());
            if (check_finite) mask_non_finite(raw.data(), static_cast<int>(C), window_area, valid.data());
            const auto count = std::count_if(valid.begin(), valid.end(), [](uint8_t v) { return v != 0; });
            const double nodata = 1.0 - static_cast<double>(count) / static_cast<double>(valid.size());
            w.skipped = nodata > options.max_nodata || count == 0;
            if (!w.skipped) {
                float* slot = batch.input.data() + (i - k * B) * C * S * S;
                const bool all_valid = count == static_cast<int64_t>(valid.size());
                const bool resized = window_px != S || window_px_y != S;
                if (all_valid && resized && !mapping.normalizer.clamp) {
                    // Area averaging and the affine normalisation commute: shrink first,
                    // then normalise the model-sized window (a quarter of the work or less).
                    resize_planes(raw.data(), C, window_px, window_px_y, slot, S);
                    mapping.normalizer.apply(slot, static_cast<size_t>(C), S * S);
                } else {
                    mapping.normalizer.apply(raw.data(), static_cast<size_t>(C), window_area);
                    for (int64_t p = 0; p < window_area; ++p) {
                        if (!valid[static_cast<size_t>(p)] && options.edge != EdgePolicy::reflect) {
                            for (int64_t c = 0; c < C; ++c) raw[static_cast<size_t>(c * window_area + p)] = 0.0f;
                        }
                    }
                    if (!resized) std::copy(raw.begin(), raw.end(), slot);
                    else resize_planes(raw.data(), C, window_px, window_px_y, slot, S);
                }
                batch.run = true;
            } else {
                std::fill_n(batch.input.begin() + (i - k * B) * C * S * S, C * S * S, 0.0f);
            }
            batch.windows.push_back(w);
        }
        return true;
    };
    std::thread reader;
    if (reader_thread) {
        reader = std::thread([&] {
            try {
                for (SceneBatch batch; read_next_batch(batch); batch = SceneBatch{}) {
                    if (!to_model.push(std::move(batch))) break;
                }
            } catch (...) {
                failure.record(std::current_exception());
                to_writer.close();
            }
            to_model.close();
        });
    }
    const auto next_for_runner = [&](SceneBatch& batch) {
        if (!reader_thread) return read_next_batch(batch);
        auto popped = to_model.pop();
        if (!popped) return false;
        batch = std::move(*popped);
        return true;
    };
    std::atomic<int> runners_left{runners.count};
    const auto run_batches = [&](int threads) {
        try {
            if (threads > 0) models::set_inference_threads_of_this_thread(threads);
            double seconds = 0;
            for (SceneBatch batch; next_for_runner(batch); batch = SceneBatch{}) {
                if (batch.run) {
                    const auto t0 = std::chrono::steady_clock::now();
                    run_with_tta(model, options.tta, {B, C, S, S}, batch.input, batch.output);
                    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                }
                spare_inputs.give(std::move(batch.input));
                if (!to_writer.push(std::move(batch))) break;
            }
            const std::lock_guard<std::mutex> lock(model_seconds_mutex);
            model_seconds += seconds;
        } catch (...) {
            failure.record(std::current_exception());
            to_model.close();  // the reader, the writer and the other runners stop too
            to_writer.close();
        }
        if (--runners_left == 0) to_writer.close();
    };
    std::vector<std::thread> runner_threads;
    for (int r = 0; r < runners.count; ++r) runner_threads.emplace_back(run_batches, runners.threads[static_cast<size_t>(r)]);
    auto stop_workers = [&] {
        to_model.close();
        to_writer.close();
        if (reader.joinable()) reader.join();
        for (std::thread& t : runner_threads) {
            if (t.joinable()) t.join();
        }
    };

    try {
        // One lattice row of leaf probabilities (K planes of `cols`) and validity, handed on when full.
        std::vector<float> leaf_row(static_cast<size_t>(K * cols), 0.0f), row_weight(static_cast<size_t>(cols));
        std::vector<uint8_t> valid_row(static_cast<size_t>(cols), 0);
        int64_t done = 0;
        const auto write_batch = [&](const SceneBatch& batch) {
            for (const Window& w : batch.windows) {
                const Tile& t = w.tile;
                if (t.index < first_window || t.index >= end_window) continue;  // shares a batch, outside this run
                valid_row[static_cast<size_t>(t.col)] = w.skipped ? 0 : 1;
                for (int64_t c = 0; c < K; ++c) {
                    leaf_row[static_cast<size_t>(c * cols + t.col)] = w.skipped ? 0.0f : batch.output[static_cast<size_t>((t.index % B) * K + c)];
                }
                if (t.col == cols - 1) {
                    if (journal) {
                        for (int64_t c = 0; c < cols; ++c) row_weight[static_cast<size_t>(c)] = valid_row[static_cast<size_t>(c)];
                        journal->commit(t.row, t.row, 1, cols, static_cast<int>(K), leaf_row.data(), row_weight.data());
                        ++result.strips_run;
                    } else {
                        outputs->write_row(t.row, leaf_row.data(), valid_row.data());
                    }
                }
                report_progress(progress, 0.98 * static_cast<double>(++done) / static_cast<double>(std::max<int64_t>(1, end_window - first_window)),
                                "windows");
            }
        };
        // Runners finish out of order; lattice rows are written in order.
        ReorderBuffer<SceneBatch> in_order(first_batch);
        while (auto batch = to_writer.pop()) {
            in_order.add(batch->index, std::move(*batch));
            while (auto next = in_order.take_next()) write_batch(*next);
        }
        stop_workers();
        failure.rethrow_if_any();
        if (done != end_window - first_window) throw Error(command + ": the pipeline stopped early");
    } catch (...) {
        stop_workers();
        failure.rethrow_if_any();
        throw;
    }

    result.output = options.output;
    if (outputs) {
        outputs->finish(progress);
    } else if (!options.shard) {
        assemble_scene_parts(parts_dir, job.at("fingerprint").get<std::string>(), options, lattice, rollup, K, result, [&](double f, std::string_view what) {
            return !progress || progress(0.98 + 0.02 * f, what);
        });
        if (!options.keep_parts) {
            std::error_code ec;
            fs::remove_all(parts_dir, ec);
        }
    } else {
        result.assembled = false;
        result.output.clear();
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.model_seconds = model_seconds / runners.count;
    return result;
}

SceneResult merge_scene_parts(const MergeOptions& options, const std::string& vector, const ProgressFn& progress) {
    const auto start = std::chrono::steady_clock::now();
    const nlohmann::json job = read_job(options.parts_dir);
    if (job.value("format", "") != "rsi-scene-job") throw Error(options.parts_dir + "/job.json: not an rsi scene job");
    const SceneLattice lattice = SceneLattice::from_json(job.at("lattice"));
    const int64_t R = job.at("strips").get<int64_t>();
    if (R != lattice.grid().rows()) throw Error(options.parts_dir + "/job.json: " + std::to_string(R) + " strips, but the lattice has " +
                                                std::to_string(lattice.grid().rows()) + " rows");
    const auto shard_locks = check_all_shards_done(  // held until the parts are gone
        options.parts_dir, job.at("fingerprint").get<std::string>(), job.at("shards").get<int>(), R);
    const models::ModelMetadata meta = models::metadata_from_record(job.at("model"), options.parts_dir + "/job.json");
    const nlohmann::json& out = job.at("outputs");
    SceneOptions o;
    const std::string recorded = out.at("output").get<std::string>();
    const auto placed = [&](const std::string& path) { return merge_output_path(options.parts_dir, recorded, path); };
    o.output = options.output.empty() ? placed(recorded) : options.output;
    o.probabilities = options.probabilities.empty() ? placed(out.value("probabilities", "")) : options.probabilities;
    o.dense = placed(out.value("dense", ""));
    o.csv = placed(out.value("csv", ""));
    o.vector = vector.empty() ? placed(out.value("vector", "")) : vector;
    o.top_k = out.value("top_k", 3);
    o.level = out.value("level", 0);
    o.format = out.value("format", "GTiff");
    o.creation_options = out.value("creation_options", std::vector<std::string>{});
    o.overwrite = options.overwrite;
    // `merge -o IMAGE --overwrite` replaced the image the shards read (a dense map reads it back).
    check_distinct_outputs({o.output, o.probabilities, o.dense, o.csv, o.vector}, job_inputs(job));
    for (const std::string* path : {&o.output, &o.probabilities, &o.dense, &o.csv, &o.vector}) {
        if (path->empty()) continue;
        remove_stale_temporaries(*path);  // a killed merge's (merging again is how it is redone)
        if (path == &o.vector) check_vector_output(*path, o.overwrite);
        else check_output_file(*path, o.overwrite);
    }
    if (options.before_commit) {
        o.before_commit = [&options, &o](const std::string&, const SceneResult&) {
            std::vector<std::string> outputs;
            for (const std::string* path : {&o.output, &o.probabilities, &o.dense, &o.csv, &o.vector}) {
                if (!path->empty()) outputs.push_back(*path);
            }
            options.before_commit(outputs);
        };
    }
    const ClassRollup rollup = roll_up_classes(meta, o.level);
    SceneResult result;
    result.batch = job.value("batch", int64_t{0});
    result.strips = R;
    result.parts_dir = options.parts_dir;
    result.output = o.output;
    assemble_scene_parts(options.parts_dir, job.at("fingerprint").get<std::string>(), o, lattice, rollup, static_cast<int64_t>(meta.classes.size()), result, progress);
    if (!options.keep_parts) {
        std::error_code ec;
        fs::remove_all(options.parts_dir, ec);
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

}  // namespace rsi
