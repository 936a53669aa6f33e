#pragma once
// Progress on stderr with an ETA: a redrawn bar on a terminal, a line every 10% otherwise (logs).
#include <chrono>
#include <string>
#include <string_view>

namespace rsi::cli {

class ProgressBar {
public:
    // `terminal`: redraw one line in place (default: whether stderr is a terminal), else a line per 10%.
    explicit ProgressBar(bool enabled);
    ProgressBar(bool enabled, bool terminal);
    ~ProgressBar();
    // The library's progress callback; returns false once an interrupt (SIGINT/SIGTERM) arrived.
    // After finish(), the next update starts a new phase (e.g. the polygons after the mask): its own
    // line, bar and ETA.
    bool update(double fraction, std::string_view what);
    void finish();

private:
    bool enabled_;
    bool terminal_;
    bool finished_ = false;
    int last_decile_ = -1;
    double last_draw_ = -1;
    std::chrono::steady_clock::time_point start_;
};

// Set by the signal handler; checked by every progress callback.
bool interrupted();
int interrupt_signal();
void install_interrupt_handlers();

std::string format_duration(double seconds);

}  // namespace rsi::cli
