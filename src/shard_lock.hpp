#pragma once
// One process at a time on one shard of a journaled job. Two `--resume` runs of the same output (a
// script started twice, a requeued task whose first copy still runs) appended to one journal and
// removed the parts folder under each other; the second now stops at once with a clear error.
//
// The lock is an exclusive flock() on PARTS/shard-K-of-N.lock: the kernel (or the NFS server)
// drops it when its process ends, kill -9 and a lost node included, so no stale lock is ever taken
// over by hand. A file system without locks (flock fails with ENOLCK, EOPNOTSUPP, ...) runs unlocked,
// as before.
#include <memory>
#include <string>
#include <vector>

#include "src/strip_journal.hpp"

namespace rsi {

class ShardLock {
public:
    // Takes the lock of `shard` in `parts_dir` (which must exist) without waiting. Throws an Error
    // naming the folder, the shard and the holder (pid@host, as it recorded itself) when another run
    // holds it.
    ShardLock(const std::string& parts_dir, const ShardSpec& shard);
    ~ShardLock();
    ShardLock(const ShardLock&) = delete;
    ShardLock& operator=(const ShardLock&) = delete;

    // False on a file system without locks: this run goes on unprotected.
    bool held() const { return held_; }

    static std::string file_name(const ShardSpec& shard);

private:
    int fd_ = -1;
    bool held_ = false;
};

// The locks of every shard of a job (`shards` shards) that has started (has a lock file), for a merge: a shard still
// running (a requeued copy, a slow node) is named instead of its parts being read, and removed, under it.
std::vector<std::unique_ptr<ShardLock>> lock_every_shard(const std::string& parts_dir, int shards);

}  // namespace rsi
