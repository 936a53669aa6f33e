// rsi scene IMAGE -o scene.tif: a scene-class map from window-by-window classification.
#include <chrono>
#include <filesystem>
#include <iostream>

#include "cli/command_context.hpp"
#include "models/memory_probe.hpp"
#include "src/model_catalog.hpp"
#include "src/output_file.hpp"
#include "src/preview.hpp"
#include "src/raster_writer.hpp"
#include "src/run_manifest.hpp"
#include "src/scene_map.hpp"
#include "src/vector_output.hpp"
#include "tiling/band_list.hpp"
#include "tiling/raster_source.hpp"

namespace rsi::cli {

namespace {

struct SceneCli {
    std::string preview, image, output, edge = "constant", bands, tta = "none", probabilities, dense, csv, vector, format = "GTiff";
    ModelCliOptions model;
    int64_t window = 0, stride = 0, batch = 0;
    double max_nodata = 0.5;
    bool no_resample = false, overwrite = false, strict = false, resume = false, no_manifest = false;
    int level = 0, top_k = 3, shard_count = 0, runners = 0;
    std::string shard, parts_dir;
    std::vector<std::string> creation_options;
};

// The options as asked that decide the outputs' bytes (the manifest's "asked"): --resume skips a
// finished map only when its manifest shows the same input, model and these.
nlohmann::json asked_options(const SceneCli& o) {
    return {{"window", o.window}, {"stride", o.stride}, {"edge", o.edge}, {"max_nodata", o.max_nodata}, {"resample", !o.no_resample},
            {"bands", o.bands}, {"level", o.level}, {"tta", o.tta}, {"precision", o.model.precision}, {"top_k", o.top_k},
            {"probabilities", !o.probabilities.empty()}, {"dense", !o.dense.empty()}, {"csv", !o.csv.empty()},
            {"vector", o.vector.empty() ? "" : std::filesystem::path(o.vector).extension().string()}, {"preview", !o.preview.empty()},
            {"format", o.format}, {"creation_options", o.creation_options},
            {"model_overrides", {{"task", o.model.task}, {"classes", o.model.classes}, {"mean", o.model.mean}, {"std", o.model.std},
                                 {"model_bands", o.model.model_bands}, {"model_tile_size", o.model.model_tile_size},
                                 {"input_scale", o.model.input_scale}, {"gsd", o.model.gsd}}}};
}

}  // namespace

void register_scene_command(CLI::App& app, CommandContext& context) {
    using Options = SceneCli;
    auto o = std::make_shared<Options>();
    CLI::App* sub = app.add_subcommand("scene", "Scene-class map from window-by-window classification");
    sub->add_option("IMAGE", o->image, "Input raster")->required();
    sub->add_option("-o,--output", o->output, "Class map (one pixel per window position)")->required();
    add_model_options(*sub, o->model, true);
    sub->add_option("--window", o->window, "Window in model pixels (default: the model's tile size)")->check(CLI::Range(1, 65536));
    sub->add_option("--stride", o->stride, "Stride in model pixels (default: the window; smaller overlaps)")->check(CLI::Range(1, 65536));
    sub->add_option("--edge", o->edge, "Edge policy for windows beyond the image: constant or reflect")
        ->check(CLI::IsMember({"constant", "reflect"}))
        ->capture_default_str();
    sub->add_option("--max-nodata", o->max_nodata, "Skip windows with a larger nodata fraction")->capture_default_str()->check(finite_range(0.0, 1.0));
    sub->add_flag("--no-resample", o->no_resample, "Keep native pixels instead of matching the model's pixel size");
    sub->add_option("--bands", o->bands, "Source bands for the model's channels (default: from the model)");
    sub->add_option("--level", o->level, "Hierarchy level to map (1 = coarsest; default: leaf classes)")->check(CLI::Range(1, 64));
    sub->add_option("--tta", o->tta, "Test-time augmentation: none, flip or d4")->capture_default_str();
    sub->add_option("--batch", o->batch, "Windows per batch (default: from --ram)")->check(CLI::Range(1, 65536));
    sub->add_option("--runners", o->runners,
                    "Threads running batches side by side, sharing --threads (default 0: one per thread up to 4 on a CPU)")
        ->check(CLI::Range(0, 256));
    sub->add_option("--probabilities", o->probabilities, "Float32 raster: one band per class plus entropy");
    sub->add_option("--dense", o->dense, "The class map resampled to the image grid");
    sub->add_option("--csv", o->csv, "CSV: window id, pixel window, centre, top-k classes and scores");
    sub->add_option("--vector", o->vector, "Vector grid of lattice cells (.gpkg, .geojson, .fgb, .shp)");
    sub->add_option("--preview", o->preview, "A downsampled PNG of the image with the classes and a legend");
    sub->add_option("--top-k", o->top_k, "Classes and scores per window in the CSV and vector grid")->capture_default_str()->check(CLI::Range(1, 256));
    sub->add_option("--of", o->format, "Raster format: GTiff or COG")->capture_default_str()->transform(CLI::IsMember({"GTiff", "COG"}, CLI::ignore_case));
    add_creation_options(*sub, o->creation_options);
    sub->add_flag("--overwrite", o->overwrite, "Replace existing outputs");
    sub->add_flag("--strict", o->strict, "Treat domain warnings as errors");
    sub->add_flag("--no-manifest", o->no_manifest, "Do not write the run manifest beside the output");
    sub->add_flag("--resume", o->resume, "Journal finished lattice rows (in OUTPUT.parts) and continue an interrupted run")
        ->group("Scale-out");
    add_shard_options(*sub, o->shard, o->shard_count);
    sub->add_option("--parts-dir", o->parts_dir, "Parts folder of a resumable or sharded run (default: OUTPUT.parts)")->group("Scale-out");
    add_common_options(*sub, context.common);
    sub->footer(
        "Example:\n"
        "  rsi scene ../shared/data/naip/m_4709963_se_14_1_20190904.tif -o scene.tif --stride 32 --csv scene.csv --vector scene.gpkg \\\n"
        "      --probabilities scene_p.tif --dense scene_dense.tif\n"
        "Sharded (4 SLURM array tasks, then one merge):\n"
        "  sbatch --array=0-3 --wrap 'rsi scene big.tif -o scene.tif --csv scene.csv'   # K/N from SLURM_ARRAY_TASK_ID\n"
        "  rsi merge scene.tif.parts");
    context.on_run(sub, [o, &context] {
        SceneOptions s;
        s.input = o->image;
        s.output = o->output;
        s.window = o->window;
        s.stride = o->stride;
        s.edge = parse_edge_policy(o->edge);
        s.max_nodata = o->max_nodata;
        s.resample = !o->no_resample;
        if (!o->bands.empty()) s.bands = parse_band_list(o->bands);
        s.level = o->level;
        s.tta = parse_tta(o->tta);
        s.batch = o->batch;
        s.model_runners = o->runners;
        s.probabilities = o->probabilities;
        s.dense = o->dense;
        s.csv = o->csv;
        s.vector = o->vector;
        s.top_k = o->top_k;
        s.format = o->format;
        check_creation_options(o->format, o->creation_options);
        check_raster_output_name(o->output, o->format, "-o");
        check_raster_output_name(o->probabilities, o->format, "--probabilities");
        check_raster_output_name(o->dense, o->format, "--dense");
        s.creation_options = o->creation_options;
        s.overwrite = o->overwrite;
        s.strict = o->strict;
        s.memory_budget_mb = context.common.ram_mb * 3 / 4;
        s.resume = o->resume;
        s.parts_dir = o->parts_dir;
        std::string shard_source;
        s.shard = resolve_shard(o->shard, o->shard_count, shard_source);
        if (s.shard && !o->preview.empty()) throw usage_error("--preview: one shard has no scene map to draw; the map exists after `rsi merge`");
        // Outputs are renamed into place only when complete: with --resume an existing map is finished
        // work when its manifest shows this input, model and options (checked once the model is known),
        // and the run ends with 0, as segment's does, not with "already exists".
        const bool done_before = o->resume && !s.shard && !o->overwrite && std::filesystem::exists(o->output);
        if (!s.shard && !done_before) {
            // Every output is checked before the model runs, the preview and manifest too; the map
            // itself first, so that an error names it rather than its manifest.
            for (const std::string* path : {&o->output, &o->probabilities, &o->dense, &o->csv}) {
                if (!path->empty()) check_output_file(*path, o->overwrite);
            }
            if (!o->vector.empty()) check_vector_output(o->vector, o->overwrite);  // a shapefile's files too
            if (!o->preview.empty()) {
                check_preview_name(o->preview);
                check_output_file(o->preview, o->overwrite);
            }
            if (!o->no_manifest) check_output_file(o->output + ".manifest.json", o->overwrite);  // an output too
            check_distinct_outputs({o->output, o->probabilities, o->dense, o->csv, o->vector, o->preview,
                                    o->no_manifest ? "" : o->output + ".manifest.json"},
                                   {o->image});
        }
        std::string model_path;
        if (!o->model.model.empty()) {
            model_path = resolve_model(o->model.model, bundled_models_dir());
        } else {
            const RasterSource image = RasterSource::open(o->image);
            std::vector<std::string> skipped;
            model_path = pick_bundled_model(models::Task::scene, image.info(), s.bands, bundled_models_dir(), &skipped).path;
            warn_skipped_models(skipped, context.common.quiet);
        }
        const models::Model model = models::Model::load(model_path, o->model.to_model_options());
        if (done_before) {
            if (const std::string why = why_not_finished(o->output, o->image, model.metadata().weights_sha256, asked_options(*o)); !why.empty()) {
                throw usage_error(o->output + ": exists, but " + why + " (--resume skips only this job's finished outputs; "
                                  "use --overwrite to make it again)");
            }
            if (context.common.json) {
                print_json({{"input", o->image}, {"output", o->output}, {"skipped", "done before (--resume)"}});
            } else if (!context.common.quiet) {
                std::cerr << "rsi scene: " << o->output << " is done, skipped (--resume)\n";
            }
            return 0;
        }
        const std::string cache_warning = cap_block_cache_for_strips(context.common, "scene", o->image);
        // The manifest and the preview are made once the map is complete, under temporary names, before
        // any output of the run is renamed into place; they are renamed right after the map's own: a
        // failure while writing them (a full disk, a file another run wrote meanwhile) leaves no output.
        std::unique_ptr<PendingOutput> pending_manifest, pending_preview;
        const auto started = std::chrono::steady_clock::now();
        if (!s.shard) {
            s.before_commit = [&](const std::string& class_map, const SceneResult& so_far) {
                if (!o->no_manifest) {
                    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
                    const int64_t window = o->window > 0 ? o->window : model.metadata().tile_size;
                    nlohmann::json outputs = nlohmann::json::array();
                    for (const std::string* path : {&o->output, &o->probabilities, &o->dense, &o->csv, &o->vector, &o->preview}) {
                        if (!path->empty()) outputs.push_back(file_name_only(*path));
                    }
                    nlohmann::json manifest{{"command", "scene"},
                                            {"input", file_name_only(o->image)},
                                            {"input_fingerprint", file_fingerprint(o->image)},
                                            {"outputs", outputs},
                                            {"model", {{"name", model.metadata().name}, {"version", model.metadata().version},
                                                       {"file", file_name_only(model_path)},
                                                       {"weights_sha256", model.metadata().weights_sha256}}},
                                            // the window and stride used, in model pixels (0 asked: the model's tile, the window)
                                            {"options", {{"window", window}, {"stride", o->stride > 0 ? o->stride : window},
                                                         {"edge", o->edge}, {"resample", !o->no_resample},
                                                         {"level", o->level > 0 ? nlohmann::json(o->level) : nlohmann::json("leaf classes")},
                                                         {"tta", o->tta}, {"bands", so_far.source_bands}, {"band_rescale", so_far.band_rescale},
                                                         {"bands_asked", o->bands.empty() ? nlohmann::json("model") : nlohmann::json(o->bands)},
                                                         {"max_nodata", o->max_nodata}, {"top_k", o->top_k}, {"batch", so_far.batch},
                                                         {"device", o->model.device}, {"precision", o->model.precision},
                                                         {"format", o->format}, {"creation_options", o->creation_options}}},
                                            {"asked", asked_options(*o)},
                                            {"window_pixels", so_far.window_pixels},
                                            {"stride_pixels", so_far.stride_pixels},
                                            {"window_pixels_y", so_far.window_pixels_y},
                                            {"stride_pixels_y", so_far.stride_pixels_y},
                                            {"timings", {{"seconds", seconds}}}};
                    pending_manifest = std::make_unique<PendingOutput>(prepare_run_manifest(o->output + ".manifest.json", manifest, o->overwrite));
                }
                if (!o->preview.empty()) {
                    pending_preview = std::make_unique<PendingOutput>(o->preview, o->overwrite);
                    PreviewOptions p;
                    p.image = o->image;
                    p.output = pending_preview->temporary_path();
                    p.overwrite = true;  // its own temporary name; the final path is checked below
                    p.rgb_bands = model_rgb_bands(model.metadata(), s.bands.empty() ? model.metadata().source_bands : s.bands);
                    write_class_preview(p, class_map, roll_up_classes(model.metadata(), o->level).classes);
                }
                // The last moment before the renames: a file another run wrote while these were made, or
                // a Ctrl-C meanwhile, stops the run with none of its outputs in place.
                if (pending_manifest) pending_manifest->check_final_path_free();
                if (pending_preview) pending_preview->check_final_path_free();
                if (interrupted()) throw Error("cancelled", ErrorKind::cancelled);
            };
        }
        ProgressBar bar(!context.common.quiet && !context.common.json);
        const SceneResult r = map_scenes(model, s, context.progress(bar));
        bar.finish();
        if (pending_manifest) pending_manifest->commit();
        if (pending_preview) pending_preview->commit();
        if (!context.common.quiet) {
            for (const auto& w : r.warnings) std::cerr << "rsi scene: warning: " << o->image << ": " << w << "\n";
        }
        if (!r.assembled) {  // one shard: parts only
            if (context.common.json) {
                print_json({{"input", o->image}, {"parts_dir", r.parts_dir}, {"shard", {s.shard->index, s.shard->count}},
                            {"strips", r.strips}, {"shard_strips", r.shard_strips}, {"strips_resumed", r.strips_resumed},
                            {"strips_run", r.strips_run}, {"seconds", r.seconds}});
            } else if (!context.common.quiet) {
                std::cout << o->image << ": shard " << s.shard->index << "/" << s.shard->count << " (" << shard_source << ") wrote "
                          << r.strips_run << " of its " << r.shard_strips << " lattice rows to " << r.parts_dir
                          << "; when every shard is done: rsi merge " << r.parts_dir << "\n";
            }
            return 0;
        }
        nlohmann::json histogram = nlohmann::json::object();
        for (const auto& c : r.classes) histogram[c.name] = {{"windows", c.windows}, {"km2", c.area_km2}};
        nlohmann::json summary{{"input", o->image},
                                     {"output", o->output},
                                     {"model", model.metadata().name},
                                     {"model_sha256", model.metadata().weights_sha256},
                                     {"windows", r.windows},
                                     {"windows_run", r.windows_run},
                                     {"windows_skipped", r.windows_skipped},
                                     {"lattice", {r.rows, r.cols}},
                                     {"window_pixels", r.window_pixels},
                                     {"stride_pixels", r.stride_pixels},
                                     {"window_pixels_y", r.window_pixels_y},
                                     {"stride_pixels_y", r.stride_pixels_y},
                                     {"image_pixels_per_model_pixel", r.scale},
                                     {"km2", r.km2},
                                     {"classes", histogram},
                                     {"batch", r.batch},
                                     {"seconds", r.seconds},
                                     {"model_seconds", r.model_seconds},
                                     {"model_runners", r.model_runners},
                                     {"windows_per_second", r.windows / std::max(1e-9, r.seconds)},
                                     {"peak_rss_mb", models::peak_resident_bytes() / 1048576.0},
                                     {"bands", r.source_bands},
                                     {"band_rescale", r.band_rescale},
                                     {"warnings", with_warning(cache_warning, r.warnings)}};
        if (o->resume) summary["resume"] = {{"strips", r.strips}, {"strips_resumed", r.strips_resumed}, {"strips_run", r.strips_run}};
        if (context.common.json) {
            print_json(summary);
        } else if (!context.common.quiet) {
            const auto pixels = [](int64_t x, int64_t y) { return x == y ? std::to_string(x) : std::to_string(x) + "x" + std::to_string(y); };
            std::cout << o->image << " -> " << o->output << ": " << r.rows << " x " << r.cols << " windows of "
                      << pixels(r.window_pixels, r.window_pixels_y) << " px (stride " << pixels(r.stride_pixels, r.stride_pixels_y)
                      << " px, " << r.windows_skipped
                      << " skipped) in " << format_duration(r.seconds) << "\n";
            for (const auto& c : r.classes) {
                if (c.windows) std::cout << "  " << c.name << ": " << c.windows << " windows, " << c.area_km2 << " km2\n";
            }
        }
        return 0;
    });
}

}  // namespace rsi::cli
