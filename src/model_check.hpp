#pragma once
// `rsi model check`: load a model, run synthetic batches, check shapes and golden values, and time
// the optimised forward against the eager one. Its tiles/s is the "pure model" baseline that the
// end-to-end benchmarks compare against.
#include <optional>
#include <string>
#include <vector>

#include "models/model.hpp"
#include "tiling/progress.hpp"

namespace rsi {

struct ModelCheckOptions {
    std::string model_path;
    models::ModelOptions model;
    int64_t tile_size = 0;   // 0: the model's native tile size
    int64_t batch = 0;       // 0: chosen from the memory budget
    int iterations = 5;      // timed batches (after one warm-up)
    bool compare_eager = true;  // also time the eager model (and the other optimised CPU graph)
    int64_t memory_budget_mb = 1024;
    // Time tiles cut from this image (bands and normalisation as the pipelines map them, at the
    // model's pixel size where both are known) instead of the synthetic ramp: some models' forward
    // time depends on the values (a scene model that sorts for quantiles).
    std::string tiles_from;
    // Also time this many runner threads calling the model side by side (the threads split as in
    // `rsi scene`, see model_runners.hpp): the pure-model baseline of a pipeline that runs them.
    int runners = 1;
};

struct ModelCheckResult {
    models::ModelMetadata metadata;
    std::string device, precision;
    int64_t tile_size = 0, batch = 0;
    std::vector<int64_t> output_shape;
    double optimized_batch_ms = 0;  // median
    double optimized_batch_ms_mean = 0;
    double eager_batch_ms = 0;      // median; 0 when not measured
    double tiles_per_second = 0;    // optimised
    int runners = 1;                          // runner threads of the concurrent timing (1: not timed)
    double concurrent_tiles_per_second = 0;   // all runners together; 0 when not timed
    std::string timed_input = "ramp";  // "ramp" or "image"
    bool optimized = false;
    std::string graph;         // models::Model::graph() of the timed model
    std::string graph_detail;  // models::Model::graph_detail()
    // With compare_eager on a CPU in fp32: the other optimised CPU graph (optimize_for_inference or
    // channels_last), timed the same way, so the model's cpu_graph choice can be checked.
    std::string alternative_graph;
    double alternative_batch_ms = 0;  // median; 0 when not measured
    std::string alternative_error;    // why the alternative could not be timed
    std::optional<double> golden_difference;  // relative; empty without golden values
    double golden_tolerance = 1e-3;           // looser for reduced precision
    std::optional<bool> weights_hash_matches;
    models::MemoryEstimate memory;
};

ModelCheckResult check_model(const ModelCheckOptions& options, const ProgressFn& progress = {});

// What `--tiles-from` times: `batches` x shape[0] tiles spread evenly over a lattice of whole windows of
// the image (tile i of n takes window i * count / n, row-major), each brought to the model's pixel size
// where both are known (area-averaged in float, as the scene reader does), bands mapped and normalised as
// the pipelines do: the values the pipelines feed the model, which some models' speed depends on.
std::vector<float> model_check_tiles(const std::string& path, const models::ModelMetadata& meta, const models::BatchShape& shape,
                                     int64_t batches = 1);

}  // namespace rsi
