#include "models/split_concat_convolution.hpp"

#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <vector>

namespace rsi::models {

namespace {

using torch::jit::Node;
using torch::jit::Value;

bool is_constant_int(const Value* value, int64_t expected) {
    const auto v = torch::jit::constant_as<int64_t>(value);
    return v && *v == expected;
}

// conv2d(input, weight, bias, stride, padding, dilation, groups) fed by cat(ListConstruct(...), 1).
bool splittable(const Node* conv) {
    if (conv->kind() != c10::aten::conv2d || conv->inputs().size() != 7 || !is_constant_int(conv->input(6), 1)) return false;
    const Value* concatenated = conv->input(0);
    const Node* cat = concatenated->node();
    if (cat->kind() != c10::aten::cat || concatenated->uses().size() != 1 || !is_constant_int(cat->input(1), 1)) return false;
    const Node* list = cat->input(0)->node();
    return list->kind() == c10::prim::ListConstruct && list->inputs().size() >= 2 && cat->input(0)->uses().size() == 1;
}

}  // namespace

int split_concatenated_convolutions(const std::shared_ptr<torch::jit::Graph>& graph) {
    std::vector<Node*> convolutions;
    for (Node* node : graph->nodes()) {
        if (splittable(node)) convolutions.push_back(node);
    }
    for (Node* conv : convolutions) {
        Node* list = conv->input(0)->node()->input(0)->node();
        const std::vector<Value*> parts(list->inputs().begin(), list->inputs().end());
        torch::jit::WithInsertPoint guard(conv);
        Value* weight = conv->input(1);
        Value* bias = conv->input(2);
        Value* none = graph->insertConstant(c10::IValue());
        Value* start = graph->insertConstant(int64_t{0});
        Value* sum = nullptr;
        for (size_t i = 0; i < parts.size(); ++i) {
            Value* channels = graph->insert(c10::aten::size, {parts[i], int64_t{1}});
            Value* end = graph->insert(c10::aten::add, {start, channels});
            Value* slice = graph->insert(c10::aten::slice, {weight, int64_t{1}, start, end, int64_t{1}});
            Node* part_conv = graph->insertNode(graph->createClone(conv, [](Value* v) { return v; }));
            part_conv->replaceInput(0, parts[i]);
            part_conv->replaceInput(1, slice);
            part_conv->replaceInput(2, i + 1 == parts.size() ? bias : none);  // the bias once
            // The first partial result is a fresh tensor of this graph: accumulate into it in place.
            sum = sum ? graph->insert(c10::aten::add_, {sum, part_conv->output()}) : part_conv->output();
            start = end;
        }
        conv->output()->replaceAllUsesWith(sum);
        conv->destroy();
    }
    if (!convolutions.empty()) torch::jit::EliminateDeadCode(graph);
    return static_cast<int>(convolutions.size());
}

}  // namespace rsi::models
