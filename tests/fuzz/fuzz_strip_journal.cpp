// libFuzzer target: the resume journal readers (src/strip_journal.hpp parse_journal, src/item_journal.hpp
// parse_item_journal) and the shard option parser. Expected failures are rsi::Error. Invariants on success: every entry has a strip >= 0,
// y >= 0, rows >= 1 and a plain file name (no '/').
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "src/item_journal.hpp"
#include "src/strip_journal.hpp"
#include "tiling/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        for (const rsi::JournalEntry& e : rsi::parse_journal(text, "fp", "fuzz.journal")) {
            if (e.strip < 0 || e.y < 0 || e.rows < 1 || e.file.empty() || e.file.find('/') != std::string::npos) {
                std::fprintf(stderr, "journal: accepted entry strip %lld y %lld rows %lld file '%s'\n", static_cast<long long>(e.strip),
                             static_cast<long long>(e.y), static_cast<long long>(e.rows), e.file.c_str());
                std::abort();
            }
        }
    } catch (const rsi::Error&) {
    }
    try {
        for (const auto& [item, entry] : rsi::parse_item_journal(text, "fp", "fuzz.journal")) {
            if (item.empty() || !entry.is_object() || entry.at("item") != item) std::abort();
        }
    } catch (const rsi::Error&) {
    }
    try {
        const rsi::ShardSpec s = rsi::parse_shard(text.substr(0, 32), "--shard");
        if (s.count < 1 || s.index < 0 || s.index >= s.count) std::abort();
        const auto [first, end] = rsi::shard_strips(1000, s);
        if (first < 0 || end > 1000 || first > end) std::abort();
    } catch (const rsi::Error&) {
    }
    return 0;
}
