#include "src/versions.hpp"

#include <gdal.h>
#include <opencv2/core/version.hpp>
#include <proj.h>

#include "rsi/version.hpp"
#ifdef RSI_WITH_TORCH
#include "models/runtime_info.hpp"
#endif

namespace rsi {

LibraryVersions library_versions() {
    LibraryVersions v;
    v.rsi = version_string;
    v.gdal = GDALVersionInfo("RELEASE_NAME");
    v.proj = proj_info().version;
    v.opencv = CV_VERSION;
#ifdef RSI_WITH_TORCH
    v.libtorch = models::libtorch_version();
#else
    v.libtorch = "not built";
#endif
    return v;
}

}  // namespace rsi
