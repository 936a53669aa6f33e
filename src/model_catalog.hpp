#pragma once
// The bundled models in data/models: listing them, reading their metadata without loading torch,
// resolving a name ("buildings") or a path to a model file, and picking the one that fits an image.
#include <optional>
#include <string>
#include <vector>

#include "models/model_metadata.hpp"

namespace rsi {

struct CatalogEntry {
    std::string name;  // file stem, e.g. "buildings"
    std::string path;
    models::ModelMetadata metadata;
};

// Reads rsi.json from a model package (a zip archive) through GDAL's /vsizip/, without torch.
// Returns nothing when the package has no rsi.json; throws when it is not a model package.
std::optional<models::ModelMetadata> read_packaged_metadata(const std::string& path);

std::vector<CatalogEntry> list_bundled_models(const std::string& models_dir);

// A path to an existing file is returned as is; otherwise `name_or_path` names a bundled model.
std::string resolve_model(const std::string& name_or_path, const std::string& models_dir);

// The bundled model for `task` that can read an image of `band_count` bands: the one with most
// input bands not exceeding the image's (a 13-band Sentinel-2 image gets the 13-band model, a 4-band
// image the R,G,B,NIR one). Throws naming what was looked for.
CatalogEntry pick_bundled_model(models::Task task, int band_count, const std::string& models_dir);

}  // namespace rsi
