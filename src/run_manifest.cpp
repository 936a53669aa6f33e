#include "src/run_manifest.hpp"
#include "src/json_text.hpp"

#include <filesystem>
#include <fstream>
#include <openssl/evp.h>
#include <vector>

#include "src/output_file.hpp"
#include "src/versions.hpp"
#include "tiling/error.hpp"

namespace rsi {

std::string file_fingerprint(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return "";
    const auto size = static_cast<int64_t>(std::filesystem::file_size(path));
    constexpr int64_t chunk = 1 << 20;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    EVP_DigestUpdate(ctx, &size, sizeof size);
    std::vector<char> buffer(static_cast<size_t>(chunk));
    auto hash_range = [&](int64_t offset, int64_t length) {
        in.seekg(offset);
        in.read(buffer.data(), length);
        EVP_DigestUpdate(ctx, buffer.data(), static_cast<size_t>(in.gcount()));
    };
    const bool whole = size <= kWholeFingerprintBytes;
    if (whole) {
        for (int64_t offset = 0; offset < size; offset += chunk) hash_range(offset, std::min(chunk, size - offset));
    } else {
        hash_range(0, chunk);
        constexpr int64_t samples = 256, block = 64 << 10;
        for (int64_t k = 1; k <= samples; ++k) hash_range(chunk + (size - 2 * chunk - block) * k / (samples + 1), block);
        hash_range(size - chunk, chunk);
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(ctx, digest, &length);
    EVP_MD_CTX_free(ctx);
    static const char* hex = "0123456789abcdef";
    std::string text = whole ? "sha256:" : "sha256-sampled:";
    for (unsigned int i = 0; i < length; ++i) {
        text += hex[digest[i] >> 4];
        text += hex[digest[i] & 15];
    }
    return text;
}

std::string file_name_only(const std::string& path) { return std::filesystem::path(path).filename().string(); }

void write_run_manifest(const std::string& path, nlohmann::json manifest, bool overwrite) {
    prepare_run_manifest(path, std::move(manifest), overwrite).commit();
}

PendingOutput prepare_run_manifest(const std::string& path, nlohmann::json manifest, bool overwrite) {
    // The run checked the path at its start; one there now was written meanwhile (another run)
    PendingOutput pending(path, overwrite);
    pending.check_final_path_free();
    const LibraryVersions v = library_versions();
    manifest["versions"] = {{"rsi", v.rsi}, {"gdal", v.gdal}, {"proj", v.proj}, {"opencv", v.opencv}, {"libtorch", v.libtorch}};
    {
        std::ofstream out(pending.temporary_path());
        out << json_text(manifest, 2) << "\n";
        if (!out) throw Error(path + ": writing the run manifest failed" + write_failure_reason());
    }
    return pending;
}

std::string why_not_finished(const std::string& output, const std::string& input, const std::string& model_sha256,
                             const nlohmann::json& asked) {
    std::ifstream in(output + ".manifest.json");
    if (!in) return "it has no manifest to tell which input and options made it";
    try {
        const nlohmann::json manifest = nlohmann::json::parse(in);
        if (manifest.value("input_fingerprint", "") != file_fingerprint(input)) return "it was made from another input";
        if (!manifest.contains("model") || manifest.at("model").value("weights_sha256", "") != model_sha256) {
            return "it was made by another model";
        }
        if (manifest.value("asked", nlohmann::json()) != asked) return "it was made with other options";
    } catch (const nlohmann::json::exception&) {  // not JSON, or not a manifest's shape
        return "its manifest is not an rsi manifest";
    }
    return "";
}

}  // namespace rsi
