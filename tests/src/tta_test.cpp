#include "src/tta.hpp"

#include <gtest/gtest.h>
#include <set>
#include <vector>

namespace rsi {
namespace {

TEST(Tta, EightDistinctTransformsEachUndoneByItsInverse) {
    const int64_t n = 4;
    std::vector<float> in(2 * n * n);
    for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i);
    std::set<std::vector<float>> seen;
    for (int t = 0; t < 8; ++t) {
        std::vector<float> moved(in.size()), back(in.size());
        dihedral_forward(t, in.data(), moved.data(), 2, n);
        dihedral_inverse(t, moved.data(), back.data(), 2, n);
        EXPECT_EQ(back, in) << "transform " << t;
        seen.insert(moved);
    }
    EXPECT_EQ(seen.size(), 8u);
    // Transform 1 is a quarter turn anticlockwise: the top-right corner goes to the top-left.
    std::vector<float> turned(in.size());
    dihedral_forward(1, in.data(), turned.data(), 1, n);
    EXPECT_EQ(turned[0], in[n - 1]);
    // Transform 4 is a horizontal flip.
    dihedral_forward(4, in.data(), turned.data(), 1, n);
    EXPECT_EQ(turned[0], in[n - 1]);
    EXPECT_EQ(turned[n], in[2 * n - 1]);
}

}  // namespace
}  // namespace rsi
