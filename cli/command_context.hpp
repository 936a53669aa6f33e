#pragma once
// What every subcommand shares: the common options, the action the parsed subcommand will run, and
// helpers for the options that mean the same thing everywhere.
#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "cli/progress_bar.hpp"
#include "models/model.hpp"
#include "src/strip_journal.hpp"
#include "tiling/progress.hpp"
#include "tiling/tile_grid.hpp"

namespace rsi::cli {

struct CommonOptions {
    bool quiet = false;
    bool json = false;
    int threads = 0;              // 0 = all cores
    int64_t ram_mb = 1024;        // memory budget; a quarter of it goes to GDAL's block cache
    std::vector<std::pair<std::string, std::string>> config;  // --config KEY VALUE
};

struct GridOptions {
    int64_t tile_size = 512;
    int64_t overlap = -1;  // not given: 64, or an eighth of a smaller tile (64 is no overlap for a 64-pixel tile)
    std::string edge = "shift";
    GridSpec spec() const;
};

// Which model to run and how (the same options on every command that runs one).
struct ModelCliOptions {
    std::string model;  // path or bundled name; empty = pick the bundled default
    std::string device = "cpu";
    std::string precision = "fp32";
    std::string cpu_graph = "auto";
    // For models without rsi.json metadata (or to override it).
    std::string task, classes, mean, std;
    int model_bands = 0, model_tile_size = 0;
    double input_scale = 0, gsd = 0;
    models::ModelOptions to_model_options() const;
};

// The shard this process runs: --shard K/N, else SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of
// SLURM_ARRAY_TASK_COUNT, else JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs) of --shard-count N.
// `source` says where it came from (for a note on stderr). Empty when not sharded.
std::optional<ShardSpec> resolve_shard(const std::string& shard_option, int shard_count, std::string& source);
void add_shard_options(CLI::App& sub, std::string& shard, int& shard_count);

// data/models of this build, or $RSI_MODELS_DIR.
std::string bundled_models_dir();
// One warning line per model package of that folder that could not be read (unless quiet).
void warn_skipped_models(const std::vector<std::string>& skipped, bool quiet);

struct CommandContext {
    CommonOptions common;
    std::map<const CLI::App*, std::function<int()>> actions;

    // Registers the action to run when `sub` was the parsed subcommand.
    void on_run(const CLI::App* sub, std::function<int()> action) { actions[sub] = std::move(action); }
    // A progress callback drawing to stderr unless --quiet or --json (which keep stderr for errors).
    ProgressFn progress(ProgressBar& bar) const;
};

// A number in [low, high] that is finite (CLI::Range lets NaN through: every comparison with it is false).
CLI::Validator finite_range(double low, double high);
// Any finite number.
CLI::Validator finite_number();
// A finite number > 0.
CLI::Validator positive_number();

void add_common_options(CLI::App& sub, CommonOptions& common);
// A repeatable GDAL creation option --co KEY=VALUE (-co works too); anything else is a usage error.
CLI::Option* add_creation_options(CLI::App& sub, std::vector<std::string>& options);
void add_grid_options(CLI::App& sub, GridOptions& grid);
// `with_model_flag`: add -m/--model (commands where the model is not positional).
void add_model_options(CLI::App& sub, ModelCliOptions& model, bool with_model_flag);
// Applies process-wide settings once: threads, GDAL block cache, --config options, and with remote
// inputs the GDAL network defaults (environment and --config still win).
void apply_global_settings(const CommonOptions& common, bool remote_inputs = false);
// True when an argument names a remote dataset (/vsicurl/, /vsis3/, /vsigs/, /vsiaz/ ..., http(s)://).
bool mentions_remote_path(const std::vector<std::string>& args);
// GDAL's block cache for a command that reads `image` in strips into its own buffers: two rows of the
// image's blocks (the block row two consecutive strip reads share), at least 16 MB, at most --ram / 4. A
// larger cache only fills with blocks already used, so peak memory would grow with the image. With
// `row_segments` (the reader cuts rows of a tiled image into segments, row_segment_tiles) the block
// rows are counted over at most 8192 columns: a segment's read needs only its own blocks. An
// unreadable image leaves the cache as it is (the command reports it). Warns on stderr as `rsi
// <command>` (unless --quiet) when two block rows do not fit in --ram / 4 (e.g. 8192² blocks): blocks
// are then decoded again and again and memory goes above --ram.
// Returns that warning (without the prefix; empty when none) for the command's JSON summary.
std::string cap_block_cache_for_strips(const CommonOptions& common, const std::string& command, const std::string& image,
                                       bool row_segments = false);

// `warnings` with `first` in front (when not empty).
std::vector<std::string> with_warning(const std::string& first, const std::vector<std::string>& warnings);

// Back to the whole block-cache share of --ram (--ram / 4), for a phase that reads its own outputs by
// polygon rather than in strips (rsi buildings --vector: the confidence of each polygon).
void restore_block_cache(const CommonOptions& common);

void print_json(const nlohmann::json& value);

// An error's text as the CLI shows it after "rsi COMMAND: ": without the library's own command word
// ("segment: ...", the CLI names the command already) or the temporary-name prefixes of outputs.
std::string error_message_for_user(const std::string& message);

// Registration of each subcommand (one file each).
void register_info_command(CLI::App& app, CommandContext& context);
void register_tile_command(CLI::App& app, CommandContext& context);
void register_model_command(CLI::App& app, CommandContext& context);
void register_vectorize_command(CLI::App& app, CommandContext& context);
void register_segment_command(CLI::App& app, CommandContext& context);
void register_buildings_command(CLI::App& app, CommandContext& context);
void register_scene_command(CLI::App& app, CommandContext& context);
void register_eval_command(CLI::App& app, CommandContext& context);
void register_submit_command(CLI::App& app, CommandContext& context);
void register_merge_command(CLI::App& app, CommandContext& context);

}  // namespace rsi::cli
