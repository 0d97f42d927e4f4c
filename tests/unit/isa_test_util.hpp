// A parameterised fixture that runs each test body on every instruction set
// the elementwise kernels have (the best the CPU offers, AVX2 at most, and the
// baseline), so that each code path is checked on an AVX-512 machine too.
#pragma once

#include <gtest/gtest.h>

#include "kernels/cpu/elementwise_isa.hpp"

namespace deskml::testing {

class IsaTest : public ::testing::TestWithParam<kernels::cpu::ew::IsaCap> {
 protected:
  void SetUp() override { kernels::cpu::ew::cap_isa(GetParam()); }
  void TearDown() override { kernels::cpu::ew::cap_isa(kernels::cpu::ew::IsaCap::kBest); }
};

inline auto all_isas() {
  return ::testing::Values(kernels::cpu::ew::IsaCap::kBest, kernels::cpu::ew::IsaCap::kAvx2,
                           kernels::cpu::ew::IsaCap::kBaseline);
}

inline std::string isa_name(const ::testing::TestParamInfo<kernels::cpu::ew::IsaCap>& info) {
  return kernels::cpu::ew::isa_cap_name(info.param);
}

}  // namespace deskml::testing
