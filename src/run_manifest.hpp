#pragma once
// The run manifest written beside outputs: versions, options, model and input fingerprints and
// timings, with no absolute paths, user or host names, so manifests of two runs can be compared.
#include <nlohmann/json.hpp>
#include <string>

namespace rsi {

// SHA-256 over the file's size and its first and last MiB: identifies an input without reading a
// 30 GB image end to end. "sha256-ends:<hex>".
std::string file_fingerprint(const std::string& path);

// Just the file name of a path (manifests never record directories).
std::string file_name_only(const std::string& path);

// Adds the library versions and writes `manifest` atomically to `path`.
void write_run_manifest(const std::string& path, nlohmann::json manifest, bool overwrite);

}  // namespace rsi
