#include "cli/progress_bar.hpp"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <unistd.h>

namespace rsi::cli {

namespace {
std::atomic<int> g_signal{0};
void on_signal(int sig) { g_signal.store(sig); }
}  // namespace

bool interrupted() { return g_signal.load() != 0; }
int interrupt_signal() { return g_signal.load(); }

void install_interrupt_handlers() {
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
}

void restore_default_interrupt_handlers() {
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
}

int exit_code_after(int command_rc) {
    const int sig = interrupt_signal();
    if (command_rc != 0 || sig == 0) return command_rc;
    return sig == SIGTERM ? 143 : 130;
}

std::string format_duration(double seconds) {
    if (seconds < 0) seconds = 0;
    const auto s = static_cast<long>(seconds + 0.5);
    char text[32];
    if (s >= 3600) {
        std::snprintf(text, sizeof text, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    } else {
        std::snprintf(text, sizeof text, "%02ld:%02ld", s / 60, s % 60);
    }
    return text;
}

ProgressBar::ProgressBar(bool enabled) : ProgressBar(enabled, ::isatty(STDERR_FILENO) != 0) {}

ProgressBar::ProgressBar(bool enabled, bool terminal, double silent_start_seconds)
    : enabled_(enabled), terminal_(terminal), silent_start_seconds_(silent_start_seconds), start_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() {
    if (enabled_ && terminal_ && last_draw_ >= 0 && !finished_) std::fputc('\n', stderr);
}

bool ProgressBar::update(double fraction, std::string_view what) {
    if (interrupted()) return false;
    if (!enabled_) return true;
    if (finished_) {  // a new phase: it was drawn over the finished line from 100% and timed from the run's start
        finished_ = false;
        last_draw_ = -1;
        last_decile_ = -1;
        start_ = std::chrono::steady_clock::now();
    }
    if (fraction < 0) fraction = 0;
    if (fraction > 1) fraction = 1;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (elapsed < silent_start_seconds_ && fraction < 1) return true;
    const std::string eta = fraction > 0.001 ? format_duration(elapsed / fraction - elapsed) : "--:--";
    if (terminal_) {
        if (fraction - last_draw_ < 0.002 && fraction < 1) return true;  // redraw at most ~500 times
        last_draw_ = fraction;
        constexpr int width = 30;
        const int filled = static_cast<int>(fraction * width);
        std::string bar(static_cast<size_t>(filled), '=');
        bar.resize(width, ' ');
        std::fprintf(stderr, "\r[%s] %5.1f%% %-24.*s elapsed %s ETA %s", bar.c_str(), fraction * 100.0,
                     static_cast<int>(what.size() > 24 ? 24 : what.size()), what.data(),
                     format_duration(elapsed).c_str(), eta.c_str());
        std::fflush(stderr);
    } else {
        const int decile = static_cast<int>(fraction * 10);
        if (decile == last_decile_) return true;
        last_decile_ = decile;
        std::fprintf(stderr, "%3d%% %.*s (elapsed %s, ETA %s)\n", decile * 10, static_cast<int>(what.size()),
                     what.data(), format_duration(elapsed).c_str(), eta.c_str());
    }
    return true;
}

void ProgressBar::finish() {
    if (enabled_ && terminal_ && last_draw_ >= 0 && !finished_) std::fputc('\n', stderr);
    finished_ = true;
}

}  // namespace rsi::cli
