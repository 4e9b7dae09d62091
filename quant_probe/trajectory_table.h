#pragma once
// The tables `quantfork phases` fits: an audit file (quantfork.audit/1 or /2) or a CSV of a
// trajectory from any tool, as audit rows.
//
// A CSV has a header row naming at least the columns step, ppl_fp32 and gap_int4_pct
// (gap_int8_pct is read too when present), in any order; other columns are ignored, and
// so are empty lines. Every row has as many fields as the header (no quoting: fields are
// split at commas and trimmed). step is an integer; an empty field of another column is
// NaN (pandas writes a missing value so), and "nan" / "inf" are read as such. The rows
// come back in file order with the columns the CSV has and NaN for the others.
#include <filesystem>
#include <string>
#include <vector>

#include "core/run_file.h"

namespace qf::quant {

// `text` is the CSV, `name` its file for messages. FormatError naming the file, line and
// column for a missing header or required column, a repeated column name, a row with the
// wrong number of fields, or a field that is not a number (a step that is not an integer).
std::vector<AuditRow> parse_trajectory_csv(const std::string& text, const std::string& name);

// An audit file's /audit rows (told apart by the HDF5 signature at its start), or a CSV's.
// IoError when the file cannot be read; FormatError when its content is malformed.
std::vector<AuditRow> read_trajectory_table(const std::filesystem::path& path);

}  // namespace qf::quant
