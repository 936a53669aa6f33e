#include "src/model_check.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include "models/runtime_info.hpp"
#include "src/area_shrink.hpp"
#include "src/band_mapping.hpp"
#include "src/model_runners.hpp"
#include "tiling/error.hpp"
#include "tiling/first_error.hpp"
#include "tiling/raster_source.hpp"

namespace rsi {

namespace {

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : (v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2);
}

struct BatchTimes {
    double median = 0, mean = 0;
};

// Wall time of one batch, in milliseconds: the median (the headline rate, robust to a stray slow
// batch) and the mean (what a long run of back-to-back batches averages to).
BatchTimes time_batches(const models::Model& model, const models::BatchShape& shape, const std::vector<float>& input,
                        int iterations, std::vector<int64_t>& output_shape, const ProgressFn& progress, double from, double to) {
    std::vector<float> output;
    // `input` holds one or more whole batches; the timed iterations cycle through them.
    const size_t batch_values = static_cast<size_t>(shape[0] * shape[1] * shape[2] * shape[3]);
    const size_t batches = std::max<size_t>(1, input.size() / batch_values);
    output_shape = model.run(input.data(), shape, output);  // warm-up (graph specialisation)
    std::vector<double> times;
    for (int i = 0; i < iterations; ++i) {
        const float* batch = input.data() + (static_cast<size_t>(i) % batches) * batch_values;
        const auto start = std::chrono::steady_clock::now();
        model.run(batch, shape, output);
        times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
        report_progress(progress, from + (to - from) * (i + 1) / iterations, "timing batches");
    }
    double sum = 0;
    for (double t : times) sum += t;
    return {median(times), times.empty() ? 0 : sum / static_cast<double>(times.size())};
}

// Tiles per second of `plan.count` threads each running `iterations` batches (after one warm-up
// batch), from the first thread's start to the last one's end.
double time_concurrent_batches(const models::Model& model, const ModelRunners& plan, const models::BatchShape& shape,
                               const std::vector<float>& input, int iterations) {
    const size_t batch_values = static_cast<size_t>(shape[0] * shape[1] * shape[2] * shape[3]);
    const size_t batches = std::max<size_t>(1, input.size() / batch_values);
    using Clock = std::chrono::steady_clock;
    std::vector<Clock::time_point> starts(static_cast<size_t>(plan.count)), ends(starts.size());
    FirstError failure;
    std::vector<std::thread> threads;
    for (int r = 0; r < plan.count; ++r) {
        threads.emplace_back([&, r] {
            try {
                if (plan.threads[static_cast<size_t>(r)] > 0) models::set_inference_threads_of_this_thread(plan.threads[static_cast<size_t>(r)]);
                std::vector<float> output;
                model.run(input.data(), shape, output);
                starts[static_cast<size_t>(r)] = Clock::now();
                for (int i = 0; i < iterations; ++i) {
                    // Each runner starts at its own batch: they do not all read the same one.
                    const size_t k = (static_cast<size_t>(i) + static_cast<size_t>(r)) % batches;
                    model.run(input.data() + k * batch_values, shape, output);
                }
                ends[static_cast<size_t>(r)] = Clock::now();
            } catch (...) {
                failure.record(std::current_exception());
            }
        });
    }
    for (std::thread& t : threads) t.join();
    failure.rethrow_if_any();
    const double seconds = std::chrono::duration<double>(*std::max_element(ends.begin(), ends.end()) -
                                                         *std::min_element(starts.begin(), starts.end()))
                               .count();
    return static_cast<double>(plan.count) * iterations * static_cast<double>(shape[0]) / std::max(1e-9, seconds);
}

}  // namespace

std::vector<float> model_check_tiles(const std::string& path, const models::ModelMetadata& meta, const models::BatchShape& shape,
                                     int64_t batches) {
    const RasterSource source = RasterSource::open(path);
    const RasterInfo& info = source.info();
    const BandMapping mapping = map_bands(source, meta, {}, "model check", false, /*resampled=*/true);
    const double scale = model_pixel_scale(info, meta);
    const int64_t N = shape[0] * std::max<int64_t>(1, batches), C = shape[1], T = shape[2];
    const int64_t window = std::max<int64_t>(1, std::llround(static_cast<double>(T) * scale));
    if (window > info.width || window > info.height) {
        throw usage_error("model check: " + path + " (" + std::to_string(info.width) + "x" + std::to_string(info.height) +
                          ") is smaller than one " + std::to_string(window) + "-pixel tile");
    }
    const int64_t cols = info.width / window, count = cols * (info.height / window);
    std::vector<float> data(static_cast<size_t>(N * C * T * T));
    std::vector<float> full(window == T ? 0 : static_cast<size_t>(C * window * window));
    for (int64_t i = 0; i < N; ++i) {
        const int64_t k = i * count / N;
        const PixelWindow w{(k % cols) * window, (k / cols) * window, window, window};
        float* slot = data.data() + i * C * T * T;
        if (window == T) {
            source.read(w, mapping.source_bands, GDT_Float32, slot);
            mapping.normalizer.apply(slot, static_cast<size_t>(C), T * T);
            continue;
        }
        // Resized in float as the scene reader does (OpenCV's area average), not by GDAL's resampled
        // read, which averages in the source type: a Byte image's 2x2 means would come back rounded
        // to whole numbers, and this model family's sorting features run ~20 % faster on such ties.
        source.read(w, mapping.source_bands, GDT_Float32, full.data());
        const bool clamp = mapping.normalizer.clamp;  // clamping does not commute with averaging
        if (clamp) mapping.normalizer.apply(full.data(), static_cast<size_t>(C), window * window);
        resize_planes(full.data(), C, window, slot, T);
        if (!clamp) mapping.normalizer.apply(slot, static_cast<size_t>(C), T * T);
    }
    return data;
}

ModelCheckResult check_model(const ModelCheckOptions& options, const ProgressFn& progress) {
    if (options.iterations < 1) throw usage_error("--iterations must be at least 1");
    if (options.runners < 1) throw usage_error("--runners must be at least 1");
    report_progress(progress, 0.0, "loading");
    models::ModelOptions load_options = options.model;
    load_options.verify_weights = false;  // a mismatch is reported below, with the golden values
    const models::Model model = models::Model::load(options.model_path, load_options);
    ModelCheckResult r;
    r.metadata = model.metadata();
    r.device = model.device();
    // An int8 file runs its quantized kernels whatever --precision says: report what the weights are.
    r.precision = model.metadata().is_quantized() ? "int8" : models::to_string(model.precision());
    r.optimized = model.optimized();
    r.graph = model.graph();
    r.graph_detail = model.graph_detail();
    const auto& m = r.metadata;
    r.tile_size = options.tile_size > 0 ? options.tile_size : m.tile_size;
    if (m.task == models::Task::segmentation && r.tile_size % m.multiple_of != 0) {
        throw usage_error("--tile-size " + std::to_string(r.tile_size) + " is not a multiple of " +
                          std::to_string(m.multiple_of) + " as the model needs");
    }
    r.memory = model.measure_memory(r.tile_size, r.tile_size);
    r.batch = options.batch > 0 ? options.batch
                                : model.batch_size_for(options.memory_budget_mb * 1024 * 1024, r.tile_size, r.tile_size);
    if (!m.golden.is_null()) r.golden_difference = model.golden_difference();
    if (model.precision() != models::Precision::fp32) r.golden_tolerance = 5e-2;
    if (m.weights_sha256_declared && !m.weights_sha256.empty()) r.weights_hash_matches = model.weights_sha256() == m.weights_sha256;
    const models::BatchShape shape{r.batch, m.bands, r.tile_size, r.tile_size};
    const bool eager = options.compare_eager && model.optimized();
    std::vector<float> input;
    if (options.tiles_from.empty()) {
        input = models::ramp_input(shape);
    } else {
        // One distinct batch per timed iteration (a sample of the whole image, not one spot of it),
        // as far as 256 MB of tiles allow; beyond that the iterations cycle through them.
        const int64_t batch_bytes = shape[0] * shape[1] * shape[2] * shape[3] * static_cast<int64_t>(sizeof(float));
        const int64_t batches = std::clamp<int64_t>((int64_t{256} << 20) / std::max<int64_t>(1, batch_bytes), 1, options.iterations);
        input = model_check_tiles(options.tiles_from, m, shape, batches);
        r.timed_input = "image";
    }
    const bool alternative = eager && (r.graph == "optimize_for_inference" || r.graph == "channels_last");
    const double optimized_end = alternative ? 0.4 : eager ? 0.55 : 1.0;
    const BatchTimes optimized = time_batches(model, shape, input, options.iterations, r.output_shape, progress, 0.1, optimized_end);
    r.optimized_batch_ms = optimized.median;
    r.optimized_batch_ms_mean = optimized.mean;
    r.tiles_per_second = r.batch * 1000.0 / r.optimized_batch_ms;
    if (options.runners > 1) {
        const ModelRunners plan = model_runners(model, options.runners);
        r.runners = plan.count;
        r.concurrent_tiles_per_second = time_concurrent_batches(model, plan, shape, input, options.iterations);
    }
    if (alternative) {
        models::ModelOptions other = load_options;
        other.cpu_graph = r.graph == "channels_last" ? models::CpuGraph::optimize_for_inference : models::CpuGraph::channels_last;
        r.alternative_graph = models::to_string(other.cpu_graph);
        try {
            const models::Model second = models::Model::load(options.model_path, other);
            std::vector<int64_t> ignored;
            r.alternative_batch_ms = time_batches(second, shape, input, options.iterations, ignored, progress, 0.4, 0.7).median;
        } catch (const Error& e) {
            r.alternative_error = e.what();  // some graph passes do not take every network
        }
    }
    if (eager) {
        models::ModelOptions plain = load_options;
        plain.optimize = false;
        const models::Model unoptimized = models::Model::load(options.model_path, plain);
        std::vector<int64_t> ignored;
        r.eager_batch_ms = time_batches(unoptimized, shape, input, options.iterations, ignored, progress, alternative ? 0.7 : 0.55, 1.0).median;
    }
    return r;
}

}  // namespace rsi
