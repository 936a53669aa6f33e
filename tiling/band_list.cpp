#include "tiling/band_list.hpp"

#include <charconv>
#include <string>

#include "tiling/error.hpp"

namespace rsi {

namespace {

int parse_band_number(std::string_view token, std::string_view whole) {
    int value = 0;
    const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
    if (token.empty() || ec != std::errc() || end != token.data() + token.size() || value < 1 || value > 65535) {
        throw usage_error("--bands: '" + std::string(whole) +
                          "' is not a band list (expected 1-based numbers such as 1,2,3 or 1-3)");
    }
    return value;
}

}  // namespace

std::vector<int> parse_band_list(std::string_view text) {
    std::vector<int> bands;
    size_t start = 0;
    while (start <= text.size()) {
        const size_t comma = text.find(',', start);
        const std::string_view token = text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
        const size_t dash = token.find('-');
        if (dash != std::string_view::npos) {
            const int first = parse_band_number(token.substr(0, dash), text);
            const int last = parse_band_number(token.substr(dash + 1), text);
            if (last < first || last - first > 4096) {
                throw usage_error("--bands: range '" + std::string(token) + "' is empty or too long");
            }
            for (int b = first; b <= last; ++b) bands.push_back(b);
        } else {
            bands.push_back(parse_band_number(token, text));
        }
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    return bands;
}

}  // namespace rsi
