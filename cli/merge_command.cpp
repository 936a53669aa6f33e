// rsi merge PARTS_DIR: assembles the outputs of a sharded segmentation or scene map once every shard is done.
#include <chrono>
#include <filesystem>
#include <iostream>

#include "cli/command_context.hpp"
#include "cli/late_manifest.hpp"
#include "src/output_file.hpp"
#include "src/raster_writer.hpp"
#include "src/run_manifest.hpp"
#include "src/scene_map.hpp"
#include "src/segmentation.hpp"
#include "src/strip_journal.hpp"
#include "src/vectorize.hpp"

namespace rsi::cli {

namespace {

struct MergeCliOptions {
    MergeOptions merge;
    std::string vector;
    double min_area = 0, simplify = 0;
    bool regularize = false, keep_crs = false;
    bool no_manifest = false;
};

// The run manifest of a merge, beside its -o output as the single-process run writes it: the input,
// model and settings the shards recorded in job.json (file names only), the merge's own options and
// the outputs it wrote.
class MergeManifest {
public:
    // `output`: the merge's -o output (checked here, before any work, as the other outputs are).
    MergeManifest(const MergeCliOptions& o, const nlohmann::json& job, const std::string& output)
        : options_(o), job_(job), start_(std::chrono::steady_clock::now()), file_(output, o.merge.overwrite, !o.no_manifest) {}

    // Called with the merge's final outputs once they are complete (under a temporary name).
    void write(std::vector<std::string> outputs) {
        if (!polygons_.empty()) outputs.push_back(polygons_);
        const nlohmann::json settings = job_.value("settings", nlohmann::json::object());
        nlohmann::json recorded = settings;
        for (const char* key : {"input", "input_fingerprint", "model", "model_name"}) recorded.erase(key);
        nlohmann::json output_settings = job_.value("outputs", nlohmann::json::object());
        for (const char* path_key : {"output", "probabilities", "dense", "csv", "vector"}) output_settings.erase(path_key);
        recorded["outputs"] = output_settings;
        const nlohmann::json model = job_.value("model", nlohmann::json::object());
        nlohmann::json names = nlohmann::json::array();
        for (const std::string& path : outputs) names.push_back(file_name_only(path));
        file_.write({{"command", "merge"},
                     {"job", job_.value("format", "")},
                     {"input", settings.value("input", "")},
                     {"input_fingerprint", settings.value("input_fingerprint", "")},
                     {"outputs", names},
                     {"model", {{"name", model.value("name", "")}, {"version", model.value("version", "")},
                                {"weights_sha256", model.value("weights_sha256", "")}}},
                     {"shards", job_.value("shards", 0)},
                     {"options", recorded},  // what the shards ran with
                     {"merge_options", {{"vrt", options_.merge.vrt}, {"min_area_m2", options_.min_area}, {"simplify_m", options_.simplify},
                                        {"regularize", options_.regularize}, {"keep_crs", options_.keep_crs}}},
                     {"timings", {{"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count()}}}});
    }
    // The polygons a later phase writes, listed with the outputs.
    void add_polygons(const std::string& path) { polygons_ = path; }
    // Once the outputs have their names.
    void commit() { file_.commit(); }

private:
    const MergeCliOptions& options_;
    const nlohmann::json job_;
    std::chrono::steady_clock::time_point start_;
    LateManifest file_;
    std::string polygons_;
};

// A scene map's outputs (lattice, probabilities, CSV, grid layer, dense map) come from the shards' options.
int merge_scene(const MergeCliOptions& o, CommandContext& context) {
    if (o.merge.vrt) throw usage_error("--vrt applies to segmentation parts; a scene map is small enough to write whole");
    if (o.min_area > 0 || o.simplify > 0 || o.regularize || o.keep_crs) {
        throw usage_error("--min-area, --simplify, --regularize and --keep-crs apply to building polygons, not to a scene map");
    }
    const nlohmann::json job = read_job(o.merge.parts_dir);
    const std::string recorded = job.at("outputs").value("output", "");
    MergeManifest manifest(o, job, o.merge.output.empty() ? merge_output_path(o.merge.parts_dir, recorded, recorded) : o.merge.output);
    MergeOptions merge = o.merge;
    merge.before_commit = [&manifest](const std::vector<std::string>& outputs) { manifest.write(outputs); };
    ProgressBar bar(!context.common.quiet && !context.common.json);
    const SceneResult r = merge_scene_parts(merge, o.vector, context.progress(bar));
    manifest.commit();
    bar.finish();
    nlohmann::json classes = nlohmann::json::object();
    for (const auto& c : r.classes) classes[c.name] = {{"windows", c.windows}, {"km2", c.area_km2}};
    if (context.common.json) {
        print_json({{"output", r.output},
                    {"lattice", {r.rows, r.cols}}, {"windows", r.windows}, {"windows_run", r.windows_run},
                    {"windows_skipped", r.windows_skipped}, {"strips", r.strips}, {"classes", classes}});
    } else if (!context.common.quiet) {
        std::cout << "merged " << r.strips << " lattice rows (" << r.rows << " x " << r.cols << " windows) into " << r.output << "\n";
    }
    return 0;
}

}  // namespace

void register_merge_command(CLI::App& app, CommandContext& context) {
    using Options = MergeCliOptions;
    auto o = std::make_shared<Options>();
    CLI::App* sub = app.add_subcommand("merge", "Assemble the outputs of a sharded run (rsi buildings/segment/scene --shard K/N)");
    sub->add_option("PARTS_DIR", o->merge.parts_dir, "The parts folder the shards wrote (default name: OUTPUT.parts)")->required();
    sub->add_option("-o,--output", o->merge.output, "Class mask to write (default: the -o the shards were given)");
    sub->add_option("--probabilities", o->merge.probabilities, "Probability raster (default: as the shards were given)");
    sub->add_flag("--keep-parts", o->merge.keep_parts, "Keep the parts folder after a successful merge");
    sub->add_flag("--vrt", o->merge.vrt,
                  "Write OUTPUT.vrt over one GeoTIFF per strip (OUTPUT_strips/) instead of one mosaic file");
    sub->add_flag("--overwrite", o->merge.overwrite, "Replace existing outputs");
    sub->add_flag("--no-manifest", o->no_manifest, "Do not write the run manifest beside the output (OUTPUT.manifest.json)");
    sub->add_option("--vector", o->vector, "Also write footprint polygons of the merged mask (scene maps: the grid layer)")->group("Polygons");
    sub->add_option("--min-area", o->min_area, "Drop polygons smaller than this many square metres")->group("Polygons")->check(finite_range(0.0, 1e12));
    sub->add_option("--simplify", o->simplify, "Simplification tolerance, metres")->group("Polygons")->check(finite_range(0.0, 1e6));
    sub->add_flag("--regularize", o->regularize, "Orthogonal building outlines")->group("Polygons");
    sub->add_flag("--keep-crs", o->keep_crs, "GeoJSON: keep the image CRS instead of WGS84")->group("Polygons");
    add_common_options(*sub, context.common);
    sub->footer(
        "Example (4 SLURM array tasks, then one merge):\n"
        "  sbatch --array=0-3 --wrap 'rsi buildings big.tif -o big_buildings.tif'   # shard from SLURM_ARRAY_TASK_ID\n"
        "  rsi merge big_buildings.tif.parts --vector big_buildings.gpkg\n"
        "  rsi merge big_buildings.tif.parts --vrt        # big_buildings.vrt over big_buildings_strips/*.tif");
    context.on_run(sub, [o, &context] {
        if (!o->merge.vrt) check_raster_output_name(o->merge.output, "GTiff", "-o");
        if (parts_job_kind(o->merge.parts_dir) == "scene") return merge_scene(*o, context);
        if (!o->vector.empty() && o->merge.vrt) {
            throw usage_error("--vrt and --vector: merge without --vrt for polygons, or run `rsi vectorize` on the VRT afterwards");
        }
        // The polygons' format and path are checked before the merge, which removes the parts folder.
        std::string vector = o->vector.empty() ? std::string() : check_vector_output(o->vector, o->merge.overwrite);
        // Polygons carry their mean probability, as `rsi buildings --vector` gives them: without a
        // probability raster, a scratch Byte one (what the single-process run uses).
        MergeOptions merge = o->merge;
        merge.vector = vector;
        std::unique_ptr<PendingOutput> scratch;
        const nlohmann::json job = read_job(merge.parts_dir);
        MergeManifest manifest(*o, job, merge_output_paths(merge, job).first);
        if (!vector.empty() && (o->min_area > 0 || o->simplify > 0) &&
            !georeference_from_job(job.contains("image_grid") ? job.at("image_grid") : job).georeferenced()) {
            throw usage_error(merge.parts_dir + ": the image is not georeferenced, so --min-area and --simplify (in metres) cannot "
                              "apply; drop them");
        }
        // With polygons, the merged mask (and probabilities) stay under temporary names and the parts
        // folder stays until the polygons are written too: an interrupted or failed polygon phase
        // leaves no mask without polygons, and the parts to merge again.
        std::unique_ptr<PendingOutput> pending_mask, pending_probabilities;
        if (!vector.empty()) {
            const auto [output, probabilities] = merge_output_paths(merge, job);
            for (const std::string& path : {output, probabilities}) {
                if (!path.empty()) remove_stale_temporaries(path);  // a killed merge's: merging again redoes it
            }
            check_output_file(output, merge.overwrite);
            if (!probabilities.empty()) check_output_file(probabilities, merge.overwrite);
            check_distinct_outputs({output, probabilities, vector}, {});
            if (probabilities.empty()) {
                scratch = std::make_unique<PendingOutput>(output + ".confidence.tif", true);
                merge.probabilities = scratch->temporary_path();
                merge.byte_probabilities = true;
            } else {
                pending_probabilities = std::make_unique<PendingOutput>(probabilities, merge.overwrite);
                merge.probabilities = pending_probabilities->temporary_path();
            }
            pending_mask = std::make_unique<PendingOutput>(output, merge.overwrite);
            merge.output = pending_mask->temporary_path();
            merge.keep_parts = true;
            manifest.add_polygons(vector);
        } else {
            merge.before_commit = [&manifest](const std::vector<std::string>& outputs) { manifest.write(outputs); };
        }
        ProgressBar bar(!context.common.quiet && !context.common.json);
        MergeResult r = merge_segmentation(merge, context.progress(bar));
        if (vector.empty()) manifest.commit();
        bar.finish();
        nlohmann::json polygons = nullptr;
        if (!o->vector.empty()) {
            // The whole merged mask is polygonised at once, so a building cut by a shard border is one feature.
            VectorizeOptions v;
            v.mask = r.output;
            v.output = vector;
            v.probabilities = r.probabilities;
            v.min_confidence = job_output_settings(job).value("min_confidence", 0.0);
            v.min_area_m2 = o->min_area;
            v.simplify_m = o->simplify;
            v.regularize = o->regularize;
            v.keep_crs = o->keep_crs;
            v.overwrite = o->merge.overwrite;
            for (size_t c = 0; c < r.class_names.size(); ++c) v.class_names[static_cast<int>(c)] = r.class_names[c];
            v.memory_budget_mb = context.common.ram_mb / 2;
            v.output_checked = true;  // before the merge
            // Every final path checked before the first rename: none of the outputs, or all.
            v.before_commit = [&] {
                if (pending_probabilities) pending_probabilities->check_final_path_free();
                pending_mask->check_final_path_free();
                std::vector<std::string> outputs{pending_mask->final_path()};
                if (pending_probabilities) outputs.push_back(pending_probabilities->final_path());
                manifest.write(outputs);
            };
            const VectorizeResult vr = vectorize_mask(v, context.progress(bar));
            bar.finish();
            polygons = {{"output", vr.output}, {"count", vr.polygons}, {"area_m2", vr.area_m2}};
            if (scratch) scratch->discard();  // before the outputs get their names
            manifest.commit();
            if (pending_probabilities) {
                pending_probabilities->commit();
                r.probabilities = pending_probabilities->final_path();
            }
            pending_mask->commit();  // the mask last: once it has its name, every output has
            r.output = pending_mask->final_path();
            if (!o->merge.keep_parts) {
                std::error_code ec;
                std::filesystem::remove_all(merge.parts_dir, ec);
            }
        }
        nlohmann::json classes = nlohmann::json::object();
        for (size_t c = 0; c < r.class_pixels.size() && c < r.class_names.size(); ++c) classes[r.class_names[c]] = r.class_pixels[c];
        if (context.common.json) {
            const bool show = !r.probabilities.empty() && !scratch;
            print_json({{"output", r.output}, {"probabilities", show ? nlohmann::json(r.probabilities) : nlohmann::json(nullptr)},
                        {"strips_dir", r.strips_dir.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.strips_dir)},
                        {"width", r.width}, {"height", r.height}, {"strips", r.strips}, {"shards", r.shards},
                        {"class_pixels", classes}, {"nodata_pixels", r.nodata_pixels}, {"polygons", polygons}});
        } else if (!context.common.quiet) {
            std::cout << "merged " << r.shards << " shards (" << r.strips << " strips) into " << r.output << "\n";
        }
        return 0;
    });
}

}  // namespace rsi::cli
