// Real imagery: building outlines regularised from the bundled model's Vegas mask. Some orthogonal
// candidates GEOS finds invalid (self-intersecting); they are dropped without a GDAL warning reaching
// the user (the quick start once printed "Self-intersection at or near point ...").
#include <gtest/gtest.h>

#include "src/model_catalog.hpp"
#include "src/segmentation.hpp"
#include "src/vectorize.hpp"
#include "test_support.hpp"

namespace rsi {
namespace {


int g_warnings = 0;

TEST(RealRegularize, VegasBuildingsGiveNoGdalWarnings) {
    test::TempDir dir;
    const models::Model model = models::Model::load(pick_bundled_model(models::Task::segmentation, test::image_with_bands(3), {}, RSI_BUNDLED_MODELS_DIR).path);
    SegmentOptions s;
    s.input = test::shared_data("spacenet/vegas_rgb.tif");
    s.output = dir / "mask.tif";
    s.batch = 1;
    s.model_runners = 1;
    segment_image(model, s);
    VectorizeOptions v;
    v.mask = s.output;
    v.output = dir / "buildings.gpkg";
    v.classes = {1};
    v.min_area_m2 = 10;
    v.regularize = true;
    g_warnings = 0;
    CPLPushErrorHandler([](CPLErr kind, CPLErrorNum, const char*) {
        if (kind == CE_Warning) ++g_warnings;
    });
    const VectorizeResult r = vectorize_mask(v);
    CPLPopErrorHandler();
    EXPECT_GT(r.polygons, 10);
    EXPECT_EQ(g_warnings, 0);
}

}  // namespace
}  // namespace rsi
