// The columns deskml score writes: `key`, then one per output element,
// named <output>_<i> (the output's name lower-cased, characters outside
// [a-z0-9_] replaced by '_'), i counting the elements of one row in row-major order.
// A model with outputs logits [N, 2] and probability [N, 1] gives
//   key, logits_0, logits_1, probability_0
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.hpp"
#include "features/row_batch.hpp"
#include "serving/tensors.hpp"

namespace deskml::scoring {

struct OutputColumn {
  std::string name;
  size_t output = 0;    // index into OutputLayout::outputs
  int64_t element = 0;  // within one row of that output
};

struct OutputLayout {
  features::KeyKind key_kind = features::KeyKind::kInteger;
  std::vector<std::string> outputs;  // the model's output names, in order
  std::vector<DataType> dtypes;      // per output
  std::vector<int64_t> per_row;      // elements in one row, per output
  std::vector<OutputColumn> columns;

  // From the first batch's outputs ([rows, ...] each). InvalidArgument for an
  // output without a batch axis or names that collide once cleaned.
  static Result<OutputLayout> from_outputs(const serving::Tensors& outputs, int64_t rows, features::KeyKind key_kind);
  // Checks a later batch against this layout (same outputs, types and row sizes).
  Status check(const serving::Tensors& outputs, int64_t rows) const;

  // A canonical text form, stored with the checkpoint so a resumed job can be
  // checked: "key:integer logits_0:float logits_1:float ...".
  std::string signature() const;
};

// Rows ready to write: their keys, in increasing order, and the model's outputs for them.
struct ScoredRows {
  std::vector<features::Key> keys;
  serving::Tensors outputs;  // [keys.size(), ...] each, in OutputLayout::outputs order
};

// Concatenates the outputs of consecutive chunks of rows along axis 0.
Result<serving::Tensors> concat_rows(std::vector<serving::Tensors> chunks);

// One value as text. Floats use the shortest form that reads back to the same
// value. `style` picks the spelling of special values and booleans.
enum class TextStyle { kCsv, kPostgresCopy };
void append_value(std::string& out, const Tensor& t, int64_t index, TextStyle style);

// Appends `text` as one CSV field, quoted when it holds a comma, quote or line break.
void append_csv_field(std::string& out, std::string_view text);

}  // namespace deskml::scoring
