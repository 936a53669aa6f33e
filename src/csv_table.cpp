#include "src/csv_table.hpp"

#include "tiling/error.hpp"

namespace rsi {

bool strip_utf8_bom(std::string& line) {
    if (line.rfind("\xEF\xBB\xBF", 0) != 0) return false;
    line.erase(0, 3);
    return true;
}

std::vector<CsvRow> read_csv_rows(std::istream& in, char delimiter, const std::string& where) {
    std::vector<CsvRow> rows;
    std::string line;
    int64_t line_number = 0;
    while (std::getline(in, line)) {
        ++line_number;
        if (line_number == 1) strip_utf8_bom(line);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        CsvRow row;
        row.line = line_number;
        std::string field;
        bool quoted = false, after_quote = false;
        size_t i = 0;
        while (true) {
            if (i == line.size()) {
                if (!quoted) break;
                // A quoted field continues on the next line.
                std::string next;
                if (!std::getline(in, next)) {
                    throw Error(where + ":" + std::to_string(row.line) + ": unterminated quoted field");
                }
                ++line_number;
                if (!next.empty() && next.back() == '\r') next.pop_back();
                field += '\n';
                line = std::move(next);
                i = 0;
                continue;
            }
            const char c = line[i++];
            if (quoted) {
                if (c == '"') {
                    if (i < line.size() && line[i] == '"') {
                        field += '"';
                        ++i;
                    } else {
                        quoted = false;
                        after_quote = true;
                    }
                } else {
                    field += c;
                }
            } else if (c == delimiter) {
                row.fields.push_back(std::move(field));
                field.clear();
                after_quote = false;
            } else if (after_quote) {
                throw Error(where + ":" + std::to_string(line_number) + ": text after a closing quote");
            } else if (c == '"' && field.empty()) {
                quoted = true;
            } else {
                field += c;
            }
        }
        row.fields.push_back(std::move(field));
        rows.push_back(std::move(row));
    }
    return rows;
}

std::string csv_field(const std::string& value, char delimiter) {
    // A value starting with the bytes of a byte-order mark is quoted too: first on a line that begins
    // a file, the reader would take them for the file's mark and drop them.
    const bool bom = value.rfind("\xEF\xBB\xBF", 0) == 0;
    if (!bom && value.find_first_of(std::string("\"\r\n") + delimiter) == std::string::npos) return value;
    std::string out = "\"";
    for (char c : value) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + '"';
}

}  // namespace rsi
