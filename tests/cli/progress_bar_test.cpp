// The progress bar of the CLI: one line per 10% off a terminal, one redrawn line on it, and a phase
// after finish() (the polygons after the mask) drawn and timed on its own.
#include "cli/progress_bar.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <chrono>
#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>

#include "cli/cli_runner.hpp"
#include "test_support.hpp"

namespace rsi::cli {
namespace {

// What `body` writes to stderr.
template <typename Fn>
std::string stderr_of(Fn body) {
    test::TempDir dir;
    const std::string path = dir / "err.txt";
    std::fflush(stderr);
    const int saved = ::dup(STDERR_FILENO);
    FILE* file = std::fopen(path.c_str(), "w");
    ::dup2(::fileno(file), STDERR_FILENO);
    body();
    std::fflush(stderr);
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    std::fclose(file);
    return test::slurp(path);
}

TEST(ProgressBar, LinesPerTenthOffATerminalAndANewPhaseTimedFromItsOwnStart) {
    const std::string err = stderr_of([] {
        ProgressBar bar(true, false, 0.0);
        bar.update(0.0, "tiles");
        bar.update(0.05, "tiles");  // same decile: no line
        bar.update(0.5, "tiles");
        std::this_thread::sleep_for(std::chrono::milliseconds(1100));
        bar.update(1.0, "tiles");
        bar.finish();
        bar.update(0.0, "polygons");
        bar.update(1.0, "polygons");
        bar.finish();
    });
    EXPECT_EQ(err.substr(0, err.find('\n') + 1), "  0% tiles (elapsed 00:00, ETA --:--)\n");
    EXPECT_NE(err.find(" 50% tiles (elapsed 00:00, ETA 00:00)\n"), std::string::npos) << err;
    EXPECT_NE(err.find("100% tiles (elapsed 00:0"), std::string::npos) << err;
    EXPECT_EQ(err.find("100% tiles (elapsed 00:00"), std::string::npos) << err;  // a second passed
    // the polygons' lines count from their own start, not the run's
    EXPECT_NE(err.find("  0% polygons (elapsed 00:00, ETA --:--)\n100% polygons (elapsed 00:00, ETA 00:00)\n"), std::string::npos)
        << err;
    EXPECT_EQ(err.find(" 10% tiles"), std::string::npos) << err;
}

TEST(ProgressBar, OnATerminalEachPhaseGetsItsOwnFinishedLine) {
    const std::string err = stderr_of([] {
        ProgressBar bar(true, true, 0.0);
        bar.update(0.5, "tiles");
        bar.update(1.0, "tiles");
        bar.finish();
        bar.update(0.25, "polygons");  // was not drawn at all: 0.25 is "less" than the finished 1.0
        bar.update(1.0, "polygons");
        bar.finish();  // ends the polygons' line: the summary does not continue it
    });
    const size_t polygons = err.find("\r[=======                       ]  25.0% polygons");
    ASSERT_NE(polygons, std::string::npos) << err;
    EXPECT_EQ(err[polygons - 1], '\n');  // the tiles' line was ended first
    EXPECT_NE(err.find("\r[==============================] 100.0% polygons"), std::string::npos) << err;
    EXPECT_EQ(err.back(), '\n');
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 2);
}

// A phase's first half second draws nothing but its end: a run that fails its checks (or one that is
// done at once) does not leave a "0% planning" line above its error.
TEST(ProgressBar, APhasesFirstMomentsDrawNothingButItsEnd) {
    const std::string quick = stderr_of([] {
        ProgressBar bar(true, false, 0.5);
        bar.update(0.0, "planning");
        bar.update(0.5, "tiles");
    });
    EXPECT_EQ(quick, "");
    const std::string done = stderr_of([] {
        ProgressBar bar(true, false, 0.5);
        bar.update(0.0, "tiles");
        bar.update(1.0, "tiles");
        bar.finish();
    });
    EXPECT_EQ(done, "100% tiles (elapsed 00:00, ETA 00:00)\n");
    const std::string slow = stderr_of([] {
        ProgressBar bar(true, false, 0.2);
        bar.update(0.0, "tiles");
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        bar.update(0.3, "tiles");
    });
    EXPECT_EQ(slow.rfind(" 30% tiles (elapsed 00:0", 0), 0u) << slow;  // drawn once the quiet start is over
}

TEST(ProgressBar, DisabledPrintsNothingButStillReportsNoInterrupt) {
    const std::string err = stderr_of([] {
        ProgressBar bar(false, false);
        EXPECT_TRUE(bar.update(0.5, "tiles"));
        bar.finish();
    });
    EXPECT_EQ(err, "");
}

// A signal that arrives after the command's last progress check cannot stop the work, but the run
// still ends as interrupted (it exited 0 before). Checked in a child process: the flag is global.
TEST(Interrupts, ASignalAfterTheLastProgressCheckStillEndsTheRunAsInterrupted) {
    const auto exit_code_in_child = [](int sig, int command_rc) {
        const pid_t pid = ::fork();
        if (pid == 0) {
            install_interrupt_handlers();
            if (sig) std::raise(sig);
            ::_exit(exit_code_after(command_rc));
        }
        int status = 0;
        ::waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    };
    EXPECT_EQ(exit_code_in_child(0, 0), 0);
    EXPECT_EQ(exit_code_in_child(SIGINT, 0), 130);
    EXPECT_EQ(exit_code_in_child(SIGTERM, 0), 143);
    EXPECT_EQ(exit_code_in_child(SIGINT, 1), 1);  // a failure stays a failure
    EXPECT_EQ(exit_code_in_child(SIGTERM, 2), 2);
}

}  // namespace
}  // namespace rsi::cli
