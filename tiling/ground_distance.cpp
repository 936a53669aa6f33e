#include "tiling/ground_distance.hpp"

#include <cmath>
#include <cpl_error.h>

namespace rsi {

namespace {

geod_geodesic geodesic_of(const OGRSpatialReference& srs) {
    OGRErr err = OGRERR_NONE;
    const double a = srs.GetSemiMajor(&err);
    const double inv_f = srs.GetInvFlattening(&err);
    geod_geodesic g;
    geod_init(&g, a, inv_f != 0 ? 1.0 / inv_f : 0.0);
    return g;
}

double geodesic_on(const OGRSpatialReference& srs, double lon1, double lat1, double lon2, double lat2) {
    const geod_geodesic g = geodesic_of(srs);
    double s12 = 0;
    geod_inverse(&g, lat1, lon1, lat2, lon2, &s12, nullptr, nullptr);
    return s12;
}

constexpr double kProjectionScaleTolerance = 0.01;

}  // namespace

double geodesic_distance_m(double lon1, double lat1, double lon2, double lat2) {
    OGRSpatialReference wgs84;
    wgs84.SetWellKnownGeogCS("WGS84");
    return geodesic_on(wgs84, lon1, lat1, lon2, lat2);
}

std::unique_ptr<EllipsoidMeasure> EllipsoidMeasure::for_projected(const OGRSpatialReference& projected) {
    if (!projected.IsProjected()) return nullptr;
    std::unique_ptr<OGRSpatialReference> geographic(projected.CloneGeogCS());
    if (!geographic) return nullptr;
    OGRSpatialReference source(projected);
    source.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    geographic->SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    std::unique_ptr<EllipsoidMeasure> measure(new EllipsoidMeasure());
    CPLPushErrorHandler(CPLQuietErrorHandler);
    measure->to_geographic_ = OGRCreateCoordinateTransformation(&source, geographic.get());
    CPLPopErrorHandler();
    if (!measure->to_geographic_) return nullptr;
    measure->degrees_per_unit_ = geographic->GetAngularUnits() * 180.0 / M_PI;
    measure->geod_ = geodesic_of(*geographic);
    return measure;
}

EllipsoidMeasure::~EllipsoidMeasure() { OGRCoordinateTransformation::DestroyCT(to_geographic_); }

std::optional<std::pair<double, double>> EllipsoidMeasure::degrees(double x, double y) const {
    CPLPushErrorHandler(CPLQuietErrorHandler);
    const bool ok = to_geographic_->Transform(1, &x, &y) != 0;
    CPLPopErrorHandler();
    if (!ok || !std::isfinite(x) || !std::isfinite(y)) return std::nullopt;
    return std::make_pair(x * degrees_per_unit_, y * degrees_per_unit_);
}

std::optional<double> EllipsoidMeasure::length_m(double x0, double y0, double x1, double y1) const {
    const auto a = degrees(x0, y0), b = degrees(x1, y1);
    if (!a || !b) return std::nullopt;
    double s12 = 0;
    geod_inverse(&geod_, a->second, a->first, b->second, b->first, &s12, nullptr, nullptr);
    return s12;
}

std::optional<double> EllipsoidMeasure::ring_area_m2(const std::vector<std::pair<double, double>>& ring) const {
    size_t n = ring.size();
    if (n > 1 && ring.front() == ring.back()) --n;
    geod_polygon polygon;
    geod_polygon_init(&polygon, 0);
    for (size_t i = 0; i < n; ++i) {
        const auto p = degrees(ring[i].first, ring[i].second);
        if (!p) return std::nullopt;
        geod_polygon_addpoint(&geod_, &polygon, p->second, p->first);
    }
    double area = 0, perimeter = 0;
    geod_polygon_compute(&geod_, &polygon, 0, 1, &area, &perimeter);
    return std::fabs(area);
}

namespace {

struct GroundMeasurement {
    GroundPixelSize size;
    bool on_ellipsoid = false;  // a projected CRS measured on its ellipsoid
};

std::optional<GroundMeasurement> measure_ground(const RasterInfo& info) {
    if (!info.georeferenced()) return std::nullopt;
    OGRSpatialReference srs;
    if (srs.importFromWkt(info.crs_wkt.c_str()) != OGRERR_NONE) return std::nullopt;
    srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    const auto& g = info.geotransform;
    const double step_x = std::hypot(g[1], g[4]);  // length of one column step in CRS units
    const double step_y = std::hypot(g[2], g[5]);
    const double cx = info.width / 2.0, cy = info.height / 2.0;
    const double x = g[0] + cx * g[1] + cy * g[2], y = g[3] + cx * g[4] + cy * g[5];
    if (srs.IsProjected()) {
        const double unit = srs.GetLinearUnits();
        const GroundPixelSize nominal{step_x * unit, step_y * unit};
        const auto measure = EllipsoidMeasure::for_projected(srs);
        if (!measure) return GroundMeasurement{nominal};
        const auto along_x = measure->length_m(x, y, x + g[1], y + g[4]);
        const auto along_y = measure->length_m(x, y, x + g[2], y + g[5]);
        if (!along_x || !along_y || *along_x <= 0 || *along_y <= 0) return GroundMeasurement{nominal};
        const bool distorted = std::abs(*along_x / nominal.x_m - 1) > kProjectionScaleTolerance ||
                               std::abs(*along_y / nominal.y_m - 1) > kProjectionScaleTolerance;
        return distorted ? GroundMeasurement{{*along_x, *along_y}, true} : GroundMeasurement{nominal};
    }
    if (!srs.IsGeographic()) return std::nullopt;
    // Degrees: measure one pixel step east and one south from the image centre.
    const double to_deg = srs.GetAngularUnits() / (M_PI / 180.0);
    const double lon0 = x * to_deg, lat0 = y * to_deg;
    const double x_m = geodesic_on(srs, lon0, lat0, lon0 + g[1] * to_deg, lat0 + g[4] * to_deg);
    const double y_m = geodesic_on(srs, lon0, lat0, lon0 + g[2] * to_deg, lat0 + g[5] * to_deg);
    return GroundMeasurement{{x_m, y_m}};
}

}  // namespace

std::optional<GroundPixelSize> ground_pixel_size(const RasterInfo& info) {
    const auto measured = measure_ground(info);
    return measured ? std::optional<GroundPixelSize>(measured->size) : std::nullopt;
}

bool measured_on_ellipsoid(const RasterInfo& info) {
    const auto measured = measure_ground(info);
    return measured && measured->on_ellipsoid;
}

}  // namespace rsi
