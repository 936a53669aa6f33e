#include "tiling/gdal_dataset.hpp"

#include <cpl_error.h>
#include <cpl_vsi.h>
#include <mutex>

#include "tiling/error.hpp"

namespace rsi {

void GdalDatasetCloser::operator()(GDALDataset* dataset) const noexcept {
    if (dataset) GDALClose(GDALDataset::ToHandle(dataset));
}

void ensure_gdal_registered() {
    static std::once_flag once;
    std::call_once(once, [] { GDALAllRegister(); });
}

std::string last_gdal_error(const std::string& fallback) {
    const char* message = CPLGetLastErrorMsg();
    if (message == nullptr || *message == '\0') return fallback;
    std::string text(message);
    for (char& c : text) {
        if (c == '\n' || c == '\r') c = ' ';  // keep the error on one line
    }
    return text;
}

namespace {

bool is_virtual_path(const std::string& path) { return path.rfind("/vsi", 0) == 0; }

}  // namespace

DatasetPtr open_vector(const std::string& path) {
    ensure_gdal_registered();
    if (!is_virtual_path(path)) {
        VSIStatBufL stat;
        if (VSIStatL(path.c_str(), &stat) != 0) throw Error(path + ": no such file");
    }
    CPLErrorReset();
    DatasetPtr dataset(GDALDataset::FromHandle(
        GDALOpenEx(path.c_str(), GDAL_OF_VECTOR | GDAL_OF_READONLY, nullptr, nullptr, nullptr)));
    if (!dataset) throw Error(path + ": cannot open as a vector file (" + last_gdal_error("no driver recognised it") + ")");
    if (dataset->GetLayerCount() < 1) throw Error(path + ": has no layer");
    return dataset;
}

DatasetPtr open_raster(const std::string& path) {
    ensure_gdal_registered();
    if (!is_virtual_path(path)) {
        VSIStatBufL stat;
        if (VSIStatL(path.c_str(), &stat) != 0) throw Error(path + ": no such file");
        if (VSI_ISDIR(stat.st_mode)) throw Error(path + ": is a directory, not a raster");
    }
    CPLErrorReset();
    GDALDataset* dataset = GDALDataset::FromHandle(
        GDALOpenEx(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr));
    if (dataset == nullptr) {
        throw Error(path + ": not a raster GDAL can read (" + last_gdal_error("no driver recognised it") + ")");
    }
    DatasetPtr owned(dataset);
    if (dataset->GetRasterXSize() <= 0 || dataset->GetRasterYSize() <= 0) {
        throw Error(path + ": the raster has no pixels");
    }
    if (dataset->GetRasterCount() <= 0) throw Error(path + ": the raster has no bands");
    return owned;
}

void close_written(DatasetPtr dataset, const std::string& path) {
    if (!dataset) return;
    CPLErrorReset();
    GDALClose(GDALDataset::ToHandle(dataset.release()));
    if (CPLGetLastErrorType() >= CE_Failure) {
        throw Error(path + ": writing failed (" + last_gdal_error() + ")");
    }
}

OGRSpatialReference gis_order_srs(const OGRSpatialReference& srs) {
    OGRSpatialReference copy(srs);
    copy.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    return copy;
}

void set_creation_options(CPLStringList& options, const std::vector<std::string>& key_values) {
    for (const std::string& key_value : key_values) {
        const size_t eq = key_value.find('=');
        if (eq == std::string::npos || eq == 0) throw usage_error("--co: expected KEY=VALUE, got '" + key_value + "'");
        options.SetNameValue(key_value.substr(0, eq).c_str(), key_value.substr(eq + 1).c_str());
    }
}

}  // namespace rsi
