#pragma once
// A model run under test-time augmentation: the batch is transformed by each dihedral transform,
// run, and (for spatial outputs) transformed back before the predictions are averaged.
#include <vector>

#include "models/model.hpp"
#include "src/segmentation.hpp"

namespace rsi {

// Probabilities of `input` (shape) averaged over the transforms of `tta` into `output`. Scene
// outputs (N x K) need no inverse transform; segmentation outputs (N x K x H' x W') are restored.
void run_with_tta(const models::Model& model, Tta tta, const models::BatchShape& shape, const std::vector<float>& input,
                  std::vector<float>& output);

}  // namespace rsi
