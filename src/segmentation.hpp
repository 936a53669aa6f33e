#pragma once
// Tiled segmentation of an arbitrarily large image into a georeferenced class map: a reader, the
// model and a writer run as a pipeline joined by bounded queues; overlapping tile predictions are
// blended in probability space by a strip accumulator that writes rows as soon as they are final.
// Nothing is sized by the image: memory is one tile row of probabilities plus the batches in flight.
#include <functional>
#include <optional>
#include <utility>
#include <string>
#include <string_view>
#include <vector>

#include "models/model.hpp"
#include "src/strip_journal.hpp"
#include "tiling/blend_weights.hpp"
#include "tiling/progress.hpp"
#include "tiling/tile_grid.hpp"

namespace rsi {

enum class Tta { none, flip, d4 };
Tta parse_tta(std::string_view text);
const char* to_string(Tta tta);

enum class ProbabilityFormat { float32, byte };
ProbabilityFormat parse_probability_format(std::string_view text);

// SegmentOptions::tile_size for `--tile-size auto`.
constexpr int64_t kAutoTileSize = -1;

struct SegmentOptions {
    std::string input;
    std::string output;                 // class mask (Byte, colour table, category names, nodata 255)
    int64_t tile_size = 0;              // 0: the model's; kAutoTileSize: the largest the memory budget allows
    int64_t overlap = -1;               // -1: the model's
    EdgePolicy edge = EdgePolicy::shift;
    BlendKind blend = BlendKind::hann;
    Tta tta = Tta::none;
    int64_t batch = 0;                  // 0: from the memory budget
    // Threads running batches side by side, each with its share of the inference threads (0: one per
    // thread up to 4 on a CPU; one on a GPU and in resumable/sharded runs; see model_runners.hpp).
    // Single-thread runners keep both cores of the machine measured busy without OpenMP barriers
    // between them (docs/BENCHMARKS.md, Session 14).
    int model_runners = 0;
    std::vector<int> bands;             // 1-based source bands; empty: from the model's metadata
    std::string probabilities;          // optional probability raster
    ProbabilityFormat probability_format = ProbabilityFormat::float32;
    int probability_class = -1;         // only this class's band (-1: every class)
    bool uncertainty = false;           // add an entropy band to the probability raster
    double min_confidence = 0;          // pixels whose winning probability is lower become class 0
    std::string format = "GTiff";       // GTiff or COG
    std::vector<std::string> creation_options;
    bool overwrite = false;
    bool strict = false;                // domain warnings become errors
    bool resample = true;               // read at the model's pixel size when the image's differs by more than 10%
                                        // (per axis in metres; probabilities are resampled back before the argmax)
    int64_t memory_budget_mb = 1024;
    int64_t ram_mb = 0;                 // the user's whole --ram, of which memory_budget_mb is this run's share:
                                        // messages advise a --ram that gives the budget needed (0: the same)
    // Resumable and sharded runs (src/strip_journal.hpp): finished strips become part files with a
    // journal in `parts_dir` (default: output + ".parts").
    bool resume = false;               // continue from the journal; assemble the outputs at the end
    // Remove what killed runs left beside the outputs first (a scan of their folders): off for scratch
    // outputs with names of their own, such as submit's per-image masks.
    bool remove_stale = true;
    std::optional<ShardSpec> shard;    // run only this shard's strips (plus the halo rows blending needs);
                                       // `rsi merge` assembles the outputs once every shard is done
    std::string parts_dir;
    bool keep_parts = false;           // leave the parts folder after assembling (the caller removes it)
    std::string fingerprint_input;     // the file that identifies the input when `input` is derived from it
    nlohmann::json image_grid;         // a run on a resampled copy: what a merge needs to resample back
                                       // (the image's grid, its path and the final outputs)
    // The outputs job.json records for `rsi merge` (segmentation_output_settings) when `output` and
    // `probabilities` stand in for them: the CLI writes under temporary names until the polygons are
    // written too, and polygons take their confidence from a scratch probability raster. Null: these.
    nlohmann::json recorded_outputs;
    // Called once every output is complete, just before the first is renamed into place. A caller that
    // writes more outputs of the run afterwards (a preview, a run manifest) checks their paths here
    // (check_output_path_again), so a run that cannot write them leaves none of its outputs.
    std::function<void()> before_commit;
};

struct SegmentResult {
    std::string output, probabilities;
    int64_t width = 0, height = 0;
    int64_t tiles = 0, tiles_run = 0, tiles_skipped = 0;
    int64_t tile_size = 0;              // the tile side the run used
    int64_t overlap = 0;                // the overlap it used (the model's, or raised to cover its halo)
    int64_t batch = 0;
    int model_runners = 1;
    std::vector<int64_t> class_pixels;  // per class id
    int64_t nodata_pixels = 0;
    std::optional<double> pixel_area_m2;
    std::vector<std::string> warnings;  // domain checks (pixel size, bands, radiometry)
    std::vector<int> source_bands;      // the image bands that filled the model's channels, in order
    std::string band_rescale = "none";  // how raw values were stretched into the model's range (BandMapping::rescale)
    double seconds = 0, model_seconds = 0;
    int64_t peak_buffer_bytes = 0;      // accumulator + batches in flight, as planned
    double resample_x = 1, resample_y = 1;  // model pixels per image pixel (1: native grid)
    // Journaled runs: strips of the whole image, of this run's shard, found done in the journal, run now.
    int64_t strips = 0, shard_strips = 0, strips_resumed = 0, strips_run = 0;
    std::string parts_dir;
    // The job's lock (src/shard_lock.hpp) when an unsharded journaled run kept its parts (keep_parts) for
    // the caller to finish more outputs: held until the caller removes them, so that a second --resume
    // run cannot start on them meanwhile.
    std::shared_ptr<const ShardLock> parts_lock;
    bool assembled = false;            // the outputs were written (always, unless sharded)
};

// `rsi merge`: assembles the outputs of a sharded run from its parts folder once every shard is done.
struct MergeOptions {
    std::string parts_dir;
    std::string output;                 // default: the output the shards were given
    std::string probabilities;          // default: as the shards were given
    bool overwrite = false;
    bool keep_parts = false;            // default: the parts folder is removed after a successful merge
    bool byte_probabilities = false;    // write `probabilities` as Byte, every class, no entropy band
                                        // (the scratch raster polygon confidences come from)
    bool vrt = false;                   // a VRT over one GeoTIFF per strip (in OUTPUT_strips/) instead of
                                        // one mosaic file: no second full-size copy of the map
    std::string vector;                 // the polygons the caller writes afterwards: checked with the
                                        // other outputs before any work (none may be another)
    // Called with the final paths of the merge's outputs once they are complete, just before the first
    // is renamed into place (so the caller can write its own output, a run manifest, beside them).
    std::function<void(const std::vector<std::string>& outputs)> before_commit;
};
struct MergeResult {
    std::string output, probabilities;
    std::string strips_dir;             // --vrt: the folder of strip GeoTIFFs the VRTs reference
    int64_t width = 0, height = 0, strips = 0, shards = 0;
    std::vector<int64_t> class_pixels;
    int64_t nodata_pixels = 0;
    std::vector<std::string> class_names;
};
MergeResult merge_segmentation(const MergeOptions& options, const ProgressFn& progress = {});

// The mask and probability paths a merge writes: those given, else the ones the shards were given (a
// relative one beside the parts folder), with a .vrt extension for --vrt; empty probabilities: none.
std::pair<std::string, std::string> merge_output_paths(const MergeOptions& options, const nlohmann::json& job);

// The outputs (paths and options) the shards of a segmentation job.json were given.
nlohmann::json job_output_settings(const nlohmann::json& job);

// The outputs of `options` as a job records them (absolute paths, formats): what a merge writes.
nlohmann::json segmentation_output_settings(const SegmentOptions& options);

// Runs `model` over `options.input`. The model is loaded once by the caller and can serve many images.
SegmentResult segment_image(const models::Model& model, const SegmentOptions& options, const ProgressFn& progress = {});

}  // namespace rsi
