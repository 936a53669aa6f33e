#pragma once
// Quick looks for people: a downsampled PNG of the image with the buildings outlined, or with the
// scene classes blended over it and a legend.
#include <string>
#include <vector>

#include "models/model_metadata.hpp"

namespace rsi {

struct PreviewOptions {
    std::string image;       // the input raster
    std::string output;      // PNG
    int max_size = 1024;     // longest side in pixels
    bool overwrite = false;
};

// Outlines the pixels of `outline_class` in `mask` (same grid as the image) in red.
void write_outline_preview(const PreviewOptions& options, const std::string& mask, int outline_class);

// Blends the colours of `classes` from `class_map` (any grid over the image: a scene lattice or the
// image grid) over the image, with a legend of the classes present.
void write_class_preview(const PreviewOptions& options, const std::string& class_map,
                         const std::vector<models::ClassInfo>& classes, double opacity = 0.45);

}  // namespace rsi
