#pragma once
// The run manifest of a command whose library renames its outputs itself (merge, submit): its path
// is checked with the other outputs before any work, it is written under a temporary name from the
// library's before_commit hook (so a run that fails before its outputs are complete leaves none) and
// renamed once the outputs have their names.
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "src/output_file.hpp"

namespace rsi::cli {

class LateManifest {
public:
    // `output`: the run's main output; the manifest is OUTPUT.manifest.json. Disabled: does nothing.
    LateManifest(const std::string& output, bool overwrite, bool enabled);

    // The manifest complete under a temporary name (library versions added); once only.
    void write(const nlohmann::json& manifest);
    bool written() const { return pending_ != nullptr; }
    // Once the outputs it describes have their names.
    void commit();

private:
    std::string path_;
    bool overwrite_ = false;
    std::unique_ptr<PendingOutput> pending_;
};

}  // namespace rsi::cli
