#include "models/model_metadata.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "tiling/error.hpp"

namespace rsi::models {

using nlohmann::json;

const char* to_string(Task task) { return task == Task::scene ? "scene" : "segmentation"; }

int ModelMetadata::output_channels() const {
    return output == "logits" && output_activation == "sigmoid" ? 1 : static_cast<int>(classes.size());
}

namespace {

class Reader {
public:
    Reader(const json& doc, std::string origin, bool command_line = false)
        : doc_(doc), origin_(std::move(origin)), command_line_(command_line) {}

    // A field the user typed on the command line (--task, --classes, --mean ...) is a usage error.
    [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
        if (command_line_) throw usage_error(origin_ + ": command-line metadata: " + field + ": " + problem);
        throw Error(origin_ + ": rsi.json: " + field + ": " + problem);
    }

    const json* find(const std::string& path) const {
        const json* cur = &doc_;
        size_t start = 0;
        while (true) {
            const size_t dot = path.find('.', start);
            const std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
            if (!cur->is_object()) return nullptr;
            const auto it = cur->find(key);
            if (it == cur->end()) return nullptr;
            cur = &*it;
            if (dot == std::string::npos) return cur;
            start = dot + 1;
        }
    }
    const json& need(const std::string& path) const {
        const json* v = find(path);
        if (!v || v->is_null()) fail(path, "missing required field");
        return *v;
    }
    std::string string(const std::string& path, bool required = true, const std::string& fallback = "") const {
        const json* v = required ? &need(path) : find(path);
        if (!v || v->is_null()) return fallback;
        if (!v->is_string()) fail(path, "must be a string");
        return v->get<std::string>();
    }
    long long integer(const std::string& path, bool required = true, long long fallback = 0) const {
        const json* v = required ? &need(path) : find(path);
        if (!v || v->is_null()) return fallback;
        if (!v->is_number_integer()) fail(path, "must be an integer");
        return v->get<long long>();
    }
    double number(const std::string& path, bool required = true, double fallback = 0) const {
        const json* v = required ? &need(path) : find(path);
        if (!v || v->is_null()) return fallback;
        if (!v->is_number()) fail(path, "must be a number");
        const double d = v->get<double>();
        if (!std::isfinite(d)) fail(path, "must be finite");
        return d;
    }
    std::vector<double> numbers(const std::string& path, bool required = true) const {
        const json* v = required ? &need(path) : find(path);
        std::vector<double> out;
        if (!v || v->is_null()) return out;
        if (!v->is_array()) fail(path, "must be an array of numbers");
        for (const auto& e : *v) {
            if (!e.is_number() || !std::isfinite(e.get<double>())) fail(path, "must be an array of numbers");
            out.push_back(e.get<double>());
        }
        return out;
    }
    std::vector<std::string> strings(const std::string& path, bool required = true) const {
        const json* v = required ? &need(path) : find(path);
        std::vector<std::string> out;
        if (!v || v->is_null()) return out;
        if (!v->is_array()) fail(path, "must be an array of strings");
        for (const auto& e : *v) {
            if (!e.is_string()) fail(path, "must be an array of strings");
            out.push_back(e.get<std::string>());
        }
        return out;
    }
    const std::string& origin() const { return origin_; }

private:
    const json& doc_;
    std::string origin_;
    bool command_line_ = false;
};

void check_one_of(const Reader& r, const std::string& field, const std::string& value,
                  std::initializer_list<const char*> allowed) {
    std::string list;
    for (const char* a : allowed) {
        if (value == a) return;
        list += (list.empty() ? "" : ", ") + std::string(a);
    }
    r.fail(field, "'" + value + "' is not one of " + list);
}

int to_int(const Reader& r, const std::string& field, long long v, long long lo, long long hi) {
    if (v < lo || v > hi) r.fail(field, std::to_string(v) + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return static_cast<int>(v);
}

// Semantic checks shared by embedded documents and command-line metadata.
void validate(const ModelMetadata& m, const Reader& r) {
    if (m.bands < 1 || m.bands > 1024) r.fail("input.bands", "must be between 1 and 1024");
    if (!m.band_names.empty() && static_cast<int>(m.band_names.size()) != m.bands)
        r.fail("input.band_names", "has " + std::to_string(m.band_names.size()) + " names for " + std::to_string(m.bands) + " bands");
    if (static_cast<int>(m.source_bands.size()) != m.bands)
        r.fail("input.source_bands", "has " + std::to_string(m.source_bands.size()) + " entries for " + std::to_string(m.bands) + " bands");
    for (int b : m.source_bands) {
        if (b < 1) r.fail("input.source_bands", "band numbers are 1-based");
    }
    if (!(m.data_range[0] < m.data_range[1])) r.fail("input.data_range", "must be [min, max] with min < max");
    if (m.scale == 0 || !std::isfinite(m.scale)) r.fail("input.scale", "must be a non-zero number");
    if (static_cast<int>(m.mean.size()) != m.bands)
        r.fail("input.mean", "has " + std::to_string(m.mean.size()) + " values for " + std::to_string(m.bands) + " bands");
    if (static_cast<int>(m.std.size()) != m.bands)
        r.fail("input.std", "has " + std::to_string(m.std.size()) + " values for " + std::to_string(m.bands) + " bands");
    for (float s : m.std) {
        if (!(s > 0)) r.fail("input.std", "values must be > 0");
    }
    check_one_of(r, "band_mapping.single_band", m.single_band, {"replicate", "refuse"});
    check_one_of(r, "band_mapping.rescale", m.rescale, {"none", "percentile", "minmax"});
    if (!(m.rescale_low >= 0 && m.rescale_low < m.rescale_high && m.rescale_high <= 100))
        r.fail("band_mapping.low", "percentiles must satisfy 0 <= low < high <= 100");
    if (m.tile_size < 1 || m.tile_size > 65536) r.fail("tile.size", "must be between 1 and 65536");
    if (m.overlap < 0 || m.overlap >= m.tile_size) r.fail("tile.overlap", "must be >= 0 and smaller than tile.size");
    if (m.output_stride < 1) r.fail("tile.output_stride", "must be >= 1");
    if (m.halo < 0) r.fail("tile.halo", "must be >= 0");
    if (m.multiple_of < 1) r.fail("tile.multiple_of", "must be >= 1");
    if (m.tile_size % m.multiple_of != 0) r.fail("tile.size", "must be a multiple of tile.multiple_of");
    if (m.task == Task::segmentation && m.output_stride >= 1 && m.tile_size % m.output_stride != 0)
        r.fail("tile.size", "must be a multiple of tile.output_stride (the output is tile.size / output_stride pixels a side)");
    if (!(m.gsd_m > 0)) r.fail("gsd_m", "must be > 0 metres");
    check_one_of(r, "output", m.output, {"logits", "probabilities"});
    check_one_of(r, "output_activation", m.output_activation, {"softmax", "sigmoid"});
    if (m.classes.empty()) r.fail("classes", "must list at least one class");
    if (m.output_activation == "sigmoid" && m.output == "logits" && m.classes.size() != 2)
        r.fail("output_activation", "sigmoid needs exactly 2 classes (background, foreground)");
    std::set<std::string> names;
    for (size_t i = 0; i < m.classes.size(); ++i) {
        const ClassInfo& c = m.classes[i];
        const std::string field = "classes[" + std::to_string(i) + "]";
        if (c.id != static_cast<int>(i)) r.fail(field + ".id", "ids must be 0..K-1 in order (got " + std::to_string(c.id) + ")");
        if (c.name.empty()) r.fail(field + ".name", "must not be empty");
        if (!names.insert(c.name).second) r.fail(field + ".name", "'" + c.name + "' appears twice");
        if (!m.levels.empty() && c.parents.size() + 1 != m.levels.size())
            r.fail(field + ".parents", "needs " + std::to_string(m.levels.size() - 1) + " ancestors for " +
                                           std::to_string(m.levels.size()) + " hierarchy levels");
    }
    if (m.classes.size() > 255) r.fail("classes", "at most 255 classes fit a Byte class map");
}

}  // namespace

ModelMetadata metadata_from_json(const json& doc, const std::string& origin) {
    const Reader r(doc, origin);
    if (!doc.is_object()) r.fail("(document)", "must be a JSON object");
    if (r.string("format") != "rsi-model") r.fail("format", "must be \"rsi-model\"");
    if (r.integer("format_version") != 1) r.fail("format_version", "version " + std::to_string(r.integer("format_version")) + " is not supported (this rsi reads 1)");
    ModelMetadata m;
    m.name = r.string("name");
    if (m.name.empty()) r.fail("name", "must not be empty");
    m.version = r.string("version");
    m.description = r.string("description", false);
    const std::string task = r.string("task");
    check_one_of(r, "task", task, {"segmentation", "scene"});
    m.task = task == "scene" ? Task::scene : Task::segmentation;

    m.bands = to_int(r, "input.bands", r.integer("input.bands"), 1, 1024);
    m.band_names = r.strings("input.band_names");
    for (double b : r.numbers("input.source_bands", false)) {
        // Checked before the cast: a huge value would make the conversion undefined.
        if (b != std::floor(b) || b < 1 || b > 65535) r.fail("input.source_bands", "must be integers between 1 and 65535");
        m.source_bands.push_back(static_cast<int>(b));
    }
    m.source_bands_declared = !m.source_bands.empty();
    if (const json* count = r.find("input.source_band_count"); count && !count->is_null()) {
        m.source_band_count = to_int(r, "input.source_band_count", r.integer("input.source_band_count"), 1, 65535);
        if (!m.source_bands_declared) r.fail("input.source_band_count", "needs input.source_bands (the bands it numbers)");
        for (int b : m.source_bands) {
            if (b > m.source_band_count)
                r.fail("input.source_bands", "band " + std::to_string(b) + " is past input.source_band_count " +
                                                 std::to_string(m.source_band_count));
        }
    }
    if (m.source_bands.empty()) {
        for (int b = 1; b <= m.bands; ++b) m.source_bands.push_back(b);
    }
    const auto range = r.numbers("input.data_range");
    if (range.size() != 2) r.fail("input.data_range", "must be [min, max]");
    m.data_range = {range[0], range[1]};
    m.scale = r.number("input.scale");
    for (const char* field : {"input.mean", "input.std"}) {
        for (double v : r.numbers(field)) {
            if (std::abs(v) > std::numeric_limits<float>::max()) r.fail(field, "values must fit a 32-bit float");
            (std::string(field) == "input.mean" ? m.mean : m.std).push_back(static_cast<float>(v));
        }
    }

    m.single_band = r.string("band_mapping.single_band", false, "refuse");
    m.rescale = r.string("band_mapping.rescale", false, "none");
    if (r.find("band_mapping.rescale_when")) m.rescale_when = r.strings("band_mapping.rescale_when");
    m.rescale_low = r.number("band_mapping.low", false, 2);
    m.rescale_high = r.number("band_mapping.high", false, 98);

    m.tile_size = to_int(r, "tile.size", r.integer("tile.size"), 1, 65536);
    m.overlap = to_int(r, "tile.overlap", r.integer("tile.overlap"), 0, 65535);
    m.output_stride = to_int(r, "tile.output_stride", r.integer("tile.output_stride"), 1, 4096);
    m.halo = to_int(r, "tile.halo", r.integer("tile.halo"), 0, 65536);
    m.multiple_of = to_int(r, "tile.multiple_of", r.integer("tile.multiple_of", false, 1), 1, 4096);
    m.gsd_m = r.number("gsd_m");
    m.output = r.string("output");
    m.output_activation = r.string("output_activation", false, "softmax");

    const json& classes = r.need("classes");
    if (!classes.is_array()) r.fail("classes", "must be an array");
    for (size_t i = 0; i < classes.size(); ++i) {
        const std::string field = "classes[" + std::to_string(i) + "]";
        const json& c = classes[i];
        if (!c.is_object()) r.fail(field, "must be an object");
        const Reader cr(c, origin);
        ClassInfo info;
        const json* id = cr.find("id");
        if (!id || !id->is_number_integer()) r.fail(field + ".id", "must be an integer");
        info.id = static_cast<int>(std::clamp<long long>(id->get<long long>(), -1, 1 << 20));
        const json* name = cr.find("name");
        if (!name || !name->is_string()) r.fail(field + ".name", "must be a string");
        info.name = name->get<std::string>();
        const json* color = cr.find("color");
        if (!color || !color->is_array() || color->size() != 3) r.fail(field + ".color", "must be [r, g, b]");
        for (size_t k = 0; k < 3; ++k) {
            const json& v = (*color)[k];
            if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<long long>() > 255)
                r.fail(field + ".color", "components must be integers 0..255");
            info.color[k] = static_cast<uint8_t>(v.get<long long>());
        }
        if (const json* parents = cr.find("parents"); parents && !parents->is_null()) {
            if (!parents->is_array()) r.fail(field + ".parents", "must be an array of strings");
            for (const auto& p : *parents) {
                if (!p.is_string()) r.fail(field + ".parents", "must be an array of strings");
                info.parents.push_back(p.get<std::string>());
            }
        }
        m.classes.push_back(std::move(info));
    }
    m.levels = r.strings("hierarchy.levels", false);
    m.license = r.string("license");
    const json& provenance = r.need("provenance");
    if (!provenance.is_object()) r.fail("provenance", "must be an object");
    r.strings("provenance.data");
    r.string("provenance.script");
    r.string("provenance.command");
    m.provenance = provenance;
    m.weights_sha256 = r.string("weights_sha256");
    if (m.weights_sha256.size() != 64 ||
        m.weights_sha256.find_first_not_of("0123456789abcdef") != std::string::npos)
        r.fail("weights_sha256", "must be 64 lowercase hex digits");
    if (const json* g = r.find("golden"); g && !g->is_null()) {
        // Checked here, so that `model check` never meets a block it cannot use.
        if (!g->is_object()) r.fail("golden", "must be an object");
        if (g->value("input", json()) != "ramp") r.fail("golden.input", "must be \"ramp\" (the only deterministic input rsi knows)");
        const json shape = g->value("shape", json());
        bool shape_ok = shape.is_array() && shape.size() == 4;
        double elements = 1;
        for (size_t i = 0; shape_ok && i < 4; ++i) {
            shape_ok = shape[i].is_number_integer() && shape[i].get<int64_t>() >= 1 && shape[i].get<int64_t>() <= 65536;
            if (shape_ok) elements *= static_cast<double>(shape[i].get<int64_t>());
        }
        if (!shape_ok || elements > double(1 << 26)) r.fail("golden.shape", "must be [N, C, H, W]: positive integers, at most 2^26 elements");
        for (const char* key : {"output_sum", "output_abs_sum"}) {
            if (!g->contains(key) || !(*g)[key].is_number()) r.fail(std::string("golden.") + key, "must be a number");
        }
        const json sample = g->value("output_sample", json::array());
        if (!sample.is_array() || !std::all_of(sample.begin(), sample.end(), [](const json& v) { return v.is_number(); })) {
            r.fail("golden.output_sample", "must be an array of numbers");
        }
        m.golden = *g;
    }
    m.precision = r.string("precision", false, "fp32");
    check_one_of(r, "precision", m.precision, {"fp32", "int8"});
    if (const json* q = r.find("quantization"); q && !q->is_null()) {
        if (!q->is_object()) r.fail("quantization", "must be an object");
        if (m.precision != "int8") r.fail("quantization", "is only allowed with \"precision\": \"int8\"");
        m.quantized_engine = r.string("quantization.engine");
        // The engines LibTorch has quantized kernels for; which ones a build supports is checked at load.
        check_one_of(r, "quantization.engine", m.quantized_engine, {"qnnpack", "onednn", "fbgemm", "x86"});
        if (const json* c = r.find("quantization.calibration"); c && !c->is_null() && !c->is_object())
            r.fail("quantization.calibration", "must be an object");
        m.quantization = *q;
    } else if (m.precision == "int8") {
        r.fail("quantization", "missing required field (an int8 model must name its quantization.engine)");
    }
    m.cpu_graph = r.string("cpu_graph", false, "optimize_for_inference");
    check_one_of(r, "cpu_graph", m.cpu_graph, {"optimize_for_inference", "channels_last"});
    validate(m, r);
    return m;
}

ModelMetadata parse_model_metadata(std::string_view text, const std::string& origin) {
    json doc = json::parse(text.begin(), text.end(), nullptr, false);
    if (doc.is_discarded()) throw Error(origin + ": rsi.json: not valid JSON");
    return metadata_from_json(doc, origin);
}

nlohmann::json ModelMetadata::to_json() const {
    json classes_json = json::array();
    for (const auto& c : classes) {
        json entry{{"id", c.id}, {"name", c.name}, {"color", {c.color[0], c.color[1], c.color[2]}}};
        if (!c.parents.empty()) entry["parents"] = c.parents;
        classes_json.push_back(entry);
    }
    json doc{{"format", "rsi-model"},
             {"format_version", 1},
             {"name", name},
             {"version", version},
             {"task", models::to_string(task)},
             {"input",
              {{"bands", bands},
               {"band_names", band_names},
               {"source_bands", source_bands},
               {"data_range", data_range_known ? json(data_range) : json(nullptr)},
               {"scale", scale},
               {"mean", mean},
               {"std", std}}},
             {"band_mapping",
              {{"single_band", single_band},
               {"rescale", rescale},
               {"rescale_when", rescale_when},
               {"low", rescale_low},
               {"high", rescale_high}}},
             {"tile",
              {{"size", tile_size},
               {"overlap", overlap},
               {"output_stride", output_stride},
               {"halo", halo},
               {"multiple_of", multiple_of}}},
             {"gsd_m", gsd_known ? json(gsd_m) : json(nullptr)},
             {"output", output},
             {"output_activation", output_activation},
             {"classes", classes_json},
             {"license", license},
             {"provenance", provenance.is_null() ? json::object() : provenance},
             {"weights_sha256", weights_sha256}};
    if (!description.empty()) doc["description"] = description;
    if (!levels.empty()) doc["hierarchy"] = {{"levels", levels}};
    if (source_band_count > 0) doc["input"]["source_band_count"] = source_band_count;
    if (!golden.is_null()) doc["golden"] = golden;
    if (precision != "fp32") doc["precision"] = precision;
    if (!quantization.is_null()) doc["quantization"] = quantization;
    if (cpu_graph != "optimize_for_inference") doc["cpu_graph"] = cpu_graph;
    return doc;
}

bool MetadataOverrides::empty() const {
    return !task && classes.empty() && !bands && mean.empty() && std.empty() && !scale && !tile_size && !overlap &&
           !halo && !multiple_of && !gsd_m && !output;
}

namespace {

void apply(ModelMetadata& m, const MetadataOverrides& o, const Reader& r) {
    if (o.task) {
        check_one_of(r, "--task", *o.task, {"segmentation", "scene"});
        m.task = *o.task == "scene" ? Task::scene : Task::segmentation;
    }
    // Command-line numbers are checked as rsi.json's are (JSON cannot even hold NaN or infinity).
    for (const auto& [name, values] : {std::pair<const char*, const std::vector<float>*>{"--mean", &o.mean}, {"--std", &o.std}}) {
        if (!std::all_of(values->begin(), values->end(), [](float v) { return std::isfinite(v); })) {
            r.fail(name, "values must be finite numbers");
        }
    }
    if (o.scale && !std::isfinite(*o.scale)) r.fail("--input-scale", "must be a finite number");
    if (o.bands && *o.bands == m.bands && !m.source_bands.empty()) {
        // The count the model already declares: nothing to change (its band names, source bands,
        // mean and std stay; resetting them silently changed every prediction).
    } else if (o.bands) {
        if (!m.mean.empty() && (o.mean.empty() || o.std.empty())) {
            r.fail("--model-bands", "the model's metadata declares " + std::to_string(m.bands) +
                                        " bands with their mean and std; another count needs --mean and --std for every band");
        }
        m.bands = *o.bands;
        m.source_bands.clear();
        for (int b = 1; b <= m.bands; ++b) m.source_bands.push_back(b);
        m.source_bands_declared = false;
        m.source_band_count = 0;
        m.band_names.clear();
        if (o.mean.empty()) m.mean.assign(static_cast<size_t>(std::max(0, m.bands)), 0.0f);
        if (o.std.empty()) m.std.assign(static_cast<size_t>(std::max(0, m.bands)), 1.0f);
    }
    if (!o.mean.empty()) m.mean = o.mean;
    if (!o.std.empty()) m.std = o.std;
    if (o.scale) m.scale = *o.scale;
    if (o.tile_size) m.tile_size = *o.tile_size;
    if (o.overlap) m.overlap = *o.overlap;
    if (o.halo) m.halo = *o.halo;
    if (o.multiple_of) m.multiple_of = *o.multiple_of;
    if (o.gsd_m) {
        m.gsd_m = *o.gsd_m;
        m.gsd_known = true;
    }
    if (o.output) m.output = *o.output;
    if (!o.classes.empty()) {
        static const std::array<std::array<uint8_t, 3>, 8> palette{{{0, 0, 0}, {230, 25, 75}, {60, 180, 75}, {255, 225, 25},
                                                                    {0, 130, 200}, {245, 130, 48}, {145, 30, 180}, {70, 240, 240}}};
        m.classes.clear();
        for (size_t i = 0; i < o.classes.size(); ++i) {
            m.classes.push_back({static_cast<int>(i), o.classes[i], palette[i % palette.size()], {}});
        }
        m.levels.clear();
    }
}

}  // namespace

ModelMetadata metadata_from_overrides(const MetadataOverrides& o, const std::string& origin) {
    const Reader r(json::object(), origin, true);
    std::string missing;
    if (!o.task) missing += " --task";
    if (!o.bands) missing += " --model-bands";
    if (o.classes.empty()) missing += " --classes";
    if (!o.tile_size) missing += " --model-tile-size";
    if (!missing.empty()) {
        throw usage_error(origin + ": the model has no rsi.json metadata; give" + missing);
    }
    ModelMetadata m;
    const size_t slash = origin.find_last_of('/');
    m.name = origin.substr(slash == std::string::npos ? 0 : slash + 1);
    m.version = "unknown";
    m.license = "unknown";
    m.gsd_m = 1;  // a placeholder that validates; unused while gsd_known is false
    m.gsd_known = false;
    m.data_range_known = false;  // nothing on the command line declares it
    m.weights_sha256_declared = false;  // computed from the weights when loaded
    apply(m, o, r);
    if (!o.overlap) m.overlap = m.tile_size / 8;  // a modest default overlap for unknown models
    validate(m, Reader(json::object(), origin, true));
    return m;
}

ModelMetadata metadata_from_record(const json& document, const std::string& origin) {
    json doc = document;
    if (!doc.is_object()) return metadata_from_json(doc, origin);  // its error
    const bool range_unknown = doc.contains("input") && doc["input"].is_object() && doc["input"].value("data_range", json()).is_null();
    const bool gsd_unknown = doc.value("gsd_m", json()).is_null();
    const bool hash_unknown = doc.value("weights_sha256", json("")).get<std::string>().empty();
    // Placeholders that validate, for the fields metadata_from_overrides leaves unknown.
    if (range_unknown) doc["input"]["data_range"] = {0, 255};
    if (gsd_unknown) doc["gsd_m"] = 1;
    if (hash_unknown) doc["weights_sha256"] = std::string(64, '0');
    json& provenance = doc["provenance"];
    if (!provenance.is_object()) provenance = json::object();
    if (!provenance.contains("data")) provenance["data"] = json::array();
    for (const char* key : {"script", "command"}) {
        if (!provenance.contains(key)) provenance[key] = "";
    }
    ModelMetadata m = metadata_from_json(doc, origin);
    if (range_unknown) m.data_range_known = false;
    if (gsd_unknown) m.gsd_known = false;
    if (hash_unknown) m.weights_sha256.clear();
    m.provenance = document.value("provenance", json::object());
    return m;
}

ModelMetadata apply_overrides(const ModelMetadata& metadata, const MetadataOverrides& o, const std::string& origin) {
    ModelMetadata m = metadata;
    const Reader r(json::object(), origin, true);
    apply(m, o, r);
    validate(m, Reader(json::object(), origin, true));
    return m;
}

}  // namespace rsi::models
