// rsi submit FORMAT INPUT -o OUTPUT: a competition submission from a folder of contest images (the
// building model makes each mask) or of masks (--masks); rsi submit decode FORMAT CSV -o DIR.
#include <algorithm>
#include <filesystem>
#include <iostream>

#include "cli/command_context.hpp"
#include "src/model_catalog.hpp"
#include "src/pixel_evaluation.hpp"
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
    bool masks = false, damage = false, overwrite = false;
    double min_area = 0;
    ModelCliOptions model;
    int64_t batch = 0;
    // decode
    std::string decode_format, decode_input, decode_output, decode_size = "512x512";
    int foreground = 255;
};

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
    const std::vector<fs::path> files = image_files(o.input);
    if (o.masks) {
        // Masks carry the contest image names unless --names-from gives the images (matched by stem).
        std::map<std::string, std::string> names;
        if (!o.names_from.empty()) {
            for (const fs::path& image : image_files(o.names_from)) names[image.stem().string()] = image.filename().string();
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
        ProgressBar bar(!context.common.quiet && !context.common.json);
        const SubmissionResult r = write_submission(s, context.progress(bar));
        bar.finish();
        if (context.common.json) {
            print_json({{"format", o.format}, {"output", r.output}, {"zip", r.zip}, {"images", r.images}, {"objects", r.objects},
                        {"empty_images", r.empty_images}, {"validated", r.validation.checks}});
        } else {
            std::cout << "wrote " << r.output << ": " << r.images << " images" << (r.zip.empty() ? "" : ", zipped to " + r.zip)
                      << "; validated: " << r.validation.checks.size() << " checks\n";
        }
        return 0;
    }
    for (const fs::path& f : files) s.items.push_back({f.filename().string(), f.string()});
    const std::string model_path = o.model.model.empty()
                                       ? pick_bundled_model(models::Task::segmentation, RasterSource::open(files.front().string()).info().band_count(),
                                                            bundled_models_dir())
                                             .path
                                       : resolve_model(o.model.model, bundled_models_dir());
    const models::Model model = models::Model::load(model_path, o.model.to_model_options());
    SegmentOptions base;
    base.tta = parse_tta(o.tta);
    base.batch = o.batch;
    base.memory_budget_mb = context.common.ram_mb * 3 / 4;
    const fs::path out(o.output);
    s.make_mask = segmentation_mask_maker(model, base, out.has_parent_path() ? out.parent_path().string() : ".");
    ProgressBar bar(!context.common.quiet && !context.common.json);
    const SubmissionResult r = write_submission(s, context.progress(bar));
    bar.finish();
    if (context.common.json) {
        print_json({{"format", o.format}, {"output", r.output}, {"zip", r.zip}, {"images", r.images}, {"objects", r.objects},
                    {"empty_images", r.empty_images}, {"model", model_path}, {"validated", r.validation.checks}});
    } else {
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
    sub->add_option("--min-area", o->min_area, "spacenet: leave out polygons smaller than this many pixels");
    sub->add_option("--tta", o->tta, "Test-time augmentation when running the model: none, flip or d4")->capture_default_str();
    sub->add_option("--batch", o->batch, "Tiles per batch (default: from --ram)");
    sub->add_flag("--overwrite", o->overwrite, "Replace existing outputs");
    add_model_options(*sub, o->model, true);
    add_common_options(*sub, context.common);
    sub->footer(
        "Examples:\n"
        "  rsi submit tianchi test_a/ -o submission.csv --zip submission.zip     (runs the bundled building model)\n"
        "  rsi submit inria --masks masks/ -o inria_result/\n"
        "  rsi submit xview2 --masks masks/ --names-from test/images -o predictions/\n"
        "  rsi submit decode tianchi submission.csv -o masks/ --size 512x512");
    CLI::App* decode = sub->add_subcommand("decode", "Turn a tianchi or spacenet CSV back into PNG masks");
    decode->add_option("FORMAT", o->decode_format, "tianchi or spacenet")->required();
    decode->add_option("CSV", o->decode_input, "The submission CSV")->required();
    decode->add_option("-o,--output", o->decode_output, "Folder to create, one <image>.png each")->required();
    decode->add_option("--size", o->decode_size, "Image size WIDTHxHEIGHT")->capture_default_str();
    decode->add_option("--foreground", o->foreground, "Mask value of building pixels")->capture_default_str();
    decode->add_flag("--overwrite", o->overwrite, "Replace an existing folder");
    add_common_options(*decode, context.common);
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
        else std::cout << "decoded " << r.images << " masks into " << r.output_dir << "\n";
        return 0;
    });
    context.on_run(sub, [o, &context] {
        if (o->format.empty() || o->input.empty() || o->output.empty()) {
            throw usage_error("submit: give FORMAT, INPUT and -o OUTPUT (or use `rsi submit decode`)");
        }
        return run_submit(*o, context);
    });
}

}  // namespace rsi::cli
