#include "src/tile_export.hpp"

#include <cpl_string.h>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <atomic>
#include <mutex>
#include <ogrsf_frmts.h>
#include <thread>
#include <regex>
#include <sstream>

#include "src/output_file.hpp"
#include "tiling/bounded_queue.hpp"
#include "tiling/first_error.hpp"
#include "tiling/gdal_dataset.hpp"
#include "tiling/raster_source.hpp"
#include "tiling/tile_reader.hpp"

namespace fs = std::filesystem;

namespace rsi {

namespace {

struct FormatInfo {
    std::string driver;
    std::string extension;
};

FormatInfo format_info(const std::string& format) {
    if (format == "GTiff" || format == "gtiff" || format == "tif") return {"GTiff", "tif"};
    if (format == "PNG" || format == "png") return {"PNG", "png"};
    if (format == "JPEG" || format == "jpeg" || format == "jpg") return {"JPEG", "jpg"};
    throw usage_error("--format: unsupported tile format '" + format + "' (expected GTiff, PNG or JPEG)");
}

void check_format_can_hold(const FormatInfo& format, GDALDataType type, size_t bands) {
    if (format.driver == "JPEG") {
        if (type != GDT_Byte) {
            throw usage_error(std::string("JPEG tiles hold Byte data only, the image is ") + GDALGetDataTypeName(type) +
                              " (add --scale percentile or use --format GTiff)");
        }
        if (bands != 1 && bands != 3) throw usage_error("JPEG tiles hold 1 or 3 bands (use --bands)");
    }
    if (format.driver == "PNG") {
        if (type != GDT_Byte && type != GDT_UInt16) {
            throw usage_error(std::string("PNG tiles hold Byte or UInt16 data only, the image is ") +
                              GDALGetDataTypeName(type) + " (add --scale or use --format GTiff)");
        }
        if (bands > 4) throw usage_error("PNG tiles hold at most 4 bands (use --bands)");
    }
}

// Tiles and indexes of an earlier run in OUTDIR, removed before --overwrite writes new ones.
void remove_previous_tiles(const fs::path& dir) {
    static const std::regex earlier(R"(r\d+_c\d+\.(tif|png|jpg)(\.aux\.xml)?|r\d+_c\d+\.(wld|tfw|pgw|jgw)|index\.(geojson|csv))");
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        if (entry.is_regular_file() && std::regex_match(entry.path().filename().string(), earlier)) {
            fs::remove(entry.path(), ec);
        }
    }
}

// Returns true when the directory was created by this run.
bool prepare_output_dir(const TileExportOptions& options) {
    const fs::path dir(options.output_dir);
    std::error_code ec;
    if (fs::exists(dir, ec)) {
        if (!fs::is_directory(dir, ec)) throw usage_error(options.output_dir + ": exists and is not a directory");
        if (!fs::is_empty(dir, ec)) {
            if (!options.overwrite) {
                throw usage_error(options.output_dir + ": directory is not empty (use --overwrite to reuse it)");
            }
            remove_previous_tiles(dir);
        }
        return false;
    }
    fs::create_directories(dir, ec);
    if (ec) throw Error(options.output_dir + ": cannot create the output directory: " + ec.message());
    return true;
}

struct TileRecord {
    std::string id, file;
    int64_t row, col;
    PixelWindow window;
};

// Footprint corners of a pixel window through the geotransform (pixel space when not georeferenced).
std::vector<std::pair<double, double>> footprint(const RasterInfo& info, const PixelWindow& w) {
    const auto& g = info.geotransform;
    auto at = [&](double px, double py) { return std::make_pair(g[0] + px * g[1] + py * g[2], g[3] + px * g[4] + py * g[5]); };
    return {at(w.x, w.y), at(w.right(), w.y), at(w.right(), w.bottom()), at(w.x, w.bottom()), at(w.x, w.y)};
}

std::string footprint_wkt(const RasterInfo& info, const PixelWindow& w) {
    std::ostringstream out;
    out << std::setprecision(15) << "POLYGON ((";
    const auto corners = footprint(info, w);
    for (size_t i = 0; i < corners.size(); ++i) {
        out << (i ? ", " : "") << corners[i].first << " " << corners[i].second;
    }
    out << "))";
    return out.str();
}

void write_index_geojson(const std::string& path, const RasterInfo& info, const std::vector<TileRecord>& tiles) {
    PendingOutput pending(path);
    GDALDriver* driver = GetGDALDriverManager()->GetDriverByName("GeoJSON");
    if (!driver) throw Error("GDAL has no GeoJSON driver");
    CPLErrorReset();
    DatasetPtr ds(driver->Create(pending.temporary_path().c_str(), 0, 0, 0, GDT_Unknown, nullptr));
    if (!ds) throw Error(path + ": cannot create the tile index: " + last_gdal_error());
    OGRSpatialReference srs;
    const bool has_srs = !info.crs_wkt.empty() && srs.importFromWkt(info.crs_wkt.c_str()) == OGRERR_NONE;
    if (has_srs) srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    OGRLayer* layer = ds->CreateLayer("tiles", has_srs ? &srs : nullptr, wkbPolygon, nullptr);
    if (!layer) throw Error(path + ": cannot create the tile index layer: " + last_gdal_error());
    OGRFieldDefn id("id", OFTString), file("file", OFTString);
    layer->CreateField(&id);
    for (const char* name : {"row", "col", "x", "y", "width", "height"}) {
        OGRFieldDefn f(name, OFTInteger64);
        layer->CreateField(&f);
    }
    layer->CreateField(&file);
    for (const TileRecord& t : tiles) {
        OGRFeature feature(layer->GetLayerDefn());
        feature.SetField("id", t.id.c_str());
        feature.SetField("row", static_cast<GIntBig>(t.row));
        feature.SetField("col", static_cast<GIntBig>(t.col));
        feature.SetField("x", static_cast<GIntBig>(t.window.x));
        feature.SetField("y", static_cast<GIntBig>(t.window.y));
        feature.SetField("width", static_cast<GIntBig>(t.window.width));
        feature.SetField("height", static_cast<GIntBig>(t.window.height));
        feature.SetField("file", t.file.c_str());
        OGRLinearRing ring;
        for (const auto& [x, y] : footprint(info, t.window)) ring.addPoint(x, y);
        OGRPolygon polygon;
        polygon.addRing(&ring);
        feature.SetGeometry(&polygon);
        if (layer->CreateFeature(&feature) != OGRERR_NONE) throw Error(path + ": writing the tile index failed: " + last_gdal_error());
    }
    close_written(std::move(ds), path);
    pending.commit();
}

void write_index_csv(const std::string& path, const RasterInfo& info, const std::vector<TileRecord>& tiles) {
    PendingOutput pending(path);
    {
        std::ofstream out(pending.temporary_path());
        out << "id,row,col,x,y,width,height,file,footprint_wkt\n";
        for (const TileRecord& t : tiles) {
            out << t.id << ',' << t.row << ',' << t.col << ',' << t.window.x << ',' << t.window.y << ','
                << t.window.width << ',' << t.window.height << ',' << t.file << ",\"" << footprint_wkt(info, t.window)
                << "\"\n";
        }
        out.flush();
        if (!out) throw Error(path + ": writing the tile index failed");
    }
    pending.commit();
}

class TileWriter {
public:
    TileWriter(const RasterSource& source, const std::vector<int>& bands, const FormatInfo& format, GDALDataType type,
               std::vector<std::string> creation_options, std::optional<double> nodata)
        : source_(source), bands_(bands), format_(format), type_(type), nodata_(nodata) {
        for (const auto& o : creation_options) options_.AddString(o.c_str());
        if (format.driver != "GTiff") options_.SetNameValue("WORLDFILE", "YES");
        driver_ = GetGDALDriverManager()->GetDriverByName(format.driver.c_str());
        memory_ = GetGDALDriverManager()->GetDriverByName("MEM");
        if (!driver_ || !memory_) throw Error("GDAL has no " + format.driver + " driver");
    }

    void write(const std::string& path, const PixelWindow& window, const void* data) const {
        PendingOutput pending(path);
        const bool direct = format_.driver == "GTiff";
        const int nb = static_cast<int>(bands_.size());
        CPLErrorReset();
        DatasetPtr ds(direct ? driver_->Create(pending.temporary_path().c_str(), static_cast<int>(window.width),
                                               static_cast<int>(window.height), nb, type_, options_.List())
                             : memory_->Create("", static_cast<int>(window.width), static_cast<int>(window.height), nb,
                                               type_, nullptr));
        if (!ds) throw Error(path + ": cannot create the tile: " + last_gdal_error());
        const int64_t elem = GDALGetDataTypeSizeBytes(type_);
        if (ds->RasterIO(GF_Write, 0, 0, static_cast<int>(window.width), static_cast<int>(window.height),
                         const_cast<void*>(data), static_cast<int>(window.width), static_cast<int>(window.height),
                         type_, nb, nullptr, elem, window.width * elem, window.area() * elem, nullptr) != CE_None) {
            throw Error(path + ": writing the tile failed: " + last_gdal_error());
        }
        describe(*ds, window);
        if (direct) {
            close_written(std::move(ds), path);
        } else {
            DatasetPtr copy(driver_->CreateCopy(pending.temporary_path().c_str(), ds.get(), FALSE, options_.List(),
                                                nullptr, nullptr));
            if (!copy) throw Error(path + ": writing the tile failed: " + last_gdal_error());
            close_written(std::move(copy), path);
        }
        pending.commit();
    }

private:
    void describe(GDALDataset& ds, const PixelWindow& window) const {
        const RasterInfo& info = source_.info();
        if (info.has_geotransform) {
            auto gt = info.window_geotransform(window.x, window.y);
            ds.SetGeoTransform(gt.data());
        }
        if (!info.crs_wkt.empty()) {
            OGRSpatialReference srs;
            if (srs.importFromWkt(info.crs_wkt.c_str()) == OGRERR_NONE) ds.SetSpatialRef(&srs);
        }
        for (size_t b = 0; b < bands_.size(); ++b) {
            GDALRasterBand* band = ds.GetRasterBand(static_cast<int>(b) + 1);
            const BandInfo& src = info.bands[static_cast<size_t>(bands_[b] - 1)];
            band->SetColorInterpretation(GDALGetColorInterpretationByName(src.color_interpretation.c_str()));
            if (nodata_) band->SetNoDataValue(*nodata_);
        }
    }

    const RasterSource& source_;
    const std::vector<int>& bands_;
    FormatInfo format_;
    GDALDataType type_;
    std::optional<double> nodata_;
    CPLStringList options_;
    GDALDriver* driver_ = nullptr;
    GDALDriver* memory_ = nullptr;
};

bool any_valid(const uint8_t* validity, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        if (validity[i]) return true;
    }
    return false;
}

}  // namespace

TileExportResult export_tiles(const TileExportOptions& options, const ProgressFn& progress) {
    const FormatInfo format = format_info(options.format);
    const RasterSource source = RasterSource::open(options.input);
    const RasterInfo& info = source.info();
    const std::vector<int> bands = options.bands.empty() ? source.all_bands() : options.bands;
    source.check_bands(bands);
    const TileGrid grid(info.width, info.height, options.grid);

    const bool scaling = options.scaling.method != ScalingMethod::none;
    GDALDataType source_type = info.bands[static_cast<size_t>(bands[0] - 1)].data_type;
    for (int b : bands) source_type = GDALDataTypeUnion(source_type, info.bands[static_cast<size_t>(b - 1)].data_type);
    const GDALDataType out_type = scaling ? GDT_Byte : source_type;
    check_format_can_hold(format, out_type, bands.size());

    std::optional<double> source_nodata = info.bands[static_cast<size_t>(bands[0] - 1)].nodata;
    const bool has_mask = info.mask != MaskSource::none;
    // Scaled tiles keep 0 for nodata and put valid pixels in 1..255 so they never collide with it.
    const std::optional<double> out_nodata = scaling ? (has_mask ? std::optional<double>(0) : std::nullopt) : source_nodata;

    Normalizer normalizer;
    if (scaling) {
        std::vector<BandStatistics> stats;
        if (options.scaling.method == ScalingMethod::minmax || options.scaling.method == ScalingMethod::percentile) {
            report_progress(progress, 0.0, "sampling band statistics");
            stats = sample_band_statistics(source, bands, options.scaling.low_percent, options.scaling.high_percent);
        }
        const double lo = has_mask ? 1 : 0;
        normalizer.scaling = scaling_maps(options.scaling, stats, bands.size(), lo, 255);
        normalizer.clamp = true;
        normalizer.clamp_min = lo;
        normalizer.clamp_max = 255;
    }

    const bool created_dir = prepare_output_dir(options);
    TileExportResult result;
    result.rows = grid.rows();
    result.cols = grid.cols();
    result.tiles_total = grid.count();
    result.format = format.driver;
    result.data_type = GDALGetDataTypeName(out_type);
    result.index_geojson = options.index_path.empty() ? (fs::path(options.output_dir) / "index.geojson").string()
                                                      : options.index_path;
    result.index_csv = fs::path(result.index_geojson).replace_extension(".csv").string();
    check_output_path(result.index_geojson, true);

    EdgeFill edge;
    edge.mode = options.grid.edge == EdgePolicy::reflect ? EdgeFill::Mode::reflect : EdgeFill::Mode::constant;
    edge.value = options.fill_value;

    const GDALDataType read_type = scaling ? GDT_Float32 : out_type;
    const int64_t read_elem = GDALGetDataTypeSizeBytes(read_type);
    const int64_t out_elem = GDALGetDataTypeSizeBytes(out_type);
    const bool need_validity = options.skip_empty || (scaling && has_mask);
    const size_t nb = bands.size();
    TileReader reader(source, grid, bands, read_type, edge, need_validity, options.memory_budget_mb * 1024 * 1024 / 2);

    // The reader (this thread) cuts tiles out of row strips; workers encode and write them, each
    // with its own GDAL datasets. Records are sorted by tile index at the end.
    struct Job {
        Tile tile;
        std::vector<unsigned char> payload;
    };
    BoundedQueue<Job> jobs(static_cast<size_t>(2 * std::max(1, options.threads)));
    std::mutex done_mutex;
    std::vector<TileRecord> records;
    std::vector<std::string> written;
    FirstError failure;
    std::atomic<int64_t> finished{0};
    std::vector<std::thread> workers;
    auto stop_workers = [&] {
        jobs.close();
        for (auto& w : workers) {
            if (w.joinable()) w.join();
        }
    };
    for (int t = 0; t < std::max(1, options.threads); ++t) {
        workers.emplace_back([&] {
            try {
                const TileWriter writer(source, bands, format, out_type, options.creation_options, out_nodata);
                while (auto job = jobs.pop()) {
                    TileRecord record{job->tile.id(), job->tile.id() + "." + format.extension, job->tile.row, job->tile.col,
                                      job->tile.window};
                    const std::string path = (fs::path(options.output_dir) / record.file).string();
                    writer.write(path, job->tile.window, job->payload.data());
                    std::lock_guard<std::mutex> lock(done_mutex);
                    written.push_back(path);
                    records.push_back(std::move(record));
                    ++finished;
                }
            } catch (...) {
                failure.record(std::current_exception());
                jobs.close();
            }
        });
    }
    std::vector<uint8_t> tile_valid;
    try {
        for (int64_t r = 0; r < grid.rows(); ++r) {
            for (int64_t c = 0; c < grid.cols(); ++c) {
                const Tile tile = grid.at(r, c);
                const PixelWindow& w = tile.window;
                Job job{tile, std::vector<unsigned char>(static_cast<size_t>(w.area() * read_elem) * nb)};
                if (need_validity) tile_valid.resize(static_cast<size_t>(w.area()));
                reader.read(tile, job.payload.data(), need_validity ? tile_valid.data() : nullptr);
                report_progress(progress, static_cast<double>(finished.load() + result.tiles_skipped) / grid.count(), "tiles");
                if (options.skip_empty && !any_valid(tile_valid.data(), w.area())) {
                    ++result.tiles_skipped;
                    continue;
                }
                if (scaling) {
                    auto* values = reinterpret_cast<float*>(job.payload.data());
                    mask_non_finite(values, static_cast<int>(nb), w.area(), need_validity ? tile_valid.data() : nullptr);
                    normalizer.apply(values, nb, w.area());
                    if (has_mask) {
                        for (size_t b = 0; b < nb; ++b) {
                            for (int64_t i = 0; i < w.area(); ++i) {
                                if (!tile_valid[i]) values[b * w.area() + i] = 0;
                            }
                        }
                    }
                    std::vector<unsigned char> converted(static_cast<size_t>(w.area() * out_elem) * nb);
                    GDALCopyWords64(values, GDT_Float32, 4, converted.data(), out_type, static_cast<int>(out_elem),
                                    w.area() * static_cast<int64_t>(nb));
                    job.payload.swap(converted);
                }
                if (!jobs.push(std::move(job))) break;  // a worker failed
            }
        }
        stop_workers();
        failure.rethrow_if_any();
        result.tiles_written = static_cast<int64_t>(records.size());
        std::sort(records.begin(), records.end(), [](const TileRecord& a, const TileRecord& b) {
            return a.row != b.row ? a.row < b.row : a.col < b.col;
        });
        report_progress(progress, 1.0, "index");
        write_index_geojson(result.index_geojson, info, records);
        write_index_csv(result.index_csv, info, records);
    } catch (...) {
        stop_workers();
        for (const auto& path : written) remove_with_sidecars(path);  // no partial output
        std::error_code ec;
        if (created_dir) fs::remove(options.output_dir, ec);  // only if empty
        throw;
    }
    return result;
}

}  // namespace rsi
