#pragma once
// Resumable and sharded segmentation: finished output strips are committed as part files in a parts
// folder, each recorded in a journal only after its file is complete; a final assembly writes the
// real outputs from the parts (a half-written compressed GeoTIFF cannot be continued after kill -9).
//
// Parts folder layout:
//   job.json                  what every shard must agree on: fingerprint, grid of strips, the
//                             georeferencing and model classes the assembly needs, output options
//   shard-K-of-N.journal      JSON lines: a header {"rsi_journal":1,"fingerprint":..,"shard":[K,N]}
//                             then one {"strip":S,"file":..,"y":..,"rows":..,"bytes":..} per committed
//                             strip (bytes: the part's file size, checked on resume)
//   strip-SSSSSS.tif          the blended class probabilities of strip S (K Float32 bands) and its
//                             validity (band K+1, 1 = data), before any argmax, DEFLATE-compressed
//                             with the floating-point predictor (lossless); its metadata item
//                             RSI_JOB_FINGERPRINT names the job, so a part copied in from another job
//                             is refused at assembly
//
// A journal line is appended (and flushed to disk) only after its part file was renamed into place, so
// after a crash the journal lists only complete parts; a torn last line is ignored.
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "tiling/raster_source.hpp"

namespace rsi {

class ShardLock;

struct ShardSpec {
    int index = 0, count = 1;  // shard `index` of `count`, 0-based
};

// "2/4" -> {2, 4}; 0 <= K < N. Throws a usage Error.
ShardSpec parse_shard(const std::string& text, const std::string& option);

// The strips [first, last) of shard `shard` among `strips` (contiguous, sizes differ by at most one).
std::pair<int64_t, int64_t> shard_strips(int64_t strips, const ShardSpec& shard);

// Shard `shard` of a list of inputs, balanced by pixel count: items are taken largest first (ties by
// position) and each goes to the shard with the fewest pixels so far (ties: the lowest index).
// Returns the positions of this shard's items, in input order.
std::vector<size_t> shard_items(const std::vector<int64_t>& pixels, const ShardSpec& shard);

struct JournalEntry {
    int64_t strip = 0, y = 0, rows = 0;
    std::string file;
    int64_t bytes = -1;  // the part's size when committed (-1: a journal written before rsi recorded it)
};

// Parses a journal's text; returns the entries after a header whose fingerprint equals `fingerprint`.
// Throws an Error naming `where` for a different fingerprint or a malformed line (except a torn last
// line, which is ignored).
std::vector<JournalEntry> parse_journal(std::string_view text, const std::string& fingerprint, const std::string& where);

class StripJournal {
public:
    // Opens (or creates, with the header) the journal of `shard` in `parts_dir`, first taking the
    // shard's lock (src/shard_lock.hpp): throws an Error when another run works on the shard.
    StripJournal(std::string parts_dir, const std::string& fingerprint, const ShardSpec& shard);
    ~StripJournal();

    // The shard's lock, for a caller that works on the parts folder after the journal is gone (it
    // assembles the outputs, then removes the folder).
    std::shared_ptr<const ShardLock> lock() const { return lock_; }

    const std::vector<JournalEntry>& entries() const { return entries_; }
    bool done(int64_t strip) const { return done_.count(strip) != 0; }

    // Writes strip `strip` (`classes` probability planes + validity, rows x width) as a part file, then
    // records it.
    void commit(int64_t strip, int64_t y, int64_t rows, int64_t width, int classes, const float* probabilities,
                const float* weights);

    static std::string journal_name(const ShardSpec& shard);
    static std::string part_name(int64_t strip);

private:
    std::string dir_, path_, fingerprint_;
    std::shared_ptr<const ShardLock> lock_;
    std::vector<JournalEntry> entries_;
    std::set<int64_t> done_;
};

// Reads one part back: probabilities (classes x rows x width) and validity (rows x width). Throws an
// Error naming `path` when the part was written by a job with another fingerprint, or has another shape.
void read_strip_part(const std::string& path, const std::string& fingerprint, int classes, int64_t width, int64_t rows,
                     std::vector<float>& probabilities, std::vector<uint8_t>& valid);

// Whether the part file at `path` opens and names job `fingerprint` (or names none: written before rsi
// recorded it). A journal counts a part as done only then.
bool part_belongs_to_job(const std::string& path, const std::string& fingerprint);

// The metadata item of a part file that holds its job's fingerprint.
inline constexpr const char* kPartFingerprintItem = "RSI_JOB_FINGERPRINT";

// SHA-256 hex of a string (fingerprints of settings).
std::string sha256_hex(std::string_view text);

// job.json: written atomically when absent; when present it must carry the same fingerprint.
nlohmann::json write_or_check_job(const std::string& parts_dir, const nlohmann::json& job);
nlohmann::json read_job(const std::string& parts_dir);

// The images a job's shards read, as its job.json records them ("input", the resampled run's
// "image_grid.input", the scene lattice's "input"): a merge must not write over them.
std::vector<std::string> job_inputs(const nlohmann::json& job);

// How a job records the image a merge reads again (a scene's dense map, resampling back): a local path
// made absolute, since the merge may run from another folder than the shards; GDAL virtual paths
// (/vsicurl/..., DRIVER:...) as given.
std::string input_path_for_job(const std::string& input);

// How a job records an output path ("" stays ""): absolute, so that a merge run from another directory
// writes where the shards were asked to; only /vsi paths as given (an output name may hold a ':').
std::string output_path_for_job(const std::string& output);

// Where a merge without -o writes an output the shards recorded (`recorded`, as they were given it,
// often relative to their working directory). When `parts_dir` is the default `OUTPUT.parts` of the
// recorded main output, every output keeps its place relative to that output, beside the parts
// folder: a merge run from another directory, or after the folder moved, writes there. Otherwise the
// recorded path as it is.
std::string merge_output_path(const std::string& parts_dir, const std::string& recorded_output, const std::string& recorded);

// A job's parts are all made with the same N: throws a usage Error when `job` (its job.json) was
// started with another number of shards than `shard.count`.
void check_shard_count(const nlohmann::json& job, const ShardSpec& shard, const std::string& parts_dir);

// The georeferencing an assembly needs (size, geotransform, CRS), into and out of job.json.
nlohmann::json georeference_to_job(const RasterInfo& info);
RasterInfo georeference_from_job(const nlohmann::json& job);

// Before a merge: every one of `shards` journals in `parts_dir` exists and lists all of its strips
// (of `strips`). Throws an Error naming the first shard that has not started, is still running (a
// requeued copy) or is not complete. Returns the shards' locks: the merge holds them until it is done.
std::vector<std::shared_ptr<const ShardLock>> check_all_shards_done(const std::string& parts_dir, const std::string& fingerprint,
                                                                    int shards, int64_t strips);

}  // namespace rsi
