// A compact binary encoding of named tensors, used by the result cache both to
// store outputs and to hash inputs. Integers are little-endian; the format is
// described in docs/RESULT_CACHE.md.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "core/status.hpp"
#include "serving/tensors.hpp"

namespace deskml::serving {

// Receives an encoding piece by piece (for hashing without building the whole buffer).
using ByteSink = std::function<void(const void* data, size_t size)>;

// Writes one named tensor: name, dtype, rank, dims, then contents (each string
// length-prefixed). An undefined Tensor is written as dtype 0 with rank 0.
void write_named_tensor(std::string_view name, const Tensor& tensor, const ByteSink& sink);

// A header ("DKT1" and the count) followed by write_named_tensor for each, in order.
std::string encode_tensors(const Tensors& tensors);

// The inverse of encode_tensors. Validates everything (header, dtypes, dims, element
// counts, lengths, bool bytes, trailing bytes); malformed input is InvalidArgument,
// never a crash or an oversized allocation.
Result<Tensors> decode_tensors(std::string_view bytes);

}  // namespace deskml::serving
