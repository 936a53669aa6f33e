#pragma once
// Items numbered in order of production that arrive out of order (several model runners finish
// batches in any order), handed out in order. Holds only what arrived before its turn.
#include <cstdint>
#include <map>
#include <optional>
#include <utility>

namespace rsi {

template <typename T>
class ReorderBuffer {
public:
    explicit ReorderBuffer(int64_t first_index) : next_(first_index) {}
    void add(int64_t index, T item) { waiting_.emplace(index, std::move(item)); }
    // The item whose turn it is, if it has arrived.
    std::optional<T> take_next() {
        const auto it = waiting_.find(next_);
        if (it == waiting_.end()) return std::nullopt;
        T item = std::move(it->second);
        waiting_.erase(it);
        ++next_;
        return item;
    }
    size_t waiting() const { return waiting_.size(); }

private:
    int64_t next_;
    std::map<int64_t, T> waiting_;
};

}  // namespace rsi
