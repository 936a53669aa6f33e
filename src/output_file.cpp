#include "src/output_file.hpp"

#include <atomic>
#include <filesystem>
#include <regex>
#include <system_error>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdio.h>
#include <cerrno>
#include <cstring>
#include <csignal>
#include <cstdlib>

#include "tiling/error.hpp"

namespace fs = std::filesystem;

namespace rsi {

namespace {

std::string world_file_extension(const std::string& extension) {
    // GDAL's convention: first and last letters of the extension plus 'w' (.png -> .pgw, .tif -> .tfw).
    if (extension.size() < 3) return "";
    return std::string(".") + extension[1] + extension.back() + "w";
}


constexpr const char* kTemporaryPrefix = ".rsi-tmp-";

std::string unique_temporary_name(const fs::path& final_path) {
    static std::atomic<unsigned> counter{0};
    // Beside the final path, in its folder as the user spelled it (none for a bare name: messages about
    // it then name "m.tif", not "./m.tif")
    return (final_path.parent_path() / (kTemporaryPrefix + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
                                        final_path.filename().string()))
        .string();
}

// Renames `from` to `to` unless `to` exists, atomically: two runs that finish together cannot both
// succeed. Returns false when `to` exists; throws on other failures.
bool rename_without_replacing(const std::string& from, const std::string& to) {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return true;
    if (errno == EEXIST) return false;
    if (errno != EINVAL && errno != ENOSYS) throw Error(to + ": cannot move into place: " + std::strerror(errno));
    // A file system without RENAME_NOREPLACE: link() fails atomically when `to` exists.
    if (::link(from.c_str(), to.c_str()) == 0) {
        ::unlink(from.c_str());
        return true;
    }
    if (errno == EEXIST) return false;
    std::error_code ec;  // neither: no hard links either (FAT, some network mounts) — best effort
    if (fs::exists(to, ec)) return false;
    fs::rename(from, to, ec);
    if (ec) throw Error(to + ": cannot move into place: " + ec.message());
    return true;
}

std::string appeared_meanwhile(const std::string& path) {
    return path + ": appeared while this run was writing it (another run writing the same output?); it was left as it is "
                  "and this run's result discarded";
}

}  // namespace

std::string without_trailing_separator(const std::string& path) {
    fs::path p = fs::path(path).lexically_normal();
    if (!p.has_filename() && p.has_parent_path()) p = p.parent_path();
    return p.string();
}

std::vector<std::string> owned_sidecar_paths(const std::string& path) { return {path + ".aux.xml", path + ".msk", path + ".ovr"}; }

std::vector<std::string> sidecar_paths(const std::string& path) {
    const fs::path p(path);
    std::vector<std::string> out = owned_sidecar_paths(path);
    const std::string ext = p.extension().string();
    fs::path wld = p;
    out.push_back(wld.replace_extension(".wld").string());
    if (const std::string w = world_file_extension(ext); !w.empty()) {
        fs::path other = p;
        out.push_back(other.replace_extension(w).string());
    }
    return out;
}

void remove_with_sidecars(const std::string& path) {
    std::error_code ec;
    fs::remove(path, ec);
    for (const auto& s : sidecar_paths(path)) fs::remove(s, ec);
}

void check_output_path(const std::string& path, bool overwrite) {
    const fs::path p(without_trailing_separator(path));
    std::error_code ec;
    if (fs::exists(p, ec) && !overwrite) {
        throw usage_error(path + ": already exists (use --overwrite to replace it)");
    }
    const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    if (!fs::is_directory(dir, ec)) throw Error(path + ": output directory " + dir.string() + " does not exist");
    if (::access(dir.c_str(), W_OK) != 0) throw Error(path + ": output directory " + dir.string() + " is not writable");
}

void check_output_file(const std::string& path, bool overwrite) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) throw usage_error(path + ": is a folder; give a file name for this output");
    check_output_path(path, overwrite);
    // The commit replaces or removes the file's own sidecars (a stale one would lie about the new
    // file), so an existing one is an output of this run too: a lone .aux.xml may hold someone's
    // metadata. (World files are shared by every file of the stem, e.g. an input a.png's a.wld beside
    // the output a.tif: never removed, only replaced by one the output itself comes with.)
    if (overwrite) return;
    for (const std::string& sidecar : owned_sidecar_paths(without_trailing_separator(path))) {
        if (fs::exists(fs::symlink_status(sidecar, ec))) {
            throw usage_error(sidecar + ": already exists (GDAL would read it with " + path +
                              "; use --overwrite to replace it)");
        }
    }
}

std::filesystem::path path_identity(const std::string& path) {
    std::error_code ec;
    const fs::path absolute = fs::absolute(without_trailing_separator(path), ec);
    const fs::path canonical = fs::weakly_canonical(ec ? fs::path(path) : absolute, ec);
    return ec ? absolute.lexically_normal() : canonical;
}

void check_distinct_outputs(const std::vector<std::string>& outputs, const std::vector<std::string>& inputs) {
    std::vector<std::pair<fs::path, std::string>> seen;
    for (const std::string& input : inputs) {
        if (!input.empty()) seen.emplace_back(path_identity(input), "");
    }
    for (const std::string& output : outputs) {
        if (output.empty()) continue;
        const fs::path key = path_identity(output);
        for (const auto& [other, name] : seen) {
            if (other != key) continue;
            if (name.empty()) throw usage_error(output + ": is an input of this run; write the output elsewhere");
            throw usage_error(output + ": two outputs of this run would be the same file (" + name + "); give them different names");
        }
        seen.emplace_back(key, output);
    }
}

bool is_within(const std::string& path, const std::string& folder) {
    const fs::path inner = path_identity(path), outer = path_identity(folder);
    auto o = outer.begin(), i = inner.begin();
    for (; o != outer.end() && i != inner.end() && *o == *i; ++o, ++i) {}
    return o == outer.end();
}

void check_folder_holds_no_input(const std::string& folder, const std::vector<std::string>& inputs) {
    for (const std::string& input : inputs) {
        if (is_within(input, folder)) {
            throw usage_error(folder + ": holds the input " + input + ", and the result replaces the folder whole; write it elsewhere");
        }
    }
}

bool process_is_running(long pid) {
    return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

void remove_stale_temporaries(const std::string& final_path) {
    const fs::path p(final_path);
    const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    // The file's temporaries and those of files named after it: sidecars (.aux.xml) and a shapefile's
    // other files (grid.dbf beside grid.shp).
    const std::string name = p.filename().string(), stem = "-" + p.stem().string() + ".";
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const std::string file = entry.path().filename().string();
        if (file.rfind(".rsi-tmp-", 0) != 0 || (file.find(name) == std::string::npos && file.find(stem) == std::string::npos)) continue;
        const long pid = std::strtol(file.c_str() + 9, nullptr, 10);  // ".rsi-tmp-<pid>-<n>-<name>"
        if (pid <= 0 || pid == ::getpid() || !process_is_running(pid)) {
            if (pid != ::getpid()) fs::remove_all(entry.path(), ec);
        }
    }
}

StaleManifest::StaleManifest(const std::string& output_path) {
    if (output_path.empty()) return;
    path_ = without_trailing_separator(output_path) + ".manifest.json";
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) return;
    found_ = true;
    device_ = static_cast<uint64_t>(st.st_dev);
    inode_ = static_cast<uint64_t>(st.st_ino);
    modified_ns_ = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

void StaleManifest::remove_if_unchanged() const {
    if (!found_) return;
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) return;
    const int64_t modified = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    if (static_cast<uint64_t>(st.st_dev) == device_ && static_cast<uint64_t>(st.st_ino) == inode_ && modified == modified_ns_) {
        std::error_code ec;
        fs::remove(path_, ec);
    }
}

PendingOutput::PendingOutput(std::string final_path, bool overwrite)
    : final_(std::move(final_path)), temporary_(unique_temporary_name(final_)), overwrite_(overwrite), stale_manifest_(final_) {}

PendingOutput::PendingOutput(PendingOutput&& other) noexcept
    : final_(std::move(other.final_)),
      temporary_(std::move(other.temporary_)),
      overwrite_(other.overwrite_),
      done_(other.done_),
      stale_manifest_(std::move(other.stale_manifest_)) {
    other.done_ = true;
}

PendingOutput::~PendingOutput() {
    if (!done_) remove_with_sidecars(temporary_);
}

void PendingOutput::commit() {
    const auto temp_sidecars = sidecar_paths(temporary_);
    const auto final_sidecars = sidecar_paths(final_);
    const size_t owned = owned_sidecar_paths(final_).size();  // the first ones: named after the whole file name
    std::error_code ec;
    check_final_path_free();
    for (size_t i = 0; i < temp_sidecars.size(); ++i) {
        if (fs::exists(temp_sidecars[i], ec)) {
            fs::rename(temp_sidecars[i], final_sidecars[i], ec);
            if (ec) throw Error(final_sidecars[i] + ": cannot move into place: " + ec.message());
        } else if (i < owned) {
            fs::remove(final_sidecars[i], ec);  // a stale sidecar of an older output would lie about this one
        }
    }
    if (overwrite_) {
        fs::rename(temporary_, final_, ec);
        if (ec) throw Error(final_ + ": cannot move into place: " + ec.message());
    } else if (!rename_without_replacing(temporary_, final_)) {
        throw Error(appeared_meanwhile(final_));
    }
    done_ = true;
    stale_manifest_.remove_if_unchanged();
}

void PendingOutput::check_final_path_free() const { check_output_path_again(final_, overwrite_); }

std::string write_failure_reason() {
    const int e = errno;
    switch (e) {
        case ENOSPC: case EFBIG: case EDQUOT: case EIO: case EROFS: case EACCES: case EPERM:
            return std::string(" (") + std::strerror(e) + ")";
        default:
            return " (disk full?)";
    }
}

std::string without_temporary_prefixes(const std::string& text) {
    static const std::regex prefix(R"(\.rsi-tmp-[0-9]+-[0-9]+-)");
    return std::regex_replace(text, prefix, "");
}

void check_output_path_again(const std::string& path, bool overwrite) {
    std::error_code ec;
    if (!overwrite && fs::exists(fs::symlink_status(path, ec))) throw Error(appeared_meanwhile(path));
}

void PendingOutput::discard() {
    if (!done_) remove_with_sidecars(temporary_);
    done_ = true;
}


PendingDirectory::PendingDirectory(std::string final_path)
    : final_(without_trailing_separator(final_path)), temporary_(unique_temporary_name(final_)), stale_manifest_(final_) {
    std::error_code ec;
    if (!fs::create_directory(temporary_, ec) || ec) throw Error(final_ + ": cannot create the folder " + temporary_ + ": " + ec.message());
}

PendingDirectory::~PendingDirectory() {
    if (done_) return;
    std::error_code ec;
    fs::remove_all(temporary_, ec);
}

void PendingDirectory::check_final_path_free(bool overwrite) const { check_output_path_again(final_, overwrite); }

void PendingDirectory::commit(bool overwrite) {
    std::error_code ec;
    std::string previous;
    if (fs::exists(final_, ec)) {
        // The run checked this path when it started: a folder here now was made by someone else since.
        if (!overwrite) throw Error(appeared_meanwhile(final_));
        previous = unique_temporary_name(final_) + ".old";
        fs::rename(final_, previous, ec);
        if (ec) throw Error(final_ + ": cannot move the previous output aside: " + ec.message());
    }
    if (previous.empty()) {
        // rename(2) would replace an empty folder another run made meanwhile; never replace what this run did not check
        if (!rename_without_replacing(temporary_, final_)) throw Error(appeared_meanwhile(final_));
    } else {
        fs::rename(temporary_, final_, ec);
        if (ec) {
            fs::rename(previous, final_, ec);
            throw Error(final_ + ": cannot rename the finished folder into place");
        }
    }
    done_ = true;
    stale_manifest_.remove_if_unchanged();
    if (!previous.empty()) fs::remove_all(previous, ec);
}

}  // namespace rsi
