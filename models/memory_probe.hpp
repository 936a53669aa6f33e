#pragma once
// Measures how much resident memory a piece of work adds at its peak, by resetting the kernel's
// peak-RSS counter (/proc/self/clear_refs) around it. This sees every allocator (LibTorch's,
// oneDNN's scratch space, glibc), unlike a wrapped tensor allocator.
#include <cstdint>
#include <functional>
#include <optional>

namespace rsi::models {

// Peak resident bytes added while `work` ran; empty where the kernel does not let us reset the
// peak counter (then callers fall back to an estimate).
std::optional<int64_t> peak_resident_growth(const std::function<void()>& work);

// Current and peak resident set size of this process, bytes (0 where /proc is unavailable).
int64_t resident_bytes();
int64_t peak_resident_bytes();

}  // namespace rsi::models
