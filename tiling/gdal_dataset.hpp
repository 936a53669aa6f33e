#pragma once
// RAII ownership of GDAL handles, and the conversion of GDAL's error state into rsi::Error.
#include <memory>
#include <string>
#include <vector>

#include <cpl_string.h>
#include <gdal_priv.h>
#include <ogr_spatialref.h>

namespace rsi {

struct GdalDatasetCloser {
    void operator()(GDALDataset* dataset) const noexcept;
};
using DatasetPtr = std::unique_ptr<GDALDataset, GdalDatasetCloser>;

// Registers GDAL's drivers once (thread-safe, idempotent).
void ensure_gdal_registered();

// The message of GDAL's last error, or `fallback` when GDAL recorded none.
std::string last_gdal_error(const std::string& fallback = "unknown GDAL error");

// Opens a raster for reading; throws "<path>: <problem>" when it is missing or not a raster.
DatasetPtr open_raster(const std::string& path);

// Opens a vector dataset for reading (first layer used by callers); throws "<path>: <problem>" when
// it is missing, not a vector file, or has no layer.
DatasetPtr open_vector(const std::string& path);

// Closes a dataset that was written and throws if GDAL reported a failure while flushing
// (GDALClose returns nothing in GDAL 3.6, so the error state is the only signal), or could not save
// the .aux.xml beside it (only a warning to GDAL, but it holds e.g. a mask's class names). `path` is
// the name errors give.
void close_written(DatasetPtr dataset, const std::string& path);

// Reads back the vector file just written at `written` and throws "<name>: writing failed: ..." unless
// it holds one layer of `features` features: some drivers (GeoJSON, FlatGeobuf) report no error when
// a write fails (a full disk) and leave a truncated file.
void check_vector_written(const std::string& written, const std::string& name, int64_t features, const std::string& what = "features");

// Sets the user's creation options (KEY=VALUE, from --co) in `options`, replacing rsi's defaults for
// the same keys: GDAL takes the first of two equal keys, so appending would leave the default.
void set_creation_options(CPLStringList& options, const std::vector<std::string>& key_values);

// A spatial reference with the traditional GIS axis order (x = easting/longitude).
OGRSpatialReference gis_order_srs(const OGRSpatialReference& srs);

}  // namespace rsi
