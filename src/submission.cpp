#include "src/submission.hpp"
#include "src/strip_journal.hpp"
#include "src/shard_lock.hpp"
#include "src/json_text.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <array>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <unistd.h>

#include <cpl_conv.h>
#include <gdal_alg.h>
#include <gdal_priv.h>
#include <ogrsf_frmts.h>

#include "src/csv_table.hpp"
#include "src/item_journal.hpp"
#include "src/output_file.hpp"
#include "src/run_manifest.hpp"
#include "src/submission_csv.hpp"
#include "src/tianchi_rle.hpp"
#include "tiling/error.hpp"
#include "tiling/gdal_dataset.hpp"

namespace fs = std::filesystem;

namespace rsi {

namespace {

const std::array<const char*, 9> kGaofen2020Classes = {"road", "building", "shrub and tree", "lawn", "land",
                                                      "waterbody", "vehicle", "impervious ground", "other"};

std::string stem_of(const std::string& name) { return fs::path(name).stem().string(); }

// SpaceNet's ImageId: the file stem from its "AOI_" on, as the contest's truth CSVs name images
// ("RGB-PanSharpen_AOI_2_Vegas_img1.tif" is AOI_2_Vegas_img1); a stem without one is used whole.
std::string spacenet_image_id(const std::string& name) {
    const std::string stem = stem_of(name);
    for (size_t at = stem.find("AOI_"); at != std::string::npos; at = stem.find("AOI_", at + 1)) {
        if (at == 0 || stem[at - 1] == '_' || stem[at - 1] == '-') return stem.substr(at);
    }
    return stem;
}

// xView2 test images are test_pre_<id>.png / test_post_<id>.png; the id is what follows.
std::string xview2_id(const std::string& name) {
    const std::string stem = stem_of(name);
    for (const char* prefix : {"test_pre_", "test_post_"}) {
        if (stem.rfind(prefix, 0) == 0) return stem.substr(std::char_traits<char>::length(prefix));
    }
    return stem;
}

struct Mask {
    int64_t width = 0, height = 0;
    std::vector<uint8_t> values;
    bool has_geotransform = false;
    std::array<double, 6> geotransform{};
    std::string projection;
};

// `background`: the mask value nodata becomes (the format's background class id before any shift).
Mask read_mask(const SubmissionItem& item, const std::map<int, int>& value_map, uint8_t background) {
    DatasetPtr ds = open_raster(item.mask);
    Mask m;
    m.width = ds->GetRasterXSize();
    m.height = ds->GetRasterYSize();
    GDALRasterBand* band = ds->GetRasterBand(1);
    const GDALDataType type = band->GetRasterDataType();
    if (GDALDataTypeIsFloating(type) || GDALDataTypeIsComplex(type)) {
        throw Error(item.mask + ": the mask is " + GDALGetDataTypeName(type) + ", not an integer class raster");
    }
    std::vector<int32_t> raw(static_cast<size_t>(m.width * m.height));
    if (band->RasterIO(GF_Read, 0, 0, static_cast<int>(m.width), static_cast<int>(m.height), raw.data(), static_cast<int>(m.width),
                       static_cast<int>(m.height), GDT_Int32, 0, 0) != CE_None) {
        throw Error(item.mask + ": reading the mask failed: " + last_gdal_error());
    }
    // The mask's nodata (rsi's own masks: 255 where the image had none) is background in every format,
    // unless --map names it; in a binary mask without nodata, 255 stays foreground (0/255 masks).
    int has_nodata = 0;
    const double nodata = band->GetNoDataValue(&has_nodata);
    const bool nodata_is_background = has_nodata && std::isfinite(nodata) && nodata == std::floor(nodata) &&
                                      value_map.count(static_cast<int>(nodata)) == 0;
    m.values.resize(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
        int v = raw[i];
        if (nodata_is_background && v == static_cast<int>(nodata)) {
            m.values[i] = background;
            continue;
        }
        if (!value_map.empty()) {
            const auto it = value_map.find(v);
            if (it != value_map.end()) v = it->second;
        }
        if (v < 0 || v > 255) throw Error(item.mask + ": value " + std::to_string(v) + " is outside 0..255");
        m.values[i] = static_cast<uint8_t>(v);
    }
    m.has_geotransform = ds->GetGeoTransform(m.geotransform.data()) == CE_None;
    if (const char* wkt = ds->GetProjectionRef()) m.projection = wkt;
    return m;
}

std::pair<int64_t, int64_t> required_size(const SubmissionOptions& o) {
    if (o.width > 0) return {o.width, o.height};
    if (o.format == SubmissionFormat::tianchi) return {512, 512};
    if (o.format == SubmissionFormat::xview2) return {1024, 1024};
    return {0, 0};
}

bool binary_format(const SubmissionOptions& o) {
    switch (o.format) {
        case SubmissionFormat::tianchi:
        case SubmissionFormat::spacenet:
        case SubmissionFormat::inria: return true;
        case SubmissionFormat::xview2: return !o.xview2_damage;
        case SubmissionFormat::loveda: return false;
        case SubmissionFormat::gaofen: return o.gaofen_track == "buildings";
    }
    return true;
}

// The mask id of the format's background: 0, but gaofen 2020-9class has none and takes "other" (id 8,
// written as 9) for it, as the building model's background is mapped.
uint8_t background_id(const SubmissionOptions& o) {
    return o.format == SubmissionFormat::gaofen && o.gaofen_track != "buildings" ? 8 : 0;
}

// The largest class value the format takes from a mask (binary formats: 0/1/255 are checked apart).
int largest_value(const SubmissionOptions& o) {
    if (o.format == SubmissionFormat::loveda) return 6;
    if (o.format == SubmissionFormat::xview2 && o.xview2_damage) return 4;
    if (o.format == SubmissionFormat::gaofen && o.gaofen_track != "buildings") return 8;
    return 255;
}

void check_mask(const SubmissionOptions& o, const SubmissionItem& item, const Mask& m) {
    const auto [w, h] = required_size(o);
    if (w > 0 && (m.width != w || m.height != h)) {
        throw Error(item.mask + ": the mask is " + std::to_string(m.width) + "x" + std::to_string(m.height) + " but " + to_string(o.format) +
                    " needs " + std::to_string(w) + "x" + std::to_string(h));
    }
    std::array<bool, 256> seen{};
    for (uint8_t v : m.values) seen[v] = true;
    const bool binary = binary_format(o);
    const int largest = largest_value(o);
    for (int v = 0; v < 256; ++v) {
        if (!seen[static_cast<size_t>(v)]) continue;
        if (binary && v != 0 && v != 1 && v != 255) {
            throw Error(item.mask + ": value " + std::to_string(v) + " in a mask for the binary " + to_string(o.format) +
                        " format (expected 0/1 or 0/255; merge classes with --map)");
        }
        if (!binary && v > largest) {
            throw Error(item.mask + ": class " + std::to_string(v) + " is beyond the " + to_string(o.format) + " range 0.." +
                        std::to_string(largest) + " (remap with --map)");
        }
    }
}

// 4-connected polygons of the non-zero pixels, in pixel coordinates, in reading order of their
// top-left corner.
std::vector<std::unique_ptr<OGRGeometry>> pixel_polygons(const Mask& m, double min_area_px) {
    ensure_gdal_registered();
    GDALDriver* mem = GetGDALDriverManager()->GetDriverByName("MEM");
    DatasetPtr raster(mem->Create("", static_cast<int>(m.width), static_cast<int>(m.height), 1, GDT_Byte, nullptr));
    std::vector<uint8_t> binary(m.values.size());
    for (size_t i = 0; i < binary.size(); ++i) binary[i] = m.values[i] != 0;
    GDALRasterBand* band = raster->GetRasterBand(1);
    if (band->RasterIO(GF_Write, 0, 0, static_cast<int>(m.width), static_cast<int>(m.height), binary.data(), static_cast<int>(m.width),
                       static_cast<int>(m.height), GDT_Byte, 0, 0) != CE_None) {
        throw Error("spacenet: preparing the mask failed: " + last_gdal_error());
    }
    GDALDriver* memory = GetGDALDriverManager()->GetDriverByName("Memory");
    DatasetPtr vector(memory->Create("", 0, 0, 0, GDT_Unknown, nullptr));
    OGRLayer* layer = vector->CreateLayer("polygons", nullptr, wkbPolygon, nullptr);
    OGRFieldDefn field("value", OFTInteger);
    layer->CreateField(&field);
    if (GDALPolygonize(band, band, OGRLayer::ToHandle(layer), 0, nullptr, nullptr, nullptr) != CE_None) {
        throw Error("spacenet: polygonising the mask failed: " + last_gdal_error());
    }
    struct Item {
        double y, x;
        std::unique_ptr<OGRGeometry> geometry;
    };
    std::vector<Item> items;
    for (auto& feature : *layer) {
        OGRGeometry* g = feature->GetGeometryRef();
        if (!g || g->IsEmpty()) continue;
        if (min_area_px > 0 && OGR_G_Area(OGRGeometry::ToHandle(g)) < min_area_px) continue;
        OGREnvelope e;
        g->getEnvelope(&e);
        items.push_back({e.MinY, e.MinX, std::unique_ptr<OGRGeometry>(g->clone())});
    }
    std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.y != b.y ? a.y < b.y : a.x < b.x; });
    std::vector<std::unique_ptr<OGRGeometry>> out;
    for (auto& item : items) out.push_back(std::move(item.geometry));
    return out;
}

void write_png(const std::string& path, const std::vector<uint8_t>& values, int64_t width, int64_t height) {
    GDALDriver* mem = GetGDALDriverManager()->GetDriverByName("MEM");
    DatasetPtr ds(mem->Create("", static_cast<int>(width), static_cast<int>(height), 1, GDT_Byte, nullptr));
    if (ds->GetRasterBand(1)->RasterIO(GF_Write, 0, 0, static_cast<int>(width), static_cast<int>(height), const_cast<uint8_t*>(values.data()),
                                       static_cast<int>(width), static_cast<int>(height), GDT_Byte, 0, 0) != CE_None) {
        throw Error(path + ": preparing the image failed: " + last_gdal_error());
    }
    GDALDriver* png = GetGDALDriverManager()->GetDriverByName("PNG");
    DatasetPtr out(png->CreateCopy(path.c_str(), ds.get(), FALSE, nullptr, nullptr, nullptr));
    if (!out) throw Error(path + ": writing the PNG failed: " + last_gdal_error());
    close_written(std::move(out), path);
}

void write_inria_tiff(const std::string& path, const Mask& m) {
    GDALDriver* gtiff = GetGDALDriverManager()->GetDriverByName("GTiff");
    const char* options[] = {"COMPRESS=LZW", nullptr};
    DatasetPtr out(gtiff->Create(path.c_str(), static_cast<int>(m.width), static_cast<int>(m.height), 1, GDT_Byte, const_cast<char**>(options)));
    if (!out) throw Error(path + ": cannot create: " + last_gdal_error());
    if (m.has_geotransform) out->SetGeoTransform(const_cast<double*>(m.geotransform.data()));
    if (!m.projection.empty()) out->SetProjection(m.projection.c_str());
    std::vector<uint8_t> values(m.values.size());
    for (size_t i = 0; i < values.size(); ++i) values[i] = m.values[i] ? 255 : 0;
    if (out->GetRasterBand(1)->RasterIO(GF_Write, 0, 0, static_cast<int>(m.width), static_cast<int>(m.height), values.data(),
                                        static_cast<int>(m.width), static_cast<int>(m.height), GDT_Byte, 0, 0) != CE_None) {
        throw Error(path + ": writing failed: " + last_gdal_error());
    }
    close_written(std::move(out), path);
}

std::string read_file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    if (!in) throw Error(path + ": cannot read back for the zip");
    return s.str();
}

// GDAL's zip writer leaves every entry's DOS date at 0 (1980-00-00), which some readers refuse
// (Python's zipfile cannot make a datetime of it). Sets each entry's date, in the central directory and
// its local header, to 1980-01-01 00:00: valid, and still the same bytes on every run.
void set_zip_dates_to_1980(const std::string& path) {
    std::fstream zip(path, std::ios::in | std::ios::out | std::ios::binary);
    auto u16 = [&](std::streamoff at) {
        unsigned char b[2] = {0, 0};
        zip.seekg(at);
        zip.read(reinterpret_cast<char*>(b), 2);
        return static_cast<uint32_t>(b[0] | (b[1] << 8));
    };
    auto u32 = [&](std::streamoff at) { return u16(at) | (u16(at + 2) << 16); };
    auto put_date = [&](std::streamoff at) {
        const char date[2] = {0x21, 0x00};  // (1980 - 1980) << 9 | 1 << 5 | 1
        zip.seekp(at);
        zip.write(date, 2);
    };
    zip.seekg(0, std::ios::end);
    const std::streamoff size = zip.tellg();
    std::streamoff end_record = -1;  // the end-of-central-directory record: 22 bytes plus a comment
    for (std::streamoff at = size - 22; at >= std::max<std::streamoff>(0, size - 22 - 65535); --at) {
        if (u32(at) == 0x06054b50) {
            end_record = at;
            break;
        }
    }
    if (end_record < 0) throw Error(path + ": not a zip archive (no end of central directory)");
    std::streamoff entry = u32(end_record + 16);
    for (uint32_t k = 0, entries = u16(end_record + 10); k < entries; ++k) {
        if (u32(entry) != 0x02014b50) throw Error(path + ": zip central directory entry " + std::to_string(k) + " is damaged");
        put_date(entry + 14);
        const std::streamoff local = u32(entry + 42);
        if (u32(local) != 0x04034b50) throw Error(path + ": zip local header " + std::to_string(k) + " is damaged");
        put_date(local + 12);
        entry += 46 + u16(entry + 28) + u16(entry + 30) + u16(entry + 32);
    }
    zip.flush();
    if (!zip) throw Error(path + ": setting the zip's entry dates failed");
}

// Zips `files` (path on disk, name in the zip) into a temporary file for `zip_path`, which the caller
// renames into place with the submission (so the zip can pack the submission's temporary files).
PendingOutput write_zip(const std::string& zip_path, const std::vector<std::pair<std::string, std::string>>& files, bool overwrite) {
    check_output_path_again(zip_path, overwrite);  // checked when the run started
    PendingOutput pending(zip_path, overwrite);
    void* zip = CPLCreateZip(pending.temporary_path().c_str(), nullptr);
    if (!zip) throw Error(zip_path + ": cannot create the zip: " + last_gdal_error());
    bool ok = true;
    for (const auto& [path, name] : files) {
        const std::string bytes = read_file_bytes(path);
        ok = ok && CPLCreateFileInZip(zip, name.c_str(), nullptr) == CE_None &&
             CPLWriteFileInZip(zip, bytes.data(), static_cast<int>(bytes.size())) == CE_None && CPLCloseFileInZip(zip) == CE_None;
    }
    ok = CPLCloseZip(zip) == CE_None && ok;
    if (!ok) throw Error(zip_path + ": writing the zip failed: " + last_gdal_error("no room for it? (disk full or a file-size limit)"));
    set_zip_dates_to_1980(pending.temporary_path());
    return pending;
}

std::vector<SubmissionItem> sorted_items(const SubmissionOptions& o) {
    std::vector<SubmissionItem> items = o.items;
    std::sort(items.begin(), items.end(), [](const SubmissionItem& a, const SubmissionItem& b) { return a.name < b.name; });
    std::set<std::string> names;
    std::map<std::string, std::string> image_ids;  // SpaceNet ImageId -> the image that has it
    for (const SubmissionItem& item : items) {
        if (item.name.empty()) throw usage_error(std::string(to_string(o.format)) + ": an image without a name");
        // Tianchi rows are name<TAB>RLE read by CSV readers that honour quotes: such a name would not read back.
        if (o.format == SubmissionFormat::tianchi && item.name.find_first_of("\t\r\n\"") != std::string::npos) {
            throw usage_error(item.name + ": a Tianchi image name cannot hold a tab, a line break or a double quote; rename the file");
        }
        for (const std::string& file : submission_file_names(o, item.name)) {
            if (!names.insert(file).second) throw usage_error(item.name + ": two images map to the same output name " + file);
        }
        if (o.format == SubmissionFormat::spacenet) {
            const auto [it, fresh] = image_ids.emplace(spacenet_image_id(item.name), item.name);
            if (!fresh) {
                throw usage_error(it->second + " and " + item.name + " have the same SpaceNet ImageId " + it->first +
                                  " (the name from its AOI_ on): submit one of them");
            }
        }
    }
    return items;
}

}  // namespace

SubmissionFormat parse_submission_format(std::string_view text) {
    if (text == "tianchi") return SubmissionFormat::tianchi;
    if (text == "spacenet") return SubmissionFormat::spacenet;
    if (text == "inria") return SubmissionFormat::inria;
    if (text == "xview2") return SubmissionFormat::xview2;
    if (text == "loveda") return SubmissionFormat::loveda;
    if (text == "gaofen") return SubmissionFormat::gaofen;
    throw usage_error("submit: unknown format '" + std::string(text) + "' (tianchi, spacenet, inria, xview2, loveda, gaofen)");
}

const char* to_string(SubmissionFormat format) {
    switch (format) {
        case SubmissionFormat::tianchi: return "tianchi";
        case SubmissionFormat::spacenet: return "spacenet";
        case SubmissionFormat::inria: return "inria";
        case SubmissionFormat::xview2: return "xview2";
        case SubmissionFormat::loveda: return "loveda";
        case SubmissionFormat::gaofen: return "gaofen";
    }
    return "?";
}

bool writes_csv(SubmissionFormat format) { return format == SubmissionFormat::tianchi || format == SubmissionFormat::spacenet; }

std::pair<int64_t, int64_t> parse_image_size(const std::string& text, const std::string& option) {
    try {
        size_t used = 0;
        const int64_t w = std::stoll(text, &used);
        int64_t h = w;
        if (used < text.size()) {
            if (text[used] != 'x' && text[used] != 'X') throw std::invalid_argument("x");
            const std::string rest = text.substr(used + 1);
            size_t used2 = 0;
            h = std::stoll(rest, &used2);
            if (used2 != rest.size()) throw std::invalid_argument("junk");
        }
        if (w < 1 || h < 1 || w > 1000000 || h > 1000000) throw std::invalid_argument("range");
        return {w, h};
    } catch (const std::exception&) {
        throw usage_error(option + ": '" + text + "' is not WIDTHxHEIGHT (e.g. 512x512)");
    }
}

std::vector<std::string> submission_file_names(const SubmissionOptions& o, const std::string& image_name) {
    switch (o.format) {
        case SubmissionFormat::tianchi:
        case SubmissionFormat::spacenet: return {};
        case SubmissionFormat::inria: return {stem_of(image_name) + ".tif"};
        case SubmissionFormat::xview2: {
            const std::string id = xview2_id(image_name);
            return {"test_localization_" + id + "_prediction.png", "test_damage_" + id + "_prediction.png"};
        }
        case SubmissionFormat::loveda:
        case SubmissionFormat::gaofen: return {stem_of(image_name) + ".png"};
    }
    return {};
}

std::vector<std::string> submission_class_names(const SubmissionOptions& o) {
    if (o.format == SubmissionFormat::loveda) {
        return {"background", "building", "road", "water", "barren", "forest", "agriculture"};
    }
    if (o.format == SubmissionFormat::gaofen && o.gaofen_track != "buildings") {
        return std::vector<std::string>(kGaofen2020Classes.begin(), kGaofen2020Classes.end());
    }
    return {};
}

std::map<int, int> class_map_by_name(const SubmissionOptions& o, const std::vector<std::string>& model_classes,
                                     const std::string& model_name) {
    const std::vector<std::string> format_classes = submission_class_names(o);
    std::map<int, int> map;
    if (format_classes.empty()) return map;
    const auto lower = [](std::string text) {
        std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        return text;
    };
    std::string missing;
    for (size_t id = 0; id < model_classes.size(); ++id) {
        const std::string name = lower(model_classes[id]);
        int found = -1;
        for (size_t f = 0; f < format_classes.size() && found < 0; ++f) {
            if (lower(format_classes[f]) == name) found = static_cast<int>(f);
        }
        for (size_t f = 0; f < format_classes.size() && found < 0 && name == "background"; ++f) {
            if (format_classes[f] == "other") found = static_cast<int>(f);
        }
        if (found < 0) missing += (missing.empty() ? "" : ", ") + model_classes[id];
        else map[static_cast<int>(id)] = found;
    }
    if (!missing.empty()) {
        std::string table;
        for (const auto& c : format_classes) table += (table.empty() ? "" : ", ") + c;
        throw usage_error(model_name + ": the classes " + missing + " are not among the " + to_string(o.format) +
                          " classes (" + table + "); give --map MODEL_ID=CLASS_ID for them");
    }
    return map;
}

namespace {

// One image's contribution to the submission: CSV rows, or files written into `dir`.
struct RenderedImage {
    std::string rows;                 // CSV formats
    std::vector<std::string> files;   // image formats: names inside the result folder
    int64_t objects = 0;
    bool empty = false;
};

RenderedImage render_image(const SubmissionOptions& o, const SubmissionItem& item, const fs::path& dir) {
    Mask m;
    if (o.make_mask) {
        const std::string path = o.make_mask(item);
        const auto remove_scratch = [&path] {
            if (path.rfind("/vsimem/", 0) == 0) VSIUnlink(path.c_str());
            else remove_with_sidecars(path);
        };
        try {
            m = read_mask({item.name, path}, o.value_map, background_id(o));
        } catch (...) {
            remove_scratch();
            throw;
        }
        remove_scratch();
    } else {
        m = read_mask(item, o.value_map, background_id(o));
    }
    check_mask(o, item, m);
    RenderedImage out;
    out.empty = std::all_of(m.values.begin(), m.values.end(), [](uint8_t v) { return v == 0; });
    std::ostringstream csv;
    switch (o.format) {
        case SubmissionFormat::tianchi: {
            const std::string rle = encode_tianchi_rle(m.values.data(), m.width, m.height);
            // The result must decode to the mask it came from.
            const std::vector<uint8_t> back = decode_tianchi_rle(rle, m.width, m.height, item.name);
            for (size_t k = 0; k < back.size(); ++k) {
                if (back[k] != (m.values[k] != 0)) throw Error(item.name + ": RLE round trip failed (internal error)");
            }
            csv << item.name << '\t' << rle << '\n';
            break;
        }
        case SubmissionFormat::spacenet: {
            const auto polygons = pixel_polygons(m, o.min_area_px);
            const std::string id = spacenet_image_id(item.name);
            out.empty = polygons.empty();  // --min-area can leave a mask with buildings no polygon
            if (polygons.empty()) csv << csv_field(id) << ",-1,POLYGON EMPTY,1\n";
            for (size_t k = 0; k < polygons.size(); ++k) {
                csv << csv_field(id) << ',' << k + 1 << ",\"" << polygons[k]->exportToWkt() << "\",1\n";
            }
            out.objects = static_cast<int64_t>(polygons.size());
            break;
        }
        case SubmissionFormat::inria: {
            const std::string name = submission_file_names(o, item.name)[0];
            write_inria_tiff((dir / name).string(), m);
            out.files.push_back(name);
            break;
        }
        case SubmissionFormat::xview2: {
            const auto files = submission_file_names(o, item.name);
            std::vector<uint8_t> localization(m.values.size()), damage(m.values.size());
            for (size_t k = 0; k < m.values.size(); ++k) {
                localization[k] = m.values[k] != 0;
                damage[k] = o.xview2_damage ? m.values[k] : localization[k];
            }
            write_png((dir / files[0]).string(), localization, m.width, m.height);
            write_png((dir / files[1]).string(), damage, m.width, m.height);
            out.files = files;
            break;
        }
        case SubmissionFormat::loveda: {
            const std::string name = submission_file_names(o, item.name)[0];
            write_png((dir / name).string(), m.values, m.width, m.height);
            out.files.push_back(name);
            break;
        }
        case SubmissionFormat::gaofen: {
            const std::string name = submission_file_names(o, item.name)[0];
            std::vector<uint8_t> values(m.values.size());
            const bool buildings = o.gaofen_track == "buildings";
            for (size_t k = 0; k < values.size(); ++k) {
                values[k] = buildings ? (m.values[k] ? 255 : 0) : static_cast<uint8_t>(m.values[k] + 1);
            }
            write_png((dir / name).string(), values, m.width, m.height);
            out.files.push_back(name);
            break;
        }
    }
    out.rows = csv.str();
    return out;
}

void check_request(const SubmissionOptions& o) {
    if (o.items.empty()) throw usage_error(std::string("submit ") + to_string(o.format) + ": no images");
    if (o.format == SubmissionFormat::gaofen && o.gaofen_track != "buildings" && o.gaofen_track != "2020-9class") {
        throw usage_error("submit gaofen: unknown track '" + o.gaofen_track + "' (buildings or 2020-9class)");
    }
    check_output_path(o.output, o.overwrite);
    if (!o.zip.empty()) check_output_path(o.zip, o.overwrite);
    // Never an input: not the CSV over a mask, not the zip over the CSV, not a result folder over its inputs.
    std::vector<std::string> inputs;
    for (const auto& item : o.items) inputs.push_back(item.mask);
    check_distinct_outputs({o.output, o.zip}, inputs);
    if (!writes_csv(o.format)) check_folder_holds_no_input(o.output, inputs);
}

// The submission being written: a CSV under a temporary name, or a temporary folder.
class PendingSubmission {
public:
    explicit PendingSubmission(const SubmissionOptions& o) : o_(o) {
        if (writes_csv(o.format)) {
            csv_file_ = std::make_unique<PendingOutput>(o.output, o.overwrite);
            csv_.open(csv_file_->temporary_path(), std::ios::binary);
            if (!csv_) throw Error(o.output + ": cannot write");
            if (o.format == SubmissionFormat::spacenet) csv_ << "ImageId,BuildingId,PolygonWKT_Pix,Confidence\n";
        } else {
            folder_ = std::make_unique<PendingDirectory>(o.output);
        }
    }
    fs::path folder() const { return folder_ ? fs::path(folder_->temporary_path()) : fs::path(); }

    void add(const std::string& name, const RenderedImage& image, SubmissionResult& result) {
        names_.push_back(name);
        csv_ << image.rows;
        for (const std::string& f : image.files) written_.push_back(f);
        result.objects += image.objects;
        result.empty_images += image.empty;
    }

    // Validates, zips, and renames both into place.
    void finish(SubmissionResult& result, const ProgressFn& progress) {
        if (o_.format == SubmissionFormat::gaofen && o_.gaofen_track != "buildings") {
            std::ofstream table(folder() / "class_table.csv");
            table << "value,class\n";
            for (size_t c = 0; c < kGaofen2020Classes.size(); ++c) table << c + 1 << ',' << kGaofen2020Classes[c] << '\n';
            if (!table) throw Error(o_.output + ": writing class_table.csv failed" + write_failure_reason());
            written_.push_back("class_table.csv");
        }
        result.output = o_.output;
        result.images = static_cast<int64_t>(names_.size());
        // The zip packs the submission's files under their temporary names, and both are renamed into
        // place together once both are complete (a zip that cannot be written leaves no submission).
        std::optional<PendingOutput> zip;
        if (csv_file_) {
            csv_.close();
            if (!csv_) throw Error(o_.output + ": writing failed" + write_failure_reason());
            result.validation = validate_submission(o_, csv_file_->temporary_path(), names_);
            if (!o_.zip.empty()) zip.emplace(write_zip(o_.zip, {{csv_file_->temporary_path(), fs::path(o_.output).filename().string()}}, o_.overwrite));
        } else {
            result.validation = validate_submission(o_, folder_->temporary_path(), names_);
            std::vector<std::pair<std::string, std::string>> files;
            for (const std::string& f : written_) files.emplace_back((folder() / f).string(), f);
            if (!o_.zip.empty()) zip.emplace(write_zip(o_.zip, files, o_.overwrite));
        }
        report_progress(progress, 0.995, "zip");  // the last moment a cancel takes effect
        if (o_.before_commit) {
            SubmissionResult complete = result;
            complete.zip = o_.zip;
            o_.before_commit(complete);
        }
        if (zip) zip->check_final_path_free();
        if (csv_file_) {
            csv_file_->check_final_path_free();
        } else {
            folder_->check_final_path_free(o_.overwrite);
        }
        if (zip) {
            zip->commit();
            result.zip = o_.zip;
        }
        // The submission (the -o output) last: once it has its name, so has the zip.
        if (csv_file_) {
            csv_file_->commit();
        } else {
            folder_->commit(o_.overwrite);
        }
    }

private:
    const SubmissionOptions& o_;
    std::unique_ptr<PendingOutput> csv_file_;
    std::unique_ptr<PendingDirectory> folder_;
    std::ofstream csv_;
    std::vector<std::string> names_;
    std::vector<std::string> written_;  // the folder's files (their names inside the zip too)
};


std::string image_part_name(size_t position) {
    char name[32];
    std::snprintf(name, sizeof name, "image-%06zu", position);
    return name;
}

// Temporaries of killed runs for this shard's parts (`.rsi-tmp-<pid>-<n>-image-NNNNNN`): only this shard
// writes them, so any of another process is stale, whatever node it ran on.
void remove_stale_part_temporaries(const std::string& parts_dir, const std::set<size_t>& mine) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(parts_dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind(".rsi-tmp-", 0) != 0) continue;
        const size_t at = name.find("-image-");
        if (at == std::string::npos) continue;
        const long pid = std::strtol(name.c_str() + 9, nullptr, 10);
        const size_t position = static_cast<size_t>(std::strtoull(name.c_str() + at + 7, nullptr, 10));
        if (pid != static_cast<long>(::getpid()) && mine.count(position)) fs::remove_all(entry.path(), ec);
    }
}

// The format's options a merge needs to assemble and validate the submission.
nlohmann::json format_settings(const SubmissionOptions& o) {
    return {{"format", to_string(o.format)}, {"gaofen_track", o.gaofen_track}, {"xview2_damage", o.xview2_damage},
            {"width", o.width}, {"height", o.height}, {"min_area_px", o.min_area_px}};
}

void apply_format_settings(const nlohmann::json& j, SubmissionOptions& o) {
    o.format = parse_submission_format(j.at("format").get<std::string>());
    o.gaofen_track = j.at("gaofen_track").get<std::string>();
    o.xview2_damage = j.at("xview2_damage").get<bool>();
    o.width = j.at("width").get<int64_t>();
    o.height = j.at("height").get<int64_t>();
    o.min_area_px = j.at("min_area_px").get<double>();
}

// Builds the submission from the parts of every image, in name order (as a direct run writes it).
SubmissionResult assemble_from_parts(const SubmissionOptions& o, const std::vector<std::string>& names, const std::string& parts_dir,
                                     const std::map<std::string, nlohmann::json>& entries, const ProgressFn& progress) {
    check_output_path(o.output, o.overwrite);
    if (!o.zip.empty()) check_output_path(o.zip, o.overwrite);
    SubmissionResult result;
    PendingSubmission pending(o);
    for (size_t i = 0; i < names.size(); ++i) {
        const nlohmann::json& entry = entries.at(names[i]);
        const fs::path part = fs::path(parts_dir) / entry.at("part").get<std::string>();
        RenderedImage image;
        image.objects = entry.value("objects", int64_t{0});
        image.empty = entry.value("empty", false);
        if (writes_csv(o.format)) {
            std::ifstream in(part / "rows.csv", std::ios::binary);
            std::ostringstream text;
            text << in.rdbuf();
            if (!in) throw Error((part / "rows.csv").string() + ": cannot read the part");
            image.rows = text.str();
        } else {
            for (const std::string& f : submission_file_names(o, names[i])) {
                std::error_code ec;
                fs::copy_file(part / f, pending.folder() / f, ec);
                if (ec) throw Error((part / f).string() + ": cannot copy the part: " + ec.message());
                image.files.push_back(f);
            }
        }
        pending.add(names[i], image, result);
        report_progress(progress, 0.9 + 0.09 * static_cast<double>(i + 1) / static_cast<double>(names.size()), "assembling");
    }
    pending.finish(result, progress);
    return result;
}

}  // namespace

std::string submission_parts_dir(const SubmissionOptions& o) {
    return o.parts_dir.empty() ? without_trailing_separator(o.output) + ".parts" : o.parts_dir;
}

SubmissionResult write_submission(const SubmissionOptions& o, const ProgressFn& progress) {
    check_request(o);
    ensure_gdal_registered();
    const std::vector<SubmissionItem> items = sorted_items(o);
    if (!o.resume && !o.shard) {
        SubmissionResult result;
        PendingSubmission pending(o);
        for (size_t i = 0; i < items.size(); ++i) {
            pending.add(items[i].name, render_image(o, items[i], pending.folder()), result);
            report_progress(progress, 0.9 * static_cast<double>(i + 1) / static_cast<double>(items.size()), "images");
        }
        pending.finish(result, progress);
        report_finished(progress, "done");
        return result;
    }

    // Journaled: every shard (and every resume) must see the same images, options and model.
    const ShardSpec shard = o.shard.value_or(ShardSpec{});
    const std::string parts_dir = submission_parts_dir(o);
    std::vector<std::string> names;
    std::vector<int64_t> pixels;
    nlohmann::json inputs = nlohmann::json::array();
    for (const SubmissionItem& item : items) {
        names.push_back(item.name);
        DatasetPtr ds = open_raster(item.mask);
        pixels.push_back(static_cast<int64_t>(ds->GetRasterXSize()) * ds->GetRasterYSize());
        const std::string fingerprint = file_fingerprint(item.mask);
        inputs.push_back(fingerprint.empty() ? item.mask : fingerprint);
    }
    nlohmann::json value_map = nlohmann::json::array();
    for (const auto& [from, to] : o.value_map) value_map.push_back({from, to});
    nlohmann::json settings = format_settings(o);
    settings["value_map"] = value_map;
    settings["images"] = names;
    settings["image_fingerprints"] = inputs;
    for (const auto& [key, value] : o.job_settings) settings[key] = value;
    nlohmann::json job{{"format", "rsi-submission-job"}, {"version", 1}, {"fingerprint", sha256_hex(json_text(settings))},
                       {"settings", settings}, {"shards", shard.count}, {"submission", format_settings(o)},
                       {"images", names}, {"pixels", pixels}, {"output", output_path_for_job(o.output)}};
    job = start_or_check_job(parts_dir, job, "rerun with the same options, or remove " + parts_dir + " to start over");
    check_shard_count(job, shard, parts_dir);
    const std::string fingerprint = job.at("fingerprint").get<std::string>();
    ItemJournal journal(parts_dir, fingerprint, shard);
    const std::vector<size_t> mine = o.shard ? shard_items(pixels, shard) : [&] {
        std::vector<size_t> all(items.size());
        for (size_t i = 0; i < all.size(); ++i) all[i] = i;
        return all;
    }();
    remove_stale_part_temporaries(parts_dir, std::set<size_t>(mine.begin(), mine.end()));

    SubmissionResult result;
    result.parts_dir = parts_dir;
    result.shard_images = static_cast<int64_t>(mine.size());
    for (size_t n = 0; n < mine.size(); ++n) {
        const SubmissionItem& item = items[mine[n]];
        const std::string part_name = image_part_name(mine[n]);
        if (journal.done(item.name) && fs::is_directory(fs::path(parts_dir) / part_name)) {
            ++result.images_resumed;
            continue;
        }
        report_progress(progress, 0.9 * static_cast<double>(n) / static_cast<double>(mine.size()), "images");
        // The part is complete under its final name before the journal records it; a part without a
        // journal line (killed in between) is simply made again and replaces it.
        PendingDirectory part((fs::path(parts_dir) / part_name).string());
        const RenderedImage image = render_image(o, item, part.temporary_path());
        if (writes_csv(o.format)) {
            std::ofstream rows(fs::path(part.temporary_path()) / "rows.csv", std::ios::binary);
            rows << image.rows;
            rows.close();
            if (!rows) throw Error(parts_dir + "/" + part_name + ": writing the part failed" + write_failure_reason());
        }
        part.commit(true);
        journal.record({{"item", item.name}, {"part", part_name}, {"objects", image.objects}, {"empty", image.empty}});
        ++result.images_run;
        report_progress(progress, 0.9 * static_cast<double>(n + 1) / static_cast<double>(mine.size()), "images");
    }
    if (o.shard) {
        result.assembled = false;
        result.output = o.output;
        report_finished(progress, "done");
        return result;
    }
    const SubmissionResult assembled = assemble_from_parts(o, names, parts_dir, journal.entries(), progress);
    result.output = assembled.output;
    result.zip = assembled.zip;
    result.images = assembled.images;
    result.objects = assembled.objects;
    result.empty_images = assembled.empty_images;
    result.validation = assembled.validation;
    std::error_code ec;
    fs::remove_all(parts_dir, ec);
    report_finished(progress, "done");
    return result;
}

SubmissionResult merge_submission(const SubmissionMergeOptions& m, const ProgressFn& progress) {
    ensure_gdal_registered();
    const std::string parts_dir = without_trailing_separator(m.parts_dir);
    if (!fs::is_directory(parts_dir)) throw Error(parts_dir + ": not a folder (the parts folder of `rsi submit ... --shard K/N`)");
    const nlohmann::json job = read_job(parts_dir);
    if (job.value("format", "") != "rsi-submission-job") throw Error(parts_dir + "/job.json: not an rsi submission job");
    SubmissionOptions o;
    apply_format_settings(job.at("submission"), o);
    if (!m.format.empty() && parse_submission_format(m.format) != o.format) {
        throw usage_error(parts_dir + ": holds a " + to_string(o.format) + " submission, not " + m.format);
    }
    // Without -o: the output the shards were given, placed beside the parts folder (as `rsi merge`
    // does) whatever directory the merge runs in.
    const std::string recorded = job.at("output").get<std::string>();
    o.output = m.output.empty() ? merge_output_path(parts_dir, recorded, recorded) : m.output;
    o.zip = m.zip;
    o.overwrite = m.overwrite;
    o.before_commit = m.before_commit;
    check_output_path(o.output, o.overwrite);
    if (!o.zip.empty()) check_output_path(o.zip, o.overwrite);
    const std::string fingerprint = job.at("fingerprint").get<std::string>();
    const int shards = job.at("shards").get<int>();
    const auto shard_locks = lock_every_shard(parts_dir, shards);  // none still running
    const auto names = job.at("images").get<std::vector<std::string>>();
    const auto pixels = job.at("pixels").get<std::vector<int64_t>>();
    if (names.size() != pixels.size()) throw Error(parts_dir + "/job.json: images and pixels differ in length");

    std::map<std::string, nlohmann::json> entries;
    std::vector<std::string> problems;
    for (int k = 0; k < shards; ++k) {
        const ShardSpec shard{k, shards};
        const std::string journal = (fs::path(parts_dir) / StripJournal::journal_name(shard)).string();
        const std::string rerun = "`rsi submit ... --shard " + std::to_string(k) + "/" + std::to_string(shards) + " --resume`";
        if (!fs::exists(journal)) {
            problems.push_back("shard " + std::to_string(k) + " of " + std::to_string(shards) + " is missing (no " +
                               fs::path(journal).filename().string() + "; run " + rerun + ")");
            continue;
        }
        const auto done = read_item_journal(journal, fingerprint);
        int64_t finished = 0;
        std::string first_missing;
        const std::vector<size_t> expected = shard_items(pixels, shard);
        for (size_t i : expected) {
            const auto it = done.find(names[i]);
            if (it != done.end() && fs::is_directory(fs::path(parts_dir) / it->second.value("part", ""))) {
                entries[names[i]] = it->second;
                ++finished;
            } else if (first_missing.empty()) {
                first_missing = names[i];
            }
        }
        if (finished < static_cast<int64_t>(expected.size())) {
            problems.push_back("shard " + std::to_string(k) + " of " + std::to_string(shards) + " is not finished (" +
                               std::to_string(finished) + " of " + std::to_string(expected.size()) + " images, " + first_missing +
                               " not done; rerun " + rerun + ")");
        }
        report_progress(progress, 0.1 * (k + 1) / shards, "checking shards");
    }
    if (!problems.empty()) {
        std::string text;
        for (const auto& p : problems) text += (text.empty() ? "" : "; ") + p;
        throw Error(parts_dir + ": " + text);
    }
    SubmissionResult result = assemble_from_parts(o, names, parts_dir, entries, progress);
    result.parts_dir = parts_dir;
    if (!m.keep_parts) {
        std::error_code ec;
        fs::remove_all(parts_dir, ec);
    }
    report_finished(progress, "done");
    return result;
}

SubmissionValidation validate_submission(const SubmissionOptions& o, const std::string& written, const std::vector<std::string>& image_names) {
    SubmissionValidation v;
    const auto [w, h] = required_size(o);
    if (writes_csv(o.format)) {
        std::ifstream in(written);
        if (!in) throw Error(written + ": cannot read back");
        v.files = 1;
        std::set<std::string> expected;
        for (const std::string& name : image_names) expected.insert(o.format == SubmissionFormat::spacenet ? spacenet_image_id(name) : name);
        std::set<std::string> found;
        if (o.format == SubmissionFormat::tianchi) {
            for (const TianchiEntry& e : read_tianchi_csv(in, written)) {
                if (!expected.count(e.name)) throw Error(written + ":" + std::to_string(e.line) + ": image '" + e.name + "' is not one of the inputs");
                if (w > 0) decode_tianchi_rle(e.rle, w, h, written + ":" + std::to_string(e.line));
                found.insert(e.name);
                ++v.rows;
            }
            v.checks.push_back("tab-separated name<TAB>RLE rows, no header, names unique");
            if (w > 0) v.checks.push_back("every RLE decodes within " + std::to_string(w) + "x" + std::to_string(h) + " (column-major, 1-based)");
        } else {
            std::map<std::string, std::set<int64_t>> ids;
            for (const SpacenetEntry& e : read_spacenet_csv(in, written)) {
                const std::string at = written + ":" + std::to_string(e.line);
                if (!expected.count(e.image_id)) throw Error(at + ": ImageId '" + e.image_id + "' is not one of the inputs");
                OGRGeometry* raw = nullptr;
                if (OGRGeometryFactory::createFromWkt(e.wkt.c_str(), nullptr, &raw) != OGRERR_NONE || !raw) {
                    throw Error(at + ": PolygonWKT_Pix is not valid WKT");
                }
                std::unique_ptr<OGRGeometry> g(raw);
                if (g->IsEmpty() != (e.building_id == -1)) throw Error(at + ": POLYGON EMPTY goes with BuildingId -1 and only with it");
                if (e.building_id == 0 || e.building_id < -1) throw Error(at + ": BuildingId must be positive (or -1 for an image without buildings)");
                if (!g->IsEmpty() && (wkbFlatten(g->getGeometryType()) != wkbPolygon || !g->IsValid())) {
                    throw Error(at + ": PolygonWKT_Pix is not a valid polygon");
                }
                if (!ids[e.image_id].insert(e.building_id).second) throw Error(at + ": BuildingId repeats within " + e.image_id);
                found.insert(e.image_id);
                ++v.rows;
            }
            v.checks.push_back("header ImageId,BuildingId,PolygonWKT_Pix,Confidence; WKT polygons valid; positive ids unique per image");
            v.checks.push_back("images without buildings have exactly the row ImageId,-1,POLYGON EMPTY,1");
        }
        for (const std::string& name : expected) {
            if (!found.count(name)) throw Error(written + ": no entry for image '" + name + "'");
        }
        v.images = static_cast<int64_t>(found.size());
        v.checks.push_back("one entry for each of the " + std::to_string(expected.size()) + " images, none other");
        return v;
    }
    std::set<std::string> expected;
    for (const std::string& name : image_names) {
        for (const std::string& f : submission_file_names(o, name)) expected.insert(f);
    }
    if (o.format == SubmissionFormat::gaofen && o.gaofen_track != "buildings") expected.insert("class_table.csv");
    std::set<std::string> present;
    for (const auto& entry : fs::directory_iterator(written)) present.insert(entry.path().filename().string());
    for (const std::string& f : present) {
        if (!expected.count(f)) throw Error(written + "/" + f + ": not part of a " + to_string(o.format) + " submission");
    }
    for (const std::string& f : expected) {
        if (!present.count(f)) throw Error(written + ": " + f + " is missing");
    }
    const int largest = o.format == SubmissionFormat::gaofen && o.gaofen_track != "buildings" ? 9 : largest_value(o);
    for (const std::string& f : expected) {
        if (f == "class_table.csv") continue;
        const std::string path = (fs::path(written) / f).string();
        DatasetPtr ds = open_raster(path);
        const std::string driver = ds->GetDriver()->GetDescription();
        const bool want_png = o.format != SubmissionFormat::inria;
        if (driver != (want_png ? "PNG" : "GTiff")) throw Error(path + ": written as " + driver + ", not " + (want_png ? "PNG" : "GeoTIFF"));
        if (ds->GetRasterCount() != 1 || ds->GetRasterBand(1)->GetRasterDataType() != GDT_Byte) {
            throw Error(path + ": must be one 8-bit band");
        }
        const int64_t fw = ds->GetRasterXSize(), fh = ds->GetRasterYSize();
        if (w > 0 && (fw != w || fh != h)) {
            throw Error(path + ": is " + std::to_string(fw) + "x" + std::to_string(fh) + ", not " + std::to_string(w) + "x" + std::to_string(h));
        }
        std::vector<uint8_t> values(static_cast<size_t>(fw * fh));
        if (ds->GetRasterBand(1)->RasterIO(GF_Read, 0, 0, static_cast<int>(fw), static_cast<int>(fh), values.data(), static_cast<int>(fw),
                                           static_cast<int>(fh), GDT_Byte, 0, 0) != CE_None) {
            throw Error(path + ": cannot read back: " + last_gdal_error());
        }
        const bool localization = f.rfind("test_localization_", 0) == 0;
        const bool zero_255 = o.format == SubmissionFormat::inria || (o.format == SubmissionFormat::gaofen && o.gaofen_track == "buildings");
        for (uint8_t value : values) {
            const bool ok = zero_255 ? (value == 0 || value == 255)
                            : localization || (o.format == SubmissionFormat::xview2 && !o.xview2_damage) ? value <= 1
                            : value <= largest;
            if (!ok) throw Error(path + ": holds the value " + std::to_string(value) + ", outside the format's values");
        }
        ++v.files;
    }
    v.images = static_cast<int64_t>(image_names.size());
    v.checks.push_back("exactly the expected " + std::to_string(v.files) + " files (names from the image names)");
    v.checks.push_back("one 8-bit band each, the format's value range" + (w > 0 ? ", " + std::to_string(w) + "x" + std::to_string(h) : std::string()));
    return v;
}

DecodeResult decode_submission(const DecodeOptions& o, const ProgressFn& progress) {
    if (!writes_csv(o.format)) {
        throw usage_error(std::string("submit decode: ") + to_string(o.format) + " submissions are masks already; decode reads tianchi or spacenet CSVs");
    }
    if (o.foreground < 1 || o.foreground > 255) throw usage_error("submit decode: --foreground must be 1..255");
    if (fs::exists(o.output_dir) && !o.overwrite) throw usage_error(o.output_dir + ": already exists (use --overwrite to replace it)");
    check_folder_holds_no_input(o.output_dir, {o.input});
    ensure_gdal_registered();
    std::error_code ec;
    if (fs::is_directory(o.input, ec)) throw Error(o.input + ": is a folder, not a submission CSV");  // it read as an empty CSV
    std::ifstream in(o.input);
    if (!in) throw Error(o.input + ": cannot open");
    PendingDirectory folder(o.output_dir);
    DecodeResult result;
    std::set<std::string> done;
    const size_t pixels = static_cast<size_t>(o.width * o.height);
    if (o.format == SubmissionFormat::tianchi) {
        const auto entries = read_tianchi_csv(in, o.input);
        for (const TianchiEntry& e : entries) {
            std::vector<uint8_t> mask = decode_tianchi_rle(e.rle, o.width, o.height, o.input + ":" + std::to_string(e.line));
            for (uint8_t& v : mask) v = v ? static_cast<uint8_t>(o.foreground) : 0;
            const std::string name = stem_of(e.name) + ".png";
            if (!done.insert(name).second) throw Error(o.input + ":" + std::to_string(e.line) + ": a second image decodes to " + name);
            write_png((fs::path(folder.temporary_path()) / name).string(), mask, o.width, o.height);
            ++result.images;
            report_progress(progress, static_cast<double>(result.images) / static_cast<double>(entries.size()), "images");
        }
    } else {
        std::map<std::string, std::vector<std::unique_ptr<OGRGeometry>>> images;
        for (const SpacenetEntry& e : read_spacenet_csv(in, o.input)) {
            OGRGeometry* raw = nullptr;
            if (OGRGeometryFactory::createFromWkt(e.wkt.c_str(), nullptr, &raw) != OGRERR_NONE || !raw) {
                throw Error(o.input + ":" + std::to_string(e.line) + ": PolygonWKT_Pix is not valid WKT");
            }
            std::unique_ptr<OGRGeometry> g(raw);
            const std::string where = o.input + ":" + std::to_string(e.line) + ": ";
            // The ImageId names a file in the output folder: a file name, nothing that climbs out of it.
            if (e.image_id.empty() || e.image_id.find_first_of("/\\") != std::string::npos || e.image_id == "." || e.image_id == "..") {
                throw Error(where + "ImageId '" + e.image_id + "' is not a file name");
            }
            const OGRwkbGeometryType type = wkbFlatten(g->getGeometryType());
            if (type != wkbPolygon && type != wkbMultiPolygon) {
                throw Error(where + "PolygonWKT_Pix is a " + std::string(OGRGeometryTypeToName(g->getGeometryType())) + ", not a polygon");
            }
            if (!g->IsEmpty()) {
                OGREnvelope env;
                g->getEnvelope(&env);
                if (env.MinX < 0 || env.MinY < 0 || env.MaxX > static_cast<double>(o.width) || env.MaxY > static_cast<double>(o.height)) {
                    throw Error(where + "the polygon of " + e.image_id + " reaches beyond the image size " + std::to_string(o.width) + "x" +
                                std::to_string(o.height) + " (--size)");
                }
            }
            auto& list = images[e.image_id];
            if (!g->IsEmpty()) list.push_back(std::move(g));
        }
        GDALDriver* mem = GetGDALDriverManager()->GetDriverByName("MEM");
        for (auto& [id, geometries] : images) {
            DatasetPtr ds(mem->Create("", static_cast<int>(o.width), static_cast<int>(o.height), 1, GDT_Byte, nullptr));
            std::vector<OGRGeometryH> handles;
            std::vector<double> burn;
            for (auto& g : geometries) {
                handles.push_back(OGRGeometry::ToHandle(g.get()));
                burn.push_back(o.foreground);
            }
            int band = 1;
            // Identity geotransform: WKT coordinates are pixels; a pixel is inside when its centre is.
            if (!handles.empty() && GDALRasterizeGeometries(GDALDataset::ToHandle(ds.get()), 1, &band, static_cast<int>(handles.size()),
                                                            handles.data(), nullptr, nullptr, burn.data(), nullptr, nullptr, nullptr) != CE_None) {
                throw Error(o.input + ": rasterising " + id + " failed: " + last_gdal_error());
            }
            std::vector<uint8_t> mask(pixels);
            if (ds->GetRasterBand(1)->RasterIO(GF_Read, 0, 0, static_cast<int>(o.width), static_cast<int>(o.height), mask.data(),
                                               static_cast<int>(o.width), static_cast<int>(o.height), GDT_Byte, 0, 0) != CE_None) {
                throw Error(o.input + ": rasterising " + id + " failed: " + last_gdal_error());
            }
            write_png((fs::path(folder.temporary_path()) / (id + ".png")).string(), mask, o.width, o.height);
            ++result.images;
            report_progress(progress, static_cast<double>(result.images) / static_cast<double>(images.size()), "images");
        }
    }
    folder.commit(o.overwrite);
    result.output_dir = folder.final_path();
    return result;
}

}  // namespace rsi
