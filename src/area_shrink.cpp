#include "src/area_shrink.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <string>

#include "tiling/error.hpp"

namespace rsi {

void area_shrink(const void* strip, GDALDataType type, int64_t bands, int64_t plane_rows, int64_t width, int64_t factor,
                 int64_t out_rows, float* out, std::vector<float>& scratch) {
    if (factor < 1) throw Error("area shrink: the factor must be positive");
    if (out_rows * factor > plane_rows) throw Error("area shrink: " + std::to_string(out_rows) + " output rows need more rows than the strip's " + std::to_string(plane_rows));
    const int64_t out_h = out_rows, out_w = width / factor;
    if (out_h == 0 || out_w == 0) return;
    const int64_t elem = GDALGetDataTypeSizeBytes(type);
    const auto* bytes = static_cast<const unsigned char*>(strip);
    // Output rows per step: ~256 KB of float input in the scratch.
    const int64_t step = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, factor * width));
    scratch.resize(static_cast<size_t>(step * factor * width));
    for (int64_t b = 0; b < bands; ++b) {
        const unsigned char* plane = bytes + b * plane_rows * width * elem;
        float* out_plane = out + b * out_h * out_w;
        for (int64_t r0 = 0; r0 < out_h; r0 += step) {
            const int64_t rows = std::min(step, out_h - r0);
            const int64_t in_rows = rows * factor;
            GDALCopyWords64(plane + r0 * factor * width * elem, type, static_cast<int>(elem), scratch.data(), GDT_Float32,
                            sizeof(float), in_rows * width);
            const cv::Mat src(static_cast<int>(in_rows), static_cast<int>(width), CV_32F, scratch.data());
            cv::Mat dst(static_cast<int>(rows), static_cast<int>(out_w), CV_32F, out_plane + r0 * out_w);
            cv::resize(src(cv::Rect(0, 0, static_cast<int>(out_w * factor), static_cast<int>(in_rows))), dst, dst.size(), 0, 0,
                       cv::INTER_AREA);
        }
    }
}

void resize_planes(const float* in, int64_t planes, int64_t from, float* out, int64_t to) {
    resize_planes(in, planes, from, from, out, to);
}

void resize_planes(const float* in, int64_t planes, int64_t from_width, int64_t from_height, float* out, int64_t to) {
    // Area averaging where both axes shrink (or keep their size), bilinear where either grows.
    const bool shrinking = from_width >= to && from_height >= to;
    for (int64_t c = 0; c < planes; ++c) {
        const cv::Mat src(static_cast<int>(from_height), static_cast<int>(from_width), CV_32F,
                          const_cast<float*>(in + c * from_width * from_height));
        cv::Mat dst(static_cast<int>(to), static_cast<int>(to), CV_32F, out + c * to * to);
        cv::resize(src, dst, dst.size(), 0, 0, shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
    }
}

}  // namespace rsi
