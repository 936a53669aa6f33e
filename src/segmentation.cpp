#include "src/segmentation.hpp"
#include "src/json_text.hpp"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <cpl_string.h>
#include <gdal_utils.h>
#include <cmath>
#include <fstream>
#include <functional>
#include <iterator>
#include <malloc.h>
#include <map>
#include <mutex>
#include <tuple>
#include <numeric>
#include <opencv2/imgproc.hpp>
#include <thread>

#include "src/band_mapping.hpp"
#include "src/class_map_outputs.hpp"
#include "models/runtime_info.hpp"
#include "src/model_runners.hpp"
#include "src/output_file.hpp"
#include "src/raster_writer.hpp"
#include "src/run_manifest.hpp"
#include "src/shard_lock.hpp"
#include "src/tta_inference.hpp"
#include "tiling/bounded_queue.hpp"
#include "tiling/first_error.hpp"
#include "tiling/error.hpp"
#include "tiling/ground_distance.hpp"
#include "tiling/recycle_bin.hpp"
#include "tiling/reorder_buffer.hpp"
#include "tiling/strip_accumulator.hpp"
#include "tiling/tile_reader.hpp"
#include "tiling/warped_vrt.hpp"

namespace rsi {

Tta parse_tta(std::string_view text) {
    if (text == "none") return Tta::none;
    if (text == "flip") return Tta::flip;
    if (text == "d4") return Tta::d4;
    throw usage_error("--tta: unknown augmentation '" + std::string(text) + "' (expected none, flip or d4)");
}

const char* to_string(Tta tta) {
    switch (tta) {
        case Tta::none: return "none";
        case Tta::flip: return "flip";
        case Tta::d4: return "d4";
    }
    return "?";
}

ProbabilityFormat parse_probability_format(std::string_view text) {
    if (text == "float32" || text == "Float32") return ProbabilityFormat::float32;
    if (text == "byte" || text == "Byte") return ProbabilityFormat::byte;
    throw usage_error("--probability-format: unknown format '" + std::string(text) + "' (expected float32 or byte)");
}

namespace {

struct TileSlot {
    Tile tile;
    int64_t slot = 0;   // position in the batch
    bool empty = true;  // no valid pixel: not run, written as nodata
    std::vector<uint8_t> validity;
};

struct Batch {
    int64_t index = 0;  // batch k holds global tiles [k*B, (k+1)*B), whoever runs them
    std::vector<TileSlot> slots;
    std::vector<float> input;   // B x C x T x T, zeros where a slot is empty or absent
    std::vector<float> output;  // B x K x T x T probabilities
    bool run = false;
};


// Output stride > 1: bring each probability plane back to the tile size.
void upsample(std::vector<float>& planes, int64_t count, int64_t from, int64_t to) {
    std::vector<float> out(static_cast<size_t>(count * to * to));
    for (int64_t p = 0; p < count; ++p) {
        const cv::Mat src(static_cast<int>(from), static_cast<int>(from), CV_32F, planes.data() + p * from * from);
        cv::Mat dst(static_cast<int>(to), static_cast<int>(to), CV_32F, out.data() + p * to * to);
        cv::resize(src, dst, dst.size(), 0, 0, cv::INTER_LINEAR);
    }
    planes.swap(out);
}

bool any_valid(const std::vector<uint8_t>& v) {
    for (uint8_t x : v) {
        if (x) return true;
    }
    return false;
}

// First and one-past-last image rows of output strip `r`: the rows released after tile row r.
int64_t strip_start(const TileGrid& grid, int64_t r) { return r == 0 ? 0 : std::max<int64_t>(0, grid.at(r, 0).window.y); }
int64_t strip_end(const TileGrid& grid, int64_t r, int64_t height) {
    return r + 1 < grid.rows() ? grid.at(r + 1, 0).window.y : height;
}

// Writes the outputs from every strip part in order, as the direct run would have from its rows.
void assemble_parts(const std::string& parts_dir, const nlohmann::json& job, const SegmentOptions& options,
                    const models::ModelMetadata& meta, const ProgressFn& progress, std::vector<int64_t>& class_pixels,
                    int64_t& nodata_pixels) {
    const RasterInfo info = georeference_from_job(job);
    ClassMapOutputs outputs(options, info, meta);
    const auto strips = job.at("strip_rows").get<std::vector<std::pair<int64_t, int64_t>>>();
    const std::string fingerprint = job.at("fingerprint").get<std::string>();
    const int K = static_cast<int>(meta.classes.size());
    std::vector<float> probabilities;
    std::vector<uint8_t> valid;
    for (size_t r = 0; r < strips.size(); ++r) {
        const auto [y0, y1] = strips[r];
        const std::string part = (std::filesystem::path(parts_dir) / StripJournal::part_name(static_cast<int64_t>(r))).string();
        read_strip_part(part, fingerprint, K, info.width, y1 - y0, probabilities, valid);
        outputs.write_rows(y0, y1 - y0, probabilities.data(), valid.data());
        report_progress(progress, static_cast<double>(r + 1) / static_cast<double>(strips.size()), "assembling");
    }
    outputs.finish();
    class_pixels = outputs.class_pixels();
    nodata_pixels = outputs.nodata_pixels();
}

// Paths absolute (input_path_for_job): a merge run from another directory with a parts folder of its
// own name (--parts-dir) writes where the shards were asked to, not relative to its own directory.
nlohmann::json output_settings(const SegmentOptions& o) {
    return o.recorded_outputs.is_null() ? segmentation_output_settings(o) : o.recorded_outputs;
}

}  // namespace

nlohmann::json segmentation_output_settings(const SegmentOptions& o) {
    return {{"output", output_path_for_job(o.output)},
            {"probabilities", output_path_for_job(o.probabilities)},
            {"probability_format", o.probability_format == ProbabilityFormat::byte ? "byte" : "float32"},
            {"probability_class", o.probability_class},
            {"uncertainty", o.uncertainty},
            {"min_confidence", o.min_confidence},
            {"format", o.format},
            {"creation_options", o.creation_options}};
}

namespace {

// --tile-size auto: of the tiles the memory budget allows (up to 4x the model's, no larger than the
// image), the one whose grid computes the fewest pixels. A larger tile recomputes fewer overlap
// pixels (at overlap 128, 44 % of a 512² tile's pixels are shared with a neighbour, 23 % of a
// 1024² tile's), but only a grid with fewer tiles gains: a 2000² image takes 25 tiles of 512 and
// still 25 of 576, but 16 of 608. Journaled runs keep the model's tile: shards and resumes must agree
// on the grid, and the measurement can differ between processes. So does a model that cannot run
// the chosen size.
int64_t auto_tile_size(const models::Model& model, const GridSpec& spec, int64_t W, int64_t H, bool journaled, int64_t budget,
                       const std::function<int64_t(int64_t)>& pipeline_bytes) {
    const models::ModelMetadata& meta = model.metadata();
    const int64_t native = spec.tile_width;  // the model's tile, or the image as one tile
    if (journaled) return native;
    const int64_t m = std::lcm<int64_t>(std::max<int64_t>(1, meta.multiple_of), std::max<int64_t>(1, meta.output_stride));
    const int64_t largest = std::min<int64_t>(4 * native, (std::max(W, H) + m - 1) / m * m) / m * m;
    if (largest <= native) return native;
    const auto computed_pixels = [&](int64_t tile) {
        GridSpec s = spec;
        s.tile_width = s.tile_height = tile;
        return TileGrid(W, H, s).count() * tile * tile;
    };
    const double at_native = static_cast<double>(model.first_forward_bytes(native, native));
    int64_t best = native, best_pixels = computed_pixels(native);
    for (int64_t tile = native + m; tile <= largest; tile += m) {
        // Activations grow with the tile's area; the same share of the budget as the batch choice.
        const auto forward = static_cast<int64_t>(at_native * static_cast<double>(tile * tile) / static_cast<double>(native * native));
        if (forward > (budget - pipeline_bytes(tile)) / 2 * 3 / 4) break;
        const int64_t pixels = computed_pixels(tile);
        if (pixels < best_pixels) {
            best = tile;
            best_pixels = pixels;
        }
    }
    if (best == native) return native;
    try {
        model.first_forward_bytes(best, best);  // the network runs at this size
    } catch (const Error&) {
        return native;
    }
    return best;
}

// What can be refused before any pixel is read; segment_image checks it before choosing the path
// (a resampled run changes some options for its inner run).
void check_segment_options(const models::Model& model, const SegmentOptions& options) {
    const models::ModelMetadata& meta = model.metadata();
    if (meta.task != models::Task::segmentation) {
        throw usage_error(model.path() + ": model " + meta.name + " is a " + models::to_string(meta.task) +
                          " model, not a segmentation model");
    }
    if (!options.shard) {
        check_output_file(options.output, options.overwrite);
        if (!options.probabilities.empty()) check_output_file(options.probabilities, options.overwrite);
        check_distinct_outputs({options.output, options.probabilities}, {options.input});
    }
    const int classes = static_cast<int>(meta.classes.size());
    if (options.probability_class < -1 || options.probability_class >= classes) {
        throw usage_error("--probability-class " + std::to_string(options.probability_class) + ": " + model.path() + " has " +
                          std::to_string(classes) + " classes (0 to " + std::to_string(classes - 1) + ")");
    }
    if (options.uncertainty && options.probabilities.empty()) {
        throw usage_error("--uncertainty adds a band to the probability raster: give --probabilities too");
    }
    if (options.min_confidence < 0 || options.min_confidence > 1) throw usage_error("--min-confidence must be in [0, 1]");
    if (options.overlap < -1) throw usage_error("--overlap " + std::to_string(options.overlap) + " must be 0 or more");
    if (options.tile_size < 0 && options.tile_size != kAutoTileSize) {
        throw usage_error("--tile-size " + std::to_string(options.tile_size) + " must be positive (or auto)");
    }
    // Whatever the image's size: a small image in one tile would otherwise accept what a large one refuses.
    const int64_t tile = options.tile_size > 0 ? options.tile_size : options.tile_size == 0 ? meta.tile_size : 0;
    if (tile > 0 && options.overlap >= tile) {
        throw usage_error("--overlap " + std::to_string(options.overlap) + " must be smaller than the tile size " + std::to_string(tile));
    }
    if (options.batch < 0) throw usage_error("--batch " + std::to_string(options.batch) + " must be positive (or 0: from --ram)");
}

SegmentResult segment_native(const models::Model& model, const SegmentOptions& options, const ProgressFn& progress,
                             bool pixel_size_handled) {
    const auto start = std::chrono::steady_clock::now();
    const models::ModelMetadata& meta = model.metadata();
    const std::string command = "segment";
    const bool journaled = options.resume || options.shard.has_value();
    check_segment_options(model, options);

    report_progress(progress, 0.0, "planning");
    const RasterSource source = RasterSource::open(options.input);
    const RasterInfo& info = source.info();
    const BandMapping mapping = map_bands(source, meta, options.bands, command, options.strict, pixel_size_handled);

    if (options.tile_size < 0 && options.tile_size != kAutoTileSize) throw usage_error("--tile-size must be positive or auto");
    GridSpec spec;
    spec.tile_width = spec.tile_height = options.tile_size > 0 ? options.tile_size : meta.tile_size;
    spec.overlap = options.overlap >= 0 ? options.overlap : meta.overlap;
    // The model's pixel lattice: its downsampling (multiple_of) and its output stride.
    const int64_t lattice = std::lcm<int64_t>(std::max<int64_t>(1, meta.multiple_of), std::max<int64_t>(1, meta.output_stride));
    if (options.tile_size <= 0 && std::max(info.width, info.height) < spec.tile_width) {
        // An image smaller than the model's tile (a 256² contest crop, a 512 model) is one tile of its own
        // size rounded up to the model's multiple, not a tile mostly made of edge padding: the network
        // then sees the image as it was trained to (inria/test IoU 0.433 padded vs 0.455 at crop size).
        spec.tile_width = spec.tile_height = (std::max(info.width, info.height) + lattice - 1) / lattice * lattice;
        spec.overlap = 0;  // one tile covers the image
    }
    // Tile origins stay on the lattice of the model's downsampling (multiple_of), not only on its output
    // stride: a network that halves the resolution four times predicts differently for an image moved
    // by a few pixels (buildings.pt, the same 2000² image moved by 4 px: building IoU 0.88 between the
    // two masks; by 16 px: identical), so tiles off that lattice disagree with their neighbours and the
    // mask would change with the tile size. Origins on it make a tiled mask equal a whole-image run
    // away from the tile borders. The overlap is raised to keep the stride on the lattice.
    std::vector<std::string> grid_warnings;
    if (spec.overlap % lattice != 0) {
        const int64_t raised = (spec.overlap / lattice + 1) * lattice;
        grid_warnings.push_back("--overlap " + std::to_string(spec.overlap) + " raised to " + std::to_string(raised) +
                                  ": tile origins stay on the model's " + std::to_string(lattice) + "-pixel lattice");
        spec.overlap = raised;
    }
    if (options.overlap >= 0 && spec.overlap < 2 * meta.halo && std::max(info.width, info.height) > spec.tile_width) {
        // --overlap 0 left seams of up to 0.45 in probability without a word.
        grid_warnings.push_back("--overlap " + std::to_string(spec.overlap) + " is less than twice the model's receptive-field halo (" +
                                std::to_string(meta.halo) + " px): tile borders lack context and seams may show (--overlap " +
                                std::to_string(2 * meta.halo) + " or more avoids them)");
    }
    spec.edge = options.edge;
    spec.align = lattice;
    spec.spread_rows = true;  // consecutive tile rows share ~overlap rows, never a whole tile (accumulator memory)
    const int64_t C = meta.bands;
    const int64_t K = static_cast<int64_t>(meta.classes.size());
    const int64_t W = info.width, H = info.height;

    const bool pad_with_zero = options.edge != EdgePolicy::reflect;
    EdgeFill edge;
    edge.mode = options.edge == EdgePolicy::reflect ? EdgeFill::Mode::reflect : EdgeFill::Mode::constant;

    // Memory plan: one tile row of accumulated probabilities, the output chunks, batches in flight.
    const int64_t budget = options.memory_budget_mb * 1024 * 1024;
    // Probabilities rsi computed itself (softmax or sigmoid of logits) sum to 1, so the blending
    // weight is the sum of the blended values and needs no plane of its own.
    const auto accumulator_weights = meta.output == "logits" ? StripAccumulator::Weights::sum_of_values : StripAccumulator::Weights::stored;
    const int64_t accumulator_planes = K + (accumulator_weights == StripAccumulator::Weights::stored ? 1 : 0);
    const int64_t prob_bands = options.probabilities.empty() ? 0 : (options.probability_class >= 0 ? 1 : K) + (options.uncertainty ? 1 : 0);
    // The reader caches a tile row (for tiled sources: in segments of about 4096 columns, so its strip
    // does not grow with the width) in the source's own type (e.g. Byte: float tiles are converted as
    // they are cut).
    const GDALDataType strip_type = compact_strip_type(info, mapping.source_bands, GDT_Float32, edge);
    // What the pipeline itself holds for tiles of side `tile` (everything but the model's batches).
    const auto pipeline_bytes = [&](int64_t tile) {
        GridSpec s = spec;
        s.tile_width = s.tile_height = tile;
        const TileGrid g(W, H, s);
        // The accumulator: the rows two tile rows share, full width (about the overlap: the shift
        // policy's move is spread over all tile rows; bounded here by a tile height), plus a few chunks.
        const int64_t strip = accumulator_planes * 4 * (W + 4 * 256) * tile;
        // Output rows of one strip (plain runs: class bytes and probability bands; journaled: floats).
        const int64_t writer = 256 * W * (1 + 4 * prob_bands) + (journaled ? (K + 1) * 4 : 1 + 4 * prob_bands) * W * tile;
        const int64_t reader = std::min<int64_t>(
            widest_row_segment(g, row_segment_tiles(info, mapping.source_bands, g)) * tile * (C * GDALGetDataTypeSizeBytes(strip_type) + 1),
            budget / 4);
        return strip + writer + reader;
    };
    if (options.tile_size == kAutoTileSize) {
        spec.tile_width = spec.tile_height = auto_tile_size(model, spec, W, H, journaled, budget, pipeline_bytes);
    }
    if (spec.tile_width % meta.multiple_of != 0) {
        throw usage_error("--tile-size " + std::to_string(spec.tile_width) + " is not a multiple of " +
                          std::to_string(meta.multiple_of) + " as model " + meta.name + " needs");
    }
    const TileGrid grid(info.width, info.height, spec);
    const int64_t T = spec.tile_width;
    const int64_t segment_tiles = row_segment_tiles(info, mapping.source_bands, grid);
    const int64_t remaining = budget - pipeline_bytes(T);
    if (remaining <= 0) {
        const int64_t ram = options.ram_mb > 0 ? options.ram_mb : options.memory_budget_mb;
        // The pipeline's share of --ram, and a little for the model's first batch (rounded up).
        const int64_t needed = (pipeline_bytes(T) / 1048576 + 16) * ram / std::max<int64_t>(1, options.memory_budget_mb) + 1;
        throw usage_error(command + ": --ram " + std::to_string(ram) + " MB is too small for a " + std::to_string(W) +
                          "-pixel-wide strip of " + std::to_string(T) + "-pixel tiles (give --ram " + std::to_string(needed) +
                          " or more)");
    }
    const int64_t per_batch_tile = (C + K) * T * T * 4 + T * T;  // buffers of one tile in a batch
    // Journaled runs take a fixed batch of 4 whatever the budget (below); a second runner would double
    // those activations, so they keep one unless asked. The runner count never changes the outputs.
    ModelRunners runners = model_runners(model, journaled && options.model_runners == 0 ? 1 : options.model_runners);
    // A small --ram: each runner holds a forward's activations (~180 MB for the building model's
    // 512² tile), so automatic runners are as many as half the remaining budget holds, at least one
    // (--ram 64: 370 MB peak instead of 553 MB, as fast on two cores). Probed only when tight.
    if (options.model_runners == 0 && runners.count > 1 && model.device() == "cpu" && remaining / 2 < (int64_t{256} << 20)) {
        const int64_t forward = model.first_forward_bytes(T, T);
        const int64_t fit = std::max<int64_t>(1, remaining / 2 / std::max<int64_t>(1, forward));
        if (fit < runners.count) runners = model_runners(model, static_cast<int>(fit));
    }
    // Batches in flight: two queued for the runners, one in each runner, two per runner queued for
    // the writer, one per runner waiting for its turn there, one being blended.
    const int64_t batches_in_flight = 3 + 4 * runners.count;
    int64_t B = options.batch;
    const std::string parts_dir = options.parts_dir.empty() ? options.output + ".parts" : options.parts_dir;
    if (journaled && B <= 0 && std::filesystem::exists(std::filesystem::path(parts_dir) / "job.json")) {
        // Batches are anchored to the global tile index: a resumed or sibling shard must use the same size.
        B = read_job(parts_dir).value("batch", int64_t{0});
    }
    if (B <= 0) {
        const int64_t by_buffers = std::max<int64_t>(1, remaining / 2 / (batches_in_flight * per_batch_tile));
        // The model's own estimate is measured (peak RSS), so it can differ between processes; shards
        // and resumed runs must agree on the batch (batches are anchored to the tile index), so they
        // take a fixed default that depends only on the options.
        const int64_t by_model = journaled ? 4 : model.batch_size_for(remaining / 2 / runners.count, T, T);
        B = std::max<int64_t>(1, std::min({by_buffers, by_model, grid.count()}));
    }
    // A --batch beyond the tile count would run (and hold) zero-padded tiles: 64 for a one-tile image
    // took 7x the time and 1.9 GB.
    B = std::min(B, std::max<int64_t>(1, grid.count()));

    SegmentResult result;
    result.tile_size = T;
    result.overlap = spec.overlap;
    result.output = options.output;
    result.probabilities = options.probabilities;
    result.width = W;
    result.height = H;
    result.tiles = grid.count();
    result.batch = B;
    result.model_runners = runners.count;
    result.warnings = mapping.warnings;
    result.source_bands = mapping.source_bands;
    result.band_rescale = mapping.rescale;
    result.warnings.insert(result.warnings.end(), grid_warnings.begin(), grid_warnings.end());
    result.class_pixels.assign(static_cast<size_t>(K), 0);
    result.peak_buffer_bytes = pipeline_bytes(T) + batches_in_flight * B * per_batch_tile;
    if (const auto ground = ground_pixel_size(info)) result.pixel_area_m2 = ground->x_m * ground->y_m;

    // Outputs, written under temporary names until complete (journaled runs: at assembly).
    if (options.probability_class >= K) throw usage_error("--probability-class: the model has " + std::to_string(K) + " classes");
    std::unique_ptr<ClassMapOutputs> outputs;
    if (!journaled) outputs = std::make_unique<ClassMapOutputs>(options, info, meta);

    // Journaled runs: which strips to compute, and from which tile row (the rows above whose tiles
    // still blend into the first strip are run again, unwritten, so every pixel sums the same terms in
    // the same order as an uninterrupted run).
    const int64_t R = grid.rows(), cols = grid.cols();
    int64_t first_tile = 0, end_tile = grid.count(), first_strip = 0, end_strip = R;
    std::unique_ptr<StripJournal> journal;
    nlohmann::json job;
    if (journaled) {
        const std::string identity = options.fingerprint_input.empty() ? options.input : options.fingerprint_input;
        nlohmann::json fingerprint_settings{
            {"input", std::filesystem::path(identity).filename().string()},
            {"width", W}, {"height", H}, {"bands", mapping.source_bands},
            {"model", meta.weights_sha256}, {"model_name", meta.name},
            {"tile", T}, {"overlap", spec.overlap}, {"edge", to_string(options.edge)}, {"blend", to_string(options.blend)},
            {"tta", to_string(options.tta)}, {"batch", B}, {"resampled", pixel_size_handled},
            // Every part must come from the same numbers: the metadata as overridden (--mean, --std,
            // --input-scale, ...) and the precision the model runs at.
            {"model_metadata", sha256_hex(json_text(meta.to_json()))}, {"precision", models::to_string(model.precision())}};
        try {
            fingerprint_settings["input_fingerprint"] = file_fingerprint(identity);
        } catch (const std::exception&) {
            fingerprint_settings["input_fingerprint"] = identity;  // e.g. a remote URL
        }
        const std::string fingerprint = sha256_hex(json_text(fingerprint_settings));
        std::vector<std::pair<int64_t, int64_t>> strip_rows;
        for (int64_t r = 0; r < R; ++r) strip_rows.emplace_back(strip_start(grid, r), strip_end(grid, r, H));
        job = {{"format", "rsi-segmentation-job"}, {"version", 1}, {"fingerprint", fingerprint},
               {"settings", fingerprint_settings}, {"shards", options.shard ? options.shard->count : 1},
               {"batch", B}, {"model", meta.to_json()}, {"strip_rows", strip_rows},
               {"outputs", output_settings(options)}, {"input", input_path_for_job(options.input)}};
        job.update(georeference_to_job(info));
        if (!options.image_grid.is_null()) job["image_grid"] = options.image_grid;
        job = write_or_check_job(parts_dir, job);
        const ShardSpec shard = options.shard.value_or(ShardSpec{});
        check_shard_count(job, shard, parts_dir);
        journal = std::make_unique<StripJournal>(parts_dir, fingerprint, shard);
        if (!options.shard && options.keep_parts) result.parts_lock = journal->lock();  // the caller finishes with the parts
        std::tie(first_strip, end_strip) = shard_strips(R, shard);
        result.shard_strips = end_strip - first_strip;
        while (first_strip < end_strip && journal->done(first_strip)) {
            ++first_strip;
            ++result.strips_resumed;
        }
        int64_t first_row = first_strip;
        while (first_row > 0 && first_row < end_strip && grid.at(first_row - 1, 0).window.bottom() > strip_start(grid, first_strip)) --first_row;
        first_tile = first_strip < end_strip ? first_row * cols : 0;
        end_tile = first_strip < end_strip ? end_strip * cols : 0;
        result.strips = R;
        result.parts_dir = parts_dir;
    }

    BoundedQueue<Batch> to_model(2), to_writer(static_cast<size_t>(2 * runners.count));
    // Inputs, outputs and validity buffers circulate reader -> runner -> writer and back.
    RecycleBin<float> spare_inputs, spare_outputs;
    RecycleBin<uint8_t> spare_validity;
    FirstError failure;
    // Batches are anchored to the global tile index: batch k holds tiles [k*B, (k+1)*B) in every run.
    const int64_t first_batch = first_tile / B;
    const int64_t end_batch = end_tile > first_tile ? (end_tile - 1) / B + 1 : first_batch;

    // Reader: its own dataset handle (GDAL datasets are not shared between threads).
    const bool check_finite = may_hold_non_finite(info, mapping.source_bands);  // NaN/Inf only in float bands
    std::thread reader([&] {
        try {
            const RasterSource own = source.reopen();
            TileReader tiles(own, grid, mapping.source_bands, GDT_Float32, edge, true, budget / 4, strip_type, segment_tiles);
            std::vector<float> raw(static_cast<size_t>(C * T * T));
            for (int64_t k = first_batch; k < end_batch; ++k) {
                Batch batch;
                batch.index = k;
                batch.input = spare_inputs.take();
                batch.input.assign(static_cast<size_t>(B * C * T * T), 0.0f);
                for (int64_t i = k * B; i < std::min((k + 1) * B, grid.count()); ++i) {
                    TileSlot slot;
                    slot.tile = grid.at(i);
                    slot.slot = i - k * B;
                    slot.validity = spare_validity.take();
                    slot.validity.resize(static_cast<size_t>(T * T));
                    tiles.read(slot.tile, raw.data(), slot.validity.data());
                    if (check_finite) mask_non_finite(raw.data(), static_cast<int>(C), T * T, slot.validity.data());
                    slot.empty = !any_valid(slot.validity);
                    if (!slot.empty) {
                        mapping.normalizer.apply(raw.data(), static_cast<size_t>(C), T * T);
                        // Nodata pixels, and padding outside the image, become 0 in model space
                        // (the dataset mean), which is what the network's own zero padding sees.
                        const PixelWindow& w = slot.tile.window;
                        const PixelWindow& v = slot.tile.valid;
                        for (int64_t y = 0; y < T; ++y)
                            for (int64_t x = 0; x < T; ++x) {
                                const bool inside = w.x + x >= v.x && w.x + x < v.right() && w.y + y >= v.y && w.y + y < v.bottom();
                                if (slot.validity[static_cast<size_t>(y * T + x)] || (!inside && !pad_with_zero)) continue;
                                for (int64_t c = 0; c < C; ++c) raw[static_cast<size_t>((c * T + y) * T + x)] = 0.0f;
                            }
                        std::copy(raw.begin(), raw.end(), batch.input.begin() + slot.slot * C * T * T);
                        batch.run = true;
                    }
                    batch.slots.push_back(std::move(slot));
                }
                if (!to_model.push(std::move(batch))) return;
            }
        } catch (...) {
            failure.record(std::current_exception());
        }
        to_model.close();
    });

    double model_seconds = 0;  // the runners' time inside the forward calls, summed
    std::mutex model_seconds_mutex;
    std::atomic<int> runners_left{runners.count};
    const auto run_batches = [&](int threads) {
        try {
            if (threads > 0) models::set_inference_threads_of_this_thread(threads);
            double seconds = 0;
            while (auto batch = to_model.pop()) {
                if (batch->run) {
                    const auto t0 = std::chrono::steady_clock::now();
                    batch->output = spare_outputs.take();
                    run_with_tta(model, options.tta, {B, C, T, T}, batch->input, batch->output);
                    const int64_t side = T / meta.output_stride;
                    if (side != T) upsample(batch->output, B * K, side, T);
                    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                }
                spare_inputs.give(std::move(batch->input));
                if (!to_writer.push(std::move(*batch))) break;
            }
            const std::lock_guard<std::mutex> lock(model_seconds_mutex);
            model_seconds += seconds;
        } catch (...) {
            failure.record(std::current_exception());
            to_model.close();  // the reader, the writer and the other runners stop too
            to_writer.close();
        }
        if (--runners_left == 0) to_writer.close();
    };
    std::vector<std::thread> runner_threads;
    for (int r = 0; r < runners.count; ++r) runner_threads.emplace_back(run_batches, runners.threads[static_cast<size_t>(r)]);

    // Writer (this thread): blend, release finished rows, write them.
    auto stop_workers = [&] {
        to_model.close();
        to_writer.close();
        if (reader.joinable()) reader.join();
        for (std::thread& t : runner_threads) {
            if (t.joinable()) t.join();
        }
    };
    try {
        const int64_t region_y = first_tile < end_tile ? strip_start(grid, first_tile / cols) : 0;
        StripAccumulator accumulator(static_cast<int>(K), {0, region_y, W, H - region_y}, T, 256, accumulator_weights);
        int64_t finished_row = -1;  // the tile row whose strip is being released
        std::map<int, std::vector<float>> weight_cache;
        std::vector<float> weights(static_cast<size_t>(T * T));
        std::vector<uint8_t> valid_span;
        // Journaled runs commit whole strips (one part file each): spans are gathered full width.
        std::vector<float> strip_values, strip_weights;
        int64_t strip_y = 0, strip_rows = 0;
        const auto sink = [&](int64_t y, int64_t rows, int64_t x, int64_t span, const float* values, const float* weight) {
            if (!journal) {
                valid_span.resize(static_cast<size_t>(rows * span));
                for (int64_t p = 0; p < rows * span; ++p) valid_span[static_cast<size_t>(p)] = weight[p] > 0;
                outputs->write_span(y, rows, x, span, values, valid_span.data());
                return;
            }
            if (finished_row < first_strip || finished_row >= end_strip) return;  // a halo row, run only for its blending terms
            strip_y = y;
            strip_rows = rows;
            strip_values.resize(static_cast<size_t>(K * rows * W));
            strip_weights.resize(static_cast<size_t>(rows * W));
            for (int64_t j = 0; j < rows; ++j) {
                for (int64_t c = 0; c < K; ++c) {
                    std::copy_n(values + (c * rows + j) * span, span, strip_values.data() + (c * rows + j) * W + x);
                }
                std::copy_n(weight + j * span, span, strip_weights.data() + j * W + x);
            }
        };
        // After the last span of a strip: write it.
        const auto flush = [&] {
            if (!journal) {
                outputs->flush_band();
            } else if (finished_row >= first_strip && finished_row < end_strip && strip_rows > 0) {
                journal->commit(finished_row, strip_y, strip_rows, W, static_cast<int>(K), strip_values.data(), strip_weights.data());
                ++result.strips_run;
                strip_rows = 0;
            }
        };

        int64_t done = 0;
        // Runners finish out of order; tiles are blended in grid order (the sums of every pixel in the
        // same order in every run, and rows released as the tiles move past them).
        ReorderBuffer<Batch> in_order(first_batch);
        const auto blend_batch = [&](Batch* batch) {
            for (const TileSlot& slot : batch->slots) {
                const Tile& t = slot.tile;
                const int64_t index = t.row * cols + t.col;
                if (index < first_tile || index >= end_tile) continue;  // shares a batch, outside this run
                if (!slot.empty) {
                    const bool top = t.window.y <= 0, bottom = t.window.bottom() >= H;
                    const bool left = t.window.x <= 0, right = t.window.right() >= W;
                    const int key = top | bottom << 1 | left << 2 | right << 3;
                    auto it = weight_cache.find(key);
                    if (it == weight_cache.end()) {
                        it = weight_cache.emplace(key, blend_weights(options.blend, T, T, spec.overlap, meta.halo, top, bottom, left, right)).first;
                    }
                    for (int64_t p = 0; p < T * T; ++p) {
                        weights[static_cast<size_t>(p)] = slot.validity[static_cast<size_t>(p)] ? it->second[static_cast<size_t>(p)] : 0.0f;
                    }
                    accumulator.add(t.window, batch->output.data() + slot.slot * K * T * T, weights.data());
                    ++result.tiles_run;
                } else {
                    ++result.tiles_skipped;
                }
                // Rows above the next tile row are final once the tiles have moved past their columns.
                finished_row = t.row;
                const int64_t strip_end_row = t.row + 1 < grid.rows() ? grid.at(t.row + 1, 0).window.y : H;
                if (t.col + 1 < grid.cols()) {
                    accumulator.release_columns(strip_end_row, grid.at(t.row, t.col + 1).window.x, sink);
                } else {
                    accumulator.release_until(strip_end_row, sink);
                    flush();
                }
                report_progress(progress, 0.95 * static_cast<double>(++done) / static_cast<double>(std::max<int64_t>(1, end_tile - first_tile)),
                                "tiles");
            }
            spare_outputs.give(std::move(batch->output));
            for (TileSlot& slot : batch->slots) spare_validity.give(std::move(slot.validity));
        };
        while (auto batch = to_writer.pop()) {
            in_order.add(batch->index, std::move(*batch));
            while (auto next = in_order.take_next()) blend_batch(&*next);
        }
        stop_workers();
        failure.rethrow_if_any();
        if (done != end_tile - first_tile) throw Error(command + ": the pipeline stopped early");
        if (!journal) {
            report_progress(progress, 1.0, "finishing outputs");
            outputs->finish();
            result.class_pixels = outputs->class_pixels();
            result.nodata_pixels = outputs->nodata_pixels();
            result.assembled = true;
        } else if (!options.shard) {
            assemble_parts(parts_dir, job, options, meta, [&](double f, std::string_view what) {
                return !progress || progress(0.95 + 0.05 * f, what);
            }, result.class_pixels, result.nodata_pixels);
            result.assembled = true;
            if (!options.keep_parts) {
                std::error_code ec;
                std::filesystem::remove_all(parts_dir, ec);
            }
        }
    } catch (...) {
        stop_workers();
        failure.rethrow_if_any();  // a worker's error explains the stop better than ours
        throw;
    }
    result.model_seconds = model_seconds / runners.count;  // wall time inside forward calls, per runner
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

std::string unique_vsimem(const std::string& stem) {
    static std::atomic<int> counter{0};
    return "/vsimem/rsi-" + stem + "-" + std::to_string(counter++) + ".vrt";
}

// The model-grid run of a resampled segmentation writes every class's Float32 probabilities (and a
// mask) to scratch files beside the output; its strips are journaled in the output's parts folder.
struct ModelGridScratch {
    PendingOutput mask, probabilities;
    SegmentOptions inner;
    explicit ModelGridScratch(const SegmentOptions& options)
        : mask(options.output + ".model-grid.tif", true), probabilities(options.output + ".model-grid-p.tif", true), inner(options) {
        inner.output = mask.temporary_path();
        inner.probabilities = probabilities.temporary_path();
        inner.probability_class = -1;
        inner.probability_format = ProbabilityFormat::float32;
        inner.uncertainty = false;
        inner.format = "GTiff";
        inner.creation_options = {};
        inner.overwrite = true;
        inner.min_confidence = 0;
        inner.parts_dir = options.parts_dir.empty() ? options.output + ".parts" : options.parts_dir;
        inner.keep_parts = true;
        inner.before_commit = nullptr;  // the scratch's commit is not the run's: resample_back's is
        inner.recorded_outputs = nullptr;  // the image-grid outputs are recorded in image_grid
    }
};

// Resamples the model-grid probabilities back to the image grid `image` (bilinear), takes the
// validity from the image itself (its model `bands`, NaN/Inf included, as a native run does) and
// writes every row into `outputs`.
void write_resampled(const std::string& model_grid_probabilities, const RasterInfo& image, const std::string& input,
                     const std::vector<int>& bands, int64_t classes, int64_t budget_bytes, ClassMapOutputs& outputs,
                     const ProgressFn& progress) {
    const int64_t W = image.width, H = image.height;
    const std::string back = unique_vsimem("image-grid");
    struct Cleanup {
        std::string path;
        ~Cleanup() { VSIUnlink(path.c_str()); }
    } cleanup{back};
    warp_to_vrt(model_grid_probabilities, back, image, W, H, "bilinear", "-1", false, "resampling the probabilities back");
    // Bands of 256 rows (the output's block height, and a tiled source's), read in column segments
    // that take at most a quarter of the budget (full rows of a 100000-pixel-wide image took 230 MB);
    // the VRT's blocks are one segment row tall, so each is warped once.
    constexpr int64_t kBandRows = 256, kColumnStep = 512;
    const RasterSource source = RasterSource::open(input);
    const bool check_finite = may_hold_non_finite(source.info(), bands);
    const int64_t per_column = kBandRows * ((classes + (check_finite ? static_cast<int64_t>(bands.size()) : 0)) * 4 + 1);
    const int64_t segment = std::min(W, std::max(kColumnStep, budget_bytes / 4 / per_column / kColumnStep * kColumnStep));
    set_warped_vrt_block_size(back, static_cast<int>(kColumnStep), static_cast<int>(kBandRows));
    const RasterSource probabilities = RasterSource::open(back);
    if (source.info().width != W || source.info().height != H) {
        throw Error(input + ": is " + std::to_string(source.info().width) + "x" + std::to_string(source.info().height) +
                    ", not the " + std::to_string(W) + "x" + std::to_string(H) + " image the parts were made from");
    }
    std::vector<int> prob_band_list(static_cast<size_t>(classes));
    for (int64_t c = 0; c < classes; ++c) prob_band_list[static_cast<size_t>(c)] = static_cast<int>(c + 1);
    std::vector<uint8_t> valid;
    for (int64_t y = 0; y < H; y += kBandRows) {
        const int64_t rows = std::min<int64_t>(kBandRows, H - y);
        for (int64_t x = 0; x < W; x += segment) {
            const int64_t span = std::min(segment, W - x), n = rows * span;
            const std::vector<float> p = probabilities.read_float({x, y, span, rows}, prob_band_list);
            valid.resize(static_cast<size_t>(n));
            source.read_validity({x, y, span, rows}, {}, valid.data());
            if (check_finite) {
                std::vector<float> data = source.read_float({x, y, span, rows}, bands);
                mask_non_finite(data.data(), static_cast<int>(bands.size()), n, valid.data());
            }
            for (int64_t i = 0; i < n; ++i) {
                if (p[static_cast<size_t>(i)] < 0) valid[static_cast<size_t>(i)] = 0;  // nodata on the model grid
            }
            outputs.write_span(y, rows, x, span, p.data(), valid.data());
        }
        outputs.flush_band();
        report_progress(progress, static_cast<double>(y + rows) / static_cast<double>(H), "resampling back");
    }
}

// The final outputs from the model-grid probabilities of `scratch`. The scratch files are removed
// once the outputs are complete and before they are renamed into place: a kill in between leaves only
// temporaries that a resume clears, never scratch files beside a finished output.
void resample_back(ModelGridScratch& scratch, const RasterInfo& image, const std::string& input, const std::vector<int>& bands,
                   const SegmentOptions& options, const models::ModelMetadata& meta, const ProgressFn& progress,
                   std::vector<int64_t>& class_pixels, int64_t& nodata_pixels) {
    report_progress(progress, 0.0, "resampling back");
    ClassMapOutputs outputs(options, image, meta);
    write_resampled(scratch.probabilities.temporary_path(), image, input, bands, static_cast<int64_t>(meta.classes.size()),
                    options.memory_budget_mb * 1024 * 1024, outputs,
                    progress);
    outputs.close();
    scratch.mask.discard();
    scratch.probabilities.discard();
    outputs.commit();
    class_pixels = outputs.class_pixels();
    nodata_pixels = outputs.nodata_pixels();
}


}  // namespace

SegmentResult segment_image(const models::Model& model, const SegmentOptions& options, const ProgressFn& progress) {
    check_segment_options(model, options);
    // What killed runs left beside the outputs (their temporaries, up to the size of the outputs; a
    // process still alive keeps its own). Not from one shard: the outputs are the merge's.
    if (options.remove_stale && (options.resume || !options.shard)) {
        remove_stale_temporaries(options.output);
        if (!options.probabilities.empty()) remove_stale_temporaries(options.probabilities);
    }
    const models::ModelMetadata& meta = model.metadata();
    std::optional<GroundPixelSize> ground;
    RasterInfo info;
    {
        const RasterSource source = RasterSource::open(options.input);
        info = source.info();
        ground = ground_pixel_size(info);
    }
    const double fx = ground ? ground->x_m / meta.gsd_m : 1, fy = ground ? ground->y_m / meta.gsd_m : 1;
    const bool differs = std::abs(fx - 1) > 0.1 || std::abs(fy - 1) > 0.1;
    // The virtual copy at the model's pixel size is a north-up grid over the image's extent: an image
    // that is rotated or south-up would come back mirrored or misplaced, so it runs at its own pixel
    // size instead. A resampling by more than 4x either way usually means wrong georeferencing (or
    // the wrong model) and costs up to 16x the work: said, and refused with --strict.
    const auto& g = info.geotransform;
    const bool north_up = g[2] == 0 && g[4] == 0 && g[1] > 0 && g[5] < 0;
    std::vector<std::string> notes;
    const auto pixel_text = [&](double metres) {
        std::ostringstream out;
        out.precision(4);
        out << metres << " m";
        return out.str();
    };
    if (options.resample && ground && differs && meta.gsd_known) {
        const std::string sizes = "the image's pixel size " + pixel_text((ground->x_m + ground->y_m) / 2) + " differs from the " +
                                  pixel_text(meta.gsd_m) + " model " + meta.name + " was trained at";
        if (!north_up) {
            notes.push_back(sizes + ", but the image is not north-up (rotated or south-up), so it is segmented at its own pixel size; "
                                    "warp it north-up first (gdalwarp) to resample");
        } else if (std::max(fx, fy) > 4 || std::min(fx, fy) < 0.25) {
            std::ostringstream factor;
            factor.precision(3);
            factor << (fx + fy) / 2;
            notes.push_back(sizes + ": resampled by x" + factor.str() + " (check the georeferencing, or use a model for this resolution)");
        }
    }
    if (options.strict && !notes.empty()) throw Error(options.input + ": " + notes.front() + " (--strict)");
    if (!options.resample || !ground || !differs || !meta.gsd_known || !north_up) {
        SegmentResult result = segment_native(model, options, progress, false);
        result.warnings.insert(result.warnings.end(), notes.begin(), notes.end());
        return result;
    }
    // 1. Segment a virtual copy of the image at the model's pixel size (same extent), keeping the
    //    probabilities of every class. 2. Resample them back to the image grid, then argmax.
    if (!options.shard) {
        check_output_file(options.output, options.overwrite);
        if (!options.probabilities.empty()) check_output_file(options.probabilities, options.overwrite);
    }
    info = georeference_from_job(georeference_to_job(info));  // what a merge of shards has: the same grid
    const int64_t W = info.width, H = info.height;
    const int64_t mw = std::max<int64_t>(1, std::llround(static_cast<double>(W) * fx));
    const int64_t mh = std::max<int64_t>(1, std::llround(static_cast<double>(H) * fy));
    const std::string model_grid = unique_vsimem("model-grid");
    struct Cleanup {
        std::string path;
        ~Cleanup() { VSIUnlink(path.c_str()); }
    } cleanup{model_grid};
    // One VRT block's source window at a time: an eighth of the budget (a strong reduction reads many
    // source pixels per model pixel).
    warp_to_vrt(options.input, model_grid, info, mw, mh, (fx < 1 || fy < 1) ? "average" : "bilinear", nullptr, false,
                "resampling to the model's pixel size", std::max<int64_t>(int64_t{4} << 20, options.memory_budget_mb * 1024 * 1024 / 8));
    ModelGridScratch scratch(options);
    SegmentOptions inner = scratch.inner;
    inner.input = model_grid;
    // --resume and --shard: the strips on the model grid are journaled; the parts stay until the final
    // output exists, and a merge finds in job.json what it needs to resample back.
    inner.fingerprint_input = options.input;
    inner.image_grid = georeference_to_job(info);
    inner.image_grid["input"] = input_path_for_job(options.input);
    inner.image_grid["outputs"] = output_settings(options);
    SegmentResult result;
    try {
        result = segment_native(model, inner, [&](double f, std::string_view what) {
            return !progress || progress(0.9 * f, what);
        }, true);
    } catch (const Error& e) {
        // Name the user's image, not the internal copy ("/vsimem/rsi-model-grid-0.vrt: ...").
        std::string message = e.what();
        const std::string named = options.input + " (read at the model's pixel size)";
        for (size_t at = message.find(model_grid); at != std::string::npos; at = message.find(model_grid, at + named.size())) {
            message.replace(at, model_grid.size(), named);
        }
        throw Error(message, e.kind());
    }
    result.warnings.insert(result.warnings.end(), notes.begin(), notes.end());
    result.output = options.output;
    result.probabilities = options.probabilities;
    result.width = W;
    result.height = H;
    result.resample_x = fx;
    result.resample_y = fy;
    result.pixel_area_m2 = ground->x_m * ground->y_m;
    if (options.shard) return result;  // parts only: `rsi merge` resamples back
    // The model-grid run's threads freed their batches, but glibc keeps such memory in per-thread
    // arenas (240 MB of a 100000-pixel-wide run); handing it back keeps this phase within --ram.
    ::malloc_trim(0);
    resample_back(scratch, info, options.input, result.source_bands, options, meta, [&](double f, std::string_view what) {
        return !progress || progress(0.9 + 0.1 * f, what);
    }, result.class_pixels, result.nodata_pixels);
    if (options.resume && !options.keep_parts) {
        std::error_code ec;
        std::filesystem::remove_all(inner.parts_dir, ec);
        result.parts_lock.reset();
    }
    return result;
}

namespace {

// The absolute folder a file lies in ("." for a bare name), without "." or ".." steps.
std::filesystem::path folder_of(const std::filesystem::path& file) {
    const std::filesystem::path parent = file.parent_path();
    return std::filesystem::absolute(parent.empty() ? std::filesystem::path(".") : parent).lexically_normal();
}

std::string with_extension(const std::string& path, const std::string& extension) {
    return std::filesystem::path(path).replace_extension(extension).string();
}

// A VRT mosaic of `sources` written under a temporary name for `path`, with the class legend on band 1
// when `classes` is given. The sources lie in a folder still under its temporary name (`folder_now`,
// beside the VRT); the VRT names them relative to itself in the folder's final name (`folder_final`),
// so the folder and the VRT can be renamed into place together, and moved together.
PendingOutput write_mosaic_vrt(const std::string& path, const std::vector<std::string>& sources, const std::vector<models::ClassInfo>* classes,
                               bool overwrite, const std::string& folder_now, const std::string& folder_final) {
    PendingOutput pending(path, overwrite);
    std::vector<const char*> names;
    for (const auto& s : sources) names.push_back(s.c_str());
    CPLErrorReset();
    int usage = 0;
    // The strips share one pixel size: "highest" takes it as it is (the default averages it, and the
    // mean of equal doubles can come out a hair off: 0.29999999999999993 for 0.3).
    const char* vrt_arguments[] = {"-resolution", "highest", nullptr};
    std::unique_ptr<GDALBuildVRTOptions, decltype(&GDALBuildVRTOptionsFree)> vrt_options(
        GDALBuildVRTOptionsNew(const_cast<char**>(vrt_arguments), nullptr), GDALBuildVRTOptionsFree);
    GDALDatasetH built =
        GDALBuildVRT(pending.temporary_path().c_str(), static_cast<int>(names.size()), nullptr, names.data(), vrt_options.get(), &usage);
    DatasetPtr vrt(GDALDataset::FromHandle(built));
    if (!vrt) throw Error(path + ": cannot build the VRT: " + last_gdal_error());
    // What the strips say of themselves (AREA_OR_POINT, band names such as p_building): the VRT says it too.
    if (DatasetPtr first = open_raster(sources.front())) {
        vrt->SetMetadata(first->GetMetadata());
        for (int b = 1; b <= std::min(first->GetRasterCount(), vrt->GetRasterCount()); ++b) {
            vrt->GetRasterBand(b)->SetDescription(first->GetRasterBand(b)->GetDescription());
        }
    }
    if (classes) apply_class_legend(*vrt->GetRasterBand(1), *classes, 255.0);
    close_written(std::move(vrt), path);
    std::string text;
    {
        std::ifstream in(pending.temporary_path(), std::ios::binary);
        text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    // <SourceFilename relativeToVRT="1">folder/strip</...>, or ="0">/absolute/folder/strip where GDAL did
    // not relate the two paths: either way, the strip relative to the VRT in the folder's final name.
    const std::string relative = "relativeToVRT=\"1\">" + folder_now + "/", to = "relativeToVRT=\"1\">" + folder_final + "/";
    const std::string absolute = "relativeToVRT=\"0\">" + (folder_of(path) / folder_now).string() + "/";
    size_t replaced = 0;
    for (const std::string& from : {relative, absolute}) {
        for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
            text.replace(at, from.size(), to);
            ++replaced;
        }
    }
    // every band names every strip once
    if (replaced == 0 || replaced % sources.size() != 0) {
        throw Error(path + ": the VRT names its strips " + std::to_string(replaced) + " times in " + folder_now + " (expected a multiple of " +
                    std::to_string(sources.size()) + ")");
    }
    std::ofstream out(pending.temporary_path(), std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw Error(path + ": writing failed" + write_failure_reason());
    return pending;
}

// `rsi merge --vrt`: each strip becomes its own small GeoTIFF (mask, and probabilities if asked) in
// OUTPUT_strips/, and VRTs mosaic them; the strips folder is renamed into place before the VRTs.
void assemble_parts_as_vrt(const std::string& parts_dir, const nlohmann::json& job, const SegmentOptions& options,
                           const models::ModelMetadata& meta, const ProgressFn& progress, MergeResult& result) {
    const RasterInfo info = georeference_from_job(job);
    const auto strips = job.at("strip_rows").get<std::vector<std::pair<int64_t, int64_t>>>();
    const std::string fingerprint = job.at("fingerprint").get<std::string>();
    const int K = static_cast<int>(meta.classes.size());
    const std::filesystem::path vrt_path(options.output);
    const std::string strips_dir = (vrt_path.parent_path() / (vrt_path.stem().string() + "_strips")).string();
    check_output_path(strips_dir, options.overwrite);
    PendingDirectory folder(strips_dir);
    // The probabilities' strips sit beside their own VRT, which may be in another folder: each VRT then
    // names its sources relative to itself and moves with its strips folder.
    const std::filesystem::path probability_vrt(options.probabilities);
    const std::string probability_strips_dir =
        options.probabilities.empty() ? "" : (probability_vrt.parent_path() / (probability_vrt.stem().string() + "_strips")).string();
    std::unique_ptr<PendingDirectory> probability_folder;
    if (!probability_strips_dir.empty()) {
        check_output_path(probability_strips_dir, options.overwrite);
        probability_folder = std::make_unique<PendingDirectory>(probability_strips_dir);
    }
    SegmentOptions strip = options;
    strip.before_commit = nullptr;  // strips are renamed into the pending folder, not into place
    strip.format = "GTiff";
    if (options.format != "GTiff") strip.creation_options = {"COMPRESS=DEFLATE"};
    std::vector<std::string> mask_sources, probability_sources;
    std::vector<float> probabilities;
    std::vector<uint8_t> valid;
    result.class_pixels.assign(static_cast<size_t>(K), 0);
    result.nodata_pixels = 0;
    const std::string folder_name = std::filesystem::path(folder.temporary_path()).filename().string();
    for (size_t r = 0; r < strips.size(); ++r) {
        const auto [y0, y1] = strips[r];
        const std::string name = StripJournal::part_name(static_cast<int64_t>(r));
        read_strip_part((std::filesystem::path(parts_dir) / name).string(), fingerprint, K, info.width, y1 - y0, probabilities, valid);
        RasterInfo band = info;  // this strip's rows of the image
        band.height = y1 - y0;
        band.geotransform = info.window_geotransform(0, y0);
        strip.output = (std::filesystem::path(folder.temporary_path()) / name).string();
        strip.probabilities = options.probabilities.empty() ? "" : (std::filesystem::path(probability_folder->temporary_path()) / name).string();
        ClassMapOutputs outputs(strip, band, meta);
        outputs.write_rows(0, y1 - y0, probabilities.data(), valid.data());
        outputs.finish();
        for (int c = 0; c < K; ++c) result.class_pixels[static_cast<size_t>(c)] += outputs.class_pixels()[static_cast<size_t>(c)];
        result.nodata_pixels += outputs.nodata_pixels();
        mask_sources.push_back(folder_name + "/" + name);
        if (!strip.probabilities.empty()) {
            probability_sources.push_back((std::filesystem::path(probability_folder->temporary_path()).filename() / name).string());
        }
        report_progress(progress, static_cast<double>(r + 1) / static_cast<double>(strips.size()), "assembling strips");
    }
    // Sources are given to GDAL as absolute paths beside their VRT, which it either stores relative to
    // the VRT or keeps whole; write_mosaic_vrt rewrites both to the final folder name, relative, so a
    // VRT and its strips folder can be moved together. (Relative paths GDAL did not relate, "./x" beside
    // "x.vrt", were kept as given and the rewrite found none: `rsi merge --vrt` failed.)
    auto beside = [](const std::filesystem::path& vrt, const std::vector<std::string>& names) {
        std::vector<std::string> paths;
        for (const auto& n : names) paths.push_back((folder_of(vrt) / n).string());
        return paths;
    };
    const auto name_of = [](const std::string& path) { return std::filesystem::path(path).filename().string(); };
    // Both VRTs are complete before anything is renamed, and every final path is checked: a failure
    // (a full disk, a file another run wrote meanwhile) leaves no strips folder and no VRT.
    std::optional<PendingOutput> probability_vrt_file;
    if (!probability_sources.empty()) {
        probability_vrt_file.emplace(write_mosaic_vrt(options.probabilities, beside(probability_vrt, probability_sources), nullptr, options.overwrite,
                                                      name_of(probability_folder->temporary_path()), name_of(probability_strips_dir)));
    }
    PendingOutput mask_vrt_file = write_mosaic_vrt(options.output, beside(vrt_path, mask_sources), &meta.classes, options.overwrite,
                                                   name_of(folder.temporary_path()), name_of(strips_dir));
    report_progress(progress, 1.0, "assembling strips");  // the last moment a cancel takes effect
    if (options.before_commit) options.before_commit();
    folder.check_final_path_free(options.overwrite);
    if (probability_folder) probability_folder->check_final_path_free(options.overwrite);
    mask_vrt_file.check_final_path_free();
    if (probability_vrt_file) probability_vrt_file->check_final_path_free();
    folder.commit(options.overwrite);
    if (probability_folder) probability_folder->commit(options.overwrite);
    if (probability_vrt_file) probability_vrt_file->commit();
    mask_vrt_file.commit();  // the -o output last: once it has its name, every other output has too
    result.strips_dir = strips_dir;
}

}  // namespace

nlohmann::json job_output_settings(const nlohmann::json& job) {
    return job.contains("image_grid") ? job.at("image_grid").at("outputs") : job.at("outputs");
}

std::pair<std::string, std::string> merge_output_paths(const MergeOptions& options, const nlohmann::json& job) {
    const nlohmann::json out = job_output_settings(job);
    const std::string recorded = out.at("output").get<std::string>();
    std::string output = options.output.empty() ? merge_output_path(options.parts_dir, recorded, recorded) : options.output;
    std::string probabilities = options.probabilities.empty() ? merge_output_path(options.parts_dir, recorded, out.value("probabilities", ""))
                                                              : options.probabilities;
    if (options.vrt) {
        // Default names: the shards' outputs with a .vrt extension.
        if (options.output.empty()) output = with_extension(output, ".vrt");
        if (options.probabilities.empty() && !probabilities.empty()) probabilities = with_extension(probabilities, ".vrt");
        for (const std::string* path : {&output, &probabilities}) {
            if (!path->empty() && std::filesystem::path(*path).extension() != ".vrt") {
                throw usage_error("--vrt: " + *path + " must end in .vrt");
            }
        }
    }
    return {output, probabilities};
}

MergeResult merge_segmentation(const MergeOptions& options, const ProgressFn& progress) {
    const nlohmann::json job = read_job(options.parts_dir);
    if (job.value("format", "") != "rsi-segmentation-job") throw Error(options.parts_dir + "/job.json: not an rsi segmentation job");
    const std::string fingerprint = job.at("fingerprint").get<std::string>();
    const int shards = job.at("shards").get<int>();
    const auto strip_rows = job.at("strip_rows").get<std::vector<std::pair<int64_t, int64_t>>>();
    const int64_t R = static_cast<int64_t>(strip_rows.size());
    const auto shard_locks = check_all_shards_done(options.parts_dir, fingerprint, shards, R);  // held until the parts are gone
    const models::ModelMetadata meta = models::metadata_from_record(job.at("model"), options.parts_dir + "/job.json");
    const bool resampled = job.contains("image_grid");
    if (resampled && options.vrt) {
        throw usage_error(options.parts_dir + ": --vrt: these shards ran on a copy of the image resampled to the model's pixel size, "
                          "so the merge resamples back into one file; merge without --vrt");
    }
    const nlohmann::json out = job_output_settings(job);
    SegmentOptions o;
    std::tie(o.output, o.probabilities) = merge_output_paths(options, job);
    o.probability_format = out.value("probability_format", "float32") == "byte" ? ProbabilityFormat::byte : ProbabilityFormat::float32;
    o.probability_class = out.value("probability_class", -1);
    o.uncertainty = out.value("uncertainty", false) && !o.probabilities.empty();
    o.min_confidence = out.value("min_confidence", 0.0);
    o.format = out.value("format", "GTiff");
    o.creation_options = out.value("creation_options", std::vector<std::string>{});
    o.overwrite = options.overwrite;
    if (options.before_commit) {
        o.before_commit = [&options, &o] {
            std::vector<std::string> outputs{o.output};
            if (!o.probabilities.empty()) outputs.push_back(o.probabilities);
            options.before_commit(outputs);
        };
    }
    if (options.byte_probabilities) {
        o.probability_format = ProbabilityFormat::byte;
        o.probability_class = -1;
        o.uncertainty = false;
    }
    // A killed merge's temporaries (and scratch files named after them) go: merging again is how it is redone.
    for (const std::string& path : {o.output, o.probabilities, options.vector}) {
        if (!path.empty()) remove_stale_temporaries(path);
    }
    // `merge -o IMAGE --overwrite` replaced the image the shards read.
    check_distinct_outputs({o.output, o.probabilities, options.vector}, job_inputs(job));
    check_output_file(o.output, o.overwrite);
    if (!o.probabilities.empty()) check_output_file(o.probabilities, o.overwrite);
    MergeResult result;
    result.output = o.output;
    result.probabilities = o.probabilities;
    const nlohmann::json& image_grid = resampled ? job.at("image_grid") : job;
    result.width = image_grid.at("width").get<int64_t>();
    result.height = image_grid.at("height").get<int64_t>();
    result.strips = R;
    result.shards = shards;
    for (const auto& c : meta.classes) result.class_names.push_back(c.name);
    if (resampled) {
        // As the single-process run does: the model-grid probabilities, then resampled back.
        ModelGridScratch scratch(o);
        std::vector<int64_t> model_grid_pixels;
        int64_t model_grid_nodata = 0;
        assemble_parts(options.parts_dir, job, scratch.inner, meta, [&](double f, std::string_view what) {
            return !progress || progress(0.9 * f, what);
        }, model_grid_pixels, model_grid_nodata);
        resample_back(scratch, georeference_from_job(image_grid), image_grid.at("input").get<std::string>(),
                      job.at("settings").at("bands").get<std::vector<int>>(), o,
                      meta, [&](double f, std::string_view what) { return !progress || progress(0.9 + 0.1 * f, what); },
                      result.class_pixels, result.nodata_pixels);
    } else if (options.vrt) {
        assemble_parts_as_vrt(options.parts_dir, job, o, meta, progress, result);
    } else {
        assemble_parts(options.parts_dir, job, o, meta, progress, result.class_pixels, result.nodata_pixels);
    }
    if (!options.keep_parts) {
        std::error_code ec;
        std::filesystem::remove_all(options.parts_dir, ec);
    }
    return result;
}

}  // namespace rsi
