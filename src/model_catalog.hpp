#pragma once
// The bundled models in data/models: listing them, reading their metadata without loading torch,
// resolving a name ("buildings") or a path to a model file, and picking the one that fits an image.
#include <optional>
#include <string>
#include <vector>

#include "models/model_metadata.hpp"
#include "tiling/raster_source.hpp"

namespace rsi {

struct CatalogEntry {
    std::string name;  // file stem, e.g. "buildings"
    std::string path;
    models::ModelMetadata metadata;
};

// Reads rsi.json from a model package (a zip archive) through GDAL's /vsizip/, without torch.
// Returns nothing when the package has no rsi.json; throws when it is not a model package.
std::optional<models::ModelMetadata> read_packaged_metadata(const std::string& path);

// Every readable model package in `models_dir`; one that cannot be read is left out and, when
// `skipped` is given, named there with the reason (one broken file must not hide the others).
std::vector<CatalogEntry> list_bundled_models(const std::string& models_dir, std::vector<std::string>* skipped = nullptr);

// A path to an existing file is returned as is; otherwise `name_or_path` names a bundled model.
std::string resolve_model(const std::string& name_or_path, const std::string& models_dir);

// The bundled model for `task` that fits `image`: with `requested_bands` (--bands), one taking exactly
// that many; otherwise, counting the image's data bands (not alpha), one that takes them all or whose
// default source bands all exist, the one with most input bands winning (a 13-band Sentinel-2 image
// gets the 13-band model, a 4-band R,G,B,NIR image the 4-band one, an RGBA image a 3-band one).
// Throws naming the image and what was looked for; unreadable packages are added to `skipped`.
CatalogEntry pick_bundled_model(models::Task task, const RasterInfo& image, const std::vector<int>& requested_bands,
                                const std::string& models_dir, std::vector<std::string>* skipped = nullptr);

}  // namespace rsi
