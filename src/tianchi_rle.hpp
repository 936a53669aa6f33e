#pragma once
// The Tianchi building-recognition run-length encoding: pixels in column-major order
// (index = col * height + row), runs of non-zero pixels as "start length" pairs with 1-based starts;
// an empty mask is the empty string. [[1,0,0],[0,1,1],[0,0,1]] -> "1 1 5 1 8 2".
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rsi {

// `mask` is row-major height x width; any non-zero value counts as foreground.
std::string encode_tianchi_rle(const uint8_t* mask, int64_t width, int64_t height);

// Row-major height x width 0/1 mask. Throws rsi::Error naming `where` (e.g. "submit.csv:12") for
// an odd number of tokens, non-numbers, starts below 1, runs beyond the image, or runs that overlap
// or go backwards.
std::vector<uint8_t> decode_tianchi_rle(std::string_view rle, int64_t width, int64_t height, const std::string& where);

// The contest score of one image: Dice, 1 when both masks are empty.
double tianchi_dice(const uint8_t* truth, const uint8_t* prediction, int64_t pixels);

}  // namespace rsi
