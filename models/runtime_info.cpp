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
    // The module beside the executable first: a copied or installed rsi carries its own, and the build
    // tree's (which may since have been rebuilt against other headers) is only the fallback.
    for (const std::string& candidate : {executable_dir() + "/librsi_torch_backend.so", std::string(RSI_TORCH_BACKEND_PATH)}) {
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

void set_inference_threads_of_this_thread(int threads) { torch_backend().set_threads_of_this_thread(threads); }

int inference_threads() { return torch_backend().threads(); }

bool cuda_available() { return torch_backend().cuda_available(); }

}  // namespace rsi::models
