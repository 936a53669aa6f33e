#include "src/raster_writer.hpp"

#include <algorithm>
#include <cctype>
#include <cpl_string.h>
#include <cstring>
#include <filesystem>

#include "tiling/error.hpp"

namespace rsi {

void georeference_like(RasterWriterOptions& options, const RasterInfo& info, double origin_x, double origin_y,
                       double step) {
    georeference_like(options, info, origin_x, origin_y, step, step);
}

void georeference_like(RasterWriterOptions& options, const RasterInfo& info, double origin_x, double origin_y,
                       double step_x, double step_y) {
    options.has_geotransform = info.has_geotransform;
    const auto& g = info.geotransform;
    options.geotransform = {g[0] + origin_x * g[1] + origin_y * g[2], g[1] * step_x, g[2] * step_y,
                            g[3] + origin_x * g[4] + origin_y * g[5], g[4] * step_x, g[5] * step_y};
    options.crs_wkt = info.crs_wkt;
    options.gcps.clear();
    options.gcp_crs_wkt.clear();
    if (!info.has_geotransform && !info.gcps.empty()) {
        for (GroundControlPoint p : info.gcps) {
            p.pixel = (p.pixel - origin_x) / step_x;
            p.line = (p.line - origin_y) / step_y;
            options.gcps.push_back(p);
        }
        options.gcp_crs_wkt = info.gcp_crs_wkt;
    }
}

RasterWriter::RasterWriter(RasterWriterOptions options) : options_(std::move(options)) {
    if (options_.format != "GTiff" && options_.format != "COG") {
        throw usage_error("--of: unsupported raster format '" + options_.format + "' (expected GTiff or COG)");
    }
    ensure_gdal_registered();
    pending_ = std::make_unique<PendingOutput>(options_.path, options_.overwrite);
    std::string target = pending_->temporary_path();
    if (options_.format == "COG") {
        intermediate_ = std::make_unique<PendingOutput>(options_.path + ".tiled.tif", true);
        target = intermediate_->temporary_path();
    }
    CPLStringList co;
    co.SetNameValue("TILED", "YES");
    co.SetNameValue("BLOCKXSIZE", "256");
    co.SetNameValue("BLOCKYSIZE", "256");
    co.SetNameValue("COMPRESS", "DEFLATE");
    co.SetNameValue("BIGTIFF", "IF_SAFER");
    // Class probabilities, not colours: 3 or 4 Byte bands would otherwise be tagged RGB(A) and shown as
    // a picture by QGIS.
    if (options_.bands >= 3) co.SetNameValue("PHOTOMETRIC", "MINISBLACK");
    if (options_.format == "GTiff") {
        set_creation_options(co, options_.creation_options);
    }
    if (const char* rows = co.FetchNameValue("BLOCKYSIZE")) block_rows_ = std::max(1, std::atoi(rows));
    GDALDriver* driver = GetGDALDriverManager()->GetDriverByName("GTiff");
    CPLErrorReset();
    dataset_.reset(driver->Create(target.c_str(), static_cast<int>(options_.width), static_cast<int>(options_.height),
                                  options_.bands, options_.type, co.List()));
    if (!dataset_) throw Error(options_.path + ": cannot create the output: " + last_gdal_error());
    if (options_.has_geotransform) dataset_->SetGeoTransform(options_.geotransform.data());
    if (!options_.crs_wkt.empty()) {
        OGRSpatialReference srs;
        srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);  // x of the geotransform = longitude (PAM formats record it)
        if (srs.importFromWkt(options_.crs_wkt.c_str()) == OGRERR_NONE) dataset_->SetSpatialRef(&srs);
    }
    if (!options_.has_geotransform) set_ground_control_points(*dataset_, options_.gcps, options_.gcp_crs_wkt);
    for (int b = 1; b <= options_.bands; ++b) {
        GDALRasterBand* band = dataset_->GetRasterBand(b);
        if (options_.nodata) band->SetNoDataValue(*options_.nodata);
        if (static_cast<size_t>(b) <= options_.band_descriptions.size()) {
            band->SetDescription(options_.band_descriptions[static_cast<size_t>(b - 1)].c_str());
        }
    }
    elem_ = static_cast<size_t>(GDALGetDataTypeSizeBytes(options_.type));
    buffer_.resize(static_cast<size_t>(block_rows_ * options_.width * options_.bands) * elem_);
}

RasterWriter::~RasterWriter() = default;  // an unfinished output's temporary files are removed

void apply_class_legend(GDALRasterBand& band, const std::vector<models::ClassInfo>& classes, std::optional<double> nodata) {
    GDALColorTable table;
    CPLStringList names;
    // Values without a class are opaque black, as a GeoTIFF palette (no alpha) reads back anyway: a VRT
    // keeps the alpha that SetColorEntry would fill the gaps with (0, transparent).
    const GDALColorEntry unused{0, 0, 0, 255};
    int entries = nodata ? static_cast<int>(*nodata) + 1 : 0;
    for (const auto& c : classes) entries = std::max(entries, c.id + 1);
    for (int v = 0; v < entries; ++v) table.SetColorEntry(v, &unused);
    for (const auto& c : classes) {
        const GDALColorEntry entry{c.color[0], c.color[1], c.color[2], 255};
        table.SetColorEntry(c.id, &entry);
    }
    if (nodata) {
        const GDALColorEntry transparent{0, 0, 0, 0};
        table.SetColorEntry(static_cast<int>(*nodata), &transparent);
    }
    const int count = nodata ? static_cast<int>(*nodata) + 1 : static_cast<int>(classes.size());
    for (int v = 0; v < count; ++v) {
        std::string name;
        for (const auto& c : classes) {
            if (c.id == v) name = c.name;
        }
        if (nodata && v == static_cast<int>(*nodata)) name = "nodata";
        names.AddString(name.c_str());
    }
    band.SetColorTable(&table);
    band.SetColorInterpretation(GCI_PaletteIndex);
    band.SetCategoryNames(names.List());
}

void RasterWriter::set_classes(const std::vector<models::ClassInfo>& classes) {
    apply_class_legend(*dataset_->GetRasterBand(1), classes, options_.nodata);
}

void RasterWriter::append_rows(int64_t y, int64_t rows, const void* data) {
    if (y != next_y_) throw Error(options_.path + ": rows out of order (" + std::to_string(y) + ", expected " + std::to_string(next_y_) + ")");
    const auto* src = static_cast<const unsigned char*>(data);
    const int64_t width = options_.width;
    int64_t done = 0;
    while (done < rows) {
        const int64_t n = std::min(rows - done, block_rows_ - buffered_);
        for (int b = 0; b < options_.bands; ++b) {
            std::memcpy(buffer_.data() + (static_cast<size_t>(b * block_rows_ + buffered_) * width) * elem_,
                        src + (static_cast<size_t>(b * rows + done) * width) * elem_,
                        static_cast<size_t>(n * width) * elem_);
        }
        buffered_ += n;
        done += n;
        if (buffered_ == block_rows_) flush();
    }
    next_y_ = y + rows;
}

void RasterWriter::flush() {
    if (buffered_ == 0) return;
    const int64_t width = options_.width;
    CPLErrorReset();
    const CPLErr err = dataset_->RasterIO(GF_Write, 0, static_cast<int>(buffer_y_), static_cast<int>(width),
                                          static_cast<int>(buffered_), buffer_.data(), static_cast<int>(width),
                                          static_cast<int>(buffered_), options_.type, options_.bands, nullptr,
                                          static_cast<GSpacing>(elem_), static_cast<GSpacing>(width * elem_),
                                          static_cast<GSpacing>(block_rows_ * width * elem_), nullptr);
    if (err != CE_None) throw Error(options_.path + ": writing rows failed: " + last_gdal_error());
    buffer_y_ += buffered_;
    buffered_ = 0;
}

void RasterWriter::finish() {
    close();
    commit();
}

void check_raster_output_name(const std::string& path, const std::string& format, const std::string& option) {
    if (path.empty()) return;
    std::string ext = std::filesystem::path(path).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (ext == ".tif" || ext == ".tiff") return;
    throw usage_error(path + ": " + option + " is written as a " + format + " (GeoTIFF) raster: name it .tif or .tiff" +
                      (ext.empty() ? std::string() : " (not " + ext + ")"));
}

void check_creation_options(const std::string& format, const std::vector<std::string>& key_values) {
    if (key_values.empty()) return;
    ensure_gdal_registered();
    GDALDriver* driver = GetGDALDriverManager()->GetDriverByName(format.c_str());
    if (!driver) throw usage_error("--of " + format + ": GDAL has no such driver");
    CPLStringList options;
    set_creation_options(options, key_values);
    std::string reason;
    bool valid = false;
    {
        CPLErrorHandlerPusher collect(
            [](CPLErr, CPLErrorNum, const char* message) {
                auto* text = static_cast<std::string*>(CPLGetErrorHandlerUserData());
                if (text->empty() && message) *text = message;
            },
            &reason);
        valid = GDALValidateCreationOptions(driver, options.List()) == TRUE;
    }
    if (!valid) throw usage_error("--co: " + (reason.empty() ? std::string("not accepted by the ") + format + " driver" : reason));
}

void RasterWriter::commit() { pending_->commit(); }

void RasterWriter::check_final_path_free() const { pending_->check_final_path_free(); }

const std::string& RasterWriter::closed_path() const { return pending_->temporary_path(); }

void RasterWriter::close() {
    flush();
    if (next_y_ != options_.height) {
        throw Error(options_.path + ": only " + std::to_string(next_y_) + " of " + std::to_string(options_.height) + " rows written");
    }
    if (options_.format == "COG") {
        CPLStringList co;
        co.SetNameValue("COMPRESS", "DEFLATE");
        co.SetNameValue("BIGTIFF", "IF_SAFER");
        // Overviews: class maps (with a colour table) by nearest, values such as probabilities by
        // average, which stays within their range (the driver's cubic default overshoots 0..1).
        const bool classes = dataset_->GetRasterBand(1)->GetColorTable() != nullptr;
        co.SetNameValue("RESAMPLING", classes ? "NEAREST" : "AVERAGE");
        set_creation_options(co, options_.creation_options);
        GDALDriver* cog = GetGDALDriverManager()->GetDriverByName("COG");
        if (!cog) throw Error("GDAL has no COG driver");
        dataset_->FlushCache(false);
        CPLErrorReset();
        DatasetPtr copy(cog->CreateCopy(pending_->temporary_path().c_str(), dataset_.get(), FALSE, co.List(), nullptr, nullptr));
        if (!copy) throw Error(options_.path + ": COG conversion failed: " + last_gdal_error());
        close_written(std::move(copy), options_.path);
        close_written(std::move(dataset_), options_.path);
        intermediate_->discard();  // gone before the COG gets its name (see PendingOutput::discard)
    } else {
        close_written(std::move(dataset_), options_.path);
    }
}

}  // namespace rsi
