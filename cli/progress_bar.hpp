#pragma once
// Progress on stderr with an ETA: a redrawn bar on a terminal, a line every 10% otherwise (logs).
#include <chrono>
#include <string>
#include <string_view>

namespace rsi::cli {

class ProgressBar {
public:
    explicit ProgressBar(bool enabled);
    ~ProgressBar();
    // The library's progress callback; returns false once an interrupt (SIGINT/SIGTERM) arrived.
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
