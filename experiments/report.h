#pragma once
// `quantfork report`: a readable Markdown report with PNG figures (drawn by gnuplot) of
// an audit, of a fork experiment, or both.
//
// - Audit (a quantfork.audit/1 file): FP32 perplexity and the INT4/INT8 gaps against the
//   step on a log axis with the fitted phases shaded and the FP32 convergence step
//   marked (audit_gap.png); mean weight kurtosis against the INT4 gap (audit_kurtosis.png,
//   with Pearson's r); the landmarks and the phases table, saying plainly when no
//   divergence phase (hence no pre-divergence checkpoint) was found.
// - Experiment (run files): the metric per arm against the step, mean over seeds with a
//   min-max band (experiment_metric.png); each arm's learning rate from /train
//   (experiment_lr.png); the final probe of every seed per arm (experiment_final.png);
//   and the statistics table of an Analysis (given as analysis.json, or computed from the
//   runs and written as OUT/analysis.json), whose numbers are exactly the JSON's.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "experiments/analyze.h"

namespace qf::experiments {

struct ReportOptions {
  std::optional<std::filesystem::path> audit;     // an audit.h5
  std::vector<std::string> runs;                  // run files or directories
  std::optional<std::filesystem::path> analysis;  // analysis.json; else computed from runs
  AnalyzeOptions analyze;                         // used when the analysis is computed
};

struct ReportFiles {
  std::filesystem::path markdown;                 // OUT/report.md
  std::vector<std::filesystem::path> figures;     // the PNGs written
  std::optional<std::filesystem::path> analysis;  // OUT/analysis.json when computed
};

// Writes the report into `out_dir` (created when missing). UsageError when there is
// nothing to report (no audit, runs or analysis); errors of the inputs as their readers
// throw them (FormatError naming the file, ...).
ReportFiles write_report(const ReportOptions& options, const std::filesystem::path& out_dir);

// The report's sections, for callers that assemble their own (the demo). Each returns
// Markdown and appends the figures it wrote under `out_dir` to `figures`.
std::string audit_section(const std::filesystem::path& audit, const std::filesystem::path& out_dir,
                          std::vector<std::filesystem::path>& figures);
// `runs` loaded with `metric` as their probe value (load_runs).
std::string experiment_section(const std::vector<Run>& runs, const std::string& metric,
                               const std::filesystem::path& out_dir,
                               std::vector<std::filesystem::path>& figures);
std::string statistics_section(const Analysis& analysis);

}  // namespace qf::experiments
