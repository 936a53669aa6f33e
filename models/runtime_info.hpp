#pragma once
// Process-wide facts and settings of the model runtime, for the CLI (which sets them once).
#include <string>

namespace rsi::models {

std::string libtorch_version();
// Sets LibTorch's intra-op thread count (it defaults to one thread on Debian's build).
void set_inference_threads(int threads);
// For a library's own worker thread that runs models: that thread's intra-op thread count (several
// runners of one thread each keep a small model busy without waiting on each other's barriers).
void set_inference_threads_of_this_thread(int threads);
// The calling thread's intra-op thread count.
int inference_threads();
bool cuda_available();

}  // namespace rsi::models
