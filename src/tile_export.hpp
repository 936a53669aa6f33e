#pragma once
// `rsi tile`: cut an image into georeferenced tile files plus an index, reading each source block
// about once (a strip of tiles is read in one request) at memory bounded by one tile row.
//
// Scale-out (docs/CLUSTER.md): `shard` K/N writes the tiles of a contiguous block of tile rows
// (shard_strips over the grid rows) straight into the shared OUTDIR, each tile under a temporary name
// renamed into place when complete, plus an index part `shard-K-of-N.json` in the parts folder
// INDEX.parts (default OUTDIR/index.geojson.parts, beside job.json, which every shard checks against
// its own options). merge_tile_index() writes the index once every part is there, byte-identical to an
// unsharded run's, and removes the parts folder. `resume` keeps the tiles an interrupted run with the
// same options finished (a tile exists under its final name only when complete).
#include <optional>
#include <string>
#include <vector>

#include "src/strip_journal.hpp"
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
    std::optional<ShardSpec> shard;  // only this shard's tile rows, and an index part instead of the index
    bool resume = false;        // keep the finished tiles of an interrupted run with the same options
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
    // Sharded or resumed runs: this shard's tile rows [first_row, end_row), tiles found finished.
    int64_t first_row = 0, end_row = 0, tiles_resumed = 0;
    std::string parts_dir;      // where the index part went (sharded) or the resume state was kept
    bool index_written = true;  // false for a shard: merge_tile_index() writes the index
    // "geotiff-template": GeoTIFF tiles written from a checked template (geotiff_tile_template.hpp);
    // "gdal": every tile created through its GDAL driver (other formats, -co options, self-check failed).
    std::string tile_writer;
    std::vector<std::string> warnings;  // e.g. an image without georeferencing (pixel-coordinate index)
};

TileExportResult export_tiles(const TileExportOptions& options, const ProgressFn& progress = {});

// The parts folder of a sharded or resumed run writing `index_path` (empty: OUTDIR/index.geojson).
std::string tile_parts_dir(const std::string& output_dir, const std::string& index_path);

struct TileIndexMergeOptions {
    std::string output_dir;   // the OUTDIR every shard wrote into
    std::string index_path;   // as given to the shards (empty: OUTDIR/index.geojson)
    bool overwrite = false;   // replace an existing index
};

struct TileIndexMergeResult {
    int shards = 0;
    int64_t tiles_total = 0, tiles_written = 0, tiles_skipped = 0, rows = 0, cols = 0;
    std::string index_geojson, index_csv;
};

// Checks that every shard's index part is present and that every tile it lists is in OUTDIR (and no
// tile of another job is), then writes the GeoJSON + CSV index an unsharded run writes and removes
// the parts folder. Throws an Error naming the missing shards or files.
TileIndexMergeResult merge_tile_index(const TileIndexMergeOptions& options, const ProgressFn& progress = {});

}  // namespace rsi
