#pragma once
// Test-time augmentation by the dihedral group of the square: each transform is applied to the input
// tiles and inverted on the predictions before they are averaged.
#include <cstdint>
#include <vector>

namespace rsi {

// 0..7: k = t % 4 quarter turns anticlockwise, then a horizontal flip when t >= 4.
// Applies transform `t` to `planes` square planes of side `n` (plane-major layout), into `out`.
void dihedral_forward(int t, const float* in, float* out, int64_t planes, int64_t n);
// The inverse transform.
void dihedral_inverse(int t, const float* in, float* out, int64_t planes, int64_t n);

}  // namespace rsi
