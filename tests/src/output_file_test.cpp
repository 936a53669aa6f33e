// Atomic outputs: temporaries, commit, discard, and the clean-up of a killed process's temporaries.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "src/output_file.hpp"
#include "src/raster_writer.hpp"
#include "src/run_manifest.hpp"
#include "tiling/error.hpp"
#include "tiling/gdal_dataset.hpp"

using namespace rsi;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("rsi-output-file-" + std::to_string(::getpid()));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() { fs::remove_all(path); }
};

void touch(const fs::path& p, const std::string& text = "x") { std::ofstream(p) << text; }

std::vector<std::string> names_in(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

}  // namespace

TEST(PendingOutput, CommitMovesTheFileAndItsSidecarsIntoPlace) {
    TempDir dir;
    const std::string final_path = (dir.path / "map.tif").string();
    PendingOutput pending(final_path, false);
    EXPECT_EQ(fs::path(pending.temporary_path()).parent_path(), dir.path);
    EXPECT_EQ(fs::path(pending.temporary_path()).filename().string().rfind(".rsi-tmp-" + std::to_string(::getpid()) + "-", 0), 0u);
    touch(pending.temporary_path(), "data");
    touch(pending.temporary_path() + ".aux.xml");
    EXPECT_FALSE(fs::exists(final_path));
    pending.commit();
    EXPECT_EQ(names_in(dir.path), (std::vector<std::string>{"map.tif", "map.tif.aux.xml"}));
}

// The commit replaces or removes the output's own sidecars, so one already there (a lone .aux.xml
// holding someone's metadata) is refused without --overwrite, naming it. World files are shared by
// every file of the stem (an input a.png's a.wld beside the output a.tif): neither refused nor removed.
TEST(CheckOutputFile, AnExistingSidecarIsRefusedWithoutOverwrite) {
    TempDir dir;
    const std::string map = (dir.path / "map.tif").string();
    EXPECT_NO_THROW(check_output_file(map, false));
    for (const char* name : {"map.tif.aux.xml", "map.tif.msk", "map.tif.ovr"}) {
        touch(dir.path / name);
        try {
            check_output_file(map, false);
            ADD_FAILURE() << name << " was not refused";
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::usage);
            EXPECT_EQ(std::string(e.what()), (dir.path / name).string() + ": already exists (GDAL would read it with " + map +
                                                 "; use --overwrite to replace it)");
        }
        EXPECT_NO_THROW(check_output_file(map, true));
        fs::remove(dir.path / name);
    }
    touch(dir.path / "map.png.aux.xml");  // another file's sidecar
    touch(dir.path / "map.pgw");
    touch(dir.path / "map.wld", "0.3\n0\n0\n-0.3\n500000\n4000000\n");  // the world file of map.png, an input
    EXPECT_NO_THROW(check_output_file(map, false));
    EXPECT_NO_THROW(check_output_file((dir.path / "map.geojson").string(), false));
    // The commits of a raster and of polygons of the same stem leave the image's world file alone
    // (they deleted it as a stale sidecar: with --overwrite, and for polygons even without).
    for (const char* name : {"map.tif", "map.geojson"}) {
        PendingOutput pending((dir.path / name).string(), true);
        touch(pending.temporary_path(), "data");
        pending.commit();
        EXPECT_TRUE(fs::exists(dir.path / name));
        EXPECT_TRUE(fs::exists(dir.path / "map.wld")) << name;
        EXPECT_TRUE(fs::exists(dir.path / "map.pgw")) << name;
    }
}

TEST(PendingOutput, AFileAnotherRunWroteMeanwhileIsNotReplaced) {
    TempDir dir;
    const std::string final_path = (dir.path / "map.tif").string();
    PendingOutput pending(final_path, false);
    touch(pending.temporary_path(), "ours");
    touch(final_path, "theirs");  // a second run finished first
    EXPECT_THROW(
        {
            try {
                pending.commit();
            } catch (const Error& e) {
                EXPECT_NE(std::string(e.what()).find("map.tif: appeared while this run was writing it"), std::string::npos) << e.what();
                throw;
            }
        },
        Error);
    std::ifstream in(final_path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, "theirs");
}

TEST(PendingOutput, AnExistingFileIsReplacedWithOverwrite) {
    TempDir dir;
    const std::string final_path = (dir.path / "map.tif").string();
    touch(final_path, "old");
    PendingOutput pending(final_path, true);
    touch(pending.temporary_path(), "new");
    pending.commit();
    std::ifstream in(final_path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, "new");
    EXPECT_EQ(names_in(dir.path), (std::vector<std::string>{"map.tif"}));
}

// The run manifest is an output like the others: one another process wrote during the run is kept
// (it was always replaced), and --overwrite replaces it.
TEST(RunManifest, OneWrittenMeanwhileIsKeptWithoutOverwrite) {
    TempDir dir;
    const std::string path = (dir.path / "map.tif.manifest.json").string();
    touch(path, "{\"mine\": 1}");
    try {
        write_run_manifest(path, nlohmann::json{{"rsi_manifest", 1}}, false);
        ADD_FAILURE() << "replaced";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::runtime);
        EXPECT_NE(std::string(e.what()).find("appeared while this run was writing it"), std::string::npos) << e.what();
    }
    std::ifstream kept(path);
    EXPECT_EQ(std::string((std::istreambuf_iterator<char>(kept)), std::istreambuf_iterator<char>()), "{\"mine\": 1}");
    write_run_manifest(path, nlohmann::json{{"rsi_manifest", 1}}, true);
    std::ifstream replaced(path);
    EXPECT_NE(std::string((std::istreambuf_iterator<char>(replaced)), std::istreambuf_iterator<char>()).find("rsi_manifest"),
              std::string::npos);
}

TEST(PendingDirectory, AnEmptyFolderMadeMeanwhileIsNotReplacedWithoutOverwrite) {
    TempDir dir;
    const std::string final_path = (dir.path / "submission").string();
    PendingDirectory pending(final_path);
    touch((fs::path(pending.temporary_path()) / "a.png").string(), "x");
    fs::create_directory(final_path);  // rename(2) alone would replace an empty folder
    EXPECT_THROW(pending.commit(false), Error);
    EXPECT_TRUE(fs::is_empty(final_path));
}

// A non-empty folder there at the commit was not there when the run checked: a runtime error
// naming it, and the other run's folder stays; checking first (check_final_path_free) says the same.
TEST(PendingDirectory, AFolderMadeMeanwhileIsARuntimeErrorAndIsKept) {
    TempDir dir;
    const std::string final_path = (dir.path / "submission").string();
    PendingDirectory pending(final_path);
    touch((fs::path(pending.temporary_path()) / "a.png").string(), "mine");
    EXPECT_NO_THROW(pending.check_final_path_free(false));
    fs::create_directory(final_path);
    touch((fs::path(final_path) / "b.png").string(), "theirs");
    for (int attempt = 0; attempt < 2; ++attempt) {
        try {
            if (attempt == 0) pending.check_final_path_free(false);
            else pending.commit(false);
            ADD_FAILURE() << "no error at attempt " << attempt;
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::runtime);
            EXPECT_NE(std::string(e.what()).find("submission: appeared while this run was writing it"), std::string::npos) << e.what();
        }
    }
    EXPECT_EQ(names_in(final_path), std::vector<std::string>{"b.png"});
    EXPECT_NO_THROW(pending.check_final_path_free(true));
    pending.commit(true);
    EXPECT_EQ(names_in(final_path), std::vector<std::string>{"a.png"});
}

// Errors while writing a temporary (or a scratch file named after one) name the output the user gave.
TEST(TemporaryNames, ErrorMessagesNameTheUsersOutput) {
    EXPECT_EQ(without_temporary_prefixes("./.rsi-tmp-29715-3-.rsi-tmp-29715-1-b.tif.model-grid-p.tif: writing failed (File too large)"),
              "./b.tif.model-grid-p.tif: writing failed (File too large)");
    EXPECT_EQ(without_temporary_prefixes("out/.rsi-tmp-1-0-m.tif: x; /a/.rsi-tmp-22-10-v.gpkg: y"), "out/m.tif: x; /a/v.gpkg: y");
    EXPECT_EQ(without_temporary_prefixes("my.rsi-tmp-file.tif: a user's own name"), "my.rsi-tmp-file.tif: a user's own name");
}

// A failed stream write says why where errno tells (a full disk, a file-size limit), else guesses.
TEST(TemporaryNames, WriteFailuresSayWhy) {
    errno = ENOSPC;
    EXPECT_EQ(write_failure_reason(), " (No space left on device)");
    errno = EFBIG;
    EXPECT_EQ(write_failure_reason(), " (File too large)");
    errno = 0;
    EXPECT_EQ(write_failure_reason(), " (disk full?)");
}

TEST(CheckOutputPathAgain, AFileThereNowIsARuntimeErrorUnlessOverwriting) {
    TempDir dir;
    const std::string path = (dir.path / "preview.png").string();
    EXPECT_NO_THROW(check_output_path_again(path, false));
    touch(path, "x");
    try {
        check_output_path_again(path, false);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::runtime);
        EXPECT_NE(std::string(e.what()).find("preview.png: appeared while this run was writing it"), std::string::npos) << e.what();
    }
    EXPECT_NO_THROW(check_output_path_again(path, true));
    // check_output_path, at the start of a run, calls the same file a usage error
    try {
        check_output_path(path, false);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::usage);
    }
}

// A run manifest beside a replaced output describes the older output: it goes when the new output
// takes its place, unless this run wrote a manifest of its own meanwhile (committed before the output).
TEST(PendingOutput, AStaleRunManifestGoesWithTheOutputItDescribed) {
    TempDir dir;
    const std::string final_path = (dir.path / "map.tif").string();
    touch(final_path, "old");
    touch(final_path + ".manifest.json", "old run");
    {
        PendingOutput pending(final_path, true);  // e.g. --overwrite --no-manifest
        touch(pending.temporary_path(), "new");
        pending.commit();
    }
    EXPECT_EQ(names_in(dir.path), (std::vector<std::string>{"map.tif"}));
    touch(final_path + ".manifest.json", "old run");
    {
        PendingOutput pending(final_path, true);
        touch(pending.temporary_path(), "newer");
        write_run_manifest(final_path + ".manifest.json", {{"run", "this"}}, true);  // this run's, before the output
        pending.commit();
    }
    EXPECT_EQ(names_in(dir.path), (std::vector<std::string>{"map.tif", "map.tif.manifest.json"}));
    std::ifstream in(final_path + ".manifest.json");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("\"this\""), std::string::npos) << text;
    // A folder output likewise.
    const std::string folder = (dir.path / "tiles").string();
    fs::create_directory(folder);
    touch(folder + ".manifest.json", "old run");
    PendingDirectory pending_folder(folder);
    pending_folder.commit(true);
    EXPECT_FALSE(fs::exists(folder + ".manifest.json"));
}

TEST(PendingOutput, DiscardRemovesTheTemporaryAtOnceAndTheDestructorLeavesNothing) {
    TempDir dir;
    {
        PendingOutput scratch((dir.path / "map.tif.model-grid.tif").string(), true);
        touch(scratch.temporary_path());
        touch(scratch.temporary_path() + ".aux.xml");
        ASSERT_EQ(names_in(dir.path).size(), 2u);
        scratch.discard();
        EXPECT_TRUE(names_in(dir.path).empty());
        touch(dir.path / "unrelated.txt");
        scratch.discard();  // twice is harmless
    }
    EXPECT_EQ(names_in(dir.path), std::vector<std::string>{"unrelated.txt"});
    {
        PendingOutput abandoned((dir.path / "other.tif").string(), false);
        touch(abandoned.temporary_path());
    }  // an uncommitted output is removed by the destructor
    EXPECT_EQ(names_in(dir.path), std::vector<std::string>{"unrelated.txt"});
}

TEST(PendingOutput, StaleTemporariesOfDeadProcessesAreRemovedThoseOfLiveOnesKept) {
    TempDir dir;
    // 2^22 + 7 is above Linux's largest pid_max, so no process has it.
    const std::string dead = ".rsi-tmp-4194311-0-map.tif";
    const std::string dead_scratch = ".rsi-tmp-4194311-1-map.tif.model-grid-p.tif";
    const std::string live = ".rsi-tmp-" + std::to_string(::getppid()) + "-0-map.tif";
    const std::string other_output = ".rsi-tmp-4194311-2-roads.tif";
    for (const auto& n : {dead, dead_scratch, live, other_output}) touch(dir.path / n);
    remove_stale_temporaries((dir.path / "map.tif").string());
    std::vector<std::string> kept{other_output, live};
    std::sort(kept.begin(), kept.end());
    EXPECT_EQ(names_in(dir.path), kept);
    // A shapefile's temporaries are files of its stem: grid.dbf, grid.shx beside grid.shp.
    for (const char* n : {".rsi-tmp-4194311-3-grid.shp", ".rsi-tmp-4194311-3-grid.dbf", ".rsi-tmp-4194311-3-grid.shx"}) touch(dir.path / n);
    touch(dir.path / ".rsi-tmp-4194311-4-gridlines.dbf");  // another output's
    remove_stale_temporaries((dir.path / "grid.shp").string());
    kept.push_back(".rsi-tmp-4194311-4-gridlines.dbf");
    std::sort(kept.begin(), kept.end());
    EXPECT_EQ(names_in(dir.path), kept);
}

TEST(RasterWriter, CogIntermediateIsGoneOnceCloseReturnsBeforeTheCommit) {
    TempDir dir;
    RasterWriterOptions o;
    o.path = (dir.path / "map.tif").string();
    o.width = 40;
    o.height = 30;
    o.format = "COG";
    RasterWriter writer(o);
    const std::vector<uint8_t> rows(40 * 30, 7);
    writer.append_rows(0, 30, rows.data());
    writer.close();
    // Only the complete COG under its temporary name: no tiled intermediate a kill could strand.
    const auto names = names_in(dir.path);
    ASSERT_EQ(names.size(), 1u);
    EXPECT_EQ(fs::path(writer.closed_path()).filename().string(), names[0]);
    writer.commit();
    EXPECT_EQ(names_in(dir.path), std::vector<std::string>{"map.tif"});
}

// An input changed in its middle (same size, same first and last MiB) has another fingerprint: a
// resume of it is refused rather than mixing strips of two images.
TEST(FileFingerprint, AnEditInTheMiddleChangesIt) {
    TempDir dir;
    std::string bytes(5 << 20, 'a');
    std::ofstream(dir.path / "a.bin", std::ios::binary) << bytes;
    bytes[(5 << 20) / 2] = 'b';
    std::ofstream(dir.path / "b.bin", std::ios::binary) << bytes;
    const std::string a = file_fingerprint((dir.path / "a.bin").string()), b = file_fingerprint((dir.path / "b.bin").string());
    EXPECT_EQ(a.rfind("sha256:", 0), 0u) << a;  // small files: every byte
    EXPECT_NE(a, b);
    EXPECT_EQ(a, file_fingerprint((dir.path / "a.bin").string()));
}

// COG overviews of values (no colour table) average, so probabilities stay within 0..1.
TEST(RasterWriter, CogOverviewsOfValuesStayInRange) {
    TempDir dir;
    RasterWriterOptions o;
    o.path = (dir.path / "p.tif").string();
    o.width = 1200;  // larger than a COG block: overviews are made
    o.height = 1200;
    o.type = GDT_Float32;
    o.format = "COG";
    RasterWriter writer(o);
    std::vector<float> rows(1200 * 1200);
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = ((i % 1200) / 3 + (i / 1200) / 3) % 2 ? 1.0f : 0.0f;  // 3-pixel checkerboard
    writer.append_rows(0, 1200, rows.data());
    writer.close();
    writer.commit();
    DatasetPtr ds = open_raster(o.path);
    GDALRasterBand* band = ds->GetRasterBand(1);
    ASSERT_GT(band->GetOverviewCount(), 0);
    double range[2] = {0, 0};
    ASSERT_EQ(band->GetOverview(0)->ComputeRasterMinMax(FALSE, range), CE_None);
    EXPECT_GE(range[0], 0.0);
    EXPECT_LE(range[1], 1.0);
}
