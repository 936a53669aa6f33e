#pragma once
// Process-wide facts and settings of the model runtime, for the CLI (which sets them once).
#include <cstdint>
#include <string>

namespace rsi::models {

std::string libtorch_version();
// Sets LibTorch's intra-op thread count (it defaults to one thread on Debian's build).
void set_inference_threads(int threads);
int inference_threads();
bool cuda_available();

// What the large-tensor allocator (below) did so far.
struct LargeTensorStats {
    int64_t mapped = 0;        // blocks mapped from the system
    int64_t reused = 0;        // requests served by an idle block
    int64_t unmapped = 0;      // blocks given back to the system
    int64_t mapped_bytes = 0;  // bytes mapped now (in use or idle)
    int64_t idle_bytes = 0;    // bytes kept for reuse now
};

// LibTorch CPU tensors of at least `min_bytes` (0: off) get mappings of their own, 2 MB aligned with
// transparent huge pages requested, so a forward pass's largest activations fault in 2 MB at a time
// instead of 4 KB; up to `max_idle_bytes` of freed ones are kept for reuse (0: none). See
// models/large_tensor_allocator.hpp.
void map_large_tensors(int64_t min_bytes, int64_t max_idle_bytes);
LargeTensorStats large_tensor_stats();
// Unmaps the idle blocks kept for reuse (a no-op before LibTorch is loaded).
void trim_large_tensors();

}  // namespace rsi::models
