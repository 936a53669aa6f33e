#pragma once
// Vectorisation of class masks into footprint polygons (placeholder: being written).
namespace rsi {}
