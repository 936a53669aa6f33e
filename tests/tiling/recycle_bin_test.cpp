#include "tiling/recycle_bin.hpp"

#include <gtest/gtest.h>

namespace rsi {
namespace {

TEST(RecycleBin, HandsBackTheSameStorage) {
    RecycleBin<float> bin;
    EXPECT_EQ(bin.take().capacity(), 0u);  // nothing given yet
    std::vector<float> v(1000, 1.0f);
    const float* storage = v.data();
    bin.give(std::move(v));
    bin.give(std::vector<float>{});  // no capacity: not kept
    std::vector<float> again = bin.take();
    EXPECT_EQ(again.data(), storage);
    EXPECT_GE(again.capacity(), 1000u);
    again.assign(800, 0.0f);  // a smaller or equal size reuses it
    EXPECT_EQ(again.data(), storage);
    EXPECT_EQ(bin.take().capacity(), 0u);  // the empty vector was not stored
}

}  // namespace
}  // namespace rsi
