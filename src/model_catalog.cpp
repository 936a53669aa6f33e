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
    // A TorchScript archive is one folder holding the pickled module (data.pkl): any other zip (a
    // checkpoint folder zipped by hand, a dataset) is refused here, also where the metadata would come
    // from the command line.
    // torch.save writes the same layout without the compiled code (code/): such a pickle is no model
    // LibTorch can run, and is named as such rather than asked for metadata.
    std::optional<models::ModelMetadata> found;
    bool torchscript = false, pickle = false;
    for (char** e = entries; *e; ++e) {
        VSIStatBufL stat;
        if (VSIStatL((root + "/" + *e + "/data.pkl").c_str(), &stat) != 0) continue;
        if (VSIStatL((root + "/" + *e + "/code").c_str(), &stat) != 0 || !VSI_ISDIR(stat.st_mode)) {
            pickle = true;
            continue;
        }
        torchscript = true;
        const std::string document = root + "/" + *e + "/extra/rsi.json";
        const std::string text = read_vsi_file(document);
        if (text.find_first_not_of(" \t\r\n") == std::string::npos && VSIStatL(document.c_str(), &stat) == 0) {
            CSLDestroy(entries);
            throw Error(path + ": rsi.json: the metadata document is empty");  // as the runtime says on load
        }
        if (!text.empty()) {
            found = models::parse_model_metadata(text, path);
            break;
        }
    }
    CSLDestroy(entries);
    if (!torchscript && pickle) {
        throw Error(path + ": not a TorchScript model: a PyTorch pickle without compiled code (saved with torch.save; export it with "
                           "torch.jit.script or torch.jit.trace and torch.jit.save)");
    }
    if (!torchscript) throw Error(path + ": not a TorchScript model package (a zip archive without a pickled module, data.pkl)");
    return found;
}

std::vector<CatalogEntry> list_bundled_models(const std::string& models_dir, std::vector<std::string>* skipped) {
    std::vector<CatalogEntry> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(models_dir, ec)) {
        if (entry.path().extension() != ".pt") continue;
        std::optional<models::ModelMetadata> metadata;
        try {
            metadata = read_packaged_metadata(entry.path().string());
        } catch (const Error& e) {
            if (skipped) skipped->push_back(e.what());
            continue;
        }
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

CatalogEntry pick_bundled_model(models::Task task, const RasterInfo& image, const std::vector<int>& requested_bands,
                                const std::string& models_dir, std::vector<std::string>* skipped) {
    int data_bands = 0;
    for (const BandInfo& b : image.bands) data_bands += b.color_interpretation != "Alpha";
    const int count = requested_bands.empty() ? data_bands : static_cast<int>(requested_bands.size());
    const auto fits = [&](const models::ModelMetadata& m) {
        if (count == 1 && m.single_band == "replicate") return true;
        if (!requested_bands.empty()) return m.bands == count;
        if (m.bands == count) return true;
        if (m.bands > count) return false;
        return std::all_of(m.source_bands.begin(), m.source_bands.end(), [&](int b) { return b <= count; });
    };
    std::optional<CatalogEntry> best;
    for (auto& e : list_bundled_models(models_dir, skipped)) {
        if (e.metadata.task != task || !fits(e.metadata)) continue;
        if (!best || e.metadata.bands > best->metadata.bands) best = std::move(e);
    }
    if (!best) {
        const int alpha = static_cast<int>(image.bands.size()) - data_bands;
        throw Error(image.path + ": no bundled " + models::to_string(task) + " model in " + models_dir + " reads " +
                    (requested_bands.empty() ? "a " + std::to_string(count) + "-band image" +
                                                   (alpha > 0 && requested_bands.empty() ? " (its alpha band is not data)" : "")
                                             : std::to_string(count) + " bands (--bands)") +
                    "; give a model with -m, or choose bands with --bands");
    }
    return *best;
}

}  // namespace rsi
