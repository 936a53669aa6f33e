// Competition submissions: every format against its hand-written golden file (tests/golden/submit,
// sources cited there), round trips, validation and bad input.
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "src/csv_table.hpp"
#include "src/submission.hpp"
#include "src/submission_csv.hpp"
#include "src/tianchi_rle.hpp"
#include "test_support.hpp"
#include "tiling/error.hpp"

namespace fs = std::filesystem;
using namespace rsi;
using rsi::test::TempDir;

namespace {

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string golden(const std::string& name) { return std::string(RSI_GOLDEN_DIR) + "/submit/" + name; }

// A Byte mask at `path` whose pixel (x, y) is value(x, y).
template <typename Fn>
std::string mask(const std::string& path, int width, int height, Fn value) {
    rsi::test::make_raster(path, width, height, 1, GDT_Byte, [&](int, int x, int y) { return value(x, y); });
    return path;
}

std::vector<uint8_t> read_pixels(const std::string& path, int* width = nullptr, int* height = nullptr) {
    DatasetPtr ds = open_raster(path);
    const int w = ds->GetRasterXSize(), h = ds->GetRasterYSize();
    if (width) *width = w;
    if (height) *height = h;
    std::vector<uint8_t> out(static_cast<size_t>(w) * static_cast<size_t>(h));
    EXPECT_EQ(ds->GetRasterBand(1)->RasterIO(GF_Read, 0, 0, w, h, out.data(), w, h, GDT_Byte, 0, 0), CE_None);
    return out;
}

// Compares every file a golden entry names with what was written in `dir`.
void expect_matches_golden(const std::string& dir, const std::string& entry) {
    std::ifstream in(golden("images.json"));
    const nlohmann::json doc = nlohmann::json::parse(in);
    const nlohmann::json& e = doc.at(entry);
    size_t expected_files = e.at("files").size() + (e.contains("class_table") ? 1 : 0);
    size_t present = 0;
    for (const auto& f : fs::directory_iterator(dir)) present += f.is_regular_file();
    EXPECT_EQ(present, expected_files) << entry;
    for (const auto& f : e.at("files")) {
        const std::string path = dir + "/" + f.at("name").get<std::string>();
        ASSERT_TRUE(fs::exists(path)) << path;
        DatasetPtr ds = open_raster(path);
        EXPECT_EQ(std::string(ds->GetDriver()->GetDescription()), f.at("driver").get<std::string>()) << path;
        EXPECT_EQ(ds->GetRasterCount(), 1);
        EXPECT_EQ(ds->GetRasterBand(1)->GetRasterDataType(), GDT_Byte);
        int w = 0, h = 0;
        const std::vector<uint8_t> pixels = read_pixels(path, &w, &h);
        EXPECT_EQ(w, f.at("width").get<int>());
        EXPECT_EQ(h, f.at("height").get<int>());
        if (f.contains("pixels")) {
            std::vector<uint8_t> want;
            for (const auto& row : f.at("pixels")) {
                for (const auto& v : row) want.push_back(v.get<uint8_t>());
            }
            EXPECT_EQ(pixels, want) << path;
        }
        if (f.contains("counts")) {
            std::map<std::string, int64_t> counts;
            for (uint8_t v : pixels) ++counts[std::to_string(v)];
            std::map<std::string, int64_t> want;
            for (const auto& [k, v] : f.at("counts").items()) want[k] = v.get<int64_t>();
            EXPECT_EQ(counts, want) << path;
        }
        if (f.contains("geotransform")) {
            double gt[6];
            ASSERT_EQ(ds->GetGeoTransform(gt), CE_None);
            for (int i = 0; i < 6; ++i) EXPECT_DOUBLE_EQ(gt[i], f.at("geotransform")[static_cast<size_t>(i)].get<double>());
            EXPECT_NE(std::string(ds->GetProjectionRef()), "");
        }
    }
    if (e.contains("class_table")) {
        EXPECT_EQ(read_text(dir + "/class_table.csv"), e.at("class_table").get<std::string>());
    }
}

// The golden Tianchi input: a.jpg square at rows 1-2, columns 3-4; b.jpg empty; c.jpg first column.
std::vector<SubmissionItem> tianchi_items(const TempDir& tmp) {
    return {{"c.jpg", mask(tmp / "c.png", 512, 512, [](int x, int) { return x == 0 ? 255 : 0; })},
            {"a.jpg", mask(tmp / "a.png", 512, 512, [](int x, int y) { return y >= 1 && y <= 2 && x >= 3 && x <= 4 ? 1 : 0; })},
            {"b.jpg", mask(tmp / "b.png", 512, 512, [](int, int) { return 0; })}};
}

// The three Tianchi images as submission.csv, zipped into submission.zip.
SubmissionOptions tianchi_submission(const TempDir& tmp) {
    SubmissionOptions o;
    o.format = SubmissionFormat::tianchi;
    o.items = tianchi_items(tmp);
    o.output = tmp / "submission.csv";
    o.zip = tmp / "submission.zip";
    return o;
}

// Every file under `dir` (relative name -> bytes).
std::map<std::string, std::string> folder_bytes(const std::string& dir) {
    std::map<std::string, std::string> out;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
        if (entry.is_regular_file()) out[fs::relative(entry.path(), dir).string()] = read_text(entry.path().string());
    }
    return out;
}

// `n` binary masks of different sizes (so that shards balance by pixel count) and shapes.
std::vector<SubmissionItem> varied_items(const TempDir& tmp, int n, int fixed_size = 0, const std::string& prefix = "img") {
    std::vector<SubmissionItem> items;
    for (int i = 0; i < n; ++i) {
        const int size = fixed_size ? fixed_size : 8 + 4 * ((i * 5) % 7);
        const std::string name = prefix + std::to_string(i) + ".png";
        items.push_back({name, mask(tmp / ("mask_" + std::to_string(i) + ".tif"), size, size, [i, size](int x, int y) {
                             return i % 3 == 2 ? 0 : ((x / 3 + y / 2 + i) % 4 == 0 && x < size - 1 ? 1 : 0);
                         })});
    }
    return items;
}

// A mask maker like the model's: makes a scratch copy of the item's mask and counts its calls.
MaskMaker copying_mask_maker(int& calls) {
    return [&calls](const SubmissionItem& item) {
        ++calls;
        const std::string scratch = "/vsimem/scratch_" + std::to_string(calls) + ".tif";
        DatasetPtr src = open_raster(item.mask);
        DatasetPtr copy(GetGDALDriverManager()->GetDriverByName("GTiff")->CreateCopy(scratch.c_str(), src.get(), FALSE, nullptr, nullptr,
                                                                                     nullptr));
        return scratch;
    };
}

std::vector<SubmissionItem> spacenet_items(const TempDir& tmp) {
    return {{"b.png", mask(tmp / "b.tif", 8, 8, [](int, int) { return 0; })},
            {"a.png", mask(tmp / "a.tif", 8, 8, [](int x, int y) {
                 return (y >= 1 && y <= 2 && x >= 3 && x <= 4) || (x == 0 && y == 5) || (x == 1 && y == 6) ? 1 : 0;
             })}};
}

}  // namespace

TEST(Submission, TianchiMatchesGoldenFileAndDecodesBack) {
    TempDir tmp;
    const SubmissionOptions o = tianchi_submission(tmp);
    const SubmissionResult r = write_submission(o);
    EXPECT_EQ(r.images, 3);
    EXPECT_EQ(r.empty_images, 1);
    EXPECT_EQ(r.validation.rows, 3);
    EXPECT_EQ(read_text(o.output), read_text(golden("tianchi.csv")));
    // The zip holds exactly the CSV.
    VSILFILE* f = VSIFOpenL(("/vsizip/" + o.zip + "/submission.csv").c_str(), "rb");
    ASSERT_NE(f, nullptr);
    std::string zipped(4096, '\0');
    zipped.resize(VSIFReadL(zipped.data(), 1, zipped.size(), f));
    VSIFCloseL(f);
    EXPECT_EQ(zipped, read_text(golden("tianchi.csv")));
    // Entry dates: 1980-01-01 00:00 in the central directory and the local header (GDAL leaves 0,
    // an invalid 1980-00-00). DOS date at offset 12 of the local header, 14 of the central entry.
    const std::string zip_bytes = read_text(o.zip);
    const size_t central = zip_bytes.find(std::string("PK\x01\x02", 4));
    ASSERT_NE(central, std::string::npos);
    EXPECT_EQ(zip_bytes.substr(12, 2), std::string("\x21\x00", 2));
    EXPECT_EQ(zip_bytes.substr(central + 14, 2), std::string("\x21\x00", 2));

    // Round trip: decode gives the input masks back (foreground 1).
    DecodeOptions d;
    d.input = o.output;
    d.output_dir = tmp / "decoded";
    d.foreground = 1;
    EXPECT_EQ(decode_submission(d).images, 3);
    for (const auto& item : o.items) {
        std::vector<uint8_t> original = read_pixels(item.mask);
        for (uint8_t& v : original) v = v != 0;
        EXPECT_EQ(read_pixels(d.output_dir + "/" + fs::path(item.name).stem().string() + ".png"), original) << item.name;
    }
}

// The zip packs the submission's files before either is renamed into place; a zip another run wrote
// meanwhile fails the run (a runtime error naming it) before the submission gets its name, for a CSV
// and a folder alike.
TEST(Submission, AZipWrittenMeanwhileLeavesNoSubmission) {
    TempDir tmp;
    const SubmissionOptions o = tianchi_submission(tmp);
    SubmissionOptions folder = o;
    folder.format = SubmissionFormat::inria;
    folder.items = {{"city1.tif", mask(tmp / "in.tif", 4, 3, [](int x, int y) { return (x + y) % 2; })}};
    folder.output = tmp / "inria";
    const std::vector<std::string> inputs = rsi::test::names_in_folder(tmp.str());
    bool written = false;
    const auto other_run_writes_the_zip = [&](double, std::string_view) {
        if (!written) std::ofstream(o.zip) << "theirs";
        written = true;
        return true;
    };
    rsi::test::expect_error([&] { write_submission(o, other_run_writes_the_zip); }, ErrorKind::runtime,
                            "submission.zip: appeared while this run was writing it");
    EXPECT_FALSE(fs::exists(o.output));
    EXPECT_EQ(read_text(o.zip), "theirs");
    fs::remove(o.zip);
    EXPECT_EQ(rsi::test::names_in_folder(tmp.str()), inputs);
    written = false;
    rsi::test::expect_error([&] { write_submission(folder, other_run_writes_the_zip); }, ErrorKind::runtime,
                            "submission.zip: appeared while this run was writing it");
    EXPECT_FALSE(fs::exists(folder.output));
    fs::remove(o.zip);
    EXPECT_EQ(rsi::test::names_in_folder(tmp.str()), inputs);
}

TEST(Submission, SpacenetMatchesGoldenFileAndDecodesBack) {
    TempDir tmp;
    SubmissionOptions o;
    o.format = SubmissionFormat::spacenet;
    o.items = spacenet_items(tmp);
    o.output = tmp / "proposals.csv";
    const SubmissionResult r = write_submission(o);
    EXPECT_EQ(r.objects, 3);
    EXPECT_EQ(read_text(o.output), read_text(golden("spacenet.csv")));
    DecodeOptions d;
    d.format = SubmissionFormat::spacenet;
    d.input = o.output;
    d.output_dir = tmp / "decoded";
    d.width = d.height = 8;
    d.foreground = 1;
    EXPECT_EQ(decode_submission(d).images, 2);
    for (const auto& item : o.items) {
        EXPECT_EQ(read_pixels(d.output_dir + "/" + fs::path(item.name).stem().string() + ".png"), read_pixels(item.mask)) << item.name;
    }
}

TEST(Submission, SpacenetRoundTripKeepsHolesAndMinAreaDropsSmallPolygons) {
    TempDir tmp;
    // A 5x5 ring (hole in the middle) and a single pixel.
    const std::string m = mask(tmp / "ring.tif", 12, 12, [](int x, int y) {
        const bool ring = x >= 2 && x <= 6 && y >= 2 && y <= 6 && !(x == 4 && y == 4);
        return ring || (x == 10 && y == 10) ? 1 : 0;
    });
    SubmissionOptions o;
    o.format = SubmissionFormat::spacenet;
    o.items = {{"ring.png", m}};
    o.output = tmp / "p.csv";
    write_submission(o);
    DecodeOptions d;
    d.format = SubmissionFormat::spacenet;
    d.input = o.output;
    d.output_dir = tmp / "dec";
    d.width = d.height = 12;
    d.foreground = 1;
    decode_submission(d);
    EXPECT_EQ(read_pixels(d.output_dir + "/ring.png"), read_pixels(m));
    o.output = tmp / "p2.csv";
    o.min_area_px = 2;
    EXPECT_EQ(write_submission(o).objects, 1);  // the single pixel is left out
    // An image whose every building is below --min-area gets the empty row, and counts as empty.
    o.items = {{"ring.png", m}, {"dot.png", mask(tmp / "dot.tif", 12, 12, [](int x, int y) { return x == 3 && y == 3 ? 1 : 0; })}};
    o.output = tmp / "p3.csv";
    const SubmissionResult r = write_submission(o);
    EXPECT_EQ(r.empty_images, 1);
    EXPECT_EQ(r.objects, 1);
    EXPECT_NE(read_text(o.output).find("dot,-1,POLYGON EMPTY,1\n"), std::string::npos) << read_text(o.output);
}

// A Tianchi row is name<TAB>RLE read back by quote-aware CSV readers: a name with a quote, a tab or a
// line break is refused before anything is written (it was written, then failed its own read-back
// with "text after a closing quote" naming the output).
TEST(Submission, TianchiNamesThatCannotReadBackAreRefused) {
    TempDir tmp;
    SubmissionOptions o = tianchi_submission(tmp);
    o.items.front().name = "a\"quoted\".png";
    rsi::test::expect_error([&] { write_submission(o); }, ErrorKind::usage,
                            "a\"quoted\".png: a Tianchi image name cannot hold a tab, a line break or a double quote");
    EXPECT_FALSE(fs::exists(o.output));
}

// Outputs never replace inputs, and a decoded CSV cannot write outside its folder or smuggle in
// shapes the contest does not have.
TEST(Submission, OutputsAreNeverInputsAndDecodeRefusesForeignRows) {
    TempDir tmp;
    fs::create_directories(tmp / "masks");
    const std::string m = mask(tmp / "masks/a.tif", 8, 8, [](int x, int y) { return x > 2 && y > 2 ? 1 : 0; });
    SubmissionOptions o;
    o.format = SubmissionFormat::spacenet;
    o.items = {{"a.png", m}};
    o.output = m;  // the CSV over the mask
    o.overwrite = true;
    rsi::test::expect_error([&] { write_submission(o); }, ErrorKind::usage, "is an input of this run");
    o.output = tmp / "s.csv";
    o.zip = tmp / "s.csv";  // the zip over the CSV
    rsi::test::expect_error([&] { write_submission(o); }, ErrorKind::usage, "would be the same file");
    EXPECT_FALSE(fs::exists(tmp / "s.csv"));
    SubmissionOptions folder = o;
    folder.format = SubmissionFormat::inria;
    folder.output = tmp / "masks";  // a result folder replacing the folder of its inputs
    folder.zip.clear();
    rsi::test::expect_error([&] { write_submission(folder); }, ErrorKind::usage, "holds the input");
    EXPECT_TRUE(fs::exists(m));
    const auto decode = [&](const std::string& csv_text) {
        std::ofstream(tmp / "rows.csv") << "ImageId,BuildingId,PolygonWKT_Pix,Confidence\n" << csv_text;
        DecodeOptions d;
        d.format = SubmissionFormat::spacenet;
        d.input = tmp / "rows.csv";
        d.output_dir = tmp / "dec";
        d.width = d.height = 8;
        decode_submission(d);
    };
    rsi::test::expect_error([&] { decode("../escaped,1,\"POLYGON ((1 1,2 1,2 2,1 2,1 1))\",1\n"); }, ErrorKind::runtime,
                            "ImageId '../escaped' is not a file name");
    rsi::test::expect_error([&] { decode("a,1,\"LINESTRING (1 1,2 2)\",1\n"); }, ErrorKind::runtime, "is a Line String, not a polygon");
    rsi::test::expect_error([&] { decode("a,1,\"POLYGON ((1 1,12 1,12 2,1 2,1 1))\",1\n"); }, ErrorKind::runtime,
                            "reaches beyond the image size 8x8");
    EXPECT_FALSE(fs::exists(tmp / "dec"));
    EXPECT_FALSE(fs::exists(tmp.str() + "/escaped.png"));
    DecodeOptions over;
    over.format = SubmissionFormat::spacenet;
    over.input = tmp / "dec2/rows.csv";
    fs::create_directories(tmp / "dec2");
    fs::copy_file(tmp / "rows.csv", over.input);
    over.output_dir = tmp / "dec2";
    over.overwrite = true;
    over.width = over.height = 8;
    rsi::test::expect_error([&] { decode_submission(over); }, ErrorKind::usage, "holds the input");
}

// SpaceNet's truth names images from "AOI_" on; the product prefix of the image files is not part of it.
TEST(Submission, SpacenetImageIdsStartAtTheAoi) {
    TempDir tmp;
    const std::string m = mask(tmp / "m.tif", 4, 4, [](int x, int y) { return x < 2 && y < 2 ? 1 : 0; });
    SubmissionOptions o;
    o.format = SubmissionFormat::spacenet;
    o.items = {{"RGB-PanSharpen_AOI_2_Vegas_img7.tif", m}, {"plain_name.tif", m}, {"MAOI_x.tif", m}};
    o.output = tmp / "s.csv";
    write_submission(o);
    const std::string csv = read_text(o.output);
    EXPECT_NE(csv.find("\nAOI_2_Vegas_img7,1,"), std::string::npos) << csv;
    EXPECT_NE(csv.find("\nplain_name,1,"), std::string::npos) << csv;
    EXPECT_NE(csv.find("\nMAOI_x,1,"), std::string::npos) << csv;  // "AOI_" inside a word is not the area
    EXPECT_EQ(csv.find("RGB-PanSharpen"), std::string::npos) << csv;
    // Two images of one ImageId (the RGB and MUL products of one chip) are refused by name, before any
    // work (the error was "BuildingId repeats within AOI_2_Vegas_img7" from the validation).
    o.items = {{"RGB-PanSharpen_AOI_2_Vegas_img7.tif", m}, {"MUL-PanSharpen_AOI_2_Vegas_img7.tif", m}};
    o.output = tmp / "twice.csv";
    rsi::test::expect_error([&] { write_submission(o); }, ErrorKind::usage,
                            "MUL-PanSharpen_AOI_2_Vegas_img7.tif and RGB-PanSharpen_AOI_2_Vegas_img7.tif have the same SpaceNet ImageId "
                            "AOI_2_Vegas_img7");
    EXPECT_FALSE(std::filesystem::exists(o.output));
}

TEST(Submission, ImageFormatsMatchGolden) {
    TempDir tmp;
    ensure_gdal_registered();
    {  // inria: 0/1 mask -> 0/255 GeoTIFF keeping the georeferencing
        const std::string m = mask(tmp / "in.tif", 4, 3, [](int x, int y) {
            const int v[3][4] = {{0, 1, 1, 0}, {0, 0, 1, 0}, {1, 0, 0, 0}};
            return v[y][x];
        });
        const double gt[6] = {500000, 0.3, 0, 4000000, 0, -0.3};
        rsi::test::georeference(m, gt, 32618);
        SubmissionOptions o;
        o.format = SubmissionFormat::inria;
        o.items = {{"bellingham1.tif", m}};
        o.output = tmp / "inria";
        write_submission(o);
        expect_matches_golden(o.output, "inria");
    }
    for (const bool damage : {false, true}) {  // xview2
        const std::string m = mask(tmp / (damage ? "dmg.tif" : "loc.tif"), 1024, 1024, [&](int x, int y) {
            if (x < 200 || x >= 210 || y < 100 || y >= 110) return 0;
            return damage ? 1 + ((y - 100) * 10 + (x - 200)) / 25 : 1;  // 25 pixels each of damage 1-4
        });
        SubmissionOptions o;
        o.format = SubmissionFormat::xview2;
        o.xview2_damage = damage;
        o.items = {{"test_pre_00042.png", m}};
        o.output = tmp / (damage ? "xview2_damage" : "xview2");
        write_submission(o);
        expect_matches_golden(o.output, damage ? "xview2_damage" : "xview2");
    }
    {  // loveda
        const std::string m = mask(tmp / "lv.tif", 3, 3, [](int x, int y) {
            const int v[3][3] = {{0, 1, 2}, {3, 4, 5}, {6, 6, 0}};
            return v[y][x];
        });
        SubmissionOptions o;
        o.format = SubmissionFormat::loveda;
        o.items = {{"2522.png", m}};
        o.output = tmp / "loveda";
        write_submission(o);
        expect_matches_golden(o.output, "loveda");
        // Ground-truth style labels 1..7 map down with --map.
        const std::string truth_style = mask(tmp / "lv7.tif", 3, 3, [](int x, int y) {
            const int v[3][3] = {{1, 2, 3}, {4, 5, 6}, {7, 7, 1}};
            return v[y][x];
        });
        o.items = {{"2522.png", truth_style}};
        o.output = tmp / "loveda_mapped";
        o.value_map = {{1, 0}, {2, 1}, {3, 2}, {4, 3}, {5, 4}, {6, 5}, {7, 6}};
        write_submission(o);
        expect_matches_golden(o.output, "loveda");
    }
    {  // gaofen
        const std::string b = mask(tmp / "gb.tif", 3, 2, [](int x, int y) { return (y == 0 && x == 1) || (y == 1 && x < 2) ? 1 : 0; });
        SubmissionOptions o;
        o.format = SubmissionFormat::gaofen;
        o.items = {{"17.tif", b}};
        o.output = tmp / "gaofen_b";
        write_submission(o);
        expect_matches_golden(o.output, "gaofen_buildings");
        const std::string c = mask(tmp / "gc.tif", 3, 3, [](int x, int y) { return y * 3 + x; });
        o.items = {{"17.tif", c}};
        o.gaofen_track = "2020-9class";
        o.output = tmp / "gaofen_c";
        o.zip = tmp / "gaofen_c.zip";
        write_submission(o);
        expect_matches_golden(o.output, "gaofen_2020");
        DatasetPtr zipped = open_raster("/vsizip/" + o.zip + "/17.png");
        EXPECT_EQ(zipped->GetRasterXSize(), 3);
    }
}

TEST(Submission, BadMasksAreRefusedWithoutPartialOutput) {
    TempDir tmp;
    rsi::test::QuietGdal quiet;
    SubmissionOptions o;
    o.format = SubmissionFormat::tianchi;
    o.items = tianchi_items(tmp);
    o.output = tmp / "s.csv";
    // Non-binary mask for a binary format.
    o.items.push_back({"d.jpg", mask(tmp / "d.png", 512, 512, [](int x, int) { return x == 7 ? 3 : 0; })});
    try {
        write_submission(o);
        FAIL() << "a mask with class 3 was accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("d.png: value 3"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(o.output));
    for (const auto& f : fs::directory_iterator(tmp.str())) EXPECT_EQ(f.path().filename().string().rfind(".rsi-tmp", 0), std::string::npos);
    // Wrong size.
    o.items = tianchi_items(tmp);
    o.items.push_back({"e.jpg", mask(tmp / "e.png", 256, 256, [](int, int) { return 0; })});
    try {
        write_submission(o);
        FAIL() << "a 256x256 mask was accepted for tianchi";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("256x256 but tianchi needs 512x512"), std::string::npos) << e.what();
    }
    // LoveDA classes beyond 6.
    o.format = SubmissionFormat::loveda;
    o.output = tmp / "lv";
    o.items = {{"x.png", mask(tmp / "x.tif", 2, 2, [](int, int) { return 7; })}};
    EXPECT_THROW(write_submission(o), Error);
    EXPECT_FALSE(fs::exists(o.output));
    // Existing output without overwrite is a usage error.
    o.format = SubmissionFormat::tianchi;
    o.items = tianchi_items(tmp);
    o.output = tmp / "exists.csv";
    std::ofstream(o.output) << "old";
    try {
        write_submission(o);
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::usage);
    }
    EXPECT_EQ(read_text(o.output), "old");
    o.overwrite = true;
    write_submission(o);
    EXPECT_EQ(read_text(o.output), read_text(golden("tianchi.csv")));
}

// A mask's declared nodata (rsi's own masks: 255 where the image had no data) is background, not
// building; in a 0/255 mask without nodata, 255 stays foreground.
TEST(Submission, NodataIsBackgroundInEveryFormat) {
    TempDir tmp;
    const std::string with_nodata = mask(tmp / "nd.tif", 4, 2, [](int x, int y) { return x < 2 ? 255 : (y == 0 ? 1 : 0); });
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(with_nodata.c_str(), GA_Update)));
        ASSERT_TRUE(ds);
        ds->GetRasterBand(1)->SetNoDataValue(255);
    }
    SubmissionOptions o;
    o.format = SubmissionFormat::tianchi;
    o.width = 4;
    o.height = 2;
    o.items = {{"nd.jpg", with_nodata}};
    o.output = tmp / "nd.csv";
    write_submission(o);
    // column-major, 1-based: only (2, 0) and (3, 0) are buildings -> pixels 5 and 7
    EXPECT_EQ(read_text(o.output), "nd.jpg\t5 1 7 1\n");
    const std::string plain = mask(tmp / "plain.tif", 4, 2, [](int x, int) { return x < 2 ? 255 : 0; });
    o.items = {{"plain.jpg", plain}};
    o.output = tmp / "plain.csv";
    write_submission(o);
    EXPECT_EQ(read_text(o.output), "plain.jpg\t1 4\n");
    // Gaofen 2020-9class has no background class: nodata takes "other" (9), as the building model's
    // background does; it was written as 1, road.
    SubmissionOptions nine;
    nine.format = SubmissionFormat::gaofen;
    nine.gaofen_track = "2020-9class";
    nine.items = {{"nd.tif", with_nodata}};
    nine.output = tmp / "nine";
    write_submission(nine);
    const auto values = RasterSource::open(tmp / "nine/nd.png").read_float({0, 0, 4, 2}, {1});
    EXPECT_EQ(values, (std::vector<float>{9, 9, 2, 2, 9, 9, 1, 1}));  // nodata 9; mask ids 1 and 0 -> 2 and 1
}

// Masks made by a model: its classes land on the format's by name; a class the format lacks is refused.
TEST(Submission, ModelClassesMapOntoTheFormatByName) {
    SubmissionOptions o;
    o.format = SubmissionFormat::gaofen;
    o.gaofen_track = "2020-9class";
    EXPECT_EQ(class_map_by_name(o, {"background", "building"}, "m.pt"), (std::map<int, int>{{0, 8}, {1, 1}}));
    o.format = SubmissionFormat::loveda;
    EXPECT_EQ(class_map_by_name(o, {"Background", "Water", "Building"}, "m.pt"), (std::map<int, int>{{0, 0}, {1, 3}, {2, 1}}));
    rsi::test::expect_error([&] { class_map_by_name(o, {"background", "aircraft"}, "m.pt"); }, ErrorKind::usage,
                            "m.pt: the classes aircraft are not among the loveda classes");
    o.format = SubmissionFormat::tianchi;
    EXPECT_TRUE(class_map_by_name(o, {"background", "aircraft"}, "m.pt").empty());  // binary: any foreground
}

TEST(SubmissionCsv, MalformedFilesNameFileAndLine) {
    const auto tianchi_error = [](const std::string& text) {
        std::istringstream in(text);
        try {
            for (const auto& e : read_tianchi_csv(in, "s.csv")) decode_tianchi_rle(e.rle, 4, 4, "s.csv:" + std::to_string(e.line));
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_EQ(tianchi_error("a.jpg\t1 2\nb.jpg\t1 2 3\n"), "s.csv:2: RLE has an odd number of tokens (3)");
    EXPECT_EQ(tianchi_error("a.jpg\t1 x\n"), "s.csv:1: RLE token 'x' is not a whole number");
    EXPECT_EQ(tianchi_error("a.jpg\t15 5\n"), "s.csv:1: RLE run 15+5 goes beyond the 4x4 image");
    EXPECT_EQ(tianchi_error("a.jpg\t1 4 3 2\n"), "s.csv:1: RLE run at 3 overlaps or precedes the previous run");
    EXPECT_EQ(tianchi_error("a.jpg\t1 1\na.jpg\t\n"), "s.csv:2: image 'a.jpg' appears twice");
    EXPECT_EQ(tianchi_error("a.jpg 1 1\n"), "s.csv:1: expected 2 tab-separated fields (name, mask), found 1");
    EXPECT_EQ(tianchi_error("a.jpg\t9223372036854775807 9223372036854775807\n"),
              "s.csv:1: RLE run 9223372036854775807+9223372036854775807 goes beyond the 4x4 image");

    const auto spacenet_error = [](const std::string& text) {
        std::istringstream in(text);
        try {
            read_spacenet_csv(in, "p.csv");
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_EQ(spacenet_error("ImageId,PolygonWKT_Pix\n"), "p.csv:1: the header must name ImageId, BuildingId and PolygonWKT_Pix");
    EXPECT_EQ(spacenet_error("ImageId,BuildingId,PolygonWKT_Pix,Confidence\na,1,\"POLYGON ((0 0,1 0,1 1,0 0))\",high\n"),
              "p.csv:2: Confidence 'high' is not a number");
    EXPECT_EQ(spacenet_error("ImageId,BuildingId,PolygonWKT_Pix\na,x,POLYGON EMPTY\n"), "p.csv:2: BuildingId 'x' is not a whole number");
    EXPECT_EQ(spacenet_error("ImageId,BuildingId,PolygonWKT_Pix\na,1,\"POLYGON ((0 0\n"), "p.csv:2: unterminated quoted field");
    EXPECT_EQ(spacenet_error("ImageId,BuildingId,PolygonWKT_Pix\na,1\n"), "p.csv:2: 2 fields, the header has 3");
    std::istringstream ok("ImageId,BuildingId,PolygonWKT_Pix,Confidence\n\"a,b\",1,\"POLYGON ((0 0,1 0,1 1,0 0))\",0.25\n");
    const auto rows = read_spacenet_csv(ok, "p.csv");
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].image_id, "a,b");
    EXPECT_DOUBLE_EQ(rows[0].confidence, 0.25);
    // Without the header (optional in submissions): the first line is an entry, columns in the usual order.
    std::istringstream bare("AOI_2_Vegas_img1,1,\"POLYGON ((0 0,1 0,1 1,0 0))\",0.5\nAOI_2_Vegas_img2,-1,POLYGON EMPTY,1\n");
    const auto entries = read_spacenet_csv(bare, "p.csv");
    ASSERT_EQ(entries.size(), 2u);
    EXPECT_EQ(entries[0].image_id, "AOI_2_Vegas_img1");
    EXPECT_EQ(entries[0].line, 1);
    EXPECT_DOUBLE_EQ(entries[0].confidence, 0.5);
    EXPECT_TRUE(entries[0].has_confidence);
    EXPECT_EQ(entries[1].building_id, -1);
    std::istringstream three("a,3,POLYGON EMPTY\n");
    const auto plain = read_spacenet_csv(three, "p.csv");
    ASSERT_EQ(plain.size(), 1u);
    EXPECT_FALSE(plain[0].has_confidence);
}

// Excel and Notepad save UTF-8 with a byte-order mark: it must not become part of the first image
// name (a headerless SpaceNet file or any Tianchi file would then miss that image in the scoring).
TEST(SubmissionCsv, ByteOrderMarkIsNotPartOfTheFirstName) {
    std::istringstream tianchi("\xEF\xBB\xBF" "a.jpg\t1 2\r\nb.jpg\t\r\n");
    const auto t = read_tianchi_csv(tianchi, "s.csv");
    ASSERT_EQ(t.size(), 2u);
    EXPECT_EQ(t[0].name, "a.jpg");
    EXPECT_EQ(t[0].rle, "1 2");
    std::istringstream bare("\xEF\xBB\xBF" "img1,1,\"POLYGON ((0 0,1 0,1 1,0 0))\",1\n");
    const auto s = read_spacenet_csv(bare, "p.csv");
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0].image_id, "img1");
    std::istringstream headed("\xEF\xBB\xBF" "ImageId,BuildingId,PolygonWKT_Pix\nimg2,1,POLYGON EMPTY\n");
    const auto h = read_spacenet_csv(headed, "p.csv");
    ASSERT_EQ(h.size(), 1u);
    EXPECT_EQ(h[0].image_id, "img2");
    // only at the start of the file: the same bytes later on are data
    std::istringstream later("a.jpg\t\n\xEF\xBB\xBF" "b.jpg\t\n");
    EXPECT_EQ(read_tianchi_csv(later, "s.csv")[1].name, "\xEF\xBB\xBF" "b.jpg");
    // and written quoted, so that a file starting with such a name keeps it
    const std::string quoted = csv_field("\xEF\xBB\xBF" "b.jpg", '\t');
    EXPECT_EQ(quoted, "\"\xEF\xBB\xBF" "b.jpg\"");
    std::istringstream written(quoted + "\t\n");
    EXPECT_EQ(read_tianchi_csv(written, "s.csv")[0].name, "\xEF\xBB\xBF" "b.jpg");
}

TEST(Submission, ValidationCatchesForeignAndMissingFiles) {
    TempDir tmp;
    SubmissionOptions o;
    o.format = SubmissionFormat::loveda;
    o.items = {{"1.png", mask(tmp / "1.tif", 2, 2, [](int, int) { return 1; })}};
    o.output = tmp / "lv";
    write_submission(o);
    std::ofstream(o.output + "/stray.txt") << "x";
    EXPECT_THROW(validate_submission(o, o.output, {"1.png"}), Error);
    fs::remove(o.output + "/stray.txt");
    EXPECT_NO_THROW(validate_submission(o, o.output, {"1.png"}));
    try {
        validate_submission(o, o.output, {"1.png", "2.png"});
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("2.png is missing"), std::string::npos) << e.what();
    }
}

TEST(Submission, ShardsMergedEqualTheDirectRunInEveryLayout) {
    TempDir tmp;
    struct Case {
        SubmissionFormat format;
        int size;  // 0: varied sizes
    };
    for (const Case c : {Case{SubmissionFormat::spacenet, 0}, Case{SubmissionFormat::inria, 0}, Case{SubmissionFormat::xview2, 16},
                         Case{SubmissionFormat::tianchi, 16}}) {
        const std::string name = to_string(c.format);
        SubmissionOptions direct;
        direct.format = c.format;
        direct.items = varied_items(tmp, 7, c.size, c.format == SubmissionFormat::xview2 ? "test_pre_0" : "img");
        if (c.size) direct.width = direct.height = c.size;
        direct.output = tmp / (name + "_direct" + (writes_csv(c.format) ? ".csv" : ""));
        const SubmissionResult whole = write_submission(direct);

        SubmissionOptions sharded = direct;
        sharded.output = tmp / (name + "_sharded" + (writes_csv(c.format) ? ".csv" : ""));
        int64_t images = 0;
        for (int k : {1, 0}) {
            sharded.shard = ShardSpec{k, 2};
            const SubmissionResult r = write_submission(sharded);
            EXPECT_FALSE(r.assembled);
            EXPECT_EQ(r.images_run, r.shard_images);
            EXPECT_GE(r.shard_images, 3) << "7 images of different sizes balance 3 + 4 or 4 + 3";
            images += r.shard_images;
        }
        EXPECT_EQ(images, 7);
        EXPECT_FALSE(fs::exists(sharded.output)) << "shards never write the submission";
        SubmissionMergeOptions m;
        m.parts_dir = sharded.output + ".parts";
        const SubmissionResult merged = merge_submission(m);
        EXPECT_EQ(merged.output, sharded.output) << "the output the shards were given";
        EXPECT_EQ(merged.images, 7);
        EXPECT_EQ(merged.objects, whole.objects);
        EXPECT_EQ(merged.empty_images, whole.empty_images);
        EXPECT_EQ(merged.validation.checks, whole.validation.checks);
        EXPECT_FALSE(fs::exists(m.parts_dir));
        if (writes_csv(c.format)) {
            EXPECT_EQ(read_text(sharded.output), read_text(direct.output)) << name;
            EXPECT_GT(read_text(direct.output).size(), 100u);
        } else {
            const auto a = folder_bytes(direct.output), b = folder_bytes(sharded.output);
            EXPECT_EQ(a.size(), c.format == SubmissionFormat::xview2 ? 14u : 7u);
            EXPECT_TRUE(a == b) << name << ": the folders differ";
        }
    }
}

TEST(Submission, ResumeAfterCancelMakesOnlyTheRestAndEqualsAnUninterruptedRun) {
    TempDir tmp;
    int calls = 0;
    SubmissionOptions o;
    o.format = SubmissionFormat::spacenet;
    o.items = varied_items(tmp, 5);
    o.make_mask = copying_mask_maker(calls);
    o.job_settings = {{"model_sha256", "abc"}, {"tta", "none"}};
    o.output = tmp / "direct.csv";
    write_submission(o);
    EXPECT_EQ(calls, 5);

    calls = 0;
    o.output = tmp / "resumed.csv";
    o.resume = true;
    try {
        write_submission(o, [&](double, std::string_view) { return calls < 2; });  // SIGINT after the second image
        FAIL() << "not cancelled";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::cancelled);
    }
    EXPECT_FALSE(fs::exists(o.output));
    const std::string journal = o.output + ".parts/shard-0-of-1.journal";
    std::string text = read_text(journal);
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3) << text;  // header + 2 images
    std::ofstream(journal, std::ios::app) << "{\"item\":\"img4.p";  // a line torn by kill -9
    std::ofstream(o.output + ".parts/.rsi-tmp-999999-0-image-000004") << "left by a killed run";

    // Other options or images: refused, naming what changed.
    SubmissionOptions other = o;
    other.job_settings["tta"] = "flip";
    test::expect_error([&] { write_submission(other); }, ErrorKind::usage, "tta none -> flip");
    other = o;
    other.min_area_px = 4;
    try {
        write_submission(other);
        FAIL() << "resumed with another --min-area";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("min_area_px 0.0 -> 4.0"), std::string::npos) << e.what();
    }

    calls = 0;
    const SubmissionResult r = write_submission(o);
    EXPECT_EQ(calls, 3) << "only the images not journaled are made again";
    EXPECT_EQ(r.images_resumed, 2);
    EXPECT_EQ(r.images_run, 3);
    EXPECT_EQ(r.images, 5);
    EXPECT_EQ(read_text(o.output), read_text(tmp / "direct.csv"));
    EXPECT_FALSE(fs::exists(o.output + ".parts")) << "parts and stale temporaries go with the assembly";
}

TEST(Submission, MergeNamesMissingAndUnfinishedShards) {
    TempDir tmp;
    SubmissionOptions o;
    o.format = SubmissionFormat::loveda;
    o.items = varied_items(tmp, 6);
    o.output = tmp / "out";
    o.shard = ShardSpec{0, 2};
    write_submission(o);
    SubmissionMergeOptions m;
    m.parts_dir = tmp / "out.parts";
    try {
        merge_submission(m);
        FAIL() << "merged without shard 1";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("shard 1 of 2 is missing (no shard-1-of-2.journal"), std::string::npos) << e.what();
    }
    int calls = 0;
    o.make_mask = copying_mask_maker(calls);
    o.shard = ShardSpec{1, 2};
    EXPECT_THROW(write_submission(o, [&](double, std::string_view) { return calls < 1; }), Error);
    try {
        merge_submission(m);
        FAIL() << "merged an unfinished shard";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("shard 1 of 2 is not finished (1 of 3 images"), std::string::npos) << e.what();
    }
    m.format = "tianchi";
    EXPECT_THROW(merge_submission(m), Error);  // not the format the shards wrote
    m.format.clear();
    EXPECT_FALSE(fs::exists(o.output));
    o.resume = true;
    write_submission(o);
    EXPECT_EQ(calls, 3) << "the finished image of the shard is kept";
    EXPECT_EQ(merge_submission(m).images, 6);
    EXPECT_EQ(folder_bytes(o.output).size(), 6u);
}
