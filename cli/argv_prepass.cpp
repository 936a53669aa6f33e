#include "cli/argv_prepass.hpp"

#include <array>
#include <string_view>

namespace rsi::cli {

std::vector<std::string> rewrite_gdal_style_options(const std::vector<std::string>& args) {
    static constexpr std::array<std::string_view, 5> gdal_style{"-co", "-of", "-lco", "-ot", "-dsco"};
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
        if (!rewritten) out.push_back(arg);
    }
    return out;
}

}  // namespace rsi::cli
