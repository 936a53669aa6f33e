// libFuzzer target: the RFC 4180 table reader and field quoting (src/csv_table.hpp).
// Input: byte 0 picks the delimiter (',', '\t', ';', '|'), the rest is the file. Expected failures
// are rsi::Error. Invariants on success: rows have at least one field and increasing 1-based line
// numbers; a row written back with csv_field reads as the same row (rows whose fields hold '\r',
// which the reader strips at line ends, and the lone empty field, which writes an empty line, are
// not compared).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "src/csv_table.hpp"
#include "tiling/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    static const char delimiters[] = {',', '\t', ';', '|'};
    const char delimiter = delimiters[data[0] % 4];
    std::istringstream in(std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
    std::vector<rsi::CsvRow> rows;
    try {
        rows = rsi::read_csv_rows(in, delimiter, "fuzz.csv");
    } catch (const rsi::Error&) {
        return 0;
    }
    int64_t previous = 0;
    for (const rsi::CsvRow& row : rows) {
        if (row.fields.empty() || row.line <= previous) {
            std::fprintf(stderr, "csv_table: row at line %lld has %zu fields (previous line %lld)\n",
                         static_cast<long long>(row.line), row.fields.size(), static_cast<long long>(previous));
            std::abort();
        }
        previous = row.line;
        bool comparable = !(row.fields.size() == 1 && row.fields[0].empty());
        std::string line;
        for (size_t i = 0; i < row.fields.size(); ++i) {
            if (row.fields[i].find('\r') != std::string::npos) comparable = false;
            line += (i ? std::string(1, delimiter) : std::string()) + rsi::csv_field(row.fields[i], delimiter);
        }
        if (!comparable) continue;
        std::istringstream again_in(line + "\n");
        std::vector<rsi::CsvRow> again;
        try {
            again = rsi::read_csv_rows(again_in, delimiter, "fuzz.csv (written back)");
        } catch (const rsi::Error& e) {
            std::fprintf(stderr, "csv_table: a written row does not read back: %s\n", e.what());
            std::abort();
        }
        if (again.size() != 1 || again[0].fields != row.fields) {
            std::fprintf(stderr, "csv_table: csv_field round trip changed the row (line %lld)\n",
                         static_cast<long long>(row.line));
            std::abort();
        }
    }
    return 0;
}
