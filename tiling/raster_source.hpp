#pragma once
// A raster opened for streaming reads: its description, and window reads of chosen bands that may
// reach beyond the image (padding filled by the edge policy). One RasterSource per thread: GDAL
// datasets are not thread-safe before GDAL 3.10; use reopen() for another thread.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tiling/gdal_dataset.hpp"
#include "tiling/pixel_window.hpp"

namespace rsi {

struct BandInfo {
    GDALDataType data_type = GDT_Unknown;
    std::optional<double> nodata;
    std::string color_interpretation;  // "Red", "Gray", "Alpha", ...
    std::string description;
    int block_width = 0;
    int block_height = 0;
};

// Where the validity of a pixel comes from.
enum class MaskSource { none, nodata, alpha, mask_band };
const char* to_string(MaskSource source);

// A ground control point: pixel (column, row) of the image at (x, y, z) in the GCPs' own CRS.
struct GroundControlPoint {
    double pixel = 0, line = 0, x = 0, y = 0, z = 0;
};

// Sets `points` (moved by -origin) on a dataset with their CRS (WKT, or none); nothing when empty.
void set_ground_control_points(GDALDataset& dataset, const std::vector<GroundControlPoint>& points, const std::string& crs_wkt,
                               double origin_x = 0, double origin_y = 0);

struct RasterInfo {
    std::string path;
    std::string driver;
    int64_t width = 0;
    int64_t height = 0;
    std::vector<BandInfo> bands;
    GDALDataType data_type = GDT_Unknown;  // of band 1
    int block_width = 0;                   // of band 1
    int block_height = 0;
    std::string crs_wkt;                   // empty when the raster has no CRS
    std::optional<int> epsg;
    bool has_geotransform = false;
    int gcp_count = 0;  // ground control points (rsi does not locate pixels with them: warp the image first)
    std::vector<GroundControlPoint> gcps;  // passed on to outputs on the image's grid, with their CRS
    std::string gcp_crs_wkt;
    std::array<double, 6> geotransform{0, 1, 0, 0, 0, 1};
    MaskSource mask = MaskSource::none;

    int band_count() const { return static_cast<int>(bands.size()); }
    bool georeferenced() const { return has_geotransform && !crs_wkt.empty(); }
    // What an image that is not georeferenced lacks: "no CRS (only a geotransform)", "no geotransform
    // (only a CRS)" or "no CRS or geotransform"; "" when georeferenced.
    std::string georeferencing_gap() const {
        if (georeferenced()) return "";
        if (has_geotransform) return "no CRS (only a geotransform)";
        return crs_wkt.empty() ? "no CRS or geotransform" : "no geotransform (only a CRS)";
    }
    // Geotransform of a window whose top-left pixel is (x, y).
    std::array<double, 6> window_geotransform(int64_t x, int64_t y) const;
};

// How pixels outside the image are filled when a window reaches beyond it.
struct EdgeFill {
    enum class Mode { constant, reflect } mode = Mode::constant;
    double value = 0;
};

// For a local GeoTIFF: where its first or last block of a band ends past the end of the file (a copy
// cut short), the message saying so ("is truncated: ..."); "" otherwise. Only metadata is read, so
// `rsi info` stays instant on a 50 GB image; a failed pixel read names the cause with it.
std::string truncated_geotiff_problem(GDALDataset& dataset, const std::string& path);

class RasterSource {
public:
    static RasterSource open(const std::string& path);
    RasterSource reopen() const { return open(info_.path); }

    const RasterInfo& info() const { return info_; }
    GDALDataset& dataset() const { return *dataset_; }

    // Reads `window` of the 1-based `bands` into `out`, band-sequential (band, row, column), converted
    // to `type`. Pixels outside the image are filled per `edge`.
    void read(const PixelWindow& window, const std::vector<int>& bands, GDALDataType type, void* out,
              const EdgeFill& edge = {}) const;
    std::vector<float> read_float(const PixelWindow& window, const std::vector<int>& bands,
                                  const EdgeFill& edge = {}) const;

    // Reads the window of the image (which must lie inside it) resampled to out_width x out_height.
    void read_resampled(const PixelWindow& window, int64_t out_width, int64_t out_height,
                        const std::vector<int>& bands, GDALDataType type, void* out,
                        GDALRIOResampleAlg resampling = GRIORA_NearestNeighbour) const;

    // 255 where a pixel holds data in any of `bands`, 0 where it is nodata, transparent, masked or
    // outside the image. Empty `bands` means all bands.
    void read_validity(const PixelWindow& window, const std::vector<int>& bands, uint8_t* out) const;

    // When read_validity of `bands` is exactly "any band's value differs from its integral nodata"
    // (the only mask is per-band nodata, every band is of an integer type that holds its nodata value
    // exactly): per band its nodata value, or none for a band with data everywhere. Otherwise empty,
    // and only GDAL's masks can tell.
    std::vector<std::optional<int64_t>> exact_integer_nodata(const std::vector<int>& bands) const;
    // read_validity's result for `window`, computed from values of it already read (band-sequential,
    // integer `type`, `plane_stride` elements between bands) and exact_integer_nodata(bands): no I/O.
    void validity_from_values(const PixelWindow& window, GDALDataType type, const void* values, int64_t plane_stride,
                              const std::vector<std::optional<int64_t>>& nodata, uint8_t* out) const;

    // Checks 1-based band numbers against the band count; throws a usage Error naming the file.
    void check_bands(const std::vector<int>& bands) const;
    std::vector<int> all_bands() const;

private:
    RasterSource(DatasetPtr dataset, RasterInfo info) : dataset_(std::move(dataset)), info_(std::move(info)) {}
    void read_inside(const PixelWindow& inside, const std::vector<int>& bands, GDALDataType type, void* out,
                     int64_t pixel_space, int64_t line_space, int64_t band_space) const;

    DatasetPtr dataset_;
    RasterInfo info_;
};

// Sets NaN/Inf values to 0 and marks those pixels invalid (band-sequential data, `pixels` per band).
void mask_non_finite(float* data, int bands, int64_t pixels, uint8_t* validity);
// Whether any of the 1-based `bands` of `info` has a floating-point type, i.e. can hold NaN or Inf
// (integer bands read as float never do, so mask_non_finite can be skipped for them).
bool may_hold_non_finite(const RasterInfo& info, const std::vector<int>& bands);

}  // namespace rsi
