// rsi segment / buildings / scene / model as scripts use them.
#include <filesystem>
#include <set>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <ogrsf_frmts.h>

#include <unistd.h>

#include "cli_runner.hpp"
#include "src/shard_lock.hpp"
#include "tiling/raster_source.hpp"

namespace fs = std::filesystem;

namespace rsi {
namespace {

using test::run_rsi;

std::string fixture(const std::string& name) { return std::string(RSI_FIXTURES_DIR) + "/" + name; }

std::string make_image(const test::TempDir& dir, const std::string& name, int bands = 3) {
    const std::string path = dir / name;
    test::make_raster(path, 80, 60, bands, GDT_Byte, [](int b, int x, int y) { return (x * 3 + y * 5 * b) % 256; });
    const double gt[6] = {400000, 0.3, 0, 3000000, 0, -0.3};
    test::georeference(path, gt, 32611);
    return path;
}

TEST(MapsCli, SegmentWritesMaskProbabilitiesManifestAndJson) {
    test::TempDir dir;
    const std::string image = make_image(dir, "a.tif");
    const auto r = run_rsi({"segment", image, "-o", dir / "mask.tif", "-m", fixture("tiny_segmenter.pt"), "--tile-size", "32",
                            "--overlap", "8", "--probabilities", dir / "p.tif", "--uncertainty", "--json", "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["width"], 80);
    EXPECT_EQ(j["model"], "tiny-segmenter");
    EXPECT_EQ(j["tiles"], 9);  // 3 x 3 tiles of 32 at stride 24
    EXPECT_EQ(j["classes"]["background"]["pixels"].get<int64_t>() + j["classes"]["building"]["pixels"].get<int64_t>(), 80 * 60);
    EXPECT_TRUE(fs::exists(dir / "mask.tif.manifest.json"));
    const auto manifest = nlohmann::json::parse(test::slurp(dir / "mask.tif.manifest.json"));
    EXPECT_EQ(manifest["input"], "a.tif");  // no directories in manifests
    EXPECT_EQ(manifest["outputs"][1], "p.tif");
    EXPECT_EQ(test::slurp(dir / "mask.tif.manifest.json").find(dir.str()), std::string::npos);
    EXPECT_EQ(RasterSource::open(dir / "p.tif").info().band_count(), 3);  // 2 classes + entropy
}

TEST(MapsCli, BatchModeDerivesNamesKeepsGoingAndReportsFailures) {
    test::TempDir dir;
    const std::string a = make_image(dir, "a.tif"), b = make_image(dir, "b.tif");
    const std::string list = dir / "inputs.txt";
    // saved with a byte-order mark (Notepad), which must not become part of the first path
    { std::ofstream(list) << "\xEF\xBB\xBF" << a << "\n# a comment\n" << dir / "missing.tif" << "\n" << b << "\n"; }
    const auto r = run_rsi({"segment", "--from", list, "--output-dir", dir / "out", "-m", fixture("tiny_segmenter.pt"),
                            "--tile-size", "32", "--keep-going", "-q"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_TRUE(fs::exists(dir / "out/a.tif"));
    EXPECT_TRUE(fs::exists(dir / "out/b.tif"));
    EXPECT_NE(r.err.find("missing.tif: no such file"), std::string::npos) << r.err;
    // the failures are listed again at the end, each with its reason (a long batch's log has them far apart)
    EXPECT_NE(r.err.find("1 of 3 inputs failed:\n  " + dir / "missing.tif" + ": no such file\n"), std::string::npos) << r.err;
    // An input failing the checks made before the model runs (here the GeoJSON one, which opens it) is
    // passed over too: it ended the batch, b.tif never made.
    const auto polygons = run_rsi({"segment", a, dir / "missing.tif", b, "--output-dir", dir / "out5", "-m", fixture("tiny_segmenter.pt"),
                                   "--tile-size", "32", "--keep-going", "--vector", ".geojson", "-q", "--json"});
    EXPECT_EQ(polygons.exit_code, 1);
    EXPECT_TRUE(fs::exists(dir / "out5/b.geojson"));
    EXPECT_NE(polygons.err.find("1 of 3 inputs failed"), std::string::npos) << polygons.err;
    const auto failed = nlohmann::json::parse(polygons.out)["failed"];
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_EQ(failed[0]["input"], dir / "missing.tif");
    EXPECT_EQ(failed[0]["error"], dir / "missing.tif" + ": no such file");
    // Without --keep-going the first failure stops the run.
    const auto stop = run_rsi({"segment", dir / "missing.tif", a, "--output-dir", dir / "out2", "-m", fixture("tiny_segmenter.pt"), "-q"});
    EXPECT_EQ(stop.exit_code, 1);
    EXPECT_FALSE(fs::exists(dir / "out2/a.tif"));
}

// With --output-dir every output is named after its input: a name given to --probabilities or --preview
// only switches the output on. That used to happen without a word; now a warning names what is written.
TEST(MapsCli, OutputDirSaysWhereNamedOutputsGo) {
    test::TempDir dir;
    const std::string a = make_image(dir, "a.tif"), b = make_image(dir, "b.tif");
    const auto r = run_rsi({"segment", a, b, "--output-dir", dir / "out", "-m", fixture("tiny_segmenter.pt"), "--tile-size", "32",
                            "--probabilities", "p.tif", "--vector", "v.geojson", "--no-manifest"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(dir / "out/a_probabilities.tif"));
    EXPECT_TRUE(fs::exists(dir / "out/b.geojson"));
    EXPECT_FALSE(fs::exists(dir / "out/p.tif"));
    EXPECT_NE(r.err.find("warning: --probabilities p.tif: with --output-dir each input writes <input>_probabilities.tif there (" +
                         (dir / "out/a_probabilities.tif") + ", ...)"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("warning: --vector v.geojson: with --output-dir each input writes <input> with this extension there"),
              std::string::npos) << r.err;
    // A name that is what would be written anyway, and --quiet, say nothing.
    const auto same = run_rsi({"segment", a, "--output-dir", dir / "out2", "-m", fixture("tiny_segmenter.pt"), "--tile-size", "32",
                               "--probabilities", "a_probabilities.tif", "--no-manifest"});
    ASSERT_EQ(same.exit_code, 0) << same.err;
    EXPECT_EQ(same.err.find("warning"), std::string::npos) << same.err;
    const auto quiet = run_rsi({"segment", a, "--output-dir", dir / "out3", "-m", fixture("tiny_segmenter.pt"), "--tile-size", "32",
                                "--probabilities", "p.tif", "-q"});
    ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
    EXPECT_EQ(quiet.err, "");
    // "--vector .geojson" names the format alone (it was "unknown vector format '(no extension)'").
    const auto format = run_rsi({"segment", a, "--output-dir", dir / "out4", "-m", fixture("tiny_segmenter.pt"), "--tile-size", "32",
                                 "--vector", ".geojson", "--no-manifest"});
    ASSERT_EQ(format.exit_code, 0) << format.err;
    EXPECT_TRUE(fs::exists(dir / "out4/a.geojson"));
    EXPECT_EQ(format.err.find("warning"), std::string::npos) << format.err;
    // ... and so does its bare name, as the help's <input>.EXT reads.
    const auto bare = run_rsi({"segment", a, "--output-dir", dir / "out5", "-m", fixture("tiny_segmenter.pt"), "--tile-size", "32",
                               "--vector", "gpkg", "--no-manifest"});
    ASSERT_EQ(bare.exit_code, 0) << bare.err;
    EXPECT_TRUE(fs::exists(dir / "out5/a.gpkg"));
    EXPECT_EQ(bare.err.find("warning"), std::string::npos) << bare.err;
}

TEST(MapsCli, SceneWritesLatticeCsvAndJson) {
    test::TempDir dir;
    const std::string image = make_image(dir, "s.tif", 4);
    const auto r = run_rsi({"scene", image, "-o", dir / "scene.tif", "-m", fixture("tiny_scene.pt"), "--csv", dir / "scene.csv",
                            "--json", "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["lattice"][0], 4);  // 60 / 16 -> 4 rows (padded)
    EXPECT_EQ(j["lattice"][1], 5);
    EXPECT_EQ(j["windows"], 20);
    // Time inside the forward calls: some, and part of the whole run.
    EXPECT_GT(j["model_seconds"].get<double>(), 0.0);
    EXPECT_LE(j["model_seconds"].get<double>(), j["seconds"].get<double>());
    EXPECT_TRUE(fs::exists(dir / "scene.csv"));
    // A shapefile grid: a file of an older one there is refused before the model runs, then replaced.
    test::write_text_file(dir / "grid.prj", "older");
    const std::vector<std::string> grid{"scene", image, "-o", dir / "g.tif", "-m", fixture("tiny_scene.pt"), "--vector", dir / "grid.shp", "-q"};
    const auto refused = run_rsi(grid);
    EXPECT_EQ(refused.exit_code, 2) << refused.err;
    EXPECT_NE(refused.err.find("grid.prj (a file of this shapefile) already exists (use --overwrite"), std::string::npos) << refused.err;
    EXPECT_FALSE(fs::exists(dir / "g.tif"));
    auto replacing = grid;
    replacing.push_back("--overwrite");
    const auto written = run_rsi(replacing);
    ASSERT_EQ(written.exit_code, 0) << written.err;
    for (const char* ext : {".shp", ".shx", ".dbf", ".cpg"}) EXPECT_TRUE(fs::exists(dir / (std::string("grid") + ext))) << ext;
    EXPECT_NE(test::read_text_file(dir / "grid.prj"), "older");
    // eval names the classes from the map's category names (kept in its .aux.xml)
    const auto e = run_rsi({"eval", dir / "scene.tif", dir / "scene.tif", "--json", "-q"});
    ASSERT_EQ(e.exit_code, 0) << e.err;
    const auto scored = nlohmann::json::parse(e.out);
    EXPECT_EQ(scored["classes"][0]["name"], "field");
    EXPECT_DOUBLE_EQ(scored["overall_accuracy"].get<double>(), 1.0);
    const auto wrong = run_rsi({"scene", image, "-o", dir / "x.tif", "-m", fixture("tiny_segmenter.pt"), "-q"});
    EXPECT_EQ(wrong.exit_code, 2);
    EXPECT_NE(wrong.err.find("not a scene model"), std::string::npos) << wrong.err;
}

// Two SLURM array tasks (K/N from the environment) and `rsi merge` give the direct run's outputs.
// Shards run from the image's folder with a relative path; the merge, run from elsewhere, still finds
// the image for the dense map (the job records it absolute; it was resolved against the merge's folder).
TEST(MapsCli, SceneMergeFromAnotherFolderFindsTheImage) {
    test::TempDir dir;
    make_image(dir, "s.tif", 4);
    for (const char* k : {"0/2", "1/2"}) {
        const auto r = run_rsi({"scene", "s.tif", "-o", "m.tif", "--dense", "d.tif", "-m", fixture("tiny_scene.pt"), "--shard", k, "-q"},
                               "cd " + test::shell_quote(dir.str()));
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    const auto merged = run_rsi({"merge", dir / "m.tif.parts", "-q"}, "cd /");
    ASSERT_EQ(merged.exit_code, 0) << merged.err;
    EXPECT_EQ(RasterSource::open(dir / "d.tif").info().width, 80);
    const auto manifest = nlohmann::json::parse(test::slurp(dir / "m.tif.manifest.json"));
    EXPECT_EQ(manifest["command"], "merge");
    EXPECT_EQ(manifest["job"], "rsi-scene-job");
    EXPECT_EQ(manifest["input"], "s.tif");
    EXPECT_EQ(manifest["outputs"], (nlohmann::json{"m.tif", "d.tif"}));
}

// A batch script that reruns a finished scene map with --resume ends with 0 and leaves the map as it
// was, as segment does (it ended with "already exists"); other options, or a map without a manifest,
// are still refused, naming why. A finished tiling is refused with a message that says it is finished:
// a tile index records no input fingerprint, so rsi cannot tell it is this job's.
TEST(MapsCli, AResumeOfAFinishedSceneMapSkipsIt) {
    test::TempDir dir;
    const std::string image = make_image(dir, "s.tif", 4);
    const std::vector<std::string> args{"scene", image, "-o", dir / "m.tif", "--csv", dir / "m.csv", "-m", fixture("tiny_scene.pt"), "--resume"};
    const auto first = run_rsi(args);
    ASSERT_EQ(first.exit_code, 0) << first.err;
    const std::string map = test::slurp(dir / "m.tif"), csv = test::slurp(dir / "m.csv");
    const auto again = run_rsi(args);
    EXPECT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(again.err, "rsi scene: " + (dir / "m.tif") + " is done, skipped (--resume)\n");
    std::vector<std::string> json = args;
    json.push_back("--json");
    const auto summary = run_rsi(json);
    ASSERT_EQ(summary.exit_code, 0) << summary.err;
    EXPECT_EQ(nlohmann::json::parse(summary.out)["skipped"], "done before (--resume)") << summary.out;
    EXPECT_EQ(test::slurp(dir / "m.tif"), map);
    EXPECT_EQ(test::slurp(dir / "m.csv"), csv);
    std::vector<std::string> other = args;
    other.insert(other.end(), {"--stride", "8"});
    const auto refused = run_rsi(other);
    EXPECT_EQ(refused.exit_code, 2);
    EXPECT_EQ(refused.err, "rsi scene: " + (dir / "m.tif") + ": exists, but it was made with other options (--resume skips only this "
                                                            "job's finished outputs; use --overwrite to make it again)\n");
    fs::remove(dir / "m.tif.manifest.json");
    const auto unknown = run_rsi(args);
    EXPECT_EQ(unknown.exit_code, 2);
    EXPECT_NE(unknown.err.find("exists, but it has no manifest to tell which input and options made it"), std::string::npos) << unknown.err;

    const std::vector<std::string> tile{"tile", image, dir / "tiles", "--tile-size", "32", "--resume", "-q"};
    ASSERT_EQ(run_rsi(tile).exit_code, 0);
    const auto tiled = run_rsi(tile);
    EXPECT_EQ(tiled.exit_code, 2);
    EXPECT_EQ(tiled.err, "rsi tile: " + (dir / "tiles/index.geojson") + ": already exists: the tiling of this folder is finished (no "
                                                                         "interrupted run to resume; its parts folder is gone); use --overwrite to tile again\n");
}

TEST(MapsCli, SceneShardsFromSlurmMergeToTheDirectRun) {
    test::TempDir dir;
    const std::string image = make_image(dir, "s.tif", 4);
    const std::vector<std::string> common{"-m", fixture("tiny_scene.pt"), "--stride", "8", "--batch", "3", "-q", "--no-manifest"};
    auto args = [&](const std::string& stem, std::vector<std::string> extra) {
        std::vector<std::string> a{"scene", image, "-o", dir / (stem + ".tif"), "--csv", dir / (stem + ".csv")};
        a.insert(a.end(), common.begin(), common.end());
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    };
    ASSERT_EQ(run_rsi(args("direct", {})).exit_code, 0);
    setenv("SLURM_ARRAY_TASK_COUNT", "2", 1);
    for (const char* k : {"1", "0"}) {
        setenv("SLURM_ARRAY_TASK_ID", k, 1);
        const auto r = run_rsi(args("sharded", {"--json"}));
        ASSERT_EQ(r.exit_code, 0) << r.err;
        const auto j = nlohmann::json::parse(r.out);
        EXPECT_EQ(j["shard"][0], std::stoi(k));
        EXPECT_EQ(j["strips"], 7);  // lattice rows: ceil((60 - 16) / 8) + 1
        EXPECT_EQ(j["strips_run"], std::string(k) == "0" ? 3 : 4);
        EXPECT_FALSE(fs::exists(dir / "sharded.tif"));
    }
    unsetenv("SLURM_ARRAY_TASK_ID");
    unsetenv("SLURM_ARRAY_TASK_COUNT");
    const auto polygons = run_rsi({"merge", dir / "sharded.tif.parts", "--min-area", "5", "-q"});
    EXPECT_EQ(polygons.exit_code, 2);
    EXPECT_NE(polygons.err.find("not to a scene map"), std::string::npos) << polygons.err;
    // -o over another output the job recorded (its CSV): refused before any work, parts kept
    const auto clash = run_rsi({"merge", dir / "sharded.tif.parts", "-o", dir / "sharded.csv", "-q"});
    EXPECT_EQ(clash.exit_code, 2) << clash.err;
    EXPECT_NE(clash.err.find("sharded.csv: -o is written as a GTiff (GeoTIFF) raster: name it .tif"), std::string::npos) << clash.err;
    EXPECT_TRUE(fs::exists(dir / "sharded.tif.parts"));
    const auto merged = run_rsi({"merge", dir / "sharded.tif.parts", "--json", "-q"});
    ASSERT_EQ(merged.exit_code, 0) << merged.err;
    const auto j = nlohmann::json::parse(merged.out);
    EXPECT_EQ(j["windows"], 7 * 9);
    EXPECT_EQ(j["output"], dir / "sharded.tif");
    EXPECT_EQ(test::slurp(dir / "direct.csv"), test::slurp(dir / "sharded.csv"));
    EXPECT_EQ(test::slurp(dir / "direct.tif"), test::slurp(dir / "sharded.tif"));
    EXPECT_FALSE(fs::exists(dir / "sharded.tif.parts"));
}

// A segmentation merge checks every output before it consumes the parts folder: an unknown polygon
// format, or -o naming the probabilities the shards recorded, used to fail (or silently overwrite)
// only after the mask was written and the parts removed.
// A model without rsi.json, described on the command line: its shards merge (job.json records what
// the command line said, with the data range, gsd and weights hash unknown; the merge read it strictly
// and refused "input.data_range: missing required field").
TEST(MapsCli, ShardsOfAModelWithoutMetadataMerge) {
    test::TempDir dir;
    const std::string image = make_image(dir, "a.tif");
    const std::vector<std::string> model{"-m", fixture("no_metadata.pt"), "--task", "segmentation", "--model-bands", "3",
                                         "--classes", "background,building", "--model-tile-size", "32", "-q", "--no-manifest"};
    auto run = [&](std::vector<std::string> args) {
        args.insert(args.end(), model.begin(), model.end());
        return run_rsi(args);
    };
    ASSERT_EQ(run({"segment", image, "-o", dir / "direct.tif"}).exit_code, 0);
    for (const char* shard : {"0/2", "1/2"}) {
        const auto r = run({"segment", image, "-o", dir / "sharded.tif", "--shard", shard});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    const auto merged = run_rsi({"merge", dir / "sharded.tif.parts", "-q", "--no-manifest"});
    ASSERT_EQ(merged.exit_code, 0) << merged.err;
    const RasterSource a = RasterSource::open(dir / "direct.tif"), b = RasterSource::open(dir / "sharded.tif");
    std::vector<uint8_t> x(80 * 60), y(80 * 60);
    a.read({0, 0, 80, 60}, {1}, GDT_Byte, x.data());
    b.read({0, 0, 80, 60}, {1}, GDT_Byte, y.data());
    EXPECT_EQ(x, y);
    EXPECT_EQ(a.info().geotransform, b.info().geotransform);
}

TEST(MapsCli, MergeChecksItsOutputsBeforeConsumingTheParts) {
    test::TempDir dir;
    const std::string image = make_image(dir, "m.tif");
    // A shard makes no polygons or preview: the messages say where they come from (merge has no --preview).
    const std::vector<std::string> shard{"buildings", image, "-o", dir / "b.tif", "-m", fixture("tiny_segmenter.pt"), "--shard", "0/2", "-q"};
    auto with = [&](std::vector<std::string> extra) {
        std::vector<std::string> args = shard;
        args.insert(args.end(), extra.begin(), extra.end());
        return run_rsi(args);
    };
    const auto polygons = with({"--vector", dir / "v.gpkg"});
    EXPECT_EQ(polygons.exit_code, 2);
    EXPECT_NE(polygons.err.find("(rsi merge " + dir / "b.tif.parts --vector ...)"), std::string::npos) << polygons.err;
    const auto preview = with({"--preview", dir / "p.png"});
    EXPECT_EQ(preview.exit_code, 2);
    EXPECT_NE(preview.err.find("run without --shard for a preview"), std::string::npos) << preview.err;
    EXPECT_EQ(test::names_in_folder(dir.str()), std::vector<std::string>{"m.tif"});
    for (const char* k : {"0/2", "1/2"}) {
        const auto r = run_rsi({"buildings", image, "-o", dir / "b.tif", "--probabilities", dir / "p.tif", "-m", fixture("tiny_segmenter.pt"),
                                "--tile-size", "32", "--overlap", "8", "--shard", k, "-q", "--no-manifest"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    const std::string parts = dir / "b.tif.parts";
    const auto kml = run_rsi({"merge", parts, "--vector", dir / "b.kml", "-q"});
    EXPECT_EQ(kml.exit_code, 2) << kml.err;
    const auto clash = run_rsi({"merge", parts, "-o", dir / "p.tif", "-q"});
    EXPECT_EQ(clash.exit_code, 2) << clash.err;
    EXPECT_NE(clash.err.find("would be the same file"), std::string::npos) << clash.err;
    const auto same = run_rsi({"merge", parts, "--vector", dir / "b.tif", "--overwrite", "-q"});
    EXPECT_EQ(same.exit_code, 2) << same.err;
    EXPECT_TRUE(fs::exists(parts));
    EXPECT_FALSE(fs::exists(dir / "b.tif"));
    // The merge's manifest, beside the mask as a single run's: the input, model and settings the shards
    // recorded, and the outputs. An existing one is refused before any work.
    test::write_text_file(dir / "b.tif.manifest.json", "{}");
    const auto kept = run_rsi({"merge", parts, "--vector", dir / "b.gpkg", "-q"});
    EXPECT_EQ(kept.exit_code, 2) << kept.err;
    EXPECT_NE(kept.err.find("b.tif.manifest.json: already exists"), std::string::npos) << kept.err;
    EXPECT_TRUE(fs::exists(parts));
    fs::remove(dir / "b.tif.manifest.json");
    test::write_text_file(dir / "b.tif", "older");  // the error names the output, not its manifest
    const auto exists = run_rsi({"merge", parts, "--vector", dir / "b.gpkg", "-q"});
    EXPECT_EQ(exists.exit_code, 2) << exists.err;
    EXPECT_NE(exists.err.find("b.tif: already exists"), std::string::npos) << exists.err;
    fs::remove(dir / "b.tif");
    const auto ok = run_rsi({"merge", parts, "--vector", dir / "b.gpkg", "-q"});
    ASSERT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_TRUE(fs::exists(dir / "b.tif"));
    EXPECT_TRUE(fs::exists(dir / "p.tif"));
    EXPECT_TRUE(fs::exists(dir / "b.gpkg"));
    const auto manifest = nlohmann::json::parse(test::slurp(dir / "b.tif.manifest.json"));
    EXPECT_EQ(manifest["command"], "merge");
    EXPECT_EQ(manifest["job"], "rsi-segmentation-job");
    EXPECT_EQ(manifest["input"], "m.tif");
    EXPECT_EQ(manifest["input_fingerprint"].get<std::string>().rfind("sha256:", 0), 0u);
    EXPECT_EQ(manifest["outputs"], (nlohmann::json{"b.tif", "p.tif", "b.gpkg"}));
    EXPECT_EQ(manifest["shards"], 2);
    EXPECT_EQ(manifest["options"]["tile"], 32);
    EXPECT_EQ(manifest["options"]["overlap"], 8);
    EXPECT_FALSE(manifest["options"]["outputs"].contains("output"));  // file names only: no paths
    EXPECT_FALSE(manifest["model"]["weights_sha256"].get<std::string>().empty());
    EXPECT_EQ(test::slurp(dir / "b.tif.manifest.json").find(dir.str()), std::string::npos);
}

// With --vector the merged mask and probabilities keep temporary names, and the parts folder stays,
// until the polygons are written: a polygon phase that fails (here a full disk: a file-size limit the
// mask fits in and the GeoPackage does not) leaves no mask without polygons and the parts to merge again.
TEST(MapsCli, MergeWithPolygonsKeepsThePartsUntilThePolygonsAreWritten) {
    test::TempDir dir;
    const std::string image = make_image(dir, "m.tif");
    for (const char* k : {"0/2", "1/2"}) {
        const auto r = run_rsi({"buildings", image, "-o", dir / "b.tif", "--probabilities", dir / "p.tif", "-m", fixture("tiny_segmenter.pt"),
                                "--tile-size", "32", "--overlap", "8", "--shard", k, "-q", "--no-manifest"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    const std::string parts = dir / "b.tif.parts";
    // 60 KiB: the mask (3 KB) and probabilities (18 KB) fit, the GeoPackage (112 KB) does not; SIGXFSZ
    // ignored, so the write fails with EFBIG as on a full disk instead of killing the process.
    const auto full = run_rsi({"merge", parts, "--vector", dir / "b.gpkg", "-q"}, "ulimit -f 60; trap '' XFSZ");
    EXPECT_EQ(full.exit_code, 1) << full.err;
    EXPECT_NE(full.err.find("b.gpkg: writing"), std::string::npos) << full.err;
    EXPECT_EQ(full.err_lines(), 1) << full.err;
    EXPECT_EQ(test::names_in_folder(dir.str()), (std::vector<std::string>{"b.tif.parts", "m.tif"}));
    // What a killed merge leaves (pid 2^22 + 1 is above Linux's pid_max: never a running process) is
    // removed by the next merge, the way to redo it.
    for (const char* stale : {".rsi-tmp-4194305-4-.rsi-tmp-4194305-1-b.tif.model-grid.tif", ".rsi-tmp-4194305-0-p.tif"}) {
        test::write_text_file(dir / stale, "left by a killed merge");
    }
    const auto ok = run_rsi({"merge", parts, "--vector", dir / "b.gpkg", "-q"});
    ASSERT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_EQ(test::names_in_folder(dir.str()),
              (std::vector<std::string>{"b.gpkg", "b.tif", "b.tif.aux.xml", "b.tif.manifest.json", "m.tif", "p.tif"}));
}

// merge --vrt writes its manifest beside the VRT it makes; --no-manifest writes none.
TEST(MapsCli, MergeAsVrtWritesItsManifestBesideTheVrt) {
    test::TempDir dir;
    const std::string image = make_image(dir, "m.tif");
    for (const char* stem : {"b", "c"}) {
        for (const char* k : {"0/2", "1/2"}) {
            const auto r = run_rsi({"segment", image, "-o", dir / (std::string(stem) + ".tif"), "-m", fixture("tiny_segmenter.pt"),
                                    "--tile-size", "32", "--overlap", "8", "--shard", k, "-q", "--json"});
            ASSERT_EQ(r.exit_code, 0) << r.err;
            // A shard's summary reports the tile and batch it used, as a whole run's does.
            const auto summary = nlohmann::json::parse(r.out);
            EXPECT_EQ(summary["tile_size"], 32);
            EXPECT_GT(summary["batch"].get<int>(), 0);
        }
    }
    // Run where the parts are, as the help's example: the bare VRT name failed ("the VRT names its
    // strips 0 times"), since the strips were given to GDAL as "./…" and kept so.
    const auto vrt = run_rsi({"merge", "b.tif.parts", "--vrt", "-q"}, "cd " + test::shell_quote(dir.str()));
    ASSERT_EQ(vrt.exit_code, 0) << vrt.err;
    const auto manifest = nlohmann::json::parse(test::slurp(dir / "b.vrt.manifest.json"));
    EXPECT_EQ(manifest["outputs"], (nlohmann::json{"b.vrt"}));
    EXPECT_EQ(manifest["merge_options"]["vrt"], true);
    EXPECT_EQ(manifest["command"], "merge");
    const auto plain = run_rsi({"merge", dir / "c.tif.parts", "--no-manifest", "-q"});
    ASSERT_EQ(plain.exit_code, 0) << plain.err;
    EXPECT_TRUE(fs::exists(dir / "c.tif"));
    EXPECT_FALSE(fs::exists(dir / "c.tif.manifest.json"));
    // The VRT reads back as the mosaic the plain merge wrote, also after VRT and strips moved together.
    fs::create_directories(dir / "moved");
    fs::rename(dir / "b.vrt", dir / "moved/b.vrt");
    fs::rename(dir / "b_strips", dir / "moved/b_strips");
    const RasterSource mosaic = RasterSource::open(dir / "moved/b.vrt"), single = RasterSource::open(dir / "c.tif");
    ASSERT_EQ(mosaic.info().width, single.info().width);
    EXPECT_EQ(mosaic.read_float({0, 0, mosaic.info().width, mosaic.info().height}, {1}),
              single.read_float({0, 0, single.info().width, single.info().height}, {1}));
}

// Two --resume runs of one output at once (a script started twice, a requeued task whose first copy
// still runs): the second ended with "strip-000141.tif: no such file" once the first removed the parts
// under it. It now stops at once, naming the holder, and leaves the first's parts alone; when the first
// ends, a resume finishes. A merge likewise waits for a shard that still runs. (The test holds the lock
// as the first run would.)
TEST(MapsCli, ASecondRunOnARunningJobStopsAtOnce) {
    test::TempDir dir;
    const std::string image = make_image(dir, "a.tif");
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    const std::string holder = "pid " + std::to_string(::getpid()) + " on " + host;
    const std::vector<std::string> resume{"segment", image, "-o", dir / "m.tif", "-m", fixture("tiny_segmenter.pt"), "--tile-size", "32",
                                          "--resume", "-q", "--no-manifest"};
    fs::create_directories(dir / "m.tif.parts");
    {
        const ShardLock first(dir / "m.tif.parts", ShardSpec{0, 1});
        ASSERT_TRUE(first.held());
        const auto second = run_rsi(resume);
        EXPECT_EQ(second.exit_code, 1) << second.err;
        EXPECT_EQ(second.err, "rsi segment: " + (dir / "m.tif.parts") + ": another rsi run (" + holder +
                                  ") is working on this job (it holds shard-0-of-1.lock); wait for it to end, then run again\n");
        EXPECT_FALSE(fs::exists(dir / "m.tif"));
    }
    const auto after = run_rsi(resume);
    ASSERT_EQ(after.exit_code, 0) << after.err;
    EXPECT_TRUE(fs::exists(dir / "m.tif"));
    EXPECT_FALSE(fs::exists(dir / "m.tif.parts"));

    for (const char* shard : {"0/2", "1/2"}) {
        const auto r = run_rsi({"segment", image, "-o", dir / "s.tif", "-m", fixture("tiny_segmenter.pt"), "--tile-size", "32", "--shard", shard, "-q"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    {
        const ShardLock requeued(dir / "s.tif.parts", ShardSpec{1, 2});
        const auto early = run_rsi({"merge", dir / "s.tif.parts", "-q"});
        EXPECT_EQ(early.exit_code, 1) << early.err;
        EXPECT_EQ(early.err, "rsi merge: " + (dir / "s.tif.parts") + ": another rsi run (" + holder +
                                 ") is working on shard 1/2 of this job (it holds shard-1-of-2.lock); wait for it to end, then run again\n");
        EXPECT_FALSE(fs::exists(dir / "s.tif"));
    }
    const auto merged = run_rsi({"merge", dir / "s.tif.parts", "-q", "--no-manifest"});
    ASSERT_EQ(merged.exit_code, 0) << merged.err;
    const RasterSource direct = RasterSource::open(dir / "m.tif"), sharded = RasterSource::open(dir / "s.tif");
    EXPECT_EQ(direct.read_float({0, 0, 80, 60}, {1}), sharded.read_float({0, 0, 80, 60}, {1}));
}

// A 600 x 400 image of noise, noisy.tif: its preview PNG is large (what a file-size limit stops first).
std::string make_noisy_image(const test::TempDir& dir, int bands) {
    const std::string image = dir / "noisy.tif";
    test::make_raster(image, 600, 400, bands, GDT_Byte, [](int b, int x, int y) { return (x * 7919 + y * 104729 + b * 31) * 2654435761u % 251; });
    const double gt[6] = {400000, 0.3, 0, 3000000, 0, -0.3};
    test::georeference(image, gt, 32611);
    return image;
}

// A resumed run with polygons keeps its parts when the polygons cannot be written (a full disk), and
// a merge of those parts writes the mask the user asked for: job.json recorded the mask's temporary
// name (and the scratch confidence raster the polygons need as probabilities), so the merge "succeeded"
// into a hidden .rsi-tmp- file that the next resume removed as stale.
TEST(MapsCli, MergeOfAResumedRunWithPolygonsWritesTheNamedOutputs) {
    test::TempDir dir;
    const std::string image = make_noisy_image(dir, 3);
    const std::vector<std::string> args{"buildings", image, "-o", dir / "m.tif", "-m", fixture("tiny_segmenter.pt"), "--tile-size", "64",
                                        "--vector", dir / "v.gpkg", "--resume", "-q", "--no-manifest"};
    // 2 MiB: the strips (under 200 KB) fit, the GeoPackage of the noise (8 MB) does not
    const auto full = run_rsi(args, "ulimit -f 2048; trap '' XFSZ");
    EXPECT_EQ(full.exit_code, 1) << full.err;
    EXPECT_NE(full.err.find("v.gpkg"), std::string::npos) << full.err;
    ASSERT_TRUE(fs::exists(dir / "m.tif.parts/job.json"));
    const auto outputs = nlohmann::json::parse(test::slurp(dir / "m.tif.parts/job.json"))["outputs"];
    EXPECT_EQ(outputs["output"], fs::absolute(dir / "m.tif").lexically_normal().string()) << outputs;
    EXPECT_EQ(outputs["probabilities"], "") << outputs;
    EXPECT_EQ(outputs["probability_format"], "float32") << outputs;
    const auto merged = run_rsi({"merge", dir / "m.tif.parts", "--json", "-q"});
    ASSERT_EQ(merged.exit_code, 0) << merged.err;
    EXPECT_EQ(nlohmann::json::parse(merged.out)["output"], fs::absolute(dir / "m.tif").lexically_normal().string()) << merged.out;
    EXPECT_EQ(test::names_in_folder(dir.str()), (std::vector<std::string>{"m.tif", "m.tif.aux.xml", "m.tif.manifest.json", "noisy.tif"}));
}

// Every output of an image is complete before any is renamed: a preview that cannot be written (a full
// disk: a file-size limit the mask fits in and the noisy image's preview does not) leaves no mask, no
// polygons and no manifest. The polygons were renamed first before, and the manifest written last.
TEST(MapsCli, BuildingsLeaveNoOutputWhenThePreviewCannotBeWritten) {
    test::TempDir dir;
    const std::string image = make_noisy_image(dir, 3);
    const std::vector<std::string> args{"buildings", image, "-o", dir / "m.tif", "-m", fixture("tiny_segmenter.pt"), "--tile-size", "64",
                                        "--vector", dir / "v.gpkg", "--preview", dir / "pv.png", "-q"};
    const auto full = run_rsi(args, "ulimit -f 400; trap '' XFSZ");
    EXPECT_EQ(full.exit_code, 1) << full.err;
    EXPECT_NE(full.err.find(dir / "pv.png: writing the preview failed"), std::string::npos) << full.err;  // the name given, not a temporary
    EXPECT_EQ(full.err_lines(), 1) << full.err;
    EXPECT_EQ(test::names_in_folder(dir.str()), std::vector<std::string>{"noisy.tif"});
    const auto ok = run_rsi(args);
    ASSERT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_EQ(test::names_in_folder(dir.str()),
              (std::vector<std::string>{"m.tif", "m.tif.aux.xml", "m.tif.manifest.json", "noisy.tif", "pv.png", "v.gpkg"}));
}

// The same for a scene map: its preview and manifest are written before any output is renamed, so a
// preview that cannot be written leaves no lattice, probabilities or manifest (they
// were all in place before, the preview and manifest being written after them).
TEST(MapsCli, SceneLeavesNoOutputWhenThePreviewCannotBeWritten) {
    test::TempDir dir;
    const std::string image = make_noisy_image(dir, 4);
    const std::vector<std::string> args{"scene", image, "-o", dir / "c.tif", "-m", fixture("tiny_scene.pt"),
                                        "--probabilities", dir / "p.tif", "--preview", dir / "pv.png", "-q"};
    const auto full = run_rsi(args, "ulimit -f 40; trap '' XFSZ");  // the lattice and probabilities take 25 KB, the preview 70
    EXPECT_EQ(full.exit_code, 1) << full.err;
    EXPECT_NE(full.err.find(dir / "pv.png: writing the preview failed"), std::string::npos) << full.err;
    EXPECT_EQ(full.err_lines(), 1) << full.err;
    EXPECT_EQ(test::names_in_folder(dir.str()), std::vector<std::string>{"noisy.tif"});
    const auto ok = run_rsi(args);
    ASSERT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_EQ(test::names_in_folder(dir.str()),
              (std::vector<std::string>{"c.tif", "c.tif.aux.xml", "c.tif.manifest.json", "noisy.tif", "p.tif", "pv.png"}));
    EXPECT_NE(test::slurp(dir / "c.tif.manifest.json").find("\"window_pixels\": 16"), std::string::npos);
}

// Writes that GDAL does not report as failures on a full disk (a GeoJSON file cut short, an .aux.xml it
// could not save: only a warning) fail the run with one line naming the output, and leave nothing.
// Both ended with exit 0 and a truncated file in place (the mask's class names lost with its .aux.xml).
TEST(MapsCli, FullDiskWritesGdalDoesNotReportFailTheRun) {
    test::TempDir dir;
    const std::string image = dir / "big.tif";
    test::make_raster(image, 1024, 1024, 3, GDT_Byte, [](int b, int x, int y) { return (x * 3 + y * 5 * b) % 256; });
    const double gt[6] = {400000, 0.3, 0, 3000000, 0, -0.3};
    test::georeference(image, gt, 32611);
    // 361 tiles of 64 px: the tiles fit in 100 KB each, the GeoJSON index of them does not.
    const auto index = run_rsi({"tile", image, dir / "tiles", "--tile-size", "64", "--overlap", "8", "--index", dir / "idx.geojson", "-q"},
                               "ulimit -f 100; trap '' XFSZ");
    EXPECT_EQ(index.exit_code, 1) << index.err;
    EXPECT_EQ(index.err, "rsi tile: " + dir / "idx.geojson" + ": writing failed: the file holds no readable layer (disk full?)\n");
    EXPECT_EQ(test::names_in_folder(dir.str()), std::vector<std::string>{"big.tif"});
    // A 16 x 16 mask fits in 5 KB, its .aux.xml (colour legend and class names, 7 KB) does not.
    const std::string small = dir / "small.tif";
    test::make_raster(small, 16, 16, 3, GDT_Byte, [](int b, int x, int y) { return (x * 3 + y * 5 * b) % 256; });
    test::georeference(small, gt, 32611);
    const auto aux = run_rsi({"segment", small, "-o", dir / "m.tif", "-m", fixture("tiny_segmenter.pt"), "-q"}, "ulimit -f 5; trap '' XFSZ");
    EXPECT_EQ(aux.exit_code, 1) << aux.err;
    EXPECT_NE(aux.err.find(dir / "m.tif: writing failed: its .aux.xml"), std::string::npos) << aux.err;
    EXPECT_EQ(aux.err_lines(), 1) << aux.err;
    EXPECT_EQ(test::names_in_folder(dir.str()), (std::vector<std::string>{"big.tif", "small.tif"}));
}

// Third audit of session 18: what a batch user trips over.
TEST(MapsCli, BatchResumePreviewNamesAndSmallTiles) {
    test::TempDir dir;
    make_image(dir, "a.tif");
    make_image(dir, "b.tif");
    const std::vector<std::string> batch{"buildings", dir / "a.tif", dir / "b.tif", "-m", fixture("tiny_segmenter.pt"), "--output-dir",
                                         dir / "out", "--tile-size", "32", "--overlap", "8", "--resume", "-q"};
    ASSERT_EQ(run_rsi(batch).exit_code, 0);
    // A resume with other model overrides (what the model is fed) is other work, not finished work.
    std::vector<std::string> rescaled = batch;
    rescaled.insert(rescaled.end(), {"--input-scale", "0.5"});
    const auto other = run_rsi(rescaled);
    EXPECT_EQ(other.exit_code, 2) << other.err;
    EXPECT_NE(other.err.find("a.tif: exists, but it was made with other options"), std::string::npos) << other.err;
    // One input rerun with --resume once it is finished: skipped, exit 0 (it said "already exists", exit 2).
    const std::vector<std::string> one{"buildings", dir / "a.tif", "-o", dir / "one.tif", "-m", fixture("tiny_segmenter.pt"),
                                       "--tile-size", "32", "--overlap", "8", "--resume", "-q", "--json"};
    ASSERT_EQ(run_rsi(one).exit_code, 0);
    const auto again = run_rsi(one);
    EXPECT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(nlohmann::json::parse(again.out)["skipped"], "done before (--resume)") << again.out;
    std::vector<std::string> flipped = one;
    flipped.insert(flipped.end(), {"--tta", "flip"});
    const auto changed = run_rsi(flipped);
    EXPECT_EQ(changed.exit_code, 2) << changed.err;
    EXPECT_NE(changed.err.find("one.tif: exists, but it was made with other options"), std::string::npos) << changed.err;
    // --output-dir . names outputs "a.tif", and an output that is an input is refused as such.
    const auto here = run_rsi({"buildings", "a.tif", "b.tif", "-m", fixture("tiny_segmenter.pt"), "--output-dir", ".", "-q"},
                              "cd " + test::shell_quote(dir.str()));
    EXPECT_EQ(here.exit_code, 2);
    EXPECT_EQ(here.err.rfind("rsi buildings: a.tif", 0), 0u) << here.err;
    EXPECT_NE(here.err.find("is an input"), std::string::npos) << here.err;
    // A preview is a PNG: another extension is refused before any work.
    const auto jpeg = run_rsi({"buildings", dir / "a.tif", "-o", dir / "m.tif", "-m", fixture("tiny_segmenter.pt"), "--preview", dir / "p.jpg", "-q"});
    EXPECT_EQ(jpeg.exit_code, 2);
    EXPECT_NE(jpeg.err.find("a preview is a PNG image; give it a .png name"), std::string::npos) << jpeg.err;
    EXPECT_FALSE(fs::exists(dir / "m.tif"));
    // A creation option the driver does not take is refused before any work (GDAL only warned, exit 0).
    const auto bogus = run_rsi({"buildings", dir / "a.tif", "-o", dir / "m.tif", "-m", fixture("tiny_segmenter.pt"), "--co", "COMPRESS=BOGUS", "-q"});
    EXPECT_EQ(bogus.exit_code, 2);
    EXPECT_NE(bogus.err.find("--co: 'BOGUS' is an unexpected value for COMPRESS"), std::string::npos) << bogus.err;
    EXPECT_FALSE(fs::exists(dir / "m.tif"));
    // The default overlap fits a small tile (64 px: 8) instead of refusing its own default.
    const auto info = run_rsi({"info", dir / "a.tif", "--tile-size", "64", "--json"});
    ASSERT_EQ(info.exit_code, 0) << info.err;
    EXPECT_EQ(nlohmann::json::parse(info.out)["tiling"]["overlap"], 8);
}

// What a killed plain run leaves (its outputs' temporaries, up to their size) is removed by the next
// run writing those outputs, not only by a --resume (an audit found 2 GB of them after six kills); a
// live process's temporaries stay. (pid 2^22 + 1 is above Linux's pid_max: never a running process.)
TEST(MapsCli, AnyRunRemovesWhatKilledRunsLeftBesideItsOutputs) {
    test::TempDir dir;
    const std::string image = make_image(dir, "k.tif");
    const std::string live = ".rsi-tmp-" + std::to_string(::getpid()) + "-0-m.tif";
    for (const std::string& name : {std::string(".rsi-tmp-4194305-0-m.tif"), std::string(".rsi-tmp-4194305-1-p.tif"),
                                    std::string(".rsi-tmp-4194305-2-v.gpkg"), std::string(".rsi-tmp-4194305-3-s.tif"),
                                    std::string(".rsi-tmp-4194305-4-d.tif"), std::string(".rsi-tmp-4194305-5-w.gpkg"), live}) {
        test::write_text_file(dir / name, "left by a killed run");
    }
    auto r = run_rsi({"segment", image, "-o", dir / "m.tif", "-m", fixture("tiny_segmenter.pt"), "--tile-size", "32",
                      "--probabilities", dir / "p.tif", "--vector", dir / "v.gpkg", "-q", "--no-manifest"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_rsi({"scene", image, "-o", dir / "s.tif", "-m", fixture("tiny_scene.pt"), "--bands", "1,2,3,1", "--dense", dir / "d.tif", "-q",
                 "--no-manifest"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_rsi({"vectorize", dir / "m.tif", "-o", dir / "w.gpkg", "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> hidden;
    for (const std::string& name : test::names_in_folder(dir.str())) {
        if (name.rfind(".rsi-tmp-", 0) == 0) hidden.push_back(name);
    }
    EXPECT_EQ(hidden, std::vector<std::string>{live});
}

TEST(MapsCli, BuildingsWithPolygonsAndStandaloneVectorize) {
    test::TempDir dir;
    const std::string image = make_image(dir, "b.tif");
    const auto r = run_rsi({"buildings", image, "-o", dir / "mask.tif", "-m", fixture("tiny_segmenter.pt"), "--tile-size", "32",
                            "--vector", dir / "b.gpkg", "--json", "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    ASSERT_TRUE(j["polygons"].is_object());
    EXPECT_GT(j["polygons"]["count"].get<int64_t>(), 0);
    EXPECT_TRUE(fs::exists(dir / "b.gpkg"));
    for (const auto& entry : fs::directory_iterator(dir.str())) {
        EXPECT_EQ(entry.path().filename().string().find("confidence"), std::string::npos) << "scratch left: " << entry.path();
    }
    DatasetPtr layer(GDALDataset::FromHandle(GDALOpenEx((dir / "b.gpkg").c_str(), GDAL_OF_VECTOR, nullptr, nullptr, nullptr)));
    ASSERT_TRUE(layer);
    EXPECT_EQ(layer->GetLayer(0)->GetFeatureCount(), j["polygons"]["count"].get<int64_t>());
    EXPECT_GE(layer->GetLayer(0)->GetLayerDefn()->GetFieldIndex("confidence"), 0);
    // The same mask through rsi vectorize gives the same number of polygons.
    const auto v = run_rsi({"vectorize", dir / "mask.tif", "-o", dir / "again.geojson", "--classes", "1", "--json", "-q"});
    ASSERT_EQ(v.exit_code, 0) << v.err;
    EXPECT_EQ(nlohmann::json::parse(v.out)["polygons"], j["polygons"]["count"]);
    EXPECT_EQ(run_rsi({"vectorize", dir / "mask.tif", "-o", dir / "again.geojson", "-q"}).exit_code, 2);  // exists
    // ... and the same class names: the mask's category names (they were the numbers).
    const auto class_names = [](const std::string& path) {
        std::set<std::string> names;
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpenEx(path.c_str(), GDAL_OF_VECTOR, nullptr, nullptr, nullptr)));
        if (!ds) return names;
        for (auto& feature : *ds->GetLayer(0)) names.insert(feature->GetFieldAsString("class"));
        return names;
    };
    const std::set<std::string> names = class_names(dir / "b.gpkg");
    ASSERT_EQ(names.size(), 1u);
    EXPECT_NE(*names.begin(), "1");
    EXPECT_EQ(class_names(dir / "again.geojson"), names);
}

TEST(MapsCli, PreviewsArePngsOfTheImageWithTheResult) {
    test::TempDir dir;
    const std::string image = make_image(dir, "p.tif", 4);
    ASSERT_EQ(run_rsi({"scene", image, "-o", dir / "s.tif", "-m", fixture("tiny_scene.pt"), "--preview", dir / "s.png", "-q"}).exit_code, 0);
    ASSERT_EQ(run_rsi({"segment", image, "-o", dir / "m.tif", "-m", fixture("tiny_segmenter.pt"), "--bands", "1,2,3",
                       "--preview", dir / "m.png", "-q"}).exit_code, 0);
    for (const char* name : {"s.png", "m.png"}) {
        const RasterSource png = RasterSource::open(dir / name);
        EXPECT_EQ(png.info().width, 80) << name;  // the image is smaller than the preview limit
        EXPECT_EQ(png.info().height, 60) << name;
        EXPECT_EQ(png.info().band_count(), 3) << name;
    }
    // Outlines are drawn in pure red where the mask has buildings.
    const RasterSource png = RasterSource::open(dir / "m.png");
    const auto red = png.read_float({0, 0, 80, 60}, {1}), green = png.read_float({0, 0, 80, 60}, {2});
    int outlined = 0;
    for (size_t i = 0; i < red.size(); ++i) outlined += red[i] == 255 && green[i] == 0;
    EXPECT_GT(outlined, 0);
}

// A class in neither raster has no scores: n/a in the table, null in the JSON (it printed 0.0000, as if
// every pixel of it had been missed), and it takes no part in the mean IoU.
TEST(MapsCli, EvalReportsAClassInNeitherRasterAsNotApplicable) {
    test::TempDir dir;
    test::make_raster(dir / "truth.tif", 4, 1, 1, GDT_Byte, [](int, int x, int) { return x < 2 ? 0 : 2; });
    test::make_raster(dir / "prediction.tif", 4, 1, 1, GDT_Byte, [](int, int x, int) { return x < 1 ? 0 : 2; });
    const auto r = run_rsi({"eval", dir / "prediction.tif", dir / "truth.tif", "--json", "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j["classes"].size(), 3u);
    EXPECT_TRUE(j["classes"][1]["iou"].is_null());
    EXPECT_TRUE(j["classes"][1]["f1"].is_null());
    EXPECT_NEAR(j["classes"][0]["iou"].get<double>(), 0.5, 1e-12);      // 1 of 2
    EXPECT_NEAR(j["classes"][2]["iou"].get<double>(), 2.0 / 3, 1e-12);  // 2 of 3
    EXPECT_NEAR(j["mean_iou"].get<double>(), (0.5 + 2.0 / 3) / 2, 1e-12);
    const auto table = run_rsi({"eval", dir / "prediction.tif", dir / "truth.tif", "-q"});
    ASSERT_EQ(table.exit_code, 0) << table.err;
    EXPECT_NE(table.out.find("\n1                     n/a       n/a       n/a       n/a       0\n"), std::string::npos) << table.out;
}

TEST(MapsCli, EvalReproducesTheWorkedExample) {
    test::TempDir dir;
    // truth [[1,0,0],[0,1,1],[0,0,1]] as a 0/255 mask, prediction [[1,0,1],[0,1,0],[0,0,0]]
    const uint8_t truth[9] = {1, 0, 0, 0, 1, 1, 0, 0, 1}, prediction[9] = {1, 0, 1, 0, 1, 0, 0, 0, 0};
    test::make_raster(dir / "truth.tif", 3, 3, 1, GDT_Byte, [&](int, int x, int y) { return truth[y * 3 + x] * 255; });
    test::make_raster(dir / "prediction.tif", 3, 3, 1, GDT_Byte, [&](int, int x, int y) { return prediction[y * 3 + x]; });
    const auto r = run_rsi({"eval", dir / "prediction.tif", dir / "truth.tif", "--truth-map", "255=1", "--json", "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_NEAR(j["classes"][1]["f1"].get<double>(), 0.5714, 1e-4);
    EXPECT_NEAR(j["classes"][1]["iou"].get<double>(), 0.4, 1e-9);
    EXPECT_NEAR(j["classes"][0]["iou"].get<double>(), 0.5714, 1e-4);
    EXPECT_NEAR(j["overall_accuracy"].get<double>(), 0.6667, 1e-4);
    EXPECT_NEAR(j["mean_iou"].get<double>(), 0.4857, 1e-4);
    EXPECT_NEAR(j["kappa"].get<double>(), 0.3077, 1e-4);
    EXPECT_EQ(j["confusion_matrix"], nlohmann::json::parse("[[4,1],[2,2]]"));
    test::make_raster(dir / "small.tif", 2, 3, 1, GDT_Byte, [](int, int, int) { return 0; });
    const auto bad = run_rsi({"eval", dir / "small.tif", dir / "truth.tif", "-q"});
    EXPECT_EQ(bad.exit_code, 1);
    EXPECT_NE(bad.err.find("must share the grid"), std::string::npos) << bad.err;
    EXPECT_EQ(run_rsi({"eval", dir / "prediction.tif", dir / "truth.tif", "--truth-map", "255:1"}).exit_code, 2);
    // One value mapped to two classes is refused (the last one won silently); the same pair twice is fine.
    const auto twice = run_rsi({"eval", dir / "prediction.tif", dir / "truth.tif", "--truth-map", "255=1,255=0"});
    EXPECT_EQ(twice.exit_code, 2);
    EXPECT_EQ(twice.err, "rsi eval: --truth-map: value 255 is mapped twice (to 1 and to 0)\n");
    EXPECT_EQ(run_rsi({"eval", dir / "prediction.tif", dir / "truth.tif", "--truth-map", "255=1,255=1", "-q"}).exit_code, 0);
    // Nothing left to score: the error names the two files (it said only "metrics: no pixel to compare").
    test::make_raster(dir / "zeros.tif", 3, 3, 1, GDT_Byte, [](int, int, int) { return 0; });
    const auto nothing = run_rsi({"eval", dir / "zeros.tif", dir / "zeros.tif", "--ignore", "0", "-q"});
    EXPECT_EQ(nothing.exit_code, 1);
    EXPECT_EQ(nothing.err, "rsi eval: " + dir / "zeros.tif" + " vs " + dir / "zeros.tif" +
                               ": no pixel to compare (every pixel is nodata or ignored in one of them)\n");
}

TEST(MapsCli, InterruptStopsCleanlyWithoutOutput) {
    test::TempDir dir;
    const std::string image = dir / "big.tif";
    test::make_raster(image, 1500, 1500, 3, GDT_Byte, [](int b, int x, int y) { return (x * b + y) % 256; });
    for (const char* signal : {"INT", "TERM"}) {
        const std::string command = std::string("timeout --preserve-status -s ") + signal + " 2 " + test::shell_quote(RSI_BINARY) +
                                    " segment " + test::shell_quote(image) + " -o " + test::shell_quote(dir / "mask.tif") +
                                    " -m " + test::shell_quote(fixture("tiny_segmenter.pt")) +
                                    " --tile-size 32 --overlap 8 --batch 1 --tta d4 -q > /dev/null 2> " + test::shell_quote(dir / "err.txt");
        const int status = std::system(command.c_str());
        const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        EXPECT_EQ(code, std::string(signal) == "INT" ? 130 : 143) << signal << ": " << test::slurp(dir / "err.txt");
        EXPECT_NE(test::slurp(dir / "err.txt").find("interrupted"), std::string::npos);
        for (const auto& entry : fs::directory_iterator(dir.str())) {
            const std::string name = entry.path().filename().string();
            EXPECT_TRUE(name == "big.tif" || name == "err.txt") << "left behind: " << name;
        }
    }
}

// Ctrl-C while `--from -` is still being read (a pipe whose writer has not finished) ended the read
// with the lines so far: the run went on with a partial list (or, with none, called it a usage
// error) and left the --output-dir it had made. Now: interrupted, exit 130, nothing made.
TEST(MapsCli, InterruptWhileReadingTheInputListRunsNothing) {
    test::TempDir dir;
    const std::string image = dir / "a.tif";
    test::make_raster(image, 64, 64, 3, GDT_Byte, [](int b, int x, int y) { return (x * b + y) % 256; });
    for (const std::string& lines : {std::string(), "echo " + test::shell_quote(image) + "; "}) {
        const std::string command = "(" + lines + "sleep 4) | timeout --preserve-status -s INT 2 " + test::shell_quote(RSI_BINARY) +
                                    " segment --from - --output-dir " + test::shell_quote(dir / "out") + " -m " +
                                    test::shell_quote(fixture("tiny_segmenter.pt")) + " -q 2> " + test::shell_quote(dir / "err.txt");
        const int status = std::system(command.c_str());
        const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        const std::string err = test::slurp(dir / "err.txt");
        EXPECT_EQ(code, 130) << lines << err;
        EXPECT_EQ(err, "rsi segment: interrupted\n") << lines;
        EXPECT_FALSE(fs::exists(dir / "out")) << lines;
    }
    // a run that made the folder and wrote nothing into it (its only image unreadable) removes it too
    const std::string command = "echo " + test::shell_quote(dir / "missing.tif") + " | " + test::shell_quote(RSI_BINARY) +
                                " segment --from - --output-dir " + test::shell_quote(dir / "out") + " -m " +
                                test::shell_quote(fixture("tiny_segmenter.pt")) + " -q 2> " + test::shell_quote(dir / "err.txt");
    const int status = std::system(command.c_str());
    EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 1) << test::slurp(dir / "err.txt");
    EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST(MapsCli, ModelCommandsReportAndFail) {
    test::TempDir dir;
    const auto info = run_rsi({"model", "info", fixture("tiny_scene.pt"), "--json"});
    ASSERT_EQ(info.exit_code, 0) << info.err;
    EXPECT_EQ(nlohmann::json::parse(info.out)["classes"].size(), 3u);
    const auto check = run_rsi({"model", "check", fixture("tiny_segmenter.pt"), "--batch", "2", "--iterations", "2", "--json", "-q"});
    ASSERT_EQ(check.exit_code, 0) << check.err;
    const auto c = nlohmann::json::parse(check.out);
    EXPECT_EQ(c["output_shape"], nlohmann::json::array({2, 2, 64, 64}));
    EXPECT_TRUE(c["golden_ok"].get<bool>());
    EXPECT_TRUE(c["weights_hash_ok"].get<bool>());
    EXPECT_GT(c["tiles_per_second"].get<double>(), 0);
    EXPECT_NEAR(c["tiles_per_second"].get<double>(), 2 * 1000.0 / c["optimized_batch_ms"].get<double>(), 1e-9);
    // Two timed batches: their median is their mean.
    EXPECT_DOUBLE_EQ(c["optimized_batch_ms_mean"].get<double>(), c["optimized_batch_ms"].get<double>());
    EXPECT_EQ(c["timed_input"], "ramp");
    // Tiles cut from an image: the same checks, and a clear usage error for an image too small.
    const std::string image = dir / "real.tif";
    test::make_raster(image, 200, 150, 3, GDT_Byte, [](int b, int x, int y) { return (x * 3 + y * 5 * b) % 256; });
    const auto real = run_rsi({"model", "check", fixture("tiny_segmenter.pt"), "--batch", "2", "--iterations", "2",
                               "--tiles-from", image, "--json", "-q"});
    ASSERT_EQ(real.exit_code, 0) << real.err;
    const auto rj = nlohmann::json::parse(real.out);
    EXPECT_EQ(rj["timed_input"], "image");
    EXPECT_EQ(rj["output_shape"], nlohmann::json::array({2, 2, 64, 64}));
    const auto tiny = run_rsi({"model", "check", fixture("tiny_segmenter.pt"), "--tiles-from", make_image(dir, "tiny.tif"), "-q"});
    EXPECT_EQ(tiny.exit_code, 2);
    EXPECT_NE(tiny.err.find("tiny.tif (80x60) is smaller than one 64-pixel tile"), std::string::npos) << tiny.err;
    const auto bad = run_rsi({"model", "check", fixture("bad_metadata.pt"), "-q"});
    EXPECT_EQ(bad.exit_code, 1);
    EXPECT_NE(bad.err.find("input.std: values must be > 0"), std::string::npos);
    // A model that loads but answers wrongly: one line naming the file and the fault, exit 1.
    const auto wrong = run_rsi({"model", "check", fixture("wrong_output.pt"), "-q"});
    EXPECT_EQ(wrong.exit_code, 1);
    EXPECT_EQ(wrong.err, "rsi model check: " + fixture("wrong_output.pt") +
                             ": output shape [1,2,64,64] for the input [1,3,64,64]; the metadata's 3 classes and output stride 1 need [1,3,64,64]\n");
    const auto nan = run_rsi({"model", "check", fixture("nan_output.pt"), "-q"});
    EXPECT_EQ(nan.exit_code, 1);
    EXPECT_EQ(nan.err, "rsi model check: " + fixture("nan_output.pt") + ": the model's output holds NaN or infinite values\n");
    const auto none = run_rsi({"model", "info", fixture("no_metadata.pt")});
    EXPECT_EQ(none.exit_code, 2);
    EXPECT_NE(none.err.find("--task"), std::string::npos);
    const auto fp16 = run_rsi({"model", "check", fixture("tiny_segmenter.pt"), "--precision", "fp16", "-q"});
    EXPECT_EQ(fp16.exit_code, 2);
}

}  // namespace
}  // namespace rsi
