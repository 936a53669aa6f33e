#include "src/item_journal.hpp"
#include "src/output_file.hpp"
#include "src/json_text.hpp"
#include "src/shard_lock.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "tiling/error.hpp"

namespace fs = std::filesystem;

namespace rsi {

namespace {

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot read the journal");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

std::map<std::string, nlohmann::json> parse_item_journal(const std::string& text, const std::string& fingerprint,
                                                         const std::string& where) {
    std::map<std::string, nlohmann::json> entries;
    const bool torn_tail = !text.empty() && text.back() != '\n';
    size_t start = 0;
    int64_t line = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        const bool last = end == std::string::npos;
        if (last) end = text.size();
        const std::string_view content(text.data() + start, end - start);
        start = end + 1;
        ++line;
        const bool torn = last && torn_tail;
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(content);
            if (!j.is_object()) throw std::invalid_argument("not an object");
        } catch (const std::exception&) {
            if (torn && line > 1) break;  // cut by a crash mid-write: the item was not finished
            throw Error(where + ":" + std::to_string(line) + ": not a journal line");
        }
        if (line == 1) {
            const auto version = j.find("rsi_journal"), print = j.find("fingerprint");
            if (version == j.end() || *version != 1) throw Error(where + ":1: not an rsi journal (version 1)");
            if (print == j.end() || *print != fingerprint) {
                throw usage_error(where + ": was written for different inputs or options; rerun without --resume, or with the same options");
            }
            continue;
        }
        const auto item = j.find("item");
        if (item == j.end() || !item->is_string() || item->get<std::string>().empty()) {
            if (torn) break;
            throw Error(where + ":" + std::to_string(line) + ": malformed journal entry (no item)");
        }
        const std::string key = item->get<std::string>();  // before j is moved
        entries[key] = std::move(j);
    }
    if (line == 0) throw Error(where + ": empty journal");
    return entries;
}

std::map<std::string, nlohmann::json> read_item_journal(const std::string& path, const std::string& fingerprint) {
    if (!fs::exists(path)) throw Error(path + ": no such journal");
    return parse_item_journal(read_text(path), fingerprint, path);
}

ItemJournal::ItemJournal(std::string parts_dir, const std::string& fingerprint, const ShardSpec& shard)
    : path_((fs::path(parts_dir) / StripJournal::journal_name(shard)).string()) {
    std::error_code ec;
    fs::create_directories(parts_dir, ec);
    if (!fs::is_directory(parts_dir)) throw Error(parts_dir + ": cannot create the parts folder");
    lock_ = std::make_unique<ShardLock>(parts_dir, shard);
    if (fs::exists(path_)) {
        const std::string text = read_text(path_);
        entries_ = parse_item_journal(text, fingerprint, path_);
        if (!text.empty() && text.back() != '\n') {
            // Cut the torn tail so that new lines start clean.
            const size_t cut = text.rfind('\n');
            const std::string tmp = path_ + ".tmp-" + std::to_string(::getpid());
            {
                std::ofstream rewrite(tmp, std::ios::binary | std::ios::trunc);
                rewrite << text.substr(0, cut == std::string::npos ? 0 : cut + 1);
                if (!rewrite) throw Error(path_ + ": cannot repair the journal");
            }
            fs::rename(tmp, path_);
        }
        return;
    }
    const nlohmann::json header{{"rsi_journal", 1}, {"fingerprint", fingerprint}, {"shard", {shard.index, shard.count}}};
    const std::string tmp = path_ + ".tmp-" + std::to_string(::getpid());
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << json_text(header) << "\n";
        out.close();
        if (!out) throw Error(path_ + ": cannot write the journal");
    }
    fs::rename(tmp, path_);
}

ItemJournal::~ItemJournal() = default;

void ItemJournal::record(const nlohmann::json& entry) {
    const std::string text = json_text(entry) + "\n";
    FILE* f = std::fopen(path_.c_str(), "ab");
    if (!f) throw Error(path_ + ": cannot append to the journal");
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
    const std::string why = ok ? "" : write_failure_reason();  // errno before fclose changes it
    std::fclose(f);
    if (!ok) throw Error(path_ + ": writing the journal failed" + why);
    entries_[entry.at("item").get<std::string>()] = entry;
}

std::string settings_difference(const nlohmann::json& before, const nlohmann::json& now) {
    const auto shown = [](const nlohmann::json* v) -> std::string {
        if (!v) return "(unset)";
        if (v->is_array() && v->size() > 4) return std::to_string(v->size()) + " entries";
        std::string text = v->is_string() ? v->get<std::string>() : json_text(*v);
        if (text.size() > 40) text = text.substr(0, 12) + "...";
        return text.empty() ? "\"\"" : text;
    };
    std::string out;
    auto add = [&](const std::string& key, const nlohmann::json* a, const nlohmann::json* b) {
        std::string what = key + " " + shown(a) + " -> " + shown(b);
        if (a && b && a->is_array() && b->is_array() && a->size() == b->size() && a->size() > 4) what = key + " (same count, different entries)";
        out += (out.empty() ? "" : ", ") + what;
    };
    if (!before.is_object() || !now.is_object()) return before == now ? "" : "settings";
    for (const auto& [key, value] : now.items()) {
        const auto it = before.find(key);
        if (it == before.end()) add(key, nullptr, &value);
        else if (*it != value) add(key, &*it, &value);
    }
    for (const auto& [key, value] : before.items()) {
        if (!now.contains(key)) add(key, &value, nullptr);
    }
    return out;
}

nlohmann::json start_or_check_job(const std::string& parts_dir, const nlohmann::json& job, const std::string& rerun_hint) {
    const std::string path = (fs::path(parts_dir) / "job.json").string();
    if (fs::exists(path)) {
        const nlohmann::json existing = read_job(parts_dir);
        if (existing.value("fingerprint", "") != job.at("fingerprint").get<std::string>()) {
            std::string changed = settings_difference(existing.value("settings", nlohmann::json::object()),
                                                      job.value("settings", nlohmann::json::object()));
            if (changed.empty()) changed = "the job's settings";
            throw usage_error(parts_dir + ": was started with other inputs or options (" + changed + "); " + rerun_hint);
        }
        return existing;
    }
    return write_or_check_job(parts_dir, job);
}

}  // namespace rsi
