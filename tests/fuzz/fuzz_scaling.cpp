// libFuzzer target: --scale specs (tiling/band_scaling.hpp). Expected failures are rsi::Error.
// Invariants on success: percentiles 0 <= low < high <= 100, fixed scale finite and non-zero.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "tiling/band_scaling.hpp"
#include "tiling/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const rsi::ScalingSpec spec = rsi::parse_scaling(text);
        bool ok = true;
        if (spec.method == rsi::ScalingMethod::percentile)
            ok = spec.low_percent >= 0 && spec.low_percent < spec.high_percent && spec.high_percent <= 100;
        if (spec.method == rsi::ScalingMethod::fixed)
            ok = std::isfinite(spec.scale) && spec.scale != 0 && std::isfinite(spec.offset);
        if (!ok) {
            std::fprintf(stderr, "scaling: accepted an invalid spec: %s\n", rsi::to_string(spec).c_str());
            std::abort();
        }
    } catch (const rsi::Error&) {
    }
    return 0;
}
