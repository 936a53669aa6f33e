#include "src/pixel_evaluation.hpp"

#include <cmath>
#include <sstream>

#include "tiling/error.hpp"
#include "tiling/raster_source.hpp"

namespace rsi {

std::map<int, int> parse_value_map(const std::string& text, const std::string& option) {
    std::map<int, int> out;
    std::stringstream stream(text);
    for (std::string pair; std::getline(stream, pair, ',');) {
        const size_t eq = pair.find('=');
        try {
            if (eq == std::string::npos) throw std::invalid_argument("no =");
            size_t used = 0;
            const int from = std::stoi(pair.substr(0, eq), &used);
            if (used != eq) throw std::invalid_argument("junk");
            const std::string right = pair.substr(eq + 1);
            const int to = std::stoi(right, &used);
            if (used != right.size() || from < 0 || from > 255 || to < 0 || to > 255) throw std::invalid_argument("range");
        out[from] = to;
        } catch (const std::exception&) {
            throw usage_error(option + ": '" + pair + "' is not VALUE=CLASS with values 0..255");
        }
    }
    return out;
}

namespace {

void remap(std::vector<uint8_t>& values, const std::map<int, int>& map) {
    if (map.empty()) return;
    uint8_t table[256];
    for (int v = 0; v < 256; ++v) {
        const auto it = map.find(v);
        table[v] = static_cast<uint8_t>(it == map.end() ? v : it->second);
    }
    for (uint8_t& v : values) v = table[v];
}

}  // namespace

PixelEvaluation evaluate_pixels(const PixelEvaluationOptions& options, const ProgressFn& progress) {
    const RasterSource prediction = RasterSource::open(options.prediction);
    const RasterSource truth = RasterSource::open(options.truth);
    const RasterInfo& p = prediction.info();
    const RasterInfo& t = truth.info();
    if (p.width != t.width || p.height != t.height) {
        throw Error(options.prediction + " is " + std::to_string(p.width) + "x" + std::to_string(p.height) + " but " +
                    options.truth + " is " + std::to_string(t.width) + "x" + std::to_string(t.height) +
                    ": the rasters must share the grid (warp one onto the other first)");
    }
    if (p.has_geotransform && t.has_geotransform) {
        for (int i = 0; i < 6; ++i) {
            const double tolerance = 1e-6 * std::max(std::abs(p.geotransform[1]), 1e-12) * (i == 0 || i == 3 ? 1 : 1e-3);
            if (std::abs(p.geotransform[static_cast<size_t>(i)] - t.geotransform[static_cast<size_t>(i)]) > std::max(tolerance, 1e-12)) {
                throw Error(options.prediction + " and " + options.truth +
                            " have different geotransforms: the rasters must share the grid (warp one onto the other first)");
            }
        }
    }
    const int64_t W = p.width, H = p.height;
    const int64_t rows_per_block = std::max<int64_t>(1, std::min<int64_t>(H, (16 << 20) / std::max<int64_t>(1, W)));
    int classes = options.classes;
    if (classes <= 0) {
        // One streaming pass to find the largest class value.
        int largest = 0;
        for (int64_t y = 0; y < H; y += rows_per_block) {
            const int64_t rows = std::min(rows_per_block, H - y);
            for (const RasterSource* source : {&prediction, &truth}) {
                std::vector<uint8_t> block(static_cast<size_t>(rows * W));
                source->read({0, y, W, rows}, {1}, GDT_Byte, block.data());
                remap(block, source == &truth ? options.truth_map : options.prediction_map);
                for (uint8_t v : block) {
                    if (v != options.ignore) largest = std::max<int>(largest, v);
                }
            }
        }
        classes = largest + 1;
    }
    PixelEvaluation result;
    result.matrix = ConfusionMatrix(classes);
    std::vector<uint8_t> a(static_cast<size_t>(rows_per_block * W)), b(a.size());
    for (int64_t y = 0; y < H; y += rows_per_block) {
        const int64_t rows = std::min(rows_per_block, H - y);
        a.resize(static_cast<size_t>(rows * W));
        b.resize(a.size());
        truth.read({0, y, W, rows}, {1}, GDT_Byte, a.data());
        prediction.read({0, y, W, rows}, {1}, GDT_Byte, b.data());
        remap(a, options.truth_map);
        remap(b, options.prediction_map);
        result.matrix.add(a.data(), b.data(), rows * W, options.ignore);
        report_progress(progress, static_cast<double>(y + rows) / static_cast<double>(H), "pixels");
    }
    result.metrics = result.matrix.metrics();
    return result;
}

}  // namespace rsi
