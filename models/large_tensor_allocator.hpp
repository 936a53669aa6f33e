#pragma once
// LibTorch's CPU allocator, with large blocks mapped by rsi. glibc serves blocks above its mmap
// threshold (32 MB at most) with fresh 4 KB-page mappings, so every forward pass page-faults its
// largest activations in again, 4 KB at a time (~100,000 faults per 512² building tile). This
// allocator maps such blocks itself, 2 MB aligned with transparent huge pages requested (a hint the
// kernel may ignore), so they fault in 2 MB at a time; optionally it keeps freed blocks for reuse up
// to a cap of idle bytes (measured here: faster still at large tiles, but the idle blocks raise peak
// RSS, so the CLI keeps none). Smaller blocks go to LibTorch's own allocator. Part of the LibTorch
// module (includes c10).
#include <c10/core/Allocator.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

#include "models/backend.hpp"

namespace rsi::models {

// One per process (the release function finds it through a global).
class LargeTensorAllocator final : public c10::Allocator {
public:
    // Blocks of at least `min_bytes` are mapped here; freed ones beyond `max_idle_bytes` are unmapped.
    LargeTensorAllocator(c10::Allocator* fallback, size_t min_bytes, size_t max_idle_bytes);
    ~LargeTensorAllocator() override;

    c10::DataPtr allocate(size_t n) const override;
    // LibTorch frees some blocks through the raw interface (context == data): one deleter for all.
    c10::DeleterFnPtr raw_deleter() const override { return &LargeTensorAllocator::release; }
    void configure(size_t min_bytes, size_t max_idle_bytes);
    void drop_idle();  // unmaps every idle block (memory probes measure from a clean state)
    LargeTensorStats stats() const;

private:
    struct Block {
        void* data;
        size_t size;
    };
    static void release(void* data);
    void unmap_idle_beyond(size_t cap);
    void give_back(void* data) const;

    c10::Allocator* fallback_;
    mutable std::mutex mutex_;
    std::atomic<size_t> min_bytes_;
    size_t max_idle_bytes_;
    mutable std::multimap<size_t, Block*> idle_;          // by size
    mutable std::unordered_map<void*, Block*> in_use_;    // large blocks handed out
    mutable LargeTensorStats stats_;
};

}  // namespace rsi::models
