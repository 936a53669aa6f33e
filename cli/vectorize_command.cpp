// rsi vectorize MASK -o OUT: footprint polygons of the classes of a mask (GeoPackage, GeoJSON,
// FlatGeobuf or Shapefile).
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "cli/command_context.hpp"
#include "src/vectorize.hpp"

namespace rsi::cli {

namespace {

int parse_class_value(const std::string& token, const std::string& option, const std::string& text) {
    char* end = nullptr;
    errno = 0;
    const long value = std::strtol(token.c_str(), &end, 10);
    if (token.empty() || end != token.c_str() + token.size() || errno == ERANGE || value < INT_MIN || value > INT_MAX) {
        throw usage_error(option + ": '" + text + "' is not a comma-separated list of class values");
    }
    return static_cast<int>(value);
}

// "1,2,5" -> {1, 2, 5}
std::vector<int> parse_classes(const std::string& text) {
    std::vector<int> classes;
    std::stringstream stream(text);
    for (std::string token; std::getline(stream, token, ',');)
        classes.push_back(parse_class_value(token, "--classes", text));
    if (classes.empty()) throw usage_error("--classes: no class values given");
    return classes;
}

// "1=building,2=road" -> {1: building, 2: road}
std::map<int, std::string> parse_class_names(const std::string& text) {
    std::map<int, std::string> names;
    std::stringstream stream(text);
    for (std::string pair; std::getline(stream, pair, ',');) {
        const size_t eq = pair.find('=');
        if (eq == std::string::npos || eq + 1 == pair.size()) {
            throw usage_error("--class-names: '" + pair + "' is not VALUE=NAME (e.g. 1=building,2=road)");
        }
        names[parse_class_value(pair.substr(0, eq), "--class-names", text)] = pair.substr(eq + 1);
    }
    return names;
}

}  // namespace

void register_vectorize_command(CLI::App& app, CommandContext& context) {
    struct Options {
        std::string mask, output, classes, class_names, probabilities;
        double min_area = 0, simplify = 0, min_confidence = 0;
        bool regularize = false, keep_crs = false, overwrite = false;
    };
    auto options = std::make_shared<Options>();
    CLI::App* sub = app.add_subcommand("vectorize", "Polygonise the classes of a mask into footprint polygons");
    sub->add_option("MASK", options->mask, "Class mask raster (integer band 1, e.g. 0 background, 1 building)")
        ->required();
    sub->add_option("-o,--output", options->output,
                    "Output vector: .gpkg, .geojson/.json (WGS84), .fgb or .shp (format from the extension)")
        ->required();
    sub->add_option("--classes", options->classes,
                    "Class values to polygonise, comma-separated (default: every value except 0 and nodata)");
    sub->add_option("--class-names", options->class_names,
                    "Names for the class attribute, VALUE=NAME comma-separated (default: the value)");
    sub->add_option("--probabilities", options->probabilities,
                    "Probability raster on the mask's grid (Float32 0..1, or Byte 0..255; rsi's own Byte ones 0..254 with nodata 255; one band, or band c+1 for "
                    "class c): adds a confidence attribute (mean over the polygon)");
    sub->add_option("--min-area", options->min_area, "Drop polygons smaller than this many square metres")
        ->check(finite_range(0.0, 1e12));
    sub->add_option("--simplify", options->simplify, "Simplification tolerance in metres (outlines stay valid and do not overlap their neighbours)")
        ->check(finite_range(0.0, 1e6));
    sub->add_flag("--regularize", options->regularize,
                  "Orthogonal building outlines (edges snapped to the dominant direction or its perpendicular)");
    sub->add_option("--min-confidence", options->min_confidence,
                    "Drop polygons whose mean probability is lower (0..1; needs --probabilities)")
        ->check(finite_range(0.0, 1.0));
    sub->add_flag("--keep-crs", options->keep_crs, "GeoJSON: keep the mask's CRS instead of WGS84 (RFC 7946)");
    sub->add_flag("--overwrite", options->overwrite, "Replace an existing output");
    add_common_options(*sub, context.common);
    sub->footer(
        "Polygons are 4-connected (pixels touching only at a corner are separate polygons), keep their holes and\n"
        "are in the mask's CRS (GeoJSON: WGS84). Attributes: id (1.. in reading order of each polygon's top-left\n"
        "pixel), class (--class-names, else the mask's category names, else the value), class_id, area_m2\n"
        "(geodesic for a geographic CRS and for a projection more than 1 % from true scale, such as Web\n"
        "Mercator), confidence (with --probabilities).\n"
        "\n"
        "Example:\n"
        "  rsi vectorize buildings_mask.tif -o buildings.gpkg --classes 1 --class-names 1=building \\\n"
        "      --probabilities buildings_prob.tif --min-confidence 0.5 --min-area 10 --regularize");
    context.on_run(sub, [options, &context] {
        VectorizeOptions o;
        o.mask = options->mask;
        o.output = options->output;
        if (!options->classes.empty()) o.classes = parse_classes(options->classes);
        if (!options->class_names.empty()) o.class_names = parse_class_names(options->class_names);
        o.probabilities = options->probabilities;
        o.min_area_m2 = options->min_area;
        o.simplify_m = options->simplify;
        o.regularize = options->regularize;
        o.min_confidence = options->min_confidence;
        o.keep_crs = options->keep_crs;
        o.overwrite = options->overwrite;
        o.memory_budget_mb = context.common.ram_mb / 2;
        ProgressBar bar(!context.common.quiet && !context.common.json);
        const auto start = std::chrono::steady_clock::now();
        const VectorizeResult r = vectorize_mask(o, context.progress(bar));
        bar.finish();
        if (!context.common.quiet) {
            for (const auto& w : r.warnings) std::cerr << "rsi vectorize: warning: " << w << "\n";
        }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (context.common.json) {
            print_json({{"mask", o.mask},
                        {"output", r.output},
                        {"layer", r.layer},
                        {"polygons", r.polygons},
                        {"dropped_small", r.dropped_small},
                        {"dropped_unconfident", r.dropped_unconfident},
                        {"area_m2", r.area_known ? nlohmann::json(r.area_m2) : nlohmann::json(nullptr)},
                        {"warnings", r.warnings},
                        {"seconds", seconds}});
        } else if (!context.common.quiet) {
            std::cout << "wrote " << r.polygons << " polygon" << (r.polygons == 1 ? "" : "s") << " to " << r.output
                      << " (layer " << r.layer << ")";
            if (r.area_m2 > 0) std::cout << ", " << r.area_m2 << " m2 in all";
            std::cout << "\n";
            if (r.dropped_small) std::cout << "dropped " << r.dropped_small << " smaller than --min-area\n";
            if (r.dropped_unconfident) std::cout << "dropped " << r.dropped_unconfident << " below --min-confidence\n";
        }
        return 0;
    });
}

}  // namespace rsi::cli
