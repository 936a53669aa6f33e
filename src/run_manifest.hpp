#pragma once
// The run manifest written beside outputs: versions, options, model and input fingerprints and
// timings, with no absolute paths, user or host names, so manifests of two runs can be compared.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "src/output_file.hpp"

namespace rsi {

// Identifies an input for manifests and for the journals of resumable and sharded runs (a resume of an
// input changed in between is refused): files up to kWholeFingerprintBytes by the SHA-256 of all their
// bytes ("sha256:<hex>"; 512 MB take about half a second here); larger ones, which a run must not read
// twice end to end, by the SHA-256 of their size, first and last MiB and 256 blocks of 64 KiB spread
// evenly between ("sha256-sampled:<hex>"; an edit that leaves size and every sampled block unchanged
// goes unseen there).
constexpr int64_t kWholeFingerprintBytes = int64_t{512} << 20;
std::string file_fingerprint(const std::string& path);

// Just the file name of a path (manifests never record directories).
std::string file_name_only(const std::string& path);

// Adds the library versions and writes `manifest` atomically to `path`.
void write_run_manifest(const std::string& path, nlohmann::json manifest, bool overwrite);
// The same, complete under a temporary name: the caller renames it (commit()) together with the
// outputs it describes.
PendingOutput prepare_run_manifest(const std::string& path, nlohmann::json manifest, bool overwrite);

// Why `output` is not finished work of this job, or "" when it is: its manifest (OUTPUT.manifest.json)
// names `input` (by fingerprint), the model with weights `model_sha256` and `asked`, the options as asked
// that decide the output's bytes. Outputs are renamed into place only when complete, so `--resume` skips
// such an output instead of failing on "already exists".
std::string why_not_finished(const std::string& output, const std::string& input, const std::string& model_sha256,
                             const nlohmann::json& asked);

}  // namespace rsi
