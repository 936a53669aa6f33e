#pragma once
// Parses band selections such as "1,2,3" or "4,3,2,8" or "1-3" (1-based, order kept).
#include <string_view>
#include <vector>

namespace rsi {

std::vector<int> parse_band_list(std::string_view text);  // throws usage Error

}  // namespace rsi
