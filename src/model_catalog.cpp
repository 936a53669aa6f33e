#include "src/model_catalog.hpp"

#include <algorithm>
#include <cpl_vsi.h>
#include <filesystem>

#include "tiling/error.hpp"
#include "tiling/gdal_dataset.hpp"

namespace fs = std::filesystem;

namespace rsi {

namespace {

std::string read_vsi_file(const std::string& path) {
    VSILFILE* f = VSIFOpenL(path.c_str(), "rb");
    if (!f) return "";
    std::string text;
    char buffer[65536];
    size_t n = 0;
    while ((n = VSIFReadL(buffer, 1, sizeof buffer, f)) > 0) text.append(buffer, n);
    VSIFCloseL(f);
    return text;
}

}  // namespace

std::optional<models::ModelMetadata> read_packaged_metadata(const std::string& path) {
    ensure_gdal_registered();
    if (fs::is_directory(path)) throw Error(path + ": is a directory, not a model file");
    if (!fs::is_regular_file(path)) throw Error(path + ": no such model file");
    // Braces make /vsizip/ treat the file as an archive whatever its extension.
    const std::string root = "/vsizip/{" + path + "}";
    char** entries = VSIReadDir(root.c_str());
    if (!entries) throw Error(path + ": not a TorchScript model package (not a zip archive)");
    std::optional<models::ModelMetadata> found;
    for (char** e = entries; *e && !found; ++e) {
        const std::string text = read_vsi_file(root + "/" + *e + "/extra/rsi.json");
        if (!text.empty()) found = models::parse_model_metadata(text, path);
    }
    CSLDestroy(entries);
    return found;
}

std::vector<CatalogEntry> list_bundled_models(const std::string& models_dir) {
    std::vector<CatalogEntry> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(models_dir, ec)) {
        if (entry.path().extension() != ".pt") continue;
        auto metadata = read_packaged_metadata(entry.path().string());
        if (!metadata) continue;
        out.push_back({entry.path().stem().string(), entry.path().string(), std::move(*metadata)});
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
}

std::string resolve_model(const std::string& name_or_path, const std::string& models_dir) {
    if (fs::exists(name_or_path)) return name_or_path;
    const fs::path bundled = fs::path(models_dir) / (name_or_path + ".pt");
    if (name_or_path.find('/') == std::string::npos && fs::exists(bundled)) return bundled.string();
    std::string names;
    for (const auto& e : list_bundled_models(models_dir)) names += (names.empty() ? "" : ", ") + e.name;
    throw Error(name_or_path + ": no such model file" + (names.empty() ? "" : " or bundled model (bundled: " + names + ")"));
}

CatalogEntry pick_bundled_model(models::Task task, int band_count, const std::string& models_dir) {
    std::optional<CatalogEntry> best;
    for (auto& e : list_bundled_models(models_dir)) {
        if (e.metadata.task != task) continue;
        const bool fits = e.metadata.bands <= band_count || (band_count == 1 && e.metadata.single_band == "replicate");
        if (!fits) continue;
        if (!best || e.metadata.bands > best->metadata.bands) best = std::move(e);
    }
    if (!best) {
        throw Error(std::string("no bundled ") + models::to_string(task) + " model in " + models_dir + " reads a " +
                    std::to_string(band_count) + "-band image (give one with -m)");
    }
    return *best;
}

}  // namespace rsi
