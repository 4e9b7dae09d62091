#pragma once
// An Analysis as JSON (the `analyze` contract of interfaces.md, plus extra fields) and
// as a Markdown table like a paper's. The report reads the JSON back and prints the same
// table, so the Markdown's numbers are always the JSON's, formatted by format_stat.
//
// JSON shape (schema "quantfork.analysis/1"):
//   {"schema", "metric", "baseline" (the primary one),
//    "n_counts": {"paired", "paired_runs", "welch_final", "pairwise_wins"} (what each n
//                counts, in words: kPairedCounts, ... of analyze.h),
//    "runs": [{"file", "experiment", "arm", "seed", "probes"}],
//    "comparisons": [{"arm", "baseline", "phase_filter": ["cool:last", ...],
//    "paired": {"n", "mean_diff", "sd_diff", "t", "df", "p_two_sided", "p_less",
//               "p_greater", "ci95": [lo, hi], "cohens_dz", "pairs": [[seed, step], ...]},
//    "paired_runs": the same fields but "pairs" (the run-level test over seeds), or null
//                   with "paired_runs_absent": the reason,
//    "seed_mean_diffs": [{"seed", "pairs", "mean_diff"}],
//    "welch_final": {"final_step" (null when none), "n_arm", "n_baseline", "mean_arm",
//                    "mean_baseline", "t", "df", "p_two_sided", "p_less"},
//    "pairwise_wins": {"wins", "ties", "total"},
//    "unpaired": [{"arm", "seed", "step", "reason"}]}], "warnings": [...], "notes": [...]}
// Comparisons against the primary baseline come first, then those against controls.
// Files without the run-level fields (written before them) still read.
// Non-finite numbers are the strings "NaN", "Infinity" and "-Infinity" (strict JSON,
// as in ../shared/fixtures/stats).
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "experiments/analyze.h"

namespace qf::experiments {

nlohmann::json analysis_to_json(const Analysis& analysis);
// FormatError naming `source` and the field at fault when the JSON is not an analysis.
Analysis analysis_from_json(const nlohmann::json& json, const std::string& source);
Analysis read_analysis_json(const std::filesystem::path& file);

// A statistic for a table: `significant` digits (printf %g), "NaN", "inf" or "-inf".
std::string format_stat(double value, int significant = 4);
// p-values get 3 significant digits.
inline std::string format_p(double p) {
  return format_stat(p, 3);
}

// The statistics tables with heading sentences saying what n counts: the paired tests
// (two rows per comparison: probes and seeds), then Welch's test and the wins on the final
// probe; then notes on unpaired rows, the analysis' notes and its warnings.
std::string markdown_table(const Analysis& analysis);

// Writes `text` to `file` (IoError naming it when that fails).
void write_text_file(const std::filesystem::path& file, const std::string& text);

}  // namespace qf::experiments
