// rsi info IMAGE: the raster summary and the tiling plan.
#include <cmath>
#include <iomanip>
#include <iostream>

#include "cli/command_context.hpp"
#include "src/raster_summary.hpp"

namespace rsi::cli {

namespace {

nlohmann::json to_json(const RasterSummary& s) {
    const RasterInfo& i = s.info;
    nlohmann::json bands = nlohmann::json::array();
    for (size_t b = 0; b < i.bands.size(); ++b) {
        const BandInfo& band = i.bands[b];
        bands.push_back({{"band", b + 1},
                         {"data_type", GDALGetDataTypeName(band.data_type)},
                         // JSON has no NaN or infinity: those nodata values are the strings "nan", "inf" and
                         // "-inf" (null means none; nlohmann writes a non-finite number as null)
                         {"nodata", !band.nodata ? nlohmann::json(nullptr)
                                    : std::isnan(*band.nodata) ? nlohmann::json("nan")
                                    : std::isinf(*band.nodata) ? nlohmann::json(*band.nodata > 0 ? "inf" : "-inf")
                                                               : nlohmann::json(*band.nodata)},
                         {"color_interpretation", band.color_interpretation},
                         {"description", band.description},
                         {"block_size", {band.block_width, band.block_height}}});
    }
    nlohmann::json out{{"path", i.path},
                       {"driver", i.driver},
                       {"width", i.width},
                       {"height", i.height},
                       {"band_count", i.band_count()},
                       {"data_type", GDALGetDataTypeName(i.data_type)},
                       {"block_size", {i.block_width, i.block_height}},
                       {"bands", bands},
                       {"mask", to_string(i.mask)},
                       {"crs", {{"wkt", i.crs_wkt.empty() ? nlohmann::json(nullptr) : nlohmann::json(i.crs_wkt)},
                                {"epsg", i.epsg ? nlohmann::json(*i.epsg) : nlohmann::json(nullptr)}}},
                       {"geotransform", i.has_geotransform ? nlohmann::json(i.geotransform) : nlohmann::json(nullptr)},
                       {"gcp_count", i.gcp_count},
                       {"pixel_size", {std::hypot(i.geotransform[1], i.geotransform[4]),
                                       std::hypot(i.geotransform[2], i.geotransform[5])}}};
    out["pixel_size_m"] = s.ground_pixel ? nlohmann::json{s.ground_pixel->x_m, s.ground_pixel->y_m} : nlohmann::json(nullptr);
    out["pixel_size_on_ellipsoid"] = s.ground_on_ellipsoid;
    const TilingPlan& p = s.plan;
    out["tiling"] = {{"tile_size", {p.spec.tile_width, p.spec.tile_height}},
                     {"overlap", p.spec.overlap},
                     {"stride", {p.stride_x, p.stride_y}},
                     {"edge", to_string(p.spec.edge)},
                     {"rows", p.rows},
                     {"cols", p.cols},
                     {"tiles", p.tiles},
                     {"overlap_factor", p.overlap_factor}};
    out["warnings"] = s.warnings;
    return out;
}

void print_text(const RasterSummary& s) {
    const RasterInfo& i = s.info;
    std::cout << "File:        " << i.path << " (" << i.driver << ")\n"
              << "Size:        " << i.width << " x " << i.height << " pixels, " << i.band_count() << " band"
              << (i.band_count() == 1 ? "" : "s") << ", " << GDALGetDataTypeName(i.data_type) << "\n"
              << "Blocks:      " << i.block_width << " x " << i.block_height << "\n";
    for (size_t b = 0; b < i.bands.size(); ++b) {
        const BandInfo& band = i.bands[b];
        std::cout << "  Band " << b + 1 << ":    " << GDALGetDataTypeName(band.data_type) << ", "
                  << band.color_interpretation;
        if (band.nodata) std::cout << ", nodata " << *band.nodata;
        std::cout << "\n";
    }
    std::cout << "Validity:    " << to_string(i.mask) << "\n";
    if (i.crs_wkt.empty()) {
        std::cout << "CRS:         none" << (i.has_geotransform ? "" : " (pixel space)") << "\n";
    } else {
        std::cout << "CRS:         " << (i.epsg ? "EPSG:" + std::to_string(*i.epsg) : std::string("custom (no EPSG code)"))
                  << "\n";
    }
    if (i.has_geotransform) {
        const double* g = i.geotransform.data();
        std::cout << std::setprecision(12) << "Origin:      " << g[0] << ", " << g[3] << "\n";
        if (g[2] != 0 || g[4] != 0) {
            // Rotated: terms 1 and 5 are not the pixel's sides (the JSON's pixel_size is these lengths too).
            std::cout << "Pixel size:  " << std::hypot(g[1], g[4]) << " x " << std::hypot(g[2], g[5]) << " (lengths of a step along a row and down a column)\n"
                      << "Rotation:    " << g[2] << ", " << g[4] << " (geotransform terms 2 and 4; " << std::atan2(g[4], g[1]) * 180 / M_PI
                      << " degrees)\n";
        } else {
            std::cout << "Pixel size:  " << g[1] << ", " << g[5] << "\n";
        }
    } else {
        std::cout << "Geotransform: none\n";
        if (i.gcp_count > 0) std::cout << "GCPs:        " << i.gcp_count << " (not used by rsi: warp the image first)\n";
    }
    if (s.ground_pixel) {
        std::cout << std::setprecision(4) << "Ground size: " << s.ground_pixel->x_m << " m x " << s.ground_pixel->y_m
                  << " m per pixel" << (s.ground_on_ellipsoid ? " (on the ellipsoid: the projection is far from true scale here)" : "")
                  << "\n";
    }
    const TilingPlan& p = s.plan;
    std::cout << std::setprecision(4) << "Tiling:      " << p.tiles << " tiles (" << p.rows << " rows x " << p.cols
              << " cols) of " << p.spec.tile_width << " px, overlap " << p.spec.overlap << ", stride " << p.stride_x
              << ", edge " << to_string(p.spec.edge) << "\n"
              << "Overlap factor: " << p.overlap_factor << " (tile pixels processed / image pixels";
    // A factor far above 1 from overlap alone would be alarming; from an image smaller than one tile
    // it only means the tile is mostly padding.
    if (i.width < p.spec.tile_width || i.height < p.spec.tile_height) std::cout << "; tiles are padded where the image is smaller than one tile";
    std::cout << ")\n";
}

}  // namespace

void register_info_command(CLI::App& app, CommandContext& context) {
    struct Options {
        std::string image;
        GridOptions grid;
    };
    auto options = std::make_shared<Options>();
    CLI::App* sub = app.add_subcommand("info", "Describe a raster and the tiling plan for it");
    sub->add_option("IMAGE", options->image, "Raster to describe (any GDAL dataset)")->required();
    add_grid_options(*sub, options->grid);
    add_common_options(*sub, context.common);
    sub->footer("Example:\n  rsi info ../shared/data/spacenet/vegas_rgb.tif --tile-size 512 --overlap 64 --json");
    context.on_run(sub, [options, &context] {
        const RasterSummary summary = summarize_raster(options->image, options->grid.spec());
        if (!context.common.quiet) {
            for (const std::string& w : summary.warnings) std::cerr << "rsi info: warning: " << options->image << ": " << w << "\n";
        }
        if (context.common.json) {
            print_json(to_json(summary));
        } else {
            print_text(summary);
        }
        return 0;
    });
}

}  // namespace rsi::cli
