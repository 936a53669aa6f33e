// The reliability issue's bad-input list against the main job (`rsi buildings`, with the tiny fixture
// model so each case is fast): one line on stderr naming the file and the problem, the documented exit
// code, and no output file.
#include <cpl_conv.h>
#include <filesystem>
#include <algorithm>
#include <fstream>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "cli_runner.hpp"

namespace fs = std::filesystem;

namespace rsi {
namespace {

using test::run_rsi;

std::string fixture(const std::string& name) { return std::string(RSI_FIXTURES_DIR) + "/" + name; }

struct Case {
    std::string name;
    std::vector<std::string> args;  // after "buildings"
    int exit_code;
    std::string message;
};

class BadInput : public ::testing::Test {
protected:
    test::TempDir dir;
    std::string image = dir / "image.tif";
    std::string out = dir / "out.tif";
    void SetUp() override {
        test::make_raster(image, 96, 80, 3, GDT_Byte, [](int b, int x, int y) { return (x * 5 + y * 3 * b) % 256; });
        const double gt[6] = {500000, 0.3, 0, 4000000, 0, -0.3};
        test::georeference(image, gt, 32633);
    }
    // Runs rsi with `args` under a file size limit of `bytes` (SIGXFSZ ignored, so writes fail with
    // EFBIG as on a full disk); returns the exit code and what it printed on stderr.
    std::pair<int, std::string> run_with_file_size_limit(const std::vector<std::string>& args, size_t bytes) const {
        std::string command = test::shell_quote(RSI_BINARY);
        for (const auto& a : args) command += " " + test::shell_quote(a);
        command = "bash -c " + test::shell_quote("trap '' XFSZ; exec prlimit --fsize=" + std::to_string(bytes) + " " + command) +
                  " 2> " + test::shell_quote(dir / "err.txt");
        const int status = std::system(command.c_str());
        return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, test::slurp(dir / "err.txt")};
    }
    // The mask and its .aux.xml (class names): a lone .aux.xml left behind is refused without --overwrite.
    void remove_out() const {
        fs::remove(out);
        fs::remove(out + ".aux.xml");
    }
    std::vector<std::string> run_args(const std::vector<std::string>& extra, const std::string& input) const {
        std::vector<std::string> a{"buildings", input, "-o", out, "-m", fixture("tiny_segmenter.pt"), "--quiet", "--no-manifest"};
        if (std::find(extra.begin(), extra.end(), "--tile-size") == extra.end()) {
            for (const char* x : {"--tile-size", "32"}) a.push_back(x);
        }
        if (std::find(extra.begin(), extra.end(), "--overlap") == extra.end()) {
            for (const char* x : {"--overlap", "8"}) a.push_back(x);
        }
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    }
    void expect_failure(const std::string& what, const std::vector<std::string>& args, int code, const std::string& message) {
        const auto r = run_rsi(args);
        EXPECT_EQ(r.exit_code, code) << what << ": " << r.err;
        EXPECT_NE(r.err.find(message), std::string::npos) << what << ": stderr: " << r.err;
        EXPECT_EQ(r.err_lines(), 1) << what << ": " << r.err;
        EXPECT_FALSE(fs::exists(out)) << what << " left " << out;
        for (const auto& f : fs::directory_iterator(dir.str())) {
            EXPECT_EQ(f.path().filename().string().find(".rsi-tmp"), std::string::npos) << what << " left " << f.path();
        }
    }
};

// With --json a failure still prints a JSON document on stdout (a script parsing stdout is not left
// with nothing), and without --quiet the error stands alone on stderr: no "0% planning" line above it.
TEST_F(BadInput, AFailureIsOneLineOnStderrAndAJsonDocumentWithJson) {
    const std::string gray = dir / "gray.tif";
    test::make_raster(gray, 96, 80, 2, GDT_Byte, [](int, int x, int y) { return (x + y) % 256; });
    const auto r = run_rsi({"buildings", gray, "-o", out, "-m", fixture("tiny_segmenter.pt"), "--tile-size", "32", "--json"});
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.err_lines(), 1) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["command"], "rsi buildings");
    EXPECT_EQ(j["exit_code"], 1);
    EXPECT_EQ("rsi buildings: " + j["error"].get<std::string>() + "\n", r.err);
    EXPECT_NE(j["error"].get<std::string>().find("gray.tif"), std::string::npos) << j;
    const auto usage = run_rsi({"buildings", image, "-o", out, "-m", fixture("tiny_segmenter.pt"), "--probability-format", "byte", "--json"});
    EXPECT_EQ(usage.exit_code, 2) << usage.err;
    EXPECT_EQ(nlohmann::json::parse(usage.out)["exit_code"], 2) << usage.out;
    // A command line that does not parse gets its document too, wherever --json stands in it (CLI11
    // stops at the first bad word, before reaching the flag).
    for (const std::vector<std::string>& words : {std::vector<std::string>{"scene", "--json"},
                                                  {"eval", "a.tif", "b.tif", "--nope", "--json"},
                                                  {"scene", image, "-o", out, "--window", "zero", "--json"}}) {
        const auto parse = run_rsi(words);
        EXPECT_EQ(parse.exit_code, 2) << parse.err;
        EXPECT_EQ(parse.err_lines(), 1) << parse.err;
        const auto doc = nlohmann::json::parse(parse.out);
        EXPECT_EQ(doc["exit_code"], 2) << parse.out;
        EXPECT_EQ(doc["command"], "rsi " + words[0]) << parse.out;
        EXPECT_EQ(doc["command"].get<std::string>() + ": " + doc["error"].get<std::string>() + "\n", parse.err);
    }
    const auto plain = run_rsi({"buildings", gray, "-o", out, "-m", fixture("tiny_segmenter.pt"), "--tile-size", "32"});
    EXPECT_EQ(plain.exit_code, 1);
    EXPECT_EQ(plain.err_lines(), 1) << plain.err;
    EXPECT_TRUE(plain.out.empty()) << plain.out;
    EXPECT_FALSE(fs::exists(out));
}

TEST_F(BadInput, FilesThatAreNotUsableRasters) {
    const std::string text = dir / "notes.tif";
    std::ofstream(text) << "not an image\n";
    const std::string truncated = dir / "cut.tif";
    test::make_raster(truncated, 256, 256, 3, GDT_Byte, [](int b, int x, int y) { return (x * y + b) % 256; });
    fs::resize_file(truncated, fs::file_size(truncated) / 3);
    // A VRT of zero pixels: GDAL refuses it at open.
    const std::string empty = dir / "empty.vrt";
    std::ofstream(empty) << "<VRTDataset rasterXSize=\"0\" rasterYSize=\"0\"><VRTRasterBand dataType=\"Byte\" band=\"1\"/></VRTDataset>\n";
    const std::string complex = dir / "complex.tif";
    test::make_raster(complex, 40, 40, 3, GDT_CInt16, [](int, int x, int) { return x; });
    const std::string two_bands = dir / "two.tif";
    test::make_raster(two_bands, 40, 40, 2, GDT_Byte, [](int, int x, int) { return x; });
    expect_failure("missing", run_args({}, dir / "missing.tif"), 1, "missing.tif: no such file");
    expect_failure("text", run_args({}, text), 1, "notes.tif: not a raster");
    expect_failure("truncated", run_args({}, truncated), 1, "cut.tif: is truncated: its blocks reach byte");
    expect_failure("zero-size", run_args({}, empty), 1, "empty.vrt");
    expect_failure("complex", run_args({}, complex), 1, "complex.tif");
    expect_failure("two bands", run_args({}, two_bands), 1, "two.tif has 2 (choose them with --bands)");
}

TEST_F(BadInput, ModelsThatCannotBeUsed) {
    const std::string truncated_model = dir / "cut.pt";
    fs::copy_file(fixture("tiny_segmenter.pt"), truncated_model);
    fs::resize_file(truncated_model, fs::file_size(truncated_model) / 2);
    const std::string not_model = dir / "notes.pt";
    std::ofstream(not_model) << "not a model\n";
    auto with_model = [&](const std::string& model) {
        auto a = run_args({}, image);
        a[5] = model;
        return a;
    };
    expect_failure("model missing", with_model(dir / "none.pt"), 1, "none.pt");
    expect_failure("model truncated", with_model(truncated_model), 1, "cut.pt");
    expect_failure("not TorchScript", with_model(not_model), 1, "notes.pt: not a TorchScript model");
    expect_failure("bad metadata", with_model(fixture("bad_metadata.pt")), 1, "bad_metadata.pt");
    expect_failure("scene model", with_model(fixture("tiny_scene.pt")), 2, "not a segmentation model");
    // A zip that is not TorchScript, with the metadata given on the command line: refused by `model
    // info` too (it printed the given fields, exit 0), one line, exit 1.
    const std::string zip = dir / "archive.pt";
    {
        void* handle = CPLCreateZip(zip.c_str(), nullptr);
        ASSERT_TRUE(handle);
        ASSERT_EQ(CPLCreateFileInZip(handle, "notes/readme.txt", nullptr), CE_None);
        const char text[] = "hello";
        ASSERT_EQ(CPLWriteFileInZip(handle, text, 5), CE_None);
        CPLCloseFileInZip(handle);
        CPLCloseZip(handle);
    }
    const auto info = run_rsi({"model", "info", zip, "--task", "scene", "--model-bands", "3", "--classes", "a,b", "--model-tile-size", "32"});
    EXPECT_EQ(info.exit_code, 1);
    EXPECT_EQ(info.err, "rsi model info: " + zip + ": not a TorchScript model package (a zip archive without a pickled module, data.pkl)\n");
    EXPECT_EQ(info.out, "");
    // torch.save's archive (data.pkl without compiled code): named as such, not asked for metadata.
    const std::string pickle = dir / "pickle.pt";
    {
        void* handle = CPLCreateZip(pickle.c_str(), nullptr);
        ASSERT_TRUE(handle);
        for (const auto& [entry, text] : {std::pair{"pickle/data.pkl", "x"}, std::pair{"pickle/version", "3\n"}}) {
            ASSERT_EQ(CPLCreateFileInZip(handle, entry, nullptr), CE_None);
            ASSERT_EQ(CPLWriteFileInZip(handle, text, static_cast<int>(std::strlen(text))), CE_None);
            CPLCloseFileInZip(handle);
        }
        CPLCloseZip(handle);
    }
    const auto pickled = run_rsi({"model", "info", pickle});
    EXPECT_EQ(pickled.exit_code, 1);
    EXPECT_NE(pickled.err.find("pickle.pt: not a TorchScript model: a PyTorch pickle without compiled code (saved with torch.save"),
              std::string::npos)
        << pickled.err;
    // Commands that load the model say the same (they asked for --task/--model-bands/... metadata).
    for (const std::vector<std::string>& args : {std::vector<std::string>{"model", "check", pickle},
                                                 std::vector<std::string>{"scene", image, "-o", dir / "s.tif", "-m", pickle}}) {
        const auto loaded = run_rsi(args);
        EXPECT_EQ(loaded.exit_code, 1) << args[0];
        EXPECT_NE(loaded.err.find("pickle.pt: not a TorchScript model: a PyTorch pickle without compiled code"), std::string::npos)
            << loaded.err;
    }
}

TEST_F(BadInput, OptionsAndOutputsThatMakeNoSense) {
    expect_failure("overlap >= tile", run_args({"--overlap", "32"}, image), 2, "overlap");
    expect_failure("tile size text", run_args({"--tile-size", "big"}, image), 2,
                   "--tile-size: expected a positive number of pixels or auto, got 'big'");
    expect_failure("tile size zero", run_args({"--tile-size", "0"}, image), 2, "--tile-size: expected a positive number");
    expect_failure("bad blend", run_args({"--blend", "nope"}, image), 2, "--blend");
    expect_failure("bad tta", run_args({"--tta", "twice"}, image), 2, "--tta");
    expect_failure("bad shard", run_args({"--shard", "4/4"}, image), 2, "--shard");
    // GeoJSON (WGS84) of an image without georeferencing: refused before the model runs, naming the
    // image (it was refused after the mask was made, naming the mask's temporary file)
    const std::string plain = dir / "plain.tif";
    test::make_raster(plain, 96, 80, 3, GDT_Byte, [](int b, int x, int y) { return (x * 5 + y * 3 * b) % 256; });
    expect_failure("geojson of pixels", run_args({"--vector", dir / "v.geojson"}, plain), 2,
                   "plain.tif: is not georeferenced, and GeoJSON is written in WGS84");
    EXPECT_FALSE(fs::exists(dir / "v.geojson"));
    EXPECT_EQ(run_rsi(run_args({"--vector", dir / "v.geojson", "--keep-crs"}, plain)).exit_code, 0);
    EXPECT_TRUE(fs::exists(dir / "v.geojson"));
    remove_out();
    fs::remove(out + ".manifest.json");
    auto no_dir = run_args({}, image);
    no_dir[3] = dir / "no/such/dir/out.tif";
    const auto r = run_rsi(no_dir);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
    auto under_file = run_args({}, image);
    under_file[3] = image + "/out.tif";  // the "directory" is a file
    EXPECT_EQ(run_rsi(under_file).exit_code, 1);
    // Existing output without --overwrite: usage error, untouched.
    std::ofstream(out) << "previous";
    const auto exists = run_rsi(run_args({}, image));
    EXPECT_EQ(exists.exit_code, 2);
    EXPECT_NE(exists.err.find("already exists"), std::string::npos) << exists.err;
    EXPECT_EQ(test::slurp(out), "previous");
    remove_out();
}

// Each case once went through with exit 0 or left an output behind: out-of-range numbers, outputs
// that clash with each other or with the input, an output the run could not have finished (its
// preview folder missing), and GDAL options rsi does not have.
TEST_F(BadInput, OutputsAndNumbersAreCheckedBeforeAnyWork) {
    expect_failure("min confidence", run_args({"--min-confidence", "2"}, image), 2, "--min-confidence");
    expect_failure("negative overlap", run_args({"--overlap", "-5"}, image), 2, "--overlap");
    expect_failure("batch 0", run_args({"--batch", "0"}, image), 2, "--batch");
    auto segment = run_args({"--probabilities", dir / "p.tif", "--probability-class", "5"}, image);
    segment[0] = "segment";
    expect_failure("probability class", segment, 2, "--probability-class 5");
    expect_failure("uncertainty alone", run_args({"--uncertainty"}, image), 2, "give --probabilities too");
    expect_failure("polygon options without polygons", run_args({"--min-area", "5"}, image), 2, "give --vector");
    expect_failure("polygon options of a shard", run_args({"--regularize", "--shard", "0/2"}, image), 2, "give them there");
    expect_failure("creation option", run_args({"--co", "NOTKV"}, image), 2, "expected KEY=VALUE");
    expect_failure("gdal -ot", run_args({"-ot", "UInt16"}, image), 2, "-ot is GDAL's option");
    expect_failure("same two outputs", run_args({"--probabilities", out}, image), 2, "two outputs of this run would be the same file");
    expect_failure("preview folder missing", run_args({"--preview", dir / "nodir/p.png"}, image), 1, "nodir does not exist");
    // An existing preview, and the output over the input, even with --overwrite: refused, input intact.
    std::ofstream(dir / "exists.png") << "x";
    expect_failure("preview exists", run_args({"--preview", dir / "exists.png"}, image), 2, "exists.png: already exists");
    const auto before = test::slurp(image);
    auto over_input = run_args({"--overwrite"}, image);
    over_input[3] = image;
    const auto r = run_rsi(over_input);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("is an input of this run"), std::string::npos) << r.err;
    EXPECT_EQ(test::slurp(image), before);
    // A failing run with --overwrite leaves the previous output as it was.
    std::ofstream(out) << "previous";
    const auto failed = run_rsi(run_args({"--overwrite", "--preview", dir / "nodir/p.png"}, image));
    EXPECT_EQ(failed.exit_code, 1) << failed.err;
    EXPECT_EQ(test::slurp(out), "previous");
    remove_out();
    // With a preview, the mask appears only with it (both under temporary names until then).
    const auto ok = run_rsi(run_args({"--preview", dir / "ok.png"}, image));
    ASSERT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_TRUE(fs::exists(out));
    EXPECT_GT(fs::file_size(dir / "ok.png"), 100u);
    remove_out();
    // The manifest is an output too: an existing one is not replaced without --overwrite.
    std::ofstream(out + ".manifest.json") << "{}";
    auto with_manifest = run_args({}, image);
    with_manifest.erase(std::find(with_manifest.begin(), with_manifest.end(), "--no-manifest"));
    expect_failure("manifest exists", with_manifest, 2, "out.tif.manifest.json: already exists");
    EXPECT_EQ(test::slurp(out + ".manifest.json"), "{}");
    fs::remove(out + ".manifest.json");
}

// Inputs other commands read are never written over, even with --overwrite (an audit found three that
// were: eval's --report, tile's --index and merge's -o); a folder where a file output goes, --of, a
// folder given as a CSV or as --from are refused up front with one line.
TEST_F(BadInput, NoCommandWritesOverItsInputsOrIntoAFolder) {
    const auto before = test::slurp(image);
    const auto refused = [&](const std::string& what, const std::vector<std::string>& args, int code, const std::string& message) {
        const auto r = run_rsi(args);
        EXPECT_EQ(r.exit_code, code) << what << ": " << r.err;
        EXPECT_NE(r.err.find(message), std::string::npos) << what << ": stderr: " << r.err;
        EXPECT_EQ(r.err_lines(), 1) << what << ": " << r.err;
        EXPECT_EQ(test::slurp(image), before) << what << " changed the input";
    };
    refused("eval report over the prediction", {"eval", image, image, "--report", image, "--overwrite", "--quiet"}, 2,
            "image.tif: is an input of this run");
    refused("tile index over the image", {"tile", image, dir / "tiles", "--tile-size", "32", "--index", image, "--overwrite", "--quiet"}, 2,
            "image.tif: is an input of this run");
    EXPECT_FALSE(fs::exists(dir / "tiles"));
    // An index named like one of the run's own tiles replaced it (and the run without --overwrite ended
    // in "appeared while this run was writing it").
    for (const bool overwrite : {false, true}) {
        std::vector<std::string> args{"tile", image, dir / "tiles", "--tile-size", "32", "--index", dir / "tiles/r0_c0.tif", "--quiet"};
        if (overwrite) args.push_back("--overwrite");
        refused("tile index named like a tile", args, 2, "tiles/r0_c0.tif: is named like a tile of OUTDIR (r<row>_c<col>)");
        EXPECT_FALSE(fs::exists(dir / "tiles"));
    }
    // Folders of inputs: a report over one of their files (scene labels: at any depth) replaced it; a
    // report already in such a folder is HTML, which no mode reads, and is replaced with --overwrite.
    fs::create_directories(dir / "preds");
    fs::create_directories(dir / "truth/sub");
    fs::copy_file(image, dir / "preds/a.tif");
    fs::copy_file(image, dir / "truth/a.tif");
    fs::copy_file(image, dir / "truth/sub/b.tif");
    for (const std::string& input : {dir / "preds/a.tif", dir / "truth/a.tif", dir / "truth/sub/b.tif"}) {
        const auto r = run_rsi({"eval", dir / "preds", dir / "truth", "--report", input, "--overwrite", "--quiet"});
        EXPECT_EQ(r.exit_code, 2) << r.err;
        EXPECT_NE(r.err.find(": is a file of the input folder "), std::string::npos) << r.err;
        EXPECT_EQ(test::slurp(input), before);
    }
    std::ofstream(dir / "preds/report.html") << "old report";
    const auto report = run_rsi({"eval", dir / "preds", dir / "truth", "--report", dir / "preds/report.html", "--overwrite", "--quiet"});
    EXPECT_EQ(report.exit_code, 0) << report.err;
    EXPECT_NE(test::slurp(dir / "preds/report.html").find("<html"), std::string::npos);
    fs::remove_all(dir / "preds");
    fs::remove_all(dir / "truth");
    // Two shards, then a merge told to write over the image they read.
    for (const char* shard : {"0/2", "1/2"}) {
        const auto r = run_rsi(run_args({"--shard", shard}, image));
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    refused("merge over the input", {"merge", out + ".parts", "-o", image, "--overwrite", "--quiet"}, 2, "image.tif: is an input of this run");
    ASSERT_TRUE(fs::exists(out + ".parts/job.json"));  // still there to merge properly
    const auto merged = run_rsi({"merge", out + ".parts", "--quiet"});
    ASSERT_EQ(merged.exit_code, 0) << merged.err;
    remove_out();
    // A folder where a file goes: refused before the model runs (it failed after, renaming onto it).
    fs::create_directories(dir / "folder.tif");
    auto into_folder = run_args({"--overwrite"}, image);
    into_folder[3] = dir / "folder.tif";
    refused("output is a folder", into_folder, 2, "folder.tif: is a folder; give a file name");
    // A model's dimensions given as 0 or less are refused (they passed for "not given": a run went ahead
    // with the model's own, or asked for the option that had been given).
    refused("model tile size 0", {"segment", image, "-o", out, "-m", fixture("no_metadata.pt"), "--task", "segmentation", "--classes",
                                  "bg,fg", "--model-bands", "3", "--model-tile-size", "0", "-q"}, 2,
            "--model-tile-size: Value 0 not in range 1 to 65536");
    refused("model bands -3", {"segment", image, "-o", out, "-m", fixture("tiny_segmenter.pt"), "--model-bands", "-3", "-q"}, 2,
            "--model-bands: Value -3 not in range 1 to 1024");
    EXPECT_FALSE(fs::exists(out));
    EXPECT_TRUE(fs::is_empty(dir / "folder.tif"));
    expect_failure("probabilities is a folder", run_args({"--probabilities", dir / "folder.tif", "--overwrite"}, image), 2,
                   "folder.tif: is a folder");
    expect_failure("--of before the work", run_args({"--of", "PNG"}, image), 2, "--of: PNG not in {GTiff,COG}");
    refused("--from a folder", {"buildings", "--from", dir / "folder.tif", "--output-dir", dir / "o", "--quiet"}, 1,
            "folder.tif: is a folder, not a list of input paths");
    refused("decode a folder", {"submit", "decode", "tianchi", dir / "folder.tif", "-o", dir / "decoded", "--quiet"}, 1,
            "folder.tif: is a folder, not a submission CSV");
    EXPECT_FALSE(fs::exists(dir / "decoded"));
}

// Several inputs into one --output-dir: two of one file name would write the same outputs (refused
// before any work); a resumed run skips only outputs its manifests show it made.
TEST_F(BadInput, SeveralInputsNamingOneOutputOrForeignOutputsAreRefused) {
    fs::create_directories(dir / "a");
    fs::create_directories(dir / "b");
    fs::copy_file(image, dir / "a/img.tif");
    fs::copy_file(image, dir / "b/img.tif");
    const std::vector<std::string> model{"-m", fixture("tiny_segmenter.pt"), "--tile-size", "32", "--overlap", "8", "-q"};
    std::vector<std::string> same{"buildings", dir / "a/img.tif", dir / "b/img.tif", "--output-dir", dir / "o"};
    same.insert(same.end(), model.begin(), model.end());
    auto r = run_rsi(same);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("would both write"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir / "o"));
    fs::create_directories(dir / "o2");
    std::ofstream(dir / "o2/img.tif") << "not this job's";
    std::vector<std::string> resume{"buildings", dir / "a/img.tif", image, "--output-dir", dir / "o2", "--resume"};
    resume.insert(resume.end(), model.begin(), model.end());
    r = run_rsi(resume);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("has no manifest"), std::string::npos) << r.err;
    EXPECT_EQ(test::slurp(dir / "o2/img.tif"), "not this job's");
    fs::remove(dir / "o2/img.tif");
    r = run_rsi(resume);  // made now, then skipped by the same job
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_rsi(resume);
    EXPECT_EQ(r.exit_code, 0) << r.err;
}

// Unusual but valid inputs run: smaller than one tile, no georeferencing (a warning; metres-based
// options refused), all nodata, NaN/Inf pixels (nodata, never buildings).
TEST_F(BadInput, UnusualInputsRunOrAreRefusedClearly) {
    const std::string tiny = dir / "tiny.tif";
    test::make_raster(tiny, 10, 7, 3, GDT_Byte, [](int b, int x, int y) { return (x * 20 + y * b) % 256; });
    auto r = run_rsi(run_args({}, tiny));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    remove_out();
    // No CRS / geotransform: runs in pixel space; --vector --min-area (metres) is refused.
    const std::string plain = dir / "plain.tif";
    test::make_raster(plain, 64, 64, 3, GDT_Byte, [](int b, int x, int y) { return (x * 9 + y * b) % 256; });
    r = run_rsi(run_args({}, plain));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    remove_out();
    expect_failure("min-area without georeferencing", run_args({"--vector", dir / "p.gpkg", "--min-area", "20"}, plain), 2,
                   "plain.tif: is not georeferenced");
    EXPECT_FALSE(fs::exists(dir / "p.gpkg"));
    // --regularize has no length: it works in pixels, as rsi vectorize does.
    r = run_rsi(run_args({"--vector", dir / "p.gpkg", "--regularize"}, plain));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(dir / "p.gpkg"));
    remove_out();
    fs::remove(out + ".manifest.json");
    // The mask is a GeoTIFF: a name other tools would open as something else is refused.
    const auto misnamed = run_rsi({"segment", plain, "-m", fixture("tiny_segmenter.pt"), "-o", dir / "mask.gpkg", "-q"});
    EXPECT_EQ(misnamed.exit_code, 2) << misnamed.err;
    EXPECT_NE(misnamed.err.find("mask.gpkg: -o is written as a GTiff (GeoTIFF) raster: name it .tif or .tiff (not .gpkg)"), std::string::npos)
        << misnamed.err;
    EXPECT_FALSE(fs::exists(dir / "mask.gpkg"));
    // All nodata: every output pixel is nodata.
    const std::string blank = dir / "blank.tif";
    test::make_raster(blank, 64, 64, 3, GDT_Byte, [](int, int, int) { return 0; });
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(blank.c_str(), GA_Update)));
        for (int b = 1; b <= 3; ++b) ds->GetRasterBand(b)->SetNoDataValue(0);
    }
    r = run_rsi(run_args({"--json"}, blank));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("\"nodata_pixels\": 4096"), std::string::npos) << r.out;
    remove_out();
    // NaN and Inf pixels are nodata.
    const std::string nan = dir / "nan.tif";
    test::make_raster(nan, 64, 64, 3, GDT_Float32, [](int, int x, int y) {
        return x < 8 ? std::numeric_limits<double>::quiet_NaN() : (y < 8 ? std::numeric_limits<double>::infinity() : (x + y) % 200);
    });
    r = run_rsi(run_args({"--json", "--resample", "off"}, nan));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("\"nodata_pixels\": " + std::to_string(8 * 64 + 56 * 8)), std::string::npos) << r.out;
    remove_out();
    // A file name that is not UTF-8 (Linux names are bytes): --json and the manifest print it with
    // U+FFFD (the JSON library threw after the mask was written, leaving it behind with exit 1).
    const std::string latin1 = dir / "lat1_\xe9.tif";
    fs::copy_file(plain, latin1);
    auto named = run_args({"--json"}, latin1);
    named.erase(std::find(named.begin(), named.end(), "--no-manifest"));
    r = run_rsi(named);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(nlohmann::json::parse(r.out)["input"].get<std::string>().find("lat1_\xef\xbf\xbd.tif"), std::string::npos) << r.out;
    EXPECT_TRUE(fs::exists(out + ".manifest.json"));
    r = run_rsi({"info", latin1, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    remove_out();
    // Georeferenced by ground control points only: the outputs carry them (they were lost), and a
    // warning says the pixels are not located with them; an error with --strict; info lists them.
    const std::string gcps = dir / "gcps.tif";
    test::make_raster(gcps, 64, 64, 3, GDT_Byte, [](int b, int x, int y) { return (x * 9 + y * b) % 256; });
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(gcps.c_str(), GA_Update)));
        GDAL_GCP points[3];
        GDALInitGCPs(3, points);
        const double px[3][4] = {{0, 0, 500000, 4000000}, {64, 0, 500019.2, 4000000}, {0, 64, 500000, 3999980.8}};
        for (int i = 0; i < 3; ++i) {
            points[i].dfGCPPixel = px[i][0];
            points[i].dfGCPLine = px[i][1];
            points[i].dfGCPX = px[i][2];
            points[i].dfGCPY = px[i][3];
        }
        OGRSpatialReference utm;
        utm.importFromEPSG(32633);
        ASSERT_EQ(ds->SetGCPs(3, points, &utm), CE_None);
        GDALDeinitGCPs(3, points);
    }
    r = run_rsi(run_args({"--json", "--probabilities", dir / "gcp_p.tif"}, gcps));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("3 ground control points but no geotransform: the raster outputs carry them"), std::string::npos) << r.out;
    for (const std::string& output : {out, dir / "gcp_p.tif"}) {
        const RasterInfo written = RasterSource::open(output).info();
        EXPECT_FALSE(written.has_geotransform) << output;
        ASSERT_EQ(written.gcps.size(), 3u) << output;
        EXPECT_EQ(written.gcps[1].pixel, 64);
        EXPECT_EQ(written.gcps[1].line, 0);
        EXPECT_EQ(written.gcps[1].x, 500019.2);
        EXPECT_EQ(written.gcps[2].y, 3999980.8);
        OGRSpatialReference srs;
        ASSERT_EQ(srs.importFromWkt(written.gcp_crs_wkt.c_str()), OGRERR_NONE) << output;
        EXPECT_STREQ(srs.GetAuthorityCode(nullptr), "32633");
    }
    remove_out();
    fs::remove(dir / "gcp_p.tif");
    fs::remove(dir / "gcp_p.tif.aux.xml");
    // Tiles carry them too, moved to each tile's origin.
    r = run_rsi({"tile", gcps, dir / "gcp_tiles", "--tile-size", "32", "--overlap", "0", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("3 ground control points but no geotransform: the tiles carry them (moved to each tile), but the index "
                         "footprints are in pixel coordinates"),
              std::string::npos) << r.out;
    const RasterInfo tile = RasterSource::open(dir / "gcp_tiles/r1_c1.tif").info();
    ASSERT_EQ(tile.gcps.size(), 3u);
    EXPECT_EQ(tile.gcps[1].pixel, 64 - 32);
    EXPECT_EQ(tile.gcps[1].line, -32);
    EXPECT_EQ(tile.gcps[1].x, 500019.2);
    EXPECT_FALSE(tile.gcp_crs_wkt.empty());
    fs::remove_all(dir / "gcp_tiles");
    expect_failure("gcps strict", run_args({"--strict"}, gcps), 1, "gcps.tif: has 3 ground control points");
    r = run_rsi({"info", gcps});
    EXPECT_NE(r.out.find("GCPs:        3"), std::string::npos) << r.out;
    // A rotated image (30 degrees, 2 m pixels): the pixel size is the length of a step, not term 1.
    const std::string rotated = dir / "rotated.tif";
    test::make_raster(rotated, 8, 8, 1, GDT_Byte, [](int, int x, int) { return x; });
    const double c = 2 * std::cos(M_PI / 6), s = 2 * std::sin(M_PI / 6);
    const double turned[6] = {500000, c, s, 4000000, s, -c};
    test::georeference(rotated, turned, 32633);
    r = run_rsi({"info", rotated});
    EXPECT_NE(r.out.find("Pixel size:  2 x 2 (lengths"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("; 30 degrees)"), std::string::npos) << r.out;
    // A GeoTIFF cut short (its header and block offsets intact): `info` reads no pixels, yet says so
    // from the block offsets (it described the file without a word); an intact file has no warning.
    const std::string whole = dir / "whole.tif", cut = dir / "cut.tif";
    test::make_raster(whole, 200, 200, 3, GDT_Byte, [](int b, int x, int y) { return (x * b + y) % 251; });
    r = run_rsi({"info", whole, "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(nlohmann::json::parse(r.out)["warnings"].empty()) << r.out;
    fs::copy_file(whole, cut);
    fs::resize_file(cut, fs::file_size(whole) / 2);
    r = run_rsi({"info", cut, "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto warnings = nlohmann::json::parse(r.out)["warnings"];
    ASSERT_EQ(warnings.size(), 1u) << r.out;
    EXPECT_NE(warnings[0].get<std::string>().find("is truncated: its blocks reach byte"), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("rsi info: warning: " + cut + ": is truncated"), std::string::npos) << r.err;
}

// What the image says its bands are, against the model's channel names: a BGR image into the RGB
// building model, or an alpha band picked as data, is said (an error with --strict); --bands fixes it.
TEST_F(BadInput, BandsDeclaredAsOtherColoursOrAlphaAreFlagged) {
    const std::string bgr = dir / "bgr.tif";
    test::make_raster(bgr, 64, 64, 4, GDT_Byte, [](int b, int x, int y) { return b == 4 ? 255 : (x * 7 + y * 3 * b) % 256; });
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(bgr.c_str(), GA_Update)));
        const GDALColorInterp order[4] = {GCI_BlueBand, GCI_GreenBand, GCI_RedBand, GCI_AlphaBand};
        for (int b = 1; b <= 4; ++b) ds->GetRasterBand(b)->SetColorInterpretation(order[b - 1]);
    }
    const double gt[6] = {500000, 0.3, 0, 4000000, 0, -0.3};
    test::georeference(bgr, gt, 32633);
    std::vector<std::string> strict{"buildings", bgr, "-o", out, "-m", "buildings", "--strict", "-q", "--no-manifest"};
    expect_failure("bgr strict", strict, 1, "band 1 is declared Blue but fills the model's red channel");
    strict.insert(strict.end(), {"--bands", "3,2,1"});
    auto r = run_rsi(strict);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    remove_out();
    r = run_rsi(run_args({"--bands", "1,2,4", "--json"}, bgr));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("band 4 is an alpha band but fills the model's b3 channel"), std::string::npos) << r.out;
    // A palette band: its colour-table indices would pass for intensities (silently, before).
    const std::string palette = dir / "palette.tif";
    test::make_raster(palette, 64, 64, 1, GDT_Byte, [](int, int x, int y) { return (x + y) % 4; });
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(palette.c_str(), GA_Update)));
        GDALColorTable table;
        for (int i = 0; i < 4; ++i) {
            const GDALColorEntry entry{static_cast<short>(60 * i), static_cast<short>(200 - 40 * i), 90, 255};
            table.SetColorEntry(i, &entry);
        }
        ds->GetRasterBand(1)->SetColorTable(&table);
        ds->GetRasterBand(1)->SetColorInterpretation(GCI_PaletteIndex);
    }
    test::georeference(palette, gt, 32633);
    r = run_rsi({"segment", palette, "-o", dir / "palette_mask.tif", "-m", "buildings", "--json", "-q", "--no-manifest"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("band 1 holds colour-table indices, not intensities: expand the palette first"), std::string::npos) << r.out;
}

// A 10^6 x 10^6 VRT: planned and streamed, never allocated. `info` plans it; `buildings` starts
// streaming and stops cleanly on SIGINT with bounded memory.
TEST_F(BadInput, AbsurdSizesArePlannedNotAllocated) {
    const std::string huge = dir / "huge.vrt";
    std::ofstream(huge) << "<VRTDataset rasterXSize=\"1000000\" rasterYSize=\"1000000\">"
                        << "<SRS>EPSG:32633</SRS><GeoTransform>500000, 0.3, 0, 4000000, 0, -0.3</GeoTransform>"
                        << "<VRTRasterBand dataType=\"Byte\" band=\"1\"/><VRTRasterBand dataType=\"Byte\" band=\"2\"/>"
                        << "<VRTRasterBand dataType=\"Byte\" band=\"3\"/></VRTDataset>\n";
    const auto info = run_rsi({"info", huge, "--json", "--tile-size", "512", "--overlap", "64"});
    ASSERT_EQ(info.exit_code, 0) << info.err;
    EXPECT_NE(info.out.find("1000000"), std::string::npos);
    // The plan is made from the sizes alone: a budget too small for one strip of this width is refused
    // up front, naming what it needs, before anything is allocated.
    const auto refused = run_rsi(run_args({"--ram", "256"}, huge));
    EXPECT_EQ(refused.exit_code, 2) << refused.err;
    const std::string advice = "(give --ram ";
    const size_t at = refused.err.find(advice);
    ASSERT_NE(refused.err.find("--ram 256 MB is too small for a 1000000-pixel-wide strip"), std::string::npos) << refused.err;
    ASSERT_NE(at, std::string::npos) << refused.err;
    const long advised = std::stol(refused.err.substr(at + advice.size()));
    EXPECT_GT(advised, 256);
    EXPECT_LT(advised, 1400);
    // With the --ram it advised it starts streaming (the advice counts GDAL's share of --ram); stopped
    // after a few seconds, its peak memory is that strip, not the image.
    std::string command = test::shell_quote(RSI_BINARY);
    for (const auto& a : run_args({"--ram", std::to_string(advised)}, huge)) command += " " + test::shell_quote(a);
    command = "/usr/bin/time -f '%M' timeout --preserve-status -s INT 8 " + command + " 2> " + test::shell_quote(dir / "err.txt");
    const int status = std::system(command.c_str());
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    const std::string err = test::slurp(dir / "err.txt");
    EXPECT_EQ(code, 130) << err;
    const long peak_kb = std::stol(err.substr(err.find_last_of('\n', err.size() - 2) + 1));
    EXPECT_LT(peak_kb, (advised + 300) * 1024) << "peak RSS " << peak_kb << " kB at --ram " << advised;
    EXPECT_FALSE(fs::exists(out));
}

// Disk full while writing (a file size limit; SIGXFSZ ignored so the write fails with EFBIG):
// a clear error, exit 1, nothing under the final name, no temporary files.
TEST_F(BadInput, DiskFullDuringWriteLeavesNoPartialOutput) {
    const std::string big = dir / "big.tif";
    test::make_raster(big, 600, 600, 3, GDT_Byte, [](int b, int x, int y) { return (x * 7 + y * 3 * b) % 256; });
    const double gt[6] = {500000, 0.3, 0, 4000000, 0, -0.3};
    test::georeference(big, gt, 32633);
    const auto [code, err] = run_with_file_size_limit(run_args({"--probabilities", dir / "p.tif"}, big), 300000);
    EXPECT_EQ(code, 1) << err;
    EXPECT_NE(err.find("p.tif"), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(fs::exists(dir / "p.tif"));
    for (const auto& f : fs::directory_iterator(dir.str())) {
        EXPECT_EQ(f.path().filename().string().find(".rsi-tmp"), std::string::npos) << f.path();
    }
}

// rsi tile with a disk that fills up after a few tiles, for the GeoTIFF template writer (tiles written
// in place, removed again) and for --resume (tiles renamed into place, finished ones kept for the
// next try): one line naming the tile, exit 1, no torn tile and no temporaries.
TEST_F(BadInput, DiskFullDuringTilingLeavesNoTornTile) {
    const std::string big = dir / "big.tif";
    test::make_raster(big, 300, 300, 3, GDT_Byte, [](int b, int x, int y) { return (x * 7 + y * 3 * b) % 256; });
    const double gt[6] = {500000, 0.3, 0, 4000000, 0, -0.3};
    test::georeference(big, gt, 32633);
    for (const bool resume : {false, true}) {
        SCOPED_TRACE(resume ? "--resume" : "plain");
        const std::string tiles = dir / (resume ? "tiles_resume" : "tiles");
        std::vector<std::string> args{"tile", big, tiles, "--tile-size", "64", "--overlap", "8", "--threads", "2", "-q"};
        if (resume) args.push_back("--resume");
        // A 64 x 64 x 3 tile is 12,288 bytes of pixels: the limit cuts the first tile's strip.
        const auto [code, err] = run_with_file_size_limit(args, 6000);
        EXPECT_EQ(code, 1) << err;
        EXPECT_NE(err.find(".tif: writing the tile failed"), std::string::npos) << err;
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
        if (!resume) {
            EXPECT_FALSE(fs::exists(tiles));  // created by this run, removed again
        }
        if (fs::exists(tiles)) {
            for (const auto& f : fs::directory_iterator(tiles)) {
                const std::string name = f.path().filename().string();
                EXPECT_EQ(name.find(".rsi-tmp"), std::string::npos) << name;
                EXPECT_NE(f.path().extension(), ".tif") << name;  // no tile fits under the limit: none may remain
            }
        }
    }
}

// Disk full while writing the polygons, after the mask and probabilities are complete: no output at
// all (the mask waits under a temporary name until the polygons are written).
TEST_F(BadInput, DiskFullDuringPolygonsLeavesNoMaskEither) {
    const std::string big = dir / "big.tif";
    test::make_raster(big, 600, 600, 3, GDT_Byte, [](int b, int x, int y) { return (x * 7 + y * 3 * b) % 256; });
    const double gt[6] = {500000, 0.3, 0, 4000000, 0, -0.3};
    test::georeference(big, gt, 32633);
    // Unlimited, the mask and the compressed probabilities stay far below the limit, the GeoJSON above it.
    const std::vector<std::string> extra{"--vector", dir / "v.geojson", "--probabilities", dir / "p.tif", "--probability-format", "byte",
                                         "--co", "COMPRESS=LZMA", "--co", "PREDICTOR=2"};
    const auto unlimited = run_rsi(run_args(extra, big));
    ASSERT_EQ(unlimited.exit_code, 0) << unlimited.err;
    const auto limit = 500000u;
    ASSERT_LT(fs::file_size(out), limit / 4);
    ASSERT_LT(fs::file_size(dir / "p.tif"), limit / 2);
    ASSERT_GT(fs::file_size(dir / "v.geojson"), 2 * limit);
    for (const char* f : {"out.tif", "out.tif.aux.xml", "p.tif", "v.geojson"}) fs::remove(dir / f);

    const auto [code, err] = run_with_file_size_limit(run_args(extra, big), limit);
    EXPECT_EQ(code, 1) << err;
    EXPECT_NE(err.find("v.geojson"), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(fs::exists(dir / "p.tif"));
    EXPECT_FALSE(fs::exists(dir / "v.geojson"));
    for (const auto& f : fs::directory_iterator(dir.str())) {
        EXPECT_EQ(f.path().filename().string().find(".rsi-tmp"), std::string::npos) << f.path();
    }
}

}  // namespace
}  // namespace rsi
