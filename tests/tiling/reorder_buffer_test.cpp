#include "tiling/reorder_buffer.hpp"

#include <gtest/gtest.h>

#include <string>

namespace rsi {
namespace {

TEST(ReorderBuffer, HandsOutItemsInTheirOrderWhateverTheArrival) {
    ReorderBuffer<std::string> buffer(5);  // numbering starts at 5 (e.g. a resumed run's first batch)
    std::string out;
    for (int index : {7, 5, 9, 6, 8}) {
        buffer.add(index, "b" + std::to_string(index));
        while (auto next = buffer.take_next()) out += *next + " ";
        if (index == 7) {
            EXPECT_EQ(buffer.waiting(), 1u);  // 5 and 6 have not arrived
        }
    }
    EXPECT_EQ(out, "b5 b6 b7 b8 b9 ");
    EXPECT_EQ(buffer.waiting(), 0u);
    EXPECT_FALSE(buffer.take_next().has_value());
}

}  // namespace
}  // namespace rsi
