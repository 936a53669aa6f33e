#pragma once
// How many threads run a model's forward calls side by side, and with how many intra-op threads
// each. A small model (a scene classifier: a few ms per batch) loses to OpenMP barriers when one
// runner spreads each call over all cores and the reader preempts one of them; runners of one thread
// each keep the cores busy without waiting on each other.
#include <vector>

#include "models/model.hpp"

namespace rsi {

struct ModelRunners {
    int count = 1;
    std::vector<int> threads;  // per runner; 0 = keep the process-wide count
};

// `requested` runners (0: automatic, one per inference thread up to 4 on a CPU, one on a GPU); the
// process's inference threads are split between them.
ModelRunners model_runners(const models::Model& model, int requested);

}  // namespace rsi
