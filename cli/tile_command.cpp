// rsi tile IMAGE OUTDIR: georeferenced tile files plus a GeoJSON/CSV index; --shard K/N writes one
// block of tile rows into a shared OUTDIR, rsi tile --merge-index OUTDIR writes the index afterwards.
#include <gdal.h>
#include <iostream>
#include <thread>

#include "cli/command_context.hpp"
#include "src/tile_export.hpp"
#include "tiling/band_list.hpp"

namespace rsi::cli {

void register_tile_command(CLI::App& app, CommandContext& context) {
    struct Options {
        std::string image, output_dir, bands, scale = "none", format = "GTiff", index, merge_index, shard;
        std::vector<std::string> creation_options;
        GridOptions grid;
        double fill = 0;
        int shard_count = 0;
        bool skip_empty = false, overwrite = false, resume = false;
    };
    auto options = std::make_shared<Options>();
    CLI::App* sub = app.add_subcommand("tile", "Cut a raster into georeferenced tiles with an index");
    sub->add_option("IMAGE", options->image, "Raster to tile");
    sub->add_option("OUTDIR", options->output_dir, "Directory for the tiles (created if missing)");
    add_grid_options(*sub, options->grid);
    sub->add_option("--fill", options->fill, "Fill value for pixels outside the image (edge constant)")
        ->check(finite_number())
        ->capture_default_str();
    sub->add_option("--bands", options->bands, "Bands to write, 1-based (e.g. 1,2,3 or 4,3,2); default all");
    sub->add_option("--scale", options->scale,
                    "Scale to Byte 0..255: none, minmax, percentile[:LOW,HIGH] or fixed:SCALE[,OFFSET]")
        ->capture_default_str();
    sub->add_option("--format,--of", options->format, "Tile format: GTiff, PNG or JPEG")->capture_default_str();
    add_creation_options(*sub, options->creation_options);
    sub->add_flag("--skip-empty", options->skip_empty, "Skip tiles without a single valid pixel");
    sub->add_option("--index", options->index, "GeoJSON index path (default OUTDIR/index.geojson; CSV beside it)");
    sub->add_flag("--overwrite", options->overwrite, "Reuse a non-empty OUTDIR, replacing earlier tiles");
    sub->add_flag("--resume", options->resume, "Keep the tiles an interrupted run with the same options finished")->group("Scale-out");
    add_shard_options(*sub, options->shard, options->shard_count);
    sub->add_option("--merge-index", options->merge_index,
                    "Write the index of OUTDIR once every shard is done (give --index too if the shards had it)")
        ->type_name("OUTDIR")
        ->group("Scale-out");
    add_common_options(*sub, context.common);
    sub->footer(
        "Examples:\n"
        "  rsi tile ../shared/data/spacenet/vegas_rgb.tif tiles/ --tile-size 512 --overlap 64 --bands 1,2,3 \\\n"
        "      --format PNG --skip-empty --index tiles/index.geojson\n"
        "  rsi tile scene.tif /shared/tiles --tile-size 512 --shard 3/8 --resume     (one of 8 tasks)\n"
        "  rsi tile --merge-index /shared/tiles                                      (after all 8)");
    context.on_run(sub, [options, &context] {
        if (!options->merge_index.empty()) {
            if (!options->image.empty() || !options->output_dir.empty()) {
                throw usage_error("--merge-index OUTDIR takes no IMAGE or OUTDIR argument");
            }
            TileIndexMergeOptions m;
            m.output_dir = options->merge_index;
            m.index_path = options->index;
            m.overwrite = options->overwrite;
            ProgressBar bar(!context.common.quiet && !context.common.json);
            const TileIndexMergeResult r = merge_tile_index(m, context.progress(bar));
            bar.finish();
            if (context.common.json) {
                print_json({{"output_dir", m.output_dir}, {"shards", r.shards}, {"tiles_total", r.tiles_total},
                            {"tiles_written", r.tiles_written}, {"tiles_skipped", r.tiles_skipped}, {"rows", r.rows},
                            {"cols", r.cols}, {"index_geojson", r.index_geojson}, {"index_csv", r.index_csv}});
            } else if (!context.common.quiet) {
                std::cout << "merged the index of " << r.shards << " shards: " << r.tiles_written << " of " << r.tiles_total
                          << " tiles\nindex: " << r.index_geojson << ", " << r.index_csv << "\n";
            }
            return 0;
        }
        if (options->image.empty() || options->output_dir.empty()) {
            throw usage_error("give IMAGE and OUTDIR (or --merge-index OUTDIR)");
        }
        TileExportOptions o;
        o.input = options->image;
        o.output_dir = options->output_dir;
        o.grid = options->grid.spec();
        o.fill_value = options->fill;
        if (!options->bands.empty()) o.bands = parse_band_list(options->bands);
        o.scaling = parse_scaling(options->scale);
        o.format = options->format;
        o.creation_options = options->creation_options;
        o.skip_empty = options->skip_empty;
        o.index_path = options->index;
        o.overwrite = options->overwrite;
        o.memory_budget_mb = context.common.ram_mb / 2;
        o.threads = context.common.threads > 0 ? context.common.threads : static_cast<int>(std::thread::hardware_concurrency());
        o.resume = options->resume;
        std::string shard_source;
        o.shard = resolve_shard(options->shard, options->shard_count, shard_source);
        // Strips are read once into rsi's own buffers, so GDAL's block cache needs little.
        const std::string cache_warning = cap_block_cache_for_strips(context.common, "tile", options->image);
        ProgressBar bar(!context.common.quiet && !context.common.json);
        const auto start = std::chrono::steady_clock::now();
        const TileExportResult r = export_tiles(o, context.progress(bar));
        bar.finish();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (!context.common.quiet) {
            for (const auto& w : r.warnings) std::cerr << "rsi tile: warning: " << w << "\n";
        }
        if (o.shard) {
            const nlohmann::json summary{{"input", o.input}, {"output_dir", o.output_dir}, {"shard", {o.shard->index, o.shard->count}},
                                         {"shard_source", shard_source}, {"rows", {r.first_row, r.end_row}},
                                         {"tiles_written", r.tiles_written}, {"tiles_resumed", r.tiles_resumed},
                                         {"tiles_skipped", r.tiles_skipped}, {"parts_dir", r.parts_dir}, {"seconds", seconds}};
            if (context.common.json) {
                print_json(summary);
            } else if (!context.common.quiet) {
                std::cout << "shard " << o.shard->index << "/" << o.shard->count << " (" << shard_source << "): tile rows "
                          << r.first_row << ".." << r.end_row - 1 << ", wrote " << r.tiles_written - r.tiles_resumed << " tiles ("
                          << r.tiles_resumed << " kept from before) to " << o.output_dir
                          << "; when every shard is done: rsi tile --merge-index " << o.output_dir
                          << (o.index_path.empty() ? "" : " --index " + o.index_path) << "\n";
            }
            return 0;
        }
        if (context.common.json) {
            print_json({{"input", o.input},
                        {"output_dir", o.output_dir},
                        {"tiles_total", r.tiles_total},
                        {"tiles_written", r.tiles_written},
                        {"tiles_skipped", r.tiles_skipped},
                        {"rows", r.rows},
                        {"cols", r.cols},
                        {"format", r.format},
                        {"data_type", r.data_type},
                        {"index_geojson", r.index_geojson},
                        {"index_csv", r.index_csv},
                        {"tiles_resumed", r.tiles_resumed},
                        {"tile_writer", r.tile_writer},
                        {"warnings", with_warning(cache_warning, r.warnings)},
                        {"seconds", seconds}});
        } else if (!context.common.quiet) {
            std::cout << "wrote " << r.tiles_written << " of " << r.tiles_total << " tiles (" << r.rows << " x "
                      << r.cols << ", " << r.format << " " << r.data_type << ") to " << o.output_dir;
            if (r.tiles_skipped) std::cout << ", skipped " << r.tiles_skipped << " empty";
            std::cout << "\nindex: " << r.index_geojson << ", " << r.index_csv << "\n";
        }
        return 0;
    });
}

}  // namespace rsi::cli
