#include "core/hdf5_table.h"

#include <hdf5.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>

#include "core/errors.h"
#include "core/hdf5_detail.h"

namespace qf::hdf5 {

static_assert(sizeof(float) == 4 && sizeof(double) == 8, "f4 and f8 columns are C++ floats");

using detail::check;
using detail::last_reason;
using detail::quoted;
using detail::Reason;

namespace {

bool is_integer(ColumnType t) {
  return t == ColumnType::kI4 || t == ColumnType::kI8;
}
bool is_floating(ColumnType t) {
  return t == ColumnType::kF4 || t == ColumnType::kF8;
}
bool is_string(ColumnType t) {
  return t == ColumnType::kString;
}

std::size_t column_bytes(const Column& c) {
  switch (c.type) {
    case ColumnType::kI4:
    case ColumnType::kF4:
      return 4;
    case ColumnType::kI8:
    case ColumnType::kF8:
      return 8;
    case ColumnType::kString:
      return c.string_bytes;
  }
  return 0;
}

// A column's type in the file (standard little-endian, readable anywhere) or in memory.
Handle column_type(const Column& c, bool in_file) {
  switch (c.type) {
    case ColumnType::kI4:
      return Handle(H5Tcopy(in_file ? H5T_STD_I32LE : H5T_NATIVE_INT32));
    case ColumnType::kI8:
      return Handle(H5Tcopy(in_file ? H5T_STD_I64LE : H5T_NATIVE_INT64));
    case ColumnType::kF4:
      return Handle(H5Tcopy(in_file ? H5T_IEEE_F32LE : H5T_NATIVE_FLOAT));
    case ColumnType::kF8:
      return Handle(H5Tcopy(in_file ? H5T_IEEE_F64LE : H5T_NATIVE_DOUBLE));
    case ColumnType::kString: {
      // NUL-padded, not NUL-terminated: numpy's 'S' dtype, all N bytes usable.
      Handle t(H5Tcopy(H5T_C_S1));
      H5Tset_size(t.get(), c.string_bytes);
      H5Tset_strpad(t.get(), H5T_STR_NULLPAD);
      return t;
    }
  }
  return Handle();
}

Handle compound_type(const RowLayout& layout, bool in_file) {
  Handle t(check(H5Tcreate(H5T_COMPOUND, layout.row_bytes()), layout.label(), "compound type"));
  for (std::size_t i = 0; i < layout.schema().size(); ++i) {
    const Column& c = layout.schema()[i];
    Handle member = column_type(c, in_file);
    check(H5Tinsert(t.get(), c.name.c_str(), layout.offset(i), member.get()), layout.label(),
          "compound type");
  }
  return t;
}

// The column a stored member is, or nullopt for a type no schema uses.
std::optional<Column> stored_column(std::string name, hid_t type) {
  const std::size_t size = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      if (H5Tget_sign(type) != H5T_SGN_2) return std::nullopt;
      if (size == 4) return i4(std::move(name));
      if (size == 8) return i8(std::move(name));
      return std::nullopt;
    case H5T_FLOAT:
      if (size == 4) return f4(std::move(name));
      if (size == 8) return f8(std::move(name));
      return std::nullopt;
    case H5T_STRING:
      if (H5Tis_variable_str(type) > 0) return std::nullopt;
      return str(std::move(name), size);
    default:
      return std::nullopt;
  }
}

std::string describe(const Column& c) {
  return "'" + c.name + "' " + type_name(c);
}

// A FormatError naming the first column where the stored type and `layout` differ.
void check_columns(const RowLayout& layout, hid_t type) {
  if (H5Tget_class(type) != H5T_COMPOUND) {
    throw FormatError(layout.label() + " is not a table (a compound dataset)");
  }
  const Schema& want = layout.schema();
  const std::size_t have = static_cast<std::size_t>(std::max(0, H5Tget_nmembers(type)));
  for (std::size_t i = 0; i < std::max(have, want.size()); ++i) {
    std::string actual = "missing";
    std::optional<Column> column;
    if (i < have) {
      char* raw = H5Tget_member_name(type, static_cast<unsigned>(i));
      std::string name = raw ? raw : "";
      H5free_memory(raw);
      Handle member(H5Tget_member_type(type, static_cast<unsigned>(i)));
      column = stored_column(name, member.get());
      actual = column ? describe(*column) : "'" + name + "' of a type no schema uses";
    }
    if (i >= want.size()) {
      throw FormatError(layout.label() + ": unexpected column " + std::to_string(i) + " " + actual +
                        " (the schema has " + std::to_string(want.size()) + ")");
    }
    if (!column || *column != want[i]) {
      throw FormatError(layout.label() + ": column " + std::to_string(i) + " is " + actual +
                        ", expected " + describe(want[i]));
    }
  }
}

}  // namespace

// --- columns ----------------------------------------------------------------------------

Column i4(std::string name) {
  return {std::move(name), ColumnType::kI4, 0};
}
Column i8(std::string name) {
  return {std::move(name), ColumnType::kI8, 0};
}
Column f4(std::string name) {
  return {std::move(name), ColumnType::kF4, 0};
}
Column f8(std::string name) {
  return {std::move(name), ColumnType::kF8, 0};
}
Column str(std::string name, std::size_t bytes) {
  if (bytes == 0) throw Error("string column '" + name + "' needs a length of at least 1 byte");
  return {std::move(name), ColumnType::kString, bytes};
}

std::string type_name(const Column& c) {
  switch (c.type) {
    case ColumnType::kI4:
      return "i4";
    case ColumnType::kI8:
      return "i8";
    case ColumnType::kF4:
      return "f4";
    case ColumnType::kF8:
      return "f8";
    case ColumnType::kString:
      return "str" + std::to_string(c.string_bytes);
  }
  return "?";
}

// --- rows -----------------------------------------------------------------------------

RowLayout::RowLayout(std::string label, Schema schema)
    : label_(std::move(label)), schema_(std::move(schema)) {
  if (schema_.empty()) throw Error(label_ + ": a table needs at least one column");
  for (const Column& c : schema_) {
    if (std::count_if(schema_.begin(), schema_.end(),
                      [&](const Column& o) { return o.name == c.name; }) > 1) {
      throw Error(label_ + ": column '" + c.name + "' appears twice in the schema");
    }
    offsets_.push_back(row_bytes_);
    row_bytes_ += column_bytes(c);
  }
}

std::size_t RowLayout::index_of(std::string_view name) const {
  for (std::size_t i = 0; i < schema_.size(); ++i) {
    if (schema_[i].name == name) return i;
  }
  throw Error(label_ + ": no column '" + std::string(name) + "'");
}

bool RowLayout::has(std::string_view name) const {
  for (const auto& c : schema_) {
    if (c.name == name) return true;
  }
  return false;
}

RowBuilder::RowBuilder(std::shared_ptr<const RowLayout> layout)
    : layout_(std::move(layout)),
      bytes_(layout_->row_bytes(), 0),
      filled_(layout_->schema().size(), false) {}

std::size_t RowBuilder::unfilled(std::string_view column) const {
  const std::size_t i = layout_->index_of(column);
  if (filled_[i])
    throw Error(layout_->label() + ": column '" + std::string(column) + "' set twice in one row");
  return i;
}

void RowBuilder::wrong_kind(std::size_t column, const std::string& value) const {
  const Column& c = layout_->schema()[column];
  throw Error(layout_->label() + ": column " + describe(c) + " cannot hold " + value);
}

RowBuilder& RowBuilder::set_signed(std::string_view column, std::int64_t value) {
  const std::size_t i = unfilled(column);
  const Column& c = layout_->schema()[i];
  if (!is_integer(c.type)) wrong_kind(i, "the integer " + std::to_string(value));
  unsigned char* out = bytes_.data() + layout_->offset(i);
  if (c.type == ColumnType::kI4) {
    if (value < std::numeric_limits<std::int32_t>::min() ||
        value > std::numeric_limits<std::int32_t>::max()) {
      wrong_kind(i, std::to_string(value) + ", which is out of its range");
    }
    const auto narrow = static_cast<std::int32_t>(value);
    std::memcpy(out, &narrow, sizeof narrow);
  } else {
    std::memcpy(out, &value, sizeof value);
  }
  filled_[i] = true;
  return *this;
}

RowBuilder& RowBuilder::set_unsigned(std::string_view column, std::uint64_t value) {
  if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    wrong_kind(unfilled(column), std::to_string(value) + ", which is out of its range");
  }
  return set_signed(column, static_cast<std::int64_t>(value));
}

RowBuilder& RowBuilder::set_floating(std::string_view column, double value) {
  const std::size_t i = unfilled(column);
  const Column& c = layout_->schema()[i];
  if (!is_floating(c.type)) wrong_kind(i, "the floating-point value " + std::to_string(value));
  unsigned char* out = bytes_.data() + layout_->offset(i);
  if (c.type == ColumnType::kF4) {
    const auto narrow = static_cast<float>(value);
    std::memcpy(out, &narrow, sizeof narrow);
  } else {
    std::memcpy(out, &value, sizeof value);
  }
  filled_[i] = true;
  return *this;
}

RowBuilder& RowBuilder::set_string(std::string_view column, std::string_view value) {
  const std::size_t i = unfilled(column);
  const Column& c = layout_->schema()[i];
  const std::string shown = "\"" + std::string(value) + "\"";
  if (!is_string(c.type)) wrong_kind(i, "the string " + shown);
  if (value.size() > c.string_bytes) {
    wrong_kind(i, shown + ", which is " + std::to_string(value.size()) + " bytes long");
  }
  // The padding is NULs, so a value with one would not read back the same.
  if (value.find('\0') != std::string_view::npos) wrong_kind(i, "a string with a NUL byte");
  unsigned char* out = bytes_.data() + layout_->offset(i);
  std::memset(out, 0, c.string_bytes);
  std::memcpy(out, value.data(), value.size());
  filled_[i] = true;
  return *this;
}

const std::vector<unsigned char>& RowBuilder::bytes() const {
  std::string missing;
  for (std::size_t i = 0; i < filled_.size(); ++i) {
    if (!filled_[i]) missing += (missing.empty() ? "'" : ", '") + layout_->schema()[i].name + "'";
  }
  if (!missing.empty()) throw Error(layout_->label() + ": row without column(s) " + missing);
  return bytes_;
}

RowSet::RowSet(std::shared_ptr<const RowLayout> layout, std::vector<unsigned char> bytes)
    : layout_(std::move(layout)),
      bytes_(std::move(bytes)),
      size_(bytes_.size() / layout_->row_bytes()) {}

std::size_t RowSet::checked_column(std::string_view column, bool (*is_kind)(ColumnType),
                                   const char* kind) const {
  const std::size_t i = layout_->index_of(column);
  if (!is_kind(layout_->schema()[i].type)) {
    throw Error(layout_->label() + ": column " + describe(layout_->schema()[i]) +
                " does not hold " + kind);
  }
  return i;
}

const unsigned char* RowSet::cell(std::size_t row, std::size_t column) const {
  if (row >= size_) {
    throw Error(layout_->label() + ": row " + std::to_string(row) + " of " + std::to_string(size_));
  }
  return bytes_.data() + row * layout_->row_bytes() + layout_->offset(column);
}

// The *_in accessors take a column index that checked_column() has vetted.
std::int64_t RowSet::int_in(std::size_t row, std::size_t column) const {
  if (layout_->schema()[column].type == ColumnType::kI4) {
    std::int32_t v;
    std::memcpy(&v, cell(row, column), sizeof v);
    return v;
  }
  std::int64_t v;
  std::memcpy(&v, cell(row, column), sizeof v);
  return v;
}

double RowSet::double_in(std::size_t row, std::size_t column) const {
  if (layout_->schema()[column].type == ColumnType::kF4) {
    float v;
    std::memcpy(&v, cell(row, column), sizeof v);
    return v;
  }
  double v;
  std::memcpy(&v, cell(row, column), sizeof v);
  return v;
}

std::string RowSet::string_in(std::size_t row, std::size_t column) const {
  const char* p = reinterpret_cast<const char*>(cell(row, column));
  return std::string(p, strnlen(p, layout_->schema()[column].string_bytes));
}

namespace {
const char* const kIntegers = "integers";
const char* const kFloats = "floating-point values";
const char* const kStrings = "strings";

template <class T, class Get>
std::vector<T> whole_column(std::size_t rows, Get&& get) {
  std::vector<T> out;
  out.reserve(rows);
  for (std::size_t r = 0; r < rows; ++r) out.push_back(get(r));
  return out;
}
}  // namespace

std::int64_t RowSet::int_at(std::size_t row, std::string_view column) const {
  return int_in(row, checked_column(column, is_integer, kIntegers));
}
double RowSet::double_at(std::size_t row, std::string_view column) const {
  return double_in(row, checked_column(column, is_floating, kFloats));
}
std::string RowSet::string_at(std::size_t row, std::string_view column) const {
  return string_in(row, checked_column(column, is_string, kStrings));
}

std::vector<std::int64_t> RowSet::ints(std::string_view column) const {
  const std::size_t i = checked_column(column, is_integer, kIntegers);
  return whole_column<std::int64_t>(size_, [&](std::size_t r) { return int_in(r, i); });
}
std::vector<double> RowSet::doubles(std::string_view column) const {
  const std::size_t i = checked_column(column, is_floating, kFloats);
  return whole_column<double>(size_, [&](std::size_t r) { return double_in(r, i); });
}
std::vector<std::string> RowSet::strings(std::string_view column) const {
  const std::size_t i = checked_column(column, is_string, kStrings);
  return whole_column<std::string>(size_, [&](std::size_t r) { return string_in(r, i); });
}

// --- tables -----------------------------------------------------------------------------

namespace {
std::shared_ptr<const RowLayout> table_layout(const File& file, const std::string& name,
                                              const Schema& schema) {
  return std::make_shared<const RowLayout>("table /" + name + " of " + quoted(file.path()), schema);
}
}  // namespace

Table Table::create(const File& file, const std::string& name, const Schema& schema,
                    const TableOptions& options) {
  auto layout = table_layout(file, name, schema);
  const std::string& what = layout->label();
  if (file.contains(name)) throw Error(what + " already exists");
  if (options.chunk_rows == 0) throw Error(what + ": chunks need at least one row");
  Handle file_type = compound_type(*layout, true);
  const hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = options.chunk_rows;
  Handle space(check(H5Screate_simple(1, &zero, &unlimited), what, "cannot create"));
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  check(H5Pset_chunk(dcpl.get(), 1, &chunk), what, "cannot set chunks");
  // Shuffling bytes of like columns together makes gzip's job much easier.
  check(H5Pset_shuffle(dcpl.get()), what, "cannot set the shuffle filter");
  check(H5Pset_deflate(dcpl.get(), static_cast<unsigned>(options.gzip_level)), what,
        "cannot set gzip compression");
  Handle ds(check(H5Dcreate2(file.id(), name.c_str(), file_type.get(), space.get(), H5P_DEFAULT,
                             dcpl.get(), H5P_DEFAULT),
                  what, "cannot create"));
  check(H5Fflush(ds.get(), H5F_SCOPE_GLOBAL), what, "cannot flush");
  return Table(std::move(ds), compound_type(*layout, false), layout, true);
}

Table Table::open(const File& file, const std::string& name, const Schema& schema) {
  auto layout = table_layout(file, name, schema);
  const std::string& what = layout->label();
  if (!file.contains(name)) throw FormatError(what + " is missing");
  Handle ds(check<hid_t>(H5Dopen2(file.id(), name.c_str(), H5P_DEFAULT), what,
                         "cannot open (is it a dataset?)"));
  Handle type(H5Dget_type(ds.get()));
  check_columns(*layout, type.get());
  Handle space(H5Dget_space(ds.get()));
  hsize_t maxdims = 0;
  if (H5Sget_simple_extent_ndims(space.get()) != 1 ||
      H5Sget_simple_extent_dims(space.get(), nullptr, &maxdims) < 0 || maxdims != H5S_UNLIMITED) {
    throw FormatError(what + " is not a 1-D extendible dataset");
  }
  return Table(std::move(ds), compound_type(*layout, false), layout, file.writable());
}

std::size_t Table::size() const {
  Handle space(check(H5Dget_space(dataset_.get()), layout_->label(), "cannot read the size"));
  hsize_t rows = 0;
  check(H5Sget_simple_extent_dims(space.get(), &rows, nullptr), layout_->label(),
        "cannot read the size");
  return static_cast<std::size_t>(rows);
}

void Table::check_writable(const char* action) const {
  if (!writable_) throw Error(layout_->label() + ": cannot " + action + ": opened read-only");
}

void Table::check_same_table(const RowBuilder& row) const {
  if (&row.layout() != layout_.get() && row.layout().schema() != schema()) {
    throw Error("a row of " + row.layout().label() + " cannot go into " + layout_->label());
  }
}

void Table::append(const RowBuilder& row) {
  check_same_table(row);
  write_rows(row.bytes().data(), 1);
}

void Table::append(const std::vector<RowBuilder>& rows) {
  std::vector<unsigned char> all;
  all.reserve(rows.size() * layout_->row_bytes());
  for (const RowBuilder& row : rows) {
    check_same_table(row);
    all.insert(all.end(), row.bytes().begin(), row.bytes().end());
  }
  if (!rows.empty()) write_rows(all.data(), rows.size());
}

void Table::append_packed(const unsigned char* data, std::size_t bytes) {
  const std::size_t row = layout_->row_bytes();
  if (bytes % row != 0) {
    throw Error(layout_->label() + ": " + std::to_string(bytes) +
                " bytes are not a whole number of " + std::to_string(row) + "-byte rows");
  }
  if (bytes > 0) write_rows(data, bytes / row);
}

void Table::write_rows(const unsigned char* data, std::size_t count) {
  check_writable("append");
  const std::string& what = layout_->label();
  const hsize_t start = size(), n = count, grown = start + count;
  check(H5Dset_extent(dataset_.get(), &grown), what, "cannot extend");
  Handle file_space(H5Dget_space(dataset_.get()));
  Handle memory_space(H5Screate_simple(1, &n, nullptr));
  if (H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &n, nullptr) < 0 ||
      H5Dwrite(dataset_.get(), memory_type_.get(), memory_space.get(), file_space.get(),
               H5P_DEFAULT, data) < 0) {
    const Reason r = last_reason();
    // Leave no half-written rows of fill values behind.
    H5Dset_extent(dataset_.get(), &start);
    const std::string message = what + ": cannot append: " + r.text;
    if (r.from_os) throw IoError(message);
    throw Error(message);
  }
  check(H5Fflush(dataset_.get(), H5F_SCOPE_GLOBAL), what, "cannot flush");
}

void Table::resize(std::size_t rows) {
  check_writable("resize");
  const hsize_t n = rows;
  check(H5Dset_extent(dataset_.get(), &n), layout_->label(), "cannot resize");
  check(H5Fflush(dataset_.get(), H5F_SCOPE_GLOBAL), layout_->label(), "cannot flush");
}

std::size_t Table::truncate_after(std::int64_t step) {
  const std::vector<std::int64_t> steps = read_ints("step");
  const auto first_after =
      std::find_if(steps.begin(), steps.end(), [&](std::int64_t s) { return s > step; });
  const auto keep = static_cast<std::size_t>(first_after - steps.begin());
  if (keep < steps.size()) resize(keep);
  return steps.size() - keep;
}

void Table::clear() {
  resize(0);
}

RowSet Table::read() const {
  std::vector<unsigned char> bytes(size() * layout_->row_bytes());
  if (!bytes.empty()) {
    check(H5Dread(dataset_.get(), memory_type_.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()),
          layout_->label(), "cannot read");
  }
  return RowSet(layout_, std::move(bytes));
}

std::vector<std::int64_t> Table::read_ints(std::string_view column) const {
  return read().ints(column);
}
std::vector<double> Table::read_doubles(std::string_view column) const {
  return read().doubles(column);
}
std::vector<std::string> Table::read_strings(std::string_view column) const {
  return read().strings(column);
}

}  // namespace qf::hdf5
