// Which query columns feed which model inputs, and the conversion of rows into
// input tensors. docs/SCORING.md describes the rules; in short, for each input:
//
//   1. a mapping in config (the model's config.toml [features.inputs], or --map
//      INPUT=COL,COL,...) names its columns, in order ("*" = every column but the key);
//   2. else a column with the input's name feeds it: [N] or [N, 1];
//   3. else, if it is the only input left, every column not used by another input
//      and not the key, in query order, feeds it as one [N, F] tensor: a tabular
//      model's feature vector.
//
// Values convert to the input's type: integers, reals and booleans to any numeric
// or bool input (checked: 1.5 is no integer, 300 no int8, 2 no bool), text to
// BYTES (string) inputs, or to a number when it parses as one. A NULL takes the
// column's declared fill value, else the default fill, else fails with an error
// naming the row's key, the column and the input.
#pragma once

#include <toml++/toml.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/status.hpp"
#include "features/row_batch.hpp"
#include "graph/graph.hpp"
#include "serving/tensors.hpp"

namespace deskml::features {

// What a NULL becomes: a number (booleans: 0 or 1) or a text.
using FillValue = std::variant<double, std::string>;

// Where online requests for a model find rows by key: [features.sources.NAME].
// Requests name the source; the URI and query stay on the server.
struct SourceSpec {
  std::string uri;    // sqlite:PATH (relative to the model's folder) or postgresql://...
  std::string query;  // a SELECT returning the key and the features
  std::string key;    // the key column
};

struct MappingConfig {
  std::map<std::string, std::vector<std::string>> inputs;  // input -> columns, in order
  std::optional<FillValue> fill;                           // NULL in any column
  std::map<std::string, FillValue> column_fill;            // NULL in one column (wins over `fill`)
  std::map<std::string, SourceSpec> sources;               // named sources for online lookups

  // The [features] table of a model's config.toml:
  //   [features]
  //   fill = 0.0                        # optional
  //   [features.inputs]
  //   features = ["age", "income"]      # or "*"
  //   [features.fill_values]
  //   income = 0.0
  //   [features.sources.crm]            # online lookups: {"features": {"source": "crm", "keys": [...]}}
  //   uri = "postgresql://scorer@db/crm"
  //   query = "SELECT customer_id, age, income FROM customers"
  //   key = "customer_id"
  // `origin` names the file in errors.
  static Result<MappingConfig> from_toml(const toml::table& table, const std::string& origin);
  // --map INPUT=COL[,COL...] (replaces any mapping of INPUT).
  Status add_map_spec(std::string_view spec);
  // --fill VALUE or --fill COL=VALUE. A value that parses as a number is one
  // (true/false are 1/0); anything else is text.
  Status add_fill_spec(std::string_view spec);
};

// How one input is assembled.
struct InputBinding {
  std::string input;
  DataType dtype = DataType::kUndefined;
  std::vector<size_t> columns;    // positions in the query's columns
  std::vector<int64_t> row_dims;  // one row's shape: {} for [N], {1} for [N, 1], {F} for [N, F]
};

class FeatureMapping {
 public:
  // Decides the bindings from the model's inputs and the query's columns (a page's
  // RowBatch::columns). InvalidArgument, saying what to do, when an input has no
  // columns, a fixed width does not match, or a fill value has the wrong type.
  static Result<FeatureMapping> create(const std::vector<graph::ValueInfo>& inputs,
                                       const std::vector<std::string>& columns, std::string_view key,
                                       const MappingConfig& config);

  // The inputs for rows [begin, end) of `batch`, whose columns must be the ones
  // given to create().
  Result<serving::Tensors> tensors(const RowBatch& batch, size_t begin, size_t end) const;

  const std::vector<InputBinding>& bindings() const { return bindings_; }
  const std::vector<std::string>& columns() const { return columns_; }
  size_t key_column() const { return key_column_; }
  // "features <- float[N,30] from 30 columns (mean_radius ... worst_fractal_dimension)"; one line per input.
  std::string describe() const;

 private:
  std::vector<std::string> columns_;
  size_t key_column_ = 0;
  std::vector<InputBinding> bindings_;
  std::vector<std::optional<FillValue>> fills_;  // per column
};

}  // namespace deskml::features
