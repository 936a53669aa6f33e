// libFuzzer target: the one-word option parsers of tiling/ (--blend, --edge). Expected failures are
// rsi::Error. Invariant on success: to_string(parse(x)) == x.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tiling/blend_weights.hpp"
#include "tiling/error.hpp"
#include "tiling/tile_grid.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        if (std::string_view(rsi::to_string(rsi::parse_blend_kind(text))) != text) std::abort();
    } catch (const rsi::Error&) {
    }
    try {
        if (std::string_view(rsi::to_string(rsi::parse_edge_policy(text))) != text) std::abort();
    } catch (const rsi::Error&) {
    }
    return 0;
}
