#include "src/tta.hpp"

namespace rsi {

namespace {

// Where output pixel (y, x) reads from in the input, for transform t.
inline void source_of(int t, int64_t y, int64_t x, int64_t n, int64_t& sy, int64_t& sx) {
    if (t >= 4) x = n - 1 - x;  // the flip is applied last, so undo it first
    switch (t % 4) {
        case 0: sy = y; sx = x; break;
        case 1: sy = x; sx = n - 1 - y; break;          // quarter turn anticlockwise
        case 2: sy = n - 1 - y; sx = n - 1 - x; break;  // half turn
        default: sy = n - 1 - x; sx = y; break;         // three quarter turns
    }
}

}  // namespace

void dihedral_forward(int t, const float* in, float* out, int64_t planes, int64_t n) {
    for (int64_t p = 0; p < planes; ++p) {
        const float* src = in + p * n * n;
        float* dst = out + p * n * n;
        for (int64_t y = 0; y < n; ++y)
            for (int64_t x = 0; x < n; ++x) {
                int64_t sy, sx;
                source_of(t, y, x, n, sy, sx);
                dst[y * n + x] = src[sy * n + sx];
            }
    }
}

void dihedral_inverse(int t, const float* in, float* out, int64_t planes, int64_t n) {
    for (int64_t p = 0; p < planes; ++p) {
        const float* src = in + p * n * n;
        float* dst = out + p * n * n;
        for (int64_t y = 0; y < n; ++y)
            for (int64_t x = 0; x < n; ++x) {
                int64_t sy, sx;
                source_of(t, y, x, n, sy, sx);
                dst[sy * n + sx] = src[y * n + x];  // scatter back where the forward gathered from
            }
    }
}

}  // namespace rsi
