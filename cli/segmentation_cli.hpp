#pragma once
// What `rsi segment` and its preset `rsi buildings` share: their options and the batch loop
// (several inputs, one model load, --keep-going).
#include "cli/command_context.hpp"

namespace rsi::cli {

struct SegmentationCli {
    std::vector<std::string> inputs;
    std::string from;        // file with one input path per line, or - for stdin
    std::string output;      // single input
    std::string output_dir;  // several inputs
    ModelCliOptions model;
    std::string tile_size;  // empty: the model's; a number or auto
    int64_t overlap = -1, batch = 0;
    int runners = 0;
    std::string edge = "shift", blend = "hann", tta = "none", bands, probabilities, probability_format = "float32";
    std::string format = "GTiff";
    std::string resample = "auto";
    std::vector<std::string> creation_options;
    bool uncertainty = false, overwrite = false, strict = false, keep_going = false, no_manifest = false;
    double min_confidence = 0;
    int probability_class = -1;
    std::vector<std::string> probability_options_given;  // --probability-format/-class as typed: they need --probabilities
    std::string preset;      // "buildings" or empty
    // Resume and scale-out.
    bool resume = false;
    std::string shard, parts_dir;
    int shard_count = 0;
    // Footprint polygons from the mask.
    std::string vector;
    std::string preview;
    double min_area = 0, simplify = 0;
    bool regularize = false, keep_crs = false;
};

void add_segmentation_options(CLI::App& sub, SegmentationCli& o);
int run_segmentation(const SegmentationCli& o, CommandContext& context, const std::string& command);

}  // namespace rsi::cli
