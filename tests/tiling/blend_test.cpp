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

TEST(StripAccumulator, ChunkedReleaseHandsOutTheSameRows) {
    // Two accumulators fed the same overlapping tiles: one releases in one call, one 3 rows at a time.
    const PixelWindow region{0, 0, 5, 11};
    StripAccumulator whole(2, region, 8), chunked(2, region, 8);
    std::vector<float> values(2 * 40), weights(40);
    for (int i = 0; i < 40; ++i) {
        values[static_cast<size_t>(i)] = 0.1f * static_cast<float>(i);
        values[static_cast<size_t>(40 + i)] = 1.0f - 0.02f * static_cast<float>(i);
        weights[static_cast<size_t>(i)] = 0.5f + 0.01f * static_cast<float>(i % 7);
    }
    std::vector<float> whole_rows, chunked_rows, whole_weights, chunked_weights;
    std::vector<int64_t> chunk_sizes;
    auto collect = [](std::vector<float>& rows, std::vector<float>& w, std::vector<int64_t>* sizes) {
        return [&rows, &w, sizes](int64_t y, int64_t n, const float* v, const float* weight) {
            EXPECT_EQ(y * 5, static_cast<int64_t>(w.size()));  // consecutive rows, in order
            for (int c = 0; c < 2; ++c) rows.insert(rows.end(), v + c * n * 5, v + (c + 1) * n * 5);
            w.insert(w.end(), weight, weight + n * 5);
            if (sizes) sizes->push_back(n);
        };
    };
    // Tiles of 8 rows every 5 rows; rows above the next tile are finished.
    for (int64_t top : {0, 5}) {
        whole.add({0, top, 5, 8}, values.data(), weights.data());
        chunked.add({0, top, 5, 8}, values.data(), weights.data());
        const int64_t until = top == 0 ? 5 : 11;
        whole.release_until(until, collect(whole_rows, whole_weights, nullptr));
        chunked.release_until(until, collect(chunked_rows, chunked_weights, &chunk_sizes), 3);
    }
    EXPECT_EQ(chunk_sizes, (std::vector<int64_t>{3, 2, 3, 3}));
    EXPECT_EQ(chunked_weights, whole_weights);
    ASSERT_EQ(whole_weights.size(), 55u);
    // Row 6 (second release, row 1 of the second tile, row 6 of the first) is the mean of both tiles.
    EXPECT_FLOAT_EQ(whole_weights[6 * 5], weights[6 * 5] + weights[1 * 5]);
    // Channel-major per call: compare the per-pixel means instead of the concatenation order.
    auto mean_at = [](const std::vector<float>& rows, const std::vector<int64_t>& sizes, int64_t row, int c) {
        int64_t offset = 0, y = 0;
        for (int64_t n : sizes) {
            if (row < y + n) return rows[static_cast<size_t>(offset + c * n * 5 + (row - y) * 5)];
            offset += 2 * n * 5;
            y += n;
        }
        return -1.0f;
    };
    for (int64_t row = 0; row < 11; ++row) {
        for (int c = 0; c < 2; ++c) {
            EXPECT_EQ(mean_at(chunked_rows, chunk_sizes, row, c), mean_at(whole_rows, {5, 6}, row, c)) << row;
        }
    }
    EXPECT_FLOAT_EQ(mean_at(whole_rows, {5, 6}, 6, 0),
                    (values[30] * weights[30] + values[5] * weights[5]) / (weights[30] + weights[5]));
}

}  // namespace
}  // namespace rsi
