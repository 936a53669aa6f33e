#include "tiling/tile_grid.hpp"

#include <gtest/gtest.h>
#include <tuple>
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

TEST(TileGrid, SpreadRowsShareTheShiftOutEvenly) {
    // 16000 rows, tile 512, overlap 128: 42 rows. Moving only the last row up puts it at 15488, 256
    // rows above the lattice, so the last two rows share 384 rows; spread, every step is 376 or 384
    // (align 8) and no two rows share more than 136.
    GridSpec s = spec(512, 128, EdgePolicy::shift, 8);
    const TileGrid moved(2000, 16000, s);
    EXPECT_EQ(moved.rows(), 42);
    EXPECT_EQ(moved.at(41, 0).window.y - moved.at(40, 0).window.y, 128);  // 15488 - 15360
    s.spread_rows = true;
    const TileGrid spread(2000, 16000, s);
    EXPECT_EQ(spread.rows(), 42);
    EXPECT_EQ(spread.cols(), moved.cols());
    EXPECT_EQ(spread.at(0, 0).window.y, 0);
    EXPECT_EQ(spread.at(41, 0).window, moved.at(41, 0).window);  // the same last row, ending at the border
    for (int64_t r = 1; r < spread.rows(); ++r) {
        const int64_t step = spread.at(r, 0).window.y - spread.at(r - 1, 0).window.y;
        EXPECT_TRUE(step == 376 || step == 384) << "row " << r << " step " << step;
        EXPECT_EQ(spread.at(r, 0).window.y % 8, 0);
    }
    for (int64_t c = 0; c < spread.cols(); ++c) EXPECT_EQ(spread.at(5, c).window.x, moved.at(5, c).window.x);  // columns untouched
    // Images that need no move, one tile row, and the padding policies are unaffected.
    for (const auto& [w, h, edge] : std::vector<std::tuple<int64_t, int64_t, EdgePolicy>>{
             {1000, 1280, EdgePolicy::shift}, {900, 300, EdgePolicy::shift}, {1300, 1000, EdgePolicy::constant}}) {
        GridSpec plain = spec(512, 128, edge);
        GridSpec spreading = plain;
        spreading.spread_rows = true;
        const TileGrid a(w, h, plain), b(w, h, spreading);
        ASSERT_EQ(a.count(), b.count());
        for (int64_t i = 0; i < a.count(); ++i) EXPECT_EQ(a.at(i).window, b.at(i).window) << w << "x" << h;
    }
    // Coverage stays complete on odd sizes.
    for (int64_t h : {513, 1031, 4099}) {
        GridSpec odd = spec(256, 32, EdgePolicy::shift);
        odd.spread_rows = true;
        const TileGrid grid(300, h, odd);
        EXPECT_EQ(grid.at(grid.rows() - 1, 0).window.bottom(), h);
        for (int hits : coverage(grid)) ASSERT_GE(hits, 1) << h;
    }
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
