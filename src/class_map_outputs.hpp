#pragma once
// The outputs of a segmentation, fed with rows of class probabilities: the class mask (argmax, with
// --min-confidence and nodata) and the optional probability raster (all classes or one, Float32 or
// Byte, plus the normalised entropy band).
#include <memory>
#include <vector>

#include "models/model_metadata.hpp"
#include "src/raster_writer.hpp"
#include "src/segmentation.hpp"

namespace rsi {

class ClassMapOutputs {
public:
    ClassMapOutputs(const SegmentOptions& options, const RasterInfo& georeference, const models::ModelMetadata& model);

    // `probabilities`: classes x rows x width; `valid`: rows x width, 0 = nodata.
    void write_rows(int64_t y, int64_t rows, const float* probabilities, const uint8_t* valid);
    // The same for columns x .. x+span of a band of rows (`probabilities`: classes x rows x span,
    // `valid`: rows x span). Spans of one band share y and rows; flush_band() writes the band once
    // every column was given.
    void write_span(int64_t y, int64_t rows, int64_t x, int64_t span, const float* probabilities, const uint8_t* valid);
    void flush_band();
    // close() completes both files under their temporary names (a full disk fails here); commit()
    // renames them into place. finish() does both.
    void close();
    void commit();
    void finish();

    const std::vector<int64_t>& class_pixels() const { return class_pixels_; }
    int64_t nodata_pixels() const { return nodata_pixels_; }
    int64_t probability_bands() const { return probability_bands_; }

private:
    const SegmentOptions& options_;
    int64_t width_, classes_;
    int64_t probability_bands_ = 0;
    std::unique_ptr<RasterWriter> mask_;
    std::unique_ptr<RasterWriter> probability_;
    std::vector<int64_t> class_pixels_;
    int64_t nodata_pixels_ = 0;
    int64_t band_y_ = 0, band_rows_ = 0;  // the band being filled (rows 0: none)
    std::vector<uint8_t> class_rows_, byte_rows_;
    std::vector<float> probability_rows_;
};

}  // namespace rsi
