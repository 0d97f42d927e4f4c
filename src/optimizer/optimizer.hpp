// Graph optimisation: rewrites a loaded model into an equivalent one that runs
// faster. Runs between loading (onnx/) and planning (runtime/). Every pass is
// semantics-preserving within float tolerance and leaves the graph valid for
// the executor; internal ops it introduces live in the "deskml" domain
// (docs/OPTIMIZER.md lists them).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/status.hpp"
#include "graph/graph.hpp"
#include "kernels/registry.hpp"
#include "optimizer/graph_editor.hpp"

namespace deskml::optimizer {

struct OptimizeOptions {
  // 0: none; 1: clean-up and constant folding; 2: also fusions and layout (default).
  int level = 2;
  // Run 2-D float convolutions (and the ops between them) in NHWC.
  bool channels_last = true;
  // Let 3x3 stride-1 convolutions use Winograd's algorithm (see allow_winograd).
  bool winograd = true;
  // Run the NHWC regions that concatenate channels in nChw16c (see convert_to_blocked);
  // on AVX-512 CPUs only, where that layout is oneDNN's native one.
  bool blocked = true;
  // Run a blocked convolution and the max pool after it as one node (see fuse_conv_max_pool).
  bool conv_pool = true;
};

struct PassResult {
  std::string pass;
  int rewrites = 0;
};

// Optimises `model.graph` in place (subgraphs are left as they are). `registry`
// runs constant folding. The report lists each pass and what it changed.
Status optimize(graph::Model& model, const kernels::KernelRegistry& registry, const OptimizeOptions& options,
                std::vector<PassResult>* report = nullptr);

// The passes, each usable on its own (tests run them one by one). Each returns
// how many rewrites it made.
int remove_identities(GraphEditor& editor);
int eliminate_dead_code(GraphEditor& editor);
int fold_constants(GraphEditor& editor, const kernels::KernelRegistry& registry);
int fold_batch_norm(GraphEditor& editor);
int fuse_activation_patterns(GraphEditor& editor);  // x*Sigmoid(x) -> Swish, erf GELU -> Gelu
int fuse_conv(GraphEditor& editor);                 // Conv (+act) (+Add) (+act) -> deskml.FusedConv
int fuse_matmul(GraphEditor& editor);               // MatMul/Gemm (+bias) (+act) (+Add) (+act) -> deskml.FusedMatMul
int fuse_attention(GraphEditor& editor);  // MatMul -> scale -> [mask] -> Softmax -> MatMul -> deskml.Attention
int convert_to_channels_last(GraphEditor& editor);  // NCHW conv chains -> NHWC
int convert_to_blocked(GraphEditor& editor);        // NHWC regions with a channel Concat -> nChw16c
int allow_winograd(GraphEditor& editor);            // marks 3x3 stride-1 float convs `winograd`
int fuse_conv_max_pool(GraphEditor& editor);        // blocked FusedConv -> NhwcMaxPool -> deskml.FusedConvMaxPool

}  // namespace deskml::optimizer
