#pragma once
// Shrinks a band-sequential strip by a whole factor with area averaging (each output pixel the mean of
// a factor x factor block), straight from the strip's own sample type to float. Reading Byte or UInt16
// samples instead of a Float32 copy of the strip moves a quarter or half of the memory; the result is
// the same float as OpenCV's INTER_AREA on the Float32 strip, because the block is converted to float
// first and averaged by the same routine, a few rows at a time (cache-sized, not strip-sized).
#include <gdal.h>

#include <cstdint>
#include <vector>

namespace rsi {

// `strip`: `bands` planes of plane_rows x width samples of `type`. `out`: `bands` planes of
// out_rows x (width / factor) floats, from the first out_rows x factor rows of each plane (at most
// plane_rows); columns past a whole factor are ignored. `scratch` is reused between calls.
void area_shrink(const void* strip, GDALDataType type, int64_t bands, int64_t plane_rows, int64_t width, int64_t factor,
                 int64_t out_rows, float* out, std::vector<float>& scratch);

// `planes` square float planes of side `from` resized to side `to` (area average when shrinking,
// bilinear when enlarging): how a window is brought to the model's pixel size.
void resize_planes(const float* in, int64_t planes, int64_t from, float* out, int64_t to);
// The same from `from_width` x `from_height` planes (a window square on the ground whose pixels are not).
void resize_planes(const float* in, int64_t planes, int64_t from_width, int64_t from_height, float* out, int64_t to);

}  // namespace rsi
