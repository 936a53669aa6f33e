// rsi eval PREDICTION TRUTH: pixel metrics between a prediction and a ground-truth raster.
#include <iomanip>
#include <iostream>

#include "cli/command_context.hpp"
#include "src/pixel_evaluation.hpp"

namespace rsi::cli {

void register_eval_command(CLI::App& app, CommandContext& context) {
    struct Options {
        std::string prediction, truth, truth_map, prediction_map;
        int classes = 0, ignore = -1;
    };
    auto o = std::make_shared<Options>();
    CLI::App* sub = app.add_subcommand("eval", "Pixel metrics of a prediction raster against ground truth");
    sub->add_option("PREDICTION", o->prediction, "Predicted class raster (band 1)")->required();
    sub->add_option("TRUTH", o->truth, "Ground-truth class raster on the same grid (band 1)")->required();
    sub->add_option("--classes", o->classes, "Number of classes (default: largest value + 1)");
    sub->add_option("--ignore", o->ignore, "Value not counted (after mapping), e.g. 255");
    sub->add_option("--truth-map", o->truth_map, "Remap truth values, e.g. 255=1 for 0/255 masks");
    sub->add_option("--prediction-map", o->prediction_map, "Remap predicted values, e.g. 255=1");
    add_common_options(*sub, context.common);
    sub->footer("Example:\n  rsi eval buildings.tif ../shared/data/inria/test/gt/austin1_2.tif --truth-map 255=1 --ignore 255 --json");
    context.on_run(sub, [o, &context] {
        PixelEvaluationOptions e;
        e.prediction = o->prediction;
        e.truth = o->truth;
        e.classes = o->classes;
        e.ignore = o->ignore;
        if (!o->truth_map.empty()) e.truth_map = parse_value_map(o->truth_map, "--truth-map");
        if (!o->prediction_map.empty()) e.prediction_map = parse_value_map(o->prediction_map, "--prediction-map");
        ProgressBar bar(!context.common.quiet && !context.common.json);
        const PixelEvaluation r = evaluate_pixels(e, context.progress(bar));
        bar.finish();
        const PixelMetrics& m = r.metrics;
        if (context.common.json) {
            nlohmann::json classes = nlohmann::json::array();
            nlohmann::json matrix = nlohmann::json::array();
            for (int t = 0; t < r.matrix.classes(); ++t) {
                nlohmann::json row = nlohmann::json::array();
                for (int p = 0; p < r.matrix.classes(); ++p) row.push_back(r.matrix.at(t, p));
                matrix.push_back(row);
                const auto& c = m.classes[static_cast<size_t>(t)];
                classes.push_back({{"class", t}, {"iou", c.iou}, {"precision", c.precision}, {"recall", c.recall},
                                   {"f1", c.f1}, {"support", c.support}});
            }
            print_json({{"pixels", m.pixels}, {"overall_accuracy", m.overall_accuracy}, {"mean_iou", m.mean_iou},
                        {"frequency_weighted_iou", m.frequency_weighted_iou}, {"kappa", m.kappa},
                        {"classes", classes}, {"confusion_matrix", matrix}});
        } else {
            std::cout << std::fixed << std::setprecision(4) << "pixels " << m.pixels << "\n"
                      << "class     IoU       precision recall    F1        support\n";
            for (size_t c = 0; c < m.classes.size(); ++c) {
                const auto& k = m.classes[c];
                std::cout << std::left << std::setw(10) << c << std::setw(10) << k.iou << std::setw(10) << k.precision
                          << std::setw(10) << k.recall << std::setw(10) << k.f1 << k.support << "\n";
            }
            std::cout << "overall accuracy " << m.overall_accuracy << ", mIoU " << m.mean_iou << ", FWIoU "
                      << m.frequency_weighted_iou << ", kappa " << m.kappa << "\n";
        }
        return 0;
    });
}

}  // namespace rsi::cli
