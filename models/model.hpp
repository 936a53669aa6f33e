#pragma once
// A loaded model: TorchScript plus its validated metadata, run on batches of normalised tiles.
// This header is torch-free (the runtime lives behind a pointer) so src/ can use it without
// compiling LibTorch's headers.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/model_metadata.hpp"

namespace rsi::models {

enum class Precision { fp32, fp16, bf16 };
Precision parse_precision(std::string_view text);  // throws usage Error
inline const char* to_string(Precision precision) {
    switch (precision) {
        case Precision::fp32: return "fp32";
        case Precision::fp16: return "fp16";
        case Precision::bf16: return "bf16";
    }
    return "?";
}

// How an fp32 model is prepared for the CPU when `optimize` is on (metadata field cpu_graph).
enum class CpuGraph {
    automatic,               // what the model's metadata names (default optimize_for_inference)
    optimize_for_inference,  // frozen, then torch::jit::optimize_for_inference (oneDNN layouts, fusions)
    channels_last,           // frozen with channels-last (NHWC) weights, fed channels-last tiles
};
CpuGraph parse_cpu_graph(std::string_view text);  // auto | optimize | channels-last; throws usage Error
const char* to_string(CpuGraph graph);

struct ModelOptions {
    std::string device = "cpu";  // cpu or cuda:N
    Precision precision = Precision::fp32;
    bool optimize = true;  // on a CPU in fp32: torch::jit::freeze, then the graph of `cpu_graph`
    CpuGraph cpu_graph = CpuGraph::automatic;
    MetadataOverrides overrides;
    // The weights' SHA-256 checked against the metadata's on load (a damaged file is refused); `rsi model
    // check` turns it off to report the mismatch beside its other findings.
    bool verify_weights = true;
};

// N x C x H x W
using BatchShape = std::array<int64_t, 4>;

struct MemoryEstimate {
    int64_t fixed_bytes = 0;     // weights and per-call overhead
    int64_t per_tile_bytes = 0;  // activations per tile in the batch
    bool measured = true;        // false: estimated (no peak-RSS counter on this system)
};

class Model {
public:
    static Model load(const std::string& path, const ModelOptions& options = {});

    const ModelMetadata& metadata() const;
    const std::string& path() const;
    std::string device() const;
    Precision precision() const;
    bool optimized() const;
    // What runs: "eager", "optimize_for_inference", "channels_last" (see CpuGraph) or "frozen".
    std::string graph() const;
    // What the graph rewrites did, for reports (e.g. "4 concatenations split into convolutions"); may be empty.
    std::string graph_detail() const;

    // Runs one batch of normalised input (contiguous float32, `shape`), writing probabilities (or
    // raw network output when `probabilities` is false) into `output` and returning its shape:
    // segmentation N x K x H/stride x W/stride, scene N x K. K is the class count (a sigmoid model's
    // one channel becomes two probabilities, background and foreground).
    std::vector<int64_t> run(const float* input, const BatchShape& shape, std::vector<float>& output,
                             bool probabilities = true) const;

    // Peak allocator bytes for one forward pass at this tile size, measured at batch 1 and 2.
    MemoryEstimate measure_memory(int64_t tile_height, int64_t tile_width) const;
    // The largest batch whose estimated memory fits `budget_bytes` (at least 1); 1 on a CPU for
    // tiles whose forward alone adds 64 MB or more (measured without a batch-2 probe). On a GPU the
    // activations must fit three quarters of the device memory available, and the batch's host-side
    // input and output copies half of `budget_bytes`.
    int64_t batch_size_for(int64_t budget_bytes, int64_t tile_height, int64_t tile_width) const;
    // Memory the first forward pass of one tile of this size adds (measured peak RSS growth; where the
    // system has no peak counter, a generous estimate). Throws when the network cannot run the size.
    int64_t first_forward_bytes(int64_t tile_height, int64_t tile_width) const;

    // Runs the golden input from the metadata and returns the largest relative difference between
    // the recorded and computed summaries; throws when the model has no golden block.
    double golden_difference() const;

    // SHA-256 of the weights as docs/MODEL_FORMAT.md defines it.
    std::string weights_sha256() const;

private:
    struct Impl;
    explicit Model(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<Impl> impl_;
    // Peak memory growth of one forward of `batch` zero tiles (after a warm-up pass of one tile if
    // `warm_up`): resident memory on a CPU, the device allocator's on a GPU; empty where the peak
    // counter cannot be reset.
    std::optional<int64_t> forward_growth(int64_t batch, int64_t tile_height, int64_t tile_width, bool warm_up = true) const;
    MemoryEstimate estimate_from(std::optional<int64_t> one, std::optional<int64_t> two, int64_t tile_height,
                                 int64_t tile_width) const;
};

// The deterministic "ramp" input of docs/MODEL_FORMAT.md.
std::vector<float> ramp_input(const BatchShape& shape);

}  // namespace rsi::models
