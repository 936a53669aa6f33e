#pragma once
// Journals for resumable and sharded jobs whose unit of work is a whole item (an image of a contest
// submission, a row of tiles): the parts folder holds job.json (what every run of the job must agree
// on) and one journal per shard, `shard-K-of-N.journal` (the same naming as src/strip_journal.hpp):
//
//   {"rsi_journal":1,"fingerprint":"...","shard":[K,N]}      header
//   {"item":"<key>", ...}                                    one line per finished item
//
// A line is appended (and fsync'ed) only after the item's part is complete under its final name, so
// after SIGINT, kill -9 or a power loss the journal lists only complete parts; a torn last line is
// ignored and cut off.
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "src/strip_journal.hpp"

namespace rsi {

class ItemJournal {
public:
    // Opens (or creates, with the header) the journal of `shard` in `parts_dir` (created if missing),
    // first taking the shard's lock (src/shard_lock.hpp): throws an Error when another run works on the
    // shard. Throws a usage Error when the journal was written with another fingerprint.
    ItemJournal(std::string parts_dir, const std::string& fingerprint, const ShardSpec& shard);
    ~ItemJournal();

    bool done(const std::string& item) const { return entries_.count(item) != 0; }
    const std::map<std::string, nlohmann::json>& entries() const { return entries_; }

    // Appends `entry` (an object with a string "item") and flushes it to disk.
    void record(const nlohmann::json& entry);

private:
    std::string path_;
    std::unique_ptr<ShardLock> lock_;
    std::map<std::string, nlohmann::json> entries_;
};

// Parses a journal's text (`where` names it in errors): the finished items by key. Throws an Error for
// a different fingerprint or a malformed line (a torn last line is ignored).
std::map<std::string, nlohmann::json> parse_item_journal(const std::string& text, const std::string& fingerprint,
                                                         const std::string& where);

// The finished items of a journal file, by key. Throws an Error naming `path` for a missing file, a
// different fingerprint or a malformed line (a torn last line is ignored).
std::map<std::string, nlohmann::json> read_item_journal(const std::string& path, const std::string& fingerprint);

// Which settings differ between `before` and `now` (two JSON objects), in words: "tta none -> flip,
// batch 4 -> 8". Long values (lists of images) are summarised.
std::string settings_difference(const nlohmann::json& before, const nlohmann::json& now);

// job.json of a parts folder: written when absent; when present it must have the same fingerprint,
// else a usage Error says which of job["settings"] changed. `rerun_hint` ends that message.
nlohmann::json start_or_check_job(const std::string& parts_dir, const nlohmann::json& job, const std::string& rerun_hint);

}  // namespace rsi
