// libFuzzer target: the rsi.json model metadata document (models/model_metadata.hpp).
// Expected failures are rsi::Error; anything else (another exception type, a crash, a sanitizer
// report, a hang) is a finding. Invariant: a document that parses serialises (to_json) to one that
// parses again to the same document (a package rsi writes must be readable by rsi).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "models/model_metadata.hpp"
#include "tiling/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    rsi::models::ModelMetadata metadata;
    try {
        metadata = rsi::models::parse_model_metadata(text, "fuzz.pt");
    } catch (const rsi::Error&) {
        return 0;
    }
    (void)metadata.output_channels();
    const nlohmann::json written = metadata.to_json();
    try {
        const rsi::models::ModelMetadata again = rsi::models::metadata_from_json(written, "fuzz.pt (round trip)");
        if (again.to_json() != written) {
            std::fprintf(stderr, "model_metadata: to_json -> metadata_from_json is not a fixed point\n%s\n%s\n",
                         written.dump().c_str(), again.to_json().dump().c_str());
            std::abort();
        }
    } catch (const rsi::Error& e) {
        std::fprintf(stderr, "model_metadata: accepted document does not survive to_json: %s\n", e.what());
        std::abort();
    }
    return 0;
}
