#include "models/memory_probe.hpp"

#include <fstream>
#include <malloc.h>
#include <mutex>
#include <string>

namespace rsi::models {

namespace {

int64_t status_kib(const char* key) {
    std::ifstream status("/proc/self/status");
    std::string line;
    const std::string prefix = std::string(key) + ":";
    while (std::getline(status, line)) {
        if (line.rfind(prefix, 0) == 0) return std::stoll(line.substr(prefix.size()));
    }
    return 0;
}

bool reset_peak() {
    std::ofstream clear("/proc/self/clear_refs");
    if (!clear) return false;
    clear << "5";
    clear.flush();
    return static_cast<bool>(clear);
}

}  // namespace

int64_t resident_bytes() { return status_kib("VmRSS") * 1024; }
int64_t peak_resident_bytes() { return status_kib("VmHWM") * 1024; }

std::optional<int64_t> peak_resident_growth(const std::function<void()>& work) {
    static std::mutex mutex;
    std::lock_guard<std::mutex> lock(mutex);
    malloc_trim(0);  // give freed heap back first, so reused pages do not hide the growth
    if (!reset_peak()) return std::nullopt;
    const int64_t baseline = resident_bytes();
    if (peak_resident_bytes() > baseline + (64 << 20)) return std::nullopt;  // the reset did not take
    work();
    const int64_t growth = std::max<int64_t>(0, peak_resident_bytes() - baseline);
    // The probe runs in the caller's thread, whose malloc arena the pipeline threads do not share:
    // what the probe freed would otherwise stay resident beside their own buffers for the whole run.
    malloc_trim(0);
    return growth;
}

}  // namespace rsi::models
