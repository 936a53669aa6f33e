#pragma once
// CLI11 2.1 rejects multi-letter single-dash names ("Invalid one char name"), but GDAL users type
// -co, -of, -lco, -ot. This pre-pass rewrites them to their long forms before parsing.
#include <string>
#include <vector>

namespace rsi::cli {

std::vector<std::string> rewrite_gdal_style_options(const std::vector<std::string>& args);

}  // namespace rsi::cli
