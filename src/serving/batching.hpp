// Stacking requests along axis 0 into one batch and splitting the outputs back.
// Requests are stacked only when every input agrees in dtype and in all dims but
// the first: batch_signature() says which requests may share a batch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.hpp"
#include "serving/tensors.hpp"

namespace deskml::serving {

// Rows in a request: dim 0 of its inputs, which must all agree (and have rank >= 1).
Result<int64_t> batch_rows(const Tensors& inputs);
// A hash of what must agree for requests to be stacked (input count, dtypes,
// trailing dims); equal hashes are confirmed with stackable().
uint64_t batch_signature(const Tensors& inputs);
bool stackable(const Tensors& a, const Tensors& b);
// One tensor per input, the requests' rows one after another. All requests must
// have equal signatures.
Tensors stack_requests(const std::vector<const Tensors*>& requests);
// Cuts each output's first axis into consecutive pieces of `rows` rows, as views
// of the batch's tensors (no copy). Every output must have exactly sum(rows)
// rows, or the batch cannot be split (InvalidModel).
Result<std::vector<Tensors>> split_outputs(const Tensors& outputs, const std::vector<int64_t>& rows);

}  // namespace deskml::serving
