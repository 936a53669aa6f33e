#pragma once
// Vectorisation of class masks into footprint polygons.
//
// The whole mask is polygonised at once by GDALPolygonize (4-connected: pixels that touch only at a
// corner belong to different polygons, which keeps every polygon valid) through a mask band that
// selects the chosen classes, so the background is never polygonised and a building that crosses a
// tile or strip border of the mask is one feature. GDAL's polygonizer streams row by row (memory
// bounded by the image width); its polygons go to a scratch GeoPackage (on disk beside the output,
// or in /vsimem when the mask is small), and are then processed and written one at a time:
//
//   1. min-area (on the pixel-exact polygon) and min-confidence filters;
//   2. optional simplification / regularisation, done in a local metric frame (the projected CRS
//      scaled to metres, or for a geographic CRS a local east/north frame in metres around the
//      polygon), then mapped back to the image CRS;
//   3. the output layer, ids 1..N in reading order of each polygon's top-left pixel (topmost row,
//      then leftmost column), which depends only on the mask: reruns and shards give the same ids.
//
// Attributes: id (Integer64), class (String: the class name, else the pixel value), area_m2 (Real:
// planar area x linear unit^2 for a projected CRS, geodesic area on the CRS's ellipsoid for a
// geographic one; null when the mask has no CRS), confidence (Real, only with a probability raster:
// the mean probability of the polygon's class over its pixels).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <ogr_geometry.h>
#include <string>
#include <vector>

#include "src/vector_output.hpp"
#include "tiling/progress.hpp"

namespace rsi {

struct VectorizeOptions {
    std::string mask;          // class mask raster (integer band 1), e.g. 0 background, 1 building
    std::string output;        // .gpkg, .geojson/.json, .fgb or .shp (driver from the extension)
    std::vector<int> classes;  // class values to polygonise; empty = every value except 0 and nodata
    // Optional raster on the mask's grid: Float32/Float64 (0..1) or Byte (0..255; 0..254 with nodata 255, rsi's layout). One band is used for
    // every class; with several bands, band c+1 holds class c (band 1 is class 0, like a softmax).
    std::string probabilities;
    // >= 0: the probabilities hold only this class's band first (rsi's --probability-class layout, an
    // entropy band may follow): polygons of that class read band 1, the others get no confidence.
    int probability_class = -1;
    double min_area_m2 = 0;     // drop polygons smaller than this (area of the written outline, square metres)
    double simplify_m = 0;      // topology-preserving simplification tolerance in metres
    bool regularize = false;    // orthogonal building outlines (see regularize_outline)
    double min_confidence = 0;  // drop polygons whose mean probability is lower (needs probabilities)
    bool keep_crs = false;      // GeoJSON only: keep the image CRS instead of WGS84 (RFC 7946)
    bool overwrite = false;
    std::map<int, std::string> class_names;  // value -> name for the "class" attribute (else the number)
    int64_t memory_budget_mb = 256;          // scratch layers stay in memory only for small masks (0: always on disk)
    // The caller checked `output` with check_vector_output when its run started: a file there now
    // appeared meanwhile (another run writing it), a runtime error rather than a usage one.
    bool output_checked = false;
    // Called just before the polygons are renamed into place. A caller that renames other outputs of
    // the same run afterwards checks their final paths here, so that when one of them cannot be
    // renamed, none of the run's outputs is.
    std::function<void()> before_commit;
};

struct VectorizeResult {
    int64_t polygons = 0;             // features written
    int64_t dropped_small = 0;        // below min_area_m2
    int64_t dropped_unconfident = 0;  // below min_confidence
    double area_m2 = 0;               // total area of the written polygons (0 without a CRS)
    bool area_known = false;          // the mask is georeferenced, so area_m2 is in square metres
    std::string output;
    std::string layer;
    std::vector<std::string> warnings;  // e.g. a mask with several bands (band 1 is used)
};

VectorizeResult vectorize_mask(const VectorizeOptions& options, const ProgressFn& progress = {});

// Building-outline regularisation, for one polygon in an isotropic metric frame (metres, any origin).
// The outline is first simplified with `tolerance` (topology-preserving, removes the pixel stairs).
// Two candidate orientations are tried: the peak of the length-weighted histogram of edge
// directions modulo 90 degrees (refined by a circular mean around it), and the orientation of the
// minimum-area bounding rectangle (robust where a diagonal wall kept zig-zag edges). For each, every
// edge is snapped to that direction or its perpendicular, consecutive parallel edges are merged (or
// joined by a perpendicular step when their offsets differ by more than `tolerance`), edges shorter
// than 2 x `tolerance` are folded into their neighbours, and the corners are the intersections of
// consecutive lines; holes get the same orientation. The valid candidate with the highest
// intersection over union with the input wins. When none reaches 0.7, `orthogonal` is false and
// `polygon` is the simplified outline.
struct RegularizedOutline {
    std::unique_ptr<OGRPolygon> polygon;
    bool orthogonal = false;
    double orientation_deg = 0;  // dominant edge direction in [0, 90), counter-clockwise from +x
};
RegularizedOutline regularize_outline(const OGRPolygon& outline, double tolerance);

}  // namespace rsi
