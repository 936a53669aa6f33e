#include "src/shard_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "tiling/error.hpp"

namespace rsi {

namespace {

std::string host_name() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0) return "unknown host";
    return name;
}

// What the holder wrote into the lock file ("pid 1234 on node7"), or "" when it wrote nothing yet.
std::string holder_of(int fd) {
    char text[300] = {};
    const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
    if (n <= 0) return "";
    std::string holder(text, static_cast<size_t>(n));
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
    return holder;
}

}  // namespace

std::string ShardLock::file_name(const ShardSpec& shard) {
    return "shard-" + std::to_string(shard.index) + "-of-" + std::to_string(shard.count) + ".lock";
}

ShardLock::ShardLock(const std::string& parts_dir, const ShardSpec& shard) {
    const std::string path = (std::filesystem::path(parts_dir) / file_name(shard)).string();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return;  // a read-only parts folder (a merge with --keep-parts): nothing to protect it from
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        const int error = errno;
        if (error != EWOULDBLOCK) return;  // no locks on this file system: unprotected, as before
        const std::string holder = holder_of(fd_);
        ::close(fd_);
        fd_ = -1;
        const std::string which = shard.count > 1 ? "shard " + std::to_string(shard.index) + "/" + std::to_string(shard.count) + " of "
                                                  : "";
        throw Error(parts_dir + ": another rsi run" + (holder.empty() ? "" : " (" + holder + ")") + " is working on " + which +
                    "this job (it holds " + file_name(shard) + "); wait for it to end, then run again");
    }
    held_ = true;
    const std::string me = "pid " + std::to_string(::getpid()) + " on " + host_name() + "\n";
    if (::ftruncate(fd_, 0) == 0) {
        [[maybe_unused]] const ssize_t written = ::pwrite(fd_, me.data(), me.size(), 0);  // only for the loser's message
    }
}

ShardLock::~ShardLock() {
    if (fd_ >= 0) ::close(fd_);  // closing drops the flock
}

std::vector<std::unique_ptr<ShardLock>> lock_every_shard(const std::string& parts_dir, int shards) {
    std::vector<std::unique_ptr<ShardLock>> locks;
    for (int k = 0; k < shards; ++k) {
        // A shard's lock file is made when it starts; one without has not started (and a job.json
        // claiming a million shards makes no million lock files).
        const ShardSpec shard{k, shards};
        if (std::filesystem::exists(std::filesystem::path(parts_dir) / ShardLock::file_name(shard))) {
            locks.push_back(std::make_unique<ShardLock>(parts_dir, shard));
        }
    }
    return locks;
}

}  // namespace rsi
