#include "src/tta_inference.hpp"

#include "src/tta.hpp"

namespace rsi {

void run_with_tta(const models::Model& model, Tta tta, const models::BatchShape& shape, const std::vector<float>& input,
                  std::vector<float>& output) {
    const std::vector<int64_t> out_shape = model.run(input.data(), shape, output);
    if (tta == Tta::none) return;
    const bool spatial = out_shape.size() == 4;
    const int transforms = tta == Tta::flip ? 2 : 8;
    std::vector<float> moved(input.size()), prediction, restored(spatial ? output.size() : 0);
    for (int step = 1; step < transforms; ++step) {
        const int t = tta == Tta::flip ? 4 : step;  // flip: identity and the horizontal flip
        dihedral_forward(t, input.data(), moved.data(), shape[0] * shape[1], shape[2]);
        model.run(moved.data(), shape, prediction);
        if (spatial) dihedral_inverse(t, prediction.data(), restored.data(), out_shape[0] * out_shape[1], out_shape[2]);
        const std::vector<float>& aligned = spatial ? restored : prediction;
        for (size_t i = 0; i < output.size(); ++i) output[i] += aligned[i];
    }
    const float inv = 1.0f / static_cast<float>(transforms);
    for (float& v : output) v *= inv;
}

}  // namespace rsi
