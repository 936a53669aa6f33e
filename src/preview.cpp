#include "src/preview.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <cmath>
#include <opencv2/imgproc.hpp>
#include <set>

#include "src/band_mapping.hpp"
#include "src/output_file.hpp"
#include "tiling/gdal_dataset.hpp"
#include "tiling/band_scaling.hpp"
#include "tiling/error.hpp"
#include "tiling/raster_source.hpp"

namespace rsi {

namespace {

// The image downsampled to fit max_size, stretched to 8 bits per channel (2-98% per band), BGR.
cv::Mat image_thumbnail(const RasterSource& source, int max_size, const std::vector<int>& rgb_bands) {
    const RasterInfo& info = source.info();
    const double factor = std::max(1.0, static_cast<double>(std::max(info.width, info.height)) / max_size);
    const int w = std::max(1, static_cast<int>(std::lround(static_cast<double>(info.width) / factor)));
    const int h = std::max(1, static_cast<int>(std::lround(static_cast<double>(info.height) / factor)));
    std::vector<int> bands;
    const bool given = rgb_bands.size() == 3 && std::all_of(rgb_bands.begin(), rgb_bands.end(), [&](int b) {
        return b >= 1 && b <= info.band_count();
    });
    if (given) {
        bands = rgb_bands;
    } else {
        for (const char* colour : {"Red", "Green", "Blue"}) {  // the bands declared so, when all three are
            for (int b = 1; b <= info.band_count(); ++b) {
                if (info.bands[static_cast<size_t>(b - 1)].color_interpretation == colour) {
                    bands.push_back(b);
                    break;
                }
            }
        }
        if (bands.size() != 3) {
            bands.clear();
            for (int b = 1; b <= info.band_count() && bands.size() < 3; ++b) {
                if (info.bands[static_cast<size_t>(b - 1)].color_interpretation != "Alpha") bands.push_back(b);
            }
        }
    }
    if (bands.empty()) bands.push_back(1);
    while (bands.size() < 3) bands.push_back(bands.front());  // grey images
    std::vector<float> data(static_cast<size_t>(w) * static_cast<size_t>(h) * 3);
    source.read_resampled({0, 0, info.width, info.height}, w, h, bands, GDT_Float32, data.data(), GRIORA_Average);
    const auto stats = sample_band_statistics(source, bands);
    cv::Mat bgr(h, w, CV_8UC3);
    for (int c = 0; c < 3; ++c) {
        const double lo = stats[static_cast<size_t>(c)].low, hi = stats[static_cast<size_t>(c)].high;
        const double scale = hi > lo ? 255.0 / (hi - lo) : 0;
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                const double v = (data[static_cast<size_t>((c * h + y) * w + x)] - lo) * scale;
                bgr.at<cv::Vec3b>(y, x)[2 - c] = cv::saturate_cast<uchar>(v);
            }
    }
    return bgr;
}

// Written with GDAL's PNG driver (OpenCV's image codecs would pull ~25 more shared libraries, X11 and
// DICOM among them, into every rsi start-up).
void save_png(const cv::Mat& picture, const PreviewOptions& options) {
    check_output_path_again(options.output, options.overwrite);  // checked when the run started
    PendingOutput pending(options.output, options.overwrite);
    GDALDriver* memory = GetGDALDriverManager()->GetDriverByName("MEM");
    GDALDriver* png = GetGDALDriverManager()->GetDriverByName("PNG");
    if (!memory || !png) throw Error(options.output + ": GDAL has no PNG driver");
    DatasetPtr rgb(memory->Create("", picture.cols, picture.rows, 3, GDT_Byte, nullptr));
    if (!rgb) throw Error(options.output + ": writing the preview failed: " + last_gdal_error());
    // The picture is BGR, pixel-interleaved: band k of the PNG (R, G, B) is channel 2 - k.
    for (int k = 0; k < 3; ++k) {
        if (rgb->GetRasterBand(k + 1)->RasterIO(GF_Write, 0, 0, picture.cols, picture.rows,
                                                const_cast<uchar*>(picture.data) + (2 - k), picture.cols, picture.rows, GDT_Byte,
                                                3, static_cast<GSpacing>(picture.step[0]), nullptr) != CE_None) {
            throw Error(options.output + ": writing the preview failed: " + last_gdal_error());
        }
    }
    CPLErrorReset();
    DatasetPtr file(png->CreateCopy(pending.temporary_path().c_str(), rgb.get(), FALSE, nullptr, nullptr, nullptr));
    if (!file) throw Error(options.output + ": writing the preview failed: " + last_gdal_error());
    close_written(std::move(file), options.output);
    pending.commit();
}

}  // namespace

std::vector<int> model_rgb_bands(const models::ModelMetadata& model, const std::vector<int>& source_bands) {
    std::vector<int> rgb(3, 0);
    for (size_t c = 0; c < model.band_names.size() && c < source_bands.size(); ++c) {
        const std::string colour = channel_colour(model.band_names[c]);
        if (colour == "Red") rgb[0] = source_bands[c];
        if (colour == "Green") rgb[1] = source_bands[c];
        if (colour == "Blue") rgb[2] = source_bands[c];
    }
    if (std::find(rgb.begin(), rgb.end(), 0) != rgb.end()) return {};
    return rgb;
}

void write_outline_preview(const PreviewOptions& options, const std::string& mask, int outline_class) {
    const RasterSource source = RasterSource::open(options.image);
    cv::Mat picture = image_thumbnail(source, options.max_size, options.rgb_bands);
    const RasterSource classes = RasterSource::open(mask);
    std::vector<uint8_t> small(static_cast<size_t>(picture.rows) * static_cast<size_t>(picture.cols));
    classes.read_resampled({0, 0, classes.info().width, classes.info().height}, picture.cols, picture.rows, {1}, GDT_Byte,
                           small.data(), GRIORA_Mode);
    cv::Mat selected(picture.rows, picture.cols, CV_8U);
    for (size_t i = 0; i < small.size(); ++i) selected.data[i] = small[i] == outline_class ? 255 : 0;
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(selected, contours, cv::RETR_LIST, cv::CHAIN_APPROX_SIMPLE);
    cv::drawContours(picture, contours, -1, cv::Scalar(0, 0, 255), 1, cv::LINE_AA);
    save_png(picture, options);
}

void write_class_preview(const PreviewOptions& options, const std::string& class_map,
                         const std::vector<models::ClassInfo>& classes, double opacity) {
    const RasterSource source = RasterSource::open(options.image);
    cv::Mat picture = image_thumbnail(source, options.max_size, options.rgb_bands);
    const RasterSource map = RasterSource::open(class_map);
    const auto& ig = source.info().geotransform;
    const auto& mg = map.info().geotransform;
    const std::vector<float> cells = map.read_float({0, 0, map.info().width, map.info().height}, {1});
    const double sx = static_cast<double>(source.info().width) / picture.cols;
    const double sy = static_cast<double>(source.info().height) / picture.rows;
    std::set<int> present;
    for (int y = 0; y < picture.rows; ++y)
        for (int x = 0; x < picture.cols; ++x) {
            // Preview pixel -> image pixel -> georeferenced point -> class map cell (north-up grids).
            const double ix = (x + 0.5) * sx, iy = (y + 0.5) * sy;
            const double gx = ig[0] + ix * ig[1], gy = ig[3] + iy * ig[5];
            const auto col = static_cast<int64_t>(std::floor((gx - mg[0]) / mg[1]));
            const auto row = static_cast<int64_t>(std::floor((gy - mg[3]) / mg[5]));
            if (col < 0 || row < 0 || col >= map.info().width || row >= map.info().height) continue;
            const int cls = static_cast<int>(cells[static_cast<size_t>(row * map.info().width + col)]);
            if (cls < 0 || cls >= static_cast<int>(classes.size())) continue;
            present.insert(cls);
            const auto& colour = classes[static_cast<size_t>(cls)].color;
            cv::Vec3b& p = picture.at<cv::Vec3b>(y, x);
            for (int c = 0; c < 3; ++c) {
                p[2 - c] = cv::saturate_cast<uchar>((1 - opacity) * p[2 - c] + opacity * colour[static_cast<size_t>(c)]);
            }
        }
    // Legend: a white box in the lower-left corner, one swatch and name per class present.
    const int line = 16, width = 190;
    const int height = line * static_cast<int>(present.size()) + 8;
    const int top = std::max(0, picture.rows - height - 4);
    cv::rectangle(picture, cv::Rect(4, top, std::min(width, picture.cols - 8), height), cv::Scalar(255, 255, 255), cv::FILLED);
    int row = 0;
    for (int cls : present) {
        const auto& colour = classes[static_cast<size_t>(cls)].color;
        const int y = top + 6 + row++ * line;
        cv::rectangle(picture, cv::Rect(10, y, 12, 12), cv::Scalar(colour[2], colour[1], colour[0]), cv::FILLED);
        cv::putText(picture, classes[static_cast<size_t>(cls)].name, cv::Point(28, y + 11), cv::FONT_HERSHEY_SIMPLEX, 0.4,
                    cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    }
    save_png(picture, options);
}

void check_preview_name(const std::string& path) {
    std::string ext = std::filesystem::path(path).extension().string();
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ext != ".png") throw usage_error("--preview " + path + ": a preview is a PNG image; give it a .png name");
}

}  // namespace rsi
