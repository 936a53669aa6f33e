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

// The last report, once the outputs are in place: too late to cancel (a cancel now would call complete
// outputs interrupted, and a removed parts folder leaves nothing to redo), so the answer is ignored;
// the caller learns of a late interrupt by its own means.
inline void report_finished(const ProgressFn& progress, std::string_view what) {
    if (progress) progress(1.0, what);
}

}  // namespace rsi
