#pragma once
// `rsi eval --report report.html`: one self-contained HTML page with the summary, a per-class table
// and the confusion matrix drawn as a heat map (cells shaded by their share of the truth row).
#include <string>
#include <utility>
#include <vector>

#include "src/confusion_matrix.hpp"

namespace rsi {

struct EvaluationReport {
    std::string title;
    std::vector<std::pair<std::string, std::string>> summary;  // label, value
    std::vector<std::string> table_header;                     // an optional table (per class or per image)
    std::vector<std::vector<std::string>> table_rows;
    std::vector<std::string> class_names;                      // confusion matrix labels
    const ConfusionMatrix* matrix = nullptr;                   // optional
};

// Written atomically; an existing file is replaced only with `overwrite` (without it, one there now is
// refused as having appeared meanwhile: callers check the path with check_output_path when they start).
void write_html_report(const EvaluationReport& report, const std::string& path, bool overwrite);

// The per-class table of pixel or scene metrics, ready for EvaluationReport.
void add_class_table(EvaluationReport& report, const PixelMetrics& metrics, const std::vector<std::string>& class_names);

}  // namespace rsi
