// libFuzzer target: --bands lists (tiling/band_list.hpp). Expected failures are rsi::Error.
// Invariant on success: a non-empty list of 1-based band numbers no larger than 65535.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "tiling/band_list.hpp"
#include "tiling/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const std::vector<int> bands = rsi::parse_band_list(text);
        if (bands.empty()) {
            std::fprintf(stderr, "band_list: accepted with no bands\n");
            std::abort();
        }
        for (int b : bands) {
            if (b < 1 || b > 65535) {
                std::fprintf(stderr, "band_list: band %d out of range\n", b);
                std::abort();
            }
        }
    } catch (const rsi::Error&) {
    }
    return 0;
}
