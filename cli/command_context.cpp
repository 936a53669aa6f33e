#include "cli/command_context.hpp"

#include <cpl_conv.h>
#include <gdal.h>
#include <iostream>
#include <thread>

#include "models/runtime_info.hpp"

namespace rsi::cli {

GridSpec GridOptions::spec() const {
    GridSpec s;
    s.tile_width = s.tile_height = tile_size;
    s.overlap = overlap;
    s.edge = parse_edge_policy(edge);
    return s;
}

ProgressFn CommandContext::progress(ProgressBar& bar) const {
    return [&bar](double fraction, std::string_view what) { return bar.update(fraction, what); };
}

void add_common_options(CLI::App& sub, CommonOptions& common) {
    sub.add_flag("-q,--quiet", common.quiet, "No progress or warnings on stderr");
    sub.add_flag("--json", common.json, "Print a machine-readable JSON summary on stdout");
    sub.add_option("--threads", common.threads, "Worker threads (default: all cores)")->check(CLI::NonNegativeNumber);
    sub.add_option("--ram", common.ram_mb, "Memory budget in MB (strips, batches and GDAL's cache)")
        ->check(CLI::Range(int64_t{16}, int64_t{1} << 30));
    sub.add_option("--config", common.config, "GDAL configuration option KEY VALUE (repeatable)")
        ->type_name("KEY VALUE");
}

void add_grid_options(CLI::App& sub, GridOptions& grid) {
    sub.add_option("--tile-size", grid.tile_size, "Tile size in pixels")->capture_default_str();
    sub.add_option("--overlap", grid.overlap, "Pixels shared by neighbouring tiles")->capture_default_str();
    sub.add_option("--edge", grid.edge, "Edge policy: shift, reflect or constant")->capture_default_str();
}

void apply_global_settings(const CommonOptions& common) {
    for (const auto& [key, value] : common.config) CPLSetConfigOption(key.c_str(), value.c_str());
    const int threads = common.threads > 0 ? common.threads : static_cast<int>(std::thread::hardware_concurrency());
    models::set_inference_threads(threads > 0 ? threads : 1);
    // GDAL's block cache counts inside the memory budget.
    GDALSetCacheMax64(common.ram_mb * 1024 * 1024 / 4);
}

void print_json(const nlohmann::json& value) { std::cout << value.dump(2) << std::endl; }

}  // namespace rsi::cli
