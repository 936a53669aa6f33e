#pragma once
// Shared helpers for the tests: temporary directories, in-memory rasters, the shared real data.
#include <algorithm>
#include <cpl_error.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <gdal_priv.h>
#include <gtest/gtest.h>
#include <string>
#include <vector>

#include "tiling/error.hpp"
#include "tiling/gdal_dataset.hpp"
#include "tiling/raster_source.hpp"

namespace rsi::test {

// `call` must throw rsi::Error of `kind` whose message contains `fragment`.
inline void expect_error(const std::function<void()>& call, ErrorKind kind, const std::string& fragment) {
    try {
        call();
        ADD_FAILURE() << "no error; expected one containing \"" << fragment << "\"";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), kind) << e.what();
        EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
}

// The names in a folder, sorted: what a run left behind.
inline std::vector<std::string> names_in_folder(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

// A small text file, e.g. the output another run wrote meanwhile in tests of concurrent writers.
inline void write_text_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

inline std::string read_text_file(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The real imagery beside the repository. Tests that need it fail (never skip) where it is absent.
inline std::string shared_data(const std::string& relative) {
    const std::string path = std::string(RSI_SHARED_DATA) + "/" + relative;
    if (!std::filesystem::exists(path)) {
        ADD_FAILURE() << "real test data missing: " << path
                      << " (the tests need ../shared/data beside the repository)";
    }
    return path;
}

// A fresh directory removed at the end of the test.
class TempDir {
public:
    TempDir() {
        path_ = std::filesystem::temp_directory_path() /
                ("rsi-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    std::string operator/(const std::string& name) const { return (path_ / name).string(); }
    std::string str() const { return path_.string(); }

private:
    static int& counter() {
        static int n = 0;
        return n;
    }
    std::filesystem::path path_;
};

// Silences GDAL's error printing for errors a test provokes on purpose.
class QuietGdal {
public:
    QuietGdal() { CPLPushErrorHandler(CPLQuietErrorHandler); }
    ~QuietGdal() { CPLPopErrorHandler(); }
};

// Creates a GeoTIFF (on /vsimem/ or disk) whose band b, pixel (x, y) holds value(b, x, y).
template <typename Fn>
void make_raster(const std::string& path, int width, int height, int bands, GDALDataType type, Fn value,
                 const std::vector<std::string>& options = {}) {
    ensure_gdal_registered();
    CPLStringList opts;
    for (const auto& o : options) opts.AddString(o.c_str());
    DatasetPtr ds(GetGDALDriverManager()->GetDriverByName("GTiff")->Create(path.c_str(), width, height, bands, type,
                                                                          opts.List()));
    ASSERT_TRUE(ds) << "cannot create " << path;
    std::vector<double> row(static_cast<size_t>(width));
    for (int b = 1; b <= bands; ++b) {
        for (int y = 0; y < height; ++y) {
            for (int x = 0; x < width; ++x) row[static_cast<size_t>(x)] = value(b, x, y);
            ASSERT_EQ(ds->GetRasterBand(b)->RasterIO(GF_Write, 0, y, width, 1, row.data(), width, 1, GDT_Float64, 0, 0,
                                                     nullptr),
                      CE_None);
        }
    }
}

// Sets a UTM geotransform and CRS on an existing raster.
inline void georeference(const std::string& path, const double gt[6], int epsg) {
    DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(path.c_str(), GA_Update)));
    ASSERT_TRUE(ds);
    double copy[6];
    std::copy(gt, gt + 6, copy);
    ds->SetGeoTransform(copy);
    OGRSpatialReference srs;
    srs.importFromEPSG(epsg);
    ds->SetSpatialRef(&srs);
}

// An image description (no file) with `bands` data bands of UInt16, and an alpha band after them
// when asked: what choosing a bundled model looks at.
inline RasterInfo image_with_bands(int bands, bool alpha = false) {
    RasterInfo info;
    info.path = "image.tif";
    const auto band = [](GDALDataType type, const char* colour) {
        BandInfo b;
        b.data_type = type;
        b.color_interpretation = colour;
        return b;
    };
    for (int b = 0; b < bands; ++b) info.bands.push_back(band(GDT_UInt16, "Undefined"));
    if (alpha) info.bands.push_back(band(GDT_Byte, "Alpha"));
    return info;
}

}  // namespace rsi::test
