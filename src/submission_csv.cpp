#include "src/submission_csv.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <set>

#include "src/csv_table.hpp"
#include "tiling/error.hpp"

namespace rsi {

namespace {

std::string at(const std::string& where, int64_t line) { return where + ":" + std::to_string(line); }

// A SpaceNet entry (ImageId, BuildingId, WKT[, Confidence]) rather than a header.
bool is_spacenet_row(const std::vector<std::string>& fields) {
    if (fields.size() < 3 || fields.size() > 4 || fields[0].empty()) return false;
    int64_t id = 0;
    const std::string& building = fields[1];
    const auto [end, ec] = std::from_chars(building.data(), building.data() + building.size(), id);
    if (ec != std::errc() || end != building.data() + building.size()) return false;
    std::string wkt = fields[2];
    std::transform(wkt.begin(), wkt.end(), wkt.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return wkt.rfind("POLYGON", 0) == 0 || wkt.rfind("MULTIPOLYGON", 0) == 0;
}

}  // namespace

std::vector<TianchiEntry> read_tianchi_csv(std::istream& in, const std::string& where) {
    std::vector<TianchiEntry> entries;
    std::set<std::string> names;
    for (CsvRow& row : read_csv_rows(in, '\t', where)) {
        if (row.fields.size() != 2) {
            throw Error(at(where, row.line) + ": expected 2 tab-separated fields (name, mask), found " +
                        std::to_string(row.fields.size()));
        }
        if (row.fields[0].empty()) throw Error(at(where, row.line) + ": empty image name");
        if (!names.insert(row.fields[0]).second) throw Error(at(where, row.line) + ": image '" + row.fields[0] + "' appears twice");
        entries.push_back({std::move(row.fields[0]), std::move(row.fields[1]), row.line});
    }
    return entries;
}

std::vector<SpacenetEntry> read_spacenet_csv(std::istream& in, const std::string& where) {
    std::vector<CsvRow> rows = read_csv_rows(in, ',', where);
    if (rows.empty()) throw Error(where + ": empty file (expected the header ImageId,BuildingId,PolygonWKT_Pix)");
    // The header is optional in submissions (the SpaceNet scorer reads files without it): a first row
    // that is an entry (id, whole number, WKT) stands for ImageId,BuildingId,PolygonWKT_Pix[,Confidence].
    if (is_spacenet_row(rows.front().fields)) {
        CsvRow header{0, {"ImageId", "BuildingId", "PolygonWKT_Pix"}};
        if (rows.front().fields.size() == 4) header.fields.push_back("Confidence");
        rows.insert(rows.begin(), header);
    }
    int image = -1, building = -1, wkt = -1, confidence = -1;
    const std::vector<std::string>& header = rows.front().fields;
    for (size_t c = 0; c < header.size(); ++c) {
        const std::string& name = header[c];
        if (name == "ImageId") image = static_cast<int>(c);
        else if (name == "BuildingId") building = static_cast<int>(c);
        else if (name == "PolygonWKT_Pix") wkt = static_cast<int>(c);
        else if (name == "Confidence") confidence = static_cast<int>(c);
    }
    if (image < 0 || building < 0 || wkt < 0) {
        throw Error(at(where, rows.front().line) + ": the header must name ImageId, BuildingId and PolygonWKT_Pix");
    }
    std::vector<SpacenetEntry> entries;
    for (size_t r = 1; r < rows.size(); ++r) {
        const CsvRow& row = rows[r];
        if (row.fields.size() != header.size()) {
            throw Error(at(where, row.line) + ": " + std::to_string(row.fields.size()) + " fields, the header has " +
                        std::to_string(header.size()));
        }
        SpacenetEntry e;
        e.line = row.line;
        e.image_id = row.fields[static_cast<size_t>(image)];
        if (e.image_id.empty()) throw Error(at(where, row.line) + ": empty ImageId");
        const std::string& id = row.fields[static_cast<size_t>(building)];
        const auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), e.building_id);
        if (ec != std::errc() || end != id.data() + id.size()) {
            throw Error(at(where, row.line) + ": BuildingId '" + id + "' is not a whole number");
        }
        e.wkt = row.fields[static_cast<size_t>(wkt)];
        if (e.wkt.empty()) throw Error(at(where, row.line) + ": empty PolygonWKT_Pix (use POLYGON EMPTY)");
        if (confidence >= 0) {
            const std::string& text = row.fields[static_cast<size_t>(confidence)];
            try {
                size_t used = 0;
                e.confidence = std::stod(text, &used);
                if (used != text.size() || !std::isfinite(e.confidence)) throw std::invalid_argument("junk");
            } catch (const std::exception&) {
                throw Error(at(where, row.line) + ": Confidence '" + text + "' is not a number");
            }
            e.has_confidence = true;
        }
        entries.push_back(std::move(e));
    }
    return entries;
}

}  // namespace rsi
