#pragma once
// Writes a georeferenced raster row by row, in chunks whose height is a multiple of the output block
// height (so compressed blocks are written once), under a temporary name that is renamed into place
// only by finish(). COG output goes through a temporary tiled GeoTIFF (GDAL 3.6's COG driver has
// no Create()).
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/model_metadata.hpp"
#include "src/output_file.hpp"
#include "tiling/gdal_dataset.hpp"
#include "tiling/raster_source.hpp"

namespace rsi {

struct RasterWriterOptions {
    std::string path;
    int64_t width = 0, height = 0;
    int bands = 1;
    GDALDataType type = GDT_Byte;
    std::string format = "GTiff";  // GTiff or COG
    std::vector<std::string> creation_options;
    std::optional<double> nodata;
    bool has_geotransform = false;
    std::array<double, 6> geotransform{0, 1, 0, 0, 0, 1};
    std::string crs_wkt;
    // An image located only by ground control points: its outputs carry them (moved to their grid).
    std::vector<GroundControlPoint> gcps;
    std::string gcp_crs_wkt;
    std::vector<std::string> band_descriptions;
    bool overwrite = false;  // replace an existing file (else even one another run wrote meanwhile is kept)
};

// Georeferencing of `info` shifted to a window origin and scaled by `step` pixels per output pixel.
void georeference_like(RasterWriterOptions& options, const RasterInfo& info, double origin_x = 0, double origin_y = 0,
                       double step = 1);
// The same with a step per axis (columns, rows).
void georeference_like(RasterWriterOptions& options, const RasterInfo& info, double origin_x, double origin_y, double step_x,
                       double step_y);

// Colour table and category names on a class band (QGIS shows them as a legend); nodata is transparent.
void apply_class_legend(GDALRasterBand& band, const std::vector<models::ClassInfo>& classes, std::optional<double> nodata);

// Checks --co KEY=VALUE options against the driver of `format` (GTiff or COG) before any work: a key or
// value the driver does not accept (COMPRESS=BOGUS) is a usage Error naming it; GDAL only warned and
// wrote its default.
void check_creation_options(const std::string& format, const std::vector<std::string>& key_values);

// A raster output written as `format` (GTiff or COG) must be named .tif or .tiff (any case): a map
// named out.gpkg or out.png would be a GeoTIFF under a name that other tools open as something else.
// `option` names the option in the message (e.g. "-o", "--probabilities"). Empty paths pass.
void check_raster_output_name(const std::string& path, const std::string& format, const std::string& option);

class RasterWriter {
public:
    explicit RasterWriter(RasterWriterOptions options);
    ~RasterWriter();
    RasterWriter(const RasterWriter&) = delete;
    RasterWriter& operator=(const RasterWriter&) = delete;

    // Colour table and category names (QGIS shows them as a legend); nodata index gets transparency.
    void set_classes(const std::vector<models::ClassInfo>& classes);

    // Rows must come in order: `rows` rows starting at `y`, band-sequential (bands x rows x width).
    void append_rows(int64_t y, int64_t rows, const void* data);

    // Flushes, closes (checking GDAL's error state), converts to COG if asked, renames into place.
    void finish();
    // finish() in two steps, so several outputs can all be complete before any is renamed into place.
    void close();
    void commit();
    // Throws (a runtime Error) when the final path is taken and overwriting was not asked for: callers
    // renaming several outputs check them all before renaming the first.
    void check_final_path_free() const;

    const std::string& path() const { return options_.path; }
    // Where the complete file lies after close() and before commit() (for outputs derived from it).
    const std::string& closed_path() const;

private:
    void flush();

    RasterWriterOptions options_;
    std::unique_ptr<PendingOutput> pending_;       // the final file
    std::unique_ptr<PendingOutput> intermediate_;  // tiled GeoTIFF before COG conversion
    DatasetPtr dataset_;
    int64_t block_rows_ = 256;
    size_t elem_ = 1;
    std::vector<unsigned char> buffer_;
    int64_t buffer_y_ = 0, buffered_ = 0, next_y_ = 0;
};

}  // namespace rsi
