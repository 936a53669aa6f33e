#include "models/model.hpp"

#include <ATen/Parallel.h>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <openssl/evp.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include "models/memory_probe.hpp"
#include "tiling/error.hpp"

namespace rsi::models {

Precision parse_precision(std::string_view text) {
    if (text == "fp32") return Precision::fp32;
    if (text == "fp16") return Precision::fp16;
    if (text == "bf16") return Precision::bf16;
    throw usage_error("--precision: unknown precision '" + std::string(text) + "' (expected fp32, fp16 or bf16)");
}

const char* to_string(Precision p) {
    switch (p) {
        case Precision::fp32: return "fp32";
        case Precision::fp16: return "fp16";
        case Precision::bf16: return "bf16";
    }
    return "?";
}

namespace {

// One line from a LibTorch error: the innermost "RuntimeError: ..." of an interpreter traceback,
// or the first line.
std::string first_line(const std::string& text) {
    const size_t at = text.rfind("RuntimeError: ");
    if (at != std::string::npos) {
        const size_t start = at + 14;
        return text.substr(start, text.find('\n', start) - start);
    }
    return text.substr(0, text.find('\n'));
}

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
    return s + "]";
}

torch::Device parse_device(const std::string& text, const std::string& path) {
    if (text == "cpu") return torch::Device(torch::kCPU);
    if (text.rfind("cuda", 0) == 0) {
        if (!torch::cuda::is_available()) {
            throw Error(path + ": device " + text +
                        " requested, but this LibTorch build has no CUDA support or no GPU is visible");
        }
        int index = 0;
        if (text.size() > 5 && text[4] == ':') index = std::stoi(text.substr(5));
        if (index < 0 || index >= static_cast<int>(torch::cuda::device_count())) {
            throw usage_error("--device: " + text + " does not exist (" + std::to_string(torch::cuda::device_count()) +
                              " CUDA devices)");
        }
        return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
    }
    throw usage_error("--device: unknown device '" + text + "' (expected cpu or cuda:N)");
}

torch::ScalarType scalar_type(Precision p) {
    switch (p) {
        case Precision::fp16: return torch::kHalf;
        case Precision::bf16: return torch::kBFloat16;
        default: return torch::kFloat;
    }
}

void hash_module(const torch::jit::Module& module, EVP_MD_CTX* ctx) {
    // state_dict order: each module's own parameters, then its own buffers, then its children.
    for (const auto& p : module.named_parameters(/*recurse=*/false)) {
        const torch::Tensor t = p.value.detach().to(torch::kCPU, torch::kFloat).contiguous();
        EVP_DigestUpdate(ctx, t.data_ptr<float>(), static_cast<size_t>(t.numel()) * sizeof(float));
    }
    for (const auto& b : module.named_buffers(/*recurse=*/false)) {
        const torch::Tensor t = b.value.detach().to(torch::kCPU, torch::kFloat).contiguous();
        EVP_DigestUpdate(ctx, t.data_ptr<float>(), static_cast<size_t>(t.numel()) * sizeof(float));
    }
    for (const auto& child : module.named_children()) hash_module(child.value, ctx);
}

}  // namespace

struct Model::Impl {
    std::string path;
    ModelMetadata metadata;
    torch::jit::Module module;        // what runs (optimised when asked)
    torch::jit::Module original;      // as loaded, for hashing
    torch::Device device{torch::kCPU};
    Precision precision = Precision::fp32;
    bool optimized = false;

    torch::Tensor forward(const torch::Tensor& input) const {
        std::vector<torch::jit::IValue> inputs{input};
        torch::jit::IValue out = const_cast<torch::jit::Module&>(module).forward(inputs);
        if (out.isTensor()) return out.toTensor();
        if (out.isTuple()) return out.toTuple()->elements().at(0).toTensor();  // main head first
        throw Error(path + ": the model returned neither a tensor nor a tuple of tensors");
    }
};

Model Model::load(const std::string& path, const ModelOptions& options) {
    if (!std::filesystem::exists(path)) throw Error(path + ": no such model file");
    if (std::filesystem::is_directory(path)) throw Error(path + ": is a directory, not a model file");
    auto impl = std::make_shared<Impl>();
    impl->path = path;
    impl->device = parse_device(options.device, path);
    impl->precision = options.precision;
    if (options.precision == Precision::fp16 && impl->device.is_cpu()) {
        throw usage_error("--precision fp16 is not supported on the CPU (LibTorch 1.13 has no half-precision CPU "
                          "convolutions); use fp32 or bf16");
    }
    std::unordered_map<std::string, std::string> extra{{"rsi.json", ""}};
    try {
        impl->module = torch::jit::load(path, torch::Device(torch::kCPU), extra);
    } catch (const c10::Error& e) {
        throw Error(path + ": not a TorchScript model (" + first_line(e.what_without_backtrace()) + ")");
    }
    const std::string& document = extra["rsi.json"];
    if (document.empty()) {
        impl->metadata = metadata_from_overrides(options.overrides, path);
    } else {
        impl->metadata = parse_model_metadata(document, path);
        if (!options.overrides.empty()) impl->metadata = apply_overrides(impl->metadata, options.overrides, path);
    }
    impl->module.eval();
    impl->original = impl->module;
    try {
        if (options.optimize && impl->device.is_cpu() && options.precision == Precision::fp32) {
            torch::jit::Module frozen = torch::jit::freeze(impl->module);
            impl->module = torch::jit::optimize_for_inference(frozen);
            impl->optimized = true;
        } else {
            impl->module = impl->module.clone();
        }
        impl->module.to(impl->device, scalar_type(options.precision));
    } catch (const c10::Error& e) {
        throw Error(path + ": preparing the model for " + options.device + "/" + to_string(options.precision) +
                    " failed (" + first_line(e.what_without_backtrace()) + ")");
    }
    return Model(impl);
}

const ModelMetadata& Model::metadata() const { return impl_->metadata; }
const std::string& Model::path() const { return impl_->path; }
std::string Model::device() const { return impl_->device.str(); }
Precision Model::precision() const { return impl_->precision; }
bool Model::optimized() const { return impl_->optimized; }

std::vector<int64_t> Model::run(const float* input, const BatchShape& shape, std::vector<float>& output,
                                bool probabilities) const {
    const ModelMetadata& m = impl_->metadata;
    const std::string& path = impl_->path;
    if (shape[1] != m.bands) {
        throw Error(path + ": model expects " + std::to_string(m.bands) + " bands, the input has " +
                    std::to_string(shape[1]));
    }
    if (m.task == Task::segmentation && (shape[2] % m.multiple_of != 0 || shape[3] % m.multiple_of != 0)) {
        throw Error(path + ": tile " + std::to_string(shape[3]) + "x" + std::to_string(shape[2]) +
                    " is not a multiple of " + std::to_string(m.multiple_of) + " as the model needs");
    }
    torch::Tensor out;
    try {
        c10::InferenceMode guard;
        torch::Tensor x = torch::from_blob(const_cast<float*>(input), {shape[0], shape[1], shape[2], shape[3]},
                                           torch::kFloat);
        if (!impl_->device.is_cpu() || impl_->precision != Precision::fp32) {
            x = x.to(impl_->device, scalar_type(impl_->precision));
        }
        out = impl_->forward(x).to(torch::kCPU, torch::kFloat);
        const int64_t channels = m.output_channels();
        std::vector<int64_t> expected;
        if (m.task == Task::segmentation) {
            expected = {shape[0], channels, shape[2] / m.output_stride, shape[3] / m.output_stride};
        } else {
            expected = {shape[0], channels};
        }
        if (out.sizes().vec() != expected) {
            throw Error(path + ": output shape " + shape_text(out.sizes().vec()) + " does not match the input " +
                        shape_text({shape[0], shape[1], shape[2], shape[3]}) + " (expected " + shape_text(expected) +
                        " for " + std::to_string(m.classes.size()) + " classes)");
        }
        if (probabilities && m.output == "logits") {
            if (m.output_activation == "sigmoid") {
                const torch::Tensor p = torch::sigmoid(out);
                out = torch::cat({1 - p, p}, 1);
            } else {
                out = torch::softmax(out, 1);
            }
        }
        out = out.contiguous();
    } catch (const c10::Error& e) {
        throw Error(path + ": inference failed (" + first_line(e.what_without_backtrace()) + ")");
    } catch (const rsi::Error&) {
        throw;
    } catch (const std::exception& e) {  // TorchScript interpreter errors
        throw Error(path + ": inference failed (" + first_line(e.what()) + ")");
    }
    output.resize(static_cast<size_t>(out.numel()));
    std::memcpy(output.data(), out.data_ptr<float>(), output.size() * sizeof(float));
    return out.sizes().vec();
}

MemoryEstimate Model::measure_memory(int64_t tile_height, int64_t tile_width) const {
    const int64_t bands = impl_->metadata.bands;
    std::vector<float> output;
    auto growth_at = [&](int64_t batch) -> std::optional<int64_t> {
        std::vector<float> input(static_cast<size_t>(batch * bands * tile_height * tile_width), 0.0f);
        return peak_resident_growth([&] { run(input.data(), {batch, bands, tile_height, tile_width}, output); });
    };
    {
        std::vector<float> warm(static_cast<size_t>(bands * tile_height * tile_width), 0.0f);
        run(warm.data(), {1, bands, tile_height, tile_width}, output);  // graph specialisation, weight packing
    }
    const auto one = growth_at(1), two = growth_at(2);
    MemoryEstimate e;
    if (one && two && *two > *one) {
        e.per_tile_bytes = *two - *one;
        e.fixed_bytes = std::max<int64_t>(0, *one - e.per_tile_bytes);
    } else {
        // No peak counter here: a generous estimate from the tile tensors (activations of a typical
        // encoder-decoder are tens of times the input).
        e.per_tile_bytes = 64 * bands * tile_height * tile_width * static_cast<int64_t>(sizeof(float));
        e.fixed_bytes = 0;
        e.measured = false;
    }
    return e;
}

int64_t Model::batch_size_for(int64_t budget_bytes, int64_t tile_height, int64_t tile_width) const {
    const MemoryEstimate e = measure_memory(tile_height, tile_width);
    // A quarter of headroom for allocator fragmentation and oneDNN scratch space.
    const int64_t usable = budget_bytes * 3 / 4 - e.fixed_bytes;
    return std::clamp<int64_t>(usable / std::max<int64_t>(1, e.per_tile_bytes), 1, 256);
}

std::vector<float> ramp_input(const BatchShape& shape) {
    const int64_t n = shape[0] * shape[1] * shape[2] * shape[3];
    std::vector<float> data(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) data[static_cast<size_t>(i)] = static_cast<float>(((i * 37) % 255) / 255.0 - 0.5);
    return data;
}

double Model::golden_difference() const {
    const nlohmann::json& g = impl_->metadata.golden;
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

std::string Model::weights_sha256() const {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    hash_module(impl_->original, ctx);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(ctx, digest, &length);
    EVP_MD_CTX_free(ctx);
    static const char* hex = "0123456789abcdef";
    std::string text;
    for (unsigned int i = 0; i < length; ++i) {
        text += hex[digest[i] >> 4];
        text += hex[digest[i] & 15];
    }
    return text;
}

}  // namespace rsi::models
