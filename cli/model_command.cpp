// rsi model info|check|list: what a model declares, whether it runs, and how fast.
#include <iomanip>
#include <iostream>

#include "cli/command_context.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <unistd.h>
#include "src/model_catalog.hpp"
#include "src/model_check.hpp"

namespace rsi::cli {

namespace {

std::string gsd_text(const rsi::models::ModelMetadata& m) {
    if (!m.gsd_known) return "unknown (runs at the image's pixel size)";
    std::ostringstream out;
    out << m.gsd_m << " m";
    return out.str();
}

void print_metadata_text(const models::ModelMetadata& m, const std::string& path) {
    std::cout << "Model:       " << m.name << " " << m.version << " (" << path << ")\n"
              << "Task:        " << models::to_string(m.task) << "\n";
    if (!m.description.empty()) std::cout << "About:       " << m.description << "\n";
    std::cout << "Input:       " << m.bands << " bands";
    if (!m.band_names.empty()) {
        std::cout << " (";
        for (size_t i = 0; i < m.band_names.size(); ++i) std::cout << (i ? "," : "") << m.band_names[i];
        std::cout << ")";
    }
    std::cout << ", source bands ";
    for (size_t i = 0; i < m.source_bands.size(); ++i) std::cout << (i ? "," : "") << m.source_bands[i];
    if (m.source_band_count > 0) std::cout << " of " << m.source_band_count;
    std::cout << ", range [" << m.data_range[0] << ", " << m.data_range[1] << "] x " << m.scale << "\n"
              << "Tiles:       " << m.tile_size << " px, overlap " << m.overlap << ", halo " << m.halo
              << ", output stride " << m.output_stride << ", multiple of " << m.multiple_of << "\n"
              << "GSD:         " << gsd_text(m) << "\n"
              << "Output:      " << m.output << (m.output == "logits" ? " (" + m.output_activation + ")" : "") << "\n"
              << "Classes:     " << m.classes.size() << "\n";
    for (const auto& c : m.classes) {
        std::cout << "  " << std::setw(3) << c.id << " " << c.name << "  rgb(" << int(c.color[0]) << ","
                  << int(c.color[1]) << "," << int(c.color[2]) << ")";
        for (const auto& p : c.parents) std::cout << " < " << p;
        std::cout << "\n";
    }
    std::cout << "Licence:     " << m.license << "\n";
    if (m.provenance.contains("command")) std::cout << "Trained by:  " << m.provenance["command"].get<std::string>() << "\n";
    std::cout << "Weights:     sha256 " << m.weights_sha256 << "\n";
}

}  // namespace

void register_model_command(CLI::App& app, CommandContext& context) {
    CLI::App* model = app.add_subcommand("model", "Inspect, check and list models");
    model->require_subcommand(1);
    model->footer(
        "Examples:\n"
        "  rsi model list\n"
        "  rsi model info buildings --json\n"
        "  rsi model check eurosat13 --batch 32 --iterations 5\n"
        "  rsi model quantize buildings -o buildings-int8.pt");

    // rsi model info
    {
        struct Options {
            ModelCliOptions model;
        };
        auto o = std::make_shared<Options>();
        CLI::App* sub = model->add_subcommand("info", "Print a model's metadata");
        sub->add_option("MODEL", o->model.model, "Model file or bundled model name")->required();
        add_model_options(*sub, o->model, false);
        add_common_options(*sub, context.common);
        sub->footer("Example:\n  rsi model info buildings --json");
        context.on_run(sub, [o, &context] {
            const std::string path = resolve_model(o->model.model, bundled_models_dir());
            const auto options = o->model.to_model_options();
            auto packaged = read_packaged_metadata(path);
            models::ModelMetadata m = packaged ? (options.overrides.empty() ? *packaged
                                                                           : models::apply_overrides(*packaged, options.overrides, path))
                                               : models::metadata_from_overrides(options.overrides, path);
            if (context.common.json) {
                nlohmann::json j = m.to_json();
                j["path"] = path;
                print_json(j);
            } else {
                print_metadata_text(m, path);
            }
            return 0;
        });
    }

    // rsi model check
    {
        struct Options {
            ModelCliOptions model;
            int64_t tile_size = 0, batch = 0;
            int iterations = 5, runners = 1;
            bool no_eager = false;
            std::string tiles_from;
        };
        auto o = std::make_shared<Options>();
        CLI::App* sub = model->add_subcommand("check", "Run batches (synthetic, or cut from an image): shapes, golden values, speed");
        sub->add_option("MODEL", o->model.model, "Model file or bundled model name")->required();
        add_model_options(*sub, o->model, false);
        sub->add_option("--tile-size", o->tile_size, "Tile size (default: the model's)")->check(CLI::Range(1, 65536));
        sub->add_option("--batch", o->batch, "Batch size (default: from --ram)")->check(CLI::Range(1, 65536));
        sub->add_option("--iterations", o->iterations, "Timed batches")->capture_default_str()->check(CLI::Range(1, 1000000));
        sub->add_flag("--no-eager", o->no_eager, "Skip timing the unoptimised model");
        sub->add_option("--runners", o->runners,
                        "Also time this many threads running batches side by side, sharing --threads (as rsi scene --runners)")
            ->capture_default_str()
            ->check(CLI::Range(1, 256));
        sub->add_option("--tiles-from", o->tiles_from,
                        "Time tiles cut from this image (bands, pixel size and normalisation as the pipelines map them) "
                        "instead of the synthetic ramp; some models' speed depends on the values");
        add_common_options(*sub, context.common);
        sub->footer("Example:\n  rsi model check buildings --tile-size 512 --batch 4 --iterations 10");
        context.on_run(sub, [o, &context] {
            ModelCheckOptions c;
            c.model_path = resolve_model(o->model.model, bundled_models_dir());
            c.model = o->model.to_model_options();
            c.tile_size = o->tile_size;
            c.batch = o->batch;
            c.iterations = o->iterations;
            c.compare_eager = !o->no_eager;
            c.tiles_from = o->tiles_from;
            c.runners = o->runners;
            c.memory_budget_mb = context.common.ram_mb / 2;
            ProgressBar bar(!context.common.quiet && !context.common.json);
            const ModelCheckResult r = check_model(c, context.progress(bar));
            bar.finish();
            const bool golden_ok = !r.golden_difference || *r.golden_difference < r.golden_tolerance;
            if (context.common.json) {
                print_json({{"model", r.metadata.name},
                            {"path", c.model_path},
                            {"task", models::to_string(r.metadata.task)},
                            {"device", r.device},
                            {"precision", r.precision},
                            {"tile_size", r.tile_size},
                            {"batch", r.batch},
                            {"output_shape", r.output_shape},
                            {"optimized", r.optimized},
                            {"graph", r.graph},
                            {"graph_detail", r.graph_detail},
                            {"alternative_graph", r.alternative_graph.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.alternative_graph)},
                            {"alternative_batch_ms", r.alternative_batch_ms > 0 ? nlohmann::json(r.alternative_batch_ms) : nlohmann::json(nullptr)},
                            {"optimized_batch_ms", r.optimized_batch_ms},
                            {"optimized_batch_ms_mean", r.optimized_batch_ms_mean},
                            {"eager_batch_ms", r.eager_batch_ms > 0 ? nlohmann::json(r.eager_batch_ms) : nlohmann::json(nullptr)},
                            {"speedup", r.eager_batch_ms > 0 ? nlohmann::json(r.eager_batch_ms / r.optimized_batch_ms) : nlohmann::json(nullptr)},
                            {"tiles_per_second", r.tiles_per_second},
                            {"runners", r.runners},
                            {"concurrent_tiles_per_second",
                             r.runners > 1 ? nlohmann::json(r.concurrent_tiles_per_second) : nlohmann::json(nullptr)},
                            {"timed_input", r.timed_input},
                            {"memory_fixed_mb", r.memory.fixed_bytes / 1048576.0},
                            {"memory_per_tile_mb", r.memory.per_tile_bytes / 1048576.0},
                            {"golden_difference", r.golden_difference ? nlohmann::json(*r.golden_difference) : nlohmann::json(nullptr)},
                            {"golden_ok", golden_ok},
                            {"weights_hash_ok", r.weights_hash_matches ? nlohmann::json(*r.weights_hash_matches) : nlohmann::json(nullptr)}});
            } else {
                std::cout << std::setprecision(4) << r.metadata.name << " on " << r.device << " (" << r.precision << "): "
                          << "batch " << r.batch << " x " << r.metadata.bands << " x " << r.tile_size << " x "
                          << r.tile_size << " -> [";
                for (size_t i = 0; i < r.output_shape.size(); ++i) std::cout << (i ? "," : "") << r.output_shape[i];
                std::cout << "]\n"
                          << "optimised:   " << r.optimized_batch_ms << " ms/batch, " << r.tiles_per_second << " tiles/s"
                          << (r.optimized ? " (frozen, graph " + r.graph + (r.graph_detail.empty() ? "" : ": " + r.graph_detail) + ")"
                                       : std::string(" (not optimised)")) << "\n";
                if (r.alternative_batch_ms > 0) {
                    std::cout << "alternative: " << r.alternative_batch_ms << " ms/batch with graph " << r.alternative_graph << " ("
                              << r.alternative_batch_ms / r.optimized_batch_ms << "x the time; --cpu-graph or the model's cpu_graph field choose)\n";
                } else if (!r.alternative_error.empty()) {
                    std::cout << "alternative: graph " << r.alternative_graph << " failed: " << r.alternative_error << "\n";
                }
                if (r.runners > 1) {
                    std::cout << "runners:     " << r.runners << " side by side: " << r.concurrent_tiles_per_second << " tiles/s\n";
                }
                if (r.eager_batch_ms > 0) {
                    const double speedup = r.eager_batch_ms / r.optimized_batch_ms;
                    std::cout << "eager:       " << r.eager_batch_ms << " ms/batch (optimised is "
                              << (speedup >= 1 ? speedup : 1 / speedup) << (speedup >= 1 ? "x faster" : "x slower") << ")\n";
                }
                std::cout << "memory:      " << r.memory.fixed_bytes / 1048576.0 << " MB fixed + "
                          << r.memory.per_tile_bytes / 1048576.0 << " MB per tile\n"
                          << "golden:      "
                          << (r.golden_difference ? (golden_ok ? "ok" : "MISMATCH") + std::string(" (relative difference ") +
                                                        std::to_string(*r.golden_difference) + ")"
                                                  : std::string("no golden values in the metadata"))
                          << "\n"
                          << "weights:     "
                          << (!r.weights_hash_matches ? "no sha256 in the metadata"
                                                      : (*r.weights_hash_matches ? "sha256 matches the metadata"
                                                                                 : "sha256 DOES NOT MATCH the metadata"))
                          << "\n";
            }
            // A failed check says why on stderr too (scripts read stdout for the report or the JSON).
            if (!golden_ok) {
                std::cerr << "rsi model check: " << c.model_path << ": golden values differ from the metadata's (relative difference "
                          << *r.golden_difference << ", tolerance " << r.golden_tolerance << ")\n";
            }
            if (!r.weights_hash_matches.value_or(true)) {
                std::cerr << "rsi model check: " << c.model_path << ": the weights' sha256 does not match the metadata's\n";
            }
            return golden_ok && r.weights_hash_matches.value_or(true) ? 0 : 1;
        });
    }

    // rsi model list
    {
        CLI::App* sub = model->add_subcommand("list", "List the bundled models");
        add_common_options(*sub, context.common);
        sub->footer("Example:\n  rsi model list --json");
        context.on_run(sub, [&context] {
            std::vector<std::string> skipped;
            const auto entries = list_bundled_models(bundled_models_dir(), &skipped);
            warn_skipped_models(skipped, context.common.quiet);
            if (context.common.json) {
                nlohmann::json list = nlohmann::json::array();
                for (const auto& e : entries) {
                    list.push_back({{"name", e.name},
                                    {"path", e.path},
                                    {"task", models::to_string(e.metadata.task)},
                                    {"bands", e.metadata.bands},
                                    {"classes", e.metadata.classes.size()},
                                    {"tile_size", e.metadata.tile_size},
                                    {"gsd_m", e.metadata.gsd_m}});
                }
                print_json(list);
            } else {
                if (entries.empty()) std::cout << "no bundled models in " << bundled_models_dir() << "\n";
                size_t name_width = 15;  // a column as wide as the longest name, and one space
                for (const auto& e : entries) name_width = std::max(name_width, e.name.size());
                for (const auto& e : entries) {
                    std::cout << std::left << std::setw(static_cast<int>(name_width + 1)) << e.name << std::setw(14)
                              << models::to_string(e.metadata.task)
                              << e.metadata.bands << " bands, " << e.metadata.classes.size() << " classes, "
                              << e.metadata.tile_size << " px tiles, " << e.metadata.gsd_m << " m  " << e.path << "\n";
                }
            }
            return 0;
        });
    }

    // rsi model convert: the Python converter of official RSP/RVSA checkpoints (models/python/rsi_convert.py).
    {
        auto args = std::make_shared<std::vector<std::string>>();
        CLI::App* sub = model->add_subcommand("convert", "Convert an official RSP/RVSA checkpoint into an rsi model (runs rsi_convert.py)");
        sub->prefix_command();  // everything after `convert` goes to the converter unchanged
        sub->footer(
            "Arguments are those of rsi_convert.py (--help lists them). Runs /usr/bin/python3 (Debian's python3-torch);\n"
            "RSI_CONVERT_SCRIPT overrides the script path.\nExample:\n"
            "  rsi model convert --arch rsp-resnet50 --task scene --checkpoint rsp-resnet-50-ckpt.pth -o rsp-r50.pt");
        context.on_run(sub, [sub]() -> int {
            const char* env = std::getenv("RSI_CONVERT_SCRIPT");
            const std::string script = env && *env ? env : RSI_CONVERT_SCRIPT;
            std::vector<std::string> argv_strings{"/usr/bin/python3", script};
            for (const auto& a : sub->remaining()) argv_strings.push_back(a);
            std::vector<char*> argv;
            for (auto& a : argv_strings) argv.push_back(a.data());
            argv.push_back(nullptr);
            std::cout.flush();
            ::execv(argv[0], argv.data());
            throw Error("model convert: cannot run /usr/bin/python3 " + script + ": " + std::strerror(errno));
        });
    }

    // rsi model quantize: int8 static quantization (models/python/rsi_quantize.py, next to rsi_convert.py).
    {
        struct Options {
            std::string model, out, engine = "onednn", method = "auto", data_root;
            std::vector<std::string> calibration;
            int tiles = 0;
            bool overwrite = false;
        };
        auto o = std::make_shared<Options>();
        CLI::App* sub = model->add_subcommand("quantize", "int8 static quantization for the CPU, calibrated on real tiles (runs rsi_quantize.py)");
        sub->add_option("MODEL", o->model, "Model file or bundled model name (fp32)")->required();
        sub->add_option("-o,--output", o->out, "Output model file (.pt)")->required();
        sub->add_option("--calibration", o->calibration,
                        "Calibration images or folders (default: inria/train for segmentation, EuroSAT training "
                        "patches for scene models, from ../shared/data or RSI_DATA_ROOT)");
        sub->add_option("--tiles", o->tiles, "Calibration tiles spread over the files (default 16 segmentation, 50 scene)")
            ->check(CLI::Range(1, 100000));
        sub->add_option("--engine", o->engine, "Quantized engine the model is prepared for")
            ->check(CLI::IsMember({"onednn", "qnnpack"}))
            ->capture_default_str();
        sub->add_option("--method", o->method, "fx (rebuild the rsi_models architecture), jit (TorchScript graph mode), auto")
            ->check(CLI::IsMember({"auto", "fx", "jit"}))
            ->capture_default_str();
        sub->add_option("--data-root", o->data_root, "Shared data folder for the default calibration tiles");
        sub->add_flag("--overwrite", o->overwrite, "Replace an existing output");
        add_common_options(*sub, context.common);
        sub->footer(
            "Runs /usr/bin/python3 (Debian's python3-torch); RSI_QUANTIZE_SCRIPT overrides the script path.\n"
            "Example:\n  rsi model quantize buildings -o buildings-int8.pt --tiles 16 --engine onednn");
        context.on_run(sub, [o, &context]() -> int {
            const std::string path = resolve_model(o->model, bundled_models_dir());
            // Checked here too so the usual one-line error and exit code come before Python starts.
            if (std::filesystem::exists(o->out) && !o->overwrite) {
                throw usage_error(o->out + " exists (use --overwrite)");
            }
            const char* env = std::getenv("RSI_QUANTIZE_SCRIPT");
            const std::string script =
                env && *env ? env : (std::filesystem::path(RSI_CONVERT_SCRIPT).parent_path() / "rsi_quantize.py").string();
            std::vector<std::string> argv_strings{"/usr/bin/python3", script, path, "-o", o->out, "--engine", o->engine,
                                                  "--method", o->method};
            if (!o->calibration.empty()) {
                argv_strings.push_back("--calibration");
                for (const auto& c : o->calibration) argv_strings.push_back(c);
            }
            if (o->tiles > 0) argv_strings.insert(argv_strings.end(), {"--tiles", std::to_string(o->tiles)});
            if (!o->data_root.empty()) argv_strings.insert(argv_strings.end(), {"--data-root", o->data_root});
            if (context.common.threads > 0) argv_strings.insert(argv_strings.end(), {"--threads", std::to_string(context.common.threads)});
            if (o->overwrite) argv_strings.push_back("--overwrite");
            if (context.common.json) argv_strings.push_back("--json");
            else if (context.common.quiet) argv_strings.push_back("--quiet");
            // The script reads its calibration tiles with GDAL's Python bindings, which take
            // configuration options from the environment: --config reaches them there, and --ram
            // caps their block cache at a quarter of the budget, as in the other commands.
            bool cache_given = false;
            for (const auto& [key, value] : context.common.config) {
                ::setenv(key.c_str(), value.c_str(), 1);
                cache_given = cache_given || key == "GDAL_CACHEMAX";
            }
            if (!cache_given) ::setenv("GDAL_CACHEMAX", std::to_string(std::max<int64_t>(context.common.ram_mb / 4, 1)).c_str(), 1);
            std::vector<char*> argv;
            for (auto& a : argv_strings) argv.push_back(a.data());
            argv.push_back(nullptr);
            std::cout.flush();
            ::execv(argv[0], argv.data());
            throw Error("model quantize: cannot run /usr/bin/python3 " + script + ": " + std::strerror(errno));
        });
    }
}

}  // namespace rsi::cli
