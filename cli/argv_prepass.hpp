#pragma once
// CLI11 2.1 rejects multi-letter single-dash names ("Invalid one char name"), but GDAL users type
// -co and -of. This pre-pass rewrites those two to their long forms before parsing.
#include <string>
#include <vector>

namespace rsi::cli {

// Throws std::invalid_argument for GDAL's -ot, -lco and -dsco, which rsi does not have.
std::vector<std::string> rewrite_gdal_style_options(const std::vector<std::string>& args);

}  // namespace rsi::cli
