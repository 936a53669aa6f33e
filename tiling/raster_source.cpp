#include "tiling/raster_source.hpp"

#include <algorithm>
#include <cmath>
#include <cpl_error.h>
#include <cpl_vsi.h>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "tiling/error.hpp"

namespace rsi {

std::string truncated_geotiff_problem(GDALDataset& dataset, const std::string& path) {
    if (!dataset.GetDriver() || std::string(dataset.GetDriver()->GetDescription()) != "GTiff" || path.rfind("/vsi", 0) == 0) return "";
    VSIStatBufL stat;
    if (VSIStatL(path.c_str(), &stat) != 0) return "";
    const auto file_size = static_cast<unsigned long long>(stat.st_size);
    unsigned long long end = 0;
    for (int b = 1; b <= dataset.GetRasterCount(); ++b) {
        GDALRasterBand* band = dataset.GetRasterBand(b);
        int block_x = 0, block_y = 0;
        band->GetBlockSize(&block_x, &block_y);
        const int columns = (dataset.GetRasterXSize() + block_x - 1) / block_x, rows = (dataset.GetRasterYSize() + block_y - 1) / block_y;
        for (const auto& [x, y] : {std::pair{0, 0}, std::pair{columns - 1, rows - 1}}) {
            const std::string at = std::to_string(x) + "_" + std::to_string(y);
            const char* offset = band->GetMetadataItem(("BLOCK_OFFSET_" + at).c_str(), "TIFF");
            const char* size = band->GetMetadataItem(("BLOCK_SIZE_" + at).c_str(), "TIFF");
            if (!offset || !size) continue;
            const unsigned long long o = std::strtoull(offset, nullptr, 10), n = std::strtoull(size, nullptr, 10);
            if (o > 0) end = std::max(end, o + n);  // offset 0: a sparse block, not written
        }
    }
    if (end <= file_size) return "";
    return "is truncated: its blocks reach byte " + std::to_string(end) + " but the file has " + std::to_string(file_size) +
           " bytes (a copy cut short?)";
}

const char* to_string(MaskSource source) {
    switch (source) {
        case MaskSource::none: return "none";
        case MaskSource::nodata: return "nodata";
        case MaskSource::alpha: return "alpha";
        case MaskSource::mask_band: return "mask band";
    }
    return "?";
}

std::array<double, 6> RasterInfo::window_geotransform(int64_t x, int64_t y) const {
    const auto& g = geotransform;
    return {g[0] + x * g[1] + y * g[2], g[1], g[2], g[3] + x * g[4] + y * g[5], g[4], g[5]};
}

namespace {

MaskSource detect_mask(GDALDataset& dataset) {
    GDALRasterBand* first = dataset.GetRasterBand(1);
    const int flags = first->GetMaskFlags();
    if (flags & GMF_PER_DATASET) return (flags & GMF_ALPHA) ? MaskSource::alpha : MaskSource::mask_band;
    for (int b = 1; b <= dataset.GetRasterCount(); ++b) {
        if (dataset.GetRasterBand(b)->GetMaskFlags() & GMF_NODATA) return MaskSource::nodata;
    }
    return MaskSource::none;
}

RasterInfo describe(GDALDataset& dataset, const std::string& path) {
    RasterInfo info;
    info.path = path;
    info.driver = dataset.GetDriver() ? dataset.GetDriver()->GetDescription() : "";
    info.width = dataset.GetRasterXSize();
    info.height = dataset.GetRasterYSize();
    for (int b = 1; b <= dataset.GetRasterCount(); ++b) {
        GDALRasterBand* band = dataset.GetRasterBand(b);
        BandInfo bi;
        bi.data_type = band->GetRasterDataType();
        int has_nodata = 0;
        const double nodata = band->GetNoDataValue(&has_nodata);
        if (has_nodata) bi.nodata = nodata;
        bi.color_interpretation = GDALGetColorInterpretationName(band->GetColorInterpretation());
        bi.description = band->GetDescription();
        band->GetBlockSize(&bi.block_width, &bi.block_height);
        info.bands.push_back(bi);
    }
    info.data_type = info.bands.front().data_type;
    info.block_width = info.bands.front().block_width;
    info.block_height = info.bands.front().block_height;
    if (const OGRSpatialReference* srs = dataset.GetSpatialRef()) {
        char* wkt = nullptr;
        const char* options[] = {"FORMAT=WKT2_2019", nullptr};
        if (srs->exportToWkt(&wkt, options) == OGRERR_NONE && wkt) info.crs_wkt = wkt;
        CPLFree(wkt);
        OGRSpatialReference copy(*srs);
        const char* code = copy.GetAuthorityCode(nullptr);
        if (!code && copy.AutoIdentifyEPSG() == OGRERR_NONE) code = copy.GetAuthorityCode(nullptr);
        const char* authority = copy.GetAuthorityName(nullptr);
        if (code && authority && std::strcmp(authority, "EPSG") == 0) info.epsg = std::atoi(code);
    }
    info.has_geotransform = dataset.GetGeoTransform(info.geotransform.data()) == CE_None;
    info.gcp_count = dataset.GetGCPCount();
    if (info.gcp_count > 0) {
        const GDAL_GCP* gcps = dataset.GetGCPs();
        for (int i = 0; i < info.gcp_count; ++i) {
            info.gcps.push_back({gcps[i].dfGCPPixel, gcps[i].dfGCPLine, gcps[i].dfGCPX, gcps[i].dfGCPY, gcps[i].dfGCPZ});
        }
        if (const OGRSpatialReference* gcp_srs = dataset.GetGCPSpatialRef()) {
            char* wkt = nullptr;
            const char* options[] = {"FORMAT=WKT2_2019", nullptr};
            if (gcp_srs->exportToWkt(&wkt, options) == OGRERR_NONE && wkt) info.gcp_crs_wkt = wkt;
            CPLFree(wkt);
        }
    }
    if (!info.has_geotransform) info.geotransform = {0, 1, 0, 0, 0, 1};
    info.mask = detect_mask(dataset);
    return info;
}

// Mirror index i into [0, n) without repeating the edge pixel (reflect-101).
int64_t reflect_index(int64_t i, int64_t n) {
    if (n == 1) return 0;
    const int64_t period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i >= n ? period - i : i;
}

void fill_constant(void* out, GDALDataType type, int64_t count, double value) {
    const int elem = GDALGetDataTypeSizeBytes(type);
    auto* bytes = static_cast<unsigned char*>(out);
    if (count <= 0) return;
    GDALCopyWords(&value, GDT_Float64, 0, bytes, type, elem, 1);  // convert once (clamped, rounded)
    for (int64_t done = 1; done < count;) {                       // then double the filled prefix
        const int64_t n = std::min(done, count - done);
        std::memcpy(bytes + done * elem, bytes, static_cast<size_t>(n * elem));
        done += n;
    }
}

}  // namespace

RasterSource RasterSource::open(const std::string& path) {
    DatasetPtr dataset = open_raster(path);
    RasterInfo info = describe(*dataset, path);
    return RasterSource(std::move(dataset), std::move(info));
}

std::vector<std::optional<int64_t>> RasterSource::exact_integer_nodata(const std::vector<int>& bands) const {
    if (info_.mask != MaskSource::nodata) return {};
    std::vector<std::optional<int64_t>> nodata;
    for (int b : bands.empty() ? all_bands() : bands) {
        if (b < 1 || b > dataset_->GetRasterCount()) return {};
        GDALRasterBand* band = dataset_->GetRasterBand(b);
        const GDALDataType type = band->GetRasterDataType();
        if (GDALDataTypeIsFloating(type) || GDALDataTypeIsComplex(type) || GDALGetDataTypeSizeBytes(type) > 4) return {};
        const int flags = band->GetMaskFlags();
        int has_nodata = 0, clamped = 0, rounded = 0;
        const double value = band->GetNoDataValue(&has_nodata);
        if (flags == GMF_ALL_VALID && !has_nodata) {
            nodata.emplace_back(std::nullopt);
        } else if (flags == GMF_NODATA && has_nodata && GDALAdjustValueToDataType(type, value, &clamped, &rounded) == value &&
                   !clamped && !rounded) {
            nodata.emplace_back(static_cast<int64_t>(value));
        } else {
            return {};  // e.g. a nodata value the type cannot hold: GDAL's own rules decide
        }
    }
    return nodata;
}

namespace {

template <typename T>
void any_band_has_data(const T* values, int64_t plane_stride, const std::vector<std::optional<int64_t>>& nodata,
                       int64_t count, uint8_t* out) {
    std::memset(out, 0, static_cast<size_t>(count));
    for (size_t b = 0; b < nodata.size(); ++b) {
        const T* v = values + static_cast<int64_t>(b) * plane_stride;
        const T nd = static_cast<T>(*nodata[b]);
        for (int64_t i = 0; i < count; ++i) out[i] |= v[i] != nd ? 255 : 0;
    }
}

}  // namespace

void RasterSource::validity_from_values(const PixelWindow& window, GDALDataType type, const void* values,
                                        int64_t plane_stride, const std::vector<std::optional<int64_t>>& nodata,
                                        uint8_t* out) const {
    const int64_t count = window.area();
    if (std::any_of(nodata.begin(), nodata.end(), [](const auto& v) { return !v; })) {
        std::memset(out, 255, static_cast<size_t>(count));  // a band with data everywhere
    } else {
        switch (type) {
            case GDT_Byte: any_band_has_data(static_cast<const uint8_t*>(values), plane_stride, nodata, count, out); break;
            case GDT_UInt16: any_band_has_data(static_cast<const uint16_t*>(values), plane_stride, nodata, count, out); break;
            case GDT_Int16: any_band_has_data(static_cast<const int16_t*>(values), plane_stride, nodata, count, out); break;
            case GDT_UInt32: any_band_has_data(static_cast<const uint32_t*>(values), plane_stride, nodata, count, out); break;
            case GDT_Int32: any_band_has_data(static_cast<const int32_t*>(values), plane_stride, nodata, count, out); break;
            default: throw std::logic_error("RasterSource::validity_from_values: not an integer type");
        }
    }
    // Pixels outside the image hold the edge fill, not data.
    const PixelWindow inside = window.intersect({0, 0, info_.width, info_.height});
    for (int64_t j = 0; j < window.height; ++j) {
        uint8_t* row = out + j * window.width;
        const int64_t y = window.y + j;
        if (inside.empty() || y < inside.y || y >= inside.bottom()) {
            std::memset(row, 0, static_cast<size_t>(window.width));
            continue;
        }
        std::memset(row, 0, static_cast<size_t>(inside.x - window.x));
        std::memset(row + (inside.right() - window.x), 0, static_cast<size_t>(window.right() - inside.right()));
    }
}

std::vector<int> RasterSource::all_bands() const {
    std::vector<int> bands(info_.bands.size());
    for (size_t i = 0; i < bands.size(); ++i) bands[i] = static_cast<int>(i) + 1;
    return bands;
}

void RasterSource::check_bands(const std::vector<int>& bands) const {
    if (bands.empty()) throw usage_error(info_.path + ": no bands selected");
    for (int b : bands) {
        if (b < 1 || b > info_.band_count()) {
            throw usage_error(info_.path + ": band " + std::to_string(b) + " does not exist (the image has " +
                              std::to_string(info_.band_count()) + " band" + (info_.band_count() == 1 ? "" : "s") +
                              ")");
        }
    }
}

void RasterSource::read_inside(const PixelWindow& inside, const std::vector<int>& bands, GDALDataType type,
                               void* out, int64_t pixel_space, int64_t line_space, int64_t band_space) const {
    CPLErrorReset();
    const CPLErr err = dataset_->RasterIO(
        GF_Read, static_cast<int>(inside.x), static_cast<int>(inside.y), static_cast<int>(inside.width),
        static_cast<int>(inside.height), out, static_cast<int>(inside.width), static_cast<int>(inside.height), type,
        static_cast<int>(bands.size()), const_cast<int*>(bands.data()), pixel_space, line_space, band_space, nullptr);
    if (err != CE_None) {
        const std::string where = "reading pixels " + std::to_string(inside.x) + "," + std::to_string(inside.y) + " (" +
                                  std::to_string(inside.width) + "x" + std::to_string(inside.height) + ") failed";
        // GDAL's own chain ("IReadBlock failed ... TIFFReadEncodedStrip() failed") does not say why.
        if (const std::string problem = truncated_geotiff_problem(*dataset_, info_.path); !problem.empty()) {
            throw Error(info_.path + ": " + problem + "; " + where);
        }
        throw Error(info_.path + ": " + where + ": " + last_gdal_error());
    }
}

void RasterSource::read(const PixelWindow& window, const std::vector<int>& bands, GDALDataType type, void* out,
                        const EdgeFill& edge) const {
    check_bands(bands);
    if (window.empty()) return;
    const int64_t elem = GDALGetDataTypeSizeBytes(type);
    const int64_t band_space = window.area() * elem;
    const PixelWindow image{0, 0, info_.width, info_.height};
    const PixelWindow inside = window.intersect(image);
    auto* bytes = static_cast<unsigned char*>(out);

    if (inside == window) {
        read_inside(window, bands, type, out, elem, window.width * elem, band_space);
        return;
    }
    if (edge.mode == EdgeFill::Mode::constant) {
        fill_constant(out, type, window.area() * static_cast<int64_t>(bands.size()), edge.value);
        if (inside.empty()) return;
        unsigned char* origin = bytes + ((inside.y - window.y) * window.width + (inside.x - window.x)) * elem;
        read_inside(inside, bands, type, origin, elem, window.width * elem, band_space);
        return;
    }
    // Reflect: map every window column and row to an image column and row, read the smallest image
    // rectangle that holds them all, then gather.
    std::vector<int64_t> map_x(window.width), map_y(window.height);
    int64_t x0 = info_.width, x1 = -1, y0 = info_.height, y1 = -1;
    for (int64_t i = 0; i < window.width; ++i) {
        map_x[i] = reflect_index(window.x + i, info_.width);
        x0 = std::min(x0, map_x[i]);
        x1 = std::max(x1, map_x[i]);
    }
    for (int64_t j = 0; j < window.height; ++j) {
        map_y[j] = reflect_index(window.y + j, info_.height);
        y0 = std::min(y0, map_y[j]);
        y1 = std::max(y1, map_y[j]);
    }
    const PixelWindow source{x0, y0, x1 - x0 + 1, y1 - y0 + 1};
    std::vector<unsigned char> buffer(static_cast<size_t>(source.area() * elem * static_cast<int64_t>(bands.size())));
    read_inside(source, bands, type, buffer.data(), elem, source.width * elem, source.area() * elem);
    for (size_t b = 0; b < bands.size(); ++b) {
        const unsigned char* src_band = buffer.data() + b * source.area() * elem;
        unsigned char* dst_band = bytes + b * band_space;
        for (int64_t j = 0; j < window.height; ++j) {
            const unsigned char* src_row = src_band + (map_y[j] - y0) * source.width * elem;
            unsigned char* dst_row = dst_band + j * window.width * elem;
            for (int64_t i = 0; i < window.width; ++i) {
                std::memcpy(dst_row + i * elem, src_row + (map_x[i] - x0) * elem, static_cast<size_t>(elem));
            }
        }
    }
}

std::vector<float> RasterSource::read_float(const PixelWindow& window, const std::vector<int>& bands,
                                            const EdgeFill& edge) const {
    std::vector<float> data(static_cast<size_t>(window.area()) * bands.size());
    read(window, bands, GDT_Float32, data.data(), edge);
    return data;
}

void RasterSource::read_resampled(const PixelWindow& window, int64_t out_width, int64_t out_height,
                                  const std::vector<int>& bands, GDALDataType type, void* out,
                                  GDALRIOResampleAlg resampling) const {
    check_bands(bands);
    if (!PixelWindow{0, 0, info_.width, info_.height}.contains(window)) {
        throw Error(info_.path + ": resampled read outside the image");
    }
    GDALRasterIOExtraArg extra;
    INIT_RASTERIO_EXTRA_ARG(extra);
    extra.eResampleAlg = resampling;
    const int64_t elem = GDALGetDataTypeSizeBytes(type);
    CPLErrorReset();
    const CPLErr err = dataset_->RasterIO(
        GF_Read, static_cast<int>(window.x), static_cast<int>(window.y), static_cast<int>(window.width),
        static_cast<int>(window.height), out, static_cast<int>(out_width), static_cast<int>(out_height), type,
        static_cast<int>(bands.size()), const_cast<int*>(bands.data()), elem, out_width * elem,
        out_width * out_height * elem, &extra);
    if (err != CE_None) throw Error(info_.path + ": resampled read failed: " + last_gdal_error());
}

void RasterSource::read_validity(const PixelWindow& window, const std::vector<int>& bands, uint8_t* out) const {
    std::memset(out, 0, static_cast<size_t>(window.area()));
    const PixelWindow inside = window.intersect({0, 0, info_.width, info_.height});
    if (inside.empty()) return;
    uint8_t* origin = out + (inside.y - window.y) * window.width + (inside.x - window.x);
    auto for_inside = [&](auto&& fn) {
        for (int64_t j = 0; j < inside.height; ++j) {
            uint8_t* row = origin + j * window.width;
            for (int64_t i = 0; i < inside.width; ++i) fn(row[i]);
        }
    };
    auto read_mask = [&](GDALRasterBand* band, uint8_t* dst) {
        CPLErrorReset();
        const CPLErr err = band->GetMaskBand()->RasterIO(
            GF_Read, static_cast<int>(inside.x), static_cast<int>(inside.y), static_cast<int>(inside.width),
            static_cast<int>(inside.height), dst, static_cast<int>(inside.width), static_cast<int>(inside.height),
            GDT_Byte, 1, window.width, nullptr);
        if (err != CE_None) throw Error(info_.path + ": reading the validity mask failed: " + last_gdal_error());
    };

    if (info_.mask == MaskSource::none) {
        for_inside([](uint8_t& v) { v = 255; });
        return;
    }
    if (info_.mask == MaskSource::alpha || info_.mask == MaskSource::mask_band) {
        read_mask(dataset_->GetRasterBand(1), origin);
        for_inside([](uint8_t& v) { v = v ? 255 : 0; });
        return;
    }
    // Per-band nodata: a pixel is valid when any selected band holds data there.
    const std::vector<int> selected = bands.empty() ? all_bands() : bands;
    std::vector<uint8_t> band_mask(static_cast<size_t>(window.area()));
    uint8_t* band_origin = band_mask.data() + (origin - out);
    for (int b : selected) {
        read_mask(dataset_->GetRasterBand(b), band_origin);
        for (int64_t j = 0; j < inside.height; ++j) {
            uint8_t* row = origin + j * window.width;
            const uint8_t* mrow = band_origin + j * window.width;
            for (int64_t i = 0; i < inside.width; ++i) row[i] = (row[i] || mrow[i]) ? 255 : 0;
        }
    }
}

void mask_non_finite(float* data, int bands, int64_t pixels, uint8_t* validity) {
    for (int b = 0; b < bands; ++b) {
        float* band = data + static_cast<int64_t>(b) * pixels;
        for (int64_t i = 0; i < pixels; ++i) {
            if (!std::isfinite(band[i])) {
                band[i] = 0.0f;
                if (validity) validity[i] = 0;
            }
        }
    }
}

bool may_hold_non_finite(const RasterInfo& info, const std::vector<int>& bands) {
    for (int b : bands) {
        if (b < 1 || b > info.band_count()) return true;
        if (GDALDataTypeIsFloating(info.bands[static_cast<size_t>(b - 1)].data_type)) return true;
    }
    return false;
}

void set_ground_control_points(GDALDataset& dataset, const std::vector<GroundControlPoint>& points, const std::string& crs_wkt,
                               double origin_x, double origin_y) {
    if (points.empty()) return;
    std::vector<GDAL_GCP> gcps(points.size());
    GDALInitGCPs(static_cast<int>(gcps.size()), gcps.data());
    for (size_t i = 0; i < gcps.size(); ++i) {
        CPLFree(gcps[i].pszId);
        gcps[i].pszId = CPLStrdup(std::to_string(i + 1).c_str());
        gcps[i].dfGCPPixel = points[i].pixel - origin_x;
        gcps[i].dfGCPLine = points[i].line - origin_y;
        gcps[i].dfGCPX = points[i].x;
        gcps[i].dfGCPY = points[i].y;
        gcps[i].dfGCPZ = points[i].z;
    }
    OGRSpatialReference srs;
    srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    const bool has_srs = !crs_wkt.empty() && srs.importFromWkt(crs_wkt.c_str()) == OGRERR_NONE;
    dataset.SetGCPs(static_cast<int>(gcps.size()), gcps.data(), has_srs ? &srs : nullptr);
    GDALDeinitGCPs(static_cast<int>(gcps.size()), gcps.data());
}

}  // namespace rsi
