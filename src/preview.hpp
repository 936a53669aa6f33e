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
    // Without it an existing output is refused as one that appeared while the run worked (a runtime
    // error): callers check the path with check_output_path when their run starts.
    bool overwrite = false;
    // The image's red, green and blue bands (1-based); empty: the bands declared Red, Green and Blue,
    // else the first three that are not alpha.
    std::vector<int> rgb_bands;
};

// Throws a usage Error unless `path` ends in .png (any case): previews are PNG images, whatever the name.
void check_preview_name(const std::string& path);

// The image bands that fill a model's red, green and blue channels (channel names "red"/"B04",
// "green"/"B03", "blue"/"B02"), given the source bands of its channels; empty when it has no such three
// (a Sentinel-2 model's preview then shows B04, B03, B02 instead of B01, B02, B03).
std::vector<int> model_rgb_bands(const models::ModelMetadata& model, const std::vector<int>& source_bands);

// Outlines the pixels of `outline_class` in `mask` (same grid as the image) in red.
void write_outline_preview(const PreviewOptions& options, const std::string& mask, int outline_class);

// Blends the colours of `classes` from `class_map` (any grid over the image: a scene lattice or the
// image grid) over the image, with a legend of the classes present.
void write_class_preview(const PreviewOptions& options, const std::string& class_map,
                         const std::vector<models::ClassInfo>& classes, double opacity = 0.45);

}  // namespace rsi
