// Kernel registry: (op, domain, opset range, dtype) -> factory. One registry
// per backend; the executor asks each backend in priority order.
#pragma once

#include <climits>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "kernels/kernel.hpp"

namespace deskml::kernels {

struct KernelDef {
  std::string op;
  std::string domain;             // "" = ai.onnx
  int since = 1;                  // first opset this kernel implements
  int until = INT_MAX;            // last opset (inclusive) before the op's semantics changed
  std::vector<DataType> types;    // accepted types of input `type_input`; empty = any
  int type_input = 0;             // which input's dtype selects the kernel (-1: none, e.g. Constant)
  KernelFactory factory;
};

class KernelRegistry {
 public:
  explicit KernelRegistry(std::string backend) : backend_(std::move(backend)) {}
  const std::string& backend() const { return backend_; }

  void add(KernelDef def);
  // Convenience for stateless kernels.
  void add(const std::string& op, int since, int until, std::vector<DataType> types, KernelFn fn,
           const std::string& domain = "");

  // The kernel for this node; `input_dtype(i)` gives input i's type (kUndefined when absent).
  const KernelDef* find(const std::string& op, const std::string& domain, int opset,
                        const std::function<DataType(int)>& input_dtype) const;
  // Same, when the selecting input's type is known directly.
  const KernelDef* find(const std::string& op, const std::string& domain, int opset, DataType dtype) const {
    return find(op, domain, opset, [dtype](int) { return dtype; });
  }
  // Is there any kernel for the op at this opset, whatever the dtype?
  bool supports(const std::string& op, const std::string& domain, int opset) const;
  // All registered (domain, op) pairs, for `deskml inspect` and docs.
  std::vector<std::pair<std::string, std::string>> ops() const;

 private:
  std::string backend_;
  std::map<std::pair<std::string, std::string>, std::vector<KernelDef>> defs_;  // (domain, op)
};

// Type lists for registrations.
namespace types {
inline const std::vector<DataType> kFloat = {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16,
                                             DataType::kBFloat16};
inline const std::vector<DataType> kSignedNumeric = {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16,
                                                     DataType::kBFloat16, DataType::kInt8,  DataType::kInt16,
                                                     DataType::kInt32,   DataType::kInt64};
inline const std::vector<DataType> kNumeric = {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16,
                                               DataType::kBFloat16, DataType::kInt8,   DataType::kInt16,
                                               DataType::kInt32,   DataType::kInt64,  DataType::kUInt8,
                                               DataType::kUInt16,  DataType::kUInt32, DataType::kUInt64};
inline const std::vector<DataType> kInteger = {DataType::kInt8,  DataType::kInt16,  DataType::kInt32,
                                               DataType::kInt64, DataType::kUInt8,  DataType::kUInt16,
                                               DataType::kUInt32, DataType::kUInt64};
inline const std::vector<DataType> kAll = {};  // any type, strings and bool included
}  // namespace types

}  // namespace deskml::kernels
