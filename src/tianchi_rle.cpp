#include "src/tianchi_rle.hpp"

#include <charconv>

#include "tiling/error.hpp"

namespace rsi {

std::string encode_tianchi_rle(const uint8_t* mask, int64_t width, int64_t height) {
    std::string out;
    int64_t run_start = -1;
    const int64_t total = width * height;
    auto close_run = [&](int64_t end) {
        if (!out.empty()) out += ' ';
        out += std::to_string(run_start + 1) + ' ' + std::to_string(end - run_start);
        run_start = -1;
    };
    for (int64_t index = 0; index < total; ++index) {
        const int64_t col = index / height, row = index % height;
        const bool on = mask[row * width + col] != 0;
        if (on && run_start < 0) run_start = index;
        if (!on && run_start >= 0) close_run(index);
    }
    if (run_start >= 0) close_run(total);
    return out;
}

std::vector<uint8_t> decode_tianchi_rle(std::string_view rle, int64_t width, int64_t height, const std::string& where) {
    std::vector<uint8_t> mask(static_cast<size_t>(width * height), 0);
    std::vector<int64_t> numbers;
    size_t i = 0;
    while (i < rle.size()) {
        while (i < rle.size() && (rle[i] == ' ' || rle[i] == '\t' || rle[i] == '\r')) ++i;
        if (i >= rle.size()) break;
        size_t j = i;
        while (j < rle.size() && rle[j] != ' ' && rle[j] != '\t' && rle[j] != '\r') ++j;
        int64_t value = 0;
        const auto [end, ec] = std::from_chars(rle.data() + i, rle.data() + j, value);
        if (ec != std::errc() || end != rle.data() + j) {
            throw Error(where + ": RLE token '" + std::string(rle.substr(i, j - i)) + "' is not a whole number");
        }
        numbers.push_back(value);
        i = j;
    }
    if (numbers.size() % 2 != 0) throw Error(where + ": RLE has an odd number of tokens (" + std::to_string(numbers.size()) + ")");
    const int64_t total = width * height;
    int64_t previous_end = 0;  // 0-based index one past the last run
    for (size_t k = 0; k < numbers.size(); k += 2) {
        const int64_t start = numbers[k], length = numbers[k + 1];
        if (start < 1) throw Error(where + ": RLE start " + std::to_string(start) + " is below 1");
        if (length < 1) throw Error(where + ": RLE run length " + std::to_string(length) + " is below 1");
        if (start - 1 < previous_end) throw Error(where + ": RLE run at " + std::to_string(start) + " overlaps or precedes the previous run");
        if (start - 1 >= total || length > total - (start - 1)) {  // written so huge numbers cannot overflow
            throw Error(where + ": RLE run " + std::to_string(start) + "+" + std::to_string(length) + " goes beyond the " +
                        std::to_string(width) + "x" + std::to_string(height) + " image");
        }
        for (int64_t index = start - 1; index < start - 1 + length; ++index) {
            mask[static_cast<size_t>((index % height) * width + index / height)] = 1;
        }
        previous_end = start - 1 + length;
    }
    return mask;
}

double tianchi_dice(const uint8_t* truth, const uint8_t* prediction, int64_t pixels) {
    int64_t both = 0, t = 0, p = 0;
    for (int64_t i = 0; i < pixels; ++i) {
        const bool a = truth[i] != 0, b = prediction[i] != 0;
        both += a && b;
        t += a;
        p += b;
    }
    if (t + p == 0) return 1.0;
    return 2.0 * static_cast<double>(both) / static_cast<double>(t + p);
}

}  // namespace rsi
