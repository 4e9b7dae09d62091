#include "quant_probe/trajectory_table.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/errors.h"

namespace qf::quant {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// The first 8 bytes of an HDF5 file without a user block (the ones quantfork writes).
constexpr char kHdf5Signature[] = "\x89HDF\r\n\x1a\n";

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> fields;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = line.find(',', start);
    fields.push_back(trim(line.substr(start, comma - start)));
    if (comma == std::string::npos) return fields;
    start = comma + 1;
  }
}

// Where a field is, for messages: "FILE:LINE: column C (NAME)".
struct Place {
  const std::string& file;
  std::size_t line;
  std::string at(std::size_t column, const std::string& name) const {
    return file + ":" + std::to_string(line) + ": column " + std::to_string(column + 1) + " (" +
           name + ")";
  }
};

// A number that fills the whole field; empty is NaN.
double parse_number(const std::string& field, const Place& place, std::size_t column,
                    const std::string& name) {
  if (field.empty()) return kNaN;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(field.c_str(), &end);
  if (end != field.c_str() + field.size() || (errno == ERANGE && std::isinf(v))) {
    throw FormatError(place.at(column, name) + ": '" + field + "' is not a number");
  }
  return v;
}

// An integer, also when written as a float ("1000.0", "1e3": pandas writes an integer
// column with missing values so).
std::int64_t parse_step(const std::string& field, const Place& place, std::size_t column) {
  const double v = field.empty() ? kNaN : parse_number(field, place, column, "step");
  // 2^53: beyond it a double no longer holds every integer.
  if (!(std::fabs(v) <= 9007199254740992.0) || v != std::floor(v)) {
    throw FormatError(place.at(column, "step") + ": '" + field + "' is not an integer step");
  }
  return static_cast<std::int64_t>(v);
}

}  // namespace

std::vector<AuditRow> parse_trajectory_csv(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  std::size_t line_no = 0;
  std::vector<std::string> header;
  while (header.empty() && std::getline(in, line)) {
    ++line_no;
    if (!trim(line).empty()) header = split_fields(line);
  }
  if (header.empty()) {
    throw FormatError(name + ": no header row (expected one naming step, ppl_fp32, gap_int4_pct)");
  }
  const std::size_t header_line = line_no;
  const std::size_t kAbsent = header.size();
  // The columns read: step, ppl_fp32, gap_int4_pct (required) and gap_int8_pct.
  const char* const names[] = {"step", "ppl_fp32", "gap_int4_pct", "gap_int8_pct"};
  std::size_t column[4] = {kAbsent, kAbsent, kAbsent, kAbsent};
  for (std::size_t c = 0; c < header.size(); ++c) {
    for (std::size_t k = 0; k < 4; ++k) {
      if (header[c] != names[k]) continue;
      if (column[k] != kAbsent) {
        throw FormatError(Place{name, header_line}.at(c, names[k]) + ": the column '" + names[k] +
                          "' is named twice");
      }
      column[k] = c;
    }
  }
  for (std::size_t k = 0; k < 3; ++k) {
    if (column[k] == kAbsent) {
      std::string named;
      for (const auto& h : header) named += (named.empty() ? "'" : ", '") + h + "'";
      throw FormatError(name + ":" + std::to_string(header_line) + ": the header has no column '" +
                        names[k] + "' (it needs step, ppl_fp32 and gap_int4_pct; it names " +
                        named + ")");
    }
  }
  std::vector<AuditRow> rows;
  while (std::getline(in, line)) {
    ++line_no;
    if (trim(line).empty()) continue;
    const std::vector<std::string> fields = split_fields(line);
    const Place place{name, line_no};
    if (fields.size() != header.size()) {
      throw FormatError(name + ":" + std::to_string(line_no) + ": " +
                        std::to_string(fields.size()) + " fields, but the header (line " +
                        std::to_string(header_line) + ") has " + std::to_string(header.size()));
    }
    AuditRow row;
    row.loss_fp32 = row.ppl_int4 = row.ppl_int8 = row.gap_int8_pct = kNaN;
    row.kurtosis_mean = row.grid_residual_mean = kNaN;
    row.step = parse_step(fields[column[0]], place, column[0]);
    row.ppl_fp32 = parse_number(fields[column[1]], place, column[1], names[1]);
    row.gap_int4_pct = parse_number(fields[column[2]], place, column[2], names[2]);
    if (column[3] != kAbsent) {
      row.gap_int8_pct = parse_number(fields[column[3]], place, column[3], names[3]);
    }
    rows.push_back(row);
  }
  return rows;
}

std::vector<AuditRow> read_trajectory_table(const std::filesystem::path& path) {
  if (std::filesystem::is_directory(path)) {
    throw IoError("the trajectory table '" + path.string() + "' is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(errno_message("cannot read the trajectory table", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw IoError(errno_message("cannot read the trajectory table", path.string()));
  const std::string bytes = text.str();
  if (bytes.compare(0, sizeof kHdf5Signature - 1, kHdf5Signature) == 0) {
    return AuditFile::open_read_only(path.string()).read_audit();
  }
  return parse_trajectory_csv(bytes, path.string());
}

}  // namespace qf::quant
