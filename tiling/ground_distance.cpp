#include "tiling/ground_distance.hpp"

#include <cmath>
#include <geodesic.h>

namespace rsi {

namespace {

double geodesic_on(const OGRSpatialReference& srs, double lon1, double lat1, double lon2, double lat2) {
    OGRErr err = OGRERR_NONE;
    const double a = srs.GetSemiMajor(&err);
    const double inv_f = srs.GetInvFlattening(&err);
    geod_geodesic g;
    geod_init(&g, a, inv_f != 0 ? 1.0 / inv_f : 0.0);
    double s12 = 0;
    geod_inverse(&g, lat1, lon1, lat2, lon2, &s12, nullptr, nullptr);
    return s12;
}

}  // namespace

double geodesic_distance_m(double lon1, double lat1, double lon2, double lat2) {
    OGRSpatialReference wgs84;
    wgs84.SetWellKnownGeogCS("WGS84");
    return geodesic_on(wgs84, lon1, lat1, lon2, lat2);
}

std::optional<GroundPixelSize> ground_pixel_size(const RasterInfo& info) {
    if (!info.georeferenced()) return std::nullopt;
    OGRSpatialReference srs;
    if (srs.importFromWkt(info.crs_wkt.c_str()) != OGRERR_NONE) return std::nullopt;
    srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    const auto& g = info.geotransform;
    const double step_x = std::hypot(g[1], g[4]);  // length of one column step in CRS units
    const double step_y = std::hypot(g[2], g[5]);
    if (srs.IsProjected()) {
        const double unit = srs.GetLinearUnits();
        return GroundPixelSize{step_x * unit, step_y * unit};
    }
    if (!srs.IsGeographic()) return std::nullopt;
    // Degrees: measure one pixel step east and one south from the image centre.
    const double cx = info.width / 2.0, cy = info.height / 2.0;
    const double lon = g[0] + cx * g[1] + cy * g[2], lat = g[3] + cx * g[4] + cy * g[5];
    const double to_deg = srs.GetAngularUnits() / (M_PI / 180.0);
    const double lon0 = lon * to_deg, lat0 = lat * to_deg;
    const double x_m = geodesic_on(srs, lon0, lat0, lon0 + g[1] * to_deg, lat0 + g[4] * to_deg);
    const double y_m = geodesic_on(srs, lon0, lat0, lon0 + g[2] * to_deg, lat0 + g[5] * to_deg);
    return GroundPixelSize{x_m, y_m};
}

}  // namespace rsi
