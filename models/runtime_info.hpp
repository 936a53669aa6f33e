#pragma once
// Process-wide facts and settings of the model runtime, for the CLI (which sets them once).
#include <string>

namespace rsi::models {

std::string libtorch_version();
// Sets LibTorch's intra-op thread count (it defaults to one thread on Debian's build).
void set_inference_threads(int threads);
int inference_threads();
bool cuda_available();

}  // namespace rsi::models
