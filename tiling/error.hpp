#pragma once
// The one error type of rsi. Every layer throws it with enough context to stand alone as a
// one-line message ("segment: model expects 3 bands, image has 4"); the CLI maps its kind to an
// exit code in one place.
#include <stdexcept>
#include <string>

namespace rsi {

enum class ErrorKind {
    runtime,    // input or environment problem found while working (exit 1)
    usage,      // options that make no sense, or an output that would be overwritten (exit 2)
    cancelled,  // the progress callback asked to stop (exit 130)
};

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message, ErrorKind kind = ErrorKind::runtime)
        : std::runtime_error(message), kind_(kind) {}
    ErrorKind kind() const noexcept { return kind_; }

private:
    ErrorKind kind_;
};

inline Error usage_error(const std::string& message) { return Error(message, ErrorKind::usage); }

}  // namespace rsi
