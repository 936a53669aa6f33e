// The rsi binary as users and scripts see it: exit codes, JSON on stdout, one-line errors on
// stderr, and no partial output after a failure.
#include <cmath>
#include <filesystem>
#include <limits>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli/argv_prepass.hpp"
#include "cli_runner.hpp"
#include "tiling/raster_source.hpp"

namespace fs = std::filesystem;

namespace rsi {
namespace {

using test::run_rsi;

struct SampleImage {
    test::TempDir dir;
    std::string path = dir / "sample.tif";
    SampleImage() {
        test::make_raster(path, 300, 200, 3, GDT_Byte, [](int b, int x, int y) { return (b * 40 + x + y) % 256; });
        const double gt[6] = {300000, 0.5, 0, 4100000, 0, -0.5};
        test::georeference(path, gt, 32611);
    }
};

TEST(ArgvPrepass, MapsGdalStyleOptionsToLongForms) {
    const std::vector<std::string> in{"tile", "-co", "COMPRESS=DEFLATE", "-of=PNG", "-q", "--", "-co", "-ot"};
    const std::vector<std::string> expected{"tile", "--co", "COMPRESS=DEFLATE", "--of=PNG", "-q", "--", "-co", "-ot"};
    EXPECT_EQ(cli::rewrite_gdal_style_options(in), expected);
    // GDAL options rsi does not have are refused by name (not parsed as "-o t")
    for (const char* gdal_only : {"-ot", "-lco", "-dsco", "-ot=Byte"}) {
        EXPECT_THROW(cli::rewrite_gdal_style_options({"buildings", "a.tif", gdal_only, "X"}), std::invalid_argument) << gdal_only;
    }
}

TEST(Cli, VersionNamesEveryLibrary) {
    const auto r = run_rsi({"--version"});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("rsi 0."), std::string::npos);
    EXPECT_NE(r.out.find("GDAL 3.6"), std::string::npos);
    EXPECT_NE(r.out.find("OpenCV 4.6"), std::string::npos);
    EXPECT_NE(r.out.find("LibTorch 1.13"), std::string::npos);
}

TEST(Cli, HelpEndsWithAWorkedExample) {
    const std::vector<std::vector<std::string>> commands{{"info"}, {"tile"}, {"buildings"}, {"segment"}, {"scene"},
                                                         {"vectorize"}, {"eval"}, {"model", "info"},
                                                         {"model", "check"}, {"model", "list"}, {"submit"},
                                                         {"submit", "decode"}, {"merge"}};
    for (const auto& command : commands) {
        std::vector<std::string> args = command;
        args.push_back("--help");
        const auto r = run_rsi(args);
        std::string name = "rsi";
        for (const auto& part : command) name += " " + part;
        EXPECT_EQ(r.exit_code, 0) << name;
        EXPECT_NE(r.out.find("Usage: " + name + " [OPTIONS]"), std::string::npos) << r.out;  // the full command, not "buildings"
        const auto at = r.out.rfind("Example");  // "Example:" or "Examples:"
        ASSERT_NE(at, std::string::npos) << name;
        EXPECT_NE(r.out.find(name, at), std::string::npos) << name;
    }
}

// `rsi` alone is a usage error: the help goes to stderr with exit 2 (stdout is for results; `rsi
// --help` asked for it: stdout, exit 0).
// An image whose block rows do not fit the block-cache share of --ram (4096² blocks, --ram 16 gives
// 4 MB): said once on stderr with the numbers and what to do; --quiet silences it; the run works.
TEST(Cli, HugeBlocksAgainstASmallRamAreWarnedOf) {
    test::TempDir dir;
    const std::string image = dir / "big_blocks.tif";
    test::make_raster(image, 400, 300, 3, GDT_Byte, [](int b, int x, int y) { return (x + y * b) % 256; },
                      {"TILED=YES", "BLOCKXSIZE=4096", "BLOCKYSIZE=4096"});
    const auto r = run_rsi({"tile", image, dir / "tiles", "--ram", "16"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("rsi tile: warning: " + image + ": its 4096x4096 blocks need 9 MB of block cache for two block rows, "
                         "more than --ram 16 allows (4 MB)"),
              std::string::npos)
        << r.err;
    const auto quiet = run_rsi({"tile", image, dir / "quiet", "--ram", "16", "-q"});
    ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
    EXPECT_EQ(quiet.err, "");
    const auto roomy = run_rsi({"tile", image, dir / "roomy", "--ram", "256", "-q"});
    EXPECT_EQ(roomy.err.find("warning"), std::string::npos) << roomy.err;
    // --json -q: the warning is in the summary's warnings (it was only ever printed). An image already
    // stored in tiles (wide block rows of 512² tiles) is not told to re-tile, only to give more --ram.
    EXPECT_NE(r.err.find(" or re-tile it (gdal_translate -co TILED=YES)"), std::string::npos) << r.err;
    const std::string tiled = dir / "wide_tiled.tif";
    test::make_raster(tiled, 4000, 600, 3, GDT_Byte, [](int b, int x, int y) { return (x + y * b) % 256; },
                      {"TILED=YES", "BLOCKXSIZE=512", "BLOCKYSIZE=512"});
    const auto summary = run_rsi({"tile", tiled, dir / "wide", "--ram", "16", "--json", "-q"});
    ASSERT_EQ(summary.exit_code, 0) << summary.err;
    EXPECT_EQ(summary.err, "");
    const auto warnings = nlohmann::json::parse(summary.out)["warnings"];
    ASSERT_EQ(warnings.size(), 2u) << summary.out;  // (the second: not georeferenced)
    const std::string warning = warnings[0].get<std::string>();
    EXPECT_EQ(warning.rfind(tiled + ": its 512x512 blocks need ", 0), 0u) << warning;
    EXPECT_EQ(warning.find("re-tile"), std::string::npos) << warning;
}

TEST(Cli, NoCommandIsAUsageErrorWithTheHelpOnStderr) {
    const auto bare = run_rsi({});
    EXPECT_EQ(bare.exit_code, 2);
    EXPECT_EQ(bare.out, "");
    EXPECT_NE(bare.err.find("buildings"), std::string::npos) << bare.err;
    const auto help = run_rsi({"--help"});
    EXPECT_EQ(help.exit_code, 0);
    EXPECT_NE(help.out.find("buildings"), std::string::npos) << help.out;
}

// Usage errors name the word at fault, in the order it was typed.
TEST(Cli, UsageErrorsNameTheWordAtFault) {
    const auto unknown = run_rsi({"model", "bogus"});
    EXPECT_EQ(unknown.exit_code, 2);
    EXPECT_EQ(unknown.err, "rsi model: unknown subcommand 'bogus' (expected info, check, list, convert, quantize) (see --help)\n");

    const auto extra = run_rsi({"submit", "tianchi", "a", "b", "c", "d"});
    EXPECT_EQ(extra.exit_code, 2);
    EXPECT_NE(extra.err.find("were not expected: b c d (see --help)"), std::string::npos) << extra.err;

    const auto config = run_rsi({"info", "x.tif", "--config", "ONLY"});
    EXPECT_EQ(config.exit_code, 2);
    EXPECT_NE(config.err.find("--config takes two words, KEY VALUE"), std::string::npos) << config.err;

    for (const std::string size : {"0", "-5"}) {
        const auto tile = run_rsi({"tile", "x.tif", "out", "--tile-size", size});
        EXPECT_EQ(tile.exit_code, 2) << size;
        EXPECT_NE(tile.err.find("--tile-size"), std::string::npos) << tile.err;
    }
    // An overlap above the parser's old 65536 cap is judged against the tile, as in rsi tile.
    const auto overlap = run_rsi({"buildings", "missing.tif", "-o", "out.tif", "--overlap", "70000"});
    EXPECT_EQ(overlap.exit_code, 2) << overlap.err;
    EXPECT_EQ(overlap.err, "rsi buildings: --overlap 70000 must be smaller than the tile size 512\n");
}

// A subcommand would inherit its parent's footer; `submit decode` shows decoding examples.
TEST(Cli, SubmitDecodeHelpShowsDecodingExamples) {
    const auto r = run_rsi({"submit", "decode", "--help"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("rsi submit decode spacenet"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("rsi submit inria"), std::string::npos) << r.out;
    const auto eval = run_rsi({"eval", "--help"});
    EXPECT_NE(eval.out.find("tianchi or xview2"), std::string::npos) << eval.out;
}

// rsi model convert hands its arguments to models/python/rsi_convert.py and returns its exit code.
TEST(Cli, ModelConvertRunsThePythonConverter) {
    const auto help = run_rsi({"model", "convert", "--help"});
    EXPECT_EQ(help.exit_code, 0) << help.err;
    EXPECT_NE(help.out.find("--arch"), std::string::npos) << help.out;
    test::TempDir dir;
    const auto missing = run_rsi({"model", "convert", "--arch", "rsp-resnet50", "--task", "scene", "--checkpoint", dir / "none.pth", "-o",
                                  dir / "x.pt"});
    EXPECT_NE(missing.exit_code, 0);
    EXPECT_NE(missing.err.find("none.pth"), std::string::npos) << missing.err;
    EXPECT_FALSE(std::filesystem::exists(dir / "x.pt"));
}

TEST(Cli, InfoJsonIsOneParsableObject) {
    SampleImage image;
    const auto r = run_rsi({"info", image.path, "--tile-size", "128", "--overlap", "28", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["width"], 300);
    EXPECT_EQ(j["height"], 200);
    EXPECT_EQ(j["band_count"], 3);
    EXPECT_EQ(j["crs"]["epsg"], 32611);
    EXPECT_EQ(j["geotransform"][0], 300000.0);
    EXPECT_EQ(j["tiling"]["cols"], 3);  // stride 100: 0,100,200 (shifted to 172)
    EXPECT_EQ(j["tiling"]["rows"], 2);
    EXPECT_EQ(j["tiling"]["tiles"], 6);
    EXPECT_NEAR(j["tiling"]["overlap_factor"].get<double>(), 6.0 * 128 * 128 / (300.0 * 200.0), 1e-12);
    EXPECT_EQ(j["pixel_size_m"], nlohmann::json({0.5, 0.5}));  // a UTM zone's own metres
    EXPECT_EQ(j["pixel_size_on_ellipsoid"], false);
    EXPECT_TRUE(r.err.empty()) << r.err;
}

// Web Mercator at 60 N: 10 map units are about 5 m of ground (they were reported as 10 m, so maps
// were resampled and areas counted 4x).
TEST(Cli, InfoMeasuresWebMercatorOnTheEllipsoid) {
    test::TempDir dir;
    const std::string path = dir / "mercator.tif";
    test::make_raster(path, 8, 8, 1, GDT_Byte, [](int, int x, int) { return x; });
    const double gt[6] = {1113195, 10, 0, 8399738 + 40, 0, -10};
    test::georeference(path, gt, 3857);
    const auto r = run_rsi({"info", path, "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_NEAR(j["pixel_size_m"][0].get<double>(), 5.0, 0.05);
    EXPECT_NEAR(j["pixel_size_m"][1].get<double>(), 5.0, 0.05);
    EXPECT_EQ(j["pixel_size_on_ellipsoid"], true);
    const auto text = run_rsi({"info", path});
    EXPECT_NE(text.out.find(" m per pixel (on the ellipsoid: the projection is far from true scale here)\n"), std::string::npos) << text.out;
}

// JSON has no NaN or infinity: such nodata values are strings, never null (which means "none").
TEST(Cli, InfoJsonNamesNonFiniteNodata) {
    test::TempDir dir;
    int k = 0;
    const double inf = std::numeric_limits<double>::infinity();
    for (const auto& [nodata, value] : std::vector<std::pair<double, std::string>>{{inf, "inf"}, {-inf, "-inf"}, {std::nan(""), "nan"}}) {
        const std::string path = dir / ("f" + std::to_string(k++) + ".tif");
        test::make_raster(path, 8, 8, 1, GDT_Float32, [](int, int x, int) { return x; });
        {
            DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(path.c_str(), GA_Update)));
            ASSERT_TRUE(ds);
            ds->GetRasterBand(1)->SetNoDataValue(nodata);
        }
        const auto r = run_rsi({"info", path, "--json"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(nlohmann::json::parse(r.out)["bands"][0]["nodata"], value) << r.out;
    }
}

// The text report explains a large overlap factor that comes from a padded tile, not from overlap.
TEST(Cli, InfoSaysWhenTheImageIsSmallerThanATile) {
    SampleImage image;  // 300 x 200
    const auto small = run_rsi({"info", image.path, "--tile-size", "256", "--overlap", "0"});
    ASSERT_EQ(small.exit_code, 0) << small.err;
    EXPECT_NE(small.out.find("Overlap factor: 2.185 (tile pixels processed / image pixels; tiles are padded where the image is smaller than one tile)"),
              std::string::npos) << small.out;  // 2 tiles of 256 x 256 over 300 x 200
    const auto fits = run_rsi({"info", image.path, "--tile-size", "128", "--overlap", "28"});
    ASSERT_EQ(fits.exit_code, 0) << fits.err;
    EXPECT_NE(fits.out.find("Overlap factor: 1.638 (tile pixels processed / image pixels)\n"), std::string::npos) << fits.out;
}

TEST(Cli, TileWritesTilesJsonAndHonoursCreationOptions) {
    SampleImage image;
    const std::string out = image.dir / "tiles";
    const auto r = run_rsi({"tile", image.path, out, "--tile-size", "128", "--overlap", "28", "-co", "COMPRESS=DEFLATE",
                            "--json", "--quiet"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["tiles_written"], 6);
    EXPECT_TRUE(fs::exists(out + "/r1_c2.tif"));
    EXPECT_TRUE(fs::exists(out + "/index.geojson"));
    EXPECT_TRUE(fs::exists(out + "/index.csv"));
    DatasetPtr ds(GDALDataset::FromHandle(GDALOpen((out + "/r0_c0.tif").c_str(), GA_ReadOnly)));
    ASSERT_TRUE(ds);
    EXPECT_STREQ(ds->GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE"), "DEFLATE");
    EXPECT_TRUE(r.err.empty()) << "--quiet: " << r.err;
}

TEST(Cli, ConfigOptionsReachGdal) {
    SampleImage image;
    ASSERT_EQ(run_rsi({"tile", image.path, image.dir / "pam", "--format", "PNG", "--tile-size", "128", "-q"}).exit_code, 0);
    EXPECT_TRUE(fs::exists(image.dir / "pam/r0_c0.png.aux.xml"));  // GDAL's PAM sidecar carries the CRS
    ASSERT_EQ(run_rsi({"tile", image.path, image.dir / "nopam", "--format", "PNG", "--tile-size", "128", "-q", "--config",
                       "GDAL_PAM_ENABLED", "NO"}).exit_code, 0);
    EXPECT_TRUE(fs::exists(image.dir / "nopam/r0_c0.png"));
    EXPECT_FALSE(fs::exists(image.dir / "nopam/r0_c0.png.aux.xml"));
}

TEST(Cli, ProgressGoesToStderrWithAnEta) {
    SampleImage image;
    const auto r = run_rsi({"tile", image.path, image.dir / "p", "--tile-size", "64", "--overlap", "0"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("ETA"), std::string::npos) << r.err;
    EXPECT_NE(r.out.find("wrote 20 of 20 tiles"), std::string::npos) << r.out;
}

// --co replaces rsi's own creation defaults (tiled 256², DEFLATE) rather than adding a second value of
// the same key, which GDAL would ignore.
TEST(Cli, CreationOptionsReplaceTheDefaults) {
    SampleImage image;
    const std::string out = image.dir / "mask.tif";
    const auto r = run_rsi({"segment", image.path, "-o", out, "-m", std::string(RSI_FIXTURES_DIR) + "/tiny_segmenter.pt", "--tile-size", "64",
                            "--overlap", "8", "--co", "COMPRESS=LZW", "-co", "TILED=NO", "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    DatasetPtr ds = open_raster(out);
    const char* compression = ds->GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE");
    ASSERT_NE(compression, nullptr);
    EXPECT_STREQ(compression, "LZW");
    int block_x = 0, block_y = 0;
    ds->GetRasterBand(1)->GetBlockSize(&block_x, &block_y);
    EXPECT_EQ(block_x, 300) << "TILED=NO: strips as wide as the image";
}

// The probability raster keeps the layout asked for whatever else the run writes (polygons read their
// class's band from it), and Byte probabilities mark nodata as 255 (0..254 hold 0..1).
TEST(Cli, ProbabilityLayoutAndByteNodata) {
    SampleImage image;
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(image.path.c_str(), GA_Update)));
        ASSERT_TRUE(ds);
        std::vector<uint8_t> zeros(50 * 200, 0);
        for (int b = 1; b <= 3; ++b) {
            ds->GetRasterBand(b)->SetNoDataValue(0);
            ASSERT_EQ(ds->GetRasterBand(b)->RasterIO(GF_Write, 0, 0, 50, 200, zeros.data(), 50, 200, GDT_Byte, 0, 0), CE_None);
        }
    }
    const std::string model = std::string(RSI_FIXTURES_DIR) + "/tiny_segmenter.pt";
    const std::vector<std::string> common{"--tile-size", "64", "--overlap", "8", "-m", model, "-q", "--probability-class", "1",
                                          "--uncertainty", "--probability-format", "byte"};
    std::vector<std::string> plain{"segment", image.path, "-o", image.dir / "a.tif", "--probabilities", image.dir / "ap.tif"};
    plain.insert(plain.end(), common.begin(), common.end());
    std::vector<std::string> with_vector{"segment", image.path, "-o", image.dir / "b.tif", "--probabilities", image.dir / "bp.tif",
                                         "--vector", image.dir / "b.geojson"};
    with_vector.insert(with_vector.end(), common.begin(), common.end());
    for (const auto& args : {plain, with_vector}) {
        const auto r = run_rsi(args);
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    for (const char* name : {"ap.tif", "bp.tif"}) {
        DatasetPtr p = open_raster(image.dir / name);
        ASSERT_EQ(p->GetRasterCount(), 2) << name << ": the class's band and entropy, with or without --vector";
        int has_nodata = 0;
        EXPECT_EQ(p->GetRasterBand(1)->GetNoDataValue(&has_nodata), 255.0) << name;
        EXPECT_TRUE(has_nodata) << name;
        uint8_t corner = 0, inside = 0;
        ASSERT_EQ(p->GetRasterBand(1)->RasterIO(GF_Read, 10, 10, 1, 1, &corner, 1, 1, GDT_Byte, 0, 0), CE_None);
        ASSERT_EQ(p->GetRasterBand(1)->RasterIO(GF_Read, 200, 100, 1, 1, &inside, 1, 1, GDT_Byte, 0, 0), CE_None);
        EXPECT_EQ(corner, 255) << name << ": nodata pixel";
        EXPECT_LE(inside, 254) << name;
    }
    EXPECT_EQ(test::slurp(image.dir / "ap.tif").size(), test::slurp(image.dir / "bp.tif").size());
}

struct BadCase {
    std::vector<std::string> args;
    int exit_code;
    std::string message;  // part of the one-line error
};

TEST(Cli, BadInputsGiveOneLineErrorsExitCodesAndNoOutput) {
    SampleImage image;
    const std::string text = image.dir / "notes.tif";
    { std::ofstream(text) << "hello\n"; }
    const std::string truncated = image.dir / "cut.tif";
    test::make_raster(truncated, 512, 512, 1, GDT_Byte, [](int, int x, int y) { return (x * y) % 256; });
    fs::resize_file(truncated, fs::file_size(truncated) / 3);
    const std::string out = image.dir / "out";
    const std::vector<BadCase> cases{
        {{"tile", image.dir / "missing.tif", out}, 1, "missing.tif: no such file"},
        {{"tile", text, out}, 1, "notes.tif: not a raster"},
        {{"tile", truncated, out, "--tile-size", "128"}, 1, "cut.tif: is truncated: its blocks reach byte"},
        {{"tile", image.path, out, "--tile-size", "256", "--overlap", "256"}, 2, "--overlap 256 must be smaller"},
        {{"tile", image.path, out, "--bands", "1,4"}, 2, "band 4 does not exist (the image has 3 bands)"},
        {{"tile", image.path, out, "--bands", "x"}, 2, "is not a band list"},
        {{"tile", image.path, out, "--edge", "wrap"}, 2, "unknown edge policy"},
        {{"tile", image.path, out, "--scale", "percentile:99,1"}, 2, "--scale"},
        {{"tile", image.path, out, "--no-such-option"}, 2, "no-such-option"},
        {{"info", image.dir / "missing.tif"}, 1, "no such file"},
        {{"tile", image.path}, 2, "OUTDIR"},
    };
    for (BadCase c : cases) {
        c.args.push_back("--quiet");  // progress lines aside, stderr holds the error alone
        const auto r = run_rsi(c.args);
        EXPECT_EQ(r.exit_code, c.exit_code) << c.message << ": " << r.err;
        EXPECT_NE(r.err.find(c.message), std::string::npos) << "stderr: " << r.err;
        EXPECT_EQ(r.err_lines(), 1) << r.err;
        EXPECT_FALSE(fs::exists(out)) << c.message << " left output behind";
    }
}

TEST(Cli, ExistingOutputIsNeverOverwrittenWithoutOverwrite) {
    SampleImage image;
    const std::string out = image.dir / "tiles";
    ASSERT_EQ(run_rsi({"tile", image.path, out, "-q"}).exit_code, 0);
    const auto before = fs::last_write_time(out + "/r0_c0.tif");
    const auto again = run_rsi({"tile", image.path, out, "-q"});
    EXPECT_EQ(again.exit_code, 2);
    EXPECT_NE(again.err.find("--overwrite"), std::string::npos);
    EXPECT_EQ(fs::last_write_time(out + "/r0_c0.tif"), before);
    EXPECT_EQ(run_rsi({"tile", image.path, out, "-q", "--overwrite"}).exit_code, 0);
}

}  // namespace
}  // namespace rsi
