#pragma once
// Progress on stderr with an ETA: a redrawn bar on a terminal, a line every 10% otherwise (logs).
#include <chrono>
#include <string>
#include <string_view>

namespace rsi::cli {

class ProgressBar {
public:
    // `terminal`: redraw one line in place (default: whether stderr is a terminal), else a line per 10%.
    // Nothing is drawn in a phase's first `silent_start_seconds` but its 100%: a run that fails its
    // checks early shows the one-line error alone, not a "0% planning" line above it.
    explicit ProgressBar(bool enabled);
    ProgressBar(bool enabled, bool terminal, double silent_start_seconds = 0.5);
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
    double silent_start_seconds_;
    std::chrono::steady_clock::time_point start_;
};

// Set by the signal handler; checked by every progress callback.
bool interrupted();
int interrupt_signal();
void install_interrupt_handlers();
void restore_default_interrupt_handlers();
// The exit code for a command that returned `command_rc`: a signal that arrived after its last progress
// check (too late to stop the work; the outputs are complete and stay) still ends it as interrupted,
// 130 (SIGINT) or 143 (SIGTERM), so a script or scheduler sees the stop it asked for.
int exit_code_after(int command_rc);

std::string format_duration(double seconds);

}  // namespace rsi::cli
