#include "cli/late_manifest.hpp"

#include "src/run_manifest.hpp"

namespace rsi::cli {

LateManifest::LateManifest(const std::string& output, bool overwrite, bool enabled)
    : path_(enabled ? without_trailing_separator(output) + ".manifest.json" : std::string()), overwrite_(overwrite) {
    if (path_.empty()) return;
    remove_stale_temporaries(path_);  // a killed run's
    check_output_file(output, overwrite_);  // the library checks it too, but an error should name it, not its manifest
    check_output_file(path_, overwrite_);
}

void LateManifest::write(const nlohmann::json& manifest) {
    if (path_.empty() || pending_) return;
    pending_ = std::make_unique<PendingOutput>(prepare_run_manifest(path_, manifest, overwrite_));
}

void LateManifest::commit() {
    if (pending_) pending_->commit();
}

}  // namespace rsi::cli
