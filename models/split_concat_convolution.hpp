#pragma once
// A TorchScript graph rewrite for the channels-last CPU graph (part of the LibTorch module).
//
// A U-Net decoder concatenates the upsampled features with a skip connection along the channels and
// convolves the result. In channels-last (NHWC) memory the concatenation interleaves every pixel's
// channels, a full-resolution copy: for the building model ~14 of ~34 ms at 512², the largest
// non-convolution cost of its forward pass. A convolution over a channel concatenation equals the
// sum of convolutions over the parts with the matching slices of the weights, so
//     conv2d(cat([a, b], 1), W, bias)  ->  conv2d(a, W[:, :Ca]) + conv2d(b, W[:, Ca:], bias)
// with Ca = a.size(1) taken at run time (the graph does not know the shapes). Only the summation
// order changes: results equal to float rounding.
#include <memory>

namespace torch::jit {
struct Graph;
}

namespace rsi::models {

// Rewrites every conv2d (groups 1) whose input is a cat along dim 1 used by nothing else, in the
// graph's top-level block; returns how many.
int split_concatenated_convolutions(const std::shared_ptr<torch::jit::Graph>& graph);

}  // namespace rsi::models
