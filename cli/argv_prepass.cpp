#include "cli/argv_prepass.hpp"

#include <array>
#include <stdexcept>
#include <string_view>

namespace rsi::cli {

std::vector<std::string> rewrite_gdal_style_options(const std::vector<std::string>& args) {
    // GDAL's single-dash spellings of the options rsi has: --co (creation options) and --of (format).
    static constexpr std::array<std::string_view, 2> gdal_style{"-co", "-of"};
    std::vector<std::string> out;
    out.reserve(args.size());
    bool after_separator = false;  // everything after "--" is positional and left alone
    for (const std::string& arg : args) {
        if (arg == "--") after_separator = true;
        bool rewritten = false;
        if (!after_separator) {
            for (std::string_view name : gdal_style) {
                // "-co" alone, or "-co=VALUE"
                if (arg == name || (arg.size() > name.size() && arg.compare(0, name.size(), name) == 0 &&
                                    arg[name.size()] == '=')) {
                    out.push_back("-" + arg);
                    rewritten = true;
                    break;
                }
            }
        }
        // GDAL spellings of options rsi does not have: refused by name rather than parsed as "-o t".
        if (!rewritten && !after_separator) {
            for (std::string_view name : {std::string_view("-ot"), std::string_view("-lco"), std::string_view("-dsco")}) {
                if (arg == name || arg.rfind(std::string(name) + "=", 0) == 0) {
                    throw std::invalid_argument(std::string(name) + " is GDAL's option, not rsi's: rsi writes masks as Byte and "
                                                "probabilities as Float32 or Byte (--probability-format); see the command's --help");
                }
            }
        }
        if (!rewritten) out.push_back(arg);
    }
    return out;
}

}  // namespace rsi::cli
