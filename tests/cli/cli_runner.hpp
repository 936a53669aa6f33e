#pragma once
// Runs the rsi binary as a user would, capturing stdout, stderr and the exit code.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <vector>

#include "test_support.hpp"

namespace rsi::test {

struct CliResult {
    int exit_code = -1;
    std::string out, err;
    int err_lines() const {
        int n = 0;
        for (char c : err) n += c == '\n';
        return n;
    }
};

inline std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

inline std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// `shell_setup` runs in the shell first (e.g. "ulimit -f 60": resource limits the run inherits).
inline CliResult run_rsi(const std::vector<std::string>& args, const std::string& shell_setup = "") {
    static TempDir capture;
    std::string command = shell_setup.empty() ? shell_quote(RSI_BINARY) : shell_setup + "; exec " + shell_quote(RSI_BINARY);
    for (const auto& a : args) command += " " + shell_quote(a);
    const std::string out = capture / "stdout", err = capture / "stderr";
    command += " > " + shell_quote(out) + " 2> " + shell_quote(err) + " < /dev/null";
    const int status = std::system(command.c_str());
    CliResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
}

}  // namespace rsi::test
