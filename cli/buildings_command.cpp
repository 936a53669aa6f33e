// rsi buildings IMAGE -o buildings.tif: the main job, segmentation with the bundled building model.
#include "cli/segmentation_cli.hpp"

namespace rsi::cli {

void register_buildings_command(CLI::App& app, CommandContext& context) {
    auto o = std::make_shared<SegmentationCli>();
    o->preset = "buildings";
    o->probability_class = 1;  // the building band
    CLI::App* sub = app.add_subcommand("buildings", "Building map (mask) from an image with the bundled building model");
    add_segmentation_options(*sub, *o);
    add_common_options(*sub, context.common);
    sub->footer(
        "Example:\n"
        "  rsi buildings ../shared/data/spacenet/vegas_rgb.tif -o buildings.tif --probabilities buildings_p.tif --json");
    context.on_run(sub, [o, &context] {
        SegmentationCli options = *o;
        if (options.model.model.empty()) options.model.model = "buildings";
        return run_segmentation(options, context, "buildings");
    });
}

}  // namespace rsi::cli
