#include "src/tile_export.hpp"
#include "src/json_text.hpp"

#include <algorithm>
#include <cpl_conv.h>
#include <cpl_string.h>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <atomic>
#include <mutex>
#include <ogrsf_frmts.h>
#include <thread>
#include <regex>
#include <set>
#include <sstream>
#include <unistd.h>
#include <fcntl.h>
#include <cerrno>
#include <cstring>

#include "src/geotiff_tile_template.hpp"
#include "src/item_journal.hpp"
#include "src/output_file.hpp"
#include "src/run_manifest.hpp"
#include "src/shard_lock.hpp"
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

// Tiles and indexes of an earlier run in OUTDIR, removed before --overwrite writes new ones (with the
// parts folder of an earlier sharded or resumable run).
void remove_previous_tiles(const fs::path& dir) {
    // .msk: a tile mask written beside the tile (rsi writes them inside; older runs and GDAL defaults
    // did not), which GDAL would otherwise attach to a new tile of the same name.
    static const std::regex earlier(R"(r\d+_c\d+\.(tif|png|jpg)(\.aux\.xml|\.msk)?|r\d+_c\d+\.(wld|tfw|pgw|jgw)|index\.(geojson|csv))");
    std::error_code ec;
    fs::remove_all(dir / "index.geojson.parts", ec);
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        if (entry.is_regular_file() && std::regex_match(entry.path().filename().string(), earlier)) {
            fs::remove(entry.path(), ec);
        }
    }
}

// The tile files an export writes: r<row>_c<col>.<tif|png|jpg>.
const std::regex& tile_file_pattern() {
    static const std::regex pattern(R"(r(\d+)_c(\d+)\.(tif|png|jpg))");
    return pattern;
}

std::string index_geojson_path(const std::string& output_dir, const std::string& index_path) {
    return index_path.empty() ? (fs::path(output_dir) / "index.geojson").string() : index_path;
}

// Sharded runs share OUTDIR: it may exist, hold other shards' tiles, or be created by a sibling right now.
void prepare_shared_output_dir(const std::string& output_dir) {
    std::error_code ec;
    if (fs::exists(output_dir, ec) && !fs::is_directory(output_dir, ec)) throw usage_error(output_dir + ": exists and is not a directory");
    fs::create_directories(output_dir, ec);
    if (!fs::is_directory(output_dir, ec)) throw Error(output_dir + ": cannot create the output directory: " + ec.message());
}

// Removes what killed runs left while writing tiles of rows [first, end): `.rsi-tmp-<pid>-<n>-r<row>_c<col>.<ext>`
// and its sidecars. Only this shard writes those tiles, so every such temporary of another process is
// stale, whichever node it ran on (a pid test would be meaningless on a shared file system).
void remove_stale_tile_temporaries(const fs::path& dir, int64_t first, int64_t end) {
    static const std::regex temporary(R"(\.rsi-tmp-(\d+)-\d+-r(\d+)_c\d+\..*)");
    std::error_code ec;
    std::smatch m;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (!std::regex_match(name, m, temporary)) continue;
        const long pid = std::stol(m[1].str());
        const int64_t row = std::stoll(m[2].str());
        if (pid != static_cast<long>(::getpid()) && row >= first && row < end) fs::remove(entry.path(), ec);
    }
}

// A plain run writes its tiles straight under their final names, so it owns OUTDIR for its duration:
// a second plain run into the same folder (both found it empty) would write the same names, and the
// one that failed removed the tiles it had written, which were the other's. `.rsi-tile-lock` (created
// exclusively, holding the pid) keeps the second out; a lock whose process is gone (kill -9) is taken over.
class OutputDirLock {
public:
    static constexpr const char* kName = ".rsi-tile-lock";
    ~OutputDirLock() { release(); }
    void acquire(const fs::path& dir) {
        const fs::path lock = dir / kName;
        for (int attempt = 0; attempt < 2; ++attempt) {
            const int fd = ::open(lock.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
            if (fd >= 0) {
                const std::string pid = std::to_string(::getpid()) + "\n";
                const bool ok = ::write(fd, pid.data(), pid.size()) == static_cast<ssize_t>(pid.size());
                ::close(fd);
                path_ = lock.string();
                if (!ok) throw Error(path_ + ": cannot write the folder's lock");
                return;
            }
            if (errno != EEXIST) throw Error(lock.string() + ": cannot create the folder's lock: " + std::strerror(errno));
            std::ifstream in(lock);
            long holder = 0;
            in >> holder;
            if (process_is_running(holder)) {
                throw Error(dir.string() + ": another rsi tile run (pid " + std::to_string(holder) +
                            ") is writing into this folder; wait for it or write elsewhere");
            }
            std::error_code ec;
            fs::remove(lock, ec);  // its run is gone
        }
        throw Error(lock.string() + ": cannot take over the folder's lock");
    }
    void release() {
        if (path_.empty()) return;
        std::error_code ec;
        fs::remove(path_, ec);
        path_.clear();
    }

private:
    std::string path_;
};

bool empty_but_lock(const fs::path& dir) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        if (entry.path().filename() != OutputDirLock::kName) return false;
    }
    return true;
}

// Returns true when the directory was created by this run. Takes the folder's lock before looking at
// what it holds (an --overwrite run removed the tiles a running one had written).
bool prepare_output_dir(const TileExportOptions& options, OutputDirLock& lock) {
    const fs::path dir(options.output_dir);
    std::error_code ec;
    bool created = false;
    if (fs::exists(dir, ec)) {
        if (!fs::is_directory(dir, ec)) throw usage_error(options.output_dir + ": exists and is not a directory");
    } else {
        created = fs::create_directories(dir, ec);  // false when a racing run made it first
        if (ec) throw Error(options.output_dir + ": cannot create the output directory: " + ec.message());
    }
    lock.acquire(dir);
    if (!created && !empty_but_lock(dir)) {
        if (!options.overwrite) {
            throw usage_error(options.output_dir + ": directory is not empty (use --overwrite to reuse it)");
        }
        remove_previous_tiles(dir);
    }
    return created;
}

struct TileRecord {
    std::string id, file;
    int64_t row, col;
    PixelWindow window;
};

nlohmann::json record_to_json(const TileRecord& t) {
    return {{"id", t.id}, {"file", t.file}, {"row", t.row}, {"col", t.col},
            {"x", t.window.x}, {"y", t.window.y}, {"width", t.window.width}, {"height", t.window.height}};
}

TileRecord record_from_json(const nlohmann::json& j) {
    TileRecord t;
    t.id = j.at("id").get<std::string>();
    t.file = j.at("file").get<std::string>();
    t.row = j.at("row").get<int64_t>();
    t.col = j.at("col").get<int64_t>();
    t.window = {j.at("x").get<int64_t>(), j.at("y").get<int64_t>(), j.at("width").get<int64_t>(), j.at("height").get<int64_t>()};
    if (t.file.empty() || t.file.find('/') != std::string::npos) throw std::invalid_argument("file");
    return t;
}

void sort_records(std::vector<TileRecord>& records) {
    std::sort(records.begin(), records.end(), [](const TileRecord& a, const TileRecord& b) {
        return a.row != b.row ? a.row < b.row : a.col < b.col;
    });
}

std::string shard_part_name(const ShardSpec& shard) {
    return "shard-" + std::to_string(shard.index) + "-of-" + std::to_string(shard.count) + ".json";
}

// Footprint corners of a pixel window through the geotransform (pixel space when not georeferenced):
// the part inside the image, so a tile padded past the border does not claim ground it has no data for.
std::vector<std::pair<double, double>> footprint(const RasterInfo& info, const PixelWindow& tile) {
    const PixelWindow w = tile.intersect({0, 0, info.width, info.height});
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

// The tile files as the index names them: relative to the index's own folder, so that a GIS (or a
// script) opening an index kept outside OUTDIR finds them ("tiles/r0_c0.tif"; just the name inside it).
std::string tile_file_prefix(const std::string& output_dir, const std::string& index_geojson) {
    const fs::path tiles = path_identity(output_dir);
    const fs::path index_dir = path_identity(index_geojson).parent_path();
    if (tiles == index_dir) return "";
    const fs::path relative = tiles.lexically_relative(index_dir);
    return relative.empty() ? tiles.string() + "/" : relative.string() + "/";
}

bool index_inside_output_dir(const std::string& output_dir, const std::string& index_geojson) {
    return tile_file_prefix(output_dir, index_geojson).empty();
}

// The index files are written complete under temporary names; write_index renames them.
PendingOutput write_index_geojson(const std::string& path, const RasterInfo& info, const std::vector<TileRecord>& tiles,
                                  const std::string& file_prefix, bool overwrite) {
    PendingOutput pending(path, overwrite);
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
        feature.SetField("file", (file_prefix + t.file).c_str());
        OGRLinearRing ring;
        for (const auto& [x, y] : footprint(info, t.window)) ring.addPoint(x, y);
        OGRPolygon polygon;
        polygon.addRing(&ring);
        feature.SetGeometry(&polygon);
        if (layer->CreateFeature(&feature) != OGRERR_NONE) throw Error(path + ": writing the tile index failed: " + last_gdal_error());
    }
    close_written(std::move(ds), path);
    check_vector_written(pending.temporary_path(), path, static_cast<int64_t>(tiles.size()), "tiles");
    return pending;
}

PendingOutput write_index_csv(const std::string& path, const RasterInfo& info, const std::vector<TileRecord>& tiles,
                              const std::string& file_prefix, bool overwrite) {
    PendingOutput pending(path, overwrite);
    {
        std::ofstream out(pending.temporary_path());
        out << "id,row,col,x,y,width,height,file,footprint_wkt\n";
        for (const TileRecord& t : tiles) {
            out << t.id << ',' << t.row << ',' << t.col << ',' << t.window.x << ',' << t.window.y << ','
                << t.window.width << ',' << t.window.height << ',' << file_prefix << t.file << ",\"" << footprint_wkt(info, t.window)
                << "\"\n";
        }
        out.flush();
        if (!out) throw Error(path + ": writing the tile index failed" + write_failure_reason());
    }
    return pending;
}

// Both index files, renamed into place only when both are complete and both final paths are free (an
// index outside OUTDIR may meet a file another run wrote meanwhile): never one without the other.
void write_index(const std::string& geojson_path, const std::string& csv_path, const RasterInfo& info,
                 const std::vector<TileRecord>& tiles, const std::string& file_prefix, bool overwrite) {
    PendingOutput geojson = write_index_geojson(geojson_path, info, tiles, file_prefix, overwrite);
    PendingOutput csv = write_index_csv(csv_path, info, tiles, file_prefix, overwrite);
    geojson.check_final_path_free();
    csv.check_final_path_free();
    csv.commit();
    geojson.commit();
}

class TileWriter {
public:
    TileWriter(const RasterSource& source, const std::vector<int>& bands, const FormatInfo& format, GDALDataType type,
               std::vector<std::string> creation_options, std::optional<double> nodata, int64_t tile_height)
        : source_(source), bands_(bands), format_(format), type_(type), nodata_(nodata) {
        set_creation_options(options_, creation_options);
        if (format.driver != "GTiff") options_.SetNameValue("WORLDFILE", "YES");
        // One strip per tile unless -co says otherwise: GDAL's default of ~8 KB strips costs a cached
        // block, a lock and a libtiff write per strip and band (hundreds per tile), measured 20 % of
        // rsi tile's CPU time; a 512² tile is read whole anyway.
        if (format.driver == "GTiff" && !options_.FetchNameValue("BLOCKYSIZE") && !options_.FetchNameValue("TILED")) {
            options_.SetNameValue("BLOCKYSIZE", std::to_string(tile_height).c_str());
        }
        driver_ = GetGDALDriverManager()->GetDriverByName(format.driver.c_str());
        memory_ = GetGDALDriverManager()->GetDriverByName("MEM");
        if (!driver_ || !memory_) throw Error("GDAL has no " + format.driver + " driver");
        const RasterInfo& info = source.info();
        has_crs_ = !info.crs_wkt.empty() && crs_.importFromWkt(info.crs_wkt.c_str()) == OGRERR_NONE;
        // The geotransform is x = easting/longitude: without this, PNG/JPEG tiles of an EPSG:4326 image
        // carry a .aux.xml saying the axes are latitude, longitude (the GeoTIFF driver ignores it).
        crs_.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    }

    // Uncompressed GeoTIFF tiles without creation options from the user are written from a template
    // (see geotiff_tile_template.hpp) once it has reproduced GDAL's file for `check`.
    void use_template_if_possible(const PixelWindow& first, const PixelWindow& check, bool user_options) {
        if (format_.driver != "GTiff" || user_options) return;
        const RasterInfo& info = source_.info();
        if (!info.has_geotransform) return;
        tile_template_ = GeoTiffTileTemplate::build(
            [this](const std::string& path, const PixelWindow& w, const void* pixels) { write_with_gdal(path, w, pixels); },
            [&info](const PixelWindow& w) {
                const auto gt = info.window_geotransform(w.x, w.y);
                return std::array<double, 2>{gt[0], gt[3]};
            },
            first, check, static_cast<int>(bands_.size()), type_);
    }
    bool uses_template() const { return tile_template_.has_value(); }

    // `atomic`: written under a temporary name and renamed into place (resumable and sharded runs, where
    // a tile's presence means it is complete). Otherwise straight to `path`, which is removed again if
    // writing fails: the index, written last, is what marks such a run's OUTDIR complete, and the
    // rename doubled the directory operations that bound tiling speed (creating ~1300 files).
    // `mask` (or nullptr): 0 where the source has no data, written as the tile's internal mask band.
    void write(const std::string& path, const PixelWindow& window, const void* data, std::vector<unsigned char>& scratch,
               bool atomic, const uint8_t* mask = nullptr) const {
        if (atomic) {
            PendingOutput pending(path, true);  // a resumed run rewrites a tile a killed one left
            write_to(pending.temporary_path(), window, data, scratch, mask);
            pending.commit();
            return;
        }
        try {
            write_to(path, window, data, scratch, mask);
        } catch (...) {
            remove_with_sidecars(path);
            throw;
        }
    }

private:
    void write_to(const std::string& target, const PixelWindow& window, const void* data,
                  std::vector<unsigned char>& scratch, const uint8_t* mask) const {
        if (tile_template_ && !mask) {
            tile_template_->write(target, window, data, scratch);
        } else {
            write_with_gdal(target, window, data, mask);
        }
    }

    void write_with_gdal(const std::string& target, const PixelWindow& window, const void* data, const uint8_t* mask = nullptr) const {
        const bool direct = format_.driver == "GTiff";
        const int nb = static_cast<int>(bands_.size());
        CPLErrorReset();
        DatasetPtr ds(direct ? driver_->Create(target.c_str(), static_cast<int>(window.width),
                                               static_cast<int>(window.height), nb, type_, options_.List())
                             : memory_->Create("", static_cast<int>(window.width), static_cast<int>(window.height), nb,
                                               type_, nullptr));
        if (!ds) throw Error(target + ": cannot create the tile: " + last_gdal_error());
        const int64_t elem = GDALGetDataTypeSizeBytes(type_);
        if (ds->RasterIO(GF_Write, 0, 0, static_cast<int>(window.width), static_cast<int>(window.height),
                         const_cast<void*>(data), static_cast<int>(window.width), static_cast<int>(window.height),
                         type_, nb, nullptr, elem, window.width * elem, window.area() * elem, nullptr) != CE_None) {
            throw Error(target + ": writing the tile failed: " + last_gdal_error());
        }
        if (mask) {
            // Inside the GeoTIFF (GDAL's default is a .msk file beside it, which a copy by the index's
            // file names loses and a later tile of the same name would inherit).
            struct InternalMask {
                InternalMask() { CPLSetThreadLocalConfigOption("GDAL_TIFF_INTERNAL_MASK", "YES"); }
                ~InternalMask() { CPLSetThreadLocalConfigOption("GDAL_TIFF_INTERNAL_MASK", nullptr); }
            } internal_mask;
            if (ds->CreateMaskBand(GMF_PER_DATASET) != CE_None ||
                ds->GetRasterBand(1)->GetMaskBand()->RasterIO(GF_Write, 0, 0, static_cast<int>(window.width), static_cast<int>(window.height),
                                                              const_cast<uint8_t*>(mask), static_cast<int>(window.width),
                                                              static_cast<int>(window.height), GDT_Byte, 0, 0) != CE_None) {
                throw Error(target + ": writing the tile's mask failed: " + last_gdal_error());
            }
        }
        describe(*ds, window);
        if (direct) {
            close_written(std::move(ds), target);
        } else {
            DatasetPtr copy(driver_->CreateCopy(target.c_str(), ds.get(), FALSE, options_.List(), nullptr, nullptr));
            if (!copy) throw Error(target + ": writing the tile failed: " + last_gdal_error());
            close_written(std::move(copy), target);
        }
    }

    void describe(GDALDataset& ds, const PixelWindow& window) const {
        const RasterInfo& info = source_.info();
        if (info.has_geotransform) {
            auto gt = info.window_geotransform(window.x, window.y);
            ds.SetGeoTransform(gt.data());
        } else {
            set_ground_control_points(ds, info.gcps, info.gcp_crs_wkt, static_cast<double>(window.x), static_cast<double>(window.y));
        }
        if (has_crs_) ds.SetSpatialRef(&crs_);
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
    OGRSpatialReference crs_;  // parsed once per writer, not once per tile
    bool has_crs_ = false;
    GDALDriver* driver_ = nullptr;
    GDALDriver* memory_ = nullptr;
    std::optional<GeoTiffTileTemplate> tile_template_;
};

bool any_valid(const uint8_t* validity, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        if (validity[i]) return true;
    }
    return false;
}

}  // namespace

std::string tile_parts_dir(const std::string& output_dir, const std::string& index_path) {
    return index_geojson_path(output_dir, index_path) + ".parts";
}

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
    // Tiles that reach past the image (one smaller than a tile, or the regular lattice of the reflect
    // and constant edge policies) hold fill there, not data, and say so like masked pixels.
    const PixelWindow image_window{0, 0, info.width, info.height};
    const bool padded = !image_window.contains(grid.at(0, 0).window) ||
                        !image_window.contains(grid.at(grid.rows() - 1, grid.cols() - 1).window);
    // NaN and infinities are no data in float bands, declared or not (as segment and scene take them).
    const bool check_finite = may_hold_non_finite(info, bands);
    // Scaled tiles keep 0 for nodata and put valid pixels in 1..255 so they never collide with it.
    const bool scaled_nodata = has_mask || padded || check_finite;
    // Unscaled float tiles without a declared nodata declare NaN, so that GDAL and QGIS take NaN pixels
    // for no data as rsi does (without it GDAL counts them as valid).
    const bool float_out = GDALDataTypeIsFloating(out_type) != 0;
    const std::optional<double> out_nodata =
        scaling ? (scaled_nodata ? std::optional<double>(0) : std::nullopt)
                : (source_nodata || !float_out ? source_nodata : std::optional<double>(std::numeric_limits<double>::quiet_NaN()));

    TileExportResult result;
    Normalizer normalizer;
    if (scaling) {
        std::vector<BandStatistics> stats;
        if (options.scaling.method == ScalingMethod::minmax || options.scaling.method == ScalingMethod::percentile) {
            report_progress(progress, 0.0, "sampling band statistics");
            stats = sample_band_statistics(source, bands, options.scaling.low_percent, options.scaling.high_percent);
            for (size_t b = 0; b < stats.size(); ++b) {
                if (stats[b].samples > 0) continue;
                result.warnings.push_back(options.input + ": band " + std::to_string(bands[b]) +
                                          ": no valid pixel in the sampled windows, so it is not stretched (its values, clamped to 0..255)");
            }
        }
        const double lo = scaled_nodata ? 1 : 0;
        normalizer.scaling = scaling_maps(options.scaling, stats, bands.size(), lo, 255);
        normalizer.clamp = true;
        normalizer.clamp_min = lo;
        normalizer.clamp_max = 255;
    }

    if (!info.georeferenced()) {
        // GeoJSON without a "crs" member is WGS84 to every reader: pixel-coordinate footprints there
        // are read as degrees near (0, 0).
        const bool gcps = info.gcp_count > 0 && !info.has_geotransform;
        const std::string frame = gcps ? "has " + std::to_string(info.gcp_count) +
                                             " ground control points but no geotransform: the tiles carry them (moved to each tile), but"
                                       : std::string("is not georeferenced:");
        result.warnings.push_back(options.input + " " + frame + (gcps ? " the index footprints are" : " the tiles and the index footprints are") +
                                  " in pixel coordinates (x right, y down), which GIS "
                                  "readers of the GeoJSON index take for WGS84 degrees; use the CSV index, or warp the image "
                                  "first (gdalwarp)");
    }
    result.rows = grid.rows();
    result.cols = grid.cols();
    result.tiles_total = grid.count();
    result.format = format.driver;
    result.data_type = GDALGetDataTypeName(out_type);
    result.index_geojson = index_geojson_path(options.output_dir, options.index_path);
    result.index_csv = fs::path(result.index_geojson).replace_extension(".csv").string();
    result.end_row = grid.rows();
    // `--index IMAGE --overwrite` replaced the image with GeoJSON.
    check_distinct_outputs({result.index_geojson, result.index_csv}, {options.input});
    // An index named like a tile in OUTDIR (r0_c0.tif) would replace that tile, and later runs would
    // take it for one (resume, --overwrite's clean-up).
    if (index_inside_output_dir(options.output_dir, result.index_geojson)) {
        for (const std::string& index : {result.index_geojson, result.index_csv}) {
            if (std::regex_match(fs::path(index).filename().string(), tile_file_pattern())) {
                throw usage_error(index + ": is named like a tile of OUTDIR (r<row>_c<col>); give the index another name");
            }
        }
    }

    // Sharded and resumable runs write into a shared OUTDIR (no temporary folder renamed at the end:
    // N processes, possibly on N nodes, fill it at once), so each tile is atomic on its own and the
    // index comes from per-shard parts. An unsharded run keeps the plain rules (empty OUTDIR or --overwrite).
    const bool journaled = options.shard.has_value() || options.resume;
    const ShardSpec shard = options.shard.value_or(ShardSpec{});
    const fs::path dir(options.output_dir);
    const auto tile_path = [&](int64_t row, int64_t col) {
        return (dir / ("r" + std::to_string(row) + "_c" + std::to_string(col) + "." + format.extension)).string();
    };
    bool created_dir = false;
    OutputDirLock dir_lock;  // plain runs: released when the run ends, after its clean-up
    bool keep_existing = false;  // resume: tiles already in OUTDIR are finished work of this job
    std::string parts_dir;
    std::unique_ptr<ShardLock> shard_lock;  // journaled runs: one process per shard
    nlohmann::json job;
    const bool index_outside = !index_inside_output_dir(options.output_dir, result.index_geojson);
    if (!journaled) {
        // An index kept outside OUTDIR is checked before OUTDIR is made: a refused run leaves no empty
        // folder, and a file of the user's is replaced only with --overwrite (inside, OUTDIR's own check
        // applies).
        if (index_outside) {
            check_output_path(result.index_geojson, options.overwrite);
            check_output_path(result.index_csv, options.overwrite);
        }
        created_dir = prepare_output_dir(options, dir_lock);
        if (options.overwrite) {
            std::error_code ec;
            fs::remove_all(tile_parts_dir(options.output_dir, options.index_path), ec);
        }
        check_output_path(result.index_geojson, true);
    } else {
        prepare_shared_output_dir(options.output_dir);
        parts_dir = tile_parts_dir(options.output_dir, options.index_path);
        if (!options.overwrite && fs::exists(result.index_geojson) && !fs::exists(fs::path(parts_dir) / "job.json")) {
            // The index is written last and the parts removed after it: a finished tiling. Unlike a map's
            // manifest, an index records no input fingerprint (the full read it costs would slow plain
            // runs by half), so it cannot be told apart from another job's: not skipped as finished.
            throw usage_error(result.index_geojson + ": already exists: the tiling of this folder is finished (no interrupted run to " +
                              (options.shard ? "continue" : "resume") + "; its parts folder is gone); use --overwrite to tile again");
        }
        check_output_path(result.index_geojson, options.overwrite);
        if (index_outside) check_output_path(result.index_csv, options.overwrite);
        result.parts_dir = parts_dir;
        std::tie(result.first_row, result.end_row) = shard_strips(grid.rows(), shard);
        if (options.overwrite && !options.shard) {
            std::error_code ec;
            fs::remove_all(parts_dir, ec);  // one process owns OUTDIR: start over
            if (!fs::is_empty(dir, ec)) remove_previous_tiles(dir);
        }
        const bool had_job = fs::exists(fs::path(parts_dir) / "job.json");
        // A shard run again (a requeued task) continues like --resume, as sharded segmentation does.
        keep_existing = had_job;
        if (!keep_existing && !options.overwrite) {
            for (int64_t r = result.first_row; r < result.end_row; ++r) {
                for (int64_t c = 0; c < grid.cols(); ++c) {
                    const std::string path = tile_path(r, c);
                    if (!fs::exists(path)) continue;
                    throw usage_error(path + ": already exists and no resumable or sharded run of this job wrote it (use --overwrite to replace it)");
                }
            }
        }
        nlohmann::json settings{{"input", fs::path(options.input).filename().string()},
                                {"width", info.width}, {"height", info.height},
                                {"tile_size", {options.grid.tile_width, options.grid.tile_height}},
                                {"overlap", options.grid.overlap}, {"edge", to_string(options.grid.edge)},
                                {"align", options.grid.align}, {"fill", options.fill_value}, {"bands", bands},
                                {"scale", to_string(options.scaling)}, {"format", format.driver},
                                {"creation_options", options.creation_options}, {"skip_empty", options.skip_empty}};
        const std::string input_fingerprint = file_fingerprint(options.input);
        settings["input_fingerprint"] = input_fingerprint.empty() ? options.input : input_fingerprint;  // remote: the URL
        job = {{"format", "rsi-tile-job"}, {"version", 1}, {"fingerprint", sha256_hex(json_text(settings))},
               {"settings", settings}, {"shards", shard.count}, {"rows", grid.rows()}, {"cols", grid.cols()},
               {"geotransform", info.geotransform}, {"crs_wkt", info.crs_wkt}, {"tile_format", format.driver},
               {"data_type", result.data_type}};
        job = start_or_check_job(parts_dir, job, "rerun with the same options, or remove " + parts_dir + " (and the tiles) to start over");
        check_shard_count(job, shard, parts_dir);
        // Before the clean-up below, which takes every other process's temporaries of these rows for a
        // killed run's: a second run of the same shard would remove the first's tiles in the making.
        shard_lock = std::make_unique<ShardLock>(parts_dir, shard);
        remove_stale_tile_temporaries(dir, result.first_row, result.end_row);
    }
    const int64_t my_tiles = (result.end_row - result.first_row) * grid.cols();

    EdgeFill edge;
    edge.mode = options.grid.edge == EdgePolicy::reflect ? EdgeFill::Mode::reflect : EdgeFill::Mode::constant;
    edge.value = options.fill_value;

    const GDALDataType read_type = scaling ? GDT_Float32 : out_type;
    const int64_t read_elem = GDALGetDataTypeSizeBytes(read_type);
    const int64_t out_elem = GDALGetDataTypeSizeBytes(out_type);
    // Unscaled GeoTIFF and JPEG tiles of an image with a mask band (or an alpha band left out by
    // --bands) carry the mask as their own internal mask band (JPEG: GDAL's bitmask after the image
    // data, which other readers skip): without it, masked pixels passed for data. PNG has no mask;
    // scaled tiles keep 0 for nodata instead.
    bool alpha_selected = false;
    for (int b : bands) alpha_selected |= info.bands[static_cast<size_t>(b - 1)].color_interpretation == "Alpha";
    // Padding gets such a mask too, on the tiles that reach past the image.
    const bool mask_capable = !scaling && (format.driver == "GTiff" || format.driver == "JPEG");
    const bool carry_mask = mask_capable && (info.mask == MaskSource::mask_band || (info.mask == MaskSource::alpha && !alpha_selected));
    const bool mask_padding = mask_capable && padded;
    const bool need_validity = options.skip_empty || (scaling && scaled_nodata) || carry_mask || mask_padding;
    const size_t nb = bands.size();
    // Pixels of an unscaled float tile that are not finite (the values themselves stay as they are).
    const auto mark_non_finite = [&](const unsigned char* payload, int64_t pixels, uint8_t* validity) {
        for (size_t b = 0; b < nb; ++b) {
            for (int64_t i = 0; i < pixels; ++i) {
                const double v = read_type == GDT_Float64 ? reinterpret_cast<const double*>(payload)[b * pixels + i]
                                                          : reinterpret_cast<const float*>(payload)[b * pixels + i];
                if (!std::isfinite(v)) validity[i] = 0;
            }
        }
    };
    TileReader reader(source, grid, bands, read_type, edge, need_validity, options.memory_budget_mb * 1024 * 1024 / 2);

    // The reader (this thread) cuts tiles out of row strips; workers encode and write them, each
    // with its own GDAL datasets. Records are sorted by tile index at the end.
    struct Job {
        Tile tile;
        std::vector<unsigned char> payload;
        std::vector<uint8_t> mask;  // carry_mask, or a tile past the border: 0 where there is no data
    };
    BoundedQueue<Job> jobs(static_cast<size_t>(2 * std::max(1, options.threads)));
    std::mutex done_mutex;
    std::vector<TileRecord> records;
    std::vector<std::string> written;
    FirstError failure;
    std::atomic<int64_t> finished{0};
    std::atomic<int> templated_writers{0};
    // Tile buffers go back and forth between the reader and the workers instead of being allocated
    // (and zero-filled) for every tile.
    std::mutex pool_mutex;
    std::vector<std::vector<unsigned char>> pool;
    auto acquire = [&](size_t bytes) {
        std::vector<unsigned char> buffer;
        {
            std::lock_guard<std::mutex> lock(pool_mutex);
            if (!pool.empty()) {
                buffer.swap(pool.back());
                pool.pop_back();
            }
        }
        buffer.resize(bytes);
        return buffer;
    };
    auto release = [&](std::vector<unsigned char>&& buffer) {
        std::lock_guard<std::mutex> lock(pool_mutex);
        pool.push_back(std::move(buffer));
    };
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
                TileWriter writer(source, bands, format, out_type, options.creation_options, out_nodata,
                                  std::min(options.grid.tile_height, info.height));
                writer.use_template_if_possible(grid.at(result.first_row, 0).window,
                                                grid.at(std::max(result.first_row, result.end_row - 1), grid.cols() - 1).window,
                                                !options.creation_options.empty() || carry_mask);
                if (writer.uses_template()) templated_writers++;
                std::vector<unsigned char> scratch;
                while (auto job = jobs.pop()) {
                    TileRecord record{job->tile.id(), job->tile.id() + "." + format.extension, job->tile.row, job->tile.col,
                                      job->tile.window};
                    const std::string path = (dir / record.file).string();
                    writer.write(path, job->tile.window, job->payload.data(), scratch, journaled, job->mask.empty() ? nullptr : job->mask.data());
                    release(std::move(job->payload));
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
        for (int64_t r = result.first_row; r < result.end_row; ++r) {
            for (int64_t c = 0; c < grid.cols(); ++c) {
                const Tile tile = grid.at(r, c);
                const PixelWindow& w = tile.window;
                if (keep_existing && fs::exists(tile_path(r, c))) {
                    // Renamed into place only when complete, under a job.json with these options.
                    std::lock_guard<std::mutex> lock(done_mutex);
                    records.push_back({tile.id(), tile.id() + "." + format.extension, tile.row, tile.col, w});
                    ++result.tiles_resumed;
                    ++finished;
                    continue;
                }
                Job job{tile, acquire(static_cast<size_t>(w.area() * read_elem) * nb), {}};
                if (need_validity) tile_valid.resize(static_cast<size_t>(w.area()));
                reader.read(tile, job.payload.data(), need_validity ? tile_valid.data() : nullptr);
                const bool float_payload = read_type == GDT_Float32 || read_type == GDT_Float64;
                if (check_finite && need_validity && float_payload) mark_non_finite(job.payload.data(), w.area(), tile_valid.data());
                report_progress(progress, static_cast<double>(finished.load() + result.tiles_skipped) / static_cast<double>(my_tiles),
                                "tiles");
                if (options.skip_empty && !any_valid(tile_valid.data(), w.area())) {
                    ++result.tiles_skipped;
                    release(std::move(job.payload));
                    continue;
                }
                if (scaling) {
                    auto* values = reinterpret_cast<float*>(job.payload.data());
                    mask_non_finite(values, static_cast<int>(nb), w.area(), need_validity ? tile_valid.data() : nullptr);
                    normalizer.apply(values, nb, w.area());
                    if (scaled_nodata) {
                        for (size_t b = 0; b < nb; ++b) {
                            for (int64_t i = 0; i < w.area(); ++i) {
                                if (!tile_valid[i]) values[b * w.area() + i] = 0;
                            }
                        }
                    }
                    std::vector<unsigned char> converted = acquire(static_cast<size_t>(w.area() * out_elem) * nb);
                    GDALCopyWords64(values, GDT_Float32, 4, converted.data(), out_type, static_cast<int>(out_elem),
                                    w.area() * static_cast<int64_t>(nb));
                    job.payload.swap(converted);
                    release(std::move(converted));
                }
                if (carry_mask || (mask_padding && !image_window.contains(w))) job.mask = tile_valid;
                if (!jobs.push(std::move(job))) break;  // a worker failed
            }
        }
        stop_workers();
        failure.rethrow_if_any();
        result.tile_writer = templated_writers.load() > 0 ? "geotiff-template" : "gdal";
        result.tiles_written = static_cast<int64_t>(records.size());
        sort_records(records);
        report_progress(progress, 1.0, "index");
        if (options.shard) {
            // This shard's part of the index; its presence says the shard is complete.
            const std::string part = (fs::path(parts_dir) / shard_part_name(shard)).string();
            nlohmann::json tiles = nlohmann::json::array();
            for (const TileRecord& t : records) tiles.push_back(record_to_json(t));
            const nlohmann::json doc{{"format", "rsi-tile-index-part"}, {"fingerprint", job.at("fingerprint")},
                                     {"shard", {shard.index, shard.count}}, {"rows", {result.first_row, result.end_row}},
                                     {"tiles_skipped", result.tiles_skipped}, {"tiles", tiles}};
            PendingOutput pending(part, true);  // this shard's own part: a rerun of the shard replaces it
            {
                std::ofstream out(pending.temporary_path(), std::ios::binary);
                out << json_text(doc) << "\n";
                out.flush();
                if (!out) throw Error(part + ": writing the index part failed" + write_failure_reason());
            }
            pending.commit();
            result.index_written = false;
        } else {
            const std::string prefix = tile_file_prefix(options.output_dir, result.index_geojson);
            write_index(result.index_geojson, result.index_csv, info, records, prefix, options.overwrite);
            if (journaled) {
                std::error_code ec;
                fs::remove_all(parts_dir, ec);  // the resumed job is complete
            }
        }
    } catch (...) {
        stop_workers();
        // No partial output, except that resumable and sharded runs keep their finished tiles for the next try.
        if (!journaled) {
            for (const auto& path : written) remove_with_sidecars(path);
        }
        std::error_code ec;
        dir_lock.release();
        if (created_dir) fs::remove(options.output_dir, ec);  // only if empty
        throw;
    }
    return result;
}

TileIndexMergeResult merge_tile_index(const TileIndexMergeOptions& options, const ProgressFn& progress) {
    ensure_gdal_registered();
    TileIndexMergeResult result;
    result.index_geojson = index_geojson_path(options.output_dir, options.index_path);
    result.index_csv = fs::path(result.index_geojson).replace_extension(".csv").string();
    const std::string parts_dir = tile_parts_dir(options.output_dir, options.index_path);
    if (!fs::is_directory(parts_dir)) {
        throw Error(parts_dir + ": no parts folder (no `rsi tile --shard K/N` has written to " + options.output_dir +
                    ", or its index was merged already)");
    }
    const nlohmann::json job = read_job(parts_dir);
    if (job.value("format", "") != "rsi-tile-job") throw Error(parts_dir + "/job.json: not an rsi tile job");
    check_output_path(result.index_geojson, options.overwrite);
    check_output_path(result.index_csv, options.overwrite);
    const std::string fingerprint = job.at("fingerprint").get<std::string>();
    result.shards = job.at("shards").get<int>();
    const auto shard_locks = lock_every_shard(parts_dir, result.shards);  // none still running
    result.rows = job.at("rows").get<int64_t>();
    result.cols = job.at("cols").get<int64_t>();
    result.tiles_total = result.rows * result.cols;

    std::vector<int> missing;
    for (int k = 0; k < result.shards; ++k) {
        if (!fs::exists(fs::path(parts_dir) / shard_part_name({k, result.shards}))) missing.push_back(k);
    }
    if (!missing.empty()) {
        std::string list;
        for (int k : missing) list += (list.empty() ? "" : ", ") + std::to_string(k);
        throw Error(parts_dir + ": shard" + (missing.size() > 1 ? "s " : " ") + list + " of " + std::to_string(result.shards) +
                    (missing.size() > 1 ? " have" : " has") + " not finished (no " + shard_part_name({missing.front(), result.shards}) +
                    "): run `rsi tile IMAGE " + options.output_dir + " --shard " + std::to_string(missing.front()) + "/" +
                    std::to_string(result.shards) + " --resume` with the same options, then merge again");
    }
    std::vector<TileRecord> records;
    for (int k = 0; k < result.shards; ++k) {
        const ShardSpec shard{k, result.shards};
        const std::string path = (fs::path(parts_dir) / shard_part_name(shard)).string();
        std::ifstream in(path, std::ios::binary);
        nlohmann::json part;
        try {
            part = nlohmann::json::parse(in);
            if (part.value("format", "") != "rsi-tile-index-part") throw std::invalid_argument("format");
        } catch (const std::exception&) {
            throw Error(path + ": not an rsi tile index part");
        }
        if (part.value("fingerprint", "") != fingerprint) throw Error(path + ": belongs to another job (different options)");
        const auto rows = shard_strips(result.rows, shard);
        if (part.at("rows").get<std::pair<int64_t, int64_t>>() != rows) throw Error(path + ": covers other tile rows than shard " + std::to_string(k));
        result.tiles_skipped += part.value("tiles_skipped", int64_t{0});
        try {
            for (const auto& t : part.at("tiles")) records.push_back(record_from_json(t));
        } catch (const std::exception&) {
            throw Error(path + ": malformed tile entry");
        }
        report_progress(progress, 0.5 * (k + 1) / result.shards, "index parts");
    }
    // Every listed tile must be in OUTDIR, and no tile of another job (a stale grid) may lie beside them.
    std::set<std::string> listed;
    for (const TileRecord& t : records) {
        if (!fs::exists(fs::path(options.output_dir) / t.file)) throw Error(options.output_dir + "/" + t.file + ": missing (listed by a shard's index part)");
        listed.insert(t.file);
    }
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(options.output_dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (std::regex_match(name, tile_file_pattern()) && !listed.count(name)) {
            throw Error(entry.path().string() + ": not a tile of this job (left by an earlier run?): remove it, then merge again");
        }
    }
    sort_records(records);
    result.tiles_written = static_cast<int64_t>(records.size());
    RasterInfo info;
    info.geotransform = job.at("geotransform").get<std::array<double, 6>>();
    info.crs_wkt = job.value("crs_wkt", "");
    info.width = job.at("settings").at("width").get<int64_t>();  // footprints are clipped to the image
    info.height = job.at("settings").at("height").get<int64_t>();
    report_progress(progress, 0.9, "index");
    const std::string prefix = tile_file_prefix(options.output_dir, result.index_geojson);
    write_index(result.index_geojson, result.index_csv, info, records, prefix, options.overwrite);
    fs::remove_all(parts_dir, ec);
    report_finished(progress, "done");
    return result;
}

}  // namespace rsi
