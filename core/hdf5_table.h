#pragma once
// Tables in an HDF5 file (core/hdf5_file.h): 1-D, chunked, extendible, compressed compound
// datasets that grow one flushed row at a time, so a crash loses nothing already logged;
// their columns, and the rows written to and read from them. Errors and threading as in
// core/hdf5_file.h.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/hdf5_file.h"

namespace qf::hdf5 {

enum class ColumnType { kI4, kI8, kF4, kF8, kString };

struct Column {
  std::string name;
  ColumnType type = ColumnType::kI8;
  // Length of a kString column in bytes. Shorter values are NUL-padded, as numpy's 'S'
  // dtype stores them, so a value may use all of them; 0 for numeric columns.
  std::size_t string_bytes = 0;

  bool operator==(const Column& o) const {
    return name == o.name && type == o.type && string_bytes == o.string_bytes;
  }
  bool operator!=(const Column& o) const { return !(*this == o); }
};

Column i4(std::string name);
Column i8(std::string name);
Column f4(std::string name);
Column f8(std::string name);
Column str(std::string name, std::size_t bytes);
// The numpy-like short form of a column's type for messages: "i8", "f4", "str32".
std::string type_name(const Column& c);

using Schema = std::vector<Column>;

// Where each column of a schema lives in a packed row. Rows are read and written in
// this layout, and the file stores the same packed layout.
class RowLayout {
 public:
  // `label` names the table in messages, e.g. "table /probe of 'out/run.h5'".
  RowLayout(std::string label, Schema schema);
  const std::string& label() const { return label_; }
  const Schema& schema() const { return schema_; }
  std::size_t row_bytes() const { return row_bytes_; }
  std::size_t offset(std::size_t column) const { return offsets_[column]; }
  // The index of column `name`; throws qf::Error naming the table when there is none.
  std::size_t index_of(std::string_view name) const;
  bool has(std::string_view name) const;

 private:
  std::string label_;
  Schema schema_;
  std::vector<std::size_t> offsets_;
  std::size_t row_bytes_ = 0;
};

// One row under construction. Every column must be set exactly once, with a value of
// its kind: signed or unsigned integers for i4/i8 (range-checked), floating point for
// f4/f8, strings for strN (at most N bytes; never silently truncated). Anything else
// throws qf::Error naming the table and the column.
class RowBuilder {
 public:
  explicit RowBuilder(std::shared_ptr<const RowLayout> layout);

  template <class T>
  RowBuilder& set(std::string_view column, const T& value) {
    static_assert(!std::is_same_v<T, bool>, "no column holds booleans; use an integer");
    if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
      return set_signed(column, static_cast<std::int64_t>(value));
    } else if constexpr (std::is_integral_v<T>) {
      return set_unsigned(column, static_cast<std::uint64_t>(value));
    } else if constexpr (std::is_floating_point_v<T>) {
      return set_floating(column, static_cast<double>(value));
    } else {
      static_assert(std::is_convertible_v<const T&, std::string_view>,
                    "a column value is an integer, a floating-point number or a string");
      return set_string(column, std::string_view(value));
    }
  }

  // The packed row; throws qf::Error naming the table and every column not yet set.
  const std::vector<unsigned char>& bytes() const;
  const RowLayout& layout() const { return *layout_; }

 private:
  RowBuilder& set_signed(std::string_view column, std::int64_t value);
  RowBuilder& set_unsigned(std::string_view column, std::uint64_t value);
  RowBuilder& set_floating(std::string_view column, double value);
  RowBuilder& set_string(std::string_view column, std::string_view value);
  // The index of `column`, which must exist and not be set yet.
  std::size_t unfilled(std::string_view column) const;
  [[noreturn]] void wrong_kind(std::size_t column, const std::string& value) const;

  std::shared_ptr<const RowLayout> layout_;
  std::vector<unsigned char> bytes_;
  std::vector<bool> filled_;
};

// Rows read back from a table. Accessors check the column's kind like RowBuilder does.
class RowSet {
 public:
  RowSet(std::shared_ptr<const RowLayout> layout, std::vector<unsigned char> bytes);
  std::size_t size() const { return size_; }
  const RowLayout& layout() const { return *layout_; }
  // The rows in the packed layout (RowLayout), as stored.
  const std::vector<unsigned char>& packed() const { return bytes_; }

  std::int64_t int_at(std::size_t row, std::string_view column) const;
  double double_at(std::size_t row, std::string_view column) const;
  // Without the NUL padding.
  std::string string_at(std::size_t row, std::string_view column) const;

  std::vector<std::int64_t> ints(std::string_view column) const;
  std::vector<double> doubles(std::string_view column) const;
  std::vector<std::string> strings(std::string_view column) const;

  // int_at / double_at / string_at chosen by the C++ type a value is read into.
  template <class T>
  T get(std::size_t row, std::string_view column) const {
    if constexpr (std::is_integral_v<T>) {
      return static_cast<T>(int_at(row, column));
    } else if constexpr (std::is_floating_point_v<T>) {
      return static_cast<T>(double_at(row, column));
    } else {
      static_assert(std::is_same_v<T, std::string>, "read into an integer, float or string");
      return string_at(row, column);
    }
  }

 private:
  const unsigned char* cell(std::size_t row, std::size_t column) const;
  std::int64_t int_in(std::size_t row, std::size_t column) const;
  double double_in(std::size_t row, std::size_t column) const;
  std::string string_in(std::size_t row, std::size_t column) const;
  std::size_t checked_column(std::string_view column, bool (*is_kind)(ColumnType),
                             const char* kind) const;

  std::shared_ptr<const RowLayout> layout_;
  std::vector<unsigned char> bytes_;
  std::size_t size_ = 0;
};

struct TableOptions {
  // Rows per chunk. Each flush rewrites (and recompresses) the chunk being filled, so
  // this bounds the work per appended row as well as the compression ratio.
  std::size_t chunk_rows = 256;
  int gzip_level = 4;
};

// A 1-D chunked, extendible, shuffle+gzip-compressed compound dataset. A Table keeps
// its file open by itself, so it may outlive the File it came from.
class Table {
 public:
  // Creates dataset `name` in the root group; it must not exist yet.
  static Table create(const File& file, const std::string& name, const Schema& schema,
                      const TableOptions& options = {});
  // Opens dataset `name` and checks that its columns are `schema` exactly (names, order,
  // types, string lengths); a FormatError names the file, table and column otherwise.
  static Table open(const File& file, const std::string& name, const Schema& schema);

  const RowLayout& layout() const { return *layout_; }
  const Schema& schema() const { return layout_->schema(); }
  // A builder for one row of this table.
  RowBuilder row() const { return RowBuilder(layout_); }

  // Appends and flushes the file: once this returns, the rows survive a crash.
  void append(const RowBuilder& row);
  void append(const std::vector<RowBuilder>& rows);
  // Rows already in this table's packed layout (e.g. RowSet::packed() of a table with
  // the same schema); Error naming the table when `bytes` is not a whole number of rows.
  void append_packed(const unsigned char* data, std::size_t bytes);
  std::size_t size() const;
  // For resume: drops every row whose `step` column is greater than `step`. Rows are in
  // step order, so this keeps the rows before the first such row. Returns the number
  // of rows dropped.
  std::size_t truncate_after(std::int64_t step);
  // Drops every row.
  void clear();

  RowSet read() const;
  std::vector<std::int64_t> read_ints(std::string_view column) const;
  std::vector<double> read_doubles(std::string_view column) const;
  std::vector<std::string> read_strings(std::string_view column) const;

 private:
  Table(Handle dataset, Handle memory_type, std::shared_ptr<const RowLayout> layout, bool writable)
      : dataset_(std::move(dataset)),
        memory_type_(std::move(memory_type)),
        layout_(std::move(layout)),
        writable_(writable) {}
  void write_rows(const unsigned char* data, std::size_t count);
  void resize(std::size_t rows);
  void check_writable(const char* action) const;
  void check_same_table(const RowBuilder& row) const;

  Handle dataset_;
  Handle memory_type_;
  std::shared_ptr<const RowLayout> layout_;
  // Checked by us: HDF5 lets a read-only open write when the same process also has
  // the file open for writing, since both share one underlying file.
  bool writable_ = false;
};

}  // namespace qf::hdf5
