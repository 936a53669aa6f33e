#include "src/area_shrink.hpp"

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include <cstdint>
#include <vector>

#include "tiling/error.hpp"

namespace rsi {
namespace {

// The reference: the strip converted to Float32 whole, then OpenCV's INTER_AREA on each band.
template <typename T>
std::vector<float> reference(const std::vector<T>& strip, int64_t bands, int64_t rows, int64_t width, int64_t factor, int64_t out_rows) {
    const int64_t out_w = width / factor;
    std::vector<float> out(static_cast<size_t>(bands * out_rows * out_w));
    for (int64_t b = 0; b < bands; ++b) {
        std::vector<float> plane(strip.begin() + b * rows * width, strip.begin() + (b + 1) * rows * width);
        const cv::Mat src(static_cast<int>(rows), static_cast<int>(width), CV_32F, plane.data());
        cv::Mat dst(static_cast<int>(out_rows), static_cast<int>(out_w), CV_32F, out.data() + b * out_rows * out_w);
        cv::resize(src(cv::Rect(0, 0, static_cast<int>(out_w * factor), static_cast<int>(out_rows * factor))), dst, dst.size(), 0, 0,
                   cv::INTER_AREA);
    }
    return out;
}

TEST(AreaShrink, ByteAndUInt16StripsGiveOpenCvsFloatAreaMeansExactly) {
    const int64_t bands = 3, rows = 13, width = 1003;
    std::vector<uint8_t> bytes(static_cast<size_t>(bands * rows * width));
    std::vector<uint16_t> words(bytes.size());
    for (size_t i = 0; i < bytes.size(); ++i) {
        bytes[i] = static_cast<uint8_t>((i * 37 + i / 7) % 256);
        words[i] = static_cast<uint16_t>((i * 7919) % 65536);
    }
    std::vector<float> scratch;
    for (int64_t factor : {1, 2, 3, 4}) {
        const int64_t out_rows = rows / factor, out_w = width / factor;
        std::vector<float> got(static_cast<size_t>(bands * out_rows * out_w), -1.0f);
        area_shrink(bytes.data(), GDT_Byte, bands, rows, width, factor, out_rows, got.data(), scratch);
        EXPECT_EQ(got, reference(bytes, bands, rows, width, factor, out_rows)) << "Byte, factor " << factor;
        area_shrink(words.data(), GDT_UInt16, bands, rows, width, factor, out_rows, got.data(), scratch);
        EXPECT_EQ(got, reference(words, bands, rows, width, factor, out_rows)) << "UInt16, factor " << factor;
    }
    // A worked value: the first 2x2 block of band 0.
    std::vector<float> got(static_cast<size_t>(bands * 1 * (width / 2)));
    area_shrink(bytes.data(), GDT_Byte, bands, rows, width, 2, 1, got.data(), scratch);
    const float expected = (bytes[0] + bytes[1] + bytes[static_cast<size_t>(width)] + bytes[static_cast<size_t>(width + 1)]) / 4.0f;
    EXPECT_FLOAT_EQ(got[0], expected);
}

TEST(AreaShrink, RefusesMoreRowsThanTheStripHas) {
    std::vector<uint8_t> strip(4 * 10);
    std::vector<float> out(100), scratch;
    EXPECT_THROW(area_shrink(strip.data(), GDT_Byte, 1, 4, 10, 2, 3, out.data(), scratch), Error);
    EXPECT_THROW(area_shrink(strip.data(), GDT_Byte, 1, 4, 10, 0, 1, out.data(), scratch), Error);
}

}  // namespace
}  // namespace rsi
