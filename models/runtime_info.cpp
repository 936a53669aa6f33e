#include "models/runtime_info.hpp"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

namespace rsi::models {

std::string libtorch_version() { return TORCH_VERSION; }

void set_inference_threads(int threads) {
    if (threads > 0) at::set_num_threads(threads);
}

int inference_threads() { return at::get_num_threads(); }

bool cuda_available() { return torch::cuda::is_available(); }

}  // namespace rsi::models
