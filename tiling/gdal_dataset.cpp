#include "tiling/gdal_dataset.hpp"

#include <cpl_error.h>
#include <cpl_vsi.h>
#include <mutex>
#include <ogrsf_frmts.h>
#include <string>
#include <vector>

#include "tiling/error.hpp"

namespace rsi {

void GdalDatasetCloser::operator()(GDALDataset* dataset) const noexcept {
    if (dataset) GDALClose(GDALDataset::ToHandle(dataset));
}

void ensure_gdal_registered() {
    static std::once_flag once;
    std::call_once(once, [] { GDALAllRegister(); });
}

std::string last_gdal_error(const std::string& fallback) {
    const char* message = CPLGetLastErrorMsg();
    if (message == nullptr || *message == '\0') return fallback;
    std::string text(message);
    for (char& c : text) {
        if (c == '\n' || c == '\r') c = ' ';  // keep the error on one line
    }
    return text;
}

namespace {

bool is_virtual_path(const std::string& path) { return path.rfind("/vsi", 0) == 0; }

// What GDAL says while a virtual path (/vsicurl/, ...) opens. A failed open folds it into rsi's one-line
// error instead of printing it first; a later open of the same path (commands open their input more
// than once) gets no message from GDAL, which remembers the failure, so the reason is kept here too.
class OpenMessages {
public:
    explicit OpenMessages(bool collect) : collect_(collect) {
        if (collect_) CPLPushErrorHandlerEx(&OpenMessages::handle, this);
    }
    ~OpenMessages() { release(); }
    OpenMessages(const OpenMessages&) = delete;
    OpenMessages& operator=(const OpenMessages&) = delete;

    // The open worked: what GDAL said goes on to the usual handler.
    void pass_on() {
        release();
        for (const auto& [severity, message] : messages_) CPLError(severity, CPLE_AppDefined, "%s", message.c_str());
    }
    // The open failed: GDAL's reason (its last message), or the one an earlier failed open of the path had.
    std::string reason(const std::string& path) {
        release();
        static std::mutex mutex;
        static std::vector<std::pair<std::string, std::string>> remembered;
        std::lock_guard<std::mutex> lock(mutex);
        std::string text = messages_.empty() ? last_gdal_error("") : messages_.back().second;
        for (char& c : text) {
            if (c == '\n' || c == '\r') c = ' ';
        }
        for (auto& [known, why] : remembered) {
            if (known != path) continue;
            if (text.empty()) return why;
            why = text;
            return text;
        }
        if (!text.empty() && remembered.size() < 64) remembered.emplace_back(path, text);
        return text;
    }

private:
    static void CPL_STDCALL handle(CPLErr severity, CPLErrorNum, const char* message) {
        auto* self = static_cast<OpenMessages*>(CPLGetErrorHandlerUserData());
        if (severity == CE_Debug) return;
        self->messages_.emplace_back(severity, message ? message : "");
    }
    void release() {
        if (collect_) CPLPopErrorHandler();
        collect_ = false;
    }

    bool collect_;
    std::vector<std::pair<CPLErr, std::string>> messages_;
};

// After a virtual path (/vsizip/, /vsicurl/, ...) failed to open: does it exist at all? Asked only then,
// as a stat of a remote file costs a request.
bool virtual_path_missing(const std::string& path) {
    if (!is_virtual_path(path)) return false;
    VSIStatBufL stat;
    CPLPushErrorHandler(CPLQuietErrorHandler);
    const bool missing = VSIStatL(path.c_str(), &stat) != 0;
    CPLPopErrorHandler();
    return missing;
}

}  // namespace

DatasetPtr open_vector(const std::string& path) {
    ensure_gdal_registered();
    if (!is_virtual_path(path)) {
        VSIStatBufL stat;
        if (VSIStatL(path.c_str(), &stat) != 0) throw Error(path + ": no such file");
    }
    CPLErrorReset();
    OpenMessages messages(is_virtual_path(path));
    DatasetPtr dataset(GDALDataset::FromHandle(
        GDALOpenEx(path.c_str(), GDAL_OF_VECTOR | GDAL_OF_READONLY, nullptr, nullptr, nullptr)));
    if (dataset) messages.pass_on();
    if (!dataset) {
        const std::string reason = is_virtual_path(path) ? messages.reason(path) : last_gdal_error(""),
                          why = reason.empty() ? "no driver recognised it" : reason;
        if (virtual_path_missing(path)) throw Error(path + ": no such file (or not reachable" + (reason.empty() ? "" : ": " + reason) + ")");
        throw Error(path + ": cannot open as a vector file (" + why + ")");
    }
    if (dataset->GetLayerCount() < 1) throw Error(path + ": has no layer");
    return dataset;
}

DatasetPtr open_raster(const std::string& path) {
    ensure_gdal_registered();
    if (!is_virtual_path(path)) {
        VSIStatBufL stat;
        if (VSIStatL(path.c_str(), &stat) != 0) throw Error(path + ": no such file");
        if (VSI_ISDIR(stat.st_mode)) throw Error(path + ": is a directory, not a raster");
    }
    CPLErrorReset();
    OpenMessages messages(is_virtual_path(path));
    GDALDataset* dataset = GDALDataset::FromHandle(
        GDALOpenEx(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr));
    if (dataset != nullptr) messages.pass_on();
    if (dataset == nullptr) {
        const std::string reason = is_virtual_path(path) ? messages.reason(path) : last_gdal_error(""),
                          why = reason.empty() ? "no driver recognised it" : reason;
        if (virtual_path_missing(path)) throw Error(path + ": no such file (or not reachable" + (reason.empty() ? "" : ": " + reason) + ")");
        throw Error(path + ": not a raster GDAL can read (" + why + ")");
    }
    DatasetPtr owned(dataset);
    if (dataset->GetRasterXSize() <= 0 || dataset->GetRasterYSize() <= 0) {
        throw Error(path + ": the raster has no pixels");
    }
    if (dataset->GetRasterCount() <= 0) throw Error(path + ": the raster has no bands");
    return owned;
}

namespace {

// What GDAL reports while a dataset closes: the first failure, whether the .aux.xml could not be
// saved, and the other warnings (passed on afterwards).
struct CloseReport {
    std::string failure;
    bool aux_xml_failed = false;
    std::vector<std::string> warnings;
};

void CPL_STDCALL collect_close_errors(CPLErr level, CPLErrorNum, const char* message) {
    auto* report = static_cast<CloseReport*>(CPLGetErrorHandlerUserData());
    const std::string text = message ? message : "";
    if (level >= CE_Failure) {
        if (report->failure.empty()) report->failure = text;
    } else if (level == CE_Warning && text.find("Unable to save auxiliary information") != std::string::npos) {
        report->aux_xml_failed = true;
    } else if (level == CE_Warning) {
        report->warnings.push_back(text);
    }
}

}  // namespace

void close_written(DatasetPtr dataset, const std::string& path) {
    if (!dataset) return;
    CloseReport report;
    {
        CPLErrorHandlerPusher collect(collect_close_errors, &report);
        CPLErrorReset();
        GDALClose(GDALDataset::ToHandle(dataset.release()));
    }
    for (const std::string& w : report.warnings) CPLError(CE_Warning, CPLE_AppDefined, "%s", w.c_str());
    if (!report.failure.empty()) {
        std::string text = report.failure;
        for (char& c : text) {
            if (c == '\n' || c == '\r') c = ' ';
        }
        throw Error(path + ": writing failed (" + text + ")");
    }
    if (report.aux_xml_failed) throw Error(path + ": writing failed: its .aux.xml (class names, statistics) could not be saved (disk full?)");
}

void check_vector_written(const std::string& written, const std::string& name, int64_t features, const std::string& what) {
    CPLErrorHandlerPusher quiet(CPLQuietErrorHandler);
    CPLErrorReset();
    GDALDatasetH handle = GDALOpenEx(written.c_str(), GDAL_OF_VECTOR, nullptr, nullptr, nullptr);
    const DatasetPtr back(GDALDataset::FromHandle(handle));
    OGRLayer* layer = back && back->GetLayerCount() == 1 ? back->GetLayer(0) : nullptr;
    const GIntBig count = layer ? layer->GetFeatureCount(TRUE) : -1;
    if (count != features) {
        throw Error(name + ": writing failed: the file holds " +
                    (count < 0 ? std::string("no readable layer") : std::to_string(count) + " of " + std::to_string(features) + " " + what) +
                    " (disk full?)");
    }
}

OGRSpatialReference gis_order_srs(const OGRSpatialReference& srs) {
    OGRSpatialReference copy(srs);
    copy.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    return copy;
}

void set_creation_options(CPLStringList& options, const std::vector<std::string>& key_values) {
    for (const std::string& key_value : key_values) {
        const size_t eq = key_value.find('=');
        if (eq == std::string::npos || eq == 0) throw usage_error("--co: expected KEY=VALUE, got '" + key_value + "'");
        options.SetNameValue(key_value.substr(0, eq).c_str(), key_value.substr(eq + 1).c_str());
    }
}

}  // namespace rsi
