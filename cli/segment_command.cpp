// rsi segment IMAGE -o MASK: any segmentation model over an arbitrarily large image.
#include "cli/segmentation_cli.hpp"

namespace rsi::cli {

void register_segment_command(CLI::App& app, CommandContext& context) {
    auto o = std::make_shared<SegmentationCli>();
    CLI::App* sub = app.add_subcommand("segment", "Segment an image with any segmentation model into a class map");
    add_segmentation_options(*sub, *o);
    sub->add_option("--probability-class", o->probability_class, "Only this class's probability band (default: all)")
        ->each([o](const std::string&) { o->probability_options_given.push_back("--probability-class"); });
    add_common_options(*sub, context.common);
    sub->footer(
        "Example:\n"
        "  rsi segment scene.tif -o landcover.tif -m landcover.pt --blend hann --tta flip \\\n"
        "      --probabilities landcover_p.tif --uncertainty --of COG");
    context.on_run(sub, [o, &context] { return run_segmentation(*o, context, "segment"); });
}

}  // namespace rsi::cli
