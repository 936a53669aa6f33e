#pragma once
// Vector outputs chosen by extension, written atomically: a multi-file format (a shapefile) moves all
// of its files into place together, and an existing file of it blocks the run without --overwrite.
#include <string>
#include <vector>

#include "src/output_file.hpp"

namespace rsi {

struct VectorFormat {
    std::string driver;
    bool geojson = false;
    bool geopackage = false;
    std::vector<std::string> sidecar_extensions;  // files the driver writes beside the main one
};

// The format of .gpkg, .geojson/.json, .fgb or .shp (any case); a usage Error naming `path` otherwise.
VectorFormat vector_format(const std::string& path);

// The path GDAL writes for `path`: a shapefile's extension in lower case (x.SHP becomes x.shp).
std::string written_vector_path(const std::string& path, const VectorFormat& format);

// Whether `path` names a GeoJSON output (.geojson, .json), which is written in WGS84 unless --keep-crs.
bool is_geojson_output(const std::string& path);

// Checks a vector output before the run: a known format, a writable folder, not an existing
// directory, and, unless `overwrite`, neither the file nor (for a shapefile) any of the
// files the driver writes beside it (.shx, .dbf, .prj, ...). Returns the path GDAL will write (a
// shapefile's extension in lower case). With `again` (the run checked it when it started) an existing
// file is reported as one that appeared meanwhile, a runtime error.
std::string check_vector_output(const std::string& path, bool overwrite, bool again = false);

// A PendingOutput that also moves the sidecars of a multi-file format (a shapefile's .shx, .dbf,
// .prj, .cpg) into place, removes the stale sidecars an older output left beside the final name (a
// stale .qix would index the wrong shapes), and cleans SQLite journals of a failed GeoPackage.
class PendingVectorOutput {
public:
    PendingVectorOutput(const std::string& final_path, const VectorFormat& format, bool overwrite);
    ~PendingVectorOutput();
    PendingVectorOutput(const PendingVectorOutput&) = delete;
    PendingVectorOutput& operator=(const PendingVectorOutput&) = delete;

    const std::string& temporary_path() const { return pending_.temporary_path(); }
    const std::string& final_path() const { return pending_.final_path(); }

    // The sidecars first, the main file last: once it has its name, its sidecars are there.
    void commit();
    // As PendingOutput::check_final_path_free.
    void check_final_path_free() const { pending_.check_final_path_free(); }

private:
    std::vector<std::string> sidecars(const std::string& path) const;

    PendingOutput pending_;
    std::vector<std::string> extensions_;
    bool committed_ = false;
};

}  // namespace rsi
