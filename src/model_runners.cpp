#include "src/model_runners.hpp"

#include <algorithm>
#include <string>

#include "models/runtime_info.hpp"
#include "tiling/error.hpp"

namespace rsi {

ModelRunners model_runners(const models::Model& model, int requested) {
    if (requested < 0) throw usage_error("--runners must be 0 (automatic) or more, not " + std::to_string(requested));
    ModelRunners r;
    if (model.device() != "cpu") {
        r.count = std::max(1, requested);  // a GPU runs one call at a time; more runners only overlap copies
        r.threads.assign(static_cast<size_t>(r.count), 0);
        return r;
    }
    const int threads = std::max(1, models::inference_threads());
    r.count = requested > 0 ? requested : std::min(threads, 4);
    if (r.count == 1) {
        r.threads = {0};
        return r;
    }
    for (int i = 0; i < r.count; ++i) {
        // An even split, the remainder to the first runners; at least one each.
        r.threads.push_back(std::max(1, threads / r.count + (i < threads % r.count ? 1 : 0)));
    }
    return r;
}

}  // namespace rsi
