// Pixel sizes on the ground: a projection's own metres near true scale, the ellipsoid where it is not.
#include "tiling/ground_distance.hpp"

#include <cmath>
#include <gtest/gtest.h>

namespace rsi {
namespace {

RasterInfo info_in(int epsg, double x0, double y0, double pixel, int64_t size) {
    RasterInfo info;
    info.width = info.height = size;
    info.has_geotransform = true;
    info.geotransform = {x0, pixel, 0, y0, 0, -pixel};
    OGRSpatialReference srs;
    srs.importFromEPSG(epsg);
    char* wkt = nullptr;
    srs.exportToWkt(&wkt);
    info.crs_wkt = wkt;
    CPLFree(wkt);
    return info;
}

TEST(GroundPixelSize, AProjectionNearTrueScaleKeepsItsOwnMetres) {
    // UTM 14N at its central meridian (scale 0.9996) and 240 km east of it (about 1.0003): both within
    // 1 %, so the CRS's metres, exactly, as GIS software and contest scorers take them.
    for (const double easting : {500000.0, 740000.0}) {
        const RasterInfo info = info_in(32614, easting, 3350000, 0.3, 1000);
        const auto ground = ground_pixel_size(info);
        ASSERT_TRUE(ground);
        EXPECT_DOUBLE_EQ(ground->x_m, 0.3);
        EXPECT_DOUBLE_EQ(ground->y_m, 0.3);
        EXPECT_FALSE(measured_on_ellipsoid(info));
    }
}

TEST(GroundPixelSize, WebMercatorIsMeasuredOnTheEllipsoid) {
    // EPSG:3857 is spherical Mercator over WGS84 latitudes: at latitude phi one unit east is
    // N(phi) cos(phi) / a metres of ground and one unit north M(phi) cos(phi) / a (N, M: the
    // ellipsoid's radii of curvature). Las Vegas (36.2 N: x0.81) and Oslo (about 60 N: x0.5).
    const double a = 6378137, f = 1 / 298.257223563, e2 = f * (2 - f);
    for (const double y_centre : {4331000.0, 8399000.0}) {
        const double pixel = 0.3385;
        const int64_t size = 1000;
        const RasterInfo info = info_in(3857, -12800000, y_centre + pixel * size / 2, pixel, size);
        const double phi = 2 * std::atan(std::exp(y_centre / a)) - M_PI / 2;
        const double w = 1 - e2 * std::sin(phi) * std::sin(phi);
        const double east = std::cos(phi) / std::sqrt(w), north = (1 - e2) * std::cos(phi) / (w * std::sqrt(w));
        const auto ground = ground_pixel_size(info);
        ASSERT_TRUE(ground);
        EXPECT_NEAR(ground->x_m, pixel * east, pixel * east * 1e-6) << y_centre;
        EXPECT_NEAR(ground->y_m, pixel * north, pixel * north * 1e-6) << y_centre;
        EXPECT_TRUE(measured_on_ellipsoid(info));
    }
    // Near the equator Web Mercator is within 1 % of true scale: its own metres.
    const RasterInfo equator = info_in(3857, 0, 1000 * 0.3 / 2, 0.3, 1000);
    EXPECT_DOUBLE_EQ(ground_pixel_size(equator)->x_m, 0.3);
}

TEST(EllipsoidMeasure, LengthsAndAreasOfAProjectedSquare) {
    OGRSpatialReference mercator;
    mercator.importFromEPSG(3857);
    const auto measure = EllipsoidMeasure::for_projected(mercator);
    ASSERT_TRUE(measure);
    const auto origin = measure->degrees(0, 0);
    ASSERT_TRUE(origin);
    EXPECT_NEAR(origin->first, 0, 1e-12);
    EXPECT_NEAR(origin->second, 0, 1e-12);
    // 1000 units east along the equator: 1000 m of ground (x = a * longitude there).
    EXPECT_NEAR(*measure->length_m(0, 0, 1000, 0), 1000, 1e-6);
    // A 1 km square of Mercator units at 60 N: about a quarter of a square kilometre.
    const double y = 8399738;  // 60.0 N
    const auto area = measure->ring_area_m2({{0, y}, {1000, y}, {1000, y + 1000}, {0, y + 1000}, {0, y}});
    ASSERT_TRUE(area);
    EXPECT_NEAR(*area, 250e3, 250e3 * 0.01);
    OGRSpatialReference geographic;
    geographic.importFromEPSG(4326);
    EXPECT_FALSE(EllipsoidMeasure::for_projected(geographic));
}

}  // namespace
}  // namespace rsi
