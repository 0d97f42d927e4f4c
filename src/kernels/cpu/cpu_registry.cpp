#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {

const KernelRegistry& cpu_registry() {
  static const KernelRegistry registry = [] {
    KernelRegistry r("cpu");
    register_elementwise_kernels(r);
    register_activation_kernels(r);
    register_softmax_kernels(r);
    register_shape_kernels(r);
    register_index_kernels(r);
    register_conv_kernels(r);
    register_pool_kernels(r);
    register_matmul_kernels(r);
    register_quantize_kernels(r);
    register_normalization_kernels(r);
    register_reduce_kernels(r);
    register_loss_kernels(r);
    register_rnn_kernels(r);
    register_resize_kernels(r);
    register_detection_kernels(r);
    register_signal_kernels(r);
    register_control_flow_kernels(r);
    register_sequence_kernels(r);
    register_string_kernels(r);
    register_linalg_kernels(r);
    return r;
  }();
  return registry;
}

}  // namespace deskml::kernels::cpu
