#include "src/band_mapping.hpp"

#include <cctype>

#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>

#include "tiling/error.hpp"
#include "tiling/ground_distance.hpp"

namespace rsi {

namespace {

std::string band_names(const models::ModelMetadata& m) {
    std::string s;
    for (size_t i = 0; i < m.band_names.size(); ++i) s += (i ? "," : "") + m.band_names[i];
    return s.empty() ? "" : " (" + s + ")";
}

std::vector<int> choose_bands(const RasterSource& source, const models::ModelMetadata& m,
                              const std::vector<int>& requested, const std::string& command) {
    const int available = source.info().band_count();
    const std::string expects = command + ": model " + m.name + " expects " + std::to_string(m.bands) + " band" +
                                (m.bands == 1 ? "" : "s") + band_names(m) + ", ";
    if (!requested.empty()) {
        source.check_bands(requested);
        if (static_cast<int>(requested.size()) == m.bands) return requested;
        if (requested.size() == 1 && m.single_band == "replicate") return std::vector<int>(static_cast<size_t>(m.bands), requested[0]);
        throw usage_error(expects + "--bands selects " + std::to_string(requested.size()));
    }
    if (!m.source_bands.empty() && *std::max_element(m.source_bands.begin(), m.source_bands.end()) <= available) {
        return m.source_bands;
    }
    if (available == m.bands) {
        std::vector<int> all(static_cast<size_t>(available));
        for (int b = 0; b < available; ++b) all[static_cast<size_t>(b)] = b + 1;
        return all;
    }
    if (available == 1 && m.single_band == "replicate") return std::vector<int>(static_cast<size_t>(m.bands), 1);
    // `rsi model check --tiles-from` has no --bands to point to.
    throw Error(expects + source.info().path + " has " + std::to_string(available) +
                (command == "model check" ? " (give an image with the model's bands)" : " (choose them with --bands)"));
}

std::string format_number(double v) {
    std::ostringstream out;
    out.precision(4);
    out << v;
    return out.str();
}

// What the image says its bands are against what the model's channels are named: an alpha band fed
// as data, or a band declared Blue filling the model's red channel (a BGR image), is said once. Bands
// the user chose (`chosen`) are taken as meant unless one is an alpha band.
template <typename Warn>
void check_band_meaning(const RasterInfo& info, const models::ModelMetadata& m, const std::vector<int>& bands, bool chosen,
                        const Warn& warn) {
    std::string problems;
    for (size_t k = 0; k < bands.size(); ++k) {
        const std::string& declared = info.bands[static_cast<size_t>(bands[k] - 1)].color_interpretation;
        const std::string channel = k < m.band_names.size() ? m.band_names[k] : "channel " + std::to_string(k + 1);
        const std::string expected = k < m.band_names.size() ? channel_colour(m.band_names[k]) : "";
        std::string problem;
        if (declared == "Alpha") problem = "band " + std::to_string(bands[k]) + " is an alpha band";
        else if (!chosen && !expected.empty() && (declared == "Red" || declared == "Green" || declared == "Blue") && declared != expected) {
            problem = "band " + std::to_string(bands[k]) + " is declared " + declared;
        }
        if (!problem.empty()) problems += (problems.empty() ? "" : ", ") + problem + " but fills the model's " + channel + " channel";
    }
    if (!problems.empty()) warn(problems + (chosen ? " (as --bands asked)" : " (choose the bands with --bands)"));
    // A palette band holds colour-table indices: the model would see index numbers as intensities.
    for (int b : bands) {
        if (info.bands[static_cast<size_t>(b - 1)].color_interpretation == "Palette") {
            warn("band " + std::to_string(b) + " holds colour-table indices, not intensities: expand the palette first "
                 "(gdal_translate -expand rgb IN OUT)");
            break;
        }
    }
}

}  // namespace

std::string channel_colour(std::string name) {
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (name == "red" || name == "r" || name == "b04") return "Red";
    if (name == "green" || name == "g" || name == "b03") return "Green";
    if (name == "blue" || name == "b" || name == "b02") return "Blue";
    return "";
}

double model_pixel_scale(const RasterInfo& info, const models::ModelMetadata& m) {
    const auto ground = ground_pixel_size(info);
    return ground && m.gsd_known && m.gsd_m > 0 ? m.gsd_m / ((ground->x_m + ground->y_m) / 2) : 1.0;
}

std::pair<double, double> model_pixel_scales(const RasterInfo& info, const models::ModelMetadata& m) {
    const double mean = model_pixel_scale(info, m);
    const auto ground = ground_pixel_size(info);
    if (!ground || !m.gsd_known || m.gsd_m <= 0 || std::abs(ground->x_m / ground->y_m - 1.0) <= 0.01) return {mean, mean};
    return {m.gsd_m / ground->x_m, m.gsd_m / ground->y_m};
}

BandMapping map_bands(const RasterSource& source, const models::ModelMetadata& m, const std::vector<int>& requested,
                      const std::string& command, bool strict, bool resampled) {
    const RasterInfo& info = source.info();
    BandMapping mapping;
    mapping.source_bands = choose_bands(source, m, requested, command);
    for (int b : mapping.source_bands) {
        const GDALDataType type = info.bands[static_cast<size_t>(b - 1)].data_type;
        if (GDALDataTypeIsComplex(type)) {
            throw Error(info.path + ": band " + std::to_string(b) + " holds complex numbers (" + GDALGetDataTypeName(type) +
                        "), which model " + m.name + " cannot take; convert it to amplitude first (e.g. gdal_translate with a VRT pixel function)");
        }
    }
    auto warn = [&](const std::string& message) {
        if (strict) throw Error(info.path + ": " + message + " (--strict)");
        mapping.warnings.push_back(message);
    };
    check_band_meaning(info, m, mapping.source_bands, !requested.empty(), warn);
    // The model's declared source bands are numbered as in its training imagery (a Sentinel-2 stack):
    // in an image with another number of data bands they may be other wavelengths altogether — unless
    // the image declares those bands the colours the model's channels are named after. The training
    // imagery's band count is the model's own unless the metadata names it (source_band_count: an
    // RGBN model reading bands 4,3,2,8 of a 13-band stack).
    const int trained_bands = m.source_band_count > 0 ? m.source_band_count : m.bands;
    if (requested.empty() && m.source_bands_declared && mapping.source_bands == m.source_bands && info.band_count() != trained_bands) {
        int data_bands = 0;
        for (const BandInfo& b : info.bands) data_bands += b.color_interpretation != "Alpha";
        bool colours_confirm = !m.band_names.empty();
        for (size_t k = 0; k < mapping.source_bands.size() && colours_confirm; ++k) {
            const std::string expected = k < m.band_names.size() ? channel_colour(m.band_names[k]) : "";
            colours_confirm = !expected.empty() && info.bands[static_cast<size_t>(mapping.source_bands[k] - 1)].color_interpretation == expected;
        }
        if (data_bands != trained_bands && !colours_confirm) {
            std::string taken, channels;
            for (size_t k = 0; k < mapping.source_bands.size(); ++k) {
                taken += (k ? "," : "") + std::to_string(mapping.source_bands[k]);
                channels += (k ? ", " : "") + (k < m.band_names.size() ? m.band_names[k] : "channel " + std::to_string(k + 1));
            }
            warn("has " + std::to_string(info.band_count()) + " bands: its bands " + taken + " fill the model's " + channels +
                 " channels (the model's default source bands, numbered as in its " +
                 (m.source_band_count > 0 ? std::to_string(m.source_band_count) + "-band " : "") +
                 "training imagery); if this image orders its bands otherwise, choose them with --bands");
        }
    }

    // Raster outputs carry the ground control points, but pixels are not located with them: no
    // resampling to the model's pixel size, and polygons in pixel coordinates.
    if (!info.has_geotransform && info.gcp_count > 0) {
        warn("has " + std::to_string(info.gcp_count) + " ground control points but no geotransform: the raster outputs carry "
             "them, but the image is read at its own pixel size and polygons are in pixel coordinates (warp it first: "
             "gdalwarp -r bilinear IN OUT)");
    }
    // Sampled statistics of the distinct source bands (a replicated band is sampled once).
    const std::vector<BandStatistics> stats =
        sample_band_statistics(source, mapping.source_bands, m.rescale_low, m.rescale_high);
    const GDALDataType type = info.bands[static_cast<size_t>(mapping.source_bands[0] - 1)].data_type;
    const std::string type_name = GDALGetDataTypeName(type);
    mapping.rescaled = m.rescale != "none" &&
                       std::find(m.rescale_when.begin(), m.rescale_when.end(), type_name) != m.rescale_when.end();
    if (mapping.rescaled && m.data_range_known) {
        // Values of such a type that already lie in the model's range and fill a good part of it (Byte
        // imagery stored as UInt16 or Float32) are taken as they are: stretched, they predicted 6 %
        // fewer building pixels than the same values as Byte. Dim or wider-ranging data (0..1
        // reflectance, 11-bit panchromatic) is still stretched.
        const double range = m.data_range[1] - m.data_range[0];
        bool sampled = false, fits = true;
        double brightest = m.data_range[0];
        for (const BandStatistics& s : stats) {
            if (s.samples == 0) continue;
            sampled = true;
            fits = fits && s.low >= m.data_range[0] && s.high <= m.data_range[1];
            brightest = std::max(brightest, s.high);
        }
        if (sampled && fits && brightest - m.data_range[0] >= 0.25 * range) mapping.rescaled = false;
    }
    if (mapping.rescaled) {
        mapping.rescale = m.rescale == "minmax" ? "minmax" : "percentile " + format_number(m.rescale_low) + "-" + format_number(m.rescale_high);
        for (size_t b = 0; b < stats.size(); ++b) {
            if (stats[b].samples == 0) {
                warn("band " + std::to_string(mapping.source_bands[b]) + ": no valid pixel in the sampled windows, so its values are not "
                     "stretched (" + mapping.rescale + "): they reach the model as they are");
            }
        }
    }

    std::vector<LinearMap> raw_to_range(mapping.source_bands.size());
    if (mapping.rescaled) {
        ScalingSpec spec;
        spec.method = m.rescale == "minmax" ? ScalingMethod::minmax : ScalingMethod::percentile;
        raw_to_range = scaling_maps(spec, stats, mapping.source_bands.size(), m.data_range[0], m.data_range[1]);
    } else if (m.data_range_known) {
        const double range = m.data_range[1] - m.data_range[0];
        const std::string model_range = "the model's data range [" + format_number(m.data_range[0]) + ", " +
                                        format_number(m.data_range[1]) + "]";
        auto values = [&](size_t b) {
            return "band " + std::to_string(mapping.source_bands[b]) + " has values " + format_number(stats[b].low) + ".." +
                   format_number(stats[b].high) + " (2-98%), ";
        };
        // Units: every band far below the range (e.g. Byte imagery into a reflectance model). One dark
        // band alone is no sign of it: a forest's red band or the cirrus band of a Sentinel-2 scene
        // sits well under 5% of 0..10000.
        std::optional<size_t> brightest;
        bool sampled = false, outside = false;
        for (size_t b = 0; b < stats.size() && !outside; ++b) {
            if (stats[b].samples == 0) continue;
            sampled = true;
            if (stats[b].high > m.data_range[1] + 0.5 * range || stats[b].low < m.data_range[0] - 0.5 * range) {
                warn(values(b) + "far outside " + model_range);
                outside = true;
            }
            if (!brightest || stats[b].high > stats[*brightest].high) brightest = b;
        }
        if (sampled && !outside && stats[*brightest].high - m.data_range[0] < 0.05 * range) {
            warn(values(*brightest) + "the brightest of the bands, less than 5% of " + model_range +
                 " (different radiometry or units?)");
        }
    }
    for (size_t b = 0; b < raw_to_range.size(); ++b) {
        mapping.normalizer.scaling.push_back({raw_to_range[b].scale * m.scale, raw_to_range[b].offset * m.scale});
    }
    mapping.normalizer.mean = m.mean;
    mapping.normalizer.std = m.std;
    if (mapping.rescaled) {
        mapping.normalizer.clamp = true;
        mapping.normalizer.clamp_min = m.data_range[0] * m.scale;
        mapping.normalizer.clamp_max = m.data_range[1] * m.scale;
    }

    if (const auto ground = ground_pixel_size(info); ground && !resampled && m.gsd_known) {
        const double pixel = (ground->x_m + ground->y_m) / 2;
        const double ratio = pixel / m.gsd_m;
        if (ratio > 1.5 || ratio < 1 / 1.5) {
            warn("the image's pixel size " + format_number(pixel) + " m is far from the " + format_number(m.gsd_m) +
                 " m model " + m.name + " was trained at (x" + format_number(ratio) + ")");
        }
    } else if (!resampled && m.gsd_known && info.has_geotransform && info.crs_wkt.empty()) {
        // A geotransform in unknown units: a 3 m pixel ran silently into a 0.3 m model.
        warn("has a geotransform but no CRS, so its pixel size (" + format_number(std::abs(info.geotransform[1])) +
             " units) cannot be checked against the " + format_number(m.gsd_m) + " m model " + m.name +
             " was trained at; assign its CRS (gdal_edit.py -a_srs EPSG:...) to have it checked and resampled");
    }
    return mapping;
}

}  // namespace rsi
