#pragma once
// A rectangle of pixels in image coordinates. It may extend beyond the image (padded tiles).
#include <algorithm>
#include <cstdint>

namespace rsi {

struct PixelWindow {
    int64_t x = 0;  // column of the top-left pixel
    int64_t y = 0;  // row of the top-left pixel
    int64_t width = 0;
    int64_t height = 0;

    int64_t right() const { return x + width; }    // one past the last column
    int64_t bottom() const { return y + height; }  // one past the last row
    int64_t area() const { return width * height; }
    bool empty() const { return width <= 0 || height <= 0; }

    PixelWindow intersect(const PixelWindow& o) const {
        const int64_t x0 = std::max(x, o.x), y0 = std::max(y, o.y);
        const int64_t x1 = std::min(right(), o.right()), y1 = std::min(bottom(), o.bottom());
        if (x1 <= x0 || y1 <= y0) return {x0, y0, 0, 0};
        return {x0, y0, x1 - x0, y1 - y0};
    }
    bool contains(const PixelWindow& o) const {
        return o.x >= x && o.y >= y && o.right() <= right() && o.bottom() <= bottom();
    }
    bool operator==(const PixelWindow& o) const {
        return x == o.x && y == o.y && width == o.width && height == o.height;
    }
    bool operator!=(const PixelWindow& o) const { return !(*this == o); }
};

}  // namespace rsi
