#include "models/runtime_info.hpp"

#include <dlfcn.h>
#include <mutex>
#include <unistd.h>

#include "models/backend.hpp"
#include "tiling/error.hpp"

namespace rsi::models {

namespace {

std::mutex g_mutex;
Backend* g_backend = nullptr;
int g_threads = 0;  // applied when the backend loads
int64_t g_large_min = 0, g_large_max_idle = 0;  // map_large_tensors, applied when the backend loads

std::string executable_dir() {
    char buffer[4096];
    const ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
    if (n <= 0) return ".";
    std::string path(buffer, static_cast<size_t>(n));
    return path.substr(0, path.find_last_of('/'));
}

}  // namespace

Backend& torch_backend() {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_backend) return *g_backend;
    std::string tried;
    void* handle = nullptr;
    for (const std::string& candidate : {std::string(RSI_TORCH_BACKEND_PATH), executable_dir() + "/librsi_torch_backend.so"}) {
        handle = ::dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (handle) break;
        const char* why = ::dlerror();
        tried += (tried.empty() ? "" : "; ") + candidate + ": " + (why ? why : "not found");
    }
    if (!handle) throw Error("cannot load the LibTorch model runtime (" + tried + ")");
    auto create = reinterpret_cast<Backend* (*)()>(::dlsym(handle, "rsi_create_torch_backend"));
    if (!create) throw Error("the LibTorch model runtime module has no rsi_create_torch_backend");
    g_backend = create();  // lives for the rest of the process
    if (g_threads > 0) g_backend->set_threads(g_threads);
    if (g_large_min > 0) g_backend->map_large_tensors(g_large_min, g_large_max_idle);
    return *g_backend;
}

bool torch_backend_loaded() {
    std::lock_guard<std::mutex> lock(g_mutex);
    return g_backend != nullptr;
}

std::string libtorch_version() { return torch_backend().libtorch_version(); }

void set_inference_threads(int threads) {
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        g_threads = threads;
        if (!g_backend) return;  // applied on load
    }
    torch_backend().set_threads(threads);
}

int inference_threads() { return torch_backend().threads(); }

void map_large_tensors(int64_t min_bytes, int64_t max_idle_bytes) {
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        g_large_min = min_bytes;
        g_large_max_idle = max_idle_bytes;
        if (!g_backend) return;  // applied on load
    }
    torch_backend().map_large_tensors(min_bytes, max_idle_bytes);
}

void trim_large_tensors() {
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        if (!g_backend) return;
    }
    torch_backend().trim_large_tensors();
}

LargeTensorStats large_tensor_stats() {
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        if (!g_backend) return {};
    }
    return torch_backend().large_tensor_stats();
}

bool cuda_available() { return torch_backend().cuda_available(); }

}  // namespace rsi::models
