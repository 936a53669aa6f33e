#include "models/model_metadata.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "tiling/error.hpp"

namespace rsi::models {
namespace {

nlohmann::json valid_document() {
    return nlohmann::json::parse(R"({
      "format": "rsi-model", "format_version": 1, "name": "m", "version": "1", "task": "scene",
      "input": {"bands": 2, "band_names": ["red", "nir"], "source_bands": [4, 8], "source_band_count": 13, "data_range": [0, 10000],
                "scale": 0.0001, "mean": [0.1, 0.2], "std": [0.3, 0.4]},
      "band_mapping": {"single_band": "refuse", "rescale": "none"},
      "tile": {"size": 64, "overlap": 0, "output_stride": 1, "halo": 0},
      "gsd_m": 10, "output": "logits",
      "classes": [{"id": 0, "name": "a", "color": [1, 2, 3], "parents": ["land", "dry"]},
                  {"id": 1, "name": "b", "color": [4, 5, 6], "parents": ["land", "wet"]}],
      "hierarchy": {"levels": ["level1", "level2", "level3"]},
      "license": "MIT", "provenance": {"data": ["x"], "script": "s.py", "command": "python s.py"},
      "weights_sha256": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    })");
}

std::string error_of(const nlohmann::json& doc) {
    try {
        metadata_from_json(doc, "model.pt");
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

TEST(ModelMetadata, ParsesEveryField) {
    const ModelMetadata m = metadata_from_json(valid_document(), "model.pt");
    EXPECT_EQ(m.task, Task::scene);
    EXPECT_EQ(m.bands, 2);
    EXPECT_EQ(m.source_bands, (std::vector<int>{4, 8}));
    EXPECT_EQ(m.source_band_count, 13);
    EXPECT_DOUBLE_EQ(m.data_range[1], 10000);
    EXPECT_DOUBLE_EQ(m.scale, 0.0001);
    EXPECT_FLOAT_EQ(m.std[1], 0.4f);
    EXPECT_EQ(m.tile_size, 64);
    EXPECT_EQ(m.multiple_of, 1);  // default
    EXPECT_DOUBLE_EQ(m.gsd_m, 10);
    EXPECT_EQ(m.output_activation, "softmax");  // default
    ASSERT_EQ(m.classes.size(), 2u);
    EXPECT_EQ(m.classes[1].name, "b");
    EXPECT_EQ(m.classes[1].color[2], 6);
    EXPECT_EQ(m.classes[1].parents, (std::vector<std::string>{"land", "wet"}));
    EXPECT_EQ(m.levels.size(), 3u);
    EXPECT_EQ(m.output_channels(), 2);
    // Round trip through to_json.
    const ModelMetadata again = metadata_from_json(m.to_json(), "again");
    EXPECT_EQ(again.to_json(), m.to_json());
}

TEST(ModelMetadata, EachBrokenFieldIsNamed) {
    struct Case {
        std::string pointer;
        nlohmann::json value;
        std::string message;
    };
    const std::vector<Case> cases{
        {"/format", "other", "format: must be \"rsi-model\""},
        {"/format_version", 2, "format_version: version 2 is not supported"},
        {"/task", "detection", "task: 'detection' is not one of segmentation, scene"},
        {"/input/bands", 0, "input.bands: 0 is out of range"},
        {"/input/mean", nlohmann::json::array({0.1}), "input.mean: has 1 values for 2 bands"},
        {"/input/std", nlohmann::json::array({0.1, 0}), "input.std: values must be > 0"},
        {"/input/source_band_count", 6, "input.source_bands: band 8 is past input.source_band_count 6"},
        {"/input/source_band_count", 0, "input.source_band_count: 0 is out of range"},
        {"/input/source_band_count", 13.5, "input.source_band_count: must be an integer"},
        {"/input/data_range", nlohmann::json::array({5, 5}), "input.data_range: must be [min, max] with min < max"},
        {"/input/scale", "big", "input.scale: must be a number"},
        {"/tile/size", 64.5, "tile.size: must be an integer"},
        {"/tile/overlap", 64, "tile.overlap: must be >= 0 and smaller than tile.size"},
        {"/gsd_m", -1, "gsd_m: must be > 0 metres"},
        {"/output", "scores", "output: 'scores' is not one of logits, probabilities"},
        {"/band_mapping/single_band", "copy", "band_mapping.single_band: 'copy' is not one of replicate, refuse"},
        {"/classes/1/id", 5, "classes[1].id: ids must be 0..K-1 in order"},
        {"/classes/1/name", "a", "classes[1].name: 'a' appears twice"},
        {"/classes/0/color", nlohmann::json::array({1, 2, 300}), "classes[0].color: components must be integers 0..255"},
        {"/classes/0/parents", nlohmann::json::array({"land"}), "classes[0].parents: needs 2 ancestors"},
        {"/weights_sha256", "abc", "weights_sha256: must be 64 lowercase hex digits"},
        {"/provenance/command", 3, "provenance.command: must be a string"},
        // A golden block `model check` could not use (it failed with raw JSON errors or bad_alloc).
        {"/golden", nlohmann::json{{"input", "ramp"}}, "golden.shape: must be [N, C, H, W]"},
        {"/golden", nlohmann::json{{"input", "noise"}}, "golden.input: must be \"ramp\""},
        {"/golden", nlohmann::json{{"input", "ramp"}, {"shape", {1, 2, -64, 64}}}, "golden.shape: must be [N, C, H, W]"},
        {"/golden", nlohmann::json{{"input", "ramp"}, {"shape", {1, 2, 1000000, 1000000}}}, "golden.shape: must be [N, C, H, W]"},
        {"/golden", nlohmann::json{{"input", "ramp"}, {"shape", {1, 2, 8, 8}}}, "golden.output_sum: must be a number"},
        {"/golden", nlohmann::json{{"input", "ramp"}, {"shape", {1, 2, 8, 8}}, {"output_sum", 1}, {"output_abs_sum", 2}, {"output_sample", "x"}},
         "golden.output_sample: must be an array of numbers"},
    };
    for (const Case& c : cases) {
        nlohmann::json doc = valid_document();
        doc[nlohmann::json::json_pointer(c.pointer)] = c.value;
        const std::string message = error_of(doc);
        EXPECT_NE(message.find("model.pt: rsi.json: " + c.message), std::string::npos)
            << c.pointer << " gave: " << message;
    }
    // A segmentation tile the output stride does not divide passed, and failed later on the output shape.
    nlohmann::json strided = valid_document();
    strided["task"] = "segmentation";
    strided["tile"]["size"] = 63;
    strided["tile"]["output_stride"] = 2;
    EXPECT_EQ(error_of(strided), "model.pt: rsi.json: tile.size: must be a multiple of tile.output_stride (the output is tile.size / "
                                 "output_stride pixels a side)");
    strided["tile"]["size"] = 64;
    EXPECT_EQ(error_of(strided), "");
    nlohmann::json missing = valid_document();
    missing.erase("license");
    EXPECT_EQ(error_of(missing), "model.pt: rsi.json: license: missing required field");
    nlohmann::json unnumbered = valid_document();
    unnumbered["input"].erase("source_bands");
    EXPECT_EQ(error_of(unnumbered), "model.pt: rsi.json: input.source_band_count: needs input.source_bands (the bands it numbers)");
    EXPECT_THROW(parse_model_metadata("{not json", "x.pt"), Error);
    EXPECT_THROW(parse_model_metadata("[]", "x.pt"), Error);
}

TEST(ModelMetadata, CommandLineMetadataForAModelWithout) {
    MetadataOverrides o;
    try {
        metadata_from_overrides(o, "plain.pt");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::usage);
        EXPECT_NE(std::string(e.what()).find("--task --model-bands --classes --model-tile-size"), std::string::npos);
    }
    o.task = "segmentation";
    o.bands = 3;
    o.classes = {"background", "building"};
    o.tile_size = 256;
    o.mean = {1, 2, 3};
    const ModelMetadata m = metadata_from_overrides(o, "dir/plain.pt");
    EXPECT_EQ(m.name, "plain.pt");
    EXPECT_EQ(m.bands, 3);
    EXPECT_EQ(m.std, (std::vector<float>{1, 1, 1}));
    EXPECT_EQ(m.mean[2], 3);
    EXPECT_EQ(m.classes[1].name, "building");
    EXPECT_EQ(m.overlap, 32);
    MetadataOverrides change;
    change.tile_size = 32;
    const ModelMetadata embedded = metadata_from_json(valid_document(), "model.pt");
    EXPECT_EQ(apply_overrides(embedded, change, "model.pt").tile_size, 32);
    change.mean = {0.5f};  // wrong count for 2 bands
    EXPECT_THROW(apply_overrides(embedded, change, "model.pt"), Error);
    // What the user typed is a usage error (exit 2), named as command-line metadata, not rsi.json
    try {
        apply_overrides(embedded, change, "model.pt");
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::usage);
        EXPECT_NE(std::string(e.what()).find("model.pt: command-line metadata: input.mean"), std::string::npos) << e.what();
    }
    // A usage error (exit 2) whose message holds `fragment`.
    const auto expect_refused = [&embedded](const MetadataOverrides& overrides, const std::string& fragment) {
        try {
            apply_overrides(embedded, overrides, "model.pt");
            ADD_FAILURE() << "no error for " << fragment;
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::usage);
            EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
        }
    };
    // Non-finite numbers from the command line are refused as rsi.json's would be.
    for (const auto& bad : std::vector<MetadataOverrides>{[] { MetadataOverrides x; x.mean = {NAN, 0}; return x; }(),
                                                         [] { MetadataOverrides x; x.std = {1, INFINITY}; return x; }(),
                                                         [] { MetadataOverrides x; x.scale = INFINITY; return x; }()}) {
        expect_refused(bad, "finite number");
    }
    // --model-bands with the count the model declares changes nothing (it reset mean, std and source
    // bands to 0, 1 and 1..N); another count needs the new bands' mean and std.
    MetadataOverrides same;
    same.bands = 2;
    const ModelMetadata kept = apply_overrides(embedded, same, "model.pt");
    EXPECT_EQ(kept.mean, embedded.mean);
    EXPECT_EQ(kept.std, embedded.std);
    EXPECT_EQ(kept.source_bands, embedded.source_bands);
    EXPECT_EQ(kept.band_names, embedded.band_names);
    MetadataOverrides more;
    more.bands = 3;
    expect_refused(more, "--model-bands: the model's metadata declares 2 bands");
    more.mean = {0, 0, 0};
    more.std = {1, 1, 1};
    EXPECT_EQ(apply_overrides(embedded, more, "model.pt").bands, 3);
    o.classes = {"a", "a"};
    try {
        metadata_from_overrides(o, "plain.pt");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::usage);
        EXPECT_NE(std::string(e.what()).find("appears twice"), std::string::npos) << e.what();
    }
    // An embedded document's fault stays a runtime error naming rsi.json
    nlohmann::json broken = valid_document();
    broken["input"]["std"] = {0.5, 0.0};
    try {
        metadata_from_json(broken, "model.pt");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::runtime);
        EXPECT_NE(std::string(e.what()).find("model.pt: rsi.json: input.std"), std::string::npos) << e.what();
    }
}

TEST(ModelMetadata, Int8FieldsAreAcceptedAndRoundTrip) {
    const ModelMetadata plain = metadata_from_json(valid_document(), "model.pt");
    EXPECT_EQ(plain.precision, "fp32");  // default
    EXPECT_FALSE(plain.is_quantized());
    EXPECT_TRUE(plain.quantized_engine.empty());
    EXPECT_FALSE(plain.to_json().contains("precision"));
    for (const char* engine : {"onednn", "qnnpack", "fbgemm"}) {
        nlohmann::json doc = valid_document();
        doc["precision"] = "int8";
        doc["quantization"] = {{"engine", engine},
                               {"method", "fx static"},
                               {"calibration", {{"tiles", 16}, {"files", {"inria/train/images/austin1_0.tif"}}}},
                               {"source_model", {{"name", "m"}}}};
        const ModelMetadata m = metadata_from_json(doc, "model.pt");
        EXPECT_TRUE(m.is_quantized());
        EXPECT_EQ(m.quantized_engine, engine);
        EXPECT_EQ(m.quantization["calibration"]["tiles"], 16);
        const ModelMetadata again = metadata_from_json(m.to_json(), "again");
        EXPECT_EQ(again.to_json(), m.to_json());
        EXPECT_EQ(again.quantized_engine, engine);
    }
    nlohmann::json explicit_fp32 = valid_document();
    explicit_fp32["precision"] = "fp32";
    EXPECT_FALSE(metadata_from_json(explicit_fp32, "model.pt").is_quantized());
}

TEST(ModelMetadata, Int8FieldsAreRejectedWhenInconsistent) {
    const nlohmann::json q{{"engine", "onednn"}};
    struct Case {
        nlohmann::json precision, quantization;
        std::string message;
    };
    const std::vector<Case> cases{
        {"int4", q, "precision: 'int4' is not one of fp32, int8"},
        {"int8", nullptr, "quantization: missing required field"},
        {"int8", nlohmann::json::object(), "quantization.engine: missing required field"},
        {"int8", {{"engine", "tensorrt"}}, "quantization.engine: 'tensorrt' is not one of qnnpack, onednn, fbgemm, x86"},
        {"int8", {{"engine", 3}}, "quantization.engine: must be a string"},
        {"int8", "onednn", "quantization: must be an object"},
        {"int8", {{"engine", "onednn"}, {"calibration", 16}}, "quantization.calibration: must be an object"},
        {"fp32", q, "quantization: is only allowed with \"precision\": \"int8\""},
        {7, q, "precision: must be a string"},
    };
    for (const Case& c : cases) {
        nlohmann::json doc = valid_document();
        doc["precision"] = c.precision;
        if (!c.quantization.is_null()) doc["quantization"] = c.quantization;
        const std::string message = error_of(doc);
        EXPECT_NE(message.find("model.pt: rsi.json: " + c.message), std::string::npos)
            << c.precision << " " << c.quantization << " gave: " << message;
    }
}

TEST(ModelMetadata, CpuGraphDefaultsToOptimizeForInferenceAndRoundTrips) {
    const ModelMetadata plain = metadata_from_json(valid_document(), "model.pt");
    EXPECT_EQ(plain.cpu_graph, "optimize_for_inference");
    EXPECT_FALSE(plain.to_json().contains("cpu_graph"));  // the default is not written
    nlohmann::json doc = valid_document();
    doc["cpu_graph"] = "channels_last";
    const ModelMetadata m = metadata_from_json(doc, "model.pt");
    EXPECT_EQ(m.cpu_graph, "channels_last");
    EXPECT_EQ(m.to_json().at("cpu_graph"), "channels_last");
    doc["cpu_graph"] = "nhwc";
    EXPECT_NE(error_of(doc).find("model.pt: rsi.json: cpu_graph: 'nhwc' is not one of optimize_for_inference, channels_last"),
              std::string::npos)
        << error_of(doc);
    doc["cpu_graph"] = 1;
    EXPECT_NE(error_of(doc).find("cpu_graph: must be a string"), std::string::npos) << error_of(doc);
}

}  // namespace
}  // namespace rsi::models
