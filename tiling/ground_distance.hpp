#pragma once
// Pixel size on the ground in metres, per axis: the CRS's linear unit for projected rasters, the
// geodesic length of one pixel step at the image centre for geographic ones (GDAL 3.6 has no
// geodesic area or distance of its own, so PROJ's geodesic routines are used).
#include <optional>

#include "tiling/raster_source.hpp"

namespace rsi {

struct GroundPixelSize {
    double x_m = 0;  // east–west extent of one pixel
    double y_m = 0;  // north–south extent of one pixel
};

// Empty when the raster has no CRS or no geotransform.
std::optional<GroundPixelSize> ground_pixel_size(const RasterInfo& info);

// Geodesic distance in metres between two lon/lat points (degrees) on the WGS84 ellipsoid.
double geodesic_distance_m(double lon1, double lat1, double lon2, double lat2);

}  // namespace rsi
