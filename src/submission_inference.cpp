#include "src/submission_inference.hpp"

#include <atomic>
#include <filesystem>
#include <unistd.h>

namespace rsi {

MaskMaker segmentation_mask_maker(const models::Model& model, SegmentOptions base, std::string scratch_dir) {
    return [&model, base, scratch_dir](const SubmissionItem& item) {
        static std::atomic<int> counter{0};
        SegmentOptions options = base;
        options.input = item.mask;
        options.output = (std::filesystem::path(scratch_dir) /
                          (".rsi-submit-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".tif"))
                             .string();
        options.probabilities.clear();
        options.format = "GTiff";
        options.overwrite = true;
        options.remove_stale = false;  // a fresh name per image: one scan of the scratch folder each would be waste
        segment_image(model, options);
        return options.output;
    };
}

}  // namespace rsi
