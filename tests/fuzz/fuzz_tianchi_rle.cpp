// libFuzzer target: the Tianchi run-length decoder (src/tianchi_rle.hpp).
// Input: byte 0 and 1 give the image width and height (1..64 each), the rest is the RLE text.
// Expected failures are rsi::Error. Invariants on success: the mask is 0/1 with width*height
// pixels, and encode(decode(rle)) decodes to the same mask.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "src/tianchi_rle.hpp"
#include "tiling/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    const int64_t width = 1 + data[0] % 64, height = 1 + data[1] % 64;
    const std::string_view rle(reinterpret_cast<const char*>(data) + 2, size - 2);
    std::vector<uint8_t> mask;
    try {
        mask = rsi::decode_tianchi_rle(rle, width, height, "fuzz.csv:1");
    } catch (const rsi::Error&) {
        return 0;
    }
    if (static_cast<int64_t>(mask.size()) != width * height) {
        std::fprintf(stderr, "tianchi_rle: mask has %zu pixels for %lldx%lld\n", mask.size(),
                     static_cast<long long>(width), static_cast<long long>(height));
        std::abort();
    }
    for (uint8_t v : mask) {
        if (v > 1) std::abort();
    }
    const std::string encoded = rsi::encode_tianchi_rle(mask.data(), width, height);
    std::vector<uint8_t> again;
    try {
        again = rsi::decode_tianchi_rle(encoded, width, height, "fuzz.csv:re-encoded");
    } catch (const rsi::Error& e) {
        std::fprintf(stderr, "tianchi_rle: re-encoded mask does not decode: %s\n", e.what());
        std::abort();
    }
    if (again != mask) {
        std::fprintf(stderr, "tianchi_rle: decode(encode(mask)) != mask ('%s')\n", encoded.c_str());
        std::abort();
    }
    if (rsi::tianchi_dice(mask.data(), again.data(), width * height) != 1.0) std::abort();
    return 0;
}
