#pragma once
// `rsi tile`: cut an image into georeferenced tile files plus an index, reading each source block
// about once (a strip of tiles is read in one request) at memory bounded by one tile row.
#include <optional>
#include <string>
#include <vector>

#include "tiling/band_scaling.hpp"
#include "tiling/progress.hpp"
#include "tiling/tile_grid.hpp"

namespace rsi {

struct TileExportOptions {
    std::string input;
    std::string output_dir;
    GridSpec grid;
    double fill_value = 0;      // for the constant edge policy
    std::vector<int> bands;     // 1-based; empty = all
    ScalingSpec scaling;        // with scaling, tiles are written as Byte 0..255
    std::string format = "GTiff";  // GTiff, PNG or JPEG
    std::vector<std::string> creation_options;  // KEY=VALUE passed to the GDAL driver
    bool skip_empty = false;    // skip tiles with no valid pixel
    std::string index_path;     // GeoJSON index; default OUTDIR/index.geojson (CSV beside it)
    bool overwrite = false;     // reuse a non-empty OUTDIR, replacing earlier tiles
    int64_t memory_budget_mb = 512;
    int threads = 1;            // tile encoding and writing workers
};

struct TileExportResult {
    int64_t tiles_total = 0;
    int64_t tiles_written = 0;
    int64_t tiles_skipped = 0;
    int64_t rows = 0, cols = 0;
    std::string index_geojson;
    std::string index_csv;
    std::string format;
    std::string data_type;
};

TileExportResult export_tiles(const TileExportOptions& options, const ProgressFn& progress = {});

}  // namespace rsi
