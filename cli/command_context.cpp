#include "cli/command_context.hpp"
#include "src/json_text.hpp"

#include <cmath>

#include <cpl_conv.h>
#include <cpl_vsi.h>
#include <gdal.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <iostream>
#include <cstdlib>
#include <algorithm>
#include <sstream>
#include <thread>

#include "src/output_file.hpp"
#include "tiling/error.hpp"
#include "tiling/raster_source.hpp"
#include "models/runtime_info.hpp"

namespace rsi::cli {

GridSpec GridOptions::spec() const {
    GridSpec s;
    s.tile_width = s.tile_height = tile_size;
    s.overlap = overlap >= 0 ? overlap : std::min<int64_t>(64, tile_size / 8);
    s.edge = parse_edge_policy(edge);
    return s;
}

ProgressFn CommandContext::progress(ProgressBar& bar) const {
    return [&bar](double fraction, std::string_view what) { return bar.update(fraction, what); };
}

CLI::Option* add_creation_options(CLI::App& sub, std::vector<std::string>& options) {
    const CLI::Validator key_value(
        [](std::string& value) -> std::string {
            const size_t eq = value.find('=');
            return eq == std::string::npos || eq == 0 ? "expected KEY=VALUE, got '" + value + "'" : std::string();
        },
        "KEY=VALUE");
    return sub.add_option("--co", options, "GDAL creation option KEY=VALUE (repeatable; -co works)")->check(key_value);
}

void add_common_options(CLI::App& sub, CommonOptions& common) {
    sub.add_flag("-q,--quiet", common.quiet, "No progress or warnings on stderr");
    sub.add_flag("--json", common.json, "Print a machine-readable JSON summary on stdout");
    // Capped: thousands of threads each with their own buffers crashed rsi tile and stalled buildings.
    sub.add_option("--threads", common.threads, "Worker threads (default: all cores)")->check(CLI::Range(0, 256));
    sub.add_option("--ram", common.ram_mb, "Memory budget in MB for the data: strips, batches and GDAL's cache (the model runtime, ~200-300 MB for the bundled models, comes on top)")
        ->check(CLI::Range(int64_t{16}, int64_t{1} << 30));
    sub.add_option("--config", common.config, "GDAL configuration option KEY VALUE (repeatable)")
        ->type_name("KEY VALUE");
}

void add_grid_options(CLI::App& sub, GridOptions& grid) {
    sub.add_option("--tile-size", grid.tile_size, "Tile size in pixels")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
    sub.add_option("--overlap", grid.overlap, "Pixels shared by neighbouring tiles (default: 64, or an eighth of a smaller tile)")
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
    sub.add_option("--edge", grid.edge, "Edge policy: shift, reflect or constant")->capture_default_str();
}

namespace {

std::vector<float> parse_floats(const std::string& text, const std::string& option) {
    std::vector<float> values;
    std::stringstream stream(text);
    std::string token;
    while (std::getline(stream, token, ',')) {
        char* end = nullptr;
        const float v = std::strtof(token.c_str(), &end);
        if (token.empty() || end != token.c_str() + token.size()) {
            throw usage_error(option + ": '" + text + "' is not a comma-separated list of numbers");
        }
        values.push_back(v);
    }
    return values;
}

}  // namespace

CLI::Validator finite_range(double low, double high) {
    std::ostringstream description;
    description << "FINITE in [" << low << " - " << high << "]";
    return CLI::Validator(
        [low, high](std::string& text) -> std::string {
            double v = 0;
            if (!CLI::detail::lexical_cast(text, v) || !std::isfinite(v) || v < low || v > high) {
                std::ostringstream out;
                out << "Value " << text << " not in range [" << low << " - " << high << "]";
                return out.str();
            }
            return {};
        },
        description.str());
}

CLI::Validator finite_number() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            double v = 0;
            if (!CLI::detail::lexical_cast(text, v) || !std::isfinite(v)) return "Value " + text + " is not a finite number";
            return {};
        },
        "FINITE");
}

CLI::Validator positive_number() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            double v = 0;
            if (!CLI::detail::lexical_cast(text, v) || !std::isfinite(v) || !(v > 0)) return "Value " + text + " is not a positive number";
            return {};
        },
        "POSITIVE");
}

models::ModelOptions ModelCliOptions::to_model_options() const {
    models::ModelOptions o;
    o.device = device;
    o.precision = models::parse_precision(precision);
    o.cpu_graph = models::parse_cpu_graph(cpu_graph);
    auto& v = o.overrides;
    if (!task.empty()) v.task = task;
    if (!classes.empty()) {
        std::stringstream stream(classes);
        for (std::string name; std::getline(stream, name, ',');) v.classes.push_back(name);
    }
    if (!mean.empty()) v.mean = parse_floats(mean, "--mean");
    if (!std.empty()) v.std = parse_floats(std, "--std");
    if (model_bands > 0) v.bands = model_bands;
    if (model_tile_size > 0) v.tile_size = model_tile_size;
    if (input_scale != 0) v.scale = input_scale;
    if (gsd > 0) v.gsd_m = gsd;
    return o;
}

std::string bundled_models_dir() {
    if (const char* dir = std::getenv("RSI_MODELS_DIR"); dir && *dir) return dir;
    return RSI_BUNDLED_MODELS_DIR;
}

void warn_skipped_models(const std::vector<std::string>& skipped, bool quiet) {
    if (quiet) return;
    for (const std::string& why : skipped) std::cerr << "rsi: warning: skipped a model that cannot be read: " << why << "\n";
}

void add_model_options(CLI::App& sub, ModelCliOptions& model, bool with_model_flag) {
    if (with_model_flag) {
        sub.add_option("-m,--model", model.model, "Model file or bundled model name (default: the bundled one that fits)");
    }
    sub.add_option("--device", model.device, "cpu or cuda:N")->capture_default_str();
    sub.add_option("--precision", model.precision, "fp32, bf16 (CPU and CUDA) or fp16 (CUDA)")->capture_default_str();
    sub.add_option("--cpu-graph", model.cpu_graph,
                   "How an fp32 model is optimised for the CPU: auto (as its metadata says), optimize "
                   "(optimize_for_inference) or channels-last")
        ->check(CLI::IsMember({"auto", "optimize", "channels-last"}))
        ->capture_default_str();
    sub.add_option("--task", model.task, "For a model without metadata: segmentation or scene")->group("Model metadata");
    sub.add_option("--classes", model.classes, "For a model without metadata: class names, comma-separated")
        ->group("Model metadata");
    sub.add_option("--model-bands", model.model_bands, "For a model without metadata: input channels")
        ->group("Model metadata")
        ->check(CLI::Range(1, 1024));  // 0 or less passed for "not given"
    sub.add_option("--model-tile-size", model.model_tile_size, "For a model without metadata: native tile size")
        ->group("Model metadata")
        ->check(CLI::Range(1, 65536));  // 0 or less passed for "not given"
    sub.add_option("--mean", model.mean, "Per-band mean subtracted after scaling, comma-separated")->group("Model metadata");
    sub.add_option("--std", model.std, "Per-band std dividing after the mean, comma-separated")->group("Model metadata");
    sub.add_option("--input-scale", model.input_scale, "Multiplier applied to band values first (e.g. 0.0039216)")
        ->group("Model metadata")
        ->check(positive_number());
    sub.add_option("--gsd", model.gsd,
                   "Ground sample distance the model expects, metres (a model without metadata and without --gsd runs at the image's own pixel size)")
        ->group("Model metadata")
        ->check(positive_number());
}

bool mentions_remote_path(const std::vector<std::string>& args) {
    for (const std::string& a : args) {
        for (const char* prefix : {"/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsiadls", "/vsioss", "/vsiswift", "/vsiwebhdfs",
                                   "http://", "https://"}) {
            if (a.find(prefix) != std::string::npos) return true;
        }
    }
    return false;
}

void apply_global_settings(const CommonOptions& common, bool remote_inputs) {
    if (remote_inputs) {
        // Measured against a local nginx serving a COG (docs/CLUSTER.md): not listing the remote
        // "directory" for side-car files cuts a 1300² COG's requests from 52 to 10; retries ride out
        // transient 5xx. Only for remote inputs: locally it would hide .aux.xml and .msk files.
        for (const auto& [key, value] : std::vector<std::pair<const char*, const char*>>{
                 {"GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR"}, {"GDAL_HTTP_MAX_RETRY", "3"}, {"GDAL_HTTP_RETRY_DELAY", "1"}}) {
            if (!CPLGetConfigOption(key, nullptr)) CPLSetConfigOption(key, value);
        }
    }
    for (const auto& [key, value] : common.config) CPLSetConfigOption(key.c_str(), value.c_str());
#if defined(__GLIBC__)
    // glibc serves blocks above its mmap threshold (by default it adapts, up to 32 MB) with fresh
    // mappings whose pages fault in on first touch, and trims the heap top back to the system. A
    // model's forward pass frees and re-allocates the same activation sizes every batch, so each pass
    // paid ~100,000 page faults per 512² tile. Fixing the threshold and keeping freed memory for reuse
    // made the building model's forward faster; 64 MB keeps a 512² tile's largest activations (42 MB)
    // in the heap: at batch 1, 8000², 65.6 -> 60.2 s (system time 9.1 -> 1.3 s), peak RSS within the
    // run-to-run spread. Larger thresholds also keep batch 4's (168 MB) blocks but fragment the heap:
    // +40-50 % peak RSS (docs/BENCHMARKS.md, Sessions 6 and 14). glibc's environment variables win.
    if (!std::getenv("MALLOC_MMAP_THRESHOLD_")) mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
    if (!std::getenv("MALLOC_TRIM_THRESHOLD_")) mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
    const int threads = common.threads > 0 ? common.threads : static_cast<int>(std::thread::hardware_concurrency());
    models::set_inference_threads(threads > 0 ? threads : 1);
    // GDAL's block cache counts inside the memory budget.
    GDALSetCacheMax64(common.ram_mb * 1024 * 1024 / 4);
}

void restore_block_cache(const CommonOptions& common) { GDALSetCacheMax64(common.ram_mb * 1024 * 1024 / 4); }

std::string cap_block_cache_for_strips(const CommonOptions& common, const std::string& command, const std::string& image, bool row_segments) {
    RasterInfo info;
    try {
        info = RasterSource::open(image).info();
    } catch (const Error&) {
        return "";  // the command itself reports the unreadable image, in its own words
    }
    // The reader's conditions for row segments (row_segment_tiles): local data stored in tiles.
    const bool local = VSIIsLocal(image.c_str());
    int64_t row_bytes = 0;
    bool tiled = false;
    for (const BandInfo& band : info.bands) {
        const bool band_tiled = band.block_width > 0 && band.block_width < info.width;
        tiled = tiled || band_tiled;
        const int64_t columns = row_segments && local && band_tiled ? std::min<int64_t>(info.width, 8192) : info.width;
        row_bytes += columns * std::max(band.block_height, 1) * GDALGetDataTypeSizeBytes(band.data_type);
    }
    // Strips are read once in order and keep their overlap rows themselves (TileReader), so the cache
    // only has to hold the block row that straddles two reads, and the writers' whole-block writes.
    const int64_t budget = common.ram_mb * 1024 * 1024 / 4;
    GDALSetCacheMax64(std::min<int64_t>(budget, std::max<int64_t>(int64_t{16} << 20, 2 * row_bytes)));
    if (2 * row_bytes <= budget || info.bands.empty()) return "";
    const BandInfo& band = info.bands.front();
    // An image already in tiles needs the cache only; one stored in wide strips can be re-tiled.
    const std::string warning = image + ": its " + std::to_string(band.block_width) + "x" + std::to_string(band.block_height) + " blocks need " +
                                std::to_string((2 * row_bytes) >> 20) + " MB of block cache for two block rows, more than --ram " +
                                std::to_string(common.ram_mb) + " allows (" + std::to_string(budget >> 20) +
                                " MB): reading will decode blocks again and again and memory will exceed --ram; give --ram " +
                                std::to_string(((8 * row_bytes) >> 20) + 1) +
                                (tiled ? "" : " or re-tile it (gdal_translate -co TILED=YES)");
    if (!common.quiet) std::cerr << "rsi " << command << ": warning: " << warning << "\n";
    return warning;
}

std::vector<std::string> with_warning(const std::string& first, const std::vector<std::string>& warnings) {
    std::vector<std::string> all;
    if (!first.empty()) all.push_back(first);
    all.insert(all.end(), warnings.begin(), warnings.end());
    return all;
}

void print_json(const nlohmann::json& value) { std::cout << json_text(value, 2) << std::endl; }

std::string error_message_for_user(const std::string& message) {
    std::string text = message;
    for (const char* prefix : {"segment: ", "scene: ", "eval: ", "submit decode: ", "submit: ", "model check: ", "tile: ", "vectorize: ", "merge: "}) {
        if (text.rfind(prefix, 0) == 0) {
            text = text.substr(std::string(prefix).size());
            break;
        }
    }
    return without_temporary_prefixes(text);
}

void add_shard_options(CLI::App& sub, std::string& shard, int& shard_count) {
    sub.add_option("--shard", shard,
                   "Run shard K of N (0 <= K < N); default from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT")
        ->group("Scale-out");
    sub.add_option("--shard-count", shard_count, "N for JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs)")->group("Scale-out");
}

std::optional<ShardSpec> resolve_shard(const std::string& shard_option, int shard_count, std::string& source) {
    if (!shard_option.empty()) {
        source = "--shard";
        return parse_shard(shard_option, "--shard");
    }
    const auto number = [](const char* name) -> std::optional<int> {
        const char* v = std::getenv(name);
        if (!v || !*v) return std::nullopt;
        try {
            return std::stoi(v);
        } catch (const std::exception&) {
            throw usage_error(std::string(name) + "='" + v + "' is not a number");
        }
    };
    if (const auto id = number("SLURM_ARRAY_TASK_ID")) {
        if (const auto count = number("SLURM_ARRAY_TASK_COUNT")) {
            const int k = *id - number("SLURM_ARRAY_TASK_MIN").value_or(0);
            source = "SLURM_ARRAY_TASK_ID";
            return parse_shard(std::to_string(k) + "/" + std::to_string(*count), "SLURM_ARRAY_TASK_ID");
        }
    }
    if (const auto index = number("JOB_COMPLETION_INDEX")) {
        if (shard_count > 0) {
            source = "JOB_COMPLETION_INDEX";
            return parse_shard(std::to_string(*index) + "/" + std::to_string(shard_count), "JOB_COMPLETION_INDEX");
        }
    }
    if (shard_count > 0) throw usage_error("--shard-count needs JOB_COMPLETION_INDEX in the environment (or use --shard K/N)");
    return std::nullopt;
}

}  // namespace rsi::cli
