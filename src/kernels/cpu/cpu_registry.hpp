// The CPU backend's kernel registry, built once on first use.
#pragma once

#include "kernels/registry.hpp"

namespace deskml::kernels::cpu {

const KernelRegistry& cpu_registry();

// One per op family (one file each in this folder).
void register_elementwise_kernels(KernelRegistry& r);
void register_activation_kernels(KernelRegistry& r);
void register_softmax_kernels(KernelRegistry& r);
void register_shape_kernels(KernelRegistry& r);
void register_index_kernels(KernelRegistry& r);
void register_conv_kernels(KernelRegistry& r);
void register_pool_kernels(KernelRegistry& r);
void register_matmul_kernels(KernelRegistry& r);
void register_quantize_kernels(KernelRegistry& r);
void register_normalization_kernels(KernelRegistry& r);
void register_reduce_kernels(KernelRegistry& r);
void register_loss_kernels(KernelRegistry& r);
void register_rnn_kernels(KernelRegistry& r);
void register_resize_kernels(KernelRegistry& r);
void register_detection_kernels(KernelRegistry& r);
void register_signal_kernels(KernelRegistry& r);
void register_control_flow_kernels(KernelRegistry& r);
void register_sequence_kernels(KernelRegistry& r);
void register_string_kernels(KernelRegistry& r);
void register_linalg_kernels(KernelRegistry& r);

}  // namespace deskml::kernels::cpu
