// The LibTorch model runtime, built as a shared module and loaded on first use (models/backend.hpp).
// The only C++ in rsi that includes torch.
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <caffe2/serialize/inline_container.h>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <omp.h>
#include <openssl/evp.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/version.h>
#ifdef RSI_TORCH_CUDA  // set by models/CMakeLists.txt where LibTorch has CUDA (never with Debian's)
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

#include "models/backend.hpp"
#include "models/split_concat_convolution.hpp"
#include "tiling/error.hpp"

namespace rsi::models {

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

std::string format_float(float v) {
    char text[32];
    std::snprintf(text, sizeof text, "%.4g", static_cast<double>(v));
    return text;
}

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
    return s + "]";
}

torch::Device parse_device(const std::string& text, const std::string& path) {
    if (text == "cpu") return torch::Device(torch::kCPU);
    if (text.rfind("cuda", 0) == 0) {
        // The form first (a usage error wherever it runs): cuda or cuda:N.
        const std::string digits = text.size() > 5 && text[4] == ':' ? text.substr(5) : std::string();
        if (text != "cuda" && (digits.empty() || digits.size() > 4 || digits.find_first_not_of("0123456789") != std::string::npos)) {
            throw usage_error("--device: unknown device '" + text + "' (expected cpu, cuda or cuda:N)");
        }
        if (!torch::cuda::is_available()) {
            throw Error(path + ": device " + text +
                        " requested, but this LibTorch build has no CUDA support or no GPU is visible");
        }
        const int index = digits.empty() ? 0 : std::stoi(digits);
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

void hash_tensor(const torch::Tensor& tensor, EVP_MD_CTX* ctx) {
    const torch::Tensor plain = tensor.is_quantized() ? tensor.dequantize() : tensor;
    const torch::Tensor t = plain.detach().to(torch::kCPU, torch::kFloat).contiguous();
    EVP_DigestUpdate(ctx, t.data_ptr<float>(), static_cast<size_t>(t.numel()) * sizeof(float));
}

void hash_module(const torch::jit::Module& module, EVP_MD_CTX* ctx) {
    // state_dict order: each module's own parameters, then its own buffers, then its children.
    for (const auto& p : module.named_parameters(/*recurse=*/false)) hash_tensor(p.value, ctx);
    for (const auto& b : module.named_buffers(/*recurse=*/false)) hash_tensor(b.value, ctx);
    // int8 models keep their weights in quantized packed-parameter objects (not parameters or
    // buffers): their unpacked weight (dequantized) and bias, in attribute order, as
    // models/python/rsi_models/quantization.py hashes them.
    for (const auto& a : module.named_attributes(/*recurse=*/false)) {
        if (!a.value.isObject()) continue;
        const auto object = a.value.toObject();
        if (object->type()->is_module()) continue;
        torch::jit::Function* unpack = object->type()->findMethod("unpack");
        if (!unpack) continue;
        const torch::jit::IValue packed = (*unpack)({a.value});
        for (const auto& e : packed.toTupleRef().elements()) {
            if (e.isTensor()) hash_tensor(e.toTensor(), ctx);
        }
    }
    for (const auto& child : module.named_children()) hash_module(child.value, ctx);
}

// The embedded rsi.json, read before the module is deserialised: an int8 model's packed weights
// are prepared for the quantized engine that is current while it loads.
std::string read_embedded_metadata(const std::string& path) {
    try {
        caffe2::serialize::PyTorchStreamReader reader(path);
        if (!reader.hasRecord("extra/rsi.json")) {
            // torch.save writes the same archive without compiled code: not a model LibTorch can run, and
            // asking for its metadata on the command line would only lead to that error later.
            bool code = false;
            for (const std::string& record : reader.getAllRecords()) {
                if (record.rfind("code/", 0) == 0) {
                    code = true;
                    break;
                }
            }
            if (!code) {
                throw Error(path + ": not a TorchScript model: a PyTorch pickle without compiled code (saved with torch.save; export "
                                   "it with torch.jit.script or torch.jit.trace and torch.jit.save)");
            }
            return "";
        }
        auto [data, size] = reader.getRecord("extra/rsi.json");
        std::string document(static_cast<const char*>(data.get()), size);
        // An empty document is a broken export, not a model without metadata (which then asked for --task ...).
        if (document.find_first_not_of(" \t\r\n") == std::string::npos) throw Error(path + ": rsi.json: the metadata document is empty");
        return document;
    } catch (const c10::Error& e) {
        throw Error(path + ": not a TorchScript model (" + first_line(e.what_without_backtrace()) + ")");
    }
}

// An int8 model as it runs: when asked, frozen and optimised (both passes keep quantized ops as they
// are and only fold the packed weights into the graph; when a graph-mode model does not survive a
// pass, the last working stage is used instead of refusing the model).
torch::jit::Module prepared_int8_module(torch::jit::Module module, bool optimize, bool& optimized) {
    module.eval();
    optimized = false;
    if (!optimize) return module;
    try {
        torch::jit::Module frozen = torch::jit::freeze(module);
        try {
            module = torch::jit::optimize_for_inference(frozen);
        } catch (const c10::Error&) {
            module = frozen;
        }
        optimized = true;
    } catch (const c10::Error&) {
    }
    return module;
}

// A frozen copy of `module` whose 4-D floating-point weights are stored channels-last (NHWC), for
// channels-last inputs: LibTorch's oneDNN convolutions then run on the tensors as they are, and
// cat/upsampling/ReLU stay in that layout. optimize_for_inference instead converts between its own
// blocked layout and plain tensors around every op oneDNN does not cover: for the building model
// (a U-Net whose decoder upsamples and concatenates) 1.2-1.4x slower on this Zen 4; for a ResNet-50
// the other way round (docs/BENCHMARKS.md, Session 14). Hence a choice the model file records.
torch::jit::Module frozen_channels_last(const torch::jit::Module& module, int& split_concatenations) {
    torch::jit::Module copy = module.clone();
    for (const auto& sub : copy.modules()) {
        torch::jit::Module m = sub;
        for (const auto& attribute : m.named_attributes(/*recurse=*/false)) {
            if (!attribute.value.isTensor()) continue;
            const torch::Tensor t = attribute.value.toTensor();
            if (t.dim() == 4 && t.is_floating_point()) m.setattr(attribute.name, t.contiguous(at::MemoryFormat::ChannelsLast));
        }
    }
    torch::jit::Module frozen = torch::jit::freeze(copy);
    split_concatenations = split_concatenated_convolutions(frozen.get_method("forward").graph());
    return frozen;
}

at::QEngine quantized_engine(const std::string& name, const std::string& path) {
    at::QEngine engine = at::QEngine::NoQEngine;
    if (name == "qnnpack") engine = at::QEngine::QNNPACK;
    else if (name == "onednn") engine = at::QEngine::ONEDNN;
    else if (name == "fbgemm") engine = at::QEngine::FBGEMM;
    else if (name == "x86") engine = at::QEngine::X86;
    std::string supported;
    for (const at::QEngine e : at::globalContext().supportedQEngines()) {
        if (e == engine && engine != at::QEngine::NoQEngine) return engine;
        if (e != at::QEngine::NoQEngine) supported += (supported.empty() ? "" : ", ") + c10::toString(e);
    }
    throw Error(path + ": the int8 model needs the quantized engine '" + name +
                "', which this LibTorch does not have (it has: " + supported + "); quantize it again with --engine");
}

}  // namespace


class TorchNetwork final : public Network {
public:
    std::vector<int64_t> run(const float* input, const BatchShape& shape, std::vector<float>& output,
                                 bool probabilities) const override {
        const ModelMetadata& m = metadata_;
        const std::string& path = path_;
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
            if (!device_.is_cpu() || precision_ != Precision::fp32) {
                x = x.to(device_, scalar_type(precision_));
            }
            if (graph_ == "channels_last") x = x.contiguous(at::MemoryFormat::ChannelsLast);
            out = forward(x).to(torch::kCPU, torch::kFloat);
            const int64_t channels = m.output_channels();
            std::vector<int64_t> expected;
            if (m.task == Task::segmentation) {
                expected = {shape[0], channels, shape[2] / m.output_stride, shape[3] / m.output_stride};
            } else {
                expected = {shape[0], channels};
            }
            if (out.sizes().vec() != expected) {
                throw Error(path + ": output shape " + shape_text(out.sizes().vec()) + " for the input " +
                            shape_text({shape[0], shape[1], shape[2], shape[3]}) + "; the metadata's " +
                            std::to_string(m.classes.size()) + " classes" +
                            (m.task == Task::segmentation ? " and output stride " + std::to_string(m.output_stride) : std::string()) +
                            " need " + shape_text(expected));
            }
            // Inputs reach the model finite (non-finite pixels are nodata), so NaN or infinity here is
            // the model's own fault (or an overflow at reduced precision); argmax would silently turn
            // it into class 0 everywhere.
            if (!torch::isfinite(out).all().item<bool>()) {
                throw Error(path + ": the model's output holds NaN or infinite values" +
                            (precision_ == Precision::fp32 ? std::string()
                                                           : std::string(" at ") + to_string(precision_) + " (try --precision fp32)"));
            }
            if (m.output == "probabilities") {
                // Declared probabilities go into the maps as they are (a Float32 raster of 0..1 with
                // -1 for nodata): logits declared as probabilities wrote -169..150 there silently.
                const auto [low, high] = torch::aminmax(out);
                const float lo = low.item<float>(), hi = high.item<float>();
                if (lo < -1e-3f || hi > 1.0f + 1e-3f) {
                    throw Error(path + ": the metadata says the model outputs probabilities, but they run from " + format_float(lo) +
                                " to " + format_float(hi) + " (are they logits? declare output \"logits\")");
                }
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

    std::string device() const override { return device_.str(); }
    bool optimized() const override { return optimized_; }
    std::string graph() const override { return graph_; }
    std::string graph_detail() const override { return graph_detail_; }
    const ModelMetadata& metadata() const override { return metadata_; }

    std::optional<int64_t> device_peak_growth(const std::function<void()>& work) const override {
        if (!device_.is_cuda()) return std::nullopt;
#ifdef RSI_TORCH_CUDA
        namespace allocator = c10::cuda::CUDACachingAllocator;
        const c10::DeviceIndex index = device_.index();
        torch::cuda::synchronize(index);
        const int64_t baseline = allocator::getDeviceStats(index).allocated_bytes[0].current;  // [0]: all pools
        allocator::resetPeakStats(index);
        work();
        torch::cuda::synchronize(index);
        return std::max<int64_t>(0, allocator::getDeviceStats(index).allocated_bytes[0].peak - baseline);
#else
        work();
        return std::nullopt;
#endif
    }

    std::optional<int64_t> device_available_bytes() const override {
        if (!device_.is_cuda()) return std::nullopt;
#ifdef RSI_TORCH_CUDA
        const c10::cuda::CUDAGuard guard(device_.index());
        size_t free_bytes = 0, total_bytes = 0;
        if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) return std::nullopt;
        const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device_.index());
        const int64_t cached = stats.reserved_bytes[0].current - stats.allocated_bytes[0].current;
        return static_cast<int64_t>(free_bytes) + std::max<int64_t>(0, cached);
#else
        return std::nullopt;
#endif
    }

    std::string weights_sha256() const override {
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
        hash_module(original_, ctx);
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

    // onednn int8 models: a quantized convolution keeps its weights in the layout oneDNN chose for
    // the first input it ran, and with the AVX-512 VNNI kernels that layout depends on the input's
    // size: Debian's oneDNN 2.6 then cannot reorder them for a size that needs another one ("could
    // not create a primitive descriptor for a reorder primitive": 512² after 128² fails, on a Zen 4
    // EPYC). Such a model runs each input size on a module of its own, loaded on first use (a run
    // sees a few sizes: its tiles, a small image's own size, the memory probe's).
    torch::jit::Module& module_for(int64_t height, int64_t width) const {
        if (!metadata_.is_quantized() || metadata_.quantized_engine != "onednn") return const_cast<torch::jit::Module&>(module_);
        const std::lock_guard<std::mutex> lock(sizes_mutex_);
        const auto key = std::make_pair(height, width);
        auto found = by_size_.find(key);
        if (found == by_size_.end()) {
            if (by_size_.empty()) {
                found = by_size_.emplace(key, module_).first;
            } else {
                // A fresh load: a clone would share the packed weights and their layout.
                torch::jit::Module fresh;
                try {
                    fresh = torch::jit::load(path_, torch::Device(torch::kCPU));
                } catch (const c10::Error& e) {
                    throw Error(path_ + ": reloading the int8 model failed (" + first_line(e.what_without_backtrace()) + ")");
                }
                bool ignored = false;  // prepared as the first one was
                found = by_size_.emplace(key, prepared_int8_module(fresh, optimized_, ignored)).first;
            }
        }
        return found->second;
    }

    torch::Tensor forward(const torch::Tensor& input) const {
        std::vector<torch::jit::IValue> inputs{input};
        torch::jit::IValue out = module_for(input.size(2), input.size(3)).forward(inputs);
        if (out.isTensor()) return out.toTensor();
        if (out.isTuple()) return out.toTuple()->elements().at(0).toTensor();  // main head first
        throw Error(path_ + ": the model returned neither a tensor nor a tuple of tensors");
    }

    std::string path_;
    ModelMetadata metadata_;
    torch::jit::Module module_;    // what runs (optimised when asked)
    torch::jit::Module original_;  // as loaded, for hashing
    torch::Device device_{torch::kCPU};
    Precision precision_ = Precision::fp32;
    bool optimized_ = false;
    std::string graph_ = "eager";  // see Model::graph
    std::string graph_detail_;
    mutable std::mutex sizes_mutex_;
    mutable std::map<std::pair<int64_t, int64_t>, torch::jit::Module> by_size_;
};

// Module::to(device, dtype) also converts integer buffers (e.g. relative-position indices, which
// then fail as indices): move everything to the device, convert only floating-point tensors.
void move_module(torch::jit::Module& module, const torch::Device& device, torch::ScalarType type) {
    module.to(device);
    if (type == torch::kFloat) return;
    for (const auto& sub : module.modules()) {
        torch::jit::Module m = sub;
        for (const auto& attribute : m.named_attributes(/*recurse=*/false)) {
            if (attribute.value.isTensor() && attribute.value.toTensor().is_floating_point()) {
                m.setattr(attribute.name, attribute.value.toTensor().to(type));
            }
        }
    }
}

class TorchBackend final : public Backend {
public:
    std::unique_ptr<Network> load(const std::string& path, const ModelOptions& options, const DescribeFn& describe) override {
        auto impl = std::make_unique<TorchNetwork>();
        impl->path_ = path;
        impl->metadata_ = describe(read_embedded_metadata(path));
        const bool int8 = impl->metadata_.is_quantized();
        if (int8 && options.device != "cpu") {  // before parse_device: the answer does not depend on the GPU
            throw usage_error(path + ": an int8 (quantized) model runs on the CPU only (--device " + options.device +
                              "); use --device cpu or the fp32 model");
        }
        impl->device_ = parse_device(options.device, path);
        impl->precision_ = options.precision;
        if (options.precision == Precision::fp16 && impl->device_.is_cpu()) {
            throw usage_error("--precision fp16 is not supported on the CPU (LibTorch 1.13 has no half-precision CPU "
                              "convolutions); use fp32 or bf16");
        }
        if (int8) {
            if (options.precision != Precision::fp32) {
                throw usage_error(path + ": --precision " + std::string(to_string(options.precision)) +
                                  " does not apply to an int8 model (it computes in int8; leave --precision at fp32)");
            }
            // Process-wide; every int8 model loaded here must agree (one engine per process).
            at::globalContext().setQEngine(quantized_engine(impl->metadata_.quantized_engine, path));
        }
        std::unordered_map<std::string, std::string> extra;
        try {
            impl->module_ = torch::jit::load(path, torch::Device(torch::kCPU), extra);
        } catch (const c10::Error& e) {
            throw Error(path + ": not a TorchScript model (" + first_line(e.what_without_backtrace()) + ")");
        }
        impl->module_.eval();
        impl->original_ = impl->module_;
        // A file damaged after export (a bad sector, a copy cut short that still unzips) loads without a
        // word and computes other numbers: no map is made with weights other than those the metadata names.
        if (impl->metadata_.weights_sha256.empty()) {
            // No metadata to name them: the hash of the weights themselves identifies the model in job
            // fingerprints and manifests (two such models looked alike, and a resume mixed them).
            impl->metadata_.weights_sha256 = impl->weights_sha256();
            impl->metadata_.weights_sha256_declared = false;
        } else if (options.verify_weights) {
            const std::string actual = impl->weights_sha256();
            if (actual != impl->metadata_.weights_sha256) {
                throw Error(path + ": its weights do not match the SHA-256 in its metadata (" + actual.substr(0, 12) + "... against " +
                            impl->metadata_.weights_sha256.substr(0, 12) + "...): the file is damaged or was altered; copy or export it again");
            }
        }
        if (int8) {
            impl->module_ = prepared_int8_module(impl->module_.clone(), options.optimize, impl->optimized_);
            if (impl->optimized_) impl->graph_ = "frozen";
            return impl;
        }
        try {
            const bool frozen_for_cpu = options.optimize && impl->device_.is_cpu() && options.precision == Precision::fp32;
            const bool channels_last = options.cpu_graph == CpuGraph::automatic ? impl->metadata_.cpu_graph == "channels_last"
                                                                                : options.cpu_graph == CpuGraph::channels_last;
            if (frozen_for_cpu && channels_last) {
                int split = 0;
                impl->module_ = frozen_channels_last(impl->module_, split);
                impl->optimized_ = true;
                impl->graph_ = "channels_last";
                impl->graph_detail_ = split > 0 ? std::to_string(split) + " concatenations split into convolutions" : "";
            } else if (frozen_for_cpu) {
                torch::jit::Module frozen = torch::jit::freeze(impl->module_);
                impl->module_ = torch::jit::optimize_for_inference(frozen);
                impl->optimized_ = true;
                impl->graph_ = "optimize_for_inference";
                // No .to() here: it is a no-op for CPU fp32, and on an optimised graph it replaces
                // attributes the fused ops hold (an RVSA model then crashed in the interpreter).
            } else {
                impl->module_ = impl->module_.clone();
                move_module(impl->module_, impl->device_, scalar_type(options.precision));
            }
        } catch (const c10::Error& e) {
            throw Error(path + ": preparing the model for " + options.device + "/" + to_string(options.precision) +
                        " failed (" + first_line(e.what_without_backtrace()) + ")");
        }
        return impl;
    }

    std::string libtorch_version() const override { return TORCH_VERSION; }
    void set_threads(int threads) override {
        if (threads > 0) at::set_num_threads(threads);
    }
    void set_threads_of_this_thread(int threads) override {
        if (threads <= 0) return;
        // A thread's first parallel op sets its OpenMP team size from the process-wide count; run that
        // initialisation now (its flag is one per thread for all of LibTorch) so the size below stays.
        at::internal::lazy_init_num_threads();
        omp_set_num_threads(threads);
    }
    int threads() const override { return at::get_num_threads(); }
    bool cuda_available() const override { return torch::cuda::is_available(); }
};

}  // namespace rsi::models

extern "C" __attribute__((visibility("default"))) rsi::models::Backend* rsi_create_torch_backend() {
    return new rsi::models::TorchBackend();
}
