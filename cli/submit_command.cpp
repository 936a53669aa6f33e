// rsi submit FORMAT INPUT -o OUTPUT: a competition submission from a folder of contest images (the
// building model makes each mask) or of masks (--masks); rsi submit decode FORMAT CSV -o DIR.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <set>

#include "cli/command_context.hpp"
#include "cli/late_manifest.hpp"
#include "src/model_catalog.hpp"
#include "src/output_file.hpp"
#include "src/pixel_evaluation.hpp"
#include "src/json_text.hpp"
#include "src/run_manifest.hpp"
#include "src/strip_journal.hpp"
#include "src/submission.hpp"
#include "src/submission_inference.hpp"
#include "tiling/band_list.hpp"
#include "tiling/error.hpp"
#include "tiling/raster_source.hpp"

namespace fs = std::filesystem;

namespace rsi::cli {

namespace {

bool is_image_file(const fs::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return ext == ".tif" || ext == ".tiff" || ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".jp2" ||
           ext == ".img" || ext == ".vrt";
}

// Image files of a folder, sorted by name (deterministic order on every file system).
std::vector<fs::path> image_files(const std::string& dir) {
    if (!fs::is_directory(dir)) throw Error(dir + ": not a folder");
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.is_regular_file() && is_image_file(entry.path())) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) throw Error(dir + ": no images (.tif, .png, .jpg ...)");
    return files;
}

struct Options {
    std::string format, input, output, zip, names_from, size, map, track = "buildings", tta = "none";
    bool masks = false, damage = false, overwrite = false, resume = false, no_manifest = false;
    std::string shard, parts_dir, merge;
    int shard_count = 0;
    double min_area = 0;
    ModelCliOptions model;
    int64_t batch = 0;
    // decode
    std::string decode_format, decode_input, decode_output, decode_size = "512x512";
    int foreground = 255;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// What every submission manifest holds: the files written, what they contain and what was checked.
nlohmann::json submission_manifest(const std::string& command, const std::string& format, const SubmissionResult& r) {
    nlohmann::json outputs{file_name_only(without_trailing_separator(r.output))};
    if (!r.zip.empty()) outputs.push_back(file_name_only(r.zip));
    return {{"command", command}, {"format", format}, {"outputs", outputs}, {"images", r.images}, {"objects", r.objects},
            {"empty_images", r.empty_images}, {"validated", r.validation.checks}};
}

int report_shard(const Options& o, const SubmissionOptions& s, const SubmissionResult& r, const std::string& shard_source,
                 const CommandContext& context) {
    const nlohmann::json summary{{"format", o.format}, {"parts_dir", r.parts_dir}, {"shard", {s.shard->index, s.shard->count}},
                                 {"shard_source", shard_source}, {"shard_images", r.shard_images},
                                 {"images_resumed", r.images_resumed}, {"images_run", r.images_run}};
    if (context.common.json) {
        print_json(summary);
    } else if (!context.common.quiet) {
        std::cout << "shard " << s.shard->index << "/" << s.shard->count << " (" << shard_source << "): " << r.shard_images
                  << " images (" << r.images_resumed << " done before) in " << r.parts_dir
                  << "; when every shard is done: rsi submit --merge " << r.parts_dir << " -o " << o.output << "\n";
    }
    return 0;
}

int run_merge(const Options& o, CommandContext& context) {
    if (!o.input.empty()) throw usage_error("submit --merge PARTS_DIR takes no INPUT folder (the shards had it)");
    SubmissionMergeOptions m;
    m.parts_dir = o.merge;
    m.format = o.format;
    m.output = o.output;
    m.zip = o.zip;
    m.overwrite = o.overwrite;
    // The manifest records what the shards ran with (job.json), without the per-image lists.
    const auto start = std::chrono::steady_clock::now();
    const nlohmann::json job = read_job(without_trailing_separator(o.merge));
    const std::string recorded = job.value("output", "");
    LateManifest manifest(o.output.empty() ? merge_output_path(without_trailing_separator(o.merge), recorded, recorded) : o.output,
                          o.overwrite, !o.no_manifest);
    m.before_commit = [&](const SubmissionResult& complete) {
        nlohmann::json settings = job.value("settings", nlohmann::json::object());
        for (const char* list : {"images", "image_fingerprints"}) settings.erase(list);
        nlohmann::json j = submission_manifest("submit --merge", settings.value("format", ""), complete);
        j["shards"] = job.value("shards", 0);
        j["options"] = settings;
        j["timings"] = {{"seconds", seconds_since(start)}};
        manifest.write(j);
    };
    ProgressBar bar(!context.common.quiet && !context.common.json);
    const SubmissionResult r = merge_submission(m, context.progress(bar));
    manifest.commit();
    bar.finish();
    if (context.common.json) {
        print_json({{"output", r.output}, {"zip", r.zip}, {"images", r.images}, {"objects", r.objects},
                    {"empty_images", r.empty_images}, {"validated", r.validation.checks}});
    } else if (!context.common.quiet) {
        std::cout << "merged " << r.output << ": " << r.images << " images" << (r.zip.empty() ? "" : ", zipped to " + r.zip)
                  << "; validated: " << r.validation.checks.size() << " checks\n";
    }
    return 0;
}

// xView2 test folders hold test_pre_<id> and test_post_<id> of each place; both would name the same two
// result files, and buildings are located on the pre-disaster image: the post images are left out.
std::vector<fs::path> contest_images(SubmissionFormat format, std::vector<fs::path> files) {
    if (format != SubmissionFormat::xview2) return files;
    std::set<std::string> pre;
    for (const fs::path& f : files) {
        const std::string stem = f.stem().string();
        if (stem.rfind("test_pre_", 0) == 0) pre.insert(stem.substr(9));
    }
    files.erase(std::remove_if(files.begin(), files.end(), [&](const fs::path& f) {
                    const std::string stem = f.stem().string();
                    return stem.rfind("test_post_", 0) == 0 && pre.count(stem.substr(10));
                }),
                files.end());
    return files;
}

int run_submit(const Options& o, CommandContext& context) {
    SubmissionOptions s;
    s.format = parse_submission_format(o.format);
    s.output = o.output;
    s.zip = o.zip;
    s.gaofen_track = o.track;
    s.xview2_damage = o.damage;
    s.min_area_px = o.min_area;
    s.overwrite = o.overwrite;
    if (!o.map.empty()) s.value_map = parse_value_map(o.map, "--map");
    if (!o.size.empty()) std::tie(s.width, s.height) = parse_image_size(o.size, "--size");
    s.resume = o.resume;
    s.parts_dir = o.parts_dir;
    std::string shard_source;
    s.shard = resolve_shard(o.shard, o.shard_count, shard_source);
    if (s.shard && !o.zip.empty()) throw usage_error("--zip of a sharded submission is made by `rsi submit --merge` (give it there)");
    if (!o.parts_dir.empty() && !s.shard && !s.resume) throw usage_error("--parts-dir needs --resume or --shard");
    // A shard writes no submission, so no manifest: `rsi submit --merge` writes it.
    const auto start = std::chrono::steady_clock::now();
    LateManifest manifest(o.output, o.overwrite, !o.no_manifest && !s.shard);
    nlohmann::json model_entry = nullptr;
    s.before_commit = [&](const SubmissionResult& complete) {
        nlohmann::json j = submission_manifest("submit", o.format, complete);
        j["input"] = file_name_only(without_trailing_separator(o.input));
        j["model"] = model_entry;  // null: the masks were given
        nlohmann::json value_map = nlohmann::json::array();
        for (const auto& [from, to] : s.value_map) value_map.push_back({from, to});
        j["options"] = {{"masks", o.masks}, {"value_map", value_map}, {"size", {s.width, s.height}}, {"min_area_px", s.min_area_px},
                        {"gaofen_track", s.gaofen_track}, {"xview2_damage", s.xview2_damage}};
        for (const auto& [key, value] : s.job_settings) {
            if (key != "masks") j["options"][key] = value;  // "given": the boolean above says it
        }
        j["timings"] = {{"seconds", seconds_since(start)}};
        manifest.write(j);
    };
    const std::vector<fs::path> files = contest_images(s.format, image_files(o.input));
    if (o.masks) {
        // Masks carry the contest image names unless --names-from gives the images (matched by stem).
        std::map<std::string, std::string> names;
        if (!o.names_from.empty()) {
            for (const fs::path& image : contest_images(s.format, image_files(o.names_from))) {
                names[image.stem().string()] = image.filename().string();
            }
            std::map<std::string, bool> have;
            for (const fs::path& f : files) have[f.stem().string()] = true;
            for (const auto& [stem, name] : names) {
                if (!have.count(stem)) throw Error(o.input + ": no mask for the contest image " + name);
            }
        }
        for (const fs::path& f : files) {
            std::string name = f.filename().string();
            if (!o.names_from.empty()) {
                const auto it = names.find(f.stem().string());
                if (it == names.end()) throw Error(f.string() + ": no contest image with this name in " + o.names_from);
                name = it->second;
            }
            s.items.push_back({name, f.string()});
        }
        s.job_settings = {{"masks", "given"}};
        ProgressBar bar(!context.common.quiet && !context.common.json);
        const SubmissionResult r = write_submission(s, context.progress(bar));
        manifest.commit();
        bar.finish();
        if (!r.assembled) return report_shard(o, s, r, shard_source, context);
        if (context.common.json) {
            print_json({{"format", o.format}, {"output", r.output}, {"zip", r.zip}, {"images", r.images}, {"objects", r.objects},
                        {"empty_images", r.empty_images}, {"validated", r.validation.checks}, {"images_resumed", r.images_resumed}});
        } else if (!context.common.quiet) {
            std::cout << "wrote " << r.output << ": " << r.images << " images" << (r.zip.empty() ? "" : ", zipped to " + r.zip)
                      << "; validated: " << r.validation.checks.size() << " checks\n";
        }
        return 0;
    }
    for (const fs::path& f : files) s.items.push_back({f.filename().string(), f.string()});
    const std::string model_path = o.model.model.empty()
                                       ? pick_bundled_model(models::Task::segmentation, RasterSource::open(files.front().string()).info(), {},
                                                            bundled_models_dir())
                                             .path
                                       : resolve_model(o.model.model, bundled_models_dir());
    const models::Model model = models::Model::load(model_path, o.model.to_model_options());
    if (s.value_map.empty()) {
        // Multi-class formats: the model's class ids become the format's by name (else refused).
        std::vector<std::string> names;
        for (const auto& c : model.metadata().classes) names.push_back(c.name);
        s.value_map = class_map_by_name(s, names, model_path);
    }
    SegmentOptions base;
    base.tta = parse_tta(o.tta);
    // A fixed default rather than one measured from memory (which can differ between processes), so that
    // shards, resumed runs and a direct run make the same masks.
    base.batch = o.batch > 0 ? o.batch : 4;
    base.memory_budget_mb = context.common.ram_mb * 3 / 4;
    model_entry = {{"name", model.metadata().name}, {"version", model.metadata().version}, {"file", file_name_only(model_path)},
                   {"weights_sha256", model.metadata().weights_sha256}};
    s.job_settings = {{"model_sha256", model.metadata().weights_sha256}, {"model_name", model.metadata().name},
                      {"tta", o.tta}, {"batch", std::to_string(base.batch)}, {"device", o.model.device},
                      {"precision", o.model.precision},
                      // the metadata as overridden (--mean, --std, ...): part of what makes the masks
                      {"model_metadata", sha256_hex(json_text(model.metadata().to_json()))}};
    const fs::path out(without_trailing_separator(o.output));  // "dir/" names the folder dir, not a file in it
    // Journaled runs keep their scratch masks in the parts folder, which goes when the job is assembled,
    // so a killed run leaves nothing behind in the output's folder.
    const std::string scratch = s.resume || s.shard ? submission_parts_dir(s) : out.has_parent_path() ? out.parent_path().string() : ".";
    s.make_mask = segmentation_mask_maker(model, base, scratch);
    ProgressBar bar(!context.common.quiet && !context.common.json);
    const SubmissionResult r = write_submission(s, context.progress(bar));
    manifest.commit();
    bar.finish();
    if (!r.assembled) return report_shard(o, s, r, shard_source, context);
    if (context.common.json) {
        print_json({{"format", o.format}, {"output", r.output}, {"zip", r.zip}, {"images", r.images}, {"objects", r.objects},
                    {"empty_images", r.empty_images}, {"model", model_path}, {"validated", r.validation.checks},
                    {"images_resumed", r.images_resumed}});
    } else if (!context.common.quiet) {
        std::cout << "wrote " << r.output << ": " << r.images << " images (model " << fs::path(model_path).filename().string() << ")"
                  << (r.zip.empty() ? "" : ", zipped to " + r.zip) << "; validated: " << r.validation.checks.size() << " checks\n";
    }
    return 0;
}

}  // namespace

void register_submit_command(CLI::App& app, CommandContext& context) {
    auto o = std::make_shared<Options>();
    CLI::App* sub = app.add_subcommand("submit", "Competition submission files (tianchi, spacenet, inria, xview2, loveda, gaofen)");
    sub->add_option("FORMAT", o->format, "tianchi, spacenet, inria, xview2, loveda or gaofen");
    sub->add_option("INPUT", o->input, "Folder of contest images (the model makes the masks) or, with --masks, of class masks");
    sub->add_option("-o,--output", o->output, "The CSV (tianchi, spacenet) or the result folder (the other formats)");
    sub->add_flag("--masks", o->masks, "INPUT holds masks (band 1 classes), not images");
    sub->add_option("--names-from", o->names_from, "With --masks: folder of the contest images whose names the result uses (matched by stem)");
    sub->add_option("--zip", o->zip, "Also pack the result into this zip file");
    sub->add_option("--size", o->size, "Required mask size WIDTHxHEIGHT (default: tianchi 512x512, xview2 1024x1024, else any)");
    sub->add_option("--map", o->map, "Remap mask values first, e.g. 255=1 or 1=0,2=1,3=2 (LoveDA truth-style labels)");
    sub->add_option("--track", o->track, "gaofen: buildings (0/255) or 2020-9class (values 1-9 + class_table.csv)")->capture_default_str();
    sub->add_flag("--damage", o->damage, "xview2: masks hold damage classes 0-4 (0 = no building)");
    sub->add_option("--min-area", o->min_area, "spacenet: leave out polygons smaller than this many pixels")->check(finite_range(0.0, 1e12));
    sub->add_option("--tta", o->tta, "Test-time augmentation when running the model: none, flip or d4")->capture_default_str();
    sub->add_option("--batch", o->batch, "Tiles per batch (default 4)")->check(CLI::Range(1, 65536));
    sub->add_flag("--overwrite", o->overwrite, "Replace existing outputs");
    sub->add_flag("--no-manifest", o->no_manifest, "Do not write the run manifest beside the output (OUTPUT.manifest.json)");
    sub->add_flag("--resume", o->resume, "Journal finished images (in OUTPUT.parts) and continue an interrupted run")->group("Scale-out");
    add_shard_options(*sub, o->shard, o->shard_count);
    sub->add_option("--parts-dir", o->parts_dir, "Parts folder of a resumable or sharded run (default: OUTPUT.parts)")->group("Scale-out");
    sub->add_option("--merge", o->merge, "Assemble the submission from the parts folder of a sharded run (-o: another output)")
        ->type_name("PARTS_DIR")
        ->group("Scale-out");
    add_model_options(*sub, o->model, true);
    add_common_options(*sub, context.common);
    sub->footer(
        "Examples:\n"
        "  rsi submit tianchi test_a/ -o submission.csv --zip submission.zip     (runs the bundled building model)\n"
        "  rsi submit inria --masks masks/ -o inria_result/\n"
        "  rsi submit xview2 --masks masks/ --names-from test/images -o predictions/\n"
        "  rsi submit spacenet test/ -o sub.csv --shard 0/4     (one of 4 tasks; then: rsi submit --merge sub.csv.parts)\n"
        "  rsi submit decode tianchi submission.csv -o masks/ --size 512x512");
    CLI::App* decode = sub->add_subcommand("decode", "Turn a tianchi or spacenet CSV back into PNG masks");
    decode->add_option("FORMAT", o->decode_format, "tianchi or spacenet")->required();
    decode->add_option("CSV", o->decode_input, "The submission CSV")->required();
    decode->add_option("-o,--output", o->decode_output, "Folder to create, one <image>.png each")->required();
    decode->add_option("--size", o->decode_size, "Image size WIDTHxHEIGHT")->capture_default_str();
    decode->add_option("--foreground", o->foreground, "Mask value of building pixels")->capture_default_str();
    decode->add_flag("--overwrite", o->overwrite, "Replace an existing folder");
    add_common_options(*decode, context.common);
    decode->footer(  // its own: a subcommand inherits its parent's footer
        "Examples:\n"
        "  rsi submit decode tianchi submission.csv -o masks/ --size 512x512\n"
        "  rsi submit decode spacenet sub.csv -o masks/ --size 650x650 --foreground 1");
    context.on_run(decode, [o, &context] {
        DecodeOptions d;
        d.format = parse_submission_format(o->decode_format);
        d.input = o->decode_input;
        d.output_dir = o->decode_output;
        std::tie(d.width, d.height) = parse_image_size(o->decode_size, "--size");
        d.foreground = o->foreground;
        d.overwrite = o->overwrite;
        ProgressBar bar(!context.common.quiet && !context.common.json);
        const DecodeResult r = decode_submission(d, context.progress(bar));
        bar.finish();
        if (context.common.json) print_json({{"output", r.output_dir}, {"images", r.images}});
        else if (!context.common.quiet) std::cout << "decoded " << r.images << " masks into " << r.output_dir << "\n";
        return 0;
    });
    context.on_run(sub, [o, &context] {
        if (!o->merge.empty()) return run_merge(*o, context);
        if (o->format.empty() || o->input.empty() || o->output.empty()) {
            throw usage_error("submit: give FORMAT, INPUT and -o OUTPUT (or use `rsi submit decode`)");
        }
        return run_submit(*o, context);
    });
}

}  // namespace rsi::cli
