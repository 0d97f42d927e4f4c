// Bulk reads from PostgreSQL as one stream: COPY (query in key order) TO STDOUT
// in the binary format, cut into pages as the scorer asks for them. Against a
// query per page this saves the server a plan, an index descent and the
// float-to-text conversion of every value (2.5x the rows per second reading the
// scoring benchmark's table). The stream sees one snapshot of the table.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "features/pg_pool.hpp"
#include "features/row_batch.hpp"

namespace deskml::features::pg {

// Whether values of this type decode from COPY's binary format here (booleans,
// integers, floats, numeric, text types). A query with another type is read
// page by page in text form instead.
bool binary_decodable(Oid type);
// Appends one value in PostgreSQL's binary send format as a cell.
Status append_binary_cell(RowBatch& out, Oid type, std::string_view data, const std::string& column);

class CopyStream {
 public:
  // Starts `copy_sql` on the leased connection. `columns` and `types` describe
  // the query's result (from a LIMIT 0 run of it); every type must be
  // binary_decodable().
  static Result<std::unique_ptr<CopyStream>> open(Pool::Lease lease, std::string copy_sql,
                                                  std::vector<std::string> columns, std::vector<Oid> types);
  ~CopyStream();  // a stream left before its end closes its connection
  CopyStream(const CopyStream&) = delete;
  CopyStream& operator=(const CopyStream&) = delete;

  // The next `limit` rows (fewer only at the end; none once it is reached).
  Result<RowBatch> next(size_t limit);

 private:
  CopyStream(Pool::Lease lease, std::string copy_sql, std::vector<std::string> columns, std::vector<Oid> types)
      : lease_(std::move(lease)), sql_(std::move(copy_sql)), columns_(std::move(columns)), types_(std::move(types)) {}
  // Parses the rows of one CopyData message into `out`; sets `ended_` at the trailer.
  Status parse(std::string_view message, RowBatch& out);

  Pool::Lease lease_;
  std::string sql_;
  std::vector<std::string> columns_;
  std::vector<Oid> types_;
  bool header_seen_ = false;
  bool ended_ = false;     // the trailer arrived
  bool finished_ = false;  // the statement completed
};

}  // namespace deskml::features::pg
