#pragma once
// The rsi.json document embedded in a model package (docs/MODEL_FORMAT.md): parsed and validated
// without torch, so it can be fuzzed and used by tools that never run a model.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace rsi::models {

enum class Task { segmentation, scene };
const char* to_string(Task task);

struct ClassInfo {
    int id = 0;
    std::string name;
    std::array<uint8_t, 3> color{0, 0, 0};
    std::vector<std::string> parents;  // ancestors, coarse to fine (hierarchy.levels - 1 of them)
};

struct ModelMetadata {
    std::string name, version, description;
    Task task = Task::segmentation;

    // input
    int bands = 0;
    std::vector<std::string> band_names;
    std::vector<int> source_bands;  // 1-based, length `bands`
    bool source_bands_declared = false;  // named in the metadata (else 1..bands, the first bands of any image)
    int source_band_count = 0;  // bands of the imagery the source bands are numbered in (0: not declared)
    std::array<double, 2> data_range{0, 255};
    bool data_range_known = true;  // false for a model without metadata: no radiometry warnings then
    double scale = 1;
    std::vector<float> mean, std;

    // band mapping
    std::string single_band = "refuse";  // replicate | refuse
    std::string rescale = "none";        // none | percentile | minmax
    std::vector<std::string> rescale_when{"UInt16", "Int16", "UInt32", "Int32", "Float32", "Float64"};
    double rescale_low = 2, rescale_high = 98;

    // tiling
    int tile_size = 0;
    int overlap = 0;
    int output_stride = 1;
    int halo = 0;
    int multiple_of = 1;

    double gsd_m = 0;
    // False for a model without metadata given no --gsd: it then runs at the image's own pixel size
    // (no resampling, no pixel-size warning) instead of at an invented one.
    bool gsd_known = true;
    std::string output = "logits";            // logits | probabilities
    std::string output_activation = "softmax";  // softmax | sigmoid
    std::vector<ClassInfo> classes;
    std::vector<std::string> levels;  // hierarchy level names, coarse to fine

    std::string license;
    nlohmann::json provenance;
    std::string weights_sha256;
    // False for a model without metadata: the loader fills weights_sha256 in from the file (so resumes,
    // shards and manifests tell two such models apart), but there is nothing to check it against.
    bool weights_sha256_declared = true;
    nlohmann::json golden;  // null when absent

    // Numeric format of the weights: "fp32" (default) or "int8" (statically quantized; then
    // `quantized_engine` names the LibTorch quantized engine the packed weights were prepared for,
    // from quantization.engine, and `quantization` holds the whole block: method, calibration, ...).
    std::string precision = "fp32";
    std::string quantized_engine;
    nlohmann::json quantization;  // null when absent
    bool is_quantized() const { return precision == "int8"; }

    // How the runtime prepares an fp32 model for the CPU: "optimize_for_inference" (default: frozen,
    // then oneDNN's layouts and fusions) or "channels_last" (frozen with NHWC weights and inputs, no
    // oneDNN layout conversions). Which is faster depends on the network (docs/MODEL_FORMAT.md).
    std::string cpu_graph = "optimize_for_inference";

    // The number of output channels the network produces (1 for a sigmoid model).
    int output_channels() const;
    nlohmann::json to_json() const;
};

// Parses and validates; throws rsi::Error "<origin>: rsi.json: <field>: <problem>".
ModelMetadata parse_model_metadata(std::string_view json_text, const std::string& origin);
ModelMetadata metadata_from_json(const nlohmann::json& document, const std::string& origin);
// Metadata as to_json() recorded it (a sharded job's job.json): also what a model without rsi.json,
// described on the command line, leaves unknown (data range, gsd, provenance, weights hash).
ModelMetadata metadata_from_record(const nlohmann::json& document, const std::string& origin);

// Fields a user gives on the command line for a model without rsi.json (or to override one).
struct MetadataOverrides {
    std::optional<std::string> task;
    std::vector<std::string> classes;  // names; ids are positions
    std::optional<int> bands;
    std::vector<float> mean, std;
    std::optional<double> scale;
    std::optional<int> tile_size, overlap, halo, multiple_of;
    std::optional<double> gsd_m;
    std::optional<std::string> output;
    bool empty() const;
};

// Metadata for a model without rsi.json, built from overrides alone; throws a usage Error naming
// the missing fields.
ModelMetadata metadata_from_overrides(const MetadataOverrides& overrides, const std::string& origin);
// Applies overrides on top of embedded metadata and validates the result.
ModelMetadata apply_overrides(const ModelMetadata& metadata, const MetadataOverrides& overrides,
                              const std::string& origin);

}  // namespace rsi::models
