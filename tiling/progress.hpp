#pragma once
// Progress reporting in the style of GDALProgressFunc: fraction in [0,1], a short description of
// the current step; returning false asks the work to stop (it then throws ErrorKind::cancelled).
#include <functional>
#include <string_view>

#include "tiling/error.hpp"

namespace rsi {

using ProgressFn = std::function<bool(double fraction, std::string_view what)>;

// Calls `progress` if set, and turns a cancel request into an Error.
inline void report_progress(const ProgressFn& progress, double fraction, std::string_view what) {
    if (progress && !progress(fraction, what)) {
        throw Error("cancelled", ErrorKind::cancelled);
    }
}

}  // namespace rsi
