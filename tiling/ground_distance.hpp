#pragma once
// Pixel size on the ground in metres, per axis: the CRS's linear unit for projected rasters, the
// geodesic length of one pixel step at the image centre for geographic ones (GDAL 3.6 has no
// geodesic area or distance of its own, so PROJ's geodesic routines are used). A projection whose
// scale at the image centre is more than 1 % from true (Web Mercator away from the equator: 1/cos of
// the latitude) is measured on its ellipsoid too; within 1 % (UTM, national grids) its metres are
// the ground's, as every GIS and contest scorer takes them.
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <geodesic.h>
#include <ogr_spatialref.h>

#include "tiling/raster_source.hpp"

namespace rsi {

struct GroundPixelSize {
    double x_m = 0;  // east–west extent of one pixel
    double y_m = 0;  // north–south extent of one pixel
};

// Empty when the raster has no CRS or no geotransform.
std::optional<GroundPixelSize> ground_pixel_size(const RasterInfo& info);

// Whether ground_pixel_size measures this projected raster on its ellipsoid (its scale is more than
// 1 % off at the image centre): its areas and lengths are then geodesic too.
bool measured_on_ellipsoid(const RasterInfo& info);

// Geodesic distance in metres between two lon/lat points (degrees) on the WGS84 ellipsoid.
double geodesic_distance_m(double lon1, double lat1, double lon2, double lat2);

// A projected CRS measured on its own ellipsoid: points go to longitude/latitude through PROJ.
class EllipsoidMeasure {
public:
    // Null when the CRS is not projected or its points cannot be brought to its geographic CRS.
    static std::unique_ptr<EllipsoidMeasure> for_projected(const OGRSpatialReference& projected);
    ~EllipsoidMeasure();
    EllipsoidMeasure(const EllipsoidMeasure&) = delete;
    EllipsoidMeasure& operator=(const EllipsoidMeasure&) = delete;

    // Longitude and latitude in degrees of a point in CRS coordinates.
    std::optional<std::pair<double, double>> degrees(double x, double y) const;
    // Geodesic length in metres of the segment between two points in CRS coordinates.
    std::optional<double> length_m(double x0, double y0, double x1, double y1) const;
    // Geodesic area in square metres of a ring of points in CRS coordinates (closed or not).
    std::optional<double> ring_area_m2(const std::vector<std::pair<double, double>>& ring) const;

private:
    EllipsoidMeasure() = default;
    OGRCoordinateTransformation* to_geographic_ = nullptr;
    double degrees_per_unit_ = 1;
    geod_geodesic geod_{};
};

}  // namespace rsi
