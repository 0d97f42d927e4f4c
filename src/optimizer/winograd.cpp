// Algorithm pass: allows Winograd's minimal filtering algorithm for the
// convolutions it suits. F(m x m, 3 x 3) computes a 3x3 stride-1 convolution
// with 2.25x (m = 2) to 4x (m = 4) fewer multiplications than the direct one;
// on AVX-512 oneDNN's Winograd kernels run ResNet's 3x3 layers about twice as
// fast, staging reorders included. Results differ from the direct algorithm by
// rounding only (about 1e-6 relative on ResNet-50's layers).
//
// The pass only marks nodes (attribute `winograd` = 1); the Conv kernel still
// asks oneDNN, which implements Winograd on some CPUs and channel counts only,
// and runs the direct algorithm otherwise or when the node sums a residual.
#include "optimizer/optimizer.hpp"

namespace deskml::optimizer {
int allow_winograd(GraphEditor& editor) {
  int marked = 0;
  for (auto& n : editor.graph().nodes) {
    const bool conv =
        (n.domain.empty() && n.op_type == "Conv") || (n.domain == kDeskmlDomain && n.op_type == "FusedConv");
    if (!conv || n.inputs.size() < 2 || n.attr_int("winograd", 0) != 0) continue;
    const Tensor* w = editor.constant(n.inputs[1]);
    if (w == nullptr || w->dtype() != DataType::kFloat32 || w->rank() != 4) continue;
    if (w->dim(2) != 3 || w->dim(3) != 3 || n.attr_int("group", 1) != 1) continue;
    if (!all_ones(n.attr_ints("strides")) || !all_ones(n.attr_ints("dilations"))) continue;
    n.attributes["winograd"] = int64_t{1};
    ++marked;
  }
  return marked;
}

}  // namespace deskml::optimizer
