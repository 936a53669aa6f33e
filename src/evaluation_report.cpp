#include "src/evaluation_report.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "src/output_file.hpp"
#include "tiling/error.hpp"

namespace rsi {

namespace {

std::string escape(const std::string& text) {
    std::string out;
    for (char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            default: out += c;
        }
    }
    return out;
}

std::string fixed(double v, int digits = 4) {
    if (std::isnan(v)) return "n/a";  // undefined score (0/0)
    std::ostringstream s;
    s << std::fixed << std::setprecision(digits) << v;
    return s.str();
}

}  // namespace

void add_class_table(EvaluationReport& report, const PixelMetrics& metrics, const std::vector<std::string>& class_names) {
    report.table_header = {"class", "IoU", "precision", "recall", "F1", "support"};
    for (size_t c = 0; c < metrics.classes.size(); ++c) {
        const ClassMetrics& m = metrics.classes[c];
        report.table_rows.push_back({c < class_names.size() ? class_names[c] : std::to_string(c), fixed(m.iou), fixed(m.precision),
                                     fixed(m.recall), fixed(m.f1), std::to_string(m.support)});
    }
}

void write_html_report(const EvaluationReport& report, const std::string& path, bool overwrite) {
    check_output_path_again(path, overwrite);  // checked when the run started
    PendingOutput pending(path, overwrite);
    std::ofstream out(pending.temporary_path());
    out << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" << escape(report.title) << "</title>\n"
        << "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
           "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}th{background:#eee}"
           "td.name,th.name{text-align:left}.cm td{min-width:3.5em}</style></head><body>\n"
        << "<h1>" << escape(report.title) << "</h1>\n<table>\n";
    for (const auto& [label, value] : report.summary) {
        out << "<tr><th class=\"name\">" << escape(label) << "</th><td>" << escape(value) << "</td></tr>\n";
    }
    out << "</table>\n";
    if (!report.table_header.empty()) {
        out << "<table>\n<tr>";
        for (size_t i = 0; i < report.table_header.size(); ++i) {
            out << "<th" << (i == 0 ? " class=\"name\"" : "") << ">" << escape(report.table_header[i]) << "</th>";
        }
        out << "</tr>\n";
        for (const auto& row : report.table_rows) {
            out << "<tr>";
            for (size_t i = 0; i < row.size(); ++i) out << "<td" << (i == 0 ? " class=\"name\"" : "") << ">" << escape(row[i]) << "</td>";
            out << "</tr>\n";
        }
        out << "</table>\n";
    }
    if (report.matrix) {
        const ConfusionMatrix& m = *report.matrix;
        const auto name = [&](int c) {
            return static_cast<size_t>(c) < report.class_names.size() ? report.class_names[static_cast<size_t>(c)] : std::to_string(c);
        };
        out << "<h2>Confusion matrix</h2>\n<p>Rows: truth; columns: prediction; shading: share of the truth row.</p>\n"
            << "<table class=\"cm\">\n<tr><th class=\"name\">truth \\ prediction</th>";
        for (int p = 0; p < m.classes(); ++p) out << "<th>" << escape(name(p)) << "</th>";
        out << "</tr>\n";
        for (int t = 0; t < m.classes(); ++t) {
            int64_t row_total = 0;
            for (int p = 0; p < m.classes(); ++p) row_total += m.at(t, p);
            out << "<tr><th class=\"name\">" << escape(name(t)) << "</th>";
            for (int p = 0; p < m.classes(); ++p) {
                const double share = row_total > 0 ? static_cast<double>(m.at(t, p)) / static_cast<double>(row_total) : 0.0;
                // Diagonal cells in blue, errors in red, alpha by share.
                out << "<td style=\"background:rgba(" << (t == p ? "40,100,220," : "220,50,40,") << fixed(std::min(1.0, share), 3)
                    << ")\">" << m.at(t, p) << "</td>";
            }
            out << "</tr>\n";
        }
        out << "</table>\n";
    }
    out << "</body></html>\n";
    out.close();
    if (!out) throw Error(path + ": writing the report failed" + write_failure_reason());
    pending.commit();
}

}  // namespace rsi
