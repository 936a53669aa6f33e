// The resume journal and sharding arithmetic.
#include <gtest/gtest.h>
#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "src/shard_lock.hpp"
#include "src/strip_journal.hpp"
#include "tiling/error.hpp"

using namespace rsi;

TEST(StripJournal, ParsesEntriesIgnoresATornTailAndRefusesOtherJobs) {
    const std::string header = "{\"rsi_journal\":1,\"fingerprint\":\"abc\",\"shard\":[0,1]}\n";
    const std::string one = "{\"strip\":0,\"file\":\"strip-000000.tif\",\"y\":0,\"rows\":96}\n";
    const std::string two = "{\"strip\":1,\"file\":\"strip-000001.tif\",\"y\":96,\"rows\":96}\n";
    auto entries = parse_journal(header + one + two, "abc", "j");
    ASSERT_EQ(entries.size(), 2u);
    EXPECT_EQ(entries[1].y, 96);
    // A line cut by a crash (no newline, not JSON) is ignored.
    entries = parse_journal(header + one + "{\"strip\":1,\"fi", "abc", "j");
    EXPECT_EQ(entries.size(), 1u);
    // A complete but malformed line is an error naming the line.
    try {
        parse_journal(header + "garbage\n" + one, "abc", "j");
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), "j:2: not a journal line");
    }
    try {
        parse_journal(header + "{\"strip\":-4,\"file\":\"x\",\"y\":0,\"rows\":1}\n", "abc", "j");
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), "j:2: malformed journal entry");
    }
    try {
        parse_journal(header + one, "other", "j");
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::usage);
    }
    EXPECT_THROW(parse_journal("", "abc", "j"), Error);
    EXPECT_THROW(parse_journal("{\"strip\":1,\"file\":\"f\",\"y\":0,\"rows\":1}\n", "abc", "j"), Error);  // no header
    // Numbers that are not whole, or beyond int64 (once undefined behaviour to convert, found by the
    // fuzzer): malformed entries, and a header whose version is such a number is no journal.
    for (const char* bad : {"{\"strip\":1e20,\"file\":\"x\",\"y\":0,\"rows\":1}\n", "{\"strip\":0.5,\"file\":\"x\",\"y\":0,\"rows\":1}\n",
                            "{\"strip\":0,\"file\":\"x\",\"y\":18446744073709551615,\"rows\":1}\n"}) {
        EXPECT_THROW(parse_journal(header + bad, "abc", "j"), Error) << bad;
    }
    EXPECT_THROW(parse_journal("{\"rsi_journal\":1e20,\"fingerprint\":\"abc\"}\n" + one, "abc", "j"), Error);
}

TEST(Sharding, StripsAreContiguousAndCoverEverything) {
    EXPECT_EQ(shard_strips(14, {0, 3}), (std::pair<int64_t, int64_t>{0, 4}));
    EXPECT_EQ(shard_strips(14, {1, 3}), (std::pair<int64_t, int64_t>{4, 9}));
    EXPECT_EQ(shard_strips(14, {2, 3}), (std::pair<int64_t, int64_t>{9, 14}));
    EXPECT_EQ(shard_strips(2, {2, 4}), (std::pair<int64_t, int64_t>{1, 1}));  // more shards than strips: some empty
    EXPECT_EQ(parse_shard("3/8", "--shard").index, 3);
    for (const char* bad : {"8/8", "-1/4", "1", "a/b", "1/0", "1/4x"}) EXPECT_THROW(parse_shard(bad, "--shard"), Error) << bad;
}

// Files go largest first to the least-loaded shard: sizes 9, 7, 5, 3, 1 over 2 shards ->
// shard 0: 9, 3, 1 (13); shard 1: 7, 5 (12).
TEST(Sharding, FileListsAreBalancedByPixelCount) {
    const std::vector<int64_t> pixels{5, 9, 1, 7, 3};
    EXPECT_EQ(shard_items(pixels, {0, 2}), (std::vector<size_t>{1, 2, 4}));
    EXPECT_EQ(shard_items(pixels, {1, 2}), (std::vector<size_t>{0, 3}));
    EXPECT_EQ(shard_items(pixels, {0, 1}).size(), 5u);
}

// A merge without -o: the outputs the shards recorded (relative to their working directory) keep their
// places relative to the main output, beside the default parts folder wherever it now is.
TEST(MergeOutputPath, OutputsFollowTheDefaultPartsFolder) {
    EXPECT_EQ(rsi::merge_output_path("/data/moved/b.tif.parts", "m/b.tif", "m/b.tif"), "/data/moved/b.tif");
    EXPECT_EQ(rsi::merge_output_path("../m5/b.tif.parts/", "m/b.tif", "m/probs/p.tif"), "../m5/probs/p.tif");
    EXPECT_EQ(rsi::merge_output_path("b.tif.parts", "/abs/b.tif", "/abs/b.csv"), "b.csv");
    // A parts folder of another name (--parts-dir): the recorded paths as they are.
    EXPECT_EQ(rsi::merge_output_path("/scratch/job7", "m/b.tif", "m/b.tif"), "m/b.tif");
    EXPECT_EQ(rsi::merge_output_path("/data/b.tif.parts", "m/b.tif", ""), "");
}

// Each part file names its job: a strip copied in from another job's parts folder is refused at
// assembly instead of being merged into the map.
TEST(StripJournal, PartsCarryTheirJobsFingerprint) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("rsi-strip-parts-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    const std::vector<float> probabilities{0.25f, 0.5f, 0.75f, 1.0f, 0.75f, 0.5f, 0.25f, 0.0f};  // 2 classes x 1 x 4
    const std::vector<float> weights{1.0f, 0.0f, 2.0f, 1.0f};
    {
        StripJournal journal(dir.string(), "job-a-fingerprint", ShardSpec{0, 1});
        journal.commit(0, 0, 1, 4, 2, probabilities.data(), weights.data());
        EXPECT_TRUE(journal.done(0));
    }

    const std::string part = (dir / StripJournal::part_name(0)).string();
    std::vector<float> read;
    std::vector<uint8_t> valid;
    read_strip_part(part, "job-a-fingerprint", 2, 4, 1, read, valid);
    EXPECT_EQ(read, probabilities);
    EXPECT_EQ(valid, (std::vector<uint8_t>{1, 0, 1, 1}));
    try {
        read_strip_part(part, "job-b-fingerprint", 2, 4, 1, read, valid);
        FAIL() << "a part of another job was read";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), part + ": this part was written by another job (fingerprint job-a-finger..., job.json has "
                                                "job-b-finger...); rerun its shard with --resume, which computes it again");
    }
    EXPECT_THROW(read_strip_part(part, "job-a-fingerprint", 3, 4, 1, read, valid), Error);  // wrong shape
    // Job B's journal lists its strip 0, but the file there now is job A's (copied in by hand): not
    // done, so a resume computes it again.
    const fs::path other = dir / "b";
    {
        StripJournal b(other.string(), "job-b-fingerprint", ShardSpec{0, 1});
        b.commit(0, 0, 1, 4, 2, probabilities.data(), weights.data());
        EXPECT_TRUE(b.done(0));
    }
    fs::copy_file(part, other / StripJournal::part_name(0), fs::copy_options::overwrite_existing);
    EXPECT_FALSE(StripJournal(other.string(), "job-b-fingerprint", ShardSpec{0, 1}).done(0));
    EXPECT_TRUE(StripJournal(dir.string(), "job-a-fingerprint", ShardSpec{0, 1}).done(0));
    fs::remove_all(dir);
}

// A second merge finds no parts folder (the first removed it) beside the merged output: said so.
TEST(StripJournal, AMissingPartsFolderBesideItsOutputLooksMerged) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("rsi-merged-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    const auto message = [](const std::string& parts) {
        try {
            read_job(parts);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_EQ(message((dir / "out.tif.parts").string()), (dir / "out.tif.parts").string() + ": no such parts folder");
    std::ofstream(dir / "out.tif") << "merged";
    EXPECT_EQ(message((dir / "out.tif.parts").string() + "/"), (dir / "out.tif.parts").string() + "/: no such parts folder, and " +
                                                                   (dir / "out.tif").string() + " exists: merged already? (a merge removes the parts folder)");
    fs::create_directories(dir / "empty.parts");
    EXPECT_EQ(message((dir / "empty.parts").string()),
              (dir / "empty.parts").string() + ": no job.json (not an rsi parts folder, or no shard has started)");
    fs::remove_all(dir);
}

// A part is committed compressed with its size in the journal; one cut short afterwards (a copy that
// failed, a full disk) is not done on resume, so rerunning its shard computes it again (a rerun
// trusted it and the merge kept failing). Journals written before the size was recorded still count.
TEST(StripJournal, APartCutShortIsComputedAgain) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("rsi-strip-cut-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    const int64_t width = 300, rows = 40;
    std::vector<float> probabilities(static_cast<size_t>(2 * width * rows)), weights(static_cast<size_t>(width * rows), 1.0f);
    for (size_t i = 0; i < probabilities.size(); ++i) probabilities[i] = (i % 300 < 150) == (i < probabilities.size() / 2) ? 0.875f : 0.125f;
    {
        StripJournal journal(dir.string(), "job", ShardSpec{0, 1});
        journal.commit(0, 0, rows, width, 2, probabilities.data(), weights.data());
        ASSERT_EQ(journal.entries().size(), 1u);
        const fs::path part = dir / StripJournal::part_name(0);
        EXPECT_EQ(journal.entries()[0].bytes, static_cast<int64_t>(fs::file_size(part)));
        EXPECT_LT(fs::file_size(part), static_cast<uintmax_t>(3 * width * rows * 4 / 10));  // compressed: 3 planes of floats
    }
    std::vector<float> read;
    std::vector<uint8_t> valid;
    read_strip_part((dir / StripJournal::part_name(0)).string(), "job", 2, width, rows, read, valid);
    EXPECT_EQ(read, probabilities);  // lossless
    EXPECT_TRUE(StripJournal(dir.string(), "job", ShardSpec{0, 1}).done(0));
    fs::resize_file(dir / StripJournal::part_name(0), fs::file_size(dir / StripJournal::part_name(0)) - 100);
    EXPECT_FALSE(StripJournal(dir.string(), "job", ShardSpec{0, 1}).done(0));
    // Without a recorded size (an older journal) the part is trusted as before.
    const fs::path old = dir / "old";
    fs::create_directories(old);
    fs::copy_file(dir / StripJournal::part_name(0), old / StripJournal::part_name(0));
    std::ofstream(old / StripJournal::journal_name(ShardSpec{0, 1}))
        << "{\"rsi_journal\":1,\"fingerprint\":\"job\",\"shard\":[0,1]}\n{\"strip\":0,\"file\":\"strip-000000.tif\",\"y\":0,\"rows\":40}\n";
    const StripJournal trusted(old.string(), "job", ShardSpec{0, 1});
    EXPECT_EQ(trusted.entries()[0].bytes, -1);
    EXPECT_TRUE(trusted.done(0));
    fs::remove_all(dir);
}

namespace rsi {
namespace {

// A merge writes its outputs from job.json's grid: ground control points travel there too (a merged
// map of a GCP-located image lost them, unlike a single run's), and older jobs without them still read.
TEST(JobGeoreference, GroundControlPointsRoundTrip) {
    RasterInfo info;
    info.width = 64;
    info.height = 32;
    info.gcps = {{0, 0, 500000, 4000000, 0}, {64, 0, 500019.2, 4000000, 1.5}, {0, 32, 500000, 3999990.4, 0}};
    info.gcp_count = 3;
    info.gcp_crs_wkt = "PROJCRS[\"example\"]";
    const RasterInfo back = georeference_from_job(georeference_to_job(info));
    ASSERT_EQ(back.gcps.size(), 3u);
    EXPECT_EQ(back.gcp_count, 3);
    EXPECT_EQ(back.gcps[1].x, 500019.2);
    EXPECT_EQ(back.gcps[1].z, 1.5);
    EXPECT_EQ(back.gcps[2].line, 32);
    EXPECT_EQ(back.gcp_crs_wkt, info.gcp_crs_wkt);
    nlohmann::json old = georeference_to_job(info);
    old.erase("gcps");
    old.erase("gcp_crs_wkt");
    EXPECT_TRUE(georeference_from_job(old).gcps.empty());
    EXPECT_FALSE(georeference_to_job(RasterInfo{}).contains("gcps"));
}

}  // namespace
}  // namespace rsi

// One process at a time on a shard: a second journal of the same shard (another --resume run of the
// same output) is refused while the first is open, naming the holder; other shards are free; the lock
// goes with its journal, and with its process when that is killed (kill -9 leaves no stale lock).
TEST(ShardLock, OneRunPerShardReleasedWithItsJournalOrProcess) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("rsi-shard-lock-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    const std::string holder = "pid " + std::to_string(::getpid()) + " on " + host;
    const auto refusal = [&](const ShardSpec& shard) {
        try {
            StripJournal second(dir.string(), "job", shard);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    {
        StripJournal first(dir.string(), "job", ShardSpec{1, 3});
        EXPECT_EQ(refusal(ShardSpec{1, 3}), dir.string() + ": another rsi run (" + holder +
                                                ") is working on shard 1/3 of this job (it holds shard-1-of-3.lock); wait for it to end, then run again");
        EXPECT_EQ(refusal(ShardSpec{2, 3}), "no error");
        // A merge checks every shard, and holds their locks until it is done.
        std::shared_ptr<const ShardLock> kept = first.lock();
        ASSERT_TRUE(kept && kept->held());
    }
    EXPECT_EQ(refusal(ShardSpec{1, 3}), "no error");
    {
        StripJournal unsharded(dir.string(), "job", ShardSpec{0, 1});
        const std::shared_ptr<const ShardLock> kept = unsharded.lock();
        try {
            ShardLock again(dir.string(), ShardSpec{0, 1});
            FAIL() << "a second lock of a held shard";
        } catch (const Error& e) {
            EXPECT_EQ(std::string(e.what()), dir.string() + ": another rsi run (" + holder +
                                                 ") is working on this job (it holds shard-0-of-1.lock); wait for it to end, then run again");
        }
    }
    // A process holding the lock killed with SIGKILL: the lock is free again.
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(ready[0]);
        const ShardLock lock(dir.string(), ShardSpec{0, 2});
        const char byte = lock.held() ? 'y' : 'n';
        if (::write(ready[1], &byte, 1) != 1) ::_exit(2);
        ::pause();
        ::_exit(0);
    }
    ::close(ready[1]);
    char byte = 0;
    ASSERT_EQ(::read(ready[0], &byte, 1), 1);
    ::close(ready[0]);
    EXPECT_EQ(byte, 'y');
    EXPECT_NE(refusal(ShardSpec{0, 2}).find("another rsi run (pid " + std::to_string(child) + " on "), std::string::npos);
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    EXPECT_EQ(refusal(ShardSpec{0, 2}), "no error");
    fs::remove_all(dir);
}

// A submission's merge (and a tile index merge) locks every shard that has started (made its lock file),
// and names one still held.
TEST(ShardLock, AMergeLocksEveryStartedShard) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("rsi-merge-locks-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    ShardLock(dir.string(), ShardSpec{0, 3});  // shards 0 and 2 ran, and ended
    ShardLock(dir.string(), ShardSpec{2, 3});
    EXPECT_EQ(lock_every_shard(dir.string(), 3).size(), 2u);
    EXPECT_FALSE(fs::exists(dir / ShardLock::file_name(ShardSpec{1, 3})));  // not started: nothing to wait for
    {
        const ShardLock running(dir.string(), ShardSpec{2, 3});
        try {
            lock_every_shard(dir.string(), 3);
            FAIL() << "a merge under a running shard";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("is working on shard 2/3 of this job"), std::string::npos) << e.what();
        }
    }
    EXPECT_EQ(lock_every_shard(dir.string(), 3).size(), 2u);
    fs::remove_all(dir);
}
