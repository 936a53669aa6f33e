// rsi tile IMAGE OUTDIR: georeferenced tile files plus a GeoJSON/CSV index.
#include <gdal.h>
#include <iostream>
#include <thread>

#include "cli/command_context.hpp"
#include "src/tile_export.hpp"
#include "tiling/band_list.hpp"

namespace rsi::cli {

void register_tile_command(CLI::App& app, CommandContext& context) {
    struct Options {
        std::string image, output_dir, bands, scale = "none", format = "GTiff", index;
        std::vector<std::string> creation_options;
        GridOptions grid;
        double fill = 0;
        bool skip_empty = false, overwrite = false;
    };
    auto options = std::make_shared<Options>();
    CLI::App* sub = app.add_subcommand("tile", "Cut a raster into georeferenced tiles with an index");
    sub->add_option("IMAGE", options->image, "Raster to tile")->required();
    sub->add_option("OUTDIR", options->output_dir, "Directory for the tiles (created if missing)")->required();
    add_grid_options(*sub, options->grid);
    sub->add_option("--fill", options->fill, "Fill value for pixels outside the image (edge constant)")
        ->capture_default_str();
    sub->add_option("--bands", options->bands, "Bands to write, 1-based (e.g. 1,2,3 or 4,3,2); default all");
    sub->add_option("--scale", options->scale,
                    "Scale to Byte 0..255: none, minmax, percentile[:LOW,HIGH] or fixed:SCALE[,OFFSET]")
        ->capture_default_str();
    sub->add_option("--format,--of", options->format, "Tile format: GTiff, PNG or JPEG")->capture_default_str();
    sub->add_option("--co", options->creation_options, "GDAL creation option KEY=VALUE (repeatable; -co works)");
    sub->add_flag("--skip-empty", options->skip_empty, "Skip tiles without a single valid pixel");
    sub->add_option("--index", options->index, "GeoJSON index path (default OUTDIR/index.geojson; CSV beside it)");
    sub->add_flag("--overwrite", options->overwrite, "Reuse a non-empty OUTDIR, replacing earlier tiles");
    add_common_options(*sub, context.common);
    sub->footer(
        "Example:\n"
        "  rsi tile ../shared/data/spacenet/vegas_rgb.tif tiles/ --tile-size 512 --overlap 64 --bands 1,2,3 \\\n"
        "      --format PNG --skip-empty --index tiles/index.geojson");
    context.on_run(sub, [options, &context] {
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
        // Strips are read once into rsi's own buffers, so GDAL's block cache needs little.
        GDALSetCacheMax64(std::min<int64_t>(context.common.ram_mb * 1024 * 1024 / 4, 64 << 20));
        ProgressBar bar(!context.common.quiet && !context.common.json);
        const auto start = std::chrono::steady_clock::now();
        const TileExportResult r = export_tiles(o, context.progress(bar));
        bar.finish();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
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
                        {"seconds", seconds}});
        } else {
            std::cout << "wrote " << r.tiles_written << " of " << r.tiles_total << " tiles (" << r.rows << " x "
                      << r.cols << ", " << r.format << " " << r.data_type << ") to " << o.output_dir;
            if (r.tiles_skipped) std::cout << ", skipped " << r.tiles_skipped << " empty";
            std::cout << "\nindex: " << r.index_geojson << ", " << r.index_csv << "\n";
        }
        return 0;
    });
}

}  // namespace rsi::cli
