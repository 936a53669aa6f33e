#pragma once
// Versions of rsi and the libraries it was built with, for --version and run manifests.
#include <string>

namespace rsi {

struct LibraryVersions {
    std::string rsi, gdal, proj, opencv, libtorch;
};

LibraryVersions library_versions();

}  // namespace rsi
