#include "src/scene_evaluation.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "src/csv_table.hpp"
#include "tiling/error.hpp"

namespace fs = std::filesystem;

namespace rsi {

namespace {

std::string item_key(const std::string& id) { return fs::path(id).stem().string(); }

size_t column(const std::vector<std::string>& header, const std::string& wanted, const std::vector<std::string>& defaults,
              const std::string& path, const char* what) {
    if (!wanted.empty()) {
        const auto it = std::find(header.begin(), header.end(), wanted);
        if (it == header.end()) throw usage_error(path + ": no column '" + wanted + "'");
        return static_cast<size_t>(it - header.begin());
    }
    for (const std::string& name : defaults) {
        const auto it = std::find(header.begin(), header.end(), name);
        if (it != header.end()) return static_cast<size_t>(it - header.begin());
    }
    std::string list;
    for (const std::string& name : defaults) list += (list.empty() ? "" : ", ") + name;
    throw usage_error(path + ": no " + what + " column (looked for " + list + "; name one with an option)");
}

// id key -> class name, with the line each came from.
std::map<std::string, std::pair<std::string, int64_t>> read_table(const std::string& path, const std::string& id_column,
                                                                  const std::string& class_column) {
    std::ifstream in(path);
    if (!in) throw Error(path + ": cannot open");
    const std::vector<CsvRow> rows = read_csv_rows(in, ',', path);
    if (rows.empty()) throw Error(path + ": empty file");
    const auto& header = rows.front().fields;
    const size_t id = column(header, id_column, {"image", "name", "file", "path", "id", "window_id"}, path, "id");
    const size_t cls = column(header, class_column, {"class", "label", "prediction", "predicted"}, path, "class");
    std::map<std::string, std::pair<std::string, int64_t>> out;
    for (size_t r = 1; r < rows.size(); ++r) {
        const CsvRow& row = rows[r];
        if (row.fields.size() != header.size()) {
            throw Error(path + ":" + std::to_string(row.line) + ": " + std::to_string(row.fields.size()) + " fields, the header has " +
                        std::to_string(header.size()));
        }
        const std::string key = item_key(row.fields[id]);
        if (key.empty()) throw Error(path + ":" + std::to_string(row.line) + ": empty id");
        if (row.fields[cls].empty()) throw Error(path + ":" + std::to_string(row.line) + ": empty class");
        if (!out.emplace(key, std::make_pair(row.fields[cls], row.line)).second) {
            throw Error(path + ":" + std::to_string(row.line) + ": item '" + key + "' appears twice");
        }
    }
    return out;
}

// Files beside the scenes that are not scenes: hidden files, GDAL's sidecars and world files, metadata.
bool is_scene_file(const fs::path& file) {
    const std::string name = file.filename().string();
    if (name.empty() || name[0] == '.' || name == "Thumbs.db") return false;
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    for (const char* suffix : {".aux.xml", ".xml", ".ovr", ".msk", ".prj", ".wld", ".tfw", ".pgw", ".jgw", ".j2w", ".txt", ".json"}) {
        const std::string s(suffix);
        if (lower.size() > s.size() && lower.compare(lower.size() - s.size(), s.size(), s) == 0) return false;
    }
    return true;
}

std::map<std::string, std::pair<std::string, int64_t>> read_class_folders(const std::string& dir) {
    std::map<std::string, std::pair<std::string, int64_t>> out;
    for (const auto& sub : fs::directory_iterator(dir)) {
        if (!sub.is_directory()) continue;
        for (const auto& file : fs::directory_iterator(sub.path())) {
            if (!file.is_regular_file() || !is_scene_file(file.path())) continue;
            const std::string key = item_key(file.path().string());
            if (!out.emplace(key, std::make_pair(sub.path().filename().string(), int64_t{0})).second) {
                throw Error(dir + ": item '" + key + "' appears in two class folders");
            }
        }
    }
    if (out.empty()) throw Error(dir + ": no class folders with files");
    return out;
}

}  // namespace

SceneEvaluation evaluate_scenes(const SceneEvaluationOptions& options) {
    const auto predictions = read_table(options.prediction, options.id_column, options.class_column);
    const auto labels = fs::is_directory(options.labels)
                            ? read_class_folders(options.labels)
                            : read_table(options.labels, options.label_id_column.empty() ? options.id_column : options.label_id_column,
                                         options.label_class_column.empty() ? options.class_column : options.label_class_column);
    std::set<std::string> names;
    for (const auto& [key, value] : labels) names.insert(value.first);
    for (const auto& [key, value] : predictions) {
        if (labels.count(key)) names.insert(value.first);
    }
    SceneEvaluation result;
    result.class_names.assign(names.begin(), names.end());
    std::map<std::string, int> index;
    for (size_t i = 0; i < result.class_names.size(); ++i) index[result.class_names[i]] = static_cast<int>(i);
    result.matrix = ConfusionMatrix(static_cast<int>(result.class_names.size()));
    for (const auto& [key, label] : labels) {
        const auto p = predictions.find(key);
        if (p == predictions.end()) {
            throw Error(options.prediction + ": no prediction for '" + key + "' (labelled in " + options.labels +
                        (label.second > 0 ? ":" + std::to_string(label.second) : std::string()) + ")");
        }
        result.matrix.add_pair(index.at(label.first), index.at(p->second.first));
        ++result.items;
    }
    for (const auto& [key, value] : predictions) result.unlabelled_predictions += labels.count(key) ? 0 : 1;
    result.metrics = result.matrix.metrics();
    return result;
}

}  // namespace rsi
