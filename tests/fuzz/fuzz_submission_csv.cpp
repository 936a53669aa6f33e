// libFuzzer target: the competition CSV readers (src/submission_csv.hpp).
// Input: byte 0 bit 0 picks Tianchi (tab separated; each RLE is then decoded for a 16x16 image) or
// SpaceNet (comma separated, header). Expected failures are rsi::Error. Invariants on success:
// Tianchi names non-empty and unique; SpaceNet ImageId and WKT non-empty, Confidence finite.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>

#include "src/submission_csv.hpp"
#include "src/tianchi_rle.hpp"
#include "tiling/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const bool tianchi = (data[0] & 1) == 0;
    std::istringstream in(std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
    try {
        if (tianchi) {
            std::set<std::string> names;
            for (const rsi::TianchiEntry& e : rsi::read_tianchi_csv(in, "fuzz.csv")) {
                if (e.name.empty() || !names.insert(e.name).second) {
                    std::fprintf(stderr, "submission_csv: empty or repeated Tianchi name '%s'\n", e.name.c_str());
                    std::abort();
                }
                try {
                    (void)rsi::decode_tianchi_rle(e.rle, 16, 16, "fuzz.csv:" + std::to_string(e.line));
                } catch (const rsi::Error&) {
                }
            }
        } else {
            for (const rsi::SpacenetEntry& e : rsi::read_spacenet_csv(in, "fuzz.csv")) {
                if (e.image_id.empty() || e.wkt.empty() || !std::isfinite(e.confidence)) {
                    std::fprintf(stderr, "submission_csv: invalid SpaceNet entry at line %lld\n",
                                 static_cast<long long>(e.line));
                    std::abort();
                }
            }
        }
    } catch (const rsi::Error&) {
    }
    return 0;
}
