#pragma once
// The boundary between the torch-free model facade (models/model.hpp) and the LibTorch runtime,
// which lives in a separate shared module loaded with dlopen on first use. Commands that run no
// model (info, tile, vectorize, eval) then never pay LibTorch's start-up (~0.8 s, ~110 MB here).
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/model.hpp"

namespace rsi::models {

// A TorchScript network ready to run on its device.
class Network {
public:
    virtual ~Network() = default;
    // See Model::run. The backend checks the output shape against the metadata.
    virtual std::vector<int64_t> run(const float* input, const BatchShape& shape, std::vector<float>& output,
                                     bool probabilities) const = 0;
    virtual std::string device() const = 0;
    virtual bool optimized() const = 0;
    virtual std::string graph() const = 0;  // see Model::graph
    virtual std::string graph_detail() const = 0;
    virtual std::string weights_sha256() const = 0;
    virtual const ModelMetadata& metadata() const = 0;
    // On a GPU: the growth of the device allocator's peak while `work` runs, and the device memory a
    // batch may still take (free plus cached by the allocator). Empty on the CPU, whose memory the
    // process's peak RSS measures.
    virtual std::optional<int64_t> device_peak_growth(const std::function<void()>& work) const = 0;
    virtual std::optional<int64_t> device_available_bytes() const = 0;
};

// Turns the embedded rsi.json text (empty when absent) into validated metadata.
using DescribeFn = std::function<ModelMetadata(const std::string& rsi_json)>;

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::unique_ptr<Network> load(const std::string& path, const ModelOptions& options,
                                          const DescribeFn& describe) = 0;
    virtual std::string libtorch_version() const = 0;
    virtual void set_threads(int threads) = 0;
    // The calling thread's own intra-op thread count; the process-wide count stays.
    virtual void set_threads_of_this_thread(int threads) = 0;
    virtual int threads() const = 0;
    virtual bool cuda_available() const = 0;
};

// The process's backend, loaded on first use; throws rsi::Error when the module cannot be loaded.
Backend& torch_backend();
bool torch_backend_loaded();

}  // namespace rsi::models

// The one symbol the module exports.
extern "C" rsi::models::Backend* rsi_create_torch_backend();
