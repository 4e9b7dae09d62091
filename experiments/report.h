#pragma once
// `quantfork report`: a readable Markdown report with PNG figures (drawn by gnuplot) of
// an audit, of a fork experiment, or both.
//
// - Audit (a quantfork.audit/3 file): FP32 perplexity and the INT4/INT8 gaps against the
//   step on a log axis with the fitted phases shaded and the FP32 convergence step
//   marked (audit_gap.png); mean weight kurtosis against the INT4 gap (audit_kurtosis.png,
//   with Pearson's r over the trajectory and within the divergence phase); the landmarks
//   and the phases table, saying plainly when no divergence phase (hence no
//   pre-divergence checkpoint) was found.
// - Experiment (run files): the metric per arm against the step, mean over seeds with a
//   min-max band (experiment_metric.png); each arm's learning rate from /train
//   (experiment_lr.png); the final probe of every seed per arm (experiment_final.png);
//   and the statistics tables of an Analysis (given as analysis.json, or computed from the
//   runs and written as OUT/analysis.json), whose numbers are exactly the JSON's, with
//   each comparison in words beside the paper's finding and an optional scale caveat.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/run_file.h"
#include "experiments/analyze.h"

namespace qf::experiments {

struct ReportOptions {
  std::optional<std::filesystem::path> audit;     // an audit.h5
  std::vector<std::string> runs;                  // run files or directories
  std::optional<std::filesystem::path> analysis;  // analysis.json; else computed from runs
  AnalyzeOptions analyze;                         // used when the analysis is computed
  // One line the statistics section opens with: what the numbers can say at this scale
  // (scale_caveat, for a miniature such as the demo). Empty: none.
  std::string caveat;
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
// The statistics tables (markdown_table: the probe- and seed-level paired tests, Welch
// and wins), the caveat when there is one, and each comparison in words beside the
// paper's finding where the paper has one, saying whether the sign agrees.
std::string statistics_section(const Analysis& analysis, const std::string& caveat = "");

// The scale caveat of a miniature: e.g. scale_caveat(462336, "byte") says a 0.46M-parameter
// model on byte tokens is not the paper's Pythia-160m (162M parameters, BPE tokens).
std::string scale_caveat(std::int64_t parameters, const std::string& tokens);

// The paper's fork result for arm − baseline, where it reports one (by arm name, as the
// fork configs name them): oli − cosine negative (OLI's cool phases lower by 2.2 points
// on average, t = −5.46), sgdr − cosine positive (SGDR worse in 9 of 9 pairs).
struct PaperFinding {
  const char* arm;
  const char* baseline;
  int sign;  // of the paper's arm − baseline difference: −1 or +1
  const char* text;
};
const PaperFinding* paper_finding(const std::string& arm, const std::string& baseline);

// Whether a mean difference arm − baseline has the paper's sign. kNoPaperResult: the paper
// has no such comparison; kUndetermined: the difference is 0 or not finite.
enum class PaperSign { kAgrees, kOpposite, kUndetermined, kNoPaperResult };
PaperSign paper_sign(const std::string& arm, const std::string& baseline, double mean_diff);

// The audit's correlation of mean weight kurtosis with the INT4 gap (Pearson r over the
// checkpoints where both are finite): over the whole trajectory, and within the
// divergence phase (steps >= its onset), where the paper's r = −0.26 was measured.
struct Correlation {
  std::size_t n = 0;
  double r = 0;  // NaN below 2 points or for a constant variable
};
struct KurtosisGapCorrelation {
  Correlation all;
  std::optional<Correlation> divergence;  // absent: no divergence phase
};
KurtosisGapCorrelation kurtosis_gap_correlation(const std::vector<AuditRow>& rows,
                                                std::optional<std::int64_t> divergence_onset);

}  // namespace qf::experiments
