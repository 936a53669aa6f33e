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
    acc.release_until(2, [&](int64_t y, int64_t rows, int64_t x, int64_t width, const float* v, const float* w) {
        released.push_back({y, rows});
        EXPECT_EQ(x, 0);
        EXPECT_EQ(width, 4);
        first_values.assign(v, v + 2 * rows * 4);
        EXPECT_FLOAT_EQ(w[0], 1.0f);
    });
    ASSERT_EQ(released.size(), 1u);
    EXPECT_EQ(released[0], (std::pair<int64_t, int64_t>{0, 2}));
    EXPECT_FLOAT_EQ(first_values[0], 1.0f);
    acc.add({0, 2, 4, 4}, b.data(), wb.data());
    acc.release_until(6, [&](int64_t y, int64_t rows, int64_t, int64_t, const float* v, const float* w) {
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

// Runs a whole grid through an accumulator the way segmentation does (columns released as the tiles
// move on, rows at the end of each tile row) and returns the stitched means and weights.
struct Stitched {
    std::vector<float> values, weights;
    int64_t peak_bytes = 0;
};
// With `probabilities` channel 1 is 1 - channel 0 (two class probabilities).
Stitched stitch(const TileGrid& grid, int64_t width, int64_t height, int64_t tile, int64_t chunk_width,
                StripAccumulator::Weights kind = StripAccumulator::Weights::stored, bool probabilities = false) {
    const int channels = 2;
    Stitched out;
    out.values.assign(static_cast<size_t>(channels * width * height), -1.0f);
    out.weights.assign(static_cast<size_t>(width * height), -1.0f);
    StripAccumulator acc(channels, {0, 0, width, height}, tile, chunk_width, kind);
    int64_t expected_x = 0, band_y = -1;
    const StripAccumulator::Sink sink = [&](int64_t y, int64_t rows, int64_t x, int64_t span, const float* v, const float* w) {
        if (y != band_y) {  // a new band starts at column 0; spans come left to right, without gaps
            EXPECT_EQ(expected_x, band_y < 0 ? 0 : width);
            band_y = y;
            expected_x = 0;
        }
        EXPECT_EQ(x, expected_x);
        expected_x = x + span;
        for (int64_t j = 0; j < rows; ++j) {
            for (int64_t i = 0; i < span; ++i) {
                const auto q = static_cast<size_t>((y + j) * width + x + i);
                EXPECT_EQ(out.weights[q], -1.0f) << "pixel released twice";
                out.weights[q] = w[j * span + i];
                for (int c = 0; c < channels; ++c) out.values[c * width * height + q] = v[(c * rows + j) * span + i];
            }
        }
    };
    std::vector<float> values(static_cast<size_t>(channels * tile * tile)), weights(static_cast<size_t>(tile * tile));
    for (int64_t k = 0; k < grid.count(); ++k) {
        const Tile t = grid.at(k);
        for (int64_t p = 0; p < tile * tile; ++p) {
            const int64_t x = t.window.x + p % tile, y = t.window.y + p / tile;
            values[static_cast<size_t>(p)] = static_cast<float>((x * 7 + y * 3 + k * 5) % 11) / 10.0f;
            values[static_cast<size_t>(tile * tile + p)] =
                probabilities ? 1.0f - values[static_cast<size_t>(p)] : static_cast<float>((x + 2 * y + k) % 13) / 12.0f;
            // tile-dependent weights, zero in a "nodata" diagonal
            weights[static_cast<size_t>(p)] = (x == y) ? 0.0f : 0.25f + static_cast<float>((p + k) % 5) / 4.0f;
        }
        acc.add(t.window, values.data(), weights.data());
        const int64_t end_row = t.row + 1 < grid.rows() ? grid.at(t.row + 1, 0).window.y : height;
        if (t.col + 1 < grid.cols()) {
            acc.release_columns(end_row, grid.at(t.row, t.col + 1).window.x, sink);
        } else {
            acc.release_until(end_row, sink);
        }
    }
    EXPECT_EQ(acc.next_row(), height);
    out.peak_bytes = acc.peak_bytes();
    return out;
}

TEST(StripAccumulator, ColumnChunksGiveExactlyTheMeansOfOneWholeStrip) {
    const int64_t width = 61, height = 47, tile = 12;
    GridSpec spec;
    spec.tile_width = spec.tile_height = tile;
    spec.overlap = 4;
    spec.edge = EdgePolicy::shift;  // the last row and column overlap their neighbours more
    const TileGrid grid(width, height, spec);
    const Stitched whole = stitch(grid, width, height, tile, 1000);  // one chunk: the whole width
    const Stitched chunked = stitch(grid, width, height, tile, 5);
    EXPECT_EQ(chunked.values, whole.values);
    EXPECT_EQ(chunked.weights, whole.weights);
    // Brute force: every pixel's weighted mean, summed in double.
    std::vector<double> num(static_cast<size_t>(2 * width * height), 0.0), den(static_cast<size_t>(width * height), 0.0);
    for (int64_t k = 0; k < grid.count(); ++k) {
        const Tile t = grid.at(k);
        for (int64_t p = 0; p < tile * tile; ++p) {
            const int64_t x = t.window.x + p % tile, y = t.window.y + p / tile;
            const double w = (x == y) ? 0.0 : 0.25 + ((p + k) % 5) / 4.0;
            const auto q = static_cast<size_t>(y * width + x);
            den[q] += w;
            num[q] += w * ((x * 7 + y * 3 + k * 5) % 11) / 10.0;
            num[static_cast<size_t>(width * height) + q] += w * ((x + 2 * y + k) % 13) / 12.0;
        }
    }
    for (int64_t q = 0; q < width * height; ++q) {
        ASSERT_NEAR(chunked.weights[q], den[q], 1e-4) << q;
        for (int c = 0; c < 2; ++c) {
            const double expected = den[q] > 0 ? num[c * width * height + q] / den[q] : 0.0;
            ASSERT_NEAR(chunked.values[c * width * height + q], expected, 1e-5) << q;
        }
    }
    EXPECT_EQ(chunked.weights[5 * width + 5], 0.0f);  // the zero-weight diagonal stays "no data"
    // Narrow chunks hold less than one full-width tile row of floats.
    EXPECT_LT(chunked.peak_bytes, whole.peak_bytes);
    EXPECT_GE(whole.peak_bytes, static_cast<int64_t>(3 * width * tile * sizeof(float)));
}

TEST(StripAccumulator, ProbabilitiesNeedNoWeightPlane) {
    const int64_t width = 61, height = 47, tile = 12;
    GridSpec spec;
    spec.tile_width = spec.tile_height = tile;
    spec.overlap = 4;
    spec.edge = EdgePolicy::shift;
    const TileGrid grid(width, height, spec);
    const Stitched stored = stitch(grid, width, height, tile, 5, StripAccumulator::Weights::stored, true);
    const Stitched summed = stitch(grid, width, height, tile, 5, StripAccumulator::Weights::sum_of_values, true);
    for (int64_t q = 0; q < width * height; ++q) {
        // Exactly the pixels no tile gave weight stay "no data"; elsewhere the sum of the weighted
        // probabilities is the weight up to rounding, and the means agree.
        ASSERT_EQ(summed.weights[q] > 0, stored.weights[q] > 0) << q;
        ASSERT_NEAR(summed.weights[q], stored.weights[q], 1e-5 * stored.weights[q]) << q;
        for (int c = 0; c < 2; ++c) {
            ASSERT_NEAR(summed.values[c * width * height + q], stored.values[c * width * height + q], 1e-6) << q;
        }
        if (stored.weights[q] > 0) {
            ASSERT_NEAR(summed.values[q] + summed.values[width * height + q], 1.0, 1e-6) << q;
        }
    }
    EXPECT_EQ(summed.weights[7 * width + 7], 0.0f);
    EXPECT_EQ(summed.values[7 * width + 7], 0.0f);
    // Two planes instead of three.
    EXPECT_EQ(summed.peak_bytes * 3, stored.peak_bytes * 2);
}

TEST(StripAccumulator, RefusesTilesOutOfOrder) {
    StripAccumulator acc(1, {0, 0, 20, 20}, 8, 4);
    std::vector<float> v(64, 1.0f), w(64, 1.0f);
    acc.add({0, 0, 8, 8}, v.data(), w.data());
    acc.release_columns(6, 8, [](int64_t, int64_t, int64_t, int64_t, const float*, const float*) {});
    EXPECT_THROW(acc.add({4, 0, 8, 8}, v.data(), w.data()), Error);  // its columns 4..8 were released
}

}  // namespace
}  // namespace rsi
