#include "models/model.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "models/backend.hpp"
#include "models/memory_probe.hpp"
#include "tiling/error.hpp"

namespace rsi::models {

Precision parse_precision(std::string_view text) {
    if (text == "fp32") return Precision::fp32;
    if (text == "fp16") return Precision::fp16;
    if (text == "bf16") return Precision::bf16;
    throw usage_error("--precision: unknown precision '" + std::string(text) + "' (expected fp32, fp16 or bf16)");
}

CpuGraph parse_cpu_graph(std::string_view text) {
    if (text == "auto") return CpuGraph::automatic;
    if (text == "optimize" || text == "optimize_for_inference") return CpuGraph::optimize_for_inference;
    if (text == "channels-last" || text == "channels_last") return CpuGraph::channels_last;
    throw usage_error("--cpu-graph: unknown graph '" + std::string(text) + "' (expected auto, optimize or channels-last)");
}

const char* to_string(CpuGraph graph) {
    switch (graph) {
        case CpuGraph::automatic: return "auto";
        case CpuGraph::optimize_for_inference: return "optimize_for_inference";
        case CpuGraph::channels_last: return "channels_last";
    }
    return "?";
}


struct Model::Impl {
    std::unique_ptr<Network> network;
    std::string path;
    Precision precision = Precision::fp32;
};

Model Model::load(const std::string& path, const ModelOptions& options) {
    if (!std::filesystem::exists(path)) throw Error(path + ": no such model file");
    if (std::filesystem::is_directory(path)) throw Error(path + ": is a directory, not a model file");
    auto impl = std::make_shared<Impl>();
    impl->path = path;
    impl->precision = options.precision;
    impl->network = torch_backend().load(path, options, [&](const std::string& document) {
        if (document.empty()) return metadata_from_overrides(options.overrides, path);
        ModelMetadata m = parse_model_metadata(document, path);
        return options.overrides.empty() ? m : apply_overrides(m, options.overrides, path);
    });
    return Model(impl);
}

const ModelMetadata& Model::metadata() const { return impl_->network->metadata(); }
const std::string& Model::path() const { return impl_->path; }
std::string Model::device() const { return impl_->network->device(); }
Precision Model::precision() const { return impl_->precision; }
bool Model::optimized() const { return impl_->network->optimized(); }
std::string Model::graph() const { return impl_->network->graph(); }
std::string Model::graph_detail() const { return impl_->network->graph_detail(); }
std::string Model::weights_sha256() const { return impl_->network->weights_sha256(); }

std::vector<int64_t> Model::run(const float* input, const BatchShape& shape, std::vector<float>& output,
                                bool probabilities) const {
    return impl_->network->run(input, shape, output, probabilities);
}

namespace {
// On a CPU a batch only amortises the per-call overhead, which is negligible once a tile's forward
// needs this much memory; larger batches of such tiles only add activation memory and page faults
// (building model, 512² tiles, 179 MB each: batch 1 ran 3-16 % faster per tile than batch 4 here,
// at 300-400 MB less peak RSS; docs/BENCHMARKS.md).
constexpr int64_t large_cpu_tile_bytes = 64 * 1024 * 1024;
}  // namespace

std::optional<int64_t> Model::forward_growth(int64_t batch, int64_t tile_height, int64_t tile_width, bool warm_up) const {
    const int64_t bands = metadata().bands;
    std::vector<float> output;
    if (warm_up) {
        std::vector<float> warm(static_cast<size_t>(bands * tile_height * tile_width), 0.0f);
        run(warm.data(), {1, bands, tile_height, tile_width}, output);  // graph specialisation, weight packing
    }
    std::vector<float> input(static_cast<size_t>(batch * bands * tile_height * tile_width), 0.0f);
    const auto forward = [&] { run(input.data(), {batch, bands, tile_height, tile_width}, output); };
    if (device() != "cpu") return impl_->network->device_peak_growth(forward);  // the GPU's memory, not the host's
    return peak_resident_growth(forward);
}

MemoryEstimate Model::estimate_from(std::optional<int64_t> one, std::optional<int64_t> two, int64_t tile_height,
                                    int64_t tile_width) const {
    MemoryEstimate e;
    if (one && two && *two > *one) {
        e.per_tile_bytes = *two - *one;
        e.fixed_bytes = std::max<int64_t>(0, *one - e.per_tile_bytes);
    } else {
        // No peak counter here: a generous estimate from the tile tensors (activations of a typical
        // encoder-decoder are tens of times the input).
        e.per_tile_bytes = 64 * metadata().bands * tile_height * tile_width * static_cast<int64_t>(sizeof(float));
        e.fixed_bytes = 0;
        e.measured = false;
    }
    return e;
}

MemoryEstimate Model::measure_memory(int64_t tile_height, int64_t tile_width) const {
    const auto one = forward_growth(1, tile_height, tile_width);  // after the one warm-up pass
    const auto two = forward_growth(2, tile_height, tile_width, /*warm_up=*/false);
    return estimate_from(one, two, tile_height, tile_width);
}

int64_t Model::first_forward_bytes(int64_t tile_height, int64_t tile_width) const {
    const auto growth = forward_growth(1, tile_height, tile_width, /*warm_up=*/false);
    return growth ? *growth : estimate_from(std::nullopt, std::nullopt, tile_height, tile_width).per_tile_bytes;
}

int64_t Model::batch_size_for(int64_t budget_bytes, int64_t tile_height, int64_t tile_width) const {
    // The first forward at this size (graph specialisation, weight packing: no less memory than any
    // later one) is measured too. A CPU tile that is large on its own runs alone, decided from that
    // pass: a batch-2 probe would raise the run's peak RSS by a tile's activations (~80 MB for the
    // building model), and a second batch-1 pass would cost start-up time (~0.4 s).
    const auto first = forward_growth(1, tile_height, tile_width, /*warm_up=*/false);
    if (device() == "cpu" && first && *first >= large_cpu_tile_bytes) return 1;
    const auto one = forward_growth(1, tile_height, tile_width, false);
    if (device() == "cpu") {
        // The growth of a batch of 2 small tiles over 1 is within the allocator's noise (a 64² scene
        // tile: 0 to a few hundred KB), which made the batch anything from 4 to 256 between identical
        // runs. A batch of k more tiles, with k chosen so that their input is at least 16 MB (and the
        // probe's own memory at most half the usable budget), stands out of that noise, but still
        // varied by a factor of 1.7 between runs (the scene models: 2.5 to 4.8 times their input per
        // tile). Hence a floor of 8 times the input, which such small models stay under, so that their
        // batch follows from the budget alone; a batch rounded down to a power of two.
        const int64_t usable = budget_bytes * 3 / 4;
        const int64_t input_bytes = metadata().bands * tile_height * tile_width * static_cast<int64_t>(sizeof(float));
        const int64_t probe_tile = std::max<int64_t>(input_bytes, one.value_or(0));  // `first` holds one-time costs
        const int64_t k = std::clamp<int64_t>(std::min((int64_t{16} << 20) / std::max<int64_t>(1, input_bytes),
                                                       usable / 2 / std::max<int64_t>(1, probe_tile)),
                                              1, 64);
        const auto many = forward_growth(1 + k, tile_height, tile_width, false);
        MemoryEstimate e = estimate_from(std::nullopt, std::nullopt, tile_height, tile_width);
        if (one && many) {
            // Under the floor the measurement (and the fixed part derived from it) is noise: left out.
            const int64_t measured = (*many - *one) / k;
            e.per_tile_bytes = std::max<int64_t>(8 * input_bytes, measured);
            e.fixed_bytes = measured > 8 * input_bytes ? std::max<int64_t>(0, *one - measured) : 0;
        }
        if (e.per_tile_bytes >= large_cpu_tile_bytes) return 1;
        const int64_t by_budget = std::clamp<int64_t>((usable - e.fixed_bytes) / std::max<int64_t>(1, e.per_tile_bytes), 1, 256);
        int64_t batch = 1;
        while (batch * 2 <= by_budget) batch *= 2;
        return batch;
    }
    // On a GPU the activations take device memory, up to three quarters of what is available now; the
    // host budget holds only the batch's input and output copies.
    const MemoryEstimate e = estimate_from(one, forward_growth(2, tile_height, tile_width, false), tile_height, tile_width);
    const std::optional<int64_t> available = impl_->network->device_available_bytes();
    const int64_t device_usable = available ? *available * 3 / 4 - e.fixed_bytes : budget_bytes * 3 / 4;
    const int64_t host_per_tile =
        (metadata().bands + metadata().output_channels()) * tile_height * tile_width * static_cast<int64_t>(sizeof(float));
    const int64_t by_device = device_usable / std::max<int64_t>(1, e.per_tile_bytes);
    const int64_t by_host = budget_bytes / 2 / std::max<int64_t>(1, host_per_tile);
    return std::clamp<int64_t>(std::min(by_device, by_host), 1, 256);
}

std::vector<float> ramp_input(const BatchShape& shape) {
    const int64_t n = shape[0] * shape[1] * shape[2] * shape[3];
    std::vector<float> data(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) data[static_cast<size_t>(i)] = static_cast<float>(((i * 37) % 255) / 255.0 - 0.5);
    return data;
}

double Model::golden_difference() const {
    const nlohmann::json& g = metadata().golden;
    if (g.is_null()) throw Error(impl_->path + ": the model's metadata has no golden values");
    const auto shape_vec = g.at("shape").get<std::vector<int64_t>>();
    if (shape_vec.size() != 4) throw Error(impl_->path + ": rsi.json: golden.shape must have 4 entries");
    const BatchShape shape{shape_vec[0], shape_vec[1], shape_vec[2], shape_vec[3]};
    const std::vector<float> input = ramp_input(shape);
    std::vector<float> output;
    run(input.data(), shape, output, /*probabilities=*/false);
    double sum = 0, abs_sum = 0;
    for (float v : output) {
        sum += v;
        abs_sum += std::abs(v);
    }
    const double scale = std::max(1.0, g.at("output_abs_sum").get<double>());
    double worst = std::max(std::abs(sum - g.at("output_sum").get<double>()) / scale,
                            std::abs(abs_sum - g.at("output_abs_sum").get<double>()) / scale);
    const auto sample = g.at("output_sample").get<std::vector<double>>();
    for (size_t i = 0; i < sample.size() && i < output.size(); ++i) {
        worst = std::max(worst, std::abs(output[i] - sample[i]) / std::max(1.0, std::abs(sample[i])));
    }
    return worst;
}

}  // namespace rsi::models
