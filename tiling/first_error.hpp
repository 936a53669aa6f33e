#pragma once
// The first exception thrown by any stage of a multi-threaded pipeline, kept to be rethrown by the
// thread that owns the pipeline once the others have stopped.
#include <exception>
#include <mutex>

namespace rsi {

class FirstError {
public:
    void record(std::exception_ptr error) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!first_) first_ = error;
    }
    void rethrow_if_any() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (first_) std::rethrow_exception(first_);
    }

private:
    std::mutex mutex_;
    std::exception_ptr first_;
};

}  // namespace rsi
