#pragma once
// `quantfork sweep` (docs/experiments.md, "Sweeps"): one base training config, a grid
// and/or a list of changes to it, times seeds; every point trained from scratch, its
// checkpoint trajectory audited (quant_probe/audit.h), and one table with a row per run:
// the swept values, final FP32 perplexity, the FP32 convergence step, the divergence
// onset, the INT4/INT8 gaps at convergence and at the end, the INT4 gap's growth after
// convergence, and the training seconds, as CSV and HDF5, plus a Markdown report with a
// small-multiples figure of the gap trajectories.
//
// - Points. sweep.grid {dotted.key: [values]} is a cartesian product (keys in the order
//   written); sweep.list [{dotted.key: value, ...}] adds points; with both, every list
//   entry is combined with every grid point. Each point × seed (train.seed) is one
//   `quantfork train` run in OUT/<name>/<point>/seed<k>/, then `quantfork audit` of its
//   checkpoints into audit.h5 beside it, in the experiment's process pool
//   (experiments/run_groups.h, sweep.parallel at a time).
// - A point's folder is p<NN>-<hash>, the hash of its sorted assignments, so editing the
//   grid never makes a run resume another point's checkpoints.
// - Every run's config is built with ConfigLoader and checked (schema, training options,
//   schedule) before any run starts: a bad grid is a ConfigError naming the key and the
//   point.
// - Resumable: a run that trained and was audited is skipped; one that trained but was
//   not audited is only audited; an unfinished one resumes from its newest checkpoint.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/config.h"
#include "experiments/fork.h"

namespace qf::experiments {

// The run keys (declare_run_config), the audit's (audit.*) and sweep.*.
void declare_sweep_config(ConfigSchema& schema);

struct SweepPoint {
  std::string id;                   // p<NN>-<hash>, the point's folder
  std::vector<std::string> keys;    // the assignments' keys, in sweep order
  std::vector<std::string> values;  // their values as YAML flow text
  std::string label() const;        // "key=value, key=value" (keys shortened), or "base"
};

struct SweepPlan {
  std::string name;
  std::filesystem::path out;      // OUT/<name>
  std::vector<std::string> keys;  // every swept key, in order of first appearance
  std::vector<SweepPoint> points;
  std::vector<int64_t> seeds;
  double int8_small_pct = 1.0;  // sweep.int8_small_pct
  double fp32_flat_pct = 10.0;  // sweep.fp32_flat_pct
  // One RunSpec per point × seed (arm = the point's id), with the audit as its follow-up.
  ExperimentPlan runs;
  std::vector<size_t> point_of;  // runs.runs[i] belongs to points[point_of[i]]
};

// Checkpoint steps like Pythia's: 1, 2, 4, ..., 512, then every `every` (past 512) up to
// `steps`, and `steps` itself.
std::vector<int64_t> pythia_like_checkpoints(int64_t steps, int64_t every);

// Expands the points, checks every run's config, writes them (run_config.yaml,
// audit_config.yaml) and the points file OUT/<name>/points.csv.
SweepPlan plan_sweep(const Config& config);

// One row of the table.
struct SweepRow {
  size_t point = 0;  // index into SweepPlan::points
  int64_t seed = 0;
  std::string status;        // ok, untrained (training not finished), unaudited (no audit yet)
  int64_t steps = 0;         // updates done
  double train_seconds = 0;  // sum of the run's step times (run.h5 /train)
  double final_ppl_fp32 = 0;
  bool converged_inside = false;
  int64_t fp32_convergence_step = -1, divergence_onset_step = -1, pre_divergence_step = -1;
  double gap_int4_conv_pct = 0, gap_int8_conv_pct = 0;  // at the convergence step
  double gap_int4_end_pct = 0, gap_int8_end_pct = 0;    // at the last checkpoint
  double int4_growth = 0;       // end / convergence INT4 gap (NaN without convergence)
  double max_gap_int8_pct = 0;  // largest INT8 gap from the convergence step on
  // FP32 perplexity at the end against at convergence, in percent (overfitting shows as
  // a large positive drift; the study's FP32 "barely moves").
  double fp32_drift_pct = 0;
  // The least-squares slope of the INT4 gap (not its log) against step over the
  // checkpoints from the convergence step to the end, in percentage points per 1000
  // steps, with its 95 % confidence interval (Student t, n - 2 degrees of freedom; NaN
  // below 3 checkpoints). A model-free check of "the gap rises after convergence", beside
  // the audit's segmented fit of the log gap, which small gaps near 0 make noisy.
  double int4_slope_after_conv = 0, int4_slope_after_conv_lo = 0, int4_slope_after_conv_hi = 0;
  // The same over the checkpoints the audit fitted before convergence (from
  // fit_start_step, the start of its first phase segment, to the convergence step): "the
  // gap then rises clearly faster than before" compares the two.
  int64_t fit_start_step = 0;
  double int4_slope_before_conv = 0, int4_slope_before_conv_lo = 0, int4_slope_before_conv_hi = 0;
  // Converged inside, a divergence onset at or after convergence, INT8 small
  // (max_gap_int8_pct below sweep.int8_small_pct) and FP32 flat after convergence
  // (|fp32_drift_pct| below sweep.fp32_flat_pct): the three phases of the study.
  bool three_phases = false;
  // The audit's first finding (its phase_verdict's first line): the onset, or why there
  // is none ("the last segment's slope is not clearly positive", ...).
  std::string audit_finding;
  struct Point {
    int64_t step;
    double ppl_fp32, gap_int4_pct, gap_int8_pct;
  };
  std::vector<Point> trajectory;  // the audit's rows
};

// Fills a row's figures and verdict from its trajectory, landmarks (fp32_convergence_step,
// divergence_onset_step) and converged_inside: the end and convergence readings, the INT4
// growth, the largest INT8 gap from convergence on, the FP32 drift and three_phases, with
// the sweep's thresholds (sweep.int8_small_pct, sweep.fp32_flat_pct).
void judge_sweep_row(SweepRow& row, double int8_small_pct, double fp32_flat_pct);

// `text` as one CSV field (quoted when it holds a comma, quote or newline).
std::string csv_field(const std::string& text);

// Reads every run's run.h5 and audit.h5.
std::vector<SweepRow> summarize_sweep(const SweepPlan& plan);

// OUT/<name>/sweep.csv, sweep.h5 (quantfork.sweep/1) and report/report.md with its figure.
// Returns report.md's path.
std::filesystem::path write_sweep_results(const SweepPlan& plan, const std::vector<SweepRow>& rows,
                                          const std::string& config_yaml);

}  // namespace qf::experiments
