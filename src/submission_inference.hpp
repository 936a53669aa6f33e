#pragma once
// Submissions straight from contest images: the segmentation model makes each image's mask (a
// scratch file, one at a time) for write_submission.
#include <string>

#include "models/model.hpp"
#include "src/segmentation.hpp"
#include "src/submission.hpp"

namespace rsi {

// `base` carries the segmentation options (tiles, TTA, bands ...); input and output are set per
// image, the scratch masks go to `scratch_dir`. `model` must outlive the returned callback.
MaskMaker segmentation_mask_maker(const models::Model& model, SegmentOptions base, std::string scratch_dir);

}  // namespace rsi
