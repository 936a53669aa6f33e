#include "src/vectorize.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <exception>
#include <filesystem>
#include <gdal_alg.h>
#include <geodesic.h>
#include <cstring>
#include <limits>
#include <ogrsf_frmts.h>
#include <optional>
#include <sstream>
#include <unistd.h>

#include "src/output_file.hpp"
#include "src/scoped_gdal_config.hpp"
#include "tiling/error.hpp"
#include "tiling/gdal_dataset.hpp"
#include "tiling/ground_distance.hpp"
#include "tiling/raster_source.hpp"

namespace fs = std::filesystem;

namespace rsi {

namespace {

constexpr int64_t kBatch = 10000;  // features per GeoPackage transaction
// Regularisation simplifies the pixel outline with this many pixel sizes (at least) first.
constexpr double kRegularizePixels = 1.0;
// Below this intersection over union with the input, a regularised outline is rejected.
constexpr double kRegularizeMinIou = 0.7;

// Removes a scratch file and SQLite's journals beside it (on disk or in /vsimem/) when destroyed.
class ScratchFile {
public:
    explicit ScratchFile(std::string path) : path_(std::move(path)) {}
    ~ScratchFile() {
        for (const char* suffix : {"", "-journal", "-wal", "-shm"}) {
            VSIStatBufL stat;
            const std::string path = path_ + suffix;
            if (VSIStatL(path.c_str(), &stat) == 0) VSIUnlink(path.c_str());
        }
    }
    ScratchFile(const ScratchFile&) = delete;
    ScratchFile& operator=(const ScratchFile&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

std::string scratch_path(const std::string& output, bool in_memory, const std::string& name) {
    static std::atomic<unsigned> counter{0};
    // Named after the output too, so that a resumed run's clean-up of the output's temporaries
    // (remove_stale_temporaries) finds those of a killed process.
    const std::string file = "rsi-tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
                             fs::path(output).filename().string() + "." + name + ".gpkg";
    if (in_memory) return "/vsimem/" + file;
    const fs::path out(output);
    return ((out.has_parent_path() ? out.parent_path() : fs::path(".")) / ("." + file)).string();
}

// A scratch GeoPackage with one layer: in /vsimem/ for small masks, otherwise on disk beside the
// output (never in memory for a large mask). Removed, with SQLite's journals, when destroyed.
class ScratchLayer {
public:
    // `indexed`: an R-tree for envelope queries (rtree_table()), kept up to date as rows are added.
    ScratchLayer(const std::string& output, bool in_memory, const std::string& name, OGRwkbGeometryType type,
                 const std::vector<std::pair<std::string, OGRFieldType>>& fields, bool indexed = false)
        : file_(scratch_path(output, in_memory, name)), path_(file_.path()) {
        GDALDriver* driver = GetGDALDriverManager()->GetDriverByName("GPKG");
        if (!driver) throw Error("GDAL has no GPKG driver (needed for the scratch layers)");
        // Scratch data needs no durability: no fsync, no rollback journal.
        ScopedThreadConfig sync("OGR_SQLITE_SYNCHRONOUS", "OFF");
        ScopedThreadConfig journal("OGR_SQLITE_JOURNAL", "OFF");
        CPLErrorReset();
        dataset_.reset(driver->Create(path_.c_str(), 0, 0, 0, GDT_Unknown, nullptr));
        if (!dataset_) throw Error(path_ + ": cannot create a scratch GeoPackage: " + last_gdal_error());
        const char* lco[] = {indexed ? "SPATIAL_INDEX=YES" : "SPATIAL_INDEX=NO", nullptr};
        layer_ = dataset_->CreateLayer(name.c_str(), nullptr, type, const_cast<char**>(lco));
        if (!layer_) throw Error(path_ + ": cannot create a scratch layer: " + last_gdal_error());
        for (const auto& [field_name, field_type] : fields) {
            OGRFieldDefn field(field_name.c_str(), field_type);
            if (layer_->CreateField(&field) != OGRERR_NONE) {
                throw Error(path_ + ": cannot create a scratch field: " + last_gdal_error());
            }
        }
    }
    ScratchLayer(const ScratchLayer&) = delete;
    ScratchLayer& operator=(const ScratchLayer&) = delete;

    GDALDataset& dataset() { return *dataset_; }
    OGRLayer& layer() { return *layer_; }
    const std::string& path() const { return path_; }
    std::string rtree_table() const { return std::string("rtree_") + layer_->GetName() + "_" + layer_->GetGeometryColumn(); }

    // Calls visit(feature) for each feature whose envelope meets `box` (through the R-tree), one at a
    // time: a query over a large envelope does not hold its result in memory.
    template <typename Visit>
    void for_each_near(const OGREnvelope& box, Visit visit) {
        std::ostringstream sql;
        sql.precision(17);
        sql << "SELECT * FROM \"" << layer_->GetName() << "\" WHERE fid IN (SELECT id FROM \"" << rtree_table()
            << "\" WHERE maxx >= " << box.MinX << " AND minx <= " << box.MaxX << " AND maxy >= " << box.MinY
            << " AND miny <= " << box.MaxY << ")";
        CPLErrorReset();
        OGRLayer* result = dataset_->ExecuteSQL(sql.str().c_str(), nullptr, nullptr);
        if (!result) throw Error(path_ + ": querying the scratch polygons failed: " + last_gdal_error());
        struct Release {
            GDALDataset& dataset;
            OGRLayer* layer;
            ~Release() { dataset.ReleaseResultSet(layer); }
        } release{*dataset_, result};
        for (std::unique_ptr<OGRFeature> f(result->GetNextFeature()); f; f.reset(result->GetNextFeature())) visit(*f);
    }

    void begin() { check(dataset_->StartTransaction(), "starting a transaction"); }
    void commit() { check(dataset_->CommitTransaction(), "committing a transaction"); }
    void add(OGRFeature& feature) {
        if (layer_->CreateFeature(&feature) != OGRERR_NONE) {
            throw Error(path_ + ": writing a scratch polygon failed: " + last_gdal_error());
        }
    }

private:
    void check(OGRErr err, const char* what) const {
        if (err != OGRERR_NONE) throw Error(path_ + ": " + what + " failed: " + last_gdal_error());
    }

    ScratchFile file_;  // declared first: removed after the dataset is closed, even when the
    std::string path_;  // constructor throws
    DatasetPtr dataset_;
    OGRLayer* layer_ = nullptr;
};

// An SQL result set released when it goes out of scope.
class ResultSet {
public:
    ResultSet(GDALDataset& dataset, const std::string& sql, const std::string& path) : dataset_(dataset) {
        CPLErrorReset();
        layer_ = dataset.ExecuteSQL(sql.c_str(), nullptr, nullptr);
        if (!layer_) throw Error(path + ": sorting the polygons failed: " + last_gdal_error());
    }
    ~ResultSet() { dataset_.ReleaseResultSet(layer_); }
    ResultSet(const ResultSet&) = delete;
    ResultSet& operator=(const ResultSet&) = delete;
    OGRLayer& layer() { return *layer_; }

private:
    GDALDataset& dataset_;
    OGRLayer* layer_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// The class selection: a virtual two-band raster over the mask, read one row at a time.
//   band 1 (Int32): the mask's values, unchanged;
//   band 2 (Byte):  255 where the value is a selected class, 0 elsewhere (the polygonizer's mask).
// It has no geotransform, so GDALPolygonize works in pixel coordinates (exact integers).

// A UInt32 mask's nodata above Int32's range is read as this value, which no UInt32 class can be.
constexpr int32_t kUnsignedNodataStandIn = std::numeric_limits<int32_t>::min();

class ClassSelection final : public GDALDataset {
public:
    ClassSelection(GDALRasterBand& source, const std::vector<int>& classes, std::optional<int32_t> nodata)
        : source_(source), all_but_background_(classes.empty()), nodata_(nodata) {
        nRasterXSize = source.GetXSize();
        nRasterYSize = source.GetYSize();
        values_.resize(static_cast<size_t>(nRasterXSize));
        if (!classes.empty()) {  // a lookup table over the range of the chosen classes
            lowest_ = *std::min_element(classes.begin(), classes.end());
            const int64_t highest = *std::max_element(classes.begin(), classes.end());
            if (highest - lowest_ < (int64_t{1} << 20)) {
                table_.assign(static_cast<size_t>(highest - lowest_ + 1), 0);
                for (int c : classes) table_[static_cast<size_t>(c - lowest_)] = 1;
            } else {
                sorted_ = classes;
                std::sort(sorted_.begin(), sorted_.end());
                sorted_.erase(std::unique(sorted_.begin(), sorted_.end()), sorted_.end());
                seen_sorted_.assign(sorted_.size(), 0);
            }
        }
        SetBand(1, new Band(this, 1, GDT_Int32));
        SetBand(2, new Band(this, 2, GDT_Byte));
    }

    bool selected(int32_t value) {
        if (all_but_background_) return value != 0 && !(nodata_ && value == *nodata_);
        bool hit = false;
        if (!table_.empty()) {
            const int64_t i = int64_t{value} - lowest_;
            hit = i >= 0 && i < static_cast<int64_t>(table_.size()) && table_[static_cast<size_t>(i)];
            if (hit) table_[static_cast<size_t>(i)] = 2;  // 2: selected and seen
        } else {
            const auto it = std::lower_bound(sorted_.begin(), sorted_.end(), value);
            hit = it != sorted_.end() && *it == value;
            if (hit) seen_sorted_[static_cast<size_t>(it - sorted_.begin())] = 1;
        }
        if (!hit && other_values_.size() < kOtherValuesKept && !(nodata_ && value == *nodata_) &&
            std::find(other_values_.begin(), other_values_.end(), value) == other_values_.end()) {
            other_values_.push_back(value);
        }
        return hit;
    }

    // After polygonising with explicit classes: those that never occurred, and up to a few of the
    // values that did (a 0/255 mask asked for class 1 gave no polygons and no word why).
    std::vector<int> classes_not_seen() const {
        std::vector<int> missing;
        if (all_but_background_) return missing;
        if (!table_.empty()) {
            for (size_t i = 0; i < table_.size(); ++i) {
                if (table_[i] == 1) missing.push_back(static_cast<int>(lowest_ + static_cast<int64_t>(i)));
            }
        } else {
            for (size_t i = 0; i < sorted_.size(); ++i) {
                if (!seen_sorted_[i]) missing.push_back(sorted_[i]);
            }
        }
        return missing;
    }
    std::vector<int32_t> other_values() const {
        std::vector<int32_t> values = other_values_;
        std::sort(values.begin(), values.end());
        return values;
    }
    static constexpr size_t kOtherValuesKept = 8;

    // The mask's row y as Int32, or nullptr when reading failed (GDAL holds the error, or problem()
    // says what is wrong with the values).
    const int32_t* row(int y) {
        if (y != cached_row_) {
            cached_row_ = -1;
            const bool unsigned_32 = source_.GetRasterDataType() == GDT_UInt32;
            if (source_.RasterIO(GF_Read, 0, y, nRasterXSize, 1, values_.data(), nRasterXSize, 1,
                                 unsigned_32 ? GDT_UInt32 : GDT_Int32, 0, 0, nullptr) != CE_None) {
                return nullptr;
            }
            // Classes are Int32 (as GDALPolygonize takes them): UInt32's nodata above that range reads
            // as the stand-in integral_nodata gives it; another value above it is refused, not clamped
            // (two such classes became one).
            if (unsigned_32 && !check_unsigned_row(y)) return nullptr;
            cached_row_ = y;
        }
        return values_.data();
    }

    const std::string& problem() const { return problem_; }

private:
    class Band final : public GDALRasterBand {
    public:
        Band(ClassSelection* dataset, int band, GDALDataType type) {
            poDS = dataset;
            nBand = band;
            nRasterXSize = dataset->GetRasterXSize();
            nRasterYSize = dataset->GetRasterYSize();
            eDataType = type;
            nBlockXSize = nRasterXSize;  // one row per block: the polygonizer reads row by row
            nBlockYSize = 1;
        }

    protected:
        CPLErr IReadBlock(int, int block_y, void* image) override { return fill(block_y, 0, nRasterXSize, image); }

        // The polygonizer's full-resolution row reads go straight to the mask, not through GDAL's
        // block cache (which they would only fill with rows never read again).
        CPLErr IRasterIO(GDALRWFlag flag, int x, int y, int width, int height, void* data, int buffer_width,
                         int buffer_height, GDALDataType type, GSpacing pixel_space, GSpacing line_space,
                         GDALRasterIOExtraArg* extra) override {
            if (flag == GF_Read && height == 1 && buffer_height == 1 && width == buffer_width && type == eDataType &&
                pixel_space == GDALGetDataTypeSizeBytes(type)) {
                return fill(y, x, width, data);
            }
            return GDALRasterBand::IRasterIO(flag, x, y, width, height, data, buffer_width, buffer_height, type,
                                             pixel_space, line_space, extra);
        }

    private:
        CPLErr fill(int y, int x, int width, void* out) {
            auto* selection = static_cast<ClassSelection*>(poDS);
            const int32_t* values = selection->row(y);
            if (!values) return CE_Failure;
            values += x;
            if (eDataType == GDT_Int32) {
                std::copy(values, values + width, static_cast<int32_t*>(out));
            } else {
                auto* bytes = static_cast<uint8_t*>(out);
                for (int i = 0; i < width; ++i) bytes[i] = selection->selected(values[i]) ? 255 : 0;
            }
            return CE_None;
        }
    };

    bool check_unsigned_row(int y) {
        int has_nodata = 0;
        const double raw_nodata = source_.GetNoDataValue(&has_nodata);
        for (int32_t& v : values_) {
            uint32_t u = 0;
            std::memcpy(&u, &v, sizeof u);
            if (u <= static_cast<uint32_t>(std::numeric_limits<int32_t>::max())) continue;
            if (has_nodata && static_cast<double>(u) == raw_nodata) {
                v = kUnsignedNodataStandIn;
                continue;
            }
            problem_ = "class value " + std::to_string(u) + " (row " + std::to_string(y) + ") is above " +
                       std::to_string(std::numeric_limits<int32_t>::max()) + ", the largest class value rsi vectorizes";
            CPLError(CE_Failure, CPLE_AppDefined, "%s", problem_.c_str());
            return false;
        }
        return true;
    }

    GDALRasterBand& source_;
    std::string problem_;
    bool all_but_background_;
    std::optional<int32_t> nodata_;
    int64_t lowest_ = 0;
    std::vector<uint8_t> table_;  // over lowest_..: 1 selected, 2 selected and seen
    std::vector<int> sorted_;
    std::vector<uint8_t> seen_sorted_;
    std::vector<int32_t> other_values_;
    std::vector<int32_t> values_;
    int cached_row_ = -1;
};

// Forwards GDAL's progress to a ProgressFn mapped onto [low, high]; a cancel request (or an exception
// from the callback) stops GDAL and is re-raised by rethrow().
struct ProgressBridge {
    const ProgressFn* progress;
    double low, high;
    const char* what;
    std::exception_ptr error;

    static int CPL_STDCALL call(double fraction, const char*, void* arg) {
        auto* self = static_cast<ProgressBridge*>(arg);
        try {
            report_progress(*self->progress, self->low + fraction * (self->high - self->low), self->what);
            return TRUE;
        } catch (...) {
            self->error = std::current_exception();
            return FALSE;
        }
    }
    void rethrow() const {
        if (error) std::rethrow_exception(error);
    }
};

// ---------------------------------------------------------------------------------------------
// Geometry helpers

template <typename Fn>
void transform_points(OGRPolygon& polygon, Fn fn) {
    for (int r = 0; r <= polygon.getNumInteriorRings(); ++r) {
        OGRLinearRing* ring = r == 0 ? polygon.getExteriorRing() : polygon.getInteriorRing(r - 1);
        if (!ring) continue;
        for (int i = 0; i < ring->getNumPoints(); ++i) {
            const auto [x, y] = fn(ring->getX(i), ring->getY(i));
            ring->setPoint(i, x, y);
        }
    }
}

std::unique_ptr<OGRPolygon> clone_polygon(const OGRPolygon& polygon) {
    return std::unique_ptr<OGRPolygon>(polygon.clone());
}

// The geometry as one polygon (a multipolygon of one part counts), or nullptr.
std::unique_ptr<OGRPolygon> as_polygon(std::unique_ptr<OGRGeometry> geometry) {
    if (!geometry || geometry->IsEmpty()) return nullptr;
    const OGRwkbGeometryType type = wkbFlatten(geometry->getGeometryType());
    if (type == wkbPolygon) return std::unique_ptr<OGRPolygon>(geometry.release()->toPolygon());
    if (type == wkbMultiPolygon) {
        OGRMultiPolygon* multi = geometry->toMultiPolygon();
        if (multi->getNumGeometries() == 1) return clone_polygon(*multi->getGeometryRef(0));
    }
    return nullptr;
}

double area_of(const OGRGeometry& geometry) {
    return OGR_G_Area(OGRGeometry::ToHandle(const_cast<OGRGeometry*>(&geometry)));
}

// The largest polygon of what a cut left (slivers and lines dropped); null when nothing with area is left.
std::unique_ptr<OGRPolygon> largest_polygon(std::unique_ptr<OGRGeometry> geometry) {
    if (!geometry || geometry->IsEmpty()) return nullptr;
    if (wkbFlatten(geometry->getGeometryType()) == wkbPolygon) {
        return area_of(*geometry) > 0 ? std::unique_ptr<OGRPolygon>(geometry.release()->toPolygon()) : nullptr;
    }
    if (!OGR_GT_IsSubClassOf(wkbFlatten(geometry->getGeometryType()), wkbGeometryCollection)) return nullptr;
    const OGRGeometryCollection& parts = *geometry->toGeometryCollection();
    const OGRPolygon* best = nullptr;
    double best_area = 0;
    for (int i = 0; i < parts.getNumGeometries(); ++i) {
        const OGRGeometry* part = parts.getGeometryRef(i);
        if (wkbFlatten(part->getGeometryType()) != wkbPolygon) continue;
        const double area = area_of(*part);
        if (area > best_area) {
            best_area = area;
            best = part->toPolygon();
        }
    }
    return best ? clone_polygon(*best) : nullptr;
}

double intersection_over_union(const OGRGeometry& a, const OGRGeometry& b) {
    std::unique_ptr<OGRGeometry> common(a.Intersection(&b));
    const double inter = common ? area_of(*common) : 0.0;
    const double uni = area_of(a) + area_of(b) - inter;
    return uni > 0 ? inter / uni : 0.0;
}

// Local frame in which a neighbourhood of the CRS is metric and isotropic:
// local = ((x - x0) * sx, (y - y0) * sy).
struct MetricFrame {
    double x0 = 0, y0 = 0, sx = 1, sy = 1;
};

// How coordinates of the mask's CRS become metres.
class GroundModel {
public:
    explicit GroundModel(const RasterInfo& info) {
        if (!info.georeferenced()) return;
        OGRSpatialReference srs;
        if (srs.importFromWkt(info.crs_wkt.c_str()) != OGRERR_NONE) return;
        if (srs.IsGeographic()) {
            OGRErr err = OGRERR_NONE;
            const double a = srs.GetSemiMajor(&err);
            const double inv_f = srs.GetInvFlattening(&err);
            flattening_ = inv_f != 0 ? 1.0 / inv_f : 0.0;
            semi_major_ = a;
            geod_init(&geod_, a, flattening_);
            radians_per_unit_ = srs.GetAngularUnits();
            kind_ = Kind::geographic;
        } else if (srs.IsProjected() || srs.IsLocal()) {
            metres_per_unit_ = srs.GetLinearUnits();
            kind_ = Kind::linear;
            // A projection far from true scale here (Web Mercator: 1/cos of the latitude, 1.54 at
            // Las Vegas) is measured on its ellipsoid, as ground_pixel_size does.
            if (measured_on_ellipsoid(info)) {
                srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
                ellipsoid_ = EllipsoidMeasure::for_projected(srs);
                if (ellipsoid_) kind_ = Kind::projected_on_ellipsoid;
            }
        }
    }

    bool metric() const { return kind_ != Kind::none; }

    // Square metres of a polygon in CRS coordinates; nullopt without a usable CRS.
    std::optional<double> area_m2(const OGRPolygon& polygon) const {
        if (kind_ == Kind::linear) return std::fabs(polygon.get_Area()) * metres_per_unit_ * metres_per_unit_;
        if (kind_ == Kind::none) return std::nullopt;
        double area = 0;
        for (int r = 0; r <= polygon.getNumInteriorRings(); ++r) {
            const OGRLinearRing* ring = r == 0 ? polygon.getExteriorRing() : polygon.getInteriorRing(r - 1);
            if (!ring) continue;
            double ring_area = 0;
            if (kind_ == Kind::geographic) {
                ring_area = geodesic_ring_area(*ring);
            } else {
                std::vector<std::pair<double, double>> points;
                points.reserve(static_cast<size_t>(ring->getNumPoints()));
                for (int i = 0; i < ring->getNumPoints(); ++i) points.emplace_back(ring->getX(i), ring->getY(i));
                const auto measured = ellipsoid_->ring_area_m2(points);
                if (!measured) return std::fabs(polygon.get_Area()) * metres_per_unit_ * metres_per_unit_;
                ring_area = *measured;
            }
            area += r == 0 ? ring_area : -ring_area;
        }
        return std::max(area, 0.0);
    }

    // A metric frame centred on `envelope`: the CRS scaled to metres (projected), or a local
    // east/north frame from the ellipsoid's radii of curvature at the centre latitude (geographic).
    // Without a CRS, the CRS (or pixel) units themselves.
    MetricFrame frame_around(const OGREnvelope& envelope) const {
        MetricFrame frame;
        frame.x0 = (envelope.MinX + envelope.MaxX) / 2;
        frame.y0 = (envelope.MinY + envelope.MaxY) / 2;
        if (kind_ == Kind::linear) {
            frame.sx = frame.sy = metres_per_unit_;
        } else if (kind_ == Kind::projected_on_ellipsoid) {
            // Ground metres per CRS unit along each axis at the centre (a 1-unit step each way).
            const auto along_x = ellipsoid_->length_m(frame.x0, frame.y0, frame.x0 + 1, frame.y0);
            const auto along_y = ellipsoid_->length_m(frame.x0, frame.y0, frame.x0, frame.y0 + 1);
            frame.sx = along_x && *along_x > 0 ? *along_x : metres_per_unit_;
            frame.sy = along_y && *along_y > 0 ? *along_y : metres_per_unit_;
        } else if (kind_ == Kind::geographic) {
            const double phi = frame.y0 * radians_per_unit_;
            const double e2 = flattening_ * (2 - flattening_);
            const double w = 1 - e2 * std::sin(phi) * std::sin(phi);
            const double prime_vertical = semi_major_ / std::sqrt(w);
            const double meridional = semi_major_ * (1 - e2) / (w * std::sqrt(w));
            frame.sx = prime_vertical * std::cos(phi) * radians_per_unit_;
            frame.sy = meridional * radians_per_unit_;
        }
        return frame;
    }

private:
    double geodesic_ring_area(const OGRLinearRing& ring) const {
        geod_polygon polygon;
        geod_polygon_init(&polygon, 0);
        int n = ring.getNumPoints();
        if (n > 1 && ring.getX(0) == ring.getX(n - 1) && ring.getY(0) == ring.getY(n - 1)) --n;
        const double degrees = radians_per_unit_ * 180.0 / M_PI;
        for (int i = 0; i < n; ++i) {
            geod_polygon_addpoint(&geod_, &polygon, ring.getY(i) * degrees, ring.getX(i) * degrees);
        }
        double area = 0, perimeter = 0;
        geod_polygon_compute(&geod_, &polygon, 0, 1, &area, &perimeter);
        return std::fabs(area);
    }

    enum class Kind { none, linear, geographic, projected_on_ellipsoid } kind_ = Kind::none;
    std::shared_ptr<const EllipsoidMeasure> ellipsoid_;
    double metres_per_unit_ = 1;
    double radians_per_unit_ = M_PI / 180;
    double semi_major_ = 6378137, flattening_ = 1 / 298.257223563;
    geod_geodesic geod_{};
};

// Calls span(row, x_begin, x_end) for the runs of pixels whose centres lie inside `polygon` (pixel
// coordinates; even-odd rule, so holes are excluded), row by row from the top, with an active-edge
// sweep (cost grows with the edges crossing each row, not with the whole outline).
template <typename Fn>
void for_each_pixel_span(const OGRPolygon& polygon, Fn span) {
    struct Edge {
        double x0, y0, x1, y1, ylo, yhi;
    };
    std::vector<Edge> edges;
    for (int r = 0; r <= polygon.getNumInteriorRings(); ++r) {
        const OGRLinearRing* ring = r == 0 ? polygon.getExteriorRing() : polygon.getInteriorRing(r - 1);
        if (!ring) continue;
        const int n = ring->getNumPoints();
        for (int i = 0; i + 1 < n; ++i) {
            const double x0 = ring->getX(i), y0 = ring->getY(i), x1 = ring->getX(i + 1), y1 = ring->getY(i + 1);
            if (y0 == y1) continue;
            edges.push_back({x0, y0, x1, y1, std::min(y0, y1), std::max(y0, y1)});
        }
    }
    if (edges.empty()) return;
    std::sort(edges.begin(), edges.end(), [](const Edge& a, const Edge& b) { return a.ylo < b.ylo; });
    OGREnvelope envelope;
    polygon.getEnvelope(&envelope);
    const auto first_row = static_cast<int64_t>(std::floor(envelope.MinY));
    const auto end_row = static_cast<int64_t>(std::ceil(envelope.MaxY));
    std::vector<const Edge*> active;
    std::vector<double> crossings;
    size_t next = 0;
    for (int64_t row = first_row; row < end_row; ++row) {
        const double yc = static_cast<double>(row) + 0.5;
        while (next < edges.size() && edges[next].ylo <= yc) active.push_back(&edges[next++]);
        active.erase(std::remove_if(active.begin(), active.end(), [yc](const Edge* e) { return e->yhi <= yc; }),
                     active.end());
        crossings.clear();
        for (const Edge* e : active) crossings.push_back(e->x0 + (yc - e->y0) * (e->x1 - e->x0) / (e->y1 - e->y0));
        std::sort(crossings.begin(), crossings.end());
        for (size_t k = 0; k + 1 < crossings.size(); k += 2) {
            const auto begin = static_cast<int64_t>(std::ceil(crossings[k] - 0.5));
            const auto end = static_cast<int64_t>(std::ceil(crossings[k + 1] - 0.5));
            if (end > begin) span(row, begin, end);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Probabilities: the mean of a polygon's class over its pixels.

class ProbabilityReader {
public:
    ProbabilityReader(const std::string& path, const RasterInfo& mask, const std::vector<int>& classes,
                      int64_t budget_bytes, int only_class)
        : source_(RasterSource::open(path)), budget_bytes_(std::max<int64_t>(budget_bytes, 1 << 20)), only_class_(only_class) {
        const RasterInfo& info = source_.info();
        if (info.width != mask.width || info.height != mask.height) {
            throw Error(path + ": the probabilities are " + std::to_string(info.width) + "x" +
                        std::to_string(info.height) + " pixels, the mask " + std::to_string(mask.width) + "x" +
                        std::to_string(mask.height) + " (they must share the mask's grid)");
        }
        if (info.has_geotransform != mask.has_geotransform || !same_geotransform(info, mask)) {
            throw Error(path + ": the probabilities' geotransform differs from the mask's (they must share its grid)");
        }
        if (!info.crs_wkt.empty() && !mask.crs_wkt.empty()) {
            OGRSpatialReference a, b;
            if (a.importFromWkt(info.crs_wkt.c_str()) == OGRERR_NONE && b.importFromWkt(mask.crs_wkt.c_str()) == OGRERR_NONE &&
                !a.IsSame(&b)) {
                throw Error(path + ": the probabilities' CRS differs from the mask's (they must share its grid)");
            }
        } else if (info.crs_wkt.empty() != mask.crs_wkt.empty()) {
            throw Error(path + ": " + (info.crs_wkt.empty() ? "the probabilities have no CRS, the mask has one"
                                                            : "the probabilities have a CRS, the mask none") +
                        " (they must share its grid)");
        }
        const GDALDataType type = info.data_type;
        if (type == GDT_Byte) {
            // rsi's Byte probabilities: 0..254 with nodata 255; other Byte rasters: 0..255.
            const auto& nodata = info.bands[0].nodata;
            scale_ = nodata && *nodata == 255 ? 1.0 / 254.0 : 1.0 / 255.0;
        } else if (type != GDT_Float32 && type != GDT_Float64) {
            throw Error(path + ": the probabilities are " + GDALGetDataTypeName(type) +
                        "; expected Float32 (0..1) or Byte (0..255)");
        } else {
            floating_ = true;
        }
        for (int c : classes) band_for(c);  // explicit classes: check their bands up front
    }

    // The band holding class `value`: the only band, or band value+1; with one class's layout, band 1
    // for that class and 0 (none) for the others.
    int band_for(int value) const {
        if (only_class_ >= 0) return value == only_class_ ? 1 : 0;
        const int bands = source_.info().band_count();
        if (bands == 1) return 1;
        if (value < 0 || static_cast<int64_t>(value) + 1 > bands) {
            throw Error(source_.info().path + ": class " + std::to_string(value) + " needs band " +
                        std::to_string(static_cast<int64_t>(value) + 1) + " of the probabilities, which have " +
                        std::to_string(bands) + " bands (band c+1 holds class c, or give a single band)");
        }
        return value + 1;
    }

    // Mean probability over the polygon's pixels (pixel coordinates); nullopt when none holds data.
    std::optional<double> mean(const OGRPolygon& pixel_polygon, int value) {
        const int band = band_for(value);
        if (band == 0) return std::nullopt;
        const BandInfo& band_info = source_.info().bands[static_cast<size_t>(band - 1)];
        const std::optional<float> nodata =
            band_info.nodata ? std::optional<float>(static_cast<float>(*band_info.nodata)) : std::nullopt;
        OGREnvelope envelope;
        pixel_polygon.getEnvelope(&envelope);
        const PixelWindow image{0, 0, source_.info().width, source_.info().height};
        const auto x0 = static_cast<int64_t>(std::floor(envelope.MinX));
        const auto y0 = static_cast<int64_t>(std::floor(envelope.MinY));
        const PixelWindow box = PixelWindow{x0, y0, static_cast<int64_t>(std::ceil(envelope.MaxX)) - x0,
                                            static_cast<int64_t>(std::ceil(envelope.MaxY)) - y0}
                                    .intersect(image);
        if (box.empty()) return std::nullopt;
        const int64_t strip_rows = std::clamp<int64_t>(budget_bytes_ / (box.width * 4), 1, box.height);
        int64_t strip_y = 0, strip_height = 0;
        double sum = 0;
        int64_t count = 0;
        for_each_pixel_span(pixel_polygon, [&](int64_t row, int64_t begin, int64_t end) {
            if (row < box.y || row >= box.bottom()) return;
            begin = std::max(begin, box.x);
            end = std::min(end, box.right());
            if (end <= begin) return;
            if (strip_height == 0 || row < strip_y || row >= strip_y + strip_height) {
                strip_y = row;
                strip_height = std::min(strip_rows, box.bottom() - row);
                buffer_.resize(static_cast<size_t>(box.width * strip_height));
                source_.read({box.x, strip_y, box.width, strip_height}, {band}, GDT_Float32, buffer_.data());
            }
            const float* line = buffer_.data() + (row - strip_y) * box.width;
            for (int64_t x = begin; x < end; ++x) {
                const float v = line[x - box.x];
                if (!std::isfinite(v) || (nodata && v == *nodata)) continue;
                // Float probabilities outside 0..1 (percentages, logits) would pass --min-confidence
                // untested and be written as confidences of 21.8.
                if (floating_ && (v < -1e-5f || v > 1.00001f)) {
                    std::ostringstream value;
                    value << v;
                    throw Error(source_.info().path + ": band " + std::to_string(band) + " holds " + value.str() + " at pixel (" +
                                std::to_string(x) + ", " + std::to_string(row) +
                                "); Float probabilities must be within 0..1 (outside them: declare the raster's nodata)");
                }
                sum += v;
                ++count;
            }
        });
        if (count == 0) return std::nullopt;
        return sum / static_cast<double>(count) * scale_;
    }

private:
    static bool same_geotransform(const RasterInfo& a, const RasterInfo& b) {
        const double pixel = std::max({std::fabs(b.geotransform[1]), std::fabs(b.geotransform[2]),
                                       std::fabs(b.geotransform[4]), std::fabs(b.geotransform[5])});
        for (int i = 0; i < 6; ++i) {
            if (std::fabs(a.geotransform[i] - b.geotransform[i]) > 1e-6 * pixel) return false;
        }
        return true;
    }

    RasterSource source_;
    int64_t budget_bytes_;
    int only_class_;  // see VectorizeOptions::probability_class
    double scale_ = 1.0;
    bool floating_ = false;
    std::vector<float> buffer_;
};

// ---------------------------------------------------------------------------------------------
// Regularisation (in a metric frame)

struct Vec {
    double x = 0, y = 0;
};
Vec operator+(Vec a, Vec b) { return {a.x + b.x, a.y + b.y}; }
Vec operator-(Vec a, Vec b) { return {a.x - b.x, a.y - b.y}; }
Vec operator*(Vec a, double s) { return {a.x * s, a.y * s}; }
double dot(Vec a, Vec b) { return a.x * b.x + a.y * b.y; }
double cross(Vec a, Vec b) { return a.x * b.y - a.y * b.x; }
double norm(Vec a) { return std::hypot(a.x, a.y); }

// The ring's vertices without the closing point or repeated points.
std::vector<Vec> open_ring(const OGRLinearRing& ring) {
    std::vector<Vec> points;
    for (int i = 0; i < ring.getNumPoints(); ++i) {
        const Vec p{ring.getX(i), ring.getY(i)};
        if (!points.empty() && norm(p - points.back()) < 1e-12) continue;
        points.push_back(p);
    }
    while (points.size() > 1 && norm(points.front() - points.back()) < 1e-12) points.pop_back();
    return points;
}

// Direction modulo 90 degrees, in [0, 90).
double axis_angle_deg(Vec d) {
    double a = std::fmod(std::atan2(d.y, d.x) * 180.0 / M_PI, 90.0);
    if (a < 0) a += 90.0;
    return a >= 90.0 ? 0.0 : a;
}

double distance_mod_90(double a, double b) {
    const double d = std::fmod(std::fabs(a - b), 90.0);
    return std::min(d, 90.0 - d);
}

// Peak of the length-weighted histogram of edge directions modulo 90 degrees (1-degree bins,
// triangular smoothing), refined by the length-weighted circular mean of the edges within 10
// degrees of it (angles x4 so that the period is a full turn).
double dominant_orientation(const std::vector<std::vector<Vec>>& rings) {
    std::array<double, 90> histogram{};
    struct Dir {
        double angle, length;
    };
    std::vector<Dir> dirs;
    for (const auto& ring : rings) {
        for (size_t i = 0; i < ring.size(); ++i) {
            const Vec d = ring[(i + 1) % ring.size()] - ring[i];
            const double length = norm(d);
            if (length <= 0) continue;
            const double angle = axis_angle_deg(d);
            histogram[static_cast<size_t>(angle) % 90] += length;
            dirs.push_back({angle, length});
        }
    }
    size_t peak = 0;
    double best = -1;
    for (size_t i = 0; i < 90; ++i) {
        double s = 0;
        for (int k = -2; k <= 2; ++k) s += (3 - std::abs(k)) * histogram[(i + 88 + static_cast<size_t>(k + 2)) % 90];
        if (s > best) {
            best = s;
            peak = i;
        }
    }
    const double centre = static_cast<double>(peak) + 0.5;
    double c = 0, s = 0;
    for (const Dir& d : dirs) {
        if (distance_mod_90(d.angle, centre) > 10.0) continue;
        const double r = 4.0 * d.angle * M_PI / 180.0;
        c += d.length * std::cos(r);
        s += d.length * std::sin(r);
    }
    if (c == 0 && s == 0) return centre;
    double theta = std::atan2(s, c) * 180.0 / M_PI / 4.0;
    if (theta < 0) theta += 90.0;
    return theta >= 90.0 ? 0.0 : theta;
}

// A line along u (points p with p.v = offset) or along v (p.u = offset).
struct Line {
    bool along_u;
    double offset;
    double weight;  // total length of the edges it replaces (0 for an inserted step)
};

void merge_into(Line& into, const Line& other) {
    const double w = into.weight + other.weight;
    into.offset =
        w > 0 ? (into.offset * into.weight + other.offset * other.weight) / w : (into.offset + other.offset) / 2;
    into.weight = w;
}

// Removes repeated vertices and vertices between collinear edges (open ring).
std::vector<Vec> drop_redundant_vertices(std::vector<Vec> ring, double epsilon) {
    bool changed = true;
    while (changed && ring.size() >= 3) {
        changed = false;
        for (size_t i = 0; i < ring.size() && ring.size() >= 3; ++i) {
            const Vec prev = ring[(i + ring.size() - 1) % ring.size()];
            const Vec next = ring[(i + 1) % ring.size()];
            const Vec a = ring[i] - prev, b = next - ring[i];
            if (norm(a) < epsilon || std::fabs(cross(a, b)) < epsilon * (norm(a) + norm(b))) {
                ring.erase(ring.begin() + static_cast<std::ptrdiff_t>(i));
                changed = true;
                break;
            }
        }
    }
    return ring;
}

// Snaps every edge of a ring to the direction theta or its perpendicular; nullopt when fewer than
// four lines remain (the ring is too small or too irregular for its own orthogonal shape).
std::optional<std::vector<Vec>> orthogonal_ring(const std::vector<Vec>& points, double theta_deg, double tolerance) {
    if (points.size() < 3) return std::nullopt;
    const double t = theta_deg * M_PI / 180.0;
    const Vec u{std::cos(t), std::sin(t)}, v{-std::sin(t), std::cos(t)};
    auto line_through = [&](Vec p, bool along_u, double weight) {
        return Line{along_u, along_u ? dot(p, v) : dot(p, u), weight};
    };
    std::vector<Line> lines;
    Vec first_start;
    for (size_t i = 0; i < points.size(); ++i) {
        const Vec a = points[i], b = points[(i + 1) % points.size()];
        const Vec d = b - a;
        const double length = norm(d);
        if (length <= 0) continue;
        const Line edge = line_through((a + b) * 0.5, std::fabs(dot(d, u)) >= std::fabs(dot(d, v)), length);
        if (lines.empty()) {
            first_start = a;
            lines.push_back(edge);
        } else if (lines.back().along_u != edge.along_u) {
            lines.push_back(edge);
        } else if (std::fabs(lines.back().offset - edge.offset) <= tolerance) {
            merge_into(lines.back(), edge);
        } else {
            lines.push_back(line_through(a, !edge.along_u, 0));  // a perpendicular step between them
            lines.push_back(edge);
        }
    }
    if (lines.size() >= 2 && lines.front().along_u == lines.back().along_u) {
        if (std::fabs(lines.front().offset - lines.back().offset) <= tolerance) {
            merge_into(lines.front(), lines.back());
            lines.pop_back();
        } else {
            lines.push_back(line_through(first_start, !lines.front().along_u, 0));
        }
    }
    // Consecutive lines now alternate between the two directions, so each pair meets at a right angle.
    auto corners_of = [&](const std::vector<Line>& ls) {
        std::vector<Vec> corners(ls.size());
        for (size_t i = 0; i < ls.size(); ++i) {
            const Line& a = ls[i];
            const Line& b = ls[(i + 1) % ls.size()];
            const Line& along_u = a.along_u ? a : b;
            const Line& along_v = a.along_u ? b : a;
            corners[i] = u * along_v.offset + v * along_u.offset;
        }
        return corners;
    };
    // Fold edges shorter than 2 x tolerance into their neighbours (which are parallel to each other).
    const double min_edge = 2 * tolerance;
    while (lines.size() > 4) {
        const std::vector<Vec> corners = corners_of(lines);
        const size_t m = lines.size();
        size_t shortest = 0;
        double shortest_length = std::numeric_limits<double>::infinity();
        for (size_t i = 0; i < m; ++i) {
            const double length = norm(corners[i] - corners[(i + m - 1) % m]);  // the segment on line i
            if (length < shortest_length) {
                shortest_length = length;
                shortest = i;
            }
        }
        if (shortest_length >= min_edge) break;
        const size_t prev = (shortest + m - 1) % m, next = (shortest + 1) % m;
        Line merged = lines[prev];
        merge_into(merged, lines[next]);
        std::vector<Line> kept;
        kept.reserve(m - 2);
        for (size_t i = 0; i < m; ++i) {
            if (i == shortest || i == next) continue;
            kept.push_back(i == prev ? merged : lines[i]);
        }
        lines = std::move(kept);
    }
    if (lines.size() < 4) return std::nullopt;
    std::vector<Vec> corners = drop_redundant_vertices(corners_of(lines), 1e-9 * std::max(1.0, tolerance));
    if (corners.size() < 4) return std::nullopt;
    return corners;
}

std::unique_ptr<OGRPolygon> polygon_from(const std::vector<Vec>& shell) {
    auto ring = std::make_unique<OGRLinearRing>();
    for (const Vec& p : shell) ring->addPoint(p.x, p.y);
    ring->closeRings();
    auto polygon = std::make_unique<OGRPolygon>();
    polygon->addRingDirectly(ring.release());
    return polygon;
}

// The rectangle along theta that bounds the ring.
std::vector<Vec> oriented_rectangle(const std::vector<Vec>& points, double theta_deg) {
    const double t = theta_deg * M_PI / 180.0;
    const Vec u{std::cos(t), std::sin(t)}, v{-std::sin(t), std::cos(t)};
    double u0 = std::numeric_limits<double>::infinity(), u1 = -u0, v0 = u0, v1 = -u0;
    for (const Vec& p : points) {
        u0 = std::min(u0, dot(p, u));
        u1 = std::max(u1, dot(p, u));
        v0 = std::min(v0, dot(p, v));
        v1 = std::max(v1, dot(p, v));
    }
    return {u * u0 + v * v0, u * u1 + v * v0, u * u1 + v * v1, u * u0 + v * v1};
}

// Orientation of the minimum-area rectangle around the points (rotating over the convex hull's edges).
double minimum_rectangle_orientation(const OGRPolygon& polygon) {
    std::unique_ptr<OGRGeometry> hull(polygon.ConvexHull());
    if (!hull || wkbFlatten(hull->getGeometryType()) != wkbPolygon) return 0;
    const std::vector<Vec> points = open_ring(*hull->toPolygon()->getExteriorRing());
    double best_area = std::numeric_limits<double>::infinity(), best = 0;
    for (size_t i = 0; i < points.size(); ++i) {
        const Vec d = points[(i + 1) % points.size()] - points[i];
        if (norm(d) <= 0) continue;
        const double theta = axis_angle_deg(d);
        const std::vector<Vec> box = oriented_rectangle(points, theta);
        const double area = norm(box[1] - box[0]) * norm(box[3] - box[0]);
        if (area < best_area) {
            best_area = area;
            best = theta;
        }
    }
    return best;
}

struct OrthogonalCandidate {
    std::unique_ptr<OGRPolygon> polygon;
    double iou = 0;
};

// Validity of a candidate outline, without the GEOS notice ("Self-intersection at or near point ...")
// that OGR forwards as a GDAL warning: an invalid candidate is expected here and simply not used.
bool quietly_valid(const OGRGeometry& geometry) {
    CPLErrorHandlerPusher quiet(CPLQuietErrorHandler);
    const bool valid = geometry.IsValid();
    CPLErrorReset();
    return valid;
}

// The orthogonal polygon of a simplified outline (shell and holes) along theta, with its
// intersection over union with `reference`; no polygon when none is valid.
OrthogonalCandidate orthogonal_polygon(const OGRPolygon& simplified, double theta, double tolerance,
                                       const OGRPolygon& reference) {
    OrthogonalCandidate best;
    const std::vector<Vec> shell_points = open_ring(*simplified.getExteriorRing());
    if (shell_points.size() < 3) return best;
    auto consider = [&](std::unique_ptr<OGRPolygon> candidate) {
        if (!candidate || !quietly_valid(*candidate)) return;
        const double iou = intersection_over_union(*candidate, reference);
        if (iou > best.iou) best = {std::move(candidate), iou};
    };
    if (auto ring = orthogonal_ring(shell_points, theta, tolerance)) consider(polygon_from(*ring));
    if (!best.polygon) consider(polygon_from(oriented_rectangle(shell_points, theta)));  // small or irregular blobs
    if (!best.polygon) return best;
    bool cut_any = false;
    for (int h = 0; h < simplified.getNumInteriorRings(); ++h) {
        const auto hole = orthogonal_ring(open_ring(*simplified.getInteriorRing(h)), theta, tolerance);
        if (!hole) continue;  // a hole too small for an orthogonal shape of its own is filled
        const auto hole_polygon = polygon_from(*hole);
        if (!quietly_valid(*hole_polygon)) continue;
        auto cut = as_polygon(std::unique_ptr<OGRGeometry>(best.polygon->Difference(hole_polygon.get())));
        if (cut) {
            best.polygon = std::move(cut);  // a hole that would split the outline is dropped
            cut_any = true;
        }
    }
    if (cut_any) best.iou = intersection_over_union(*best.polygon, reference);
    return best;
}

std::unique_ptr<OGRPolygon> simplified_polygon(const OGRPolygon& polygon, double tolerance) {
    auto simplified = as_polygon(std::unique_ptr<OGRGeometry>(polygon.SimplifyPreserveTopology(tolerance)));
    return simplified ? std::move(simplified) : clone_polygon(polygon);
}

// ---------------------------------------------------------------------------------------------
// The pipeline

std::optional<int32_t> integral_nodata(const RasterInfo& info) {
    const auto& nodata = info.bands.front().nodata;
    if (!nodata || !std::isfinite(*nodata) || std::floor(*nodata) != *nodata) return std::nullopt;
    if (info.data_type == GDT_UInt32 && *nodata > std::numeric_limits<int32_t>::max() && *nodata <= 4294967295.0) {
        return kUnsignedNodataStandIn;  // ClassSelection reads such pixels as it
    }
    if (*nodata < std::numeric_limits<int32_t>::min() || *nodata > std::numeric_limits<int32_t>::max())
        return std::nullopt;
    return static_cast<int32_t>(*nodata);
}

void check_options(const VectorizeOptions& o) {
    if (o.mask.empty()) throw usage_error("no class mask given");
    if (o.output.empty()) throw usage_error(o.mask + ": no output path given (-o)");
    if (!(o.min_area_m2 >= 0) || !std::isfinite(o.min_area_m2)) {
        throw usage_error("--min-area: must be a number of square metres >= 0");
    }
    if (!(o.simplify_m >= 0) || !std::isfinite(o.simplify_m)) {
        throw usage_error("--simplify: must be a tolerance in metres >= 0");
    }
    if (!(o.min_confidence >= 0 && o.min_confidence <= 1)) throw usage_error("--min-confidence: must be within 0..1");
    if (o.min_confidence > 0 && o.probabilities.empty()) {
        throw usage_error("--min-confidence needs a probability raster (--probabilities)");
    }
}

void check_mask(const RasterInfo& info) {
    const GDALDataType type = info.data_type;
    if (!GDALDataTypeIsInteger(type) || GDALDataTypeIsComplex(type) || GDALGetDataTypeSizeBytes(type) > 4) {
        throw Error(info.path + ": band 1 is " + GDALGetDataTypeName(type) +
                    "; a class mask must hold integer classes (Byte, UInt16, Int16, UInt32 or Int32)");
    }
}

std::pair<int64_t, int64_t> top_left_vertex(const OGRPolygon& pixel_polygon) {
    const OGRLinearRing* ring = pixel_polygon.getExteriorRing();
    double best_y = std::numeric_limits<double>::infinity(), best_x = best_y;
    for (int i = 0; ring && i < ring->getNumPoints(); ++i) {
        const double x = ring->getX(i), y = ring->getY(i);
        if (y < best_y || (y == best_y && x < best_x)) {
            best_y = y;
            best_x = x;
        }
    }
    return {std::llround(best_y), std::llround(best_x)};
}

// Simplified or regularised outline of a polygon in CRS coordinates (the input when neither is asked).
std::unique_ptr<OGRPolygon> shape_outline(const OGRPolygon& polygon, const GroundModel& ground,
                                          const VectorizeOptions& options, double pixel_size_m) {
    if (!options.regularize && options.simplify_m <= 0) return clone_polygon(polygon);
    OGREnvelope envelope;
    polygon.getEnvelope(&envelope);
    const MetricFrame f = ground.frame_around(envelope);
    auto local = clone_polygon(polygon);
    transform_points(*local, [&](double x, double y) { return std::make_pair((x - f.x0) * f.sx, (y - f.y0) * f.sy); });
    std::unique_ptr<OGRPolygon> shaped =
        options.regularize
            ? regularize_outline(*local, std::max(options.simplify_m, kRegularizePixels * pixel_size_m)).polygon
            : simplified_polygon(*local, options.simplify_m);
    transform_points(*shaped, [&](double x, double y) { return std::make_pair(x / f.sx + f.x0, y / f.sy + f.y0); });
    if (!quietly_valid(*shaped)) return clone_polygon(polygon);  // rounding broke it: keep the pixel outline
    return shaped;
}

// The image's footprint in CRS coordinates.
std::unique_ptr<OGRPolygon> image_footprint(const RasterInfo& info) {
    const auto& g = info.geotransform;
    auto ring = std::make_unique<OGRLinearRing>();
    const double w = static_cast<double>(info.width), h = static_cast<double>(info.height);
    for (const auto& [px, py] : {std::make_pair(0.0, 0.0), {w, 0.0}, {w, h}, {0.0, h}, {0.0, 0.0}}) {
        ring->addPoint(g[0] + px * g[1] + py * g[2], g[3] + px * g[4] + py * g[5]);
    }
    auto polygon = std::make_unique<OGRPolygon>();
    polygon->addRingDirectly(ring.release());
    return polygon;
}

// A regularised outline can reach a little beyond the image (a wall moved to its fitted line):
// clip it to the footprint.
std::unique_ptr<OGRPolygon> clip_to(std::unique_ptr<OGRPolygon> polygon, const OGRPolygon& footprint) {
    OGREnvelope inner, outer;
    polygon->getEnvelope(&inner);
    footprint.getEnvelope(&outer);
    const OGRLinearRing& ring = *footprint.getExteriorRing();
    const bool axis_aligned = ring.getY(0) == ring.getY(1) && ring.getX(0) == ring.getX(3);  // no rotation
    if (axis_aligned && outer.Contains(inner)) return polygon;
    if (!axis_aligned && footprint.Contains(polygon.get())) return polygon;
    auto clipped = as_polygon(std::unique_ptr<OGRGeometry>(polygon->Intersection(&footprint)));
    return clipped && quietly_valid(*clipped) ? std::move(clipped) : std::move(polygon);
}

// Pixel size in metres (CRS or pixel units without a CRS), the larger of the two axes.
double pixel_size_m(const RasterInfo& info) {
    if (const auto ground = ground_pixel_size(info)) return std::max(ground->x_m, ground->y_m);
    const auto& g = info.geotransform;
    return std::max(std::hypot(g[1], g[4]), std::hypot(g[2], g[5]));
}

}  // namespace

RegularizedOutline regularize_outline(const OGRPolygon& outline, double tolerance) {
    RegularizedOutline result;
    if (!(tolerance > 0)) throw usage_error("regularize: the tolerance must be > 0");
    std::unique_ptr<OGRPolygon> simplified = simplified_polygon(outline, tolerance);
    std::vector<std::vector<Vec>> rings;
    for (int r = 0; r <= simplified->getNumInteriorRings(); ++r) {
        rings.push_back(open_ring(r == 0 ? *simplified->getExteriorRing() : *simplified->getInteriorRing(r - 1)));
    }
    // Candidate orientations: the edge histogram's peak, and the minimum-area rectangle's (which wins
    // where the pixel stairs left zig-zag edges on a diagonal wall). The one whose orthogonal outline
    // fits the input best is kept.
    std::vector<double> candidates{dominant_orientation(rings), minimum_rectangle_orientation(*simplified)};
    if (distance_mod_90(candidates[0], candidates[1]) < 0.5) candidates.pop_back();
    OrthogonalCandidate best;
    for (double theta : candidates) {
        OrthogonalCandidate candidate = orthogonal_polygon(*simplified, theta, tolerance, outline);
        if (candidate.polygon && candidate.iou > best.iou) {
            best = std::move(candidate);
            result.orientation_deg = theta;
        }
    }
    if (best.polygon && best.iou >= kRegularizeMinIou) {
        result.polygon = std::move(best.polygon);
        result.orthogonal = true;
    } else {
        result.orientation_deg = candidates[0];
        result.polygon = std::move(simplified);
    }
    return result;
}

VectorizeResult vectorize_mask(const VectorizeOptions& options, const ProgressFn& progress) {
    ensure_gdal_registered();
    check_options(options);
    const VectorFormat format = vector_format(options.output);
    const std::string output = check_vector_output(options.output, options.overwrite, options.output_checked);
    remove_stale_temporaries(output);  // a killed run's temporaries and scratch layers (a live process keeps its own)
    check_distinct_outputs({output}, {options.mask, options.probabilities});
    const RasterSource mask = RasterSource::open(options.mask);
    const RasterInfo& info = mask.info();
    check_mask(info);
    // The class names the mask carries (rsi's maps do, as GDAL category names), unless --class-names
    // names them otherwise: `rsi vectorize` of a merged map then writes what `--vector` would have.
    std::map<int, std::string> class_names = options.class_names;
    if (char** categories = mask.dataset().GetRasterBand(1)->GetCategoryNames()) {
        for (int v = 0; categories[v]; ++v) {
            if (*categories[v]) class_names.emplace(v, categories[v]);
        }
    }
    const GroundModel ground(info);
    if ((options.min_area_m2 > 0 || options.simplify_m > 0) && !ground.metric()) {
        throw usage_error(options.mask + ": " + (options.min_area_m2 > 0 ? "--min-area" : "--simplify") +
                          " is in metres but the mask is not georeferenced (it has " + info.georeferencing_gap() + ")");
    }
    if (format.geojson && !options.keep_crs && !info.georeferenced()) {
        throw usage_error(options.mask + ": GeoJSON is written in WGS84 (RFC 7946) but the mask is not georeferenced" +
                          (info.has_geotransform ? " (it has a geotransform but no CRS); write another format (.gpkg: a layer "
                                                   "without a CRS), or use --keep-crs to write its geotransform's coordinates "
                                                   "with no CRS, which GeoJSON readers take for WGS84"
                                                 : "; write another format (.gpkg: a layer without a CRS), or use --keep-crs to "
                                                   "write its pixel coordinates, which GeoJSON readers take for WGS84"));
    }
    const std::optional<int32_t> nodata = integral_nodata(info);
    for (int c : options.classes) {
        if (nodata && c == *nodata) {
            throw usage_error(options.mask + ": class " + std::to_string(c) + " is the mask's nodata value");
        }
    }
    const int64_t budget = std::max<int64_t>(options.memory_budget_mb, 1) * 1024 * 1024;
    std::optional<ProbabilityReader> probabilities;
    if (!options.probabilities.empty()) probabilities.emplace(options.probabilities, info, options.classes, budget / 4, options.probability_class);

    VectorizeResult result;
    result.output = output;
    if (info.band_count() > 1) {
        // An RGB photo given by mistake would become a polygon per colour run.
        result.warnings.push_back(options.mask + " has " + std::to_string(info.band_count()) +
                                  " bands: band 1 is polygonised as the class mask (is it an image rather than a mask?)");
    }
    result.area_known = ground.metric();
    result.layer = fs::path(output).stem().string();
    // Reshaped outlines are settled against their neighbours (step 3), which needs envelope queries
    // and a third scratch layer alive with the first two.
    const bool reshaped = options.regularize || options.simplify_m > 0;
    // Scratch layers stay in memory only when even a worst-case (noisy) mask keeps them small.
    // A budget of 0 keeps them on disk.
    const int64_t scratch_bytes_per_pixel = reshaped ? 96 : 64;
    const bool in_memory = options.memory_budget_mb > 0 && info.width * info.height * scratch_bytes_per_pixel <= budget / 2;
    const double pixel_m = pixel_size_m(info);
    const std::unique_ptr<OGRPolygon> footprint = image_footprint(info);

    // 1. Polygonise the selected classes into pixel-space polygons.
    auto raw = std::make_unique<ScratchLayer>(output, in_memory, "polygons", wkbPolygon,
                                              std::vector<std::pair<std::string, OGRFieldType>>{{"value", OFTInteger}}, reshaped);
    {
        ClassSelection selection(*mask.dataset().GetRasterBand(1), options.classes, nodata);
        ProgressBridge bridge{&progress, 0.0, 0.5, "polygonising", nullptr};
        raw->begin();
        CPLErrorReset();
        const CPLErr err = GDALPolygonize(GDALRasterBand::ToHandle(selection.GetRasterBand(1)),
                                          GDALRasterBand::ToHandle(selection.GetRasterBand(2)),
                                          OGRLayer::ToHandle(&raw->layer()), 0, nullptr, ProgressBridge::call, &bridge);
        bridge.rethrow();
        if (!selection.problem().empty()) throw Error(options.mask + ": " + selection.problem());
        if (err != CE_None) throw Error(options.mask + ": polygonising failed: " + last_gdal_error());
        if (const std::vector<int> missing = selection.classes_not_seen(); !missing.empty()) {
            const auto listed = [](const auto& values) {
                std::string text;
                for (const auto v : values) text += (text.empty() ? "" : ", ") + std::to_string(v);
                return text;
            };
            const std::vector<int32_t> others = selection.other_values();
            result.warnings.push_back(options.mask + ": class" + (missing.size() > 1 ? "es " : " ") + listed(missing) +
                                      (missing.size() > 1 ? " do" : " does") + " not occur in the mask" +
                                      (others.empty() ? std::string(" (it has no other value)")
                                                      : " (its other values: " + listed(others) +
                                                            (others.size() == ClassSelection::kOtherValuesKept ? ", ..." : "") + ")"));
        }
        raw->commit();
    }

    // 2. Filter and shape each polygon; keep it with its sort key (top-left pixel) for the ids.
    // raw_fid: the pixel outline's row in `raw` (step 3).
    const std::vector<std::pair<std::string, OGRFieldType>> kept_fields{
        {"value", OFTInteger},   {"key_row", OFTInteger64}, {"key_col", OFTInteger64}, {"area_m2", OFTReal},
        {"confidence", OFTReal}, {"raw_fid", OFTInteger64}};
    ScratchLayer kept(output, in_memory, "kept", wkbPolygon, kept_fields);
    const auto& g = info.geotransform;
    int64_t kept_count = 0;
    {
        OGRLayer& layer = raw->layer();
        const GIntBig total = std::max<GIntBig>(layer.GetFeatureCount(), 1);
        GIntBig index = 0;
        report_progress(progress, 0.5, "shaping");
        layer.ResetReading();
        kept.begin();
        for (std::unique_ptr<OGRFeature> feature(layer.GetNextFeature()); feature;
             feature.reset(layer.GetNextFeature())) {
            if (++index % 64 == 0) {
                report_progress(progress, 0.5 + 0.4 * static_cast<double>(index) / static_cast<double>(total),
                                "shaping");
            }
            const OGRGeometry* geometry = feature->GetGeometryRef();
            if (!geometry || wkbFlatten(geometry->getGeometryType()) != wkbPolygon) continue;
            const OGRPolygon& pixels = *geometry->toPolygon();
            const int value = feature->GetFieldAsInteger(0);
            auto polygon = clone_polygon(pixels);
            transform_points(*polygon, [&g](double x, double y) {
                return std::make_pair(g[0] + x * g[1] + y * g[2], g[3] + x * g[4] + y * g[5]);
            });
            const std::optional<double> pixel_area = ground.area_m2(*polygon);  // exact: whole pixels
            // Early only for outlines written as they are: a simplified or regularised one can grow past
            // the threshold (a 21.0 m² pixel outline regularised to 21.5 m² is kept at --min-area 21.2).
            if (!reshaped && pixel_area && *pixel_area < options.min_area_m2) {
                ++result.dropped_small;
                continue;
            }
            std::optional<double> confidence;
            if (probabilities) {
                confidence = probabilities->mean(pixels, value);
                if (confidence && *confidence < options.min_confidence) {
                    ++result.dropped_unconfident;
                    continue;
                }
            }
            std::unique_ptr<OGRPolygon> shaped = shape_outline(*polygon, ground, options, pixel_m);
            if (options.regularize) shaped = clip_to(std::move(shaped), *footprint);
            const std::optional<double> area = reshaped ? ground.area_m2(*shaped) : pixel_area;
            // The threshold holds for what is written: simplifying or regularising can shrink an outline below it.
            if (area && *area < options.min_area_m2) {
                ++result.dropped_small;
                continue;
            }
            const auto [key_row, key_col] = top_left_vertex(pixels);
            OGRFeature out(kept.layer().GetLayerDefn());
            out.SetField(0, value);
            out.SetField(1, static_cast<GIntBig>(key_row));
            out.SetField(2, static_cast<GIntBig>(key_col));
            if (area) out.SetField(3, *area);
            if (confidence) out.SetField(4, *confidence);
            out.SetField(5, static_cast<GIntBig>(feature->GetFID()));
            out.SetGeometryDirectly(shaped.release());
            kept.add(out);
            if (++kept_count % kBatch == 0) {
                kept.commit();
                kept.begin();
            }
        }
        kept.commit();
    }
    if (!reshaped) raw.reset();  // frees the scratch space of the raw polygons

    const auto index_order = [](ScratchLayer& layer) {
        const std::string table = layer.layer().GetName();
        CPLErrorReset();
        layer.dataset().ExecuteSQL(("CREATE INDEX " + table + "_order ON \"" + table + "\" (key_row, key_col, value)").c_str(), nullptr,
                                   nullptr);
        if (CPLGetLastErrorType() >= CE_Failure) throw Error(layer.path() + ": indexing the polygons failed: " + last_gdal_error());
    };
    const auto in_id_order = [](ScratchLayer& layer) {
        return std::make_unique<ResultSet>(layer.dataset(),
                                           "SELECT * FROM \"" + std::string(layer.layer().GetName()) + "\" ORDER BY key_row, key_col, value",
                                           layer.path());
    };
    index_order(kept);

    // 3. Settle reshaped outlines: each is simplified or regularised on its own, so it can cross into a
    // neighbour (diagonal neighbours, outlines closer than the tolerance, classes side by side). In id
    // order, an outline loses what lies in any other polygon's pixels and in outlines settled before it,
    // so no two written polygons overlap and none covers another's pixels. Outlines go in batches (one
    // envelope query per batch, the neighbours streamed through), so memory holds a batch, not the layer.
    std::unique_ptr<ScratchLayer> settled;
    if (reshaped) {
        settled = std::make_unique<ScratchLayer>(output, in_memory, "settled", wkbPolygon, kept_fields, true);
        double to_pixel[6];
        if (!GDALInvGeoTransform(const_cast<double*>(g.data()), to_pixel)) throw Error(options.mask + ": the geotransform cannot be inverted");
        const auto pixel_envelope = [&to_pixel](const OGREnvelope& e) {
            OGREnvelope box;
            for (const double x : {e.MinX, e.MaxX}) {
                for (const double y : {e.MinY, e.MaxY}) {
                    box.Merge(to_pixel[0] + x * to_pixel[1] + y * to_pixel[2], to_pixel[3] + x * to_pixel[4] + y * to_pixel[5]);
                }
            }
            return box;
        };
        struct Outline {
            std::unique_ptr<OGRFeature> feature;
            std::unique_ptr<OGRGeometry> shape;
            OGRPreparedGeometryUniquePtr prepared;  // of `shape`: most neighbours are far or only touch it
            OGREnvelope box;
            double area = 0;  // of `shape`, in CRS units
            GIntBig own = 0;  // FID of its pixel outline
            bool cut = false;
        };
        const auto prepare = [](Outline& o) {
            o.shape->getEnvelope(&o.box);
            o.area = area_of(*o.shape);
            o.prepared.reset(OGRCreatePreparedGeometry(OGRGeometry::ToHandle(o.shape.get())));
        };
        // Cuts `other` out of the outline where they overlap (touching is not overlapping).
        const auto cut_by = [&](Outline& o, const OGRGeometry& other, const OGREnvelope& other_box) {
            if (!o.shape || o.shape->IsEmpty() || !o.box.Intersects(other_box)) return;
            if (!OGRPreparedGeometryIntersects(o.prepared.get(), OGRGeometry::ToHandle(const_cast<OGRGeometry*>(&other)))) return;
            std::unique_ptr<OGRGeometry> rest(o.shape->Difference(&other));
            if (!rest) throw Error(options.mask + ": settling an outline against its neighbours failed: " + last_gdal_error());
            if (!(area_of(*rest) < o.area * (1 - 1e-12))) return;  // touched only
            o.shape = std::move(rest);
            o.cut = true;
            prepare(o);
        };
        auto sorted_kept = in_id_order(kept);
        OGRLayer& in = sorted_kept->layer();
        const int in_raw = in.GetLayerDefn()->GetFieldIndex("raw_fid"), in_area = in.GetLayerDefn()->GetFieldIndex("area_m2");
        constexpr size_t kSettleBatch = 512;
        int64_t done = 0, written = 0;
        std::unique_ptr<OGRFeature> next(in.GetNextFeature());
        while (next) {
            std::vector<Outline> batch;
            OGREnvelope reach;
            for (; next && batch.size() < kSettleBatch; next.reset(in.GetNextFeature())) {
                Outline o;
                o.shape.reset(next->StealGeometry());
                if (!o.shape) continue;
                prepare(o);
                o.own = next->GetFieldAsInteger64(in_raw);
                o.feature = std::move(next);
                reach.Merge(o.box);
                batch.push_back(std::move(o));
            }
            if (batch.empty()) break;
            // A neighbour reaching beyond the batch (a large region of a land-cover map) is cut to the
            // batch's reach first: the outlines lie inside it, and each test then costs the part that can
            // matter, not the whole region's outline, batch after batch.
            OGRPolygon reach_box;
            {
                const double margin = 1e-6 * std::max({std::fabs(reach.MaxX - reach.MinX), std::fabs(reach.MaxY - reach.MinY), 1.0});
                OGRLinearRing ring;
                ring.addPoint(reach.MinX - margin, reach.MinY - margin);
                ring.addPoint(reach.MaxX + margin, reach.MinY - margin);
                ring.addPoint(reach.MaxX + margin, reach.MaxY + margin);
                ring.addPoint(reach.MinX - margin, reach.MaxY + margin);
                ring.closeRings();
                reach_box.addRing(&ring);
            }
            const auto cut_batch_by = [&](const OGRGeometry& neighbour, GIntBig neighbour_raw_fid) {
                OGREnvelope box;
                neighbour.getEnvelope(&box);
                std::unique_ptr<OGRGeometry> clipped;
                if (!reach.Contains(box)) {
                    clipped.reset(neighbour.Intersection(&reach_box));
                    if (!clipped || clipped->IsEmpty()) return;
                    clipped->getEnvelope(&box);
                }
                const OGRGeometry& part = clipped ? *clipped : neighbour;
                for (Outline& o : batch) {
                    if (o.own != neighbour_raw_fid) cut_by(o, part, box);
                }
            };
            // The other polygons' pixels, and outlines settled in earlier batches.
            raw->for_each_near(pixel_envelope(reach), [&](OGRFeature& neighbour) {
                const OGRGeometry* geometry = neighbour.GetGeometryRef();
                if (!geometry || wkbFlatten(geometry->getGeometryType()) != wkbPolygon) return;
                auto pixels = clone_polygon(*geometry->toPolygon());
                transform_points(*pixels, [&g](double x, double y) {
                    return std::make_pair(g[0] + x * g[1] + y * g[2], g[3] + x * g[4] + y * g[5]);
                });
                cut_batch_by(*pixels, neighbour.GetFID());
            });
            settled->for_each_near(reach, [&](OGRFeature& neighbour) {
                if (neighbour.GetGeometryRef()) cut_batch_by(*neighbour.GetGeometryRef(), -1);
            });
            settled->begin();
            for (size_t i = 0; i < batch.size(); ++i) {
                Outline& o = batch[i];
                for (size_t j = 0; j < i; ++j) {  // settled earlier in this batch
                    if (batch[j].shape) cut_by(o, *batch[j].shape, batch[j].box);
                }
                o.prepared.reset();
                std::unique_ptr<OGRPolygon> polygon = o.cut ? largest_polygon(std::move(o.shape)) : as_polygon(std::move(o.shape));
                std::optional<double> area;
                if (polygon && o.cut) area = ground.area_m2(*polygon);
                if (!polygon || (area && *area < options.min_area_m2)) {
                    ++result.dropped_small;
                    continue;
                }
                if (area) o.feature->SetField(in_area, *area);
                polygon->getEnvelope(&o.box);
                OGRFeature out(settled->layer().GetLayerDefn());
                out.SetFrom(o.feature.get());
                out.SetGeometry(polygon.get());
                settled->add(out);
                o.shape = std::move(polygon);  // what later outlines of the batch are cut by
                ++written;
            }
            settled->commit();
            done += static_cast<int64_t>(batch.size());
            report_progress(progress, 0.9 + 0.05 * static_cast<double>(done) / static_cast<double>(std::max<int64_t>(kept_count, 1)), "settling");
        }
        sorted_kept.reset();
        raw.reset();
        kept_count = written;
        index_order(*settled);
    }

    // 4. Write the output in id order.
    ScratchLayer& source = settled ? *settled : kept;
    auto sorted_rows = in_id_order(source);
    ResultSet& sorted = *sorted_rows;
    OGRLayer& in = sorted.layer();
    const int in_value = in.GetLayerDefn()->GetFieldIndex("value");
    const int in_area = in.GetLayerDefn()->GetFieldIndex("area_m2");
    const int in_confidence = in.GetLayerDefn()->GetFieldIndex("confidence");

    const double writing_from = reshaped ? 0.95 : 0.9;
    report_progress(progress, writing_from, "writing");
    GDALDriver* driver = GetGDALDriverManager()->GetDriverByName(format.driver.c_str());
    if (!driver) throw Error("GDAL has no " + format.driver + " driver");
    PendingVectorOutput pending(output, format, options.overwrite);
    const ScopedThreadConfig pinned_date = pinned_vector_date();
    CPLErrorReset();
    DatasetPtr out(driver->Create(pending.temporary_path().c_str(), 0, 0, 0, GDT_Unknown, nullptr));
    if (!out) throw Error(output + ": cannot create the output: " + last_gdal_error());
    OGRSpatialReference srs;
    const bool has_srs = info.georeferenced() && srs.importFromWkt(info.crs_wkt.c_str()) == OGRERR_NONE;
    if (has_srs) srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    // A GeoPackage layer without a CRS would read back as "undefined geographic" (srs_id 0): pixel
    // coordinates are Cartesian (srs_id -1).
    OGRSpatialReference undefined_cartesian;
    const bool cartesian = !has_srs && format.geopackage &&
                           undefined_cartesian.importFromWkt("LOCAL_CS[\"Undefined cartesian SRS\"]") == OGRERR_NONE;
    CPLStringList layer_options;
    if (format.geojson && !options.keep_crs) layer_options.SetNameValue("RFC7946", "YES");  // reprojects to WGS84
    if (format.driver == "ESRI Shapefile") layer_options.SetNameValue("ENCODING", "UTF-8");
    OGRLayer* layer = out->CreateLayer(result.layer.c_str(),
                                       has_srs     ? &srs
                                       : cartesian ? &undefined_cartesian
                                                   : nullptr,
                                       wkbPolygon, layer_options.List());
    if (!layer) throw Error(output + ": cannot create the layer: " + last_gdal_error());
    std::vector<std::pair<const char*, OGRFieldType>> fields{
        {"id", OFTInteger64}, {"class", OFTString}, {"class_id", OFTInteger}, {"area_m2", OFTReal}};  // class: name, else the value
    if (probabilities) fields.emplace_back("confidence", OFTReal);
    for (const auto& [name, type] : fields) {
        OGRFieldDefn field(name, type);
        if (layer->CreateField(&field) != OGRERR_NONE) {
            throw Error(output + ": cannot create the field " + name + ": " + last_gdal_error());
        }
    }
    OGRFeatureDefn* definition = layer->GetLayerDefn();
    const int out_id = definition->GetFieldIndex("id"), out_class = definition->GetFieldIndex("class");
    const int out_class_id = definition->GetFieldIndex("class_id");
    const int out_area = definition->GetFieldIndex("area_m2"), out_confidence = definition->GetFieldIndex("confidence");
    const bool transactions = format.geopackage;
    auto transaction = [&](OGRErr err) {
        if (err != OGRERR_NONE) throw Error(output + ": writing failed: " + last_gdal_error());
    };
    if (transactions) transaction(out->StartTransaction());
    const double total = static_cast<double>(std::max<int64_t>(kept_count, 1));
    for (std::unique_ptr<OGRFeature> row(in.GetNextFeature()); row; row.reset(in.GetNextFeature())) {
        const int64_t id = ++result.polygons;
        const int value = row->GetFieldAsInteger(in_value);
        OGRFeature feature(definition);
        if (format.geopackage) feature.SetFID(id);
        feature.SetField(out_id, static_cast<GIntBig>(id));
        const auto name = class_names.find(value);
        feature.SetField(out_class, name != class_names.end() ? name->second.c_str() : std::to_string(value).c_str());
        feature.SetField(out_class_id, value);
        if (row->IsFieldSetAndNotNull(in_area)) {
            const double area = row->GetFieldAsDouble(in_area);
            feature.SetField(out_area, area);
            result.area_m2 += area;
        }
        if (out_confidence >= 0 && row->IsFieldSetAndNotNull(in_confidence)) {
            feature.SetField(out_confidence, row->GetFieldAsDouble(in_confidence));
        }
        feature.SetGeometryDirectly(row->StealGeometry());
        if (layer->CreateFeature(&feature) != OGRERR_NONE) {
            throw Error(output + ": writing polygon " + std::to_string(id) + " failed: " + last_gdal_error());
        }
        if (transactions && id % kBatch == 0) {
            transaction(out->CommitTransaction());
            transaction(out->StartTransaction());
        }
        if (id % 64 == 0) report_progress(progress, writing_from + (1 - writing_from) * static_cast<double>(id) / total, "writing");
    }
    if (transactions) transaction(out->CommitTransaction());
    close_written(std::move(out), output);
    // Some drivers (GeoJSON, FlatGeobuf) do not report failed writes, e.g. a full disk: the file read
    // back must hold every feature before it takes the final name.
    check_vector_written(pending.temporary_path(), output, result.polygons, "polygons");
    // The last moment a cancel (Ctrl-C) can still take effect: closing and reading back a large file
    // takes a while, and after the rename the output is complete and stays.
    report_progress(progress, 1.0, "writing");
    if (options.before_commit) options.before_commit();
    pending.commit();
    return result;
}

}  // namespace rsi
