#include "models/model.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <thread>

#include "models/runtime_info.hpp"

#include "test_support.hpp"
#include "tiling/error.hpp"

namespace rsi::models {
namespace {

std::string fixture(const std::string& name) { return std::string(RSI_FIXTURES_DIR) + "/" + name; }

std::vector<float> random_input(const BatchShape& s, unsigned seed) {
    std::vector<float> v(static_cast<size_t>(s[0] * s[1] * s[2] * s[3]));
    uint32_t state = seed;
    for (float& x : v) {
        state = state * 1664525u + 1013904223u;
        x = static_cast<float>(state >> 8) / static_cast<float>(1u << 24) * 4.0f - 2.0f;
    }
    return v;
}

float max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
    float worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
    return worst;
}

std::string error_of(const std::function<void()>& fn, ErrorKind* kind = nullptr) {
    try {
        fn();
    } catch (const Error& e) {
        if (kind) *kind = e.kind();
        return e.what();
    }
    return "";
}

TEST(ModelRuntime, SegmenterRunsAndGivesProbabilities) {
    const Model model = Model::load(fixture("tiny_segmenter.pt"));
    EXPECT_TRUE(model.optimized());
    EXPECT_EQ(model.metadata().name, "tiny-segmenter");
    const BatchShape shape{2, 3, 32, 48};
    const auto input = random_input(shape, 1);
    std::vector<float> out;
    const auto out_shape = model.run(input.data(), shape, out);
    EXPECT_EQ(out_shape, (std::vector<int64_t>{2, 2, 32, 48}));
    for (int64_t n = 0; n < 2; ++n)
        for (int64_t i = 0; i < 32 * 48; ++i) {
            const float p0 = out[static_cast<size_t>(n * 2 * 32 * 48 + i)], p1 = out[static_cast<size_t>((n * 2 + 1) * 32 * 48 + i)];
            ASSERT_NEAR(p0 + p1, 1.0f, 1e-5f);
            ASSERT_GE(p0, 0.0f);
        }
}

TEST(ModelRuntime, GoldenValuesAndWeightsHashMatchTheExport) {
    for (const char* name : {"tiny_segmenter.pt", "tiny_sigmoid.pt", "tiny_scene.pt"}) {
        const Model model = Model::load(fixture(name));
        EXPECT_LT(model.golden_difference(), 1e-5) << name;
        EXPECT_EQ(model.weights_sha256(), model.metadata().weights_sha256) << name;
    }
}

TEST(ModelRuntime, OptimisedEqualsEagerAndBatchCompositionDoesNotMatter) {
    ModelOptions eager_options;
    eager_options.optimize = false;
    const Model optimised = Model::load(fixture("tiny_segmenter.pt"));
    const Model eager = Model::load(fixture("tiny_segmenter.pt"), eager_options);
    EXPECT_FALSE(eager.optimized());
    const BatchShape four{4, 3, 64, 64};
    const auto input = random_input(four, 2);
    std::vector<float> a, b;
    optimised.run(input.data(), four, a, false);
    eager.run(input.data(), four, b, false);
    EXPECT_LT(max_abs_difference(a, b), 1e-4f);
    // A tile's result does not depend on which tiles share its batch (resume and shard identity).
    const size_t tile = 3 * 64 * 64, out_tile = 2 * 64 * 64;
    std::vector<float> single;
    optimised.run(input.data() + 2 * tile, {1, 3, 64, 64}, single, false);
    EXPECT_EQ(std::vector<float>(a.begin() + 2 * out_tile, a.begin() + 3 * out_tile), single);
}

TEST(ModelRuntime, ChannelsLastGraphGivesTheSameOutputsAsOptimizeForInference) {
    ModelOptions channels_last, oneDNN;
    channels_last.cpu_graph = CpuGraph::channels_last;
    oneDNN.cpu_graph = CpuGraph::optimize_for_inference;
    const Model a = Model::load(fixture("tiny_segmenter.pt"), channels_last);
    const Model b = Model::load(fixture("tiny_segmenter.pt"), oneDNN);
    const Model automatic = Model::load(fixture("tiny_segmenter.pt"));
    EXPECT_EQ(a.graph(), "channels_last");
    EXPECT_EQ(a.graph_detail(), "");  // no concatenation to split (the bundled U-Net has four)
    EXPECT_EQ(b.graph(), "optimize_for_inference");
    EXPECT_EQ(b.graph_detail(), "");
    EXPECT_EQ(automatic.graph(), "optimize_for_inference");  // the fixture's metadata names no cpu_graph
    EXPECT_TRUE(a.optimized());
    const BatchShape shape{3, 3, 48, 64};
    const auto input = random_input(shape, 7);
    std::vector<float> x, y;
    EXPECT_EQ(a.run(input.data(), shape, x, false), (std::vector<int64_t>{3, 2, 48, 64}));
    b.run(input.data(), shape, y, false);
    EXPECT_LT(max_abs_difference(x, y), 1e-4f);  // the output comes back in N x C x H x W order
    EXPECT_LT(a.golden_difference(), 1e-5);
    // Graphs other than fp32 on a CPU are not frozen this way.
    ModelOptions eager = channels_last;
    eager.optimize = false;
    EXPECT_EQ(Model::load(fixture("tiny_segmenter.pt"), eager).graph(), "eager");
    EXPECT_THROW(parse_cpu_graph("nhwc"), Error);
    EXPECT_EQ(parse_cpu_graph("channels-last"), CpuGraph::channels_last);
    EXPECT_EQ(parse_cpu_graph("optimize"), CpuGraph::optimize_for_inference);
    EXPECT_EQ(parse_cpu_graph("auto"), CpuGraph::automatic);
}

TEST(ModelRuntime, SigmoidModelYieldsTwoClassProbabilities) {
    const Model model = Model::load(fixture("tiny_sigmoid.pt"));
    const BatchShape shape{1, 3, 16, 16};
    const auto input = random_input(shape, 3);
    std::vector<float> raw, prob;
    EXPECT_EQ(model.run(input.data(), shape, raw, false), (std::vector<int64_t>{1, 1, 16, 16}));
    EXPECT_EQ(model.run(input.data(), shape, prob), (std::vector<int64_t>{1, 2, 16, 16}));
    for (size_t i = 0; i < 256; ++i) {
        const float p = 1.0f / (1.0f + std::exp(-raw[i]));
        EXPECT_NEAR(prob[256 + i], p, 1e-6f);
        EXPECT_NEAR(prob[i], 1 - p, 1e-6f);
    }
}

TEST(ModelRuntime, SceneModelGivesOneRowPerTile) {
    const Model model = Model::load(fixture("tiny_scene.pt"));
    const BatchShape shape{5, 4, 16, 16};
    const auto input = random_input(shape, 4);
    std::vector<float> out;
    EXPECT_EQ(model.run(input.data(), shape, out), (std::vector<int64_t>{5, 3}));
    for (int n = 0; n < 5; ++n) EXPECT_NEAR(out[n * 3] + out[n * 3 + 1] + out[n * 3 + 2], 1.0f, 1e-5f);
}

// A runner thread sets its own intra-op thread count (several runners of one thread each); the
// process-wide count, which every other thread takes on its first parallel op, stays.
TEST(ModelRuntime, ARunnerThreadsOwnThreadCountLeavesTheProcessCountAlone) {
    const int before = inference_threads();
    set_inference_threads(3);
    const Model model = Model::load(fixture("tiny_scene.pt"));
    const BatchShape shape{4, 4, 16, 16};
    const auto input = random_input(shape, 7);
    std::vector<float> reference, in_runner, in_plain_thread;
    model.run(input.data(), shape, reference);
    int runner_threads = 0, plain_threads = 0;
    std::thread runner([&] {
        set_inference_threads_of_this_thread(1);
        model.run(input.data(), shape, in_runner);
        runner_threads = inference_threads();
    });
    runner.join();
    std::thread plain([&] {
        model.run(input.data(), shape, in_plain_thread);
        plain_threads = inference_threads();
    });
    plain.join();
    EXPECT_EQ(runner_threads, 1);
    EXPECT_EQ(plain_threads, 3);
    EXPECT_EQ(inference_threads(), 3);
    EXPECT_LT(max_abs_difference(reference, in_runner), 1e-6f);
    EXPECT_LT(max_abs_difference(reference, in_plain_thread), 1e-6f);
    set_inference_threads(before);
}

TEST(ModelRuntime, Bf16StaysCloseToFp32) {
    ModelOptions bf16;
    bf16.precision = Precision::bf16;
    const Model reduced = Model::load(fixture("tiny_segmenter.pt"), bf16);
    const Model full = Model::load(fixture("tiny_segmenter.pt"));
    const BatchShape shape{1, 3, 64, 64};
    const auto input = random_input(shape, 5);
    std::vector<float> a, b;
    reduced.run(input.data(), shape, a);
    full.run(input.data(), shape, b);
    EXPECT_LT(max_abs_difference(a, b), 0.02f);  // probabilities; the documented bf16 tolerance
}

TEST(ModelRuntime, MemoryEstimateGrowsWithTheTile) {
    const Model model = Model::load(fixture("tiny_segmenter.pt"));
    const MemoryEstimate small = model.measure_memory(64, 64);
    const MemoryEstimate large = model.measure_memory(512, 512);
    EXPECT_GT(large.per_tile_bytes, small.per_tile_bytes);
    // At least the input and output tensors of one tile.
    EXPECT_GE(large.per_tile_bytes, (3 + 2) * 512 * 512 * 4);
    const int64_t lean = model.batch_size_for(64ll << 20, 512, 512);
    const int64_t rich = model.batch_size_for(1024ll << 20, 512, 512);
    EXPECT_GE(lean, 1);
    EXPECT_GT(rich, lean);
}

TEST(ModelRuntime, ErrorsAreClearOneLiners) {
    test::TempDir dir;
    ErrorKind kind{};
    EXPECT_EQ(error_of([&] { Model::load(dir / "missing.pt"); }), dir / "missing.pt" + ": no such model file");
    const std::string text = dir / "text.pt";
    { std::ofstream(text) << "not a model"; }
    EXPECT_NE(error_of([&] { Model::load(text); }).find("text.pt: not a TorchScript model"), std::string::npos);
    const std::string cut = dir / "cut.pt";
    std::filesystem::copy_file(fixture("tiny_segmenter.pt"), cut);
    std::filesystem::resize_file(cut, std::filesystem::file_size(cut) / 2);
    EXPECT_NE(error_of([&] { Model::load(cut); }).find("cut.pt: not a TorchScript model"), std::string::npos);
    EXPECT_NE(error_of([&] { Model::load(fixture("bad_metadata.pt")); }).find("rsi.json: input.std: values must be > 0"),
              std::string::npos);
    EXPECT_NE(error_of([&] { Model::load(fixture("no_metadata.pt")); }, &kind).find("has no rsi.json metadata"),
              std::string::npos);
    EXPECT_EQ(kind, ErrorKind::usage);
    ModelOptions fp16;
    fp16.precision = Precision::fp16;
    EXPECT_NE(error_of([&] { Model::load(fixture("tiny_segmenter.pt"), fp16); }, &kind).find("fp16 is not supported on the CPU"),
              std::string::npos);
    ModelOptions cuda;
    cuda.device = "cuda:0";
    EXPECT_NE(error_of([&] { Model::load(fixture("tiny_segmenter.pt"), cuda); }).find("no CUDA support"), std::string::npos);
    for (const char* malformed : {"cudaXYZ", "cuda:x", "cuda:", "cuda:-1"}) {  // the form is checked first: a usage error anywhere
        cuda.device = malformed;
        EXPECT_NE(error_of([&] { Model::load(fixture("tiny_segmenter.pt"), cuda); }, &kind).find("unknown device"), std::string::npos) << malformed;
        EXPECT_EQ(kind, ErrorKind::usage) << malformed;
    }
    EXPECT_THROW(parse_precision("fp8"), Error);

    const Model model = Model::load(fixture("tiny_segmenter.pt"));
    const BatchShape four_bands{1, 4, 16, 16};
    const auto input = random_input(four_bands, 6);
    std::vector<float> out;
    EXPECT_NE(error_of([&] { model.run(input.data(), four_bands, out); }).find("model expects 3 bands, the input has 4"),
              std::string::npos);
    const Model wrong = Model::load(fixture("wrong_output.pt"));
    EXPECT_NE(error_of([&] { wrong.run(input.data(), {1, 3, 16, 16}, out); })
                  .find("output shape [1,2,16,16] for the input [1,3,16,16]; the metadata's 3 classes and output stride 1 need [1,3,16,16]"),
              std::string::npos);
    // NaN out of the network is an error, not a map of class 0
    const Model broken = Model::load(fixture("nan_output.pt"));
    EXPECT_NE(error_of([&] { broken.run(input.data(), {1, 3, 16, 16}, out); }).find("nan_output.pt: the model's output holds NaN or infinite values"),
              std::string::npos);
}

// A file damaged after export still unzips and loads (the TorchScript reader checks no CRC): its weights'
// SHA-256 is compared with the metadata's on load, so no map is made with other weights. Damage: one
// byte of the first tensor record (a stored zip entry, found through its local header) changed.
TEST(ModelRuntime, DamagedWeightsAreRefusedOnLoad) {
    test::TempDir dir;
    const std::string damaged = dir / "damaged.pt";
    std::filesystem::copy_file(fixture("tiny_segmenter.pt"), damaged);
    std::string bytes;
    {
        std::ifstream in(damaged, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    const auto u16 = [&](size_t at) { return static_cast<size_t>(static_cast<uint8_t>(bytes[at]) | static_cast<uint8_t>(bytes[at + 1]) << 8); };
    size_t data = std::string::npos;
    for (size_t at = bytes.find("PK\x03\x04"); at != std::string::npos; at = bytes.find("PK\x03\x04", at + 4)) {
        const size_t name_length = u16(at + 26), extra_length = u16(at + 28);
        const std::string name = bytes.substr(at + 30, name_length);
        if (name.size() >= 7 && name.compare(name.size() - 7, 7, "/data/0") == 0) {
            data = at + 30 + name_length + extra_length;
            break;
        }
    }
    ASSERT_NE(data, std::string::npos) << "no data/0 record";
    bytes[data + 1] = static_cast<char>(bytes[data + 1] ^ 0x40);
    {
        std::ofstream out(damaged, std::ios::binary | std::ios::trunc);
        out << bytes;
    }
    EXPECT_NE(error_of([&] { Model::load(damaged); }).find("damaged.pt: its weights do not match the SHA-256 in its metadata"), std::string::npos);
    // `rsi model check` loads it to report the mismatch beside the golden values.
    ModelOptions unchecked;
    unchecked.verify_weights = false;
    const Model loaded = Model::load(damaged, unchecked);
    EXPECT_NE(loaded.weights_sha256(), loaded.metadata().weights_sha256);
}

// What the command line says of no_metadata.pt (--task --model-bands --classes --model-tile-size).
ModelOptions segmentation_fields() {
    ModelOptions o;
    o.overrides.task = "segmentation";
    o.overrides.bands = 3;
    o.overrides.classes = {"background", "building"};
    o.overrides.tile_size = 64;
    return o;
}

TEST(ModelRuntime, ModelWithoutMetadataRunsWithCommandLineFields) {
    const ModelOptions o = segmentation_fields();
    const Model model = Model::load(fixture("no_metadata.pt"), o);
    const BatchShape shape{1, 3, 8, 8};
    const auto input = random_input(shape, 7);
    std::vector<float> out;
    EXPECT_EQ(model.run(input.data(), shape, out), (std::vector<int64_t>{1, 2, 8, 8}));
    // Its weights' own hash names it in job fingerprints and manifests (it was empty: a resume or a
    // shard could not tell two such models apart); there is no declared one to check.
    EXPECT_EQ(model.metadata().weights_sha256, model.weights_sha256());
    EXPECT_EQ(model.metadata().weights_sha256.size(), 64u);
    EXPECT_FALSE(model.metadata().weights_sha256_declared);
    // the fixture is tiny_segmenter.pt's network saved without rsi.json: the hash its metadata declares
    EXPECT_EQ(model.metadata().weights_sha256, Model::load(fixture("tiny_segmenter.pt")).metadata().weights_sha256);
    EXPECT_TRUE(Model::load(fixture("tiny_segmenter.pt")).metadata().weights_sha256_declared);
}

// Logits declared as probabilities are refused, naming the range (they went into the probability
// raster, whose values are 0..1 and -1 for nodata, as they were).
TEST(ModelRuntime, DeclaredProbabilitiesOutsideZeroToOneAreRefused) {
    ModelOptions o = segmentation_fields();
    o.overrides.output = "probabilities";
    const Model model = Model::load(fixture("no_metadata.pt"), o);  // a network that outputs logits
    const BatchShape shape{1, 3, 16, 16};
    std::vector<float> input(static_cast<size_t>(3 * 16 * 16));
    for (size_t i = 0; i < input.size(); ++i) input[i] = static_cast<float>(i % 17) * 0.5f - 4.0f;
    std::vector<float> out;
    const std::string message = error_of([&] { model.run(input.data(), shape, out); });
    EXPECT_NE(message.find("no_metadata.pt: the metadata says the model outputs probabilities, but they run from "), std::string::npos)
        << message;
    EXPECT_NE(message.find("(are they logits? declare output \"logits\")"), std::string::npos) << message;
}

}  // namespace
}  // namespace rsi::models
