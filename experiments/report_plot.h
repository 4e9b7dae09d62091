#pragma once
// What the report's sections share to draw their figures with gnuplot (core/gnuplot.h):
// numeric data files and one call that runs a script into OUT/<name>.png.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/run_file.h"

namespace qf::experiments::detail {

// Whitespace-separated columns, one row per line, numbers with 17 significant digits
// (gnuplot reads them back exactly).
void write_data(const std::filesystem::path& file, const std::vector<std::vector<double>>& rows);

// Runs `body` (the script after the PNG preamble) into `out_dir/name`, appends the image
// to `figures` and returns the Markdown that shows it with `caption`.
std::string draw(const std::string& body, const std::filesystem::path& out_dir,
                 const std::string& name, const std::string& caption,
                 std::vector<std::filesystem::path>& figures);

// "set arrow" lines: a dashed vertical line at x (first axis) with a label at height
// `label_y` (graph coordinates, 0 bottom, 1 top), so that markers close together stay legible.
std::string vertical_marker(double x, const std::string& label, const std::string& color,
                            double label_y);

// The audit's per-unit attribution (/probe_attribution): a heat map of each unit's INT4
// gap against step, and the units that carry the growth of the gap after the reference
// step (pre-divergence, else FP32 convergence, else the first), with the sum of the
// single gaps beside the joint gap. "" when the audit has no attribution.
std::string attribution_section(const std::vector<AttributionRow>& attribution,
                                const std::vector<AuditRow>& rows,
                                const std::optional<AuditLandmarks>& marks,
                                const std::filesystem::path& out_dir,
                                std::vector<std::filesystem::path>& figures);

// The audit's LAWA averages (/audit_lawa, audit.lawa.k = `k`): their INT4/INT8 gap beside
// the raw checkpoints' against step, at the landmarks, and how often averaging lowered the
// gap. "" when the audit has no /audit_lawa.
std::string lawa_section(const std::vector<LawaRow>& lawa, std::optional<std::int64_t> k,
                         const std::vector<AuditRow>& rows,
                         const std::optional<AuditLandmarks>& marks,
                         const std::filesystem::path& out_dir,
                         std::vector<std::filesystem::path>& figures);

}  // namespace qf::experiments::detail
