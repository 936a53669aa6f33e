#include "src/vector_output.hpp"

#include <cctype>
#include <filesystem>

#include "tiling/error.hpp"

namespace fs = std::filesystem;

namespace rsi {

namespace {

std::string lowercase_extension(const std::string& path) {
    std::string ext = fs::path(path).extension().string();
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return ext;
}

}  // namespace

bool is_geojson_output(const std::string& path) {
    const std::string ext = lowercase_extension(path);
    return ext == ".geojson" || ext == ".json";
}

VectorFormat vector_format(const std::string& path) {
    const std::string ext = lowercase_extension(path);
    if (ext == ".gpkg") return {"GPKG", false, true, {}};
    if (is_geojson_output(path)) return {"GeoJSON", true, false, {}};
    if (ext == ".fgb") return {"FlatGeobuf", false, false, {}};
    if (ext == ".shp")
        return {"ESRI Shapefile", false, false, {".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx"}};
    throw usage_error(path + ": unknown vector format '" + (ext.empty() ? std::string("(no extension)") : ext) +
                      "' (expected .gpkg, .geojson, .json, .fgb or .shp)");
}

std::string written_vector_path(const std::string& path, const VectorFormat& format) {
    return format.sidecar_extensions.empty() ? path : fs::path(path).replace_extension(".shp").string();
}

std::string check_vector_output(const std::string& path, bool overwrite, bool again) {
    const VectorFormat format = vector_format(path);
    const std::string output = written_vector_path(path, format);
    if (again) {
        check_output_path_again(output, overwrite);
    } else {
        check_output_file(output, overwrite);
    }
    if (!overwrite) {
        for (const auto& ext : format.sidecar_extensions) {
            const std::string sidecar = fs::path(output).replace_extension(ext).string();
            std::error_code ec;
            if (again) {
                check_output_path_again(sidecar, false);
            } else if (fs::exists(sidecar, ec)) {
                throw usage_error(output + ": " + sidecar + " (a file of this shapefile) already exists (use --overwrite to replace it)");
            }
        }
    }
    return output;
}

PendingVectorOutput::PendingVectorOutput(const std::string& final_path, const VectorFormat& format, bool overwrite)
    : pending_(final_path, overwrite), extensions_(format.sidecar_extensions) {}

PendingVectorOutput::~PendingVectorOutput() {
    if (committed_) return;
    std::error_code ec;
    for (const auto& path : sidecars(pending_.temporary_path())) fs::remove(path, ec);
    for (const char* suffix : {"-journal", "-wal", "-shm"}) fs::remove(pending_.temporary_path() + suffix, ec);
}

void PendingVectorOutput::commit() {
    pending_.check_final_path_free();  // before the sidecars: another run's shapefile keeps its .dbf
    const auto from = sidecars(pending_.temporary_path());
    const auto to = sidecars(pending_.final_path());
    std::error_code ec;
    for (size_t i = 0; i < from.size(); ++i) {
        if (fs::exists(from[i], ec)) {
            fs::rename(from[i], to[i], ec);
            if (ec) throw Error(to[i] + ": cannot move into place: " + ec.message());
        } else {
            fs::remove(to[i], ec);
        }
    }
    pending_.commit();
    committed_ = true;
}

std::vector<std::string> PendingVectorOutput::sidecars(const std::string& path) const {
    std::vector<std::string> out;
    for (const auto& ext : extensions_) out.push_back(fs::path(path).replace_extension(ext).string());
    return out;
}

}  // namespace rsi
