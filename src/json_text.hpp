#pragma once
// JSON text of a document whose strings may hold bytes that are not UTF-8 (file names on Linux are
// bytes): such bytes become U+FFFD instead of nlohmann::json throwing after the outputs are written.
#include <nlohmann/json.hpp>
#include <string>

namespace rsi {

inline std::string json_text(const nlohmann::json& value, int indent = -1) {
    return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace rsi
