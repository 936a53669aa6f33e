#include "tiling/blend_weights.hpp"

#include <gtest/gtest.h>

#include "tiling/error.hpp"
#include "tiling/strip_accumulator.hpp"
#include "tiling/tile_grid.hpp"

namespace rsi {
namespace {

// Summed 1-D weights of the tiles along one axis of a grid.
std::vector<double> summed(BlendKind kind, int64_t extent, int64_t tile, int64_t overlap, EdgePolicy edge) {
    GridSpec spec;
    spec.tile_width = spec.tile_height = tile;
    spec.overlap = overlap;
    spec.edge = edge;
    const TileGrid grid(extent, 1, spec);
    std::vector<double> sum(static_cast<size_t>(extent), 0.0);
    for (int64_t c = 0; c < grid.cols(); ++c) {
        const PixelWindow w = grid.at(0, c).window;
        const auto p = blend_profile(kind, tile, overlap, 3, w.x <= 0, w.right() >= extent);
        for (int64_t i = 0; i < tile; ++i) {
            if (w.x + i >= 0 && w.x + i < extent) sum[static_cast<size_t>(w.x + i)] += p[static_cast<size_t>(i)];
        }
    }
    return sum;
}

TEST(Blend, EveryPixelHasWeightForEveryKindAndPolicy) {
    for (BlendKind kind : {BlendKind::hann, BlendKind::gaussian, BlendKind::spline, BlendKind::linear,
                           BlendKind::average, BlendKind::center}) {
        for (EdgePolicy edge : {EdgePolicy::shift, EdgePolicy::constant}) {
            for (int64_t extent : {64, 100, 333, 1000}) {
                const auto sum = summed(kind, extent, 64, 16, edge);
                for (size_t i = 0; i < sum.size(); ++i) {
                    ASSERT_GT(sum[i], 1e-4) << to_string(kind) << " " << to_string(edge) << " extent " << extent << " pixel " << i;
                }
            }
        }
    }
}

TEST(Blend, NeighboursSumToOneOnTheRegularLattice) {
    // Regular lattice (constant edge): complementary tapers of neighbours sum to exactly 1, and the
    // centre crops give each pixel to exactly one tile.
    for (BlendKind kind : {BlendKind::hann, BlendKind::gaussian, BlendKind::spline, BlendKind::linear, BlendKind::center}) {
        const auto sum = summed(kind, 64 + 48 * 5, 64, 16, EdgePolicy::constant);
        for (size_t i = 0; i < sum.size(); ++i) ASSERT_NEAR(sum[i], 1.0, 2e-6) << to_string(kind) << " pixel " << i;
    }
    const auto p = blend_profile(BlendKind::center, 64, 16, 3, false, false);
    EXPECT_EQ(p[7], 0.0f);
    EXPECT_EQ(p[8], 1.0f);
    EXPECT_EQ(p[55], 1.0f);
    EXPECT_EQ(p[56], 0.0f);
}

TEST(Blend, BorderSidesAreNotTaperedAndTheHaloIsSkipped) {
    const auto hann = blend_profile(BlendKind::hann, 64, 16, 3, true, false);
    EXPECT_EQ(hann[0], 1.0f);  // the image border keeps full weight
    EXPECT_LT(hann[63], 1e-5f);  // tapered towards the inner neighbour
    const auto inner = blend_profile(BlendKind::hann, 64, 16, 3, false, false);
    for (int i = 0; i < 3; ++i) EXPECT_LT(inner[i], 1e-5f) << "halo pixel " << i;  // receptive field cut by the edge
    EXPECT_GT(inner[0], 0.0f);                                                     // never exactly zero
    EXPECT_GT(inner[3], 0.0f);
    EXPECT_LT(inner[3], 0.5f);
    EXPECT_EQ(inner[13], 1.0f);  // past the overlap zone
    EXPECT_NEAR(inner[20], inner[43], 1e-6);  // symmetric
    EXPECT_EQ(blend_profile(BlendKind::average, 64, 16, 3, false, false), std::vector<float>(64, 1.0f));
    const auto w = blend_weights(BlendKind::spline, 8, 4, 2, 1, false, false, false, false);
    EXPECT_EQ(w.size(), 32u);
    EXPECT_THROW(parse_blend_kind("cosine"), Error);
}

TEST(StripAccumulator, WeightedMeansAndRowRelease) {
    StripAccumulator acc(2, {0, 0, 4, 6}, 4);
    // Tile A covers rows 0..3, tile B rows 2..5; both full width.
    std::vector<float> a(2 * 16, 0.0f), b(2 * 16, 0.0f), wa(16, 1.0f), wb(16, 3.0f);
    for (int i = 0; i < 16; ++i) {
        a[i] = 1.0f;       // channel 0
        a[16 + i] = 0.0f;  // channel 1
        b[i] = 0.0f;
        b[16 + i] = 1.0f;
    }
    acc.add({0, 0, 4, 4}, a.data(), wa.data());
    std::vector<std::pair<int64_t, int64_t>> released;
    std::vector<float> first_values;
    acc.release_until(2, [&](int64_t y, int64_t rows, const float* v, const float* w) {
        released.push_back({y, rows});
        first_values.assign(v, v + 2 * rows * 4);
        EXPECT_FLOAT_EQ(w[0], 1.0f);
    });
    ASSERT_EQ(released.size(), 1u);
    EXPECT_EQ(released[0], (std::pair<int64_t, int64_t>{0, 2}));
    EXPECT_FLOAT_EQ(first_values[0], 1.0f);
    acc.add({0, 2, 4, 4}, b.data(), wb.data());
    acc.release_until(6, [&](int64_t y, int64_t rows, const float* v, const float* w) {
        EXPECT_EQ(y, 2);
        EXPECT_EQ(rows, 4);
        EXPECT_FLOAT_EQ(v[0], 0.25f);           // row 2: (1*1 + 0*3) / 4
        EXPECT_FLOAT_EQ(v[16 + 0], 0.75f);      // channel 1, row 2
        EXPECT_FLOAT_EQ(v[2 * 4], 0.0f);        // row 4: only tile B
        EXPECT_FLOAT_EQ(w[2 * 4], 3.0f);
    });
    EXPECT_EQ(acc.next_row(), 6);
    EXPECT_THROW(acc.add({0, 0, 4, 4}, a.data(), wa.data()), Error);  // rows already released
}

}  // namespace
}  // namespace rsi
