// Scale-out from the command line, as a batch system runs it: `rsi tile` and `rsi submit` split into
// shards (--shard K/N, SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX), merged, and resumed after SIGTERM,
// each compared byte for byte with one uninterrupted process.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>

#include "cli_runner.hpp"
#include "tiling/raster_source.hpp"

extern char** environ;

namespace fs = std::filesystem;

namespace rsi {
namespace {

using test::run_rsi;

// Every file under `dir` (relative name -> bytes).
std::map<std::string, std::string> folder_bytes(const std::string& dir) {
    std::map<std::string, std::string> out;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
        if (entry.is_regular_file()) out[fs::relative(entry.path(), dir).string()] = test::slurp(entry.path().string());
    }
    return out;
}

void expect_same_folders(const std::string& a, const std::string& b) {
    const auto left = folder_bytes(a), right = folder_bytes(b);
    std::vector<std::string> left_names, right_names;
    for (const auto& entry : left) left_names.push_back(entry.first);
    for (const auto& entry : right) right_names.push_back(entry.first);
    ASSERT_EQ(left_names, right_names) << a << " vs " << b;
    for (const auto& [name, bytes] : left) EXPECT_TRUE(bytes == right.at(name)) << name << " differs";
}

int count_lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

// The batch-system variables rsi reads; cleared so that a test run inside a SLURM job is not sharded.
const char* const kShardVariables[] = {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "JOB_COMPLETION_INDEX"};

class ScaleOut : public ::testing::Test {
protected:
    void SetUp() override {
        for (const char* name : kShardVariables) ::unsetenv(name);
    }
    void TearDown() override {
        for (const char* name : kShardVariables) ::unsetenv(name);
    }
};

// A folder of contest images: links to real Inria crops (256x256 RGB), never copies.
void link_contest_images(const std::string& dir, int count) {
    fs::create_directories(dir);
    const std::string source = test::shared_data("inria/test/images");
    std::vector<fs::path> images;
    for (const auto& entry : fs::directory_iterator(source)) images.push_back(entry.path());
    std::sort(images.begin(), images.end());
    ASSERT_GE(images.size(), static_cast<size_t>(count));
    for (int i = 0; i < count; ++i) fs::create_symlink(images[static_cast<size_t>(i)], fs::path(dir) / images[static_cast<size_t>(i)].filename());
}

// Starts rsi in the background (output discarded); returns its pid.
pid_t spawn_rsi(const std::vector<std::string>& args) {
    std::vector<std::string> argv_strings{RSI_BINARY};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_strings) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, RSI_BINARY, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    return rc == 0 ? pid : -1;
}

int exit_code_of(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST_F(ScaleOut, TileShardsByFlagAndBySlurmEqualTheDirectRun) {
    test::TempDir dir;
    const std::string image = test::shared_data("spacenet/vegas_rgb.tif");  // 1300x1300: 6 x 6 tiles of 256
    const std::vector<std::string> grid{"--tile-size", "256", "--overlap", "32", "--bands", "1,2,3", "--format", "PNG", "-q"};
    auto tile = [&](std::vector<std::string> args) {
        args.insert(args.begin(), "tile");
        args.insert(args.end(), grid.begin(), grid.end());
        return run_rsi(args);
    };
    const auto direct = tile({image, dir / "direct"});
    ASSERT_EQ(direct.exit_code, 0) << direct.err;
    ASSERT_EQ(count_lines(test::slurp(dir / "direct/index.csv")), 37);

    for (int k : {2, 0, 1}) {
        const auto r = tile({image, dir / "flag", "--shard", std::to_string(k) + "/3", "--json"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        const auto j = nlohmann::json::parse(r.out);
        EXPECT_EQ(j["rows"], nlohmann::json({2 * k, 2 * k + 2}));  // 6 tile rows, 2 per shard
        EXPECT_EQ(j["tiles_written"], 12);
    }
    EXPECT_FALSE(fs::exists(dir / "flag/index.geojson"));
    const auto merged = run_rsi({"tile", "--merge-index", dir / "flag", "--json", "-q"});
    ASSERT_EQ(merged.exit_code, 0) << merged.err;
    EXPECT_EQ(nlohmann::json::parse(merged.out)["shards"], 3);
    EXPECT_EQ(nlohmann::json::parse(merged.out)["tiles_written"], 36);
    expect_same_folders(dir / "direct", dir / "flag");

    // The same from a SLURM array: --array=5-7 gives task ids 5..7 with SLURM_ARRAY_TASK_MIN=5.
    ::setenv("SLURM_ARRAY_TASK_COUNT", "3", 1);
    ::setenv("SLURM_ARRAY_TASK_MIN", "5", 1);
    for (int id : {5, 6, 7}) {
        ::setenv("SLURM_ARRAY_TASK_ID", std::to_string(id).c_str(), 1);
        const auto r = tile({image, dir / "slurm", "--json"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        const auto j = nlohmann::json::parse(r.out);
        EXPECT_EQ(j["shard"], nlohmann::json({id - 5, 3}));
        EXPECT_EQ(j["shard_source"], "SLURM_ARRAY_TASK_ID");
    }
    for (const char* name : kShardVariables) ::unsetenv(name);
    ASSERT_EQ(run_rsi({"tile", "--merge-index", dir / "slurm", "-q"}).exit_code, 0);
    expect_same_folders(dir / "direct", dir / "slurm");

    // A merge before every shard is done names the missing one and writes nothing.
    ASSERT_EQ(tile({image, dir / "partial", "--shard", "0/3"}).exit_code, 0);
    ASSERT_EQ(tile({image, dir / "partial", "--shard", "2/3"}).exit_code, 0);
    const auto early = run_rsi({"tile", "--merge-index", dir / "partial", "-q"});
    EXPECT_EQ(early.exit_code, 1);
    EXPECT_NE(early.err.find("shard 1 of 3 has not finished"), std::string::npos) << early.err;
    EXPECT_EQ(early.err_lines(), 1) << early.err;
    EXPECT_FALSE(fs::exists(dir / "partial/index.geojson"));
}

TEST_F(ScaleOut, SubmitShardsMergedEqualOneProcess) {
    test::TempDir dir;
    link_contest_images(dir / "images", 2);  // the bundled model takes ~3 s per 256x256 image on 2 cores
    const std::vector<std::string> model{"-m", "buildings", "-q"};
    auto submit = [&](std::vector<std::string> args) {
        args.insert(args.begin(), "submit");
        args.insert(args.end(), model.begin(), model.end());
        return run_rsi(args);
    };
    const auto direct = submit({"spacenet", dir / "images", "-o", dir / "direct.csv"});
    ASSERT_EQ(direct.exit_code, 0) << direct.err;
    const std::string expected = test::slurp(dir / "direct.csv");
    ASSERT_GT(count_lines(expected), 2) << expected;  // a header, then at least one row per image

    const auto first = submit({"spacenet", dir / "images", "-o", dir / "sharded.csv", "--shard", "0/2", "--json"});
    ASSERT_EQ(first.exit_code, 0) << first.err;
    EXPECT_EQ(nlohmann::json::parse(first.out)["shard_images"], 1);  // two images of one size: 1 + 1
    EXPECT_FALSE(fs::exists(dir / "sharded.csv"));
    EXPECT_FALSE(fs::exists(dir / "sharded.csv.manifest.json"));  // the merge writes it
    // Shard 1 is not done yet: the merge names it and writes nothing.
    const auto early = run_rsi({"submit", "--merge", dir / "sharded.csv.parts", "-q"});
    EXPECT_EQ(early.exit_code, 1);
    EXPECT_NE(early.err.find("shard 1 of 2 is missing"), std::string::npos) << early.err;
    EXPECT_FALSE(fs::exists(dir / "sharded.csv"));
    // Shard 1 as a Kubernetes Indexed Job pod.
    ::setenv("JOB_COMPLETION_INDEX", "1", 1);
    const auto second = submit({"spacenet", dir / "images", "-o", dir / "sharded.csv", "--shard-count", "2", "--json"});
    ::unsetenv("JOB_COMPLETION_INDEX");
    ASSERT_EQ(second.exit_code, 0) << second.err;
    EXPECT_EQ(nlohmann::json::parse(second.out)["shard_source"], "JOB_COMPLETION_INDEX");
    const auto merged = run_rsi({"submit", "spacenet", "--merge", dir / "sharded.csv.parts", "--json", "-q"});
    ASSERT_EQ(merged.exit_code, 0) << merged.err;
    EXPECT_EQ(nlohmann::json::parse(merged.out)["images"], 2);
    EXPECT_EQ(test::slurp(dir / "sharded.csv"), expected);
    EXPECT_FALSE(fs::exists(dir / "sharded.csv.parts"));
    const auto manifest = nlohmann::json::parse(test::slurp(dir / "sharded.csv.manifest.json"));
    EXPECT_EQ(manifest["command"], "submit --merge");
    EXPECT_EQ(manifest["format"], "spacenet");
    EXPECT_EQ(manifest["shards"], 2);
    EXPECT_EQ(manifest["images"], 2);
    EXPECT_EQ(manifest["options"]["model_name"], nlohmann::json::parse(test::slurp(dir / "direct.csv.manifest.json"))["model"]["name"]);
    EXPECT_FALSE(manifest["options"].contains("images"));  // no per-image lists
}

TEST_F(ScaleOut, SubmitResumedAfterSigtermEqualsAnUninterruptedRun) {
    test::TempDir dir;
    link_contest_images(dir / "images", 7);
    // The tiny fixture model keeps this test fast; the bundled one is used by the test above.
    const std::string model = std::string(RSI_FIXTURES_DIR) + "/tiny_segmenter.pt";
    const auto direct = run_rsi({"submit", "inria", dir / "images", "-o", dir / "direct", "-m", model, "-q"});
    ASSERT_EQ(direct.exit_code, 0) << direct.err;
    // "-o folder/" is the same folder (its masks were made inside the missing "folder/folder": exit 1).
    fs::create_directory(dir / "sub");
    const auto slashed = run_rsi({"submit", "inria", dir / "images", "-o", dir / "sub/slashed/", "-m", model, "-q"});
    ASSERT_EQ(slashed.exit_code, 0) << slashed.err;
    expect_same_folders(dir / "direct", dir / "sub/slashed");
    std::set<std::string> beside;
    for (const auto& f : fs::directory_iterator(dir / "sub")) beside.insert(f.path().filename().string());
    EXPECT_EQ(beside, (std::set<std::string>{"slashed", "slashed.manifest.json"}));

    // SIGTERM once the first image is journaled: exit 143, the journal already consistent.
    const std::vector<std::string> resumed{"submit", "inria", dir / "images", "-o", dir / "resumed", "-m", model, "--resume", "-q"};
    const pid_t pid = spawn_rsi(resumed);
    ASSERT_GT(pid, 0);
    const std::string journal = dir / "resumed.parts/shard-0-of-1.journal";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (count_lines(test::slurp(journal)) < 2 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid, SIGTERM);
    ASSERT_EQ(exit_code_of(pid), 143) << "the run should have been interrupted after its first image";
    const int journaled = count_lines(test::slurp(journal)) - 1;
    EXPECT_GE(journaled, 1);
    EXPECT_LT(journaled, 7);
    EXPECT_FALSE(fs::exists(dir / "resumed"));

    // A resume with another option is refused, naming it.
    std::vector<std::string> other = resumed;
    other.insert(other.end(), {"--tta", "flip"});
    const auto refused = run_rsi(other);
    EXPECT_EQ(refused.exit_code, 2);
    EXPECT_NE(refused.err.find("tta none -> flip"), std::string::npos) << refused.err;

    std::vector<std::string> again = resumed;
    again.push_back("--json");
    const auto finished = run_rsi(again);
    ASSERT_EQ(finished.exit_code, 0) << finished.err;
    EXPECT_EQ(nlohmann::json::parse(finished.out)["images_resumed"], journaled);
    expect_same_folders(dir / "direct", dir / "resumed");
    EXPECT_FALSE(fs::exists(dir / "resumed.parts"));
    for (const auto& f : fs::directory_iterator(dir.str())) {
        EXPECT_EQ(f.path().filename().string().find(".rsi-"), std::string::npos) << "left behind: " << f.path();
    }
}

}  // namespace
}  // namespace rsi

namespace rsi {
namespace {

// Shards run in one directory with a relative -o and a parts folder of their own name (--parts-dir);
// the merge runs from another directory and writes where the shards were asked to (job.json holds
// the outputs' absolute paths). It resolved -o against its own directory and failed.
TEST_F(ScaleOut, MergeFromAnotherDirectoryWritesWhereTheShardsWereAsked) {
    test::TempDir dir;
    fs::create_directories(dir / "work");
    test::make_raster(dir / "work/image.tif", 48, 40, 3, GDT_Byte, [](int b, int x, int y) { return (x * 5 + y * 3 * b) % 256; });
    const std::string model = std::string(RSI_FIXTURES_DIR) + "/tiny_segmenter.pt";
    for (const char* shard : {"0/2", "1/2"}) {
        const auto r = run_rsi({"segment", "image.tif", "-m", model, "-o", "out.tif", "--shard", shard, "--parts-dir", "myparts", "-q"},
                               "cd " + test::shell_quote(dir / "work"));
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    const auto merged = run_rsi({"merge", "work/myparts", "-q"}, "cd " + test::shell_quote(dir.str()));
    ASSERT_EQ(merged.exit_code, 0) << merged.err;
    EXPECT_TRUE(fs::exists(dir / "work/out.tif"));
    EXPECT_FALSE(fs::exists(dir / "out.tif"));
    const auto direct = run_rsi({"segment", "image.tif", "-m", model, "-o", "direct.tif", "-q"}, "cd " + test::shell_quote(dir / "work"));
    ASSERT_EQ(direct.exit_code, 0) << direct.err;
    EXPECT_EQ(RasterSource::open(dir / "work/out.tif").read_float({0, 0, 48, 40}, {1}),
              RasterSource::open(dir / "work/direct.tif").read_float({0, 0, 48, 40}, {1}));
}

}  // namespace
}  // namespace rsi
