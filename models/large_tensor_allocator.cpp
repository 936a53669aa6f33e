#include "models/large_tensor_allocator.hpp"

#include <sys/mman.h>

#include <cstdint>
#include <iterator>
#include <stdexcept>
#include <vector>

namespace rsi::models {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;

const LargeTensorAllocator* g_allocator = nullptr;

size_t round_up(size_t n) { return (n + kHugePage - 1) / kHugePage * kHugePage; }

// A mapping of `size` bytes (a multiple of 2 MB) starting on a 2 MB boundary, so that the kernel can
// back all of it with huge pages; nullptr when the system refuses.
void* map_aligned(size_t size) {
    const size_t padded = size + kHugePage;
    void* raw = ::mmap(nullptr, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    const auto start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
    if (aligned > start) ::munmap(raw, aligned - start);
    const uintptr_t end = start + padded, used_end = aligned + size;
    if (end > used_end) ::munmap(reinterpret_cast<void*>(used_end), end - used_end);
    ::madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);  // a hint: ignored where THP is off
    return reinterpret_cast<void*>(aligned);
}
}  // namespace

LargeTensorAllocator::LargeTensorAllocator(c10::Allocator* fallback, size_t min_bytes, size_t max_idle_bytes)
    : fallback_(fallback), min_bytes_(min_bytes), max_idle_bytes_(max_idle_bytes) {
    if (!fallback_->raw_deleter()) throw std::logic_error("LargeTensorAllocator: the fallback allocator has no raw interface");
    g_allocator = this;
}

LargeTensorAllocator::~LargeTensorAllocator() {
    // Only idle blocks: blocks in use stay valid (the allocator is meant to live for the process).
    for (auto& [size, block] : idle_) {
        ::munmap(block->data, block->size);
        delete block;
    }
}

void LargeTensorAllocator::configure(size_t min_bytes, size_t max_idle_bytes) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        min_bytes_.store(min_bytes, std::memory_order_relaxed);
        max_idle_bytes_ = max_idle_bytes;
    }
    unmap_idle_beyond(max_idle_bytes);
}

void LargeTensorAllocator::drop_idle() { unmap_idle_beyond(0); }

void LargeTensorAllocator::unmap_idle_beyond(size_t cap) {
    std::vector<Block*> dropped;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        while (!idle_.empty() && stats_.idle_bytes > static_cast<int64_t>(cap)) {
            auto largest = std::prev(idle_.end());
            dropped.push_back(largest->second);
            stats_.idle_bytes -= static_cast<int64_t>(largest->first);
            stats_.mapped_bytes -= static_cast<int64_t>(largest->first);
            ++stats_.unmapped;
            idle_.erase(largest);
        }
    }
    for (Block* block : dropped) {
        ::munmap(block->data, block->size);
        delete block;
    }
}

LargeTensorStats LargeTensorAllocator::stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
}

c10::DataPtr LargeTensorAllocator::allocate(size_t n) const {
    const c10::Device cpu(c10::DeviceType::CPU);
    if (n < min_bytes_.load(std::memory_order_relaxed)) {
        void* data = fallback_->raw_allocate(n);
        return {data, data, &LargeTensorAllocator::release, cpu};
    }
    const size_t size = round_up(n);
    Block* block = nullptr;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        // The smallest idle block that fits, if it wastes at most a quarter of itself.
        auto it = idle_.lower_bound(size);
        if (it != idle_.end() && it->first - size <= it->first / 4) {
            block = it->second;
            idle_.erase(it);
            stats_.idle_bytes -= static_cast<int64_t>(block->size);
            ++stats_.reused;
            in_use_.emplace(block->data, block);
        }
    }
    if (!block) {
        void* data = map_aligned(size);
        if (!data) {  // let LibTorch's allocator report the failure its own way
            data = fallback_->raw_allocate(n);
            return {data, data, &LargeTensorAllocator::release, cpu};
        }
        block = new Block{data, size};
        std::lock_guard<std::mutex> lock(mutex_);
        ++stats_.mapped;
        stats_.mapped_bytes += static_cast<int64_t>(size);
        in_use_.emplace(block->data, block);
    }
    return {block->data, block->data, &LargeTensorAllocator::release, cpu};
}

void LargeTensorAllocator::release(void* data) { g_allocator->give_back(data); }

void LargeTensorAllocator::give_back(void* data) const {
    Block* block = nullptr;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto it = in_use_.find(data);
        if (it != in_use_.end()) {
            block = it->second;
            in_use_.erase(it);
            if (stats_.idle_bytes + static_cast<int64_t>(block->size) <= static_cast<int64_t>(max_idle_bytes_)) {
                idle_.emplace(block->size, block);
                stats_.idle_bytes += static_cast<int64_t>(block->size);
                return;
            }
            ++stats_.unmapped;
            stats_.mapped_bytes -= static_cast<int64_t>(block->size);
        }
    }
    if (!block) {  // a small block (or one the fallback served)
        fallback_->raw_deallocate(data);
        return;
    }
    ::munmap(block->data, block->size);
    delete block;
}

}  // namespace rsi::models
