#pragma once
// Atomic outputs: every file is written under a temporary name in its target directory and renamed
// into place only when complete, so a failed or interrupted run never leaves a half-written file
// under the final name and never disturbs the previous output.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace rsi {

// Throws a usage Error when `path` exists and overwriting was not asked for, and a runtime Error
// when its directory does not exist or is not writable.
void check_output_path(const std::string& path, bool overwrite);

// check_output_path for an output that is a file: an existing folder there is a usage Error even with
// --overwrite (it was found only when the finished file could not be renamed onto it), and so, without
// --overwrite, is an existing sidecar of its own (owned_sidecar_paths), which the commit would replace
// or remove.
void check_output_file(const std::string& path, bool overwrite);

// For a path the run checked with check_output_path when it started, again just before its output is
// written or renamed: a file there now was made by someone else meanwhile (another run writing the
// same output), so this throws a runtime Error ("appeared while this run was writing it"), not a usage
// one. Multi-output runs call it for every final path before renaming the first, so that a late
// failure does not leave some outputs of the run in place and others missing.
void check_output_path_again(const std::string& path, bool overwrite);

// "out/" names the folder "out" (a folder output, or OUTDIR typed with its slash).
std::string without_trailing_separator(const std::string& path);

// One spelling per file or folder, for comparing paths: absolute, without a trailing separator, links
// and ".." resolved as far as the path exists ("out/", "./out" and "out" are one folder, also before
// it is made).
std::filesystem::path path_identity(const std::string& path);

// Whether `path` is `folder` or lies inside it (both as path_identity spells them).
bool is_within(const std::string& path, const std::string& folder);

// The outputs of one run, checked together before any work: no two of them the same file (the later
// write would silently replace the earlier), and none the same file as an input. Empty paths are
// skipped. Throws a usage Error naming both options' paths.
void check_distinct_outputs(const std::vector<std::string>& outputs, const std::vector<std::string>& inputs);

// An output folder is replaced whole: it must not be, or hold, any of `inputs`. Throws a usage Error.
void check_folder_holds_no_input(const std::string& folder, const std::vector<std::string>& inputs);

// A file being written. The destructor removes the temporary file (and its sidecars) unless
// commit() renamed it into place. Without `overwrite` an existing final path is never replaced, also
// not one another process wrote while this one worked (two runs writing one output): commit() throws
// and leaves that file as it is (the check at the start of a run cannot see a later writer).
// The run manifest (PATH.manifest.json) beside an output when its writing began: one still there,
// the same file, when the output takes its place describes an older output and goes (a run with
// --no-manifest, or a name reused for another kind of output). One this run wrote meanwhile is another
// file and stays.
class StaleManifest {
public:
    explicit StaleManifest(const std::string& output_path = {});
    void remove_if_unchanged() const;

private:
    std::string path_;
    uint64_t device_ = 0, inode_ = 0;
    int64_t modified_ns_ = 0;
    bool found_ = false;
};

class PendingOutput {
public:
    PendingOutput(std::string final_path, bool overwrite);
    ~PendingOutput();
    PendingOutput(PendingOutput&& other) noexcept;
    PendingOutput& operator=(PendingOutput&&) = delete;
    PendingOutput(const PendingOutput&) = delete;
    PendingOutput& operator=(const PendingOutput&) = delete;

    const std::string& temporary_path() const { return temporary_; }
    const std::string& final_path() const { return final_; }

    // Renames the file and the sidecars GDAL wrote beside it (.aux.xml, world files) into place.
    void commit();
    // Throws when the final path exists and overwriting was not asked for (another run wrote it
    // meanwhile): callers that move files of their own beside it call this first.
    void check_final_path_free() const;
    // Removes the temporary file (and its sidecars) now rather than at destruction: scratch files go
    // before the final outputs appear, so no kill can land between an output and its cleanup.
    void discard();

private:
    std::string final_, temporary_;
    bool overwrite_ = false;
    bool done_ = false;
    StaleManifest stale_manifest_;
};

// A folder of outputs (e.g. a submission of one PNG per image) built under a temporary name beside
// its final path and renamed into place whole by commit(); the destructor removes an uncommitted one.
class PendingDirectory {
public:
    explicit PendingDirectory(std::string final_path);
    ~PendingDirectory();
    PendingDirectory(const PendingDirectory&) = delete;
    PendingDirectory& operator=(const PendingDirectory&) = delete;

    const std::string& temporary_path() const { return temporary_; }
    const std::string& final_path() const { return final_; }
    // Replaces an existing folder only when `overwrite` (checked again here, not only at the start:
    // without it, a folder there now appeared meanwhile, a runtime Error).
    void commit(bool overwrite);
    // check_output_path_again for the final path: callers renaming other outputs too call it first.
    void check_final_path_free(bool overwrite) const;

private:
    std::string final_, temporary_;
    bool done_ = false;
    StaleManifest stale_manifest_;
};

// Removes temporary files a killed process (kill -9, power loss) left beside `final_path`: those named
// for it or for a file of the same stem (its .aux.xml, a shapefile's .dbf) whose process id is no
// longer running. Resumed runs call it before starting.
void remove_stale_temporaries(const std::string& final_path);

// Whether process `pid` is running on this machine (a lock or temporary it left is still in use).
bool process_is_running(long pid);

// Why a write through a stream just failed, for its message: " (No space left on device)", " (File too
// large)" and the like from errno, else " (disk full?)".
std::string write_failure_reason();

// `text` (an error message) with the temporary-name prefixes of this file's outputs removed: a failure
// while writing `.rsi-tmp-123-4-map.tif` is reported for `map.tif`, the name the user gave.
std::string without_temporary_prefixes(const std::string& text);

// Sidecar files GDAL may write beside `path` (.aux.xml, .wld/.pgw/.jgw/.tfw, .msk, .ovr): first those
// named after the whole file name (owned_sidecar_paths), then the world files, which every file of the
// stem shares.
std::vector<std::string> sidecar_paths(const std::string& path);
std::vector<std::string> owned_sidecar_paths(const std::string& path);

// Removes `path` and its sidecars if present.
void remove_with_sidecars(const std::string& path);

}  // namespace rsi
