#pragma once
// Buffers handed back by one pipeline stage for another to reuse, so that the large per-batch
// vectors are allocated once per run instead of once per batch (each fresh allocation of a few MB
// in another thread's malloc arena fragments the heap and raises peak RSS).
#include <mutex>
#include <utility>
#include <vector>

namespace rsi {

template <typename T>
class RecycleBin {
public:
    // A vector with whatever capacity an earlier user left (empty if none was given back).
    std::vector<T> take() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (spare_.empty()) return {};
        std::vector<T> v = std::move(spare_.back());
        spare_.pop_back();
        return v;
    }

    void give(std::vector<T>&& v) {
        if (v.capacity() == 0) return;
        std::lock_guard<std::mutex> lock(mutex_);
        spare_.push_back(std::move(v));
    }

private:
    std::mutex mutex_;
    std::vector<std::vector<T>> spare_;
};

}  // namespace rsi
