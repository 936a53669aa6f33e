#include "src/strip_journal.hpp"
#include "src/item_journal.hpp"
#include "src/json_text.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <openssl/evp.h>
#include <sstream>
#include <unistd.h>

#include <gdal_priv.h>

#include "src/output_file.hpp"
#include "src/shard_lock.hpp"
#include "tiling/error.hpp"
#include "tiling/gdal_dataset.hpp"

namespace fs = std::filesystem;

namespace rsi {

ShardSpec parse_shard(const std::string& text, const std::string& option) {
    ShardSpec s;
    try {
        const size_t slash = text.find('/');
        if (slash == std::string::npos) throw std::invalid_argument("no /");
        size_t used = 0;
        s.index = std::stoi(text.substr(0, slash), &used);
        if (used != slash) throw std::invalid_argument("junk");
        const std::string right = text.substr(slash + 1);
        s.count = std::stoi(right, &used);
        if (used != right.size()) throw std::invalid_argument("junk");
    } catch (const std::exception&) {
        throw usage_error(option + ": '" + text + "' is not K/N (shard K of N, 0 <= K < N)");
    }
    if (s.count < 1 || s.index < 0 || s.index >= s.count) {
        throw usage_error(option + ": '" + text + "' needs 0 <= K < N (shard K of N, counted from 0)");
    }
    return s;
}

std::pair<int64_t, int64_t> shard_strips(int64_t strips, const ShardSpec& shard) {
    return {strips * shard.index / shard.count, strips * (shard.index + 1) / shard.count};
}

std::vector<size_t> shard_items(const std::vector<int64_t>& pixels, const ShardSpec& shard) {
    std::vector<size_t> order(pixels.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return pixels[a] > pixels[b]; });
    std::vector<int64_t> load(static_cast<size_t>(shard.count), 0);
    std::vector<size_t> mine;
    for (size_t i : order) {
        const size_t target = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
        load[target] += pixels[i];
        if (static_cast<int>(target) == shard.index) mine.push_back(i);
    }
    std::sort(mine.begin(), mine.end());
    return mine;
}

std::string sha256_hex(std::string_view text) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < length; ++i) {
        out += hex[digest[i] >> 4];
        out += hex[digest[i] & 15];
    }
    return out;
}

namespace {

// A whole-number field: a fraction or a value beyond int64 is malformed (converting such a double to
// an integer would be undefined behaviour, found by fuzz_strip_journal).
int64_t integer_field(const nlohmann::json& j, const char* key) {
    const nlohmann::json& value = j.at(key);
    if (value.is_number_unsigned()) {
        const uint64_t u = value.get<uint64_t>();
        if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) throw std::out_of_range(key);
        return static_cast<int64_t>(u);
    }
    if (!value.is_number_integer()) throw std::invalid_argument(key);
    return value.get<int64_t>();
}

}  // namespace

std::vector<JournalEntry> parse_journal(std::string_view text, const std::string& fingerprint, const std::string& where) {
    std::vector<JournalEntry> out;
    std::vector<std::string_view> lines;
    size_t start = 0;
    while (start < text.size()) {
        const size_t end = text.find('\n', start);
        if (end == std::string_view::npos) {
            lines.push_back(text.substr(start));  // no newline: torn by a crash mid-write
            break;
        }
        lines.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    const bool torn_tail = !text.empty() && text.back() != '\n';
    if (lines.empty()) throw Error(where + ": empty journal");
    for (size_t i = 0; i < lines.size(); ++i) {
        const bool last_torn = torn_tail && i + 1 == lines.size();
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(lines[i]);
            if (!j.is_object()) throw std::invalid_argument("not an object");
        } catch (const std::exception&) {
            if (last_torn && i > 0) break;
            throw Error(where + ":" + std::to_string(i + 1) + ": not a journal line");
        }
        try {
            if (i == 0) {
                const bool version_1 = j.contains("rsi_journal") && j.at("rsi_journal").is_number_integer() &&
                                       j.at("rsi_journal").get<int64_t>() == 1;
                if (!version_1) throw Error(where + ":1: not an rsi journal (version 1)");
                if (j.at("fingerprint").get<std::string>() != fingerprint) {
                    throw usage_error(where + ": was written for different inputs or options (fingerprint " +
                                      j.at("fingerprint").get<std::string>().substr(0, 12) + "...); rerun without --resume, or with the same options");
                }
                continue;
            }
            JournalEntry e;
            e.strip = integer_field(j, "strip");
            e.y = integer_field(j, "y");
            e.rows = integer_field(j, "rows");
            e.file = j.at("file").get<std::string>();
            if (j.contains("bytes")) e.bytes = integer_field(j, "bytes");
            if (e.strip < 0 || e.y < 0 || e.rows < 1 || e.bytes < -1 || e.file.empty() || e.file.find('/') != std::string::npos) {
                throw std::invalid_argument("values out of range");
            }
            out.push_back(std::move(e));
        } catch (const Error&) {
            throw;
        } catch (const std::exception&) {
            if (last_torn) break;
            throw Error(where + ":" + std::to_string(i + 1) + ": malformed journal entry");
        }
    }
    return out;
}

std::string StripJournal::journal_name(const ShardSpec& shard) {
    return "shard-" + std::to_string(shard.index) + "-of-" + std::to_string(shard.count) + ".journal";
}

std::string StripJournal::part_name(int64_t strip) {
    char name[32];
    std::snprintf(name, sizeof name, "strip-%06lld.tif", static_cast<long long>(strip));
    return name;
}

StripJournal::StripJournal(std::string parts_dir, const std::string& fingerprint, const ShardSpec& shard)
    : dir_(std::move(parts_dir)), path_((fs::path(dir_) / journal_name(shard)).string()), fingerprint_(fingerprint) {
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (!fs::is_directory(dir_)) throw Error(dir_ + ": cannot create the parts folder");
    lock_ = std::make_shared<const ShardLock>(dir_, shard);
    if (fs::exists(path_)) {
        std::ifstream in(path_, std::ios::binary);
        std::stringstream s;
        s << in.rdbuf();
        const std::string text = s.str();
        entries_ = parse_journal(text, fingerprint, path_);
        if (!text.empty() && text.back() != '\n') {
            // Drop the torn tail so new lines start clean.
            const size_t cut = text.rfind('\n');
            std::ofstream rewrite(path_ + ".tmp", std::ios::binary | std::ios::trunc);
            rewrite << text.substr(0, cut == std::string::npos ? 0 : cut + 1);
            rewrite.close();
            fs::rename(path_ + ".tmp", path_);
        }
        // A part counts as done when it exists with the size it was committed with and names this
        // job: one cut short (a copy that failed, a full disk on shared storage) or copied in from
        // another job is computed again (and would be refused at assembly).
        for (const JournalEntry& e : entries_) {
            const fs::path part = fs::path(dir_) / e.file;
            std::error_code size_error;
            const auto size = fs::file_size(part, size_error);
            const bool whole = !size_error && (e.bytes < 0 || static_cast<int64_t>(size) == e.bytes);
            if (whole && part_belongs_to_job(part.string(), fingerprint)) done_.insert(e.strip);
        }
    } else {
        const nlohmann::json header{{"rsi_journal", 1}, {"fingerprint", fingerprint}, {"shard", {shard.index, shard.count}}};
        const std::string tmp = path_ + ".tmp";
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << json_text(header) << "\n";
        out.close();
        if (!out) throw Error(path_ + ": cannot write the journal");
        fs::rename(tmp, path_);
    }
}

StripJournal::~StripJournal() = default;

void StripJournal::commit(int64_t strip, int64_t y, int64_t rows, int64_t width, int classes, const float* probabilities,
                          const float* weights) {
    const std::string name = part_name(strip);
    const std::string final_path = (fs::path(dir_) / name).string();
    {
        PendingOutput pending(final_path, true);  // a resumed run redoes a strip whose journal line a kill lost
        ensure_gdal_registered();
        GDALDriver* gtiff = GetGDALDriverManager()->GetDriverByName("GTiff");
        // Uncompressed, the parts of a 50000² image took 12 bytes a pixel (30 GB) of shared scratch space.
        const std::string block_rows = "BLOCKYSIZE=" + std::to_string(std::min<int64_t>(rows, 16));
        const char* const creation[] = {"COMPRESS=DEFLATE", "PREDICTOR=3", "ZLEVEL=1", block_rows.c_str(), nullptr};
        DatasetPtr ds(gtiff->Create(pending.temporary_path().c_str(), static_cast<int>(width), static_cast<int>(rows), classes + 1,
                                    GDT_Float32, const_cast<char**>(creation)));
        if (!ds) throw Error(final_path + ": cannot create the part: " + last_gdal_error());
        ds->SetMetadataItem(kPartFingerprintItem, fingerprint_.c_str());
        const int64_t plane = rows * width;
        for (int c = 0; c < classes; ++c) {
            if (ds->GetRasterBand(c + 1)->RasterIO(GF_Write, 0, 0, static_cast<int>(width), static_cast<int>(rows),
                                                   const_cast<float*>(probabilities + c * plane), static_cast<int>(width),
                                                   static_cast<int>(rows), GDT_Float32, 0, 0) != CE_None) {
                throw Error(final_path + ": writing the part failed: " + last_gdal_error());
            }
        }
        std::vector<float> valid(static_cast<size_t>(plane));
        for (int64_t p = 0; p < plane; ++p) valid[static_cast<size_t>(p)] = weights[p] > 0 ? 1.0f : 0.0f;
        if (ds->GetRasterBand(classes + 1)->RasterIO(GF_Write, 0, 0, static_cast<int>(width), static_cast<int>(rows), valid.data(),
                                                     static_cast<int>(width), static_cast<int>(rows), GDT_Float32, 0, 0) != CE_None) {
            throw Error(final_path + ": writing the part failed: " + last_gdal_error());
        }
        close_written(std::move(ds), final_path);
        pending.commit();
    }
    std::error_code size_error;
    const auto bytes = fs::file_size(final_path, size_error);
    if (size_error) throw Error(final_path + ": the part just written cannot be read back: " + size_error.message());
    const nlohmann::json line{{"strip", strip}, {"file", name}, {"y", y}, {"rows", rows}, {"bytes", static_cast<int64_t>(bytes)}};
    FILE* f = std::fopen(path_.c_str(), "ab");
    if (!f) throw Error(path_ + ": cannot append to the journal");
    const std::string text = json_text(line) + "\n";
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
    const std::string why = ok ? "" : write_failure_reason();  // errno before fclose changes it
    std::fclose(f);
    if (!ok) throw Error(path_ + ": writing the journal failed" + why);
    entries_.push_back({strip, y, rows, name, static_cast<int64_t>(bytes)});
    done_.insert(strip);
}

namespace {

// The job a part file names, or "" (parts written before rsi recorded it: trusted, as their journal's
// header already matched the job).
std::string part_fingerprint(GDALDataset& part) {
    const char* written_by = part.GetMetadataItem(kPartFingerprintItem);
    return written_by ? written_by : "";
}

}  // namespace

bool part_belongs_to_job(const std::string& path, const std::string& fingerprint) {
    ensure_gdal_registered();
    CPLPushErrorHandler(CPLQuietErrorHandler);
    DatasetPtr ds(GDALDataset::FromHandle(GDALOpenEx(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr)));
    CPLPopErrorHandler();
    if (!ds) return false;
    const std::string written_by = part_fingerprint(*ds);
    return written_by.empty() || written_by == fingerprint;
}

void read_strip_part(const std::string& path, const std::string& fingerprint, int classes, int64_t width, int64_t rows,
                     std::vector<float>& probabilities, std::vector<uint8_t>& valid) {
    DatasetPtr ds = open_raster(path);
    const std::string written_by = part_fingerprint(*ds);
    if (!written_by.empty() && written_by != fingerprint) {
        throw Error(path + ": this part was written by another job (fingerprint " + written_by.substr(0, 12) + "..., job.json has " +
                    fingerprint.substr(0, 12) + "...); rerun its shard with --resume, which computes it again");
    }
    if (ds->GetRasterXSize() != width || ds->GetRasterYSize() != rows || ds->GetRasterCount() != classes + 1) {
        throw Error(path + ": part has the wrong shape (" + std::to_string(ds->GetRasterXSize()) + "x" +
                    std::to_string(ds->GetRasterYSize()) + "x" + std::to_string(ds->GetRasterCount()) + ")");
    }
    const int64_t plane = rows * width;
    probabilities.resize(static_cast<size_t>(classes * plane));
    std::vector<float> v(static_cast<size_t>(plane));
    for (int c = 0; c <= classes; ++c) {
        float* target = c < classes ? probabilities.data() + c * plane : v.data();
        if (ds->GetRasterBand(c + 1)->RasterIO(GF_Read, 0, 0, static_cast<int>(width), static_cast<int>(rows), target, static_cast<int>(width),
                                               static_cast<int>(rows), GDT_Float32, 0, 0) != CE_None) {
            throw Error(path + ": reading the part failed: " + last_gdal_error() +
                        "; delete it and rerun the shard that wrote it (its journal lists it): the part is computed again");
        }
    }
    valid.resize(static_cast<size_t>(plane));
    for (int64_t p = 0; p < plane; ++p) valid[static_cast<size_t>(p)] = v[static_cast<size_t>(p)] > 0.5f;
}

std::string input_path_for_job(const std::string& input) {
    if (input.rfind("/vsi", 0) == 0 || input.find(':') != std::string::npos) return input;
    std::error_code ec;
    const fs::path absolute = fs::absolute(input, ec);
    return ec ? input : absolute.lexically_normal().string();
}

std::string output_path_for_job(const std::string& output) {
    if (output.empty() || output.rfind("/vsi", 0) == 0) return output;
    std::error_code ec;
    const fs::path absolute = fs::absolute(output, ec);
    return ec ? output : absolute.lexically_normal().string();
}

std::vector<std::string> job_inputs(const nlohmann::json& job) {
    std::vector<std::string> out;
    const auto add = [&](const nlohmann::json& j) {
        if (j.is_object() && j.contains("input") && j.at("input").is_string() && !j.at("input").get<std::string>().empty())
            out.push_back(j.at("input").get<std::string>());
    };
    add(job);
    if (job.contains("image_grid")) add(job.at("image_grid"));
    if (job.contains("lattice")) add(job.at("lattice"));
    return out;
}

nlohmann::json read_job(const std::string& parts_dir) {
    const std::string path = (fs::path(parts_dir) / "job.json").string();
    std::error_code ec;
    if (!fs::exists(parts_dir, ec)) {
        // A second merge: the first removed the folder and left FINAL.tif beside where it was.
        fs::path folder = fs::path(parts_dir).lexically_normal();
        if (!folder.has_filename()) folder = folder.parent_path();
        const std::string name = folder.filename().string();
        const std::string suffix = ".parts";
        if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
            const fs::path merged = folder.parent_path() / name.substr(0, name.size() - suffix.size());
            if (fs::exists(merged, ec)) {
                throw Error(parts_dir + ": no such parts folder, and " + merged.string() +
                            " exists: merged already? (a merge removes the parts folder)");
            }
        }
        throw Error(parts_dir + ": no such parts folder");
    }
    std::ifstream in(path);
    if (!in) throw Error(parts_dir + ": no job.json (not an rsi parts folder, or no shard has started)");
    try {
        return nlohmann::json::parse(in);
    } catch (const std::exception& e) {
        throw Error(path + ": not valid JSON: " + e.what());
    }
}

std::string merge_output_path(const std::string& parts_dir, const std::string& recorded_output, const std::string& recorded) {
    if (recorded.empty()) return recorded;
    fs::path parts = fs::path(parts_dir).lexically_normal();
    if (!parts.has_filename()) parts = parts.parent_path();
    const fs::path output(recorded_output);
    if (parts.filename().string() != output.filename().string() + ".parts") return recorded;
    const fs::path relative = fs::path(recorded).lexically_normal().lexically_relative(output.lexically_normal().parent_path());
    if (relative.empty()) return recorded;
    return (parts.parent_path() / relative).lexically_normal().string();
}

nlohmann::json write_or_check_job(const std::string& parts_dir, const nlohmann::json& job) {
    std::error_code ec;
    fs::create_directories(parts_dir, ec);
    const std::string path = (fs::path(parts_dir) / "job.json").string();
    if (fs::exists(path)) {
        const nlohmann::json existing = read_job(parts_dir);
        if (existing.value("fingerprint", "") != job.at("fingerprint").get<std::string>()) {
            // Say what differs, as tile and submit jobs do (settings_difference, src/item_journal.hpp).
            const std::string changed = settings_difference(existing.value("settings", nlohmann::json::object()),
                                                            job.value("settings", nlohmann::json::object()));
            throw usage_error(parts_dir + ": holds parts of another job (" +
                              (changed.empty() ? std::string("different input, model or options") : changed) +
                              "): resume with the same options, or remove it or use another parts folder");
        }
        // The outputs are not part of the fingerprint (they do not change a part), but the merge writes
        // those the job was started with: a shard or resume asking for others would be ignored silently.
        // Which outputs and how, not their paths: a resume of a run whose mask waits under a temporary
        // name (until its polygons are written) names another temporary file.
        const auto outputs_of = [](const nlohmann::json& j) {
            nlohmann::json out = j.contains("image_grid") && j.at("image_grid").contains("outputs") ? j.at("image_grid").at("outputs")
                                                                                                   : j.value("outputs", nlohmann::json());
            for (const char* path_key : {"output", "probabilities", "dense", "csv", "vector"}) {
                if (out.is_object() && out.contains(path_key) && out.at(path_key).is_string()) {
                    out[path_key] = out.at(path_key).get<std::string>().empty() ? "none" : "written";
                }
            }
            return out;
        };
        const nlohmann::json before = outputs_of(existing), now = outputs_of(job);
        if (before.is_object() && now.is_object() && before != now) {
            std::string differs;
            for (const auto& [key, value] : now.items()) {
                if (!before.contains(key) || before.at(key) != value) {
                    differs += (differs.empty() ? "" : ", ") + key + " " + json_text(value) + " (the job has " +
                               (before.contains(key) ? json_text(before.at(key)) : std::string("none")) + ")";
                }
            }
            throw usage_error(parts_dir + ": this job was started with other outputs: " + differs +
                              "; give every shard and resume the same outputs");
        }
        return existing;
    }
    // Several shards may start at once: each writes its own temporary file and renames it; all are equal.
    const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
    {
        std::ofstream out(tmp);
        out << json_text(job, 1) << "\n";
        if (!out) throw Error(path + ": cannot write");
    }
    fs::rename(tmp, path, ec);
    if (ec) throw Error(path + ": cannot write: " + ec.message());
    return job;
}

void check_shard_count(const nlohmann::json& job, const ShardSpec& shard, const std::string& parts_dir) {
    const int started = job.value("shards", 1);
    if (started != shard.count) {
        throw usage_error(parts_dir + ": was started with " + std::to_string(started) + " shards, not " + std::to_string(shard.count) +
                          " (keep N the same for every shard of a job)");
    }
}

nlohmann::json georeference_to_job(const RasterInfo& info) {
    nlohmann::json job{{"width", info.width}, {"height", info.height}, {"has_geotransform", info.has_geotransform},
                       {"geotransform", std::vector<double>(info.geotransform.begin(), info.geotransform.end())},
                       {"crs_wkt", info.crs_wkt}};
    if (!info.gcps.empty()) {  // (a merge writes them into the outputs as a single run does)
        nlohmann::json gcps = nlohmann::json::array();
        for (const GroundControlPoint& p : info.gcps) gcps.push_back({p.pixel, p.line, p.x, p.y, p.z});
        job["gcps"] = gcps;
        job["gcp_crs_wkt"] = info.gcp_crs_wkt;
    }
    return job;
}

RasterInfo georeference_from_job(const nlohmann::json& job) {
    RasterInfo info;
    info.width = job.at("width").get<int64_t>();
    info.height = job.at("height").get<int64_t>();
    info.has_geotransform = job.at("has_geotransform").get<bool>();
    const auto g = job.at("geotransform").get<std::vector<double>>();
    if (g.size() != 6) throw Error("job.json: geotransform must have 6 numbers");
    std::copy(g.begin(), g.end(), info.geotransform.begin());
    info.crs_wkt = job.at("crs_wkt").get<std::string>();
    if (job.contains("gcps")) {
        for (const auto& p : job.at("gcps")) {
            const auto v = p.get<std::vector<double>>();
            if (v.size() != 5) throw Error("job.json: a ground control point must have 5 numbers");
            info.gcps.push_back({v[0], v[1], v[2], v[3], v[4]});
        }
        info.gcp_count = static_cast<int>(info.gcps.size());
        info.gcp_crs_wkt = job.value("gcp_crs_wkt", "");
    }
    return info;
}

std::vector<std::shared_ptr<const ShardLock>> check_all_shards_done(const std::string& parts_dir, const std::string& fingerprint,
                                                                    int shards, int64_t strips) {
    std::vector<std::shared_ptr<const ShardLock>> locks;
    std::vector<bool> have(static_cast<size_t>(strips), false);
    for (int k = 0; k < shards; ++k) {
        const ShardSpec shard{k, shards};
        const fs::path journal_path = fs::path(parts_dir) / StripJournal::journal_name(shard);
        const std::string name = std::to_string(k) + "/" + std::to_string(shards);
        if (!fs::exists(journal_path)) {
            throw Error(parts_dir + ": shard " + name + " has not started (no " + journal_path.filename().string() + ")");
        }
        const StripJournal journal(parts_dir, fingerprint, shard);  // throws while the shard still runs
        locks.push_back(journal.lock());
        const auto [first, end] = shard_strips(strips, shard);
        for (int64_t r = first; r < end; ++r) {
            if (!journal.done(r)) {
                throw Error(parts_dir + ": shard " + name + " is not complete (strip " + std::to_string(r) + " of its " +
                            std::to_string(first) + ".." + std::to_string(end - 1) + " missing)");
            }
            have[static_cast<size_t>(r)] = true;
        }
    }
    for (int64_t r = 0; r < strips; ++r) {
        if (!have[static_cast<size_t>(r)]) throw Error(parts_dir + ": strip " + std::to_string(r) + " belongs to no shard");
    }
    return locks;
}

}  // namespace rsi
