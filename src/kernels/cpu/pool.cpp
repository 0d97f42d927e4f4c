#include "kernels/cpu/cpu_registry.hpp"

namespace deskml::kernels::cpu {

void register_pool_kernels(KernelRegistry& r) { (void)r; }

}  // namespace deskml::kernels::cpu
