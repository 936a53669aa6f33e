#include "cli/segmentation_cli.hpp"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "models/memory_probe.hpp"
#include "src/csv_table.hpp"
#include "src/model_catalog.hpp"
#include "src/run_manifest.hpp"
#include "src/output_file.hpp"
#include "src/preview.hpp"
#include "src/raster_writer.hpp"
#include "src/segmentation.hpp"
#include "src/vectorize.hpp"
#include "tiling/band_list.hpp"
#include "tiling/error.hpp"
#include "tiling/raster_source.hpp"

namespace fs = std::filesystem;

namespace rsi::cli {

int64_t parse_tile_size(const std::string& text) {
    if (text.empty()) return 0;
    if (text == "auto") return kAutoTileSize;
    size_t used = 0;
    int64_t value = 0;
    try {
        value = std::stoll(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != text.size() || value <= 0) throw usage_error("--tile-size: expected a positive number of pixels or auto, got '" + text + "'");
    return value;
}

void add_segmentation_options(CLI::App& sub, SegmentationCli& o) {
    sub.add_option("IMAGE", o.inputs, "Input raster(s); several need --output-dir");
    sub.add_option("-o,--output", o.output, "Class mask to write (one input)");
    sub.add_option("--output-dir", o.output_dir, "Directory for the outputs of several inputs (names from the inputs)");
    sub.add_option("--from", o.from, "Read input paths from a file, one per line (- for stdin)");
    add_model_options(sub, o.model, true);
    sub.add_option("--tile-size", o.tile_size,
                   "Tile size in pixels, or auto: the largest the memory budget allows (fewer overlap pixels to compute; "
                   "resumable and sharded runs keep the model's). Default: the model's");
    sub.add_option("--overlap", o.overlap, "Overlap in pixels (default: the model's)")->check(CLI::Range(int64_t{0}, int64_t{1} << 20));  // as rsi tile / info
    sub.add_option("--edge", o.edge, "Edge policy: shift, reflect or constant (0 in model space)")->capture_default_str();
    sub.add_option("--blend", o.blend, "Blending: hann, gaussian, spline, linear, average or center")->capture_default_str();
    sub.add_option("--tta", o.tta, "Test-time augmentation: none, flip or d4")->capture_default_str();
    sub.add_option("--batch", o.batch, "Tiles per batch (default: from --ram)")->check(CLI::Range(1, 65536));
    sub.add_option("--runners", o.runners,
                   "Threads running batches side by side, sharing --threads (default 0: one per thread up to 4 on a CPU)")
        ->check(CLI::Range(0, 256));
    sub.add_option("--resample", o.resample, "auto: read at the model's pixel size when the image's differs; off: native pixels")
        ->capture_default_str();
    sub.add_option("--bands", o.bands, "Source bands for the model's channels, 1-based (default: from the model)");
    sub.add_option("--probabilities", o.probabilities, "Also write class probabilities to this raster (with --output-dir: <input>_probabilities.tif)");
    sub.add_option("--probability-format", o.probability_format, "float32 (0..1, nodata -1) or byte (0..254 for 0..1, nodata 255)")
        ->capture_default_str()
        ->each([&o](const std::string&) { o.probability_options_given.push_back("--probability-format"); });
    sub.add_flag("--uncertainty", o.uncertainty, "Add a normalised entropy band to the probability raster");
    sub.add_option("--min-confidence", o.min_confidence, "Pixels whose winning probability is lower become class 0")->check(finite_range(0.0, 1.0));
    sub.add_option("--of", o.format, "Raster format: GTiff or COG")->capture_default_str()->transform(CLI::IsMember({"GTiff", "COG"}, CLI::ignore_case));
    add_creation_options(sub, o.creation_options);
    sub.add_flag("--overwrite", o.overwrite, "Replace existing outputs");
    sub.add_flag("--strict", o.strict, "Treat domain warnings (pixel size, bands, radiometry) as errors");
    sub.add_flag("--keep-going", o.keep_going, "With several inputs: continue past a failing one, report all at the end");
    sub.add_flag("--no-manifest", o.no_manifest, "Do not write the run manifest beside the output");
    sub.add_option("--preview", o.preview, "A downsampled PNG of the image with the result outlined (with --output-dir: <input>_preview.png)");
    sub.add_flag("--resume", o.resume,
                 "Journal finished strips (in OUTPUT.parts) and continue an interrupted run; with several inputs, skip finished ones")
        ->group("Scale-out");
    add_shard_options(sub, o.shard, o.shard_count);
    sub.add_option("--parts-dir", o.parts_dir, "Parts folder of a resumable or sharded run (default: OUTPUT.parts)")->group("Scale-out");
    sub.add_option("--vector", o.vector, "Also write footprint polygons (.gpkg, .geojson, .fgb, .shp; with --output-dir: <input>.EXT)")->group("Polygons");
    sub.add_option("--min-area", o.min_area, "Drop polygons smaller than this many square metres")->group("Polygons")->check(finite_range(0.0, 1e12));
    sub.add_option("--simplify", o.simplify, "Simplification tolerance, metres (outlines stay valid and do not overlap their neighbours)")->group("Polygons")->check(finite_range(0.0, 1e6));
    sub.add_flag("--regularize", o.regularize, "Orthogonal building outlines")->group("Polygons");
    sub.add_flag("--keep-crs", o.keep_crs, "GeoJSON: keep the image CRS instead of WGS84")->group("Polygons");
}

namespace {

std::vector<std::string> collect_inputs(const SegmentationCli& o) {
    std::vector<std::string> inputs = o.inputs;
    if (!o.from.empty()) {
        std::ifstream file;
        std::istream* in = &std::cin;
        if (o.from != "-") {
            std::error_code ec;
            if (std::filesystem::is_directory(o.from, ec)) throw Error(o.from + ": is a folder, not a list of input paths (--from)");
            file.open(o.from);
            if (!file) throw Error(o.from + ": cannot read the input list");
            in = &file;
        }
        bool first_line = true;
        for (std::string line; std::getline(*in, line); first_line = false) {
            if (first_line) strip_utf8_bom(line);  // a list saved by Notepad
            const auto first = line.find_first_not_of(" \t\r");
            if (first == std::string::npos || line[first] == '#') continue;
            line = line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
            inputs.push_back(line);
        }
        // Ctrl-C while the list is read ends the read (EINTR) with part of it: not a list to run
        if (interrupted()) throw Error(o.from + ": interrupted while reading the input list", ErrorKind::cancelled);
    }
    if (inputs.empty()) throw usage_error("no input image (give IMAGE or --from)");
    if (inputs.size() > 1 && o.output_dir.empty()) throw usage_error("several inputs need --output-dir");
    if (!o.preview.empty() && o.output_dir.empty()) check_preview_name(o.preview);
    check_creation_options(o.format, o.creation_options);
    check_raster_output_name(o.output, o.format, "-o");
    if (o.output_dir.empty()) check_raster_output_name(o.probabilities, o.format, "--probabilities");
    if (inputs.size() == 1 && o.output.empty() && o.output_dir.empty()) throw usage_error("give -o OUTPUT (or --output-dir)");
    if (!o.output.empty() && !o.output_dir.empty()) throw usage_error("give either -o or --output-dir, not both");
    return inputs;
}

std::string derived(const std::string& dir, const std::string& input, const std::string& suffix) {
    // lexically normal: "--output-dir ." names "a.tif", not "./a.tif"
    return (fs::path(dir) / (fs::path(input).stem().string() + suffix)).lexically_normal().string();
}

// The polygon format --vector names: its extension, or the name itself when it is only one
// (".geojson", a natural way to ask for the format with --output-dir, has no extension to std::filesystem).
std::string vector_extension(const std::string& name) {
    const std::string file = fs::path(name).filename().string();
    if (file.size() > 1 && file[0] == '.' && file.find('.', 1) == std::string::npos) return file;
    // The format's name alone ("--vector gpkg"), as the help's <input>.EXT suggests.
    for (const char* known : {"gpkg", "geojson", "json", "fgb", "shp"}) {
        if (name == known) return std::string(".") + known;
    }
    return fs::path(name).extension().string();
}

// The files one input writes: as given (-o), or named after the input in --output-dir; empty where
// not asked for.
struct ImageOutputs {
    std::string mask, probabilities, vector, preview;
};
ImageOutputs image_outputs(const SegmentationCli& o, const std::string& input) {
    if (o.output_dir.empty()) return {o.output, o.probabilities, o.vector, o.preview};
    ImageOutputs out{derived(o.output_dir, input, ".tif"), "", "", ""};
    if (!o.probabilities.empty()) out.probabilities = derived(o.output_dir, input, "_probabilities.tif");
    if (!o.vector.empty()) out.vector = derived(o.output_dir, input, vector_extension(o.vector));
    if (!o.preview.empty()) out.preview = derived(o.output_dir, input, "_preview.png");
    return out;
}

// The options as asked that decide an output's bytes (the manifest's "asked"): a multi-input
// --resume skips a finished output only when its manifest shows the same input, model and these.
nlohmann::json asked_options(const SegmentationCli& o) {
    return {{"tile_size", o.tile_size.empty() ? "model" : o.tile_size}, {"overlap", o.overlap}, {"edge", o.edge},
            {"blend", o.blend}, {"tta", o.tta}, {"bands", o.bands}, {"resample", o.resample}, {"precision", o.model.precision},
            {"min_confidence", o.min_confidence}, {"probabilities", !o.probabilities.empty()},
            {"probability_format", o.probability_format}, {"probability_class", o.probability_class},
            {"uncertainty", o.uncertainty}, {"vector", vector_extension(o.vector)}, {"min_area_m2", o.min_area},
            {"simplify_m", o.simplify}, {"regularize", o.regularize}, {"keep_crs", o.keep_crs}, {"format", o.format},
            {"creation_options", o.creation_options},
            // Metadata given on the command line changes what the model is fed (a resume with other
            // overrides is other work, not finished work).
            {"model_overrides", {{"task", o.model.task}, {"classes", o.model.classes}, {"mean", o.model.mean}, {"std", o.model.std},
                                 {"model_bands", o.model.model_bands}, {"model_tile_size", o.model.model_tile_size},
                                 {"input_scale", o.model.input_scale}, {"gsd", o.model.gsd}}}};
}

}  // namespace

int run_segmentation(const SegmentationCli& o, CommandContext& context, const std::string& command) {
    std::vector<std::string> inputs = collect_inputs(o);
    std::string shard_source;
    const std::optional<ShardSpec> shard = resolve_shard(o.shard, o.shard_count, shard_source);
    if (shard && inputs.size() > 1) {
        // A list of rasters: this shard takes a deterministic subset, balanced by pixel count.
        std::vector<int64_t> pixels;
        for (const auto& input : inputs) {
            const RasterInfo info = RasterSource::open(input).info();
            pixels.push_back(info.width * info.height);
        }
        std::vector<std::string> mine;
        for (size_t i : shard_items(pixels, *shard)) mine.push_back(inputs[i]);
        if (!context.common.quiet) {
            std::cerr << "rsi " << command << ": shard " << shard->index << "/" << shard->count << " (" << shard_source << "): "
                      << mine.size() << " of " << inputs.size() << " inputs\n";
        }
        inputs = mine;
        if (inputs.empty()) {
            if (context.common.json) print_json({{"images", nlohmann::json::array()}, {"failed", nlohmann::json::array()}});
            return 0;
        }
    }
    const bool shard_one_image = shard && o.output_dir.empty();
    if (shard_one_image && !o.vector.empty()) {
        throw usage_error("--vector of a sharded image is made by `rsi merge` once every shard is done: give it there "
                          "(rsi merge " + (o.parts_dir.empty() ? o.output + ".parts" : o.parts_dir) + " --vector ...)");
    }
    if (shard_one_image && !o.preview.empty()) {
        throw usage_error("--preview: one shard has no map to draw, and `rsi merge` draws none; run without --shard for a preview");
    }
    // Polygon options shape --vector's polygons: without it they would be dropped silently (a shard's
    // job did not even record them for the merge).
    if (o.vector.empty() && (o.min_area > 0 || o.simplify > 0 || o.regularize || o.keep_crs)) {
        throw usage_error(std::string("--min-area, --simplify, --regularize and --keep-crs shape the polygons of --vector; give --vector") +
                          (shard_one_image ? " (a sharded image gets its polygons from `rsi merge`: give them there)" : ""));
    }
    if (!o.parts_dir.empty() && inputs.size() > 1) throw usage_error("--parts-dir applies to one input");
    if (o.uncertainty && o.probabilities.empty()) {
        throw usage_error("--uncertainty adds a band to the probability raster: give --probabilities too");
    }
    if (!o.probability_options_given.empty() && o.probabilities.empty()) {  // they were ignored without a word
        throw usage_error(o.probability_options_given.front() + " shapes the probability raster: give --probabilities too");
    }
    if (!o.output_dir.empty() && !context.common.quiet) {
        // --output-dir names every output after its input, so a name given to --probabilities or
        // --preview only switches that output on (and --vector's only gives the format): say so
        // rather than write somewhere the user did not ask without a word.
        const ImageOutputs named = image_outputs(o, inputs.front());
        const auto note_unused_name = [&](const char* option, const std::string& given, const std::string& written,
                                          const char* written_as) {
            if (given.empty() || fs::path(given).filename() == fs::path(written).filename()) return;
            std::cerr << "rsi " << command << ": warning: " << option << " " << given << ": with --output-dir each input writes "
                      << written_as << " there (" << written << (inputs.size() > 1 ? ", ..." : "") << ")\n";
        };
        note_unused_name("--probabilities", o.probabilities, named.probabilities, "<input>_probabilities.tif");
        note_unused_name("--preview", o.preview, named.preview, "<input>_preview.png");
        const std::string given = fs::path(o.vector).filename().string();
        const bool format_only = vector_extension(o.vector) == given || vector_extension(o.vector) == "." + given;  // ".geojson", "gpkg"
        if (!format_only) note_unused_name("--vector", o.vector, named.vector, "<input> with this extension");
    }
    if (!o.output_dir.empty() && inputs.size() > 1) {
        // --output-dir names outputs after each input's file name: two inputs of one name (in other
        // folders, or a.tif and a.png) would write the same files, the second replacing (or, resumed,
        // skipping) the first. Refused before any work.
        std::map<fs::path, std::string> writer_of;
        for (const std::string& input : inputs) {
            const ImageOutputs outputs = image_outputs(o, input);
            for (const std::string& output : {outputs.mask, outputs.probabilities, outputs.vector, outputs.preview}) {
                if (output.empty()) continue;
                const auto [it, fresh] = writer_of.emplace(path_identity(output), input);
                if (!fresh && it->second != input) {
                    throw usage_error(input + " and " + it->second + " would both write " + output +
                                      " (--output-dir names outputs after the input's file name); rename one or run them apart");
                }
            }
        }
    }
    // A folder this run makes is removed again if the run ends without writing into it (refused,
    // interrupted, every image failed): fs::remove leaves a folder with files alone.
    struct RemoveIfLeftEmpty {
        std::string path;
        ~RemoveIfLeftEmpty() {
            std::error_code ec;
            if (!path.empty()) fs::remove(path, ec);
        }
    } made_output_dir;
    if (!o.output_dir.empty()) {
        std::error_code ec;
        const bool existed = fs::exists(o.output_dir, ec);
        fs::create_directories(o.output_dir, ec);
        if (ec) throw Error(o.output_dir + ": cannot create the output directory: " + ec.message());
        if (!existed) made_output_dir.path = o.output_dir;
    }
    SegmentOptions base;
    base.tile_size = parse_tile_size(o.tile_size);
    base.overlap = o.overlap;
    base.edge = parse_edge_policy(o.edge);
    base.blend = parse_blend_kind(o.blend);
    base.tta = parse_tta(o.tta);
    base.batch = o.batch;
    base.model_runners = o.runners;
    if (!o.bands.empty()) base.bands = parse_band_list(o.bands);
    base.probability_format = parse_probability_format(o.probability_format);
    base.probability_class = o.probability_class;
    base.uncertainty = o.uncertainty;
    base.min_confidence = o.min_confidence;
    base.format = o.format;
    base.creation_options = o.creation_options;
    base.overwrite = o.overwrite;
    base.strict = o.strict;
    if (o.resample != "auto" && o.resample != "off") throw usage_error("--resample: expected auto or off, got '" + o.resample + "'");
    base.resample = o.resample == "auto";
    base.memory_budget_mb = context.common.ram_mb * 3 / 4;  // a quarter is GDAL's block cache
    base.ram_mb = context.common.ram_mb;

    // The model: given, or the bundled one that fits the first image's bands; loaded once.
    std::string model_path;
    if (!o.model.model.empty()) {
        model_path = resolve_model(o.model.model, bundled_models_dir());
    } else {
        const RasterSource first = RasterSource::open(inputs.front());
        std::vector<std::string> skipped;
        model_path = pick_bundled_model(models::Task::segmentation, first.info(), base.bands, bundled_models_dir(), &skipped).path;
        warn_skipped_models(skipped, context.common.quiet);
    }
    const models::Model model = models::Model::load(model_path, o.model.to_model_options());
    const std::string model_hash = model.metadata().weights_sha256;

    nlohmann::json summaries = nlohmann::json::array();
    nlohmann::json failures = nlohmann::json::array();  // {input, error} of each input passed over (--keep-going)
    for (size_t i = 0; i < inputs.size(); ++i) {
        SegmentOptions options = base;
        options.input = inputs[i];
        options.resume = o.resume;
        options.parts_dir = o.parts_dir;
        if (shard_one_image) options.shard = shard;
        const ImageOutputs outputs = image_outputs(o, inputs[i]);
        options.output = outputs.mask;
        options.probabilities = outputs.probabilities;
        std::string vector_path = outputs.vector;
        const std::string& preview_path = outputs.preview;
        const std::string manifest_path = o.no_manifest || shard_one_image ? std::string() : options.output + ".manifest.json";
        // This input's checks, before the model runs: with --keep-going an input failing them is reported
        // and passed over like one failing later (an unreadable input ended the whole batch here).
        try {
            if (o.resume && !shard_one_image && fs::exists(options.output) && !o.overwrite) {
                // Outputs are renamed into place only when complete: an existing one is finished work, if
                // its manifest shows this input, model and options. (One input too: a batch script that
                // reruns a finished job with --resume ends with 0, not "already exists".)
                if (const std::string why = why_not_finished(options.output, inputs[i], model_hash, asked_options(o)); !why.empty()) {
                    throw usage_error(options.output + ": exists, but " + why + " (--resume skips only this job's finished outputs; "
                                      "use --overwrite to make it again)");
                }
                if (!context.common.quiet) std::cerr << "rsi " << command << ": " << options.output << " is done, skipped (--resume)\n";
                summaries.push_back({{"input", inputs[i]}, {"output", options.output}, {"skipped", "done before (--resume)"}});
                continue;
            }
            // Polygons carry their mean probability: they need a probability raster whose band c+1 is
            // class c (or one band for the preset's class). Without one from the user, a temporary one.
            if (!vector_path.empty() && (o.min_area > 0 || o.simplify > 0)) {
                // Refused before the model runs, not after the mask is written. (--regularize has no
                // length of its own: it works in pixels where there are no metres, as rsi vectorize does.)
                if (const RasterInfo info = RasterSource::open(inputs[i]).info(); !info.georeferenced()) {
                    throw usage_error(inputs[i] + ": is not georeferenced (" + info.georeferencing_gap() +
                                      "), so --min-area and --simplify (in metres) cannot apply; drop them or georeference the image");
                }
            }
            if (!vector_path.empty() && !o.keep_crs && is_geojson_output(vector_path) &&
                !RasterSource::open(inputs[i]).info().georeferenced()) {
                // Refused before the model runs (it was refused after it, naming the mask's temporary file).
                throw usage_error(inputs[i] + ": is not georeferenced, and GeoJSON is written in WGS84 (RFC 7946); "
                                  "give another --vector format (.gpkg: a layer without a CRS), or --keep-crs for GeoJSON "
                                  "in the image's own coordinates with no CRS, which GeoJSON readers take for WGS84");
            }
            // Every output of this image is checked before the model runs: a run that could not write its
            // polygons, preview or manifest must not leave (or replace) a mask first.
            if (!shard_one_image) {
                // An output that is the input (or another output) first: that, not "already exists", is the problem.
                check_distinct_outputs({options.output, options.probabilities, vector_path, preview_path, manifest_path}, {inputs[i]});
                check_output_file(options.output, o.overwrite);
                if (!options.probabilities.empty()) check_output_file(options.probabilities, o.overwrite);
                if (!vector_path.empty()) vector_path = check_vector_output(vector_path, o.overwrite);
                if (!preview_path.empty()) check_output_file(preview_path, o.overwrite);
                if (!manifest_path.empty()) check_output_file(manifest_path, o.overwrite);  // an output too
            }
        } catch (const Error& e) {
            if (inputs.size() == 1 || !o.keep_going || e.kind() == ErrorKind::cancelled) throw;
            const std::string reason = error_message_for_user(e.what());
            std::cerr << "rsi " << command << ": " << reason << "\n";
            failures.push_back({{"input", inputs[i]}, {"error", reason}});
            continue;
        }
        // With polygons, a preview or a manifest, the mask (and probability raster) stay under temporary
        // names until those are written too: a failure there (e.g. a full disk) leaves no new output.
        // A run first removes what killed runs left beside every output (their temporaries, the
        // polygon scratch files; a process that is still alive keeps its own), unless it is one shard.
        if (o.resume || !shard_one_image) {
            for (const std::string& path : {options.output, options.probabilities, vector_path, preview_path}) {
                if (!path.empty()) remove_stale_temporaries(path);
            }
        }
        // A merge of this job's parts (after a kill) writes the outputs the user asked for, under their
        // own names: not the temporary names and polygon scratch below.
        options.recorded_outputs = segmentation_output_settings(options);
        std::unique_ptr<PendingOutput> pending_mask, pending_probabilities;
        if ((!vector_path.empty() || !preview_path.empty() || !manifest_path.empty()) && !shard_one_image) {
            if (options.parts_dir.empty()) options.parts_dir = options.output + ".parts";
            // A resumed run keeps its parts until every output is in place: killed in the polygon
            // phase, the next resume assembles the mask again instead of running the model again.
            if (o.resume) options.keep_parts = true;
            pending_mask = std::make_unique<PendingOutput>(options.output, options.overwrite);
            options.output = pending_mask->temporary_path();
            if (!options.probabilities.empty()) {
                pending_probabilities = std::make_unique<PendingOutput>(options.probabilities, options.overwrite);
                options.probabilities = pending_probabilities->temporary_path();
            }
        }
        std::string confidence_path = options.probabilities;
        std::unique_ptr<PendingOutput> confidence_scratch;
        if (!vector_path.empty()) {
            if (options.probabilities.empty()) {
                confidence_scratch = std::make_unique<PendingOutput>(options.output + ".confidence.tif", true);
                options.probabilities = confidence_path = confidence_scratch->temporary_path();
                options.probability_format = ProbabilityFormat::byte;
                options.uncertainty = false;
            }
        }
        // Every final path of this image (mask and probabilities while they wait under temporary names,
        // preview, manifest) is checked again before the first output gets its name: a file another run
        // wrote meanwhile then fails this run with none of its outputs in place, not some.
        auto check_later_outputs = [&] {
            if (pending_probabilities) pending_probabilities->check_final_path_free();
            if (pending_mask) pending_mask->check_final_path_free();
            if (!preview_path.empty()) check_output_path_again(preview_path, o.overwrite);
            if (!manifest_path.empty()) check_output_path_again(manifest_path, o.overwrite);
        };
        options.before_commit = check_later_outputs;
        const std::string cache_warning = cap_block_cache_for_strips(context.common, command, inputs[i], true);
        ProgressBar bar(!context.common.quiet && !context.common.json);
        const std::string label = inputs.size() > 1 ? "image " + std::to_string(i + 1) + "/" + std::to_string(inputs.size()) : "";
        try {
            SegmentResult r = segment_image(model, options, [&](double f, std::string_view what) {
                return bar.update(f, label.empty() ? what : std::string_view(label));
            });
            bar.finish();
            if (!context.common.quiet) {
                for (const auto& w : r.warnings) std::cerr << "rsi " << command << ": warning: " << inputs[i] << ": " << w << "\n";
            }
            if (!r.assembled) {  // one shard of one image: parts only
                const nlohmann::json summary{{"input", inputs[i]}, {"parts_dir", r.parts_dir}, {"shard", {shard->index, shard->count}},
                                             {"strips", r.strips}, {"shard_strips", r.shard_strips},
                                             {"strips_resumed", r.strips_resumed}, {"strips_run", r.strips_run},
                                             {"tiles_run", r.tiles_run}, {"tile_size", r.tile_size}, {"batch", r.batch},
                                             {"seconds", r.seconds}};
                if (context.common.json) {
                    print_json(summary);
                } else if (!context.common.quiet) {
                    std::cout << inputs[i] << ": shard " << shard->index << "/" << shard->count << " (" << shard_source << ") wrote "
                              << r.strips_run << " of its " << r.shard_strips << " strips to " << r.parts_dir
                              << "; when every shard is done: rsi merge " << r.parts_dir << "\n";
                }
                return 0;
            }
            // Every output of this image is made under a temporary name first — the manifest, the
            // preview, then the polygons, whose rename checks every other final path — and they are
            // renamed into place together, the mask last: a failure anywhere leaves none of them.
            const std::string mask_written = r.output;  // the temporary name while pending_mask holds it
            if (pending_probabilities) r.probabilities = pending_probabilities->final_path();
            if (pending_mask) r.output = pending_mask->final_path();
            std::unique_ptr<PendingOutput> pending_manifest, pending_preview;
            if (!manifest_path.empty()) {
                nlohmann::json manifest{{"command", command},
                                        {"input", file_name_only(inputs[i])},
                                        {"input_fingerprint", file_fingerprint(inputs[i])},
                                        {"outputs", {file_name_only(r.output)}},
                                        {"model", {{"name", model.metadata().name}, {"version", model.metadata().version},
                                                   {"file", file_name_only(model_path)}, {"weights_sha256", model_hash}}},
                                        // What the run used (a model's default or an "auto" resolved) and what was asked.
                                        {"options", {{"tile_size", r.tile_size},
                                                     {"tile_size_asked", o.tile_size.empty() ? nlohmann::json("model") : nlohmann::json(o.tile_size)},
                                                     {"overlap", r.overlap}, {"edge", o.edge}, {"blend", o.blend}, {"tta", o.tta},
                                                     {"batch", r.batch}, {"bands", r.source_bands}, {"band_rescale", r.band_rescale},
                                                     {"bands_asked", o.bands.empty() ? nlohmann::json("model") : nlohmann::json(o.bands)},
                                                     {"resample", o.resample},
                                                     {"model_pixels_per_image_pixel", {r.resample_x, r.resample_y}}, {"device", o.model.device},
                                                     {"precision", o.model.precision}, {"min_confidence", o.min_confidence},
                                                     {"probability_format", o.probability_format}, {"probability_class", o.probability_class},
                                                     {"uncertainty", o.uncertainty}, {"min_area_m2", o.min_area}, {"simplify_m", o.simplify},
                                                     {"regularize", o.regularize}, {"format", o.format}, {"creation_options", o.creation_options}}},
                                        {"asked", asked_options(o)},
                                        {"timings", {{"seconds", r.seconds}, {"model_seconds", r.model_seconds}}}};
                if (!o.probabilities.empty()) manifest["outputs"].push_back(file_name_only(r.probabilities));
                if (!vector_path.empty()) manifest["outputs"].push_back(file_name_only(vector_path));
                if (!preview_path.empty()) manifest["outputs"].push_back(file_name_only(preview_path));
                pending_manifest = std::make_unique<PendingOutput>(prepare_run_manifest(manifest_path, manifest, o.overwrite));
            }
            if (!preview_path.empty()) {
                pending_preview = std::make_unique<PendingOutput>(preview_path, o.overwrite);
                PreviewOptions p;
                p.image = inputs[i];
                p.output = pending_preview->temporary_path();
                p.overwrite = true;  // its own temporary name; the final path is checked with the others
                p.rgb_bands = model_rgb_bands(model.metadata(), base.bands.empty() ? model.metadata().source_bands : base.bands);
                if (model.metadata().classes.size() == 2) {
                    write_outline_preview(p, mask_written, 1);
                } else {
                    write_class_preview(p, mask_written, model.metadata().classes);
                }
            }
            nlohmann::json polygons = nullptr;
            if (!vector_path.empty()) {
                VectorizeOptions v;
                v.mask = mask_written;
                v.output = vector_path;
                if (o.preset == "buildings") v.classes = {1};
                v.probabilities = confidence_path;
                // The probability layout stays as asked (one class's band, maybe entropy after it):
                // the polygons read their class's band from it.
                v.probability_class = options.probability_class;
                v.min_area_m2 = o.min_area;
                v.simplify_m = o.simplify;
                v.regularize = o.regularize;
                v.min_confidence = o.min_confidence;
                v.keep_crs = o.keep_crs;
                v.overwrite = o.overwrite;
                for (const auto& c : model.metadata().classes) v.class_names[c.id] = c.name;
                v.memory_budget_mb = base.memory_budget_mb / 2;
                v.output_checked = true;  // with the other outputs, before the model ran
                v.before_commit = check_later_outputs;
                // Polygons read their confidence window by window, in polygonising order: the strip-sized
                // cache of the segmentation phase would decode the same blocks over and over.
                restore_block_cache(context.common);
                const VectorizeResult vr = vectorize_mask(v, [&](double f, std::string_view) { return bar.update(f, "polygons"); });
                bar.finish();
                polygons = {{"output", vr.output}, {"count", vr.polygons}, {"area_m2", vr.area_known ? nlohmann::json(vr.area_m2) : nlohmann::json(nullptr)},
                            {"dropped_small", vr.dropped_small}, {"dropped_unconfident", vr.dropped_unconfident}};
                if (confidence_scratch) confidence_scratch->discard();  // before the outputs get their names
            }
            if (interrupted()) throw Error("cancelled", ErrorKind::cancelled);  // the last moment a Ctrl-C stops the run
            check_later_outputs();
            if (pending_preview) pending_preview->commit();
            if (pending_manifest) pending_manifest->commit();
            if (pending_probabilities) pending_probabilities->commit();
            if (pending_mask) pending_mask->commit();
            if (o.resume && pending_mask) {
                std::error_code ec;
                std::filesystem::remove_all(options.parts_dir, ec);  // kept until now (see above)
            }
            const double megapixels = static_cast<double>(r.width) * static_cast<double>(r.height) / 1e6;
            nlohmann::json classes = nlohmann::json::object();
            for (size_t c = 0; c < r.class_pixels.size(); ++c) {
                nlohmann::json entry{{"pixels", r.class_pixels[c]}};
                if (r.pixel_area_m2) entry["area_km2"] = static_cast<double>(r.class_pixels[c]) * *r.pixel_area_m2 / 1e6;
                classes[model.metadata().classes[c].name] = entry;
            }
            nlohmann::json summary{{"input", inputs[i]},
                                   {"output", r.output},
                                   {"probabilities", o.probabilities.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.probabilities)},
                                   {"width", r.width},
                                   {"height", r.height},
                                   {"megapixels", megapixels},
                                   {"km2", r.pixel_area_m2 ? nlohmann::json(megapixels * *r.pixel_area_m2) : nlohmann::json(nullptr)},
                                   {"tiles", r.tiles},
                                   {"tiles_run", r.tiles_run},
                                   {"tiles_skipped", r.tiles_skipped},
                                   {"tile_size", r.tile_size},
                                   {"batch", r.batch},
                                   {"model_runners", r.model_runners},
                                   {"model_pixels_per_image_pixel", {r.resample_x, r.resample_y}},
                                   {"classes", classes},
                                   {"nodata_pixels", r.nodata_pixels},
                                   {"seconds", r.seconds},
                                   {"model_seconds", r.model_seconds},
                                   {"tiles_per_second", r.tiles / std::max(1e-9, r.seconds)},
                                   {"peak_rss_mb", models::peak_resident_bytes() / 1048576.0},
                                   {"model", model.metadata().name},
                                   {"model_sha256", model_hash},
                                   {"bands", r.source_bands},
                                   {"band_rescale", r.band_rescale},
                                   {"warnings", with_warning(cache_warning, r.warnings)},
                                   {"polygons", polygons}};
            if (o.resume) summary["resume"] = {{"strips", r.strips}, {"strips_resumed", r.strips_resumed}, {"strips_run", r.strips_run}};
            summaries.push_back(summary);
            if (!context.common.json && !context.common.quiet) {
                std::cout << inputs[i] << " -> " << r.output << ": " << r.tiles << " tiles (" << r.tiles_skipped
                          << " empty) in " << format_duration(r.seconds) << "\n";
            }
        } catch (const Error& e) {
            bar.finish();
            if (inputs.size() == 1 || !o.keep_going || e.kind() == ErrorKind::cancelled) throw;
            const std::string reason = error_message_for_user(e.what());
            std::cerr << "rsi " << command << ": " << reason << "\n";
            failures.push_back({{"input", inputs[i]}, {"error", reason}});
        }
    }
    if (context.common.json) {
        print_json(inputs.size() == 1 ? summaries.front() : nlohmann::json{{"images", summaries}, {"failed", failures}});
    }
    if (!failures.empty()) {
        // Repeated at the end, each with its reason: a long batch's log has them far apart.
        std::cerr << "rsi " << command << ": " << failures.size() << " of " << inputs.size() << " inputs failed:\n";
        for (const auto& f : failures) {
            const auto input = f["input"].get<std::string>(), reason = f["error"].get<std::string>();
            std::cerr << "  " << (reason.find(input) == std::string::npos ? input + ": " + reason : reason) << "\n";
        }
        return 1;
    }
    return 0;
}

}  // namespace rsi::cli
