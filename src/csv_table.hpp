#pragma once
// Reading delimited text tables (RFC 4180 quoting: fields in double quotes may hold the delimiter,
// newlines and "" for a quote). Each row remembers its line number so errors can name it.
#include <istream>
#include <string>
#include <vector>

namespace rsi {

struct CsvRow {
    int64_t line = 0;                 // 1-based line where the row starts
    std::vector<std::string> fields;
};

// All rows of `in`. Throws rsi::Error naming `where`:line for an unterminated quote or text after a
// closing quote. A UTF-8 byte-order mark before the first line (Excel, Notepad) and a trailing '\r'
// are dropped; empty lines are skipped.
std::vector<CsvRow> read_csv_rows(std::istream& in, char delimiter, const std::string& where);

// Drops a UTF-8 byte-order mark from the start of `line`; true when there was one.
bool strip_utf8_bom(std::string& line);

// Quotes a field when it holds the delimiter, a quote or a line break, or starts with a byte-order mark.
std::string csv_field(const std::string& value, char delimiter = ',');

}  // namespace rsi
