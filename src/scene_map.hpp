#pragma once
// Scene maps: classify an image window by window with a scene model and write one class per window
// position on a regular lattice (each lattice pixel centred on its window), plus optional
// probabilities with an entropy band, a dense map on the image grid, and a CSV / vector grid.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "models/model.hpp"
#include "src/segmentation.hpp"
#include "src/strip_journal.hpp"
#include "tiling/progress.hpp"
#include "tiling/tile_grid.hpp"

namespace rsi {

struct SceneResult;

struct SceneOptions {
    std::string input;
    std::string output;               // class lattice raster (Byte, colour table, category names, nodata 255)
    int64_t window = 0;               // in model pixels; 0: the model's tile size
    int64_t stride = 0;               // in model pixels; 0: the window (no overlap)
    EdgePolicy edge = EdgePolicy::constant;  // shift would break the lattice: refused
    double max_nodata = 0.5;          // windows with a larger nodata fraction are skipped (nodata)
    bool resample = true;             // match the model's ground sample distance
    std::vector<int> bands;
    int level = 0;                    // hierarchy level to map (1 = coarsest); 0: the leaf classes
    Tta tta = Tta::none;              // flip or d4
    int64_t batch = 0;
    int model_runners = 0;            // threads running forward calls side by side; 0: automatic
    std::string probabilities;        // Float32, one band per class plus entropy
    std::string dense;                // class map resampled to the image grid
    std::string csv;                  // one row per window
    std::string vector;               // one polygon per lattice cell (GPKG, GeoJSON, FlatGeobuf)
    int top_k = 3;
    std::string format = "GTiff";
    std::vector<std::string> creation_options;
    bool overwrite = false;
    bool strict = false;
    int64_t memory_budget_mb = 1024;
    // Resumable and sharded runs (src/strip_journal.hpp): each finished lattice row becomes a part
    // file (the leaf-class probabilities of its windows) journaled in `parts_dir` (default: output +
    // ".parts"); the outputs are assembled from the parts (by `rsi merge` when sharded).
    bool resume = false;
    std::optional<ShardSpec> shard;
    std::string parts_dir;
    bool keep_parts = false;
    // Called once every output is complete, just before the first is renamed into place, with the path
    // of the finished class map (still a temporary name) and the result so far (lattice, windows, classes;
    // not the timings). A caller deriving more outputs from the run (a
    // preview, a run manifest) writes them here, under temporary names of its own, and renames them
    // after map_scenes returns: a failure while writing them then leaves none of the run's outputs.
    std::function<void(const std::string& class_map, const SceneResult& result)> before_commit;
};

struct SceneClassSummary {
    std::string name;
    int64_t windows = 0;
    double area_km2 = 0;  // the ground of its lattice cells inside the image, the border cells reaching out
                          // to the image's edges as in the dense map (0 without georeferencing)
};

struct SceneResult {
    std::string output;                            // the class lattice written (empty for one shard)
    int64_t windows = 0, windows_run = 0, windows_skipped = 0;
    int64_t rows = 0, cols = 0;
    int64_t window_pixels = 0, stride_pixels = 0;  // in image pixels, after GSD matching (x)
    int64_t window_pixels_y = 0, stride_pixels_y = 0;  // the same along y (differs where pixels are not square on the ground)
    double scale = 1;                              // image pixels per model pixel (x)
    double scale_y = 1;
    std::vector<SceneClassSummary> classes;        // at the mapped level
    double km2 = 0;                                // the image's ground area (0 without georeferencing). The
                                                   // classes' areas (their lattice cells) add up to it unless
                                                   // windows were skipped
    std::vector<std::string> warnings;
    std::vector<int> source_bands;  // the image bands that filled the model's channels, in order
    std::string band_rescale = "none";  // how raw values were stretched into the model's range (BandMapping::rescale)
    int64_t batch = 0;
    double seconds = 0;
    double model_seconds = 0;  // inside the model's forward calls (per runner, averaged)
    int model_runners = 1;
    // Journaled runs: lattice rows of the map, of this shard, found done, run now.
    int64_t strips = 0, shard_strips = 0, strips_resumed = 0, strips_run = 0;
    std::string parts_dir;
    bool assembled = true;  // the outputs were written (false for one shard of a sharded run)
};

SceneResult map_scenes(const models::Model& model, const SceneOptions& options, const ProgressFn& progress = {});

// `rsi merge` of a sharded scene map: checks every shard is complete, then writes the outputs the
// shards were given (or `options.output` / `options.probabilities` / `vector` instead).
SceneResult merge_scene_parts(const MergeOptions& options, const std::string& vector = "", const ProgressFn& progress = {});

// The kind of job a parts folder holds ("segmentation" or "scene").
std::string parts_job_kind(const std::string& parts_dir);

// The classes at hierarchy `level` (1-based, coarse to fine) and, for each leaf class, the index of
// its group. Level 0 or the finest level returns the leaves themselves.
struct ClassRollup {
    std::vector<models::ClassInfo> classes;
    std::vector<int> group_of_leaf;
};
ClassRollup roll_up_classes(const models::ModelMetadata& metadata, int level);

}  // namespace rsi
