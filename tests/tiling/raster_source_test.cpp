#include "tiling/raster_source.hpp"

#include <cmath>
#include <gtest/gtest.h>
#include <fstream>
#include <limits>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_support.hpp"
#include "tiling/error.hpp"

namespace rsi {
namespace {

using test::make_raster;
using test::QuietGdal;

double ramp(int b, int x, int y) { return b * 100 + y * 10 + x; }  // fits every type for 9x9 images

TEST(RasterSource, DescribesSizeBandsTypeBlocksAndGeoreferencing) {
    const std::string path = "/vsimem/describe.tif";
    make_raster(path, 40, 30, 3, GDT_UInt16, ramp, {"TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16"});
    const double gt[6] = {500000, 0.5, 0, 4000000, 0, -0.5};
    test::georeference(path, gt, 32616);
    const RasterSource src = RasterSource::open(path);
    const RasterInfo& i = src.info();
    EXPECT_EQ(i.width, 40);
    EXPECT_EQ(i.height, 30);
    EXPECT_EQ(i.band_count(), 3);
    EXPECT_EQ(i.data_type, GDT_UInt16);
    EXPECT_EQ(i.block_width, 16);
    EXPECT_EQ(i.block_height, 16);
    ASSERT_TRUE(i.epsg.has_value());
    EXPECT_EQ(*i.epsg, 32616);
    EXPECT_TRUE(i.georeferenced());
    EXPECT_EQ(i.mask, MaskSource::none);
    const auto wgt = i.window_geotransform(10, 4);
    EXPECT_DOUBLE_EQ(wgt[0], 500005.0);
    EXPECT_DOUBLE_EQ(wgt[3], 3999998.0);
    VSIUnlink(path.c_str());
}

class EveryType : public ::testing::TestWithParam<GDALDataType> {};

TEST_P(EveryType, WindowReadReturnsTheStoredValues) {
    const GDALDataType type = GetParam();
    const std::string path = std::string("/vsimem/type_") + GDALGetDataTypeName(type) + ".tif";
    make_raster(path, 9, 9, 2, type, [](int b, int x, int y) { return (b * 100 + y * 10 + x) % 250; });
    const RasterSource src = RasterSource::open(path);
    const PixelWindow w{2, 3, 4, 5};
    const std::vector<float> f = src.read_float(w, {2, 1});
    ASSERT_EQ(f.size(), 40u);
    for (int j = 0; j < 5; ++j)
        for (int i = 0; i < 4; ++i) {
            EXPECT_EQ(f[static_cast<size_t>(j * 4 + i)], (200 + (3 + j) * 10 + 2 + i) % 250);        // band 2 first
            EXPECT_EQ(f[static_cast<size_t>(20 + j * 4 + i)], (100 + (3 + j) * 10 + 2 + i) % 250);   // then band 1
        }
    // Native buffer of the same type.
    std::vector<unsigned char> native(static_cast<size_t>(w.area() * GDALGetDataTypeSizeBytes(type)));
    src.read(w, {1}, type, native.data());
    double first = 0;
    GDALCopyWords(native.data(), type, 0, &first, GDT_Float64, 0, 1);
    EXPECT_EQ(first, (100 + 30 + 2) % 250);
    VSIUnlink(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(Types, EveryType,
                         ::testing::Values(GDT_Byte, GDT_UInt16, GDT_Int16, GDT_UInt32, GDT_Int32, GDT_Float32,
                                           GDT_Float64));

TEST(RasterSource, ConstantEdgeFillsOutsidePixels) {
    const std::string path = "/vsimem/constant.tif";
    make_raster(path, 4, 3, 1, GDT_Byte, [](int, int x, int y) { return 1 + y * 4 + x; });
    const RasterSource src = RasterSource::open(path);
    EdgeFill fill;
    fill.value = 99;
    const std::vector<float> f = src.read_float({-1, -1, 6, 5}, {1}, fill);
    const std::vector<float> expected = {99, 99, 99, 99, 99, 99,  //
                                         99, 1,  2,  3,  4,  99,  //
                                         99, 5,  6,  7,  8,  99,  //
                                         99, 9,  10, 11, 12, 99,  //
                                         99, 99, 99, 99, 99, 99};
    EXPECT_EQ(f, expected);
    const std::vector<float> outside = src.read_float({10, 10, 2, 2}, {1}, fill);
    EXPECT_EQ(outside, std::vector<float>(4, 99));
    VSIUnlink(path.c_str());
}

TEST(RasterSource, ReflectEdgeMirrorsWithoutRepeatingTheBorder) {
    const std::string path = "/vsimem/reflect.tif";
    make_raster(path, 4, 1, 1, GDT_Int16, [](int, int x, int) { return x; });  // row: 0 1 2 3
    const RasterSource src = RasterSource::open(path);
    EdgeFill reflect;
    reflect.mode = EdgeFill::Mode::reflect;
    // columns -3..8 -> 3 2 1 0 1 2 3 2 1 0 1 2 (reflect-101, repeated for windows wider than the image)
    const std::vector<float> f = src.read_float({-3, 0, 12, 1}, {1}, reflect);
    EXPECT_EQ(f, (std::vector<float>{3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2}));
    // rows mirror the same way: a 1-row image repeats its row
    const std::vector<float> g = src.read_float({0, -2, 2, 3}, {1}, reflect);
    EXPECT_EQ(g, (std::vector<float>{0, 1, 0, 1, 0, 1}));
    VSIUnlink(path.c_str());
}

TEST(RasterSource, ValidityFromNodataAlphaAndOutside) {
    const std::string nodata = "/vsimem/nodata.tif";
    make_raster(nodata, 3, 2, 2, GDT_Byte, [](int b, int x, int y) { return (x == 0 && y == 0) || (b == 1 && x == 1) ? 0 : 5; });
    {
        DatasetPtr ds(GDALDataset::FromHandle(GDALOpen(nodata.c_str(), GA_Update)));
        ds->GetRasterBand(1)->SetNoDataValue(0);
        ds->GetRasterBand(2)->SetNoDataValue(0);
    }
    const RasterSource src = RasterSource::open(nodata);
    EXPECT_EQ(src.info().mask, MaskSource::nodata);
    std::vector<uint8_t> v(8);
    src.read_validity({0, 0, 4, 2}, {}, v.data());
    // (0,0) nodata in both bands; (1,y) nodata only in band 1 -> still valid; column 3 is outside.
    EXPECT_EQ(v, (std::vector<uint8_t>{0, 255, 255, 0, 255, 255, 255, 0}));
    src.read_validity({0, 0, 4, 2}, {1}, v.data());
    EXPECT_EQ(v, (std::vector<uint8_t>{0, 0, 255, 0, 255, 0, 255, 0}));

    const std::string alpha = "/vsimem/alpha.tif";
    make_raster(alpha, 2, 2, 2, GDT_Byte, [](int b, int x, int) { return b == 2 ? (x == 0 ? 0 : 255) : 7; },
                {"ALPHA=YES"});
    const RasterSource asrc = RasterSource::open(alpha);
    EXPECT_EQ(asrc.info().mask, MaskSource::alpha);
    std::vector<uint8_t> a(4);
    asrc.read_validity({0, 0, 2, 2}, {1}, a.data());
    EXPECT_EQ(a, (std::vector<uint8_t>{0, 255, 0, 255}));
    VSIUnlink(nodata.c_str());
    VSIUnlink(alpha.c_str());
}

TEST(RasterSource, NonFiniteValuesBecomeInvalidZeros) {
    const std::string path = "/vsimem/nan.tif";
    make_raster(path, 3, 1, 1, GDT_Float32, [](int, int x, int) {
        return x == 0 ? std::numeric_limits<double>::quiet_NaN() : (x == 1 ? std::numeric_limits<double>::infinity() : 2.5);
    });
    const RasterSource src = RasterSource::open(path);
    std::vector<float> f = src.read_float({0, 0, 3, 1}, {1});
    std::vector<uint8_t> valid(3, 255);
    mask_non_finite(f.data(), 1, 3, valid.data());
    EXPECT_EQ(f, (std::vector<float>{0, 0, 2.5f}));
    EXPECT_EQ(valid, (std::vector<uint8_t>{0, 0, 255}));
    VSIUnlink(path.c_str());
}

TEST(RasterSource, ResampledReadAveragesBlocks) {
    const std::string path = "/vsimem/resample.tif";
    make_raster(path, 4, 4, 1, GDT_Float32, [](int, int x, int y) { return (x / 2) + 10 * (y / 2); });
    const RasterSource src = RasterSource::open(path);
    std::vector<float> out(4);
    src.read_resampled({0, 0, 4, 4}, 2, 2, {1}, GDT_Float32, out.data(), GRIORA_Average);
    EXPECT_EQ(out, (std::vector<float>{0, 1, 10, 11}));
    VSIUnlink(path.c_str());
}

// A server that cannot be reached: GDAL's reason is in the one-line error, not printed before it, and
// a second open of the same URL (GDAL remembers the failure and says nothing then) still gives it.
TEST(RasterSource, AnUnreachableServerIsNamedWithGdalsReasonEveryTime) {
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(listener, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    socklen_t length = sizeof(address);
    ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
    ::close(listener);  // a port nothing listens on
    const std::string url = "/vsicurl/http://127.0.0.1:" + std::to_string(ntohs(address.sin_port)) + "/image.tif";
    std::vector<std::string> printed;
    CPLPushErrorHandlerEx(
        [](CPLErr severity, CPLErrorNum, const char* message) {
            if (severity != CE_Debug) static_cast<std::vector<std::string>*>(CPLGetErrorHandlerUserData())->push_back(message);
        },
        &printed);
    for (int attempt = 0; attempt < 2; ++attempt) {
        try {
            RasterSource::open(url);
            ADD_FAILURE() << "no error";
        } catch (const Error& e) {
            const std::string prefix = url + ": no such file (or not reachable: HTTP response code on ";
            EXPECT_EQ(std::string(e.what()).rfind(prefix, 0), 0u) << "attempt " << attempt << ": " << e.what();
        }
    }
    CPLPopErrorHandler();
    EXPECT_TRUE(printed.empty()) << printed.front();
}

TEST(RasterSource, ErrorsNameTheFileAndTheProblem) {
    QuietGdal quiet;
    try {
        RasterSource::open("/nonexistent/image.tif");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), "/nonexistent/image.tif: no such file");
    }
    // A virtual path to nothing (a zip that does not exist) is said to be missing, not unreadable.
    for (const char* missing : {"/vsizip//nonexistent/archive.zip/a.tif", "/vsimem/nothing-here.tif"}) {
        try {
            RasterSource::open(missing);
            FAIL() << "no error";
        } catch (const Error& e) {
            const std::string message = e.what();
            EXPECT_EQ(message.rfind(std::string(missing) + ": no such file (or not reachable", 0), 0u) << message;  // GDAL's reason, if any
            EXPECT_EQ(message.find('\n'), std::string::npos) << message;
        }
    }
    const test::TempDir dir;
    const std::string text = dir / "notes.tif";
    { std::ofstream(text) << "not a raster\n"; }
    try {
        RasterSource::open(text);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("not a raster"), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
    const std::string path = "/vsimem/bands.tif";
    make_raster(path, 2, 2, 3, GDT_Byte, ramp);
    const RasterSource src = RasterSource::open(path);
    try {
        src.read_float({0, 0, 2, 2}, {1, 4});
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::usage);
        EXPECT_EQ(std::string(e.what()), path + ": band 4 does not exist (the image has 3 bands)");
    }
    VSIUnlink(path.c_str());
}

TEST(RasterSource, TruncatedTiffFailsOnReadWithTheFileName) {
    QuietGdal quiet;
    const test::TempDir dir;
    const std::string path = dir / "cut.tif";
    make_raster(path, 256, 256, 1, GDT_Byte, [](int, int x, int y) { return (x + y) % 256; });
    std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
    const RasterSource src = RasterSource::open(path);  // header and directory are intact
    try {
        src.read_float({0, 0, 256, 256}, {1});
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()).rfind(path + ": is truncated: its blocks reach byte", 0), 0u) << e.what();
        EXPECT_NE(std::string(e.what()).find("; reading pixels 0,"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace rsi
