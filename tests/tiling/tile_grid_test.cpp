#include "tiling/tile_grid.hpp"

#include <gtest/gtest.h>
#include <vector>

#include "tiling/error.hpp"

namespace rsi {
namespace {

GridSpec spec(int64_t tile, int64_t overlap, EdgePolicy edge, int64_t align = 1) {
    GridSpec s;
    s.tile_width = s.tile_height = tile;
    s.overlap = overlap;
    s.edge = edge;
    s.align = align;
    return s;
}

// Every image pixel is inside at least one tile window; counts how many.
std::vector<int> coverage(const TileGrid& grid) {
    std::vector<int> hits(static_cast<size_t>(grid.image_width() * grid.image_height()), 0);
    for (int64_t i = 0; i < grid.count(); ++i) {
        const PixelWindow v = grid.at(i).valid;
        for (int64_t y = v.y; y < v.bottom(); ++y)
            for (int64_t x = v.x; x < v.right(); ++x) ++hits[static_cast<size_t>(y * grid.image_width() + x)];
    }
    return hits;
}

TEST(TileGrid, ShiftMovesTheLastTileInward) {
    const TileGrid grid(1300, 1300, spec(512, 64, EdgePolicy::shift));
    EXPECT_EQ(grid.cols(), 3);
    EXPECT_EQ(grid.rows(), 3);
    EXPECT_EQ(grid.at(0, 0).window, (PixelWindow{0, 0, 512, 512}));
    EXPECT_EQ(grid.at(0, 1).window, (PixelWindow{448, 0, 512, 512}));
    EXPECT_EQ(grid.at(2, 2).window, (PixelWindow{788, 788, 512, 512}));  // 1300 - 512
    for (int64_t i = 0; i < grid.count(); ++i) EXPECT_EQ(grid.at(i).window, grid.at(i).valid) << "no padding";
}

TEST(TileGrid, PaddingPoliciesKeepARegularLattice) {
    for (EdgePolicy edge : {EdgePolicy::reflect, EdgePolicy::constant}) {
        const TileGrid grid(1300, 1000, spec(512, 64, edge));
        EXPECT_EQ(grid.cols(), 3);
        EXPECT_EQ(grid.rows(), 3);
        EXPECT_EQ(grid.at(2, 2).window, (PixelWindow{896, 896, 512, 512}));
        EXPECT_EQ(grid.at(2, 2).valid, (PixelWindow{896, 896, 404, 104}));
    }
}

TEST(TileGrid, RowMajorIdsAndIndices) {
    const TileGrid grid(1000, 700, spec(256, 0, EdgePolicy::constant));
    EXPECT_EQ(grid.cols(), 4);
    EXPECT_EQ(grid.rows(), 3);
    const Tile t = grid.at(7);
    EXPECT_EQ(t.row, 1);
    EXPECT_EQ(t.col, 3);
    EXPECT_EQ(t.id(), "r1_c3");
    EXPECT_EQ(grid.at(1, 3).index, 7);
}

TEST(TileGrid, FullExtentCoveredForOddSizes) {
    for (int64_t w : {1, 2, 7, 97, 509, 512, 513, 1021}) {
        for (int64_t h : {1, 13, 511, 1031}) {
            for (EdgePolicy edge : {EdgePolicy::shift, EdgePolicy::reflect, EdgePolicy::constant}) {
                const TileGrid grid(w, h, spec(256, 32, edge));
                const auto hits = coverage(grid);
                for (size_t i = 0; i < hits.size(); ++i) {
                    ASSERT_GE(hits[i], 1) << w << "x" << h << " " << to_string(edge) << " pixel " << i;
                }
            }
        }
    }
}

TEST(TileGrid, OnePixelImageAndTileLargerThanImage) {
    const TileGrid one(1, 1, spec(512, 64, EdgePolicy::shift));
    EXPECT_EQ(one.count(), 1);
    EXPECT_EQ(one.at(0).window, (PixelWindow{0, 0, 512, 512}));
    EXPECT_EQ(one.at(0).valid, (PixelWindow{0, 0, 1, 1}));
    const TileGrid small(300, 200, spec(512, 64, EdgePolicy::reflect));
    EXPECT_EQ(small.count(), 1);
    EXPECT_EQ(small.at(0).valid, (PixelWindow{0, 0, 300, 200}));
    EXPECT_DOUBLE_EQ(small.overlap_factor(), 512.0 * 512.0 / (300.0 * 200.0));
}

TEST(TileGrid, PrimeSizedRasterWithOverlap) {
    // 1009 = prime; stride 200 -> tiles at 0,200,...,800 (last ends at 1056, padded 47 px).
    const TileGrid grid(1009, 1009, spec(256, 56, EdgePolicy::constant));
    EXPECT_EQ(grid.cols(), 5);
    EXPECT_EQ(grid.at(0, 4).window.x, 800);
    const TileGrid shifted(1009, 1009, spec(256, 56, EdgePolicy::shift));
    EXPECT_EQ(shifted.cols(), 5);
    EXPECT_EQ(shifted.at(0, 4).window.x, 753);  // 1009 - 256
}

TEST(TileGrid, AlignmentKeepsOriginsOnTheOutputLattice) {
    const TileGrid grid(1000, 1000, spec(256, 64, EdgePolicy::shift, 32));
    for (int64_t c = 0; c < grid.cols(); ++c) EXPECT_EQ(grid.at(0, c).window.x % 32, 0);
    EXPECT_GE(grid.at(0, grid.cols() - 1).window.right(), 1000);
    EXPECT_THROW(TileGrid(1000, 1000, spec(256, 60, EdgePolicy::shift, 32)), Error);  // stride 196
}

TEST(TileGrid, OverlapFactorCountsTilePixels) {
    const TileGrid grid(1024, 1024, spec(512, 0, EdgePolicy::shift));
    EXPECT_DOUBLE_EQ(grid.overlap_factor(), 1.0);
    const TileGrid overlapped(1300, 1300, spec(512, 64, EdgePolicy::shift));
    EXPECT_NEAR(overlapped.overlap_factor(), 9.0 * 512 * 512 / (1300.0 * 1300.0), 1e-12);
}

TEST(TileGrid, RowSpanIsTheUnionOfTheRow) {
    const TileGrid grid(1300, 1300, spec(512, 64, EdgePolicy::constant));
    EXPECT_EQ(grid.row_span(1), (PixelWindow{0, 448, 1408, 512}));
}

TEST(TileGrid, NonsenseSpecsAreUsageErrors) {
    auto kind_of = [](auto&& fn) {
        try {
            fn();
        } catch (const Error& e) {
            return e.kind();
        }
        return ErrorKind::cancelled;  // "did not throw"
    };
    EXPECT_EQ(kind_of([] { TileGrid(100, 100, spec(512, 512, EdgePolicy::shift)); }), ErrorKind::usage);
    EXPECT_EQ(kind_of([] { TileGrid(100, 100, spec(512, 600, EdgePolicy::shift)); }), ErrorKind::usage);
    EXPECT_EQ(kind_of([] { TileGrid(100, 100, spec(0, 0, EdgePolicy::shift)); }), ErrorKind::usage);
    EXPECT_EQ(kind_of([] { TileGrid(100, 100, spec(64, -1, EdgePolicy::shift)); }), ErrorKind::usage);
    EXPECT_EQ(kind_of([] { TileGrid(0, 100, spec(64, 0, EdgePolicy::shift)); }), ErrorKind::runtime);
    EXPECT_EQ(kind_of([] { parse_edge_policy("mirror"); }), ErrorKind::usage);
    EXPECT_EQ(parse_edge_policy("reflect"), EdgePolicy::reflect);
}

}  // namespace
}  // namespace rsi
