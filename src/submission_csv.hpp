#pragma once
// Readers of the competition CSV formats. Each checks the format's rules and names the file and line
// of the first problem.
//
// Tianchi building recognition (datawhalechina/team-learning-cv, AerialImageSegmentation): tab
// separated, no header, `name<TAB>rle`, the RLE as in src/tianchi_rle.hpp, an empty mask an empty
// string. SpaceNet building footprints (SpaceNetChallenge/utilities, solaris): comma separated with the
// header `ImageId,BuildingId,PolygonWKT_Pix[,Confidence]` (ground truth may add PolygonWKT_Geo), WKT
// quoted, pixel coordinates; `ImageId,-1,POLYGON EMPTY,1` marks an image without buildings.
#include <cstdint>
#include <istream>
#include <string>
#include <vector>

namespace rsi {

struct TianchiEntry {
    std::string name;  // image file name, e.g. "abc.jpg"
    std::string rle;
    int64_t line = 0;
};

// Two fields per line; names non-empty and unique. The RLE is decoded (and checked) separately,
// since that needs the image size.
std::vector<TianchiEntry> read_tianchi_csv(std::istream& in, const std::string& where);

struct SpacenetEntry {
    std::string image_id;
    int64_t building_id = 0;
    std::string wkt;             // "POLYGON EMPTY" for an image without buildings
    double confidence = 1;
    bool has_confidence = false;
    int64_t line = 0;
};

// Header optional: a first line that is an entry stands for ImageId,BuildingId,PolygonWKT_Pix[,Confidence]
// in that order; with a header the column order is free. BuildingId an integer, Confidence a number.
std::vector<SpacenetEntry> read_spacenet_csv(std::istream& in, const std::string& where);

}  // namespace rsi
