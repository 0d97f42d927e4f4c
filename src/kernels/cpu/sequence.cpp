#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {

void register_sequence_kernels(KernelRegistry& r) { (void)r; }

}  // namespace deskml::kernels::cpu
