// libFuzzer target: --truth-map / --prediction-map value maps (src/pixel_evaluation.hpp).
// Expected failures are rsi::Error. Invariant on success: keys and values in 0..255.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "src/pixel_evaluation.hpp"
#include "tiling/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        for (const auto& [from, to] : rsi::parse_value_map(text, "--truth-map")) {
            if (from < 0 || from > 255 || to < 0 || to > 255) {
                std::fprintf(stderr, "value_map: accepted %d=%d\n", from, to);
                std::abort();
            }
        }
    } catch (const rsi::Error&) {
    }
    return 0;
}
